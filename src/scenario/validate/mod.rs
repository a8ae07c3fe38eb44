//! From the written form ([`super::file`]) to a validated [`Scenario`]: names, users and
//! rooms resolved, `[[room]]` and `[[server_group]]` expanded, steps sorted by time and
//! checked in that order (a room exists before it is used, a redaction names an earlier
//! event), faults converted and validated by `net`, every problem mapped to the TOML
//! position that causes it.

mod config;
mod expect;
mod faults;
mod names;
mod order;
mod rooms;
mod servers;
mod settle;
mod steps;
mod workloads;

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use crate::matrix::action::Action;
use crate::net::NetConfig;
use crate::scenario::error::{Locator, ScenarioError};
use crate::scenario::file::{self, ExpectTable, File, SettleTable, WorkloadTable};
use crate::scenario::{
    EXPECTATIONS_MAX, Expectation, Invariant, QUIET_MS_DEFAULT, RoomInfo, STEPS_MAX, Scenario,
    ServerConfig, ServerSpec, Step, WORKLOADS_MAX, Workload,
};

type Result<T> = std::result::Result<T, ScenarioError>;

/// Reads and validates a scenario. `file` names the text in error messages only.
pub fn parse(file: &str, text: &str) -> Result<Scenario> {
    let at = Locator { file, text };
    let raw: File = toml::from_str(text).map_err(|error| match error.span() {
        Some(span) => at.error(span, error.message()),
        None => at.error_at_top(error.message()),
    })?;
    let builder = Builder {
        at,
        servers: Vec::new(),
        user_server: BTreeMap::new(),
        room_members: BTreeMap::new(),
    };
    let scenario = builder.build(raw)?;
    assert!(scenario.steps.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    assert!(scenario.check.liveness_bound_ms <= scenario.quiet_ms);
    Ok(scenario)
}

/// A step and where it was written, kept until the ordered checks are done.
struct Pending {
    step: Step,
    /// The `[[step]]` or `[[room]]` header.
    span: Range<usize>,
    /// Where the room label is written.
    room_span: Range<usize>,
    /// Where the step's label is written.
    label_span: Range<usize>,
    /// Where `redacts` or `new_room` is written.
    detail_span: Range<usize>,
}

struct Builder<'a> {
    at: Locator<'a>,
    servers: Vec<ServerSpec>,
    /// Each declared user's server.
    user_server: BTreeMap<String, String>,
    /// The joined members a `[[room]]` set up, creator first, for workload defaults.
    room_members: BTreeMap<String, Vec<String>>,
}

fn span<T>(value: &Spanned<T>) -> Range<usize> {
    value.span()
}

