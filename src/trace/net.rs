//! What a trace's network records add up to, for the readers that need them only in sum:
//! the run's metrics, the timeline's network row and the run comparison.
//!
//! A big run writes tens of millions of network records (`send`, `deliver`, `drop`, …),
//! most of its trace. `mxsim run` writes them to the trace file as they happen and folds
//! them here instead of keeping them ([`super::Trace::kept`]); a trace read whole folds
//! them the same way ([`super::Trace::net`]), so every reader sees one summary either way.
//!
//! The fold keeps only messages still in flight and requests not yet answered, so its
//! memory follows what the network holds at one time, not what it carried over the run.

use std::collections::BTreeMap;

use super::{Body, Record, Text};
use crate::matrix::ids::LookupMap;

/// Timeline columns: marks are counted per column of the run's duration.
pub const COLUMNS: u64 = 1100;

/// Network marks of one server, by kind.
pub const SENT: usize = 0;
pub const ANSWERED: usize = 1;
pub const LOST: usize = 2;
pub const RETRY: usize = 3;
pub const MARK_KINDS: usize = 4;

/// The slots of [`NetFold`]'s recently numbered servers: a `send` record's sender and its
/// destination.
const SENDER: usize = 0;
const DESTINATION: usize = 1;

/// The column of virtual time `t` in a run that ends at `end_ms`.
pub fn column(t: u64, end_ms: u64) -> u32 {
    // In 64 bits when the product fits (any run shorter than 500,000 years), as the wide
    // division is a call of its own, made for every mark.
    let column = match t.checked_mul(COLUMNS) {
        Some(product) => u128::from(product / end_ms.max(1)),
        None => u128::from(t) * u128::from(COLUMNS) / u128::from(end_ms.max(1)),
    };
    u32::try_from(column.min(u128::from(COLUMNS - 1))).expect("below COLUMNS")
}

/// The network records of a trace, summed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetSummary {
    /// The run's end (`header.end_ms`), against which the columns were counted.
    pub end_ms: u64,
    /// `send` records, and their bytes.
    pub sent: u64,
    pub bytes: u64,
    /// `deliver` records.
    pub delivered: u64,
    /// `drop` and `drop_down` records.
    pub lost: u64,
    pub duplicated: u64,
    pub corrupted: u64,
    /// Server → mark kind ([`SENT`], [`ANSWERED`], [`LOST`], [`RETRY`]) → column → count.
    /// A request counts as sent by its sender; an answer counts for the requester when the
    /// first copy of a response reaches it; a lost copy counts for its sender; a retry is
    /// a request line sent again to the same destination while the earlier attempt was
    /// never answered.
    pub marks: BTreeMap<String, [BTreeMap<u32, u32>; MARK_KINDS]>,
    /// Server → (from, to) in virtual ms: the wait before each of its retries.
    pub backoffs: BTreeMap<String, Vec<(u64, u64)>>,
}

/// A message whose copies are not all delivered or lost yet, or a request not yet
/// answered.
struct InFlight {
    /// Its sender, by number ([`NetFold::number`]).
    from: u32,
    /// The request a response answers; `None` for a request.
    answers: Option<u64>,
    /// Copies neither delivered nor lost.
    copies: u32,
    /// A request: copies that reached a server that was up (a request that reached none
    /// is never answered).
    reached: u32,
    /// A request: whether a response to it has arrived.
    answered: bool,
}

