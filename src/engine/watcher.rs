//! Hot reload (rules.md §15): watches `rules_dir` recursively, debounces changes by 250 ms and
//! asks the engine to reload, so that an edit takes effect within a second.

use std::path::Path;
use std::time::Duration;

use actix::Addr;
use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, Debouncer};

use super::{Reload, RuleEngine};

/// How long a burst of file changes is gathered before one reload.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// The running watcher; dropping it stops watching.
pub struct Watcher {
    _debouncer: Debouncer<RecommendedWatcher>,
}

/// Starts watching `dir`; `None` (with a warning) when it cannot be watched.
pub fn watch(dir: &Path, engine: Addr<RuleEngine>) -> Option<Watcher> {
    let handler = move |result: DebounceEventResult| match result {
        Ok(events) if !events.is_empty() => engine.do_send(Reload),
        Ok(_) => {}
        Err(error) => log::warn!("rules: watching failed: {error}"),
    };
    let mut debouncer = match new_debouncer(DEBOUNCE, handler) {
        Ok(debouncer) => debouncer,
        Err(error) => {
            log::warn!("rules: cannot watch for changes ({error}); edits need a restart");
            return None;
        }
    };
    if let Err(error) = debouncer.watcher().watch(dir, RecursiveMode::Recursive) {
        log::warn!(
            "rules: cannot watch {} ({error}); edits need a restart",
            dir.display()
        );
        return None;
    }
    Some(Watcher {
        _debouncer: debouncer,
    })
}
