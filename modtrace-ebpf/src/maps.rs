//! Maps shared by the probes, and the atomic counting on them.

use aya_ebpf::{
    macros::map,
    maps::{PerCpuArray, RingBuf},
};
use core::cell::UnsafeCell;
use modtrace_common::{drop, ledger};

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
        // SAFETY: the cell's own pointer; an aligned u64 load is never torn.
        unsafe { core::ptr::read_volatile(self.0.get()) }
    }

    /// Atomically adds `delta` (wrapping: u64::MAX takes one away).
    pub fn add(&self, delta: u64) {
        // SAFETY: the cell's own pointer.
        unsafe { atomic_add(self.0.get(), delta) };
    }
}

/// One atomic instruction: core has no atomic read-modify-write for BPF.
///
/// # Safety
/// `target` must be valid for writes and 8-aligned.
pub unsafe fn atomic_add(target: *mut u64, delta: u64) {
    #[cfg(target_arch = "bpf")]
    // SAFETY: the caller's.
    unsafe {
        core::arch::asm!("lock *(u64 *)({0} + 0) += {1}", in(reg) target, in(reg) delta);
    }
    #[cfg(not(target_arch = "bpf"))]
    let _ = (target, delta);
}

/// Atomically takes the value of `target`, leaving 0 (BPF_XCHG).
///
/// # Safety
/// As for [`atomic_add`].
pub unsafe fn atomic_take(target: *mut u64) -> u64 {
    #[cfg(target_arch = "bpf")]
    {
        let mut value: u64 = 0;
        // SAFETY: the caller's.
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
        // SAFETY: a valid map value.
        unsafe { atomic_add(c, n) };
    }
}

/// Repeats a refused record carried: lost with it, and counted.
pub fn count_refused_repeats(repeats: u32) {
    if repeats > 0 {
        count_n(&DROPS, drop::REPEATS_REFUSED, repeats as u64);
    }
}

/// Counts one event lost: `slot` is the full ring's index or a `drop::*` cause.
pub fn count_drop(slot: u32) {
    count(&DROPS, slot);
}
