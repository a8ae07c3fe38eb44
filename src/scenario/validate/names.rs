//! Names and values shared by every section: labels, declared users and servers, room
//! versions, times and durations, power levels, and event content as canonical JSON.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use toml::Spanned;

use super::{Builder, Result, span};
use crate::matrix::room_version::RoomVersion;
use crate::scenario::{DURATION_MS_MAX, LABEL_BYTES_MAX, ROOM_VERSION_DEFAULT, TIME_MS_MAX};

/// The largest magnitude of an integer in canonical JSON (and so in event content and
/// power levels): 2^53 - 1.
const JSON_INT_MAX: i64 = (1 << 53) - 1;

impl Builder<'_> {
    /// A scenario name, step label or room label: `[A-Za-z0-9._-]`, 1 to 64 bytes.
    pub(super) fn label(&self, text: &Spanned<String>, what: &str) -> Result<String> {
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

    /// A user id that the scenario declares, and its server.
    pub(super) fn known_user(&self, user: &Spanned<String>) -> Result<(String, String)> {
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

    pub(super) fn known_server(&self, server: &Spanned<String>) -> Result<String> {
        if self.servers.iter().any(|s| &s.name == server.get_ref()) {
            return Ok(server.get_ref().clone());
        }
        Err(self.error(span(server), format!("unknown server {:?}", server.get_ref())))
    }

    /// A room version, parsed once into the protocol core's type: one of
    /// [`RoomVersion::ALL`], the DAG room versions, or of [`RoomVersion::LINEARIZED`], the
    /// Linearized Matrix draft's version (docs/linearized.md).
    pub(super) fn room_version(&self, version: Option<&Spanned<String>>) -> Result<RoomVersion> {
        let Some(version) = version else { return Ok(ROOM_VERSION_DEFAULT) };
        RoomVersion::parse_any(version.get_ref()).map_err(|_| {
            let supported: Vec<&str> = RoomVersion::ALL
                .iter()
                .chain(&RoomVersion::LINEARIZED)
                .map(|v| v.as_str())
                .collect();
            let problem = format!(
                "unknown room version {:?}: mxsim supports {}",
                version.get_ref(),
                supported.join(", ")
            );
            self.error(span(version), problem)
        })
    }

    pub(super) fn time(&self, at_ms: &Spanned<u64>, field: &str) -> Result<u64> {
        let ms = *at_ms.get_ref();
        if ms > TIME_MS_MAX {
            let problem = format!(
                "{field} ({ms}) is after the latest allowed time ({TIME_MS_MAX}, one week)"
            );
            return Err(self.error(span(at_ms), problem));
        }
        Ok(ms)
    }

    pub(super) fn duration(&self, ms: &Spanned<u64>, field: &str) -> Result<u64> {
        let value = *ms.get_ref();
        if value > DURATION_MS_MAX {
            let problem =
                format!("{field} ({value}) is above the limit of {DURATION_MS_MAX} (one day)");
            return Err(self.error(span(ms), problem));
        }
        Ok(value)
    }

    pub(super) fn power_level(&self, level: &Spanned<i64>) -> Result<i64> {
        let value = *level.get_ref();
        if value.unsigned_abs() > JSON_INT_MAX.unsigned_abs() {
            let problem = format!("power level {value} is beyond ±{JSON_INT_MAX} (canonical JSON)");
            return Err(self.error(span(level), problem));
        }
        Ok(value)
    }

    /// Event content: TOML values as JSON, refusing what canonical JSON cannot hold.
    pub(super) fn content(
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
