//! From the written form ([`super::file`]) to a validated [`Scenario`]: names, users and
//! rooms resolved, `[[room]]` and `[[server_group]]` expanded, steps sorted by time and
//! checked in that order (a room exists before it is used, a redaction names an earlier
//! event), faults converted and validated by `net`, every problem mapped to the TOML
//! position that causes it.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde_json::{Map, Value};
use toml::Spanned;

use crate::net::{Fault, FaultSchedule, NodeName, ScheduleProblem};
use crate::scenario::error::{Locator, ScenarioError};
use crate::scenario::file::{
    self, ExpectTable, FaultTable, File, RoomTable, StepTable, WorkloadTable,
};
use crate::scenario::{
    CheckConfig, DURATION_MS_MAX, EXPECTATIONS_MAX, ExpectWhat, Expectation, Invariant,
    LABEL_BYTES_MAX, LIVENESS_BOUND_MS_DEFAULT, Mix, QUIET_MS_DEFAULT, ROOM_VERSION_DEFAULT,
    ROOM_VERSIONS, RoomInfo, SERVERS_MAX, SETTLE_AFTER_MS_DEFAULT, SETTLE_REJOIN_RETRIES,
    SETTLE_ROUNDS_DEFAULT, SETTLE_ROUNDS_MAX, SETTLE_SPACING_MS_DEFAULT, STEP_RETRIES_MAX,
    STEPS_MAX, Scenario, ServerConfig, ServerSpec, Step, StepAction, StepExpect, TIME_MS_MAX,
    USERS_MAX, USERS_PER_SERVER_MAX, WORKLOAD_ACTIONS_MAX, WORKLOADS_MAX, Workload,
};

/// The largest magnitude of an integer in canonical JSON (and so in event content and
/// power levels): 2^53 - 1.
const JSON_INT_MAX: i64 = (1 << 53) - 1;
/// The largest weight of one kind of workload action.
const WEIGHT_MAX: u64 = 1_000_000;
/// Default gap between the phases of a `[[room]]` setup.
const SETUP_SPACING_MS_DEFAULT: u64 = 1_000;

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

/// What a step's action needs and allows, by the `action` name.
const ACTION_FIELDS: &[(&str, &[&str], &[&str])] = &[
    // (action, required fields, optional fields)
    ("create_room", &["room"], &["version", "public", "name", "topic"]),
    ("send", &["room", "event_type"], &["state_key", "content"]),
    ("message", &["room", "body"], &[]),
    ("invite", &["room", "target"], &[]),
    ("join", &["room"], &["via"]),
    ("leave", &["room"], &["via"]),
    ("kick", &["room", "target"], &[]),
    ("ban", &["room", "target"], &[]),
    ("unban", &["room", "target"], &[]),
    ("knock", &["room"], &["via"]),
    ("redact", &["room", "redacts"], &[]),
    ("upgrade", &["room", "version", "new_room"], &[]),
    ("power", &["room", "target", "level"], &[]),
];

fn span<T>(value: &Spanned<T>) -> Range<usize> {
    value.span()
}

