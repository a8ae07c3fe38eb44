//! Identifiers: server names, user ids, room ids and event ids, with the spec's grammar.
//!
//! Spec: appendices "Identifier Grammar" and the room-version event-id and room-id formats
//! (digest: spec/events.md §3). Every id is at most 255 bytes.
//!
//! [`EventId`] is cheap to clone (`Arc<str>`): state resolution and the DAG code copy ids
//! far more often than they create them.

use std::fmt;
use std::sync::Arc;

mod id_map;
mod texts;

pub use id_map::{EventIdMap, LookupMap, WordHash};
pub use texts::TextInterner;

/// Longest user id, room id, event id (in bytes).
pub const ID_BYTES_MAX: usize = 255;
/// Length of the URL-safe unpadded base64 of a SHA-256 digest.
pub const HASH_B64_LEN: usize = 43;

/// Why a string is not a valid identifier of its kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {value:?}: {problem}")]
pub struct IdError {
    pub kind: &'static str,
    pub value: String,
    pub problem: &'static str,
}

fn id_error(kind: &'static str, value: &str, problem: &'static str) -> IdError {
    // Keep error messages bounded even for hostile input.
    let value: String = value.chars().take(80).collect();
    IdError { kind, value, problem }
}

/// Checks a server name: `hostname [":" port]`, hostname an IPv4 literal, a bracketed IPv6
/// literal or a DNS name of `[A-Za-z0-9.-]` (1–255 characters); port 1–5 digits.
pub fn check_server_name(name: &str) -> Result<(), IdError> {
    const KIND: &str = "server name";
    let (host, port) = if let Some(rest) = name.strip_prefix('[') {
        let Some(close) = rest.find(']') else {
            return Err(id_error(KIND, name, "unterminated IPv6 literal"));
        };
        let literal = &rest[..close];
        let ok = (2..=45).contains(&literal.len())
            && literal.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !ok {
            return Err(id_error(KIND, name, "invalid IPv6 literal"));
        }
        let after = &rest[close + 1..];
        match after.strip_prefix(':') {
            Some(port) => (None, Some(port)),
            None if after.is_empty() => (None, None),
            None => return Err(id_error(KIND, name, "unexpected text after IPv6 literal")),
        }
    } else {
        // The last ':' splits off the port. A byte loop: names are short, and a string
        // search's setup cost more than the scan (once per transaction received).
        match name.bytes().rposition(|b| b == b':') {
            Some(colon) => (Some(&name[..colon]), Some(&name[colon + 1..])),
            None => (Some(name), None),
        }
    };
    check_host_and_port(name, host, port)
}

/// The checks of a server name's parts once it is split ([`check_server_name`]): the
/// hostname (none for an IPv6 literal, checked before) and the port, if any.
fn check_host_and_port(name: &str, host: Option<&str>, port: Option<&str>) -> Result<(), IdError> {
    const KIND: &str = "server name";
    if let Some(host) = host {
        // An IPv4 literal is also a valid DNS name under this character set, so one check
        // covers both.
        if host.is_empty() || host.len() > 255 {
            return Err(id_error(KIND, name, "hostname must be 1 to 255 characters"));
        }
        if !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
            return Err(id_error(KIND, name, "hostname may only contain A-Z a-z 0-9 . -"));
        }
    }
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(id_error(KIND, name, "port must be 1 to 5 digits"));
        }
    }
    Ok(())
}

/// Whether a user-id localpart uses only the characters new ids may use:
/// `a-z 0-9 . _ = - / +`.
pub fn is_strict_user_localpart(localpart: &str) -> bool {
    !localpart.is_empty()
        && localpart
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._=-/+".contains(&b))
}

