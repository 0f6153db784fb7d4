//! The rule engine end to end: events fire rules, rules and calls run actions, results reach
//! subscribers, state survives restarts, and edits apply without one.

use serde_json::{json, Value};

use crate::support::{Dirs, Options, TestServer, Ws};

/// A rule document with the given id, name, triggers and steps.
fn rule(id: &str, name: &str, triggers: Value, steps: Value) -> String {
    json!({"kind": "rule", "schemaVersion": 1, "id": id, "name": name, "triggers": triggers, "steps": steps}).to_string()
}

/// Every event, on a Streamer.bot connection.
pub async fn everything(server: &TestServer) -> Ws {
    let (mut ws, _) = Ws::streamerbot(server).await;
    let reply = ws
        .request(json!({"request": "Subscribe", "events": {"*": ["*"]}, "id": "all"}))
        .await;
    assert_eq!(reply["status"], "ok");
    ws
}

/// The next event frame whose type (as rendered) is one of `types`.
async fn next_of(ws: &mut Ws, types: &[&str]) -> Value {
    loop {
        let frame = ws.recv().await;
        if frame["event"]["type"]
            .as_str()
            .is_some_and(|kind| types.contains(&kind))
        {
            return frame;
        }
    }
}

#[tokio::test]
async fn an_http_event_fires_a_rule_whose_emit_reaches_the_official_client() {
    let dirs = Dirs::new();
    dirs.write_rule("boss.rule.json", &rule("01JCWXWCBYB6WK952SWA0432CF", "Boss down",
        json!([{"on": "boss_defeated", "sources": ["mygame"]}]),
        json!([{"kind": "emit", "source": "mygame", "type": "boss_down", "data": {"boss": "{{ event.data.boss }}", "by": "{{ event.user.nickname }}"}}])));
    let server = TestServer::start_in(dirs, Options::default());
    let output = server
        .script(
            "streamerbot.mjs",
            &["rule-emit", server.url("streamerbot"), server.url("http")],
        )
        .await;
    output.assert_success();
    assert_eq!(output.lines(), ["ok rule emit"]);
}

