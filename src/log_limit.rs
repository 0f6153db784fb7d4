//! Warnings a peer can cause once per connection or request (a refused connection, a refused
//! request): at most [`BURST`] a second for each call site, the next one logged saying how many
//! were left out meanwhile, so that a flood of refusals cannot flood the log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Warnings of one call site logged in one [`WINDOW`] at most.
pub const BURST: u32 = 10;
const WINDOW: Duration = Duration::from_secs(1);

/// One call site's limit; a `static` beside the warning.
pub struct Limited {
    state: Mutex<State>,
}

struct State {
    /// When the current window began, and how many warnings it has logged.
    window: Option<(Instant, u32)>,
    /// Warnings left out since the last one logged.
    left_out: u64,
}

impl Limited {
    pub const fn new() -> Limited {
        Limited {
            state: Mutex::new(State {
                window: None,
                left_out: 0,
            }),
        }
    }

    /// Calls `log` with how many warnings were left out before this one, unless this call
    /// site has logged [`BURST`] in the last second (then this one is counted, not logged).
    pub fn warn(&self, log: impl FnOnce(u64)) {
        let left_out = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let logged = match state.window {
                Some((start, logged)) if now.duration_since(start) < WINDOW => logged,
                _ => {
                    state.window = Some((now, 0));
                    0
                }
            };
            if logged >= BURST {
                state.left_out += 1;
                return;
            }
            if let Some((_, count)) = state.window.as_mut() {
                *count += 1;
            }
            std::mem::take(&mut state.left_out)
        };
        log(left_out);
    }
}

impl Default for Limited {
    fn default() -> Self {
        Limited::new()
    }
}

/// `" (N more like it were not logged)"`, or nothing.
pub fn more(left_out: u64) -> String {
    if left_out == 0 {
        String::new()
    } else {
        format!(" ({left_out} more like it since the last one were not logged)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_logged_then_counted_until_the_next_second() {
        let limited = Limited::new();
        let mut logged = Vec::new();
        for _ in 0..BURST + 5 {
            limited.warn(|left_out| logged.push(left_out));
        }
        assert_eq!(logged, vec![0; BURST as usize]);
        limited.state.lock().unwrap().window = Some((Instant::now() - WINDOW, BURST));
        limited.warn(|left_out| logged.push(left_out));
        assert_eq!(logged.last(), Some(&5));
    }
}
