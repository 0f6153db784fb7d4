//! A game engine's side of Switchboard, over the custom (VMSC) face: it injects game events and
//! triggers a rule by name, and prints what Switchboard answers.
//!
//! ```text
//! cargo run --example game_client -- --token "$(cargo run -q -- token)"
//! cargo run --example game_client -- --url ws://127.0.0.1:7895/ --token TOKEN --rule "Boss defeated"
//! ```
//! With the shipped `rules/`, the injected `boss_defeated` fires "Boss defeated", which calls
//! "Celebrate" (it then needs an outbound connection named `fx-overlay`).

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
struct Args {
    /// The custom face's URL.
    #[arg(long, default_value = "ws://127.0.0.1:7895/")]
    url: String,
    /// The custom face's token (`switchboard token` prints it).
    #[arg(long)]
    token: String,
    /// The rule to trigger by name after the inject.
    #[arg(long, default_value = "Boss defeated")]
    rule: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut request = args.url.as_str().into_client_request()?;
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {}", args.token).parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;

    let inject = json!({"action": "injectEvent", "event": {"type": "boss_defeated", "source": "mygame",
        "user": {"id": "p1", "username": "speedy", "nickname": "Speedy"},
        "data": {"bossId": "dragon", "bossName": "Ancient Dragon", "fightDurationMs": 183000}}});
    let trigger = json!({"action": "triggerRule", "ruleName": args.rule});
    for message in [inject, trigger] {
        ws.send(Message::Text(message.to_string())).await?;
        loop {
            let Some(frame) = ws.next().await else {
                return Err("Switchboard closed the connection".into());
            };
            match frame? {
                Message::Text(text) => {
                    let reply: Value = serde_json::from_str(&text)?;
                    println!("{reply}");
                    if reply["action"] == "error" {
                        return Err(
                            format!("refused: {} {}", reply["code"], reply["message"]).into()
                        );
                    }
                    break;
                }
                Message::Close(close) => return Err(format!("closed: {close:?}").into()),
                _ => continue,
            }
        }
    }
    Ok(())
}
