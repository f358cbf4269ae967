//! Heartbeat coalescing between the gossip listener and the registry.
//!
//! The registry channel is bounded. State, registrations, leaves and
//! rejections wait for room (they must not be lost), but a heartbeat only
//! says "alive at t", and a newer one says everything an older one did.
//! So when the channel is full the listener keeps the newest heartbeat per
//! agent here and hands them over as room appears, instead of blocking:
//! a blocked listener drops datagrams, agents miss acks and register
//! again, and that feeds the overload. The acks went out already. Pure:
//! the channel is a closure, so tests give it any capacity.

use crate::clock::Now;
use std::collections::HashMap;

/// What the sink did with one heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    Taken,
    /// No room now; try again later.
    Full,
    /// Nobody listens any more; drop everything.
    Closed,
}

/// Heartbeats waiting for room, newest per agent.
#[derive(Debug, Default)]
pub struct Coalescer {
    pending: HashMap<String, Now>,
}

impl Coalescer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Heartbeats waiting (one per agent at most).
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// A new heartbeat: straight to the sink when nothing waits and it has
    /// room, else kept (replacing an older one of the same agent). Waiting
    /// ones go first, so an agent's heartbeats never overtake each other.
    pub fn offer(&mut self, agent_id: String, at: Now, sink: &mut dyn FnMut(&str, Now) -> Sent) {
        self.flush(sink);
        if !self.pending.is_empty() {
            self.pending.insert(agent_id, at);
            return;
        }
        match sink(&agent_id, at) {
            Sent::Taken | Sent::Closed => {}
            Sent::Full => {
                self.pending.insert(agent_id, at);
            }
        }
    }

    /// Hands waiting heartbeats to the sink while it has room.
    pub fn flush(&mut self, sink: &mut dyn FnMut(&str, Now) -> Sent) {
        let mut taken = Vec::new();
        for (id, at) in &self.pending {
            match sink(id, *at) {
                Sent::Taken => taken.push(id.clone()),
                Sent::Full => break,
                Sent::Closed => {
                    self.pending.clear();
                    return;
                }
            }
        }
        for id in taken {
            self.pending.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A channel with `room` free slots that records what it took.
    fn sink(room: &mut usize, got: &mut Vec<(String, u64)>) -> impl FnMut(&str, Now) -> Sent {
        move |id: &str, at: Now| {
            if *room == 0 {
                return Sent::Full;
            }
            *room -= 1;
            got.push((id.to_string(), at.mono.0));
            Sent::Taken
        }
    }

    #[test]
    fn a_full_channel_keeps_only_the_newest_heartbeat_per_agent() {
        let mut c = Coalescer::new();
        let (mut room, mut got) = (1, Vec::new());
        {
            let mut s = sink(&mut room, &mut got);
            c.offer("a".into(), Now::at(1, 1), &mut s);
            c.offer("a".into(), Now::at(2, 2), &mut s);
            c.offer("b".into(), Now::at(3, 3), &mut s);
            c.offer("a".into(), Now::at(4, 4), &mut s);
        }
        assert_eq!(got, [("a".to_string(), 1)]);
        assert_eq!(c.len(), 2, "one per agent waits");
        let (mut room, mut got) = (10, Vec::new());
        c.flush(&mut sink(&mut room, &mut got));
        got.sort();
        assert_eq!(got, [("a".to_string(), 4), ("b".to_string(), 3)]);
        assert!(c.is_empty());
    }

    #[test]
    fn waiting_heartbeats_go_before_new_ones_and_a_closed_sink_drops_all() {
        let mut c = Coalescer::new();
        let (mut room, mut got) = (0, Vec::new());
        c.offer("a".into(), Now::at(1, 1), &mut sink(&mut room, &mut got));
        let (mut room, mut got) = (1, Vec::new());
        c.offer("b".into(), Now::at(2, 2), &mut sink(&mut room, &mut got));
        assert_eq!(got, [("a".to_string(), 1)], "the older one first");
        assert_eq!(c.len(), 1);
        c.flush(&mut |_: &str, _: Now| Sent::Closed);
        assert!(c.is_empty());
    }
}
