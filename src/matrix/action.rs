//! What a user does in a room: one vocabulary from a scenario file to the homeserver.
//!
//! [`Action`] is generic over how it names rooms and events. A scenario names them by
//! labels (`Action<String, String>`: labels exist before the run, ids only during it); a
//! homeserver by ids (`Action<String, EventId>`: a room id and an event id). The one place
//! labels become ids is [`Action::named`]; everything else about an action (its kind, its
//! one-line description) is the same type whichever names it carries.
//!
//! A pure value: it knows no server and does no I/O. What a homeserver does for each
//! action, and which client-server API call it stands for, is the homeserver's business.

use std::fmt;

use crate::matrix::canonical_json::Object;
use crate::matrix::room_version::RoomVersion;

/// One user action; `R` names rooms, `E` names events. The room an action creates
/// (`CreateRoom`, `Upgrade`) is not named here: its id exists only once it is made, and a
/// scenario names it on the step that makes it.
#[derive(Clone, Debug, PartialEq)]
pub enum Action<R, E> {
    /// Create a room (the spec's creation order). `public` picks the `public_chat` preset
    /// (join rule public), otherwise `private_chat` (invite only).
    CreateRoom {
        version: RoomVersion,
        public: bool,
        name: Option<String>,
        topic: Option<String>,
    },
    /// Any event: a message-like event when `state_key` is `None`, else a state event.
    Send {
        room: R,
        event_type: String,
        state_key: Option<String>,
        content: Object,
    },
    /// An `m.room.message` with `msgtype` `m.text` and this body.
    Message {
        room: R,
        body: String,
    },
    /// Invite `target` (over `/invite` when the target is on another server).
    Invite {
        room: R,
        target: String,
    },
    /// Join: directly when the server is in the room, otherwise through `via` with the
    /// `make_join`/`send_join` handshake.
    Join {
        room: R,
        via: Vec<String>,
    },
    /// Leave (through `make_leave`/`send_leave` with `via` when the server is not in the
    /// room, as when rejecting an invite).
    Leave {
        room: R,
        via: Vec<String>,
    },
    /// `leave` on another user.
    Kick {
        room: R,
        target: String,
    },
    Ban {
        room: R,
        target: String,
    },
    /// `leave` on a banned user.
    Unban {
        room: R,
        target: String,
    },
    /// Knock through `via` (`make_knock`/`send_knock`).
    Knock {
        room: R,
        via: Vec<String>,
    },
    /// Redact the event `event`.
    Redact {
        room: R,
        event: E,
    },
    /// Upgrade the room to `version`: a new room whose create event names this one as its
    /// predecessor, then an `m.room.tombstone` here pointing to it.
    Upgrade {
        room: R,
        version: RoomVersion,
    },
    /// Set one user's power level: the current `m.room.power_levels` as the acting server
    /// sees it, with `target`'s entry in `users` set to `level`.
    Power {
        room: R,
        target: String,
        level: i64,
    },
}

/// The kind of an action, named as scenario files name it (`action = "…"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ActionKind {
    CreateRoom,
    Send,
    Message,
    Invite,
    Join,
    Leave,
    Kick,
    Ban,
    Unban,
    Knock,
    Redact,
    Upgrade,
    Power,
}

impl ActionKind {
    pub const ALL: [ActionKind; 13] = [
        ActionKind::CreateRoom,
        ActionKind::Send,
        ActionKind::Message,
        ActionKind::Invite,
        ActionKind::Join,
        ActionKind::Leave,
        ActionKind::Kick,
        ActionKind::Ban,
        ActionKind::Unban,
        ActionKind::Knock,
        ActionKind::Redact,
        ActionKind::Upgrade,
        ActionKind::Power,
    ];

