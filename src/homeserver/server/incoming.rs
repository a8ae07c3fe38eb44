//! PDUs as transactions and answers bring them ([`Incoming`]): raw JSON, or exact copies
//! this process checked before, recognised by their bytes; their event ids and their
//! receipt checks of format, hash and signatures.

use super::*;

/// A PDU as a transaction brought it: its JSON, or an exact copy this process checked
/// before, recognised by its bytes ([`VerifiedEvents::get_bytes`]) under the room version
/// of its room, with what the checks made of it.
///
/// [`VerifiedEvents::get_bytes`]: crate::homeserver::verified::VerifiedEvents::get_bytes
pub(super) enum Incoming {
    Raw(Object),
    Checked { received: Arc<Pdu>, result: Arc<Pdu> },
}

impl Incoming {
    pub(super) fn json(&self) -> &Object {
        match self {
            Incoming::Raw(raw) => raw,
            Incoming::Checked { received, .. } => received.json(),
        }
    }

    /// A copy recognised by its bytes, for a room of version `room_version` (`None`: a room
    /// this server does not know). A copy checked under another version is decided afresh
    /// from its JSON, as `verify_received` would.
    pub(super) fn of_copy(copy: CheckedCopy, room_version: Option<RoomVersion>) -> Incoming {
        if room_version == Some(copy.version) {
            Incoming::Checked { received: copy.received, result: copy.result }
        } else {
            Incoming::Raw(copy.received.json().clone())
        }
    }

    /// A list's PDUs in the body's order, from those parsed and those recognised by their
    /// bytes (`known`: one entry per PDU of the list, or none when none was looked at), for
    /// a room of version `version`.
    pub(super) fn merge(
        version: RoomVersion,
        parsed: Vec<Arc<OutgoingPdu>>,
        known: Vec<Option<CheckedCopy>>,
    ) -> Vec<Incoming> {
        // A decoded answer's objects are not shared with anything yet: no copy is made.
        let raw =
            |object: Arc<OutgoingPdu>| Incoming::Raw(Arc::unwrap_or_clone(object).into_json());
        if known.is_empty() {
            return parsed.into_iter().map(raw).collect();
        }
        interleave(parsed, known, |copy| Incoming::of_copy(copy, Some(version)), raw)
    }

    /// The JSON, copied for a checked copy (which the rare callers of this need as JSON).
    pub(super) fn into_json(self) -> Object {
        match self {
            Incoming::Raw(raw) => raw,
            Incoming::Checked { received, .. } => received.json().clone(),
        }
    }
}

/// Debug builds: the JSON of a body's PDU list as it was sent, from the PDUs parsed
/// (`parsed`, in order) and those recognised by their bytes (`known`, one entry per PDU of
/// the list): what the whole body's parse gives, to compare with it.
pub(super) fn sent_json(parsed: &[Object], known: &[Option<CheckedCopy>]) -> Vec<Object> {
    let known = known.iter().map(Option::as_ref);
    interleave(parsed, known, |copy| copy.received.json().clone(), Object::clone)
}

/// A body's PDU list in order, from the PDUs parsed (`parsed`, in order) and the answers
/// for those recognised by their bytes (`known`: one entry per PDU of the list, `None` for
/// each parsed one), each made an item by `copy` or `parsed_item`.
pub(super) fn interleave<P, K, T>(
    parsed: impl IntoIterator<Item = P>,
    known: impl IntoIterator<Item = Option<K>>,
    mut copy: impl FnMut(K) -> T,
    mut parsed_item: impl FnMut(P) -> T,
) -> Vec<T> {
    let mut parsed = parsed.into_iter();
    let merged = known
        .into_iter()
        .map(|known| match known {
            Some(known) => copy(known),
            None => parsed_item(parsed.next().expect("one parsed PDU per unrecognised one")),
        })
        .collect();
    assert!(parsed.next().is_none(), "every parsed PDU has its place");
    merged
}

impl Homeserver {
    /// [`Homeserver::event_id_of`] for a PDU as a transaction brought it.
    pub(super) fn incoming_id(&self, rules: &RoomVersionRules, incoming: &Incoming) -> EventId {
        match incoming {
            Incoming::Raw(raw) => self.event_id_of(rules, raw),
            Incoming::Checked { received, .. } => received.event_id().clone(),
        }
    }

    /// The event id of a copy as received. An exact copy this process checked before has
    /// the id found then (the reference hash depends only on the copy and the room
    /// version, both compared by [`VerifiedEvents::get_raw`]), so only a copy not seen
    /// before is hashed: a transaction's result for each PDU is keyed by its id, and
    /// hashing every copy again was a tenth of a 100-server run's instructions.
    ///
    /// [`VerifiedEvents::get_raw`]: crate::homeserver::verified::VerifiedEvents::get_raw
    pub(super) fn event_id_of(&self, rules: &RoomVersionRules, raw: &Object) -> EventId {
        match self.verified.get_raw(rules.version, raw) {
            Some((received, _)) => received.event_id().clone(),
            None => pdu::event_id(rules, raw),
        }
    }

    /// [`Homeserver::verify_received`] for a PDU as a transaction or answer brought it.
    pub(super) fn verify_incoming(
        &self,
        rules: &RoomVersionRules,
        incoming: Incoming,
    ) -> Result<Arc<Pdu>, String> {
        match incoming {
            Incoming::Raw(raw) => self.verify_received(rules, raw),
            Incoming::Checked { received, result } => Ok(self.checked_copy(&received, result)),
        }
    }

    /// What to go on with for an exact copy checked before: the store's copy if the event
    /// is stored (as for any received copy of a stored event, below), else the checks'
    /// result.
    fn checked_copy(&self, received: &Pdu, result: Arc<Pdu>) -> Arc<Pdu> {
        self.store.pdu(received.event_id()).map_or(result, Arc::clone)
    }