#[tokio::test]
async fn a_per_user_cooldown_lets_one_user_through_once_and_two_users_each() {
    let dirs = Dirs::new();
    dirs.write_rule("so.rule.json", &json!({"kind": "rule", "schemaVersion": 1, "id": "01JC6JR410DD3YRST4CHN5KN0T",
        "name": "Shoutout command",
        "triggers": [{"id": "chat", "on": "command", "command": {"names": ["!so"]}}],
        "limits": {"cooldowns": [{"scope": "user", "seconds": 60}]},
        "steps": [{"kind": "emit", "type": "shouted", "data": {"by": "{{ event.user.id }}", "target": "{{ input0 }}"}}]}).to_string());
    let server = TestServer::start_in(dirs, Options::default());
    let mut ws = everything(&server).await;
    let chat = |user: &str, text: &str| json!({"source": "twitch", "type": "ChatMessage", "user": {"id": user, "username": format!("u{user}")}, "data": {"message": text}});
    server.inject(chat("1", "!so alice"));
    server.inject(chat("1", "!so bob"));
    server.inject(chat("2", "!so carol"));
    let mut shouted = Vec::new();
    let mut denied = Vec::new();
    while shouted.len() + denied.len() < 3 {
        let frame = next_of(&mut ws, &["Shouted", "RuleDenied"]).await;
        if frame["event"]["type"] == "Shouted" {
            shouted.push((frame["data"]["by"].clone(), frame["data"]["target"].clone()));
        } else {
            denied.push(frame);
        }
    }
    shouted.sort_by_key(|(by, _)| by.to_string());
    assert_eq!(
        shouted,
        [(json!("1"), json!("alice")), (json!("2"), json!("carol"))]
    );
    assert_eq!(denied[0]["data"]["reason"], "cooldown");
    assert_eq!(denied[0]["data"]["rule"], "Shoutout command");
    assert_eq!(denied[0]["data"]["scope"], "user");
    assert_eq!(denied[0]["user"]["id"], "1");
    assert!(denied[0]["data"]["remainingSeconds"].as_i64().unwrap() > 55);

    let (status, traces) = server.get("/rules/01JC6JR410DD3YRST4CHN5KN0T/traces");
    assert_eq!(status, 200);
    let outcomes: Vec<&str> = traces["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "cooldown").count(),
        1,
        "{outcomes:?}"
    );
    let refused = traces["traces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["outcome"] == "cooldown")
        .unwrap();
    assert_eq!(refused["limits"][0]["key"], "twitch:1");
    assert_eq!(refused["trigger"], "chat");
    assert_eq!(refused["args"]["input0"], "bob");
}

#[tokio::test]
async fn a_delay_in_one_rule_does_not_delay_another() {
    let dirs = Dirs::new();
    dirs.write_rule(
        "slow.rule.json",
        &rule(
            "01JD3Q5S8N0W4X7Y2Z6A9B1C40",
            "Slow",
            json!([{"on": "slow"}]),
            json!([{"kind": "delay", "ms": 2000}, {"kind": "emit", "type": "slow_done"}]),
        ),
    );
    dirs.write_rule(
        "fast.rule.json",
        &rule(
            "01JD3Q5S8N0W4X7Y2Z6A9B1C41",
            "Fast",
            json!([{"on": "fast"}]),
            json!([{"kind": "emit", "type": "fast_done"}]),
        ),
    );
    let server = TestServer::start_in(dirs, Options::default());
    let mut ws = everything(&server).await;
    server.inject(json!({"source": "game", "type": "slow"}));
    server.inject(json!({"source": "game", "type": "fast"}));
    assert_eq!(
        next_of(&mut ws, &["SlowDone", "FastDone"]).await["event"]["type"],
        "FastDone"
    );
    assert_eq!(
        next_of(&mut ws, &["SlowDone", "FastDone"]).await["event"]["type"],
        "SlowDone"
    );
}

#[tokio::test]
async fn credits_and_variables_set_by_rules_survive_kill_9() {
    let dirs = Dirs::new();
    dirs.write_rule(
        "follow.rule.json",
        &rule(
            "01JD3Q5S8N0W4X7Y2Z6A9B1C42",
            "Remember follower",
            json!([{"on": "follow"}]),
            json!([
            {"kind": "set", "var": "global.lastFollower", "value": "{{ event.user.nickname }}"},
            {"kind": "set", "var": "user.follows", "op": "add", "value": 1},
            {"kind": "credits.add", "category": "followers"},
            {"kind": "emit", "type": "remembered", "data": {"n": "{{ user.follows }}"}}]),
        ),
    );
    let server = TestServer::start_in(dirs, Options::default());
    let mut ws = everything(&server).await;
    server.inject(json!({"source": "twitch", "type": "follow", "user": {"id": "136079477", "username": "whazzittoya", "nickname": "Alice"}}));
    assert_eq!(next_of(&mut ws, &["Remembered"]).await["data"]["n"], 1);

    let server = server.kill_and_restart();
    let (mut ws, _) = Ws::streamerbot(&server).await;
    let global = ws
        .request(json!({"request": "GetGlobal", "variable": "lastFollower", "id": "g"}))
        .await;
    assert_eq!(global["variable"]["value"], "Alice", "{global}");
    assert_eq!(global["variables"]["lastFollower"]["value"], "Alice");
    let user = ws.request(json!({"request": "TwitchGetUserGlobal", "userId": "136079477", "variable": "follows", "id": "u"})).await;
    assert_eq!(user["variable"]["value"], 1, "{user}");
    assert_eq!(user["variable"]["userLogin"], "whazzittoya");
    assert_eq!(user["variable"]["userName"], "Alice");
    let all = ws
        .request(json!({"request": "TwitchGetUserGlobals", "id": "a"}))
        .await;
    assert_eq!(all["count"], 1);
    let credits = ws
        .request(json!({"request": "GetCredits", "id": "c"}))
        .await;
    assert_eq!(credits["custom"]["followers"], json!(["Alice"]));
    assert_eq!(credits["events"]["follows"], json!(["Alice"]));
}

#[tokio::test]
async fn editing_a_rule_file_applies_without_a_restart_and_breaking_it_keeps_the_old_version() {
    let dirs = Dirs::new();
    let version = |v: u32| {
        rule(
            "01JD3Q5S8N0W4X7Y2Z6A9B1C43",
            "Ping",
            json!([{"on": "ping"}]),
            json!([{"kind": "emit", "type": "pong", "data": {"v": v}}]),
        )
    };
    dirs.write_rule("ping.rule.json", &version(1));
    let server = TestServer::start_in(dirs, Options::default());
    let mut ws = everything(&server).await;
    server.inject(json!({"source": "test", "type": "ping"}));
    assert_eq!(next_of(&mut ws, &["Pong"]).await["data"]["v"], 1);

    server.dirs.write_rule("ping.rule.json", &version(2));
    server.wait_for_logs("rules: loaded", 1);
    server.inject(json!({"source": "test", "type": "ping"}));
    assert_eq!(next_of(&mut ws, &["Pong"]).await["data"]["v"], 2);

    server
        .dirs
        .write_rule("ping.rule.json", &version(3).replace("\"emit\"", "\"emt\""));
    let line = server.wait_for_log("ping.rule.json: /steps/0/kind: unknown step kind `emt`");
    assert!(line.contains("ERROR"), "{line}");
    server.inject(json!({"source": "test", "type": "ping"}));
    assert_eq!(next_of(&mut ws, &["Pong"]).await["data"]["v"], 2);
}

#[tokio::test]
async fn documents_can_be_put_tested_and_deleted_over_http() {
    let server = TestServer::start();
    let mut ws = everything(&server).await;
    let id = "01JD3Q5S8N0W4X7Y2Z6A9B1C44";
    let document: Value = serde_json::from_str(&rule(id, "Greeter", json!([{"on": "raid"}]),
        json!([{"kind": "set", "var": "global.raids", "op": "add", "value": 1}, {"kind": "emit", "type": "greeted", "data": {"raids": "{{ global.raids }}"}}]))).unwrap();
    let (status, body) = server.put(&format!("/rules/{id}"), &document);
    assert_eq!(
        (status, body["path"].as_str()),
        (200, Some(format!("{id}.rule.json").as_str())),
        "{body}"
    );
    assert!(server
        .dirs
        .rules
        .path()
        .join(format!("{id}.rule.json"))
        .is_file());
    let (status, stored) = server.get(&format!("/rules/{id}"));
    assert_eq!((status, &stored["name"]), (200, &json!("Greeter")));
    let (_, list) = server.get("/rules");
    assert_eq!(list["count"], 1);

    // A dry run commits nothing and publishes nothing.
    let (status, dry) = server.post(
        &format!("/rules/{id}/test"),
        &json!({"event": {"source": "twitch", "type": "raid"}}),
    );
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["outcome"], "completed");
    assert_eq!(dry["emitted"][0]["data"]["raids"], 1);
    assert_eq!(dry["trace"]["steps"].as_array().unwrap().len(), 2);

    server.inject(json!({"source": "twitch", "type": "raid"}));
    assert_eq!(
        next_of(&mut ws, &["Greeted"]).await["data"]["raids"],
        1,
        "the dry run changed global.raids"
    );

    let mut broken = document.clone();
    broken["steps"][0]["op"] = json!("multiply");
    let (status, body) = server.put(&format!("/rules/{id}"), &broken);
    assert_eq!(status, 400);
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .starts_with(&format!("{id}.rule.json: /steps/0")),
        "{body}"
    );
    let (status, _) = server.put(&format!("/actions/{id}"), &document);
    assert_eq!(status, 400, "a rule is not an action");
    // Nor can an action take a rule's id: the rule's file would be rewritten as an action.
    let action = json!({"kind": "action", "schemaVersion": 1, "id": id, "name": "Taken",
        "steps": [{"kind": "log", "message": "x"}]});
    let (status, body) = server.put(&format!("/actions/{id}"), &action);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("is a rule"),
        "{body}"
    );
    assert_eq!(server.get(&format!("/rules/{id}")).0, 200);

    let (status, _) = server.delete(&format!("/rules/{id}"));
    assert_eq!(status, 204);
    assert!(!server
        .dirs
        .rules
        .path()
        .join(format!("{id}.rule.json"))
        .exists());
    let (status, _) = server.get(&format!("/rules/{id}"));
    assert_eq!(status, 404);
    server.inject(json!({"source": "twitch", "type": "raid"}));
    let marker = server.inject(json!({"source": "test", "type": "marker"}));
    // The raid no longer fires anything: the next emitted-or-marker frame is the marker.
    assert_eq!(
        next_of(&mut ws, &["Greeted", "Marker"]).await["event"]["id"],
        json!(marker)
    );
}

