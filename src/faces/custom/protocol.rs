//! The VMSC Custom WebSocket wire format (docs/custom.md part 1): client messages, acks, errors and
//! the event frame.

use heck::ToSnakeCase;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::event::{coerce, Event, User};

/// Sent after `AUTH_FAILED` when the token is missing or wrong.
pub const CLOSE_UNAUTHORIZED: (u16, &str) = (4401, "Unauthorized");
/// Sent when `max_connections` authenticated connections are already open ("Try Again Later").
pub const CLOSE_TRY_AGAIN_LATER: (u16, &str) = (1013, "Max connections reached");

/// The error codes of docs/custom.md §1.8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    AuthFailed,
    InvalidAction,
    InvalidPayload,
    RuleNotFound,
    RateLimited,
}

/// An error frame: `{"action":"error","code":...,"message":...}`.
pub fn error(code: ErrorCode, message: impl Into<String>) -> String {
    json!({"action": "error", "code": code, "message": message.into()}).to_string()
}

/// A client message, once its `action` is known.
#[derive(Debug)]
pub enum Request {
    InjectEvent(Box<Event>),
    /// `ruleId` when it is a non-empty string, else `ruleName`.
    TriggerRule {
        id: Option<String>,
        name: Option<String>,
    },
    Subscribe {
        event_types: Vec<String>,
        sources: Vec<String>,
    },
}

/// Why a message was refused.
pub struct Refusal(pub ErrorCode, pub String);

fn payload(message: impl Into<String>) -> Refusal {
    Refusal(ErrorCode::InvalidPayload, message.into())
}

/// Parses one text message.
pub fn parse(text: &str) -> Result<Request, Refusal> {
    let value: Value =
        serde_json::from_str(text).map_err(|error| payload(format!("Invalid JSON: {error}")))?;
    let Value::Object(message) = value else {
        return Err(payload("A message must be a JSON object"));
    };
    let action = match message.get("action") {
        Some(Value::String(action)) => action.as_str(),
        Some(_) => {
            return Err(Refusal(
                ErrorCode::InvalidAction,
                "action must be a string".into(),
            ))
        }
        None => return Err(Refusal(ErrorCode::InvalidAction, "Missing action".into())),
    };
    match action {
        "injectEvent" => {
            parse_event(message.get("event")).map(|event| Request::InjectEvent(Box::new(event)))
        }
        "triggerRule" => {
            let field = |key: &str| match message.get(key) {
                Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
                _ => None,
            };
            match (field("ruleId"), field("ruleName")) {
                (None, None) => Err(payload("ruleId or ruleName is required")),
                (Some(id), _) => Ok(Request::TriggerRule {
                    id: Some(id),
                    name: None,
                }),
                (None, name) => Ok(Request::TriggerRule { id: None, name }),
            }
        }
        "subscribe" => Ok(Request::Subscribe {
            event_types: string_list(&message, "eventTypes")?,
            sources: string_list(&message, "sources")?,
        }),
        other => Err(Refusal(
            ErrorCode::InvalidAction,
            format!("Unknown action '{other}'"),
        )),
    }
}

fn string_list(message: &Map<String, Value>, key: &str) -> Result<Vec<String>, Refusal> {
    match message.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| payload(format!("{key} must be an array of strings")))
            })
            .collect(),
        Some(_) => Err(payload(format!("{key} must be an array of strings"))),
    }
}

