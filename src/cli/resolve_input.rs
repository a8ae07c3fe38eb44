//! The input file of `mxsim resolve`: a room version, events with given ids, and state sets.
//!
//! ```json
//! { "room_version": "12",
//!   "events": [ { "event_id": "$create", "type": "m.room.create", ... , "rejected": false } ],
//!   "state_sets": [ { "m.room.create": { "": "$create" } } ] }
//! ```
//!
//! Every problem is reported with the file name and a JSON path (or line:column for JSON
//! syntax errors), and names the event id involved.
//!
//! Events are taken as other implementations' test fixtures and exports write them: only
//! what state resolution reads is checked (`pdu::Stage::Resolution`), and `auth_events` or
//! `prev_events` entries may be `[event_id, {hashes}]` pairs, the room version 1 and 2
//! form that Synapse's state resolution tests still build. `--strict` checks every event
//! as a PDU of the room version instead. Unknown top-level fields are ignored and named
//! once, so that files carrying extra metadata load.
//!
//! Events are looked up by id in one sorted list (a binary search), never in a map grown
//! one insertion at a time: inputs run to hundreds of thousands of events.
//!
//! The text is never held whole: it is read twice through a window ([`parse_file`] from
//! disk), and only what state resolution reads is kept of each event.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use crate::cli::{self, CliError, RESOLVE_BYTES_MAX};
use crate::matrix::canonical_json::{self, Numbers, Object, WindowError, Windowed};
use crate::matrix::dag::{self, RejectionKind};
use crate::matrix::pdu::{LevelUsersSharer, Stage};
use crate::matrix::room_version::RoomVersionRules;
use crate::matrix::{EventId, Pdu, RoomVersion, ids};

/// A state map: (event type, state key) → event id.
pub type StateMap = BTreeMap<(String, String), EventId>;

/// A parsed and cross-checked `mxsim resolve` input.
pub struct ResolveInput {
    pub room_version: RoomVersion,
    /// Events in id order, each with how it was rejected on receipt, if it was.
    pub events: Vec<(Arc<Pdu>, Option<RejectionKind>)>,
    pub state_sets: Vec<StateMap>,
    /// Top-level fields the format does not define, which were ignored, sorted.
    pub ignored_fields: Vec<String>,
}

/// How strictly events are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strictness {
    /// Only what state resolution reads; fixture and export shapes load as they are.
    Resolution,
    /// Every event must be a well-formed PDU of the room version (`hashes` and
    /// `signatures` may be missing: nothing is verified).
    Pdu,
}

/// Events in id order with their position in the file: lookups by binary search.
struct ById<'a> {
    /// (first bytes of the id, id, position), in id order.
    sorted: Vec<(u64, &'a EventId, usize)>,
}

impl ById<'_> {
    fn get(&self, id: &str) -> Option<usize> {
        let key = (ids::order_prefix(id), id);
        let found =
            self.sorted.binary_search_by(|(first, probe, _)| (*first, probe.as_str()).cmp(&key));
        Some(self.sorted[found.ok()?].2)
    }
}

fn error(file: &str, path: &str, problem: impl std::fmt::Display) -> CliError {
    CliError::input(format!("{file}: {path}: {problem}"))
}

/// Parses and checks the input: every event is a well-formed event of the room version
/// (as `strictness` says) with a unique id; every `auth_events` entry and every state-set
/// entry names an event in the file; each state-set entry's key matches its event's `type`
/// and `state_key`.
pub fn parse(file: &str, bytes: &[u8], strictness: Strictness) -> Result<ResolveInput, CliError> {
    // The text is read in pieces (below). When that fails and the text is not valid JSON,
    // it is parsed whole, to name its first problem exactly as reading it whole always
    // did, before any problem in an event read earlier.
    read(file, |offset| Ok(bytes.get(offset as usize..).unwrap_or_default()), strictness).map_err(
        |problem| match canonical_json::parse(bytes, Numbers::IntegerLiterals) {
            Err(first) => CliError::input(format!("{file}: {first}")),
            Ok(_) => problem,
        },
    )
}

