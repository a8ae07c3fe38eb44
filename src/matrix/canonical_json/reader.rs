//! [`Reader`]: a large JSON text read a piece at a time, with [`parse`](super::parse)'s
//! checks and errors (`mxsim resolve` reads its input's events one by one with it), and
//! [`Windowed`], which runs a [`Reader`] over a stream held only a window at a time.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;

use serde_json::Value;

use super::{DEPTH_MAX, Numbers, ParseError, Parser};

/// Reads one large JSON text a piece at a time: the members of an object and the items of
/// an array one after another, each as a [`Value`] or skipped, so that a file of a hundred
/// thousand events never exists as one value tree. Every value it returns is checked as
/// [`parse`](super::parse) checks it; over a whole text (`Reader::new`) with errors at the
/// same line and column. `mxsim resolve` runs it through [`Windowed`]; a homeserver finds
/// the PDUs of a `/send` body with it (`wire::Request::from_http_knowing`).
///
/// [`Reader::skip_value`] only finds where a value ends, by matching quotes and brackets:
/// a caller that skips a value to read something after it comes back (`Reader::seek`, or
/// a second [`Windowed`] stream), reads it in full, and checks that the full read ends
/// where skipping did (the two agree on every valid text; on an invalid one, the full read
/// or that check fails).
pub struct Reader<'a> {
    parser: Parser<'a>,
    /// One entry per object or array opened and not yet closed: whether an item has been
    /// read in it, and for an object how its keys so far are kept.
    open: Vec<Open>,
    /// The keys of the open objects, innermost last.
    keys: KeyStack,
}

/// The keys the open objects have read, one after another in one text, so that reading
/// keys allocates nothing once the text and its ends have grown to the largest object
/// read (a `/send` body or answer read as one [`Reader`] costs three allocations whatever
/// its keys). An object opened inside another while that one's last key waits for its
/// value starts after that key and gives its place back when it closes.
#[derive(Default)]
struct KeyStack {
    text: String,
    /// Where each key ends in `text`.
    ends: Vec<usize>,
}

impl Clone for KeyStack {
    fn clone(&self) -> KeyStack {
        KeyStack { text: self.text.clone(), ends: self.ends.clone() }
    }

    /// Into the buffers `self` has ([`Windowed`] keeps a copy before each piece).
    fn clone_from(&mut self, source: &KeyStack) {
        self.text.clone_from(&source.text);
        self.ends.clone_from(&source.ends);
    }
}

/// What a [`KeyStack`] holds room for once it takes its first key: key bytes, and keys.
const KEYS_TEXT_START: usize = 512;
const KEYS_START: usize = 16;

impl KeyStack {
    fn len(&self) -> usize {
        self.ends.len()
    }

    /// Key `i` from the bottom.
    fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }

    fn push(&mut self, key: &str) {
        if self.ends.capacity() == 0 {
            // Room for the keys of a usual `/send` body or answer at once, rather than
            // growing through every size to it.
            self.text.reserve(KEYS_TEXT_START);
            self.ends.reserve(KEYS_START);
        }
        self.text.push_str(key);
        self.ends.push(self.text.len());
    }

    /// Keeps the first `n` keys.
    fn truncate(&mut self, n: usize) {
        self.ends.truncate(n);
        self.text.truncate(self.ends.last().copied().unwrap_or(0));
    }

    fn clear(&mut self) {
        self.ends.clear();
        self.text.clear();
    }
}

/// How an open object keeps the keys it has read. While they come in increasing order, as
/// canonical JSON writes them, they stay on the reader's [`KeyStack`]: a key greater than
/// the last repeats none, so it is checked with one comparison. From the first key out of
/// order, a set: a text of many keys out of order is then still checked in `n log n`.
#[derive(Clone)]
enum Keys {
    Sorted,
    Set(BTreeSet<String>),
}

/// A place in the text a [`Reader`] reads: see [`Reader::mark`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    pos: usize,
    depth: u32,
}

