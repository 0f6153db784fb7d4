//! Connects to Switchboard's Streamer.bot face, subscribes, and prints every event it receives.
//!
//! ```text
//! cargo run --example streamerbot_events                       # everything, default URL
//! cargo run --example streamerbot_events -- Twitch.Follow General.Custom
//! cargo run --example streamerbot_events -- --url ws://127.0.0.1:8080/ --password secret --max 3 '*'
//! ```
//! Each event is printed as `<Source>.<Type> <data as JSON>`.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
struct Args {
    /// The Streamer.bot face's URL.
    #[arg(long, default_value = "ws://127.0.0.1:8080/")]
    url: String,
    /// The face's password, when `streamerbot.password` is set.
    #[arg(long)]
    password: Option<String>,
    /// Stop after this many events.
    #[arg(long)]
    max: Option<usize>,
    /// `Source.Type` names; `Source.*` and `*` are wildcards. Default: everything.
    events: Vec<String>,
}

fn hash(text: &str) -> String {
    STANDARD.encode(Sha256::digest(text.as_bytes()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let (mut ws, _) = tokio_tungstenite::connect_async(args.url.as_str()).await?;
    let hello: Value = match ws.next().await {
        Some(Ok(Message::Text(text))) => serde_json::from_str(&text)?,
        other => return Err(format!("expected the Hello, got {other:?}").into()),
    };
    eprintln!(
        "connected to {} {}",
        hello["info"]["name"], hello["info"]["version"]
    );
    if let (Some(password), Some(auth)) = (&args.password, hello.get("authentication")) {
        let secret = hash(&format!(
            "{password}{}",
            auth["salt"].as_str().unwrap_or_default()
        ));
        let answer = hash(&format!(
            "{secret}{}",
            auth["challenge"].as_str().unwrap_or_default()
        ));
        let request = json!({"request": "Authenticate", "authentication": answer, "id": "auth"});
        ws.send(Message::Text(request.to_string())).await?;
    }
    let mut events: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let names = if args.events.is_empty() {
        vec!["*".to_owned()]
    } else {
        args.events
    };
    for name in names {
        let (source, kind) = name.split_once('.').unwrap_or(("*", "*"));
        events
            .entry(source.to_owned())
            .or_default()
            .push(kind.to_owned());
    }
    let subscribe = json!({"request": "Subscribe", "events": events, "id": "subscribe"});
    ws.send(Message::Text(subscribe.to_string())).await?;

    let mut seen = 0;
    while let Some(frame) = ws.next().await {
        let Message::Text(text) = frame? else {
            continue;
        };
        let frame: Value = serde_json::from_str(&text)?;
        if frame["status"] == "error" {
            return Err(format!("Switchboard refused {}: {}", frame["id"], frame["error"]).into());
        }
        if frame["id"] == "subscribe" {
            eprintln!("subscribed to {}", frame["events"]);
            continue;
        }
        let Some(event) = frame.get("event") else {
            continue;
        };
        println!(
            "{}.{} {}",
            event["source"].as_str().unwrap_or("?"),
            event["type"].as_str().unwrap_or("?"),
            frame["data"]
        );
        seen += 1;
        if args.max.is_some_and(|max| seen >= max) {
            break;
        }
    }
    Ok(())
}