/// [`parse`] on the file at `path`, which a regular file is read from a window at a time
/// (twice, see `read`), so that it is never held whole: at 46,000 events the file's bytes
/// were a quarter of the command's peak memory. A file that fails to load, and anything
/// that is not a regular file, is read whole and parsed so, which names its problem.
pub fn parse_file(path: &Path, strictness: Strictness) -> Result<ResolveInput, CliError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path)
        .map_err(|e| CliError::input(format!("{name}: cannot read: {e}")))?;
    let regular = file.metadata().is_ok_and(|m| m.is_file() && m.len() <= RESOLVE_BYTES_MAX);
    if regular {
        let open_at = |offset: u64| {
            let mut from = &file;
            from.seek(SeekFrom::Start(offset))?;
            Ok(from.take(RESOLVE_BYTES_MAX.saturating_sub(offset)))
        };
        if let Ok(input) = read(&name, open_at, strictness) {
            return Ok(input);
        }
    }
    let bytes = cli::read_file(path, RESOLVE_BYTES_MAX, "a resolve input")?;
    parse(&name, &bytes, strictness)
}

fn read<R: Read>(
    file: &str,
    mut open_at: impl FnMut(u64) -> std::io::Result<R>,
    strictness: Strictness,
) -> Result<ResolveInput, CliError> {
    // The text is read in two passes, so that the events never exist as one value tree
    // and the text never whole: the first reads the top-level fields except `events`,
    // whose items it skips (its events cannot be checked before `room_version` is known,
    // and canonical key order puts `room_version` after `events`); the second comes back
    // and reads the events one at a time, keeping of each only what state resolution
    // reads. Each pass holds a window of the text (`canonical_json::Windowed`).
    let syntax = |found: WindowError| CliError::input(format!("{file}: {found}"));
    let open = |opened: std::io::Result<R>| {
        opened.map_err(|e| CliError::input(format!("{file}: cannot read: {e}")))
    };
    let mut text = Windowed::new(open(open_at(0))?, Numbers::IntegerLiterals, 0);
    if !text.piece(|r| r.begin_object()).map_err(syntax)? {
        return Err(error(file, "$", "must be an object with room_version, events, state_sets"));
    }
    let mut room_version = None;
    // Where the events array starts and ends; `None` for its end when it is no array.
    let mut events_at = None;
    let mut raw_sets = None;
    let mut ignored_fields: Vec<String> = Vec::new();
    while let Some(key) = text.piece(|r| r.next_key()).map_err(syntax)? {
        match key.as_str() {
            "room_version" => room_version = Some(text.piece(|r| r.value()).map_err(syntax)?),
            "events" => {
                let start = text.position();
                let mut end = None;
                if text.piece(|r| r.begin_array()).map_err(syntax)? {
                    while text.piece(|r| r.skip_item()).map_err(syntax)? {}
                    end = Some(text.position());
                } else {
                    text.piece(|r| r.skip_value()).map_err(syntax)?;
                }
                events_at = Some((start, end));
            }
            "state_sets" => raw_sets = Some(text.piece(|r| r.value()).map_err(syntax)?),
            _ => {
                // Read in full all the same: the file must be valid JSON throughout.
                text.piece(|r| r.value()).map_err(syntax)?;
                ignored_fields.push(key);
            }
        }
    }
    text.piece(|r| r.check_end()).map_err(syntax)?;
    drop(text);
    ignored_fields.sort_unstable();
    let room_version = match room_version {
        Some(Value::String(v)) => {
            RoomVersion::parse(&v).map_err(|e| error(file, "$.room_version", e))?
        }
        Some(_) => return Err(error(file, "$.room_version", "must be a string such as \"12\"")),
        None => return Err(error(file, "$.room_version", "missing required field")),
    };
    let rules = room_version.rules();
    let not_events = || error(file, "$.events", "missing, or not an array of events");
    let Some((events_start, Some(events_end))) = events_at else {
        return Err(not_events());
    };
    // The events array lies inside the top-level object.
    let mut text = Windowed::new(open(open_at(events_start))?, Numbers::IntegerLiterals, 1);
    if !text.piece(|r| r.begin_array()).map_err(syntax)? {
        return Err(not_events());
    }
    let stage = match strictness {
        Strictness::Resolution => Stage::Resolution,
        Strictness::Pdu => Stage::Unsigned,
    };
    let mut events = Vec::new();
    // One copy of each distinct content of one string member, by that member: in a large
    // room most contents are a few memberships' (`{"membership":"join"}`) and join rules',
    // and each copy of even the smallest object costs over 600 bytes. (Keyed by member, a
    // lookup builds nothing; larger contents are seldom alike.)
    let mut contents: BTreeMap<String, BTreeMap<String, Arc<Object>>> = BTreeMap::new();
    // The contents of events whose type the auth rules never read, as canonical JSON, by
    // position; the event holds `stand_in` until the reach walk (below) says whether state
    // resolution reads it. Most are never read (messages; topics and names that no state set
    // holds), and held as trees they were a sixth of the memory of a large input.
    let stand_in = Arc::new(Object::new());
    let mut deferred: Vec<(usize, Box<[u8]>)> = Vec::new();
    // One copy of each event id, however many events cite it: each citation its own
    // allocation was a fifth of the memory of a large input.
    let mut ids = ids::IdInterner::new();
    // One copy of each sender, event type, state key and room id, likewise.
    let mut texts = ids::TextInterner::new();
    // Power-levels events' `users` kept apart, one copy of each run of entries they share:
    // as JSON trees they were a third of the peak memory of a large input.
    let mut level_users = LevelUsersSharer::new();
    // Members state resolution never reads (`Stage::Resolution`: `hashes`, `signatures`
    // and `unsigned` unchecked, and `hashes` read only for Linearized Matrix's hub rules)
    // are checked as JSON and not built: in the benchmark inputs, building them was a
    // twelfth of the command's instructions. Full PDU checks (`--strict`) read them all.
    let unread = strictness == Strictness::Resolution && !rules.lpdus;
    let read_event = |r: &mut canonical_json::Reader<'_>| {
        if unread {
            r.next_value_keeping(|key| !UNREAD_MEMBERS.contains(&key))
        } else {
            r.next_value()
        }
    };
    while let Some(event) = text.piece(read_event).map_err(syntax)? {
        let index = events.len();
        let path = || format!("$.events[{index}]");
        let Value::Object(mut object) = event else {
            return Err(error(file, &path(), "must be an event object"));
        };
        // One walk over the members rather than a search for each: most events have no
        // `rejected`, and looking for it compared its key with several others.
        let unpair = strictness == Strictness::Resolution;
        let mut has_rejected = false;
        for (key, value) in object.iter_mut() {
            match key.as_str() {
                "auth_events" | "prev_events" if unpair => unpair_references(value),
                "rejected" => has_rejected = true,
                _ => {}
            }
        }
        let rejected = match has_rejected.then(|| object.remove("rejected")).flatten() {
            None => None,
            Some(value) => rejection_kind(&value)
                .map_err(|problem| error(file, &format!("{}.rejected", path()), problem))?,
        };
        let mut pdu =
            Pdu::for_resolution(rules, object, stage, &mut ids, &mut texts).map_err(|e| {
                // The format error's path is relative to the event.
                error(file, &format!("{}{}", path(), e.path.trim_start_matches('$')), e.problem)
            })?;
        pdu.compact_level_users(&mut level_users, &mut texts);
        if !AUTH_CONTENT_TYPES.contains(&pdu.event_type()) {
            let content = pdu.replace_content(Arc::clone(&stand_in));
            let text = canonical_json::encode_object(&content)
                .expect("the parser reads only values canonical JSON can write");
            deferred.push((index, text.into_boxed_slice()));
        } else if let Some((key, Value::String(value))) = pdu.content().iter().next()
            && pdu.content().len() == 1
        {
            match contents.get(key.as_str()).and_then(|by_value| by_value.get(value.as_str())) {
                Some(shared) => pdu.share_content(&Arc::clone(shared)),
                None => {
                    let (key, value) = (key.clone(), value.clone());
                    let shared = Arc::clone(pdu.shared_content());
                    contents.entry(key).or_default().insert(value, shared);
                }
            }
        }
        events.push((Arc::new(pdu), rejected));
    }
    drop(ids);
    drop(texts);
    drop(level_users);
    if events_start + text.position() != events_end {
        // Cannot happen when the full read succeeded (skipping ends a valid value where
        // reading does), but the rest of the text was read from where skipping ended.
        return Err(error(file, "$.events", "the events array does not end where it should"));
    }
    drop(text);
    let mut sorted: Vec<(u64, &EventId, usize)> = events
        .iter()
        .enumerate()
        .map(|(index, (pdu, _))| {
            (ids::order_prefix(pdu.event_id().as_str()), pdu.event_id(), index)
        })
        .collect();
    sorted.sort_unstable();
    // Of the repeated ids, report the one whose second occurrence comes first in the file.
    let duplicate = sorted
        .windows(2)
        .filter(|pair| pair[0].1 == pair[1].1)
        .map(|pair| (pair[1].2, pair[0].2))
        .min();
    if let Some((index, _)) = duplicate {
        let id = events[index].0.event_id();
        let first = sorted.iter().find(|(_, probe, _)| *probe == id).expect("listed").2;
        return Err(error(
            file,
            &format!("$.events[{index}].event_id"),
            format!("duplicate event id {id} (first at $.events[{first}])"),
        ));
    }
    let by_id = ById { sorted };
    // Each event's listed auth events by position: `auth_at[auth_start[i]..auth_start[i +
    // 1]]` for the event at position i.
    let mut auth_start: Vec<usize> = Vec::with_capacity(events.len() + 1);
    let mut auth_at: Vec<usize> = Vec::with_capacity(4 * events.len());
    for (index, (pdu, _)) in events.iter().enumerate() {
        auth_start.push(auth_at.len());
        for (auth_index, auth) in pdu.auth_events().iter().enumerate() {
            if let Some(at) = by_id.get(auth.as_str()) {
                auth_at.push(at);
            } else {
                return Err(error(
                    file,
                    &format!("$.events[{index}].auth_events[{auth_index}]"),
                    format!(
                        "event {} cites auth event {auth}, which is not in the file",
                        pdu.event_id()
                    ),
                ));
            }
        }
    }
    auth_start.push(auth_at.len());
    let Some(Value::Array(raw_sets)) = raw_sets else {
        return Err(error(file, "$.state_sets", "missing, or not an array of state maps"));
    };
    let mut state_sets = Vec::with_capacity(raw_sets.len());
    for (index, raw) in raw_sets.into_iter().enumerate() {
        let path = format!("$.state_sets[{index}]");
        state_sets.push(parse_state_map(file, &path, raw, &events, &by_id)?);
    }
    let auths = |index: usize| &auth_at[auth_start[index]..auth_start[index + 1]];
    let reached = reached_from_state_sets(rules, &events, auths, &state_sets, &by_id);
    // Handed on in id order, which `IndexedStore::from_events` sorts them into: a sorted
    // list costs its sort one pass.
    let order: Vec<usize> =
        by_id.sorted.iter().map(|(_, _, index)| *index).filter(|index| reached[*index]).collect();
    drop(by_id);
    for (index, text) in deferred {
        if reached[index] {
            let Ok(Value::Object(content)) = canonical_json::parse(&text, Numbers::IntegerLiterals)
            else {
                unreachable!("canonical JSON of an object reads back as that object")
            };
            let pdu = Arc::get_mut(&mut events[index].0).expect("events are not shared yet");
            pdu.replace_content(Arc::new(content));
        }
    }
    let events = order.into_iter().map(|index| events[index].clone()).collect();
    Ok(ResolveInput { room_version, events, state_sets, ignored_fields })
}

