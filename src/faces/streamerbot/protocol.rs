//! The Streamer.bot WebSocket Server wire format (docs/streamerbot.md §2, §4, §5.2): request names,
//! the reply envelope, the Hello's `info` and the event frame.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::event::{format_time, Event, User};

/// Every request name `@streamerbot/client` 1.12.x sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Authenticate,
    GetInfo,
    GetEvents,
    Subscribe,
    UnSubscribe,
    GetActions,
    DoAction,
    ExecuteCodeTrigger,
    GetCodeTriggers,
    GetCommands,
    GetCredits,
    TestCredits,
    ClearCredits,
    GetGlobals,
    GetGlobal,
    GetUserGlobals(Platform),
    GetUserGlobal(Platform),
    GetBroadcaster,
    GetActiveViewers,
    GetMonitoredYouTubeBroadcasts,
    GetEmotes(Platform),
    SendMessage,
    GetUserPronouns,
}

/// The chat platforms Streamer.bot requests name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Twitch,
    YouTube,
    Trovo,
    Kick,
}

impl Platform {
    pub const ALL: [Platform; 4] = [
        Platform::Twitch,
        Platform::YouTube,
        Platform::Trovo,
        Platform::Kick,
    ];

    /// As spelled in request names and error messages.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Twitch => "Twitch",
            Platform::YouTube => "YouTube",
            Platform::Trovo => "Trovo",
            Platform::Kick => "Kick",
        }
    }

    /// As a user variable's key spells it (`u/<source>:<userId>/<name>`).
    pub fn source(self) -> &'static str {
        match self {
            Platform::Twitch => "twitch",
            Platform::YouTube => "youtube",
            Platform::Trovo => "trovo",
            Platform::Kick => "kick",
        }
    }

    /// The platform named case-insensitively (`SendMessage`'s `platform`).
    pub fn parse(name: &str) -> Option<Platform> {
        Platform::ALL
            .into_iter()
            .find(|platform| platform.source().eq_ignore_ascii_case(name))
    }
}

impl Request {
    /// The request of this exact (case-sensitive) name.
    pub fn parse(name: &str) -> Option<Request> {
        Some(match name {
            "Authenticate" => Request::Authenticate,
            "GetInfo" => Request::GetInfo,
            "GetEvents" => Request::GetEvents,
            "Subscribe" => Request::Subscribe,
            "UnSubscribe" => Request::UnSubscribe,
            "GetActions" => Request::GetActions,
            "DoAction" => Request::DoAction,
            "ExecuteCodeTrigger" => Request::ExecuteCodeTrigger,
            "GetCodeTriggers" => Request::GetCodeTriggers,
            "GetCommands" => Request::GetCommands,
            "GetCredits" => Request::GetCredits,
            "TestCredits" => Request::TestCredits,
            "ClearCredits" => Request::ClearCredits,
            "GetGlobals" => Request::GetGlobals,
            "GetGlobal" => Request::GetGlobal,
            "GetBroadcaster" => Request::GetBroadcaster,
            "GetActiveViewers" => Request::GetActiveViewers,
            "GetMonitoredYouTubeBroadcasts" => Request::GetMonitoredYouTubeBroadcasts,
            "SendMessage" => Request::SendMessage,
            "GetUserPronouns" => Request::GetUserPronouns,
            _ => {
                let platform = Platform::ALL
                    .into_iter()
                    .find(|platform| name.starts_with(platform.name()))?;
                match &name[platform.name().len()..] {
                    "GetUserGlobals" => Request::GetUserGlobals(platform),
                    "GetUserGlobal" => Request::GetUserGlobal(platform),
                    "GetEmotes" if matches!(platform, Platform::Twitch | Platform::YouTube) => {
                        Request::GetEmotes(platform)
                    }
                    _ => return None,
                }
            }
        })
    }
}

/// A reply: the payload fields at top level, or an error message.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Ok(Map<String, Value>),
    Error(String),
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Ok(Map::new())
    }

    pub fn error(message: impl Into<String>) -> Reply {
        Reply::Error(message.into())
    }

    /// A success whose payload is the fields of `payload` (an object).
    pub fn with(payload: Value) -> Reply {
        match payload {
            Value::Object(map) => Reply::Ok(map),
            _ => unreachable!("reply payloads are written as JSON objects"),
        }
    }

    /// The frame, with `id` echoed when the request had one.
    pub fn encode(self, id: Option<&Value>) -> String {
        let mut frame = Map::new();
        if let Some(id) = id {
            frame.insert("id".into(), id.clone());
        }
        match self {
            Reply::Ok(payload) => {
                frame.insert("status".into(), "ok".into());
                for (key, value) in payload {
                    // A top-level `event` would be dispatched to listeners by the official client.
                    if key != "event" && key != "id" && key != "status" {
                        frame.insert(key, value);
                    }
                }
            }
            Reply::Error(message) => {
                frame.insert("status".into(), "error".into());
                frame.insert("error".into(), message.into());
            }
        }
        Value::Object(frame).to_string()
    }
}

