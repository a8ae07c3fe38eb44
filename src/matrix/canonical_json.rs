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

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde_json::{Map, Number, Value};

use crate::matrix::words;

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

mod check;
mod encoded;
mod reader;
#[cfg(test)]
mod tests;
mod write;

pub use check::{check, check_object, push_key};
pub use encoded::EncodedObject;
pub use reader::{Mark, Reader, WindowError, Windowed};
pub use write::{encode, encode_object, encode_object_without};
pub(crate) use write::{plain_run, write_object, write_string, write_value};

/// Setting bit 5 of every byte maps `[` and `]` onto `{` and `}`, and no other byte onto
/// them.
const CASE: u64 = u64::from_le_bytes([0x20; 8]);

/// Where [`Parser::skip`] stands: how deep in arrays and objects, and where the string it
/// is in (if it is in one) starts.
struct Skip {
    depth: u32,
    string: Option<usize>,
}

/// What a byte did to a [`Skip`].
enum Taken {
    /// Nothing that ends the value.
    On,
    /// A backslash in a string: the next byte is escaped.
    Escape,
    /// The value ends with this byte.
    End,
    /// An array or object opened more than [`DEPTH_MAX`] deep.
    TooDeep,
}

impl Skip {
    /// Takes the byte at `position`.
    #[inline(always)]
    fn take(&mut self, position: usize, byte: u8) -> Taken {
        match (self.string, byte) {
            (Some(_), b'"') => self.string = None,
            (Some(_), b'\\') => return Taken::Escape,
            (Some(_), _) => return Taken::On,
            (None, b'"') => self.string = Some(position),
            (None, b'{' | b'[') => {
                self.depth += 1;
                if self.depth > DEPTH_MAX {
                    return Taken::TooDeep;
                }
            }
            (None, b'}' | b']') => self.depth = self.depth.saturating_sub(1),
            (None, _) => return Taken::On,
        }
        if self.depth == 0 && self.string.is_none() { Taken::End } else { Taken::On }
    }
}

/// `text` with `edits` made in turn, for tests that damage JSON texts: each edit is a
/// position (modulo the text's length so far plus one), a byte, and what to do there (0:
/// insert the byte; 1: remove the byte there; otherwise replace it; past the end, remove
/// and replace append the byte instead).
#[cfg(test)]
pub(crate) fn damaged(text: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut text = text.to_vec();
    for &(at, byte, kind) in edits {
        let at = at % (text.len() + 1);
        match kind {
            0 => text.insert(at, byte),
            1 if at < text.len() => {
                text.remove(at);
            }
            _ if at < text.len() => text[at] = byte,
            _ => text.push(byte),
        }
    }
    text
}

/// Edits for [`damaged`]: `count` of them, each at a position below `within` with a byte
/// of `bytes` and any of the three kinds.
#[cfg(test)]
pub(crate) fn damage_edits(
    within: usize,
    bytes: &[u8],
    count: std::ops::Range<usize>,
) -> impl proptest::strategy::Strategy<Value = Vec<(usize, u8, u8)>> {
    let edit = (0..within, proptest::sample::select(bytes.to_vec()), 0u8..3);
    proptest::collection::vec(edit, count)
}

/// The brackets of an object or an array, and how [`Parser::items`] refuses what stands
/// where a separator or the closing bracket should.
#[derive(Clone, Copy)]
struct Container {
    open: u8,
    close: u8,
    expected: &'static str,
}

const OBJECT: Container =
    Container { open: b'{', close: b'}', expected: "expected ',' or '}' in an object" };
const ARRAY: Container =
    Container { open: b'[', close: b']', expected: "expected ',' or ']' in an array" };

struct Parser<'a> {
    bytes: &'a [u8],
    /// `bytes` as text, when all of it is UTF-8 (checked once, in one pass): a string is
    /// then a slice of it, not checked again.
    text: Option<&'a str>,
    pos: usize,
    numbers: Numbers,
    depth: u32,
    /// Whether errors carry their line and column: finding them reads the whole text
    /// before the error, which a [`Windowed`] reader, whose failures mostly mean "read
    /// more", cannot afford at every window's end.
    placed: bool,
}

