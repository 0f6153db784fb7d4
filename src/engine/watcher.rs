//! Hot reload (docs/rules.md §15): watches `rules_dir` recursively, gathers changes for 250 ms and
//! asks the engine to reload once, so that an edit takes effect within a second.
//!
//! Only creations, modifications and removals count: inotify also reports the reads the reload
//! itself makes, which must not start another reload.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use actix::Addr;
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};

use super::{Reload, RuleEngine};

/// How long a burst of file changes is gathered before one reload.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// The running watcher; dropping it stops watching (and its debounce thread).
pub struct Watcher {
    _watcher: RecommendedWatcher,
}

/// Starts watching `dir`; `None` (with a warning) when it cannot be watched.
pub fn watch(dir: &Path, engine: Addr<RuleEngine>) -> Option<Watcher> {
    let (changes, received) = mpsc::channel::<()>();
    let handler = move |result: notify::Result<Event>| match result {
        Ok(event)
            if matches!(
                event.kind,
                EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
            ) =>
        {
            let _ = changes.send(());
        }
        Ok(_) => {}
        Err(error) => log::warn!("rules: watching failed: {error}"),
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(watcher) => watcher,
        Err(error) => {
            log::warn!("rules: cannot watch for changes ({error}); edits need a restart");
            return None;
        }
    };
    if let Err(error) = watcher.watch(dir, RecursiveMode::Recursive) {
        log::warn!(
            "rules: cannot watch {} ({error}); edits need a restart",
            dir.display()
        );
        return None;
    }
    std::thread::Builder::new()
        .name("rules-watcher".into())
        .spawn(move || {
            // Ends when the watcher (and with it the sender) is dropped.
            while received.recv().is_ok() {
                while received.recv_timeout(DEBOUNCE).is_ok() {}
                engine.do_send(Reload);
            }
        })
        .map_err(|error| log::warn!("rules: cannot start the watcher thread: {error}"))
        .ok()?;
    Some(Watcher { _watcher: watcher })
}