#[tokio::test]
async fn rules_answer_get_code_triggers_get_commands_and_calls() {
    let dirs = Dirs::new();
    dirs.write_rule(
        "poll.rule.json",
        &rule(
            "01JD3Q5S8N0W4X7Y2Z6A9B1C45",
            "Poll vote removed",
            json!([{"on": "poll_vote_removed"}, {"on": "twitch_only", "sources": ["twitch"]}]),
            json!([{"kind": "emit", "type": "poll_seen"}]),
        ),
    );
    dirs.write_rule("so.rule.json", &json!({"kind": "rule", "schemaVersion": 1, "id": "01JD3Q5S8N0W4X7Y2Z6A9B1C46", "name": "Shout", "group": "Commands",
        "triggers": [{"on": "command", "sources": ["Twitch", "YouTube"], "command": {"names": ["!so", "!shoutout"]}}, {"id": "callable", "on": "call"}],
        "steps": [{"kind": "emit", "type": "shout", "data": {"target": "{{ target }}"}}]}).to_string());
    let server = TestServer::start_in(dirs, Options::default());
    let mut ws = everything(&server).await;
    let triggers = ws
        .request(json!({"request": "GetCodeTriggers", "id": "t"}))
        .await;
    assert_eq!(
        triggers["triggers"],
        json!([{"name": "poll_vote_removed", "eventName": "poll_vote_removed", "category": "Rules"}])
    );
    let commands = ws
        .request(json!({"request": "GetCommands", "id": "c"}))
        .await;
    assert_eq!(
        commands["commands"][0]["commands"],
        json!(["!so", "!shoutout"])
    );
    assert_eq!(
        commands["commands"][0]["sources"],
        json!(["twitch", "youtube"])
    );
    assert_eq!(commands["commands"][0]["group"], "Commands");
    let actions = ws
        .request(json!({"request": "GetActions", "id": "a"}))
        .await;
    assert_eq!(
        actions["actions"],
        json!([{"id": "01JD3Q5S8N0W4X7Y2Z6A9B1C46", "name": "Shout", "group": "Commands", "enabled": true, "subaction_count": 1, "trigger_count": 2}])
    );
    ws.request(json!({"request": "DoAction", "action": {"name": "Shout"}, "args": {"target": "dave"}, "id": "d"})).await;
    assert_eq!(next_of(&mut ws, &["Shout"]).await["data"]["target"], "dave");
    let reply = ws
        .request(json!({"request": "DoAction", "action": {"name": "Poll vote removed"}, "id": "x"}))
        .await;
    assert_eq!(
        reply["error"], "Action not found: Poll vote removed",
        "a rule without a call trigger is not callable"
    );
    let reply = ws
        .request(
            json!({"request": "ExecuteCodeTrigger", "triggerName": "poll_vote_removed", "id": "e"}),
        )
        .await;
    assert_eq!(reply["status"], "ok");
    assert_eq!(
        next_of(&mut ws, &["PollSeen"]).await["event"]["source"],
        "Switchboard"
    );
}