impl Builder<'_> {
    fn error(&self, span: Range<usize>, problem: impl Into<String>) -> ScenarioError {
        self.at.error(span, problem)
    }

    /// The sections in the order their checks run: servers, then the steps of `[[room]]`
    /// and `[[step]]` tables checked in time order, workloads, faults, settling rounds,
    /// the network, the quiet period, `[check]`, `[server_config]`, `[[expect]]`.
    fn build(mut self, raw: File) -> Result<Scenario> {
        let name = self.scenario_name(&raw.name)?;
        self.servers_of(&raw)?;
        let mut pending = self.scripted_steps(&raw)?;
        let rooms = self.check_order(&mut pending)?;
        let workloads = self.workloads(&raw.workload, &rooms, &pending)?;
        let faults = self.faults(&raw.fault)?;
        // Settling rounds come after everything else, so they go last in time order.
        let busy = pending
            .iter()
            .map(|p| p.step.at_ms)
            .chain(workloads.iter().map(|w| w.end_ms))
            .chain([faults.healed_at().ms])
            .max()
            .unwrap_or(0);
        let settle_steps = self.settle_steps(&raw.settle, &rooms, busy)?;
        let network = self.network(raw.network)?;
        let quiet_ms = match &raw.quiet_ms {
            Some(quiet) => {
                self.duration(quiet, "quiet_ms")?;
                *quiet.get_ref()
            }
            None => QUIET_MS_DEFAULT,
        };
        let mut check = self.check(raw.check.as_ref(), quiet_ms, raw.quiet_ms.as_ref())?;
        let listed = raw.check.as_ref().is_some_and(|t| t.get_ref().invariants.is_some());
        let linearized = pending.iter().any(|p| {
            matches!(&p.step.action, Action::CreateRoom { version, .. } if version.rules().lpdus)
        });
        if linearized && !listed {
            check.invariants.push(Invariant::Linearized);
        }
        let server_config = self.shared_server_config(raw.server_config.as_ref())?;
        let expectations = self.expectations(&raw.expect, &rooms, &pending)?;

        Ok(Scenario {
            name,
            description: raw.description,
            servers: self.servers,
            rooms,
            steps: pending.into_iter().map(|p| p.step).chain(settle_steps).collect(),
            workloads,
            network,
            faults,
            quiet_ms,
            check,
            server_config,
            expectations,
        })
    }

    /// The scenario's name, which is a directory under `reports/`.
    fn scenario_name(&self, written: &Spanned<String>) -> Result<String> {
        let name = self.label(written, "scenario name")?;
        // The name is a directory under `reports/`: `.` and `..` would write elsewhere.
        if name.bytes().all(|b| b == b'.') && name.len() <= 2 {
            let problem = format!(
                "bad scenario name {name:?}: the name is a directory of reports/, so it may not be \".\" or \"..\""
            );
            return Err(self.error(span(written), problem));
        }
        Ok(name)
    }

    /// `[[server]]` tables, then `[[server_group]]`s; at least one server.
    fn servers_of(&mut self, raw: &File) -> Result<()> {
        for table in &raw.server {
            self.server(table)?;
        }
        for group in &raw.server_group {
            self.server_group(group)?;
        }
        if self.servers.is_empty() {
            return Err(self.error(span(&raw.name), "a scenario needs at least one [[server]]"));
        }
        Ok(())
    }

    /// The steps of `[[room]]` and `[[step]]` tables, sorted by time.
    fn scripted_steps(&mut self, raw: &File) -> Result<Vec<Pending>> {
        let mut pending = Vec::new();
        for room in &raw.room {
            pending.extend(self.room(room)?);
        }
        for table in &raw.step {
            pending.push(self.step(table)?);
        }
        if pending.len() > STEPS_MAX {
            let problem = format!("{} steps, more than the limit of {STEPS_MAX}", pending.len());
            return Err(self.at.error_at_top(problem));
        }
        // Stable: on equal times, the written order (rooms first) is kept.
        pending.sort_by_key(|p| p.step.at_ms);
        Ok(pending)
    }

    fn workloads(
        &self,
        tables: &[Spanned<WorkloadTable>],
        rooms: &[RoomInfo],
        pending: &[Pending],
    ) -> Result<Vec<Workload>> {
        if tables.len() > WORKLOADS_MAX {
            let problem = format!("more than {WORKLOADS_MAX} workloads");
            return Err(self.error(span(&tables[WORKLOADS_MAX]), problem));
        }
        let mut workloads = Vec::new();
        for table in tables {
            workloads.push(self.workload(table, rooms, pending)?);
        }
        Ok(workloads)
    }

    /// Every `[[settle]]` table's rounds, in time order, starting after `busy`.
    fn settle_steps(
        &self,
        tables: &[Spanned<SettleTable>],
        rooms: &[RoomInfo],
        busy: u64,
    ) -> Result<Vec<Step>> {
        let mut settle_steps = Vec::new();
        for table in tables {
            settle_steps.extend(self.settle(table, rooms, busy)?);
        }
        settle_steps.sort_by_key(|step| step.at_ms);
        Ok(settle_steps)
    }

    /// `[network]`, checked by `net`.
    fn network(&self, written: Option<Spanned<NetConfig>>) -> Result<NetConfig> {
        Ok(match written {
            Some(network) => {
                let checked = network.get_ref().check();
                checked.map_err(|problem| self.error(span(&network), problem.to_string()))?;
                network.into_inner()
            }
            None => NetConfig::default(),
        })
    }

    /// `[server_config]`, and every server's own settings laid over it.
    fn shared_server_config(
        &mut self,
        written: Option<&Spanned<file::ServerConfigTable>>,
    ) -> Result<ServerConfig> {
        let server_config = match written {
            Some(table) => self.server_config(table.get_ref())?,
            None => ServerConfig::default(),
        };
        // A server's own settings go over the shared ones, field by field.
        for server in &mut self.servers {
            if let Some(own) = server.config {
                server.config = Some(server_config.overlaid(own));
            }
        }
        Ok(server_config)
    }

    fn expectations(
        &self,
        tables: &[Spanned<ExpectTable>],
        rooms: &[RoomInfo],
        pending: &[Pending],
    ) -> Result<Vec<Expectation>> {
        if tables.len() > EXPECTATIONS_MAX {
            let problem = format!("more than {EXPECTATIONS_MAX} [[expect]] tables");
            return Err(self.error(span(&tables[EXPECTATIONS_MAX]), problem));
        }
        let mut expectations = Vec::new();
        for table in tables {
            expectations.push(self.expectation(table, rooms, pending)?);
        }
        Ok(expectations)
    }
}
