//! The Socket.IO face's messages (docs/socketio.md §3, §4): the payloads of `subscribe`,
//! `unsubscribe` and `inject` read from the first argument of an event, the replies, and the
//! `discord` payload of an event, encoded once per publish.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::event::Event;

/// The code of every malformed client event.
pub const INVALID_PAYLOAD: &str = "INVALID_PAYLOAD";

/// A request over [`MAX_GUILDS`], or one that would take a socket over it.
pub const TOO_MANY: Refusal = Refusal("at most 1000 guilds per socket");

/// Why a client event was refused: its `message` (the code is always [`INVALID_PAYLOAD`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub &'static str);

impl Refusal {
    /// The `error` event's payload.
    pub fn error(&self) -> Value {
        json!({"message": self.0, "code": INVALID_PAYLOAD})
    }

    /// The error acknowledgement of `inject`.
    pub fn ack(&self) -> Value {
        json!({"status": "error", "code": INVALID_PAYLOAD, "message": self.0})
    }
}

/// How many guilds one socket may join, and one request name (Discord bots rarely see more).
pub const MAX_GUILDS: usize = 1000;

/// `guildIds` of a `subscribe` / `unsubscribe` payload, as sent.
pub fn guild_ids(payload: Option<&Value>) -> Result<Vec<String>, Refusal> {
    const REFUSED: Refusal = Refusal("guildIds must be an array of strings");
    let ids = payload
        .and_then(|payload| payload.get("guildIds"))
        .and_then(Value::as_array)
        .ok_or(REFUSED)?;
    if ids.len() > MAX_GUILDS {
        return Err(TOO_MANY);
    }
    ids.iter()
        .map(|id| id.as_str().map(str::to_owned).ok_or(REFUSED))
        .collect()
}

/// The ids a `subscribe` joins, in request order, each once, empty ones left out.
pub fn joined(ids: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.iter()
        .filter(|id| !id.is_empty() && seen.insert(id.as_str()))
        .cloned()
        .collect()
}

/// The event an `inject` payload describes: source `discord`, its `event` as type, its
/// `guildId` as room, its `data`.
pub fn injected(payload: Option<&Value>) -> Result<Event, Refusal> {
    let Some(Value::Object(payload)) = payload else {
        return Err(Refusal("inject payload must be an object"));
    };
    let kind = match payload.get("event") {
        Some(Value::String(kind)) if !kind.trim().is_empty() => kind.clone(),
        _ => return Err(Refusal("event must be a non-empty string")),
    };
    let room = match payload.get("guildId") {
        None | Some(Value::Null) => None,
        Some(Value::String(room)) => Some(room.clone()).filter(|room| !room.is_empty()),
        Some(_) => return Err(Refusal("guildId must be a string or null")),
    };
    let data = match payload.get("data") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(data @ Value::Object(_)) => data.clone(),
        Some(_) => return Err(Refusal("data must be an object")),
    };
    let mut event = Event::new("discord", kind, data);
    event.room = room;
    Ok(event)
}

/// The `discord` payload of an event.
#[derive(Serialize)]
struct Discord<'a> {
    event: &'a str,
    #[serde(rename = "guildId")]
    guild_id: Option<&'a str>,
    data: &'a Value,
}

