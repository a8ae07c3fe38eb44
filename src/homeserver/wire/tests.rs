//! Tests of the wire format: the spec's paths and bodies for every endpoint, the error
//! response for each kind of malformed input, size limits, and round trips.

use std::sync::Arc;

use super::*;
use serde_json::json;

use crate::matrix::canonical_json;

fn object(value: Value) -> Object {
    match value {
        Value::Object(object) => object,
        _ => panic!("not an object"),
    }
}

fn event_id(text: &str) -> EventId {
    EventId::parse(text).unwrap()
}

fn http(method: Method, target: &str, body: Option<&str>) -> HttpRequest {
    HttpRequest {
        method,
        path_and_query: target.to_owned(),
        body: body.map(|b| b.as_bytes().to_vec().into()),
    }
}

/// Encodes `request`, checks the exact method, target and body, and decodes it back.
fn check_encoding(request: Request, method: Method, target: &str, body: Option<&str>) {
    let encoded = request.to_http();
    assert_eq!(encoded.method, method);
    assert_eq!(encoded.path_and_query, target);
    assert_eq!(encoded.body.as_deref().map(|b| std::str::from_utf8(b).unwrap()), body);
    assert_eq!(Request::from_http(&encoded).unwrap(), request);
}

/// Decodes a request that must fail with `status` and `errcode`.
fn check_refused(method: Method, target: &str, body: Option<&str>, status: u16, errcode: &str) {
    let error = Request::from_http(&http(method, target, body)).unwrap_err();
    let response = error.to_error_response();
    assert_eq!(
        (response.status, response.errcode.as_str()),
        (status, errcode),
        "{method} {target}: {error}"
    );
    // The error response itself encodes and decodes for any endpoint.
    let encoded = error.to_response().to_http();
    assert_eq!(encoded.status, status);
    for endpoint in Endpoint::ALL {
        assert_eq!(Response::from_http(endpoint, &encoded).unwrap(), error.to_response());
    }
}

fn pdu_stub(n: i64) -> Object {
    object(json!({"type": "m.room.message", "depth": n}))
}

