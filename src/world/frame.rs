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
    ErrCode, ErrorResponse, HttpRequest, HttpResponse, Method, RequestBody, Response,
};
use crate::net::corrupt::corrupt_split;
use crate::net::{Corruptible, Corruption};
use crate::stdx::Prng;

/// What a message on the network is, beside its bytes. The metadata models the TCP
/// connection (which request a response answers, which incarnation of the requester is
/// waiting) and is never damaged.
///
/// The bytes are the framing's ([`encode_request`], [`encode_response`]), kept in two
/// pieces: the first line with its newline, and the body as the sender wrote it. The body
/// is moved in and out rather than copied behind the line and moved back to the front
/// after it, and a request's body may be shared with the sender's requests to other
/// destinations ([`RequestBody`]); damage falls on the two pieces as it would on the
/// joined bytes ([`corrupt_split`]), on a copy of shared bytes, and reading them back
/// gives what reading the joined bytes gives.
#[derive(Clone, Debug)]
pub struct Message {
    pub kind: Kind,
    head: Vec<u8>,
    body: Body,
}

/// A message's body: a response's own bytes, or a request's, which requests to other
/// destinations may share ([`RequestBody`]; damage copies them first).
#[derive(Clone, Debug)]
enum Body {
    Own(Vec<u8>),
    Shared(RequestBody),
}

impl Body {
    fn bytes(&self) -> &[u8] {
        match self {
            Body::Own(bytes) => bytes,
            Body::Shared(body) => body,
        }
    }

    fn make_mut(&mut self) -> &mut Vec<u8> {
        match self {
            Body::Own(bytes) => bytes,
            Body::Shared(body) => body.make_mut(),
        }
    }

    fn into_request_body(self) -> RequestBody {
        match self {
            Body::Own(bytes) => RequestBody::from(bytes),
            Body::Shared(body) => body,
        }
    }

    fn into_vec(self) -> Vec<u8> {
        match self {
            Body::Own(bytes) => bytes,
            Body::Shared(body) => body.to_vec(),
        }
    }
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
        corrupt_split(&mut self.head, self.body.make_mut(), prng)
    }
}

impl Message {
    /// The message of `request`: the bytes of [`encode_request`].
    pub fn request(kind: Kind, request: HttpRequest) -> Message {
        let HttpRequest { method, path_and_query, body } = request;
        let method = method.as_str().as_bytes();
        let mut head = Vec::with_capacity(method.len() + path_and_query.len() + 2);
        head.extend_from_slice(method);
        head.push(b' ');
        head.extend_from_slice(path_and_query.as_bytes());
        head.push(b'\n');
        let body = match body {
            Some(body) => Body::Shared(body),
            None => Body::Own(Vec::new()),
        };
        Message { kind, head, body }
    }

    /// The message of `response`: the bytes of [`encode_response`].
    pub fn response(kind: Kind, response: HttpResponse) -> Message {
        let mut head = Vec::with_capacity(4);
        crate::stdx::push_status(&mut head, response.status);
        head.push(b'\n');
        Message { kind, head, body: Body::Own(response.body) }
    }

    /// The number of bytes on the wire.
    pub fn byte_count(&self) -> usize {
        self.head.len() + self.body.bytes().len()
    }

    /// The request back: [`decode_request`] of the bytes.
    pub fn into_request(self) -> Option<HttpRequest> {
        // The first newline of the bytes is the head's last byte unless damage moved it;
        // then the joined bytes are read as they are.
        match self.head.split_last() {
            Some((b'\n', line)) if !line.contains(&b'\n') => {
                let (method, path_and_query) = request_line(line)?;
                let body = method.has_body().then(|| self.body.into_request_body());
                Some(HttpRequest { method, path_and_query, body })
            }
            _ => decode_request(self.joined()),
        }
    }

    /// The response back: [`decode_response`] of the bytes.
    pub fn into_response(self) -> Option<HttpResponse> {
        match <[u8; 4]>::try_from(self.head.as_slice()) {
            Ok(line) => {
                Some(HttpResponse { status: status_line(&line)?, body: self.body.into_vec() })
            }
            Err(_) => decode_response(self.joined()),
        }
    }

    fn joined(self) -> Vec<u8> {
        let mut bytes = self.head;
        bytes.extend_from_slice(self.body.bytes());
        bytes
    }
}

const METHODS: [Method; 4] = [Method::Get, Method::Put, Method::Post, Method::Delete];

/// The bytes of `request` in the framing. A [`Message`] keeps them in two pieces.
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
    let (method, path_and_query) = request_line(&bytes[..newline])?;
    let body = method.has_body().then(|| {
        bytes.drain(..=newline);
        RequestBody::from(bytes)
    });
    Some(HttpRequest { method, path_and_query, body })
}

/// The method and target of a request line (without its newline), or `None` if it is
/// damaged.
fn request_line(line: &[u8]) -> Option<(Method, String)> {
    let line = std::str::from_utf8(line).ok()?;
    let (method, target) = line.split_once(' ')?;
    let method = METHODS.into_iter().find(|m| m.as_str() == method)?;
    if target.is_empty() || target.contains(' ') {
        return None;
    }
    Some((method, target.to_owned()))
}

/// The bytes of `response` in the framing. A [`Message`] keeps them in two pieces.
pub fn encode_response(response: &HttpResponse) -> Vec<u8> {
    let mut out = Vec::with_capacity(response.body.len() + 6);
    crate::stdx::push_status(&mut out, response.status);
    out.push(b'\n');
    out.extend_from_slice(&response.body);
    out
}

