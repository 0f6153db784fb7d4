//! The load generator: N subscriber connections and one publisher against a face, at a fixed
//! event rate or as a closed loop with W events in flight (an event completes when every
//! subscriber has it). Each event carries its send time; every delivery's latency goes into an
//! HdrHistogram. Reports deliveries/s, latency p50/p99/p999, lost deliveries, the server's
//! CPU-µs per delivery (from `/proc/<pid>/stat`), the share of the machine's CPU time the
//! hypervisor stole meanwhile (`/proc/stat`: on a shared VM it explains much of the spread
//! between runs) and, with `--idle`, RSS per idle connection.
//!
//! Dialects: `streamerbot`, `custom`, `astro` and `holobridge` (Switchboard; events injected on
//! the custom face; Astro and Socket.IO subscribers authenticate with `--token` too, which must be
//! an Astro token of room `bench` and a `socketio.api_keys` entry; they join room/guild `bench`),
//! `ws` (a plain broadcast server: what the publisher sends goes to every other client) and
//! `socketio` (a Socket.IO server that re-emits `event` to every other client). It talks only to
//! the URLs given (loopback) and stops by itself after `--seconds`.
//!
//! ```text
//! cargo run --release --example loadgen -- --dialect streamerbot --url ws://127.0.0.1:8080/ \
//!     --publish ws://127.0.0.1:7895/ --token TOKEN --subscribers 100 --window 32 --seconds 5 --pid PID
//! ```
//! `bench/run.sh` runs the whole scenario matrix against Switchboard and the Node peers.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::{Notify, Semaphore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Dialect {
    Streamerbot,
    Custom,
    Astro,
    /// Switchboard's Socket.IO face (HoloBridge's API), over Engine.IO's WebSocket transport.
    Holobridge,
    Ws,
    Socketio,
}

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, value_enum)]
    dialect: Dialect,
    /// Where subscribers connect.
    #[arg(long)]
    url: String,
    /// Where the publisher connects (Switchboard: the custom face); default `--url`.
    #[arg(long)]
    publish: Option<String>,
    /// The custom face's token (Switchboard dialects).
    #[arg(long, default_value = "")]
    token: String,
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Fixed rate in events/s (default: closed loop).
    #[arg(long)]
    rate: Option<u64>,
    /// Events in flight in the closed loop.
    #[arg(long, default_value_t = 1)]
    window: usize,
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// The server's process id, for CPU and memory.
    #[arg(long)]
    pid: Option<u32>,
    /// Measure idle memory with this many connections, then one broadcast to all of them.
    #[arg(long)]
    idle: Option<usize>,
    /// The injected event type (Switchboard dialects).
    #[arg(long, default_value = "tick")]
    kind: String,
    /// A label for the report.
    #[arg(long, default_value = "")]
    label: String,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as u64
}