impl<'a> Parser<'a> {
    fn new(bytes: &'a [u8], numbers: Numbers) -> Parser<'a> {
        let text = std::str::from_utf8(bytes).ok();
        Parser { bytes, text, pos: 0, numbers, depth: 0, placed: true }
    }

    /// A parser of text already known to be UTF-8, whose errors are not placed (line and
    /// column 0).
    fn unplaced(text: &'a str, numbers: Numbers) -> Parser<'a> {
        let bytes = text.as_bytes();
        Parser { bytes, text: Some(text), pos: 0, numbers, depth: 0, placed: false }
    }
}

impl<'a> Parser<'a> {
    fn error(&self, problem: impl fmt::Display) -> ParseError {
        self.error_at(self.pos, problem)
    }

    fn error_at(&self, pos: usize, problem: impl fmt::Display) -> ParseError {
        if !self.placed {
            return ParseError { line: 0, column: 0, problem: problem.to_string() };
        }
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

    fn nested<T>(
        &mut self,
        inner: impl FnOnce(&mut Self) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        if self.depth >= DEPTH_MAX {
            return Err(self.error(format!("nesting deeper than {DEPTH_MAX} levels")));
        }
        self.depth += 1;
        let result = inner(self);
        self.depth -= 1;
        result
    }

    fn object(&mut self) -> Result<Value, ParseError> {
        self.object_keeping(|_| true)
    }

    /// The object at the position with only the members whose key `keep` takes: the
    /// others are checked as their values would be read ([`Parser::check`]) and not built.
    /// A repeated key is refused whether its member is kept or not.
    fn object_keeping(&mut self, keep: impl Fn(&str) -> bool) -> Result<Value, ParseError> {
        // Members are kept in a list while their keys arrive in strictly increasing order,
        // as canonical JSON writes them, and the map is then built from the sorted list in
        // one pass: inserting one key at a time searched the map twice per member (for a
        // duplicate, then to insert) and was a tenth of reading a large input. The first
        // key out of order moves the members into a map, and each later key is checked
        // against it as it comes, so a duplicate is reported at the same place either way.
        // Room for a PDU's top-level members at once: growing the list member by member
        // reallocated it three times for every event read. (An empty object allocates
        // nothing: a vector of no capacity is not reserved until the first push.)
        let mut sorted: Vec<(String, Value)> = Vec::new();
        let mut map: Option<Object> = None;
        self.items(OBJECT, |parser| {
            let (key, key_pos) = parser.key()?;
            // A member left out holds its place until the end, so that its key is
            // checked against the others as a kept one is.
            let item =
                if keep(&key) { parser.value()? } else { parser.check().map(|()| Value::Null)? };
            if map.is_none() && sorted.last().is_some_and(|(last, _)| *last >= key) {
                map = Some(std::mem::take(&mut sorted).into_iter().collect());
            }
            match &mut map {
                None => {
                    if sorted.capacity() == 0 {
                        sorted.reserve(16);
                    }
                    sorted.push((key, item));
                }
                Some(map) => {
                    if map.contains_key(&key) {
                        let problem = format!("duplicate object key {key:?}");
                        return Err(parser.error_at(key_pos, problem));
                    }
                    map.insert(key, item);
                }
            }
            Ok(())
        })?;
        // Collecting sorted, distinct keys builds the tree in bulk.
        let object = match map {
            None => sorted.into_iter().filter(|(key, _)| keep(key)).collect(),
            Some(mut map) => {
                map.retain(|key, _| keep(key));
                map
            }
        };
        Ok(Value::Object(object))
    }

    /// Walks the items of the object or array whose opening bracket is at the position,
    /// calling `item` at the start of each (a member's key, or an array item) after
    /// whitespace, and checking the separators and the closing bracket: the one walk that
    /// [`Parser::object_keeping`], [`Parser::array`] and their checks share, so that what
    /// they accept between items and how they refuse it cannot drift apart.
    fn items(
        &mut self,
        container: Container,
        mut item: impl FnMut(&mut Self) -> Result<(), ParseError>,
    ) -> Result<(), ParseError> {
        assert_eq!(self.peek(), Some(container.open));
        self.pos += 1;
        self.skip_whitespace();
        if self.peek() == Some(container.close) {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_whitespace();
            item(self)?;
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(byte) if byte == container.close => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.error(container.expected)),
            }
        }
    }

    /// Checks the value at the position as [`Parser::value`] reads it, and builds nothing
    /// but a number: the same texts accepted, each refused with the same error at the same
    /// place, and the position left where `value` leaves it. (`mxsim resolve` checks so the
    /// members of an event that state resolution never reads.) The containers are walked as
    /// [`Parser::object`] and [`Parser::array`] walk them ([`Parser::items`]) and keep
    /// their keys as `object` does; the rest is `value`'s own code, whose strings are lent
    /// from the text when they hold no escape.
    fn check(&mut self) -> Result<(), ParseError> {
        match self.peek() {
            Some(b'{') => self.nested(Self::check_object),
            Some(b'[') => self.nested(Self::check_array),
            Some(b'"') => self.string_text().map(drop),
            // A literal, a number, or what `value` refuses: nothing on the heap to build.
            _ => self.value().map(drop),
        }
    }

    /// [`Parser::object`]'s checks, its keys kept as they lie in the text. While they come
    /// in increasing order a repeat is impossible and only the last is needed; from the
    /// first key out of order they go into a set, and each later key is checked against it
    /// as it comes, where `object` finds the same repeat in its map.
    fn check_object(&mut self) -> Result<(), ParseError> {
        let mut sorted: Vec<Cow<'a, str>> = Vec::new();
        let mut set: Option<std::collections::BTreeSet<Cow<'a, str>>> = None;
        self.items(OBJECT, |parser| {
            let (key, key_pos) = parser.key_text()?;
            parser.check()?;
            if set.is_none() && sorted.last().is_some_and(|last| *last >= key) {
                set = Some(std::mem::take(&mut sorted).into_iter().collect());
            }
            match &mut set {
                None => sorted.push(key),
                Some(set) => {
                    if set.contains(&key) {
                        let problem = format!("duplicate object key {key:?}");
                        return Err(parser.error_at(key_pos, problem));
                    }
                    set.insert(key);
                }
            }
            Ok(())
        })
    }

    /// [`Parser::array`]'s checks.
    fn check_array(&mut self) -> Result<(), ParseError> {
        self.items(ARRAY, Self::check)
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
        let mut skip = Skip { depth: 0, string: None };
        let mut at = self.pos;
        // Eight bytes at a time, every byte that can change the state flagged at once
        // ([`words::exact_bytes_equal`]) and taken in order: a stop costs a few
        // instructions instead of a new search (a PDU has a stop per quote).
        while let Some(chunk) = bytes.get(at..at + 8) {
            let w = words::le_word(chunk);
            let folded = w | CASE;
            let mut flags = words::exact_bytes_equal(w, b'"')
                | words::exact_bytes_equal(w, b'\\')
                | words::exact_bytes_equal(folded, b'{')
                | words::exact_bytes_equal(folded, b'}');
            let mut next = at + 8;
            while flags != 0 {
                let offset = flags.trailing_zeros() as usize / 8;
                flags &= flags - 1;
                let position = at + offset;
                match skip.take(position, bytes[position]) {
                    Taken::On => {}
                    Taken::Escape => {
                        // The escaped byte cannot end the string: unflagged, or, as the
                        // next word's first, stepped over.
                        if offset == 7 {
                            next += 1;
                        } else {
                            flags &= !(0x80 << ((offset + 1) * 8));
                        }
                    }
                    Taken::End => {
                        self.pos = position + 1;
                        return Ok(());
                    }
                    Taken::TooDeep => return Err(self.too_deep(position)),
                }
            }
            at = next;
        }
        // The last bytes, one at a time.
        while let Some(&byte) = bytes.get(at) {
            match skip.take(at, byte) {
                Taken::On => at += 1,
                Taken::Escape => at += 2,
                Taken::End => {
                    self.pos = at + 1;
                    return Ok(());
                }
                Taken::TooDeep => return Err(self.too_deep(at)),
            }
        }
        Err(match skip.string {
            Some(start) => self.error_at(start, "unterminated string"),
            None => self.error_at(bytes.len(), "unexpected end of input"),
        })
    }

    fn too_deep(&self, at: usize) -> ParseError {
        self.error_at(at, format!("nesting deeper than {DEPTH_MAX} levels"))
    }

    /// An object key at the position and the `:` after it, then whitespace: the key and
    /// where it starts. Always inlined: called as a function from the recursive `value`,
    /// it cost 1% of reading a large input.
    #[inline(always)]
    fn key(&mut self) -> Result<(String, usize), ParseError> {
        self.key_text().map(|(key, key_pos)| (key.into_owned(), key_pos))
    }

    /// [`Parser::key`], lending the key from the text when it holds no escape.
    #[inline(always)]
    fn key_text(&mut self) -> Result<(Cow<'a, str>, usize), ParseError> {
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a string key"));
        }
        let key_pos = self.pos;
        let key = self.string_text()?;
        self.skip_whitespace();
        if self.peek() != Some(b':') {
            return Err(self.error("expected ':' after an object key"));
        }
        self.pos += 1;
        self.skip_whitespace();
        Ok((key, key_pos))
    }

