//! The spool of a run's records: the file they go to as the run makes them, after the
//! trace header the run expects ([`world::RecordSink`]), hashed as they go, and how it
//! becomes the trace file (or is read back under the run's header when that turned out
//! otherwise). `mxsim run` and each seed of `mxsim sweep` run through it
//! (`super::spooled_run`, `super::sweep_seed`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::cli::CliError;
use crate::trace;
use crate::world;

/// Why a spooled run stopped: the plan could not run (the scenario's fault), or a file
/// could not be written.
pub(super) enum SpoolError {
    Plan(world::WorldError),
    File(CliError),
}

impl SpoolError {
    pub(super) fn in_file(self, file: &str) -> CliError {
        match self {
            SpoolError::Plan(e) => CliError::input(format!("{file}: {e}")),
            SpoolError::File(e) => e,
        }
    }
}

/// The spool a run writes its expected header and record lines to, hashing them as they
/// go, and the first error writing it.
pub(super) struct SpoolFile {
    /// Unbuffered: the run hands its lines over in chunks of at least
    /// [`world::SPOOL_CHUNK`] bytes.
    file: std::fs::File,
    /// The trace hash so far, after the header the run expected ([`trace::StreamedHash`]),
    /// whose line and newline the file starts with.
    stream: Option<trace::StreamedHash>,
    error: Option<std::io::Error>,
}

impl SpoolFile {
    fn write(&mut self, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = std::io::Write::write_all(&mut self.file, bytes) {
            self.error = Some(e);
        }
    }
}

/// The world's sink into a [`SpoolFile`], which the runner takes back once the run is over.
struct SpoolSink(Arc<Mutex<SpoolFile>>);

impl world::RecordSink for SpoolSink {
    fn expect_header(&mut self, header: &trace::Header) {
        let Ok(mut spool) = self.0.lock() else { return };
        if spool.stream.is_some() {
            return;
        }
        let stream = trace::StreamedHash::start(header);
        let line = format!("{}\n", stream.header_line());
        spool.write(line.as_bytes());
        spool.stream = Some(stream);
    }

    fn lines(&mut self, lines: &[u8]) {
        let Ok(mut spool) = self.0.lock() else { return };
        if let Some(stream) = spool.stream.as_mut() {
            stream.lines(lines);
        }
        spool.write(lines);
    }
}

/// Removes the spool file when dropped, whatever happened, unless it became the trace
/// file: once it is moved its name is free, and another sweep sharing the directory may
/// have made a spool of its own under it ([`new_spool`]).
pub(super) struct RemoveOnDrop<'p> {
    path: &'p Path,
    moved: bool,
}

impl<'p> RemoveOnDrop<'p> {
    pub(super) fn new(path: &'p Path) -> RemoveOnDrop<'p> {
        RemoveOnDrop { path, moved: false }
    }
}

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        if !self.moved {
            let _ = std::fs::remove_file(self.path);
        }
    }
}

/// Runs `plan` writing its expected header and record lines to `file`, the new file
/// `part`, which the caller removes. Returns the output, whose trace is kept
/// ([`Trace::kept`]), and the spool.
pub(super) fn spool(
    plan: &world::Plan,
    progress: Option<world::ProgressSink>,
    file: std::fs::File,
    part: &Path,
) -> Result<(world::RunOutput, SpoolFile), SpoolError> {
    let spooled = SpoolFile { file, stream: None, error: None };
    let spool = Arc::new(Mutex::new(spooled));
    let sink: world::SpoolSink = Box::new(SpoolSink(Arc::clone(&spool)));
    let output = world::run_spooled(plan, progress, sink).map_err(SpoolError::Plan)?;
    // The world and its sink are gone: the spool is the runner's alone.
    let mut spool = Arc::try_unwrap(spool)
        .ok()
        .expect("the run dropped its sink")
        .into_inner()
        .expect("no sink panicked holding the spool");
    if let Some(e) = spool.error.take() {
        return Err(cannot_write(part, e));
    }
    Ok((output, spool))
}

/// The trace hash of `trace`'s header over the record lines spooled in `spool`'s file (as
/// many as the run counted), making the trace file at `trace_path` if given.
///
/// When the run's header is the one it expected, the spool is the trace file but for
/// its end record, and its hash was taken as it was written: the end record is added
/// and the spool becomes the trace file (moved, which `spool` is told, or copied if it
/// lies on another file system). Otherwise the lines after the expected header are read
/// back and written again after the run's ([`trace::write_spooled`]).
pub(super) fn trace_from_spool(
    trace: &trace::Trace,
    spooled: SpoolFile,
    spool: &mut RemoveOnDrop<'_>,
    trace_path: Option<&Path>,
) -> Result<String, SpoolError> {
    let part = spool.path;
    let (header, records) = (&trace.header, trace.record_count());
    let SpoolFile { mut file, stream, .. } = spooled;
    // The bytes the file starts with: the expected header's line and newline.
    let header_bytes = stream.as_ref().map_or(0, |s| s.header_line().len() as u64 + 1);
    let streamed = match stream {
        Some(stream) => stream.finish(header, records).map_err(|e| cannot_write(part, e))?,
        None => None,
    };
    if let Some((end, hash)) = streamed {
        if let Some(path) = trace_path {
            std::io::Write::write_all(&mut file, end.as_bytes())
                .map_err(|e| cannot_write(part, e))?;
            drop(file);
            if std::fs::rename(part, path).is_ok() {
                spool.moved = true;
            } else {
                std::fs::copy(part, path).map_err(|e| cannot_write(path, e))?;
            }
        }
        return Ok(hash);
    }
    drop(file);
    let mut read = std::fs::File::open(part).map_err(|e| cannot_write(part, e))?;
    std::io::Seek::seek(&mut read, std::io::SeekFrom::Start(header_bytes))
        .map_err(|e| cannot_write(part, e))?;
    let mut spooled = std::io::BufReader::with_capacity(1 << 20, read);
    match trace_path {
        Some(path) => {
            let file = std::fs::File::create(path).map_err(|e| cannot_write(path, e))?;
            let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
            let hash = trace::write_spooled(header, records, &mut spooled, &mut writer)
                .map_err(|e| cannot_write(path, e))?;
            std::io::Write::flush(&mut writer).map_err(|e| cannot_write(path, e))?;
            Ok(hash)
        }
        None => trace::write_spooled(header, records, &mut spooled, &mut std::io::sink())
            .map_err(|e| cannot_write(part, e)),
    }
}

