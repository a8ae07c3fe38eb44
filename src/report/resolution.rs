//! `resolution.svg`: for each merge (an event with several prev events) whose prev
//! states conflict, the conflicted keys, their candidates, and which candidate won and
//! why — replayed with `matrix::state_res::resolve` and its explanation from the PDUs in
//! the trace.
//!
//! The state after each event is recomputed from the DAG alone (the state after its prev
//! events, resolved if they differ, plus the event itself unless it was rejected); the
//! trace does not record it. Events without a parseable PDU end the replay of everything
//! after them, which the figure says.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::Value;

use crate::matrix::dag::{IndexedStore, RejectionKind};
use crate::matrix::room_version::StateResAlgorithm;
use crate::matrix::state_res::{self, AuthOutcome, Explanation, ResolveOptions, StateMap};
use crate::matrix::{EventId, Pdu, RoomVersion};
use crate::report::limits;
use crate::report::model::RoomModel;
use crate::report::svg::{self, escape, num};
use crate::trace::Decision;

/// The drawn figure.
pub struct Resolutions {
    pub svg: String,
    pub summary: String,
}

/// One conflicted key at one merge.
struct KeyView {
    key: (String, String),
    /// (candidate, sender, ordering, auth outcome, won).
    candidates: Vec<Candidate>,
    /// The key was absent from some state sets.
    absent_somewhere: bool,
    why: String,
}

struct Candidate {
    /// (0 power ordering | 1 mainline ordering | 2 neither, position).
    rank: (u8, usize),
    id: String,
    sender: String,
    ordering: String,
    auth: String,
    won: bool,
    rejected: bool,
}

/// One merge with a non-empty conflicted set.
struct MergeView {
    event_id: String,
    depth: i64,
    origin: String,
    state_sets: usize,
    algorithm: &'static str,
    full_conflicted: usize,
    keys: Vec<KeyView>,
    error: Option<String>,
}

/// The replayed room: the merges with a conflicted state set, notes on what could not be
/// replayed, and the state after every replayed event (what the DAG implies).
pub struct Replay {
    views: Vec<MergeView>,
    notes: Vec<String>,
    pub after: StatesAfter,
    /// For each event that entered the state: what its key held just before it.
    pub replaced: BTreeMap<String, Option<EventId>>,
}

pub fn render(room: &RoomModel, replayed: &Replay) -> Resolutions {
    let (views, notes) = (&replayed.views, &replayed.notes);
    let shown = views.len().min(limits::RESOLUTIONS_MAX);
    let mut summary = match views.len() {
        0 => "No merge had a conflicted state set.".to_owned(),
        1 => "1 merge had a conflicted state set.".to_owned(),
        n => format!("{n} merges had a conflicted state set."),
    };
    if shown < views.len() {
        let _ = write!(summary, " The first {shown} are drawn.");
    }
    for note in notes {
        summary.push(' ');
        summary.push_str(note);
    }
    Resolutions { svg: draw(room, &views[..shown], notes, views.len()), summary }
}

fn rejection_kind(decision: Decision) -> Option<RejectionKind> {
    match decision {
        Decision::RejectedAuthEvents => Some(RejectionKind::AuthEvents),
        Decision::RejectedStateBefore => Some(RejectionKind::StateBefore),
        _ => None,
    }
}

impl Replay {
    /// The size of the full conflicted set of each merge with a conflicted state set.
    pub fn conflicted_sizes(&self) -> Vec<usize> {
        self.views.iter().map(|view| view.full_conflicted).collect()
    }
}

/// Replays the room in depth order, resolving the states of the prev events at merges.
pub fn replay(room: &RoomModel) -> Replay {
    let (views, notes, after, replaced) = replay_parts(room);
    Replay { views, notes, after, replaced }
}

/// The state after each replayed event, by event id. An event that changes nothing (a
/// message, a rejected event, a merge of equal states) shares the state before it rather
/// than copying it.
pub type StatesAfter = BTreeMap<String, Arc<StateMap>>;

type Parts = (Vec<MergeView>, Vec<String>, StatesAfter, BTreeMap<String, Option<EventId>>);

