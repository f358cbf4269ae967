//! The API's writer slots: at most `total` writes (or requests with
//! unbuffered bodies) in flight, and at most `per_source` from one client
//! address, so one source that trickles write bodies cannot hold every
//! writer thread and lock other operators out of writes. A slot is held
//! by its `Slot` and returned when that is dropped (on every path: the
//! writer thread ending, or the spawn failing).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
pub struct WriterSlots {
    total: usize,
    per_source: usize,
    counts: Mutex<Counts>,
}

/// Why no slot was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Every writer is busy.
    Full,
    /// This client already holds `per_source` writers.
    SourceFull,
}

/// One held slot; dropping it frees it.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<WriterSlots>,
    source: Option<IpAddr>,
}

impl WriterSlots {
    pub fn new(total: usize, per_source: usize) -> Arc<WriterSlots> {
        Arc::new(WriterSlots {
            total,
            per_source,
            counts: Mutex::default(),
        })
    }

    /// A slot for a request from `source` (`None`: unknown address, which
    /// counts against the total only).
    pub fn acquire(self: &Arc<Self>, source: Option<IpAddr>) -> Result<Slot, Refused> {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if c.total >= self.total {
            return Err(Refused::Full);
        }
        if let Some(ip) = source {
            let n = c.by_source.entry(ip).or_default();
            if *n >= self.per_source {
                return Err(Refused::SourceFull);
            }
            *n += 1;
        }
        c.total += 1;
        Ok(Slot {
            slots: Arc::clone(self),
            source,
        })
    }

    pub fn in_flight(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self
            .slots
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        c.total = c.total.saturating_sub(1);
        if let Some(ip) = self.source
            && let Some(n) = c.by_source.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.by_source.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([127, 0, 0, last]))
    }

    #[test]
    fn one_source_cannot_take_every_slot() {
        let slots = WriterSlots::new(16, 4);
        let held: Vec<Slot> = (0..4).map(|_| slots.acquire(ip(2)).unwrap()).collect();
        assert_eq!(slots.acquire(ip(2)).unwrap_err(), Refused::SourceFull);
        let other = slots.acquire(ip(3)).expect("another source still writes");
        assert_eq!(slots.in_flight(), 5);
        drop(held);
        drop(other);
        assert_eq!(slots.in_flight(), 0);
        assert!(slots.acquire(ip(2)).is_ok(), "slots come back when dropped");
    }

    #[test]
    fn the_total_still_bounds_many_sources() {
        let slots = WriterSlots::new(3, 2);
        let held: Vec<Slot> = (1..=3).map(|i| slots.acquire(ip(i)).unwrap()).collect();
        assert_eq!(slots.acquire(ip(9)).unwrap_err(), Refused::Full);
        assert_eq!(slots.acquire(None).unwrap_err(), Refused::Full);
        drop(held);
        assert!(slots.acquire(None).is_ok());
    }
}
