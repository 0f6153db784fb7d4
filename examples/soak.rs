//! The soak: the release server under mixed load on every face for a long time, with slow and
//! hostile clients coming by periodically; it reports the server's RSS over time and the
//! deliveries lost. Documented in `docs/soak.md`; not part of the test suite.
//!
//! ```text
//! cargo build --release && cargo run --release --example soak -- --minutes 30
//! ```
//!
//! It starts `target/release/switchboard` itself (ephemeral loopback ports, temporary data and
//! rules directories, a rule that counts every event and an action that counts calls), then:
//! - well-behaved load: a publisher injecting `--rate` events/s on the custom face and one posting
//!   `--http-rate` events/s to `POST /events`, each numbering its events; `--subscribers`
//!   subscribers on each WebSocket face (Streamer.bot with a password, custom, Astro, Socket.IO)
//!   that must receive every event, each stream in order; a Streamer.bot client calling
//!   `DoAction` and `GetGlobals` every 5 s, whose every request must be answered;
//! - every `--misbehave-every` seconds: a slow client per face (subscribes, then never reads:
//!   it must be dropped within `--slow-patience`, and on the actix faces its connection reset)
//!   and hostile clients on every face (malformed and unknown requests, wrong types and
//!   credentials, a 64 MiB frame header, an unfinished fragmented message, text that is not
//!   UTF-8; malformed HTTP bodies), each of which must get its face's documented answer;
//! - every `--sample-every` seconds a line: elapsed time, RSS, open file descriptors, events
//!   published, deliveries, lost deliveries, slow clients dropped, hostile connections.
//!
//! It ends with a summary (RSS min/max/last and its slope over the second half, deliveries and
//! losses per face, latencies, what the slow and hostile clients met) and exits with 1 when a
//! well-behaved delivery was lost, a well-behaved request failed, a slow client was not dropped, a
//! hostile client got an undocumented answer, or the server died or did not stop cleanly.

#[path = "soak/faces.rs"]
mod faces;
#[path = "soak/hostile.rs"]
mod hostile;
#[path = "soak/report.rs"]
mod report;
#[path = "soak/rpc.rs"]
mod rpc;
#[path = "soak/server.rs"]
mod server;
#[path = "soak/slow.rs"]
mod slow;
#[path = "soak/wire.rs"]
mod wire;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use tokio::sync::watch;

use faces::{Endpoints, Face, Publisher, Subscriber, STREAMS};
use report::Sample;
use server::{Server, Settings};

#[derive(Parser, Debug)]
#[command(about = "Soaks a release Switchboard with mixed, slow and hostile load (docs/soak.md)")]
struct Args {
    /// How long the load runs, in minutes (fractions allowed).
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Events per second injected on the custom face.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Events per second posted to the HTTP face's `POST /events`.
    #[arg(long, default_value_t = 20)]
    http_rate: u64,
    /// Well-behaved subscribers on each WebSocket face.
    #[arg(long, default_value_t = 20)]
    subscribers: usize,
    /// Seconds between rounds of slow and hostile clients.
    #[arg(long, default_value_t = 30)]
    misbehave_every: u64,
    /// Seconds a slow client waits to be dropped and reset after it stops reading; one still
    /// waiting when the run ends is reported as unfinished.
    #[arg(long, default_value_t = 120)]
    slow_patience: u64,
    /// Seconds between RSS samples.
    #[arg(long, default_value_t = 10)]
    sample_every: u64,
    /// The server binary [default: `switchboard` beside this example's directory, that is
    /// target/release/switchboard].
    #[arg(long)]
    server: Option<PathBuf>,
}

/// When the first round of slow and hostile clients comes.
const FIRST_ROUND: Duration = Duration::from_secs(5);

static START: OnceLock<Instant> = OnceLock::new();

fn elapsed() -> Duration {
    START.get_or_init(Instant::now).elapsed()
}

/// How many notices are printed; the summary counts what follows.
const NOTICES: u64 = 100;
static NOTICED: AtomicU64 = AtomicU64::new(0);

