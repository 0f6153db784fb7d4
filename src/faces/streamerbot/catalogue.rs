//! The Streamer.bot event catalogue (`GetEvents`) and the rendering of names in Streamer.bot's
//! PascalCase vocabulary (streamerbot.md §5.3, §5.4).
//!
//! The catalogue is Streamer.bot's own list, then Switchboard's categories, then categories and
//! types from configuration (set by the engine when rules load), then names seen at runtime, which
//! are kept in the store's `meta` tree. The registry renders every published event through it; the
//! face reads it for `GetEvents` and for the spelling of subscriptions.

use std::collections::HashMap;
use std::sync::RwLock;

use serde_json::{Map, Value};

use crate::event::normalise;
use crate::store::{StoreError, Table};

/// Streamer.bot's categories and types, as published in `@streamerbot/client` 1.12.x.
const STREAMERBOT_CATALOGUE: &str = include_str!("catalogue.txt");
/// Switchboard's own categories, listed after Streamer.bot's.
const SWITCHBOARD_CATEGORIES: &[(&str, &[&str])] = &[
    ("Switchboard", &["RuleDenied"]),
    ("TikTok", &[]),
    ("Discord", &[]),
];
/// The most names (categories plus types) recorded from runtime events.
pub const MAX_SEEN_NAMES: usize = 1000;
/// The `meta` key that keeps the names seen at runtime.
pub const META_KEY: &str = "streamerbot.catalogue";

/// Renders `name` by the PascalCase rule: split at `_`, `-`, `.` and spaces, upper-case the first
/// ASCII letter of each piece, join. A name that already starts with a capital and has no
/// separators is kept, and so is a name made only of separators.
pub fn pascal_case(name: &str) -> String {
    let is_separator = |c: char| matches!(c, '_' | '-' | '.' | ' ');
    if name.starts_with(|c: char| c.is_ascii_uppercase()) && !name.contains(is_separator) {
        return name.to_owned();
    }
    let pieces: Vec<&str> = name.split(is_separator).filter(|p| !p.is_empty()).collect();
    if pieces.is_empty() {
        return name.to_owned();
    }
    pieces
        .iter()
        .map(|piece| {
            let mut chars = piece.chars();
            let first = chars.next().expect("pieces are not empty");
            first.to_ascii_uppercase().to_string() + chars.as_str()
        })
        .collect()
}

#[derive(Debug, Clone)]
struct Category {
    name: String,
    types: Vec<String>,
    /// Normalised type → index in `types`.
    index: HashMap<String, usize>,
}

#[derive(Debug, Default)]
struct Inner {
    categories: Vec<Category>,
    /// Normalised category → index in `categories`.
    index: HashMap<String, usize>,
    /// Configured (source, type) pairs, as the engine last set them.
    configured: Vec<(String, Option<String>)>,
    /// Names recorded from runtime events, in the order first seen: (category, type).
    seen: Vec<(String, Option<String>)>,
    warned_full: bool,
}

impl Inner {
    /// Adds a category (and a type under it) unless present; returns the rendered names and
    /// whether anything was added.
    fn add(&mut self, source: &str, kind: Option<&str>) -> (String, Option<String>, bool) {
        let mut added = false;
        let position = match self.index.get(&normalise(source)) {
            Some(&position) => position,
            None => {
                let name = pascal_case(source);
                self.index.insert(normalise(&name), self.categories.len());
                self.categories.push(Category {
                    name,
                    types: Vec::new(),
                    index: HashMap::new(),
                });
                added = true;
                self.categories.len() - 1
            }
        };
        let category = &mut self.categories[position];
        let kind = kind.map(|kind| match category.index.get(&normalise(kind)) {
            Some(&at) => category.types[at].clone(),
            None => {
                let name = pascal_case(kind);
                category
                    .index
                    .insert(normalise(&name), category.types.len());
                category.types.push(name.clone());
                added = true;
                name
            }
        });
        (category.name.clone(), kind, added)
    }

    fn lookup(&self, source: &str, kind: &str) -> Option<(String, String)> {
        let category = &self.categories[*self.index.get(&normalise(source))?];
        let at = *category.index.get(&normalise(kind))?;
        Some((category.name.clone(), category.types[at].clone()))
    }