/// The response back from its bytes, or `None` if the status line is damaged. The body
/// keeps the bytes' vector, as in [`decode_request`].
pub fn decode_response(mut bytes: Vec<u8>) -> Option<HttpResponse> {
    let line = <[u8; 4]>::try_from(bytes.get(..4)?).expect("four bytes");
    let status = status_line(&line)?;
    bytes.drain(..4);
    Some(HttpResponse { status, body: bytes })
}

/// The status of a status line (three digits and a newline), or `None` if it is damaged.
fn status_line(line: &[u8; 4]) -> Option<u16> {
    if line[3] != b'\n' || !line[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let status = line[..3].iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    (100..=599).contains(&status).then_some(status)
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
            body: Some(b"{\"pdus\":[]}".to_vec().into()),
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

    const KIND: Kind = Kind::Request { id: 1, incarnation: 0 };

    fn requests() -> Vec<HttpRequest> {
        let request = |method, target: &str, body: Option<&[u8]>| HttpRequest {
            method,
            path_and_query: target.into(),
            body: body.map(|body| body.to_vec().into()),
        };
        vec![
            request(Method::Put, "/_matrix/federation/v1/send/1", Some(b"{\"pdus\":[]}")),
            request(Method::Put, "/a", Some(b"")),
            request(Method::Post, "/b/%24c", Some(b"{\"x\":\"\\n\"}")),
            request(Method::Get, "/_matrix/federation/v1/event/%24a?x=1", None),
            // A body with newlines of its own, which the framing does not forbid.
            request(Method::Put, "/c", Some(b"{\n}\n")),
            request(Method::Delete, "/d", None),
        ]
    }

    fn responses() -> Vec<HttpResponse> {
        vec![
            HttpResponse { status: 200, body: b"{}".to_vec() },
            HttpResponse { status: 404, body: Vec::new() },
            HttpResponse { status: 502, body: b"{\"errcode\":\"M_UNKNOWN\"}\n".to_vec() },
        ]
    }

    #[test]
    fn a_message_holds_the_framing_bytes_and_reads_back_as_they_do() {
        for request in requests() {
            let message = Message::request(KIND, request.clone());
            assert_eq!(message.byte_count(), encode_request(&request).len());
            assert_eq!(message.clone().joined(), encode_request(&request));
            let expected = decode_request(encode_request(&request));
            assert_eq!(message.into_request(), expected);
        }
        for response in responses() {
            let message = Message::response(KIND, response.clone());
            assert_eq!(message.clone().joined(), encode_response(&response));
            assert_eq!(message.into_response(), Some(response));
        }
    }

    /// Every seed damages a message's two pieces as it damages the joined bytes, and the
    /// damaged message reads back as the damaged bytes do: the same request or response,
    /// or the same refusal. Seeds run until every byte of every message has been hit.
    #[test]
    fn a_damaged_message_reads_as_its_damaged_bytes_do() {
        let mut refused = 0;
        for request in requests() {
            let message = || Message::request(KIND, request.clone());
            let bytes = encode_request(&request);
            refused += damage_every_byte(&bytes, message, decode_request, Message::into_request);
        }
        for response in responses() {
            let message = || Message::response(KIND, response.clone());
            let bytes = encode_response(&response);
            refused += damage_every_byte(&bytes, message, decode_response, Message::into_response);
        }
        // Damaged lines were among them, not only damaged bodies.
        assert!(refused > 20, "{refused} refused");
    }

    /// Damages a `message()` and a copy of its `bytes` with the same seed, seed after seed
    /// until every byte has been hit, and checks that both take the same damage and read
    /// back alike. Returns how many of the reads were refusals.
    fn damage_every_byte<T: PartialEq + std::fmt::Debug>(
        bytes: &[u8],
        message: impl Fn() -> Message,
        read_bytes: impl Fn(Vec<u8>) -> Option<T>,
        read_message: impl Fn(Message) -> Option<T>,
    ) -> usize {
        let mut refused = 0;
        let mut hit = vec![false; bytes.len()];
        let mut seed = 0;
        while hit.contains(&false) {
            let mut damaged_message = message();
            let mut damaged = bytes.to_vec();
            let expected = damaged.corrupt(&mut Prng::from_seed(seed));
            let got = damaged_message.corrupt(&mut Prng::from_seed(seed));
            assert_eq!(got, expected, "{bytes:?}, seed {seed}");
            hit[usize::try_from(got.unwrap().offset).unwrap()] = true;
            let read = read_bytes(damaged);
            refused += usize::from(read.is_none());
            assert_eq!(read_message(damaged_message), read, "{bytes:?}, seed {seed}");
            seed += 1;
        }
        refused
    }

    #[test]
    fn damage_to_a_shared_body_leaves_the_other_requests_as_they_were() {
        let request = requests().remove(0);
        let other = HttpRequest {
            path_and_query: "/_matrix/federation/v1/send/2".into(),
            ..request.clone()
        };
        assert!(other.body.as_ref().unwrap().is_shared_with(request.body.as_ref().unwrap()));
        let body_at = request.path_and_query.len() + 5; // "PUT " and the newline.
        let mut seed = 0;
        loop {
            let mut message = Message::request(KIND, request.clone());
            let damage = message.corrupt(&mut Prng::from_seed(seed)).unwrap();
            seed += 1;
            if damage.offset < u64::try_from(body_at).unwrap() {
                continue; // A damaged line: look for a damaged body.
            }
            let sent = Message::request(KIND, other.clone());
            let damaged = message.into_request().unwrap();
            assert_ne!(damaged.body, request.body);
            assert_eq!(sent.into_request().unwrap(), other);
            assert_eq!(other.body, request.body, "the shared bytes are untouched");
            break;
        }
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
