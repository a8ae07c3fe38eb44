//! Whether a value built in memory can be written as canonical JSON ([`check`],
//! [`check_object`]): every number an integer in range, and if not, where the first one
//! that is not lies, as a JSON path.

use serde_json::Value;

use super::{INT_MAX, INT_MIN, Object, ValueError};

/// Checks that a value built in memory (or by `serde_json`) is canonical-JSON-representable:
/// every number an integer in range.
pub fn check(value: &Value) -> Result<(), ValueError> {
    // Most values are fine: found so without building a path, which is built only to
    // name what is wrong (building it cost more than the check on every outgoing PDU).
    if representable(value) {
        return Ok(());
    }
    let mut path = String::from("$");
    let result = check_at(value, &mut path);
    debug_assert!(result.is_err(), "representable and check_at disagree");
    result
}

/// Whether every number in the value is an integer in canonical JSON's range: [`check`]
/// without the error.
fn representable(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.as_i64().is_some_and(|i| (INT_MIN..=INT_MAX).contains(&i)),
        Value::Array(items) => items.iter().all(representable),
        Value::Object(map) => map.values().all(representable),
        Value::Null | Value::Bool(_) | Value::String(_) => true,
    }
}

fn check_at(value: &Value, path: &mut String) -> Result<(), ValueError> {
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(i) if (INT_MIN..=INT_MAX).contains(&i) => Ok(()),
            Some(_) => Err(value_error(path, "integer out of the range [-(2^53)+1, 2^53-1]")),
            None if n.is_u64() => {
                Err(value_error(path, "integer out of the range [-(2^53)+1, 2^53-1]"))
            }
            None => Err(value_error(path, "floats are not permitted in canonical JSON")),
        },
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{index}]"));
                check_at(item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                push_key(path, key);
                check_at(item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
    }
}

/// Appends `.key` (or `["key"]` when the key is not a plain identifier) to a JSON path.
pub fn push_key(path: &mut String, key: &str) {
    let plain = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if plain {
        path.push('.');
        path.push_str(key);
    } else {
        path.push_str("[\"");
        for c in key.chars() {
            if c == '"' || c == '\\' {
                path.push('\\');
            }
            path.push(c);
        }
        path.push_str("\"]");
    }
}

fn value_error(path: &str, problem: &str) -> ValueError {
    ValueError { path: path.to_owned(), problem: problem.to_owned() }
}

/// Checks an object like [`check`] does a value.
pub fn check_object(object: &Object) -> Result<(), ValueError> {
    if object.values().all(representable) {
        return Ok(());
    }
    let mut path = String::from("$");
    for (key, item) in object {
        let len = path.len();
        push_key(&mut path, key);
        check_at(item, &mut path)?;
        path.truncate(len);
    }
    Ok(())
}
