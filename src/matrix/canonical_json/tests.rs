//! Unit tests of the canonical JSON parser and encoder.

use super::*;
use crate::matrix::words;

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
    assert_eq!(canon("[1e10,2.0,-0.0,1.5e1,120e-1,0e99999999]", val), "[10000000000,2,0,15,12,0]");
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
                    // A second stop after the first, in the same word or a later one.
                    for later in stop_at + 1..len {
                        let mut two = bytes.clone();
                        two[later] = b'"';
                        assert_eq!(plain_run(&two), stop_at, "{two:?}");
                    }
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
        parse(deep.as_bytes(), Numbers::IntegerLiterals).unwrap_err().problem.contains("nesting")
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

#[test]
fn strings_are_escaped_as_serde_json_escapes_them_wherever_the_byte_falls() {
    // Canonical JSON escapes `"`, `\` and the control characters, with the short forms
    // where JSON has them, as serde_json does: every ASCII byte, at each place of the
    // eight-byte words the writer scans and in the remainder, and runs of several.
    for b in 0..0x80u8 {
        for at in 0..12 {
            let mut text = *b"abcdefghijkl";
            text[at] = b;
            let text = std::str::from_utf8(&text).expect("ASCII");
            let mut out = Vec::new();
            write_string(&mut out, text);
            assert_eq!(out, serde_json::to_vec(text).unwrap(), "byte {b:#x} at {at}");
        }
    }
    for text in ["", "\"\"\\\\\n\u{0}\u{1f}", "é😀\u{7f}x\"", "\u{8}\u{c}\r\t and more after it"]
    {
        let mut out = Vec::new();
        write_string(&mut out, text);
        assert_eq!(out, serde_json::to_vec(text).unwrap(), "{text:?}");
    }
}

/// How [`Parser::skip`] skipped before it took a word's stops at once: a search for each
/// stop. The same end, or the same error, is expected of it.
fn skip_reference(bytes: &[u8]) -> Result<usize, ParseError> {
    let mut parser = Parser::new(bytes, Numbers::IntegerLiterals);
    if !matches!(bytes.first(), Some(b'{' | b'[' | b'"')) {
        return parser.value().map(|_| parser.pos);
    }
    let (mut at, mut depth, mut string) = (0, 0u32, None);
    loop {
        let Some(found) = next_quote_backslash_or_bracket(bytes, at) else {
            return Err(match string {
                Some(start) => parser.error_at(start, "unterminated string"),
                None => parser.error_at(bytes.len(), "unexpected end of input"),
            });
        };
        at = found;
        match (string, bytes[at]) {
            (Some(_), b'"') => string = None,
            (Some(_), b'\\') => at += 1,
            (Some(_), _) => {}
            (None, b'"') => string = Some(at),
            (None, b'{' | b'[') => {
                depth += 1;
                if depth > DEPTH_MAX {
                    return Err(
                        parser.error_at(at, format!("nesting deeper than {DEPTH_MAX} levels"))
                    );
                }
            }
            (None, b'}' | b']') => depth = depth.saturating_sub(1),
            (None, _) => {}
        }
        at += 1;
        if depth == 0 && string.is_none() {
            return Ok(at);
        }
    }
}

fn skip_now(bytes: &[u8]) -> Result<usize, ParseError> {
    let mut parser = Parser::new(bytes, Numbers::IntegerLiterals);
    parser.skip().map(|()| parser.pos)
}

