//! Durability: what was acknowledged survives `kill -9` and a restart on the same data dir.

use serde_json::json;

use crate::streamerbot::{CELEBRATE, REPLY};
use crate::support::{Dirs, Options, TestServer, Ws, TIMEOUT};

#[tokio::test]
async fn acknowledged_credits_survive_kill_9() {
    let server = TestServer::start();
    let (mut ws, _) = Ws::streamerbot(&server).await;
    let filled = ws
        .request(json!({"request": "TestCredits", "id": "t"}))
        .await;
    assert_eq!(filled["status"], "ok");
    server.inject(json!({"source": "twitch", "type": "follow", "user": {"nickname": "Alice"}}));
    let server = server.kill_and_restart();
    let (mut ws, _) = Ws::streamerbot(&server).await;
    let credits = ws
        .request(json!({"request": "GetCredits", "id": "g"}))
        .await;
    assert_eq!(
        credits["events"]["follows"],
        json!(["TestUser1", "TestUser2", "TestUser3", "Alice"])
    );
    assert_eq!(credits["events"]["cheers"], filled["events"]["cheers"]);
}

#[tokio::test]
async fn actions_instance_id_and_catalogue_survive_a_restart() {
    let dirs = Dirs::new();
    dirs.write_rule("celebrate.action.json", CELEBRATE);
    dirs.write_rule("reply.action.json", REPLY);
    let server = TestServer::start_in(dirs, Options::default());
    let (mut ws, hello) = Ws::streamerbot(&server).await;
    server.inject(json!({"source": "mygame", "type": "boss_defeated"}));
    let before = ws
        .request(json!({"request": "GetActions", "id": "a"}))
        .await;
    assert_eq!(before["count"], 2);

    let server = server.kill_and_restart();
    let (mut ws, hello_after) = Ws::streamerbot(&server).await;
    assert_eq!(
        hello_after["info"]["instanceId"],
        hello["info"]["instanceId"]
    );
    let events = ws.request(json!({"request": "GetEvents", "id": "e"})).await;
    assert_eq!(events["events"]["Mygame"], json!(["BossDefeated"]));
    let after = ws
        .request(json!({"request": "GetActions", "id": "a"}))
        .await;
    assert_eq!(after["actions"], before["actions"]);
}

#[tokio::test]
async fn a_broken_action_file_keeps_its_last_good_version_across_a_restart() {
    let dirs = Dirs::new();
    dirs.write_rule("celebrate.action.json", CELEBRATE);
    let server = TestServer::start_in(dirs, Options::default());
    server
        .dirs
        .write_rule("celebrate.action.json", "{ \"kind\": \"action\", ");
    let server = server.kill_and_restart();
    // The broken file is logged as path: pointer: reason.
    server.wait_for_log("celebrate.action.json: : ");
    let (mut ws, _) = Ws::streamerbot(&server).await;
    let actions = ws
        .request(json!({"request": "GetActions", "id": "a"}))
        .await;
    assert_eq!(actions["actions"][0]["name"], "Celebrate");
}

#[tokio::test]
async fn a_duplicate_follow_is_acknowledged_only_once_the_first_is_on_disk() {
    // Two injects of one follower at once, and `kill -9` as soon as either is acknowledged: the
    // second finds the name already recorded (by the first, not yet flushed) and must still wait
    // for that flush before its 200.
    let mut server = TestServer::start();
    for cycle in 0..50 {
        let name = format!("Fan{cycle}");
        let body =
            json!({"source": "twitch", "type": "follow", "user": {"nickname": name}}).to_string();
        let url = server.http("/events");
        let authorization = server.authorization();
        let (acknowledged, first) = std::sync::mpsc::channel();
        for _ in 0..2 {
            let (url, body, acknowledged) = (url.clone(), body.clone(), acknowledged.clone());
            let authorization = authorization.clone();
            std::thread::spawn(move || {
                // The server may be killed under the other request: only a 200 is reported.
                let response = ureq::post(&url)
                    .timeout(TIMEOUT)
                    .set("Authorization", &authorization)
                    .set("Content-Type", "application/json")
                    .send_string(&body);
                if response.is_ok_and(|response| response.status() == 200) {
                    let _ = acknowledged.send(());
                }
            });
        }
        first.recv_timeout(TIMEOUT).expect("an acknowledgement");
        server = server.kill_and_restart();
        let (mut ws, _) = Ws::streamerbot(&server).await;
        let credits = ws
            .request(json!({"request": "GetCredits", "id": "g"}))
            .await;
        let follows = credits["events"]["follows"].as_array().unwrap().clone();
        assert!(
            follows.contains(&json!(name)),
            "cycle {cycle}: {name} was acknowledged, then lost: {follows:?}"
        );
    }
}