fn parse_event(event: Option<&Value>) -> Result<Event, Refusal> {
    let Some(Value::Object(event)) = event else {
        return Err(payload("event must be an object"));
    };
    let kind = match event.get("type") {
        Some(Value::String(kind)) if !kind.trim().is_empty() => kind.clone(),
        _ => return Err(payload("event.type must be a non-empty string")),
    };
    let source = match event.get("source") {
        None | Some(Value::Null) => "custom".to_owned(),
        Some(Value::String(source)) if source.is_empty() => "custom".to_owned(),
        Some(Value::String(source)) => source.clone(),
        Some(_) => return Err(payload("event.source must be a string")),
    };
    let data = match event.get("data") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(data @ Value::Object(_)) => data.clone(),
        Some(_) => return Err(payload("event.data must be an object")),
    };
    let room = match event.get("room") {
        None | Some(Value::Null) => None,
        Some(Value::String(room)) if room.is_empty() => None,
        Some(Value::String(room)) => Some(room.clone()),
        Some(_) => return Err(payload("event.room must be a string")),
    };
    let user = match event.get("user") {
        None | Some(Value::Null) => None,
        Some(Value::Object(user)) => Some(parse_user(user)?),
        Some(_) => return Err(payload("event.user must be an object")),
    };
    let mut parsed = Event::new(source, kind, data);
    parsed.user = user;
    parsed.room = room;
    Ok(parsed)
}

fn parse_user(user: &Map<String, Value>) -> Result<User, Refusal> {
    let mut extra = user.clone();
    let mut field = |key: &str| -> Result<Option<String>, Refusal> {
        match extra.remove(key) {
            None | Some(Value::Null) => Ok(Some(String::new())),
            Some(value) => coerce(&value).map(Some).ok_or_else(|| {
                payload(format!(
                    "event.user.{key} must be a string, number or boolean"
                ))
            }),
        }
    };
    Ok(User {
        id: field("id")?,
        username: field("username")?,
        nickname: field("nickname")?,
        extra,
    })
}

/// `Event.kind` in VMSC's vocabulary: PascalCase becomes snake_case, anything else is kept.
pub fn render_type(kind: &str) -> String {
    let pascal =
        kind.starts_with(|c: char| c.is_ascii_uppercase()) && !kind.contains(['_', '-', '.', ' ']);
    if pascal {
        kind.to_snake_case()
    } else {
        kind.to_owned()
    }
}

#[derive(Serialize)]
struct EventFrame<'a> {
    action: &'static str,
    event: EventBody<'a>,
}

#[derive(Serialize)]
struct EventBody<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    source: String,
    timestamp: i64,
    user: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
    data: &'a Value,
}

