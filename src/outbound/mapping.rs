//! The JSONPath mapping of an outbound connection (docs/custom.md §2.3): target paths into an
//! `Event` from expressions evaluated against each incoming message. Every expression is compiled
//! (and refused if jsonpath_lib cannot run it) when the connection is configured.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::event::{coerce, Event, User};
use crate::jsonpath::compile_json_path;

/// Why a mapping cannot be used: the target and the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingError {
    pub target: String,
    pub reason: String,
}

/// One compiled target.
#[derive(Debug, Clone)]
struct Target {
    path: Vec<String>,
    compiled: jsonpath_lib::Compiled,
}

/// A compiled mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// In building order: `user` and `data` first, then dotted targets by segment count, then key.
    targets: Vec<Target>,
}

/// Flattens nested tables (`user = { id = "$.x" }`) into dotted targets (`user.id`).
fn flatten(prefix: &str, map: &Map<String, Value>, into: &mut BTreeMap<String, Value>) {
    for (key, value) in map {
        let target = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(inner) => flatten(&target, inner, into),
            other => {
                into.insert(target, other.clone());
            }
        }
    }
}

impl Mapping {
    /// Compiles a mapping table; empty means `{ type = "$.type", data = "$" }`.
    pub fn compile(table: &Map<String, Value>) -> Result<Mapping, MappingError> {
        let mut flat = BTreeMap::new();
        flatten("", table, &mut flat);
        if flat.is_empty() {
            flat.insert("type".to_owned(), Value::from("$.type"));
            flat.insert("data".to_owned(), Value::from("$"));
        }
        let mut targets = Vec::new();
        for (target, expression) in flat {
            let error = |reason: String| MappingError {
                target: target.clone(),
                reason,
            };
            let path: Vec<String> = target.split('.').map(str::to_owned).collect();
            if path.iter().any(String::is_empty) {
                return Err(error("a target has no empty segment".into()));
            }
            let valid = matches!(
                (path[0].as_str(), path.len()),
                ("type" | "room", 1) | ("user" | "data", _)
            );
            if !valid {
                return Err(error(
                    "targets are type, room, user, user.<key>, data or data.<key>".into(),
                ));
            }
            let Value::String(expression) = expression else {
                return Err(error("the expression is a JSONPath string".into()));
            };
            if !expression.starts_with('$') {
                return Err(error(format!(
                    "invalid JSONPath: {expression:?} does not start with $"
                )));
            }
            let compiled = compile_json_path(&expression)
                .map_err(|reason| error(format!("invalid JSONPath: {reason}")))?;
            targets.push(Target { path, compiled });
        }
        targets.sort_by(|a, b| {
            a.path
                .len()
                .cmp(&b.path.len())
                .then_with(|| a.path.cmp(&b.path))
        });
        Ok(Mapping { targets })
    }

    /// The event for one incoming message.
    pub fn apply(&self, message: &Value, source: &str, default_type: &str) -> Event {
        let mut kind = None;
        let mut room = None;
        let mut user: Option<Map<String, Value>> = None;
        let mut data = Map::new();
        for target in &self.targets {
            let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                target.compiled.select(message)
            }))
            .ok()
            .and_then(Result::ok)
            .and_then(|nodes| nodes.first().map(|node| (*node).clone()))
            .filter(|value| !value.is_null());
            let Some(value) = found else { continue };
            match (target.path[0].as_str(), &target.path[1..]) {
                ("type", _) => kind = coerce(&value).filter(|text| !text.is_empty()),
                ("room", _) => room = coerce(&value).filter(|text| !text.is_empty()),
                ("user", []) => {
                    if let Value::Object(object) = value {
                        user = Some(object);
                    }
                }
                ("user", rest) => {
                    let coerced = match rest {
                        [key] if matches!(key.as_str(), "id" | "username" | "nickname") => {
                            coerce(&value).map(Value::String)
                        }
                        _ => Some(value),
                    };
                    if let Some(value) = coerced {
                        set(user.get_or_insert_with(Map::new), rest, value);
                    }
                }
                ("data", []) => {
                    data = match value {
                        Value::Object(object) => object,
                        other => Map::from_iter([("value".to_owned(), other)]),
                    }
                }
                ("data", rest) => set(&mut data, rest, value),
                _ => {}
            }
        }
        let mut event = Event::new(
            source,
            kind.unwrap_or_else(|| default_type.to_owned()),
            Value::Object(data),
        );
        event.room = room;
        event.user = user.map(|mut fields| {
            let mut text = |key: &str| match fields.remove(key) {
                Some(Value::String(text)) => Some(text),
                _ => Some(String::new()),
            };
            let (id, username, nickname) = (text("id"), text("username"), text("nickname"));
            User {
                id,
                username,
                nickname,
                extra: fields,
            }
        });
        event
    }
}

