//! Generated and mutated inputs for the property tests of every decoder (issue 12): valid sample
//! messages with values swapped for other types, keys dropped or added, deep nesting and huge
//! numbers spliced in, and their text with bytes flipped, cut, repeated or replaced by awkward
//! unicode; plus JSON and text made from nothing.
//!
//! Shared by the unit tests (`src/**`, as `crate::mutate`) and the over-the-wire tests
//! (`tests/it/fuzz.rs`, which includes this file), so it uses only `proptest` and `serde_json`.
//!
//! The suites run 256 cases per property in-process and 64 frames per face over the wire; set
//! `PROPTEST_CASES` for longer runs, e.g. `PROPTEST_CASES=20000 cargo test --lib` or
//! `PROPTEST_CASES=2000 cargo test --test it fuzz::`.

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Strings that have broken parsers before: empty, blank, wildcards, template and JSONPath
/// syntax, control and zero-width characters, right-to-left text, astral emoji, JSON escapes of
/// lone surrogates, and long runs.
const AWKWARD: &[&str] = &[
    "",
    " ",
    "*",
    "$",
    "$..*",
    "{{",
    "{{ x }}",
    "{% for x in y %}",
    "\u{0}",
    "\u{7f}",
    "\u{200b}",
    "\u{202e}abc",
    "\u{feff}",
    "\u{10ffff}",
    "😀",
    "ǅ",
    "İ",
    "\\ud800",
    "\\u0000",
    "\"",
    "\\",
    "\n\r\t",
    "null",
    "NaN",
    "-0",
    "1e999",
    "18446744073709551616",
    "-9223372036854775809",
    "0x10",
];

/// A string: awkward, long, or any unicode.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        2 => prop::sample::select(AWKWARD).prop_map(str::to_owned),
        1 => (prop::sample::select(AWKWARD), 1usize..2_000).prop_map(|(unit, count)| unit.repeat(count)),
    ]
}

/// A number at the edges: zero, extremes of every integer type, huge and tiny floats.
pub fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::from(0)),
        Just(Value::from(-1)),
        Just(Value::from(u64::MAX)),
        Just(Value::from(i64::MIN)),
        Just(Value::from(f64::MAX)),
        Just(Value::from(f64::MIN_POSITIVE)),
        Just(Value::from(-0.0)),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
    ]
}

/// Any JSON value, up to four levels deep.
pub fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number(),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// `depth` arrays (or objects) nested in one another around `inner`.
pub fn nested(depth: usize, objects: bool, inner: Value) -> Value {
    (0..depth).fold(inner, |value, _| {
        if objects {
            Value::Object(Map::from_iter([("a".to_owned(), value)]))
        } else {
            Value::Array(vec![value])
        }
    })
}

/// One change to a JSON value; indexes pick a node or a key modulo how many there are.
#[derive(Debug, Clone)]
pub enum Edit {
    /// The node becomes another value (often of another type).
    Replace(usize, Value),
    /// The node is removed from its object or array.
    Remove(usize),
    /// An object node gets a key (one of the sample's, or a new one) with a value.
    Add(usize, usize, Option<String>, Value),
    /// The node is wrapped in `depth` arrays or objects.
    Nest(usize, usize, bool),
    /// The node becomes an empty array, an empty object or an empty string.
    Empty(usize, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    let node = any::<usize>();
    prop_oneof![
        4 => (node, json()).prop_map(|(at, value)| Edit::Replace(at, value)),
        2 => node.prop_map(Edit::Remove),
        3 => (node, any::<usize>(), prop::option::weighted(0.3, text()), json())
            .prop_map(|(at, key, new, value)| Edit::Add(at, key, new, value)),
        1 => (node, prop_oneof![1usize..8, 100usize..300], any::<bool>())
            .prop_map(|(at, depth, objects)| Edit::Nest(at, depth, objects)),
        1 => (node, 0u8..3).prop_map(|(at, kind)| Edit::Empty(at, kind)),
    ]
}

/// The JSON pointer of every node of `value`, the root first.
fn pointers(value: &Value, at: String, into: &mut Vec<String>) {
    into.push(at.clone());
    match value {
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                pointers(item, format!("{at}/{index}"), into);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                pointers(item, format!("{at}/{escaped}"), into);
            }
        }
        _ => {}
    }
}