    fn rebuild(&mut self) {
        self.categories.clear();
        self.index.clear();
        for line in STREAMERBOT_CATALOGUE.lines() {
            if let Some((category, types)) = line.split_once(':') {
                self.add(category.trim(), None);
                for kind in types.split_whitespace() {
                    self.add(category.trim(), Some(kind));
                }
            }
        }
        for (category, types) in SWITCHBOARD_CATEGORIES {
            self.add(category, None);
            for kind in *types {
                self.add(category, Some(kind));
            }
        }
        for (source, kind) in self.configured.clone() {
            self.add(&source, kind.as_deref());
        }
        for (source, kind) in self.seen.clone() {
            self.add(&source, kind.as_deref());
        }
    }
}

/// The catalogue, shared by the registry (rendering) and the face (`GetEvents`).
pub struct Catalogue {
    inner: RwLock<Inner>,
    meta: Table<Value>,
}

impl Catalogue {
    /// The catalogue with the names seen in earlier runs, read from `meta`.
    pub fn load(meta: Table<Value>) -> Result<Catalogue, StoreError> {
        let seen = match meta.get(META_KEY)? {
            Some(value) => serde_json::from_value(value).unwrap_or_else(|error| {
                log::warn!(
                    "streamerbot: the stored catalogue is unreadable ({error}); starting afresh"
                );
                Vec::new()
            }),
            None => Vec::new(),
        };
        let mut inner = Inner {
            seen,
            ..Inner::default()
        };
        inner.rebuild();
        Ok(Catalogue {
            inner: RwLock::new(inner),
            meta,
        })
    }

    /// Replaces the categories and types that come from configuration (outbound sources, rule
    /// triggers, `emit` steps).
    pub fn set_configured(&self, pairs: Vec<(String, Option<String>)>) {
        let mut inner = self
            .inner
            .write()
            .expect("catalogue lock is never poisoned");
        inner.configured = pairs;
        inner.rebuild();
    }

    /// The rendered (source, type) of an event, recording names not yet listed.
    pub fn render(&self, source: &str, kind: &str) -> (String, String) {
        self.render_and_record(source, kind).0
    }

    /// Records the names of an event that are not yet listed; returns whether any were. The
    /// record is written to `meta` but not flushed: flush before acknowledging the event.
    pub fn record(&self, source: &str, kind: &str) -> bool {
        self.render_and_record(source, kind).1
    }

    fn render_and_record(&self, source: &str, kind: &str) -> ((String, String), bool) {
        if let Some(names) = self
            .inner
            .read()
            .expect("catalogue lock is never poisoned")
            .lookup(source, kind)
        {
            return (names, false);
        }
        let mut inner = self
            .inner
            .write()
            .expect("catalogue lock is never poisoned");
        if let Some(names) = inner.lookup(source, kind) {
            return (names, false);
        }
        let new_names = usize::from(!inner.index.contains_key(&normalise(source))) + 1;
        let recorded: usize = inner.seen.len();
        if recorded + new_names > MAX_SEEN_NAMES {
            if !inner.warned_full {
                inner.warned_full = true;
                log::warn!(
                    "streamerbot: the catalogue holds {MAX_SEEN_NAMES} names seen at runtime; new names are rendered but no longer listed"
                );
            }
            let source = inner
                .index
                .get(&normalise(source))
                .map(|&at| inner.categories[at].name.clone())
                .unwrap_or_else(|| pascal_case(source));
            return ((source, pascal_case(kind)), false);
        }
        if !inner.index.contains_key(&normalise(source)) {
            inner.seen.push((source.to_owned(), None));
        }
        inner.seen.push((source.to_owned(), Some(kind.to_owned())));
        let (source, kind, _) = inner.add(source, Some(kind));
        let seen = serde_json::to_value(&inner.seen).expect("names serialize");
        drop(inner);
        if let Err(error) = self.meta.insert(META_KEY, &seen) {
            log::error!("streamerbot: cannot store the catalogue: {error}");
        }
        ((source, kind.expect("a type was added")), true)
    }

    /// The spelling of a category, if listed.
    pub fn category(&self, source: &str) -> Option<String> {
        let inner = self.inner.read().expect("catalogue lock is never poisoned");
        let at = *inner.index.get(&normalise(source))?;
        Some(inner.categories[at].name.clone())
    }

    /// The spelling of a type within a category, if listed.
    pub fn kind(&self, source: &str, kind: &str) -> Option<String> {
        self.inner
            .read()
            .expect("catalogue lock is never poisoned")
            .lookup(source, kind)
            .map(|(_, kind)| kind)
    }