/// The Socket.IO event names and JSON payloads `event` is sent as (docs/socketio.md §5): none
/// unless its normalised source is `discord`; `discord` always; `interaction:create` too for an
/// `interactionCreate` with a room.
pub fn payloads(event: &Event) -> Vec<(&'static str, String)> {
    use crate::event::normalise;
    if normalise(&event.source) != "discord" {
        return Vec::new();
    }
    let discord = Discord {
        event: &event.kind,
        guild_id: event.room.as_deref(),
        data: &event.data,
    };
    let mut payloads = vec![(
        "discord",
        serde_json::to_string(&discord).expect("payloads serialize"),
    )];
    if event.room.is_some() && normalise(&event.kind) == "interactioncreate" {
        payloads.push(("interaction:create", event.data.to_string()));
    }
    payloads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guild_ids_must_be_an_array_of_strings() {
        let ids = guild_ids(Some(&json!({"guildIds": ["111", "", "111", "222"]}))).unwrap();
        assert_eq!(joined(&ids), ["111", "222"]);
        assert_eq!(ids.len(), 4, "unsubscribe answers the list as sent");
        for bad in [
            json!({"guildIds": "111"}),
            json!({"guildIds": [1]}),
            json!([]),
        ] {
            assert_eq!(
                guild_ids(Some(&bad)).unwrap_err().0,
                "guildIds must be an array of strings"
            );
        }
        assert!(guild_ids(None).is_err());
        assert_eq!(
            guild_ids(Some(&json!({"guildIds": []}))).unwrap(),
            Vec::<String>::new()
        );
        let many: Vec<String> = (0..=MAX_GUILDS).map(|id| id.to_string()).collect();
        assert_eq!(
            guild_ids(Some(&json!({"guildIds": many}))).unwrap_err(),
            TOO_MANY
        );
    }

    #[test]
    fn inject_reads_event_guild_and_data() {
        let event = injected(Some(
            &json!({"event": "messageCreate", "guildId": "111", "data": {"content": "hi"}}),
        ))
        .unwrap();
        assert_eq!(
            (event.source.as_str(), event.kind.as_str()),
            ("discord", "messageCreate")
        );
        assert_eq!(event.room.as_deref(), Some("111"));
        assert_eq!(event.data, json!({"content": "hi"}));
        let bare = injected(Some(&json!({"event": "userUpdate", "guildId": null}))).unwrap();
        assert!(bare.room.is_none() && bare.data == json!({}));
        let cases = [
            (json!("x"), "inject payload must be an object"),
            (json!({}), "event must be a non-empty string"),
            (
                json!({"event": "x", "guildId": 5}),
                "guildId must be a string or null",
            ),
            (json!({"event": "x", "data": []}), "data must be an object"),
        ];
        for (payload, message) in cases {
            assert_eq!(injected(Some(&payload)).unwrap_err().0, message);
        }
        assert_eq!(
            Refusal("x").ack(),
            json!({"status": "error", "code": "INVALID_PAYLOAD", "message": "x"})
        );
    }

    #[test]
    fn only_discord_events_are_sent_and_interactions_twice() {
        let mut event = Event::new("Discord", "interactionCreate", json!({"id": "9"}));
        assert_eq!(
            payloads(&event),
            [(
                "discord",
                r#"{"event":"interactionCreate","guildId":null,"data":{"id":"9"}}"#.to_owned()
            )]
        );
        event.room = Some("111".into());
        let sent = payloads(&event);
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1], ("interaction:create", r#"{"id":"9"}"#.to_owned()));
        assert!(payloads(&Event::new("twitch", "follow", json!({}))).is_empty());
    }

    /// Valid payloads of `subscribe` / `unsubscribe` and `inject`, the mutation seeds.
    fn samples() -> Vec<Value> {
        vec![
            json!({"guildIds": ["111", "222"]}),
            json!({"guildIds": []}),
            json!({"event": "messageCreate", "guildId": "111", "data": {"content": "hi", "author": {"id": "9"}}}),
            json!({"event": "userUpdate", "guildId": null}),
        ]
    }

    proptest::proptest! {
        /// Any payload of any event is read or refused with a message of §4; `subscribe` joins
        /// each non-empty id once, and never more than [`MAX_GUILDS`].
        #[test]
        fn every_payload_is_read_or_refused(text in crate::mutate::messages(samples())) {
            let payload: Option<Value> = serde_json::from_str(&text).ok();
            match guild_ids(payload.as_ref()) {
                Ok(ids) => {
                    proptest::prop_assert!(ids.len() <= MAX_GUILDS);
                    let joined = joined(&ids);
                    proptest::prop_assert!(joined.iter().all(|id| !id.is_empty() && ids.contains(id)));
                    let unique: std::collections::HashSet<&String> = joined.iter().collect();
                    proptest::prop_assert_eq!(unique.len(), joined.len());
                }
                Err(refusal) => {
                    proptest::prop_assert!(!refusal.0.is_empty());
                    proptest::prop_assert_eq!(refusal.error()["code"].clone(), json!(INVALID_PAYLOAD));
                }
            }
            match injected(payload.as_ref()) {
                Ok(event) => {
                    proptest::prop_assert_eq!(event.source.as_str(), "discord");
                    proptest::prop_assert!(!event.kind.trim().is_empty());
                    proptest::prop_assert!(event.data.is_object());
                    proptest::prop_assert!(event.room.as_deref() != Some(""));
                    proptest::prop_assert!(!payloads(&event).is_empty());
                }
                Err(refusal) => {
                    let ack = refusal.ack();
                    proptest::prop_assert_eq!(&ack["status"], "error");
                    proptest::prop_assert_eq!(&ack["code"], INVALID_PAYLOAD);
                    proptest::prop_assert!(ack["message"].as_str().is_some_and(|message| !message.is_empty()));
                }
            }
        }
    }
}