impl Builder<'_> {
    fn error(&self, span: Range<usize>, problem: impl Into<String>) -> ScenarioError {
        self.at.error(span, problem)
    }

    fn build(mut self, raw: File) -> Result<Scenario> {
        let name = self.label(&raw.name, "scenario name")?;
        // The name is a directory under `reports/`: `.` and `..` would write elsewhere.
        if name.bytes().all(|b| b == b'.') && name.len() <= 2 {
            let problem = format!(
                "bad scenario name {name:?}: the name is a directory of reports/, so it may not be \".\" or \"..\""
            );
            return Err(self.error(span(&raw.name), problem));
        }
        for table in &raw.server {
            self.server(table)?;
        }
        for group in &raw.server_group {
            self.server_group(group)?;
        }
        if self.servers.is_empty() {
            return Err(self.error(span(&raw.name), "a scenario needs at least one [[server]]"));
        }

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
        let rooms = self.check_order(&mut pending)?;

        if raw.workload.len() > WORKLOADS_MAX {
            let problem = format!("more than {WORKLOADS_MAX} workloads");
            return Err(self.error(span(&raw.workload[WORKLOADS_MAX]), problem));
        }
        let mut workloads = Vec::new();
        for table in &raw.workload {
            workloads.push(self.workload(table, &rooms, &pending)?);
        }

        let faults = self.faults(&raw.fault)?;
        // Settling rounds come after everything else, so they go last in time order.
        let busy = pending
            .iter()
            .map(|p| p.step.at_ms)
            .chain(workloads.iter().map(|w| w.end_ms))
            .chain([faults.healed_at().ms])
            .max()
            .unwrap_or(0);
        let mut settle_steps = Vec::new();
        for table in &raw.settle {
            settle_steps.extend(self.settle(table, &rooms, busy)?);
        }
        settle_steps.sort_by_key(|step| step.at_ms);
        let network = match raw.network {
            Some(network) => {
                let checked = network.get_ref().check();
                checked.map_err(|problem| self.error(span(&network), problem.to_string()))?;
                network.into_inner()
            }
            None => crate::net::NetConfig::default(),
        };

        let quiet_ms = match &raw.quiet_ms {
            Some(quiet) => {
                self.duration(quiet, "quiet_ms")?;
                *quiet.get_ref()
            }
            None => QUIET_MS_DEFAULT,
        };
        let check = self.check(raw.check.as_ref(), quiet_ms, raw.quiet_ms.as_ref())?;
        let server_config = match &raw.server_config {
            Some(table) => self.server_config(table.get_ref())?,
            None => ServerConfig::default(),
        };
        // A server's own settings go over the shared ones, field by field.
        for server in &mut self.servers {
            if let Some(own) = server.config {
                server.config = Some(server_config.overlaid(own));
            }
        }
        if raw.expect.len() > EXPECTATIONS_MAX {
            let problem = format!("more than {EXPECTATIONS_MAX} [[expect]] tables");
            return Err(self.error(span(&raw.expect[EXPECTATIONS_MAX]), problem));
        }
        let mut expectations = Vec::new();
        for table in &raw.expect {
            expectations.push(self.expectation(table, &rooms, &pending)?);
        }

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

    // --- Names --------------------------------------------------------------------------

    /// A scenario name, step label or room label: `[A-Za-z0-9._-]`, 1 to 64 bytes.
    fn label(&self, text: &Spanned<String>, what: &str) -> Result<String> {
        let value = text.get_ref();
        let ok = !value.is_empty()
            && value.len() <= LABEL_BYTES_MAX
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !ok {
            let problem = format!(
                "bad {what} {value:?}: use 1 to {LABEL_BYTES_MAX} characters of A-Z a-z 0-9 . _ -"
            );
            return Err(self.error(span(text), problem));
        }
        Ok(value.clone())
    }

    /// Declares a server, checking its name and that it is new.
    fn add_server(&mut self, name: &str, at: Range<usize>) -> Result<()> {
        if let Err(problem) = check_server_name(name) {
            return Err(self.error(at, format!("bad server name {name:?}: {problem}")));
        }
        if self.servers.iter().any(|server| server.name == name) {
            return Err(self.error(at, format!("server {name} is declared twice")));
        }
        if self.servers.len() == SERVERS_MAX {
            return Err(self.error(at, format!("more than {SERVERS_MAX} servers")));
        }
        self.servers.push(ServerSpec { name: name.to_owned(), users: Vec::new(), config: None });
        Ok(())
    }

    /// Adds a user (a localpart or a full id on `server`) to the last declared server.
    fn add_user(&mut self, server: &str, user: &Spanned<String>) -> Result<()> {
        let written = user.get_ref();
        let id =
            if written.starts_with('@') { written.clone() } else { format!("@{written}:{server}") };
        let Some((localpart, on)) = id[1..].split_once(':') else {
            return Err(self.error(span(user), format!("bad user id {written:?}: no ':'")));
        };
        if !is_strict_localpart(localpart) {
            let problem =
                format!("bad user {written:?}: a localpart uses only a-z 0-9 . _ = - / +");
            return Err(self.error(span(user), problem));
        }
        if on != server {
            let problem = format!("user {id} does not belong to server {server}");
            return Err(self.error(span(user), problem));
        }
        if self.user_server.contains_key(&id) {
            return Err(self.error(span(user), format!("user {id} is declared twice")));
        }
        if self.user_server.len() == USERS_MAX {
            return Err(self.error(span(user), format!("more than {USERS_MAX} users")));
        }
        let spec = self.servers.last_mut().unwrap();
        assert_eq!(spec.name, server);
        if spec.users.len() == USERS_PER_SERVER_MAX {
            let problem = format!("more than {USERS_PER_SERVER_MAX} users on server {server}");
            return Err(self.error(span(user), problem));
        }
        spec.users.push(id.clone());
        self.user_server.insert(id, server.to_owned());
        Ok(())
    }

    fn server(&mut self, table: &Spanned<file::ServerTable>) -> Result<()> {
        let table = table.get_ref();
        let name = table.name.get_ref();
        self.add_server(name, span(&table.name))?;
        for user in &table.users {
            self.add_user(name, user)?;
        }
        if let Some(config) = &table.config {
            let config = self.server_config(config.get_ref())?;
            self.servers.last_mut().expect("just added").config = Some(config);
        }
        Ok(())
    }

    fn server_group(&mut self, group: &Spanned<file::ServerGroupTable>) -> Result<()> {
        let group = group.get_ref();
        let count = *group.count.get_ref();
        if count == 0 || count > SERVERS_MAX as u64 {
            let problem = format!("count must be 1 to {SERVERS_MAX}, not {count}");
            return Err(self.error(span(&group.count), problem));
        }
        for number in group.first..group.first.saturating_add(count) {
            let name = format!("{}{number}", group.prefix.get_ref());
            self.add_server(&name, span(&group.prefix))?;
            for user in &group.users {
                if user.get_ref().starts_with('@') {
                    let problem = "a server group's users are localparts, such as \"alice\"";
                    return Err(self.error(span(user), problem));
                }
                self.add_user(&name, user)?;
            }
            if let Some(config) = &group.config {
                let config = self.server_config(config.get_ref())?;
                self.servers.last_mut().expect("just added").config = Some(config);
            }
        }
        Ok(())
    }

    /// A user id that the scenario declares, and its server.
    fn known_user(&self, user: &Spanned<String>) -> Result<(String, String)> {
        match self.user_server.get(user.get_ref()) {
            Some(server) => Ok((user.get_ref().clone(), server.clone())),
            None => {
                let problem = format!(
                    "unknown user {:?}: users are full ids declared under [[server]] or [[server_group]], such as \"@alice:hs1\"",
                    user.get_ref()
                );
                Err(self.error(span(user), problem))
            }
        }
    }

    fn known_server(&self, server: &Spanned<String>) -> Result<String> {
        if self.servers.iter().any(|s| &s.name == server.get_ref()) {
            return Ok(server.get_ref().clone());
        }
        Err(self.error(span(server), format!("unknown server {:?}", server.get_ref())))
    }

    fn room_version(&self, version: Option<&Spanned<String>>) -> Result<String> {
        let Some(version) = version else { return Ok(ROOM_VERSION_DEFAULT.to_owned()) };
        if !ROOM_VERSIONS.contains(&version.get_ref().as_str()) {
            let problem = format!(
                "unknown room version {:?}: mxsim supports {}",
                version.get_ref(),
                ROOM_VERSIONS.join(", ")
            );
            return Err(self.error(span(version), problem));
        }
        Ok(version.get_ref().clone())
    }

    fn time(&self, at_ms: &Spanned<u64>, field: &str) -> Result<u64> {
        let ms = *at_ms.get_ref();
        if ms > TIME_MS_MAX {
            let problem = format!(
                "{field} ({ms}) is after the latest allowed time ({TIME_MS_MAX}, one week)"
            );
            return Err(self.error(span(at_ms), problem));
        }
        Ok(ms)
    }

    fn duration(&self, ms: &Spanned<u64>, field: &str) -> Result<u64> {
        let value = *ms.get_ref();
        if value > DURATION_MS_MAX {
            let problem =
                format!("{field} ({value}) is above the limit of {DURATION_MS_MAX} (one day)");
            return Err(self.error(span(ms), problem));
        }
        Ok(value)
    }

    fn power_level(&self, level: &Spanned<i64>) -> Result<i64> {
        let value = *level.get_ref();
        if value.unsigned_abs() > JSON_INT_MAX.unsigned_abs() {
            let problem = format!("power level {value} is beyond ±{JSON_INT_MAX} (canonical JSON)");
            return Err(self.error(span(level), problem));
        }
        Ok(value)
    }

    // --- [[room]] -----------------------------------------------------------------------

    /// Expands a `[[room]]`: create at `at_ms`; invites one spacing later; joins two
    /// spacings later, member `i` after `i` staggers; power levels one spacing after the
    /// last join.
    fn room(&mut self, table: &Spanned<RoomTable>) -> Result<Vec<Pending>> {
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

        let mut members: Vec<String> = Vec::new();
        let everyone = room.members.len() == 1 && room.members[0].get_ref() == "*";
        if everyone {
            // Declaration order: servers as declared, users as listed.
            members = self
                .servers
                .iter()
                .flat_map(|s| s.users.iter())
                .filter(|u| **u != creator)
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

        let line = self.at.line_of(header.start);
        let make = |at_ms: u64, user: &str, action: StepAction| Pending {
            step: Step {
                at_ms,
                server: self.user_server[user].clone(),
                user: user.to_owned(),
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
                room: label.clone(),
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

    // --- [[step]] -----------------------------------------------------------------------

    fn step(&self, table: &Spanned<StepTable>) -> Result<Pending> {
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
        let kind = t.action.get_ref().as_str();
        let Some((_, required, optional)) = ACTION_FIELDS.iter().find(|(name, _, _)| *name == kind)
        else {
            let names: Vec<&str> = ACTION_FIELDS.iter().map(|(name, _, _)| *name).collect();
            let problem = format!("unknown action {kind:?}, expected one of {}", names.join(", "));
            return Err(self.error(span(&t.action), problem));
        };
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
                    let problem = format!("action {kind:?} needs `{field}`");
                    return Err(self.error(span(&t.action), problem));
                }
                continue;
            };
            if !required.contains(&field) && !optional.contains(&field) {
                let mut takes: Vec<&str> = required.to_vec();
                takes.extend(optional.iter());
                let problem = format!(
                    "`{field}` does not apply to action {kind:?} (it takes {})",
                    takes.join(", ")
                );
                return Err(self.error(at, problem));
            }
        }

        // Every required field is present from here on.
        let room_field = t.room.as_ref().unwrap();
        let room = self.label(room_field, "room label")?;
        let text = |field: &Option<Spanned<String>>| field.as_ref().unwrap().get_ref().clone();
        let target = || self.known_user(t.target.as_ref().unwrap()).map(|(id, _)| id);
        let via = || -> Result<Vec<String>> {
            let Some(list) = &t.via else { return Ok(Vec::new()) };
            list.get_ref().iter().map(|server| self.known_server(server)).collect()
        };
        let action = match kind {
            "create_room" => StepAction::CreateRoom {
                room,
                version: self.room_version(t.version.as_ref())?,
                public: t.public.as_ref().is_some_and(|p| *p.get_ref()),
                name: t.name.as_ref().map(|n| n.get_ref().clone()),
                topic: t.topic.as_ref().map(|n| n.get_ref().clone()),
            },
            "send" => {
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
            "message" => StepAction::Message { room, body: text(&t.body) },
            "invite" => StepAction::Invite { room, target: target()? },
            "join" => StepAction::Join { room, via: via()? },
            "leave" => StepAction::Leave { room, via: via()? },
            "kick" => StepAction::Kick { room, target: target()? },
            "ban" => StepAction::Ban { room, target: target()? },
            "unban" => StepAction::Unban { room, target: target()? },
            "knock" => StepAction::Knock { room, via: via()? },
            "redact" => StepAction::Redact {
                room,
                target_label: self.label(t.redacts.as_ref().unwrap(), "label")?,
            },
            "upgrade" => StepAction::Upgrade {
                room,
                version: self.room_version(t.version.as_ref())?,
                new_room: self.label(t.new_room.as_ref().unwrap(), "room label")?,
            },
            "power" => StepAction::Power {
                room,
                target: target()?,
                level: self.power_level(t.level.as_ref().unwrap())?,
            },
            _ => unreachable!("action {kind} is in ACTION_FIELDS"),
        };
        let label = match &t.label {
            Some(label) => Some(self.label(label, "label")?),
            None => None,
        };
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
        let retries = match &t.retries {
            None => 0,
            Some(r) if !matches!(kind, "join" | "leave" | "knock" | "invite") => {
                let problem = format!(
                    "`retries` applies to join, leave, knock and invite, not to action {kind:?}"
                );
                return Err(self.error(span(r), problem));
            }
            Some(r) if *r.get_ref() > STEP_RETRIES_MAX => {
                let problem = format!("retries must be 0 to {STEP_RETRIES_MAX}");
                return Err(self.error(span(r), problem));
            }
            Some(r) => *r.get_ref(),
        };
        let detail = t.redacts.as_ref().or(t.new_room.as_ref()).map_or(header.clone(), span);
        let line = self.at.line_of(header.start);
        Ok(Pending {
            step: Step { at_ms, server, user, action, label, line, expect, retries },
            span: header.clone(),
            room_span: span(room_field),
            label_span: t.label.as_ref().map_or(header, span),
            detail_span: detail,
        })
    }

    /// Event content: TOML values as JSON, refusing what canonical JSON cannot hold.
    fn content(
        &self,
        content: &Spanned<BTreeMap<String, Spanned<toml::Value>>>,
    ) -> Result<Map<String, Value>> {
        let mut out = Map::new();
        for (key, value) in content.get_ref() {
            let json = to_json(value.get_ref())
                .map_err(|problem| self.error(span(value), format!("content.{key}: {problem}")))?;
            out.insert(key.clone(), json);
        }
        Ok(out)
    }

    // --- Ordered checks -----------------------------------------------------------------

    /// Checks the sorted steps in order: room labels and event labels are unique, a room
    /// is used only after the step that creates it, a redaction names an earlier event of
    /// the same room. Fills in default `via`s. Returns the rooms in creation order.
    fn check_order(&self, pending: &mut [Pending]) -> Result<Vec<RoomInfo>> {
        // Every room and event label first, so that "used before created" and "unknown"
        // can be told apart.
        let mut created: BTreeMap<String, usize> = BTreeMap::new();
        let mut rooms: Vec<RoomInfo> = Vec::new();
        let mut labels: BTreeMap<String, usize> = BTreeMap::new();
        for (index, p) in pending.iter().enumerate() {
            let new = match &p.step.action {
                StepAction::CreateRoom { room, version, .. } => Some((room, version, &p.room_span)),
                StepAction::Upgrade { new_room, version, .. } => {
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
                rooms.push(RoomInfo { label: room.clone(), server, version: version.clone() });
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
        for index in 0..pending.len() {
            let p = &pending[index];
            let room = p.step.action.room();
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
            if let StepAction::Redact { target_label, .. } = &p.step.action {
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
                let target_room = other.step.action.room();
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
            if let StepAction::Join { via, .. }
            | StepAction::Leave { via, .. }
            | StepAction::Knock { via, .. } = &mut p.step.action
            {
                if via.is_empty() && p.step.server != home {
                    via.push(home);
                }
            }
        }
        Ok(rooms)
    }

    // --- [[workload]] -------------------------------------------------------------------

    /// `[[settle]]`: rounds of one message from each user, after the last step, workload
    /// and fault. Matrix servers learn of events they missed only when a later event
    /// refers to them, so a quiet room after a heal need not converge; these rounds are the
    /// traffic that lets gap filling finish (docs/scenarios.md).
    fn settle(
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
                    label: None,
                    line,
                    expect,
                    retries,
                });
            }
        }
        Ok(steps)
    }

    fn workload(
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
            .find(|p| match &p.step.action {
                StepAction::CreateRoom { room: r, .. }
                | StepAction::Upgrade { new_room: r, .. } => *r == room,
                _ => false,
            })
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
            users = match self.room_members.get(&room) {
                Some(members) => members.clone(),
                None => self.servers.iter().flat_map(|s| s.users.iter().cloned()).collect(),
            };
        }
        if users.is_empty() {
            return Err(self.error(header, "the workload has no users"));
        }
        let mut via = Vec::new();
        for server in &w.via {
            via.push(self.known_server(server)?);
        }
        if via.is_empty() {
            via.push(info.server.clone());
        }
        let mix = match &w.mix {
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
        let line = self.at.line_of(header.start);
        Ok(Workload { room, start_ms, end_ms, users, via, interval_ms, mix, line })
    }

    // --- [[expect]] ---------------------------------------------------------------------

    fn expectation(
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
            if step.step.action.room() != room {
                let problem = format!(
                    "label {label_text:?} names an event of room {:?}, not {room:?}",
                    step.step.action.room()
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

    // --- [[fault]] ----------------------------------------------------------------------

    /// The `link_override` tables of one written table: `from` and `to` may each be a
    /// server, a list of servers or `"*"` (every server), which stands for one override
    /// per directed link between them (a server's link to itself left out).
    fn link_groups(
        &self,
        table: &Spanned<FaultTable>,
        fields: toml::Table,
    ) -> Result<Vec<toml::Table>> {
        let is_override = fields.get("type").and_then(toml::Value::as_str) == Some("link_override");
        let grouped =
            |key: &str| fields.get(key).is_some_and(|v| v.is_array() || v.as_str() == Some("*"));
        if !is_override || !(grouped("from") || grouped("to")) {
            return Ok(vec![fields]);
        }
        let names = |key: &str| -> Result<Vec<String>> {
            match fields.get(key) {
                Some(toml::Value::String(all)) if all == "*" => {
                    Ok(self.servers.iter().map(|s| s.name.clone()).collect())
                }
                Some(toml::Value::String(one)) => Ok(vec![one.clone()]),
                Some(toml::Value::Array(items)) if !items.is_empty() => items
                    .iter()
                    .map(|item| {
                        item.as_str().map(str::to_owned).ok_or_else(|| {
                            self.error(field_span(table, &[key]), format!("link_override fault: `{key}` lists server names"))
                        })
                    })
                    .collect(),
                _ => Err(self.error(
                    field_span(table, &[key]),
                    format!("link_override fault: `{key}` is a server, a non-empty list of servers, or \"*\""),
                )),
            }
        };
        let (from, to) = (names("from")?, names("to")?);
        let mut out = Vec::new();
        for a in &from {
            for b in to.iter().filter(|b| *b != a) {
                let mut one = fields.clone();
                one.insert("from".into(), toml::Value::String(a.clone()));
                one.insert("to".into(), toml::Value::String(b.clone()));
                out.push(one);
            }
        }
        if out.is_empty() {
            return Err(
                self.error(span(table), "link_override fault: no link between `from` and `to`")
            );
        }
        Ok(out)
    }

    fn faults(&self, tables: &[Spanned<FaultTable>]) -> Result<FaultSchedule> {
        let mut faults = Vec::new();
        // The written table of each fault (a grouped link_override gives several).
        let mut origin: Vec<usize> = Vec::new();
        for (number, table) in tables.iter().enumerate() {
            let fields: toml::Table = table
                .get_ref()
                .iter()
                .map(|(k, v)| (k.get_ref().clone(), v.get_ref().clone()))
                .collect();
            for fields in self.link_groups(table, fields)? {
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
                origin.push(number);
            }
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
            let table = &tables[origin[fault.index]];
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
                ScheduleProblem::TooManyNodes { .. }
                | ScheduleProblem::DuplicateNode { .. }
                | ScheduleProblem::TooManyFaults { .. } => &[],
            };
            let problem = match &error.problem {
                ScheduleProblem::NodeFaultsOverlap { node, other } => format!(
                    "node {node} is already crashed or paused then, by the fault at line {}",
                    self.at.line_of(span(&tables[origin[*other]]).start)
                ),
                problem => problem.to_string(),
            };
            self.error(field_span(table, fields), format!("{} fault: {problem}", fault.kind))
        })
    }

    // --- [check], [server_config] -------------------------------------------------------

    fn check(
        &self,
        table: Option<&Spanned<file::CheckTable>>,
        quiet_ms: u64,
        quiet_at: Option<&Spanned<u64>>,
    ) -> Result<CheckConfig> {
        let mut check = CheckConfig {
            invariants: Invariant::ALL.to_vec(),
            liveness_bound_ms: LIVENESS_BOUND_MS_DEFAULT,
        };
        let mut bound_at = None;
        if let Some(table) = table {
            let t = table.get_ref();
            if let Some(invariants) = &t.invariants {
                let set: BTreeSet<Invariant> = invariants.iter().map(|i| *i.get_ref()).collect();
                check.invariants = set.into_iter().collect();
            }
            if let Some(bound) = &t.liveness_bound_ms {
                check.liveness_bound_ms = self.duration(bound, "liveness_bound_ms")?;
                bound_at = Some(span(bound));
            }
        }
        if check.liveness_bound_ms > quiet_ms {
            let problem = format!(
                "liveness_bound_ms ({}) is longer than quiet_ms ({quiet_ms}): the run would stop before the bound could be judged",
                check.liveness_bound_ms
            );
            let at = bound_at.or(quiet_at.map(span)).unwrap_or(0..0);
            return Err(self.error(at, problem));
        }
        Ok(check)
    }

    fn server_config(&self, t: &file::ServerConfigTable) -> Result<ServerConfig> {
        let positive = |value: &Option<Spanned<u64>>, field: &str| -> Result<Option<u64>> {
            let Some(value) = value else { return Ok(None) };
            let ms = self.duration(value, field)?;
            if ms == 0 {
                return Err(self.error(span(value), format!("{field} must be at least 1")));
            }
            Ok(Some(ms))
        };
        let config = ServerConfig {
            request_timeout_ms: positive(&t.request_timeout_ms, "request_timeout_ms")?,
            backoff_ms_min: positive(&t.backoff_ms_min, "backoff_ms_min")?,
            backoff_ms_max: positive(&t.backoff_ms_max, "backoff_ms_max")?,
            retries_max: t.retries_max.as_ref().map(|r| *r.get_ref()),
            down_probe_interval_ms: positive(&t.down_probe_interval_ms, "down_probe_interval_ms")?,
            missing_events_limit: match &t.missing_events_limit {
                Some(limit) if !(1..=1000).contains(limit.get_ref()) => {
                    let problem = "missing_events_limit must be 1 to 1000";
                    return Err(self.error(span(limit), problem));
                }
                Some(limit) => Some(*limit.get_ref()),
                None => None,
            },
        };
        if let (Some(min), Some(max)) = (config.backoff_ms_min, config.backoff_ms_max) {
            if min > max {
                let problem = format!("backoff_ms_min ({min}) is above backoff_ms_max ({max})");
                return Err(self.error(span(t.backoff_ms_min.as_ref().unwrap()), problem));
            }
        }
        Ok(config)
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

/// A TOML value as JSON, or why canonical JSON cannot hold it.
fn to_json(value: &toml::Value) -> std::result::Result<Value, String> {
    Ok(match value {
        toml::Value::String(text) => Value::String(text.clone()),
        toml::Value::Integer(number) => {
            if number.unsigned_abs() > JSON_INT_MAX.unsigned_abs() {
                return Err(format!("{number} is beyond ±{JSON_INT_MAX} (canonical JSON)"));
            }
            Value::from(*number)
        }
        toml::Value::Float(_) => {
            return Err(
                "a number with a fraction or exponent; canonical JSON has integers only".into()
            );
        }
        toml::Value::Boolean(flag) => Value::Bool(*flag),
        toml::Value::Datetime(_) => {
            return Err("a date-time; write it as a string or an integer".into());
        }
        toml::Value::Array(items) => {
            Value::Array(items.iter().map(to_json).collect::<std::result::Result<_, _>>()?)
        }
        toml::Value::Table(table) => {
            let mut object = Map::new();
            for (key, item) in table {
                object.insert(key.clone(), to_json(item)?);
            }
            Value::Object(object)
        }
    })
}

/// A Matrix server name: `hostname[:port]`, the hostname a DNS name of `[A-Za-z0-9.-]`
/// (which also covers IPv4 literals) or a bracketed IPv6 literal, the port 1 to 5 digits.
/// The same rules as `matrix::ids::check_server_name`, which this layer may not use.
fn check_server_name(name: &str) -> std::result::Result<(), &'static str> {
    let (host, port) = if let Some(rest) = name.strip_prefix('[') {
        let Some((literal, after)) = rest.split_once(']') else {
            return Err("unterminated IPv6 literal");
        };
        let ok = (2..=45).contains(&literal.len())
            && literal.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !ok {
            return Err("invalid IPv6 literal");
        }
        match after.strip_prefix(':') {
            Some(port) => (None, Some(port)),
            None if after.is_empty() => (None, None),
            None => return Err("unexpected text after the IPv6 literal"),
        }
    } else {
        match name.rsplit_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(name), None),
        }
    };
    if let Some(host) = host {
        if host.is_empty() || host.len() > 255 {
            return Err("the hostname must be 1 to 255 characters");
        }
        if !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
            return Err("a hostname uses only A-Z a-z 0-9 . -");
        }
    }
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err("the port must be 1 to 5 digits");
        }
    }
    Ok(())
}

/// The characters a new user id's localpart may use: `a-z 0-9 . _ = - / +`.
fn is_strict_localpart(localpart: &str) -> bool {
    !localpart.is_empty()
        && localpart
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._=-/+".contains(&b))
}
