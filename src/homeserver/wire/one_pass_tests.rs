//! Tests of the answers read in one pass and written from their parts: `/state_ids`
//! answers (each id read from its text, the lists written from the ids) against the JSON
//! tree path they stand in for.

use serde_json::json;

use super::*;
use crate::matrix::canonical_json;

fn ids(texts: &[&str]) -> Vec<EventId> {
    texts.iter().map(|text| EventId::parse(text).unwrap()).collect()
}

fn answer(body: &str) -> HttpResponse {
    HttpResponse { status: 200, body: body.as_bytes().to_vec() }
}

#[test]
fn state_ids_answers_are_written_from_their_ids() {
    let response = Response::GetStateIds {
        pdu_ids: ids(&["$b", "$a", "$é", "$x+/y_z"]),
        auth_chain_ids: ids(&["$c"]),
    };
    let written = response.to_http();
    // The body as its JSON object encodes, written by hand here.
    let expected = json!({"auth_chain_ids": ["$c"], "pdu_ids": ["$b", "$a", "$é", "$x+/y_z"]});
    assert_eq!(written.body, canonical_json::encode(&expected).unwrap());
    assert_eq!(Response::from_http(Endpoint::GetStateIds, &written).unwrap(), response);
    let empty = Response::GetStateIds { pdu_ids: vec![], auth_chain_ids: vec![] };
    let written = empty.to_http();
    assert_eq!(written.body, br#"{"auth_chain_ids":[],"pdu_ids":[]}"#);
}

#[test]
fn state_ids_answers_as_servers_send_them_are_read_in_one_pass() {
    for (body, pdu_ids, auth_chain_ids) in [
        (r#"{"auth_chain_ids":[],"pdu_ids":[]}"#, vec![], vec![]),
        (r#"{"auth_chain_ids":["$a","$b"],"pdu_ids":["$c"]}"#, vec!["$c"], vec!["$a", "$b"]),
        // Members in either order, whitespace, and escaped ids, decoded.
        (
            r#" { "pdu_ids" : [ "$\u00e9" , "$d" ] , "auth_chain_ids" : [ ] } "#,
            vec!["$é", "$d"],
            vec![],
        ),
    ] {
        let (pdu_ids, auth_chain_ids) = (ids(&pdu_ids), ids(&auth_chain_ids));
        let read = super::response::read_state_ids(body.as_bytes()).expect(body);
        assert_eq!(read, (pdu_ids.clone(), auth_chain_ids.clone()), "{body}");
        let decoded = Response::from_http(Endpoint::GetStateIds, &answer(body)).unwrap();
        assert_eq!(decoded, Response::GetStateIds { pdu_ids, auth_chain_ids }, "{body}");
    }

    // Any other shape, or any error, is parsed whole as before: accepted as before (other
    // members are ignored there), or refused with the same error.
    for (body, accepted) in [
        (r#"{"auth_chain_ids":[],"pdu_ids":[],"x":1}"#, true),
        (r#"{"auth_chain_ids":[]}"#, false),
        (r#"{"pdu_ids":[]}"#, false),
        (r#"{"auth_chain_ids":[],"pdu_ids":[1]}"#, false),
        (r#"{"auth_chain_ids":[],"pdu_ids":["a"]}"#, false),
        (r#"{"auth_chain_ids":[],"pdu_ids":"$a"}"#, false),
        (r#"{"auth_chain_ids":[],"pdu_ids":[],"pdu_ids":[]}"#, false),
        (r#"{"auth_chain_ids":[],"pdu_ids":["$a" "$b"]}"#, false),
        (r#"{"auth_chain_ids":[],"pdu_ids":[]} x"#, false),
        (r#"["$a"]"#, false),
    ] {
        assert_eq!(super::response::read_state_ids(body.as_bytes()), None, "{body}");
        let decoded = Response::from_http(Endpoint::GetStateIds, &answer(body));
        assert_eq!(decoded.is_ok(), accepted, "{body}: {decoded:?}");
    }
}
