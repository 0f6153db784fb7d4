//! The Astro wire format (docs/astro.md §3, §4, §6, §7 and §9): requests, the error codes and
//! every server message.
//!
//! [`parse`] reads one text message and runs checks 3 to 9 of §4; the face runs the others
//! (rate limit and size before, tokens, rooms, scopes and recording after) and builds their
//! answers with the [`Failure`] constructors, so every error message of the protocol is written
//! here once. The encoders return one JSON object per frame with the fields in the order Astro
//! sends them; each message gets a fresh ULID `id`.
//!
//! Nothing here does I/O or knows about connections.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::topics::{self, Topic};

/// How many subscriptions one connection may hold (§4 check 13).
pub const MAX_SUBSCRIPTIONS: usize = 100;

/// The `data.message` of `welcome`.
const WELCOME: &str = "You are in a maze of dank memes, all alike.";
/// The `data.message` of `reconnect`.
const SHUTTING_DOWN: &str = "The server is shutting down.";

/// The `error` of a failed response (§6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ErrorCode {
    #[serde(rename = "err_bad_request")]
    BadRequest,
    #[serde(rename = "err_unauthorized")]
    Unauthorized,
    #[serde(rename = "err_deadline_exceeded")]
    DeadlineExceeded,
    #[serde(rename = "err_internal_error")]
    InternalError,
    #[serde(rename = "rate_limit_exceeded")]
    RateLimitExceeded,
    #[serde(rename = "invalid_message_type")]
    InvalidMessageType,
}

/// A request refused by one of the checks of §4: the response's `error`, `data.message` and
/// `nonce`. There is one constructor per row of the check tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
    /// The request's `nonce` when it was a string and the check comes after the request was
    /// read (check 4 on); never on `rate_limit_exceeded`.
    pub nonce: Option<String>,
}

impl Failure {
    fn new(code: ErrorCode, message: impl Into<String>, nonce: Option<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            nonce,
        }
    }

    fn bad_request(message: impl Into<String>, nonce: Option<String>) -> Failure {
        Failure::new(ErrorCode::BadRequest, message, nonce)
    }

    fn unauthorized(message: impl Into<String>, nonce: Option<String>) -> Failure {
        Failure::new(ErrorCode::Unauthorized, message, nonce)
    }

    /// Check 1: the connection's rate limit is exhausted.
    pub fn rate_limited() -> Failure {
        Failure::new(ErrorCode::RateLimitExceeded, "rate limit exceeded", None)
    }

    /// Check 2: the message is larger than `limit` bytes (`limits.max_frame_bytes`).
    pub fn too_big(limit: usize) -> Failure {
        Failure::bad_request(format!("message exceeds {limit} bytes"), None)
    }

    /// Check 3: the message is not JSON.
    pub fn invalid_json() -> Failure {
        Failure::bad_request("invalid JSON", None)
    }

    /// Check 3: the message is JSON but not an object.
    pub fn not_an_object() -> Failure {
        Failure::bad_request("message must be a JSON object", None)
    }

    /// Check 4: `type` is missing or not `subscribe`/`unsubscribe`.
    pub fn invalid_message_type(nonce: Option<String>) -> Failure {
        Failure::new(ErrorCode::InvalidMessageType, "invalid message type", nonce)
    }

    /// Check 5: `data` is missing or not an object.
    pub fn missing_data(nonce: Option<String>) -> Failure {
        Failure::bad_request("missing data", nonce)
    }

    /// Check 5: `data.topic` is missing, not a string or empty.
    pub fn missing_topic(nonce: Option<String>) -> Failure {
        Failure::bad_request("missing topic", nonce)
    }

    /// Check 6: `data.topic` is not a topic of §8.
    pub fn invalid_topic(nonce: Option<String>) -> Failure {
        Failure::bad_request("invalid topic", nonce)
    }

    /// Check 7: `data.room` is present but not a string.
    pub fn room_not_a_string(nonce: Option<String>) -> Failure {
        Failure::bad_request("room must be a string", nonce)
    }

    /// Check 8: `data.token` is missing, not a string or empty.
    pub fn missing_token(nonce: Option<String>) -> Failure {
        Failure::bad_request("missing token", nonce)
    }

    /// Check 9: `data.token_type` is not one of the accepted spellings.
    pub fn invalid_token_type(nonce: Option<String>) -> Failure {
        Failure::bad_request("invalid token_type", nonce)
    }

    /// Check 10: the token is not configured.
    pub fn invalid_token(nonce: Option<String>) -> Failure {
        Failure::unauthorized("invalid token", nonce)
    }

    /// Check 11: the requested `room` is not the token's room.
    pub fn wrong_room(nonce: Option<String>, room: &str) -> Failure {
        Failure::unauthorized(format!("token is not valid for room '{room}'"), nonce)
    }

    /// Check 12: the token lacks the topic's `scope`.
    pub fn missing_scope(nonce: Option<String>, scope: &str) -> Failure {
        Failure::unauthorized(format!("missing scope '{scope}'"), nonce)
    }

    /// Check 13: the connection already holds [`MAX_SUBSCRIPTIONS`] other subscriptions.
    pub fn subscription_limit(nonce: Option<String>) -> Failure {
        Failure::bad_request(
            format!("subscription limit exceeded ({MAX_SUBSCRIPTIONS})"),
            nonce,
        )
    }

    /// Check 14: the subscription was not recorded in time; the client may retry.
    pub fn deadline_exceeded(nonce: Option<String>) -> Failure {
        Failure::new(
            ErrorCode::DeadlineExceeded,
            "deadline exceeded, try again",
            nonce,
        )
    }

    /// Check 15: recording the subscription failed inside Switchboard. The cause is logged by
    /// the face, never sent.
    pub fn internal_error(nonce: Option<String>) -> Failure {
        Failure::new(ErrorCode::InternalError, "internal error", nonce)
    }
}

