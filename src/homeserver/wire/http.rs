//! The HTTP shapes federation messages travel in: [`Method`], [`HttpRequest`] (method,
//! percent-encoded target, canonical-JSON body) and [`HttpResponse`] (status and body).
//! Headers are not modelled.

use std::fmt;

/// An HTTP method. Federation uses GET, PUT and POST; DELETE exists so that a peer sending
/// an unexpected method can be modelled (it gets 405).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    Get,
    Put,
    Post,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }

    /// Whether requests with this method carry a JSON body (spec digest §1: POST and PUT
    /// always carry a JSON object, maybe `{}`).
    pub fn has_body(self) -> bool {
        matches!(self, Method::Put | Method::Post)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request as it crosses the simulated network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: Method,
    /// The request target: percent-encoded path, then `?` and the query if any.
    pub path_and_query: String,
    /// Canonical JSON for PUT and POST; `None` for GET.
    pub body: Option<Vec<u8>>,
}

impl HttpRequest {
    /// Bytes this request costs on the wire, for traffic accounting: the method, a space,
    /// the target and the body. Headers (host, auth, content type) are not modelled.
    pub fn byte_count(&self) -> u64 {
        let body = self.body.as_ref().map_or(0, Vec::len);
        u64::try_from(self.method.as_str().len() + 1 + self.path_and_query.len() + body)
            .expect("request size fits in u64")
    }
}

/// A response as it crosses the simulated network. Every body is a JSON object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// Bytes this response costs on the wire, for traffic accounting: three status digits
    /// and the body. Headers are not modelled.
    pub fn byte_count(&self) -> u64 {
        u64::try_from(3 + self.body.len()).expect("response size fits in u64")
    }
}
