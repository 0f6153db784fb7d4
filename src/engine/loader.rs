//! Reads the documents under `rules_dir` (docs/rules.md §1, §14, §15): every `*.json` file not starting
//! with `.`, sub-folders included, in path order. Valid files replace their stored copy in sled;
//! an invalid file is reported as `<path>: <pointer>: <reason>` and its last good version, if the
//! store has one, stays live. Stored documents whose file is gone are removed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::document::{parse_document, Document, Invalid, Kind, Step, StepBody};
use crate::store::{StoreError, Table};

/// The loaded documents, in path order.
#[derive(Debug, Default, Clone)]
pub struct DocumentSet {
    pub documents: Vec<Arc<Document>>,
    /// The relative path of each document, by id.
    pub paths: HashMap<String, String>,
}

impl DocumentSet {
    /// The document with this id, else the one with this name, compared exactly.
    pub fn by_id_or_name(&self, id: Option<&str>, name: Option<&str>) -> Option<&Arc<Document>> {
        let by_id = id.and_then(|id| self.documents.iter().find(|document| document.id == id));
        by_id.or_else(|| {
            name.and_then(|name| self.documents.iter().find(|document| document.name == name))
        })
    }

    /// The callable (docs/rules.md §10.1) with this id, else with this name.
    pub fn callable(&self, id: Option<&str>, name: Option<&str>) -> Option<&Arc<Document>> {
        let callables = || {
            self.documents
                .iter()
                .filter(|document| document.is_callable())
        };
        let by_id = id.and_then(|id| callables().find(|document| document.id == id));
        by_id.or_else(|| name.and_then(|name| callables().find(|document| document.name == name)))
    }

    /// The document with this id and kind.
    pub fn get(&self, kind: Kind, id: &str) -> Option<&Arc<Document>> {
        self.documents
            .iter()
            .find(|document| document.kind == kind && document.id == id)
    }
}

/// One entry of `GetActions` (docs/rules.md §10.2), on the WebSocket and the HTTP face alike.
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
            .documents
            .iter()
            .filter(|document| document.is_callable())
            .map(|document| Callable {
                id: document.id.clone(),
                name: document.name.clone(),
                group: document.group.clone().unwrap_or_else(|| "None".to_owned()),
                enabled: document.callable_enabled(),
                subaction_count: document.step_count(),
                trigger_count: document.triggers.len(),
            })
            .collect();
        callables.sort_by(|a, b| a.name.cmp(&b.name));
        callables
    }
}

/// The sled trees that mirror the documents: `rules` and `actions`, by id.
#[derive(Clone)]
pub struct Mirror {
    pub rules: Table<StoredDocument>,
    pub actions: Table<StoredDocument>,
}

