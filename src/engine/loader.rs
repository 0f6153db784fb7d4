//! Reads the documents under `rules_dir` (rules.md §1, §14, §15): every `*.json` file not starting
//! with `.`, sub-folders included, in path order. Valid files replace their stored copy in sled;
//! an invalid file is reported as `<path>: <pointer>: <reason>` and its last good version, if the
//! store has one, stays live. Stored documents whose file is gone are removed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::document::{parse_action, Action, Invalid};
use crate::store::{StoreError, Table};

/// The loaded documents, in path order.
#[derive(Debug, Default)]
pub struct DocumentSet {
    pub actions: Vec<Arc<Action>>,
}

impl DocumentSet {
    /// The callable with this id, else the one with this name, compared exactly (rules.md §10.1).
    pub fn callable(&self, id: Option<&str>, name: Option<&str>) -> Option<&Arc<Action>> {
        let by_id = id.and_then(|id| self.actions.iter().find(|action| action.id == id));
        by_id.or_else(|| {
            name.and_then(|name| self.actions.iter().find(|action| action.name == name))
        })
    }
}

/// One entry of `GetActions` (rules.md §10.2), on the WebSocket and the HTTP face alike.
#[derive(Debug, Clone, Serialize)]
pub struct Callable {
    pub id: String,
    pub name: String,
    pub group: String,
    pub enabled: bool,
    pub subaction_count: usize,
    pub trigger_count: usize,
}

impl DocumentSet {
    /// Every callable, sorted by name.
    pub fn callables(&self) -> Vec<Callable> {
        let mut callables: Vec<Callable> = self
            .actions
            .iter()
            .map(|action| Callable {
                id: action.id.clone(),
                name: action.name.clone(),
                group: action.group.clone().unwrap_or_else(|| "None".to_owned()),
                enabled: action.enabled,
                subaction_count: action.step_count(),
                trigger_count: 0,
            })
            .collect();
        callables.sort_by(|a, b| a.name.cmp(&b.name));
        callables
    }
}

/// A stored copy of a document: where it came from and its last good JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredDocument {
    pub path: String,
    pub document: Value,
}

/// The outcome of reading a folder.
#[derive(Debug, Default)]
pub struct Loaded {
    pub documents: DocumentSet,
    /// One `<path>: <pointer>: <reason>` line per refused file.
    pub errors: Vec<String>,
}

/// Reads and validates every document file under `dir`, without touching the store.
pub fn check(dir: &Path) -> Loaded {
    let mut loaded = Loaded::default();
    let mut accepted = Vec::new();
    for (path, result) in read_dir(dir, &mut loaded.errors) {
        match result {
            Ok(value) => accepted.push((path, value)),
            Err(invalid) => loaded.errors.push(line(&path, &invalid)),
        }
    }
    link(accepted, &mut loaded);
    loaded.errors.sort();
    loaded
}

/// Reads `dir`, falls back to the stored copy for invalid files, and brings the `actions` tree in
/// line with what was loaded (flushed before returning).
pub async fn load(dir: &Path, stored: &Table<StoredDocument>) -> Result<Loaded, StoreError> {
    let mut loaded = Loaded::default();
    let previous: HashMap<String, StoredDocument> = stored
        .scan("")?
        .into_iter()
        .map(|(_, document)| (document.path.clone(), document))
        .collect();
    let mut accepted = Vec::new();
    for (path, result) in read_dir(dir, &mut loaded.errors) {
        match result {
            Ok(value) => accepted.push((path, value)),
            Err(invalid) => {
                loaded.errors.push(line(&path, &invalid));
                if let Some(last_good) = previous.get(&path) {
                    log::warn!("rules: {path}: keeping the last good version");
                    accepted.push((path, last_good.document.clone()));
                }
            }
        }
    }
    link(accepted.clone(), &mut loaded);
    loaded.errors.sort();
    let live: HashSet<&str> = loaded
        .documents
        .actions
        .iter()
        .map(|a| a.id.as_str())
        .collect();
    for (key, _) in stored.scan("")? {
        if !live.contains(key.as_str()) {
            stored.delete(&key).await?;
        }
    }
    for (path, document) in accepted {
        let id = document
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if live.contains(id.as_str()) {
            stored.insert(&id, &StoredDocument { path, document })?;
        }
    }
    stored.flush().await?;
    Ok(loaded)
}

