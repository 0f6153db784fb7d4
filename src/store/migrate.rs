//! The migrations runner: brings an older database up to [`SCHEMA_VERSION`], one numbered step at
//! a time. Each step and the new `schemaVersion` in `meta` are written in one sled transaction,
//! then flushed. The steps themselves live in the top-level `migrations/` folder.

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;

use super::StoreError;

#[path = "../../migrations/mod.rs"]
mod steps;

/// The key of the schema version in the `meta` tree.
pub const VERSION_KEY: &str = "schemaVersion";

/// One numbered migration step.
pub struct Step {
    pub version: u32,
    pub name: &'static str,
    /// The trees the step reads or writes; the runner opens them (creating them if need be) and
    /// hands them to `run` in this order, followed by `meta`.
    pub trees: &'static [&'static str],
    /// Does the step's work. It may be retried by sled, so it does nothing outside the transaction.
    pub run: fn(&[TransactionalTree]) -> Result<(), ConflictableTransactionError<String>>,
}

/// The schema this build writes: the version of the last step.
pub const SCHEMA_VERSION: u32 = steps::STEPS[steps::STEPS.len() - 1].version;

/// The version recorded in `meta` (0 for a database that records none).
pub fn recorded_version(db: &sled::Db) -> Result<u32, StoreError> {
    let meta = db.open_tree("meta")?;
    Ok(match meta.get(VERSION_KEY)? {
        None => 0,
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
            tree: "meta",
            key: VERSION_KEY.to_owned(),
            source,
        })?,
    })
}

/// Applies every step newer than the recorded version, in order.
pub fn run(db: &sled::Db) -> Result<(), StoreError> {
    let found = recorded_version(db)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for step in steps::STEPS.iter().filter(|step| step.version > found) {
        let mut trees = step
            .trees
            .iter()
            .map(|name| db.open_tree(name))
            .collect::<Result<Vec<_>, _>>()?;
        trees.push(db.open_tree("meta")?);
        let version = serde_json::to_vec(&step.version).expect("a number serializes");
        trees
            .as_slice()
            .transaction(|views| {
                (step.run)(views)?;
                views[views.len() - 1].insert(VERSION_KEY, version.as_slice())?;
                Ok(())
            })
            .map_err(|error| match error {
                TransactionError::Abort(reason) => StoreError::Migration {
                    version: step.version,
                    name: step.name,
                    reason,
                },
                TransactionError::Storage(error) => StoreError::Sled(error),
            })?;
        db.flush()?;
        log::info!("store: migrated to schema {} ({})", step.version, step.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_at_schema_0_is_migrated_to_the_current_schema() {
        let dir = tempfile::tempdir().unwrap();
        // Schema 0: a database written before the store recorded any version. (The same handle
        // is migrated: sled releases its file lock asynchronously after a drop, so a reopen in
        // the same process can race it.)
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("meta").unwrap();
        db.insert("written-by-schema-0", b"yes".as_slice()).unwrap();
        db.flush().unwrap();
        assert_eq!(recorded_version(&db).unwrap(), 0);
        run(&db).unwrap();
        assert_eq!(recorded_version(&db).unwrap(), SCHEMA_VERSION);
        let names: Vec<String> = db
            .tree_names()
            .iter()
            .map(|name| String::from_utf8_lossy(name).into_owned())
            .collect();
        for tree in crate::store::TREES {
            assert!(names.iter().any(|name| name == tree), "tree {tree} missing");
        }
        let meta = db.open_tree("meta").unwrap();
        assert!(meta.get("createdAt").unwrap().is_some());
        assert!(
            db.get("written-by-schema-0").unwrap().is_some(),
            "migration lost data"
        );
    }

    #[test]
    fn a_database_from_a_newer_build_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let meta = db.open_tree("meta").unwrap();
        meta.insert(VERSION_KEY, b"999".as_slice()).unwrap();
        let error = run(&db).unwrap_err();
        assert!(matches!(error, StoreError::TooNew { found: 999, .. }));
        assert_eq!(recorded_version(&db).unwrap(), 999);
    }

    #[test]
    fn migrating_twice_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        run(&db).unwrap();
        let created = db.open_tree("meta").unwrap().get("createdAt").unwrap();
        run(&db).unwrap();
        assert_eq!(
            db.open_tree("meta").unwrap().get("createdAt").unwrap(),
            created
        );
    }
}
