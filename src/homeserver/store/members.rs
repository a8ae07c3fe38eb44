//! The users that stored member events are about, by server: which member entries of a
//! state can name a given server's users ([`Store::member_users`]).
//!
//! [`Store::member_users`]: super::Store::member_users

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use crate::matrix::{Pdu, ids};
use crate::stdx::fnv1a64;

/// One member event per user, ordered by a hash of the user's server, then by the server
/// and the user, so that a server's users are one range. An entry holds the shared event
/// rather than a copy of the user id: at 500 servers in one room, a server-to-users map of
/// strings kept 90 MB more than the run without one, a leaf node for each server's single
/// user. The hash keeps most comparisons of a lookup inside the set's nodes: comparing
/// the texts of the events took a 500-server run 1.5%, each event elsewhere in memory.
#[derive(Clone, Debug, Default)]
pub(super) struct MemberUsers {
    entries: BTreeSet<Entry>,
    /// The server hash of each entry, in the order noted: which servers gained users
    /// since a given count ([`MemberUsers::server_noted_since`]).
    noted: Vec<u64>,
}

impl MemberUsers {
    /// Notes the user a member event is about, if it is the first event about that user
    /// (events of other types, and state keys that are not user ids, are left out).
    pub fn note(&mut self, pdu: &Arc<Pdu>) {
        if pdu.event_type() != "m.room.member" {
            return;
        }
        let Some(user) = pdu.state_key() else { return };
        let Some(server) = ids::user_server(user) else { return };
        let Ok(server_at) = u32::try_from(user.len() - server.len()) else { return };
        // One search: a set keeps the entry it holds and refuses an equal one, so the
        // first event about a user stays, as a lookup before the insertion kept it.
        let server_hash = fnv1a64(server.as_bytes());
        if self.entries.insert(Entry { pdu: Arc::clone(pdu), server_hash, server_at }) {
            self.noted.push(server_hash);
        }
    }

    /// How many users are noted (it only grows).
    pub fn noted(&self) -> usize {
        self.noted.len()
    }

    /// Whether a user of `server` was noted after the first `count` users: if not, its
    /// users are those [`MemberUsers::of`] gave when `count` were noted.
    pub fn server_noted_since(&self, server: &str, count: usize) -> bool {
        let hash = fnv1a64(server.as_bytes());
        // A hash shared with another server's only answers yes more often.
        self.noted.get(count..).is_none_or(|since| since.contains(&hash))
    }

    /// The users of `server` noted, in order.
    pub fn of<'a>(&'a self, server: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let from = Probe { server_hash: fnv1a64(server.as_bytes()), server, user: "" };
        let range = (Bound::Included(&from as &dyn Key), Bound::Unbounded);
        self.entries
            .range::<dyn Key, _>(range)
            .map_while(move |e| (e.server() == server).then(|| e.user()))
    }
}

/// A member event; `server_at` is where the server name starts in its state key.
#[derive(Clone, Debug)]
struct Entry {
    pdu: Arc<Pdu>,
    server_hash: u64,
    server_at: u32,
}

/// A probe for looking entries up by server and user.
struct Probe<'a> {
    server_hash: u64,
    server: &'a str,
    user: &'a str,
}

/// What entries are ordered by: the hash of the user's server, the server, the user.
trait Key {
    fn server_hash(&self) -> u64;
    fn server(&self) -> &str;
    fn user(&self) -> &str;
}

impl Key for Entry {
    fn server_hash(&self) -> u64 {
        self.server_hash
    }
    fn server(&self) -> &str {
        &self.user()[self.server_at as usize..]
    }
    fn user(&self) -> &str {
        self.pdu.state_key().expect("noted for its state key")
    }
}

impl Key for Probe<'_> {
    fn server_hash(&self) -> u64 {
        self.server_hash
    }
    fn server(&self) -> &str {
        self.server
    }
    fn user(&self) -> &str {
        self.user
    }
}

impl<'a> Borrow<dyn Key + 'a> for Entry {
    fn borrow(&self) -> &(dyn Key + 'a) {
        self
    }
}

impl Ord for dyn Key + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        self.server_hash()
            .cmp(&other.server_hash())
            .then_with(|| (self.server(), self.user()).cmp(&(other.server(), other.user())))
    }
}

impl PartialOrd for dyn Key + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for dyn Key + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for dyn Key + '_ {}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        (self as &dyn Key).cmp(other as &dyn Key)
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::homeserver::test_events::signed_state_event;

    #[test]
    fn a_servers_users_are_read_as_one_range() {
        let mut users = MemberUsers::default();
        for (event_type, state_key, body) in [
            ("m.room.member", "@b:hs1", "1"),
            ("m.room.member", "@a:hs10", "2"),
            ("m.room.member", "@a:hs1", "3"),
            ("m.room.member", "@a:hs1", "4"), // a second event about the same user
            ("m.room.member", "@c:hs2", "5"),
            ("m.room.member", "@d:hs1:8448", "6"),
            ("m.room.member", "not a user", "7"),
            ("org.example.state", "@z:hs1", "8"),
        ] {
            users.note(&signed_state_event(event_type, state_key, body));
        }
        let of = |server: &str| users.of(server).map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(of("hs1"), ["@a:hs1", "@b:hs1"]);
        assert_eq!(of("hs10"), ["@a:hs10"]);
        assert_eq!(of("hs1:8448"), ["@d:hs1:8448"]);
        assert_eq!(of("hs2"), ["@c:hs2"]);
        assert!(of("hs").is_empty() && of("hs3").is_empty() && of("").is_empty());
        assert_eq!(users.entries.len(), 5, "one entry per user");
        assert_eq!(users.noted(), 5);
        // The users noted after the first two (@b:hs1 and @a:hs10): of hs1, hs2 and the
        // port's server, none of hs10's.
        assert!(users.server_noted_since("hs1", 2) && users.server_noted_since("hs2", 2));
        assert!(users.server_noted_since("hs1:8448", 2));
        assert!(!users.server_noted_since("hs10", 2) && !users.server_noted_since("hs3", 0));
        assert!(users.server_noted_since("hs10", 1) && users.server_noted_since("hs10", 0));
        assert!(!users.server_noted_since("hs1", 5), "nothing noted since");
        assert!(users.server_noted_since("hs3", 6), "a count past the end: unknown");
    }
}