fn replay_parts(room: &RoomModel) -> Parts {
    let mut notes = Vec::new();
    let Some(version) = room.version.as_deref() else {
        notes.push("No room version was recorded, so resolutions were not replayed.".to_owned());
        return (Vec::new(), notes, BTreeMap::new(), BTreeMap::new());
    };
    let Ok(version) = RoomVersion::parse_any(version) else {
        notes.push(format!("Room version {version:?} is unknown; resolutions were not replayed."));
        return (Vec::new(), notes, BTreeMap::new(), BTreeMap::new());
    };
    let rules = version.rules();
    let mut pdus: BTreeMap<String, (Arc<Pdu>, Option<RejectionKind>)> = BTreeMap::new();
    let mut unparsed = 0usize;
    for event in &room.events {
        let Some(json) = &event.pdu else { continue };
        let mut json = (**json).clone();
        json.insert("event_id".into(), Value::from(event.id.clone()));
        match Pdu::with_given_id(rules, json) {
            Ok(pdu) => {
                let kind = event.rejection().and_then(rejection_kind);
                pdus.insert(event.id.clone(), (Arc::new(pdu), kind));
            }
            Err(_) => unparsed += 1,
        }
    }
    if unparsed > 0 {
        notes.push(format!(
            "{unparsed} events have no well-formed PDU; merges after them were not replayed."
        ));
    }
    let store = IndexedStore::from_events(rules, pdus.values().cloned());
    let mut order: Vec<&crate::report::model::EventNode> = room.events.iter().collect();
    order.sort_by(|a, b| (a.depth, a.first_t, &a.id).cmp(&(b.depth, b.first_t, &b.id)));
    let mut after: StatesAfter = BTreeMap::new();
    let mut replaced: BTreeMap<String, Option<EventId>> = BTreeMap::new();
    let mut views = Vec::new();
    let options = ResolveOptions { explain: true, ..ResolveOptions::default() };
    for event in order {
        let Some((pdu, rejection)) = pdus.get(&event.id) else { continue };
        let mut states: Vec<&Arc<StateMap>> = Vec::new();
        let mut complete = true;
        for prev in pdu.prev_events() {
            match after.get(prev.as_str()) {
                Some(state) => states.push(state),
                None => complete = false,
            }
        }
        if !complete {
            continue;
        }
        let mut before = match states.as_slice() {
            [] => Arc::new(StateMap::new()),
            [one] => Arc::clone(one),
            many if many.iter().all(|s| Arc::ptr_eq(s, many[0]) || *s == many[0]) => {
                Arc::clone(many[0])
            }
            many => {
                let sets: Vec<StateMap> = many.iter().map(|s| StateMap::clone(s)).collect();
                match state_res::resolve(rules, &sets, &store, options) {
                    Ok(resolved) => {
                        let explanation = resolved.explanation.expect("explain was asked for");
                        if !explanation.conflicted.is_empty() {
                            views.push(view(room, event, &sets, &explanation, &pdus, None));
                        }
                        Arc::new(resolved.state)
                    }
                    Err(error) => {
                        let explanation = Explanation::empty(
                            rules.state_res,
                            Default::default(),
                            Default::default(),
                        );
                        views.push(view(
                            room,
                            event,
                            &sets,
                            &explanation,
                            &pdus,
                            Some(error.to_string()),
                        ));
                        continue;
                    }
                }
            }
        };
        if let (Some(state_key), None) = (pdu.state_key(), rejection) {
            let previous = Arc::make_mut(&mut before).insert(
                (pdu.event_type().to_owned(), state_key.to_owned()),
                pdu.event_id().clone(),
            );
            replaced.insert(event.id.clone(), previous);
        }
        after.insert(event.id.clone(), before);
    }
    (views, notes, after, replaced)
}