/// Folds network records, in trace order, into a [`NetSummary`].
pub struct NetFold {
    summary: NetSummary,
    /// Servers by name → their number, and by number: a network record names two
    /// servers, and tens of millions of records would otherwise copy and compare the
    /// names.
    ///
    /// The maps below are only looked up, never walked, so they are hash maps
    /// ([`LookupMap`]): two to four of them are asked per network record, and as sorted
    /// maps they were a third of the fold's time.
    numbers: LookupMap<String, u32>,
    /// By number, the first copy of each server's name the fold saw.
    names: Vec<Text>,
    /// The last sender and the last destination numbered, each with its number: a server
    /// sends a message to each of the room's servers in a row, and a copy of a name held
    /// here is recognised by its pointer ([`Text::is_same_copy`]) without hashing it.
    recent: [Option<(Text, u32)>; 2],
    /// Server numbers by the address of the first copy of each name seen
    /// ([`Text::copy_address`]); `names` keeps those copies, so that no other text can
    /// take their address while the fold lives. A run's records name each server by one
    /// copy (its slot's name), so after its first record a server is found without
    /// reading or hashing its name: numbering by name was 0.9% of a 300-server run's CPU
    /// time (comparing names) and more in hashing them. Records read from a file have a
    /// copy each, and are numbered by name.
    by_copy: LookupMap<usize, u32>,
    /// Marks by server number (`summary.marks` once finished; `None`: no mark yet).
    marks: Vec<Option<[BTreeMap<u32, u32>; MARK_KINDS]>>,
    messages: LookupMap<u64, InFlight>,
    /// (from, to, request line) → the last attempt (msg, when), while it is unanswered.
    attempts: LookupMap<(u32, u32, Text), (u64, u64)>,
    /// Request msg → its key in `attempts`, while it is that key's last attempt.
    open: LookupMap<u64, (u32, u32, Text)>,
    /// Messages forgotten at a `deliver` in the current instant → their sender: a
    /// `drop_down` of the same copy may follow (`world::Shared::deliver`).
    delivered_now: LookupMap<u64, u32>,
    /// The time of the last record taken.
    now: u64,
}

impl NetFold {
    /// A fold for a run that ends at `end_ms`.
    pub fn new(end_ms: u64) -> NetFold {
        NetFold {
            summary: NetSummary { end_ms, ..NetSummary::default() },
            numbers: LookupMap::new(),
            names: Vec::new(),
            recent: [None, None],
            by_copy: LookupMap::new(),
            marks: Vec::new(),
            messages: LookupMap::new(),
            attempts: LookupMap::new(),
            open: LookupMap::new(),
            delivered_now: LookupMap::new(),
            now: 0,
        }
    }

    /// Whether `body` is a network record, one this fold takes.
    pub fn takes(body: &Body) -> bool {
        matches!(
            body,
            Body::Send { .. }
                | Body::Deliver { .. }
                | Body::Drop { .. }
                | Body::DropDown { .. }
                | Body::Corrupt { .. }
                | Body::Duplicate { .. }
                | Body::Hold { .. }
                | Body::Release { .. }
        )
    }

    /// A server's number, given at its first record: found by the copy of its name, or
    /// else by the name.
    fn number(&mut self, server: &Text) -> u32 {
        if let Some(&number) = self.by_copy.get(&server.copy_address()) {
            debug_assert!(self.names[number as usize].is_same_copy(server));
            return number;
        }
        if let Some(&number) = self.numbers.get(server.as_str()) {
            return number;
        }
        let number = u32::try_from(self.names.len()).expect("fewer than 2^32 servers");
        self.numbers.insert(server.as_str().to_owned(), number);
        self.by_copy.insert(server.copy_address(), number);
        self.names.push(server.clone());
        self.marks.push(None);
        number
    }

    /// [`NetFold::number`] of `server`, remembered in `recent[slot]` ([`SENDER`] or
    /// [`DESTINATION`]) for the next record that names the same copy.
    fn number_recent(&mut self, slot: usize, server: &Text) -> u32 {
        if let Some((last, number)) = &self.recent[slot] {
            if last.is_same_copy(server) {
                debug_assert_eq!(self.numbers.get(server.as_str()), Some(number));
                return *number;
            }
        }
        let number = self.number(server);
        self.recent[slot] = Some((server.clone(), number));
        number
    }

    fn mark(&mut self, server: u32, kind: usize, t: u64) {
        let column = column(t, self.summary.end_ms);
        let marks = self.marks[server as usize].get_or_insert_with(Default::default);
        *marks[kind].entry(column).or_default() += 1;
    }

