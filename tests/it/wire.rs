//! Properties of the federation wire format: every valid message survives a round trip
//! through bytes, and no input — random bytes, random targets, mutated valid messages —
//! makes a decoder panic; whatever it accepts can be encoded again unchanged.

use mxsim::homeserver::wire::{
    Edu, Endpoint, ErrCode, ErrorResponse, HttpRequest, HttpResponse, MakeMembership, Method,
    OutgoingPdu, Request, Response, SendJoin, Transaction,
};
use mxsim::matrix::EventId;
use mxsim::matrix::canonical_json::{INT_MAX, Object};
use proptest::prelude::*;
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------

/// Any characters but NUL, at most `max` of them (so at most 4 × `max` bytes).
fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>().prop_filter("no NUL", |&c| c != '\0'), 0..max)
        .prop_map(|chars| chars.into_iter().collect())
}

fn json_value() -> impl Strategy<Value = Value> {
    crate::pdu::json_value_sized(3, 24, 4, 4)
}

fn object() -> impl Strategy<Value = Object> {
    prop::collection::btree_map(any::<String>(), json_value(), 0..4)
        .prop_map(|m| m.into_iter().collect())
}

fn shared(objects: Vec<Object>) -> Vec<std::sync::Arc<OutgoingPdu>> {
    objects.into_iter().map(|object| std::sync::Arc::new(OutgoingPdu::new(object))).collect()
}

fn objects(max: usize) -> impl Strategy<Value = Vec<Object>> {
    prop::collection::vec(object(), 0..max)
}

fn event_id() -> impl Strategy<Value = EventId> {
    text(40).prop_map(|t| EventId::parse(&format!("${t}e")).expect("'$', no NUL, < 255 bytes"))
}

fn event_ids(max: usize) -> impl Strategy<Value = Vec<EventId>> {
    prop::collection::vec(event_id(), 0..max)
}

fn room_id() -> impl Strategy<Value = String> {
    text(40).prop_map(|t| format!("!{t}x"))
}

fn server_name() -> impl Strategy<Value = String> {
    "[a-z0-9.-]{1,20}(:[0-9]{1,5})?"
}

fn user_id() -> impl Strategy<Value = String> {
    (text(30), server_name()).prop_map(|(local, server)| {
        let local: String = local.chars().filter(|&c| c != ':').collect();
        format!("@{local}u:{server}")
    })
}

fn room_version() -> impl Strategy<Value = String> {
    "[a-z0-9.-]{1,32}"
}

fn versions(min: usize) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(room_version(), min..4)
}

fn edu() -> impl Strategy<Value = Edu> {
    (any::<String>(), object()).prop_map(|(edu_type, content)| Edu { edu_type, content })
}

fn transaction(pdus: std::ops::Range<usize>) -> impl Strategy<Value = Transaction> {
    (
        server_name(),
        -INT_MAX..=INT_MAX,
        prop::collection::vec(object(), pdus),
        prop::collection::vec(edu(), 0..3),
    )
        .prop_map(|(origin, origin_server_ts, pdus, edus)| Transaction {
            origin,
            origin_server_ts,
            pdus,
            edus,
        })
}

fn count() -> impl Strategy<Value = u64> {
    prop_oneof![0..100u64, 0..=INT_MAX as u64]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (text(40).prop_map(|t| format!("{t}t")), transaction(0..4))
            .prop_map(|(txn_id, transaction)| Request::SendTransaction { txn_id, transaction }),
        event_id().prop_map(|event_id| Request::GetEvent { event_id }),
        (room_id(), event_id())
            .prop_map(|(room_id, event_id)| Request::GetStateIds { room_id, event_id }),
        (room_id(), event_id())
            .prop_map(|(room_id, event_id)| Request::GetState { room_id, event_id }),
        (room_id(), event_id())
            .prop_map(|(room_id, event_id)| Request::GetEventAuth { room_id, event_id }),
        (room_id(), prop::collection::vec(event_id(), 1..4), count())
            .prop_map(|(room_id, v, limit)| Request::Backfill { room_id, v, limit }),
        (room_id(), event_ids(3), event_ids(3), count(), -INT_MAX..=INT_MAX).prop_map(
            |(room_id, earliest_events, latest_events, limit, min_depth)| {
                Request::GetMissingEvents {
                    room_id,
                    earliest_events,
                    latest_events,
                    limit,
                    min_depth,
                }
            }
        ),
        (room_id(), user_id(), versions(0)).prop_map(|(room_id, user_id, ver)| Request::MakeJoin {
            room_id,
            user_id,
            ver
        }),
        (room_id(), event_id(), any::<bool>(), object()).prop_map(
            |(room_id, event_id, omit_members, pdu)| Request::SendJoin {
                room_id,
                event_id,
                omit_members,
                pdu
            }
        ),
        (room_id(), event_id(), room_version(), object(), objects(3)).prop_map(
            |(room_id, event_id, room_version, event, invite_room_state)| Request::Invite {
                room_id,
                event_id,
                room_version,
                event,
                invite_room_state,
            }
        ),
        (room_id(), user_id())
            .prop_map(|(room_id, user_id)| Request::MakeLeave { room_id, user_id }),
        (room_id(), event_id(), object()).prop_map(|(room_id, event_id, pdu)| Request::SendLeave {
            room_id,
            event_id,
            pdu
        }),
        (room_id(), user_id(), versions(1))
            .prop_map(|(room_id, user_id, ver)| Request::MakeKnock { room_id, user_id, ver }),
        (room_id(), event_id(), object()).prop_map(|(room_id, event_id, pdu)| Request::SendKnock {
            room_id,
            event_id,
            pdu
        }),
    ]
}