    /// The name scenario files and the trace use.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::CreateRoom => "create_room",
            ActionKind::Send => "send",
            ActionKind::Message => "message",
            ActionKind::Invite => "invite",
            ActionKind::Join => "join",
            ActionKind::Leave => "leave",
            ActionKind::Kick => "kick",
            ActionKind::Ban => "ban",
            ActionKind::Unban => "unban",
            ActionKind::Knock => "knock",
            ActionKind::Redact => "redact",
            ActionKind::Upgrade => "upgrade",
            ActionKind::Power => "power",
        }
    }

    /// The kind of a name, if it is one.
    pub fn parse(name: &str) -> Option<ActionKind> {
        ActionKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether actions of this kind may go through a federation handshake with another
    /// server (`make_*`/`send_*` or `/invite`), whose failure comes later than the action.
    pub fn has_handshake(self) -> bool {
        matches!(
            self,
            ActionKind::Invite | ActionKind::Join | ActionKind::Leave | ActionKind::Knock
        )
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<R, E> Action<R, E> {
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::CreateRoom { .. } => ActionKind::CreateRoom,
            Action::Send { .. } => ActionKind::Send,
            Action::Message { .. } => ActionKind::Message,
            Action::Invite { .. } => ActionKind::Invite,
            Action::Join { .. } => ActionKind::Join,
            Action::Leave { .. } => ActionKind::Leave,
            Action::Kick { .. } => ActionKind::Kick,
            Action::Ban { .. } => ActionKind::Ban,
            Action::Unban { .. } => ActionKind::Unban,
            Action::Knock { .. } => ActionKind::Knock,
            Action::Redact { .. } => ActionKind::Redact,
            Action::Upgrade { .. } => ActionKind::Upgrade,
            Action::Power { .. } => ActionKind::Power,
        }
    }

    /// The room the action works in (`None` for `CreateRoom`, which makes one).
    pub fn room(&self) -> Option<&R> {
        match self {
            Action::CreateRoom { .. } => None,
            Action::Send { room, .. }
            | Action::Message { room, .. }
            | Action::Invite { room, .. }
            | Action::Join { room, .. }
            | Action::Leave { room, .. }
            | Action::Kick { room, .. }
            | Action::Ban { room, .. }
            | Action::Unban { room, .. }
            | Action::Knock { room, .. }
            | Action::Redact { room, .. }
            | Action::Upgrade { room, .. }
            | Action::Power { room, .. } => Some(room),
        }
    }

    /// The servers to go through, for the actions that have them.
    pub fn via_mut(&mut self) -> Option<&mut Vec<String>> {
        match self {
            Action::Join { via, .. } | Action::Leave { via, .. } | Action::Knock { via, .. } => {
                Some(via)
            }
            _ => None,
        }
    }

    /// The same action with rooms and events named anew: `room` and `event` map each name
    /// (for a scenario's step, labels to ids) and the first failure is returned.
    pub fn named<R2, E2, X>(
        &self,
        mut room: impl FnMut(&R) -> Result<R2, X>,
        event: impl FnOnce(&E) -> Result<E2, X>,
    ) -> Result<Action<R2, E2>, X> {
        Ok(match self {
            Action::CreateRoom { version, public, name, topic } => Action::CreateRoom {
                version: *version,
                public: *public,
                name: name.clone(),
                topic: topic.clone(),
            },
            Action::Send { room: r, event_type, state_key, content } => Action::Send {
                room: room(r)?,
                event_type: event_type.clone(),
                state_key: state_key.clone(),
                content: content.clone(),
            },
            Action::Message { room: r, body } => {
                Action::Message { room: room(r)?, body: body.clone() }
            }
            Action::Invite { room: r, target } => {
                Action::Invite { room: room(r)?, target: target.clone() }
            }
            Action::Join { room: r, via } => Action::Join { room: room(r)?, via: via.clone() },
            Action::Leave { room: r, via } => Action::Leave { room: room(r)?, via: via.clone() },
            Action::Kick { room: r, target } => {
                Action::Kick { room: room(r)?, target: target.clone() }
            }
            Action::Ban { room: r, target } => {
                Action::Ban { room: room(r)?, target: target.clone() }
            }
            Action::Unban { room: r, target } => {
                Action::Unban { room: room(r)?, target: target.clone() }
            }
            Action::Knock { room: r, via } => Action::Knock { room: room(r)?, via: via.clone() },
            Action::Redact { room: r, event: e } => {
                Action::Redact { room: room(r)?, event: event(e)? }
            }
            Action::Upgrade { room: r, version } => {
                Action::Upgrade { room: room(r)?, version: *version }
            }
            Action::Power { room: r, target, level } => {
                Action::Power { room: room(r)?, target: target.clone(), level: *level }
            }
        })
    }
}

