//! The checks that need every step in time order: labels are unique, a room is used only
//! after the step that creates it, a redaction names an earlier event of the same room.

use std::collections::BTreeMap;

use super::{Builder, Pending, Result};
use crate::scenario::{RoomInfo, StepAction};

/// The labels of the steps, by the index of the step in time order.
struct Labels {
    /// Each room label and the step that creates it.
    created: BTreeMap<String, usize>,
    /// The rooms in creation order.
    rooms: Vec<RoomInfo>,
    /// Each event label and the step that makes the event.
    labels: BTreeMap<String, usize>,
}

impl Builder<'_> {
    /// Checks the sorted steps in order: room labels and event labels are unique, a room
    /// is used only after the step that creates it, a redaction names an earlier event of
    /// the same room. Fills in default `via`s. Returns the rooms in creation order.
    pub(super) fn check_order(&self, pending: &mut [Pending]) -> Result<Vec<RoomInfo>> {
        let Labels { created, rooms, labels } = self.labels(pending)?;
        for index in 0..pending.len() {
            let p = &pending[index];
            let room = p.step.room();
            let creator = match p.step.action {
                StepAction::CreateRoom { .. } => index,
                _ => match created.get(room) {
                    Some(&creator) => creator,
                    None => {
                        let problem = format!(
                            "unknown room label {room:?}: rooms are created by [[room]], a create_room step or an upgrade's new_room"
                        );
                        return Err(self.error(p.room_span.clone(), problem));
                    }
                },
            };
            if creator > index {
                let other = &pending[creator];
                let problem = format!(
                    "room {room:?} is used at {} ms, before the step that creates it (line {}, at {} ms)",
                    p.step.at_ms,
                    self.at.line_of(other.span.start),
                    other.step.at_ms
                );
                return Err(self.error(p.room_span.clone(), problem));
            }
            if let StepAction::Redact { event: target_label, .. } = &p.step.action {
                let Some(&target) = labels.get(target_label) else {
                    let problem = format!("redacts unknown label {target_label:?}");
                    return Err(self.error(p.detail_span.clone(), problem));
                };
                let other = &pending[target];
                if target >= index {
                    let problem = format!(
                        "redacts {target_label:?}, which a later step makes (line {}, at {} ms)",
                        self.at.line_of(other.label_span.start),
                        other.step.at_ms
                    );
                    return Err(self.error(p.detail_span.clone(), problem));
                }
                // An upgrade's label names its tombstone, in the old room.
                let target_room = other.step.room();
                if target_room != room {
                    let problem = format!(
                        "redacts {target_label:?}, an event of room {target_room:?}, not {room:?}"
                    );
                    return Err(self.error(p.detail_span.clone(), problem));
                }
            }
            // A user on another server joins through the room's creating server unless told.
            let home = pending[creator].step.server.clone();
            let p = &mut pending[index];
            let remote = p.step.server != home;
            if let Some(via) = p.step.action.via_mut() {
                if via.is_empty() && remote {
                    via.push(home);
                }
            }
        }
        Ok(rooms)
    }

    /// Every room label and event label, each used once.
    fn labels(&self, pending: &[Pending]) -> Result<Labels> {
        // Every room and event label first, so that "used before created" and "unknown"
        // can be told apart.
        let mut created: BTreeMap<String, usize> = BTreeMap::new();
        let mut rooms: Vec<RoomInfo> = Vec::new();
        let mut labels: BTreeMap<String, usize> = BTreeMap::new();
        for (index, p) in pending.iter().enumerate() {
            let new = match (&p.step.action, &p.step.new_room) {
                (StepAction::CreateRoom { version, .. }, Some(room)) => {
                    Some((room, version, &p.room_span))
                }
                (StepAction::Upgrade { version, .. }, Some(new_room)) => {
                    Some((new_room, version, &p.detail_span))
                }
                _ => None,
            };
            if let Some((room, version, at)) = new {
                if let Some(&other) = created.get(room) {
                    let line = self.at.line_of(pending[other].span.start);
                    let problem = format!(
                        "room label {room:?} is already created by the step at line {line}"
                    );
                    return Err(self.error(at.clone(), problem));
                }
                created.insert(room.clone(), index);
                let server = p.step.server.clone();
                rooms.push(RoomInfo { label: room.clone(), server, version: *version });
            }
            if let Some(label) = &p.step.label {
                if let Some(&other) = labels.get(label) {
                    let line = self.at.line_of(pending[other].label_span.start);
                    let problem = format!("label {label:?} is already used at line {line}");
                    return Err(self.error(p.label_span.clone(), problem));
                }
                labels.insert(label.clone(), index);
            }
        }
        Ok(Labels { created, rooms, labels })
    }
}
