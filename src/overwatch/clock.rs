//! The daemon clock: wall-clock milliseconds at start, then monotonic.
//!
//! Registry logic takes `now_ms` as an argument; only the I/O threads call
//! `Clock::now_ms`, so tests drive the registry with made-up times.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
    start_unix_ms: u64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        let start_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Clock {
            start: Instant::now(),
            start_unix_ms,
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.start_unix_ms + self.start.elapsed().as_millis() as u64
    }
}

/// Unix seconds from daemon-clock milliseconds.
pub fn secs(ms: u64) -> u64 {
    ms / 1000
}