fn make_membership(version_required: bool) -> impl Strategy<Value = MakeMembership> {
    let version = if version_required {
        room_version().prop_map(Some).boxed()
    } else {
        prop::option::of(room_version()).boxed()
    };
    (version, object()).prop_map(|(room_version, event)| MakeMembership { room_version, event })
}

fn error_response() -> impl Strategy<Value = ErrorResponse> {
    (400u16..=599, any::<String>(), any::<String>(), prop::option::of(any::<String>())).prop_map(
        |(status, errcode, error, room_version)| ErrorResponse {
            status,
            // Through `parse`, so that a known code is never spelled as `Other`.
            errcode: ErrCode::parse(&errcode),
            error,
            room_version,
        },
    )
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        prop::collection::btree_map(event_id(), prop::option::of(any::<String>()), 0..4).prop_map(
            |results| Response::SendTransaction {
                pdus: results
                    .into_iter()
                    .map(|(id, error)| (id, error.map_or(Ok(()), Err)))
                    .collect(),
            }
        ),
        transaction(1..2).prop_map(Response::GetEvent),
        (event_ids(3), event_ids(3)).prop_map(|(pdu_ids, auth_chain_ids)| Response::GetStateIds {
            pdu_ids,
            auth_chain_ids
        }),
        (objects(3), objects(3)).prop_map(|(pdus, auth_chain)| Response::GetState {
            pdus: shared(pdus),
            auth_chain: shared(auth_chain)
        }),
        objects(3).prop_map(|auth_chain| Response::GetEventAuth { auth_chain }),
        transaction(0..4).prop_map(Response::Backfill),
        objects(3).prop_map(|events| Response::GetMissingEvents { events }),
        make_membership(false).prop_map(Response::MakeJoin),
        (
            objects(3),
            objects(3),
            prop::option::of(object()),
            any::<bool>(),
            prop::option::of(prop::collection::vec(server_name(), 0..3)),
        )
            .prop_map(|(state, auth_chain, event, members_omitted, servers)| {
                let servers_in_room =
                    if members_omitted { Some(servers.unwrap_or_default()) } else { servers };
                Response::SendJoin(SendJoin {
                    state: shared(state),
                    auth_chain: shared(auth_chain),
                    event,
                    members_omitted,
                    servers_in_room,
                })
            }),
        object().prop_map(|event| Response::Invite { event }),
        make_membership(false).prop_map(Response::MakeLeave),
        Just(Response::SendLeave),
        make_membership(true).prop_map(Response::MakeKnock),
        objects(3).prop_map(|knock_room_state| Response::SendKnock { knock_room_state }),
        error_response().prop_map(Response::Error),
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![Just(Method::Get), Just(Method::Put), Just(Method::Post), Just(Method::Delete)]
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    prop::sample::select(Endpoint::ALL.to_vec())
}

/// Path segments: id-shaped text, visible ASCII (including `/`, `?`, `&`, `%`), `%`
/// escapes good and bad, and, rarely, any characters.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[!$@][a-z0-9:.]{1,8}",
        2 => "[!-~]{0,12}",
        2 => "(%[0-9a-fA-F]{2}|%[0-9a-z]?|[a-z$!+])*",
        1 => any::<String>(),
    ]
}