impl Mirror {
    pub fn open(store: &crate::store::Store) -> Result<Mirror, StoreError> {
        Ok(Mirror {
            rules: store.table("rules")?,
            actions: store.table("actions")?,
        })
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
    check_with(dir, None)
}

/// Like [`check`], with the file at relative `path` replaced by `document` (`None`: removed), as
/// an API write would leave the folder.
pub fn check_with(dir: &Path, replaced: Option<(&str, Option<&Value>)>) -> Loaded {
    let mut loaded = Loaded::default();
    let mut accepted = Vec::new();
    let mut files = read_dir(dir, &mut loaded.errors);
    if let Some((path, document)) = replaced {
        files.retain(|(at, _)| at != path);
        if let Some(document) = document {
            files.push((path.to_owned(), Ok(document.clone())));
            files.sort_by(|a, b| a.0.cmp(&b.0));
        }
    }
    for (path, result) in files {
        match result {
            Ok(value) => accepted.push((path, value)),
            Err(invalid) => loaded.errors.push(line(&path, &invalid)),
        }
    }
    link(accepted, &mut loaded);
    loaded.errors.sort();
    loaded
}

/// Reads `dir`, falls back to the stored copy for invalid files, and brings the `rules` and
/// `actions` trees in line with what was loaded (flushed before returning).
pub async fn load(dir: &Path, mirror: &Mirror) -> Result<Loaded, StoreError> {
    let mut loaded = Loaded::default();
    let mut previous: HashMap<String, StoredDocument> = HashMap::new();
    for table in [&mirror.rules, &mirror.actions] {
        for (_, document) in table.scan("")? {
            previous.insert(document.path.clone(), document);
        }
    }
    let mut accepted = Vec::new();
    for (path, result) in read_dir(dir, &mut loaded.errors) {
        // A file that is not JSON, or not a valid document, keeps its last good version.
        match result.and_then(|value| parse_document(&value).map(|_| value)) {
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
        .documents
        .iter()
        .map(|d| d.id.as_str())
        .collect();
    for table in [&mirror.rules, &mirror.actions] {
        for (key, _) in table.scan("")? {
            if !live.contains(key.as_str()) {
                table.remove(&key)?;
            }
        }
    }
    for document in &loaded.documents.documents {
        let path = loaded.documents.paths[&document.id].clone();
        let Some(json) = accepted
            .iter()
            .find(|(at, _)| *at == path)
            .map(|(_, json)| json.clone())
        else {
            continue;
        };
        let table = match document.kind {
            Kind::Rule => &mirror.rules,
            Kind::Action => &mirror.actions,
        };
        table.insert(
            &document.id,
            &StoredDocument {
                path,
                document: json,
            },
        )?;
    }
    mirror.actions.flush().await?;
    Ok(loaded)
}

/// Parses each document, refuses clashes of ids and names (reported on the later file), then
/// refuses documents whose `run_action` targets are not callable.
fn link(accepted: Vec<(String, Value)>, loaded: &mut Loaded) {
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut parsed = Vec::new();
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
        parsed.push((path, action));
    }
    let callables: Vec<(String, String)> = parsed
        .iter()
        .filter(|(_, document)| document.is_callable())
        .map(|(_, document)| (document.id.clone(), document.name.clone()))
        .collect();
    for (path, document) in parsed {
        if let Some((pointer, target)) = missing_target(&document.steps, &callables) {
            loaded.errors.push(line(
                &path,
                &Invalid {
                    pointer: format!("{pointer}/action"),
                    reason: format!("no action or callable rule named {target:?}"),
                },
            ));
            continue;
        }
        loaded.documents.paths.insert(document.id.clone(), path);
        loaded.documents.documents.push(Arc::new(document));
    }
}

/// The first `run_action` whose target is neither the id nor the name of a callable.
fn missing_target(steps: &[Step], callables: &[(String, String)]) -> Option<(String, String)> {
    for step in steps {
        match &step.body {
            StepBody::RunAction(run)
                if !callables
                    .iter()
                    .any(|(id, name)| *id == run.action || *name == run.action) =>
            {
                return Some((step.path.clone(), run.action.clone()));
            }
            StepBody::If {
                then, otherwise, ..
            } => {
                if let Some(missing) =
                    missing_target(then, callables).or_else(|| missing_target(otherwise, callables))
                {
                    return Some(missing);
                }
            }
            _ => {}
        }
    }
    None
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
        assert_eq!(loaded.documents.documents.len(), 1);
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
        let table = Mirror::open(&store).unwrap();
        write(dir.path(), "celebrate.action.json", CELEBRATE);
        let loaded = load(dir.path(), &table).await.unwrap();
        assert_eq!(loaded.documents.documents.len(), 1);
        write(dir.path(), "celebrate.action.json", "{ broken");
        let loaded = load(dir.path(), &table).await.unwrap();
        assert_eq!(loaded.errors.len(), 1);
        assert_eq!(loaded.documents.documents[0].name, "Celebrate");
        std::fs::remove_file(dir.path().join("celebrate.action.json")).unwrap();
        let loaded = load(dir.path(), &table).await.unwrap();
        assert!(loaded.documents.documents.is_empty());
        assert!(table.actions.scan("").unwrap().is_empty());
    }

    proptest::proptest! {
        /// A folder with one good file and one mutated file loads the good one; the other is
        /// loaded or reported on exactly one `<path>: <pointer>: <reason>` line.
        #[test]
        fn a_mutated_file_is_loaded_or_reported_and_the_others_still_load(
            text in crate::mutate::messages(crate::mutate::rule_documents()),
        ) {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), "a.action.json", &CELEBRATE.replace("Celebrate", "Good one"));
            write(dir.path(), "b.json", &text);
            let loaded = check(dir.path());
            let documents = &loaded.documents.documents;
            proptest::prop_assert_eq!(documents[0].name.as_str(), "Good one");
            proptest::prop_assert_eq!(documents.len() + loaded.errors.len(), 2, "{:?}", loaded.errors);
            for error in &loaded.errors {
                proptest::prop_assert!(error.starts_with("b.json: "), "{}", error);
                let reason = error.splitn(3, ": ").nth(2).unwrap_or_default();
                proptest::prop_assert!(!reason.is_empty(), "{}", error);
            }
        }
    }
}
