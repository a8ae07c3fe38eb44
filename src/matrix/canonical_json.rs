//! Canonical JSON: a strict parser and the canonical encoder.
//!
//! Spec: appendices, "Canonical JSON" (digest: spec/canonical-json-and-signing.md §1).
//! Values are `serde_json::Value` built with sorted maps (`serde_json` without the
//! `preserve_order` feature keeps object keys in a `BTreeMap`, whose byte order equals the
//! code-point order the spec asks for). Every number in a value that passed [`parse`] or
//! [`check`] is an integer in `[-(2^53)+1, 2^53-1]`.
//!
//! The parser is written here rather than borrowed from `serde_json` because untrusted input
//! needs errors with line and column, a nesting limit, refusal of duplicate keys, and an
//! exact decision on numbers (`-0`, exponents, fractions) that `serde_json` does not expose.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;

use serde_json::{Map, Number, Value};

/// A JSON object with keys in canonical (code-point) order.
pub type Object = Map<String, Value>;

/// Largest integer canonical JSON allows: 2^53 - 1.
pub const INT_MAX: i64 = (1 << 53) - 1;
/// Smallest integer canonical JSON allows: -(2^53) + 1.
pub const INT_MIN: i64 = -INT_MAX;

/// Deepest nesting of arrays and objects the parser accepts.
///
/// [impl] Not a spec number: `serde_json` uses 128 as its recursion limit, and no valid PDU
/// comes close to it.
pub const DEPTH_MAX: u32 = 128;

/// How the parser treats numbers that are not plain integer literals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Numbers {
    /// Only integer literals (`-0` is read as `0`). Anything with a fraction or exponent
    /// is refused. This is what federation input gets: room versions ≥ 6 must strictly
    /// enforce canonical JSON, and a float is not canonical JSON.
    IntegerLiterals,
    /// Also accept literals with a fraction or exponent whose exact value is an integer in
    /// range (`1e10` → `10000000000`, `2.0` → `2`), as the spec's own canonical-JSON example
    /// does. Non-integral values are still refused. Use for normalising hand-written input.
    IntegralValues,
}

/// Why a text is not acceptable JSON, with its 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {problem}")]
pub struct ParseError {
    pub line: u64,
    pub column: u64,
    pub problem: String,
}

/// Why a value built in memory cannot be written as canonical JSON.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct ValueError {
    /// JSON path of the offending value, e.g. `$.content.n`.
    pub path: String,
    pub problem: String,
}

/// Parses `bytes` as one JSON value (with optional surrounding whitespace).
pub fn parse(bytes: &[u8], numbers: Numbers) -> Result<Value, ParseError> {
    let mut parser = Parser::new(bytes, numbers);
    parser.skip_whitespace();
    let value = parser.value()?;
    parser.skip_whitespace();
    if parser.pos != bytes.len() {
        return Err(parser.error("unexpected data after the JSON value"));
    }
    Ok(value)
}

/// Reads one large JSON text a piece at a time: the members of an object and the items of
/// an array one after another, each as a [`Value`] or skipped, so that a file of a hundred
/// thousand events never exists as one value tree. Every value it returns is checked as
/// [`parse`] checks it, with errors at the same line and column.
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
    /// has been read, as [`parse`] does, so that an error inside the value comes first.
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

    /// An error at the reader's position, in the form of [`parse`]'s errors.
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
    /// when the next key is asked for, after its value, where [`parse`] reports it.
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

/// Checks that a value built in memory (or by `serde_json`) is canonical-JSON-representable:
/// every number an integer in range.
pub fn check(value: &Value) -> Result<(), ValueError> {
    let mut path = String::from("$");
    check_at(value, &mut path)
}

fn check_at(value: &Value, path: &mut String) -> Result<(), ValueError> {
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(i) if (INT_MIN..=INT_MAX).contains(&i) => Ok(()),
            Some(_) => Err(value_error(path, "integer out of the range [-(2^53)+1, 2^53-1]")),
            None if n.is_u64() => {
                Err(value_error(path, "integer out of the range [-(2^53)+1, 2^53-1]"))
            }
            None => Err(value_error(path, "floats are not permitted in canonical JSON")),
        },
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{index}]"));
                check_at(item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                push_key(path, key);
                check_at(item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
    }
}