/// The members of an event that neither the resolution stage's format checks nor state
/// resolution read, outside Linearized Matrix room versions (`pdu::Stage::Resolution`).
const UNREAD_MEMBERS: [&str; 3] = ["hashes", "signatures", "unsigned"];

/// Event types whose content the auth rules and state resolution read (spec auth rules:
/// the create event, power levels, join rules, memberships and third-party invites).
const AUTH_CONTENT_TYPES: [&str; 5] = [
    "m.room.create",
    "m.room.power_levels",
    "m.room.join_rules",
    "m.room.member",
    "m.room.third_party_invite",
];

/// By position in the file, whether a state set reaches the event over auth edges (the
/// listed `auth_events`, whose positions `auths` gives, and, from room version 12, the
/// create event the room id names).
/// State resolution reads nothing else: the state sets' events, their auth chains, and so
/// the full conflicted set and the conflicted state subgraph, which lie within those
/// chains. The other events (messages, superseded state that no event cites) are checked
/// like every event and then not handed on, so that they cost no index.
fn reached_from_state_sets<'a>(
    rules: &RoomVersionRules,
    events: &[(Arc<Pdu>, Option<RejectionKind>)],
    auths: impl Fn(usize) -> &'a [usize],
    state_sets: &[StateMap],
    by_id: &ById<'_>,
) -> Vec<bool> {
    let mut reached = vec![false; events.len()];
    let mut stack: Vec<usize> = state_sets
        .iter()
        .flat_map(|set| set.values())
        .map(|id| by_id.get(id.as_str()).expect("state set entries were checked"))
        .collect();
    // The create event a room id names, for the last room id met: every event of a room
    // names the same one, and making its id allocates.
    let mut implied: Option<(&str, Option<usize>)> = None;
    while let Some(index) = stack.pop() {
        if std::mem::replace(&mut reached[index], true) {
            continue;
        }
        let pdu = &events[index].0;
        let create = dag::implicit_create_room_id(rules, pdu).and_then(|room_id| match implied {
            Some((last, at)) if last == room_id => at,
            _ => {
                let at = EventId::from_room_id(room_id).and_then(|id| by_id.get(id.as_str()));
                implied = Some((room_id, at));
                at
            }
        });
        for &auth in auths(index).iter().chain(&create) {
            if !reached[auth] {
                stack.push(auth);
            }
        }
    }
    reached
}

