//! The region each database record decides, remembered per record.
//!
//! A MaxMind database stores one data record per distinct location (a
//! country database has a few hundred), and every network of that
//! location points to it. Decoding the record (two map walks with string
//! keys: country, then continent) costs more than finding it, so the
//! resolver remembers, per record offset, which region it decided: a
//! fixed table of atomic words, direct-mapped by offset, filled by
//! whichever DNS thread decodes a record first. Lookups and fills are one
//! relaxed atomic each and never allocate; two records sharing a slot just
//! decode more often.

use std::sync::atomic::{AtomicU64, Ordering};

const SLOTS: usize = 4096;
/// Low 17 bits of a slot: bit 16 set = a region (index in the low 16).
const HAS_REGION: u64 = 1 << 16;

pub(crate) struct DecodedRegions {
    /// ((offset + 1) << 17) | HAS_REGION? | region; 0 = empty.
    slots: Box<[AtomicU64]>,
}

impl Default for DecodedRegions {
    fn default() -> Self {
        DecodedRegions {
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

fn slot_of(offset: usize) -> usize {
    (offset as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) as usize >> 20 & (SLOTS - 1)
}

impl DecodedRegions {
    /// Some(decision) when the record at `offset` was decoded before.
    pub fn get(&self, offset: usize) -> Option<Option<u16>> {
        let v = self.slots.get(slot_of(offset))?.load(Ordering::Relaxed);
        if v >> 17 != offset as u64 + 1 {
            return None;
        }
        Some((v & HAS_REGION != 0).then_some(v as u16))
    }

    pub fn put(&self, offset: usize, region: Option<u16>) {
        let v = ((offset as u64 + 1) << 17) | region.map_or(0, |r| HAS_REGION | u64::from(r));
        if let Some(s) = self.slots.get(slot_of(offset)) {
            s.store(v, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_regions_and_misses_per_offset() {
        let d = DecodedRegions::default();
        assert_eq!(d.get(0), None);
        d.put(0, Some(3));
        d.put(17, None);
        d.put(123_456, Some(u16::MAX));
        assert_eq!(d.get(0), Some(Some(3)));
        assert_eq!(d.get(17), Some(None));
        assert_eq!(d.get(123_456), Some(Some(u16::MAX)));
        assert_eq!(d.get(18), None);
        // A colliding offset replaces the slot; the old one decodes again.
        let other = (1..10_000_000)
            .find(|&o| o != 0 && slot_of(o) == slot_of(0))
            .unwrap();
        d.put(other, Some(1));
        assert_eq!(d.get(0), None);
        assert_eq!(d.get(other), Some(Some(1)));
    }
}
