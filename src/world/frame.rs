//! Messages as bytes on the simulated network: the network may damage any byte, so what
//! travels is the request or response in a small text framing, and the receiving side
//! parses it back like an HTTP stack would.
//!
//! Framing ([impl], a stand-in for HTTP/1.1 without headers):
//! - request: `METHOD SP TARGET LF BODY` (body empty for GET);
//! - response: `STATUS LF BODY` (three ASCII digits).
//!
//! A request whose first line no longer parses is answered `400 M_UNRECOGNIZED` by the
//! receiver's HTTP layer; a response whose status line no longer parses counts as a
//! failed request (the requester sees no answer).

use crate::homeserver::wire::{
    ErrCode, ErrorResponse, HttpRequest, HttpResponse, Method, Response,
};
use crate::net::{Corruptible, Corruption};
use crate::stdx::Prng;

/// What a message on the network is, beside its bytes. The metadata models the TCP
/// connection (which request a response answers, which incarnation of the requester is
/// waiting) and is never damaged.
#[derive(Clone, Debug)]
pub struct Message {
    pub kind: Kind,
    pub bytes: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A request with the sender's request id and incarnation.
    Request { id: u64, incarnation: u32 },
    /// The answer to request `id` of the destination's incarnation `incarnation`, carried
    /// by network message `request_msg`.
    Response { id: u64, incarnation: u32, request_msg: u64 },
}

impl Corruptible for Message {
    fn corrupt(&mut self, prng: &mut Prng) -> Option<Corruption> {
        self.bytes.corrupt(prng)
    }
}

const METHODS: [Method; 4] = [Method::Get, Method::Put, Method::Post, Method::Delete];

pub fn encode_request(request: &HttpRequest) -> Vec<u8> {
    let mut out = Vec::with_capacity(usize::try_from(request.byte_count()).unwrap_or(0) + 1);
    out.extend_from_slice(request.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(request.path_and_query.as_bytes());
    out.push(b'\n');
    if let Some(body) = &request.body {
        out.extend_from_slice(body);
    }
    out
}

/// The request back from its bytes, or `None` if the request line is damaged. The body
/// keeps the bytes' vector (the line is moved out of its front) rather than a copy.
pub fn decode_request(mut bytes: Vec<u8>) -> Option<HttpRequest> {
    let newline = bytes.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&bytes[..newline]).ok()?;
    let (method, target) = line.split_once(' ')?;
    let method = METHODS.into_iter().find(|m| m.as_str() == method)?;
    if target.is_empty() || target.contains(' ') {
        return None;
    }
    let path_and_query = target.to_owned();
    let body = method.has_body().then(|| {
        bytes.drain(..=newline);
        bytes
    });
    Some(HttpRequest { method, path_and_query, body })
}

pub fn encode_response(response: &HttpResponse) -> Vec<u8> {
    let mut out = Vec::with_capacity(response.body.len() + 6);
    std::io::Write::write_fmt(&mut out, format_args!("{:03}", response.status))
        .expect("writing to a Vec cannot fail");
    out.push(b'\n');
    out.extend_from_slice(&response.body);
    out
}

/// The response back from its bytes, or `None` if the status line is damaged. The body
/// keeps the bytes' vector, as in [`decode_request`].
pub fn decode_response(mut bytes: Vec<u8>) -> Option<HttpResponse> {
    if bytes.len() < 4 || bytes[3] != b'\n' || !bytes[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let status = bytes[..3].iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    if !(100..=599).contains(&status) {
        return None;
    }
    bytes.drain(..4);
    Some(HttpResponse { status, body: bytes })
}

/// What the receiver's HTTP layer answers to a request line it cannot read.
pub fn unreadable_request() -> HttpResponse {
    Response::Error(ErrorResponse::new(400, ErrCode::Unrecognized, "bad request line")).to_http()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_responses_round_trip() {
        let put = HttpRequest {
            method: Method::Put,
            path_and_query: "/_matrix/federation/v1/send/1".into(),
            body: Some(b"{\"pdus\":[]}".to_vec()),
        };
        assert_eq!(decode_request(encode_request(&put)), Some(put));
        let get = HttpRequest {
            method: Method::Get,
            path_and_query: "/_matrix/federation/v1/event/%24a?x=1".into(),
            body: None,
        };
        assert_eq!(encode_request(&get), b"GET /_matrix/federation/v1/event/%24a?x=1\n");
        assert_eq!(decode_request(encode_request(&get)), Some(get));
        let ok = HttpResponse { status: 200, body: b"{}".to_vec() };
        assert_eq!(encode_response(&ok), b"200\n{}");
        assert_eq!(decode_response(encode_response(&ok)), Some(ok));
    }

    #[test]
    fn damaged_framing_is_refused_not_panicked() {
        for bad in [&b""[..], b"PUT", b"PXT /a\n{}", b"PUT  /a\n", b"GET \n", b"\xff /a\n"] {
            assert_eq!(decode_request(bad.to_vec()), None, "{bad:?}");
        }
        for bad in [&b""[..], b"20", b"2x0\n{}", b"200{}", b"999\n", b"099\n"] {
            assert_eq!(decode_response(bad.to_vec()), None, "{bad:?}");
        }
    }
}
