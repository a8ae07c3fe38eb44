//! Sending: requests and their time-outs, the one timer, outbound delivery (transactions
//! and catch-up) and the fan-out of events to the servers in a room.

use super::*;

impl Homeserver {
    pub(super) fn send(
        &mut self,
        now: Instant,
        destination: &str,
        request: Request,
        pending: Pending,
        out: &mut Vec<Output>,
    ) -> bool {
        if destination == self.name {
            return false;
        }
        if self.requests.len() >= self.config.requests_in_flight_max {
            return false;
        }
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.requests.insert(id, pending, now + self.config.request_timeout);
        assert!(self.requests.len() <= self.config.requests_in_flight_max);
        out.push(Output::Request {
            destination: destination.to_owned(),
            id,
            request: request.to_http(),
        });
        true
    }

    pub(super) fn pump(&mut self, now: Instant, out: &mut Vec<Output>) {
        for action in self.outbound.poll(now) {
            self.outbound_action(now, action, out);
        }
        let deadline = self.requests.first_deadline();
        let waiting = self.waiting.values().map(|w| w.deadline).min();
        let resend = self.next_lpdu_resend();
        let next = [deadline, waiting, self.outbound_timer, resend].into_iter().flatten().min();
        if let Some(at) = next {
            if next != self.timer_at {
                self.timer_at = next;
                out.push(Output::SetTimer { at });
            }
        }
    }

    pub(super) fn outbound_action(
        &mut self,
        now: Instant,
        action: OutboundAction,
        out: &mut Vec<Output>,
    ) {
        match action {
            OutboundAction::Send(txn) => {
                let created = i64::try_from(txn.created_at.ms).expect("fits");
                let ts = EPOCH_MS + created + self.skew_ms;
                let request = txn.to_http(&self.name, ts, &mut self.last_transaction_body);
                // Copied as text: `to_string` of an `Arc<str>` goes through the formatter.
                let destination = String::from(&*txn.destination);
                let pending =
                    Pending::Transaction { destination: txn.destination, txn_id: txn.txn_id };
                let id = RequestId(self.next_request);
                self.next_request += 1;
                self.requests.insert(id, pending, now + self.config.request_timeout);
                out.push(Output::Request { destination, id, request });
            }
            OutboundAction::CatchUp { destination, rooms } => {
                // Catch-up sends the latest events of each room; the receiver fills the gap
                // with get_missing_events ([impl] Synapse's catch-up).
                let mut latest = Vec::new();
                for room_id in rooms {
                    let Some(room) = self.store.room(&room_id) else { continue };
                    if self.participant_hub(&room_id).is_some() {
                        // Linearized Matrix: a participant owes its hub only its LPDUs.
                        for json in self.pending_lpdus(&destination, &room_id) {
                            latest.push((room_id.clone(), json));
                        }
                        continue;
                    }
                    for id in &room.forward_extremities {
                        if let Some(pdu) = self.store.pdu(id) {
                            latest.push((room_id.clone(), Arc::clone(pdu.shared_json())));
                        }
                    }
                }
                self.outbound.replace_backlog(&destination, latest);
            }
            OutboundAction::SetTimer { at } => {
                self.outbound_timer = Some(self.outbound_timer.map_or(at, |t| t.min(at)));
            }
        }
    }

    pub(super) fn on_timer(&mut self, now: Instant, out: &mut Vec<Output>) {
        self.timer_at = None;
        self.resend_lpdus(now);
        if self.outbound_timer.is_some_and(|t| t <= now) {
            self.outbound_timer = None;
            for action in self.outbound.on_timer(now) {
                self.outbound_action(now, action, out);
            }
        }
        for id in self.requests.expired(now) {
            self.on_response(now, id, None, true, out);
        }
        // The bound on waiting: whatever is still undecided at its deadline is dropped.
        let overdue: Vec<EventId> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in overdue {
            let seconds = self.config.waiting_time_max.ms / 1_000;
            self.give_up(&id, &format!("still missing ancestors after {seconds} s"), out);
        }
    }