/// Checks a user id `@localpart:server_name` and returns `(localpart, server_name)`.
///
/// Accepts historical localparts (any characters but `:` and NUL), as servers must over
/// federation; use [`is_strict_user_localpart`] for ids this server creates.
pub fn parse_user_id(id: &str) -> Result<(&str, &str), IdError> {
    const KIND: &str = "user id";
    if id.len() > ID_BYTES_MAX {
        return Err(id_error(KIND, id, "longer than 255 bytes"));
    }
    let Some(rest) = id.strip_prefix('@') else {
        return Err(id_error(KIND, id, "must start with '@'"));
    };
    // The first ':' ends the localpart; one byte loop finds it and any NUL before it (ids
    // are short, and two string searches' setup cost more than the scan).
    let mut nul = false;
    let Some(colon) = rest.bytes().position(|b| {
        nul |= b == 0;
        b == b':'
    }) else {
        return Err(id_error(KIND, id, "must contain ':' before the server name"));
    };
    let (localpart, server) = (&rest[..colon], &rest[colon + 1..]);
    if localpart.is_empty() {
        return Err(id_error(KIND, id, "empty localpart"));
    }
    if nul {
        return Err(id_error(KIND, id, "localpart contains NUL"));
    }
    check_server_name(server).map_err(|e| id_error(KIND, id, e.problem))?;
    Ok((localpart, server))
}

/// The server name of a user id, or `None` if it is not a valid user id.
pub fn user_server(id: &str) -> Option<&str> {
    parse_user_id(id).ok().map(|(_, server)| server)
}

/// How room ids look in a room version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomIdFormat {
    /// `!opaque:domain` (room versions 1–11).
    Domain,
    /// `!` + the create event's reference hash, URL-safe unpadded base64 (room version 12).
    CreateEventHash,
}

/// Checks a room id in the given format.
pub fn check_room_id(id: &str, format: RoomIdFormat) -> Result<(), IdError> {
    const KIND: &str = "room id";
    if id.len() > ID_BYTES_MAX {
        return Err(id_error(KIND, id, "longer than 255 bytes"));
    }
    let Some(rest) = id.strip_prefix('!') else {
        return Err(id_error(KIND, id, "must start with '!'"));
    };
    match format {
        RoomIdFormat::Domain => {
            let Some((localpart, domain)) = rest.split_once(':') else {
                return Err(id_error(KIND, id, "must be !localpart:domain"));
            };
            if localpart.contains('\0') {
                return Err(id_error(KIND, id, "localpart contains NUL"));
            }
            check_server_name(domain).map_err(|e| id_error(KIND, id, e.problem))
        }
        RoomIdFormat::CreateEventHash => {
            if is_hash_b64(rest) {
                Ok(())
            } else {
                Err(id_error(KIND, id, "must be '!' and 43 URL-safe base64 characters"))
            }
        }
    }
}

/// The domain of a `!localpart:domain` room id.
pub fn room_domain(id: &str) -> Option<&str> {
    id.strip_prefix('!')?.split_once(':').map(|(_, domain)| domain)
}

/// Whether `text` is 43 characters of URL-safe base64 (a SHA-256 digest, unpadded).
pub fn is_hash_b64(text: &str) -> bool {
    text.len() == HASH_B64_LEN
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An event id: `$` and an opaque string. In room versions 4 and later (so 10, 11, 12) an
/// event id minted by a server is `$` + the URL-safe unpadded base64 reference hash; ids
/// taken from input (exported rooms, fixtures) are accepted with only the sigil and length
/// checks, so that readable ids like `$join-alice` work in test data.
///
/// Ordered and compared as its text. Sorted maps keyed by event id compare ids on every
/// lookup, and a comparison by text is a library call (`memcmp`) per pair; so two ids
/// compare first by their first eight bytes as one number ([`order_prefix`]), which
/// settles all but equal or nearly equal ids, and one shared copy equals itself unread.
///
/// As a whole key of a [`LookupMap`], hashed as its text, by a hash taken when the id is
/// made and kept beside the pointer (`lookup_hash`): a lookup by id then reads neither the
/// text (whose cache line, at a thousand servers, is usually cold) nor hashes it again.
#[derive(Clone)]
pub struct EventId {
    text: Arc<str>,
    /// The hash a [`LookupMap`] finds `text` by (`id_map::lookup_hash`).
    lookup_hash: u64,
}

impl PartialEq for EventId {
    fn eq(&self, other: &EventId) -> bool {
        Arc::ptr_eq(&self.text, &other.text)
            || (self.lookup_hash == other.lookup_hash && *self.text == *other.text)
    }
}

impl Eq for EventId {}

impl Ord for EventId {
    fn cmp(&self, other: &EventId) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.text, &other.text) {
            return std::cmp::Ordering::Equal;
        }
        // The prefixes' order is the texts' order on their first eight bytes (an id holds
        // no NUL byte, so the padding of a shorter id sorts before any byte).
        let prefixes = order_prefix(&self.text).cmp(&order_prefix(&other.text));
        prefixes.then_with(|| self.text.cmp(&other.text))
    }
}

