//! init_module / finit_module syscalls, joined with their return code at the
//! exit: successes to LOADS, failures to FAILURES with repeats folded, so a
//! failing loop cannot hide a real load.
//!
//! Two shapes; the loader attaches one. Where the kernel has BTF and the
//! registers saved at syscall entry are known (x86-64, 5.15+), `exit_load_regs`
//! alone does it all at the exit and reads the arguments only for a call it will
//! send: a folded failure costs two lookups and a counter, nothing is copied.
//! There the loader then hands over to fexit on the syscalls' functions, which
//! see the same registers and the return value without the syscall tracepoint
//! machinery every task pays for while one is attached (LOAD_PROBE).
//! Elsewhere the entry probes keep the arguments for `exit_load` (PENDING).

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated::bpf_jiffies64},
    macros::{fexit, map, tracepoint},
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
    programs::{FExitContext, TracePointContext},
};
use modtrace_common::{
    FoldCache, LoadEvent, PARAMS_LEN, PendingLoad, RepeatState, drop, kind, ledger, load_probe as by, regs, ring, syscall,
};

use crate::{
    kernel::{self, Kptr, PtRegs},
    fold::{add_folded, fold_at, fold_in_lazily},
    maps::{Counter, FOLD_LEDGER, LOADS, count_drop, count_n, count_refused_repeats},
    mem::{load, store, zero},
    task::{fill_header, now, self_tgid},
};

use modtrace_common::tp::{
    SYSCALL_ARG0 as ARG0, SYSCALL_ARG1 as ARG1, SYSCALL_ARG2 as ARG2, SYSCALL_NR as NR, SYSCALL_RET as RET,
};

/// Failed load attempts.
#[map]
static FAILURES: RingBuf = RingBuf::with_byte_size(128 * 1024, 0);

/// Syscall enter -> exit hand-over, keyed by pid_tgid (kernels where the exit
/// probe cannot read the arguments itself).
#[map]
static PENDING: LruHashMap<u64, PendingLoad> = LruHashMap::with_max_entries(1024, 0);

/// Load calls, by pid_tgid, whose module was linked (module_load fired): a failure
/// of such a call means the module's init failed, and it is never folded.
#[map]
static LINKED: LruHashMap<u64, u32> = LruHashMap::with_max_entries(1024, 0);

/// The load event being built, one per CPU and program (`scratch::*`): the
/// kernel never runs one program twice at once on a CPU (a second run is
/// skipped, and counted), but where the probes are preemptible (7.x) two
/// different programs can be halfway on one CPU. It is filled on one path whatever its ring
/// and syscall, then copied to the ring `ring` names: the verifier walks the
/// header once, where building it in the ring's own memory made it walk the
/// header once per ring and per syscall (70325 instructions verified on 6.1
/// against 11571 for one path).
#[map]
static LOAD_SCRATCH: PerCpuArray<LoadScratch> = PerCpuArray::with_max_entries(3, 0);

/// LOAD_SCRATCH's and FAIL_CACHE's slots: one per load-call program.
mod scratch {
    /// The exit tracepoint's programs (one of them is attached).
    pub const TRACEPOINT: u32 = 0;
    pub const FEXIT_FINIT: u32 = 1;
    pub const FEXIT_INIT: u32 = 2;
}

/// Which probe reports a load call (`load_probe::*`), set by userspace.
#[map]
static LOAD_PROBE: Array<u32> = Array::with_max_entries(1, 0);

/// Calls fexit reported while the exit tracepoint is attached too, by
/// pid_tgid: the tracepoint, which runs after fexit in the same call, skips
/// them. Written only in `load_probe::BOTH`.
#[map]
static REPORTED_BY_FEXIT: LruHashMap<u64, u8> = LruHashMap::with_max_entries(1024, 0);

#[repr(C)]
struct LoadScratch {
    pub event: LoadEvent,
    /// `ring::*` of the ring it goes to, read back from memory: a value the
    /// verifier does not know, so choosing the ring does not fork the walk.
    pub ring: u32,
    pub _pad: u32,
}

/// Entries put in LINKED and not yet taken out: while it is 0, which is nearly
/// always, a failed call's exit skips the LINKED lookup. Never below the number
/// of entries (an entry LRU-evicted leaves it higher, which costs only lookups).
static LINKED_CALLS: Counter = Counter::new();

/// Folding of repeated failed loads, keyed by tgid.
#[map]
static FAIL_REPEATS: LruHashMap<u32, RepeatState> = LruHashMap::with_max_entries(4096, 0);

/// The last process each load-call program folded failures of on each CPU
/// (slots `scratch::*`): a process repeating a failing load on one CPU is
/// counted here, in a per-CPU array the verifier inlines, with a plain add.
/// FAIL_REPEATS' count must be added to atomically (threads of one process on
/// several CPUs), and that costs an emulated CPU as much as the rest.
#[map]
static FAIL_CACHE: PerCpuArray<FoldCache> = PerCpuArray::with_max_entries(3, 0);

