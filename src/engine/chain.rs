//! Causal chains (docs/rules.md §6.3). An event from outside, or a call from outside, starts a
//! chain; everything it sets off belongs to it: the runs it starts, the events those runs `emit`
//! and the `ruleDenied` events of their refusals, the runs these events start, and the runs that
//! `run_action` calls, at any depth. A chain may publish `limits.chain_events` events and start
//! `limits.chain_runs` runs; beyond that it is cut, so that no rule (a rule that emits its own
//! trigger six times, an action that calls itself four times) can multiply work without end.

use std::cell::Cell;
use std::rc::Rc;

use uuid::Uuid;

use crate::event::Event;

/// `limits.chain_events` by default.
pub const DEFAULT_EVENTS: u32 = 1000;

/// `limits.chain_runs` by default.
pub const DEFAULT_RUNS: u32 = 1000;

/// What one chain may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainLimits {
    /// Events its runs may publish (`emit` steps and `ruleDenied` events), not counting the
    /// event that started it.
    pub events: u32,
    /// Runs it may start, the first one included.
    pub runs: u32,
}

impl Default for ChainLimits {
    fn default() -> Self {
        ChainLimits {
            events: DEFAULT_EVENTS,
            runs: DEFAULT_RUNS,
        }
    }
}

/// Why a chain was cut.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Cut {
    #[error("the causal chain of event {root} ({origin}) has published {limit} events, the most limits.chain_events allows")]
    Events {
        root: Uuid,
        origin: String,
        limit: u32,
    },
    #[error("the causal chain of event {root} ({origin}) has started {limit} runs, the most limits.chain_runs allows")]
    Runs {
        root: Uuid,
        origin: String,
        limit: u32,
    },
}

/// One chain's counts. Chains live on the engine's thread.
#[derive(Debug)]
pub struct Chain {
    root: Uuid,
    /// `<source>/<type>` of the root event, for messages.
    origin: String,
    limits: ChainLimits,
    events: Cell<u32>,
    runs: Cell<u32>,
    cut: Cell<bool>,
}

/// A shared handle to a chain.
pub type SharedChain = Rc<Chain>;

/// Whether a cut is the chain's first: the log reports only that one, the traces every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    First,
    Again,
}

impl Chain {
    /// The chain that `root`, an event or call from outside, starts.
    pub fn start(root: &Event, limits: ChainLimits) -> SharedChain {
        Rc::new(Chain {
            root: root.id,
            origin: format!("{}/{}", root.source, root.kind),
            limits,
            events: Cell::new(0),
            runs: Cell::new(0),
            cut: Cell::new(false),
        })
    }

    /// Counts one more event published by the chain, or refuses it.
    pub fn publish(&self) -> Result<(), (Cut, Reported)> {
        let limit = self.limits.events;
        self.count(&self.events, limit, |root, origin| Cut::Events {
            root,
            origin,
            limit,
        })
    }

    /// Counts one more run started by the chain, or refuses it.
    pub fn run(&self) -> Result<(), (Cut, Reported)> {
        let limit = self.limits.runs;
        self.count(&self.runs, limit, |root, origin| Cut::Runs {
            root,
            origin,
            limit,
        })
    }

    /// How the chain was cut when a run was refused: its runs are spent.
    pub fn runs_spent(&self) -> Cut {
        Cut::Runs {
            root: self.root,
            origin: self.origin.clone(),
            limit: self.limits.runs,
        }
    }

    fn count(
        &self,
        counter: &Cell<u32>,
        limit: u32,
        cut: impl FnOnce(Uuid, String) -> Cut,
    ) -> Result<(), (Cut, Reported)> {
        if counter.get() < limit {
            counter.set(counter.get() + 1);
            return Ok(());
        }
        let reported = if self.cut.replace(true) {
            Reported::Again
        } else {
            Reported::First
        };
        Err((cut(self.root, self.origin.clone()), reported))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Overrides, RawConfig};
    use crate::engine::core::RunLimits;
    use crate::engine::sandbox::TemplateLimits;
    use serde_json::json;

    #[test]
    fn the_engine_defaults_are_the_configuration_defaults() {
        // `rules test` runs without a configuration; the server with one.
        let config = Config::resolve(RawConfig::default(), Overrides::default(), "defaults")
            .unwrap()
            .limits;
        let runs = RunLimits::default();
        assert_eq!(
            (runs.chain.events, runs.chain.runs, runs.variable_bytes),
            (
                config.chain_events,
                config.chain_runs,
                config.variable_bytes
            )
        );
        let templates = TemplateLimits::default();
        assert_eq!(
            (templates.fuel, templates.bytes),
            (config.template_fuel, config.template_bytes)
        );
    }

    #[test]
    fn a_chain_is_cut_at_its_limits_and_reported_once() {
        let root = Event::new("http", "boss", json!({}));
        let chain = Chain::start(&root, ChainLimits { events: 2, runs: 1 });
        assert!(chain.run().is_ok());
        let (cut, reported) = chain.run().unwrap_err();
        assert_eq!(reported, Reported::First);
        assert_eq!(
            cut.to_string(),
            format!("the causal chain of event {} (http/boss) has started 1 runs, the most limits.chain_runs allows", root.id)
        );
        assert!(chain.publish().is_ok());
        assert!(chain.publish().is_ok());
        let (cut, reported) = chain.publish().unwrap_err();
        assert!(matches!(cut, Cut::Events { limit: 2, .. }));
        assert_eq!(reported, Reported::Again);
    }
}
