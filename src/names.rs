//! The event sources and types Switchboard knows by name, as first spelled: those its
//! configuration names (outbound sources, rule triggers, `emit` steps) and those seen at runtime.
//!
//! The engine records the names of every event before publishing it, so that a name an
//! acknowledged event introduced is on disk with the event's other records; faces that list
//! names (the Streamer.bot face's `GetEvents`) read them. Names seen at runtime are kept in the
//! store's `meta` tree, at most [`MAX_SEEN_NAMES`] of them.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use serde_json::Value;

use crate::event::normalise;
use crate::store::{StoreError, Table};

/// The most names (sources plus types) recorded from runtime events.
pub const MAX_SEEN_NAMES: usize = 1000;
/// The `meta` key that keeps the names seen at runtime (named for the face that first listed
/// them; kept so that existing data directories keep their names).
pub const META_KEY: &str = "streamerbot.catalogue";

/// A (source, type) as first spelled; `None` for a source listed without a type.
pub type Name = (String, Option<String>);

#[derive(Debug, Default)]
struct Inner {
    configured: Vec<Name>,
    /// In the order first seen.
    seen: Vec<Name>,
    /// Normalised (source, type) of every seen name, and of sources with `""` as type.
    known: HashSet<(String, String)>,
    warned_full: bool,
}

impl Inner {
    fn remember(&mut self, source: &str, kind: Option<&str>) {
        self.known
            .insert((normalise(source), kind.map(normalise).unwrap_or_default()));
    }
}

/// The names, shared by the engine (which records them) and the faces (which list them).
pub struct Names {
    inner: RwLock<Inner>,
    meta: Table<Value>,
    /// Changes whenever a name is added or the configured names are replaced.
    generation: AtomicU64,
}

impl Names {
    /// The names seen in earlier runs, read from `meta`.
    pub fn load(meta: Table<Value>) -> Result<Names, StoreError> {
        let seen: Vec<Name> = match meta.get(META_KEY)? {
            Some(value) => serde_json::from_value(value).unwrap_or_else(|error| {
                log::warn!("names: the stored names are unreadable ({error}); starting afresh");
                Vec::new()
            }),
            None => Vec::new(),
        };
        let mut inner = Inner::default();
        for (source, kind) in &seen {
            inner.remember(source, kind.as_deref());
        }
        inner.seen = seen;
        Ok(Names {
            inner: RwLock::new(inner),
            meta,
            generation: AtomicU64::new(1),
        })
    }

    /// A number that changes whenever the names do.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The configured names, then the names seen at runtime, in order.
    pub fn all(&self) -> Vec<Name> {
        let inner = self.inner.read().expect("names lock is never poisoned");
        inner
            .configured
            .iter()
            .chain(&inner.seen)
            .cloned()
            .collect()
    }

    /// Replaces the names that come from configuration.
    pub fn set_configured(&self, names: Vec<Name>) {
        let mut inner = self.inner.write().expect("names lock is never poisoned");
        inner.configured = names;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Records the names of an event that are new; returns whether any were. The record is
    /// written to `meta` but not flushed: flush before acknowledging the event.
    pub fn record(&self, source: &str, kind: &str) -> bool {
        let key = (normalise(source), normalise(kind));
        if self
            .inner
            .read()
            .expect("names lock is never poisoned")
            .known
            .contains(&key)
        {
            return false;
        }
        let mut inner = self.inner.write().expect("names lock is never poisoned");
        if inner.known.contains(&key) {
            return false;
        }
        let new_source = !inner.known.contains(&(key.0.clone(), String::new()));
        if inner.seen.len() + usize::from(new_source) + 1 > MAX_SEEN_NAMES {
            if !inner.warned_full {
                inner.warned_full = true;
                log::warn!(
                    "names: {MAX_SEEN_NAMES} names seen at runtime are recorded; new names are no longer listed"
                );
            }
            return false;
        }
        if new_source {
            inner.seen.push((source.to_owned(), None));
            inner.remember(source, None);
        }
        inner.seen.push((source.to_owned(), Some(kind.to_owned())));
        inner.known.insert(key);
        let seen = serde_json::to_value(&inner.seen).expect("names serialize");
        self.generation.fetch_add(1, Ordering::AcqRel);
        drop(inner);
        if let Err(error) = self.meta.insert(META_KEY, &seen) {
            log::error!("names: cannot store the names seen: {error}");
        }
        true
    }
}

/// Names over a fresh store in a temporary folder (kept alive by the returned guard).
#[cfg(test)]
pub fn temporary() -> (tempfile::TempDir, Names) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = crate::store::Store::open(dir.path()).expect("store opens");
    let names = Names::load(store.meta().clone()).expect("names load");
    (dir, names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_names_are_recorded_once_in_their_first_spelling() {
        let (_dir, names) = temporary();
        let before = names.generation();
        assert!(names.record("my_game", "level.up"));
        assert!(!names.record("MyGame", "LevelUp"));
        assert!(names.record("mygame", "boss"));
        assert_eq!(
            names.all(),
            vec![
                ("my_game".to_owned(), None),
                ("my_game".to_owned(), Some("level.up".to_owned())),
                ("mygame".to_owned(), Some("boss".to_owned())),
            ]
        );
        assert_ne!(names.generation(), before);
    }

    #[test]
    fn seen_names_survive_a_reload_and_stop_at_the_limit() {
        // A restart on disk is tested end to end (tests/it/store.rs); here a second instance
        // loads what the first recorded in `meta`.
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        {
            let names = Names::load(store.meta().clone()).unwrap();
            names.record("mygame", "boss_defeated");
            for index in 0..MAX_SEEN_NAMES {
                names.record("flood", &format!("t{index}"));
            }
        }
        let names = Names::load(store.meta().clone()).unwrap();
        let all = names.all();
        assert_eq!(all.len(), MAX_SEEN_NAMES);
        assert!(all.contains(&("mygame".to_owned(), Some("boss_defeated".to_owned()))));
        assert!(!names.record("another", "name"), "full");
    }
}
