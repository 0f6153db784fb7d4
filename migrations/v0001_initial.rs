//! Schema 1: the first layout. Creates every tree of the store (the runner opens the trees a
//! step names) and records when the database was created.

use sled::transaction::{ConflictableTransactionError, TransactionalTree};

pub const TREES: &[&str] = &[
    "actions",
    "rules",
    "credits",
    "globals",
    "users",
    "limits",
    "connections",
];

/// `trees` holds the trees above, then `meta`.
pub fn run(trees: &[TransactionalTree]) -> Result<(), ConflictableTransactionError<String>> {
    let meta = &trees[TREES.len()];
    let now = serde_json::to_vec(&chrono::Utc::now().to_rfc3339()).expect("a string serializes");
    meta.insert("createdAt", now)?;
    Ok(())
}