    /// Queues an event for every server in the room but this one (and `except`); at a
    /// DAG-capable server in a Linearized Matrix room, only for the hub and the other
    /// DAG-capable servers.
    pub(super) fn fan_out(
        &mut self,
        room_id: &str,
        pdu: &Pdu,
        extra: &[String],
        except: Option<&str>,
    ) {
        let json = Arc::clone(pdu.shared_json());
        let room: Arc<str> = Arc::from(room_id);
        // Linearized Matrix: a DAG-capable server sends to the hub (in the room whether
        // or not a user of its own is) and the other DAG-capable servers; the hub relays
        // to participants.
        let (hub, participants) = match self.is_dag_server_in(room_id) {
            true => (self.hub_of(room_id), self.participants(room_id)),
            false => (None, BTreeSet::new()),
        };
        // The joined servers' names are read from the cache of joined counts, in name
        // order with the others, not copied per event (99 names per event at 100 servers).
        let joined = self.joined_now(room_id);
        let cache = self.joined.borrow();
        let joined = joined.then(|| cache[room_id].1.keys()).into_iter().flatten();
        let send = |server: &str| {
            if server != self.name && Some(server) != except {
                self.outbound.enqueue_pdu(server, Arc::clone(&json), Arc::clone(&room));
            }
        };
        if extra.is_empty() && hub.is_none() && participants.is_empty() {
            // The joined servers alone, already in name order and each once: sent to as
            // read, without a set of their names (most events, at every server).
            joined.map(String::as_str).for_each(send);
            return;
        }
        let servers: BTreeSet<&str> = joined
            .chain(extra)
            .map(String::as_str)
            .chain(hub.as_deref())
            .filter(|server| !participants.contains(*server))
            .collect();
        servers.into_iter().for_each(send);
    }

    /// Servers with a joined member in the room's current state.
    pub fn joined_servers(&self, room_id: &str) -> BTreeSet<String> {
        self.with_joined(room_id, |counts| counts.keys().cloned().collect())
    }

    /// Whether `server` has a joined member in the room's current state.
    pub(super) fn has_joined_member(&self, room_id: &str, server: &str) -> bool {
        let group = self.store.room(room_id).and_then(|r| r.current_state);
        group.is_some_and(|group| self.has_member_at(group, server, &["join"]))
    }

    /// Whether this server has a joined member in the room's current state, remembered per
    /// room with the state group it was found for: at a thousand servers, looking this
    /// server up among the joined servers' names for every PDU received was 2.6% of a run.
    pub(super) fn has_joined_member_here(&self, room_id: &str) -> bool {
        let Some(group) = self.store.room(room_id).and_then(|r| r.current_state) else {
            return false;
        };
        let mut resident = self.resident.borrow_mut();
        if let Some(known) = resident.get_mut(room_id) {
            // The answer holds for a state on top of the one it was found for unless a
            // member entry of a user of this server was set in between.
            let above = self.store.keys_kept_since(known.at, group, |(t, k)| {
                t == "m.room.member" && ids::user_server(k) == Some(&self.name)
            });
            if above {
                debug_assert_eq!(known.joined, self.has_joined_member(room_id, &self.name));
                known.at = group;
                return known.joined;
            }
        }
        // Otherwise it holds if this server's users' member entries are the ones it was
        // found with: read without the events, whose memberships a state that is not above
        // the last (a resolution's, a fetched one) would otherwise read again (2.4% of
        // `big1000`). If they differ, the answer follows from the entries read.
        let entries = self.own_member_entries(group);
        if let Some(known) = resident.get_mut(room_id).filter(|known| known.entries == entries) {
            debug_assert_eq!(known.joined, self.has_joined_member(room_id, &self.name));
            known.at = group;
            return known.joined;
        }
        let joined = entries.iter().flatten().any(|id| self.is_join(id));
        debug_assert_eq!(joined, self.has_joined_member(room_id, &self.name));
        resident.insert(room_id.to_owned(), Residency { at: group, joined, entries });
        joined
    }

    /// The member entries of this server's users in state `group`, in the order of
    /// [`Store::member_users`] (which only grows, so equal lists are of the same users).
    fn own_member_entries(&self, group: StateGroupId) -> Vec<Option<EventId>> {
        let noted = self.store.member_users_noted();
        let mut own = self.own_users.borrow_mut();
        if own.0 != noted {
            if self.store.member_users_noted_since(&self.name, own.0) {
                own.1 = self.store.member_users(&self.name).map(Box::from).collect();
            }
            own.0 = noted;
        }
        let entry = |user: &str| self.store.state_get_parts(group, "m.room.member", user).cloned();
        own.1.iter().map(|user| entry(user)).collect()
    }

    /// Calls `f` with the joined members per server of the room's current state (servers
    /// with none left out). The counts are kept per room for the last current state asked
    /// about and moved on by the member keys that changed since, so that sending an event
    /// or checking residency does not read the whole member list of a large room.
    fn with_joined<R>(&self, room_id: &str, f: impl FnOnce(&BTreeMap<String, u32>) -> R) -> R {
        match self.joined_now(room_id) {
            true => f(&self.joined.borrow()[room_id].1),
            false => f(&BTreeMap::new()),
        }
    }

