//! When the agent renews its certificate: at two thirds of its lifetime
//! (`gossip::identity::renew_at`), read against the wall clock, since the
//! certificate's dates are wall-clock dates. The runtime keeps one
//! monotonic deadline from `decide` and looks again when it passes; the
//! renewal itself (files, proof, re-registration) is the runtime's
//! (`runtime.rs`). Pure functions of a `Now`, so tests make one up.

use crate::clock::{Mono, Now};
use crate::gossip::identity::renew_at;
use std::time::Duration;

/// The longest the runtime waits before it reads the wall clock again: a
/// wall-clock step, or a suspended machine (whose monotonic clock stands
/// still), cannot delay a renewal by more than this.
pub const RECHECK: Duration = Duration::from_secs(3_600);

/// After a failed renewal (a full or read-only disk), the next attempt.
pub const RETRY: Duration = Duration::from_secs(600);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// Renew now.
    Due,
    /// Look again at this monotonic time.
    CheckAt(Mono),
}

/// For a certificate valid from `not_before` to `not_after` (unix
/// seconds): due once `now.wall >= not_before + 2/3 (not_after -
/// not_before)`, else when to look again (at the renewal point, at most
/// `RECHECK` away).
pub fn decide(now: Now, not_before: u64, not_after: u64) -> Renewal {
    let at_ms = renew_at(not_before, not_after).saturating_mul(1000);
    if now.wall_ms >= at_ms {
        return Renewal::Due;
    }
    let wait = Duration::from_millis(at_ms - now.wall_ms).min(RECHECK);
    Renewal::CheckAt(now.mono.after(wait))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;
    const NB: u64 = 1_800_000_000;

    /// Wall-clock seconds `wall`, the monotonic clock at 5 000 ms.
    fn at(wall: u64) -> Now {
        Now::at(5_000, wall * 1000)
    }

    #[test]
    fn due_from_two_thirds_of_the_lifetime() {
        let na = NB + 90 * DAY;
        assert_eq!(decide(at(NB + 60 * DAY), NB, na), Renewal::Due);
        assert_eq!(decide(at(NB + 89 * DAY), NB, na), Renewal::Due);
        assert_eq!(decide(at(na + DAY), NB, na), Renewal::Due, "expired");
        // one second before: look again in exactly one second
        assert_eq!(
            decide(at(NB + 60 * DAY - 1), NB, na),
            Renewal::CheckAt(Mono(6_000))
        );
        // a millisecond before, on the wall clock
        let now = Now::at(5_000, (NB + 60 * DAY) * 1000 - 1);
        assert_eq!(decide(now, NB, na), Renewal::CheckAt(Mono(5_001)));
    }

    #[test]
    fn far_from_it_the_wall_clock_is_read_again_within_the_hour() {
        let na = NB + 365 * DAY;
        for wall in [NB - DAY, NB, NB + 100 * DAY, NB + 243 * DAY] {
            assert_eq!(
                decide(at(wall), NB, na),
                Renewal::CheckAt(Mono(5_000 + 3_600_000)),
                "{wall}"
            );
        }
        assert_eq!(decide(at(NB + 244 * DAY), NB, na), Renewal::Due);
    }

    #[test]
    fn a_short_lifetime_renews_to_the_second() {
        // 300 s valid, issued 190 s ago: due in 10 s
        let now = at(NB);
        assert_eq!(
            decide(now, NB - 190, NB + 110),
            Renewal::CheckAt(Mono(15_000))
        );
        assert_eq!(decide(at(NB + 10), NB - 190, NB + 110), Renewal::Due);
    }
}
