//! Replay protection: a 1024-message sliding window per sender session plus
//! a wall-clock window on the message timestamp.
//!
//! The time window compares the sender's wall stamp with our wall clock
//! (`now.wall_ms`); when a session was last seen is kept on the monotonic
//! clock, so a wall step does not make the table forget live sessions (or
//! keep dead ones).
//!
//! A session's window is kept until twice the time window has passed since
//! its last accepted message; after that any replay of its packets is
//! outside the time window anyway, so forgetting it opens no hole. Windows
//! are created only after a packet authenticated, so only key holders can
//! make the table grow, and it is capped regardless.

use crate::clock::{Mono, Now};
use std::collections::HashMap;

pub const WINDOW_BITS: u64 = 1024;
const WORDS: usize = (WINDOW_BITS / 64) as usize;

/// Counters seen by one sender session. Bit i of the bitmap stands for
/// counter `highest - i`.
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    highest: u64,
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow {
            highest: 0,
            bits: [0; WORDS],
        }
    }
}

impl ReplayWindow {
    /// True (and recorded) when `counter` is new; false for a duplicate,
    /// zero, or anything older than the window.
    pub fn accept(&mut self, counter: u64) -> bool {
        if counter == 0 {
            return false;
        }
        if counter > self.highest {
            self.shift(counter - self.highest);
            self.highest = counter;
            self.bits[0] |= 1;
            return true;
        }
        let age = self.highest - counter;
        if age >= WINDOW_BITS {
            return false;
        }
        let (w, b) = ((age / 64) as usize, age % 64);
        let mask = 1u64 << b;
        match self.bits.get_mut(w) {
            Some(word) if *word & mask == 0 => {
                *word |= mask;
                true
            }
            _ => false,
        }
    }

    /// Moves every bit `n` positions older.
    fn shift(&mut self, n: u64) {
        if n >= WINDOW_BITS {
            self.bits = [0; WORDS];
            return;
        }
        let (words, bits) = ((n / 64) as usize, (n % 64) as u32);
        for i in (0..WORDS).rev() {
            let src = i.checked_sub(words);
            let hi = src.map_or(0, |s| self.bits[s] << bits);
            let lo = match (src.and_then(|s| s.checked_sub(1)), bits) {
                (Some(s), b) if b > 0 => self.bits[s] >> (64 - b),
                _ => 0,
            };
            self.bits[i] = hi | lo;
        }
    }
}

/// Why a packet was refused by the replay checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// Timestamp outside ±window of our clock.
    OutOfTime,
    /// Counter already seen or older than the window.
    Duplicate,
    /// Too many live sessions; the oldest are forgotten first, so this only
    /// happens within one expiry period.
    TableFull,
}

/// Windows by sender session id.
#[derive(Debug)]
pub struct ReplayTable {
    time_window_ms: u64,
    max_sessions: usize,
    sessions: HashMap<u64, (ReplayWindow, Mono)>,
}

impl ReplayTable {
    pub fn new(time_window_ms: u64, max_sessions: usize) -> Self {
        ReplayTable {
            time_window_ms,
            max_sessions,
            sessions: HashMap::new(),
        }
    }

    pub fn time_window_ms(&self) -> u64 {
        self.time_window_ms
    }

    /// Checks and records one authenticated packet.
    pub fn check(
        &mut self,
        session: u64,
        counter: u64,
        timestamp_ms: u64,
        now: Now,
    ) -> Result<(), ReplayError> {
        if timestamp_ms.abs_diff(now.wall_ms) > self.time_window_ms {
            return Err(ReplayError::OutOfTime);
        }
        if !self.sessions.contains_key(&session) && self.sessions.len() >= self.max_sessions {
            self.expire(now.mono);
            if self.sessions.len() >= self.max_sessions {
                return Err(ReplayError::TableFull);
            }
        }
        let entry = self.sessions.entry(session).or_default();
        if !entry.0.accept(counter) {
            return Err(ReplayError::Duplicate);
        }
        entry.1 = now.mono;
        Ok(())
    }

    /// Forgets sessions idle (monotonic) for more than twice the time window.
    pub fn expire(&mut self, now: Mono) {
        let keep = self.time_window_ms.saturating_mul(2);
        self.sessions
            .retain(|_, (_, last)| now.0.saturating_sub(last.0) <= keep);
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_accepts_each_counter_once() {
        let mut w = ReplayWindow::default();
        assert!(!w.accept(0));
        assert!(w.accept(1));
        assert!(!w.accept(1));
        assert!(w.accept(5));
        assert!(w.accept(3));
        assert!(!w.accept(3));
        assert!(w.accept(2));
        assert!(w.accept(4));
        assert!(!w.accept(5));
        assert!(w.accept(5 + 130));
        assert!(!w.accept(5));
        assert!(w.accept(6), "inside window after a 130 jump");
        assert!(!w.accept(6));
        assert!(w.accept(5000));
        assert!(!w.accept(5000 - 1024));
        assert!(w.accept(5000 - 1023));
    }

    #[test]
    fn window_matches_a_set_model() {
        // A slow exact model: every counter seen, and the highest.
        let mut w = ReplayWindow::default();
        let mut seen = std::collections::HashSet::new();
        let mut highest = 0u64;
        let mut x = 0x9e3779b97f4a7c15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let c = (x % 3000) + 1 + highest.saturating_sub(1500);
            let expect = !seen.contains(&c) && highest.saturating_sub(c) < WINDOW_BITS;
            assert_eq!(w.accept(c), expect, "counter {c} highest {highest}");
            if expect {
                seen.insert(c);
                highest = highest.max(c);
            }
        }
    }

    #[test]
    fn table_time_window_and_expiry() {
        // mono and wall equal, as when no clock stepped
        let at = |ms: u64| Now::at(ms, ms);
        let mut t = ReplayTable::new(60_000, 2);
        assert_eq!(t.check(1, 1, 0, at(60_001)), Err(ReplayError::OutOfTime));
        assert_eq!(t.check(1, 1, 100_000, at(100_000 - 60_000)), Ok(()));
        assert_eq!(
            t.check(1, 1, 40_000, at(40_000)),
            Err(ReplayError::Duplicate)
        );
        assert_eq!(t.check(2, 1, 40_000, at(40_000)), Ok(()));
        assert_eq!(
            t.check(3, 1, 40_000, at(40_000)),
            Err(ReplayError::TableFull)
        );
        assert_eq!(
            t.check(3, 1, 400_000, at(400_000)),
            Ok(()),
            "old sessions expired"
        );
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn expiry_follows_the_monotonic_clock_not_the_wall() {
        let mut t = ReplayTable::new(60_000, 2);
        assert_eq!(t.check(1, 1, 1_000_000, Now::at(10, 1_000_000)), Ok(()));
        // the wall jumps an hour ahead; a second later (monotonic) the
        // session is still live and its old counter still a duplicate
        let later = Now::at(1_010, 1_000_000 + 3_600_000);
        t.expire(later.mono);
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.check(1, 1, later.wall_ms, later),
            Err(ReplayError::Duplicate)
        );
    }
}
