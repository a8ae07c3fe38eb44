//! Unit tests of the trace format: records, the header, parsing errors, hashing and metrics.

use super::*;

fn header() -> Header {
    Header {
        format: FORMAT.into(),
        scenario: "two".into(),
        seed: 7,
        mxsim_version: "0.1.0".into(),
        mxsim_build: String::new(),
        servers: vec!["hs1".into(), "hs2".into()],
        keys: Keys::new(),
        epoch_ms: 1_700_000_000_000,
        end_ms: 1000,
        healed_ms: 0,
        faults: vec![],
        check: CheckSettings {
            invariants: vec![Invariant::Dag],
            liveness_bound_ms: 5,
            expect: Expect::default(),
        },
        swarm: None,
    }
}

#[test]
fn round_trips_through_jsonl() {
    let trace = Trace::new(
        header(),
        vec![
            Record {
                t: 0,
                body: Body::Send {
                    msg: 0,
                    from: "hs1".into(),
                    to: "hs2".into(),
                    bytes: 10,
                    what: "PUT /x".into(),
                    request: None,
                },
            },
            Record {
                t: 3,
                body: Body::Drop { msg: 0, copy: 0, reason: DropReason::Partition { fault: 1 } },
            },
            Record {
                t: 4,
                body: Body::Event {
                    server: "hs1".into(),
                    room: "!r:hs1".into(),
                    event_id: Some("$a".into()),
                    decision: Decision::SoftFailed,
                    reason: Some("rule 4".into()),
                    pdu: None,
                },
            },
        ],
    );
    let bytes = trace.to_jsonl();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert_eq!(Trace::parse_jsonl(&text).unwrap(), trace);
    // The exact shape of a line (checked by hand against docs/trace.md).
    assert_eq!(
        text.lines().nth(2).unwrap(),
        r#"{"t":3,"type":"drop","msg":0,"copy":0,"reason":{"kind":"partition","fault":1}}"#
    );
    assert!(text.starts_with(r#"{"type":"header","format":"mxsim-trace/1","#));
    assert_eq!(trace.hash(), hash_bytes(&bytes));
    assert_eq!(trace.hash().len(), 64);
    // Kept: the event at its own line (4), the send and the drop only summed.
    let (kept, hash) = Trace::read_kept(&mut bytes.as_slice()).unwrap();
    assert_eq!(hash, trace.hash());
    assert_eq!(kept.records.to_vec(), trace.records.iter().skip(2).cloned().collect::<Vec<_>>());
    let info = kept.kept.as_ref().unwrap();
    assert_eq!((info.lines.clone(), info.total), (vec![4], 3));
    assert_eq!((info.net.sent, info.net.bytes, info.net.lost), (1, 10, 1));
    assert_eq!(info.net, *trace.net());
    assert_eq!(kept.record_at_line(4), Some(&trace.records[2]));
    assert_eq!((kept.record_at_line(2), kept.record_count()), (None, 3));
    assert!(kept.write_jsonl(&mut Vec::new()).is_err(), "a kept trace has no whole text");
}

#[test]
fn faults_are_typed_and_written_with_sorted_keys() {
    let mut with_fault = header();
    with_fault.faults = vec![Fault::OneWay {
        start: crate::stdx::Instant { ms: 1 },
        end: crate::stdx::Instant { ms: 5 },
        from: NodeName::new("hs1").unwrap(),
        to: NodeName::new("hs2").unwrap(),
    }];
    let line = with_fault.to_line();
    // The keys in sorted order, as docs/trace.md shows them (written out by hand).
    assert!(
        line.contains(
            r#""faults":[{"end_ms":5,"from":"hs1","start_ms":1,"to":"hs2","type":"one_way"}]"#
        ),
        "{line}"
    );
    assert_eq!(Trace::parse_jsonl(&sealed(&[&line])).unwrap().header, with_fault);
    // A field `net` does not know is refused, naming the header's line.
    let bad = line.replace(r#""to":"hs2","#, r#""to":"hs2","loss":"1/2","#);
    let error = Trace::parse_jsonl(&sealed(&[&bad])).unwrap_err();
    assert_eq!(error.line, 1);
    assert!(error.problem.contains("bad header"), "{error}");
    assert!(error.problem.contains("loss"), "{error}");
}

#[test]
fn the_build_identifier_is_recorded_but_not_hashed() {
    let record = Record { t: 5, body: Body::FaultStart { fault: 0 } };
    let without = Trace::new(header(), vec![record]);
    let mut with = without.clone();
    with.header.mxsim_build = "0.1.0+0123456789abcdef".into();
    let mut other = without.clone();
    other.header.mxsim_build = "0.1.0+fedcba9876543210".into();
    let bytes = with.to_jsonl();
    let text = String::from_utf8(bytes.clone()).unwrap();
    // Written beside the version, and read back.
    assert!(
        text.contains(
            r#""mxsim_version":"0.1.0","mxsim_build":"0.1.0+0123456789abcdef","servers""#
        )
    );
    assert_eq!(Trace::parse_jsonl(&text).unwrap(), with);
    assert_ne!(bytes, other.to_jsonl());
    // Hashed as if the member were not there: the same hash for every build, and the
    // end record is the one of the trace without it.
    assert_eq!(with.hash(), without.hash());
    assert_eq!(other.hash(), without.hash());
    assert_ne!(with.hash(), hash_bytes(&bytes));
    let cut = text.replace(r#""mxsim_build":"0.1.0+0123456789abcdef","#, "");
    assert_eq!(cut.as_bytes(), without.to_jsonl());
    assert_eq!(with.hash(), hash_bytes(cut.as_bytes()));
    // The build identifier is not covered by the end record, but every other byte is.
    let rebuilt = text.replace("0123456789abcdef", "0000000000000000");
    assert!(Trace::parse_jsonl(&rebuilt).is_ok());
    let changed = text.replace(r#""seed":7"#, r#""seed":8"#);
    assert!(Trace::parse_jsonl(&changed).unwrap_err().problem.contains("not the SHA-256"));
    // This build's identifier is the version and 16 hex digits.
    let (version, hex) = BUILD.split_once('+').unwrap();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    assert_eq!(hex.len(), 16);
    assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
}

#[test]
fn the_hash_is_sha256_of_the_bytes() {
    // SHA-256 of "abc" (FIPS 180-2 test vector).
    assert_eq!(
        hash_bytes(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

/// `lines`, each with its newline, and an end record computed by hand: the count of
/// lines after the header and the SHA-256 of the bytes before it.
fn sealed(lines: &[&str]) -> String {
    let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let hash = hash_bytes(text.as_bytes());
    let records = lines.len().saturating_sub(1);
    text.push_str(&format!("{{\"type\":\"end\",\"records\":{records},\"hash\":\"{hash}\"}}\n"));
    text
}

#[test]
fn bad_lines_name_their_line() {
    let good = header().to_line();
    for (text, line, needle) in [
        (sealed(&[]), 1, "empty"),
        (sealed(&["{}"]), 1, "bad header"),
        (sealed(&[&good, r#"{"t":1,"type":"nope"}"#]), 2, "bad record"),
        (
            sealed(&[
                &good,
                r#"{"t":5,"type":"fault_start","fault":0}"#,
                r#"{"t":4,"type":"fault_end","fault":0}"#,
            ]),
            3,
            "time goes back",
        ),
        (sealed(&[&good, "not json"]), 2, "bad record"),
    ] {
        let error = Trace::parse_jsonl(&text).unwrap_err();
        assert_eq!(error.line, line, "{text}");
        assert!(error.problem.contains(needle), "{error}");
        assert_eq!(Trace::read_kept(&mut text.as_bytes()).unwrap_err(), error, "{text}");
    }
    let wrong_format = good.replace(FORMAT, "other/9");
    let error = Trace::parse_jsonl(&sealed(&[&wrong_format])).unwrap_err();
    assert!(error.problem.contains("format"), "{error}");
}

#[test]
fn a_trace_without_a_valid_end_record_is_incomplete() {
    let good = header().to_line();
    let record = r#"{"t":5,"type":"fault_start","fault":0}"#;
    let whole = sealed(&[&good, record]);
    assert_eq!(Trace::parse_jsonl(&whole).unwrap().records.len(), 1);
    // The writer's bytes are the hand-sealed ones.
    let trace = Trace::parse_jsonl(&whole).unwrap();
    assert_eq!(String::from_utf8(trace.to_jsonl()).unwrap(), whole);
    let hash = hash_bytes(format!("{good}\n{record}\n").as_bytes());
    assert!(whole.ends_with(&format!("{{\"type\":\"end\",\"records\":1,\"hash\":\"{hash}\"}}\n")));
    for (text, line, needle) in [
        (String::new(), 1, "no end record"),
        (format!("{good}\n"), 1, "no end record"),
        (format!("{good}\n{record}\n"), 2, "no end record"),
        (whole.trim_end().to_owned(), 3, "no final newline"),
        (whole.replace("\"records\":1", "\"records\":2"), 3, "counts 2 records, the file has 1"),
        (whole.replace(&hash, &"a".repeat(64)), 3, "not the SHA-256"),
        (whole.replace("\"fault\":0", "\"fault\":1"), 3, "not the SHA-256"),
        (
            whole.replace("}\n{\"type\":\"end\"", "}\n{\"type\":\"end\",\"x\":1"),
            3,
            "bad end record",
        ),
    ] {
        let error = Trace::parse_jsonl(&text).unwrap_err();
        assert_eq!(error.line, line, "{text}");
        assert!(error.problem.starts_with("trace is incomplete: "), "{error}");
        assert!(error.problem.contains(needle), "{error}");
        assert_eq!(Trace::read_kept(&mut text.as_bytes()).unwrap_err(), error, "{text}");
    }
    // A bad record before a valid end record: the record is named, by both readers.
    let bad = sealed(&[&good, record, "{}", record]);
    let error = Trace::parse_jsonl(&bad).unwrap_err();
    assert_eq!((error.line, error.problem.contains("bad record")), (3, true), "{error}");
    assert_eq!(Trace::read_kept(&mut bad.as_bytes()).unwrap_err(), error);
    // A line past the limit is refused without reading it whole.
    let long = format!("{good}\n{{\"t\":1,\"x\":\"{}", "a".repeat(LINE_BYTES_MAX));
    let error = Trace::read_kept(&mut long.as_bytes()).unwrap_err();
    assert_eq!(error.line, 2);
    assert!(error.problem.contains("longer than"), "{}", error.problem);
}

#[test]
fn a_trace_written_a_line_at_a_time_hashes_as_its_bytes() {
    let mut trace = Trace::new(header(), vec![]);
    trace.header.mxsim_build = "0.1.0+0123456789abcdef".into();
    for msg in 0..50 {
        let body = Body::Deliver { msg, copy: 0 };
        trace.records.push(Record { t: msg * 3, body });
    }
    let mut written = Vec::new();
    let hash = trace.write_jsonl(&mut written).unwrap();
    // The same bytes as in memory, and the hash of those bytes by the one-shot function
    // (which cuts the build member out of the whole text).
    assert_eq!(written, trace.to_jsonl());
    assert_eq!(hash, hash_jsonl(&written));
    assert_eq!(hash, trace.hash());
    // The end record's hash is that of everything before it.
    let text = String::from_utf8(written).unwrap();
    let body_end = text.trim_end_matches('\n').rfind('\n').unwrap() + 1;
    let end: serde_json::Value = serde_json::from_str(text[body_end..].trim_end()).unwrap();
    assert_eq!(end["hash"], hash_jsonl(&text.as_bytes()[..body_end]));
    assert_eq!(end["records"], 50);
    // And the build identifier is not part of it.
    let mut other = trace.clone();
    other.header.mxsim_build = "0.1.0+fedcba9876543210".into();
    assert_eq!(other.hash(), hash);
    assert!(Trace::parse_jsonl(&text).is_ok());
}

#[test]
fn a_spooled_trace_is_the_whole_traces_file_whatever_pieces_the_spool_comes_in() {
    let records: Vec<Record> =
        (0..40).map(|n| Record { t: n, body: Body::Deliver { msg: n * 1000, copy: 0 } }).collect();
    let whole = Trace::new(header(), records.clone());
    let mut spool = Vec::new();
    for record in &records {
        spool.extend_from_slice(record.to_line().as_bytes());
        spool.push(b'\n');
    }
    // Buffers of 1, 7 and 64 bytes end inside lines; the records are counted all the same.
    for capacity in [1, 7, 64, 1 << 20] {
        let mut reader = std::io::BufReader::with_capacity(capacity, spool.as_slice());
        let mut file = Vec::new();
        let hash =
            write_spooled(&whole.header, whole.record_count(), &mut reader, &mut file).unwrap();
        assert!(file == whole.to_jsonl(), "buffers of {capacity} bytes");
        assert_eq!(hash, whole.hash(), "buffers of {capacity} bytes");
    }
    // No records: the header and the end record.
    let mut empty = Vec::new();
    let hash = write_spooled(&header(), 0, &mut [].as_slice(), &mut empty).unwrap();
    let none = Trace::new(header(), vec![]);
    assert!(empty == none.to_jsonl());
    assert_eq!(hash, none.hash());
    // A spool cut inside its last line is refused.
    let cut = &spool[..spool.len() - 1];
    let error =
        write_spooled(&header(), whole.record_count(), &mut &cut[..], &mut Vec::new()).unwrap_err();
    assert!(error.to_string().contains("no newline"), "{error}");
    // A spool of another number of records than the run counted is refused (debug builds,
    // which count them again).
    let more = whole.record_count() + 1;
    let error = write_spooled(&header(), more, &mut spool.as_slice(), &mut Vec::new()).unwrap_err();
    assert!(error.to_string().contains("records, not the run's"), "{error}");
}

#[test]
fn a_streamed_trace_is_the_whole_traces_file_when_its_header_was_expected() {
    let records: Vec<Record> =
        (0..40).map(|n| Record { t: n, body: Body::Deliver { msg: n * 1000, copy: 0 } }).collect();
    let whole = Trace::new(header(), records.clone());
    let mut lines = Vec::new();
    for record in &records {
        lines.extend_from_slice(record.to_line().as_bytes());
        lines.push(b'\n');
    }
    // Pieces of 1, 7 and 64 bytes end inside lines; the records are counted all the same.
    for piece in [1, 7, 64, 1 << 20] {
        let mut stream = StreamedHash::start(&whole.header);
        let mut file = format!("{}\n", stream.header_line()).into_bytes();
        for chunk in lines.chunks(piece) {
            stream.lines(chunk);
            file.extend_from_slice(chunk);
        }
        let (end, hash) = stream.finish(&whole.header, 40).unwrap().expect("the same header");
        file.extend_from_slice(end.as_bytes());
        assert!(file == whole.to_jsonl(), "pieces of {piece} bytes");
        // The hash of the file written whole, and the one its own end record implies.
        assert_eq!(hash, whole.hash(), "pieces of {piece} bytes");
        assert_eq!(hash, hash_jsonl(&file), "pieces of {piece} bytes");
    }
    // The build may differ: it is no part of the hash, but it is of the file.
    let mut built = whole.header.clone();
    built.mxsim_build = "0.1.0+fedcba9876543210".into();
    let mut stream = StreamedHash::start(&whole.header);
    stream.lines(&lines);
    assert!(stream.finish(&built, 40).unwrap().is_none(), "the file's first line would differ");
    // Another header (the run's expectations filled in, a later end): written again.
    let changes: [fn(&mut Header); 3] =
        [|h| h.end_ms += 1, |h| h.healed_ms += 1, |h| h.servers.push("hs9".into())];
    for change in changes {
        let mut other = whole.header.clone();
        change(&mut other);
        let mut stream = StreamedHash::start(&whole.header);
        stream.lines(&lines);
        assert!(stream.finish(&other, 40).unwrap().is_none());
    }
    // No records: the header and the end record.
    let stream = StreamedHash::start(&header());
    let (end, hash) = stream.finish(&header(), 0).unwrap().unwrap();
    let none = Trace::new(header(), vec![]);
    assert!(format!("{}\n{end}", header().to_line()).into_bytes() == none.to_jsonl());
    assert_eq!(hash, none.hash());
    // Lines cut inside the last one are refused.
    let mut stream = StreamedHash::start(&whole.header);
    stream.lines(&lines[..lines.len() - 1]);
    let error = stream.finish(&whole.header, 40).unwrap_err();
    assert!(error.to_string().contains("no newline"), "{error}");
    // Another number of records than the run counted is refused (debug builds, which
    // count them again).
    let mut stream = StreamedHash::start(&whole.header);
    stream.lines(&lines);
    let error = stream.finish(&whole.header, 41).unwrap_err();
    assert!(error.to_string().contains("records, not the run's"), "{error}");
}

#[test]
fn newlines_are_counted_in_any_bytes() {
    // Every byte value next to newlines and not, at every offset of the eight-byte words.
    let mut bytes = Vec::new();
    for b in 0..=255u8 {
        bytes.extend_from_slice(&[b, b'\n', b, b.wrapping_add(1), b'\n', b'\n', 0x0b, 0x09, b]);
    }
    for start in 0..9 {
        for end in bytes.len() - 9..=bytes.len() {
            let slice = &bytes[start..end];
            let expected = slice.iter().filter(|&&b| b == b'\n').count() as u64;
            assert_eq!(newlines(slice), expected, "{start}..{end}");
        }
    }
    assert_eq!(newlines(b""), 0);
    assert_eq!(newlines(&[b'\n'; 17]), 17);
}

#[test]
fn the_boxed_kinds_read_and_write_as_the_others_and_refuse_unknown_fields() {
    let lines = [
        r#"{"t":3,"type":"action_failed","server":"hs1","action":"join !r by @a:hs1","reason":"no","step":2,"line":9}"#,
        r#"{"t":4,"type":"final","server":"hs1","room":"!r:hs1","joined":true,"forward_extremities":["$e"],"state":{},"state_hash":"H","events":3}"#,
        r#"{"t":4,"type":"linearized","server":"hs1","room":"!r:hs1","lpdu_id":"$l","event_id":"$e","origin":"hs2"}"#,
    ];
    for line in lines {
        let record: Record = serde_json::from_str(line).unwrap();
        assert_eq!(record.to_line(), line, "written back as read");
        // The field that follows `type` in each, renamed: an unknown field.
        let unknown = line.replacen(",\"server\":", ",\"servr\":", 1);
        let error = serde_json::from_str::<Record>(&unknown).unwrap_err().to_string();
        assert!(error.contains("servr"), "{unknown}: {error}");
    }
    let boxed: Record = serde_json::from_str(lines[1]).unwrap();
    assert!(
        matches!(&boxed.body, Body::Final(view) if view.events == 3 && view.waiting.is_empty())
    );
}

/// A run keeps a million and more records at a thousand servers, and a record is as large
/// as its largest kind: the rare kinds with many fields (`final`, `action_failed`) are
/// boxed, and the others name their texts shared, so that none is larger than an `event`
/// record. 168 bytes, then 136, now 104; a kind that grows past that fails here.
#[cfg(target_pointer_width = "64")]
#[test]
fn a_record_stays_small() {
    assert!(std::mem::size_of::<Record>() <= 104, "{} bytes", std::mem::size_of::<Record>());
}
