//! The rule and action workload's client: a logged-in Streamer.bot connection that, every few
//! seconds, calls the action `Soak ping` (`DoAction`) and reads the globals (`GetGlobals`), where
//! the rule counts the soak's events. Every request must be answered `ok`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;

use crate::faces::{self, Endpoints};
use crate::server::{EVENTS, PINGS, PING_ACTION};
use crate::wire::{self, WireError, Ws};

const PERIOD: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct Tally {
    pub requests: AtomicU64,
    pub answered: AtomicU64,
    pub failed: AtomicU64,
    /// `DoAction` calls answered `ok`: what `soakPings` must reach.
    pub pings: AtomicU64,
    /// `soakEvents` as last read.
    pub events_counted: AtomicU64,
}

async fn login(endpoints: &Endpoints) -> Result<Ws, WireError> {
    let mut ws = wire::connect(&endpoints.streamerbot, &[], None).await?;
    if let Some(login) = faces::streamerbot_login(&mut ws, &endpoints.password).await? {
        faces::expect_ok(&login, "the login")?;
    }
    Ok(ws)
}

/// Sends a Streamer.bot request and returns its `ok` reply.
async fn request(ws: &mut Ws, request: Value) -> Result<Value, WireError> {
    let id = format!(r#""id":{}"#, request["id"]);
    wire::send(ws, request.to_string()).await?;
    let reply = wire::reply(ws, "a reply", |text| text.contains(&id)).await?;
    let reply = faces::json_of(&reply)?;
    faces::expect_ok(&reply, "a request")?;
    Ok(reply)
}

/// The value of global `name` in a `GetGlobals` or `GetGlobal` reply (0 when absent).
fn global(reply: &Value, name: &str) -> u64 {
    reply["variables"][name]["value"].as_u64().unwrap_or(0)
}

/// Calls and reads every [`PERIOD`] until `stop`; a failure is counted and the connection made
/// again at the next period.
pub async fn run(endpoints: Endpoints, tally: &Tally, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(PERIOD);
    let mut connection: Option<Ws> = None;
    let mut n = 0u64;
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = ticker.tick() => {}
        }
        n += 1;
        let round = async {
            let ws = match connection.as_mut() {
                Some(ws) => ws,
                None => connection.insert(login(&endpoints).await?),
            };
            tally.requests.fetch_add(1, Ordering::Relaxed);
            let call = json!({"request": "DoAction", "id": format!("call{n}"),
                              "action": {"name": PING_ACTION}, "args": {"n": n}});
            request(ws, call).await?;
            tally.answered.fetch_add(1, Ordering::Relaxed);
            tally.pings.fetch_add(1, Ordering::Relaxed);
            tally.requests.fetch_add(1, Ordering::Relaxed);
            let reply = request(
                ws,
                json!({"request": "GetGlobals", "id": format!("globals{n}")}),
            )
            .await?;
            tally.answered.fetch_add(1, Ordering::Relaxed);
            tally
                .events_counted
                .store(global(&reply, EVENTS), Ordering::Relaxed);
            Ok::<(), WireError>(())
        };
        if let Err(error) = round.await {
            tally.failed.fetch_add(1, Ordering::Relaxed);
            crate::notice(&format!("a Streamer.bot request failed: {error}"));
            connection = None;
        }
    }
}

/// Once the load has stopped: `soakPings` and `soakEvents`, waited for (within [`wire::STEP`])
/// until they reach `pings` and `events`, since runs end after the calls and events that start
/// them are answered.
pub async fn final_globals(
    endpoints: &Endpoints,
    (pings, events): (u64, u64),
) -> Result<(u64, u64), WireError> {
    let mut ws = login(endpoints).await?;
    let deadline = tokio::time::Instant::now() + wire::STEP;
    let mut n = 0;
    loop {
        n += 1;
        let reply = request(
            &mut ws,
            json!({"request": "GetGlobals", "id": format!("last{n}")}),
        )
        .await?;
        let counted = (global(&reply, PINGS), global(&reply, EVENTS));
        if (counted.0 >= pings && counted.1 >= events) || tokio::time::Instant::now() >= deadline {
            return Ok(counted);
        }
        // Runs finish on the engine's time; nothing to wait on from here but time.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
