//! Maps shared by the probes, and the globals userspace sets before loading.

use aya_ebpf::{
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
};
use aya_ebpf::helpers::generated::bpf_jiffies64;
use core::cell::UnsafeCell;
use modtrace_common::{
    FOLD_WINDOW_NS, FoldCache, LoadEvent, MAX_JIFFY_NS, PendingLoad, RepeatState, RequestKey, TaskOffsets, drop, ledger,
};

use crate::task::now;

/// Requests: anyone can cause them (socket families, mounts), so they get a ring of
/// their own and can never crowd out a load.
#[map]
pub static REQUESTS: RingBuf = RingBuf::with_byte_size(512 * 1024, 0);

/// Successful loads, loaded and unloaded modules.
#[map]
pub static LOADS: RingBuf = RingBuf::with_byte_size(512 * 1024, 0);

/// Failed load attempts.
#[map]
pub static FAILURES: RingBuf = RingBuf::with_byte_size(128 * 1024, 0);

/// Events lost in the kernel: per ring that was full (index `ring::*`), and per
/// other cause (index `drop::*`).
#[map]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(drop::COUNT, 0);

/// Repeats added to and taken from the fold maps' entries (`ledger::*`):
/// what an LRU eviction took with it is told by the difference.
#[map]
pub static FOLD_LEDGER: PerCpuArray<u64> = PerCpuArray::with_max_entries(ledger::COUNT, 0);

/// Syscall enter -> exit hand-over, keyed by pid_tgid (kernels where the exit
/// probe cannot read the arguments itself).
#[map]
pub static PENDING: LruHashMap<u64, PendingLoad> = LruHashMap::with_max_entries(1024, 0);

/// Load calls, by pid_tgid, whose module was linked (module_load fired): a failure
/// of such a call means the module's init failed, and it is never folded.
#[map]
pub static LINKED: LruHashMap<u64, u32> = LruHashMap::with_max_entries(1024, 0);

/// The load event being built, one per CPU and program (`scratch::*`): the
/// kernel never runs one program twice at once on a CPU (a second run is
/// skipped, and counted), but where the probes are preemptible (7.x) two
/// different programs can be halfway on one CPU. It is filled on one path whatever its ring
/// and syscall, then copied to the ring `ring` names: the verifier walks the
/// header once, where building it in the ring's own memory made it walk the
/// header once per ring and per syscall (70325 instructions verified on 6.1
/// against 11571 for one path).
#[map]
pub static LOAD_SCRATCH: PerCpuArray<LoadScratch> = PerCpuArray::with_max_entries(3, 0);

/// LOAD_SCRATCH's and FAIL_CACHE's slots: one per load-call program.
pub mod scratch {
    /// The exit tracepoint's programs (one of them is attached).
    pub const TRACEPOINT: u32 = 0;
    pub const FEXIT_FINIT: u32 = 1;
    pub const FEXIT_INIT: u32 = 2;
}

/// Which probe reports a load call (`load_probe::*`), set by userspace.
#[map]
pub static LOAD_PROBE: Array<u32> = Array::with_max_entries(1, 0);

/// Calls fexit reported while the exit tracepoint is attached too, by
/// pid_tgid: the tracepoint, which runs after fexit in the same call, skips
/// them. Written only in `load_probe::BOTH`.
#[map]
pub static REPORTED_BY_FEXIT: LruHashMap<u64, u8> = LruHashMap::with_max_entries(1024, 0);

#[repr(C)]
pub struct LoadScratch {
    pub event: LoadEvent,
    /// `ring::*` of the ring it goes to, read back from memory: a value the
    /// verifier does not know, so choosing the ring does not fork the walk.
    pub ring: u32,
    pub _pad: u32,
}

/// Entries put in LINKED and not yet taken out: while it is 0, which is nearly
/// always, a failed call's exit skips the LINKED lookup. Never below the number
/// of entries (an entry LRU-evicted leaves it higher, which costs only lookups).
pub static LINKED_CALLS: Counter = Counter(UnsafeCell::new(0));

/// A u64 in .bss that every CPU adds to.
pub struct Counter(UnsafeCell<u64>);

// SAFETY: written only by `add`, one atomic instruction.
unsafe impl Sync for Counter {}

