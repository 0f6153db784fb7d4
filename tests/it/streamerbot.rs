//! The Streamer.bot face with a raw WebSocket client, where the official clients hide the frames.

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Options, TestServer, Ws};

/// An action that answers with a `General.Custom` event carrying its args.
pub const CELEBRATE: &str = r#"{
  "kind": "action", "schemaVersion": 1, "id": "01JC1XMWCEJZ05XHT5GMEJ146S",
  "name": "Celebrate", "group": "Game",
  "steps": [
    {"kind": "log", "message": "{{ boss }} defeated"},
    {"id": "shout", "kind": "emit", "source": "general", "type": "Custom",
     "data": {"event": "celebrate", "boss": "{{ boss }}", "hp": "{{ hp }}"}}
  ]
}"#;

/// An action that answers `customEventResponse` requests.
pub const REPLY: &str = r#"{
  "kind": "action", "schemaVersion": 1, "id": "5d2f7a1e-3b8c-4e6a-9f0d-2c4b6e8a1f3d",
  "name": "Reply", "enabled": true,
  "steps": [
    {"id": "reply", "kind": "emit", "source": "custom", "type": "Event",
     "data": {"eventName": "{{ args.sbClientResponse }}", "useArgs": true, "args": "{{ args }}"}}
  ]
}"#;

/// A disabled action.
pub const SLEEPING: &str = r#"{
  "kind": "action", "schemaVersion": 1, "id": "01JCM9S346Q3D25VT4F5V37E3S",
  "name": "Sleeping", "enabled": false, "steps": [{"kind": "log", "message": "zzz"}]
}"#;

pub fn server_with_actions(options: Options) -> TestServer {
    let dirs = crate::support::Dirs::new();
    dirs.write_rule("celebrate.action.json", CELEBRATE);
    dirs.write_rule("reply.action.json", REPLY);
    dirs.write_rule("sleeping.action.json", SLEEPING);
    TestServer::start_in(dirs, options)
}

async fn subscribe(ws: &mut Ws, events: Value) -> Value {
    let reply = ws
        .request(json!({"request": "Subscribe", "events": events, "id": "sub"}))
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    reply
}

#[tokio::test]
async fn the_hello_comes_first_even_when_get_info_is_sent_before_reading() {
    let server = TestServer::start();
    let mut ws = Ws::connect(server.url("streamerbot")).await;
    ws.send(json!({"request": "GetInfo", "id": "early"})).await;
    let hello = ws.recv().await;
    assert_eq!(hello["request"], "Hello");
    assert!(hello.get("id").is_none());
    assert!(hello.get("authentication").is_none());
    assert_eq!(hello["info"]["name"], "Switchboard");
    assert_eq!(hello["info"]["source"], "websocketServer");
    assert_eq!(hello["info"]["mode"], "service");
    assert!(!hello["info"]["version"].as_str().unwrap().is_empty());
    assert!(hello["timestamp"].as_str().unwrap().ends_with("+00:00"));
    let reply = ws.recv().await;
    assert_eq!(reply["id"], "early");
    assert_eq!(reply["status"], "ok");
    assert_eq!(reply["info"], hello["info"]);

    let (_second, second_hello) = Ws::streamerbot(&server).await;
    assert_ne!(second_hello["session"], hello["session"]);
    assert!(uuid::Uuid::parse_str(hello["session"].as_str().unwrap()).is_ok());
    assert_eq!(
        second_hello["info"]["instanceId"],
        hello["info"]["instanceId"]
    );
}