#[test]
fn skipping_ends_where_it_did_in_texts_of_every_shape() {
    // Texts of the bytes that matter to skipping and some that look like them (`;` and
    // `|` differ from `[` and `{`... by bit 5 only in the other direction, 0x7f, 0x80,
    // 0xff), of every length up to 70, from a fixed generator: valid values, values cut
    // short, strings with escapes at every place of a word, and nesting past the limit.
    let alphabet: &[u8] = b"{}[]\"\\\"\"a1,:;|{\x7f\x80\xff \n";
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut texts: Vec<Vec<u8>> = Vec::new();
    for _ in 0..20_000 {
        let len = (next() % 70) as usize;
        let first = [b'{', b'[', b'"'][(next() % 3) as usize];
        let mut text = vec![first];
        text.extend((0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]));
        texts.push(text);
    }
    for value in [
        r#"{"a":"b\"c\\","d":[1,{"e":"\\\\\""}],"f":"\u0041"}"#,
        r#"["\\", "\"", "x\\\"y", [[[]]], {}]"#,
        r#""abcdefg\"hijklmn\\""#,
    ] {
        for cut in 0..=value.len() {
            texts.push(value.as_bytes()[..cut].to_vec());
            let mut longer = value.as_bytes().to_vec();
            longer.extend_from_slice(b" ,\"tail\"}");
            texts.push(longer);
        }
    }
    // Escapes at every offset of a word, and ending at every offset.
    for pad in 0..16 {
        let mut text = b"\"".to_vec();
        text.extend(std::iter::repeat_n(b'a', pad));
        text.extend_from_slice(b"\\\"\\\\\"]");
        texts.push(text.clone());
        text.truncate(pad + 2);
        texts.push(text);
    }
    for depth in [127, 128, 129, 200] {
        let mut text = vec![b'['; depth];
        text.extend(vec![b']'; depth]);
        texts.push(text);
    }
    for text in &texts {
        assert_eq!(skip_now(text), skip_reference(text), "{:?}", String::from_utf8_lossy(text));
    }
}