/// A query string (with its `?`) of known and unknown parameters.
fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("v".to_owned()),
        Just("limit".to_owned()),
        Just("ver".to_owned()),
        Just("event_id".to_owned()),
        Just("omit_members".to_owned()),
        "[a-z%+=]{0,4}",
    ];
    let value = prop_oneof![
        "[$][a-z]{1,4}",
        "[0-9]{1,3}",
        Just("true".to_owned()),
        "[0-9a-z.]{1,4}",
        segment(),
    ];
    prop::collection::vec((key, value), 0..4).prop_map(|pairs| {
        let mut query = String::new();
        for (index, (key, value)) in pairs.into_iter().enumerate() {
            query.push(if index == 0 { '?' } else { '&' });
            query.push_str(&format!("{key}={value}"));
        }
        query
    })
}

/// JSON objects built from the field names the spec uses, with plausible and implausible
/// values, so that decoding gets past "is it JSON" into the shape checks.
fn shaped_body() -> impl Strategy<Value = Vec<u8>> {
    const KEYS: &[&str] = &[
        "origin",
        "origin_server_ts",
        "pdus",
        "edus",
        "earliest_events",
        "latest_events",
        "limit",
        "min_depth",
        "room_version",
        "event",
        "invite_room_state",
        "errcode",
        "error",
        "pdu_ids",
        "auth_chain_ids",
        "auth_chain",
        "state",
        "events",
        "members_omitted",
        "servers_in_room",
        "knock_room_state",
    ];
    let value = prop_oneof![
        Just(serde_json::json!("hs1")),
        Just(serde_json::json!("12")),
        Just(serde_json::json!("M_FORBIDDEN")),
        Just(serde_json::json!(["$a", "$b"])),
        Just(serde_json::json!([{}, {"type": "m.room.message"}])),
        Just(serde_json::json!([{"edu_type": "m.typing", "content": {}}])),
        Just(serde_json::json!({"$a": {}, "$b": {"error": "no"}})),
        Just(serde_json::json!({})),
        Just(serde_json::json!(true)),
        (-5i64..100).prop_map(Value::from),
        json_value(),
    ];
    prop::collection::btree_map(prop::sample::select(KEYS), value, 0..6).prop_map(|fields| {
        let object: Object = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        Value::Object(object).to_string().into_bytes()
    })
}

/// Bodies: shaped JSON objects, real bodies of other messages, random JSON, random bytes.
fn body() -> impl Strategy<Value = Option<Vec<u8>>> {
    let json_body = json_value().prop_map(|v| v.to_string().into_bytes());
    let real = (request(), response()).prop_flat_map(|(req, resp)| {
        let bytes =
            [req.to_http().body.map(|b| b.to_vec()).unwrap_or_default(), resp.to_http().body];
        prop::sample::select(bytes.to_vec())
    });
    prop::option::weighted(
        0.9,
        prop_oneof![
            4 => shaped_body(),
            2 => real,
            1 => json_body,
            1 => prop::collection::vec(any::<u8>(), 0..64),
        ],
    )
}

/// Raw requests: mostly aimed at a real endpoint (its method, version and number of path
/// segments, each right nine times in ten), sometimes any string as the target.
fn raw_request() -> impl Strategy<Value = HttpRequest> {
    let aimed = endpoint().prop_flat_map(|endpoint| {
        let one_param = matches!(
            endpoint,
            Endpoint::SendTransaction
                | Endpoint::GetEvent
                | Endpoint::GetStateIds
                | Endpoint::GetState
                | Endpoint::Backfill
                | Endpoint::GetMissingEvents
        );
        let param_count = if one_param { 1 } else { 2 };
        (
            prop_oneof![9 => Just(endpoint.method()), 1 => method()],
            prop_oneof![9 => Just(endpoint.api_version()), 1 => Just("v3")],
            prop_oneof![9 => Just(param_count), 1 => 0..4usize]
                .prop_flat_map(|n| prop::collection::vec(segment(), n)),
            query(),
            body(),
        )
            .prop_map(move |(method, version, segments, query, body)| {
                let mut target = format!("/_matrix/federation/{version}/{}", endpoint.name());
                for segment in segments {
                    target.push('/');
                    target.push_str(&segment);
                }
                target.push_str(&query);
                HttpRequest { method, path_and_query: target, body: body.map(Into::into) }
            })
    });
    let anything =
        (method(), any::<String>(), body()).prop_map(|(method, path_and_query, body)| {
            HttpRequest { method, path_and_query, body: body.map(Into::into) }
        });
    prop_oneof![9 => aimed, 1 => anything]
}