#[derive(Clone)]
struct Open {
    started: bool,
    /// `None` for an array.
    keys: Option<Keys>,
    /// How many keys the reader's [`KeyStack`] held when this opened: the object's own
    /// start there.
    from: usize,
    /// Where the last key returned starts, that key being the top of the [`KeyStack`]: it
    /// is checked against the object's other keys once its value has been read, as
    /// [`parse`](super::parse) does, so that an error inside the value comes first.
    pending: Option<usize>,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8], numbers: Numbers) -> Reader<'a> {
        Reader { parser: Parser::new(bytes, numbers), open: Vec::new(), keys: KeyStack::default() }
    }

    /// The byte offset in the text of the reader's position: after a [`Reader::next_item`]
    /// that returned `true`, where the item starts; after [`Reader::skip_value`], where the
    /// skipped value ended.
    pub fn offset(&self) -> usize {
        self.parser.pos
    }

    /// Where the next value to read starts, for [`Reader::seek`].
    pub fn mark(&self) -> Mark {
        Mark { pos: self.parser.pos, depth: self.parser.depth }
    }

    /// Goes back to a place returned by [`Reader::mark`] in the same text, to read the
    /// value there on its own: the objects and arrays around it still count against the
    /// nesting limit, but none is open to this reader.
    pub fn seek(&mut self, mark: Mark) {
        self.parser.pos = mark.pos;
        self.parser.depth = mark.depth;
        self.open.clear();
        self.keys.clear();
    }

    /// An error at the reader's position, in the form of [`parse`](super::parse)'s errors.
    pub fn error(&self, problem: impl fmt::Display) -> ParseError {
        self.parser.error(problem)
    }

    /// Opens the object that starts at the position, after whitespace. `Ok(false)`, with
    /// nothing read, when the next value is not an object.
    pub fn begin_object(&mut self) -> Result<bool, ParseError> {
        self.begin(b'{', Some(Keys::Sorted))
    }

    /// Opens the array that starts at the position, after whitespace. `Ok(false)`, with
    /// nothing read, when the next value is not an array.
    pub fn begin_array(&mut self) -> Result<bool, ParseError> {
        self.begin(b'[', None)
    }

    fn begin(&mut self, open: u8, keys: Option<Keys>) -> Result<bool, ParseError> {
        self.parser.skip_whitespace();
        if self.parser.peek() != Some(open) {
            return Ok(false);
        }
        if self.parser.depth >= DEPTH_MAX {
            return Err(self.error(format!("nesting deeper than {DEPTH_MAX} levels")));
        }
        self.parser.depth += 1;
        self.parser.pos += 1;
        self.open.push(Open { started: false, keys, from: self.keys.len(), pending: None });
        Ok(true)
    }

    /// Moves past the `,` before the next item of the innermost open object or array, or
    /// past its closing bracket (closing it): `Ok(true)` when another item follows.
    fn next(&mut self, close: u8, what: &str) -> Result<bool, ParseError> {
        let parser = &mut self.parser;
        parser.skip_whitespace();
        if parser.peek() == Some(close) {
            parser.pos += 1;
            parser.depth = parser.depth.saturating_sub(1);
            if let Some(closed) = self.open.pop() {
                self.keys.truncate(closed.from);
            }
            return Ok(false);
        }
        let open = self.open.last_mut().expect("an object or array is open");
        if open.started {
            if parser.peek() != Some(b',') {
                let close = close as char;
                return Err(parser.error(format!("expected ',' or '{close}' in {what}")));
            }
            parser.pos += 1;
            parser.skip_whitespace();
        }
        open.started = true;
        Ok(true)
    }

    /// The key of the next member of the innermost open object, positioned at its value
    /// (which the caller reads or skips before asking for the next key); `None` at the
    /// object's end, which closes it. A key the object already had is an error, reported
    /// when the next key is asked for, after its value, where [`parse`](super::parse) reports it.
    pub fn next_key(&mut self) -> Result<Option<String>, ParseError> {
        Ok(self.next_key_str()?.map(str::to_owned))
    }

    /// [`Reader::next_key`] without a copy of the key for the caller: the reader keeps
    /// the key until the next one is asked for (to check it against the others then), and
    /// lends it.
    pub fn next_key_str(&mut self) -> Result<Option<&str>, ParseError> {
        let open = self.open.last_mut().filter(|open| open.keys.is_some());
        let open = open.expect("next_key needs an open object");
        if let Some(key_pos) = open.pending.take() {
            let stack = &mut self.keys;
            let top = stack.len() - 1;
            let keys = open.keys.as_mut().expect("an object");
            if let Keys::Sorted = keys {
                if top == open.from || stack.get(top - 1) < stack.get(top) {
                    // In order: it stays on the stack.
                } else {
                    *keys = Keys::Set((open.from..top).map(|i| stack.get(i).to_owned()).collect());
                }
            }
            if let Keys::Set(set) = keys {
                let key = stack.get(top);
                if set.contains(key) {
                    return Err(self
                        .parser
                        .error_at(key_pos, format!("duplicate object key {key:?}")));
                }
                set.insert(key.to_owned());
                // A set keeps its object's keys: the stack only the one waiting.
                stack.truncate(open.from);
            }
        }
        if !self.next(b'}', "an object")? {
            return Ok(None);
        }
        let (key, key_pos) = self.parser.key_text()?;
        self.keys.push(&key);
        let open = self.open.last_mut().expect("checked");
        open.pending = Some(key_pos);
        Ok(Some(self.keys.get(self.keys.len() - 1)))
    }

    /// Positions the reader at the next item of the innermost open array: `Ok(false)` at
    /// the array's end, which closes it.
    pub fn next_item(&mut self) -> Result<bool, ParseError> {
        assert!(
            self.open.last().is_some_and(|open| open.keys.is_none()),
            "next_item needs an open array"
        );
        self.next(b']', "an array")
    }

    /// The next item of the innermost open array, read in full; `None` at the array's end,
    /// which closes it.
    pub fn next_value(&mut self) -> Result<Option<Value>, ParseError> {
        match self.next_item()? {
            true => self.value().map(Some),
            false => Ok(None),
        }
    }

    /// Moves past the next item of the innermost open array without building it (see
    /// [`Reader::skip_value`]): `Ok(false)` at the array's end, which closes it.
    pub fn skip_item(&mut self) -> Result<bool, ParseError> {
        let more = self.next_item()?;
        if more {
            self.skip_value()?;
        }
        Ok(more)
    }

    /// Reads the value at the position in full.
    pub fn value(&mut self) -> Result<Value, ParseError> {
        self.parser.skip_whitespace();
        self.parser.value()
    }

    /// Moves past the value at the position without building or checking it: in valid
    /// JSON it ends where [`Reader::value`] would, in invalid JSON anywhere (see
    /// [`Reader`]).
    pub fn skip_value(&mut self) -> Result<(), ParseError> {
        self.parser.skip_whitespace();
        self.parser.skip()
    }

    /// Checks that nothing but whitespace follows the top-level value, which must have
    /// been read or closed.
    pub fn check_end(&mut self) -> Result<(), ParseError> {
        assert!(self.open.is_empty(), "check_end with an object or array still open");
        self.parser.skip_whitespace();
        if self.parser.pos != self.parser.bytes.len() {
            return Err(self.parser.error("unexpected data after the JSON value"));
        }
        Ok(())
    }
}

