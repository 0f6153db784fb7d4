//! Inject-to-delivery latency for one subscriber, against a running Switchboard.
//!
//! ```text
//! cargo run --release                                   # terminal 1: the server, default ports
//! cargo run --release --example latency -- --events 5000
//! ```
//! A publisher connection sends `ExecuteCodeTrigger` (an inject on the Streamer.bot face) with
//! its send time in the args, one at a time; a subscriber connection receives each
//! `Custom.LatencyProbe` event and records the time since the send. Prints p50/p99/p999.
//! Talks only to the URL given (default loopback) and stops after `--events` events.

use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
struct Args {
    /// The Streamer.bot face's URL.
    #[arg(long, default_value = "ws://127.0.0.1:8080/")]
    url: String,
    /// How many events to measure (after 200 warm-up events).
    #[arg(long, default_value_t = 5000)]
    events: usize,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next JSON text frame, with a deadline.
async fn next(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("the connection is open")
            .expect("a valid frame");
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).expect("JSON frames");
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let (mut subscriber, _) = tokio_tungstenite::connect_async(args.url.as_str())
        .await
        .expect("connects");
    let (mut publisher, _) = tokio_tungstenite::connect_async(args.url.as_str())
        .await
        .expect("connects");
    next(&mut subscriber).await;
    next(&mut publisher).await;
    let subscribe =
        json!({"request": "Subscribe", "events": {"Custom": ["LatencyProbe"]}, "id": "s"});
    subscriber
        .send(Message::Text(subscribe.to_string()))
        .await
        .expect("sent");
    while next(&mut subscriber).await["id"] != "s" {}

    let origin = Instant::now();
    let mut latencies = Vec::with_capacity(args.events);
    for index in 0..args.events + 200 {
        let sent = origin.elapsed().as_nanos() as u64;
        let request = json!({"request": "ExecuteCodeTrigger", "triggerName": "latency_probe", "args": {"sent": sent, "n": index}, "id": index});
        publisher
            .send(Message::Text(request.to_string()))
            .await
            .expect("sent");
        let frame = loop {
            let frame = next(&mut subscriber).await;
            if frame["data"]["n"] == index {
                break frame;
            }
        };
        let received = origin.elapsed().as_nanos() as u64;
        if index >= 200 {
            latencies.push(received - frame["data"]["sent"].as_u64().expect("the send time"));
        }
        while next(&mut publisher).await["id"] != index {}
    }
    latencies.sort_unstable();
    let at = |quantile: f64| {
        latencies[((latencies.len() as f64 * quantile) as usize).min(latencies.len() - 1)] as f64
            / 1000.0
    };
    println!(
        "inject-to-delivery, 1 subscriber, {} events: p50 {:.0} µs, p99 {:.0} µs, p999 {:.0} µs, max {:.0} µs",
        latencies.len(),
        at(0.50),
        at(0.99),
        at(0.999),
        *latencies.last().unwrap() as f64 / 1000.0
    );
}