/// Appends `.key` (or `["key"]` when the key is not a plain identifier) to a JSON path.
pub fn push_key(path: &mut String, key: &str) {
    let plain = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if plain {
        path.push('.');
        path.push_str(key);
    } else {
        path.push_str("[\"");
        for c in key.chars() {
            if c == '"' || c == '\\' {
                path.push('\\');
            }
            path.push(c);
        }
        path.push_str("\"]");
    }
}

fn value_error(path: &str, problem: &str) -> ValueError {
    ValueError { path: path.to_owned(), problem: problem.to_owned() }
}

/// Encodes a value as canonical JSON. Fails only if the value holds a number that
/// canonical JSON cannot represent (see [`check`]).
pub fn encode(value: &Value) -> Result<Vec<u8>, ValueError> {
    check(value)?;
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, value);
    Ok(out)
}

/// Checks an object like [`check`] does a value.
pub fn check_object(object: &Object) -> Result<(), ValueError> {
    let mut path = String::from("$");
    for (key, item) in object {
        let len = path.len();
        push_key(&mut path, key);
        check_at(item, &mut path)?;
        path.truncate(len);
    }
    Ok(())
}

/// Encodes an object as canonical JSON (see [`encode`]).
pub fn encode_object(object: &Object) -> Result<Vec<u8>, ValueError> {
    encode_object_without(object, &[])
}

/// Encodes an object as canonical JSON, leaving out the top-level keys in `skip`, without
/// copying the object (hashing and signing skip `signatures`, `unsigned`, `hashes`).
pub fn encode_object_without(object: &Object, skip: &[&str]) -> Result<Vec<u8>, ValueError> {
    check_object(object)?;
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    let mut first = true;
    for (key, item) in object {
        if skip.contains(&key.as_str()) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        write_string(&mut out, key);
        out.push(b':');
        write_value(&mut out, item);
    }
    out.push(b'}');
    Ok(out)
}

/// Encodes a value already known to be valid (it came from [`parse`] or passed [`check`]).
pub(crate) fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            let i = n.as_i64().expect("checked: canonical numbers are i64");
            out.extend_from_slice(i.to_string().as_bytes());
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

pub(crate) fn write_object(out: &mut Vec<u8>, map: &Object) {
    out.push(b'{');
    // `Map` is a BTreeMap here: iteration is in byte order of the keys, which for UTF-8 is
    // code-point order, exactly what canonical JSON requires.
    for (index, (key, item)) in map.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_string(out, key);
        out.push(b':');
        write_value(out, item);
    }
    out.push(b'}');
}

