//! `GetGlobals`, `GetGlobal`, `<Platform>GetUserGlobals` and `<Platform>GetUserGlobal`
//! (docs/streamerbot.md §4.8): read straight from the store's `globals` tree, keys `g/<name>` and
//! `u/<source>:<userId>/<name>`, values `{"value", "updatedAt", "username"?, "nickname"?}`.

use serde_json::{json, Map, Value};

use super::param;
use super::protocol::{Platform, Reply};
use crate::store::Table;

fn store_failure(error: crate::store::StoreError) -> Reply {
    log::error!("streamerbot: cannot read variables: {error}");
    Reply::error(format!("Internal error: {error}"))
}

fn last_write(record: &Value) -> Value {
    record.get("updatedAt").cloned().unwrap_or(Value::Null)
}

fn global_entry(name: &str, record: &Value) -> Value {
    json!({"name": name, "value": record.get("value").cloned().unwrap_or(Value::Null), "lastWrite": last_write(record)})
}

/// Every global, keyed by name (an empty set for temporary variables, which Switchboard lacks).
pub fn globals(table: &Table<Value>, persisted: bool) -> Reply {
    let records = if persisted {
        match table.scan("g/") {
            Ok(records) => records,
            Err(error) => return store_failure(error),
        }
    } else {
        Vec::new()
    };
    let variables: Map<String, Value> = records
        .iter()
        .map(|(key, record)| {
            let name = &key["g/".len()..];
            (name.to_owned(), global_entry(name, record))
        })
        .collect();
    Reply::with(json!({"count": variables.len(), "variables": variables}))
}

/// One global, in both shapes the clients read.
pub fn global(table: &Table<Value>, request: &Map<String, Value>, persisted: bool) -> Reply {
    let Some(name) = param(request, "variable")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        return Reply::error("variable must be a non-empty string");
    };
    if !persisted {
        return Reply::error("Variable not found");
    }
    match table.get(&format!("g/{name}")) {
        Ok(Some(record)) => {
            let entry = global_entry(name, &record);
            Reply::with(json!({"count": 1, "variable": entry, "variables": {name: entry}}))
        }
        Ok(None) => Reply::error("Variable not found"),
        Err(error) => store_failure(error),
    }
}

fn variable_filter(request: &Map<String, Value>) -> Result<Option<String>, Reply> {
    match param(request, "variable") {
        None => Ok(None),
        Some(Value::String(name)) => Ok(Some(name.clone())),
        Some(_) => Err(Reply::error("variable must be a string or null")),
    }
}

/// User variables of `prefix`, as entries sorted by name then user id.
fn user_entries(
    table: &Table<Value>,
    platform: Platform,
    prefix: &str,
    variable: Option<&str>,
) -> Result<Vec<Value>, Reply> {
    let records = table.scan(prefix).map_err(store_failure)?;
    let mut entries: Vec<Value> = records
        .iter()
        .filter_map(|(key, record)| {
            let rest = key.strip_prefix(&format!("u/{}:", platform.source()))?;
            let (user_id, name) = rest.split_once('/')?;
            if variable.is_some_and(|wanted| wanted != name) {
                return None;
            }
            let text = |field: &str| {
                record
                    .get(field)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            Some(json!({
                "name": name,
                "userId": user_id,
                "userLogin": text("username"),
                "userName": text("nickname"),
                "platform": platform.source(),
                "value": record.get("value").cloned().unwrap_or(Value::Null),
                "lastWrite": last_write(record),
            }))
        })
        .collect();
    entries.sort_by(|a, b| {
        (a["name"].as_str(), a["userId"].as_str()).cmp(&(b["name"].as_str(), b["userId"].as_str()))
    });
    Ok(entries)
}

/// `<Platform>GetUserGlobals`: that platform's user variables, filtered by `variable`.
pub fn user_globals(
    table: &Table<Value>,
    platform: Platform,
    request: &Map<String, Value>,
    persisted: bool,
) -> Reply {
    let variable = match variable_filter(request) {
        Ok(variable) => variable,
        Err(reply) => return reply,
    };
    if !persisted {
        return Reply::with(json!({"count": 0, "variables": []}));
    }
    match user_entries(
        table,
        platform,
        &format!("u/{}:", platform.source()),
        variable.as_deref(),
    ) {
        Ok(entries) => Reply::with(json!({"count": entries.len(), "variables": entries})),
        Err(reply) => reply,
    }
}

/// `<Platform>GetUserGlobal`: one user's variables as an array, and the named one as `variable`.
pub fn user_global(
    table: &Table<Value>,
    platform: Platform,
    request: &Map<String, Value>,
    persisted: bool,
) -> Reply {
    let user_id = match param(request, "userId") {
        Some(Value::String(id)) => id.clone(),
        Some(Value::Number(number)) => number.to_string(),
        _ => return Reply::error("userId must be a string"),
    };
    let variable = match variable_filter(request) {
        Ok(variable) => variable,
        Err(reply) => return reply,
    };
    let entries = if persisted {
        let prefix = format!("u/{}:{user_id}/", platform.source());
        match user_entries(table, platform, &prefix, variable.as_deref()) {
            Ok(entries) => entries,
            Err(reply) => return reply,
        }
    } else {
        Vec::new()
    };
    match (variable, entries.first()) {
        (Some(_), None) => Reply::error("Variable not found"),
        (Some(_), Some(entry)) => {
            Reply::with(json!({"count": entries.len(), "variable": entry, "variables": entries}))
        }
        (None, _) => Reply::with(json!({"count": entries.len(), "variables": entries})),
    }
}