async fn connect(url: &str, token: &str) -> Socket {
    let mut request = url.into_client_request().expect("a valid URL");
    if !token.is_empty() {
        request
            .headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    }
    let (socket, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .expect("connected in time")
    .expect("WebSocket handshake");
    socket
}

async fn next_text(socket: &mut Socket) -> Option<String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .ok()??
        {
            Ok(Message::Text(text)) => return Some(text),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Connects a subscriber and sets up its subscription.
async fn subscribe(args: &Args) -> Socket {
    match args.dialect {
        Dialect::Streamerbot => {
            let mut socket = connect(&args.url, "").await;
            next_text(&mut socket).await.expect("the Hello");
            let request = json!({"request": "Subscribe", "events": {"Bench": ["*"]}, "id": "s"});
            socket
                .send(Message::Text(request.to_string()))
                .await
                .unwrap();
            while !next_text(&mut socket)
                .await
                .expect("the reply")
                .contains("\"id\":\"s\"")
            {}
            socket
        }
        Dialect::Custom => {
            let mut socket = connect(&args.url, &args.token).await;
            socket
                .send(Message::Text(
                    json!({"action": "subscribe", "sources": ["bench"]}).to_string(),
                ))
                .await
                .unwrap();
            next_text(&mut socket).await.expect("the subscribe ack");
            socket
        }
        Dialect::Astro => {
            let mut socket = connect(&args.url, "").await;
            next_text(&mut socket).await.expect("the welcome");
            let request = json!({"type": "subscribe", "data": {"topic": ASTRO_TOPIC, "room": "",
                                 "token": args.token, "token_type": "apikey"}});
            socket
                .send(Message::Text(request.to_string()))
                .await
                .unwrap();
            let response = next_text(&mut socket).await.expect("the response");
            assert!(!response.contains("\"error\""), "{response}");
            socket
        }
        Dialect::Holobridge => {
            let auth = json!({"apiKey": args.token});
            let mut socket = socketio_connect_with(&args.url, &auth.to_string()).await;
            let subscribe = json!(["subscribe", {"guildIds": ["bench"]}]);
            socket
                .send(Message::Text(format!("42{subscribe}")))
                .await
                .unwrap();
            while !next_text(&mut socket)
                .await
                .expect("the subscribed answer")
                .starts_with("42[\"subscribed\"")
            {}
            socket
        }
        Dialect::Ws => connect(&args.url, "").await,
        Dialect::Socketio => socketio_connect(&args.url).await,
    }
}

/// The Astro topic the benchmark's events go to: an event of that type is sent with its data
/// unchanged.
const ASTRO_TOPIC: &str = "channel.overlay.broadcast";

/// Engine.IO v4 over WebSocket: open packet, namespace connect.
async fn socketio_connect(url: &str) -> Socket {
    socketio_connect_with(url, "").await
}

/// Engine.IO v4 over WebSocket: open packet, namespace connect with `auth` (JSON, or empty).
async fn socketio_connect_with(url: &str, auth: &str) -> Socket {
    let url = format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        url.trim_end_matches('/')
    );
    let mut socket = connect(&url, "").await;
    let open = next_text(&mut socket)
        .await
        .expect("the Engine.IO open packet");
    assert!(open.starts_with('0'), "{open}");
    socket
        .send(Message::Text(format!("40{auth}")))
        .await
        .unwrap();
    loop {
        let packet = next_text(&mut socket).await.expect("the namespace connect");
        if packet == "2" {
            // A ping can come first (socketioxide pings right after the open packet).
            socket.send(Message::Text("3".into())).await.unwrap();
            continue;
        }
        assert!(packet.starts_with("40"), "{packet}");
        return socket;
    }
}

/// The number after `"key":` in a frame: a scan, not a JSON parse, so that the generator's
/// own parsing is not what limits the measured rate.
fn field(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    let digits: &str = &text[start..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// The (seq, sent) of a delivered frame, whatever the dialect. Every dialect carries the
/// publisher's `{"seq":…,"sent":…}` object, and no other field of that name.
fn probe(_dialect: Dialect, text: &str) -> Option<(u64, u64)> {
    Some((field(text, "\"seq\":")?, field(text, "\"sent\":")?))
}

/// The (seq, sent) of a frame by a full parse (kept to check `probe` against).
#[cfg(test)]
fn parsed_probe(dialect: Dialect, text: &str) -> Option<(u64, u64)> {
    let payload: serde_json::Value = match dialect {
        Dialect::Socketio | Dialect::Holobridge => {
            let array: serde_json::Value = serde_json::from_str(text.strip_prefix("42")?).ok()?;
            array.get(1)?.clone()
        }
        _ => serde_json::from_str(text).ok()?,
    };
    let data = match dialect {
        Dialect::Streamerbot => payload.get("data")?,
        Dialect::Custom => payload.get("event")?.get("data")?,
        Dialect::Astro => payload.get("data")?,
        Dialect::Holobridge => payload.get("data")?,
        _ => &payload,
    };
    Some((data.get("seq")?.as_u64()?, data.get("sent")?.as_u64()?))
}

/// What the publisher sends for event `seq`.
fn publication(args: &Args, seq: u64) -> String {
    let data = json!({"seq": seq, "sent": now_ns(), "user": {"nickname": format!("viewer{seq}")}});
    match args.dialect {
        Dialect::Streamerbot | Dialect::Custom => {
            json!({"action": "injectEvent", "event": {"type": args.kind, "source": "bench", "data": data,
                   "user": {"id": seq.to_string(), "nickname": format!("viewer{seq}")}}})
            .to_string()
        }
        Dialect::Astro => {
            json!({"action": "injectEvent", "event": {"type": ASTRO_TOPIC, "source": "bench", "room": "bench",
                   "data": data, "user": {"id": seq.to_string(), "nickname": format!("viewer{seq}")}}})
            .to_string()
        }
        Dialect::Holobridge => {
            json!({"action": "injectEvent", "event": {"type": args.kind, "source": "discord", "room": "bench",
                   "data": data, "user": {"id": seq.to_string(), "nickname": format!("viewer{seq}")}}})
            .to_string()
        }
        Dialect::Ws => data.to_string(),
        Dialect::Socketio => format!("42{}", json!(["event", data])),
    }
}

async fn publisher(args: &Args) -> Socket {
    let url = args.publish.clone().unwrap_or_else(|| args.url.clone());
    match args.dialect {
        Dialect::Streamerbot | Dialect::Custom | Dialect::Astro | Dialect::Holobridge => {
            connect(&url, &args.token).await
        }
        Dialect::Ws => connect(&url, "").await,
        Dialect::Socketio => socketio_connect(&url).await,
    }
}

/// utime + stime of a process, in µs.
fn cpu_us(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 1_000_000 / 100)
}

/// (steal, total) ticks of all CPUs, from the first line of `/proc/stat`.
fn machine_ticks() -> Option<(u64, u64)> {
    parse_ticks(&std::fs::read_to_string("/proc/stat").ok()?)
}

fn parse_ticks(stat: &str) -> Option<(u64, u64)> {
    let fields = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = fields
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal guest guest_nice; guests are in user.
    Some((*ticks.get(7)?, ticks.iter().take(8).sum()))
}

/// What is read of the server and the machine before and after the run.
#[derive(Clone, Copy)]
struct Counters {
    server_cpu_us: Option<u64>,
    machine: Option<(u64, u64)>,
}

impl Counters {
    fn read(pid: Option<u32>) -> Counters {
        Counters {
            server_cpu_us: pid.and_then(cpu_us),
            machine: machine_ticks(),
        }
    }
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

struct Shared {
    counts: Vec<AtomicU32>,
    completed: Semaphore,
    deliveries: AtomicU64,
    /// Notified once publishing and settling are over.
    stop: Notify,
}

const RING: usize = 1 << 16;

/// One thread: the generator is pinned to one core, where a second worker thread only adds
/// wakeups and work stealing to what is measured.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Arc::new(Args::parse());
    if let Some(idle) = args.idle {
        return idle_memory(&args, idle).await;
    }
    let shared = Arc::new(Shared {
        counts: (0..RING).map(|_| AtomicU32::new(0)).collect(),
        completed: Semaphore::new(0),
        deliveries: AtomicU64::new(0),
        stop: Notify::new(),
    });
    let mut subscribers = Vec::new();
    for _ in 0..args.subscribers {
        subscribers.push(subscribe(&args).await);
    }
    let mut tasks = Vec::new();
    for mut socket in subscribers {
        let shared = shared.clone();
        let args = args.clone();
        tasks.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            // Registered at the task's first poll, long before publishing ends.
            let stop = shared.stop.notified();
            tokio::pin!(stop);
            loop {
                let text = tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    next = socket.next() => match next {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(_)) => continue,
                        None | Some(Err(_)) => break,
                    },
                };
                if text == "2" && matches!(args.dialect, Dialect::Socketio | Dialect::Holobridge) {
                    let _ = socket.send(Message::Text("3".into())).await;
                    continue;
                }
                let Some((seq, sent)) = probe(args.dialect, &text) else {
                    continue;
                };
                let _ = histogram.record(now_ns().saturating_sub(sent) / 1000);
                shared.deliveries.fetch_add(1, Ordering::Relaxed);
                let slot = &shared.counts[seq as usize % RING];
                if slot.fetch_add(1, Ordering::AcqRel) + 1 == args.subscribers as u32 {
                    slot.store(0, Ordering::Release);
                    shared.completed.add_permits(1);
                }
            }
            histogram
        }));
    }
    let (mut sink, mut acks) = publisher(&args).await.split();
    // Acks and pings from the server are read (and dropped) so that its queue never fills.
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = acks.next().await {} });
    let before = Counters::read(args.pid);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let mut sent = 0u64;
    match args.rate {
        Some(rate) => {
            let mut ticker =
                tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
            while Instant::now() < deadline {
                ticker.tick().await;
                sink.send(Message::Text(publication(&args, sent)))
                    .await
                    .unwrap();
                sent += 1;
            }
        }
        None => {
            for _ in 0..args.window {
                sink.send(Message::Text(publication(&args, sent)))
                    .await
                    .unwrap();
                sent += 1;
            }
            while Instant::now() < deadline {
                match tokio::time::timeout(Duration::from_secs(10), shared.completed.acquire())
                    .await
                {
                    Ok(permit) => permit.unwrap().forget(),
                    Err(_) => break,
                }
                sink.send(Message::Text(publication(&args, sent)))
                    .await
                    .unwrap();
                sent += 1;
            }
        }
    }
    // Let in-flight deliveries land (bounded), then stop the subscribers.
    let expected = sent * args.subscribers as u64;
    let settle = Instant::now();
    while shared.deliveries.load(Ordering::Relaxed) < expected
        && settle.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    let after = Counters::read(args.pid);
    shared.stop.notify_waiters();
    let _ = sink.close().await;
    reader.abort();
    let mut merged = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for task in tasks {
        if let Ok(histogram) = task.await {
            merged.add(histogram).unwrap();
        }
    }
    report(
        &args,
        &shared,
        &merged,
        sent,
        expected,
        elapsed,
        (before, after),
    );
}

