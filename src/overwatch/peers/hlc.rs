//! The hybrid logical clock that stamps every replicated change.
//!
//! A stamp is (wall milliseconds, logical counter, origin node id) and
//! stamps order in that sequence, so two writes on two nodes are always
//! ordered the same way everywhere (the node id breaks the last tie). The
//! wall part comes from `crate::clock::Now::wall_ms`; the logical part
//! keeps stamps increasing when the wall clock stands still or steps back,
//! and after a remote stamp is observed. A remote stamp more than
//! `max_skew_ms` ahead of our wall clock is refused by the caller
//! (`Replica::merge`), so a node with a clock far in the future can never
//! make its writes "newest forever".

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// When and where a change was made.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stamp {
    pub wall_ms: u64,
    pub logical: u32,
    pub node: String,
}

impl Ord for Stamp {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.wall_ms, self.logical, &self.node).cmp(&(other.wall_ms, other.logical, &other.node))
    }
}

impl PartialOrd for Stamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The local clock state: the largest (wall, logical) issued or seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hlc {
    wall_ms: u64,
    logical: u32,
}

impl Hlc {
    /// The next stamp for a local write at wall time `now_ms`.
    pub fn tick(&mut self, now_ms: u64, node: &str) -> Stamp {
        if now_ms > self.wall_ms {
            self.wall_ms = now_ms;
            self.logical = 0;
        } else {
            self.logical = self.logical.saturating_add(1);
        }
        Stamp {
            wall_ms: self.wall_ms,
            logical: self.logical,
            node: node.to_string(),
        }
    }

    /// Takes a remote stamp into account (already checked for skew), so
    /// the next local stamp orders after it.
    pub fn observe(&mut self, remote: &Stamp, now_ms: u64) {
        let wall = self.wall_ms.max(remote.wall_ms).max(now_ms);
        let logical = if wall == self.wall_ms && wall == remote.wall_ms {
            self.logical.max(remote.logical)
        } else if wall == self.wall_ms {
            self.logical
        } else if wall == remote.wall_ms {
            remote.logical
        } else {
            0
        };
        self.wall_ms = wall;
        self.logical = logical;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_increase_when_the_wall_clock_stands_still_or_steps_back() {
        let mut c = Hlc::default();
        let a = c.tick(1000, "n1");
        let b = c.tick(1000, "n1");
        let d = c.tick(900, "n1");
        assert!(a < b && b < d);
        assert_eq!(d.wall_ms, 1000);
        assert_eq!(d.logical, 2);
    }

    #[test]
    fn a_local_write_after_observing_a_remote_stamp_is_newer() {
        let mut c = Hlc::default();
        let remote = Stamp {
            wall_ms: 5000,
            logical: 7,
            node: "n2".into(),
        };
        c.observe(&remote, 1000);
        let mine = c.tick(1000, "n1");
        assert!(mine > remote);
    }

    #[test]
    fn the_node_id_breaks_ties() {
        let a = Stamp {
            wall_ms: 1,
            logical: 0,
            node: "a".into(),
        };
        let b = Stamp {
            node: "b".into(),
            ..a.clone()
        };
        assert!(a < b);
    }
}