#[test]
fn every_retrieval_endpoint_encodes_to_the_spec_path() {
    let room = "!r:hs1".to_owned();
    check_encoding(
        Request::SendTransaction {
            txn_id: "17.0".into(),
            transaction: Transaction {
                origin: "hs1".into(),
                origin_server_ts: 1000,
                pdus: vec![pdu_stub(1)],
                edus: vec![Edu { edu_type: "m.typing".into(), content: Object::new() }],
            },
        },
        Method::Put,
        "/_matrix/federation/v1/send/17.0",
        Some(
            r#"{"edus":[{"content":{},"edu_type":"m.typing"}],"origin":"hs1","origin_server_ts":1000,"pdus":[{"depth":1,"type":"m.room.message"}]}"#,
        ),
    );
    check_encoding(
        Request::GetEvent { event_id: event_id("$e/1") },
        Method::Get,
        "/_matrix/federation/v1/event/%24e%2F1",
        None,
    );
    check_encoding(
        Request::GetStateIds { room_id: room.clone(), event_id: event_id("$e") },
        Method::Get,
        "/_matrix/federation/v1/state_ids/%21r%3Ahs1?event_id=%24e",
        None,
    );
    check_encoding(
        Request::GetState { room_id: room.clone(), event_id: event_id("$e") },
        Method::Get,
        "/_matrix/federation/v1/state/%21r%3Ahs1?event_id=%24e",
        None,
    );
    check_encoding(
        Request::GetEventAuth { room_id: room.clone(), event_id: event_id("$e") },
        Method::Get,
        "/_matrix/federation/v1/event_auth/%21r%3Ahs1/%24e",
        None,
    );
    check_encoding(
        Request::Backfill {
            room_id: room.clone(),
            v: vec![event_id("$a"), event_id("$b")],
            limit: 20,
        },
        Method::Get,
        "/_matrix/federation/v1/backfill/%21r%3Ahs1?v=%24a&v=%24b&limit=20",
        None,
    );
    check_encoding(
        Request::GetMissingEvents {
            room_id: room.clone(),
            earliest_events: vec![event_id("$a")],
            latest_events: vec![event_id("$b")],
            limit: 10,
            min_depth: 0,
        },
        Method::Post,
        "/_matrix/federation/v1/get_missing_events/%21r%3Ahs1",
        Some(r#"{"earliest_events":["$a"],"latest_events":["$b"]}"#),
    );
    check_encoding(
        Request::GetMissingEvents {
            room_id: room.clone(),
            earliest_events: vec![],
            latest_events: vec![event_id("$b")],
            limit: 20,
            min_depth: 7,
        },
        Method::Post,
        "/_matrix/federation/v1/get_missing_events/%21r%3Ahs1",
        Some(r#"{"earliest_events":[],"latest_events":["$b"],"limit":20,"min_depth":7}"#),
    );
}

#[test]
fn every_membership_endpoint_encodes_to_the_spec_path() {
    let room = "!r:hs1".to_owned();
    let alice = "@alice:hs2".to_owned();
    check_encoding(
        Request::MakeJoin {
            room_id: room.clone(),
            user_id: alice.clone(),
            ver: vec!["11".into(), "12".into()],
        },
        Method::Get,
        "/_matrix/federation/v1/make_join/%21r%3Ahs1/%40alice%3Ahs2?ver=11&ver=12",
        None,
    );
    check_encoding(
        Request::SendJoin {
            room_id: room.clone(),
            event_id: event_id("$j"),
            omit_members: true,
            pdu: pdu_stub(3),
        },
        Method::Put,
        "/_matrix/federation/v2/send_join/%21r%3Ahs1/%24j?omit_members=true",
        Some(r#"{"depth":3,"type":"m.room.message"}"#),
    );
    check_encoding(
        Request::Invite {
            room_id: room.clone(),
            event_id: event_id("$i"),
            room_version: "12".into(),
            event: pdu_stub(4),
            invite_room_state: vec![pdu_stub(1)],
        },
        Method::Put,
        "/_matrix/federation/v2/invite/%21r%3Ahs1/%24i",
        Some(
            r#"{"event":{"depth":4,"type":"m.room.message"},"invite_room_state":[{"depth":1,"type":"m.room.message"}],"room_version":"12"}"#,
        ),
    );
    check_encoding(
        Request::MakeLeave { room_id: room.clone(), user_id: alice.clone() },
        Method::Get,
        "/_matrix/federation/v1/make_leave/%21r%3Ahs1/%40alice%3Ahs2",
        None,
    );
    check_encoding(
        Request::SendLeave { room_id: room.clone(), event_id: event_id("$l"), pdu: pdu_stub(5) },
        Method::Put,
        "/_matrix/federation/v2/send_leave/%21r%3Ahs1/%24l",
        Some(r#"{"depth":5,"type":"m.room.message"}"#),
    );
    check_encoding(
        Request::MakeKnock { room_id: room.clone(), user_id: alice, ver: vec!["12".into()] },
        Method::Get,
        "/_matrix/federation/v1/make_knock/%21r%3Ahs1/%40alice%3Ahs2?ver=12",
        None,
    );
    check_encoding(
        Request::SendKnock { room_id: room, event_id: event_id("$k"), pdu: pdu_stub(6) },
        Method::Put,
        "/_matrix/federation/v1/send_knock/%21r%3Ahs1/%24k",
        Some(r#"{"depth":6,"type":"m.room.message"}"#),
    );
}

#[test]
fn decoding_is_lenient_where_http_is() {
    // Literal `!`, `$`, `:`, `@` in the path, lower-case escapes, `+` as a space in the
    // query, an unknown query parameter, defaults for omitted body fields.
    let request = Request::from_http(&http(
        Method::Post,
        "/_matrix/federation/v1/get_missing_events/!r:hs1?x=%7e",
        Some(r#" {"earliest_events": [], "latest_events": ["$b"], "extra": 1} "#),
    ))
    .unwrap();
    assert_eq!(
        request,
        Request::GetMissingEvents {
            room_id: "!r:hs1".into(),
            earliest_events: vec![],
            latest_events: vec![event_id("$b")],
            limit: GET_MISSING_EVENTS_DEFAULT_LIMIT,
            min_depth: GET_MISSING_EVENTS_DEFAULT_MIN_DEPTH,
        }
    );
    let request = Request::from_http(&http(
        Method::Get,
        "/_matrix/federation/v1/make_join/!r:hs1/@alice:hs2",
        Some("ignored: GET bodies mean nothing"),
    ))
    .unwrap();
    // No `ver`: the spec's default applies, which the receiver reads from the constant.
    assert_eq!(
        request,
        Request::MakeJoin { room_id: "!r:hs1".into(), user_id: "@alice:hs2".into(), ver: vec![] }
    );
    let request = Request::from_http(&http(
        Method::Get,
        "/_matrix/federation/v1/state_ids/%21r%3ahs1?event_id=%24a+b",
        None,
    ))
    .unwrap();
    assert_eq!(
        request,
        Request::GetStateIds { room_id: "!r:hs1".into(), event_id: event_id("$a b") }
    );
}

// One table of cases, one line each: it reads best whole, so it stays longer than 100 lines.
#[test]
fn malformed_requests_get_the_spec_error() {
    use Method::{Get, Post, Put};
    let send = "/_matrix/federation/v1/send/t1";
    let txn = |pdus: usize, edus: usize| {
        let pdus: Vec<Value> = (0..pdus).map(|_| json!({})).collect();
        let edus: Vec<Value> =
            (0..edus).map(|_| json!({"edu_type": "m.typing", "content": {}})).collect();
        json!({"origin": "hs1", "origin_server_ts": 1, "pdus": pdus, "edus": edus}).to_string()
    };
    let cases: &[(Method, &str, Option<&str>, u16, &str)] = &[
        (Get, "/_matrix/federation/v1/nope/x", None, 404, "M_UNRECOGNIZED"),
        (Get, "/_matrix/client/v3/sync", None, 404, "M_UNRECOGNIZED"),
        (Get, "/_matrix/federation/v1", None, 404, "M_UNRECOGNIZED"),
        (Put, "/_matrix/federation/v1/send_join/!r:h/$e", Some("{}"), 404, "M_UNRECOGNIZED"),
        (Get, "/_matrix/federation/v1/send/t1/extra", None, 404, "M_UNRECOGNIZED"),
        (Get, send, None, 405, "M_UNRECOGNIZED"),
        (Post, send, Some("{}"), 405, "M_UNRECOGNIZED"),
        (Method::Delete, "/_matrix/federation/v1/event/$e", None, 405, "M_UNRECOGNIZED"),
        (Get, "/_matrix/federation/v1/event/$e%2", None, 400, "M_INVALID_PARAM"),
        (Get, "/_matrix/federation/v1/event/$e%zz", None, 400, "M_INVALID_PARAM"),
        (Get, "/_matrix/federation/v1/event/$%ff", None, 400, "M_INVALID_PARAM"),
        (Get, "/_matrix/federation/v1/event/$a b", None, 400, "M_INVALID_PARAM"),
        (Get, "/_matrix/federation/v1/event/$é", None, 400, "M_INVALID_PARAM"),
        (Get, "/_matrix/federation/v1/event/nodollar", None, 400, "M_INVALID_PARAM"),
        (Get, "/_matrix/federation/v1/event/", None, 400, "M_INVALID_PARAM"),
        (Get, "/_matrix/federation/v1/state/!r:h", None, 400, "M_MISSING_PARAM"),
        (
            Get,
            "/_matrix/federation/v1/state/!r:h?event_id=$a&event_id=$b",
            None,
            400,
            "M_INVALID_PARAM",
        ),
        (Get, "/_matrix/federation/v1/state/r:h?event_id=$a", None, 400, "M_INVALID_PARAM"),
        (Get, "/_matrix/federation/v1/backfill/!r:h?limit=5", None, 400, "M_MISSING_PARAM"),
        (Get, "/_matrix/federation/v1/backfill/!r:h?v=$a", None, 400, "M_MISSING_PARAM"),
        (Get, "/_matrix/federation/v1/backfill/!r:h?v=$a&limit=-1", None, 400, "M_INVALID_PARAM"),
        (
            Get,
            "/_matrix/federation/v1/backfill/!r:h?v=$a&limit=9007199254740992",
            None,
            400,
            "M_INVALID_PARAM",
        ),
        (Get, "/_matrix/federation/v1/make_knock/!r:h/@a:h", None, 400, "M_MISSING_PARAM"),
        (Get, "/_matrix/federation/v1/make_join/!r:h/@a:h?ver=V1", None, 400, "M_INVALID_PARAM"),
        (Get, "/_matrix/federation/v1/make_join/!r:h/alice", None, 400, "M_INVALID_PARAM"),
        (
            Put,
            "/_matrix/federation/v2/send_join/!r:h/$e?omit_members=yes",
            Some("{}"),
            400,
            "M_INVALID_PARAM",
        ),
        (Put, send, None, 400, "M_NOT_JSON"),
        (Put, send, Some(""), 400, "M_NOT_JSON"),
        (Put, send, Some("[]"), 400, "M_NOT_JSON"),
        (Put, send, Some(r#"{"a":1,"a":2}"#), 400, "M_NOT_JSON"),
        (
            Put,
            send,
            Some(r#"{"origin":"hs1","origin_server_ts":1.5,"pdus":[]}"#),
            400,
            "M_NOT_JSON",
        ),
        (Put, send, Some(r#"{"origin_server_ts":1,"pdus":[]}"#), 400, "M_MISSING_PARAM"),
        (Put, send, Some(r#"{"origin":"hs1","origin_server_ts":1}"#), 400, "M_MISSING_PARAM"),
        (
            Put,
            send,
            Some(r#"{"origin":"hs1","origin_server_ts":"1","pdus":[]}"#),
            400,
            "M_BAD_JSON",
        ),
        (Put, send, Some(r#"{"origin":"hs 1","origin_server_ts":1,"pdus":[]}"#), 400, "M_BAD_JSON"),
        (Put, send, Some(r#"{"origin":"hs1","origin_server_ts":1,"pdus":[1]}"#), 400, "M_BAD_JSON"),
        (
            Put,
            send,
            Some(r#"{"origin":"hs1","origin_server_ts":1,"pdus":[],"edus":[{"edu_type":"x"}]}"#),
            400,
            "M_MISSING_PARAM",
        ),
        (
            Put,
            send,
            Some(
                r#"{"origin":"hs1","origin_server_ts":1,"pdus":[],"edus":[{"edu_type":1,"content":{}}]}"#,
            ),
            400,
            "M_BAD_JSON",
        ),
        (Put, send, Some(&txn(51, 0)), 400, "M_BAD_JSON"),
        (Put, send, Some(&txn(0, 101)), 400, "M_BAD_JSON"),
        (
            Put,
            "/_matrix/federation/v2/invite/!r:h/$e",
            Some(r#"{"event":{}}"#),
            400,
            "M_MISSING_PARAM",
        ),
        (
            Put,
            "/_matrix/federation/v2/invite/!r:h/$e",
            Some(r#"{"event":{},"room_version":"X"}"#),
            400,
            "M_BAD_JSON",
        ),
        (
            Post,
            "/_matrix/federation/v1/get_missing_events/!r:h",
            Some(r#"{"earliest_events":[],"latest_events":[],"limit":-1}"#),
            400,
            "M_BAD_JSON",
        ),
        (
            Post,
            "/_matrix/federation/v1/get_missing_events/!r:h",
            Some(r#"{"earliest_events":[],"latest_events":["x"]}"#),
            400,
            "M_BAD_JSON",
        ),
    ];
    for (method, target, body, status, errcode) in cases {
        check_refused(*method, target, *body, *status, errcode);
    }
    // Exactly at the limits is fine.
    assert!(Request::from_http(&http(Put, send, Some(&txn(50, 100)))).is_ok());
}

#[test]
fn oversized_input_is_refused_before_it_is_parsed() {
    let long_target = format!("/_matrix/federation/v1/event/${}", "a".repeat(TARGET_BYTES_MAX));
    check_refused(Method::Get, &long_target, None, 414, "M_TOO_LARGE");
    let huge = vec![b' '; REQUEST_BODY_BYTES_MAX + 1];
    let request = HttpRequest {
        method: Method::Put,
        path_and_query: "/_matrix/federation/v1/send/t".into(),
        body: Some(huge.into()),
    };
    let error = Request::from_http(&request).unwrap_err();
    assert_eq!(error.to_error_response().status, 413);
    assert_eq!(error.to_error_response().errcode, ErrCode::TooLarge);
    let response = HttpResponse { status: 200, body: vec![b' '; RESPONSE_BODY_BYTES_MAX + 1] };
    assert!(matches!(
        Response::from_http(Endpoint::GetEvent, &response),
        Err(WireError::BodyTooLarge { .. })
    ));
}

#[test]
fn what_is_accepted_can_be_sent_on() {
    // A target of literal `$` fits the limit as received but not as re-encoded (`%24`):
    // it is refused, because mxsim could not have sent it.
    let ids: Vec<String> = (0..1000).map(|_| "v=$$$$$$$$$$$$".to_owned()).collect();
    let target = format!("/_matrix/federation/v1/backfill/!r:h?{}&limit=1", ids.join("&"));
    assert!(target.len() <= TARGET_BYTES_MAX);
    let error = Request::from_http(&http(Method::Get, &target, None)).unwrap_err();
    assert!(matches!(error, WireError::TargetTooLong { .. }), "{error}");
    // A body without its optional fields does not grow when re-encoded.
    let body = r#"{"earliest_events":[],"latest_events":[]}"#;
    let request = Request::from_http(&http(
        Method::Post,
        "/_matrix/federation/v1/get_missing_events/!r:h",
        Some(body),
    ))
    .unwrap();
    assert_eq!(*request.to_http().body.unwrap(), *body.as_bytes());
    let error = HttpResponse { status: 403, body: br#"{"errcode":"M_FORBIDDEN"}"#.to_vec() };
    let decoded = Response::from_http(Endpoint::GetState, &error).unwrap();
    assert_eq!(decoded.to_http(), error);
}

#[test]
fn responses_decode_by_endpoint() {
    let decode = |endpoint, status, body: Value| {
        Response::from_http(endpoint, &HttpResponse { status, body: body.to_string().into_bytes() })
    };
    let results = decode(
        Endpoint::SendTransaction,
        200,
        json!({"pdus": {"$ok": {}, "$bad": {"error": "not allowed"}}}),
    )
    .unwrap();
    let Response::SendTransaction { pdus } = &results else { panic!("{results:?}") };
    assert_eq!(pdus[&event_id("$ok")], Ok(()));
    assert_eq!(pdus[&event_id("$bad")], Err("not allowed".to_owned()));
    // A bad entry is named by its path.
    for (pdus, path, problem) in [
        (json!({"$ok": {}, "$x": 5}), "$.pdus[\"$x\"]", "must be an object"),
        (json!({"$x": {"error": 5}}), "$.pdus[\"$x\"].error", "must be a string"),
    ] {
        let error = decode(Endpoint::SendTransaction, 200, json!({ "pdus": pdus })).unwrap_err();
        let expected = WireError::BadJson { path: path.into(), problem: problem.into() };
        assert_eq!(error, expected);
    }
    let error = decode(Endpoint::SendTransaction, 200, json!({"pdus": {"x": {}}})).unwrap_err();
    assert!(matches!(&error, WireError::BadJson { path, .. } if path == "$.pdus.x"), "{error:?}");
    assert_eq!(
        Response::from_http(Endpoint::SendTransaction, &results.to_http()).unwrap(),
        results
    );

    let error = decode(
        Endpoint::MakeJoin,
        400,
        json!({"errcode": "M_INCOMPATIBLE_ROOM_VERSION", "error": "no", "room_version": "12"}),
    )
    .unwrap();
    assert_eq!(
        error,
        Response::Error(ErrorResponse {
            status: 400,
            errcode: ErrCode::IncompatibleRoomVersion,
            error: "no".into(),
            room_version: Some("12".into()),
        })
    );
    let other = decode(Endpoint::GetEvent, 500, json!({"errcode": "ORG_X"})).unwrap();
    assert_eq!(other, Response::Error(ErrorResponse::new(500, ErrCode::Other("ORG_X".into()), "")));

    // Malformed answers are errors, not panics.
    let bad: &[(Endpoint, u16, Value)] = &[
        (Endpoint::GetEvent, 302, json!({})),
        (Endpoint::GetEvent, 201, json!({})),
        (Endpoint::GetEvent, 404, json!({"error": "no code"})),
        (Endpoint::GetEvent, 200, json!({"origin": "hs1", "origin_server_ts": 1, "pdus": []})),
        (
            Endpoint::GetEvent,
            200,
            json!({"origin": "hs1", "origin_server_ts": 1, "pdus": [{}, {}]}),
        ),
        (Endpoint::SendTransaction, 200, json!({"pdus": {"nodollar": {}}})),
        (Endpoint::SendTransaction, 200, json!({"pdus": {"$e": {"error": 1}}})),
        (Endpoint::SendTransaction, 200, json!({})),
        (Endpoint::GetStateIds, 200, json!({"pdu_ids": []})),
        (Endpoint::GetState, 200, json!({"pdus": [], "auth_chain": [[]]})),
        (Endpoint::MakeKnock, 200, json!({"event": {}})),
        (Endpoint::MakeJoin, 200, json!({"room_version": "12"})),
        (Endpoint::SendJoin, 200, json!({"state": [], "auth_chain": [], "members_omitted": true})),
        (Endpoint::SendJoin, 200, json!({"state": [], "auth_chain": [], "members_omitted": "yes"})),
        (
            Endpoint::SendJoin,
            200,
            json!({"state": [], "auth_chain": [], "servers_in_room": ["a b"]}),
        ),
        (Endpoint::SendKnock, 200, json!({})),
    ];
    for (endpoint, status, body) in bad {
        assert!(decode(*endpoint, *status, body.clone()).is_err(), "{endpoint:?} {status} {body}");
    }
    let many: Object = (0..51).map(|i| (format!("$e{i}"), json!({}))).collect();
    assert_eq!(
        decode(Endpoint::SendTransaction, 200, json!({"pdus": many})).unwrap_err(),
        WireError::TooManyPdus { count: 51 }
    );
    // Backfill answers are not limited to 50 PDUs (the requester's limit bounds them).
    let pdus: Vec<Value> = (0..60).map(|_| json!({})).collect();
    assert!(
        decode(
            Endpoint::Backfill,
            200,
            json!({"origin": "hs1", "origin_server_ts": 1, "pdus": pdus})
        )
        .is_ok()
    );
    assert_eq!(
        decode(Endpoint::SendLeave, 200, json!({"anything": 1})).unwrap(),
        Response::SendLeave
    );
}

#[test]
fn encoding_an_invalid_message_is_an_mxsim_bug() {
    let too_many = Request::SendTransaction {
        txn_id: "t".into(),
        transaction: Transaction {
            origin: "hs1".into(),
            origin_server_ts: 0,
            pdus: vec![Object::new(); 51],
            edus: vec![],
        },
    };
    assert_eq!(too_many.validate(), Err(WireError::TooManyPdus { count: 51 }));
    let result = std::panic::catch_unwind(|| too_many.to_http());
    assert!(result.is_err());
    let knock = Request::MakeKnock { room_id: "!r:h".into(), user_id: "@a:h".into(), ver: vec![] };
    assert_eq!(knock.validate(), Err(WireError::MissingParam { name: "ver".into() }));
}

#[test]
fn errors_map_to_codes_and_statuses() {
    assert_eq!(ErrorResponse::forbidden("x").status, 403);
    assert_eq!(ErrorResponse::not_found("x").status, 404);
    assert_eq!(
        ErrorResponse::unable_to_authorise_join("x").errcode.as_str(),
        "M_UNABLE_TO_AUTHORISE_JOIN"
    );
    assert_eq!(ErrorResponse::unable_to_grant_join("x").errcode.as_str(), "M_UNABLE_TO_GRANT_JOIN");
    assert_eq!(ErrorResponse::missing_param("x").errcode.as_str(), "M_MISSING_PARAM");
    assert_eq!(ErrorResponse::invalid_param("x").status, 400);
    assert_eq!(ErrorResponse::bad_json("x").errcode, ErrCode::BadJson);
    let incompatible = ErrorResponse::incompatible_room_version("12");
    assert_eq!((incompatible.status, incompatible.room_version.as_deref()), (400, Some("12")));
    for (code, name) in ErrCode::KNOWN {
        assert_eq!(ErrCode::parse(name), code);
        assert_eq!(code.as_str(), name);
    }
    // Texts echoed from input stay bounded.
    let error = Request::from_http(&http(Method::Get, &format!("/x/{}", "y".repeat(5000)), None))
        .unwrap_err();
    assert!(error.to_string().len() < 300, "{error}");
}

#[test]
fn byte_counts_cover_the_request_line_and_body() {
    let request = Request::GetEvent { event_id: event_id("$e") };
    let encoded = request.to_http();
    assert_eq!(encoded.byte_count(), 3 + 1 + "/_matrix/federation/v1/event/%24e".len() as u64);
    assert_eq!(request.byte_count(), encoded.byte_count());
    let response = Response::SendLeave;
    assert_eq!(response.to_http().body, b"{}");
    assert_eq!(response.byte_count(), 3 + 2);
}

#[test]
fn pdus_parse_once_the_room_version_is_known() {
    use crate::matrix::crypto::SigningKey;
    use crate::matrix::pdu;
    use crate::matrix::room_version::V11;
    let key = SigningKey::from_seed(&[1; 32], "ed25519:k").unwrap();
    let unsigned = object(json!({
        "type": "m.room.member", "state_key": "@a:hs1", "sender": "@a:hs1",
        "room_id": "!r:hs1", "origin_server_ts": 1, "depth": 3,
        "content": {"membership": "join"}, "auth_events": [], "prev_events": [],
    }));
    let signed = pdu::build_signed(&V11, unsigned, "hs1", &key).unwrap();
    let raw = pdu_to_wire(&signed);
    assert_eq!(pdu_room_id(&raw), Some("!r:hs1"));
    let parsed = parse_pdus(&V11, vec![raw, object(json!({"type": 1}))]);
    assert_eq!(parsed[0].as_ref().unwrap(), &signed);
    assert!(parsed[1].is_err());
    assert_eq!(check_path_event_id(signed.event_id(), &signed), Ok(()));
    let wrong = check_path_event_id(&event_id("$other"), &signed).unwrap_err();
    assert_eq!(wrong.to_error_response().errcode, ErrCode::InvalidParam);
}

#[test]
fn a_transaction_encodes_as_its_body_object_does() {
    // The direct encoding (`encode_transaction`) against the general encoder of the body
    // object: several PDUs and EDUs, escapes and non-ASCII text, and no EDUs at all.
    let pdu = |n: i64| {
        object(json!({
            "type": "m.room.message", "depth": n, "content": {"body": "é \"q\" \\ \u{1}", "n": [n, -n]},
        }))
    };
    let edu = |kind: &str| Edu {
        edu_type: kind.into(),
        content: object(json!({"user_id": "@a:hs1", "typing": true, "z": null})),
    };
    for edus in [vec![], vec![edu("m.typing")], vec![edu("m.typing"), edu("m.receipt")]] {
        let transaction = Transaction {
            origin: "hs1.example".into(),
            origin_server_ts: -5,
            pdus: vec![pdu(1), pdu(2), pdu(9_007_199_254_740_991)],
            edus,
        };
        let general =
            super::codec::encode_body(&super::transaction::transaction_json(&transaction));
        assert_eq!(super::transaction::encode_transaction(&transaction), general);
        let request = Request::SendTransaction { txn_id: "t".into(), transaction };
        assert_eq!(request.to_http().body, Some(general.into()));
    }
}

#[test]
fn pdus_known_by_their_bytes_are_left_out_of_the_parse_and_nothing_else_changes() {
    let pdu = |n: i64| object(json!({"type": "m.room.message", "depth": n, "content": {"b": "é"}}));
    let transaction = Transaction {
        origin: "hs1".into(),
        origin_server_ts: 7,
        pdus: (0..5).map(pdu).collect(),
        edus: vec![Edu { edu_type: "m.typing".into(), content: object(json!({"x": 1})) }],
    };
    let request =
        Request::SendTransaction { txn_id: "t1".into(), transaction: transaction.clone() };
    let sent = request.to_http();
    // Recognise the PDUs of even depth by their exact encoding.
    let encodings: Vec<Vec<u8>> =
        (0..5).map(|n| canonical_json::encode_object(&pdu(n)).unwrap()).collect();
    let known = |bytes: &[u8]| encodings.iter().position(|e| e == bytes).filter(|n| n % 2 == 0);
    let (decoded, kinds) = Request::from_http_knowing(&sent, known).unwrap();
    assert_eq!(kinds, [Some(0), None, Some(2), None, Some(4)]);
    let Request::SendTransaction { txn_id, transaction: rest } = &decoded else { panic!() };
    assert_eq!(txn_id, "t1");
    assert_eq!(rest.pdus, [pdu(1), pdu(3)], "the others, parsed, in order");
    assert_eq!(
        (&rest.origin, rest.origin_server_ts, &rest.edus),
        (&transaction.origin, 7, &transaction.edus)
    );
    // Nothing known, or another endpoint: exactly `from_http`.
    let none = Request::from_http_knowing(&sent, |_| None::<()>).unwrap();
    assert_eq!(none, (request.clone(), vec![None; 5]));
    let other = Request::GetEvent { event_id: event_id("$e") }.to_http();
    assert_eq!(Request::from_http_knowing(&other, known).unwrap().1, []);

    // Whatever `from_http` refuses, it refuses with the same error, known PDUs or not.
    let body = |pdus: &str, rest: &str| {
        format!("{{\"origin\":\"hs1\",\"origin_server_ts\":7,\"pdus\":[{pdus}]{rest}}}")
    };
    let text = |n: usize| String::from_utf8(encodings[n].clone()).unwrap();
    let many = vec![text(0); TRANSACTION_PDUS_MAX + 1].join(",");
    let refused = [
        body(&text(0), ",\"origin\":\"hs2\""), // a duplicate key after the PDUs
        body(&text(0), "]"),                   // unbalanced
        body(&format!("{},{}", text(0), text(1)), ",\"x\":01"), // a bad number after them
        body(&many, ""),                       // too many PDUs, all known
        body(&format!("{} , {}x", text(0), text(2)), ""), // junk after a known PDU
        format!("{{\"origin\":\"bad name!\",\"origin_server_ts\":7,\"pdus\":[{}]}}", text(0)),
        format!("{{\"origin\":\"hs1\",\"origin_server_ts\":7,\"pdus\":[{}],\"pdus\":[]}}", text(0)),
        format!("{{\"origin\":\"hs1\",\"origin_server_ts\":7,\"pdus\":{}}}", text(0)),
    ];
    for text in refused {
        let http = http(Method::Put, "/_matrix/federation/v1/send/t1", Some(&text));
        let expected = Request::from_http(&http).unwrap_err();
        let got = Request::from_http_knowing(&http, known).unwrap_err();
        assert_eq!(got.to_string(), expected.to_string(), "{text}");
    }
    // Whitespace between the items is the sender's affair: accepted as `from_http` does.
    let spaced = body(&format!(" {} ,\n{} ", text(0), text(1)), "");
    let http = http(Method::Put, "/_matrix/federation/v1/send/t1", Some(&spaced));
    let (decoded, kinds) = Request::from_http_knowing(&http, known).unwrap();
    assert_eq!(kinds, [Some(0), None]);
    let Request::SendTransaction { transaction: rest, .. } = decoded else { panic!() };
    assert_eq!(rest.pdus, [pdu(1)]);
}

#[test]
fn responses_written_in_parts_are_their_body_objects() {
    // `Response::to_http` writes PDU lists where they lie; the bytes must be those of the
    // body object (debug builds also compare, on every response encoded).
    let pdus = vec![pdu_stub(1), object(json!({"content": {"body": "\"é\""}, "depth": 2}))];
    let join = SendJoin {
        state: pdus.iter().map(|pdu| Arc::new(OutgoingPdu::new(pdu.clone()))).collect(),
        auth_chain: vec![Arc::new(OutgoingPdu::new(pdus[0].clone()))],
        event: Some(pdu_stub(3)),
        members_omitted: true,
        servers_in_room: Some(vec!["hs1".into(), "hs2".into()]),
    };
    let encoded = Response::SendJoin(join.clone()).to_http();
    let expected = canonical_json::encode(&json!({
        "auth_chain": [pdus[0]], "event": pdu_stub(3), "members_omitted": true,
        "servers_in_room": ["hs1", "hs2"], "state": pdus,
    }))
    .unwrap();
    assert_eq!(encoded.body, expected);
    let missing = Response::GetMissingEvents { events: pdus.clone() }.to_http();
    assert_eq!(missing.body, canonical_json::encode(&json!({"events": pdus})).unwrap());
    assert_eq!(Response::SendLeave.to_http().body, b"{}");
}

#[test]
fn a_response_body_is_written_within_the_room_reserved_for_it() {
    // A `send_join` answer of a large room writes its servers' names and the join event
    // before its state: the room reserved covers them, so the state's writing does not
    // grow the buffer (texts without escapes; numbers at their longest).
    let pdus: Vec<Object> = (0..300)
        .map(|n| object(json!({"type": "m.room.member", "depth": n, "origin_server_ts": 1_700_000_000_000i64 + n,
            "content": {"membership": "join", "displayname": format!("user {n}")}})))
        .collect();
    let join = SendJoin {
        state: pdus.iter().map(|pdu| Arc::new(OutgoingPdu::new(pdu.clone()))).collect(),
        auth_chain: vec![Arc::new(OutgoingPdu::new(pdus[0].clone()))],
        event: Some(object(json!({"type": "m.room.member", "depth": 9_007_199_254_740_991i64,
            "content": {"membership": "join", "list": [1, -2, true, null, "x"]}}))),
        members_omitted: true,
        servers_in_room: Some((0..1000).map(|n| format!("server-{n}.example")).collect()),
    };
    let make = MakeMembership { room_version: Some("12".into()), event: pdus[1].clone() };
    for response in [
        Response::SendJoin(join),
        Response::MakeJoin(make),
        Response::GetMissingEvents { events: pdus.clone() },
        Response::Error(ErrorResponse::new(404, ErrCode::NotFound, "no such event")),
    ] {
        let written = response.to_http().body.len();
        let reserved = response.body_size_hint();
        assert!(written <= reserved, "{written} bytes written, {reserved} reserved");
        assert!(reserved < written + written / 4 + 256, "{reserved} reserved for {written}");
    }
}

#[test]
fn send_join_answers_leave_out_the_pdus_known_by_their_bytes() {
    let pdu = |n: i64| object(json!({"type": "m.room.member", "depth": n, "content": {"m": "é"}}));
    let join = SendJoin {
        state: (0..4).map(|n| Arc::new(OutgoingPdu::new(pdu(n)))).collect(),
        auth_chain: (10..13).map(|n| Arc::new(OutgoingPdu::new(pdu(n)))).collect(),
        event: Some(pdu(99)),
        members_omitted: false,
        servers_in_room: None,
    };
    let sent = Response::SendJoin(join.clone()).to_http();
    let depth_of = |bytes: &[u8]| {
        let value = canonical_json::parse(bytes, canonical_json::Numbers::IntegerLiterals).ok()?;
        value["depth"].as_i64()
    };
    // Known: odd depths, and never the `event` (not a list).
    let known = |bytes: &[u8]| depth_of(bytes).filter(|d| d % 2 == 1 && *d != 99);
    let (decoded, kinds) = Response::from_http_knowing(Endpoint::SendJoin, &sent, known).unwrap();
    assert_eq!(kinds["state"], [None, Some(1), None, Some(3)]);
    assert_eq!(kinds["auth_chain"], [None, Some(11), None]);
    let Response::SendJoin(rest) = decoded else { panic!() };
    let jsons =
        |list: &[Arc<OutgoingPdu>]| list.iter().map(|p| p.json().clone()).collect::<Vec<_>>();
    assert_eq!(jsons(&rest.state), [pdu(0), pdu(2)]);
    assert_eq!(jsons(&rest.auth_chain), [pdu(10), pdu(12)]);
    assert_eq!(rest.event, Some(pdu(99)));
    // Nothing known: `from_http`, with every entry `None`.
    let (whole, kinds) =
        Response::from_http_knowing(Endpoint::SendJoin, &sent, |_| None::<()>).unwrap();
    assert_eq!(whole, Response::SendJoin(join));
    assert_eq!((kinds["state"].len(), kinds["auth_chain"].len()), (4, 3));
    // Other endpoints and errors: `from_http`, and an empty map.
    let missing = Response::GetMissingEvents { events: vec![pdu(1)] }.to_http();
    let (decoded, kinds) =
        Response::from_http_knowing(Endpoint::GetMissingEvents, &missing, known).unwrap();
    assert_eq!(decoded, Response::from_http(Endpoint::GetMissingEvents, &missing).unwrap());
    assert!(kinds.is_empty());
    // Refused as `from_http` refuses, known PDUs or not.
    let text = |n: i64| String::from_utf8(canonical_json::encode_object(&pdu(n)).unwrap()).unwrap();
    for body in [
        format!("{{\"auth_chain\":[{}],\"state\":[{}],\"state\":[]}}", text(1), text(3)),
        format!("{{\"auth_chain\":[{}]}}", text(1)),
        format!("{{\"auth_chain\":[{}],\"state\":[{}]", text(1), text(3)),
        format!("{{\"auth_chain\":[{}],\"state\":[{}],\"event\":1.5}}", text(1), text(3)),
        format!("{{\"auth_chain\":{},\"state\":[]}}", text(1)),
    ] {
        let http = HttpResponse { status: 200, body: body.clone().into_bytes() };
        let expected = Response::from_http(Endpoint::SendJoin, &http).unwrap_err();
        let got = Response::from_http_knowing(Endpoint::SendJoin, &http, known).unwrap_err();
        assert_eq!(got.to_string(), expected.to_string(), "{body}");
    }
}

/// What `from_http` makes of `http` with the PDUs at `leave_out` taken out of its body, as
/// a decoder that recognises them must give.
fn decoded_without(http: &HttpRequest, leave_out: &[usize]) -> Result<Request, WireError> {
    let body = http.body.as_deref().unwrap();
    let lists = super::codec::PduLists::scan(body, &["pdus"], None).unwrap();
    let without = HttpRequest {
        method: http.method,
        path_and_query: http.path_and_query.clone(),
        body: Some(lists.without(body, |_, index| leave_out.contains(&index)).into()),
    };
    Request::from_http(&without)
}

#[test]
fn send_bodies_as_servers_send_them_are_read_in_one_pass() {
    let pdu = |n: i64| object(json!({"type": "m.room.message", "depth": n, "content": {"b": "é"}}));
    let text = |n: i64| String::from_utf8(canonical_json::encode_object(&pdu(n)).unwrap()).unwrap();
    let known = |bytes: &[u8]| (0..6).find(|&n| text(n).as_bytes() == bytes).filter(|n| n % 2 == 0);
    let send = |body: &str| http(Method::Put, "/_matrix/federation/v1/send/t1", Some(body));
    let read = |http: &HttpRequest| super::request::read_send(http, None, &mut { known });
    let pdus = |ns: &[i64]| ns.iter().map(|&n| text(n)).collect::<Vec<_>>().join(",");
    // A PDU nested as deep as a body may nest (the body, its list and the PDU are three
    // levels), and one level deeper.
    let nested = |levels: u32| {
        let levels = levels as usize;
        format!("{{\"x\":{}1{}}}", "[".repeat(levels), "]".repeat(levels))
    };
    let (deep, too_deep) =
        (nested(canonical_json::DEPTH_MAX - 3), nested(canonical_json::DEPTH_MAX - 2));

    // The usual body, with and without known PDUs, empty EDUs, keys in any order and
    // whitespace: read in one pass, into exactly what `from_http` makes of the body without
    // the known PDUs.
    for body in [
        format!("{{\"origin\":\"hs1\",\"origin_server_ts\":7,\"pdus\":[{}]}}", pdus(&[0, 1, 2])),
        format!(
            "{{\"edus\":[],\"origin\":\"hs1\",\"origin_server_ts\":-7,\"pdus\":[{}]}}",
            pdus(&[1, 3])
        ),
        format!("{{\"pdus\":[{}],\"origin_server_ts\":7,\"origin\":\"hs1\"}}", pdus(&[4])),
        "{\"origin\":\"hs1\",\"origin_server_ts\":7,\"pdus\":[]}".to_owned(),
        format!(
            " {{ \"origin\" : \"hs1\" , \"origin_server_ts\":7,\"pdus\":[ {} ,\n{} ] }} ",
            text(2),
            text(5)
        ),
        format!("{{\"origin\":\"hs1\",\"origin_server_ts\":7,\"pdus\":[{},{deep}]}}", text(0)),
    ] {
        let http = send(&body);
        let (request, kinds) = read(&http).unwrap_or_else(|| panic!("read in one pass: {body}"));
        let leave_out: Vec<usize> = (0..kinds.len()).filter(|&i| kinds[i].is_some()).collect();
        assert_eq!(Ok(request.clone()), decoded_without(&http, &leave_out), "{body}");
        assert_eq!((request, kinds), Request::from_http_knowing(&http, known).unwrap());
    }
    let usual = send(&format!(
        "{{\"origin\":\"hs1\",\"origin_server_ts\":7,\"pdus\":[{}]}}",
        pdus(&[0, 1, 2])
    ));
    assert_eq!(read(&usual).unwrap().1, [Some(0), None, Some(2)]);

    // Any other body, or any error, is left to the decoder that parses the whole body;
    // what that accepts, and each of its errors, is unchanged.
    let many = vec![text(0); TRANSACTION_PDUS_MAX + 1].join(",");
    for body in [
        // Accepted by `from_http`, but not the usual shape.
        format!(
            "{{\"edus\":[{{\"content\":{{}},\"edu_type\":\"m.typing\"}}],\"origin\":\"hs1\",\"origin_server_ts\":7,\"pdus\":[{}]}}",
            text(0)
        ),
        format!("{{\"origin\":\"hs1\",\"origin_server_ts\":7,\"pdus\":[{}],\"x\":1}}", text(0)),
        // Refused.
        format!("{{\"origin\":\"hs1\",\"origin_server_ts\":7,\"pdus\":[{},{too_deep}]}}", text(0)),
        format!("{{\"origin\":\"hs1\",\"origin_server_ts\":7,\"pdus\":[{}],\"pdus\":[]}}", text(0)),
        "{\"origin\":\"hs1\",\"origin\":\"hs1\",\"origin_server_ts\":7,\"pdus\":[]}".to_owned(),
        "{\"origin\":1,\"origin_server_ts\":7,\"pdus\":[]}".to_owned(),
        "{\"origin\":\"bad name!\",\"origin_server_ts\":7,\"pdus\":[]}".to_owned(),
        "{\"origin\":\"hs1\",\"origin_server_ts\":7.5,\"pdus\":[]}".to_owned(),
        "{\"origin\":\"hs1\",\"origin_server_ts\":9007199254740992,\"pdus\":[]}".to_owned(),
        "{\"origin\":\"hs1\",\"pdus\":[]}".to_owned(),
        format!("{{\"origin\":\"hs1\",\"origin_server_ts\":7,\"pdus\":[{},1]}}", text(0)),
        format!("{{\"origin\":\"hs1\",\"origin_server_ts\":7,\"pdus\":[{}, x]}}", text(1)),
        format!("{{\"origin\":\"hs1\",\"origin_server_ts\":7,\"pdus\":[{many}]}}"),
        format!("{{\"origin\":\"hs1\",\"origin_server_ts\":7,\"pdus\":[{}]}} x", text(0)),
        format!("{{\"origin\":\"hs1\",\"origin_server_ts\":7,\"pdus\":[{}]", text(0)),
        "{\"edus\":{},\"origin\":\"hs1\",\"origin_server_ts\":7,\"pdus\":[]}".to_owned(),
        "{\"origin\":\"hs1\",\"origin_server_ts\":7,\"pdus\":[{\"a\":\"\\ud800\"}]}".to_owned(),
    ] {
        let http = send(&body);
        assert!(read(&http).is_none(), "not the usual body: {body}");
        let leave_out: Vec<usize> =
            match super::codec::PduLists::scan(body.as_bytes(), &["pdus"], None) {
                Some(lists) => {
                    let kinds = lists
                        .ask(body.as_bytes(), &mut { known })
                        .remove("pdus")
                        .unwrap_or_default();
                    (0..kinds.len()).filter(|&i| kinds[i].is_some()).collect()
                }
                None => Vec::new(),
            };
        let got = Request::from_http_knowing(&http, known).map(|(request, _)| request);
        match (got, Request::from_http(&http)) {
            (Ok(got), Ok(_)) => assert_eq!(Ok(got), decoded_without(&http, &leave_out), "{body}"),
            (Err(got), Err(expected)) => {
                assert_eq!(got.to_string(), expected.to_string(), "{body}")
            }
            (got, expected) => panic!("{body}: {got:?} against {expected:?}"),
        }
    }
    // Another endpoint under the `/send` prefix's spelling is routed as `from_http` does.
    let wrong = http(Method::Put, "/_matrix/federation/v1/send/t1/more", Some("{}"));
    assert!(read(&wrong).is_none());
}

/// The receivers of one shared `/send` body take the scan the first made (`SendScans`),
/// and decode exactly what they decode without it; equal bytes in another allocation, and
/// a shared body changed after it was scanned, are scanned again.
#[test]
fn receivers_of_one_shared_send_body_take_its_scan() {
    let pdu = |n: i64| object(json!({"type": "m.room.message", "depth": n, "content": {"b": "é"}}));
    let text = |n: i64| String::from_utf8(canonical_json::encode_object(&pdu(n)).unwrap()).unwrap();
    let known = |bytes: &[u8]| (0..6).find(|&n| text(n).as_bytes() == bytes).filter(|n| n % 2 == 0);
    let send = |target: &str, body: &str| http(Method::Put, target, Some(body));
    let body = format!(
        "{{\"origin\":\"hs1\",\"origin_server_ts\":7,\"pdus\":[{},{},{}]}}",
        text(0),
        text(1),
        text(2)
    );
    let first = send("/_matrix/federation/v1/send/t1", &body);
    let second = HttpRequest {
        method: Method::Put,
        path_and_query: "/_matrix/federation/v1/send/t2".into(),
        body: first.body.clone(),
    };
    let equal = send("/_matrix/federation/v1/send/t3", &body);
    let scans = SendScans::default();
    let scan_of = |http: &HttpRequest| scans.scan(http.body.as_ref().unwrap());
    let kept = scan_of(&first).unwrap();
    assert!(Arc::ptr_eq(&kept, &scan_of(&second).unwrap()), "the same bytes: the kept scan");
    for http in [&first, &second, &equal] {
        let scanned = Request::from_http_scanning(http, Some(&scans), known).unwrap();
        assert_eq!(scanned, Request::from_http_knowing(http, known).unwrap(), "{http:?}");
        assert_eq!(scanned.1, [Some(0), None, Some(2)]);
    }
    let again = scan_of(&equal).unwrap();
    assert!(!Arc::ptr_eq(&kept, &again), "equal bytes elsewhere are scanned again");

    // A shared body changed in flight is copied first, so the kept scan is not taken for it.
    let mut damaged = equal.clone();
    let bytes = damaged.body.as_mut().unwrap().make_mut();
    let at = bytes.iter().position(|&b| b == b'7').unwrap();
    bytes[at] = b'8';
    let changed = scan_of(&damaged).unwrap();
    assert!(!Arc::ptr_eq(&again, &changed));
    let decoded = Request::from_http_scanning(&damaged, Some(&scans), known).unwrap();
    assert_eq!(decoded, Request::from_http_knowing(&damaged, known).unwrap());
    let Request::SendTransaction { transaction, .. } = decoded.0 else { panic!("a transaction") };
    assert_eq!(transaction.origin_server_ts, 8);

    // A body that does not scan gets `from_http`'s answer, and leaves the kept scan.
    let bad =
        send("/_matrix/federation/v1/send/t4", "{\"origin\":1,\"origin_server_ts\":7,\"pdus\":[]}");
    assert!(scan_of(&bad).is_none());
    assert_eq!(
        Request::from_http_scanning(&bad, Some(&scans), known)
            .map(|(r, _)| r)
            .unwrap_err()
            .to_string(),
        Request::from_http(&bad).unwrap_err().to_string()
    );
    assert!(Arc::ptr_eq(&changed, &scan_of(&damaged).unwrap()));
}

#[test]
fn send_answers_as_servers_send_them_are_read_in_one_pass() {
    let answer = |body: &str| HttpResponse { status: 200, body: body.as_bytes().to_vec() };
    for (body, expected) in [
        ("{\"pdus\":{}}", vec![]),
        (
            "{\"pdus\":{\"$a\":{},\"$b\":{\"error\":\"no \\\"way\\\"\"}}}",
            vec![("$a", Ok(())), ("$b", Err("no \"way\"".to_owned()))],
        ),
        (" { \"pdus\" : { \"$a\" : { } } } ", vec![("$a", Ok(()))]),
    ] {
        let read = super::response::read_pdu_results(body.as_bytes()).expect(body);
        let expected: std::collections::BTreeMap<EventId, PduResult> =
            expected.into_iter().map(|(id, result)| (event_id(id), result)).collect();
        assert_eq!(read, expected, "{body}");
        let decoded = Response::from_http(Endpoint::SendTransaction, &answer(body)).unwrap();
        assert_eq!(decoded, Response::SendTransaction { pdus: expected });
    }
    // Answers are written directly, as their body objects encode.
    let results: std::collections::BTreeMap<EventId, PduResult> = [
        ("$b", Err("a \"quoted\" \\ é \u{1}".to_owned())),
        ("$a", Ok(())),
        ("$é", Ok(())),
        ("$aa", Err(String::new())),
    ]
    .into_iter()
    .map(|(id, result)| (event_id(id), result))
    .collect();
    let written = Response::SendTransaction { pdus: results.clone() }.to_http();
    let expected = json!({"pdus": {
        "$b": {"error": "a \"quoted\" \\ é \u{1}"}, "$a": {}, "$é": {}, "$aa": {"error": ""},
    }});
    assert_eq!(written.body, canonical_json::encode(&expected).unwrap());
    let back = Response::from_http(Endpoint::SendTransaction, &written).unwrap();
    assert_eq!(back, Response::SendTransaction { pdus: results });

    // Any other shape, or any error, is parsed whole as before: accepted as before, or
    // refused with the same error.
    let many: Vec<String> = (0..=TRANSACTION_PDUS_MAX).map(|n| format!("\"$e{n}\":{{}}")).collect();
    for (body, accepted) in [
        ("{\"pdus\":{\"$a\":{\"x\":1}}}".to_owned(), true),
        ("{\"pdus\":{},\"x\":1}".to_owned(), true),
        ("{\"pdus\":{\"$a\":{\"error\":1}}}".to_owned(), false),
        ("{\"pdus\":{\"$a\":1}}".to_owned(), false),
        ("{\"pdus\":{\"a\":{}}}".to_owned(), false),
        ("{\"pdus\":{\"$a\":{},\"$a\":{}}}".to_owned(), false),
        ("{\"pdus\":{},\"pdus\":{}}".to_owned(), false),
        ("{\"pdus\":[]}".to_owned(), false),
        ("{}".to_owned(), false),
        ("{\"pdus\":{}} x".to_owned(), false),
        (format!("{{\"pdus\":{{{}}}}}", many.join(",")), false),
    ] {
        assert_eq!(super::response::read_pdu_results(body.as_bytes()), None, "{body}");
        let decoded = Response::from_http(Endpoint::SendTransaction, &answer(&body));
        assert_eq!(decoded.is_ok(), accepted, "{body}: {decoded:?}");
    }
}

#[test]
fn a_send_target_is_measured_as_it_is_encoded() {
    let transaction =
        Transaction { origin: "hs1".into(), origin_server_ts: 1, pdus: vec![], edus: vec![] };
    // The longest id (255 bytes), every byte escaped.
    let long = "é/ %".repeat(51);
    for txn_id in ["t", "1-2_3.4~5", "a/b c%d", "é", "\u{1f600}?#&=", long.as_str()] {
        let request = Request::SendTransaction {
            txn_id: txn_id.to_owned(),
            transaction: transaction.clone(),
        };
        let encoded = request.to_http().path_and_query;
        assert_eq!(request.target_len(), encoded.len(), "{txn_id}: {encoded}");
    }
}

#[test]
fn send_bodies_damaged_anywhere_decode_as_from_http_decodes_them() {
    // A usual body with known and unknown PDUs, damaged at one to three random places
    // (bytes changed, removed, inserted), two thousand times. Whatever the one-pass
    // reader makes of it must be what `from_http` makes of the body without the known
    // PDUs, and whatever is refused must be refused with `from_http`'s error.
    let pdu = |n: i64| object(json!({"type": "m.room.message", "depth": n, "content": {"b": "é"}}));
    let text = |n: i64| String::from_utf8(canonical_json::encode_object(&pdu(n)).unwrap()).unwrap();
    let texts: Vec<String> = (0..3).map(text).collect();
    let known =
        |bytes: &[u8]| (0..3).find(|&n| texts[n].as_bytes() == bytes).filter(|n| n % 2 == 0);
    let base = format!(
        "{{\"origin\":\"hs1\",\"origin_server_ts\":7,\"pdus\":[{},{},{}]}}",
        texts[0], texts[1], texts[2]
    );
    let mut prng = crate::stdx::Prng::from_seed(13);
    let pieces = b"{}[]\",:0a \\-";
    let (mut read_in_one_pass, mut accepted, mut refused) = (0, 0, 0);
    for _ in 0..2000 {
        let mut bytes = base.clone().into_bytes();
        for _ in 0..prng.range_inclusive(1, 3) {
            let at = prng.index(bytes.len());
            let piece = pieces[prng.index(pieces.len())];
            match prng.index(3) {
                0 => bytes[at] = piece,
                1 => drop(bytes.remove(at)),
                _ => bytes.insert(at, piece),
            }
        }
        let Ok(text) = String::from_utf8(bytes) else { continue };
        let http = http(Method::Put, "/_matrix/federation/v1/send/t1", Some(&text));
        if super::request::read_send(&http, None, &mut { known }).is_some() {
            read_in_one_pass += 1;
        }
        match Request::from_http_knowing(&http, known) {
            Ok((request, kinds)) => {
                accepted += 1;
                let leave_out: Vec<usize> =
                    (0..kinds.len()).filter(|&i| kinds[i].is_some()).collect();
                assert_eq!(Ok(request), decoded_without(&http, &leave_out), "{text}");
            }
            Err(error) => {
                refused += 1;
                let expected = Request::from_http(&http).unwrap_err();
                assert_eq!(error.to_string(), expected.to_string(), "{text}");
            }
        }
    }
    // Both outcomes were exercised, and the one-pass reader read every body accepted
    // (none of the damage makes a body of another shape that is still accepted); the
    // refused ones went through the whole decoding.
    let counts =
        format!("{read_in_one_pass} read in one pass, {accepted} accepted, {refused} refused");
    assert!(read_in_one_pass > 100 && accepted >= read_in_one_pass && refused > 100, "{counts}");
}
