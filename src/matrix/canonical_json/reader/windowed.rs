//! [`Windowed`]: a [`Reader`] over a stream held only a window at a time.

use std::io::Read;

use super::super::{Numbers, ParseError, Parser};
use super::{Reader, Stacks};

/// Where a [`Reader`] stands, to go on from there over another slice of the same text.
struct ReaderState {
    pos: usize,
    depth: u32,
    stacks: Stacks,
}

/// How much of a stream [`Windowed`] holds at first; a piece longer than half of it doubles it.
const WINDOW: usize = 1 << 18;

/// A [`Reader`] over a stream of which only a window is held, so that reading a text of
/// hundreds of megabytes does not hold it whole (`mxsim resolve` reads its input file so).
///
/// Reading goes in pieces ([`Windowed::piece`]): a key, an item, a value. Each piece runs on
/// a [`Reader`] over the window, from where the last one stopped; a piece that does not
/// complete within the window runs again over a window that starts where the piece starts
/// and holds more of the stream. So a piece must do nothing but read: it may run more than
/// once. A piece is complete when it succeeds and the window holds a byte after where it
/// stopped (a number at the window's end might go on), or when the window holds the rest of
/// the stream; it fails only once the window holds the rest of the stream.
///
/// The checks are [`Reader`]'s, so a text read in pieces is accepted exactly when
/// [`parse`](crate::matrix::canonical_json::parse) accepts it; but errors are not placed
/// (line and column 0: placing one reads the window up to it, and a piece fails at every
/// window's end), so a caller that shows errors reads the text whole to place them.
pub struct Windowed<R> {
    source: R,
    numbers: Numbers,
    /// The window: the stream's text from `offset`, as far as it has been read, less
    /// `raw`. (A JSON text is UTF-8: bytes that are not fail the piece that meets them.)
    text: String,
    offset: u64,
    /// Bytes read and not yet text: between reads, the first bytes of a character the
    /// window ends in the middle of (the buffer is kept from one read to the next).
    raw: Vec<u8>,
    /// Whether the stream has nothing after `text` and `raw`.
    ended: bool,
    /// Why the window cannot grow, once a read has failed: the next piece fails with it.
    broken: Option<WindowError>,
    /// Where the reader stands in `text`.
    state: ReaderState,
    /// `state.stacks` as they were before the piece being read, to read it again.
    before: Stacks,
    /// How many bytes the window is filled to.
    capacity: usize,
}

/// Why a piece of a [`Windowed`] text could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// The text is not acceptable JSON (the error's line and column are 0: not placed).
    #[error("{}", .0.problem)]
    Syntax(ParseError),
    /// The text is not UTF-8.
    #[error("not valid UTF-8")]
    Utf8,
    /// Reading the stream failed.
    #[error("cannot read: {0}")]
    Read(String),
}

impl<R: Read> Windowed<R> {
    /// Reads `source` from its start, which lies `depth` objects and arrays deep in the
    /// whole text (they count against the nesting limit; none is open to this reader).
    pub fn new(source: R, numbers: Numbers, depth: u32) -> Windowed<R> {
        Windowed::with_window(source, numbers, depth, WINDOW)
    }

    pub(super) fn with_window(
        source: R,
        numbers: Numbers,
        depth: u32,
        window: usize,
    ) -> Windowed<R> {
        Windowed {
            source,
            numbers,
            text: String::new(),
            offset: 0,
            raw: Vec::new(),
            ended: false,
            broken: None,
            state: ReaderState { pos: 0, depth, stacks: Stacks::default() },
            before: Stacks::default(),
            capacity: window,
        }
    }

    /// Bytes of the stream before where reading stands.
    pub fn position(&self) -> u64 {
        self.offset + self.state.pos as u64
    }

    /// Runs `read` on a [`Reader`] standing where the last piece stopped (see [`Windowed`]).
    pub fn piece<T>(
        &mut self,
        mut read: impl FnMut(&mut Reader<'_>) -> Result<T, ParseError>,
    ) -> Result<T, WindowError> {
        loop {
            let text = self.text.as_str();
            let mut parser = Parser::unplaced(text, self.numbers);
            parser.pos = self.state.pos;
            parser.depth = self.state.depth;
            // The stacks go to the reader and copies stay, to start again from: copied
            // into kept buffers, so that a piece inside an array allocates nothing.
            self.before.clone_from(&self.state.stacks);
            let stacks = std::mem::take(&mut self.state.stacks);
            let mut reader = Reader::with_stacks(parser, stacks);
            let result = read(&mut reader);
            let whole = self.ended && self.raw.is_empty();
            let (pos, depth) = (reader.parser.pos, reader.parser.depth);
            // Taken back before the reader drops, so that it leaves no spare.
            let stacks = reader.take_stacks();
            drop(reader);
            match result {
                Ok(value) if whole || pos < text.len() => {
                    self.state = ReaderState { pos, depth, stacks };
                    return Ok(value);
                }
                Err(error) if whole => return Err(WindowError::Syntax(error)),
                _ => {
                    self.state.stacks = stacks;
                    self.state.stacks.clone_from(&self.before);
                    self.more()?;
                }
            }
        }
    }

    /// Moves the window to start where the reader stands and reads more of the stream into
    /// it, doubling it when the piece that needs more is longer than half of it (so that
    /// every byte is read again a bounded number of times).
    fn more(&mut self) -> Result<(), WindowError> {
        if let Some(broken) = &self.broken {
            return Err(broken.clone());
        }
        if self.ended {
            // Only a cut character is left: the text ends in the middle of it.
            return Err(WindowError::Utf8);
        }
        let start = self.state.pos;
        if (self.text.len() - start) * 2 > self.capacity {
            self.capacity *= 2;
        }
        if !self.text.is_char_boundary(start) {
            // Readers stop only between characters.
            return Err(WindowError::Utf8);
        }
        self.text.drain(..start);
        self.offset += start as u64;
        self.state.pos = 0;
        let want = self.capacity.saturating_sub(self.text.len()).max(1);
        self.raw.reserve(want);
        // `read_to_end` fills the spare capacity without zeroing it first, and reads again
        // after a short read; fewer bytes than asked for means the stream has ended.
        match (&mut self.source).take(want as u64).read_to_end(&mut self.raw) {
            Ok(read) => self.ended = read < want,
            Err(error) => {
                let error = WindowError::Read(error.to_string());
                self.broken = Some(error.clone());
                return Err(error);
            }
        }
        let valid = match std::str::from_utf8(&self.raw) {
            Ok(text) => {
                self.text.push_str(text);
                text.len()
            }
            // A character cut at the window's end waits for the rest of its bytes.
            Err(error) if error.error_len().is_none() => {
                let valid = error.valid_up_to();
                let text = std::str::from_utf8(&self.raw[..valid]).expect("valid up to here");
                self.text.push_str(text);
                valid
            }
            Err(_) => {
                self.broken = Some(WindowError::Utf8);
                return Err(WindowError::Utf8);
            }
        };
        self.raw.drain(..valid);
        Ok(())
    }
}