fn view(
    room: &RoomModel,
    event: &crate::report::model::EventNode,
    sets: &[StateMap],
    explanation: &Explanation,
    pdus: &BTreeMap<String, (Arc<Pdu>, Option<RejectionKind>)>,
    error: Option<String>,
) -> MergeView {
    let _ = room;
    let (_, conflicted) = state_res::separate(sets);
    let power_position = |id: &EventId| {
        explanation.power_events_sorted.iter().position(|(e, _)| e == id).map(|i| {
            let level = &explanation.power_events_sorted[i].1;
            format!(
                "power order {}/{} (sender power {level})",
                i + 1,
                explanation.power_events_sorted.len()
            )
        })
    };
    let mainline_position = |id: &EventId| {
        explanation
            .mainline_sorted
            .iter()
            .position(|e| e == id)
            .map(|i| format!("mainline order {}/{}", i + 1, explanation.mainline_sorted.len()))
    };
    let mut keys = Vec::new();
    for (key, candidates) in &conflicted {
        let winner = explanation.state.get(key);
        let absent_somewhere = sets.iter().any(|s| !s.contains_key(key));
        let mut list = Vec::new();
        for id in candidates {
            let sender =
                pdus.get(id.as_str()).map(|(p, _)| p.sender().to_owned()).unwrap_or_default();
            let ordering = power_position(id)
                .or_else(|| mainline_position(id))
                .unwrap_or_else(|| "not ordered".to_owned());
            let decision = explanation.decisions.iter().rev().find(|d| &d.event_id == id);
            let (auth, rejected) = match decision.map(|d| &d.outcome) {
                Some(AuthOutcome::Allowed) => ("allowed".to_owned(), false),
                Some(AuthOutcome::Rejected(rejection)) => (format!("rejected, {rejection}"), true),
                Some(AuthOutcome::PreviouslyRejected(kind)) => {
                    (format!("skipped: rejected on receipt ({kind:?})"), true)
                }
                None => ("not checked".to_owned(), false),
            };
            let rank = explanation
                .power_events_sorted
                .iter()
                .position(|(e, _)| e == id)
                .map(|i| (0, i))
                .or_else(|| {
                    explanation.mainline_sorted.iter().position(|e| e == id).map(|i| (1, i))
                })
                .unwrap_or((2, 0));
            list.push(Candidate {
                rank,
                id: id.as_str().to_owned(),
                sender,
                ordering,
                auth,
                won: winner == Some(id),
                rejected,
            });
        }
        // Rows in resolution order: the winner is the last one to pass auth.
        list.sort_by(|a, b| (a.rank, &a.id).cmp(&(b.rank, &b.id)));
        let why = match winner {
            Some(w) if power_position(w).is_some() => {
                "power ordering (sender power, then timestamp, then id): the last one to pass auth holds the key".to_owned()
            }
            Some(w) if mainline_position(w).is_some() => {
                "mainline ordering (closest mainline power levels, then timestamp, then id): the last one to pass auth holds the key".to_owned()
            }
            Some(w) if !candidates.contains(w) => {
                "the key was taken from the auth difference".to_owned()
            }
            Some(_) => "the only candidate to pass auth".to_owned(),
            None => "no candidate passed auth: the key is absent after the merge".to_owned(),
        };
        keys.push(KeyView { key: key.clone(), candidates: list, absent_somewhere, why });
    }
    MergeView {
        event_id: event.id.clone(),
        depth: event.depth,
        origin: event.origin(),
        state_sets: sets.len(),
        algorithm: match explanation.algorithm {
            StateResAlgorithm::V2 => "v2",
            StateResAlgorithm::V2_1 => "v2.1",
        },
        full_conflicted: explanation.full_conflicted.len(),
        keys,
        error,
    }
}

const ROW_H: f64 = 18.0;
/// Column x positions and widths in characters (at about 6.6 px per character).
const COLUMNS: &[(&str, f64, usize)] = &[
    ("key", 16.0, 34),
    ("candidate", 250.0, 12),
    ("sender", 340.0, 20),
    ("ordering", 480.0, 36),
    ("iterative auth check", 730.0, 44),
    ("result", 1030.0, 10),
];
const WIDTH: f64 = 1110.0;

fn draw(room: &RoomModel, views: &[MergeView], notes: &[String], total: usize) -> String {
    let mut body = String::new();
    let mut y = 30.0;
    draw_intro(&mut body, &mut y, room, views, notes, total);
    for view in views {
        draw_merge(&mut body, &mut y, view);
    }
    y += 20.0;
    let mut out = svg::open(WIDTH, y, "mxsim-resolution");
    let _ =
        writeln!(out, "<rect width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>", num(WIDTH), num(y));
    out.push_str(&body);
    out.push_str("</svg>\n");
    out
}