/// Position of the first `"`, `\\`, `[`, `]`, `{` or `}` in `bytes` at or after `from`: how
/// [`Parser::skip`] found its stops before it took a word's stops at once, kept as the
/// reference its tests compare with.
fn next_quote_backslash_or_bracket(bytes: &[u8], from: usize) -> Option<usize> {
    // Eight bytes at a time, as in `plain_run`; with the words read little-endian, the
    // lowest flagged byte is the first match (higher flags may be false after it); `[` and
    // `]` are folded onto `{` and `}` ([`CASE`]).
    let rest = bytes.get(from..)?;
    let mut at = 0;
    for chunk in rest.chunks_exact(8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let folded = w | CASE;
        let found = words::bytes_equal(w, b'"')
            | words::bytes_equal(w, b'\\')
            | words::bytes_equal(folded, b'{')
            | words::bytes_equal(folded, b'}');
        if found != 0 {
            return Some(from + at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    rest[at..].iter().position(|b| b"\"\\[]{}".contains(b)).map(|p| from + at + p)
}

/// Texts for [`Parser::check`] and [`Parser::object_keeping`] to read as
/// [`Parser::value`] does: every kind of value, escapes, keys out of order and repeated,
/// nesting, whitespace; damaged by the proptest below.
const CHECKED: &str = r#" {"b": [1, -2, {"x": "\u00e9\ud83d\ude00"}, [], {}], "a": "s\"\\/\n",
 "hashes": {"sha256": "abc", "z": [true, false, null]}, "d": {"k": 1, "j": 2, "k2": [0]},
 "signatures": {"hs1": {"ed25519:1": "sig"}}, "c": 9007199254740991} "#;

/// Reads `text` with `read` as the parser's first value, after whitespace: what it gave
/// and where it stopped.
fn read_first<'t, T>(
    text: &'t [u8],
    read: impl FnOnce(&mut Parser<'t>) -> Result<T, ParseError>,
) -> (Result<T, ParseError>, usize) {
    let mut parser = Parser::new(text, Numbers::IntegerLiterals);
    parser.skip_whitespace();
    let result = read(&mut parser);
    (result, parser.pos)
}

/// `value` of an object without the members `keep` refuses; anything else as read.
fn value_without(text: &[u8], keep: fn(&str) -> bool) -> (Result<Value, ParseError>, usize) {
    let (mut read, pos) = read_first(text, Parser::value);
    if let Ok(Value::Object(object)) = &mut read {
        object.retain(|key, _| keep(key));
    }
    (read, pos)
}

fn keeping(text: &[u8], keep: fn(&str) -> bool) -> (Result<Value, ParseError>, usize) {
    read_first(text, |parser| match parser.peek() {
        Some(b'{') => parser.nested(|parser| parser.object_keeping(keep)),
        _ => parser.value(),
    })
}

fn unread(key: &str) -> bool {
    !matches!(key, "hashes" | "signatures" | "d")
}

#[test]
fn a_value_checked_is_accepted_and_refused_as_reading_it_is() {
    let valid = [CHECKED, "[]", "{}", " 0 ", "\"\"", "[[[]]]", r#"{"b":1,"a":{"b":1,"a":2}}"#];
    for text in valid {
        let (read, end) = read_first(text.as_bytes(), Parser::value);
        assert!(read.is_ok(), "{text}");
        assert_eq!(read_first(text.as_bytes(), Parser::check), (Ok(()), end), "{text}");
    }
    // A refusal in each place the checks mirror: a repeated key in order and out of it,
    // separators, escapes, numbers, literals, nesting, ends.
    let invalid = [
        r#"{"a":1,"a":2}"#,
        r#"{"b":1,"a":2,"b":3}"#,
        r#"{"c":{"x":1,"x":[}}"#,
        r#"{"a":1 "b":2}"#,
        r#"{"a":1,}"#,
        r#"[1,]"#,
        r#"[1 2]"#,
        r#"{"a":"\q"}"#,
        r#"{"a":"\ud800"}"#,
        r#"{"a":"\u12"}"#,
        "{\"a\":\"\u{1}\"}",
        r#"{"a":1.5}"#,
        r#"{"a":9007199254740992}"#,
        r#"{"a":tru}"#,
        r#"{"a" 1}"#,
        r#"{1:2}"#,
        r#"{"a":[1]"#,
        r#"{"a":"x"#,
        "",
    ];
    for text in invalid {
        let (read, end) = read_first(text.as_bytes(), Parser::value);
        let error = read.expect_err(text);
        assert_eq!(read_first(text.as_bytes(), Parser::check), (Err(error), end), "{text}");
    }
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    for n in [DEPTH_MAX as usize, DEPTH_MAX as usize + 1] {
        let text = deep(n);
        let (read, end) = read_first(text.as_bytes(), Parser::value);
        assert_eq!(read_first(text.as_bytes(), Parser::check), (read.map(drop), end), "depth {n}");
    }
}

#[test]
fn an_object_read_keeping_some_members_is_the_object_read_whole_without_the_others() {
    let (kept, end) = keeping(CHECKED.as_bytes(), unread);
    let kept = kept.unwrap();
    assert_eq!((Ok(kept.clone()), end), value_without(CHECKED.as_bytes(), unread));
    let keys: Vec<&String> = kept.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["a", "b", "c"]);
    // A member left out still counts for repeated keys, whether it or the kept one comes
    // first, in key order or out of it; its problems are refused where reading finds them.
    for text in [
        r#"{"a":1,"hashes":2,"hashes":{}}"#,
        r#"{"hashes":2,"a":1,"hashes":3}"#,
        r#"{"z":1,"d":[2],"a":3,"d":4}"#,
        r#"{"a":1,"signatures":{"x":[1,]}}"#,
        r#"{"signatures":"\x","a":1}"#,
    ] {
        let (read, end) = value_without(text.as_bytes(), unread);
        assert!(read.is_err(), "{text}");
        assert_eq!(keeping(text.as_bytes(), unread), (read, end), "{text}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

    /// Damaged texts are checked as they are read: the same acceptance, error and end;
    /// and an object read keeping some members is the whole object without the others,
    /// or refused with the same error.
    #[test]
    fn damaged_texts_are_checked_as_they_are_read(
        edits in damage_edits(400, b"{}[]\",:\\ a0-.eu\n", 0..4)
    ) {
        let text = damaged(CHECKED.as_bytes(), &edits);
        let (read, end) = read_first(&text, Parser::value);
        proptest::prop_assert_eq!(read_first(&text, Parser::check), (read.map(drop), end));
        proptest::prop_assert_eq!(keeping(&text, unread), value_without(&text, unread));
    }
}