/// Sets `path` inside `map`, creating objects on the way and replacing non-objects.
fn set(map: &mut Map<String, Value>, path: &[String], value: Value) {
    let (last, parents) = path.split_last().expect("targets have a segment");
    let mut current = map;
    for segment in parents {
        let entry = current
            .entry(segment.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        current = entry.as_object_mut().expect("just made an object");
    }
    current.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping(table: Value) -> Mapping {
        Mapping::compile(table.as_object().unwrap()).unwrap()
    }

    #[test]
    fn the_spec_example_maps_as_shown() {
        let mapping = mapping(
            json!({"type": "$.kind", "room": "$.channel", "user.id": "$.player.id",
            "user.username": "$.player.name", "data.message": "$.text", "data": {"stats": {"hp": "$.player.hp"}}}),
        );
        let event = mapping.apply(&json!({"kind":"chat","channel":"channel-1","player":{"id":7,"name":"bob","hp":42},"text":"hi"}), "mygame", "custom");
        assert_eq!(event.kind, "chat");
        assert_eq!(event.source, "mygame");
        assert_eq!(event.room.as_deref(), Some("channel-1"));
        let user = event.user.unwrap();
        assert_eq!(
            (
                user.id.as_deref(),
                user.username.as_deref(),
                user.nickname.as_deref()
            ),
            (Some("7"), Some("bob"), Some(""))
        );
        assert_eq!(event.data, json!({"message": "hi", "stats": {"hp": 42}}));
        let bare = mapping.apply(&json!({"text": "no kind"}), "mygame", "custom");
        assert_eq!(bare.kind, "custom");
        assert!(bare.user.is_none() && bare.room.is_none());
        assert_eq!(bare.data, json!({"message": "no kind"}));
    }

    #[test]
    fn the_default_mapping_takes_type_and_the_whole_message() {
        let mapping = mapping(json!({}));
        let event = mapping.apply(&json!({"type": "hit", "damage": 3}), "game", "custom");
        assert_eq!(event.kind, "hit");
        assert_eq!(event.data, json!({"type": "hit", "damage": 3}));
        let scalar = mapping.apply(&json!(5), "game", "custom");
        assert_eq!(scalar.data, json!({"value": 5}));
    }

    #[test]
    fn the_first_of_several_matches_is_used() {
        let mapping = mapping(json!({"type": "$..kind"}));
        assert_eq!(
            mapping
                .apply(
                    &json!({"a": {"kind": "first"}, "b": {"kind": "second"}}),
                    "s",
                    "d"
                )
                .kind,
            "first"
        );
    }

    #[test]
    fn bad_targets_and_expressions_are_refused() {
        for (table, target) in [
            (json!({"source": "$.x"}), "source"),
            (json!({"user.id": "$.a[?(@.b == $.c)]"}), "user.id"),
            (json!({"data..x": "$"}), "data..x"),
            (json!({"type": "kind"}), "type"),
        ] {
            assert_eq!(
                Mapping::compile(table.as_object().unwrap())
                    .unwrap_err()
                    .target,
                target
            );
        }
    }

    /// JSONPath text: pieces of the syntax jsonpath_lib reads, in any order.
    fn json_paths() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        const PIECES: &[&str] = &[
            "$",
            ".a",
            ".kind",
            "..kind",
            ".*",
            "..*",
            "[0]",
            "[-1]",
            "[*]",
            "['a']",
            "[\"b\"]",
            "[0,1]",
            "[1:]",
            "[:2]",
            "[-2:]",
            "[::2]",
            "[0:4:1]",
            "[?(@.a)]",
            "[?(@.a == 1)]",
            "[?(@.a > 'x')]",
            "[?(@.a && @.b)]",
            "[?(@.a =~ /x/)]",
            "[?(@..a)]",
            "[",
            "]",
            "(",
            ")",
            "?",
            "@",
            ".",
            "..",
            "'",
            "\"",
            ",",
            ":",
            "-",
            "1e400",
            "99999999999999999999",
        ];
        let built = prop::collection::vec(prop::sample::select(PIECES), 0..8)
            .prop_map(|pieces| format!("${}", pieces.concat()));
        let valid = [
            "$.kind",
            "$.player.id",
            "$..text",
            "$.a[0].b",
            "$.items[*].name",
            "$[?(@.x == 1)].y",
        ];
        prop_oneof![
            3 => built,
            2 => crate::mutate::mutated_text(valid.iter().map(|path| (*path).to_owned()).collect()),
            1 => crate::mutate::text(),
        ]
    }

    /// A mapping table: targets valid and not, expressions from [`json_paths`] and of any type.
    fn tables() -> impl proptest::strategy::Strategy<Value = Map<String, Value>> {
        use proptest::prelude::*;
        let target = prop_oneof![
            prop::sample::select(
                &[
                    "type",
                    "room",
                    "user",
                    "user.id",
                    "user.username",
                    "data",
                    "data.message",
                    "data.a.b",
                    "source",
                    "user.",
                    ".data",
                    "data..x"
                ][..]
            )
            .prop_map(str::to_owned),
            crate::mutate::text(),
        ];
        let expression = prop_oneof![
            4 => json_paths().prop_map(Value::String),
            1 => crate::mutate::json(),
        ];
        prop::collection::vec((target, expression), 0..6)
            .prop_map(|entries| entries.into_iter().collect())
    }

    /// Messages a foreign server might send.
    fn messages() -> impl proptest::strategy::Strategy<Value = String> {
        crate::mutate::messages(vec![
            json!({"kind": "chat", "channel": "channel-1", "player": {"id": 7, "name": "bob", "hp": 42}, "text": "hi"}),
            json!({"type": "hit", "damage": 3, "items": [{"name": "a"}, {"name": "b"}]}),
        ])
    }

    proptest::proptest! {
        /// Any path compiles or is refused with a reason, without panicking or hanging.
        #[test]
        fn every_json_path_compiles_or_is_refused(path in json_paths()) {
            if let Err(reason) = compile_json_path(&path) {
                proptest::prop_assert!(!reason.is_empty());
            }
        }

        /// Any table compiles or names its target; a compiled mapping turns any message into
        /// an event of the connection's source, with a type.
        #[test]
        fn every_mapping_compiles_or_names_its_target_and_maps_any_message(
            table in tables(),
            texts in proptest::collection::vec(messages(), 1..4),
        ) {
            let mapping = match Mapping::compile(&table) {
                Ok(mapping) => mapping,
                Err(error) => {
                    proptest::prop_assert!(!error.reason.is_empty());
                    return Ok(());
                }
            };
            for text in texts {
                let Ok(message) = serde_json::from_str::<Value>(&text) else { continue };
                let event = mapping.apply(&message, "mygame", "custom");
                proptest::prop_assert_eq!(event.source.as_str(), "mygame");
                proptest::prop_assert!(!event.kind.is_empty());
                proptest::prop_assert!(event.data.is_object());
            }
        }
    }
}