/// A request that passed checks 3 to 9.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Subscribe {
        nonce: Option<String>,
        topic: &'static Topic,
        /// As requested: `""` when absent; the face resolves it to the token's room.
        room: String,
        token: String,
    },
    Unsubscribe {
        nonce: Option<String>,
        topic: &'static Topic,
        /// As requested: `""` (absent or empty) means every room of the topic.
        room: String,
    },
}

/// A request as sent. Every field is read leniently (a value of the wrong type counts as
/// absent) so that each wrong shape reaches the check that names it, in the order of §4.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type", default, deserialize_with = "lenient")]
    kind: Option<Kind>,
    #[serde(default, deserialize_with = "lenient")]
    nonce: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    data: Option<Body>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Subscribe,
    Unsubscribe,
}

/// `data`, once it is known to be an object.
#[derive(Deserialize)]
struct Body {
    #[serde(default, deserialize_with = "lenient")]
    topic: Option<String>,
    /// Kept as sent: a `room` that is present but not a string (`null` included) fails check 7.
    #[serde(default, deserialize_with = "present")]
    room: Option<Value>,
    #[serde(default, deserialize_with = "lenient")]
    token: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    token_type: Option<TokenType>,
}

/// The `token_type` spellings of §4, compared exactly. Every type is looked up in the same
/// token list, so the value is only checked.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum TokenType {
    Jwt,
    Oauth2,
    Apikey,
    /// The legacy spelling of `oauth2`.
    Oauth,
}

/// A field of type `T`, or `None` when it holds anything else.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    Ok(T::deserialize(value).ok())
}