    /// Takes one record; records that are not network records are ignored.
    pub fn push(&mut self, record: &Record) {
        let t = record.t;
        if t != self.now {
            self.now = t;
            self.delivered_now.clear();
        }
        match &record.body {
            Body::Send { msg, from, to, bytes, what, request } => {
                self.summary.sent += 1;
                self.summary.bytes = self.summary.bytes.saturating_add(*bytes);
                let from = self.number_recent(SENDER, from);
                if what.starts_with("response") {
                    let flight = InFlight {
                        from,
                        answers: *request,
                        copies: 1,
                        reached: 0,
                        answered: false,
                    };
                    self.messages.insert(*msg, flight);
                    return;
                }
                let flight =
                    InFlight { from, answers: None, copies: 1, reached: 0, answered: false };
                self.messages.insert(*msg, flight);
                self.mark(from, SENT, t);
                let key = (from, self.number_recent(DESTINATION, to), what.clone());
                // The key (with its request line) hashed once: the attempt it replaces,
                // if any, comes back from the insertion.
                if let Some((before, when)) = self.attempts.insert(key.clone(), (*msg, t)) {
                    self.open.remove(&before);
                    self.mark(from, RETRY, t);
                    let name = self.names[from as usize].as_str().to_owned();
                    self.summary.backoffs.entry(name).or_default().push((when, t));
                }
                self.open.insert(*msg, key);
            }
            Body::Deliver { msg, .. } => {
                self.summary.delivered += 1;
                let Some(flight) = self.messages.get_mut(msg) else { return };
                flight.reached += 1;
                if let Some(request) = flight.answers {
                    self.answer(request, t);
                }
                if let Some(from) = self.resolve_copy(*msg) {
                    self.delivered_now.insert(*msg, from);
                }
            }
            Body::Drop { msg, .. } => {
                self.summary.lost += 1;
                if let Some(flight) = self.messages.get(msg) {
                    let from = flight.from;
                    self.mark(from, LOST, t);
                    self.resolve_copy(*msg);
                }
            }
            // The copy was delivered (its `deliver` came first, in the same instant) to a
            // server that was down: lost, but already counted as resolved.
            Body::DropDown { msg, .. } => {
                self.summary.lost += 1;
                let from = match self.messages.get_mut(msg) {
                    Some(flight) => {
                        flight.reached = flight.reached.saturating_sub(1);
                        Some(flight.from)
                    }
                    None => self.delivered_now.get(msg).copied(),
                };
                if let Some(from) = from {
                    self.mark(from, LOST, t);
                }
                self.forget_if_settled(*msg);
            }
            Body::Duplicate { msg } => {
                self.summary.duplicated += 1;
                if let Some(flight) = self.messages.get_mut(msg) {
                    flight.copies += 1;
                }
            }
            Body::Corrupt { .. } => self.summary.corrupted += 1,
            _ => {}
        }
    }

    /// A response to `request` arrived: the first one marks the request answered.
    fn answer(&mut self, request: u64, t: u64) {
        // A request no longer held was answered before (or never recorded).
        let Some(flight) = self.messages.get_mut(&request) else { return };
        if flight.answered {
            return;
        }
        flight.answered = true;
        let (requester, done) = (flight.from, flight.copies == 0);
        if done {
            self.messages.remove(&request);
        }
        self.mark(requester, ANSWERED, t);
        if let Some(key) = self.open.remove(&request) {
            if self.attempts.get(&key).is_some_and(|&(last, _)| last == request) {
                self.attempts.remove(&key);
            }
        }
    }

    /// One copy of `msg` was delivered or lost: forgets the message when it is settled
    /// ([`NetFold::forget_if_settled`]). Returns the sender of a message it forgot.
    fn resolve_copy(&mut self, msg: u64) -> Option<u32> {
        let flight = self.messages.get_mut(&msg)?;
        flight.copies = flight.copies.saturating_sub(1);
        self.forget_if_settled(msg)
    }

    /// Forgets `msg` once no copy of it is in flight and, for a request, once it is
    /// answered or no copy reached a server that was up (then no answer can come).
    fn forget_if_settled(&mut self, msg: u64) -> Option<u32> {
        let flight = self.messages.get(&msg)?;
        let waiting = flight.answers.is_none() && !flight.answered && flight.reached > 0;
        if flight.copies == 0 && !waiting {
            return self.messages.remove(&msg).map(|flight| flight.from);
        }
        None
    }

    /// Messages held: in flight, or requests that reached a server and wait for an answer.
    pub fn held(&self) -> usize {
        self.messages.len()
    }