#[tokio::test]
async fn a_template_naming_a_namespace_alone_is_warned_about_at_load() {
    let dirs = Dirs::new();
    dirs.write_rule(
        "alert.action.json",
        &json!({"kind": "action", "schemaVersion": 1,
        "id": "01JE0W4RN5HAD0WED000000000", "name": "Alert",
        "steps": [{"kind": "log", "message": "alert for {{ user }}"}]})
        .to_string(),
    );
    let server = TestServer::start_in(dirs, Options::default());
    let line = server.wait_for_log("uses `user` alone");
    assert!(line.contains("args.user"), "{line}");
}

#[tokio::test]
async fn a_document_variable_named_like_a_namespace_is_warned_about_at_load() {
    let dirs = Dirs::new();
    dirs.write_rule(
        "shadow.action.json",
        &json!({"kind": "action", "schemaVersion": 1,
        "id": "01JE0W4RN5HAD0WED000000001", "name": "Shadow", "variables": {"user": "x"},
        "steps": [{"kind": "log", "message": "{{ args.user }}"}]})
        .to_string(),
    );
    let server = TestServer::start_in(dirs, Options::default());
    let line = server.wait_for_log("the variable `user` is shadowed in templates");
    assert!(line.contains("read it as `args.user`"), "{line}");
}

