//! Run traces (docs/rules.md §11): one per run and per refusal after a trigger matched, kept in a
//! ring of the last [`RING`] per document (memory only), newest first when read.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::facts::Facts;

/// How many traces each document keeps.
pub const RING: usize = 20;

/// How a run ended, or why it never started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    Completed,
    Stopped,
    Error,
    Cancelled,
    Filtered,
    Cooldown,
    RateLimited,
    Busy,
    /// Refused: its causal chain has started all the runs it may (docs/rules.md §6.3).
    Budget,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Stopped => "stopped",
            Outcome::Error => "error",
            Outcome::Cancelled => "cancelled",
            Outcome::Filtered => "filtered",
            Outcome::Cooldown => "cooldown",
            Outcome::RateLimited => "rateLimited",
            Outcome::Busy => "busy",
            Outcome::Budget => "budget",
        }
    }
}

/// One trace.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    pub run_id: Uuid,
    pub kind: &'static str,
    pub document_id: String,
    pub name: String,
    pub trigger: Option<String>,
    pub parent_run_id: Option<Uuid>,
    pub event: Value,
    pub started_at: String,
    pub duration_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Value>,
    pub limits: Vec<Value>,
    pub steps: Vec<Value>,
    pub args: Map<String, Value>,
    pub outcome: Outcome,
    pub error: Option<Value>,
}

impl Trace {
    /// A trace for a run of `document` on the event in `facts`.
    pub fn new(
        kind: &'static str,
        document_id: &str,
        name: &str,
        trigger: Option<String>,
        facts: &Facts,
    ) -> Trace {
        let event = &facts.event;
        Trace {
            run_id: Uuid::new_v4(),
            kind,
            document_id: document_id.to_owned(),
            name: name.to_owned(),
            trigger,
            parent_run_id: None,
            event: json!({"id": event["id"], "source": event["source"], "type": event["type"], "userId": event["user"]["id"]}),
            started_at: facts
                .now
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            duration_ms: 0,
            conditions: None,
            limits: Vec::new(),
            steps: Vec::new(),
            args: Map::new(),
            outcome: Outcome::Completed,
            error: None,
        }
    }
}

/// The traces of every document.
#[derive(Debug, Default)]
pub struct Traces {
    rings: HashMap<String, VecDeque<Trace>>,
}

impl Traces {
    pub fn record(&mut self, trace: Trace) {
        count(&trace);
        let ring = self.rings.entry(trace.document_id.clone()).or_default();
        if ring.len() == RING {
            ring.pop_front();
        }
        ring.push_back(trace);
    }

    /// Keeps the traces of the documents whose id `keep` accepts.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.rings.retain(|id, _| keep(id));
    }

    /// A document's traces, newest first.
    pub fn of(&self, document_id: &str) -> Vec<Trace> {
        self.rings
            .get(document_id)
            .map(|ring| ring.iter().rev().cloned().collect())
            .unwrap_or_default()
    }
}

/// A finished run in the metrics: its outcome per document, and its duration.
fn count(trace: &Trace) {
    use crate::metrics::{RULE_RUNS, RUN_DURATION};
    let labels = [
        ("document", trace.document_id.clone()),
        ("outcome", trace.outcome.name().to_owned()),
    ];
    metrics::counter!(RULE_RUNS, &labels).increment(1);
    metrics::histogram!(RUN_DURATION).record(trace.duration_ms as f64 / 1000.0);
}