/// The Hello's and `GetInfo`'s `info` object (docs/streamerbot.md §2.1).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    pub instance_id: String,
    pub name: &'static str,
    pub version: &'static str,
    pub os: &'static str,
    pub os_version: String,
    pub mode: &'static str,
    pub dark_mode: bool,
    pub source: &'static str,
}

impl Info {
    pub fn new(instance_id: String) -> Info {
        Info {
            instance_id,
            name: "Switchboard",
            version: env!("CARGO_PKG_VERSION"),
            os: match std::env::consts::OS {
                "macos" => "macosx",
                other => other,
            },
            os_version: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|text| text.trim().to_owned())
                .unwrap_or_default(),
            mode: "service",
            dark_mode: false,
            source: "websocketServer",
        }
    }
}

/// The event frame (§5.2), with the source and type already rendered.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventFrame<'a> {
    pub time_stamp: String,
    pub event: EventName<'a>,
    pub data: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a User>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<&'a str>,
}

#[derive(Serialize)]
pub struct EventName<'a> {
    pub source: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub id: String,
}

impl<'a> EventFrame<'a> {
    pub fn new(event: &'a Event, source: &'a str, kind: &'a str) -> EventFrame<'a> {
        EventFrame {
            time_stamp: format_time(&event.timestamp),
            event: EventName {
                source,
                kind,
                id: event.id.hyphenated().to_string(),
            },
            data: &event.data,
            user: event.user.as_ref(),
            room: event.room.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn there_are_30_request_names() {
        let names = [
            "Authenticate",
            "GetInfo",
            "GetEvents",
            "Subscribe",
            "UnSubscribe",
            "GetActions",
            "DoAction",
            "ExecuteCodeTrigger",
            "GetCodeTriggers",
            "GetCommands",
            "GetCredits",
            "TestCredits",
            "ClearCredits",
            "GetGlobals",
            "GetGlobal",
            "TwitchGetUserGlobals",
            "YouTubeGetUserGlobals",
            "TrovoGetUserGlobals",
            "KickGetUserGlobals",
            "TwitchGetUserGlobal",
            "YouTubeGetUserGlobal",
            "TrovoGetUserGlobal",
            "KickGetUserGlobal",
            "GetBroadcaster",
            "GetActiveViewers",
            "GetMonitoredYouTubeBroadcasts",
            "TwitchGetEmotes",
            "YouTubeGetEmotes",
            "SendMessage",
            "GetUserPronouns",
        ];
        assert_eq!(names.len(), 30);
        for name in names {
            assert!(Request::parse(name).is_some(), "{name}");
        }
        for name in ["getinfo", "KickGetEmotes", "TwitchGetUserGlobalz", "Nope"] {
            assert!(Request::parse(name).is_none(), "{name}");
        }
    }

    #[test]
    fn replies_echo_the_id_and_never_carry_an_event_key() {
        let reply = Reply::with(json!({"count": 0, "event": 1})).encode(Some(&json!("r1")));
        assert_eq!(reply, r#"{"id":"r1","status":"ok","count":0}"#);
        let error = Reply::error("Unknown request: X").encode(None);
        assert_eq!(error, r#"{"status":"error","error":"Unknown request: X"}"#);
    }

    #[test]
    fn event_frames_have_the_documented_shape() {
        let mut event = Event::new("twitch", "follow", json!({"user_login": "ik1497bot"}));
        event.user = Some(User {
            id: Some("750146097".into()),
            ..User::default()
        });
        let frame = serde_json::to_value(EventFrame::new(&event, "Twitch", "Follow")).unwrap();
        assert_eq!(frame["event"]["source"], "Twitch");
        assert_eq!(frame["event"]["type"], "Follow");
        assert_eq!(frame["event"]["id"], event.id.to_string());
        assert_eq!(frame["user"]["id"], "750146097");
        assert!(frame.get("room").is_none());
        assert!(frame.get("id").is_none());
        assert!(frame["timeStamp"].as_str().unwrap().ends_with("+00:00"));
    }
}