impl Counter {
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
fn add_folded(folded: &mut u64, n: u64) {
    atomic_add(folded, n);
    count_n(&FOLD_LEDGER, ledger::ADDED, n);
}

/// Folding of repeated failed loads, keyed by tgid.
#[map]
pub static FAIL_REPEATS: LruHashMap<u32, RepeatState> = LruHashMap::with_max_entries(4096, 0);

/// The last process each load-call program folded failures of on each CPU
/// (slots `scratch::*`): a process repeating a failing load on one CPU is
/// counted here, in a per-CPU array the verifier inlines, with a plain add.
/// FAIL_REPEATS' count must be added to atomically (threads of one process on
/// several CPUs), and that costs an emulated CPU as much as the rest.
#[map]
pub static FAIL_CACHE: PerCpuArray<FoldCache> = PerCpuArray::with_max_entries(3, 0);

/// Folding of repeated identical requests, keyed by tgid and alias.
#[map]
pub static REQUEST_REPEATS: LruHashMap<RequestKey, RepeatState> =
    LruHashMap::with_max_entries(4096, 0);

/// modtrace's own tgid: its activity is not traced.
#[unsafe(no_mangle)]
static SELF_TGID: u32 = 0;

/// finit_module's number on this architecture (the loader's libc::SYS_finit_module):
/// tells the two load syscalls apart at their exit.
#[unsafe(no_mangle)]
static FINIT_MODULE_NR: i32 = 0;

/// task_struct offsets from the kernel's BTF; zero when unknown.
#[unsafe(no_mangle)]
static TASK_OFFSETS: TaskOffsets = TaskOffsets {
    real_parent: 0,
    tgid: 0,
    comm: 0,
    mm: 0,
    arg_start: 0,
    arg_end: 0,
    cgroups: 0,
    dfl_cgrp: 0,
    cgroup_kn: 0,
    kn_name: 0,
    kn_parent: 0,
    cred: 0,
    cred_euid: 0,
    loginuid: 0,
    sessionid: 0,
    group_leader: 0,
    start_time: 0,
    task_flags: 0,
    nsproxy: 0,
    ns_pid: 0,
    ns_mnt: 0,
    pid_ns_inum: 0,
    mnt_ns_inum: 0,
};

pub fn self_tgid() -> u32 {
    // Volatile: the loader rewrites the value, the compiler must not fold the 0.
    unsafe { core::ptr::read_volatile(&SELF_TGID) }
}

pub fn finit_module_nr() -> i32 {
    unsafe { core::ptr::read_volatile(&FINIT_MODULE_NR) }
}

/// LOAD_PROBE's value; the tracepoint's until userspace says otherwise.
pub fn load_probe() -> u32 {
    LOAD_PROBE.get(0).copied().unwrap_or(modtrace_common::load_probe::TRACEPOINT)
}

pub fn task_offsets() -> TaskOffsets {
    unsafe { core::ptr::read_volatile(&TASK_OFFSETS) }
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
fn fold_at<K>(map: &LruHashMap<K, RepeatState>, key: &K, jiffies: u64, clock: impl Fn() -> u64) -> (Option<u32>, u64) {
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

/// [`fold_in_lazily`] for a failed load call of `tgid` in program `slot`:
/// while this CPU's FAIL_CACHE slot holds `tgid` and its window surely
/// lasts, the repeat is counted there. Otherwise the slot's count is added to
/// its process's FAIL_REPEATS entry, this call is folded (or sent) there, and
/// the slot caches `tgid`. Every repeat is in exactly one count, and userspace
/// adds the slots' counts to what is not yet reported.
pub fn fold_failure(slot: u32, tgid: u32) -> Option<u32> {
    let jiffies = unsafe { bpf_jiffies64() };
    let Some(cache) = FAIL_CACHE.get_ptr_mut(slot) else {
        return fold_in_lazily(&FAIL_REPEATS, &tgid);
    };
    // The program never runs twice at once on a CPU: the slot is its own.
    let cache = unsafe { &mut *cache };
    if cache.tgid == tgid && jiffies < cache.sure_until_jiffies {
        cache.folded += 1;
        return None;
    }
    flush(cache);
    let (route, sure_until_jiffies) = fold_at(&FAIL_REPEATS, &tgid, jiffies, now);
    (cache.tgid, cache.sure_until_jiffies) = (tgid, sure_until_jiffies);
    route
}

/// Adds a slot's count to its process's FAIL_REPEATS entry (a new one if the
/// LRU dropped it: the next call sent carries it) and empties the slot.
fn flush(cache: &mut FoldCache) {
    if cache.folded == 0 {
        return;
    }
    match FAIL_REPEATS.get_ptr_mut(&cache.tgid) {
        Some(state) => add_folded(unsafe { &mut (*state).folded }, cache.folded),
        None => {
            // In the ledger even if the insert fails: then it shows as lost.
            count_n(&FOLD_LEDGER, ledger::ADDED, cache.folded);
            let carried = RepeatState { last_sent_ns: 0, sure_until_jiffies: 0, folded: cache.folded };
            let _ = FAIL_REPEATS.insert(&cache.tgid, &carried, 0);
        }
    }
    cache.folded = 0;
}