/// The event frame of §1.7, encoded once per event for every custom-face subscriber.
pub fn encode_event(event: &Event) -> bytestring::ByteString {
    let user = match &event.user {
        Some(user) => serde_json::to_value(user).expect("users serialize"),
        None => json!({"id": "", "username": "", "nickname": ""}),
    };
    let frame = EventFrame {
        action: "event",
        event: EventBody {
            id: event.id.hyphenated().to_string(),
            kind: render_type(&event.kind),
            source: event.source.to_ascii_lowercase(),
            timestamp: event.timestamp.timestamp_millis(),
            user,
            room: event.room.as_deref(),
            data: &event.data,
        },
    };
    serde_json::to_string(&frame)
        .expect("event frames serialize")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_render_in_vmsc_vocabulary() {
        assert_eq!(render_type("GiftSub"), "gift_sub");
        assert_eq!(render_type("Follow"), "follow");
        assert_eq!(render_type("messageCreate"), "messageCreate");
        assert_eq!(
            render_type("channel.overlay.broadcast"),
            "channel.overlay.broadcast"
        );
    }

    #[test]
    fn events_are_framed_as_the_spec_shows() {
        let mut event = Event::new("Twitch", "GiftSub", json!({"tier": "1000"}));
        event.room = Some("channel-1".into());
        let frame: Value = serde_json::from_str(&encode_event(&event)).unwrap();
        assert_eq!(frame["action"], "event");
        assert_eq!(frame["event"]["type"], "gift_sub");
        assert_eq!(frame["event"]["source"], "twitch");
        assert_eq!(
            frame["event"]["user"],
            json!({"id": "", "username": "", "nickname": ""})
        );
        assert_eq!(frame["event"]["room"], "channel-1");
        assert!(frame["event"]["timestamp"].is_i64());
    }

    #[test]
    fn inject_event_validates_its_fields() {
        let ok = parse(
            r#"{"action":"injectEvent","event":{"type":"gift","user":{"id":42,"extra":true}}}"#,
        );
        let Ok(Request::InjectEvent(event)) = ok else {
            panic!("not parsed")
        };
        assert_eq!(event.source, "custom");
        assert_eq!(event.user.as_ref().unwrap().id.as_deref(), Some("42"));
        assert_eq!(event.user.as_ref().unwrap().username.as_deref(), Some(""));
        assert_eq!(event.user.unwrap().extra["extra"], true);
        for (bad, message) in [
            (
                r#"{"action":"injectEvent","event":{}}"#,
                "event.type must be a non-empty string",
            ),
            (
                r#"{"action":"injectEvent","event":{"type":"x","data":"s"}}"#,
                "event.data must be an object",
            ),
            (
                r#"{"action":"injectEvent","event":{"type":"x","user":{"id":{}}}}"#,
                "event.user.id must be a string, number or boolean",
            ),
        ] {
            match parse(bad) {
                Err(Refusal(ErrorCode::InvalidPayload, text)) => assert_eq!(text, message),
                _ => panic!("{bad} was accepted"),
            }
        }
        assert!(matches!(
            parse(r#"{"action":"foo"}"#),
            Err(Refusal(ErrorCode::InvalidAction, _))
        ));
        assert!(matches!(
            parse("{}"),
            Err(Refusal(ErrorCode::InvalidAction, _))
        ));
        assert!(matches!(
            parse("[1]"),
            Err(Refusal(ErrorCode::InvalidPayload, _))
        ));
        assert!(matches!(
            parse("hello"),
            Err(Refusal(ErrorCode::InvalidPayload, _))
        ));
        assert!(matches!(
            parse(r#"{"action":"triggerRule","ruleId":""}"#),
            Err(Refusal(ErrorCode::InvalidPayload, _))
        ));
    }

    /// Valid messages of every action, the mutation seeds.
    pub fn samples() -> Vec<Value> {
        vec![
            json!({"action": "injectEvent", "event": {"type": "boss_defeated", "source": "mygame",
                "room": "channel-1", "data": {"boss": "Dragon", "hp": 0},
                "user": {"id": 42, "username": "bob", "nickname": "Bob", "level": 3}}}),
            json!({"action": "injectEvent", "event": {"type": "follow"}}),
            json!({"action": "triggerRule", "ruleId": "01JC1XMWCEJZ05XHT5GMEJ146S"}),
            json!({"action": "triggerRule", "ruleName": "Celebrate"}),
            json!({"action": "subscribe", "eventTypes": ["follow", "gift_sub"], "sources": ["twitch"]}),
            json!({"action": "subscribe"}),
        ]
    }

    proptest::proptest! {
        /// Any message is a request or a refusal whose error frame has the shape of §1.8.
        #[test]
        fn every_message_is_a_request_or_an_error_frame(text in crate::mutate::messages(samples())) {
            match parse(&text) {
                Ok(Request::InjectEvent(event)) => {
                    proptest::prop_assert!(!event.kind.trim().is_empty());
                    proptest::prop_assert!(!event.source.is_empty());
                    proptest::prop_assert!(event.data.is_object());
                }
                Ok(Request::TriggerRule { id, name }) => {
                    proptest::prop_assert!(id.is_some_and(|id| !id.is_empty()) || name.is_some_and(|name| !name.is_empty()));
                }
                Ok(Request::Subscribe { .. }) => {}
                Err(Refusal(code, message)) => {
                    proptest::prop_assert!(!message.is_empty());
                    let frame: Value = serde_json::from_str(&error(code, message.clone())).unwrap();
                    proptest::prop_assert_eq!(&frame["action"], "error");
                    proptest::prop_assert!(["INVALID_ACTION", "INVALID_PAYLOAD"].contains(&frame["code"].as_str().unwrap_or_default()), "{}", frame);
                    proptest::prop_assert_eq!(&frame["message"], &Value::String(message));
                }
            }
        }
    }
}