fn report(
    args: &Args,
    shared: &Shared,
    histogram: &Histogram<u64>,
    sent: u64,
    expected: u64,
    elapsed: Duration,
    (before, after): (Counters, Counters),
) {
    let delivered = shared.deliveries.load(Ordering::Relaxed);
    let cpu_per_delivery = before
        .server_cpu_us
        .zip(after.server_cpu_us)
        .map(|(before, after)| (after - before) as f64 / delivered.max(1) as f64);
    let steal_percent = before.machine.zip(after.machine).map(|(before, after)| {
        100.0 * (after.0 - before.0) as f64 / (after.1 - before.1).max(1) as f64
    });
    let result = json!({
        "label": args.label,
        "dialect": format!("{:?}", args.dialect).to_lowercase(),
        "subscribers": args.subscribers,
        "events": sent,
        "deliveries": delivered,
        "lost": expected.saturating_sub(delivered),
        "deliveriesPerSecond": delivered as f64 / elapsed.as_secs_f64(),
        "p50us": histogram.value_at_quantile(0.50),
        "p99us": histogram.value_at_quantile(0.99),
        "p999us": histogram.value_at_quantile(0.999),
        "cpuUsPerDelivery": cpu_per_delivery,
        "stealPercent": steal_percent,
    });
    println!("{result}");
}