/// finit_module's number on this architecture (the loader's libc::SYS_finit_module):
/// tells the two load syscalls apart at their exit.
// SAFETY: unmangled so that the loader finds it; no other symbol has the name.
#[unsafe(no_mangle)]
static FINIT_MODULE_NR: i32 = 0;

fn finit_module_nr() -> i32 {
    // SAFETY: a read of a static nothing in the program writes (volatile: the
    // loader rewrites it).
    unsafe { core::ptr::read_volatile(&FINIT_MODULE_NR) }
}

/// LOAD_PROBE's value; the tracepoint's until userspace says otherwise.
fn load_probe() -> u32 {
    LOAD_PROBE.get(0).copied().unwrap_or(modtrace_common::load_probe::TRACEPOINT)
}

/// The ring an event goes to (`ring::*`), and the repeats it carries.
struct Route {
    ring: u32,
    repeats: u32,
}

#[tracepoint]
pub fn exit_load_regs(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == self_tgid() || reported_by_fexit(pid_tgid) {
        return 0;
    }
    let ret = syscall_ret(&ctx);
    if let Some(route) = route(pid_tgid, ret, scratch::TRACEPOINT) {
        // Straight from the record: read with the helper and held across
        // fill_header's call, on 6.1 it never matched (every finit_module was
        // reported as init_module).
        let finit = kernel::record_field::<i32>(&ctx, NR) == finit_module_nr();
        let saved = Kptr::<PtRegs>::saved();
        emit(scratch::TRACEPOINT, route, ret, |ev| call_from_regs(saved, finit, ev));
    }
    0
}

#[fexit(function = "__x64_sys_finit_module")]
pub fn fexit_finit_module(ctx: FExitContext) -> u32 {
    fexit_load(&ctx, true, scratch::FEXIT_FINIT)
}

#[fexit(function = "__x64_sys_init_module")]
pub fn fexit_init_module(ctx: FExitContext) -> u32 {
    fexit_load(&ctx, false, scratch::FEXIT_INIT)
}

/// A load call's function returned: `__x64_sys_*(const struct pt_regs *)`,
/// so the arguments are in the registers it was given.
fn fexit_load(ctx: &FExitContext, finit: bool, slot: u32) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let probe = load_probe();
    if (pid_tgid >> 32) as u32 == self_tgid() || probe == by::TRACEPOINT {
        return 0;
    }
    if probe == by::BOTH {
        let _ = REPORTED_BY_FEXIT.insert(&pid_tgid, &1, 0);
    }
    let saved = Kptr::<PtRegs>::new(ctx.arg(0));
    let ret: i64 = ctx.arg(1);
    if let Some(route) = route(pid_tgid, ret, slot) {
        emit(slot, route, ret, |ev| call_from_regs(saved, finit, ev));
    }
    0
}

/// Whether fexit has this call (LOAD_PROBE): it runs before the exit tracepoint.
fn reported_by_fexit(pid_tgid: u64) -> bool {
    match load_probe() {
        by::TRACEPOINT => false,
        by::BOTH => REPORTED_BY_FEXIT.remove(&pid_tgid).is_ok(),
        _ => true,
    }
}

#[tracepoint]
pub fn enter_finit_module(ctx: TracePointContext) -> u32 {
    let fd = kernel::record_field::<i64>(&ctx, ARG0) as i32;
    let params = kernel::record_field::<u64>(&ctx, ARG1);
    let flags = kernel::record_field::<u64>(&ctx, ARG2) as u32;
    remember(syscall::FINIT_MODULE, fd, flags, 0, params);
    0
}

#[tracepoint]
pub fn enter_init_module(ctx: TracePointContext) -> u32 {
    let len = kernel::record_field::<u64>(&ctx, ARG1);
    let params = kernel::record_field::<u64>(&ctx, ARG2);
    remember(syscall::INIT_MODULE, -1, 0, len, params);
    0
}

#[tracepoint]
pub fn exit_load(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(pending) = PENDING.get_ptr(&pid_tgid) else {
        if (pid_tgid >> 32) as u32 != self_tgid() {
            count_drop(drop::EXIT_WITHOUT_ENTRY);
        }
        return 0;
    };
    let ret = syscall_ret(&ctx);
    if let Some(route) = route(pid_tgid, ret, scratch::TRACEPOINT) {
        // SAFETY: a map value stays valid while the program runs; only this
        // thread's calls use its pid_tgid key.
        let p = unsafe { &*pending };
        emit(scratch::TRACEPOINT, route, ret, |ev| {
            (ev.syscall, ev.fd, ev.flags, ev.image_len) = (p.syscall, p.fd, p.flags, p.image_len);
            ev.params = p.params;
        });
    }
    let _ = PENDING.remove(&pid_tgid);
    0
}

/// The return value, read straight from the record: this runs for every call.
fn syscall_ret(ctx: &TracePointContext) -> i64 {
    kernel::record_field(ctx, RET)
}

fn remember(sys: u32, fd: i32, flags: u32, image_len: u64, params_ptr: u64) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == self_tgid() {
        return;
    }
    let mut pending =
        PendingLoad { ts_ns: now(), syscall: sys, fd, flags, _pad: 0, image_len, params: [0; PARAMS_LEN] };
    if params_ptr != 0 {
        let _ = kernel::user_str(params_ptr, &mut pending.params);
    }
    let _ = PENDING.insert(&pid_tgid, &pending, 0);
}