/// The title, the sentence that says what is drawn, and the notes on what could not be
/// replayed.
fn draw_intro(
    body: &mut String,
    y: &mut f64,
    room: &RoomModel,
    views: &[MergeView],
    notes: &[String],
    total: usize,
) {
    let _ = writeln!(
        body,
        "<text x=\"12\" y=\"{}\" font-size=\"15\" font-weight=\"bold\">State resolution at merges of {}</text>",
        num(*y),
        escape(&room.title())
    );
    *y += 20.0;
    let intro = if total == 0 {
        "No merge had a conflicted state set: every merge's prev states agreed on every key."
            .to_owned()
    } else {
        format!(
            "{total} merges with conflicts{}. For each conflicted key: the candidates, their place in the resolution order, the iterative auth check, and the winner.",
            if views.len() < total {
                format!(" (first {} drawn)", views.len())
            } else {
                String::new()
            }
        )
    };
    let _ = writeln!(
        body,
        "<text x=\"12\" y=\"{}\" font-size=\"11\" fill=\"#444\">{}</text>",
        num(*y),
        escape(&intro)
    );
    for note in notes {
        *y += 16.0;
        let _ = writeln!(
            body,
            "<text x=\"12\" y=\"{}\" font-size=\"11\" fill=\"#a04000\">{}</text>",
            num(*y),
            escape(note)
        );
    }
    *y += 14.0;
}

/// One merge: its banner, then either why its resolution failed or the table of its
/// conflicted keys.
fn draw_merge(body: &mut String, y: &mut f64, view: &MergeView) {
    *y += 16.0;
    let _ = writeln!(
        body,
        "<g class=\"resolution\" data-event=\"{}\"><title>{}</title><rect x=\"8\" y=\"{}\" width=\"{}\" height=\"22\" fill=\"#ede7f6\"/><text x=\"14\" y=\"{}\" font-size=\"12\" font-weight=\"bold\">merge {} at depth {} (origin {}): state resolution {}, {} state sets, {} conflicted keys, full conflicted set {}</text></g>",
        escape(&view.event_id),
        escape(&view.event_id),
        num(*y),
        num(WIDTH - 16.0),
        num(*y + 15.0),
        escape(&svg::short_id(&view.event_id)),
        view.depth,
        escape(&view.origin),
        view.algorithm,
        view.state_sets,
        view.keys.len(),
        view.full_conflicted
    );
    *y += 22.0;
    if let Some(error) = &view.error {
        *y += ROW_H;
        let _ = writeln!(
            body,
            "<text x=\"16\" y=\"{}\" font-size=\"11\" fill=\"{}\">resolution failed: {}</text>",
            num(*y - 5.0),
            svg::REJECTED,
            escape(error)
        );
        return;
    }
    *y += ROW_H;
    for (name, x, _) in COLUMNS {
        let _ = write!(
            body,
            "<text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"#666\" font-weight=\"bold\">{name}</text>",
            num(*x),
            num(*y - 5.0)
        );
    }
    body.push('\n');
    for key in view.keys.iter().take(limits::KEYS_PER_RESOLUTION_MAX) {
        draw_key(body, y, key);
    }
    if view.keys.len() > limits::KEYS_PER_RESOLUTION_MAX {
        *y += ROW_H;
        let _ = writeln!(
            body,
            "<text x=\"16\" y=\"{}\" font-size=\"11\" fill=\"#666\">… and {} more conflicted keys</text>",
            num(*y - 5.0),
            view.keys.len() - limits::KEYS_PER_RESOLUTION_MAX
        );
    }
}

/// One conflicted key: a separator, one row per candidate, and the line saying why the
/// winner won.
fn draw_key(body: &mut String, y: &mut f64, key: &KeyView) {
    let key_text = if key.key.1.is_empty() {
        key.key.0.clone()
    } else {
        format!("{} {}", key.key.0, key.key.1)
    };
    let why = if key.absent_somewhere {
        format!("{} (the key is absent from some state sets)", key.why)
    } else {
        key.why.clone()
    };
    let _ = writeln!(
        body,
        "<line x1=\"8\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#ddd\"/>",
        num(WIDTH - 8.0),
        num(*y + 1.0 - ROW_H + 4.0),
        num(*y + 1.0 - ROW_H + 4.0)
    );
    for (row, candidate) in key.candidates.iter().enumerate() {
        *y += ROW_H;
        let first = if row == 0 { key_text.clone() } else { String::new() };
        draw_candidate(body, *y, candidate, first);
    }
    *y += ROW_H - 4.0;
    let _ = writeln!(
        body,
        "<text x=\"250\" y=\"{}\" font-size=\"10\" font-style=\"italic\" fill=\"#555\">why: {}</text>",
        num(*y - 5.0),
        escape(&why)
    );
    *y += 4.0;
}