pub(super) fn cannot_write(path: &Path, e: std::io::Error) -> SpoolError {
    SpoolError::File(CliError::input(format!("{}: cannot write: {e}", path.display())))
}

/// A new spool file in `dir` for `seed`: `mxsim-sweep-<pid>-seed-<seed>-<n>.trace.part`,
/// created only if no file has that name (the first free `n`), so that sweeps sharing the
/// directory (other processes, containers whose process ids repeat) never write, read or
/// remove one another's spools.
pub(super) fn new_spool(dir: &Path, seed: u64) -> Result<(PathBuf, std::fs::File), SpoolError> {
    let pid = std::process::id();
    for n in 0..1_000u32 {
        let path = dir.join(format!("mxsim-sweep-{pid}-seed-{seed}-{n}.trace.part"));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(cannot_write(&path, e)),
        }
    }
    let message = format!("{}: no free name for a spool file", dir.display());
    Err(SpoolError::File(CliError::input(message)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::run::VERSION;

    #[test]
    fn a_spool_is_made_under_a_name_no_file_has() {
        let dir = std::env::temp_dir().join(format!("mxsim-spool-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Another sweep's spool for the same process id and seed is left alone.
        let spool = |dir| new_spool(dir, 7).ok().expect("a new spool");
        let (first, _first) = spool(&dir);
        std::fs::write(&first, b"another sweep's records\n").unwrap();
        let (second, _second) = spool(&dir);
        assert_ne!(first, second);
        assert!(second.to_string_lossy().ends_with("-seed-7-1.trace.part"), "{second:?}");
        assert_eq!(std::fs::read(&first).unwrap(), b"another sweep's records\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A spool written after the run's own header becomes the trace file with its end
    /// record: moved when it can be (and then left alone by its guard, whose name another
    /// sweep may take), copied from another file system (`/dev/shm`, where it is one).
    /// One written after another header (a run that handed its header over before naming
    /// its rooms) is read back and written again after the run's. Either way the file and
    /// hash are the whole trace's, only hashing gives the same hash, and no spool is left.
    #[test]
    fn a_spool_becomes_the_trace_file_under_the_header_it_was_written_after_or_is_rewritten() {
        let unique = format!("mxsim-spool-headers-{}", std::process::id());
        let dir = std::env::temp_dir().join(&unique);
        std::fs::create_dir_all(&dir).unwrap();
        let device = |path: &Path| std::os::unix::fs::MetadataExt::dev(&path.metadata().unwrap());
        let shm = Path::new("/dev/shm").join(&unique);
        let other_device = std::fs::create_dir_all(&shm).is_ok() && device(&shm) != device(&dir);
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/partition-heal.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let job = crate::sweep::Job::new(path, &text, false, VERSION).unwrap();
        let (_, plan) = job.plan(1).unwrap();
        let whole = world::run(&plan).unwrap().trace;
        let mut lines = Vec::new();
        for record in &whole.records {
            lines.extend_from_slice(record.to_line().as_bytes());
            lines.push(b'\n');
        }
        let mut early = whole.header.clone();
        early.check.expect.rooms.clear();
        let mut cases = vec![(&whole.header, "own", &dir), (&early, "early", &dir)];
        if other_device {
            cases.push((&whole.header, "copied", &shm));
        }
        for (expected, name, spool_dir) in cases {
            for keep in [true, false] {
                let part = spool_dir.join(format!("{name}-{keep}.part"));
                let file = std::fs::File::create(&part).unwrap();
                let spooled = SpoolFile { file, stream: None, error: None };
                let shared = Arc::new(Mutex::new(spooled));
                let mut sink = SpoolSink(Arc::clone(&shared));
                world::RecordSink::expect_header(&mut sink, expected);
                for piece in lines.chunks(1000) {
                    world::RecordSink::lines(&mut sink, piece);
                }
                drop(sink);
                let spooled = Arc::try_unwrap(shared).ok().unwrap().into_inner().unwrap();
                let trace_path = dir.join(format!("{name}-{keep}.jsonl"));
                let kept = keep.then_some(trace_path.as_path());
                let mut remove = RemoveOnDrop::new(&part);
                let hash = trace_from_spool(&whole, spooled, &mut remove, kept).ok().unwrap();
                assert_eq!(hash, whole.hash(), "{name}, kept {keep}");
                let moved = keep && name == "own";
                assert_eq!(remove.moved, moved, "{name}, kept {keep}");
                assert_eq!(part.exists(), !moved, "{name}, kept {keep}");
                if keep {
                    let file = std::fs::read(&trace_path).unwrap();
                    assert!(file == whole.to_jsonl(), "{name}: the trace file differs");
                } else {
                    assert!(!trace_path.exists());
                }
                drop(remove);
                assert!(!part.exists(), "{name}, kept {keep}: the spool is left");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&shm);
    }
}
