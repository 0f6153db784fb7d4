//! The real clients: `@streamerbot/client` 1.12.x from npm and `pystreamerbot` from PyPI.

use crate::examples::server_with_shipped_rules;
use crate::streamerbot::server_with_actions;
use crate::support::{Options, TestServer};

#[tokio::test]
async fn the_official_streamerbot_client_works_without_a_password() {
    let server = server_with_actions(Options::default());
    let output = server
        .script(
            "streamerbot.mjs",
            &["no-password", server.url("streamerbot"), server.url("http")],
        )
        .await;
    output.assert_success();
    for step in [
        "connect",
        "getInfo",
        "getEvents",
        "getActions",
        "doAction by name",
        "doAction by id",
        "doAction unknown",
        "doAction customEventResponse",
        "credits",
        "platform requests",
        "event",
        "follow credited",
    ] {
        assert!(
            output.lines().contains(&format!("ok {step}").as_str()),
            "missing {step}"
        );
    }
}

#[tokio::test]
async fn the_official_streamerbot_client_authenticates_with_ascii_and_unicode_passwords() {
    for password in ["hunter2", "pässwörd✓"] {
        let server = TestServer::start_with(Options {
            password: Some(password.into()),
            ..Options::default()
        });
        let output = server
            .script(
                "streamerbot.mjs",
                &[
                    "right-password",
                    server.url("streamerbot"),
                    server.url("http"),
                    password,
                ],
            )
            .await;
        output.assert_success();
        assert!(
            output.lines().contains(&"ok authenticated event"),
            "{password}"
        );
    }
}

#[tokio::test]
async fn the_official_streamerbot_client_is_refused_a_wrong_password_and_does_not_reconnect() {
    let server = TestServer::start_with(Options {
        password: Some("hunter2".into()),
        ..Options::default()
    });
    let output = server
        .script(
            "streamerbot.mjs",
            &[
                "wrong-password",
                server.url("streamerbot"),
                server.url("http"),
                "wrong",
            ],
        )
        .await;
    output.assert_success();
    assert_eq!(output.lines(), ["ok refused", "ok no reconnect"]);
    server.wait_for_log(": opened from");
    let opened = server
        .logs()
        .iter()
        .filter(|line| line.contains(": opened from"))
        .count();
    assert_eq!(opened, 1, "the client opened more than one connection");
}

#[tokio::test]
async fn pystreamerbot_subscribes_and_receives_a_follow() {
    let server = TestServer::start();
    let output = server
        .script(
            "streamerbot_client.py",
            &[server.url("streamerbot"), server.url("http")],
        )
        .await;
    output.assert_success();
    assert_eq!(output.lines(), ["ok ready", "ok follow"]);
}

#[tokio::test]
async fn the_overlay_example_shows_follows_cheers_and_custom_broadcasts() {
    let server = TestServer::start();
    let output = server
        .script(
            "overlay.mjs",
            &[server.url("streamerbot"), server.url("http")],
        )
        .await;
    output.assert_success();
    assert_eq!(
        output.lines(),
        ["Alice followed!", "Thanks for the 100 bits!", "Boss down"]
    );
}

#[tokio::test]
async fn the_readme_do_action_example_prints_what_the_readme_says() {
    let server = server_with_shipped_rules();
    let output = server
        .script("readme_example.mjs", &[server.url("streamerbot")])
        .await;
    output.assert_success();
    assert_eq!(output.lines(), ["alert: Boss down (Alice)"]);
    server.wait_for_log("overlay alert for Alice: Boss down");
}

#[tokio::test]
async fn get_broadcaster_answers_the_configured_identities_as_written() {
    let server = TestServer::start_with(Options {
        extra_toml: r#"
[streamerbot.broadcaster.twitch]
broadcastUser = "MyChannel"
broadcastUserName = "mychannel"
broadcastUserId = 695682330
broadcasterIsAffiliate = false
broadcasterIsPartner = false

[streamerbot.broadcaster.youtube]
broadcastUserName = "My Channel"
broadcastUserId = "UCl3oatIf9tYopHaZHvnH3xw"
"#
        .into(),
        ..Options::default()
    });
    let output = server
        .script(
            "streamerbot.mjs",
            &["broadcaster", server.url("streamerbot"), server.url("http")],
        )
        .await;
    output.assert_success();
    assert_eq!(output.lines(), ["ok broadcaster"]);
}

#[tokio::test]
async fn a_pascal_case_spelling_reaches_the_official_client_after_a_lower_case_one() {
    let server = TestServer::start();
    let output = server
        .script(
            "streamerbot.mjs",
            &[
                "pascal-case-wins",
                server.url("streamerbot"),
                server.url("http"),
            ],
        )
        .await;
    output.assert_success();
    assert_eq!(output.lines(), ["ok pascal case wins"]);
}

/// The event names `@streamerbot/client` declares (`StreamerbotEvents` in its type
/// declarations), by category, read from the installed package.
fn declared_event_names() -> Vec<(String, Vec<String>)> {
    let declarations = crate::support::clients::node_dir()
        .join("node_modules/@streamerbot/client/dist/index.d.ts");
    let text = std::fs::read_to_string(&declarations).expect("the client's declarations");
    let block = text
        .split_once("declare const StreamerbotEvents: {")
        .and_then(|(_, rest)| rest.split_once("\n};"))
        .expect("StreamerbotEvents is declared")
        .0;
    block
        .lines()
        .filter_map(|line| {
            let (category, names) = line.trim().strip_prefix("readonly ")?.split_once(':')?;
            let names = names
                .trim()
                .strip_prefix("readonly [")?
                .strip_suffix("];")?;
            let names = names
                .split(',')
                .map(|name| name.trim().trim_matches('"').to_owned())
                .filter(|name| !name.is_empty())
                .collect();
            Some((category.trim().to_owned(), names))
        })
        .collect()
}

#[tokio::test]
async fn get_events_lists_every_name_of_the_installed_client_in_its_spelling() {
    let declared = declared_event_names();
    let count: usize = declared.iter().map(|(_, names)| names.len()).sum();
    assert!(count > 400, "only {count} names parsed from the client");
    let server = TestServer::start();
    let (mut ws, _) = crate::support::Ws::streamerbot(&server).await;
    let answer = ws
        .request(serde_json::json!({"request": "GetEvents", "id": "e"}))
        .await;
    for (category, names) in declared {
        let listed = answer["events"][&category]
            .as_array()
            .unwrap_or_else(|| panic!("GetEvents lists no category {category}"));
        for name in names {
            assert!(
                listed.iter().any(|listed| listed == name.as_str()),
                "GetEvents lacks {category}.{name}"
            );
        }
    }
}