    /// The summary of everything taken.
    pub fn finish(mut self) -> NetSummary {
        for (name, marks) in self.names.into_iter().zip(self.marks) {
            if let Some(marks) = marks {
                self.summary.marks.insert(name.as_str().to_owned(), marks);
            }
        }
        self.summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests among five servers, some lost and some answered, with retries: the name of
    /// the `i`th record's sender and destination, by `name(i, server)`.
    fn fold_requests(name: impl Fn(usize, usize) -> Text) -> NetSummary {
        let mut fold = NetFold::new(10_000);
        for i in 0..400usize {
            let from = i % 5;
            let to = (from + 1 + i / 5 % 4) % 5;
            let msg = i as u64 * 2;
            let t = i as u64 * 20;
            let what = Text::from(format!("PUT /send/{}", i % 3));
            let request = Body::Send {
                msg,
                from: name(i, from),
                to: name(i, to),
                bytes: 10,
                what,
                request: None,
            };
            fold.push(&Record { t, body: request });
            if i % 4 == 0 {
                let lost = Body::Drop { msg, copy: 0, reason: super::super::DropReason::Loss };
                fold.push(&Record { t: t + 1, body: lost });
                continue;
            }
            fold.push(&Record { t: t + 1, body: Body::Deliver { msg, copy: 0 } });
            let answer = Body::Send {
                msg: msg + 1,
                from: name(i, to),
                to: name(i, from),
                bytes: 10,
                what: Text::from("response 200".to_owned()),
                request: Some(msg),
            };
            fold.push(&Record { t: t + 2, body: answer });
            fold.push(&Record { t: t + 3, body: Body::Deliver { msg: msg + 1, copy: 0 } });
        }
        fold.finish()
    }

    #[test]
    fn servers_are_numbered_by_name_whatever_copies_name_them() {
        let names = ["hs1", "hs2", "hs3", "hs4", "hs5"];
        let shared: Vec<Text> = names.iter().map(|&n| Text::from(n.to_owned())).collect();
        // One copy per server, as a run's records name them.
        let by_shared = fold_requests(|_, server| shared[server].clone());
        // A copy per record, freed as soon as the record is: a freed copy's address is
        // soon another name's, which the fold must not take for the first.
        let by_fresh = fold_requests(|_, server| Text::from(names[server].to_owned()));
        // Both, mixed.
        let mixed = fold_requests(|i, server| {
            if i % 2 == 0 { shared[server].clone() } else { Text::from(names[server].to_owned()) }
        });
        assert_eq!(by_fresh, by_shared);
        assert_eq!(mixed, by_shared);
        assert_eq!(by_shared.marks.len(), 5, "every server sent a request: {by_shared:?}");
        let sent: u32 = by_shared.marks.values().flat_map(|m| m[SENT].values()).sum();
        assert_eq!(sent, 400, "a mark per request");
    }

    #[test]
    fn columns_are_the_wide_divisions() {
        // Against the 128-bit formula, written out here: the run's instants in order,
        // ends of every size (0 counted as 1), and instants whose product overflows 64 bits.
        let wide = |t: u64, end_ms: u64| {
            let column = u128::from(t) * u128::from(COLUMNS) / u128::from(end_ms.max(1));
            u32::try_from(column.min(u128::from(COLUMNS - 1))).unwrap()
        };
        let ends = [0, 1, 7, 1_099, 1_100, 1_101, 60_000, 90_001, u64::MAX / COLUMNS, u64::MAX];
        let overflow = u64::MAX / COLUMNS + 1;
        for end_ms in ends {
            for t in [0, 1, 59_999, 60_000, 60_001, end_ms / 2, end_ms, overflow - 1, overflow] {
                assert_eq!(column(t, end_ms), wide(t, end_ms), "t {t}, end {end_ms}");
            }
            assert_eq!(column(u64::MAX, end_ms), wide(u64::MAX, end_ms), "end {end_ms}");
        }
        assert_eq!(column(30_000, 60_000), 550);
        assert_eq!(column(u64::MAX, u64::MAX), COLUMNS as u32 - 1);
    }
}
