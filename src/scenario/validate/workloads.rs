//! `[[workload]]`: random actions in one room over a time window, checked here and
//! expanded from a seed later (`super::super::workload`).

use std::ops::Range;

use toml::Spanned;

use super::{Builder, Pending, Result, span};
use crate::scenario::file::{MixTable, WorkloadTable};
use crate::scenario::{DURATION_MS_MAX, Mix, RoomInfo, WORKLOAD_ACTIONS_MAX, Workload};

/// The largest weight of one kind of workload action.
const WEIGHT_MAX: u64 = 1_000_000;

impl Builder<'_> {
    pub(super) fn workload(
        &self,
        table: &Spanned<WorkloadTable>,
        rooms: &[RoomInfo],
        pending: &[Pending],
    ) -> Result<Workload> {
        let header = span(table);
        let w = table.get_ref();
        let room = self.label(&w.room, "room label")?;
        let Some(info) = rooms.iter().find(|info| info.label == room) else {
            return Err(self.error(span(&w.room), format!("unknown room label {room:?}")));
        };
        let start_ms = self.time(&w.start_ms, "start_ms")?;
        let end_ms = self.time(&w.end_ms, "end_ms")?;
        let created_at = pending
            .iter()
            .find(|p| p.step.new_room.as_deref() == Some(room.as_str()))
            .map(|p| p.step.at_ms)
            .unwrap();
        if created_at > start_ms {
            let problem = format!(
                "room {room:?} is created at {created_at} ms, after the workload starts ({start_ms} ms)"
            );
            return Err(self.error(span(&w.start_ms), problem));
        }
        if end_ms <= start_ms {
            let problem = format!("end_ms ({end_ms}) must be after start_ms ({start_ms})");
            return Err(self.error(span(&w.end_ms), problem));
        }
        let interval_ms = *w.interval_ms.get_ref();
        if interval_ms == 0 || interval_ms > DURATION_MS_MAX {
            let problem = format!("interval_ms must be 1 to {DURATION_MS_MAX}, not {interval_ms}");
            return Err(self.error(span(&w.interval_ms), problem));
        }
        let actions = (end_ms - start_ms) / interval_ms;
        if actions > WORKLOAD_ACTIONS_MAX {
            let problem = format!(
                "about {actions} actions, more than the limit of {WORKLOAD_ACTIONS_MAX}: raise interval_ms or shorten the workload"
            );
            return Err(self.error(span(&w.interval_ms), problem));
        }

        let users = self.workload_users(w, &room, header.clone())?;
        let mut via = Vec::new();
        for server in &w.via {
            via.push(self.known_server(server)?);
        }
        if via.is_empty() {
            via.push(info.server.clone());
        }
        let mix = self.mix(w.mix.as_ref())?;
        let line = self.at.line_of(header.start);
        Ok(Workload { room, start_ms, end_ms, users, via, interval_ms, mix, line })
    }

    /// The users taking part: those listed and those of the servers listed, else the
    /// members a `[[room]]` set up, else every declared user.
    fn workload_users(
        &self,
        w: &WorkloadTable,
        room: &str,
        header: Range<usize>,
    ) -> Result<Vec<String>> {
        let mut users: Vec<String> = Vec::new();
        for user in &w.users {
            let (id, _) = self.known_user(user)?;
            if !users.contains(&id) {
                users.push(id);
            }
        }
        for server in &w.servers {
            let name = self.known_server(server)?;
            let spec = self.servers.iter().find(|s| s.name == name).unwrap();
            for id in &spec.users {
                if !users.contains(id) {
                    users.push(id.clone());
                }
            }
        }
        if w.users.is_empty() && w.servers.is_empty() {
            users = match self.room_members.get(room) {
                Some(members) => members.clone(),
                None => self.servers.iter().flat_map(|s| s.users.iter().cloned()).collect(),
            };
        }
        if users.is_empty() {
            return Err(self.error(header, "the workload has no users"));
        }
        Ok(users)
    }

    fn mix(&self, written: Option<&Spanned<MixTable>>) -> Result<Mix> {
        let mix = match written {
            Some(table) => {
                let m = table.get_ref();
                let mix = Mix {
                    message: m.message,
                    topic: m.topic,
                    name: m.name,
                    power: m.power,
                    join_leave: m.join_leave,
                    ban: m.ban,
                    kick: m.kick,
                    redact: m.redact,
                };
                let weights = mix.weights();
                if let Some((kind, weight)) = weights.iter().find(|(_, w)| *w > WEIGHT_MAX) {
                    let problem = format!("weight {kind} = {weight} is above {WEIGHT_MAX}");
                    return Err(self.error(span(table), problem));
                }
                if weights.iter().all(|(_, w)| *w == 0) {
                    return Err(self.error(span(table), "every weight of the mix is 0"));
                }
                mix
            }
            None => Mix::default(),
        };
        Ok(mix)
    }
}
