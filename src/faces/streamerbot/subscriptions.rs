//! One connection's subscriptions (docs/streamerbot.md §5.1): a set of (source, type) pairs compared
//! normalised, where either may be `*`, kept with the spelling first received.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::catalogue::Catalogue;
use super::protocol::Reply;
use crate::event::normalise;
use crate::registry::{Interest, Pairs};

/// The `events` parameter: source → types, as sent.
pub type Requested = Vec<(String, Vec<String>)>;

/// The most type names one `Subscribe` or `UnSubscribe` may list (the catalogue has fewer than
/// 700 in all).
pub const MAX_NAMES_PER_REQUEST: usize = 1_000;

/// The most (source, type) pairs one connection may hold: each request costs time in
/// proportion to it, as well as to the request.
pub const MAX_PAIRS: usize = 1_000;

/// Reads `events`, refusing anything but an object mapping sources to arrays of type names,
/// and more than [`MAX_NAMES_PER_REQUEST`] names.
pub fn parse(events: Option<&Value>) -> Result<Requested, Reply> {
    let refuse =
        || Reply::error("events must be an object mapping sources to arrays of event types");
    let Some(Value::Object(events)) = events else {
        return Err(refuse());
    };
    let names: usize = events
        .values()
        .map(|kinds| kinds.as_array().map_or(0, Vec::len))
        .sum();
    if names + events.len() > MAX_NAMES_PER_REQUEST {
        return Err(Reply::error(format!(
            "events lists too many names: at most {MAX_NAMES_PER_REQUEST} per request"
        )));
    }
    events
        .iter()
        .map(|(source, kinds)| {
            let kinds = kinds.as_array().ok_or_else(refuse)?;
            let kinds = kinds
                .iter()
                .map(|kind| kind.as_str().map(str::to_owned).ok_or_else(refuse))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((source.clone(), kinds))
        })
        .collect()
}

/// One source and its types, spelled as first received. Normalised forms are computed when
/// needed (subscribing is rare), so that an idle connection keeps as little as possible: with
/// 10,000 connections every byte here is 10 KB.
#[derive(Debug)]
struct Entry {
    source: Box<str>,
    kinds: Vec<Box<str>>,
}

/// The set, in the order pairs were first added.
#[derive(Debug, Default)]
pub struct Subscriptions {
    entries: Vec<Entry>,
}

impl Subscriptions {
    /// Adds every pair (union), in time linear in the request and the set; refuses (and leaves
    /// the set as it was) when the set would hold over [`MAX_PAIRS`] pairs.
    pub fn add(&mut self, requested: &Requested) -> Result<(), Reply> {
        let mut sources: HashMap<String, usize> = self
            .entries
            .iter()
            .enumerate()
            .map(|(at, entry)| (normalise(&entry.source), at))
            .collect();
        let mut known: Vec<HashSet<String>> = self
            .entries
            .iter()
            .map(|entry| entry.kinds.iter().map(|kind| normalise(kind)).collect())
            .collect();
        let mut pairs: usize = known.iter().map(HashSet::len).sum();
        let mut added: Vec<(usize, &str)> = Vec::new();
        let mut new_sources: Vec<&str> = Vec::new();
        for (source, kinds) in requested {
            if kinds.is_empty() {
                continue;
            }
            let at = *sources.entry(normalise(source)).or_insert_with(|| {
                new_sources.push(source);
                known.push(HashSet::new());
                known.len() - 1
            });
            for kind in kinds {
                if known[at].insert(normalise(kind)) {
                    added.push((at, kind));
                    pairs += 1;
                }
            }
            if pairs > MAX_PAIRS {
                return Err(Reply::error(format!(
                    "too many subscriptions: a connection may hold at most {MAX_PAIRS} event types"
                )));
            }
        }
        self.entries
            .extend(new_sources.into_iter().map(|source| Entry {
                source: source.into(),
                kinds: Vec::new(),
            }));
        for (at, kind) in added {
            self.entries[at].kinds.push(kind.into());
        }
        for entry in &mut self.entries {
            entry.kinds.shrink_to_fit();
        }
        self.entries.shrink_to_fit();
        Ok(())
    }