    fn array(&mut self) -> Result<Value, ParseError> {
        let mut items = Vec::new();
        self.items(ARRAY, |parser| {
            items.push(parser.value()?);
            Ok(())
        })?;
        Ok(Value::Array(items))
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
        self.string_text().map(Cow::into_owned)
    }

    /// The string at the position: a slice of the text when it holds no escape, else
    /// decoded.
    fn string_text(&mut self) -> Result<Cow<'a, str>, ParseError> {
        assert_eq!(self.peek(), Some(b'"'));
        let start_pos = self.pos;
        self.pos += 1;
        // Most strings hold no escape: they are found whole and lent from the text (an
        // owner copies them into a string of exactly their length).
        let bytes: &'a [u8] = self.bytes;
        let rest = &bytes[self.pos..];
        let run = plain_run(rest);
        if rest.get(run) == Some(&b'"') {
            // Both ends are ASCII bytes, so a slice of valid text is valid text.
            let text = match self.text {
                Some(text) => &text[self.pos..self.pos + run],
                None => std::str::from_utf8(&rest[..run])
                    .map_err(|_| self.error_at(start_pos, "string is not valid UTF-8"))?,
            };
            self.pos += run + 1;
            return Ok(Cow::Borrowed(text));
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
        let out = String::from_utf8(out)
            .map_err(|_| self.error_at(start_pos, "string is not valid UTF-8"))?;
        Ok(Cow::Owned(out))
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
