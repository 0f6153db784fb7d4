//! The event sources and types Switchboard knows by name, as first spelled: those its
//! configuration names (outbound sources, rule triggers, `emit` steps) and those seen at runtime.
//!
//! The engine records the names of every event before publishing it, so that a name an
//! acknowledged event introduced is on disk with the event's other records; faces that list
//! names (the Streamer.bot face's `GetEvents`) read them. Names seen at runtime are kept in the
//! store's `meta` tree, at most [`MAX_SEEN_NAMES`] of them.
//!
//! A name keeps its first spelling, except that a [deliberate] spelling (capitalised, without
//! separators, as Streamer.bot spells its events) replaces one guessed from a lower-case or
//! snake_case arrival: `twitch/custompowerupredemption` then `Twitch.CustomPowerUpRedemption`
//! leaves the second spelling.

use std::collections::HashMap;
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
    /// Normalised (source, type) of every seen name, and of sources with `""` as type → its
    /// place in `seen`.
    known: HashMap<(String, String), usize>,
    warned_full: bool,
}

/// Whether `name` is spelled deliberately: it starts with a capital and has no separators.
pub fn deliberate(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase()) && !name.contains(['_', '-', '.', ' '])
}

/// Whether `new` should replace the spelling `stored` of the same name.
fn better(stored: &str, new: &str) -> bool {
    deliberate(new) && !deliberate(stored)
}

impl Inner {
    fn remember(&mut self, source: &str, kind: Option<&str>) {
        let key = (normalise(source), kind.map(normalise).unwrap_or_default());
        self.known.insert(key, self.seen.len());
        self.seen.push((source.to_owned(), kind.map(str::to_owned)));
    }

    /// The place of a seen name (`kind` `""` for the source itself), and whether `spelling` is
    /// a better spelling of it.
    fn lookup(&self, key: &(String, String), spelling: &str) -> Option<(usize, bool)> {
        let &at = self.known.get(key)?;
        let (source, kind) = &self.seen[at];
        let stored = if key.1.is_empty() {
            source
        } else {
            kind.as_deref().unwrap_or_default()
        };
        Some((at, better(stored, spelling)))
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

    /// Records the names of an event that are new, or better spelled than before; returns
    /// whether any were. The record is written to `meta` but not flushed: flush before
    /// acknowledging the event.
    pub fn record(&self, source: &str, kind: &str) -> bool {
        let source_key = (normalise(source), String::new());
        let key = (source_key.0.clone(), normalise(kind));
        let settled = |inner: &Inner| {
            let source = inner.lookup(&source_key, source);
            let kind = inner.lookup(&key, kind);
            matches!((source, kind), (Some((_, false)), Some((_, false))))
        };
        if settled(&self.inner.read().expect("names lock is never poisoned")) {
            return false;
        }
        let mut inner = self.inner.write().expect("names lock is never poisoned");
        if settled(&inner) {
            return false;
        }
        let source_seen = inner.lookup(&source_key, source);
        let kind_seen = inner.lookup(&key, kind);
        // Better spellings take no room: they are kept even when the list is full. (A source's
        // spelling is its own entry's; the entries of its types keep the spelling they came with,
        // and the source's entry, always listed first, decides.)
        let mut changed = false;
        if let Some((at, true)) = source_seen {
            inner.seen[at].0 = source.to_owned();
            changed = true;
        }
        if let Some((at, true)) = kind_seen {
            inner.seen[at].1 = Some(kind.to_owned());
            changed = true;
        }
        let new_names = usize::from(source_seen.is_none()) + usize::from(kind_seen.is_none());
        if new_names > 0 && inner.seen.len() + new_names > MAX_SEEN_NAMES {
            if !inner.warned_full {
                inner.warned_full = true;
                log::warn!(
                    "names: {MAX_SEEN_NAMES} names seen at runtime are recorded; new names are no longer listed"
                );
            }
        } else {
            if source_seen.is_none() {
                inner.remember(source, None);
            }
            if kind_seen.is_none() {
                inner.remember(source, Some(kind));
            }
            changed |= new_names > 0;
        }
        if !changed {
            return false;
        }
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
        assert!(
            !names.record("mygame", "level_up"),
            "another guess changes nothing"
        );
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
    fn a_deliberate_spelling_replaces_a_guessed_one_and_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        {
            let names = Names::load(store.meta().clone()).unwrap();
            assert!(names.record("twitch", "custompowerupredemption"));
            assert!(names.record("Twitch", "CustomPowerUpRedemption"));
            assert!(
                !names.record("twitch", "custom_power_up_redemption"),
                "no way back"
            );
        }
        let names = Names::load(store.meta().clone()).unwrap();
        assert_eq!(
            names.all(),
            vec![
                ("Twitch".to_owned(), None),
                (
                    "twitch".to_owned(),
                    Some("CustomPowerUpRedemption".to_owned())
                ),
            ]
        );
        assert!(deliberate("BossDefeated") && !deliberate("boss_defeated"));
        assert!(!deliberate("Boss_Defeated") && !deliberate(""));
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
        assert!(
            names.record("Flood", "T0"),
            "a better spelling takes no room"
        );
        assert_eq!(names.all()[2], ("Flood".to_owned(), None));
    }
}
