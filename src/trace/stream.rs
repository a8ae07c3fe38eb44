//! [`StreamedHash`]: the trace hash taken as a run writes its record lines, after the
//! header the run expects to end with.
//!
//! A trace file starts with its header, and a run's header is whole only when the run
//! ends: a scenario's expectations name rooms and events by the ids the run gives them.
//! So a run's record lines waited in a spool, and its trace file was made after the run
//! from the header and the spool read back, hashed and written again: at 100 servers,
//! 13 MB read and 13 MB written once the simulation was over. The world now tells its
//! sink, before any line, the header it expects (the one it ends with unless the run
//! fills in what only the run knows); the sink writes that header and the lines after it
//! into the file that becomes the trace file, hashing them as they go, and only a run
//! whose header turned out otherwise has its lines written again under the right one
//! ([`super::write_spooled`]).

use super::{Header, end_line, header_hashed, newlines};
use crate::matrix::crypto;

/// The hash of a trace file being written: the expected header, then record lines.
pub struct StreamedHash {
    hasher: crypto::Sha256Stream,
    /// The expected header's line, without its newline.
    header_line: String,
    /// Record lines taken: counted in debug builds only, as [`super::write_spooled`] counts
    /// them.
    counted: u64,
    /// Whether the last piece taken ended with a newline (or none was taken).
    whole_lines: bool,
}

impl StreamedHash {
    /// Starts after `header`, which the file holds first: [`StreamedHash::header_line`]
    /// and a newline.
    pub fn start(header: &Header) -> StreamedHash {
        let header_line = header.to_line();
        let hasher = header_hashed(&header_line);
        StreamedHash { hasher, header_line, counted: 0, whole_lines: true }
    }

    /// The expected header's line, without its newline.
    pub fn header_line(&self) -> &str {
        &self.header_line
    }

    /// Record lines, each with its newline, as one piece (a piece may end inside a line
    /// that the next piece completes).
    pub fn lines(&mut self, lines: &[u8]) {
        let Some(&last) = lines.last() else { return };
        self.hasher.update(lines);
        if cfg!(debug_assertions) {
            self.counted += newlines(lines);
        }
        self.whole_lines = last == b'\n';
    }

    /// If `header`, the run's own, writes as the header this started after: the end
    /// record's line (with its newline), which the file takes after the record lines, and
    /// the trace hash (the same as [`super::write_spooled`]'s). `None` if the header is
    /// another: the lines are then written again after the run's header.
    ///
    /// `records` is how many record lines were taken, as the run counted them; lines cut
    /// short are refused, and so is another count in debug builds (which count them
    /// again).
    pub fn finish(
        self,
        header: &Header,
        records: u64,
    ) -> std::io::Result<Option<(String, String)>> {
        if !self.whole_lines {
            return Err(std::io::Error::other("the spool's last line has no newline"));
        }
        if cfg!(debug_assertions) && self.counted != records {
            let problem =
                format!("the spool holds {} records, not the run's {records}", self.counted);
            return Err(std::io::Error::other(problem));
        }
        if header.to_line() != self.header_line {
            return Ok(None);
        }
        Ok(Some(end_line(self.hasher, records)))
    }
}