    /// Removes each listed pair; `*` as a type removes the whole source, `*` as a source removes
    /// the listed types from every source. Linear in the request and the set.
    pub fn remove(&mut self, requested: &Requested) {
        let mut removed: HashMap<String, HashSet<String>> = HashMap::new();
        for (source, kinds) in requested {
            removed
                .entry(normalise(source))
                .or_default()
                .extend(kinds.iter().map(|kind| normalise(kind)));
        }
        let everywhere = removed.remove("*").unwrap_or_default();
        for entry in &mut self.entries {
            let here = removed.get(&normalise(&entry.source));
            let gone = |kind: &String| {
                everywhere.contains(kind) || here.is_some_and(|here| here.contains(kind))
            };
            if gone(&"*".to_owned()) {
                entry.kinds.clear();
            } else {
                entry.kinds.retain(|known| !gone(&normalise(known)));
            }
            entry.kinds.shrink_to_fit();
        }
        self.entries.retain(|entry| !entry.kinds.is_empty());
        self.entries.shrink_to_fit();
    }

    /// The set as the registry matches it.
    pub fn interest(&self) -> Interest {
        let mut pairs = Pairs::new();
        for entry in &self.entries {
            pairs
                .entry(normalise(&entry.source))
                .or_default()
                .extend(entry.kinds.iter().map(|kind| normalise(kind)));
        }
        Interest::in_any_room(pairs)
    }

    /// The reply's `events`: names in the catalogue's spelling, else as first received.
    pub fn to_json(&self, catalogue: &Catalogue) -> Value {
        let mut events = Map::new();
        for entry in &self.entries {
            let source = if &*entry.source == "*" {
                entry.source.to_string()
            } else {
                catalogue
                    .category(&entry.source)
                    .unwrap_or_else(|| entry.source.to_string())
            };
            let kinds: Vec<Value> = entry
                .kinds
                .iter()
                .map(|kind| {
                    let spelled = (&**kind != "*")
                        .then(|| catalogue.kind(&entry.source, kind))
                        .flatten();
                    Value::String(spelled.unwrap_or_else(|| kind.to_string()))
                })
                .collect();
            events.insert(source, Value::Array(kinds));
        }
        Value::Object(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn requested(value: Value) -> Requested {
        parse(Some(&value)).unwrap()
    }

    use crate::faces::streamerbot::catalogue::temporary as catalogue;

    #[test]
    fn subscribe_adds_and_unsubscribe_removes() {
        let (_dir, catalogue) = catalogue();
        let mut subscriptions = Subscriptions::default();
        subscriptions
            .add(&requested(
                json!({"Twitch": ["Follow", "Cheer"], "General": ["Custom"]}),
            ))
            .unwrap();
        subscriptions
            .add(&requested(json!({"twitch": ["follow"]})))
            .unwrap();
        assert_eq!(
            subscriptions.to_json(&catalogue),
            json!({"Twitch": ["Follow", "Cheer"], "General": ["Custom"]})
        );
        subscriptions.remove(&requested(json!({"Twitch": ["Cheer"]})));
        assert_eq!(
            subscriptions.to_json(&catalogue),
            json!({"Twitch": ["Follow"], "General": ["Custom"]})
        );
        subscriptions.remove(&requested(json!({"*": ["*"]})));
        assert_eq!(subscriptions.to_json(&catalogue), json!({}));
    }

    #[test]
    fn names_are_spelled_as_the_catalogue_spells_them() {
        let (_dir, catalogue) = catalogue();
        let mut subscriptions = Subscriptions::default();
        subscriptions
            .add(&requested(
                json!({"twitch": ["gift_sub", "*"], "mygame": ["x"]}),
            ))
            .unwrap();
        assert_eq!(
            subscriptions.to_json(&catalogue),
            json!({"Twitch": ["GiftSub", "*"], "mygame": ["x"]})
        );
    }

    #[test]
    fn a_source_wildcard_removes_types_everywhere() {
        let (_dir, catalogue) = catalogue();
        let mut subscriptions = Subscriptions::default();
        subscriptions
            .add(&requested(
                json!({"Twitch": ["Follow", "Cheer"], "Kick": ["Follow"]}),
            ))
            .unwrap();
        subscriptions.remove(&requested(json!({"*": ["follow"]})));
        assert_eq!(
            subscriptions.to_json(&catalogue),
            json!({"Twitch": ["Cheer"]})
        );
        subscriptions.remove(&requested(json!({"Twitch": ["*"]})));
        assert_eq!(subscriptions.to_json(&catalogue), json!({}));
    }

    #[test]
    fn malformed_events_are_refused() {
        for bad in [
            json!([]),
            json!({"Twitch": "Follow"}),
            json!({"Twitch": [1]}),
        ] {
            assert!(parse(Some(&bad)).is_err(), "{bad}");
        }
        assert!(parse(None).is_err());
    }
}