/// Every object key of `value`, anywhere.
fn keys(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| keys(item, into)),
        Value::Object(map) => {
            for (key, item) in map {
                into.push(key.clone());
                keys(item, into);
            }
        }
        _ => {}
    }
}

/// The last segment of a pointer, unescaped, and its parent's pointer.
fn split(pointer: &str) -> Option<(&str, String)> {
    let (parent, last) = pointer.rsplit_once('/')?;
    Some((parent, last.replace("~1", "/").replace("~0", "~")))
}

/// Applies `edit` to `value`.
pub fn apply(value: &mut Value, edit: &Edit) {
    let mut nodes = Vec::new();
    pointers(value, String::new(), &mut nodes);
    let pick = |at: usize| nodes[at % nodes.len()].clone();
    match edit {
        Edit::Replace(at, replacement) => {
            if let Some(node) = value.pointer_mut(&pick(*at)) {
                *node = replacement.clone();
            }
        }
        Edit::Remove(at) => {
            let pointer = pick(*at);
            let Some((parent, last)) = split(&pointer) else {
                return;
            };
            match value.pointer_mut(parent) {
                Some(Value::Object(map)) => {
                    map.remove(&last);
                }
                Some(Value::Array(items)) => {
                    if let Ok(index) = last.parse::<usize>() {
                        if index < items.len() {
                            items.remove(index);
                        }
                    }
                }
                _ => {}
            }
        }
        Edit::Add(at, key, new, added) => {
            let mut known = Vec::new();
            keys(value, &mut known);
            let key = match (new, known.is_empty()) {
                (Some(new), _) => new.clone(),
                (None, false) => known[key % known.len()].clone(),
                (None, true) => "x".to_owned(),
            };
            if let Some(Value::Object(map)) = value.pointer_mut(&pick(*at)) {
                map.insert(key, added.clone());
            }
        }
        Edit::Nest(at, depth, objects) => {
            if let Some(node) = value.pointer_mut(&pick(*at)) {
                *node = nested(*depth, *objects, node.take());
            }
        }
        Edit::Empty(at, kind) => {
            if let Some(node) = value.pointer_mut(&pick(*at)) {
                *node = match kind {
                    0 => Value::Array(Vec::new()),
                    1 => Value::Object(Map::new()),
                    _ => Value::String(String::new()),
                };
            }
        }
    }
}

/// One of `samples` with one to four edits.
pub fn mutated_json(samples: Vec<Value>) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(samples),
        prop::collection::vec(edit(), 1..5),
    )
        .prop_map(|(mut value, edits)| {
            for edit in &edits {
                apply(&mut value, edit);
            }
            value
        })
}

/// One change to a text, at a byte position taken modulo its length.
#[derive(Debug, Clone)]
pub enum Splice {
    /// One bit of one byte flipped.
    Flip(usize, u8),
    /// Everything from the position on cut.
    Truncate(usize),
    /// A string inserted.
    Insert(usize, String),
    /// Up to `len` bytes removed.
    Delete(usize, usize),
    /// A slice repeated `times` times in place.
    Repeat(usize, usize, usize),
}

fn splice() -> impl Strategy<Value = Splice> {
    let at = any::<usize>();
    prop_oneof![
        3 => (at, 0u8..8).prop_map(|(at, bit)| Splice::Flip(at, bit)),
        2 => at.prop_map(Splice::Truncate),
        3 => (at, prop_oneof![
            text(),
            Just("{".to_owned()), Just("[".to_owned()), Just("\"".to_owned()), Just(",".to_owned()),
            Just("1e400".to_owned()), Just(":null".to_owned()),
        ]).prop_map(|(at, text)| Splice::Insert(at, text)),
        2 => (at, 1usize..16).prop_map(|(at, len)| Splice::Delete(at, len)),
        1 => (at, 1usize..32, 2usize..64).prop_map(|(at, len, times)| Splice::Repeat(at, len, times)),
    ]
}

