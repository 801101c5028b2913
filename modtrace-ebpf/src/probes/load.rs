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
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_kernel, bpf_probe_read_user_str_bytes,
        generated::{bpf_get_current_task_btf, bpf_task_pt_regs},
    },
    macros::{fexit, tracepoint},
    programs::{FExitContext, TracePointContext},
};
use modtrace_common::{LoadEvent, PARAMS_LEN, PendingLoad, drop, kind, load_probe as by, regs, ring, syscall};

use crate::{
    maps::{
        FAILURES, LINKED, LINKED_CALLS, LOAD_SCRATCH, LOADS, PENDING, REPORTED_BY_FEXIT, count_drop, count_refused_repeats, finit_module_nr,
        fold_failure, load_probe, scratch, self_tgid,
    },
    mem::zero,
    task::{fill_header, now},
};

use modtrace_common::tp::{
    SYSCALL_ARG0 as ARG0, SYSCALL_ARG1 as ARG1, SYSCALL_ARG2 as ARG2, SYSCALL_NR as NR, SYSCALL_RET as RET,
};

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
        let finit = super::record_field::<i32>(&ctx, NR) == finit_module_nr();
        let saved = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) } as *const u8;
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
    let saved: *const u8 = ctx.arg(0);
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
    let fd = super::record_field::<i64>(&ctx, ARG0) as i32;
    let params = super::record_field::<u64>(&ctx, ARG1);
    let flags = super::record_field::<u64>(&ctx, ARG2) as u32;
    remember(syscall::FINIT_MODULE, fd, flags, 0, params);
    0
}

#[tracepoint]
pub fn enter_init_module(ctx: TracePointContext) -> u32 {
    let len = super::record_field::<u64>(&ctx, ARG1);
    let params = super::record_field::<u64>(&ctx, ARG2);
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
    super::record_field(ctx, RET)
}

fn remember(sys: u32, fd: i32, flags: u32, image_len: u64, params_ptr: u64) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == self_tgid() {
        return;
    }
    let mut pending =
        PendingLoad { ts_ns: now(), syscall: sys, fd, flags, _pad: 0, image_len, params: [0; PARAMS_LEN] };
    if params_ptr != 0 {
        let _ = unsafe { bpf_probe_read_user_str_bytes(params_ptr as *const u8, &mut pending.params) };
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
fn call_from_regs(saved: *const u8, finit: bool, ev: &mut LoadEvent) {
    let arg = |offset: usize| unsafe { bpf_probe_read_kernel(saved.add(offset) as *const u64) }.unwrap_or(0);
    let params = if finit {
        (ev.syscall, ev.fd, ev.flags, ev.image_len) = (syscall::FINIT_MODULE, arg(regs::ARG0) as i32, arg(regs::ARG2) as u32, 0);
        arg(regs::ARG1)
    } else {
        (ev.syscall, ev.fd, ev.flags, ev.image_len) = (syscall::INIT_MODULE, -1, 0, arg(regs::ARG1));
        arg(regs::ARG2)
    };
    zero(&mut ev.params);
    if params != 0 {
        let _ = unsafe { bpf_probe_read_user_str_bytes(params as *const u8, &mut ev.params) };
    }
}

/// Builds the event in this CPU's LOAD_SCRATCH `slot`, the header first and
/// then what `fill_call` says about the call, and copies it to its route's ring.
fn emit(slot: u32, route: Route, ret: i64, fill_call: impl FnOnce(&mut LoadEvent)) {
    let Some(scratch) = LOAD_SCRATCH.get_ptr_mut(slot) else {
        return;
    };
    let scratch = unsafe { &mut *scratch };
    // What the route decided is stored before the header is filled, the ring
    // read back at the end: nothing that differs from route to route is live
    // across fill_header, so the verifier walks the header once, not per route.
    unsafe { core::ptr::write_volatile(&mut scratch.ring, route.ring) };
    let ev = &mut scratch.event;
    unsafe { core::ptr::write_volatile(&mut ev.repeats, route.repeats) };
    unsafe { core::ptr::write_volatile(&mut ev.ret, ret) };
    // Stamped at exit, so the event sorts after the module_load it caused.
    if !fill_header(&mut ev.header, kind::LOAD, now()) {
        return;
    }
    fill_call(ev);
    let ring = unsafe { core::ptr::read_volatile(&scratch.ring) };
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
