//! Scripted steps: turning a step's labels into ids (the one place that does), tying the requests
//! and failures of membership handshakes to the step that made them, retries, and the
//! supervisor's hand-over of due steps to their servers.

use super::*;

/// The kind of membership handshake a federation request belongs to, from its path:
/// these are the requests a step's `join`, `leave`, `knock` or `invite` makes. The
/// endpoint is the segment after `/_matrix/federation/` and the version, and is followed
/// by its parameters. Every request a server sends is asked, so the endpoint is matched
/// as one segment rather than by searching the path for each name (seven substring
/// searches per request were 0.6% of `big100`'s instructions), and the target is read
/// only as far as the endpoint's end: where the path ends (at a `?`) is found on the way.
pub(super) fn membership_kind(target: &str) -> Option<ActionKind> {
    let rest = target.strip_prefix("/_matrix/federation/")?.as_bytes();
    // The end of the segment starting at `from`, if a `/` (not the query's `?`) ends it.
    let segment_end = |from: usize| {
        let end = from + rest.get(from..)?.iter().position(|&b| b == b'/' || b == b'?')?;
        (rest[end] == b'/').then_some(end)
    };
    let version_end = segment_end(0)?;
    let endpoint_end = segment_end(version_end + 1)?;
    match &rest[version_end + 1..endpoint_end] {
        b"make_join" | b"send_join" => Some(ActionKind::Join),
        b"make_leave" | b"send_leave" => Some(ActionKind::Leave),
        b"make_knock" | b"send_knock" => Some(ActionKind::Knock),
        b"invite" => Some(ActionKind::Invite),
        _ => None,
    }
}

impl Shared {
    /// Records that step `k` failed, and when it is tried again if it has retries left
    /// (before the end of the run).
    pub(super) fn step_failed(&mut self, k: usize, reason: String, now: u64) {
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
        let body = Body::ActionFailed(Box::new(crate::trace::ActionFailure {
            server: step.server.clone(),
            action: step.to_string(),
            reason,
            step: Some(k as u64),
            line: Some(step.line),
            retry_at_ms,
        }));
        self.record(now, body);
    }

    /// The step a membership request or failure of `kind` on `node` belongs to: one of
    /// this call's `owners` of that kind, else the earliest step of that kind on `node`
    /// with a request in flight.
    pub(super) fn owner_of(
        &self,
        node: usize,
        kind: ActionKind,
        owners: &[usize],
    ) -> Option<usize> {
        let same_kind = |k: &usize| self.plan.steps[*k].action.kind() == kind;
        owners.iter().copied().find(same_kind).or_else(|| {
            self.step_requests
                .range((node, 0)..=(node, u64::MAX))
                .map(|(_, (_, k))| *k)
                .filter(same_kind)
                .min()
        })
    }

    /// The step's action with its labels turned into ids: the one place labels are
    /// resolved. A label that names nothing yet (its room was never created, its event
    /// never made) fails the step.
    pub(super) fn resolve(&self, step: &Step) -> Result<Action<String, EventId>, String> {
        step.action.named(
            |label| {
                self.rooms
                    .get(label)
                    .cloned()
                    .ok_or_else(|| format!("room {label:?} does not exist"))
            },
            |label| {
                self.labels
                    .get(label)
                    .cloned()
                    .ok_or_else(|| format!("no event labelled {label:?} was created"))
            },
        )
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
            let node = *self.index.get(&self.plan.steps[k].server).expect("steps name servers");
            if self.slots[node].up {
                self.push(node, Inbox::Step(k));
            } else {
                self.step_failed(k, "server is down".into(), now);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_requests_are_known_by_their_endpoint() {
        let cases = [
            (
                "/_matrix/federation/v1/make_join/%21r%3Ahs1/%40a%3Ahs2?ver=11&ver=12",
                Some(ActionKind::Join),
            ),
            (
                "/_matrix/federation/v2/send_join/%21r%3Ahs1/%24j?omit_members=true",
                Some(ActionKind::Join),
            ),
            ("/_matrix/federation/v1/make_leave/%21r%3Ahs1/%40a%3Ahs2", Some(ActionKind::Leave)),
            ("/_matrix/federation/v2/send_leave/%21r%3Ahs1/%24l", Some(ActionKind::Leave)),
            (
                "/_matrix/federation/v1/make_knock/%21r%3Ahs1/%40a%3Ahs2?ver=12",
                Some(ActionKind::Knock),
            ),
            ("/_matrix/federation/v1/send_knock/%21r%3Ahs1/%24k", Some(ActionKind::Knock)),
            ("/_matrix/federation/v2/invite/%21r%3Ahs1/%24i", Some(ActionKind::Invite)),
            ("/_matrix/federation/v1/send/1700000000.7", None),
            ("/_matrix/federation/v1/state_ids/%21r%3Ahs1?event_id=%24e", None),
            ("/_matrix/federation/v1/get_missing_events/%21r%3Ahs1", None),
            ("/_matrix/federation/v1/event_auth/%21r%3Ahs1/%24e", None),
            ("/_matrix/federation/v1/exchange_third_party_invite/%21r%3Ahs1", None),
            ("/_matrix/key/v2/server", None),
            // The endpoint's name as a query value, or with no parameters after it.
            ("/_matrix/federation/v1/event/%24e?x=/invite/", None),
            ("/_matrix/federation/v1/make_join", None),
            // A `/` after the query's start is not the path's.
            ("/_matrix/federation/v1?x=/make_join/%21r%3Ahs1", None),
            ("/_matrix/federation/v1/make_join?x=/y", None),
            ("/_matrix/federation/v1/make_join?", None),
            ("/_matrix/federation/?/make_join/r", None),
            ("/_matrix/federation//make_join/r", Some(ActionKind::Join)),
            ("/_matrix/federation/v1//r", None),
            ("/_matrix/federation/", None),
        ];
        for (target, kind) in cases {
            assert_eq!(membership_kind(target), kind, "{target}");
        }
    }
}
