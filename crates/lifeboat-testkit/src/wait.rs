//! Waiting in tests: poll a condition until it holds or a deadline passes,
//! then fail with what the condition last said.

use std::time::{Duration, Instant};

/// Polls `f` every `every` until it gives `Ok`, for at most `within`; past
/// that, panics with the message of its last `Err`.
pub fn wait_until<T>(
    within: Duration,
    every: Duration,
    mut f: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match f() {
            Ok(v) => return v,
            Err(why) => assert!(Instant::now() < deadline, "{why}"),
        }
        std::thread::sleep(every);
    }
}

/// Polls `cond` every `every` until it holds, for at most `within`; past
/// that, panics with `fails`.
pub fn wait_for(within: Duration, every: Duration, fails: &str, mut cond: impl FnMut() -> bool) {
    wait_until(within, every, || {
        if cond() {
            Ok(())
        } else {
            Err(fails.to_string())
        }
    })
}