/// Applies `splice` to `bytes`.
pub fn splice_bytes(bytes: &mut Vec<u8>, splice: &Splice) {
    let position = |at: usize, len: usize| if len == 0 { 0 } else { at % (len + 1) };
    match splice {
        Splice::Flip(at, bit) => {
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] ^= 1 << bit;
            }
        }
        Splice::Truncate(at) => bytes.truncate(position(*at, bytes.len())),
        Splice::Insert(at, text) => {
            let at = position(*at, bytes.len());
            bytes.splice(at..at, text.bytes());
        }
        Splice::Delete(at, len) => {
            let at = position(*at, bytes.len());
            let end = (at + len).min(bytes.len());
            bytes.drain(at..end);
        }
        Splice::Repeat(at, len, times) => {
            let at = position(*at, bytes.len());
            let end = (at + len).min(bytes.len());
            let slice = bytes[at..end].to_vec();
            let repeated = slice.repeat(*times);
            bytes.splice(at..end, repeated);
        }
    }
}

/// `text` with one to four splices, made valid UTF-8 again (a WebSocket text frame must be).
pub fn mutated_text(texts: Vec<String>) -> impl Strategy<Value = String> {
    (
        prop::sample::select(texts),
        prop::collection::vec(splice(), 1..5),
    )
        .prop_map(|(text, splices)| {
            let mut bytes = text.into_bytes();
            for splice in &splices {
                splice_bytes(&mut bytes, splice);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
}

/// Text nested deeper than any parser should follow: `[[[…]]]` or `{"a":{"a":…}}`, complete or cut.
pub fn deep_text() -> impl Strategy<Value = String> {
    (
        prop_oneof![100usize..200, 1_000usize..20_000],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(depth, objects, closed)| {
            let (open, close) = if objects {
                ("{\"a\":", "}")
            } else {
                ("[", "]")
            };
            let mut text = open.repeat(depth) + "1";
            if closed {
                text.push_str(&close.repeat(depth));
            }
            text
        })
}

/// Messages for a decoder whose valid messages look like `samples`: mutated samples (as JSON
/// and as text), JSON and text from nothing, and deep nesting.
pub fn messages(samples: Vec<Value>) -> impl Strategy<Value = String> {
    let texts: Vec<String> = samples.iter().map(Value::to_string).collect();
    prop_oneof![
        5 => mutated_json(samples).prop_map(|value| value.to_string()),
        4 => mutated_text(texts),
        1 => json().prop_map(|value| value.to_string()),
        1 => text(),
        1 => deep_text(),
    ]
}

/// The shipped rule and action files, valid documents of every trigger form and most steps.
pub fn rule_documents() -> Vec<Value> {
    [
        include_str!("../rules/celebrate.action.json"),
        include_str!("../rules/cmd-shoutout.rule.json"),
        include_str!("../rules/custom-event-reply.action.json"),
        include_str!("../rules/game-boss-defeated.rule.json"),
        include_str!("../rules/overlay-alert.action.json"),
        include_str!("../rules/shoutout.action.json"),
        include_str!("../rules/tiktok-big-gift.rule.json"),
    ]
    .into_iter()
    .map(|text| serde_json::from_str(text).expect("the shipped documents are JSON"))
    .collect()
}

/// `value` written as TOML (`"key" = value` lines, inline tables and arrays below), strings
/// escaped as JSON writes them; `null`, which TOML lacks, is written as `null` and makes the text
/// invalid, as does a value that is not a table. Not the toml crate's writer, which panics on
/// some strings.
pub fn toml_text(value: &Value) -> String {
    fn inline(value: &Value) -> String {
        match value {
            Value::Array(items) => {
                let items: Vec<String> = items.iter().map(inline).collect();
                format!("[{}]", items.join(", "))
            }
            Value::Object(map) => {
                let entries: Vec<String> = map
                    .iter()
                    .map(|(key, value)| {
                        format!("{} = {}", Value::from(key.as_str()), inline(value))
                    })
                    .collect();
                format!("{{ {} }}", entries.join(", "))
            }
            other => other.to_string(),
        }
    }
    match value {
        Value::Object(map) => map
            .iter()
            .map(|(key, value)| format!("{} = {}\n", Value::from(key.as_str()), inline(value)))
            .collect(),
        other => inline(other),
    }
}
