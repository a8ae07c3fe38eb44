//! `[[step]]`: one scripted action, with the fields its `action` needs and allows.

use std::ops::Range;

use serde_json::Map;
use toml::Spanned;

use super::{Builder, Pending, Result, span};
use crate::scenario::file::StepTable;
use crate::scenario::{ActionKind, STEP_RETRIES_MAX, Step, StepAction, StepExpect};

/// What a step's action needs and allows: (required fields, optional fields).
fn action_fields(kind: ActionKind) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        ActionKind::CreateRoom => (&["room"], &["version", "public", "name", "topic"]),
        ActionKind::Send => (&["room", "event_type"], &["state_key", "content"]),
        ActionKind::Message => (&["room", "body"], &[]),
        ActionKind::Join | ActionKind::Leave | ActionKind::Knock => (&["room"], &["via"]),
        ActionKind::Invite | ActionKind::Kick | ActionKind::Ban | ActionKind::Unban => {
            (&["room", "target"], &[])
        }
        ActionKind::Redact => (&["room", "redacts"], &[]),
        ActionKind::Upgrade => (&["room", "version", "new_room"], &[]),
        ActionKind::Power => (&["room", "target", "level"], &[]),
    }
}

impl Builder<'_> {
    pub(super) fn step(&self, table: &Spanned<StepTable>) -> Result<Pending> {
        let header = span(table);
        let t = table.get_ref();
        let at_ms = self.time(&t.at_ms, "at_ms")?;
        let (user, server) = self.known_user(&t.user)?;
        if let Some(written) = &t.server {
            let named = self.known_server(written)?;
            if named != server {
                let problem =
                    format!("user {user} does not belong to server {named} (it is on {server})");
                return Err(self.error(span(written), problem));
            }
        }
        let Some(kind) = ActionKind::parse(t.action.get_ref()) else {
            let names: Vec<&str> = ActionKind::ALL.iter().map(|k| k.as_str()).collect();
            let problem = format!(
                "unknown action {:?}, expected one of {}",
                t.action.get_ref(),
                names.join(", ")
            );
            return Err(self.error(span(&t.action), problem));
        };
        let (required, optional) = action_fields(kind);
        self.check_action_fields(t, kind, required, optional)?;

        // Every required field is present from here on.
        let room_field = t.room.as_ref().unwrap();
        let room = self.label(room_field, "room label")?;
        let (action, new_room) = self.step_action(t, kind, room)?;
        let label = match &t.label {
            Some(label) => Some(self.label(label, "label")?),
            None => None,
        };
        let expect = self.step_expect(t)?;
        let retries = self.step_retries(t, kind)?;
        let detail = t.redacts.as_ref().or(t.new_room.as_ref()).map_or(header.clone(), span);
        let line = self.at.line_of(header.start);
        Ok(Pending {
            step: Step { at_ms, server, user, action, new_room, label, line, expect, retries },
            span: header.clone(),
            room_span: span(room_field),
            label_span: t.label.as_ref().map_or(header, span),
            detail_span: detail,
        })
    }

    /// Every field the action needs is given, and no field it does not take.
    fn check_action_fields(
        &self,
        t: &StepTable,
        kind: ActionKind,
        required: &[&str],
        optional: &[&str],
    ) -> Result<()> {
        let present: [(&str, Option<Range<usize>>); 13] = [
            ("room", t.room.as_ref().map(span)),
            ("version", t.version.as_ref().map(span)),
            ("public", t.public.as_ref().map(span)),
            ("name", t.name.as_ref().map(span)),
            ("topic", t.topic.as_ref().map(span)),
            ("event_type", t.event_type.as_ref().map(span)),
            ("state_key", t.state_key.as_ref().map(span)),
            ("content", t.content.as_ref().map(span)),
            ("body", t.body.as_ref().map(span)),
            ("target", t.target.as_ref().map(span)),
            ("via", t.via.as_ref().map(span)),
            ("redacts", t.redacts.as_ref().map(span)),
            ("new_room", t.new_room.as_ref().map(span)),
        ];
        let present = present.into_iter().chain([("level", t.level.as_ref().map(span))]);
        for (field, at) in present {
            let Some(at) = at else {
                if required.contains(&field) {
                    let problem = format!("action \"{kind}\" needs `{field}`");
                    return Err(self.error(span(&t.action), problem));
                }
                continue;
            };
            if !required.contains(&field) && !optional.contains(&field) {
                let mut takes: Vec<&str> = required.to_vec();
                takes.extend(optional.iter());
                let problem = format!(
                    "`{field}` does not apply to action \"{kind}\" (it takes {})",
                    takes.join(", ")
                );
                return Err(self.error(at, problem));
            }
        }
        Ok(())
    }

    /// The action a step table describes, and the label of the room it creates;
    /// `check_action_fields` has run, so every required field is present.
    fn step_action(
        &self,
        t: &StepTable,
        kind: ActionKind,
        room: String,
    ) -> Result<(StepAction, Option<String>)> {
        let text = |field: &Option<Spanned<String>>| field.as_ref().unwrap().get_ref().clone();
        let target = || self.known_user(t.target.as_ref().unwrap()).map(|(id, _)| id);
        let via = || -> Result<Vec<String>> {
            let Some(list) = &t.via else { return Ok(Vec::new()) };
            list.get_ref().iter().map(|server| self.known_server(server)).collect()
        };
        let action = match kind {
            ActionKind::CreateRoom => {
                let action = StepAction::CreateRoom {
                    version: self.room_version(t.version.as_ref())?,
                    public: t.public.as_ref().is_some_and(|p| *p.get_ref()),
                    name: t.name.as_ref().map(|n| n.get_ref().clone()),
                    topic: t.topic.as_ref().map(|n| n.get_ref().clone()),
                };
                return Ok((action, Some(room)));
            }
            ActionKind::Send => {
                let event_type = t.event_type.as_ref().unwrap();
                if event_type.get_ref().is_empty() {
                    return Err(self.error(span(event_type), "event_type is empty"));
                }
                let content = match &t.content {
                    Some(content) => self.content(content)?,
                    None => Map::new(),
                };
                StepAction::Send {
                    room,
                    event_type: event_type.get_ref().clone(),
                    state_key: t.state_key.as_ref().map(|k| k.get_ref().clone()),
                    content,
                }
            }
            ActionKind::Message => StepAction::Message { room, body: text(&t.body) },
            ActionKind::Invite => StepAction::Invite { room, target: target()? },
            ActionKind::Join => StepAction::Join { room, via: via()? },
            ActionKind::Leave => StepAction::Leave { room, via: via()? },
            ActionKind::Kick => StepAction::Kick { room, target: target()? },
            ActionKind::Ban => StepAction::Ban { room, target: target()? },
            ActionKind::Unban => StepAction::Unban { room, target: target()? },
            ActionKind::Knock => StepAction::Knock { room, via: via()? },
            ActionKind::Redact => StepAction::Redact {
                room,
                event: self.label(t.redacts.as_ref().unwrap(), "label")?,
            },
            ActionKind::Upgrade => {
                let new_room = self.label(t.new_room.as_ref().unwrap(), "room label")?;
                let version = self.room_version(t.version.as_ref())?;
                return Ok((StepAction::Upgrade { room, version }, Some(new_room)));
            }
            ActionKind::Power => StepAction::Power {
                room,
                target: target()?,
                level: self.power_level(t.level.as_ref().unwrap())?,
            },
        };
        Ok((action, None))
    }

    fn step_expect(&self, t: &StepTable) -> Result<StepExpect> {
        let expect = match &t.expect {
            None => StepExpect::Succeed,
            Some(e) if e.get_ref() == "succeed" => StepExpect::Succeed,
            Some(e) if e.get_ref() == "fail" => StepExpect::Fail,
            Some(e) => {
                let problem =
                    format!("expect must be \"succeed\" or \"fail\", not {:?}", e.get_ref());
                return Err(self.error(span(e), problem));
            }
        };
        Ok(expect)
    }

    /// `retries` of a membership step.
    fn step_retries(&self, t: &StepTable, kind: ActionKind) -> Result<u32> {
        let retries = match &t.retries {
            None => 0,
            Some(r) if !kind.has_handshake() => {
                let problem = format!(
                    "`retries` applies to join, leave, knock and invite, not to action \"{kind}\""
                );
                return Err(self.error(span(r), problem));
            }
            Some(r) if *r.get_ref() > STEP_RETRIES_MAX => {
                let problem = format!("retries must be 0 to {STEP_RETRIES_MAX}");
                return Err(self.error(span(r), problem));
            }
            Some(r) => *r.get_ref(),
        };
        Ok(retries)
    }
}