/// A field as sent, `Some(Value::Null)` for an explicit `null`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// Reads one text message: checks 3 to 9 of §4, in that order. The `nonce` is echoed in the
/// failures from check 4 on, when it is a string.
pub fn parse(text: &str) -> Result<Request, Failure> {
    let value: Value = serde_json::from_str(text).map_err(|_| Failure::invalid_json())?;
    if !value.is_object() {
        return Err(Failure::not_an_object());
    }
    // serde reads a struct from an array too: `data` must be an object to count as present.
    let data_is_object = value.get("data").is_some_and(Value::is_object);
    // Cannot fail for an object: every field is optional and read leniently.
    let mut envelope = Envelope::deserialize(value).map_err(|_| Failure::not_an_object())?;
    if !data_is_object {
        envelope.data = None;
    }
    let nonce = envelope.nonce;
    let Some(kind) = envelope.kind else {
        return Err(Failure::invalid_message_type(nonce));
    };
    let Some(body) = envelope.data else {
        return Err(Failure::missing_data(nonce));
    };
    let Some(name) = body.topic.filter(|name| !name.is_empty()) else {
        return Err(Failure::missing_topic(nonce));
    };
    let Some(topic) = topics::topic(&name) else {
        return Err(Failure::invalid_topic(nonce));
    };
    let room = match body.room {
        None => String::new(),
        Some(Value::String(room)) => room,
        Some(_) => return Err(Failure::room_not_a_string(nonce)),
    };
    match kind {
        Kind::Unsubscribe => Ok(Request::Unsubscribe { nonce, topic, room }),
        Kind::Subscribe => {
            let Some(token) = body.token.filter(|token| !token.is_empty()) else {
                return Err(Failure::missing_token(nonce));
            };
            if body.token_type.is_none() {
                return Err(Failure::invalid_token_type(nonce));
            }
            Ok(Request::Subscribe {
                nonce,
                topic,
                room,
                token,
            })
        }
    }
}

/// Every server message: the envelope of §3, fields in Astro's order.
#[derive(Serialize)]
struct Message<'a, D> {
    id: String,
    ts: String,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
    data: D,
}

impl<'a, D: Serialize> Message<'a, D> {
    fn new(kind: &'static str, ts: DateTime<Utc>, data: D) -> Message<'a, D> {
        Message {
            id: ulid::Ulid::generate().to_string(),
            ts: ts.to_rfc3339_opts(SecondsFormat::Secs, true),
            kind,
            nonce: None,
            error: None,
            topic: None,
            room: None,
            data,
        }
    }

    fn encode(&self) -> String {
        serde_json::to_string(self).expect("Astro messages serialize to JSON")
    }
}

#[derive(Serialize)]
struct WelcomeData<'a> {
    message: &'static str,
    client_id: &'a str,
}

#[derive(Serialize)]
struct TopicData<'a> {
    message: &'static str,
    topic: &'a str,
    room: &'a str,
}

#[derive(Serialize)]
struct FailureData<'a> {
    message: &'a str,
}

#[derive(Serialize)]
struct ReconnectData<'a> {
    message: &'static str,
    reconnect_token: &'a str,
}

/// The first message of every connection (§2).
pub fn welcome(client_id: &str) -> String {
    let data = WelcomeData {
        message: WELCOME,
        client_id,
    };
    Message::new("welcome", Utc::now(), data).encode()
}

fn topic_response(message: &'static str, nonce: Option<&str>, topic: &str, room: &str) -> String {
    let mut response = Message::new(
        "response",
        Utc::now(),
        TopicData {
            message,
            topic,
            room,
        },
    );
    response.nonce = nonce;
    response.encode()
}

/// The response to a `subscribe` that succeeded; `room` is the canonical room (§4).
pub fn subscribed(nonce: Option<&str>, topic: &str, room: &str) -> String {
    topic_response("successfully subscribed to topic", nonce, topic, room)
}

/// The response to an `unsubscribe`; `room` is echoed as requested (§4).
pub fn unsubscribed(nonce: Option<&str>, topic: &str, room: &str) -> String {
    topic_response("successfully unsubscribed from topic", nonce, topic, room)
}

/// A failed response (§6).
pub fn failure(failure: &Failure) -> String {
    let mut response = Message::new(
        "response",
        Utc::now(),
        FailureData {
            message: &failure.message,
        },
    );
    response.nonce = failure.nonce.as_deref();
    response.error = Some(failure.code);
    response.encode()
}

/// A notification (§7): `ts` is the event's timestamp.
pub fn notification(topic: &str, room: &str, ts: DateTime<Utc>, data: &Value) -> String {
    let mut message = Message::new("message", ts, data);
    message.topic = Some(topic);
    message.room = Some(room);
    message.encode()
}