    /// Brings the cached joined counts of the room (see [`Homeserver::with_joined`]) to its
    /// current state. `false` when the room has no current state: the cache's entry for it,
    /// if any, is then not its counts.
    fn joined_now(&self, room_id: &str) -> bool {
        let Some(group) = self.store.room(room_id).and_then(|r| r.current_state) else {
            return false;
        };
        let mut cache = self.joined.borrow_mut();
        let moved = cache.get_mut(room_id).is_some_and(|entry| self.move_joined(entry, group));
        if !moved {
            cache.insert(room_id.to_owned(), (group, self.joined_counts(group)));
        }
        let counts = &cache[room_id].1;
        debug_assert_eq!(counts, &self.joined_counts(group), "joined members moved on wrongly");
        true
    }

    /// Whether `server` has a joined member in the stored state `group`.
    pub(super) fn has_joined_member_at(&self, group: StateGroupId, server: &str) -> bool {
        self.has_member_at(group, server, &["join"])
    }

    /// Whether `server` has a user whose membership is one of `memberships` in the stored
    /// state `group`.
    ///
    /// Reads only the member entries of that server's users ([`Store::member_users`]),
    /// mostly one. Counting the members of every server from the whole member list,
    /// kept for the last group asked about, meant counting again whenever the next group
    /// was on another snapshot (missing events served one after another, the current state
    /// moving across a resolution): 10% of a 500-server run.
    pub(super) fn has_member_at(
        &self,
        group: StateGroupId,
        server: &str,
        memberships: &[&str],
    ) -> bool {
        // The membership as the event keeps it, read once (the entries under
        // `m.room.member` keys are member events), not looked up in its content.
        let one_of = |id: &EventId| {
            let membership = self.store.pdu(id).and_then(|p| p.membership());
            membership.is_some_and(|m| memberships.contains(&m))
        };
        let found = self.store.member_users(server).any(|user| {
            self.store.state_get_parts(group, "m.room.member", user).is_some_and(one_of)
        });
        debug_assert_eq!(
            found,
            self.store.state(group).iter().any(|((t, k), id)| {
                t == "m.room.member" && ids::user_server(k) == Some(server) && one_of(id)
            }),
            "the member entries of {server}'s users in state {group:?}, against the whole list",
        );
        found
    }

    /// Moves counts of joined members on to the state `group` by the keys in which it
    /// differs from theirs. False, with nothing changed, when the two states' delta chains
    /// do not meet (the caller counts afresh).
    fn move_joined(&self, (at, counts): &mut JoinedCounts, group: StateGroupId) -> bool {
        if *at == group {
            return true;
        }
        let Some(keys) = self.store.changed_keys(*at, group) else { return false };
        for key in keys {
            let was = self.joined_server(key, self.store.state_get(*at, key).as_ref());
            let is = self.joined_server(key, self.store.state_get(group, key).as_ref());
            if was == is {
                continue;
            }
            if let Some(server) = was {
                let count = counts.get_mut(server).expect("a joined server is counted");
                *count -= 1;
                if *count == 0 {
                    counts.remove(server);
                }
            }
            if let Some(server) = is {
                *counts.entry(server.to_owned()).or_default() += 1;
            }
        }
        *at = group;
        true
    }

    /// The joined members per server of a stored state, read in full.
    pub(super) fn joined_counts(&self, group: StateGroupId) -> BTreeMap<String, u32> {
        let mut counts = BTreeMap::new();
        for (key, id) in self.store.state_entries(group) {
            if let Some(server) = self.joined_server(key, Some(id)) {
                *counts.entry(server.to_owned()).or_default() += 1;
            }
        }
        counts
    }

    /// The server of the user a state entry says is joined: `Some` for a member key whose
    /// event has membership `join`.
    fn joined_server<'k>(
        &self,
        (event_type, user): &'k StateKey,
        id: Option<&EventId>,
    ) -> Option<&'k str> {
        let joined = event_type == "m.room.member" && id.is_some_and(|id| self.is_join(id));
        if joined { ids::user_server(user) } else { None }
    }

    /// Whether a stored event is a member event with membership `join` (a redaction keeps
    /// the membership).
    fn is_join(&self, id: &EventId) -> bool {
        self.store.pdu(id).is_some_and(|p| p.membership() == Some("join"))
    }
}

