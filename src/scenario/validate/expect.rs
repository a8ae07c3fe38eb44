//! `[[expect]]`: what the run must show, one kind per table.

use std::ops::Range;

use toml::Spanned;

use super::{Builder, Pending, Result, span};
use crate::scenario::file::ExpectTable;
use crate::scenario::{ExpectWhat, Expectation, RoomInfo};

impl Builder<'_> {
    pub(super) fn expectation(
        &self,
        table: &Spanned<ExpectTable>,
        rooms: &[RoomInfo],
        pending: &[Pending],
    ) -> Result<Expectation> {
        let header = span(table);
        let t = table.get_ref();
        let room = self.label(&t.room, "room label")?;
        if !rooms.iter().any(|info| info.label == room) {
            return Err(self.error(span(&t.room), format!("unknown room label {room:?}")));
        }
        let kinds = [
            t.state.as_ref().map(span),
            t.conflicted.as_ref().map(span),
            t.rejected.as_ref().map(span),
            t.converged_by_ms.as_ref().map(span),
        ];
        let given: Vec<Range<usize>> = kinds.into_iter().flatten().collect();
        if given.len() != 1 {
            let at = given.get(1).cloned().unwrap_or(header);
            let problem = "an [[expect]] table needs exactly one of state, conflicted, rejected, converged_by_ms";
            return Err(self.error(at, problem));
        }
        let state_key = t.state_key.as_ref().map_or(String::new(), |k| k.get_ref().clone());
        let only_for_state = |field: Option<Range<usize>>, name: &str, allowed: bool| match field {
            Some(at) if !allowed => Err(self
                .error(at, format!("`{name}` applies to state and conflicted expectations only"))),
            _ => Ok(()),
        };
        let keyed = t.state.is_some() || t.conflicted.is_some();
        only_for_state(t.state_key.as_ref().map(span), "state_key", keyed)?;
        if let (Some(min), None) = (&t.events_min, &t.conflicted) {
            return Err(
                self.error(span(min), "`events_min` applies to conflicted expectations only")
            );
        }
        if let (Some(content), None) = (&t.content, &t.state) {
            return Err(self.error(span(content), "`content` applies to state expectations only"));
        }
        let event_type = |name: &Spanned<String>| -> Result<String> {
            if name.get_ref().is_empty() {
                return Err(self.error(span(name), "the event type is empty"));
            }
            Ok(name.get_ref().clone())
        };
        let what = if let Some(name) = &t.state {
            let content = match &t.content {
                Some(content) => Some(self.content(content)?),
                None => None,
            };
            ExpectWhat::State { event_type: event_type(name)?, state_key, content }
        } else if let Some(name) = &t.conflicted {
            let events_min = match &t.events_min {
                Some(n) if !(2..=1_000).contains(n.get_ref()) => {
                    return Err(self.error(span(n), "events_min must be 2 to 1000"));
                }
                Some(n) => *n.get_ref(),
                None => 2,
            };
            ExpectWhat::Conflicted { event_type: event_type(name)?, state_key, events_min }
        } else if let Some(label) = &t.rejected {
            let label_text = self.label(label, "label")?;
            let Some(step) =
                pending.iter().find(|p| p.step.label.as_deref() == Some(label_text.as_str()))
            else {
                return Err(self.error(span(label), format!("unknown label {label_text:?}")));
            };
            if step.step.room() != room {
                let problem = format!(
                    "label {label_text:?} names an event of room {:?}, not {room:?}",
                    step.step.room()
                );
                return Err(self.error(span(label), problem));
            }
            ExpectWhat::Rejected { label: label_text }
        } else {
            let at_ms = t.converged_by_ms.as_ref().expect("exactly one kind is given");
            ExpectWhat::ConvergedBy { at_ms: self.time(at_ms, "converged_by_ms")? }
        };
        Ok(Expectation { line: self.at.line_of(header.start), room, what })
    }
}