/// One minimal, valid request of each of the 30 names, and the status it must get.
fn every_request() -> Vec<(Value, &'static str)> {
    vec![
        (
            json!({"request": "Authenticate", "authentication": "x"}),
            "ok",
        ),
        (json!({"request": "GetInfo"}), "ok"),
        (json!({"request": "GetEvents"}), "ok"),
        (
            json!({"request": "Subscribe", "events": {"Twitch": ["Follow"]}}),
            "ok",
        ),
        (
            json!({"request": "UnSubscribe", "events": {"Twitch": ["Follow"]}}),
            "ok",
        ),
        (json!({"request": "GetActions"}), "ok"),
        (
            json!({"request": "DoAction", "action": {"name": "Celebrate"}, "args": {"boss": "x"}}),
            "ok",
        ),
        (
            json!({"request": "ExecuteCodeTrigger", "triggerName": "t", "args": {}}),
            "ok",
        ),
        (json!({"request": "GetCodeTriggers"}), "ok"),
        (json!({"request": "GetCommands"}), "ok"),
        (json!({"request": "GetCredits"}), "ok"),
        (json!({"request": "TestCredits"}), "ok"),
        (json!({"request": "ClearCredits"}), "ok"),
        (json!({"request": "GetGlobals", "persisted": true}), "ok"),
        (json!({"request": "GetGlobal", "variable": "nope"}), "error"),
        (json!({"request": "TwitchGetUserGlobals"}), "ok"),
        (json!({"request": "YouTubeGetUserGlobals"}), "ok"),
        (json!({"request": "TrovoGetUserGlobals"}), "ok"),
        (json!({"request": "KickGetUserGlobals"}), "ok"),
        (
            json!({"request": "TwitchGetUserGlobal", "userId": "1"}),
            "ok",
        ),
        (
            json!({"request": "YouTubeGetUserGlobal", "userId": 2}),
            "ok",
        ),
        (
            json!({"request": "TrovoGetUserGlobal", "userId": "3"}),
            "ok",
        ),
        (
            json!({"request": "KickGetUserGlobal", "userId": "4", "variable": "x"}),
            "error",
        ),
        (json!({"request": "GetBroadcaster"}), "ok"),
        (json!({"request": "GetActiveViewers"}), "ok"),
        (json!({"request": "GetMonitoredYouTubeBroadcasts"}), "ok"),
        (json!({"request": "TwitchGetEmotes"}), "ok"),
        (json!({"request": "YouTubeGetEmotes"}), "ok"),
        (
            json!({"request": "SendMessage", "platform": "twitch", "message": "hi"}),
            "error",
        ),
        (
            json!({"request": "GetUserPronouns", "platform": "twitch", "userLogin": "a"}),
            "error",
        ),
    ]
}

#[tokio::test]
async fn each_of_the_30_requests_gets_exactly_one_reply_with_its_id() {
    let server = server_with_actions(Options::default());
    let (mut ws, _) = Ws::streamerbot(&server).await;
    let requests = every_request();
    assert_eq!(requests.len(), 30);
    for (index, (mut request, status)) in requests.into_iter().enumerate() {
        let id = format!("sb:client:req:{index}");
        request["id"] = json!(id);
        ws.send(request.clone()).await;
        let reply = ws.recv().await;
        assert_eq!(reply["id"], json!(id), "{request} got {reply}");
        assert_eq!(reply["status"], status, "{request} got {reply}");
        assert!(reply.get("event").is_none(), "{reply}");
    }
    // Exactly one reply each: the next frame answers the next request.
    let reply = ws
        .request(json!({"request": "GetInfo", "id": "last"}))
        .await;
    assert_eq!(reply["status"], "ok");
}

#[tokio::test]
async fn platform_requests_answer_empty_or_with_their_documented_errors() {
    let server = TestServer::start();
    let (mut ws, _) = Ws::streamerbot(&server).await;
    let cases = [
        (
            json!({"request": "GetBroadcaster"}),
            json!({"platforms": {}, "connected": [], "disconnected": []}),
        ),
        (
            json!({"request": "GetActiveViewers"}),
            json!({"viewers": [], "count": 0}),
        ),
        (
            json!({"request": "GetMonitoredYouTubeBroadcasts"}),
            json!({"broadcasts": [], "count": 0}),
        ),
        (
            json!({"request": "TwitchGetEmotes"}),
            json!({"emotes": {"userEmotes": [], "bttvEmotes": [], "ffzEmotes": [], "sevenTvEmotes": []}}),
        ),
        (
            json!({"request": "GetCodeTriggers"}),
            json!({"count": 0, "triggers": []}),
        ),
        (
            json!({"request": "GetCommands"}),
            json!({"count": 0, "commands": []}),
        ),
        (
            json!({"request": "GetGlobals"}),
            json!({"count": 0, "variables": {}}),
        ),
    ];
    for (mut request, payload) in cases {
        request["id"] = json!("p");
        let reply = ws.request(request.clone()).await;
        let mut expected = payload.as_object().unwrap().clone();
        expected.insert("id".into(), json!("p"));
        expected.insert("status".into(), json!("ok"));
        assert_eq!(reply, Value::Object(expected), "{request}");
    }
    let errors = [
        (
            json!({"request": "SendMessage", "platform": "Twitch", "message": "hi"}),
            "No Twitch connection",
        ),
        (
            json!({"request": "SendMessage", "platform": "kick", "message": "hi"}),
            "No Kick connection",
        ),
        (
            json!({"request": "SendMessage", "platform": "irc", "message": "hi"}),
            "platform must be one of twitch, youtube, trovo, kick",
        ),
        (
            json!({"request": "SendMessage", "platform": "twitch", "message": ""}),
            "message must be a non-empty string",
        ),
        (
            json!({"request": "SendMessage", "platform": "twitch", "message": "x", "bot": "yes"}),
            "bot must be a boolean",
        ),
        (
            json!({"request": "SendMessage", "platform": "twitch", "message": "x", "replyId": 1}),
            "replyId must be a string",
        ),
        (
            json!({"request": "GetUserPronouns", "platform": "twitch", "userLogin": "a"}),
            "No pronoun service",
        ),
        (
            json!({"request": "GetUserPronouns", "platform": "twitch"}),
            "userLogin must be a non-empty string",
        ),
        (
            json!({"request": "GetGlobal", "variable": "missing"}),
            "Variable not found",
        ),
        (
            json!({"request": "GetGlobal"}),
            "variable must be a non-empty string",
        ),
        (
            json!({"request": "GetGlobals", "persisted": "yes"}),
            "persisted must be a boolean",
        ),
        (
            json!({"request": "TwitchGetUserGlobal"}),
            "userId must be a string",
        ),
        (
            json!({"request": "TwitchGetUserGlobals", "variable": 3}),
            "variable must be a string or null",
        ),
    ];
    for (mut request, message) in errors {
        request["id"] = json!("e");
        let reply = ws.request(request.clone()).await;
        assert_eq!(
            reply,
            json!({"id": "e", "status": "error", "error": message}),
            "{request}"
        );
    }
}