    /// The `events` object of `GetEvents`.
    pub fn to_json(&self) -> Value {
        let inner = self.inner.read().expect("catalogue lock is never poisoned");
        let mut events = Map::new();
        for category in &inner.categories {
            events.insert(category.name.clone(), Value::from(category.types.clone()));
        }
        Value::Object(events)
    }
}

/// A catalogue over a fresh store in a temporary folder (kept alive by the returned guard).
#[cfg(test)]
pub fn temporary() -> (tempfile::TempDir, Catalogue) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = crate::store::Store::open(dir.path()).expect("store opens");
    let catalogue = Catalogue::load(store.meta().clone()).expect("catalogue loads");
    (dir, catalogue)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> (tempfile::TempDir, Catalogue) {
        temporary()
    }

    #[test]
    fn streamerbot_list_has_44_categories_and_464_types() {
        let (_dir, catalogue) = catalogue();
        let events = catalogue.to_json();
        let events = events.as_object().unwrap();
        let streamerbot: Vec<_> = events.iter().take(44).collect();
        let types: usize = streamerbot
            .iter()
            .map(|(_, t)| t.as_array().unwrap().len())
            .sum();
        assert_eq!(types, 464);
        assert_eq!(events.len(), 47);
        assert!(events
            .keys()
            .all(|key| !key.starts_with(|c: char| c.is_ascii_lowercase())));
        assert_eq!(events["Switchboard"], serde_json::json!(["RuleDenied"]));
    }

    #[test]
    fn names_render_as_the_spec_table_says() {
        let (_dir, catalogue) = catalogue();
        let cases = [
            (("twitch", "follow"), ("Twitch", "Follow")),
            (("Twitch", "gift_sub"), ("Twitch", "GiftSub")),
            (("twitch", "resub"), ("Twitch", "ReSub")),
            (
                ("twitch", "seven-tv-emote-added"),
                ("Twitch", "SevenTVEmoteAdded"),
            ),
            (("twitch", "subscribe"), ("Twitch", "Subscribe")),
            (("youtube", "super_chat"), ("YouTube", "SuperChat")),
            (("general", "custom"), ("General", "Custom")),
            (("streamElements", "tip"), ("StreamElements", "Tip")),
            (("ko-fi", "donation"), ("Kofi", "Donation")),
            (("obs", "scene_changed"), ("Obs", "SceneChanged")),
            (("tiktok", "gift"), ("TikTok", "Gift")),
            (("discord", "messageCreate"), ("Discord", "MessageCreate")),
            (("switchboard", "ruleDenied"), ("Switchboard", "RuleDenied")),
            (("mygame", "boss_defeated"), ("Mygame", "BossDefeated")),
            (("my_game", "level.up"), ("Mygame", "LevelUp")),
        ];
        for ((source, kind), (want_source, want_kind)) in cases {
            let (got_source, got_kind) = catalogue.render(source, kind);
            assert_eq!(
                (got_source.as_str(), got_kind.as_str()),
                (want_source, want_kind)
            );
        }
        assert_eq!(
            catalogue.kind("twitch", "subscribe").as_deref(),
            Some("Subscribe")
        );
    }

    #[test]
    fn first_spelling_wins() {
        let (_dir, catalogue) = catalogue();
        assert_eq!(catalogue.render("my_game", "level.up").0, "MyGame");
        assert_eq!(catalogue.render("mygame", "x").0, "MyGame");
    }

    #[test]
    fn pascal_case_follows_the_rule() {
        assert_eq!(pascal_case("BossDefeated"), "BossDefeated");
        assert_eq!(pascal_case("poll_vote_removed"), "PollVoteRemoved");
        assert_eq!(pascal_case("__"), "__");
        assert_eq!(pascal_case("été"), "été");
    }

    #[test]
    fn seen_names_survive_a_reload_and_stop_at_the_limit() {
        // A restart on disk is tested end to end (tests/it/store.rs); here a second catalogue
        // loads what the first recorded in `meta`.
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        {
            let catalogue = Catalogue::load(store.meta().clone()).unwrap();
            catalogue.render("mygame", "boss_defeated");
            for index in 0..MAX_SEEN_NAMES {
                catalogue.render("flood", &format!("t{index}"));
            }
        }
        let catalogue = Catalogue::load(store.meta().clone()).unwrap();
        let events = catalogue.to_json();
        assert_eq!(events["Mygame"], serde_json::json!(["BossDefeated"]));
        assert_eq!(
            events["Flood"].as_array().unwrap().len(),
            MAX_SEEN_NAMES - 3
        );
    }
}
