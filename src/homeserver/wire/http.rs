//! The HTTP shapes federation messages travel in: [`Method`], [`HttpRequest`] (method,
//! percent-encoded target, canonical-JSON body) and [`HttpResponse`] (status and body).
//! Headers are not modelled.

use std::fmt;
use std::sync::Arc;

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
    pub body: Option<RequestBody>,
}

/// The bytes of a request's body, which requests to several destinations may share: a
/// server sends the same transaction body to every destination it sends the same PDUs to
/// at once, and only the target (the transaction id) differs. Read as a byte slice;
/// [`RequestBody::make_mut`] copies shared bytes before changing them.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RequestBody(Arc<Vec<u8>>);

impl RequestBody {
    /// The bytes to change, copied first if another request shares them.
    pub fn make_mut(&mut self) -> &mut Vec<u8> {
        Arc::make_mut(&mut self.0)
    }

    /// Whether `self` and `other` are the same bytes in memory, not only equal ones.
    pub fn is_shared_with(&self, other: &RequestBody) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl From<Vec<u8>> for RequestBody {
    fn from(bytes: Vec<u8>) -> RequestBody {
        RequestBody(Arc::new(bytes))
    }
}

impl std::ops::Deref for RequestBody {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl HttpRequest {
    /// Bytes this request costs on the wire, for traffic accounting: the method, a space,
    /// the target and the body. Headers (host, auth, content type) are not modelled.
    pub fn byte_count(&self) -> u64 {
        let body = self.body.as_ref().map_or(0, |body| body.len());
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