    /// An event this server built and signed, as the one copy it keeps and sends. With
    /// shared verified events, it is checked and recorded here as its first receiver would
    /// check and record it ([`Homeserver::verify_and_record`]): every server that receives
    /// its bytes then takes this very body, so the process holds one copy of it instead of
    /// the builder's and the receivers'. Two copies cost more than memory: a shared
    /// resolution compares the events it read by pointer first and by whole JSON
    /// otherwise, and with the builder's copy apart, 2.2 of 5.2 million such comparisons
    /// in `big1000` compared whole objects.
    ///
    /// The outcome is known without checking when this server alone signed the event, with
    /// the key the shared key ring holds for it under that key id, and not through a hub
    /// ([`Homeserver::signed_here_verifies`]): the signature was made over the event's
    /// signing bytes with that key and the hash over its content, here, a moment ago
    /// (`pdu::build_signed`, whose signing the spec's test vectors check), so it is recorded
    /// intact. Verifying it anyway was a quarter of a sweep of two-server seeds; debug builds
    /// still verify and compare. The checker verifies every stored copy from the trace
    /// either way (the `integrity` invariant).
    pub(super) fn own_copy(&self, rules: &RoomVersionRules, mut pdu: Pdu) -> Arc<Pdu> {
        self.cite_shared_ids(&mut pdu);
        let pdu = Arc::new(pdu);
        if self.verified_shared {
            if self.signed_here_verifies(&pdu) {
                debug_assert!(
                    matches!(pdu::verify(rules, &pdu, &self.keys), Ok(pdu::Verified::Intact)),
                    "an event signed here verifies"
                );
                self.verified.insert(rules.version, Arc::clone(&pdu), Arc::clone(&pdu));
            } else {
                // A copy that fails the checks is recorded by no one, as a receiver records
                // none.
                let _ = self.verify_and_record(rules, Arc::clone(&pdu));
            }
        }
        pdu
    }

    /// Whether `pdu`, built and signed here, carries this server's signature alone, under
    /// the key id of this server's key, which the shared key ring holds for this server,
    /// and no hub's: then its signature check can only pass.
    fn signed_here_verifies(&self, pdu: &Pdu) -> bool {
        if pdu.origin() != self.name || pdu.hub_server().is_some() {
            return false;
        }
        let Some(Value::Object(by_server)) = pdu.json().get("signatures") else { return false };
        let ours = match by_server.get(self.name.as_str()) {
            Some(Value::Object(ours)) if by_server.len() == 1 => ours,
            _ => return false,
        };
        let key_id = self.key.key_id();
        ours.len() == 1
            && ours.contains_key(key_id)
            && self.keys.get(&self.name).and_then(|keys| keys.get(key_id))
                == Some(&self.key.public_key())
    }

    /// Parses and verifies a received PDU of a known room: format, signatures, hash.
    pub(super) fn verify_received(
        &self,
        rules: &RoomVersionRules,
        raw: Object,
    ) -> Result<Arc<Pdu>, String> {
        // An exact copy this process checked before: its parse, id and checks are known,
        // so none is repeated (the store's copy is kept, as below).
        if let Some((received, result)) = self.verified.get_raw(rules.version, &raw) {
            return Ok(self.checked_copy(&received, result));
        }
        let mut pdu = wire::parse_pdu(rules, raw).map_err(|e| format!("bad format: {e}"))?;
        // The event id is the reference hash: a stored event with this id has the same
        // redacted form, signatures aside, and was verified when it was stored. Keep that
        // copy and skip the signature check (the simulator's hottest path in large rooms,
        // where state and gap-filling responses repeat events the server has).
        if let Some(stored) = self.store.pdu(pdu.event_id()) {
            return Ok(Arc::clone(stored));
        }
        // The same copy checked by another server sharing the cache: the checks of format,
        // hash and signatures depend only on the copy and the keys, so take its result
        // (and share its body) rather than verify again.
        if let Some(verified) = self.verified.get(rules.version, &pdu) {
            return Ok(verified);
        }
        self.cite_shared_ids(&mut pdu);
        self.verify_and_record(rules, Arc::new(pdu))
    }

    /// With shared verified events, names the events `pdu` cites by the cache's copies of
    /// their ids ([`VerifiedEvents::share_cited_ids`]): for a body about to be checked,
    /// so that every server that keeps it finds the cited events by pointer.
    ///
    /// [`VerifiedEvents::share_cited_ids`]:
    /// crate::homeserver::verified::VerifiedEvents::share_cited_ids
    fn cite_shared_ids(&self, pdu: &mut Pdu) {
        if self.verified_shared {
            self.verified.share_cited_ids(pdu);
        }
    }

    /// Checks the hash and signatures of a copy no server of the process checked before,
    /// and records the result in the verified events: the copy itself, or its redacted
    /// form when its content hash does not match.
    fn verify_and_record(
        &self,
        rules: &RoomVersionRules,
        received: Arc<Pdu>,
    ) -> Result<Arc<Pdu>, String> {
        let result = match pdu::verify(rules, &received, &self.keys) {
            Ok(Verified::Intact) => Arc::clone(&received),
            Ok(Verified::Redacted(redacted)) => {
                let mut redacted = Pdu::from_json(rules, redacted)
                    .map_err(|e| format!("bad redacted form: {e}"))?;
                self.cite_shared_ids(&mut redacted);
                Arc::new(redacted)
            }
            Err(e) => return Err(e.to_string()),
        };
        self.verified.insert(rules.version, received, Arc::clone(&result));
        Ok(result)
    }
}
