//! `[[fault]]`: written tables converted to `net` faults (one each, a grouped
//! `link_override` included) and validated by `net::FaultSchedule`, each problem pointed at
//! the field that causes it.

use std::ops::Range;

use toml::Spanned;

use super::{Builder, Result, span};
use crate::net::{Fault, FaultSchedule, NodeName, ScheduleProblem};
use crate::scenario::TIME_MS_MAX;
use crate::scenario::file::FaultTable;

impl Builder<'_> {
    /// A `link_override`'s ends: `from` and `to` may each be a server, a list of servers
    /// or `"*"` (every server); the fault covers every directed link between them (a
    /// server's link to itself left out). Checked here to point at the field at fault.
    fn check_link_ends(&self, table: &Spanned<FaultTable>, fields: &toml::Table) -> Result<()> {
        if fields.get("type").and_then(toml::Value::as_str) != Some("link_override") {
            return Ok(());
        }
        for key in ["from", "to"] {
            let names = |items: &[toml::Value]| {
                !items.is_empty() && items.iter().all(|item| item.as_str().is_some())
            };
            match fields.get(key) {
                None | Some(toml::Value::String(_)) => {}
                Some(toml::Value::Array(items)) if names(items) => {
                    // Each listed name is a node's name ("*" only stands alone).
                    for name in items.iter().filter_map(toml::Value::as_str) {
                        if let Err(error) = NodeName::new(name) {
                            return Err(self.error(
                                field_span(table, &[key]),
                                format!("link_override fault: `{key}`: {error}"),
                            ));
                        }
                    }
                }
                Some(_) => {
                    return Err(self.error(
                        field_span(table, &[key]),
                        format!("link_override fault: `{key}` is a server, a non-empty list of servers, or \"*\""),
                    ));
                }
            }
        }
        Ok(())
    }

    pub(super) fn faults(&self, tables: &[Spanned<FaultTable>]) -> Result<FaultSchedule> {
        let mut faults = Vec::new();
        for table in tables {
            let fields: toml::Table = table
                .get_ref()
                .iter()
                .map(|(k, v)| (k.get_ref().clone(), v.get_ref().clone()))
                .collect();
            self.check_link_ends(table, &fields)?;
            let fault: Fault = toml::Value::Table(fields).try_into().map_err(|error| {
                let message = error.message().to_owned();
                // Point an unknown field at its key; anything else at the fault.
                let at = message
                    .strip_prefix("unknown field `")
                    .and_then(|rest| rest.split_once('`'))
                    .and_then(|(key, _)| table.get_ref().keys().find(|k| k.get_ref() == key))
                    .map_or(span(table), span);
                self.error(at, format!("fault: {message}"))
            })?;
            if fault.end().ms > TIME_MS_MAX {
                let problem = format!(
                    "end_ms ({}) is after the latest allowed time ({TIME_MS_MAX}, one week): a scenario's faults must heal",
                    fault.end().ms
                );
                return Err(self.error(field_span(table, &["end_ms"]), problem));
            }
            faults.push(fault);
        }
        let nodes = self
            .servers
            .iter()
            .map(|server| NodeName::new(&server.name).expect("server names are node names"))
            .collect();
        FaultSchedule::new(nodes, faults).map_err(|error| {
            let Some(fault) = error.fault else {
                return self.at.error_at_top(error.to_string());
            };
            let table = &tables[fault.index];
            let fields: &[&str] = match &error.problem {
                ScheduleProblem::EndBeforeStart { .. }
                | ScheduleProblem::TimeTooLarge { .. }
                | ScheduleProblem::EmptyNodeFault => &["end_ms"],
                ScheduleProblem::UnknownNode { name } => {
                    return self.error(
                        node_span(table, name.as_str()),
                        format!("{} fault: {}", fault.kind, error.problem),
                    );
                }
                ScheduleProblem::SelfLink { .. } => &["to", "b"],
                ScheduleProblem::NoGroups
                | ScheduleProblem::EmptyGroup { .. }
                | ScheduleProblem::NodeInTwoGroups { .. } => &["groups"],
                ScheduleProblem::FlapShape { .. } => &["down_for_ms"],
                ScheduleProblem::SkewTooLarge { .. } => &["offset_ms"],
                ScheduleProblem::Policy(_) => &["policy", "extra_delay_ms"],
                ScheduleProblem::NodeFaultsOverlap { .. } => &["start_ms"],
                ScheduleProblem::NoLink => &[],
                ScheduleProblem::TooManyNodes { .. }
                | ScheduleProblem::DuplicateNode { .. }
                | ScheduleProblem::TooManyFaults { .. } => &[],
            };
            let problem = match &error.problem {
                ScheduleProblem::NodeFaultsOverlap { node, other } => format!(
                    "node {node} is already crashed or paused then, by the fault at line {}",
                    self.at.line_of(span(&tables[*other]).start)
                ),
                problem => problem.to_string(),
            };
            self.error(field_span(table, fields), format!("{} fault: {problem}", fault.kind))
        })
    }
}

/// The position of the first of `fields` present in a fault table, else the table's.
fn field_span(table: &Spanned<FaultTable>, fields: &[&str]) -> Range<usize> {
    fields.iter().find_map(|field| table.get_ref().get(*field)).map_or(span(table), span)
}

/// The position of the field of a fault table that names `node`.
fn node_span(table: &Spanned<FaultTable>, node: &str) -> Range<usize> {
    fn names(value: &toml::Value, node: &str) -> bool {
        match value {
            toml::Value::String(text) => text == node,
            toml::Value::Array(items) => items.iter().any(|item| names(item, node)),
            _ => false,
        }
    }
    table
        .get_ref()
        .iter()
        .find(|(key, value)| key.get_ref() != "type" && names(value.get_ref(), node))
        .map_or(span(table), |(_, value)| span(value))
}