pub(crate) fn write_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (index, &b) in bytes.iter().enumerate() {
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            0x08 => Some(b"\\b"),
            0x09 => Some(b"\\t"),
            0x0a => Some(b"\\n"),
            0x0c => Some(b"\\f"),
            0x0d => Some(b"\\r"),
            _ => None,
        };
        if escape.is_none() && b >= 0x20 {
            continue;
        }
        out.extend_from_slice(&bytes[start..index]);
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        start = index + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Length of the run of bytes at the start of `bytes` that a JSON string copies as they
/// are: up to the first quote, backslash or control character.
fn plain_run(bytes: &[u8]) -> usize {
    // Eight bytes at a time while none of them can end the run (the classic "has a byte
    // equal to / less than" word tricks); the word that holds the end is searched byte
    // by byte. A third of reading a large input was this scan, one byte per step.
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    let mut at = 0;
    for chunk in bytes.chunks_exact(8) {
        let w = u64::from_ne_bytes(chunk.try_into().expect("eight bytes"));
        let quote = has_zero(w ^ (ONES * u64::from(b'"')));
        let backslash = has_zero(w ^ (ONES * u64::from(b'\\')));
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
        if quote | backslash | control != 0 {
            break;
        }
        at += 8;
    }
    at + bytes[at..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .unwrap_or(bytes.len() - at)
}

/// Position of the first `"`, `\\`, `[`, `]`, `{` or `}` in `bytes` at or after `from`.
fn next_quote_backslash_or_bracket(bytes: &[u8], from: usize) -> Option<usize> {
    // Eight bytes at a time, as in `plain_run`; with the words read little-endian, the
    // lowest flagged byte is the first match (higher flags may be false after it). Setting
    // bit 5 of every byte maps `[` and `]` onto `{` and `}`, and no other byte onto them.
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    const CASE: u64 = u64::from_le_bytes([0x20; 8]);
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    let rest = bytes.get(from..)?;
    let mut at = 0;
    for chunk in rest.chunks_exact(8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let folded = w | CASE;
        let found = has_zero(w ^ (ONES * u64::from(b'"')))
            | has_zero(w ^ (ONES * u64::from(b'\\')))
            | has_zero(folded ^ (ONES * u64::from(b'{')))
            | has_zero(folded ^ (ONES * u64::from(b'}')));
        if found != 0 {
            return Some(from + at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    rest[at..].iter().position(|b| b"\"\\[]{}".contains(b)).map(|p| from + at + p)
}

struct Parser<'a> {
    bytes: &'a [u8],
    /// `bytes` as text, when all of it is UTF-8 (checked once, in one pass): a string is
    /// then a slice of it, not checked again.
    text: Option<&'a str>,
    pos: usize,
    numbers: Numbers,
    depth: u32,
}

impl<'a> Parser<'a> {
    fn new(bytes: &'a [u8], numbers: Numbers) -> Parser<'a> {
        let text = std::str::from_utf8(bytes).ok();
        Parser { bytes, text, pos: 0, numbers, depth: 0 }
    }
}

impl Parser<'_> {
    fn error(&self, problem: impl fmt::Display) -> ParseError {
        self.error_at(self.pos, problem)
    }

    fn error_at(&self, pos: usize, problem: impl fmt::Display) -> ParseError {
        let pos = pos.min(self.bytes.len());
        let before = &self.bytes[..pos];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        // Columns count characters, not bytes, so they match what an editor shows.
        let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
        ParseError { line: line as u64, column: column as u64, problem: problem.to_string() }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect_literal(&mut self, literal: &[u8], value: Value) -> Result<Value, ParseError> {
        if self.bytes[self.pos..].starts_with(literal) {
            self.pos += literal.len();
            Ok(value)
        } else {
            Err(self.error("invalid literal (expected true, false or null)"))
        }
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        match self.peek() {
            None => Err(self.error("unexpected end of input")),
            Some(b'{') => self.nested(Self::object),
            Some(b'[') => self.nested(Self::array),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b't') => self.expect_literal(b"true", Value::Bool(true)),
            Some(b'f') => self.expect_literal(b"false", Value::Bool(false)),
            Some(b'n') => self.expect_literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(other) => Err(self.error(format!("unexpected character {:?}", other as char))),
        }
    }

    fn nested(
        &mut self,
        inner: fn(&mut Self) -> Result<Value, ParseError>,
    ) -> Result<Value, ParseError> {
        if self.depth >= DEPTH_MAX {
            return Err(self.error(format!("nesting deeper than {DEPTH_MAX} levels")));
        }
        self.depth += 1;
        let result = inner(self);
        self.depth -= 1;
        result
    }

    fn object(&mut self) -> Result<Value, ParseError> {
        assert_eq!(self.peek(), Some(b'{'));
        self.pos += 1;
        // Members are kept in a list while their keys arrive in strictly increasing order,
        // as canonical JSON writes them, and the map is then built from the sorted list in
        // one pass: inserting one key at a time searched the map twice per member (for a
        // duplicate, then to insert) and was a tenth of reading a large input. The first
        // key out of order moves the members into a map, and each later key is checked
        // against it as it comes, so a duplicate is reported at the same place either way.
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(Object::new()));
        }
        // Room for a PDU's top-level members at once: growing the list member by member
        // reallocated it three times for every event read.
        let mut sorted: Vec<(String, Value)> = Vec::with_capacity(16);
        let mut map: Option<Object> = None;
        loop {
            self.skip_whitespace();
            let (key, key_pos) = self.key()?;
            let item = self.value()?;
            if map.is_none() && sorted.last().is_some_and(|(last, _)| *last >= key) {
                map = Some(std::mem::take(&mut sorted).into_iter().collect());
            }
            match &mut map {
                None => sorted.push((key, item)),
                Some(map) => {
                    if map.contains_key(&key) {
                        return Err(self.error_at(key_pos, format!("duplicate object key {key:?}")));
                    }
                    map.insert(key, item);
                }
            }
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    // Collecting sorted, distinct keys builds the tree in bulk.
                    return Ok(Value::Object(map.unwrap_or_else(|| sorted.into_iter().collect())));
                }
                _ => return Err(self.error("expected ',' or '}' in an object")),
            }
        }
    }

    /// Moves past one value by matching quotes and brackets only, building and checking
    /// nothing else: a value of valid JSON ends exactly where [`Parser::value`] would end
    /// it, at a small part of the cost; in invalid JSON the end found may be wrong (see
    /// [`Reader::skip_value`]).
    fn skip(&mut self) -> Result<(), ParseError> {
        if !matches!(self.peek(), Some(b'{' | b'[' | b'"')) {
            // A number or literal: no more to build than a number.
            return self.value().map(drop);
        }
        let bytes = self.bytes;
        let mut at = self.pos;
        let mut depth = 0u32;
        // Where the string being skipped starts, if in one.
        let mut string: Option<usize> = None;
        loop {
            let Some(found) = next_quote_backslash_or_bracket(bytes, at) else {
                return Err(match string {
                    Some(start) => self.error_at(start, "unterminated string"),
                    None => self.error_at(bytes.len(), "unexpected end of input"),
                });
            };
            at = found;
            match (string, bytes[at]) {
                (Some(_), b'"') => string = None,
                // The escaped byte cannot end the string.
                (Some(_), b'\\') => at += 1,
                (Some(_), _) => {}
                (None, b'"') => string = Some(at),
                (None, b'{' | b'[') => {
                    depth += 1;
                    if depth > DEPTH_MAX {
                        let problem = format!("nesting deeper than {DEPTH_MAX} levels");
                        return Err(self.error_at(at, problem));
                    }
                }
                (None, b'}' | b']') => depth = depth.saturating_sub(1),
                (None, _) => {}
            }
            at += 1;
            if depth == 0 && string.is_none() {
                self.pos = at;
                return Ok(());
            }
        }
    }

    /// An object key at the position and the `:` after it, then whitespace: the key and
    /// where it starts. Always inlined: called as a function from the recursive `value`,
    /// it cost 1% of reading a large input.
    #[inline(always)]
    fn key(&mut self) -> Result<(String, usize), ParseError> {
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a string key"));
        }
        let key_pos = self.pos;
        let key = self.string()?;
        self.skip_whitespace();
        if self.peek() != Some(b':') {
            return Err(self.error("expected ':' after an object key"));
        }
        self.pos += 1;
        self.skip_whitespace();
        Ok((key, key_pos))
    }

    fn array(&mut self) -> Result<Value, ParseError> {
        assert_eq!(self.peek(), Some(b'['));
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value()?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error("expected ',' or ']' in an array")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.error("truncated \\u escape (expected four hexadecimal digits)"))?;
        let mut code = 0u32;
        for &d in digits {
            let v = (d as char).to_digit(16).ok_or_else(|| {
                self.error("invalid \\u escape (expected four hexadecimal digits)")
            })?;
            code = code * 16 + v;
        }
        self.pos += 4;
        Ok(code)
    }

    fn string(&mut self) -> Result<String, ParseError> {
        assert_eq!(self.peek(), Some(b'"'));
        let start_pos = self.pos;
        self.pos += 1;
        // Most strings hold no escape: they are found whole and copied into a string of
        // exactly their length.
        let rest = &self.bytes[self.pos..];
        let run = plain_run(rest);
        if rest.get(run) == Some(&b'"') {
            // Both ends are ASCII bytes, so a slice of valid text is valid text.
            let text = match self.text {
                Some(text) => &text[self.pos..self.pos + run],
                None => std::str::from_utf8(&rest[..run])
                    .map_err(|_| self.error_at(start_pos, "string is not valid UTF-8"))?,
            };
            self.pos += run + 1;
            return Ok(text.to_owned());
        }
        let mut out: Vec<u8> = Vec::with_capacity(run + 16);
        loop {
            let Some(b) = self.peek() else {
                return Err(self.error_at(start_pos, "unterminated string"));
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    break;
                }
                b'\\' => {
                    self.pos += 1;
                    let Some(e) = self.peek() else {
                        return Err(self.error_at(start_pos, "unterminated string"));
                    };
                    self.pos += 1;
                    let simple = match e {
                        b'"' => Some(b'"'),
                        b'\\' => Some(b'\\'),
                        b'/' => Some(b'/'),
                        b'b' => Some(0x08),
                        b'f' => Some(0x0c),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        b'u' => None,
                        _ => return Err(self.error_at(self.pos - 1, "invalid escape in string")),
                    };
                    if let Some(s) = simple {
                        out.push(s);
                        continue;
                    }
                    let escape_pos = self.pos - 2;
                    let high = self.hex4()?;
                    let code = if (0xD800..0xDC00).contains(&high) {
                        if !self.bytes[self.pos..].starts_with(b"\\u") {
                            return Err(
                                self.error_at(escape_pos, "unpaired surrogate in \\u escape")
                            );
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..0xE000).contains(&low) {
                            return Err(
                                self.error_at(escape_pos, "unpaired surrogate in \\u escape")
                            );
                        }
                        0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..0xE000).contains(&high) {
                        return Err(self.error_at(escape_pos, "unpaired surrogate in \\u escape"));
                    } else {
                        high
                    };
                    let c = char::from_u32(code).expect("surrogates excluded above");
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0x00..=0x1f => {
                    return Err(self.error("raw control character in string (must be escaped)"));
                }
                _ => {
                    // A run of plain bytes is copied at once: pushing byte by byte made
                    // string parsing most of the cost of reading a large input.
                    let rest = &self.bytes[self.pos..];
                    let run = plain_run(rest);
                    assert!(run > 0, "the byte at pos is plain");
                    out.extend_from_slice(&rest[..run]);
                    self.pos += run;
                }
            }
        }
        String::from_utf8(out).map_err(|_| self.error_at(start_pos, "string is not valid UTF-8"))
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let int_digits = self.int_digits()?;
        let frac_digits = self.frac_digits()?;
        let exponent = self.exponent()?;
        if exponent.is_none() && frac_digits.is_empty() && int_digits.len() <= 15 {
            // A plain integer of at most 15 digits is in range (2^53 - 1 has 16): read it
            // directly, not through the exact decimal arithmetic below.
            let magnitude = self.bytes[int_digits]
                .iter()
                .fold(0i64, |value, digit| value * 10 + i64::from(digit - b'0'));
            let value = if negative { -magnitude } else { magnitude };
            return Ok(Value::Number(Number::from(value)));
        }
        let literal = std::str::from_utf8(&self.bytes[start..self.pos]).expect("ASCII digits");
        if (exponent.is_some() || !frac_digits.is_empty())
            && self.numbers == Numbers::IntegerLiterals
        {
            return Err(self.error_at(
                start,
                format!("number {literal} is not an integer literal (floats are not permitted)"),
            ));
        }
        let digits = (&self.bytes[int_digits], &self.bytes[frac_digits]);
        self.exact_integer(start, literal, negative, digits, exponent.unwrap_or(0))
    }

    /// The integer part of a number: `0`, or a non-zero digit and more digits.
    fn int_digits(&mut self) -> Result<Range<usize>, ParseError> {
        let int_start = self.pos;
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                while let Some(b'0'..=b'9') = self.peek() {
                    self.pos += 1;
                }
            }
            _ => return Err(self.error("invalid number")),
        }
        Ok(int_start..self.pos)
    }

    /// The digits of the fraction after `.`, if there is one (empty otherwise).
    fn frac_digits(&mut self) -> Result<Range<usize>, ParseError> {
        if self.peek() != Some(b'.') {
            return Ok(self.pos..self.pos);
        }
        self.pos += 1;
        let frac_start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        if self.pos == frac_start {
            return Err(self.error("invalid number (no digits after '.')"));
        }
        Ok(frac_start..self.pos)
    }

    /// The exponent after `e` or `E`, if there is one, saturated at 2^20 in magnitude.
    fn exponent(&mut self) -> Result<Option<i64>, ParseError> {
        let Some(b'e' | b'E') = self.peek() else { return Ok(None) };
        let mut exponent: i64 = 0;
        self.pos += 1;
        let exp_negative = match self.peek() {
            Some(b'-') => {
                self.pos += 1;
                true
            }
            Some(b'+') => {
                self.pos += 1;
                false
            }
            _ => false,
        };
        let exp_start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            // Saturate: an exponent this large makes the value out of range anyway.
            exponent = (exponent * 10 + i64::from(self.bytes[self.pos] - b'0')).min(1 << 20);
            self.pos += 1;
        }
        if self.pos == exp_start {
            return Err(self.error("invalid number (no digits in exponent)"));
        }
        if exp_negative {
            exponent = -exponent;
        }
        Ok(Some(exponent))
    }

    /// The value of the number `literal` at `start` from its integer and fraction digits
    /// and its exponent, if it is an integer within the range canonical JSON allows.
    fn exact_integer(
        &self,
        start: usize,
        literal: &str,
        negative: bool,
        (int_digits, frac_digits): (&[u8], &[u8]),
        exponent: i64,
    ) -> Result<Value, ParseError> {
        // Exact decimal arithmetic: digits = int_digits ++ frac_digits, scaled by
        // 10^(exponent - frac_len). Strip trailing zeros to decide integrality.
        let mut digits: Vec<u8> = int_digits.iter().chain(frac_digits).map(|d| d - b'0').collect();
        let mut scale = exponent - frac_digits.len() as i64;
        while digits.len() > 1 && digits.last() == Some(&0) && scale < 0 {
            digits.pop();
            scale += 1;
        }
        let first_nonzero = digits.iter().position(|&d| d != 0);
        let Some(first_nonzero) = first_nonzero else {
            // Zero in any spelling (including -0) is the integer 0.
            return Ok(Value::Number(Number::from(0)));
        };
        if scale < 0 {
            return Err(self.error_at(start, format!("number {literal} is not an integer")));
        }
        let significant = digits.len() - first_nonzero;
        if significant as i64 + scale > 16 {
            return Err(self.error_at(
                start,
                format!("integer {literal} out of the range [-(2^53)+1, 2^53-1]"),
            ));
        }
        let mut magnitude: i64 = 0;
        for &d in &digits[first_nonzero..] {
            magnitude = magnitude * 10 + i64::from(d);
        }
        for _ in 0..scale {
            magnitude *= 10;
        }
        if magnitude > INT_MAX {
            return Err(self.error_at(
                start,
                format!("integer {literal} out of the range [-(2^53)+1, 2^53-1]"),
            ));
        }
        let value = if negative { -magnitude } else { magnitude };
        Ok(Value::Number(Number::from(value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(text: &str, numbers: Numbers) -> String {
        let value = parse(text.as_bytes(), numbers).unwrap();
        String::from_utf8(encode(&value).unwrap()).unwrap()
    }

    #[test]
    fn numbers() {
        let lit = Numbers::IntegerLiterals;
        assert_eq!(
            canon("[0,-0,1,-1,9007199254740991,-9007199254740991]", lit),
            "[0,0,1,-1,9007199254740991,-9007199254740991]"
        );
        assert!(parse(b"9007199254740992", lit).is_err());
        assert!(parse(b"-9007199254740992", lit).is_err());
        assert!(parse(b"1.0", lit).is_err());
        assert!(parse(b"1e2", lit).is_err());
        assert!(parse(b"01", lit).is_err());
        assert!(parse(b"+1", lit).is_err());
        assert!(parse(b"1.", lit).is_err());
        let val = Numbers::IntegralValues;
        assert_eq!(
            canon("[1e10,2.0,-0.0,1.5e1,120e-1,0e99999999]", val),
            "[10000000000,2,0,15,12,0]"
        );
        assert!(parse(b"1.5", val).is_err());
        assert!(parse(b"1e-1", val).is_err());
        assert!(parse(b"1e16", val).is_err());
        assert!(parse(b"9007199254740991.0", val).is_ok());
        assert!(parse(b"9.007199254740992e15", val).is_err());
        assert!(parse(b"1e999999999999999999", val).is_err());
    }

    #[test]
    fn plain_runs_end_at_the_first_quote_backslash_or_control_byte() {
        // Every length up to three words, every stopping byte at every offset, and bytes
        // that only look like stoppers to a careless word test (0x20, 0x7f, 0x80, 0xff,
        // and the neighbours of '"' and '\\').
        let fillers = [b'a', 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xc3, 0xff];
        for len in 0..24 {
            for &filler in &fillers {
                let plain = vec![filler; len];
                assert_eq!(plain_run(&plain), len);
                for stop_at in 0..len {
                    for stopper in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                        let mut bytes = plain.clone();
                        bytes[stop_at] = stopper;
                        assert_eq!(plain_run(&bytes), stop_at, "{bytes:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn duplicate_keys_are_refused_in_and_out_of_order() {
        let lit = Numbers::IntegerLiterals;
        // (input, column of the repeated key); line 1 throughout.
        let cases: [(&str, u64); 5] = [
            (r#"{"a":1,"a":2}"#, 8),
            (r#"{"a":1,"b":2,"a":3}"#, 14),
            (r#"{"b":1,"a":2,"b":3}"#, 14),
            (r#"{"c":1,"b":2,"a":3,"b":4}"#, 20),
            // The duplicate is found before the later syntax error.
            (r#"{"a":1,"a":2,"c":[}"#, 8),
        ];
        for (input, column) in cases {
            let err = parse(input.as_bytes(), lit).unwrap_err();
            assert_eq!((err.line, err.column), (1, column), "{input}: {err}");
            assert!(err.problem.contains("duplicate object key"), "{input}: {err}");
        }
        // An error inside the repeated key's value comes first, as it is met first.
        let err = parse(br#"{"a":1,"a":[}"#, lit).unwrap_err();
        assert!(!err.problem.contains("duplicate"), "{err}");
        // Keys out of order are accepted and kept in canonical order.
        let value = parse(br#"{"b":{"z":1,"y":2},"a":[],"c":3}"#, lit).unwrap();
        assert_eq!(encode(&value).unwrap(), br#"{"a":[],"b":{"y":2,"z":1},"c":3}"#);
    }

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

    #[test]
    fn the_next_quote_backslash_or_bracket_is_found_at_every_offset() {
        // Every byte value at every offset of a 19-byte text, from every start: the finder
        // agrees with a byte-by-byte search (the eight-byte words must not report a byte
        // before the first match, nor miss one).
        let special = |b: &u8| b"\"\\[]{}".contains(b);
        for byte in 0..=255u8 {
            for offset in 0..19 {
                let mut text = vec![b'a'; 19];
                text[offset] = byte;
                text[18 - offset / 2] = if offset % 2 == 0 { b'x' } else { b'}' };
                for from in 0..=text.len() {
                    let expected = text[from..].iter().position(special).map(|p| from + p);
                    let found = next_quote_backslash_or_bracket(&text, from);
                    assert_eq!(found, expected, "byte {byte:#x} at {offset}, from {from}");
                }
            }
        }
        assert_eq!(next_quote_backslash_or_bracket(b"abc", 4), None);
    }

    #[test]
    fn strings_are_escaped_minimally() {
        let lit = Numbers::IntegerLiterals;
        assert_eq!(
            canon(r#""a\"\\\/\b\f\n\r\t\u0000\u001f\u007f\u00e9\ud83d\ude00""#, lit),
            "\"a\\\"\\\\/\\b\\f\\n\\r\\t\\u0000\\u001f\u{7f}é😀\""
        );
        assert!(parse(b"\"\\ud83d\"", lit).is_err());
        assert!(parse(b"\"\\ude00\"", lit).is_err());
        assert!(parse(b"\"\x01\"", lit).is_err());
        assert!(parse(b"\"\xff\"", lit).is_err());
        assert!(parse(b"\"\\x\"", lit).is_err());
    }

    #[test]
    fn errors_name_line_and_column() {
        let err = parse(b"{\n  \"a\": 1,\n  \"a\": 2\n}", Numbers::IntegerLiterals).unwrap_err();
        assert_eq!((err.line, err.column), (3, 3));
        assert!(err.problem.contains("duplicate"), "{err}");
        let err = parse(b"{\"a\": 1.5}", Numbers::IntegerLiterals).unwrap_err();
        assert_eq!((err.line, err.column), (1, 7));
        let err = parse(b"[1,]", Numbers::IntegerLiterals).unwrap_err();
        assert_eq!((err.line, err.column), (1, 4));
        let err = parse(b"{} x", Numbers::IntegerLiterals).unwrap_err();
        assert_eq!((err.line, err.column), (1, 4));
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(
            parse(deep.as_bytes(), Numbers::IntegerLiterals)
                .unwrap_err()
                .problem
                .contains("nesting")
        );
        let ok = "[".repeat(128) + &"]".repeat(128);
        assert!(parse(ok.as_bytes(), Numbers::IntegerLiterals).is_ok());
    }

    #[test]
    fn check_refuses_floats_with_their_path() {
        let value = serde_json::json!({"a": [1, {"b c": 1.5}]});
        let err = check(&value).unwrap_err();
        assert_eq!(err.path, "$.a[1][\"b c\"]");
        assert!(encode(&serde_json::json!({"n": 9007199254740992_i64})).is_err());
        assert!(encode(&serde_json::json!({"n": u64::MAX})).is_err());
    }
}