/// The message sent to every client before the shutdown close (§9).
pub fn reconnect(token: &str) -> String {
    let data = ReconnectData {
        message: SHUTTING_DOWN,
        reconnect_token: token,
    };
    Message::new("reconnect", Utc::now(), data).encode()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn refused(text: &str) -> Failure {
        parse(text).expect_err(text)
    }

    fn check(text: &str, code: ErrorCode, message: &str, nonce: Option<&str>) {
        let failure = refused(text);
        assert_eq!(failure.code, code, "{text}");
        assert_eq!(failure.message, message, "{text}");
        assert_eq!(failure.nonce.as_deref(), nonce, "{text}");
    }

    const BAD: ErrorCode = ErrorCode::BadRequest;

    #[test]
    fn check_3_refuses_what_is_not_a_json_object_without_nonce() {
        check("not json", BAD, "invalid JSON", None);
        check(r#"{"type":"subscribe""#, BAD, "invalid JSON", None);
        check(r#"{"nonce":"n"} trailing"#, BAD, "invalid JSON", None);
        check("", BAD, "invalid JSON", None);
        check(
            r#"["nonce","n"]"#,
            BAD,
            "message must be a JSON object",
            None,
        );
        check(r#""subscribe""#, BAD, "message must be a JSON object", None);
        check("null", BAD, "message must be a JSON object", None);
    }

    #[test]
    fn check_4_refuses_other_types_and_echoes_a_string_nonce() {
        let invalid = ErrorCode::InvalidMessageType;
        let message = "invalid message type";
        check(
            r#"{"type":"publish","nonce":"n1"}"#,
            invalid,
            message,
            Some("n1"),
        );
        check(
            r#"{"type":"ping","nonce":"n2"}"#,
            invalid,
            message,
            Some("n2"),
        );
        check(r#"{"nonce":"n3","data":{}}"#, invalid, message, Some("n3"));
        check(
            r#"{"type":"Subscribe","nonce":""}"#,
            invalid,
            message,
            Some(""),
        );
        check(r#"{"type":7,"nonce":"n4"}"#, invalid, message, Some("n4"));
        // A non-string nonce is treated as absent.
        check(r#"{"type":"ping","nonce":5}"#, invalid, message, None);
        check(r#"{"type":"ping","nonce":null}"#, invalid, message, None);
        check(r#"{}"#, invalid, message, None);
    }

    #[test]
    fn check_5_needs_a_data_object_with_a_topic() {
        let n = Some("n");
        check(
            r#"{"type":"subscribe","nonce":"n"}"#,
            BAD,
            "missing data",
            n,
        );
        check(
            r#"{"type":"unsubscribe","nonce":"n","data":"x"}"#,
            BAD,
            "missing data",
            n,
        );
        check(
            r#"{"type":"subscribe","nonce":"n","data":null}"#,
            BAD,
            "missing data",
            n,
        );
        check(
            r#"{"type":"unsubscribe","nonce":"n","data":["channel.activities"]}"#,
            BAD,
            "missing data",
            n,
        );
        check(
            r#"{"type":"subscribe","nonce":"n","data":{}}"#,
            BAD,
            "missing topic",
            n,
        );
        check(
            r#"{"type":"subscribe","nonce":"n","data":{"topic":""}}"#,
            BAD,
            "missing topic",
            n,
        );
        check(
            r#"{"type":"subscribe","nonce":"n","data":{"topic":3}}"#,
            BAD,
            "missing topic",
            n,
        );
    }

    #[test]
    fn check_6_needs_a_known_topic_spelled_exactly() {
        let n = Some("n");
        for topic in ["channel.nope", "Channel.Activities", "channel_activities"] {
            let text = json!({"type":"unsubscribe","nonce":"n","data":{"topic":topic}});
            check(&text.to_string(), BAD, "invalid topic", n);
        }
    }

    #[test]
    fn check_7_needs_a_string_room_when_present() {
        let n = Some("n");
        for room in [json!(1), json!(null), json!(["channel-1"])] {
            let text =
                json!({"type":"subscribe","nonce":"n","data":{"topic":"channel.tips","room":room}});
            check(&text.to_string(), BAD, "room must be a string", n);
        }
    }

    #[test]
    fn check_8_needs_a_non_empty_token_on_subscribe() {
        let n = Some("n");
        for token in [json!(null), json!(""), json!(12)] {
            let text = json!({"type":"subscribe","nonce":"n","data":{"topic":"channel.tips","token":token,"token_type":"apikey"}});
            check(&text.to_string(), BAD, "missing token", n);
        }
        let absent = r#"{"type":"subscribe","nonce":"n","data":{"topic":"channel.tips","token_type":"apikey"}}"#;
        check(absent, BAD, "missing token", n);
    }

    #[test]
    fn check_9_accepts_the_four_token_types_only() {
        let subscribe = |token_type: Value| {
            json!({"type":"subscribe","nonce":"n","data":{"topic":"channel.tips","token":"t","token_type":token_type}}).to_string()
        };
        for token_type in ["jwt", "oauth2", "apikey", "oauth"] {
            assert!(parse(&subscribe(json!(token_type))).is_ok(), "{token_type}");
        }
        for token_type in [
            json!("basic"),
            json!("JWT"),
            json!(""),
            json!(null),
            json!(1),
        ] {
            check(&subscribe(token_type), BAD, "invalid token_type", Some("n"));
        }
        let absent =
            r#"{"type":"subscribe","nonce":"n","data":{"topic":"channel.tips","token":"t"}}"#;
        check(absent, BAD, "invalid token_type", Some("n"));
    }

    #[test]
    fn checks_run_in_order() {
        // Each request fails several checks; the first one answers.
        check(
            r#"{"type":"x"}"#,
            ErrorCode::InvalidMessageType,
            "invalid message type",
            None,
        );
        check(
            r#"{"type":"subscribe","data":{"topic":"no","room":1}}"#,
            BAD,
            "invalid topic",
            None,
        );
        check(
            r#"{"type":"subscribe","data":{"topic":"channel.tips","room":1}}"#,
            BAD,
            "room must be a string",
            None,
        );
        check(
            r#"{"type":"subscribe","data":{"topic":"channel.tips","token_type":"basic"}}"#,
            BAD,
            "missing token",
            None,
        );
    }

    #[test]
    fn a_subscribe_is_read_with_its_nonce_room_and_token() {
        let request = parse(
            r#"{"type":"subscribe","nonce":"req-001","data":{"topic":"channel.activities","room":"channel-1","token":"owner-secret","token_type":"apikey"},"extra":1}"#,
        );
        assert_eq!(
            request,
            Ok(Request::Subscribe {
                nonce: Some("req-001".into()),
                topic: topics::topic("channel.activities").unwrap(),
                room: "channel-1".into(),
                token: "owner-secret".into(),
            })
        );
        let request = parse(
            r#"{"type":"subscribe","data":{"topic":"channel.contests","token":"t","token_type":"oauth"}}"#,
        );
        assert_eq!(
            request,
            Ok(Request::Subscribe {
                nonce: None,
                topic: topics::topic("channel.contests").unwrap(),
                room: String::new(),
                token: "t".into(),
            })
        );
    }

    #[test]
    fn an_unsubscribe_ignores_token_fields_and_defaults_the_room() {
        let request = parse(
            r#"{"type":"unsubscribe","nonce":"req-003","data":{"topic":"channel.activities","token":5,"token_type":"basic"}}"#,
        );
        assert_eq!(
            request,
            Ok(Request::Unsubscribe {
                nonce: Some("req-003".into()),
                topic: topics::topic("channel.activities").unwrap(),
                room: String::new(),
            })
        );
        let request =
            parse(r#"{"type":"unsubscribe","data":{"topic":"channel.tips","room":"channel-1"}}"#);
        assert_eq!(
            request,
            Ok(Request::Unsubscribe {
                nonce: None,
                topic: topics::topic("channel.tips").unwrap(),
                room: "channel-1".into(),
            })
        );
    }

    #[test]
    fn the_caller_side_failures_carry_the_texts_of_the_tables() {
        let n = || Some("n".to_owned());
        let cases = [
            (
                Failure::rate_limited(),
                ErrorCode::RateLimitExceeded,
                "rate limit exceeded",
                None,
            ),
            (
                Failure::too_big(1024),
                BAD,
                "message exceeds 1024 bytes",
                None,
            ),
            (
                Failure::invalid_token(n()),
                ErrorCode::Unauthorized,
                "invalid token",
                n(),
            ),
            (
                Failure::wrong_room(n(), "x"),
                ErrorCode::Unauthorized,
                "token is not valid for room 'x'",
                n(),
            ),
            (
                Failure::missing_scope(n(), "activities:read"),
                ErrorCode::Unauthorized,
                "missing scope 'activities:read'",
                n(),
            ),
            (
                Failure::subscription_limit(n()),
                BAD,
                "subscription limit exceeded (100)",
                n(),
            ),
            (
                Failure::deadline_exceeded(n()),
                ErrorCode::DeadlineExceeded,
                "deadline exceeded, try again",
                n(),
            ),
            (
                Failure::internal_error(n()),
                ErrorCode::InternalError,
                "internal error",
                n(),
            ),
        ];
        for (failure, code, message, nonce) in cases {
            assert_eq!(
                failure,
                Failure {
                    code,
                    message: message.into(),
                    nonce
                }
            );
        }
    }

    /// Checks a frame byte for byte against `expected`, in which `{id}` and `{ts}` stand for
    /// the frame's own `id` (a ULID) and `ts` (RFC 3339, UTC, seconds, `Z`). Returns the `ts`.
    fn golden(frame: &str, expected: &str) -> DateTime<Utc> {
        let message: Value = serde_json::from_str(frame).unwrap();
        let id = message["id"].as_str().unwrap();
        assert_eq!(id.len(), 26, "{id}");
        assert!(id.parse::<ulid::Ulid>().is_ok(), "{id}");
        let ts = message["ts"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.len() == 20, "{ts}");
        assert_eq!(frame, expected.replace("{id}", id).replace("{ts}", ts));
        DateTime::parse_from_rfc3339(ts).unwrap().to_utc()
    }

    /// Whether `ts` is the current second (or the one before, when the clock just ticked).
    fn is_now(ts: DateTime<Utc>) -> bool {
        let age = Utc::now() - ts;
        age >= chrono::Duration::zero() && age < chrono::Duration::seconds(2)
    }

    #[test]
    fn welcome_carries_the_client_id() {
        let ts = golden(
            &welcome("01KANG3778TJ086KRDRMHMAKY2"),
            r#"{"id":"{id}","ts":"{ts}","type":"welcome","data":{"message":"You are in a maze of dank memes, all alike.","client_id":"01KANG3778TJ086KRDRMHMAKY2"}}"#,
        );
        assert!(is_now(ts), "{ts}");
    }

    #[test]
    fn responses_echo_the_nonce_topic_and_room() {
        let ts = golden(
            &subscribed(Some("req-001"), "channel.activities", "channel-1"),
            r#"{"id":"{id}","ts":"{ts}","type":"response","nonce":"req-001","data":{"message":"successfully subscribed to topic","topic":"channel.activities","room":"channel-1"}}"#,
        );
        assert!(is_now(ts), "{ts}");
        golden(
            &unsubscribed(None, "channel.activities", ""),
            r#"{"id":"{id}","ts":"{ts}","type":"response","data":{"message":"successfully unsubscribed from topic","topic":"channel.activities","room":""}}"#,
        );
    }

    #[test]
    fn failures_carry_the_error_code_and_the_nonce_when_there_is_one() {
        let ts = golden(
            &failure(&Failure::invalid_token(Some("req-004".into()))),
            r#"{"id":"{id}","ts":"{ts}","type":"response","nonce":"req-004","error":"err_unauthorized","data":{"message":"invalid token"}}"#,
        );
        assert!(is_now(ts), "{ts}");
        golden(
            &failure(&Failure::rate_limited()),
            r#"{"id":"{id}","ts":"{ts}","type":"response","error":"rate_limit_exceeded","data":{"message":"rate limit exceeded"}}"#,
        );
        let codes = [
            (ErrorCode::BadRequest, "err_bad_request"),
            (ErrorCode::Unauthorized, "err_unauthorized"),
            (ErrorCode::DeadlineExceeded, "err_deadline_exceeded"),
            (ErrorCode::InternalError, "err_internal_error"),
            (ErrorCode::RateLimitExceeded, "rate_limit_exceeded"),
            (ErrorCode::InvalidMessageType, "invalid_message_type"),
        ];
        for (code, text) in codes {
            assert_eq!(serde_json::to_value(code).unwrap(), text);
        }
    }

    #[test]
    fn notifications_carry_the_events_time_topic_and_room() {
        let ts = Utc.with_ymd_and_hms(2025, 11, 22, 10, 0, 5).unwrap()
            + chrono::Duration::milliseconds(999);
        let data = json!({"data":{"count":50},"event":"confetti","target":"global"});
        let frame = notification("channel.overlay.broadcast", "channel-1", ts, &data);
        let sent = golden(
            &frame,
            r#"{"id":"{id}","ts":"{ts}","type":"message","topic":"channel.overlay.broadcast","room":"channel-1","data":{"data":{"count":50},"event":"confetti","target":"global"}}"#,
        );
        assert_eq!(sent, Utc.with_ymd_and_hms(2025, 11, 22, 10, 0, 5).unwrap());
    }

    #[test]
    fn reconnect_carries_the_token() {
        let ts = golden(
            &reconnect("a.b.c"),
            r#"{"id":"{id}","ts":"{ts}","type":"reconnect","data":{"message":"The server is shutting down.","reconnect_token":"a.b.c"}}"#,
        );
        assert!(is_now(ts), "{ts}");
    }

    #[test]
    fn every_message_gets_a_fresh_id() {
        let first: Value = serde_json::from_str(&welcome("c")).unwrap();
        let second: Value = serde_json::from_str(&welcome("c")).unwrap();
        assert_ne!(first["id"], second["id"]);
    }

    /// Valid requests of both types, the mutation seeds.
    fn samples() -> Vec<Value> {
        vec![
            json!({"type": "subscribe", "nonce": "req-001", "data": {"topic": "channel.activities",
                "room": "channel-1", "token": "owner-secret", "token_type": "apikey"}}),
            json!({"type": "subscribe", "data": {"topic": "channel.tips", "token": "t", "token_type": "jwt"}}),
            json!({"type": "unsubscribe", "nonce": "req-003", "data": {"topic": "channel.activities", "room": "channel-1"}}),
        ]
    }

    proptest::proptest! {
        /// Any message is a request of §4 or a failure whose response carries an error code of
        /// §6, its message, and the message's nonce only when it was a string.
        #[test]
        fn every_message_is_a_request_or_a_failed_response(text in crate::mutate::messages(samples())) {
            let sent: Option<Value> = serde_json::from_str(&text).ok();
            let nonce = sent.as_ref().and_then(|sent| sent.get("nonce")).and_then(Value::as_str);
            match parse(&text) {
                Ok(Request::Subscribe { nonce: echoed, topic, token, .. }) => {
                    proptest::prop_assert_eq!(echoed.as_deref(), nonce);
                    proptest::prop_assert_eq!(topics::topic(topic.name).map(|known| known.name), Some(topic.name));
                    proptest::prop_assert!(!token.is_empty());
                }
                Ok(Request::Unsubscribe { nonce: echoed, .. }) => {
                    proptest::prop_assert_eq!(echoed.as_deref(), nonce);
                }
                Err(refused) => {
                    proptest::prop_assert!(refused.nonce.is_none() || refused.nonce.as_deref() == nonce);
                    let response: Value = serde_json::from_str(&failure(&refused)).unwrap();
                    proptest::prop_assert_eq!(&response["type"], "response");
                    proptest::prop_assert_eq!(&response["error"], &serde_json::to_value(refused.code).unwrap());
                    proptest::prop_assert_eq!(&response["data"]["message"], &Value::String(refused.message.clone()));
                    proptest::prop_assert_eq!(response.get("nonce").and_then(Value::as_str), refused.nonce.as_deref());
                }
            }
        }
    }
}
