//! Scenario errors: every problem points at a position in the TOML text, printed as
//! `FILE:LINE:COLUMN: problem` (lines and columns count from 1; columns count characters).

use std::fmt;
use std::ops::Range;

/// Why a scenario file was refused, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub problem: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.problem)
    }
}

/// Turns byte offsets of one text into positions. Offsets past the end (or inside a
/// character) are clamped, so a bad span from a parser still gives a usable position.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Locator<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl Locator<'_> {
    /// The `(line, column)` of byte `offset`, both counted from 1.
    pub fn position(&self, offset: usize) -> (u64, u64) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |at| at + 1);
        let column = before[line_start..].chars().count() + 1;
        assert!(line >= 1 && column >= 1);
        (line as u64, column as u64)
    }

    /// An error at the start of `span`.
    pub fn error(&self, span: Range<usize>, problem: impl Into<String>) -> ScenarioError {
        let (line, column) = self.position(span.start);
        ScenarioError { file: self.file.to_owned(), line, column, problem: problem.into() }
    }

    /// An error about the file as a whole (line 1, column 1).
    pub fn error_at_top(&self, problem: impl Into<String>) -> ScenarioError {
        self.error(0..0, problem)
    }

    /// The line number of byte `offset`, for messages that name a second position.
    pub fn line_of(&self, offset: usize) -> u64 {
        self.position(offset).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters_from_one() {
        let locator = Locator { file: "f.toml", text: "ab\ncé d\n\nx" };
        assert_eq!(locator.position(0), (1, 1));
        assert_eq!(locator.position(2), (1, 3));
        assert_eq!(locator.position(3), (2, 1));
        // "é" is two bytes: the byte after it is column 3.
        assert_eq!(locator.position(6), (2, 3));
        // Inside "é": clamped back to its start.
        assert_eq!(locator.position(5), (2, 2));
        assert_eq!(locator.position(10), (4, 1));
        assert_eq!(locator.position(1_000), (4, 2));
        let error = locator.error(3..4, "bad");
        assert_eq!(error.to_string(), "f.toml:2:1: bad");
    }
}