#[tokio::test]
async fn a_json_path_slice_with_step_0_is_refused_at_load() {
    let server = TestServer::start();
    let id = "01JE0J50NPA7HSTEP000000000";
    let rule = json!({"kind": "rule", "schemaVersion": 1, "id": id, "name": "Step zero",
        "triggers": [{"on": "gift"}],
        "conditions": {"fact": "$.data[::0]", "op": "exists"},
        "steps": [{"kind": "log", "message": "x"}]});
    let (status, body) = server.put(&format!("/rules/{id}"), &rule);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("step of 0"),
        "{body}"
    );
}

#[tokio::test]
async fn a_huge_regex_is_refused_at_load_and_matching_looks_at_a_bounded_input() {
    let server = TestServer::start();
    let id = "01JE0REGEX5000000000000000";
    let rule = |pattern: &str| {
        json!({"kind": "rule", "schemaVersion": 1, "id": id, "name": "Regex",
        "triggers": [{"on": "gift"}],
        "conditions": {"fact": "event.data.text", "op": "matches", "value": pattern},
        "steps": [{"kind": "emit", "type": "matched", "data": {"tag": "{{ event.data.tag }}"}}]})
    };
    let (status, body) = server.put(&format!("/rules/{id}"), &rule("a{100000}"));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("size limit"),
        "{body}"
    );
    // A pattern that only matches past the first 64 KiB does not match.
    let (status, body) = server.put(&format!("/rules/{id}"), &rule("b$"));
    assert_eq!(status, 200, "{body}");
    let mut ws = everything(&server).await;
    let long = "a".repeat(70 * 1024) + "b";
    server
        .inject(json!({"source": "tiktok", "type": "gift", "data": {"text": long, "tag": "long"}}));
    server.inject(
        json!({"source": "tiktok", "type": "gift", "data": {"text": "ab", "tag": "short"}}),
    );
    // The long text's run, had it matched, would have emitted first.
    let matched = next_of(&mut ws, &["Matched"]).await;
    assert_eq!(
        matched["data"]["tag"], "short",
        "only the short text matches"
    );
}

#[tokio::test]
async fn max_runs_is_capped_at_load() {
    let server = TestServer::start();
    let id = "01JE0MAXRVNS00000000000000";
    let rule = |max: u32| {
        json!({"kind": "rule", "schemaVersion": 1, "id": id, "name": "Many",
        "mode": "queued", "max": max, "triggers": [{"on": "gift"}],
        "steps": [{"kind": "delay", "ms": 1000}]})
    };
    let (status, body) = server.put(&format!("/rules/{id}"), &rule(1_000_000));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("at most 1000"),
        "{body}"
    );
    assert_eq!(server.put(&format!("/rules/{id}"), &rule(1000)).0, 200);
}
