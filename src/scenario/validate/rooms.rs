//! `[[room]]`: a room set up in one table, expanded into ordinary create, invite, join and
//! power steps.

use toml::Spanned;

use super::{Builder, Pending, Result, span};
use crate::scenario::file::RoomTable;
use crate::scenario::{Step, StepAction, StepExpect, TIME_MS_MAX};

/// Default gap between the phases of a `[[room]]` setup.
const SETUP_SPACING_MS_DEFAULT: u64 = 1_000;

impl Builder<'_> {
    /// Expands a `[[room]]`: create at `at_ms`; invites one spacing later; joins two
    /// spacings later, member `i` after `i` staggers; power levels one spacing after the
    /// last join.
    pub(super) fn room(&mut self, table: &Spanned<RoomTable>) -> Result<Vec<Pending>> {
        let header = span(table);
        let room = table.get_ref();
        let label = self.label(&room.label, "room label")?;
        let (creator, server) = self.known_user(&room.creator)?;
        let version = self.room_version(room.version.as_ref())?;
        let start = match &room.at_ms {
            Some(at_ms) => self.time(at_ms, "at_ms")?,
            None => 0,
        };
        let spacing = match &room.setup_spacing_ms {
            Some(spacing) => self.duration(spacing, "setup_spacing_ms")?,
            None => SETUP_SPACING_MS_DEFAULT,
        };
        let stagger = match &room.member_stagger_ms {
            Some(stagger) => self.duration(stagger, "member_stagger_ms")?,
            None => 0,
        };

        let (members, invited) = self.room_people(room, &creator)?;

        let line = self.at.line_of(header.start);
        let make = |at_ms: u64, user: &str, action: StepAction| Pending {
            step: Step {
                at_ms,
                server: self.user_server[user].clone(),
                user: user.to_owned(),
                new_room: matches!(action, StepAction::CreateRoom { .. }).then(|| label.clone()),
                action,
                label: None,
                line,
                expect: StepExpect::Succeed,
                retries: 0,
            },
            span: header.clone(),
            room_span: span(&room.label),
            label_span: header.clone(),
            detail_span: header.clone(),
        };
        let mut steps = vec![make(
            start,
            &creator,
            StepAction::CreateRoom {
                version,
                public: room.public,
                name: room.name.clone(),
                topic: room.topic.clone(),
            },
        )];
        let invite_at = start + spacing;
        let to_invite = if room.public { &[][..] } else { &members[..] };
        for target in to_invite.iter().chain(&invited) {
            let action = StepAction::Invite { room: label.clone(), target: target.clone() };
            steps.push(make(invite_at, &creator, action));
        }
        let join_at = start + 2 * spacing;
        let mut last_join = join_at;
        for (number, member) in members.iter().enumerate() {
            let at_ms = join_at + stagger * number as u64;
            last_join = at_ms;
            let via =
                if self.user_server[member] == server { Vec::new() } else { vec![server.clone()] };
            steps.push(make(at_ms, member, StepAction::Join { room: label.clone(), via }));
        }
        for (user, level) in &room.power {
            let (target, _) = self.known_user(user)?;
            let level = self.power_level(level)?;
            let action = StepAction::Power { room: label.clone(), target, level };
            steps.push(make(last_join + spacing, &creator, action));
        }
        if let Some(last) = steps.last() {
            if last.step.at_ms > TIME_MS_MAX {
                return Err(
                    self.error(header, "the room's setup ends after the latest allowed time")
                );
            }
        }
        let mut joined = vec![creator];
        joined.extend(members);
        self.room_members.insert(label, joined);
        Ok(steps)
    }

    /// A `[[room]]`'s members besides the creator (`"*"`: every declared user) and the
    /// users it only invites, each listed once.
    fn room_people(&self, room: &RoomTable, creator: &str) -> Result<(Vec<String>, Vec<String>)> {
        let mut members: Vec<String> = Vec::new();
        let everyone = room.members.len() == 1 && room.members[0].get_ref() == "*";
        if everyone {
            // Declaration order: servers as declared, users as listed.
            members = self
                .servers
                .iter()
                .flat_map(|s| s.users.iter())
                .filter(|u| *u != creator)
                .cloned()
                .collect();
        } else {
            for member in &room.members {
                let (user, _) = self.known_user(member)?;
                if user == creator || members.contains(&user) {
                    let problem =
                        format!("{user} is listed twice (the creator is always a member)");
                    return Err(self.error(span(member), problem));
                }
                members.push(user);
            }
        }
        let mut invited = Vec::new();
        for user in &room.invited {
            let (id, _) = self.known_user(user)?;
            if id == creator || members.contains(&id) || invited.contains(&id) {
                let problem = format!("{id} is already a member or invited");
                return Err(self.error(span(user), problem));
            }
            invited.push(id);
        }
        Ok((members, invited))
    }
}