impl PartialOrd for EventId {
    fn partial_cmp(&self, other: &EventId) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::hash::Hash for EventId {
    /// The hash kept with the id, handed over whole (`id_map::hand_over_hash`). Under
    /// [`LookupMap`]'s hasher, the only one event ids are hashed by (the tidy test keeps
    /// every other hash map out), an id that is the whole key (or a key's first part) so
    /// hashes as its text does, which lookups by text (`Borrow<str>`) need. Elsewhere in a
    /// key, or under another hasher, it is one piece of that number: consistent with `==`,
    /// not with the text's hash (a `str` is written as two pieces, its bytes and a marker).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        id_map::hand_over_hash(state, self.lookup_hash);
    }
}

impl EventId {
    /// The hash of the id's text kept beside it (what a [`LookupMap`] finds it by): equal
    /// ids have equal hashes, and reading it reads neither the text nor hashes it.
    pub fn text_hash(&self) -> u64 {
        self.lookup_hash
    }

    /// The id whose text is `text`, which has passed [`EventId::check`].
    fn of_checked(text: Arc<str>) -> EventId {
        let lookup_hash = id_map::lookup_hash(&text);
        EventId { text, lookup_hash }
    }

    /// Checks the sigil and length (not the hash form, see [`EventId::is_reference_hash`]).
    pub fn parse(id: &str) -> Result<EventId, IdError> {
        EventId::check(id)?;
        Ok(EventId::of_checked(Arc::from(id)))
    }

    /// Whether [`EventId::parse`] accepts `id` (without making the id).
    pub fn is_valid(id: &str) -> bool {
        EventId::check(id).is_ok()
    }

    fn check(id: &str) -> Result<(), IdError> {
        const KIND: &str = "event id";
        if id.len() > ID_BYTES_MAX {
            return Err(id_error(KIND, id, "longer than 255 bytes"));
        }
        if id.len() < 2 || !id.starts_with('$') {
            return Err(id_error(KIND, id, "must be '$' followed by at least one character"));
        }
        // Eight bytes at a time: every id read is checked, and a general byte search cost
        // more than the rest of the check.
        if crate::matrix::words::has_zero_byte(id.as_bytes()) {
            return Err(id_error(KIND, id, "contains NUL"));
        }
        Ok(())
    }

    /// An event id from a reference hash.
    pub fn from_reference_hash(hash: &[u8; 32]) -> EventId {
        let id = format!("${}", crate::matrix::crypto::base64_url_encode(hash));
        assert_eq!(id.len(), 1 + HASH_B64_LEN);
        EventId::of_checked(Arc::from(id))
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The id's text, shared with this copy rather than copied.
    pub fn shared_text(&self) -> Arc<str> {
        Arc::clone(&self.text)
    }

    /// Whether the two are one shared copy (see [`IdInterner`]).
    #[cfg(test)]
    pub fn same_allocation(&self, other: &EventId) -> bool {
        Arc::ptr_eq(&self.text, &other.text)
    }

    /// Whether the id has the form of a reference hash (`$` + 43 URL-safe base64 chars).
    pub fn is_reference_hash(&self) -> bool {
        is_hash_b64(&self.text[1..])
    }

    /// The v12 room id of a create event with this id: `!` instead of `$`.
    pub fn to_room_id(&self) -> String {
        format!("!{}", &self.text[1..])
    }

    /// Whether `room_id` is [`EventId::to_room_id`] of this id, without building it (the
    /// auth rules of v12 ask this for every event they check).
    pub fn names_room(&self, room_id: &str) -> bool {
        room_id.strip_prefix('!') == self.text.strip_prefix('$')
    }

    /// The v12 create event id implied by a room id (`$` instead of `!`).
    pub fn from_room_id(room_id: &str) -> Option<EventId> {
        let rest = room_id.strip_prefix('!')?;
        EventId::parse(&format!("${rest}")).ok()
    }
}

/// The text of [`EventId::from_room_id`], made on the stack: for looking the create event
/// up by text, which every event checked in a v12 room does (allocating the id each time
/// was about 1% of a simulation).
pub struct CreateIdText {
    bytes: [u8; ID_BYTES_MAX],
    len: usize,
}

impl CreateIdText {
    /// `None` exactly where [`EventId::from_room_id`] gives `None`. Inlined, so that the
    /// text is made where the caller keeps it rather than copied there.
    #[inline]
    pub fn of_room(room_id: &str) -> Option<CreateIdText> {
        let rest = room_id.strip_prefix('!')?;
        let len = rest.len() + 1;
        if len > ID_BYTES_MAX {
            return None;
        }
        let mut bytes = [0u8; ID_BYTES_MAX];
        bytes[0] = b'$';
        bytes[1..len].copy_from_slice(rest.as_bytes());
        let text = CreateIdText { bytes, len };
        EventId::check(text.as_str()).is_ok().then_some(text)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("'$' and the rest of a str")
    }