/// One candidate's row ending at `y`, shaded if it won; `key_text` fills the key column
/// (empty below the key's first row).
fn draw_candidate(body: &mut String, y: f64, candidate: &Candidate, key_text: String) {
    if candidate.won {
        let _ = writeln!(
            body,
            "<rect x=\"8\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#e3f4e5\"/>",
            num(y - ROW_H + 4.0),
            num(WIDTH - 16.0),
            num(ROW_H)
        );
    }
    let result = if candidate.won {
        "WON"
    } else if candidate.rejected {
        "rejected"
    } else {
        "lost"
    };
    let color = if candidate.won {
        "#1a7a30"
    } else if candidate.rejected {
        svg::REJECTED
    } else {
        "#333333"
    };
    let cells = [
        key_text,
        svg::short_id(&candidate.id),
        candidate.sender.clone(),
        candidate.ordering.clone(),
        candidate.auth.clone(),
        result.to_owned(),
    ];
    let _ = write!(body, "<g class=\"candidate\"><title>{}</title>", escape(&candidate.id));
    for ((_, x, chars), cell) in COLUMNS.iter().zip(cells.iter()) {
        let weight = if candidate.won { " font-weight=\"bold\"" } else { "" };
        let _ = write!(
            body,
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{color}\"{weight}>{}</text>",
            num(*x),
            num(y - 5.0),
            escape(&svg::clip(cell, *chars))
        );
    }
    body.push_str("</g>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Body;

    /// A room of version 11 made on hs1: its create event and creator's join, a message,
    /// a topic, a second message, then two messages on the same parent and a merge of
    /// them (whose prev states are one map).
    fn room() -> RoomModel {
        let event = |id: &str, kind: &str, state_key: Option<&str>, prev: &[&str], depth| {
            let mut pdu = serde_json::json!({
                "type": kind, "sender": "@u:hs1", "room_id": "!r:hs1",
                "origin_server_ts": 0, "depth": depth, "content": {"membership": "join"},
                "prev_events": prev, "auth_events": if depth > 1 { vec!["$create"] } else { vec![] },
            });
            if let Some(key) = state_key {
                pdu["state_key"] = key.into();
            }
            crate::report::model::tests::created(id, pdu)
        };
        let joined =
            Body::Joined { server: "hs1".into(), room: "!r:hs1".into(), version: "11".into() };
        let bodies = vec![
            joined,
            event("$create", "m.room.create", Some(""), &[], 1),
            event("$join", "m.room.member", Some("@u:hs1"), &["$create"], 2),
            event("$m1", "m.room.message", None, &["$join"], 3),
            event("$topic", "m.room.topic", Some(""), &["$m1"], 4),
            event("$m2", "m.room.message", None, &["$topic"], 5),
            event("$m3", "m.room.message", None, &["$m2"], 6),
            event("$m4", "m.room.message", None, &["$m2"], 6),
            event("$merge", "m.room.message", None, &["$m3", "$m4"], 7),
        ];
        let records = bodies.into_iter().enumerate().map(|(t, body)| (t as u64, body)).collect();
        crate::report::model::rooms(&crate::report::model::tests::trace(records)).remove(0)
    }

    #[test]
    fn an_event_that_changes_no_state_shares_the_state_before_it() {
        let replay = replay(&room());
        let after = |id: &str| &replay.after[id];
        // Messages, and a merge of one state: the very map before them, not a copy.
        for (event, before) in [("$m1", "$join"), ("$m2", "$topic"), ("$m3", "$m2")] {
            assert!(Arc::ptr_eq(after(event), after(before)), "{event} copied its state");
        }
        assert!(Arc::ptr_eq(after("$merge"), after("$m2")), "the merge copied its state");
        // A state event: a new map with its own entry, the map before it untouched.
        let topic = ("m.room.topic".to_owned(), String::new());
        assert!(!Arc::ptr_eq(after("$topic"), after("$m1")));
        assert_eq!(after("$topic").get(&topic).map(|id| id.as_str()), Some("$topic"));
        assert_eq!(after("$m1").get(&topic), None);
        assert_eq!(after("$topic").len(), after("$m1").len() + 1);
        assert_eq!(replay.replaced["$topic"], None, "no topic before it");
        assert_eq!(after("$merge").len(), 3, "create, join and topic");
    }
}
