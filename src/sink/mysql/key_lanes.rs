//! Which lane wrote each key of a multi-connection `insert` window.

/// Lanes a window can have: a lane is stored in four bits, as lane + 1.
pub(super) const MAX_LANES: usize = 15;

/// Bits of a key's hash kept per key; the low bits of the tag index the table.
const TAG_BITS: u32 = 60;
const LANE_MASK: u64 = 0xF;
/// The table stops growing here (2^28 slots, 2 GiB): past it it stops recording.
const MAX_SLOTS: usize = 1 << 28;
const FIRST_SLOTS: usize = 1 << 10;

/// The lane of every key an `insert` window wrote, so a key written again goes to the lane
/// that has it (and fails there at once with the server's duplicate-key error, instead of
/// waiting on another lane's row lock).
///
/// One 64-bit slot per key, at most half full: 60 bits of the key's hash, then the lane
/// plus one (0 marks a free slot); linear probing, indexed by the low bits of the tag.
/// For 1M keys that is 16 MiB and one cache line a lookup, where a `HashMap<u64, usize>`
/// took ~34 MiB in two lines (its control bytes, then the bucket): those cache misses
/// were a quarter of the insert writer's CPU.
///
/// Two keys whose hashes share the 60 bits would share a lane: a key always finds its own
/// tag, so the one thing the table must guarantee, a key going back to the lane that wrote
/// it, holds. Tags are long so that such pairs do not happen in practice (a 28-bit tag
/// gave ~300 pairs in 400k keys): each would send a row to a lane that may be held up,
/// and hold the writer with it.
#[derive(Debug)]
pub(super) struct KeyLanes {
    slots: Vec<u64>,
    used: usize,
}

impl Default for KeyLanes {
    fn default() -> Self {
        KeyLanes {
            slots: vec![0; FIRST_SLOTS],
            used: 0,
        }
    }
}

impl KeyLanes {
    /// The lane that wrote `hash`'s key, or `lane` (recorded as its lane) for a new key.
    pub(super) fn lane_for(&mut self, hash: u64, lane: usize) -> usize {
        if (self.used + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let tag = tag_of(hash);
        let mask = self.slots.len() - 1;
        let mut index = (tag as usize) & mask;
        // The table is never full (it grows at half), so a free slot ends every probe;
        // past MAX_SLOTS it cannot grow and stops recording instead.
        for _ in 0..self.slots.len() {
            let slot = self.slots[index];
            if slot == 0 {
                if self.used < self.slots.len() / 2 {
                    // `lane` < MAX_LANES: the writer never opens more lanes.
                    let stored = (lane as u64 + 1) & LANE_MASK;
                    self.slots[index] = (tag << 4) | stored;
                    self.used += 1;
                }
                return lane;
            }
            if slot >> 4 == tag {
                #[allow(clippy::cast_possible_truncation, reason = "four bits")]
                let recorded = (slot & LANE_MASK) as usize - 1;
                return recorded;
            }
            index = (index + 1) & mask;
        }
        lane
    }

    /// Doubles the table; every slot's place follows from its own tag.
    fn grow(&mut self) {
        if self.slots.len() >= MAX_SLOTS {
            return;
        }
        let doubled = vec![0; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        let mask = self.slots.len() - 1;
        for slot in old.into_iter().filter(|&slot| slot != 0) {
            let mut index = ((slot >> 4) as usize) & mask;
            while self.slots[index] != 0 {
                index = (index + 1) & mask;
            }
            self.slots[index] = slot;
        }
    }
}

/// The top 60 bits of a key's hash (foldhash: every bit is well mixed).
fn tag_of(hash: u64) -> u64 {
    hash >> (64 - TAG_BITS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u64) -> u64 {
        use std::hash::BuildHasher as _;
        foldhash::fast::FixedState::with_seed(7).hash_one(n)
    }

    #[test]
    fn a_key_goes_back_to_the_lane_that_wrote_it_through_every_growth() {
        let mut lanes = KeyLanes::default();
        let keys = 300_000u64;
        for n in 0..keys {
            // The lane the writer would pick: here, round the three lanes.
            #[allow(clippy::cast_possible_truncation, reason = "n % 3")]
            let picked = (n % 3) as usize;
            let got = lanes.lane_for(hash(n), picked);
            assert_eq!(got, picked, "a new key takes the lane offered");
        }
        assert!(
            lanes.slots.len() >= 2 * keys as usize,
            "grew: {}",
            lanes.slots.len()
        );
        // Every key, offered any lane now, goes back to the lane recorded for it the
        // first time (itself, or the key it collided with: the same answer either way).
        let mut first = Vec::new();
        for n in 0..keys {
            first.push(lanes.lane_for(hash(n), 2));
        }
        for n in 0..keys {
            assert_eq!(lanes.lane_for(hash(n), 0), first[n as usize], "key {n}");
        }
        let kept_own = (0..keys)
            .filter(|&n| first[n as usize] == (n % 3) as usize)
            .count();
        assert_eq!(
            kept_own as u64, keys,
            "every key keeps the lane it was first given (no two tags alike)"
        );
    }

    #[test]
    fn a_new_key_takes_the_lane_offered() {
        let mut lanes = KeyLanes::default();
        assert_eq!(lanes.lane_for(hash(1), 1), 1);
        assert_eq!(lanes.lane_for(hash(2), 0), 0);
        assert_eq!(lanes.lane_for(hash(1), 0), 1);
        assert_eq!(lanes.lane_for(hash(2), 1), 0);
        assert_eq!(lanes.lane_for(hash(3), MAX_LANES - 1), MAX_LANES - 1);
        assert_eq!(lanes.lane_for(hash(3), 0), MAX_LANES - 1);
    }
}