#[tokio::test]
async fn bad_input_gets_error_replies_and_the_connection_keeps_working() {
    let server = TestServer::start();
    let (mut ws, _) = Ws::streamerbot(&server).await;
    let (mut other, _) = Ws::streamerbot(&server).await;

    ws.send_text("{not json").await;
    let reply = ws.recv().await;
    assert_eq!(reply["status"], "error");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .starts_with("Invalid JSON: "),
        "{reply}"
    );
    assert!(reply.get("id").is_none());

    ws.send_text("[1]").await;
    assert_eq!(
        ws.recv().await,
        json!({"status": "error", "error": "Request must be a JSON object"})
    );
    ws.send_text("{}").await;
    assert_eq!(
        ws.recv().await,
        json!({"status": "error", "error": "Missing request"})
    );
    ws.send(json!({"request": "Dance", "id": 7})).await;
    assert_eq!(
        ws.recv().await,
        json!({"id": 7, "status": "error", "error": "Unknown request: Dance"})
    );
    ws.send(json!({"request": "DoAction", "action": 5, "id": "w"}))
        .await;
    assert_eq!(
        ws.recv().await,
        json!({"id": "w", "status": "error", "error": "action must be an object with a non-empty id or name"})
    );
    ws.send(json!({"request": "Subscribe", "events": ["Twitch"], "id": "s"}))
        .await;
    assert_eq!(
        ws.recv().await,
        json!({"id": "s", "status": "error", "error": "events must be an object mapping sources to arrays of event types"})
    );
    ws.send(json!({"request": "ExecuteCodeTrigger", "triggerName": "  ", "id": "t"}))
        .await;
    assert_eq!(
        ws.recv().await,
        json!({"id": "t", "status": "error", "error": "triggerName must be a non-empty string"})
    );
    let big = format!(
        "{{\"request\":\"GetInfo\",\"id\":\"big\",\"pad\":\"{}\"}}",
        "x".repeat(2 << 20)
    );
    ws.send_text(big).await;
    assert_eq!(
        ws.recv().await,
        json!({"status": "error", "error": "Message exceeds 1048576 bytes"})
    );
    ws.send_message(Message::Binary(vec![1, 2, 3])).await;
    // A binary frame gets no reply: the next frame answers the next request.
    ws.send(json!({"request": "GetInfo", "id": "after"})).await;
    let reply = ws.recv().await;
    assert_eq!(reply["id"], "after");
    assert_eq!(reply["status"], "ok");

    let reply = other
        .request(json!({"request": "GetInfo", "id": "other"}))
        .await;
    assert_eq!(reply["status"], "ok");
}

