//! The Streamer.bot event catalogue (`GetEvents`) and the rendering of names in Streamer.bot's
//! PascalCase vocabulary (docs/streamerbot.md §5.3, §5.4).
//!
//! The catalogue is Streamer.bot's own list, then Switchboard's categories, then the names
//! Switchboard knows from its configuration and from runtime events ([`Names`]), each spelled by
//! the PascalCase rule. A name keeps its first spelling, except that a deliberate one (as
//! Streamer.bot spells its events) replaces a spelling guessed from a lower-case or snake_case
//! name. It is rebuilt when those names change; rendering records nothing.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value};

use crate::event::normalise;
use crate::names::{deliberate, Names};

/// Streamer.bot's categories and types: `@streamerbot/client`'s list (unchanged from 1.12 to
/// 2.0), then, at the end of their categories, the events of Streamer.bot 1.0.x that the client
/// does not list (`Twitch.CustomPowerUpRedemption`, `Twitch.SuspiciousUserMessage`,
/// `YouTube.JewelsGifted`, `YouTube.UserTimedout`, `Kick.RewardRedemption`, `Kick.KicksGifted`).
const STREAMERBOT_CATALOGUE: &str = include_str!("catalogue.txt");
/// Switchboard's own categories, listed after Streamer.bot's.
const SWITCHBOARD_CATEGORIES: &[(&str, &[&str])] = &[
    ("Switchboard", &["RuleDenied"]),
    ("TikTok", &[]),
    ("Discord", &[]),
];

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
    /// Whether `name` was spelled deliberately (else guessed by the PascalCase rule).
    exact: bool,
    types: Vec<String>,
    /// Per type: spelled deliberately.
    exact_types: Vec<bool>,
    /// Normalised type → index in `types`.
    index: HashMap<String, usize>,
}

#[derive(Debug, Default)]
struct Inner {
    categories: Vec<Category>,
    /// Normalised category → index in `categories`.
    index: HashMap<String, usize>,
    /// The [`Names::generation`] this was built from.
    built: u64,
}

impl Inner {
    /// Adds a category (and a type under it) unless present.
    fn add(&mut self, source: &str, kind: Option<&str>) {
        let position = match self.index.get(&normalise(source)) {
            Some(&position) => {
                let category = &mut self.categories[position];
                if !category.exact && deliberate(source) {
                    category.name = source.to_owned();
                    category.exact = true;
                }
                position
            }
            None => {
                let name = pascal_case(source);
                self.index.insert(normalise(&name), self.categories.len());
                self.categories.push(Category {
                    name,
                    exact: deliberate(source),
                    types: Vec::new(),
                    exact_types: Vec::new(),
                    index: HashMap::new(),
                });
                self.categories.len() - 1
            }
        };
        let category = &mut self.categories[position];
        if let Some(kind) = kind {
            match category.index.get(&normalise(kind)) {
                Some(&at) if !category.exact_types[at] && deliberate(kind) => {
                    category.types[at] = kind.to_owned();
                    category.exact_types[at] = true;
                }
                Some(_) => {}
                None => {
                    let name = pascal_case(kind);
                    category
                        .index
                        .insert(normalise(&name), category.types.len());
                    category.types.push(name);
                    category.exact_types.push(deliberate(kind));
                }
            }
        }
    }

    fn lookup(&self, source: &str, kind: &str) -> Option<(String, String)> {
        let category = &self.categories[*self.index.get(&normalise(source))?];
        let at = *category.index.get(&normalise(kind))?;
        Some((category.name.clone(), category.types[at].clone()))
    }

    fn build(names: &Names) -> Inner {
        let mut inner = Inner {
            built: names.generation(),
            ..Inner::default()
        };
        for line in STREAMERBOT_CATALOGUE.lines() {
            if let Some((category, types)) = line.split_once(':') {
                inner.add(category.trim(), None);
                for kind in types.split_whitespace() {
                    inner.add(category.trim(), Some(kind));
                }
            }
        }
        for (category, types) in SWITCHBOARD_CATEGORIES {
            inner.add(category, None);
            for kind in *types {
                inner.add(category, Some(kind));
            }
        }
        for (source, kind) in names.all() {
            inner.add(&source, kind.as_deref());
        }
        inner
    }
}

/// The catalogue, shared by the face's encoder (rendering) and its sessions (`GetEvents`).
pub struct Catalogue {
    inner: RwLock<Inner>,
    names: Arc<Names>,
}

impl Catalogue {
    pub fn new(names: Arc<Names>) -> Catalogue {
        Catalogue {
            inner: RwLock::new(Inner::build(&names)),
            names,
        }
    }