/// S6: RSS per idle connection, then one broadcast that must reach all of them.
async fn idle_memory(args: &Args, count: usize) {
    let pid = args.pid.expect("--idle needs --pid");
    let before = rss_kib(pid).expect("the server's RSS");
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        sockets.push(subscribe(args).await);
    }
    let after = rss_kib(pid).expect("the server's RSS");
    let mut publisher_socket = publisher(args).await;
    let started = Instant::now();
    publisher_socket
        .send(Message::Text(publication(args, 0)))
        .await
        .unwrap();
    let mut received = 0usize;
    let mut latest = Duration::ZERO;
    for socket in &mut sockets {
        loop {
            match next_text(socket).await {
                Some(text) if text == "2" => {
                    let _ = socket.send(Message::Text("3".into())).await;
                }
                Some(text) if probe(args.dialect, &text).is_some() => {
                    received += 1;
                    latest = started.elapsed();
                    break;
                }
                Some(_) => continue,
                None => break,
            }
        }
    }
    let result = json!({
        "label": args.label,
        "dialect": format!("{:?}", args.dialect).to_lowercase(),
        "idleConnections": count,
        "rssPerConnectionKiB": (after.saturating_sub(before)) as f64 / count as f64,
        "broadcastReached": received,
        "broadcastMs": latest.as_secs_f64() * 1000.0,
    });
    println!("{result}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_finds_what_a_parse_finds() {
        let frames = [
            (
                Dialect::Streamerbot,
                r#"{"timeStamp":"x","event":{"source":"Bench","type":"Tick","id":"i"},"data":{"seq":12,"sent":345,"user":{"nickname":"viewer12"}},"user":{"id":"12"}}"#,
            ),
            (
                Dialect::Custom,
                r#"{"action":"event","event":{"id":"i","type":"tick","source":"bench","timestamp":1,"user":{"id":"12"},"data":{"seq":12,"sent":345}}}"#,
            ),
            (Dialect::Ws, r#"{"seq":12,"sent":345}"#),
            (Dialect::Socketio, r#"42["event",{"seq":12,"sent":345}]"#),
            (
                Dialect::Holobridge,
                r#"42["discord",{"event":"tick","guildId":"bench","data":{"seq":12,"sent":345}}]"#,
            ),
        ];
        for (dialect, frame) in frames {
            assert_eq!(probe(dialect, frame), parsed_probe(dialect, frame));
            assert_eq!(probe(dialect, frame), Some((12, 345)));
        }
    }

    #[test]
    fn steal_is_the_eighth_field_of_the_cpu_line() {
        let stat = "cpu  104998 0 19267 84230 602 0 6337 1563 7 0\ncpu0 51746 0 9683 42676 198 0 3777 677 0 0\n";
        assert_eq!(
            parse_ticks(stat),
            Some((1563, 104998 + 19267 + 84230 + 602 + 6337 + 1563))
        );
        assert_eq!(parse_ticks("cpu0 1 2 3\n"), None);
    }
}
