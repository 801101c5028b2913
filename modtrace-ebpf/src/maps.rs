//! Maps shared by the probes.

use aya_ebpf::{
    macros::map,
    maps::{LruHashMap, PerCpuArray, RingBuf},
};
use aya_ebpf::helpers::generated::bpf_jiffies64;
use core::cell::UnsafeCell;
use modtrace_common::{FOLD_WINDOW_NS, MAX_JIFFY_NS, RepeatState, drop, ledger};

use crate::task::now;

/// Successful loads, loaded and unloaded modules.
#[map]
pub static LOADS: RingBuf = RingBuf::with_byte_size(512 * 1024, 0);

/// Events lost in the kernel: per ring that was full (index `ring::*`), and per
/// other cause (index `drop::*`).
#[map]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(drop::COUNT, 0);

/// Repeats added to and taken from the fold maps' entries (`ledger::*`):
/// what an LRU eviction took with it is told by the difference.
#[map]
pub static FOLD_LEDGER: PerCpuArray<u64> = PerCpuArray::with_max_entries(ledger::COUNT, 0);

/// A u64 in .bss that every CPU adds to.
pub struct Counter(UnsafeCell<u64>);

// SAFETY: written only by `add`, one atomic instruction.
unsafe impl Sync for Counter {}

impl Counter {
    pub const fn new() -> Self {
        Counter(UnsafeCell::new(0))
    }

    pub fn get(&self) -> u64 {
        unsafe { core::ptr::read_volatile(self.0.get()) }
    }

    /// Atomically adds `delta` (wrapping: u64::MAX takes one away).
    pub fn add(&self, delta: u64) {
        atomic_add(self.0.get(), delta);
    }
}

/// One atomic instruction: core has no atomic read-modify-write for BPF.
fn atomic_add(target: *mut u64, delta: u64) {
    #[cfg(target_arch = "bpf")]
    unsafe {
        core::arch::asm!("lock *(u64 *)({0} + 0) += {1}", in(reg) target, in(reg) delta);
    }
    #[cfg(not(target_arch = "bpf"))]
    let _ = (target, delta);
}

/// Atomically takes the value of `target`, leaving 0 (BPF_XCHG).
fn atomic_take(target: *mut u64) -> u64 {
    #[cfg(target_arch = "bpf")]
    {
        let mut value: u64 = 0;
        unsafe { core::arch::asm!("{0} = xchg_64({1} + 0, {0})", inout(reg) value, in(reg) target) };
        value
    }
    #[cfg(not(target_arch = "bpf"))]
    {
        let _ = target;
        0
    }
}

/// Adds one to this CPU's `slot` of `counters`. Atomically: a program run
/// from a syscall tracepoint or an LSM hook can be preempted on a preemptible
/// kernel (Debian's 7.x), and another program may add to the slot meanwhile.
pub fn count(counters: &PerCpuArray<u64>, slot: u32) {
    count_n(counters, slot, 1);
}

/// Adds `n` to this CPU's `slot` of `counters`, atomically as [`count`].
pub fn count_n(counters: &PerCpuArray<u64>, slot: u32, n: u64) {
    if let Some(c) = counters.get_ptr_mut(slot) {
        atomic_add(c, n);
    }
}

/// Repeats a refused record carried: lost with it, and counted.
pub fn count_refused_repeats(repeats: u32) {
    if repeats > 0 {
        count_n(&DROPS, drop::REPEATS_REFUSED, repeats as u64);
    }
}

/// Adds `n` repeats to an entry's count, and to the ledger.
pub fn add_folded(folded: &mut u64, n: u64) {
    atomic_add(folded, n);
    count_n(&FOLD_LEDGER, ledger::ADDED, n);
}

/// Counts one event lost: `slot` is the full ring's index or a `drop::*` cause.
pub fn count_drop(slot: u32) {
    count(&DROPS, slot);
}

/// Decides whether the event for `key` is sent now or folded into a count: the
/// first of a key is sent, repeats within FOLD_WINDOW_NS are counted, and the next
/// one sent after the window carries that count. None means: fold this one.
/// `now` is the event's time, read already.
pub fn fold_in<K>(map: &LruHashMap<K, RepeatState>, key: &K, now: u64) -> Option<u32> {
    fold_with_clock(map, key, || now)
}

/// [`fold_in`] for a path that has not read the clock: it reads it only when the
/// jiffies counter cannot tell that the window still lasts, so a storm of
/// repeats is folded with none.
pub fn fold_in_lazily<K>(map: &LruHashMap<K, RepeatState>, key: &K) -> Option<u32> {
    fold_with_clock(map, key, now)
}

fn fold_with_clock<K>(map: &LruHashMap<K, RepeatState>, key: &K, clock: impl Fn() -> u64) -> Option<u32> {
    // Inlined by the verifier: a load of the jiffies counter.
    let jiffies = unsafe { bpf_jiffies64() };
    fold_at(map, key, jiffies, clock).0
}

/// Folds one event of `key` at `jiffies`; also says until when its window
/// now surely lasts.
pub fn fold_at<K>(map: &LruHashMap<K, RepeatState>, key: &K, jiffies: u64, clock: impl Fn() -> u64) -> (Option<u32>, u64) {
    match map.get_ptr_mut(key) {
        Some(state) => fold(unsafe { &mut *state }, jiffies, clock),
        None => {
            let sure_until_jiffies = jiffies + SURE_WINDOW;
            let fresh = RepeatState { last_sent_ns: clock(), sure_until_jiffies, folded: 0 };
            let _ = map.insert(key, &fresh, 0);
            (Some(0), sure_until_jiffies)
        }
    }
}

/// Jiffies that surely fit in a whole window.
const SURE_WINDOW: u64 = FOLD_WINDOW_NS / MAX_JIFFY_NS;

/// The count is changed only atomically: threads of one process fold into it
/// on several CPUs at once (a plain add there loses repeats).
fn fold(state: &mut RepeatState, jiffies: u64, clock: impl Fn() -> u64) -> (Option<u32>, u64) {
    if jiffies < state.sure_until_jiffies {
        add_folded(&mut state.folded, 1);
        return (None, state.sure_until_jiffies);
    }
    let now = clock();
    let elapsed = now.wrapping_sub(state.last_sent_ns);
    if elapsed < FOLD_WINDOW_NS {
        // Fewer jiffies than this can pass only in less time than is left.
        state.sure_until_jiffies = jiffies + (FOLD_WINDOW_NS - elapsed) / MAX_JIFFY_NS;
        add_folded(&mut state.folded, 1);
        return (None, state.sure_until_jiffies);
    }
    state.last_sent_ns = now;
    state.sure_until_jiffies = jiffies + SURE_WINDOW;
    let carried = atomic_take(&mut state.folded).min(u32::MAX as u64);
    if carried > 0 {
        // Only what the record carries: a count past u32 shows as lost.
        count_n(&FOLD_LEDGER, ledger::TAKEN, carried);
    }
    (Some(carried as u32), state.sure_until_jiffies)
}