/// One line, the same for labels and ids: `join main`, `kick @bob:hs2 from main`,
/// `send m.room.topic/"" in !abc…`. The trace's `action` and `action_failed` records
/// use it.
impl<R: fmt::Display, E: fmt::Display> fmt::Display for Action<R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::CreateRoom { version, .. } => write!(f, "create_room (v{})", version.as_str()),
            Action::Send { room, event_type, state_key: None, .. } => {
                write!(f, "send {event_type} in {room}")
            }
            Action::Send { room, event_type, state_key: Some(key), .. } => {
                write!(f, "send {event_type}/{key:?} in {room}")
            }
            Action::Message { room, .. } => write!(f, "message in {room}"),
            Action::Invite { room, target } => write!(f, "invite {target} to {room}"),
            Action::Join { room, .. } => write!(f, "join {room}"),
            Action::Leave { room, .. } => write!(f, "leave {room}"),
            Action::Kick { room, target } => write!(f, "kick {target} from {room}"),
            Action::Ban { room, target } => write!(f, "ban {target} from {room}"),
            Action::Unban { room, target } => write!(f, "unban {target} in {room}"),
            Action::Knock { room, .. } => write!(f, "knock on {room}"),
            Action::Redact { room, event } => write!(f, "redact {event} in {room}"),
            Action::Upgrade { room, version } => {
                write!(f, "upgrade {room} to v{}", version.as_str())
            }
            Action::Power { room, target, level } => {
                write!(f, "set power of {target} to {level} in {room}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::EventId;

    type ByLabel = Action<String, String>;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in ActionKind::ALL {
            assert_eq!(ActionKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ActionKind::parse("dance"), None);
        let names: std::collections::BTreeSet<&str> =
            ActionKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), ActionKind::ALL.len(), "names are distinct");
    }

    #[test]
    fn naming_maps_rooms_and_events_and_stops_at_the_first_failure() {
        let redact: ByLabel = Action::Redact { room: "main".into(), event: "m1".into() };
        let named: Action<String, EventId> = redact
            .named(
                |r| Ok::<_, String>(format!("!{r}")),
                |e| EventId::parse(&format!("${e}")).map_err(|e| e.to_string()),
            )
            .unwrap();
        assert_eq!(
            named,
            Action::Redact { room: "!main".into(), event: EventId::parse("$m1").unwrap() }
        );
        let missing = redact.named::<String, String, _>(
            |r| Err(format!("room {r:?} does not exist")),
            |_| unreachable!("the room fails first"),
        );
        assert_eq!(missing, Err("room \"main\" does not exist".to_owned()));
        let create: ByLabel =
            Action::CreateRoom { version: RoomVersion::V12, public: true, name: None, topic: None };
        let named = create.named::<String, String, ()>(|_| Err(()), |_| Err(())).unwrap();
        assert_eq!(named.kind(), ActionKind::CreateRoom, "no room to name");
    }

    #[test]
    fn one_line_descriptions() {
        let cases: Vec<(ByLabel, &str)> = vec![
            (
                Action::CreateRoom {
                    version: RoomVersion::V11,
                    public: false,
                    name: None,
                    topic: None,
                },
                "create_room (v11)",
            ),
            (Action::Join { room: "main".into(), via: vec!["hs1".into()] }, "join main"),
            (
                Action::Kick { room: "main".into(), target: "@bob:hs2".into() },
                "kick @bob:hs2 from main",
            ),
            (
                Action::Send {
                    room: "main".into(),
                    event_type: "m.room.topic".into(),
                    state_key: Some(String::new()),
                    content: Object::new(),
                },
                "send m.room.topic/\"\" in main",
            ),
            (Action::Message { room: "main".into(), body: "hi".into() }, "message in main"),
            (Action::Redact { room: "main".into(), event: "m1".into() }, "redact m1 in main"),
            (
                Action::Power { room: "main".into(), target: "@bob:hs2".into(), level: 50 },
                "set power of @bob:hs2 to 50 in main",
            ),
        ];
        for (action, text) in cases {
            assert_eq!(action.to_string(), text);
        }
    }
}
