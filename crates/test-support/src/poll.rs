//! Waiting for something a test expects to happen, with a deadline instead of a fixed sleep: the
//! check runs again every few milliseconds until it gives a value, and the test fails, naming what
//! it waited for, once the deadline passes.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long to wait between two checks.
const INTERVAL: Duration = Duration::from_millis(20);

/// Runs `check` until it gives a value; fails the test after `within`, saying `what`.
pub fn until<T>(within: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(INTERVAL);
    }
}

/// [`until`] for a check that awaits, without holding up the runtime's thread between checks.
pub async fn until_async<T, F>(within: Duration, what: &str, mut check: impl FnMut() -> F) -> T
where
    F: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(INTERVAL).await;
    }
}
