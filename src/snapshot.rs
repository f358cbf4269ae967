//! Publishing immutable snapshots from one writer to many readers.
//!
//! The registry thread is the only writer; DNS and API threads read. A
//! reader keeps its own `Arc` and a generation number, and only touches the
//! lock when the generation moved, so the DNS hot path costs one atomic load
//! per query and never allocates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

pub struct SnapshotCell<T> {
    generation: AtomicU64,
    slot: RwLock<Arc<T>>,
}

impl<T> SnapshotCell<T> {
    pub fn new(initial: T) -> Self {
        SnapshotCell {
            generation: AtomicU64::new(1),
            slot: RwLock::new(Arc::new(initial)),
        }
    }

    /// Replaces the published value; readers see it on their next refresh.
    pub fn publish(&self, value: T) {
        let value = Arc::new(value);
        let mut slot = self.slot.write().unwrap_or_else(|e| e.into_inner());
        *slot = value;
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The current value (takes the read lock briefly).
    pub fn load(&self) -> Arc<T> {
        self.slot.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A reader-side cache that refreshes only when the generation moved.
    pub fn reader(self: &Arc<Self>) -> SnapshotReader<T> {
        let generation = self.generation();
        SnapshotReader {
            cell: Arc::clone(self),
            generation,
            current: self.load(),
        }
    }
}

pub struct SnapshotReader<T> {
    cell: Arc<SnapshotCell<T>>,
    generation: u64,
    current: Arc<T>,
}

impl<T> SnapshotReader<T> {
    /// The newest snapshot; cheap when nothing changed.
    pub fn get(&mut self) -> &T {
        let generation = self.cell.generation();
        if generation != self.generation {
            self.current = self.cell.load();
            self.generation = generation;
        }
        &self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_sees_new_value_after_publish() {
        let cell = Arc::new(SnapshotCell::new(1));
        let mut reader = cell.reader();
        assert_eq!(*reader.get(), 1);
        cell.publish(2);
        assert_eq!(*reader.get(), 2);
    }
}