    /// Runs `read` on the catalogue, rebuilt first if the names changed since.
    fn read<T>(&self, read: impl FnOnce(&Inner) -> T) -> T {
        let generation = self.names.generation();
        {
            let inner = self.inner.read().expect("catalogue lock is never poisoned");
            if inner.built == generation {
                return read(&inner);
            }
        }
        let rebuilt = Inner::build(&self.names);
        let mut inner = self
            .inner
            .write()
            .expect("catalogue lock is never poisoned");
        *inner = rebuilt;
        read(&inner)
    }

    /// The rendered (source, type) of an event: as listed, else by the PascalCase rule.
    pub fn render(&self, source: &str, kind: &str) -> (String, String) {
        self.read(|inner| {
            inner.lookup(source, kind).unwrap_or_else(|| {
                let source = inner
                    .index
                    .get(&normalise(source))
                    .map(|&at| inner.categories[at].name.clone())
                    .unwrap_or_else(|| pascal_case(source));
                (source, pascal_case(kind))
            })
        })
    }

    /// The spelling of a category, if listed.
    pub fn category(&self, source: &str) -> Option<String> {
        self.read(|inner| {
            let at = *inner.index.get(&normalise(source))?;
            Some(inner.categories[at].name.clone())
        })
    }

    /// The spelling of a type within a category, if listed.
    pub fn kind(&self, source: &str, kind: &str) -> Option<String> {
        self.read(|inner| inner.lookup(source, kind).map(|(_, kind)| kind))
    }

    /// The `events` object of `GetEvents`.
    pub fn to_json(&self) -> Value {
        self.read(|inner| {
            let mut events = Map::new();
            for category in &inner.categories {
                events.insert(category.name.clone(), Value::from(category.types.clone()));
            }
            Value::Object(events)
        })
    }
}

/// A catalogue over fresh names in a temporary folder (kept alive by the returned guard).
#[cfg(test)]
pub fn temporary() -> (tempfile::TempDir, Catalogue) {
    let (dir, names) = crate::names::temporary();
    (dir, Catalogue::new(Arc::new(names)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> (tempfile::TempDir, Catalogue) {
        temporary()
    }

    #[test]
    fn every_listed_name_renders_in_its_own_spelling() {
        let (_dir, catalogue) = catalogue();
        let mut count = 0;
        for line in STREAMERBOT_CATALOGUE.lines() {
            let (category, types) = line.split_once(':').unwrap();
            for kind in types.split_whitespace() {
                let rendered = catalogue.render(category.trim(), kind);
                assert_eq!(rendered, (category.trim().to_owned(), kind.to_owned()));
                count += 1;
            }
        }
        assert_eq!(count, 470);
    }

    #[test]
    fn streamerbot_list_has_44_categories_and_470_types() {
        let (_dir, catalogue) = catalogue();
        let events = catalogue.to_json();
        let events = events.as_object().unwrap();
        let streamerbot: Vec<_> = events.iter().take(44).collect();
        let types: usize = streamerbot
            .iter()
            .map(|(_, t)| t.as_array().unwrap().len())
            .sum();
        assert_eq!(types, 470);
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
            (("my_game", "level.up"), ("MyGame", "LevelUp")),
        ];
        for ((source, kind), (want_source, want_kind)) in cases {
            let (got_source, got_kind) = catalogue.render(source, kind);
            assert_eq!(
                (got_source.as_str(), got_kind.as_str()),
                (want_source, want_kind)
            );
        }
        assert_eq!(catalogue.kind("twitch", "sub").as_deref(), Some("Sub"));
        assert_eq!(
            catalogue.kind("twitch", "subscribe"),
            None,
            "rendered, not listed"
        );
    }

    #[test]
    fn recorded_names_are_listed_in_their_first_spelling() {
        let (dir, names) = crate::names::temporary();
        let names = Arc::new(names);
        let catalogue = Catalogue::new(names.clone());
        assert_eq!(catalogue.render("my_game", "level.up").0, "MyGame");
        assert!(
            catalogue.category("my_game").is_none(),
            "rendering records nothing"
        );
        names.record("my_game", "level.up");
        assert_eq!(catalogue.render("mygame", "x").0, "MyGame");
        assert_eq!(
            catalogue.to_json()["MyGame"],
            serde_json::json!(["LevelUp"])
        );
        names.record("twitch", "custompowerupredemption2");
        let guessed = catalogue.render("twitch", "custompowerupredemption2").1;
        assert_eq!(guessed, "Custompowerupredemption2");
        names.record("Twitch", "CustomPowerUpRedemption2");
        let exact = catalogue.render("twitch", "custompowerupredemption2").1;
        assert_eq!(
            exact, "CustomPowerUpRedemption2",
            "the deliberate spelling wins"
        );
        drop(dir);
    }

    #[test]
    fn pascal_case_follows_the_rule() {
        assert_eq!(pascal_case("BossDefeated"), "BossDefeated");
        assert_eq!(pascal_case("poll_vote_removed"), "PollVoteRemoved");
        assert_eq!(pascal_case("__"), "__");
        assert_eq!(pascal_case("été"), "été");
    }
}
