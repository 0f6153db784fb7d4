//! One connection's subscriptions (docs/streamerbot.md §5.1): a set of (source, type) pairs compared
//! normalised, where either may be `*`, kept with the spelling first received.

use serde_json::{Map, Value};

use super::catalogue::Catalogue;
use super::protocol::Reply;
use crate::event::normalise;
use crate::registry::{Interest, Pairs};

/// The `events` parameter: source → types, as sent.
pub type Requested = Vec<(String, Vec<String>)>;

/// Reads `events`, refusing anything but an object mapping sources to arrays of type names.
pub fn parse(events: Option<&Value>) -> Result<Requested, Reply> {
    let refuse =
        || Reply::error("events must be an object mapping sources to arrays of event types");
    let Some(Value::Object(events)) = events else {
        return Err(refuse());
    };
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
    /// Adds every pair (union).
    pub fn add(&mut self, requested: &Requested) {
        for (source, kinds) in requested {
            if kinds.is_empty() {
                continue;
            }
            let normalised = normalise(source);
            let at = match self
                .entries
                .iter()
                .position(|entry| normalise(&entry.source) == normalised)
            {
                Some(at) => at,
                None => {
                    self.entries.push(Entry {
                        source: source.as_str().into(),
                        kinds: Vec::new(),
                    });
                    self.entries.len() - 1
                }
            };
            let entry = &mut self.entries[at];
            for kind in kinds {
                let normalised = normalise(kind);
                if !entry
                    .kinds
                    .iter()
                    .any(|known| normalise(known) == normalised)
                {
                    entry.kinds.push(kind.as_str().into());
                }
            }
            entry.kinds.shrink_to_fit();
        }
        self.entries.shrink_to_fit();
    }

    /// Removes each listed pair; `*` as a type removes the whole source, `*` as a source removes
    /// the listed types from every source.
    pub fn remove(&mut self, requested: &Requested) {
        for (source, kinds) in requested {
            let source = normalise(source);
            let kinds: Vec<String> = kinds.iter().map(|kind| normalise(kind)).collect();
            for entry in &mut self.entries {
                if source != "*" && normalise(&entry.source) != source {
                    continue;
                }
                if kinds.iter().any(|kind| kind == "*") {
                    entry.kinds.clear();
                } else {
                    entry
                        .kinds
                        .retain(|known| !kinds.contains(&normalise(known)));
                }
                entry.kinds.shrink_to_fit();
            }
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
        subscriptions.add(&requested(
            json!({"Twitch": ["Follow", "Cheer"], "General": ["Custom"]}),
        ));
        subscriptions.add(&requested(json!({"twitch": ["follow"]})));
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
        subscriptions.add(&requested(
            json!({"twitch": ["gift_sub", "*"], "mygame": ["x"]}),
        ));
        assert_eq!(
            subscriptions.to_json(&catalogue),
            json!({"Twitch": ["GiftSub", "*"], "mygame": ["x"]})
        );
    }

    #[test]
    fn a_source_wildcard_removes_types_everywhere() {
        let (_dir, catalogue) = catalogue();
        let mut subscriptions = Subscriptions::default();
        subscriptions.add(&requested(
            json!({"Twitch": ["Follow", "Cheer"], "Kick": ["Follow"]}),
        ));
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
