//! Parsing request targets: percent-decoding, path parameters and the query string.

use crate::homeserver::wire::echo;
use crate::homeserver::wire::endpoint::percent_encode;
use crate::homeserver::wire::error::WireError;
use crate::matrix::ids::EventId;

/// Decodes `%XX` escapes; other visible ASCII is taken literally, and in a query `+` means
/// a space (HTML form encoding, which HTTP servers apply to query strings). The result
/// must be UTF-8.
pub(super) fn percent_decode(raw: &str, plus_is_space: bool) -> Result<String, WireError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let hex = |at: usize| bytes.get(at).and_then(|&b| char::from(b).to_digit(16));
                let (Some(high), Some(low)) = (hex(index + 1), hex(index + 2)) else {
                    return Err(WireError::BadTarget {
                        problem: format!("bad percent-encoding in {:?}", echo(raw)),
                    });
                };
                out.push(u8::try_from(high * 16 + low).expect("two hex digits fit in a byte"));
                index += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                index += 1;
            }
            b => {
                out.push(b);
                index += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| WireError::BadTarget {
        problem: format!("percent-encoding of {:?} is not UTF-8", echo(raw)),
    })
}

pub(super) fn path_param(raw: &str, name: &str) -> Result<String, WireError> {
    let text = percent_decode(raw, false)?;
    if text.is_empty() {
        return Err(WireError::invalid_param(name, "must not be empty"));
    }
    Ok(text)
}

pub(super) fn path_event_id(raw: &str) -> Result<EventId, WireError> {
    let text = path_param(raw, "eventId")?;
    EventId::parse(&text).map_err(|e| WireError::invalid_param("eventId", e.problem))
}

/// Query parameters in order, decoded; or, when building, the encoded query string.
#[derive(Default)]
pub(super) struct Query {
    pairs: Vec<(String, String)>,
    pub(super) encoded: String,
}

impl Query {
    pub(super) fn push(&mut self, name: &str, value: &str) {
        self.encoded.push(if self.encoded.is_empty() { '?' } else { '&' });
        percent_encode(&mut self.encoded, name);
        self.encoded.push('=');
        percent_encode(&mut self.encoded, value);
    }

    /// Parses `a=1&b=2`; a pair without `=` has an empty value, empty pairs are skipped.
    pub(super) fn parse(raw: &str) -> Result<Query, WireError> {
        let mut pairs = Vec::new();
        for pair in raw.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            pairs.push((percent_decode(name, true)?, percent_decode(value, true)?));
        }
        Ok(Query { pairs, encoded: String::new() })
    }

    pub(super) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs.iter().filter(move |(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// A single-valued parameter. Repeating it is an error ([digest]: two readings of one
    /// request would let servers disagree, as with duplicate JSON keys).
    pub(super) fn single(&self, name: &str) -> Result<Option<&str>, WireError> {
        let mut first = None;
        for (key, value) in &self.pairs {
            if key != name {
                continue;
            }
            if first.is_some() {
                return Err(WireError::invalid_param(name, "given more than once"));
            }
            first = Some(value.as_str());
        }
        Ok(first)
    }

    pub(super) fn event_id(&self, name: &str) -> Result<EventId, WireError> {
        let text = self.single(name)?.ok_or_else(|| WireError::missing_param(name))?;
        EventId::parse(text).map_err(|e| WireError::invalid_param(name, e.problem))
    }
}