/// Parses each document and refuses clashes of ids and names, reported on the later file.
fn link(accepted: Vec<(String, Value)>, loaded: &mut Loaded) {
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for (path, value) in accepted {
        let action = match parse_document(&value) {
            Ok(action) => action,
            Err(invalid) => {
                loaded.errors.push(line(&path, &invalid));
                continue;
            }
        };
        if let Some(other) = ids.get(&action.id) {
            loaded.errors.push(line(
                &path,
                &Invalid {
                    pointer: "/id".into(),
                    reason: format!("id {:?} is already used by {other}", action.id),
                },
            ));
            continue;
        }
        let folded = action.name.trim().to_lowercase();
        if let Some(other) = names.get(&folded) {
            loaded.errors.push(line(
                &path,
                &Invalid {
                    pointer: "/name".into(),
                    reason: format!("name {:?} is already used by {other}", action.name),
                },
            ));
            continue;
        }
        ids.insert(action.id.clone(), path.clone());
        names.insert(folded, path.clone());
        loaded.documents.actions.push(Arc::new(action));
    }
}

fn parse_document(value: &Value) -> Result<Action, Invalid> {
    match value.get("kind").and_then(Value::as_str) {
        Some("action") => parse_action(value),
        Some("rule") => Err(Invalid {
            pointer: "/kind".into(),
            reason: "rule documents are not run by this build yet (they come with the rule engine)"
                .into(),
        }),
        Some(other) => Err(Invalid {
            pointer: "/kind".into(),
            reason: format!("unknown variant `{other}`, expected `rule` or `action`"),
        }),
        None => Err(Invalid {
            pointer: String::new(),
            reason: "missing field `kind`".into(),
        }),
    }
}

fn line(path: &str, invalid: &Invalid) -> String {
    format!("{path}: {}: {}", invalid.pointer, invalid.reason)
}

/// Every document file under `dir` in path order, with its JSON or why it could not be read.
fn read_dir(dir: &Path, errors: &mut Vec<String>) -> Vec<(String, Result<Value, Invalid>)> {
    let mut files = Vec::new();
    collect(dir, &mut files, errors);
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let relative = file
                .strip_prefix(dir)
                .unwrap_or(&file)
                .to_string_lossy()
                .replace('\\', "/");
            let value = std::fs::read_to_string(&file)
                .map_err(|error| Invalid {
                    pointer: String::new(),
                    reason: error.to_string(),
                })
                .and_then(|text| {
                    serde_json::from_str(&text).map_err(|error| Invalid {
                        pointer: String::new(),
                        reason: error.to_string(),
                    })
                });
            (relative, value)
        })
        .collect()
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return,
        Err(error) => {
            errors.push(format!("{}: : {error}", dir.display()));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(&path, files, errors);
        } else if name.ends_with(".json") {
            files.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    const CELEBRATE: &str = r#"{"kind":"action","schemaVersion":1,"id":"01JC1XMWCEJZ05XHT5GMEJ146S","name":"Celebrate","steps":[{"kind":"log","message":"hi"}]}"#;

    #[test]
    fn clashes_are_reported_on_the_later_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.action.json", CELEBRATE);
        write(
            dir.path(),
            "b/second.action.json",
            &CELEBRATE
                .replace("01JC1XMWCEJZ05XHT5GMEJ146S", "01JC1XMWCEJZ05XHT5GMEJ146T")
                .replace("Celebrate", " celebrate"),
        );
        write(dir.path(), "broken.action.json", "{\"kind\":");
        write(dir.path(), ".hidden.json", "nonsense");
        let loaded = check(dir.path());
        assert_eq!(loaded.documents.actions.len(), 1);
        assert_eq!(loaded.errors.len(), 2, "{:?}", loaded.errors);
        assert!(
            loaded.errors[0].starts_with(
                "b/second.action.json: /name: name \" celebrate\" is already used by a.action.json"
            ),
            "{:?}",
            loaded.errors
        );
        assert!(
            loaded.errors[1].starts_with("broken.action.json: : EOF"),
            "{:?}",
            loaded.errors
        );
    }

    #[actix_rt::test]
    async fn an_invalid_file_keeps_the_last_good_version() {
        let dir = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(data.path()).unwrap();
        let table = store.table::<StoredDocument>("actions").unwrap();
        write(dir.path(), "celebrate.action.json", CELEBRATE);
        assert_eq!(
            load(dir.path(), &table)
                .await
                .unwrap()
                .documents
                .actions
                .len(),
            1
        );
        write(dir.path(), "celebrate.action.json", "{ broken");
        let loaded = load(dir.path(), &table).await.unwrap();
        assert_eq!(loaded.errors.len(), 1);
        assert_eq!(loaded.documents.actions[0].name, "Celebrate");
        std::fs::remove_file(dir.path().join("celebrate.action.json")).unwrap();
        let loaded = load(dir.path(), &table).await.unwrap();
        assert!(loaded.documents.actions.is_empty());
        assert!(table.scan("").unwrap().is_empty());
    }
}
