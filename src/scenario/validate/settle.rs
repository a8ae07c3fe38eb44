//! `[[settle]]`: rounds of messages (and optionally one round of rejoins) after everything
//! else, so that servers that missed events hear of them.

use toml::Spanned;

use super::{Builder, Result, span};
use crate::scenario::file;
use crate::scenario::{
    RoomInfo, SETTLE_AFTER_MS_DEFAULT, SETTLE_REJOIN_RETRIES, SETTLE_ROUNDS_DEFAULT,
    SETTLE_ROUNDS_MAX, SETTLE_SPACING_MS_DEFAULT, Step, StepAction, StepExpect, TIME_MS_MAX,
};

impl Builder<'_> {
    /// `[[settle]]`: rounds of one message from each user, after the last step, workload
    /// and fault. Matrix servers learn of events they missed only when a later event
    /// refers to them, so a quiet room after a heal need not converge; these rounds are the
    /// traffic that lets gap filling finish (docs/scenarios.md).
    pub(super) fn settle(
        &self,
        table: &Spanned<file::SettleTable>,
        rooms: &[RoomInfo],
        busy: u64,
    ) -> Result<Vec<Step>> {
        let t = table.get_ref();
        let room = self.label(&t.room, "room label")?;
        if !rooms.iter().any(|info| info.label == room) {
            return Err(self.error(span(&t.room), format!("unknown room label {room:?}")));
        }
        let mut users = Vec::new();
        for user in &t.users {
            users.push(self.known_user(user)?);
        }
        if t.users.is_empty() {
            for server in &self.servers {
                for user in &server.users {
                    users.push((user.clone(), server.name.clone()));
                }
            }
        }
        let after = match &t.after_ms {
            Some(ms) => self.duration(ms, "after_ms")?,
            None => SETTLE_AFTER_MS_DEFAULT,
        };
        let spacing = match &t.spacing_ms {
            Some(ms) => self.duration(ms, "spacing_ms")?,
            None => SETTLE_SPACING_MS_DEFAULT,
        };
        let rounds = match &t.rounds {
            Some(n) if *n.get_ref() == 0 || *n.get_ref() > SETTLE_ROUNDS_MAX => {
                let problem = format!("rounds must be 1 to {SETTLE_ROUNDS_MAX}");
                return Err(self.error(span(n), problem));
            }
            Some(n) => *n.get_ref(),
            None => SETTLE_ROUNDS_DEFAULT,
        };
        let count = u64::try_from(users.len()).unwrap_or(u64::MAX);
        // `rejoin`: one round of joins first, so that users who left or were kicked come
        // back (a join by a user who is still joined makes no event; a banned user's
        // join fails and is recorded). The message rounds follow one spacing later.
        let joins = t.rejoin.then_some(None);
        let messages = (0..rounds).map(Some);
        let line = self.at.line_of(span(table).start);
        let mut steps = Vec::new();
        for (slot, round) in (0u64..).zip(joins.into_iter().chain(messages)) {
            let start = busy + after + slot * spacing;
            for (i, (user, server)) in (0u64..).zip(&users) {
                let at_ms = start + i * spacing / count.max(1);
                if at_ms > TIME_MS_MAX {
                    return Err(self.error(span(table), "settling rounds end after one week"));
                }
                let (action, retries) = match round {
                    None => (
                        StepAction::Join { room: room.clone(), via: Vec::new() },
                        SETTLE_REJOIN_RETRIES,
                    ),
                    Some(round) => {
                        let body = format!("settle {round}");
                        (StepAction::Message { room: room.clone(), body }, 0)
                    }
                };
                let (server, user) = (server.clone(), user.clone());
                let expect = StepExpect::Any;
                steps.push(Step {
                    at_ms,
                    server,
                    user,
                    action,
                    new_room: None,
                    label: None,
                    line,
                    expect,
                    retries,
                });
            }
        }
        Ok(steps)
    }
}
