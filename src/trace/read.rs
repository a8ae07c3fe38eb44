//! Reading trace files a line at a time: whole ([`Trace::parse_jsonl`]) or kept
//! ([`Trace::read_kept`]: the network records summed as they are read, so that a big
//! run's trace is checked and drawn in the memory its other records need).
//!
//! Both read the same way and refuse the same files with the same errors: a trace
//! without a valid end record is incomplete, and that is said before any bad line in it;
//! otherwise the first bad line is named.

use std::io::{BufRead, Read as _};

use super::*;

/// Longest line a trace may have: 256 MiB (a `final` record of a room with a million
/// members is about 100 MB).
pub const LINE_BYTES_MAX: usize = 256 << 20;

impl Trace {
    /// Reads a JSONL trace whole. Blank lines are not allowed except one final newline.
    /// The last line must be an end record whose count and hash match what precedes it;
    /// otherwise the problem starts with "trace is incomplete".
    pub fn parse_jsonl(text: &str) -> Result<Trace, TraceError> {
        read(&mut text.as_bytes(), false).map(|(trace, _)| trace)
    }

    /// Reads a JSONL trace as [`Trace::parse_jsonl`] does, a line at a time, into a kept
    /// trace ([`Trace::kept`]), and returns its trace hash too.
    pub fn read_kept(reader: &mut impl BufRead) -> Result<(Trace, String), TraceError> {
        read(reader, true)
    }
}

/// What has been read so far.
struct Reading {
    kept: bool,
    header: Option<Header>,
    /// Every record of a whole trace; a kept one's go to `keeper`.
    records: Records,
    keeper: Option<Keeper>,
    last_t: u64,
    /// The first bad line, said only once the end record is found valid.
    error: Option<TraceError>,
    hasher: crypto::Sha256Stream,
}

fn at(line: u64, problem: String) -> TraceError {
    TraceError { line, problem }
}

impl Reading {
    /// Takes line `line` (1-based, without its newline), which is not the last line.
    fn take(&mut self, line: u64, text: &[u8]) {
        if line == 1 {
            match build_member(text) {
                Some((start, end)) => {
                    self.hasher.update(&text[..start]);
                    self.hasher.update(&text[end..]);
                }
                None => self.hasher.update(text),
            }
        } else {
            self.hasher.update(text);
        }
        self.hasher.update(b"\n");
        if self.error.is_some() {
            return;
        }
        if let Err(error) = self.parse(line, text) {
            self.error = Some(error);
        }
    }

    fn parse(&mut self, line: u64, text: &[u8]) -> Result<(), TraceError> {
        if line == 1 {
            let header: TaggedHeader = serde_json::from_slice(text)
                .map_err(|e| at(1, format!("bad header (column {}): {e}", e.column())))?;
            let header = header.header;
            if header.format != FORMAT {
                return Err(at(1, format!("format {:?}, expected {FORMAT:?}", header.format)));
            }
            self.keeper = self.kept.then(|| Keeper::new(header.end_ms, &header.faults));
            self.header = Some(header);
            return Ok(());
        }
        let record: Record = serde_json::from_slice(text)
            .map_err(|e| at(line, format!("bad record (column {}): {e}", e.column())))?;
        if record.t < self.last_t {
            return Err(at(line, format!("time goes back: {} after {}", record.t, self.last_t)));
        }
        self.last_t = record.t;
        match &mut self.keeper {
            Some(keeper) => keeper.push(record),
            None => self.records.push(record),
        }
        Ok(())
    }
}

fn read(reader: &mut impl BufRead, kept: bool) -> Result<(Trace, String), TraceError> {
    let mut reading = Reading {
        kept,
        header: None,
        records: Records::new(),
        keeper: None,
        last_t: 0,
        error: None,
        hasher: crypto::Sha256Stream::new(),
    };
    // The last line read (without its newline), taken once the next one shows it was not
    // the last; whether it ended in a newline.
    let mut last: Option<(u64, Vec<u8>)> = None;
    let mut newline = true;
    let mut buffer = Vec::new();
    let mut line = 0u64;
    loop {
        buffer.clear();
        let limit = u64::try_from(LINE_BYTES_MAX).unwrap_or(u64::MAX).saturating_add(1);
        let n = reader
            .by_ref()
            .take(limit)
            .read_until(b'\n', &mut buffer)
            .map_err(|e| at(line + 1, format!("cannot read: {e}")))?;
        if n == 0 {
            break;
        }
        line += 1;
        newline = buffer.last() == Some(&b'\n');
        if newline {
            buffer.pop();
        } else if buffer.len() > LINE_BYTES_MAX {
            return Err(at(line, format!("longer than {LINE_BYTES_MAX} bytes")));
        }
        if let Some((number, text)) = last.take() {
            reading.take(number, &text);
        }
        last = Some((line, std::mem::take(&mut buffer)));
    }
    let hash = check_end(&mut reading, last, newline)?;
    if let Some(error) = reading.error {
        return Err(error);
    }
    let Some(header) = reading.header else {
        return Err(at(1, "empty trace: expected a header line".into()));
    };
    let trace = match reading.keeper {
        None => Trace::new(header, reading.records),
        Some(keeper) => keeper.finish(header),
    };
    Ok((trace, hash))
}

/// Checks the last line, `last`, as the end record of what was read before it, and
/// returns the trace hash.
fn check_end(
    reading: &mut Reading,
    last: Option<(u64, Vec<u8>)>,
    newline: bool,
) -> Result<String, TraceError> {
    let (line, text) = last.unwrap_or((1, Vec::new()));
    let incomplete = |problem: String| at(line, format!("{INCOMPLETE}: {problem}"));
    let is_end = serde_json::from_slice::<Value>(&text)
        .ok()
        .is_some_and(|v| v.get("type").and_then(Value::as_str) == Some("end"));
    if !is_end {
        return Err(incomplete(format!(
            "no end record after line {line} (the file was cut short or never finished)"
        )));
    }
    if !newline {
        return Err(incomplete("the end record has no final newline".into()));
    }
    let end: End = serde_json::from_slice(&text)
        .map_err(|e| incomplete(format!("bad end record (column {}): {e}", e.column())))?;
    let records = line.saturating_sub(2);
    if end.records != records {
        return Err(incomplete(format!(
            "the end record counts {} records, the file has {records}",
            end.records
        )));
    }
    let hash = reading.hasher.clone().finish_hex();
    if end.hash != hash {
        return Err(incomplete(format!(
            "the end record's hash {} is not the SHA-256 of the lines before it ({hash})",
            end.hash
        )));
    }
    reading.hasher.update(&text);
    reading.hasher.update(b"\n");
    Ok(reading.hasher.clone().finish_hex())
}