    pub fn to_event_id(&self) -> EventId {
        EventId::of_checked(Arc::from(self.as_str()))
    }
}

/// The first eight bytes of an event id as a number (zeros after a shorter id), for
/// sorting and searching many ids: ordering by it and then by the id is ordering by the
/// id (an id holds no NUL byte), and most comparisons end at the number instead of
/// comparing text in a library call (a tenth of reading a large `mxsim resolve` input).
#[inline]
pub fn order_prefix(id: &str) -> u64 {
    if let Some(first) = id.as_bytes().first_chunk::<8>() {
        return u64::from_be_bytes(*first);
    }
    let mut bytes = [0u8; 8];
    let n = id.len().min(8);
    bytes[..n].copy_from_slice(&id.as_bytes()[..n]);
    u64::from_be_bytes(bytes)
}

/// Hands out one shared copy of each distinct event id: a large input cites each event
/// from many others (`auth_events`, `prev_events`), and each citation parsed on its own is
/// its own allocation (about 80 bytes with the allocator's overhead), which came to a fifth
/// of `mxsim resolve`'s memory on a 16,000-event room.
///
/// The ids' texts are kept in a [`TextInterner`], whose table is only looked up, never
/// iterated, and whose probes are bounded: sharing is an optimisation only (equal ids
/// compare equal whichever copy they are), and an id whose probe runs longer than
/// [`IdInterner::PROBES_MAX`] slots is returned as given, so that ids crafted to collide
/// cost a bounded amount of work each.
#[derive(Default)]
pub struct IdInterner {
    texts: TextInterner,
}

impl IdInterner {
    /// Probes before giving up on sharing an id.
    pub const PROBES_MAX: usize = TextInterner::PROBES_MAX;

    pub fn new() -> IdInterner {
        IdInterner::default()
    }

    /// An interner that holds `ids` distinct ids before it grows.
    #[cfg(test)]
    fn with_capacity(ids: usize) -> IdInterner {
        IdInterner { texts: TextInterner::with_capacity(ids) }
    }

    /// [`EventId::parse`], returning the shared copy of the id: the first copy parsed by
    /// this interner.
    pub fn parse(&mut self, text: &str) -> Result<EventId, IdError> {
        // An id shared here passed the check when it was first parsed, and nothing that
        // fails it is ever shared: a text equal to a shared id needs no check (an input
        // cites each id several times, and the check read every byte of every citation).
        let hash = id_map::lookup_hash(text);
        if let Some(shared) = self.shared(text, hash) {
            return Ok(shared);
        }
        EventId::check(text)?;
        Ok(self.share(text, hash))
    }

    /// The shared copy of `text`, whose [`id_map::lookup_hash`] is `hash`, if it has one.
    fn shared(&self, text: &str, hash: u64) -> Option<EventId> {
        self.texts.shared(text, hash).map(|text| EventId { text, lookup_hash: hash })
    }

    /// The shared copy of the checked id `text`, whose [`id_map::lookup_hash`] is `hash`
    /// (kept by the id made here, not taken again).
    fn share(&mut self, text: &str, hash: u64) -> EventId {
        EventId { text: self.texts.share_hashed(text, hash), lookup_hash: hash }
    }