/// Where a [`Reader`] stands, to go on from there over another slice of the same text.
struct ReaderState {
    pos: usize,
    depth: u32,
    open: Vec<Open>,
    keys: KeyStack,
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
/// [`parse`](super::parse) accepts it; but errors are not placed (line and column 0:
/// placing one reads the window up to it, and a piece fails at every window's end), so a
/// caller that shows errors reads the text whole to place them.
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
    /// `state.open` and `state.keys` as they were before the piece being read, to read it
    /// again.
    open_before: Vec<Open>,
    keys_before: KeyStack,
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

    fn with_window(source: R, numbers: Numbers, depth: u32, window: usize) -> Windowed<R> {
        Windowed {
            source,
            numbers,
            text: String::new(),
            offset: 0,
            raw: Vec::new(),
            ended: false,
            broken: None,
            state: ReaderState { pos: 0, depth, open: Vec::new(), keys: KeyStack::default() },
            open_before: Vec::new(),
            keys_before: KeyStack::default(),
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
            self.open_before.clone_from(&self.state.open);
            self.keys_before.clone_from(&self.state.keys);
            let open = std::mem::take(&mut self.state.open);
            let keys = std::mem::take(&mut self.state.keys);
            let mut reader = Reader { parser, open, keys };
            let result = read(&mut reader);
            let whole = self.ended && self.raw.is_empty();
            let Reader { parser, open, keys } = reader;
            match result {
                Ok(value) if whole || parser.pos < text.len() => {
                    self.state = ReaderState { pos: parser.pos, depth: parser.depth, open, keys };
                    return Ok(value);
                }
                Err(error) if whole => return Err(WindowError::Syntax(error)),
                _ => {
                    self.state.open = open;
                    self.state.open.clone_from(&self.open_before);
                    self.state.keys = keys;
                    self.state.keys.clone_from(&self.keys_before);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::canonical_json::{Object, parse};

    /// Reads `text`'s top-level object as `mxsim resolve` reads its input: member by
    /// member, an array member item by item. With `skip_arrays`, each array member is first
    /// skipped and then read again from its mark.
    fn read_in_pieces(text: &str, skip_arrays: bool) -> Result<Value, ParseError> {
        let mut reader = Reader::new(text.as_bytes(), Numbers::IntegerLiterals);
        if !reader.begin_object()? {
            return Err(reader.error("not an object"));
        }
        let mut members = Object::new();
        let mut skipped = Vec::new();
        while let Some(key) = reader.next_key()? {
            let mark = reader.mark();
            if skip_arrays && text.as_bytes()[mark.pos..].trim_ascii_start().starts_with(b"[") {
                reader.skip_value()?;
                skipped.push((key, mark, reader.mark()));
            } else {
                members.insert(key, items_or_value(&mut reader)?);
            }
        }
        reader.check_end()?;
        for (key, mark, end) in skipped {
            reader.seek(mark);
            members.insert(key, items_or_value(&mut reader)?);
            assert_eq!(reader.mark().pos, end.pos, "a full read ends where skipping did");
        }
        Ok(Value::Object(members))
    }

    fn items_or_value(reader: &mut Reader<'_>) -> Result<Value, ParseError> {
        if !reader.begin_array()? {
            return reader.value();
        }
        let mut items = Vec::new();
        while reader.next_item()? {
            items.push(reader.value()?);
        }
        Ok(Value::Array(items))
    }

    /// A stream that hands out at most `step` bytes per read.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(out.len()).min(self.bytes.len());
            out[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    /// Reads `text`'s top-level object as `mxsim resolve` reads its input, from a window
    /// of `window` bytes filled `step` bytes per read: member by member, an array member
    /// item by item (each item first skipped, then read again from a second stream, as
    /// the events are).
    fn read_windowed(text: &str, window: usize, step: usize) -> Result<Value, WindowError> {
        let lit = Numbers::IntegerLiterals;
        let open = |from: usize| Trickle { bytes: &text.as_bytes()[from..], step };
        let mut stream = Windowed::with_window(open(0), lit, 0, window);
        if !stream.piece(|r| r.begin_object())? {
            return Err(WindowError::Syntax(ParseError {
                line: 0,
                column: 0,
                problem: "not an object".to_owned(),
            }));
        }
        let mut members = Object::new();
        while let Some(key) = stream.piece(|r| r.next_key())? {
            let start = stream.position();
            if !stream.piece(|r| r.begin_array())? {
                members.insert(key, stream.piece(|r| r.value())?);
                continue;
            }
            while stream.piece(|r| r.skip_item())? {}
            let end = stream.position();
            let mut again = Windowed::with_window(open(start as usize), lit, 1, window);
            assert!(again.piece(|r| r.begin_array())?);
            let mut items = Vec::new();
            while let Some(item) = again.piece(|r| r.next_value())? {
                items.push(item);
            }
            assert_eq!(start + again.position(), end, "a full read ends where skipping did");
            members.insert(key, Value::Array(items));
        }
        stream.piece(|r| r.check_end())?;
        Ok(Value::Object(members))
    }

    /// `{"a":[[…]]}` with `n` arrays nested in the object.
    fn deep(n: usize) -> String {
        format!("{{\"a\":{}{}}}", "[".repeat(n), "]".repeat(n))
    }

    /// Texts `parse` accepts, for the readers to read as it does.
    fn valid_texts() -> Vec<String> {
        vec![
            r#"{}"#.to_owned(),
            r#" { "b" : [ 1 , {"x":[2]} ] , "a" : "s\"]}" , "c":[] } "#.to_owned(),
            "{\n\"events\": [{\"k\": \"v\"},\n {\"k\": [true, null, -0]}],\n\"v\": \"12\"}"
                .to_owned(),
            deep(DEPTH_MAX as usize - 1),
            // Keys out of order, after keys in order.
            r#"{"a":1,"d":2,"c":3,"b":{"z":1,"y":2},"e":4}"#.to_owned(),
        ]
    }

    /// Texts `parse` refuses, in the syntax or in a value, for the readers to refuse.
    fn invalid_texts() -> Vec<String> {
        vec![
            r#"{"a":[1,2,],"b":1}"#.to_owned(),
            r#"{"a":[1 2]}"#.to_owned(),
            r#"{"a":1 "b":2}"#.to_owned(),
            r#"{"a":1,}"#.to_owned(),
            r#"{"a":1,"a":2}"#.to_owned(),
            r#"{"a":1,"a":[}"#.to_owned(),
            r#"{"a":[1],"b":2,"a":3}"#.to_owned(),
            // A repeated key that is not the last one: in order up to it, then out of it.
            r#"{"a":1,"b":2,"c":3,"b":4}"#.to_owned(),
            r#"{"c":1,"b":2,"a":3,"b":4}"#.to_owned(),
            r#"{"b":1,"a":2,"c":3,"a":4}"#.to_owned(),
            r#"{"a":[1]} x"#.to_owned(),
            r#"{"a":["\u12"]}"#.to_owned(),
            r#"{"a":["\q"]}"#.to_owned(),
            r#"{"a":["x]}"#.to_owned(),
            r#"{"a":[tru]}"#.to_owned(),
            r#"{"a":[1.5]}"#.to_owned(),
            r#"{"a":[9007199254740992]}"#.to_owned(),
            "{\"a\":[\"\u{1}\"]}".to_owned(),
            r#"{"a":[1], 3:4}"#.to_owned(),
            r#"{"a" [1]}"#.to_owned(),
            r#"{"a":[1]"#.to_owned(),
            r#"{"a":["#.to_owned(),
            deep(DEPTH_MAX as usize),
        ]
    }

    #[test]
    fn a_text_read_in_pieces_reads_as_parse_reads_it() {
        let lit = Numbers::IntegerLiterals;
        let valid = valid_texts();
        for text in &valid {
            let whole = parse(text.as_bytes(), lit).unwrap();
            for skip in [false, true] {
                assert_eq!(read_in_pieces(text, skip).as_ref(), Ok(&whole), "{text} skip {skip}");
            }
        }
        // Errors at the same place with the same words, in or out of a skipped array,
        // whether the problem is in the syntax or in a value.
        let invalid = invalid_texts();
        for text in &invalid {
            let whole = parse(text.as_bytes(), lit).unwrap_err();
            assert_eq!(read_in_pieces(text, false), Err(whole.clone()), "{text}");
        }
        // Skipping matches quotes and brackets only, and every value skipped is read in
        // full afterwards, so the same texts are refused (a problem inside a skipped value
        // is reported after the rest of the object has been read).
        for text in &invalid {
            assert!(read_in_pieces(text, true).is_err(), "{text}");
        }
        let skipped_bad_escape = read_in_pieces(r#"{"a":["\q"],"b":1}"#, true).unwrap_err();
        assert_eq!(skipped_bad_escape, parse(br#"{"a":["\q"],"b":1}"#, lit).unwrap_err());
    }

    #[test]
    fn a_text_read_through_a_window_reads_as_parse_reads_it() {
        let lit = Numbers::IntegerLiterals;
        // Besides the texts of `a_text_read_in_pieces_reads_as_parse_reads_it`: characters of
        // two, three and four bytes, so that windows end inside them; numbers, literals and
        // whitespace that windows cut short; a member longer than the window.
        let mut valid = valid_texts();
        valid.push(
            "{\n\"events\": [{\"k\": \"vé\"},\n {\"k\": [true, null, -0, 12345678]}],\n\"v\": \"12\"}"
                .to_owned(),
        );
        valid.push(
            r#"{"e":["€𝄞é€","\u00e9",false,-90071992547409],"z":{"long":"0123456789abcdefghij"}}"#
                .to_owned(),
        );
        for text in &valid {
            let whole = parse(text.as_bytes(), lit).unwrap();
            for window in 1..=9 {
                for step in [1, 2, 3, 64] {
                    let read = read_windowed(text, window, step);
                    assert_eq!(read.as_ref(), Ok(&whole), "{text} window {window} step {step}");
                }
            }
        }
        let mut invalid: Vec<Vec<u8>> =
            invalid_texts().into_iter().map(String::into_bytes).collect();
        for cut_short in [r#"{"a":[1]} ]"#, r#"{"a":[12"#, r#"{"a":[1],"b":[2,3]"#] {
            invalid.push(cut_short.as_bytes().to_vec());
        }
        // Not UTF-8: a stray continuation byte, a character cut by the end of the text.
        invalid.push(b"{\"a\":[\"\x80\"]}".to_vec());
        invalid.push(b"{\"a\":[1]}\xe2\x82".to_vec());
        invalid.push(b"{\"a\":[\"\xe2\x82".to_vec());
        for bytes in &invalid {
            assert!(parse(bytes, lit).is_err());
            let text = String::from_utf8_lossy(bytes);
            for window in 1..=9 {
                for step in [1, 3, 64] {
                    let lossless = std::str::from_utf8(bytes).is_ok();
                    let read = if lossless {
                        read_windowed(&text, window, step).map(drop)
                    } else {
                        read_bytes_windowed(bytes, window, step)
                    };
                    assert!(read.is_err(), "{text} window {window} step {step}");
                }
            }
        }
    }

    /// The value at the reader's position, every object and array in it opened by the
    /// reader itself (so that objects nest in objects whose last key waits for its value).
    fn read_nested(reader: &mut Reader<'_>) -> Result<Value, ParseError> {
        if reader.begin_object()? {
            let mut members = Object::new();
            while let Some(key) = reader.next_key_str()? {
                let key = key.to_owned();
                let value = read_nested(reader)?;
                members.insert(key, value);
            }
            return Ok(Value::Object(members));
        }
        if reader.begin_array()? {
            let mut items = Vec::new();
            while reader.next_item()? {
                items.push(read_nested(reader)?);
            }
            return Ok(Value::Array(items));
        }
        reader.value()
    }

    /// [`read_nested`] through a window: one piece per object or array opened, key, item
    /// and plain value.
    fn read_nested_windowed<R: Read>(stream: &mut Windowed<R>) -> Result<Value, WindowError> {
        if stream.piece(|r| r.begin_object())? {
            let mut members = Object::new();
            while let Some(key) = stream.piece(|r| r.next_key())? {
                let value = read_nested_windowed(stream)?;
                members.insert(key, value);
            }
            return Ok(Value::Object(members));
        }
        if stream.piece(|r| r.begin_array())? {
            let mut items = Vec::new();
            while stream.piece(|r| r.next_item())? {
                items.push(read_nested_windowed(stream)?);
            }
            return Ok(Value::Array(items));
        }
        stream.piece(|r| r.value())
    }

    #[test]
    fn objects_opened_inside_objects_keep_their_own_keys() {
        let lit = Numbers::IntegerLiterals;
        let mut texts: Vec<String> = valid_texts();
        texts.extend(invalid_texts());
        for text in [
            r#"{"a":{"a":1,"b":{"a":{}}},"b":[{"b":1,"a":2},{"a":1}],"c":{"c":{"c":3}}}"#,
            // Keys equal to the key whose value holds them, at every depth.
            r#"{"k":{"k":{"k":1}},"l":2}"#,
            // Duplicates inside a nested object, in and out of order.
            r#"{"a":{"x":1,"x":2},"b":3}"#,
            r#"{"a":{"y":1,"x":2,"y":3},"b":3}"#,
            r#"{"a":[{"p":1},{"q":1,"q":2}]}"#,
            // A duplicate after a nested object closed, in and out of order.
            r#"{"a":{"b":1,"c":2},"a":3}"#,
            r#"{"c":{"b":1,"a":2},"b":{"z":{}},"c":3}"#,
            r#"{"c":{"b":1,"a":2},"b":{"z":{}},"a":3}"#,
            // Escaped keys: equal to a plain one once decoded.
            r#"{"a":1,"a":2}"#,
            r#"{"a"b":{"
":1,"
":2}}"#,
            r#"{"é":{"é":1},"é":2}"#,
            // An error inside a nested object's value comes before its duplicate.
            r#"{"a":{"x":1,"x":[1,]}}"#,
        ] {
            texts.push(text.to_owned());
        }
        for text in &texts {
            let whole = parse(text.as_bytes(), lit);
            let mut reader = Reader::new(text.as_bytes(), lit);
            let read = read_nested(&mut reader).and_then(|value| {
                reader.check_end()?;
                Ok(value)
            });
            assert_eq!(read, whole, "{text}");
            for window in [1, 2, 5, 64] {
                let source = Trickle { bytes: text.as_bytes(), step: 3 };
                let mut stream = Windowed::with_window(source, lit, 0, window);
                let read = read_nested_windowed(&mut stream).and_then(|value| {
                    stream.piece(|r| r.check_end())?;
                    Ok(value)
                });
                match &whole {
                    Ok(value) => assert_eq!(read.as_ref(), Ok(value), "{text} window {window}"),
                    // Unplaced: the same words at line and column 0.
                    Err(error) => match read {
                        Err(WindowError::Syntax(e)) => assert_eq!(e.problem, error.problem),
                        other => panic!("{text} window {window}: {other:?}"),
                    },
                }
            }
        }
    }

    /// [`read_windowed`]'s first pass on bytes that need not be UTF-8.
    fn read_bytes_windowed(bytes: &[u8], window: usize, step: usize) -> Result<(), WindowError> {
        let lit = Numbers::IntegerLiterals;
        let mut stream = Windowed::with_window(Trickle { bytes, step }, lit, 0, window);
        assert!(stream.piece(|r| r.begin_object())?);
        while stream.piece(|r| r.next_key())?.is_some() {
            stream.piece(|r| r.value())?;
        }
        stream.piece(|r| r.check_end())
    }
}