/// A line about something that went wrong, as it happens (the first [`NOTICES`] of them).
pub fn notice(text: &str) {
    let seconds = elapsed().as_secs_f64();
    match NOTICED.fetch_add(1, Ordering::Relaxed) {
        n if n < NOTICES => println!("{seconds:>6.0}s ! {text}"),
        NOTICES => println!("{seconds:>6.0}s ! (further notices are not shown)"),
        _ => {}
    }
}

/// What the slow clients met, per face (in [`Face::ALL`] order).
#[derive(Default)]
struct SlowTally {
    started: [AtomicU64; 4],
    reset: [AtomicU64; 4],
    /// Dropped, but the connection was not reset within the patience (it ended otherwise).
    ended: [AtomicU64; 4],
    not_dropped: [AtomicU64; 4],
    failed: [AtomicU64; 4],
    /// The longest time from stopping to read to the reset, in ms.
    slowest_reset_ms: AtomicU64,
    /// How the last client dropped without a reset found its connection when it read again.
    how_ended: std::sync::Mutex<[Option<String>; 4]>,
}

impl SlowTally {
    fn sum(counts: &[AtomicU64; 4]) -> u64 {
        counts
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .sum()
    }

    fn dropped(&self) -> u64 {
        Self::sum(&self.reset) + Self::sum(&self.ended)
    }

    /// Slow clients of face `index` still waiting (or cut short by the end of the run).
    fn unfinished(&self, index: usize) -> u64 {
        let done = [&self.reset, &self.ended, &self.not_dropped, &self.failed]
            .iter()
            .map(|counts| counts[index].load(Ordering::Relaxed))
            .sum::<u64>();
        self.started[index]
            .load(Ordering::Relaxed)
            .saturating_sub(done)
    }

    fn record(&self, index: usize, face: Face, outcome: slow::Outcome) {
        match outcome {
            slow::Outcome::Reset(after) => {
                self.reset[index].fetch_add(1, Ordering::Relaxed);
                self.slowest_reset_ms
                    .fetch_max(after.as_millis() as u64, Ordering::Relaxed);
            }
            slow::Outcome::Ended(ending) => {
                self.ended[index].fetch_add(1, Ordering::Relaxed);
                let mut how = self.how_ended.lock().unwrap_or_else(|e| e.into_inner());
                how[index] = Some(ending.to_string());
            }
            slow::Outcome::NotDropped(patience) => {
                self.not_dropped[index].fetch_add(1, Ordering::Relaxed);
                notice(&format!(
                    "slow {} client still served {patience:?} after it stopped reading",
                    face.name()
                ));
            }
            slow::Outcome::Failed(why) => {
                self.failed[index].fetch_add(1, Ordering::Relaxed);
                notice(&format!(
                    "slow {} client could not start: {why}",
                    face.name()
                ));
            }
        }
    }
}

/// Everything the sampler and the summary read.
struct Tallies {
    subscribers: Vec<(Face, Arc<Subscriber>)>,
    custom: Arc<Publisher>,
    http: Arc<Publisher>,
    slow: Arc<SlowTally>,
    hostile: Arc<hostile::Tally>,
    rpc: Arc<rpc::Tally>,
}

impl Tallies {
    fn published(&self) -> [u64; STREAMS] {
        [
            self.custom.sent.load(Ordering::Relaxed),
            self.http.sent.load(Ordering::Relaxed),
        ]
    }

    fn deliveries(&self) -> u64 {
        self.subscribers
            .iter()
            .map(|(_, state)| state.deliveries.load(Ordering::Relaxed))
            .sum()
    }

    /// Lost so far: numbers skipped or repeated (numbers not yet arrived are in flight, not lost).
    fn lost_so_far(&self) -> u64 {
        self.subscribers
            .iter()
            .map(|(_, state)| {
                state.skipped.load(Ordering::Relaxed) + state.misordered.load(Ordering::Relaxed)
            })
            .sum()
    }

