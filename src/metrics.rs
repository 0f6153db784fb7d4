//! Prometheus metrics: what `GET /metrics` renders.
//!
//! The code counts through the `metrics` facade (`metrics::counter!` and friends); [`install`]
//! sets the process-wide recorder of `metrics-exporter-prometheus` once, before the actors that
//! count start, and returns its handle for rendering. Hot paths hold handles they created once
//! (the registry's per-face counters) and add per publish, not per delivery. Labels whose
//! values come from clients (an event's source) are bounded by the code that counts them.
//!
//! | Metric | Type | Labels |
//! |---|---|---|
//! | `switchboard_connections` | gauge | `face` |
//! | `switchboard_events_published_total` | counter | `source` (the first [`MAX_SOURCES`], then `other`) |
//! | `switchboard_deliveries_total` | counter | `face` |
//! | `switchboard_slow_consumer_closes_total` | counter | `face` |
//! | `switchboard_rule_runs_total` | counter | `document`, `outcome` |
//! | `switchboard_run_duration_seconds` | histogram | — |
//! | `switchboard_store_flush_seconds` | histogram | — |
//! | `switchboard_outbound_up` | gauge | `connection` |

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const CONNECTIONS: &str = "switchboard_connections";
pub const EVENTS_PUBLISHED: &str = "switchboard_events_published_total";
pub const DELIVERIES: &str = "switchboard_deliveries_total";
pub const SLOW_CONSUMER_CLOSES: &str = "switchboard_slow_consumer_closes_total";
pub const RULE_RUNS: &str = "switchboard_rule_runs_total";
pub const RUN_DURATION: &str = "switchboard_run_duration_seconds";
pub const STORE_FLUSH: &str = "switchboard_store_flush_seconds";
pub const OUTBOUND_UP: &str = "switchboard_outbound_up";

/// How many distinct event sources get a label of their own.
pub const MAX_SOURCES: usize = 64;

/// Run durations: 100 µs to 60 s.
const RUN_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0,
];

/// Store flushes: 100 µs to 5 s.
const FLUSH_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder (once per process) and returns its handle; `None` when another
/// recorder was installed first (counting then goes there, and `/metrics` says so).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(RUN_DURATION.into()), RUN_BUCKETS)
                .and_then(|builder| {
                    builder.set_buckets_for_metric(Matcher::Full(STORE_FLUSH.into()), FLUSH_BUCKETS)
                });
            let installed = builder.and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(handle) => {
                    describe();
                    upkeep(handle.clone());
                    Some(handle)
                }
                Err(error) => {
                    log::error!("metrics: cannot install the Prometheus recorder: {error}");
                    None
                }
            }
        })
        .as_ref()
}

/// The Prometheus text of every metric, after the recorder's upkeep.
pub fn render(handle: &PrometheusHandle) -> String {
    handle.run_upkeep();
    handle.render()
}

/// Histograms keep their samples until upkeep folds them in: without a Prometheus server
/// scraping, that must still happen, or every run and flush would be kept.
fn upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            handle.run_upkeep();
        });
    if let Err(error) = spawned {
        log::error!("metrics: cannot start the upkeep thread: {error}");
    }
}

/// How often the recorder's upkeep runs.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(CONNECTIONS, "Open client connections, per face.");
    describe_counter!(EVENTS_PUBLISHED, "Events published, per source.");
    describe_counter!(DELIVERIES, "Events handed to client connections, per face.");
    describe_counter!(
        SLOW_CONSUMER_CLOSES,
        "Connections closed because they did not read fast enough, per face."
    );
    describe_counter!(RULE_RUNS, "Rule and action runs, per document and outcome.");
    describe_histogram!(RUN_DURATION, Unit::Seconds, "How long runs take.");
    describe_histogram!(STORE_FLUSH, Unit::Seconds, "How long a store flush takes.");
    describe_gauge!(
        OUTBOUND_UP,
        "1 while an outbound connection is connected, else 0."
    );
}