/// Replaces the `[event_id, {hashes}]` entries of an `auth_events` or `prev_events` list
/// (the room version 1 and 2 reference form) by the event id. Anything else is left for
/// the format check to judge.
fn unpair_references(list: &mut Value) {
    let Value::Array(items) = list else { return };
    for item in items {
        let id = match item {
            Value::Array(pair) => match pair.as_mut_slice() {
                [Value::String(id), Value::Object(_)] => std::mem::take(id),
                _ => continue,
            },
            _ => continue,
        };
        *item = Value::String(id);
    }
}

fn parse_state_map(
    file: &str,
    path: &str,
    raw: Value,
    events: &[(Arc<Pdu>, Option<RejectionKind>)],
    by_id: &ById<'_>,
) -> Result<StateMap, CliError> {
    let Value::Object(by_type) = raw else {
        return Err(error(file, path, "must be an object {type: {state_key: event_id}}"));
    };
    // Entries come sorted by (type, state key): collected, then built into a map in bulk.
    let mut entries: Vec<((String, String), EventId)> = Vec::new();
    // By position in the file: whether the event was listed already.
    let mut seen = vec![false; events.len()];
    for (event_type, by_key) in by_type {
        let type_path = || {
            let mut type_path = path.to_owned();
            canonical_json::push_key(&mut type_path, &event_type);
            type_path
        };
        let Value::Object(by_key) = by_key else {
            return Err(error(file, &type_path(), "must be an object {state_key: event_id}"));
        };
        for (state_key, id) in by_key {
            let entry_path = || {
                let mut entry_path = type_path();
                canonical_json::push_key(&mut entry_path, &state_key);
                entry_path
            };
            let Value::String(id) = id else {
                return Err(error(file, &entry_path(), "must be an event id string"));
            };
            let Some(index) = by_id.get(&id) else {
                let id = EventId::parse(&id).map_err(|e| error(file, &entry_path(), e))?;
                return Err(error(file, &entry_path(), format!("event {id} is not in $.events")));
            };
            let pdu = &events[index].0;
            if pdu.event_type() != event_type || pdu.state_key() != Some(state_key.as_str()) {
                return Err(error(
                    file,
                    &entry_path(),
                    format!(
                        "event {id} has type {:?} and state_key {:?}, not this key",
                        pdu.event_type(),
                        pdu.state_key()
                    ),
                ));
            }
            if std::mem::replace(&mut seen[index], true) {
                return Err(error(file, &entry_path(), format!("event {id} appears twice")));
            }
            entries.push(((event_type.clone(), state_key), pdu.event_id().clone()));
        }
    }
    Ok(entries.into_iter().collect())
}

/// Writes a state map in the nested `{type: {state_key: event_id}}` form.
pub fn nested(map: &StateMap) -> Value {
    let mut out = Object::new();
    for ((event_type, state_key), id) in map {
        let entry = out.entry(event_type.clone()).or_insert_with(|| Value::Object(Object::new()));
        entry
            .as_object_mut()
            .expect("only objects are inserted")
            .insert(state_key.clone(), Value::String(id.as_str().to_owned()));
    }
    Value::Object(out)
}

/// Parses the `rejected` field of an input event: `true`/`false`, or the kind by name.
fn rejection_kind(value: &Value) -> Result<Option<RejectionKind>, &'static str> {
    match value {
        Value::Bool(false) => Ok(None),
        Value::Bool(true) => Ok(Some(RejectionKind::AuthEvents)),
        Value::String(kind) if kind == "auth_events" => Ok(Some(RejectionKind::AuthEvents)),
        Value::String(kind) if kind == "state_before" => Ok(Some(RejectionKind::StateBefore)),
        _ => Err("must be true, false, \"auth_events\" or \"state_before\""),
    }
}

#[cfg(test)]
mod tests;
