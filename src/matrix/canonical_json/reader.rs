//! [`Reader`]: a large JSON text read a piece at a time, with [`parse`](super::parse)'s
//! checks and errors (`mxsim resolve` reads its input's events one by one with it).

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use super::{DEPTH_MAX, Numbers, ParseError, Parser};

/// Reads one large JSON text a piece at a time: the members of an object and the items of
/// an array one after another, each as a [`Value`] or skipped, so that a file of a hundred
/// thousand events never exists as one value tree. Every value it returns is checked as
/// [`parse`](super::parse) checks it, with errors at the same line and column.
///
/// [`Reader::skip_value`] only finds where a value ends, by matching quotes and brackets:
/// a caller that skips a value to read something after it comes back with
/// [`Reader::seek`], reads it in full, and checks that the full read ends where skipping
/// did (the two agree on every valid text; on an invalid one, the full read or that check
/// fails).
pub struct Reader<'a> {
    parser: Parser<'a>,
    /// One entry per object or array opened and not yet closed: whether an item has been
    /// read in it, and for an object the keys seen so far.
    open: Vec<Open>,
}

/// A place in the text a [`Reader`] reads: see [`Reader::mark`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    pos: usize,
    depth: u32,
}

struct Open {
    started: bool,
    keys: Option<BTreeSet<String>>,
    /// The last key returned and where it starts: checked against `keys` once its value
    /// has been read, as [`parse`](super::parse) does, so that an error inside the value comes first.
    pending: Option<(String, usize)>,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8], numbers: Numbers) -> Reader<'a> {
        Reader { parser: Parser::new(bytes, numbers), open: Vec::new() }
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
    }

    /// An error at the reader's position, in the form of [`parse`](super::parse)'s errors.
    pub fn error(&self, problem: impl fmt::Display) -> ParseError {
        self.parser.error(problem)
    }

    /// Opens the object that starts at the position, after whitespace. `Ok(false)`, with
    /// nothing read, when the next value is not an object.
    pub fn begin_object(&mut self) -> Result<bool, ParseError> {
        self.begin(b'{', Some(BTreeSet::new()))
    }

    /// Opens the array that starts at the position, after whitespace. `Ok(false)`, with
    /// nothing read, when the next value is not an array.
    pub fn begin_array(&mut self) -> Result<bool, ParseError> {
        self.begin(b'[', None)
    }

    fn begin(&mut self, open: u8, keys: Option<BTreeSet<String>>) -> Result<bool, ParseError> {
        self.parser.skip_whitespace();
        if self.parser.peek() != Some(open) {
            return Ok(false);
        }
        if self.parser.depth >= DEPTH_MAX {
            return Err(self.error(format!("nesting deeper than {DEPTH_MAX} levels")));
        }
        self.parser.depth += 1;
        self.parser.pos += 1;
        self.open.push(Open { started: false, keys, pending: None });
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
            self.open.pop();
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
        let open = self.open.last_mut().filter(|open| open.keys.is_some());
        let open = open.expect("next_key needs an open object");
        if let Some((key, key_pos)) = open.pending.take() {
            let keys = open.keys.as_mut().expect("an object");
            if keys.contains(&key) {
                return Err(self.parser.error_at(key_pos, format!("duplicate object key {key:?}")));
            }
            keys.insert(key);
        }
        if !self.next(b'}', "an object")? {
            return Ok(None);
        }
        let (key, key_pos) = self.parser.key()?;
        let open = self.open.last_mut().expect("checked");
        open.pending = Some((key.clone(), key_pos));
        Ok(Some(key))
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

    #[test]
    fn a_text_read_in_pieces_reads_as_parse_reads_it() {
        let lit = Numbers::IntegerLiterals;
        let deep = |n: usize| format!("{{\"a\":{}{}}}", "[".repeat(n), "]".repeat(n));
        let valid = [
            r#"{}"#.to_owned(),
            r#" { "b" : [ 1 , {"x":[2]} ] , "a" : "s\"]}" , "c":[] } "#.to_owned(),
            "{\n\"events\": [{\"k\": \"v\"},\n {\"k\": [true, null, -0]}],\n\"v\": \"12\"}"
                .to_owned(),
            deep(DEPTH_MAX as usize - 1),
        ];
        for text in &valid {
            let whole = parse(text.as_bytes(), lit).unwrap();
            for skip in [false, true] {
                assert_eq!(read_in_pieces(text, skip).as_ref(), Ok(&whole), "{text} skip {skip}");
            }
        }
        // Errors at the same place with the same words, in or out of a skipped array,
        // whether the problem is in the syntax or in a value.
        let invalid = [
            r#"{"a":[1,2,],"b":1}"#.to_owned(),
            r#"{"a":[1 2]}"#.to_owned(),
            r#"{"a":1 "b":2}"#.to_owned(),
            r#"{"a":1,}"#.to_owned(),
            r#"{"a":1,"a":2}"#.to_owned(),
            r#"{"a":1,"a":[}"#.to_owned(),
            r#"{"a":[1],"b":2,"a":3}"#.to_owned(),
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
        ];
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
}
