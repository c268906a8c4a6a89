//! Waiting for a condition with a deadline, instead of sleeping for a guess.

use std::time::{Duration, Instant};

use crate::{Error, Result};

/// How often the condition is checked.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Checks `condition` at once and then every [`POLL_INTERVAL`] until it holds
/// (`Ok`) or `deadline` has passed ([`Error::Timeout`] naming `what`).
pub fn wait_for(deadline: Duration, what: &str, mut condition: impl FnMut() -> bool) -> Result<()> {
    let started = Instant::now();
    loop {
        if condition() {
            return Ok(());
        }
        let elapsed = started.elapsed();
        if elapsed >= deadline {
            return Err(Error::Timeout {
                what: what.to_owned(),
                deadline,
            });
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - elapsed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_once_the_condition_holds() {
        let mut calls = 0;
        wait_for(Duration::from_secs(10), "the third call", || {
            calls += 1;
            calls == 3
        })
        .unwrap();
        assert_eq!(calls, 3);
    }

    #[test]
    fn names_what_it_waited_for_on_timeout() {
        let error = wait_for(Duration::from_millis(120), "the moon to turn blue", || {
            false
        })
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "timed out after 120ms waiting for the moon to turn blue"
        );
    }
}
