//! The engine's side of the HTTP document API (docs/rules.md §15): reading the stored documents,
//! writing and deleting their files (validated first, written atomically), and applying the
//! change at once instead of waiting for the watcher.

use std::path::PathBuf;

use actix::prelude::*;
use serde_json::Value;

use super::document::Kind;
use super::{EngineError, RuleEngine};

/// The stored JSON of every document of a kind, in path order.
#[derive(Message)]
#[rtype(result = "Result<Vec<Value>, EngineError>")]
pub struct ListDocuments {
    pub kind: Kind,
}

/// The stored JSON of one document.
#[derive(Message)]
#[rtype(result = "Result<Option<Value>, EngineError>")]
pub struct GetDocument {
    pub kind: Kind,
    pub id: String,
}

/// Creates or replaces a document; answers its relative path once live and flushed.
#[derive(Message)]
#[rtype(result = "Result<String, EngineError>")]
pub struct PutDocument {
    pub kind: Kind,
    pub id: String,
    pub document: Value,
}

/// Deletes a document's file; answers once the change is live.
#[derive(Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct DeleteDocument {
    pub kind: Kind,
    pub id: String,
}

impl RuleEngine {
    fn table(&self, kind: Kind) -> &crate::store::Table<super::loader::StoredDocument> {
        match kind {
            Kind::Rule => &self.mirror.rules,
            Kind::Action => &self.mirror.actions,
        }
    }

    /// The path of an existing document, or the one a new document of that kind gets.
    fn path_for(&self, kind: Kind, id: &str) -> String {
        self.documents
            .paths
            .get(id)
            .cloned()
            .unwrap_or_else(|| format!("{id}.{}.json", kind.name()))
    }

    /// Writes (or removes) a file off the actor's thread, then reloads and swaps the documents.
    fn apply(
        &mut self,
        file: PathBuf,
        contents: Option<String>,
    ) -> ResponseActFuture<Self, Result<(), EngineError>> {
        let dir = self.rules_dir.clone();
        let mirror = self.mirror.clone();
        Box::pin(
            async move {
                actix_rt::task::spawn_blocking(move || {
                    write_atomically(&file, contents.as_deref())
                })
                .await
                .map_err(|error| EngineError::Invalid(format!("the write failed: {error}")))?
                .map_err(|error| EngineError::Invalid(format!("cannot write the file: {error}")))?;
                Ok(super::loader::load(&dir, &mirror).await?)
            }
            .into_actor(self)
            .map(
                |loaded: Result<super::loader::Loaded, EngineError>, engine, _| {
                    let loaded = loaded?;
                    engine.swap(loaded.documents);
                    Ok(())
                },
            ),
        )
    }
}

/// Replaces `file` by writing a temporary file beside it and renaming it; `None` removes it.
fn write_atomically(file: &std::path::Path, contents: Option<&str>) -> std::io::Result<()> {
    match contents {
        None => std::fs::remove_file(file),
        Some(contents) => {
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let name = file
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            let temporary = file.with_file_name(format!(".{name}.tmp"));
            std::fs::write(&temporary, contents)?;
            std::fs::rename(&temporary, file)
        }
    }
}

impl Handler<ListDocuments> for RuleEngine {
    type Result = Result<Vec<Value>, EngineError>;

    fn handle(&mut self, message: ListDocuments, _: &mut Context<Self>) -> Self::Result {
        let mut stored = self.table(message.kind).scan("")?;
        stored.sort_by(|a, b| a.1.path.cmp(&b.1.path));
        Ok(stored
            .into_iter()
            .map(|(_, stored)| stored.document)
            .collect())
    }
}

impl Handler<GetDocument> for RuleEngine {
    type Result = Result<Option<Value>, EngineError>;

    fn handle(&mut self, message: GetDocument, _: &mut Context<Self>) -> Self::Result {
        Ok(self
            .table(message.kind)
            .get(&message.id)?
            .map(|stored| stored.document))
    }
}

impl Handler<PutDocument> for RuleEngine {
    type Result = ResponseActFuture<Self, Result<String, EngineError>>;

    fn handle(&mut self, message: PutDocument, _: &mut Context<Self>) -> Self::Result {
        let refuse = |reason: String| -> Self::Result {
            Box::pin(fut::ready(Err(EngineError::Invalid(reason))))
        };
        let mut document = message.document;
        let Some(object) = document.as_object_mut() else {
            return refuse(": : a document is a JSON object".into());
        };
        match object.get("id") {
            None => {
                object.insert("id".into(), Value::String(message.id.clone()));
            }
            Some(Value::String(id)) if *id == message.id => {}
            Some(other) => {
                return refuse(format!(
                    ": /id: {other} differs from the id in the URL ({})",
                    message.id
                ))
            }
        }
        if object.get("kind").and_then(Value::as_str) != Some(message.kind.name()) {
            return refuse(format!(
                ": /kind: this endpoint takes `{}` documents",
                message.kind.name()
            ));
        }
        if let Some(other) = self
            .documents
            .documents
            .iter()
            .find(|document| document.id == message.id && document.kind != message.kind)
        {
            return refuse(format!(
                ": /kind: `{}` is a {}: change it at /{}s/{}, or delete it first",
                message.id,
                other.kind.name(),
                other.kind.name(),
                message.id
            ));
        }
        let path = self.path_for(message.kind, &message.id);
        let checked = super::loader::check_with(&self.rules_dir, Some((&path, Some(&document))));
        let own: Vec<&String> = checked
            .errors
            .iter()
            .filter(|line| line.starts_with(&format!("{path}: ")))
            .collect();
        if !own.is_empty() {
            return refuse(
                own.iter()
                    .map(|line| line.as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
        }
        let contents = serde_json::to_string_pretty(&document).expect("documents serialize") + "\n";
        let file = self.rules_dir.join(&path);
        Box::pin(
            self.apply(file, Some(contents))
                .map(move |result, _, _| result.map(|()| path)),
        )
    }
}

impl Handler<DeleteDocument> for RuleEngine {
    type Result = ResponseActFuture<Self, Result<(), EngineError>>;

    fn handle(&mut self, message: DeleteDocument, _: &mut Context<Self>) -> Self::Result {
        if self.documents.get(message.kind, &message.id).is_none() {
            return Box::pin(fut::ready(Err(EngineError::DocumentNotFound(message.id))));
        }
        let file = self
            .rules_dir
            .join(self.path_for(message.kind, &message.id));
        self.apply(file, None)
    }
}