/// Where the call's event goes; None: it is a failure folded into a count. A
/// success, or a failure after the module was linked (its init failed: userspace
/// must take the module back), is always sent; only root can cause those.
/// `slot` is the program's (`scratch::*`), for its fold cache.
fn route(pid_tgid: u64, ret: i64, slot: u32) -> Option<Route> {
    if take_linked(pid_tgid) || ret == 0 {
        return Some(Route { ring: ring::LOADS, repeats: 0 });
    }
    let repeats = fold_failure(slot, (pid_tgid >> 32) as u32)?;
    Some(Route { ring: ring::FAILURES, repeats })
}

/// Whether module_load fired during this call; forgets it either way.
fn take_linked(pid_tgid: u64) -> bool {
    // SAFETY: only whether the entry exists is used, not the value.
    if LINKED_CALLS.get() == 0 || unsafe { LINKED.get(&pid_tgid) }.is_none() {
        return false;
    }
    if LINKED.remove(&pid_tgid).is_ok() {
        LINKED_CALLS.add(u64::MAX);
    }
    true
}

/// The call's arguments, from the registers saved at syscall entry, and its
/// parameter string from the caller's memory.
fn call_from_regs(saved: Kptr<PtRegs>, finit: bool, ev: &mut LoadEvent) {
    let arg = |offset: usize| saved.reg(offset).unwrap_or(0);
    let params = if finit {
        (ev.syscall, ev.fd, ev.flags, ev.image_len) = (syscall::FINIT_MODULE, arg(regs::ARG0) as i32, arg(regs::ARG2) as u32, 0);
        arg(regs::ARG1)
    } else {
        (ev.syscall, ev.fd, ev.flags, ev.image_len) = (syscall::INIT_MODULE, -1, 0, arg(regs::ARG1));
        arg(regs::ARG2)
    };
    zero(&mut ev.params);
    if params != 0 {
        let _ = kernel::user_str(params, &mut ev.params);
    }
}

/// Builds the event in this CPU's LOAD_SCRATCH `slot`, the header first and
/// then what `fill_call` says about the call, and copies it to its route's ring.
fn emit(slot: u32, route: Route, ret: i64, fill_call: impl FnOnce(&mut LoadEvent)) {
    let Some(scratch) = LOAD_SCRATCH.get_ptr_mut(slot) else {
        return;
    };
    // SAFETY: a valid map value; the slot is this program's, and the kernel
    // never runs one program twice at once on a CPU.
    let scratch = unsafe { &mut *scratch };
    // What the route decided is stored before the header is filled, the ring
    // read back at the end: nothing that differs from route to route is live
    // across fill_header, so the verifier walks the header once, not per route.
    store(&mut scratch.ring, route.ring);
    let ev = &mut scratch.event;
    store(&mut ev.repeats, route.repeats);
    store(&mut ev.ret, ret);
    // Stamped at exit, so the event sorts after the module_load it caused.
    if !fill_header(&mut ev.header, kind::LOAD, now()) {
        return;
    }
    fill_call(ev);
    let ring = load(&scratch.ring);
    let event: &LoadEvent = &scratch.event;
    let sent = if ring == ring::LOADS { LOADS.output::<LoadEvent>(event, 0) } else { FAILURES.output::<LoadEvent>(event, 0) };
    if sent.is_err() {
        count_drop(ring);
        count_refused_repeats(event.repeats);
    }
}

/// Called from module_load: marks the current task's load call as having linked
/// its module.
pub fn mark_linked() {
    // Counted only when new (BPF_NOEXIST), so the count never exceeds what take_linked can take out.
    if LINKED.insert(&bpf_get_current_pid_tgid(), &1, BPF_NOEXIST).is_ok() {
        LINKED_CALLS.add(1);
    }
}

/// bpf_map_update_elem's "only if absent".
const BPF_NOEXIST: u64 = 1;

/// [`fold_in_lazily`] for a failed load call of `tgid` in program `slot`:
/// while this CPU's FAIL_CACHE slot holds `tgid` and its window surely
/// lasts, the repeat is counted there. Otherwise the slot's count is added to
/// its process's FAIL_REPEATS entry, this call is folded (or sent) there, and
/// the slot caches `tgid`. Every repeat is in exactly one count, and userspace
/// adds the slots' counts to what is not yet reported.
fn fold_failure(slot: u32, tgid: u32) -> Option<u32> {
    // SAFETY: no arguments, no memory touched.
    let jiffies = unsafe { bpf_jiffies64() };
    let Some(cache) = FAIL_CACHE.get_ptr_mut(slot) else {
        return fold_in_lazily(&FAIL_REPEATS, &tgid);
    };
    // SAFETY: a valid map value; the program never runs twice at once on a
    // CPU, so the slot is its own.
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
        // SAFETY: a valid map value; other CPUs change `folded` only atomically,
        // as add_folded does.
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