#[tokio::test]
async fn a_fragmented_message_is_reassembled_and_its_size_counts_whole() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let server = TestServer::start();
    let (mut ws, _) = Ws::streamerbot(&server).await;
    let text = r#"{"request":"GetInfo","id":"fragmented"}"#.as_bytes();
    let (first, rest) = text.split_at(10);
    ws.send_message(Message::Frame(Frame::message(
        first.to_vec(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await;
    ws.send_message(Message::Frame(Frame::message(
        rest.to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .await;
    let reply = ws.recv().await;
    assert_eq!(reply["id"], "fragmented");
    assert_eq!(reply["status"], "ok");

    let piece = vec![b' '; 700 * 1024];
    ws.send_message(Message::Frame(Frame::message(
        b"{\"request\":\"GetInfo\"".to_vec(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await;
    ws.send_message(Message::Frame(Frame::message(
        piece.clone(),
        OpCode::Data(Data::Continue),
        false,
    )))
    .await;
    ws.send_message(Message::Frame(Frame::message(
        piece,
        OpCode::Data(Data::Continue),
        false,
    )))
    .await;
    ws.send_message(Message::Frame(Frame::message(
        b"}".to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .await;
    assert_eq!(
        ws.recv().await,
        json!({"status": "error", "error": "Message exceeds 1048576 bytes"})
    );
    let reply = ws
        .request(json!({"request": "GetInfo", "id": "still"}))
        .await;
    assert_eq!(reply["status"], "ok");
}

#[tokio::test]
async fn a_single_frame_over_four_times_the_limit_is_closed_with_1009() {
    let server = TestServer::start();
    let (mut ws, _) = Ws::streamerbot(&server).await;
    ws.send_text("x".repeat(5 << 20)).await;
    assert_eq!(ws.closed().await, (1009, "Message too big".to_owned()));
}

#[tokio::test]
async fn a_client_ping_is_answered_with_the_same_payload() {
    let server = TestServer::start();
    let (mut ws, _) = Ws::streamerbot(&server).await;
    ws.send_message(Message::Ping(b"are you there".to_vec()))
        .await;
    assert_eq!(ws.pong().await, b"are you there".to_vec());
}

#[tokio::test]
async fn the_server_pings_a_silent_client_within_one_heartbeat_interval() {
    let server = TestServer::start();
    let (mut ws, _) = Ws::streamerbot(&server).await;
    // One registry timer pings a thirtieth of the sessions each second: every session once per
    // interval, whichever slice it fell in.
    let within = switchboard::registry::HEARTBEAT_INTERVAL + crate::support::TIMEOUT;
    assert_eq!(ws.ping(within).await, Vec::<u8>::new());
    // The connection stays open and keeps answering.
    let reply = ws.request(json!({"request": "GetInfo", "id": "i"})).await;
    assert_eq!(reply["status"], "ok");
}

#[tokio::test]
async fn events_reach_only_the_connections_subscribed_to_them() {
    let server = TestServer::start();
    let (mut follows, _) = Ws::streamerbot(&server).await;
    let (mut cheers, _) = Ws::streamerbot(&server).await;
    let (mut never, _) = Ws::streamerbot(&server).await;
    let reply = subscribe(&mut follows, json!({"Twitch": ["Follow"]})).await;
    assert_eq!(reply["events"], json!({"Twitch": ["Follow"]}));
    subscribe(&mut cheers, json!({"Twitch": ["Cheer"]})).await;
    subscribe(&mut never, json!({"Twitch": []})).await;

    let follow = server.inject(json!({"source": "twitch", "type": "follow",
        "user": {"id": "750146097", "username": "ik1497bot", "nickname": "Ik1497Bot"},
        "data": {"user_login": "ik1497bot"}}));
    let cheer = server.inject(json!({"source": "twitch", "type": "cheer", "data": {"bits": 5}}));
    let frame = follows.recv().await;
    assert_eq!(
        frame["event"],
        json!({"source": "Twitch", "type": "Follow", "id": follow})
    );
    assert_eq!(frame["data"], json!({"user_login": "ik1497bot"}));
    assert_eq!(frame["user"]["nickname"], "Ik1497Bot");
    assert!(
        frame.get("id").is_none()
            && frame.get("status").is_none()
            && frame.get("request").is_none()
    );
    // The cheer subscriber's first frame is the cheer: the follow never reached it.
    assert_eq!(cheers.recv().await["event"]["id"], json!(cheer));
    // A connection without subscriptions gets its own replies and no event.
    let reply = never
        .request(json!({"request": "GetInfo", "id": "n"}))
        .await;
    assert_eq!(reply["status"], "ok");
    never.send(json!({"request": "GetInfo", "id": "n2"})).await;
    assert_eq!(never.recv().await["id"], "n2");
}

#[tokio::test]
async fn subscriptions_add_up_match_loosely_and_can_be_removed() {
    let server = TestServer::start();
    let (mut ws, _) = Ws::streamerbot(&server).await;
    subscribe(&mut ws, json!({"twitch": ["follow"]})).await;
    let reply = subscribe(&mut ws, json!({"Twitch": ["Cheer"], "General": ["Custom"]})).await;
    assert_eq!(
        reply["events"],
        json!({"Twitch": ["Follow", "Cheer"], "General": ["Custom"]})
    );
    let reply = subscribe(&mut ws, json!({"TWITCH": ["FOLLOW"]})).await;
    assert_eq!(
        reply["events"],
        json!({"Twitch": ["Follow", "Cheer"], "General": ["Custom"]})
    );
    let reply = ws
        .request(json!({"request": "UnSubscribe", "events": {"Twitch": ["Cheer"]}, "id": "u1"}))
        .await;
    assert_eq!(
        reply,
        json!({"id": "u1", "status": "ok", "events": {"Twitch": ["Follow"], "General": ["Custom"]}})
    );

    server.inject(json!({"source": "twitch", "type": "cheer"}));
    let follow = server.inject(json!({"source": "Twitch", "type": "Follow"}));
    assert_eq!(ws.recv().await["event"]["id"], json!(follow));

    subscribe(&mut ws, json!({"YouTube": ["*"]})).await;
    let chat = server.inject(json!({"source": "youtube", "type": "super_chat"}));
    let frame = ws.recv().await;
    assert_eq!(
        frame["event"],
        json!({"source": "YouTube", "type": "SuperChat", "id": chat})
    );

    let (mut everything, _) = Ws::streamerbot(&server).await;
    subscribe(&mut everything, json!({"*": ["*"]})).await;
    let custom = server.inject(json!({"source": "mygame", "type": "boss_defeated"}));
    assert_eq!(
        everything.recv().await["event"],
        json!({"source": "Mygame", "type": "BossDefeated", "id": custom})
    );
}

#[tokio::test]
async fn types_render_in_pascal_case_and_new_names_join_the_catalogue() {
    let server = TestServer::start();
    let (mut ws, _) = Ws::streamerbot(&server).await;
    subscribe(&mut ws, json!({"*": ["*"]})).await;
    for (source, kind, rendered) in [
        ("twitch", "gift_sub", ("Twitch", "GiftSub")),
        ("twitch", "resub", ("Twitch", "ReSub")),
        ("discord", "messageCreate", ("Discord", "MessageCreate")),
        ("mygame", "boss_defeated", ("Mygame", "BossDefeated")),
    ] {
        server.inject(json!({"source": source, "type": kind}));
        let frame = ws.recv().await;
        assert_eq!(
            (
                frame["event"]["source"].as_str().unwrap(),
                frame["event"]["type"].as_str().unwrap()
            ),
            rendered
        );
    }
    let events = ws.request(json!({"request": "GetEvents", "id": "e"})).await["events"].clone();
    let keys: Vec<&String> = events.as_object().unwrap().keys().collect();
    for key in [
        "Twitch",
        "YouTube",
        "General",
        "Custom",
        "Obs",
        "Kofi",
        "Switchboard",
        "TikTok",
        "Discord",
    ] {
        assert!(keys.iter().any(|k| *k == key), "{key} missing");
    }
    assert!(keys
        .iter()
        .all(|key| !key.starts_with(|c: char| c.is_ascii_lowercase())));
    assert_eq!(events["Mygame"], json!(["BossDefeated"]));
    assert!(events["Discord"]
        .as_array()
        .unwrap()
        .contains(&json!("MessageCreate")));
}

#[tokio::test]
async fn do_action_runs_the_action_with_its_args() {
    let server = server_with_actions(Options::default());
    let (mut ws, _) = Ws::streamerbot(&server).await;
    subscribe(&mut ws, json!({"General": ["Custom"]})).await;
    let reply = ws
        .request(json!({"request": "DoAction", "action": {"name": "Celebrate"}, "args": {"boss": "Dragon", "hp": 0}, "id": "d"}))
        .await;
    assert_eq!(
        reply,
        json!({"id": "d", "status": "ok", "args": {"boss": "Dragon", "hp": 0}})
    );
    let frame = ws.recv().await;
    assert_eq!(frame["event"]["source"], "General");
    assert_eq!(frame["event"]["type"], "Custom");
    assert_eq!(
        frame["data"],
        json!({"event": "celebrate", "boss": "Dragon", "hp": 0})
    );

    let reply = ws
        .request(json!({"request": "DoAction", "action": {"id": "01JC1XMWCEJZ05XHT5GMEJ146S"}, "args": {"boss": "Lich"}, "id": "byid"}))
        .await;
    assert_eq!(reply["status"], "ok");
    assert_eq!(ws.recv().await["data"]["boss"], "Lich");

    let reply = ws
        .request(json!({"request": "DoAction", "action": {"name": "Nope"}, "id": "n"}))
        .await;
    assert_eq!(
        reply,
        json!({"id": "n", "status": "error", "error": "Action not found: Nope"})
    );
    let reply = ws
        .request(json!({"request": "DoAction", "action": {"name": "Sleeping"}, "id": "z"}))
        .await;
    assert_eq!(
        reply,
        json!({"id": "z", "status": "error", "error": "Action is disabled: Sleeping"})
    );
    let reply = ws
        .request(
            json!({"request": "DoAction", "action": {"name": "Celebrate"}, "args": [1], "id": "a"}),
        )
        .await;
    assert_eq!(
        reply,
        json!({"id": "a", "status": "error", "error": "args must be an object"})
    );

    let actions = ws
        .request(json!({"request": "GetActions", "id": "g"}))
        .await;
    assert_eq!(actions["count"], 3);
    assert_eq!(
        actions["actions"][0],
        json!({"id": "01JC1XMWCEJZ05XHT5GMEJ146S", "name": "Celebrate", "group": "Game", "enabled": true, "subaction_count": 2, "trigger_count": 0})
    );
    assert_eq!(actions["actions"][1]["name"], "Reply");
    assert_eq!(actions["actions"][1]["group"], "None");
    assert_eq!(actions["actions"][2]["enabled"], false);
}

#[tokio::test]
async fn execute_code_trigger_injects_a_custom_event() {
    let server = TestServer::start();
    let (mut ws, _) = Ws::streamerbot(&server).await;
    subscribe(&mut ws, json!({"Custom": ["PollVoteRemoved"]})).await;
    let reply = ws
        .request(json!({"request": "ExecuteCodeTrigger", "triggerName": "poll_vote_removed", "args": {"numArg": 1}, "id": "x"}))
        .await;
    assert_eq!(reply["status"], "ok");
    let frame = ws.recv().await;
    assert_eq!(
        frame["event"],
        json!({"source": "Custom", "type": "PollVoteRemoved", "id": reply["eventId"]})
    );
    assert_eq!(frame["data"], json!({"numArg": 1}));
}

#[tokio::test]
async fn credits_fill_clear_and_record_follows() {
    let server = TestServer::start();
    let (mut ws, _) = Ws::streamerbot(&server).await;
    let filled = ws
        .request(json!({"request": "TestCredits", "id": "t"}))
        .await;
    assert_eq!(
        filled["events"]["follows"],
        json!(["TestUser1", "TestUser2", "TestUser3"])
    );
    assert_eq!(
        filled["users"]["moderators"],
        json!(["TestUser1", "TestUser2", "TestUser3"])
    );
    let got = ws
        .request(json!({"request": "GetCredits", "id": "g"}))
        .await;
    assert_eq!(got["events"], filled["events"]);
    let cleared = ws
        .request(json!({"request": "ClearCredits", "id": "c"}))
        .await;
    assert_eq!(cleared, json!({"id": "c", "status": "ok"}));
    let got = ws
        .request(json!({"request": "GetCredits", "id": "g2"}))
        .await;
    for group in ["events", "hypeTrain", "users"] {
        for (list, names) in got[group].as_object().unwrap() {
            assert_eq!(names, &json!([]), "{group}.{list}");
        }
    }
    assert_eq!(
        got["top"]["allBits"],
        json!(["TestUser1", "TestUser2", "TestUser3"])
    );
    server.inject(json!({"source": "twitch", "type": "follow", "user": {"id": "1", "username": "alice", "nickname": "Alice"}}));
    let got = ws
        .request(json!({"request": "GetCredits", "id": "g3"}))
        .await;
    assert_eq!(got["events"]["follows"], json!(["Alice"]));
}

#[tokio::test]
async fn authentication_is_required_when_a_password_is_set() {
    let server = TestServer::start_with(Options {
        password: Some("hunter2".into()),
        ..Options::default()
    });
    let (mut ws, hello) = Ws::streamerbot(&server).await;
    let salt = hello["authentication"]["salt"].as_str().unwrap().to_owned();
    let challenge = hello["authentication"]["challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!((salt.len(), challenge.len()), (44, 44));
    let (_other, other_hello) = Ws::streamerbot(&server).await;
    assert_ne!(other_hello["authentication"]["salt"], json!(salt));

    let reply = ws.request(json!({"request": "GetInfo", "id": "i"})).await;
    assert_eq!(reply["status"], "ok");
    for request in ["GetEvents", "Subscribe", "GetActions", "DoAction", "Dance"] {
        let reply = ws
            .request(json!({"request": request, "id": request, "events": {"*": ["*"]}}))
            .await;
        assert_eq!(
            reply,
            json!({"id": request, "status": "error", "error": "Authentication required"})
        );
    }
    // The refused Subscribe recorded nothing.
    server.inject(json!({"source": "twitch", "type": "follow"}));
    let answer = switchboard::faces::streamerbot::auth::answer("hunter2", &salt, &challenge);
    let reply = ws
        .request(json!({"request": "Authenticate", "authentication": answer, "id": "a"}))
        .await;
    assert_eq!(reply, json!({"id": "a", "status": "ok"}));
    let reply = ws.request(json!({"request": "GetEvents", "id": "e"})).await;
    assert_eq!(reply["status"], "ok");
}

#[tokio::test]
async fn the_third_failed_authentication_closes_with_1008() {
    let server = TestServer::start_with(Options {
        password: Some("hunter2".into()),
        ..Options::default()
    });
    let (mut ws, _) = Ws::streamerbot(&server).await;
    for attempt in 0..2 {
        let reply = ws
            .request(json!({"request": "Authenticate", "authentication": "wrong", "id": attempt}))
            .await;
        assert_eq!(
            reply,
            json!({"id": attempt, "status": "error", "error": "Authentication failed"})
        );
    }
    ws.send(json!({"request": "Authenticate", "id": 3})).await;
    assert_eq!(
        ws.recv().await,
        json!({"id": 3, "status": "error", "error": "Authentication failed"})
    );
    assert_eq!(
        ws.closed().await,
        (1008, "Authentication failed".to_owned())
    );
    server.wait_for_log("authentication failed from");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_without_stalling_the_others() {
    let server = TestServer::start_with(Options {
        extra_toml: "[limits]\nsend_queue = 8\n".into(),
        ..Options::default()
    });
    let (mut slow, _) = Ws::streamerbot(&server).await;
    let (mut fast, _) = Ws::streamerbot(&server).await;
    subscribe(&mut slow, json!({"*": ["*"]})).await;
    subscribe(&mut fast, json!({"*": ["*"]})).await;
    let padding = "x".repeat(64 * 1024);
    let events = 200;
    let mut ids = Vec::new();
    for _ in 0..events {
        ids.push(
            server.inject(json!({"source": "load", "type": "tick", "data": {"padding": padding}})),
        );
        // The fast client keeps up: each event arrives in order.
        let frame = fast.recv().await;
        assert_eq!(frame["event"]["id"], json!(ids.last().unwrap()));
    }
    // The slow session was dropped.
    server.wait_for_log("too slow");
    // Once it reads again it finds the close after what was already queued.
    assert_eq!(slow.closed().await, (1008, "Send queue full".to_owned()));
}

#[tokio::test]
async fn shutdown_closes_every_connection_with_1001() {
    let server = TestServer::start();
    let (mut ws, _) = Ws::streamerbot(&server).await;
    subscribe(&mut ws, json!({"*": ["*"]})).await;
    server.terminate();
    assert_eq!(ws.closed().await, (1001, "Server shutting down".to_owned()));
}

#[tokio::test]
async fn a_ws_send_step_fails_clearly_when_its_connection_is_down() {
    let dirs = crate::support::Dirs::new();
    dirs.write_rule("send.action.json", r#"{"kind": "action", "schemaVersion": 1, "id": "01JD3Q5S8N0W4X7Y2Z6A9B1C3F",
        "name": "Send", "steps": [
          {"id": "tell-game", "kind": "ws.send", "connection": "mygame", "payload": {"cmd": "{{ cmd }}"}},
          {"id": "after", "kind": "emit", "type": "sent"}]}"#);
    dirs.write_rule("nowhere.action.json", r#"{"kind": "action", "schemaVersion": 1, "id": "01JD3Q5S8N0W4X7Y2Z6A9B1C3G",
        "name": "Nowhere", "steps": [{"id": "lost", "kind": "ws.send", "connection": "nowhere", "text": "hi"}]}"#);
    let server = TestServer::start_in(
        dirs,
        Options {
            extra_toml: "[[outbound]]\nname = \"mygame\"\nurl = \"ws://127.0.0.1:9/\"\n".into(),
            ..Options::default()
        },
    );
    let (mut ws, _) = Ws::streamerbot(&server).await;
    subscribe(&mut ws, json!({"*": ["*"]})).await;
    let reply = ws.request(json!({"request": "DoAction", "action": {"name": "Send"}, "args": {"cmd": "spawn"}, "id": "s"})).await;
    assert_eq!(reply["status"], "ok");
    let line = server.wait_for_log("step tell-game failed (notConnected)");
    assert!(line.contains("Send run"), "{line}");
    ws.request(json!({"request": "DoAction", "action": {"name": "Nowhere"}, "id": "n"}))
        .await;
    server.wait_for_log("step lost failed (notFound)");
    // The failed step ended its run: the emit after it never happened, so the next frame is ours.
    ws.send(json!({"request": "GetInfo", "id": "last"})).await;
    assert_eq!(ws.recv().await["id"], "last");
}

/// Each face answers on its own port: the Streamer.bot port only at its endpoint, the custom port
/// only with a token; and an event a game injects on the custom face reaches a Streamer.bot overlay.
#[tokio::test]
async fn each_port_serves_its_own_face() {
    use tokio_tungstenite::tungstenite::Error;
    let server = TestServer::start();
    let elsewhere = server.url("streamerbot").trim_end_matches('/').to_owned() + "/elsewhere";
    match tokio_tungstenite::connect_async(elsewhere.as_str()).await {
        Err(Error::Http(response)) => assert_eq!(response.status(), 404),
        other => panic!("expected a 404 at {elsewhere}, got {other:?}"),
    }
    // The custom face's port does not speak Streamer.bot: without a token it refuses.
    let mut refused = Ws::connect(server.url("custom")).await;
    assert_eq!(refused.closed().await.0, 4401);

    let (mut overlay, _) = Ws::streamerbot(&server).await;
    subscribe(&mut overlay, json!({"MyGame": ["*"]})).await;
    let mut game = Ws::custom(&server).await;
    game.send(json!({"action": "injectEvent",
                     "event": {"type": "boss_defeated", "source": "mygame", "data": {"boss": "hydra"}}}))
        .await;
    let event = overlay.recv().await;
    assert_eq!(event["data"]["boss"], "hydra", "{event}");
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_is_closed_1007_on_every_websocket_face() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let server = TestServer::start();
    let (streamerbot, _) = Ws::streamerbot(&server).await;
    let custom = Ws::custom(&server).await;
    let mut astro = Ws::connect(server.url("astro")).await;
    assert_eq!(astro.recv().await["type"], "welcome");
    for mut ws in [streamerbot, custom, astro] {
        let frame = Frame::message(vec![0xff, 0xfe, 0x41], OpCode::Data(Data::Text), true);
        ws.send_message(Message::Frame(frame)).await;
        assert_eq!(ws.closed().await, (1007, "Text is not UTF-8".to_owned()));
    }
}

#[tokio::test]
async fn guessing_the_password_by_reconnecting_is_locked_out_per_address() {
    let server = TestServer::start_with(Options {
        password: Some("hunter2".into()),
        ..Options::default()
    });
    // Ten failures over four connections (each closed after its third).
    let mut failures = 0;
    while failures < 10 {
        let (mut ws, _) = Ws::streamerbot(&server).await;
        for _ in 0..3.min(10 - failures) {
            let reply = ws
                .request(
                    json!({"request": "Authenticate", "authentication": "wrong", "id": failures}),
                )
                .await;
            assert_eq!(reply["error"], "Authentication failed");
            failures += 1;
        }
    }
    // Now even the right password is refused, unchecked, and the connection closed.
    let (mut ws, hello) = Ws::streamerbot(&server).await;
    let salt = hello["authentication"]["salt"].as_str().unwrap();
    let challenge = hello["authentication"]["challenge"].as_str().unwrap();
    let answer = switchboard::faces::streamerbot::auth::answer("hunter2", salt, challenge);
    let reply = ws
        .request(json!({"request": "Authenticate", "authentication": answer, "id": "right"}))
        .await;
    assert_eq!(
        reply["error"],
        "Too many failed authentications from this address; try again later"
    );
    assert_eq!(ws.closed().await.0, 1008);
}