    /// Whether every subscriber has every event published.
    fn caught_up(&self) -> bool {
        let published = self.published();
        self.subscribers.iter().all(|(_, state)| {
            (0..STREAMS).all(|s| state.next[s].load(Ordering::Relaxed) >= published[s])
                || state.ended.load(Ordering::Relaxed)
        })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    START.get_or_init(Instant::now);
    match soak(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

/// Runs the soak; whether it passed. An error means it could not run at all.
async fn soak(args: &Args) -> Result<bool, Box<dyn std::error::Error>> {
    let duration = Duration::from_secs_f64(args.minutes.max(0.0) * 60.0);
    let mut server = Server::start(&Settings {
        binary: args.server.clone().unwrap_or_else(server::default_binary),
        subscribers: args.subscribers,
        rate: args.rate,
    })?;
    let endpoints = server.endpoints.clone();
    println!(
        "soak: server pid {} for {:.1} min; {} subscribers on each of streamerbot, custom, astro \
         and socketio; {} events/s on the custom face and {}/s on POST /events; slow and hostile \
         clients every {} s",
        server.pid(),
        args.minutes,
        args.subscribers,
        args.rate,
        args.http_rate,
        args.misbehave_every
    );

    println!(
        "faces: http {}, streamerbot {}, custom {}, astro {}, socketio {}",
        endpoints.http,
        endpoints.streamerbot,
        endpoints.custom,
        endpoints.astro,
        endpoints.socketio
    );

    let (stop_subscribers, subscribers_stopped) = watch::channel(false);
    let mut tallies = Tallies {
        subscribers: Vec::new(),
        custom: Arc::default(),
        http: Arc::default(),
        slow: Arc::default(),
        hostile: Arc::default(),
        rpc: Arc::default(),
    };
    let mut followers = Vec::new();
    for face in Face::ALL {
        for index in 0..args.subscribers {
            let ws = faces::subscribe(face, &endpoints, None)
                .await
                .map_err(|error| format!("{} subscriber {index}: {error}", face.name()))?;
            let state = Arc::new(Subscriber::default());
            tallies.subscribers.push((face, state.clone()));
            let task = faces::follow(face, index, ws, state, subscribers_stopped.clone());
            followers.push((face, tokio::spawn(task)));
        }
    }

    let (stop_load, load_stopped) = watch::channel(false);
    let rpc = {
        let (endpoints, tally) = (endpoints.clone(), tallies.rpc.clone());
        let stopped = load_stopped.clone();
        tokio::spawn(async move { rpc::run(endpoints, &tally, stopped).await })
    };
    let custom = tokio::spawn(faces::publish_custom(
        endpoints.clone(),
        args.rate,
        tallies.custom.clone(),
        load_stopped.clone(),
    ));
    let http_stop = Arc::new(AtomicBool::new(false));
    let http = {
        let (base, token) = (endpoints.http.clone(), endpoints.admin_token.clone());
        let (rate, tally, stop) = (args.http_rate, tallies.http.clone(), http_stop.clone());
        tokio::task::spawn_blocking(move || {
            faces::publish_http((&base, &token), rate, &tally, &stop)
        })
    };
    let (stop_misbehaving, misbehaving_stopped) = watch::channel(false);
    let misbehaving = tokio::spawn(misbehave(
        endpoints.clone(),
        Rounds {
            slow: tallies.slow.clone(),
            hostile: tallies.hostile.clone(),
            every: Duration::from_secs(args.misbehave_every.max(1)),
            patience: Duration::from_secs(args.slow_patience),
        },
        misbehaving_stopped,
    ));

    println!("{}", report::HEADER);
    let end = *START.get_or_init(Instant::now) + duration;
    let every = Duration::from_secs(args.sample_every.max(1));
    let mut next = Instant::now() + every;
    let mut samples = Vec::new();
    let mut died = None;
    loop {
        let due = next.min(end);
        // Waits for the sample, making sure every second that the server is still there.
        while Instant::now() < due && server.exited().is_none() {
            let second = Instant::now() + Duration::from_secs(1);
            tokio::time::sleep_until(second.min(due).into()).await;
        }
        next += every;
        if let Some(status) = server.exited() {
            notice(&format!(
                "the server died ({status}); its log ends with:\n{}",
                server.log.tail_text()
            ));
            died = Some(status);
            break;
        }
        let sample = take_sample(&server, &tallies);
        println!("{}", sample.line());
        samples.push(sample);
        if due >= end {
            break;
        }
    }

    // The round under way ends (slow clients still waiting are left unfinished), then the load
    // stops and every subscriber gets what was published.
    let _ = stop_misbehaving.send(true);
    if died.is_none() {
        let _ = tokio::time::timeout(Duration::from_secs(120), misbehaving).await;
    } else {
        misbehaving.abort();
    }
    let _ = stop_load.send(true);
    http_stop.store(true, Ordering::Relaxed);
    let _ = rpc.await;
    if let Ok(Err(error)) = custom.await {
        notice(&format!("the custom-face publisher stopped: {error}"));
    }
    let _ = http.await;
    let settle = Instant::now();
    while died.is_none() && !tallies.caught_up() && settle.elapsed() < Duration::from_secs(15) {
        // Deliveries land on the subscribers' tasks; nothing to wait on but time.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let published = tallies.published();
    let globals = if died.is_none() {
        let pings = tallies.rpc.pings.load(Ordering::Relaxed);
        let wanted = (pings, published.iter().sum());
        match rpc::final_globals(&endpoints, wanted).await {
            Ok(globals) => Some(globals),
            Err(error) => {
                notice(&format!("the last GetGlobals failed: {error}"));
                tallies.rpc.failed.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    } else {
        None
    };
    let _ = stop_subscribers.send(true);
    let mut latencies: Vec<Histogram<u64>> = Face::ALL
        .iter()
        .map(|_| {
            Histogram::new_with_bounds(1, 600_000_000, 3)
                .expect("constant histogram bounds are valid")
        })
        .collect();
    for (face, task) in followers {
        if let Ok(histogram) = task.await {
            let _ = latencies[face_index(face)].add(histogram);
        }
    }
    let peak_kib = server.status_kib("VmHWM");
    let data_mib = server::disk_usage(server.dirs.data.path()) as f64 / 1048576.0;
    let shutdown = if died.is_none() {
        let started = Instant::now();
        server
            .terminate(Duration::from_secs(20))
            .map(|status| (status, started.elapsed()))
    } else {
        None
    };

    Ok(summary(&Summary {
        tallies: &tallies,
        samples: &samples,
        published,
        latencies: &latencies,
        globals,
        peak_kib,
        data_mib,
        died,
        shutdown,
        log: &server.log,
    }))
}

fn face_index(face: Face) -> usize {
    Face::ALL
        .iter()
        .position(|other| *other == face)
        .unwrap_or(0)
}

fn take_sample(server: &Server, tallies: &Tallies) -> Sample {
    Sample {
        seconds: elapsed().as_secs_f64(),
        rss_mib: server.status_kib("VmRSS").unwrap_or(0) as f64 / 1024.0,
        fds: server.fds().unwrap_or(0),
        published: tallies.published().iter().sum(),
        deliveries: tallies.deliveries(),
        lost: tallies.lost_so_far(),
        slow_started: SlowTally::sum(&tallies.slow.started),
        slow_dropped: tallies.slow.dropped(),
        hostile_connections: tallies.hostile.connections.load(Ordering::Relaxed),
    }
}

/// What the rounds of slow and hostile clients do and where they count.
struct Rounds {
    slow: Arc<SlowTally>,
    hostile: Arc<hostile::Tally>,
    every: Duration,
    /// How long a slow client waits to be dropped.
    patience: Duration,
}

/// A round of slow and hostile clients every `every`, from [`FIRST_ROUND`], until `stop`; the
/// slow clients still waiting then are left unfinished.
async fn misbehave(endpoints: Endpoints, rounds: Rounds, mut stop: watch::Receiver<bool>) {
    let mut next = *START.get_or_init(Instant::now) + FIRST_ROUND;
    let mut waiting = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = tokio::time::sleep_until(next.into()) => {}
        }
        for (index, face) in Face::ALL.into_iter().enumerate() {
            rounds.slow.started[index].fetch_add(1, Ordering::Relaxed);
            let (endpoints, slow, patience) =
                (endpoints.clone(), rounds.slow.clone(), rounds.patience);
            waiting.spawn(async move {
                let outcome = slow::run(face, &endpoints, patience).await;
                slow.record(index, face, outcome);
            });
        }
        hostile::round(&endpoints, &rounds.hostile).await;
        while waiting.try_join_next().is_some() {}
        next += rounds.every;
    }
    waiting.shutdown().await;
}

struct Summary<'a> {
    tallies: &'a Tallies,
    samples: &'a [Sample],
    published: [u64; STREAMS],
    latencies: &'a [Histogram<u64>],
    /// `soakPings` and `soakEvents` at the end.
    globals: Option<(u64, u64)>,
    peak_kib: Option<u64>,
    data_mib: f64,
    died: Option<std::process::ExitStatus>,
    shutdown: Option<(std::process::ExitStatus, Duration)>,
    log: &'a server::Log,
}

/// Prints the summary; whether the soak passed.
fn summary(s: &Summary) -> bool {
    let t = s.tallies;
    let mut failures = Vec::new();
    println!();
    println!("summary after {:.0} s", elapsed().as_secs_f64());
    if let Some(memory) = report::memory(s.samples) {
        let slope = memory
            .slope_per_10_min
            .map_or("n/a (too few samples)".to_owned(), |slope| {
                format!("{slope:+.2} MiB per 10 min")
            });
        println!(
            "  RSS           min {:.1} MiB, max {:.1} MiB, last {:.1} MiB, peak (VmHWM) {}; \
             slope over the second half {slope}",
            memory.min,
            memory.max,
            memory.last,
            s.peak_kib.map_or("n/a".into(), |kib| format!(
                "{:.1} MiB",
                kib as f64 / 1024.0
            )),
        );
    }
    println!("  data dir      {:.1} MiB", s.data_mib);
    let total: u64 = s.published.iter().sum();
    println!(
        "  published     {total} events ({} on the custom face, {} on POST /events); {} \
         publishes failed",
        s.published[0],
        s.published[1],
        t.custom.failed.load(Ordering::Relaxed) + t.http.failed.load(Ordering::Relaxed)
    );
    let publish_failures =
        t.custom.failed.load(Ordering::Relaxed) + t.http.failed.load(Ordering::Relaxed);
    if publish_failures > 0 {
        failures.push(format!("{publish_failures} publishes failed"));
    }
    let mut deliveries = 0;
    for (index, face) in Face::ALL.into_iter().enumerate() {
        let states: Vec<&Arc<Subscriber>> = t
            .subscribers
            .iter()
            .filter(|(other, _)| *other == face)
            .map(|(_, state)| state)
            .collect();
        let delivered: u64 = states
            .iter()
            .map(|state| state.deliveries.load(Ordering::Relaxed))
            .sum();
        let lost: u64 = states.iter().map(|state| state.lost(s.published)).sum();
        let ended = states
            .iter()
            .filter(|state| state.ended.load(Ordering::Relaxed))
            .count();
        deliveries += delivered;
        let latency = &s.latencies[index];
        println!(
            "  {:<12}  {delivered} deliveries to {} subscribers, {lost} lost, {ended} \
             disconnected; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            face.name(),
            states.len(),
            latency.value_at_quantile(0.5) as f64 / 1000.0,
            latency.value_at_quantile(0.99) as f64 / 1000.0,
            latency.max() as f64 / 1000.0,
        );
        if lost > 0 || ended > 0 {
            failures.push(format!(
                "{}: {lost} deliveries lost, {ended} subscribers disconnected",
                face.name()
            ));
        }
    }
    println!("  deliveries    {deliveries} in all");
    let rpc = &t.rpc;
    let (requests, failed) = (
        rpc.requests.load(Ordering::Relaxed),
        rpc.failed.load(Ordering::Relaxed),
    );
    let pings = rpc.pings.load(Ordering::Relaxed);
    match s.globals {
        Some((counted_pings, counted_events)) => {
            println!(
                "  rules         {requests} DoAction/GetGlobals requests, {failed} failed; \
                 {counted_pings} of {pings} calls counted by the action, {counted_events} of \
                 {total} events counted by the rule"
            );
            if counted_pings < pings {
                failures.push(format!(
                    "the action counted {counted_pings} of {pings} calls"
                ));
            }
        }
        None => println!("  rules         {requests} requests, {failed} failed"),
    }
    if failed > 0 {
        failures.push(format!("{failed} Streamer.bot requests failed"));
    }
    let slow = &t.slow;
    println!("  slow clients  (started: reset / dropped without a reset / not dropped / failed / unfinished)");
    for (index, face) in Face::ALL.into_iter().enumerate() {
        let count = |counts: &[AtomicU64; 4]| counts[index].load(Ordering::Relaxed);
        let how = slow.how_ended.lock().unwrap_or_else(|e| e.into_inner())[index]
            .as_ref()
            .map_or(String::new(), |how| {
                format!(" (read again, the connection showed: {how})")
            });
        println!(
            "    {:<12}{}: {} / {} / {} / {} / {}{how}",
            face.name(),
            count(&slow.started),
            count(&slow.reset),
            count(&slow.ended),
            count(&slow.not_dropped),
            count(&slow.failed),
            slow.unfinished(index),
        );
    }
    println!(
        "    slowest reset {:.1} s after the client stopped reading",
        slow.slowest_reset_ms.load(Ordering::Relaxed) as f64 / 1000.0
    );
    let (not_dropped, slow_failed) = (
        SlowTally::sum(&slow.not_dropped),
        SlowTally::sum(&slow.failed),
    );
    if not_dropped + slow_failed > 0 {
        failures.push(format!(
            "{not_dropped} slow clients not dropped, {slow_failed} could not start"
        ));
    }
    let hostile = &t.hostile;
    let unexpected = hostile.unexpected.load(Ordering::Relaxed);
    println!(
        "  hostile       {} connections, {} probes answered as documented, {unexpected} not",
        hostile.connections.load(Ordering::Relaxed),
        hostile.passed.load(Ordering::Relaxed),
    );
    for line in hostile
        .first_unexpected
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        println!("                {line}");
    }
    if unexpected > 0 {
        failures.push(format!("{unexpected} hostile probes answered otherwise"));
    }
    println!(
        "  server log    {} warnings, {} errors, {} slow sessions dropped",
        s.log.warnings.load(Ordering::Relaxed),
        s.log.errors.load(Ordering::Relaxed),
        s.log.too_slow.load(Ordering::Relaxed)
    );
    for line in s
        .log
        .first_errors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        println!("                {line}");
    }
    match (s.died, s.shutdown) {
        (Some(status), _) => {
            println!("  server        DIED ({status})");
            failures.push("the server died".into());
        }
        (None, Some((status, took))) if status.success() => {
            println!("  server        stopped cleanly on SIGTERM in {took:.1?}");
        }
        (None, Some((status, _))) => {
            println!("  server        exited with {status} on SIGTERM");
            failures.push(format!("the server exited with {status} on SIGTERM"));
        }
        (None, None) => {
            println!("  server        did not stop within 20 s of SIGTERM");
            failures.push("the server did not stop on SIGTERM".into());
        }
    }
    println!();
    if failures.is_empty() {
        println!("PASS");
        true
    } else {
        println!("FAIL: {}", failures.join("; "));
        false
    }
}