/// The requests in flight, by id, with their deadlines: also indexed by deadline, since
/// after every input the timer asks for the earliest one, and a resident of a room of a
/// thousand servers has hundreds of requests in flight (a scan of them all was 1.1% of a
/// `big1000` run). Each request's [`Pending`] (over a hundred bytes) is boxed, so that
/// the sorted map shifts small entries at each insertion and removal; unboxed, those
/// shifts were most of its cost (a hash map instead took 2% more memory at 1,000 servers).
#[derive(Debug, Default)]
pub(super) struct InFlight {
    by_id: BTreeMap<RequestId, (Box<Pending>, Instant)>,
    by_deadline: BTreeSet<(Instant, RequestId)>,
}

impl InFlight {
    pub(super) fn insert(&mut self, id: RequestId, pending: Pending, deadline: Instant) {
        if let Some((_, old)) = self.by_id.insert(id, (Box::new(pending), deadline)) {
            self.by_deadline.remove(&(old, id));
        }
        self.by_deadline.insert((deadline, id));
    }

    pub(super) fn remove(&mut self, id: RequestId) -> Option<(Pending, Instant)> {
        let (pending, deadline) = self.by_id.remove(&id)?;
        self.by_deadline.remove(&(deadline, id));
        Some((*pending, deadline))
    }

    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Each request in flight with its deadline, by id.
    pub(super) fn by_id(&self) -> impl Iterator<Item = (&Pending, Instant)> {
        self.by_id.values().map(|(pending, deadline)| (&**pending, *deadline))
    }

    /// Whether some request in flight satisfies `f`.
    pub(super) fn any(&self, mut f: impl FnMut(&Pending) -> bool) -> bool {
        self.by_id.values().any(|(pending, _)| f(pending))
    }

    /// The earliest deadline.
    pub(super) fn first_deadline(&self) -> Option<Instant> {
        self.by_deadline.first().map(|(at, _)| *at)
    }

    /// The requests whose deadline is `now` or earlier, by id.
    pub(super) fn expired(&self, now: Instant) -> Vec<RequestId> {
        let mut expired: Vec<RequestId> =
            self.by_deadline.iter().take_while(|(at, _)| *at <= now).map(|(_, id)| *id).collect();
        expired.sort_unstable();
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_in_flight_are_found_by_deadline_and_expire_in_id_order() {
        let pending = |n: u64| Pending::Transaction {
            destination: "hs2".into(),
            txn_id: n.to_string().into(),
        };
        let at = Instant::from_ms;
        let mut in_flight = InFlight::default();
        assert_eq!(in_flight.first_deadline(), None);
        // Deadlines out of id order, two equal.
        for (id, deadline) in [(1, 50), (2, 20), (3, 40), (4, 20), (5, 90)] {
            in_flight.insert(RequestId(id), pending(id), at(deadline));
        }
        assert_eq!(in_flight.len(), 5);
        assert_eq!(in_flight.first_deadline(), Some(at(20)));
        assert_eq!(in_flight.expired(at(19)), vec![]);
        let ids = |ids: &[u64]| ids.iter().map(|&id| RequestId(id)).collect::<Vec<_>>();
        assert_eq!(in_flight.expired(at(40)), ids(&[2, 3, 4]));
        assert_eq!(in_flight.expired(at(50)), ids(&[1, 2, 3, 4]));
        // Removing a request removes its deadline; a request set again has its new one.
        assert_eq!(in_flight.remove(RequestId(2)).map(|(_, at)| at), Some(at(20)));
        assert!(in_flight.remove(RequestId(2)).is_none());
        assert_eq!(in_flight.expired(at(40)), ids(&[3, 4]));
        in_flight.insert(RequestId(4), pending(4), at(95));
        assert_eq!(in_flight.first_deadline(), Some(at(40)));
        assert_eq!(in_flight.expired(at(94)), ids(&[1, 3, 5]));
        assert_eq!(in_flight.by_id().map(|(_, at)| at.ms).collect::<Vec<_>>(), [50, 40, 95, 90]);
        let is_txn = |n: &'static str| move |p: &Pending| matches!(p, Pending::Transaction { txn_id, .. } if &**txn_id == n);
        assert!(in_flight.any(is_txn("4")) && !in_flight.any(is_txn("2")));
        for id in [1, 3, 4, 5] {
            in_flight.remove(RequestId(id));
        }
        assert_eq!((in_flight.len(), in_flight.first_deadline()), (0, None));
    }
}