/// One edit of a byte string: flip bits of a byte, delete one, or insert one.
fn mutate(bytes: &mut Vec<u8>, position: usize, byte: u8, kind: u8) {
    if bytes.is_empty() {
        bytes.push(byte);
        return;
    }
    let at = position % bytes.len();
    match kind % 3 {
        0 => bytes[at] ^= byte | 1,
        1 => {
            bytes.remove(at);
        }
        _ => bytes.insert(at, byte),
    }
}

/// Whatever a decoder accepted must encode again, and decode to the same message.
fn check_accepted_request(request: &Request) -> Result<(), TestCaseError> {
    let again = Request::from_http(&request.to_http());
    prop_assert_eq!(again.as_ref(), Ok(request));
    Ok(())
}

fn check_accepted_response(endpoint: Endpoint, response: &Response) -> Result<(), TestCaseError> {
    let again = Response::from_http(endpoint, &response.to_http());
    prop_assert_eq!(again.as_ref(), Ok(response));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn requests_round_trip_through_bytes(request in request()) {
        prop_assert_eq!(request.validate(), Ok(()));
        let http = request.to_http();
        prop_assert_eq!(http.method, request.endpoint().method());
        prop_assert!(http.path_and_query.is_ascii());
        prop_assert_eq!(http.byte_count(), request.byte_count());
        let decoded = Request::from_http(&http);
        prop_assert_eq!(decoded.as_ref(), Ok(&request));
        // Canonical: encoding the decoded message gives the same bytes.
        prop_assert_eq!(decoded.unwrap().to_http(), http);
    }

    #[test]
    fn responses_round_trip_through_bytes(response in response()) {
        prop_assert_eq!(response.validate(), Ok(()));
        let http = response.to_http();
        prop_assert_eq!(http.status, response.status());
        // A success decodes for its own endpoint; an error for any endpoint.
        let endpoints = match response.endpoint() {
            Some(endpoint) => vec![endpoint],
            None => Endpoint::ALL.to_vec(),
        };
        for endpoint in endpoints {
            let decoded = Response::from_http(endpoint, &http);
            prop_assert_eq!(decoded.as_ref(), Ok(&response));
            prop_assert_eq!(decoded.unwrap().to_http(), http.clone());
        }
    }

    #[test]
    fn request_decoding_never_panics(http in raw_request()) {
        match Request::from_http(&http) {
            Ok(request) => check_accepted_request(&request)?,
            Err(error) => {
                let response = error.to_response();
                let encoded = response.to_http();
                prop_assert!((400..=599).contains(&encoded.status));
                prop_assert_eq!(Response::from_http(Endpoint::GetEvent, &encoded), Ok(response));
            }
        }
    }

    #[test]
    fn response_decoding_never_panics(
        endpoint in endpoint(),
        status in prop_oneof![Just(200u16), Just(400u16), Just(404u16), 0u16..1000],
        body in body(),
    ) {
        let http = HttpResponse { status, body: body.unwrap_or_default() };
        if let Ok(response) = Response::from_http(endpoint, &http) {
            check_accepted_response(endpoint, &response)?;
        }
    }

    #[test]
    fn mutated_requests_never_panic(
        request in request(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>(), any::<bool>()), 1..4),
    ) {
        let mut http = request.to_http();
        for (position, byte, kind, in_target) in edits {
            match (&mut http.body, in_target) {
                (Some(body), false) => mutate(body.make_mut(), position, byte, kind),
                _ => {
                    // Mostly visible ASCII, which gets past the target check.
                    let byte = if kind & 4 == 0 { 0x21 + byte % 94 } else { byte };
                    let mut target = http.path_and_query.into_bytes();
                    mutate(&mut target, position, byte, kind);
                    http.path_and_query = String::from_utf8_lossy(&target).into_owned();
                }
            }
        }
        if let Ok(decoded) = Request::from_http(&http) {
            check_accepted_request(&decoded)?;
        }
    }

    #[test]
    fn mutated_responses_never_panic(
        response in response(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4),
        endpoint in endpoint(),
    ) {
        let mut http = response.to_http();
        for (position, byte, kind) in edits {
            mutate(&mut http.body, position, byte, kind);
        }
        let endpoint = response.endpoint().unwrap_or(endpoint);
        if let Ok(decoded) = Response::from_http(endpoint, &http) {
            check_accepted_response(endpoint, &decoded)?;
        }
    }
}
