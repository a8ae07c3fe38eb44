//! Tests of the [`Reader`](super::Reader) and [`Windowed`](super::Windowed) against
//! [`parse`](crate::matrix::canonical_json::parse): the same values, and the same errors.

use std::io::Read;

use super::*;
use crate::matrix::canonical_json::{DEPTH_MAX, Object, parse};

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
        "{\n\"events\": [{\"k\": \"v\"},\n {\"k\": [true, null, -0]}],\n\"v\": \"12\"}".to_owned(),
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
    let mut invalid: Vec<Vec<u8>> = invalid_texts().into_iter().map(String::into_bytes).collect();
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

/// Whether this thread holds a spare's stacks, and room for how many key bytes.
fn spare_key_room() -> Option<usize> {
    SPARE.with(|spare| {
        let spare = spare.borrow();
        (spare.keys.ends.capacity() > 0).then(|| spare.keys.text.capacity())
    })
}

#[test]
fn a_reader_starts_from_the_stacks_of_the_last_one_emptied() {
    // A reader dropped in the middle of objects, one of them with its keys out of order
    // (kept in a set), leaves its stacks to the next reader, which must see none of them.
    let mut first = Reader::new(br#"{"z":{"b":1,"a":2,"c":{"k":"#, Numbers::IntegerLiterals);
    assert!(first.begin_object().unwrap());
    assert_eq!(first.next_key_str().unwrap(), Some("z"));
    assert!(first.begin_object().unwrap());
    for key in ["b", "a"] {
        assert_eq!(first.next_key_str().unwrap(), Some(key));
        first.skip_value().unwrap();
    }
    assert_eq!(first.next_key_str().unwrap(), Some("c"));
    assert!(first.begin_object().unwrap());
    assert_eq!(first.next_key_str().unwrap(), Some("k"));
    drop(first);
    let room = spare_key_room().expect("the dropped reader's stacks are kept");
    assert!(room >= KEYS_TEXT_START);
    for (text, expected) in [
        (r#"{"a":1,"b":{"a":2}}"#, Ok(())),
        (r#"{"k":1,"z":2,"k":3}"#, Err("duplicate object key \"k\"")),
    ] {
        let reader = Reader::new(text.as_bytes(), Numbers::IntegerLiterals);
        assert_eq!(spare_key_room(), None, "the new reader took the spare");
        drop(reader);
        assert_eq!(
            read_in_pieces(text, false).map(|_| ()).map_err(|e| e.problem),
            expected.map_err(str::to_owned)
        );
        assert_eq!(read_in_pieces(text, false), parse(text.as_bytes(), Numbers::IntegerLiterals));
        assert_eq!(spare_key_room(), Some(room), "the same stacks came back");
    }
}

#[test]
fn a_reader_whose_stacks_grew_past_the_bound_leaves_no_spare() {
    let key = "k".repeat(SPARE_KEYS_TEXT_MAX + 1);
    let text = format!(r#"{{"{key}":1}}"#);
    SPARE.with(|spare| *spare.borrow_mut() = Stacks::default());
    assert_eq!(read_in_pieces(&text, false), parse(text.as_bytes(), Numbers::IntegerLiterals));
    assert_eq!(spare_key_room(), None, "stacks that large are freed");
}

#[test]
fn a_string_is_lent_where_it_holds_no_escape_and_refused_as_parse_refuses_it() {
    let text = r#"["plain", "caf\u00e9 \"q\"", 1, {"a": 1}, "bad \x"]"#;
    let mut reader = Reader::new(text.as_bytes(), Numbers::IntegerLiterals);
    assert!(reader.begin_array().unwrap());
    assert!(reader.next_item().unwrap());
    assert!(matches!(reader.string().unwrap(), Some(Cow::Borrowed("plain"))));
    assert!(reader.next_item().unwrap());
    let decoded = reader.string().unwrap().unwrap();
    assert!(matches!(decoded, Cow::Owned(_)));
    assert_eq!(decoded, "café \"q\"");
    // Not a string: nothing read, and the value is still there to read.
    assert!(reader.next_item().unwrap());
    assert_eq!(reader.string().unwrap(), None);
    assert_eq!(reader.value().unwrap(), Value::from(1));
    assert!(reader.next_item().unwrap());
    assert_eq!(reader.string().unwrap(), None);
    reader.skip_value().unwrap();
    assert!(reader.next_item().unwrap());
    let error = reader.string().unwrap_err();
    let expected = parse(br#""bad \x""#, Numbers::IntegerLiterals).unwrap_err();
    assert_eq!(error.problem, expected.problem);
}

/// The items of `text`, an array, read through windows of `window` bytes with
/// [`Reader::next_value_keeping`], keeping the members `keep` takes.
fn items_keeping(text: &str, window: usize, keep: fn(&str) -> bool) -> Result<Value, WindowError> {
    let bytes = text.as_bytes();
    let mut stream =
        Windowed::with_window(Trickle { bytes, step: 3 }, Numbers::IntegerLiterals, 0, window);
    assert!(stream.piece(|r| r.begin_array())?, "an array");
    let mut items = Vec::new();
    while let Some(item) = stream.piece(|r| r.next_value_keeping(keep))? {
        items.push(item);
    }
    stream.piece(|r| r.check_end())?;
    Ok(Value::Array(items))
}

#[test]
fn items_read_keeping_some_members_are_the_items_read_whole_without_the_others() {
    let keep = |key: &str| key != "hashes" && key != "unsigned";
    let lit = Numbers::IntegerLiterals;
    let text = r#"[{"a":1,"hashes":{"sha256":"x","y":[1,{"z":"\u00e9"}]},"b":[2]},
        7, "s", [ {"hashes":1} ], {"unsigned":{},"hashes":null}, {}, {"z":{"hashes":2},"a":3}]"#;
    let mut whole = parse(text.as_bytes(), lit).unwrap();
    // Only the items' own members are left out: not those of objects inside them, nor of
    // an object in an item that is an array.
    for item in whole.as_array_mut().unwrap() {
        if let Value::Object(object) = item {
            object.retain(|key, _| keep(key));
        }
    }
    for window in [1, 2, 5, 9, 64] {
        assert_eq!(items_keeping(text, window, keep).as_ref(), Ok(&whole), "window {window}");
    }
    // A member left out is read for what `parse` refuses all the same: a repeated key,
    // bad syntax, an escape or a number inside it.
    for bad in [
        r#"[{"a":1,"hashes":2,"hashes":3}]"#,
        r#"[{"hashes":{"x":1,"x":2}}]"#,
        r#"[{"hashes":[1,]}]"#,
        r#"[{"unsigned":"\q"}]"#,
        r#"[{"unsigned":{"age":1.5}}]"#,
        r#"[{"hashes":{"sha256":"x"}"#,
    ] {
        let error = parse(bad.as_bytes(), lit).unwrap_err();
        for window in [1, 4, 64] {
            let read = items_keeping(bad, window, keep).map(drop);
            assert!(read.is_err(), "{bad} window {window}");
            if let Err(WindowError::Syntax(found)) = read {
                assert_eq!(found.problem, error.problem, "{bad} window {window}");
            }
        }
    }
}