    /// Distinct ids held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.texts.len()
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::borrow::Borrow<str> for EventId {
    fn borrow(&self) -> &str {
        &self.text
    }
}

impl serde::Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for EventId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        EventId::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interner_hands_out_one_copy_of_each_id() {
        let mut interner = IdInterner::new();
        let ids: Vec<String> = (0..20_000).map(|n| format!("${n:043}")).collect();
        let first: Vec<EventId> = ids.iter().map(|id| interner.parse(id).unwrap()).collect();
        for (id, shared) in ids.iter().zip(&first).rev() {
            let again = interner.parse(id).unwrap();
            assert_eq!(again.as_str(), id);
            assert!(Arc::ptr_eq(&again.text, &shared.text), "{id} was copied again");
        }
        assert_eq!(interner.len(), ids.len());
        for bad in ["", "$", "a", "!room", "$a\0b", &format!("${}", "x".repeat(255))] {
            let expected = EventId::parse(bad).unwrap_err().to_string();
            assert_eq!(interner.parse(bad).unwrap_err().to_string(), expected, "{bad:?}");
        }
        assert_eq!(interner.len(), ids.len(), "refused ids are not kept");
    }

    #[test]
    fn ids_whose_hashes_collide_are_still_handed_out_equal() {
        // Ids whose hashes start in one slot: after `PROBES_MAX` of them, ids are returned
        // unshared. (Sized so that it does not grow, which would place them apart.)
        let mut interner = IdInterner::with_capacity(1000);
        let slot = |id: &str| id_map::lookup_hash(id) as usize & (interner.texts.slots_len() - 1);
        let first_slot = slot("$collide0");
        let ids: Vec<String> = (0..)
            .map(|n| format!("$collide{n}"))
            .filter(|id| slot(id) == first_slot)
            .take(100)
            .collect();
        let share =
            |interner: &mut IdInterner, id: &str| interner.share(id, id_map::lookup_hash(id));
        for round in 0..2 {
            for id in &ids {
                assert_eq!(share(&mut interner, id).as_str(), id, "round {round}");
            }
        }
        assert_eq!(interner.len(), IdInterner::PROBES_MAX, "only the first ids are kept");
        let kept = share(&mut interner, &ids[0]);
        assert!(Arc::ptr_eq(&kept.text, &share(&mut interner, &ids[0]).text));
        // Found without a check only where it is shared: not past the probes.
        let shared = |interner: &IdInterner, id: &str| interner.shared(id, id_map::lookup_hash(id));
        assert!(Arc::ptr_eq(&kept.text, &shared(&interner, &ids[0]).expect("shared").text));
        assert!(shared(&interner, &ids[99]).is_none());
        assert!(shared(&IdInterner::new(), &ids[0]).is_none(), "an empty table");
        // The ids made here keep their own hashes: each is found by its text in a map.
        let map: EventIdMap<()> = ids.iter().map(|id| (share(&mut interner, id), ())).collect();
        assert!(ids.iter().all(|id| map.contains_key(id.as_str())));
    }

    #[test]
    fn ids_with_the_same_kept_hash_are_told_apart_by_their_text() {
        // Equal kept hashes do not make ids equal: two texts whose hashes collide differ.
        let a = EventId::parse("$a").unwrap();
        let b = EventId::parse("$b").unwrap();
        let forged = EventId { text: Arc::clone(&b.text), lookup_hash: a.lookup_hash };
        assert_ne!(forged, a);
        assert_ne!(a, forged);
        assert_eq!(a, EventId::parse("$a").unwrap(), "an unshared copy");
    }

