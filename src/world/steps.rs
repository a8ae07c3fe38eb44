//! Scripted steps: turning a step's labels into a homeserver action, tying the requests
//! and failures of membership handshakes to the step that made them, retries, and the
//! supervisor's hand-over of due steps to their servers.

use super::*;

/// The kind of membership handshake a federation request belongs to, from its path:
/// these are the requests a step's `join`, `leave`, `knock` or `invite` makes.
pub(super) fn membership_kind(path: &str) -> Option<&'static str> {
    let path = path_only(path);
    [
        ("/make_join/", "join"),
        ("/send_join/", "join"),
        ("/make_leave/", "leave"),
        ("/send_leave/", "leave"),
        ("/make_knock/", "knock"),
        ("/send_knock/", "knock"),
        ("/invite/", "invite"),
    ]
    .into_iter()
    .find(|(part, _)| path.contains(part))
    .map(|(_, kind)| kind)
}

impl Shared {
    /// Records that step `k` failed, and when it is tried again if it has retries left
    /// (before the end of the run).
    pub(super) fn step_failed(&mut self, k: usize, action: String, reason: String, now: u64) {
        self.step_requests.retain(|_, (_, owner)| *owner != k);
        let step = &self.plan.steps[k];
        let failures = self.failures.entry(k).or_insert(0);
        *failures += 1;
        let retry_at_ms = (*failures <= step.retries)
            .then(|| now + retry_delay_ms(*failures))
            .filter(|at| *at < self.plan.end_ms);
        if let Some(at) = retry_at_ms {
            self.retries.insert((at, k));
        }
        let body = Body::ActionFailed {
            server: step.server.clone(),
            action,
            reason,
            step: Some(k as u64),
            line: Some(step.line),
            retry_at_ms,
        };
        self.record(now, body);
    }

    /// The step a membership request or failure of `kind` on `node` belongs to: one of
    /// this call's `owners` of that kind, else the earliest step of that kind on `node`
    /// with a request in flight.
    pub(super) fn owner_of(&self, node: usize, kind: &str, owners: &[usize]) -> Option<usize> {
        let same_kind = |k: &usize| action_kind(&self.plan.steps[*k].action) == kind;
        owners.iter().copied().find(same_kind).or_else(|| {
            self.step_requests
                .range((node, 0)..=(node, u64::MAX))
                .map(|(_, (_, k))| *k)
                .filter(same_kind)
                .min()
        })
    }

    /// Turns a step's labels into ids and the action the homeserver takes.
    pub(super) fn resolve(&self, node: usize, step: &PlanStep) -> Result<Action, String> {
        let user = step.user.clone();
        let room = |label: &str| -> Result<String, String> {
            self.rooms.get(label).cloned().ok_or_else(|| format!("room {label:?} does not exist"))
        };
        Ok(match &step.action {
            PlanAction::CreateRoom { version, public, name, topic, .. } => Action::CreateRoom {
                user,
                version: *version,
                public: *public,
                name: name.clone(),
                topic: topic.clone(),
            },
            PlanAction::Send { room: r, event_type, state_key, content } => Action::Send {
                user,
                room_id: room(r)?,
                event_type: event_type.clone(),
                state_key: state_key.clone(),
                content: content.clone(),
            },
            PlanAction::Invite { room: r, target } => {
                Action::Invite { user, room_id: room(r)?, target: target.clone() }
            }
            PlanAction::Join { room: r, via } => {
                Action::Join { user, room_id: room(r)?, via: via.clone() }
            }
            PlanAction::Leave { room: r, via } => {
                Action::Leave { user, room_id: room(r)?, via: via.clone() }
            }
            PlanAction::Kick { room: r, target } => {
                Action::Kick { user, room_id: room(r)?, target: target.clone() }
            }
            PlanAction::Ban { room: r, target } => {
                Action::Ban { user, room_id: room(r)?, target: target.clone() }
            }
            PlanAction::Unban { room: r, target } => {
                Action::Unban { user, room_id: room(r)?, target: target.clone() }
            }
            PlanAction::Knock { room: r, via } => {
                Action::Knock { user, room_id: room(r)?, via: via.clone() }
            }
            PlanAction::Redact { room: r, target_label } => {
                let event_id = self
                    .labels
                    .get(target_label)
                    .cloned()
                    .ok_or_else(|| format!("no event labelled {target_label:?} was created"))?;
                Action::Redact { user, room_id: room(r)?, event_id }
            }
            PlanAction::Upgrade { room: r, version, .. } => {
                Action::Upgrade { user, room_id: room(r)?, version: *version }
            }
            PlanAction::Power { room: r, target, level } => {
                let room_id = room(r)?;
                let content = self.power_levels(node, &room_id, target, *level)?;
                Action::Send {
                    user,
                    room_id,
                    event_type: "m.room.power_levels".into(),
                    state_key: Some(String::new()),
                    content,
                }
            }
        })
    }

    /// The current power levels of the room at `node` with `target` set to `level`.
    pub(super) fn power_levels(
        &self,
        node: usize,
        room_id: &str,
        target: &str,
        level: i64,
    ) -> Result<Object, String> {
        let server = self.slots[node].server.as_ref().ok_or("server is down")?;
        let state = server.current_state(room_id).ok_or("server is not in the room")?;
        let key = ("m.room.power_levels".to_owned(), String::new());
        let id = state.get(&key).ok_or("the room has no power levels")?;
        let pdu = server.store().pdu(id).ok_or("power levels event not stored")?;
        let mut content = pdu.content().clone();
        let users = content.entry("users").or_insert_with(|| Value::Object(Object::new()));
        if let Value::Object(users) = users {
            users.insert(target.to_owned(), Value::from(level));
        } else {
            return Err("power levels `users` is not an object".into());
        }
        Ok(content)
    }

    /// One supervisor step at `now`: faults, deliveries, due steps. Returns when to look
    /// again (`None` when the run is over).
    pub(super) fn supervise_step(
        &mut self,
        now: u64,
        nodes: &[madsim::task::NodeId],
    ) -> Option<u64> {
        let at = Instant::from_ms(now);
        let markers = self.net.advance_to(at);
        self.drain_net();
        for marker in markers {
            let node = usize::try_from(marker.node.0).expect("node ids fit usize");
            self.node_fault(node, marker.marker, now, nodes[node]);
        }
        for node in 0..self.slots.len() {
            self.apply_skew(node, now);
        }
        for delivery in self.net.deliver_due(at) {
            self.drain_net();
            self.deliver(delivery, now);
        }
        self.drain_net();
        let mut due = Vec::new();
        while self.next_step < self.plan.steps.len() && self.plan.steps[self.next_step].at_ms <= now
        {
            due.push(self.next_step);
            self.next_step += 1;
        }
        while let Some(&(at, k)) = self.retries.first() {
            if at > now {
                break;
            }
            self.retries.pop_first();
            due.push(k);
        }
        for k in due {
            let node = self.index[&self.plan.steps[k].server];
            if self.slots[node].up {
                self.push(node, Inbox::Step(k));
            } else {
                let action = describe(&self.plan.steps[k].action);
                self.step_failed(k, action, "server is down".into(), now);
            }
        }
        self.net_dirty = false;
        if now >= self.plan.end_ms {
            return None;
        }
        let mut next = self.plan.end_ms;
        if let Some(t) = self.net.next_event_time() {
            next = next.min(t.ms);
        }
        if let Some(step) = self.plan.steps.get(self.next_step) {
            next = next.min(step.at_ms);
        }
        if let Some(&(at, _)) = self.retries.first() {
            next = next.min(at);
        }
        Some(next.max(now))
    }
}
