//! Repeats the probes fold into counts, and the ones that went missing. A
//! repeat lives in one count at a time: a FAIL_CACHE slot, a fold map's entry
//! (FAIL_REPEATS, REQUEST_REPEATS) or the record that carries it. The fold
//! maps are LRU: a full map drops an entry with its count and says nothing,
//! so the probes keep a ledger (FOLD_LEDGER) of what they added to entries
//! and took out of them; with the probes detached, what was added and is
//! neither taken nor held went with a dropped entry.

use aya::{
    Ebpf,
    maps::{HashMap, Map, PerCpuArray},
};
use modtrace_common::{FoldCache, RepeatState, RequestKey, ledger};

/// The fold state's counts, summed over CPUs and entries.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FoldCounts {
    /// Repeats ever added to fold map entries, and taken out of them.
    pub added: u64,
    pub taken: u64,
    /// Repeats in the fold maps' entries now.
    pub in_maps: u64,
    /// Repeats in the per-CPU caches, not yet added to an entry.
    pub in_caches: u64,
}

impl FoldCounts {
    /// Reads the live probes' counts.
    pub fn read(ebpf: &Ebpf) -> FoldCounts {
        let (added, taken) = ebpf.map("FOLD_LEDGER").map(ledger_of).unwrap_or_default();
        FoldCounts {
            added,
            taken,
            in_maps: held::<u32>(ebpf, "FAIL_REPEATS") + held::<RequestKey>(ebpf, "REQUEST_REPEATS"),
            in_caches: ebpf.map("FAIL_CACHE").map(in_caches).unwrap_or(0),
        }
    }

    /// Repeats still to be carried by a later record.
    pub fn pending(&self) -> u64 {
        self.in_maps + self.in_caches
    }

    /// Repeats lost with an entry the map dropped. Exact once the probes are
    /// detached; while they run, an add or a take between the reads can move
    /// it by that much.
    pub fn evicted(&self) -> u64 {
        self.added.saturating_sub(self.taken).saturating_sub(self.in_maps)
    }

    /// Repeats the early probes counted and no record carried: once they are
    /// detached, none of them will be (the learner's probes count afresh).
    pub fn left_behind(&self) -> u64 {
        self.added.saturating_sub(self.taken) + self.in_caches
    }
}

/// (added, taken) from a FOLD_LEDGER map.
pub fn ledger_of(map: &Map) -> (u64, u64) {
    let Ok(ledger) = PerCpuArray::<_, u64>::try_from(map) else { return (0, 0) };
    let sum = |slot: u32| ledger.get(&slot, 0).map(|per_cpu| per_cpu.iter().sum()).unwrap_or(0);
    (sum(ledger::ADDED), sum(ledger::TAKEN))
}

/// Repeats held in a FAIL_CACHE map's slots.
pub fn in_caches(map: &Map) -> u64 {
    let Ok(caches) = PerCpuArray::<_, FoldCache>::try_from(map) else { return 0 };
    caches.iter().filter_map(Result::ok).map(|per_cpu| per_cpu.iter().map(|c| c.folded).sum::<u64>()).sum()
}

fn held<K: aya::Pod>(ebpf: &Ebpf, name: &str) -> u64 {
    let Some(map) = ebpf.map(name) else { return 0 };
    let Ok(map) = HashMap::<_, K, RepeatState>::try_from(map) else { return 0 };
    map.iter().filter_map(Result::ok).map(|(_, state)| state.folded).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_was_added_and_is_neither_taken_nor_held_was_evicted() {
        let c = FoldCounts { added: 900, taken: 600, in_maps: 250, in_caches: 40 };
        assert_eq!((c.evicted(), c.pending()), (50, 290));
        let none_lost = FoldCounts { in_maps: 300, ..c };
        assert_eq!(none_lost.evicted(), 0);
    }

    #[test]
    fn a_read_racing_the_probes_never_goes_below_zero() {
        // An add landed in an entry after the ledger was read.
        let c = FoldCounts { added: 10, taken: 4, in_maps: 7, in_caches: 0 };
        assert_eq!(c.evicted(), 0);
        assert_eq!(FoldCounts { taken: 11, ..c }.evicted(), 0);
    }

    #[test]
    fn the_early_probes_leave_behind_every_repeat_not_carried() {
        // Held in an entry or a cache, or evicted: no record will carry it.
        let c = FoldCounts { added: 900, taken: 600, in_maps: 250, in_caches: 40 };
        assert_eq!(c.left_behind(), 340);
    }
}
