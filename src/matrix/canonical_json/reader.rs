//! [`Reader`]: a large JSON text read a piece at a time, with [`parse`](super::parse)'s
//! checks and errors (`mxsim resolve` reads its input's events one by one with it), and
//! [`Windowed`], which runs a [`Reader`] over a stream held only a window at a time.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use super::{DEPTH_MAX, Numbers, ParseError, Parser};

mod windowed;

pub use windowed::{WindowError, Windowed};

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
    /// What is open, kept apart so that the stacks outlive the reader ([`Stacks`]).
    stacks: Stacks,
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

thread_local! {
    /// The stacks of the last [`Reader`] dropped on this thread, emptied, for the next one
    /// to start with: a homeserver reads every `/send` body and answer with a new reader,
    /// and growing each one's stacks anew was three allocations per message.
    static SPARE: RefCell<Stacks> = RefCell::new(Stacks::default());
}

/// A [`Reader`]'s stacks, which outlive it: kept between readers ([`SPARE`]), and by
/// [`Windowed`] between pieces.
#[derive(Default)]
struct Stacks {
    /// One entry per object or array opened and not yet closed: whether an item has been
    /// read in it, and for an object how its keys so far are kept.
    open: Vec<Open>,
    /// The keys of the open objects, innermost last.
    keys: KeyStack,
}

impl Clone for Stacks {
    fn clone(&self) -> Stacks {
        Stacks { open: self.open.clone(), keys: self.keys.clone() }
    }

    /// Into the buffers `self` has.
    fn clone_from(&mut self, source: &Stacks) {
        self.open.clone_from(&source.open);
        self.keys.clone_from(&source.keys);
    }
}

/// The most a spare's stacks may hold room for: a reader that met a text of unusually many
/// or long keys (a large input of `mxsim resolve`) leaves its stacks to be freed.
const SPARE_KEYS_TEXT_MAX: usize = 1 << 16;
const SPARE_KEYS_MAX: usize = 1 << 10;
const SPARE_OPEN_MAX: usize = 256;

impl Stacks {
    /// Whether neither stack holds an allocation (a spare taken, or never grown).
    fn is_unallocated(&self) -> bool {
        self.open.capacity() == 0 && self.keys.ends.capacity() == 0
    }

    fn fits_spare(&self) -> bool {
        self.keys.text.capacity() <= SPARE_KEYS_TEXT_MAX
            && self.keys.ends.capacity() <= SPARE_KEYS_MAX
            && self.open.capacity() <= SPARE_OPEN_MAX
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        let mut stacks = self.take_stacks();
        if stacks.is_unallocated() || !stacks.fits_spare() {
            return;
        }
        stacks.open.clear();
        stacks.keys.truncate(0);
        // A reader dropped while the thread ends finds no spare: its stacks are freed.
        let _ = SPARE.try_with(|spare| {
            if let Ok(mut spare) = spare.try_borrow_mut() {
                if spare.is_unallocated() {
                    *spare = stacks;
                }
            }
        });
    }
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8], numbers: Numbers) -> Reader<'a> {
        let stacks = SPARE
            .try_with(|spare| spare.try_borrow_mut().map(|mut s| std::mem::take(&mut *s)))
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        debug_assert!(stacks.open.is_empty() && stacks.keys.len() == 0, "a spare is emptied");
        Reader::with_stacks(Parser::new(bytes, numbers), stacks)
    }

    fn with_stacks(parser: Parser<'a>, stacks: Stacks) -> Reader<'a> {
        Reader { parser, stacks }
    }

    /// The reader's stacks, taken out (it is left with empty ones).
    fn take_stacks(&mut self) -> Stacks {
        std::mem::take(&mut self.stacks)
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
        self.stacks.open.clear();
        self.stacks.keys.truncate(0);
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
        self.stacks.open.push(Open {
            started: false,
            keys,
            from: self.stacks.keys.len(),
            pending: None,
        });
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
            if let Some(closed) = self.stacks.open.pop() {
                self.stacks.keys.truncate(closed.from);
            }
            return Ok(false);
        }
        let open = self.stacks.open.last_mut().expect("an object or array is open");
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
        let open = self.stacks.open.last_mut().filter(|open| open.keys.is_some());
        let open = open.expect("next_key needs an open object");
        if let Some(key_pos) = open.pending.take() {
            let stack = &mut self.stacks.keys;
            let top = stack.len() - 1;
            let keys = open.keys.as_mut().expect("an object");
            // A key in order stays on the stack; the first out of order moves the object's
            // keys into a set.
            let in_order = top == open.from || stack.get(top - 1) < stack.get(top);
            if matches!(keys, Keys::Sorted) && !in_order {
                *keys = Keys::Set((open.from..top).map(|i| stack.get(i).to_owned()).collect());
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
        self.stacks.keys.push(&key);
        let open = self.stacks.open.last_mut().expect("checked");
        open.pending = Some(key_pos);
        Ok(Some(self.stacks.keys.get(self.stacks.keys.len() - 1)))
    }

    /// Positions the reader at the next item of the innermost open array: `Ok(false)` at
    /// the array's end, which closes it.
    pub fn next_item(&mut self) -> Result<bool, ParseError> {
        assert!(
            self.stacks.open.last().is_some_and(|open| open.keys.is_none()),
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

    /// [`Reader::next_value`], except that of an object item only the members whose key
    /// `keep` takes are built: the others are checked as [`Reader::value`] checks them (the
    /// same texts accepted, the same errors), and left out of the object returned. A key
    /// repeated is refused whether its members are kept or not, as `parse` refuses it.
    pub fn next_value_keeping(
        &mut self,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Option<Value>, ParseError> {
        if !self.next_item()? {
            return Ok(None);
        }
        self.parser.skip_whitespace();
        if self.parser.peek() != Some(b'{') {
            return self.parser.value().map(Some);
        }
        self.parser.nested(|parser| parser.object_keeping(keep)).map(Some)
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

    /// The string at the position, lent from the text where it holds no escape (decoded
    /// otherwise); `Ok(None)`, with nothing read, when the value there is not a string.
    /// Checked as [`Reader::value`] checks a string.
    pub fn string(&mut self) -> Result<Option<Cow<'a, str>>, ParseError> {
        self.parser.skip_whitespace();
        if self.parser.peek() != Some(b'"') {
            return Ok(None);
        }
        self.parser.string_text().map(Some)
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
        assert!(self.stacks.open.is_empty(), "check_end with an object or array still open");
        self.parser.skip_whitespace();
        if self.parser.pos != self.parser.bytes.len() {
            return Err(self.parser.error("unexpected data after the JSON value"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
