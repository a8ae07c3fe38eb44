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
        self.requests.insert(id, (pending, now + self.config.request_timeout));
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
        let deadline = self.requests.values().map(|(_, at)| *at).min();
        let waiting = self.waiting.values().map(|w| w.deadline).min();
        let next = [deadline, waiting, self.outbound_timer].into_iter().flatten().min();
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
                let request = txn.to_request(&self.name, EPOCH_MS + created + self.skew_ms);
                let pending = Pending::Transaction {
                    destination: txn.destination.clone(),
                    txn_id: txn.txn_id.clone(),
                };
                let id = RequestId(self.next_request);
                self.next_request += 1;
                self.requests.insert(id, (pending, now + self.config.request_timeout));
                out.push(Output::Request {
                    destination: txn.destination,
                    id,
                    request: request.to_http(),
                });
            }
            OutboundAction::CatchUp { destination, rooms } => {
                // Catch-up sends the latest events of each room; the receiver fills the gap
                // with get_missing_events ([impl] Synapse's catch-up).
                let mut latest = Vec::new();
                for room_id in rooms {
                    let Some(room) = self.store.room(&room_id) else { continue };
                    for id in &room.forward_extremities {
                        if let Some(pdu) = self.store.pdu(id) {
                            latest.push((room_id.clone(), Arc::new(pdu.json().clone())));
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
        if self.outbound_timer.is_some_and(|t| t <= now) {
            self.outbound_timer = None;
            for action in self.outbound.on_timer(now) {
                self.outbound_action(now, action, out);
            }
        }
        let expired: Vec<RequestId> =
            self.requests.iter().filter(|(_, (_, at))| *at <= now).map(|(id, _)| *id).collect();
        for id in expired {
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

    /// Queues an event for every server in the room but this one (and `except`).
    pub(super) fn fan_out(
        &mut self,
        room_id: &str,
        pdu: &Pdu,
        extra: &[String],
        except: Option<&str>,
    ) {
        let mut servers = self.joined_servers(room_id);
        servers.extend(extra.iter().cloned());
        let json = Arc::new(pdu.json().clone());
        for server in servers {
            if server != self.name && Some(server.as_str()) != except {
                self.outbound.enqueue_pdu(&server, Arc::clone(&json), room_id);
            }
        }
    }

    /// Servers with a joined member in the room's current state.
    pub fn joined_servers(&self, room_id: &str) -> BTreeSet<String> {
        let Some(state) = self.current_state(room_id) else { return BTreeSet::new() };
        self.joined_servers_in(&state)
    }

    pub(super) fn joined_servers_in(&self, state: &StateMap) -> BTreeSet<String> {
        let mut servers = BTreeSet::new();
        for ((event_type, state_key), id) in state {
            if event_type != "m.room.member" {
                continue;
            }
            let joined = self
                .store
                .pdu(id)
                .and_then(|p| {
                    p.content().get("membership").and_then(Value::as_str).map(|m| m == "join")
                })
                .unwrap_or(false);
            if joined {
                if let Some(server) = ids::user_server(state_key) {
                    servers.insert(server.to_owned());
                }
            }
        }
        servers
    }
}