    #[test]
    fn ordering_by_prefix_then_id_is_ordering_by_id() {
        let ids = [
            "$",
            "$a",
            "$ab",
            "$abcdefg",
            "$abcdefgh",
            "$abcdefgi",
            "$abcdefg\u{7f}",
            "$b",
            "$é",
            "$\u{1}",
        ];
        for a in ids {
            for b in ids {
                let by_key = (order_prefix(a), a).cmp(&(order_prefix(b), b));
                assert_eq!(by_key, a.cmp(b), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn server_names() {
        for ok in [
            "matrix.org",
            "matrix.org:8888",
            "1.2.3.4",
            "1.2.3.4:1234",
            "[1234:5678::abcd]",
            "[1234:5678::abcd]:5678",
            "localhost",
            "hs1",
        ] {
            assert!(check_server_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ":8080",
            "a:",
            "a:123456",
            "a:b",
            "under_score.org",
            "[::1",
            "[zz]",
            "[::1]x",
            "example.org/path",
        ] {
            assert!(check_server_name(bad).is_err(), "{bad}");
        }
        assert!(check_server_name(&"a".repeat(255)).is_ok());
        assert!(check_server_name(&"a".repeat(256)).is_err());
    }

    #[test]
    fn user_ids() {
        assert_eq!(parse_user_id("@alice:example.org").unwrap(), ("alice", "example.org"));
        assert_eq!(parse_user_id("@a:hs:8448").unwrap(), ("a", "hs:8448"));
        // Historical localparts are accepted over federation.
        assert!(parse_user_id("@Alice!:example.org").is_ok());
        assert!(!is_strict_user_localpart("Alice!"));
        assert!(is_strict_user_localpart("alice.b_c=d-e/f+g"));
        for bad in ["alice:example.org", "@:example.org", "@alice", "@alice:", "@al\0ice:hs"] {
            assert!(parse_user_id(bad).is_err(), "{bad}");
        }
        let long = format!("@{}:hs", "a".repeat(252));
        assert_eq!(long.len(), 256);
        assert!(parse_user_id(&long).is_err());
        let longest = format!("@{}:hs", "a".repeat(251));
        assert_eq!(longest.len(), 255);
        assert!(parse_user_id(&longest).is_ok());
    }

    #[test]
    fn room_ids() {
        assert!(check_room_id("!abc:example.org", RoomIdFormat::Domain).is_ok());
        assert!(check_room_id("!abc", RoomIdFormat::Domain).is_err());
        assert!(check_room_id("$abc:example.org", RoomIdFormat::Domain).is_err());
        let v12 = "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM";
        assert!(check_room_id(v12, RoomIdFormat::CreateEventHash).is_ok());
        assert!(check_room_id(&v12[..43], RoomIdFormat::CreateEventHash).is_err());
        assert!(check_room_id("!abc:example.org", RoomIdFormat::CreateEventHash).is_err());
        assert_eq!(room_domain("!abc:example.org:80"), Some("example.org:80"));
        let create = EventId::from_room_id(v12).unwrap();
        assert_eq!(create.as_str(), "$31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM");
        assert!(create.is_reference_hash());
        assert_eq!(create.to_room_id(), v12);
        assert!(create.names_room(v12));
        for other in ["", "!", "$", &v12[1..], &format!("{v12}x"), &v12[..v12.len() - 1]] {
            assert!(!create.names_room(other), "{other:?}");
        }
    }

    #[test]
    fn create_id_text_is_from_room_id_without_allocating() {
        let long = format!("!{}", "a".repeat(254));
        let too_long = format!("!{}", "a".repeat(255));
        let with_nul = "!a\0b";
        let v12 = "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM";
        for room in ["", "!", "!x", "$x", "x!y", v12, &long, &too_long, with_nul, "!é:hs"] {
            let text = CreateIdText::of_room(room);
            let id = EventId::from_room_id(room);
            assert_eq!(
                text.as_ref().map(|t| t.as_str()),
                id.as_ref().map(|id| id.as_str()),
                "{room:?}"
            );
            assert_eq!(text.map(|t| t.to_event_id()), id, "{room:?}");
        }
        assert_eq!(CreateIdText::of_room(&long).unwrap().as_str().len(), 255);
        assert!(CreateIdText::of_room(&too_long).is_none());
        assert!(CreateIdText::of_room("!").is_none());
    }

    #[test]
    fn event_ids() {
        assert!(EventId::parse("$x").is_ok());
        assert!(!EventId::parse("$x").unwrap().is_reference_hash());
        assert!(EventId::parse("$").is_err());
        assert!(EventId::parse("x").is_err());
        assert!(EventId::parse(&format!("${}", "a".repeat(254))).is_ok());
        assert!(EventId::parse(&format!("${}", "a".repeat(255))).is_err());
        let id: EventId = serde_json::from_str("\"$abc\"").unwrap();
        assert_eq!(id.as_str(), "$abc");
        assert!(serde_json::from_str::<EventId>("\"abc\"").is_err());
    }

    /// Ids compare as their text, whichever copy and however long: a small alphabet makes
    /// equal first-eight-byte prefixes common, and `é` puts a two-byte character across
    /// the eighth byte.
    #[test]
    fn event_ids_compare_as_their_text() {
        use proptest::prelude::*;
        let id = "\\$[ab\u{e9}]{1,11}";
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        runner
            .run(&(id, id), |(a, b)| {
                let (x, y) = (EventId::parse(&a).unwrap(), EventId::parse(&b).unwrap());
                prop_assert_eq!(x.cmp(&y), a.cmp(&b));
                prop_assert_eq!(x.partial_cmp(&y), Some(a.cmp(&b)));
                prop_assert_eq!(x == y, a == b);
                prop_assert_eq!(x.cmp(&x.clone()), std::cmp::Ordering::Equal);
                Ok(())
            })
            .unwrap();
        // Equal text in separate copies, and ids that differ only after the eighth byte or
        // only in length.
        let pairs = [("$abcdefgh1", "$abcdefgh1"), ("$abcdefgh1", "$abcdefgh2"), ("$abc", "$abcd")];
        for (a, b) in pairs {
            let (x, y) = (EventId::parse(a).unwrap(), EventId::parse(b).unwrap());
            assert!(!x.same_allocation(&y));
            assert_eq!((x.cmp(&y), y.cmp(&x), x == y), (a.cmp(b), b.cmp(a), a == b), "{a} {b}");
        }
        let mut sorted: Vec<EventId> = ["$b", "$abcdefgh2", "$a", "$abcdefgh1", "$abcdefgh"]
            .map(|t| EventId::parse(t).unwrap())
            .into();
        sorted.sort();
        let texts: Vec<&str> = sorted.iter().map(EventId::as_str).collect();
        assert_eq!(texts, ["$a", "$abcdefgh", "$abcdefgh1", "$abcdefgh2", "$b"]);
    }

    /// The byte loops of `parse_user_id` and `check_server_name` split where the string
    /// searches they replaced split (the first ':' of a user id's rest, the last ':' of a
    /// server name), and every result, error included, is the same: checked against those
    /// searches written out, over strings of the characters that matter.
    #[test]
    fn ids_split_where_the_string_searches_split() {
        use proptest::prelude::*;
        fn user_id_by_search(id: &str) -> Result<(&str, &str), IdError> {
            const KIND: &str = "user id";
            if id.len() > ID_BYTES_MAX {
                return Err(id_error(KIND, id, "longer than 255 bytes"));
            }
            let Some(rest) = id.strip_prefix('@') else {
                return Err(id_error(KIND, id, "must start with '@'"));
            };
            let Some((localpart, server)) = rest.split_once(':') else {
                return Err(id_error(KIND, id, "must contain ':' before the server name"));
            };
            if localpart.is_empty() {
                return Err(id_error(KIND, id, "empty localpart"));
            }
            if localpart.contains('\0') {
                return Err(id_error(KIND, id, "localpart contains NUL"));
            }
            server_name_by_search(server).map_err(|e| id_error(KIND, id, e.problem))?;
            Ok((localpart, server))
        }
        fn server_name_by_search(name: &str) -> Result<(), IdError> {
            // The bracketed form is `check_server_name`'s own; only the split differs, and
            // the parts are checked as `check_server_name` checks them.
            if name.starts_with('[') {
                return check_server_name(name);
            }
            match name.rsplit_once(':') {
                Some((host, port)) => check_host_and_port(name, Some(host), Some(port)),
                None => check_host_and_port(name, Some(name), None),
            }
        }
        let text = "[@:a1\\[\\]\\-._\\x00\u{e9} ]{0,16}";
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        runner
            .run(&text, |id| {
                prop_assert_eq!(parse_user_id(&id), user_id_by_search(&id));
                prop_assert_eq!(check_server_name(&id), server_name_by_search(&id));
                Ok(())
            })
            .unwrap();
        for id in ["@a\0:hs", "@a:b\0:hs", "@:hs", "@a:", "@a:hs:", "@a:hs:1:2", "@a::8", ":", "@"]
        {
            assert_eq!(parse_user_id(id), user_id_by_search(id), "{id:?}");
            assert_eq!(check_server_name(id), server_name_by_search(id), "{id:?}");
        }
    }
}
