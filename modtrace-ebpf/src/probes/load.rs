//! init_module / finit_module syscalls. The enter probe keeps the attempt; the exit
//! probe sends it joined with the return code: successes to LOADS, failures to
//! FAILURES with repeats folded, so a failing loop cannot hide a real load.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user_str_bytes},
    macros::tracepoint,
    programs::TracePointContext,
};
use modtrace_common::{LoadEvent, PARAMS_LEN, PendingLoad, drop, kind, ring, syscall};

use crate::{
    maps::{FAIL_REPEATS, FAILURES, LOADS, PENDING, count_drop, fold_in, self_tgid},
    task::{fill_header, now},
};

use modtrace_common::tp::{SYSCALL_ARG0 as ARG0, SYSCALL_ARG1 as ARG1, SYSCALL_ARG2 as ARG2, SYSCALL_RET as RET};

#[tracepoint]
pub fn enter_finit_module(ctx: TracePointContext) -> u32 {
    let fd = unsafe { ctx.read_at::<i64>(ARG0) }.unwrap_or(-1) as i32;
    let params = unsafe { ctx.read_at::<u64>(ARG1) }.unwrap_or(0);
    let flags = unsafe { ctx.read_at::<u64>(ARG2) }.unwrap_or(0) as u32;
    remember(syscall::FINIT_MODULE, fd, flags, 0, params);
    0
}

#[tracepoint]
pub fn enter_init_module(ctx: TracePointContext) -> u32 {
    let len = unsafe { ctx.read_at::<u64>(ARG1) }.unwrap_or(0);
    let params = unsafe { ctx.read_at::<u64>(ARG2) }.unwrap_or(0);
    remember(syscall::INIT_MODULE, -1, 0, len, params);
    0
}

#[tracepoint]
pub fn exit_load(ctx: TracePointContext) -> u32 {
    let ret = unsafe { ctx.read_at::<i64>(RET) }.unwrap_or(0);
    match send(ret) {
        Ok(()) | Err(_) => 0,
    }
}

fn remember(sys: u32, fd: i32, flags: u32, image_len: u64, params_ptr: u64) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == self_tgid() {
        return;
    }
    let mut pending = PendingLoad {
        ts_ns: now(),
        syscall: sys,
        fd,
        flags,
        linked: 0,
        image_len,
        params: [0; PARAMS_LEN],
    };
    if params_ptr != 0 {
        let _ = unsafe { bpf_probe_read_user_str_bytes(params_ptr as *const u8, &mut pending.params) };
    }
    let _ = PENDING.insert(&pid_tgid, &pending, 0);
}

fn send(ret: i64) -> Result<(), i32> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(pending) = PENDING.get_ptr(&pid_tgid) else {
        if (pid_tgid >> 32) as u32 != self_tgid() {
            count_drop(drop::EXIT_WITHOUT_ENTRY);
        }
        return Ok(());
    };
    let result = emit(unsafe { &*pending }, (pid_tgid >> 32) as u32, ret);
    let _ = PENDING.remove(&pid_tgid);
    result
}

fn emit(pending: &PendingLoad, tgid: u32, ret: i64) -> Result<(), i32> {
    // A linked module whose init failed is as important as a load: userspace must
    // take it back. Only root can cause these, and only with real modules.
    let (rb, ring_index, repeats) = if ret == 0 || pending.linked != 0 {
        (&LOADS, ring::LOADS, 0)
    } else {
        match fold_failure(tgid) {
            Some(folded) => (&FAILURES, ring::FAILURES, folded),
            None => return Ok(()),
        }
    };
    let Some(mut entry) = rb.reserve::<LoadEvent>(0) else {
        count_drop(ring_index);
        return Ok(());
    };
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    // Stamped at exit, so the event sorts after the module_load it caused.
    if !fill_header(&mut ev.header, kind::LOAD, now()) {
        entry.discard(0);
        return Ok(());
    }
    ev.syscall = pending.syscall;
    ev.fd = pending.fd;
    ev.flags = pending.flags;
    ev.repeats = repeats;
    ev.image_len = pending.image_len;
    ev.ret = ret;
    ev.params = pending.params;
    entry.submit(0);
    Ok(())
}

fn fold_failure(tgid: u32) -> Option<u32> {
    fold_in(&FAIL_REPEATS, &tgid, now())
}

/// Called from module_load: marks the current task's load call as having linked
/// its module.
pub fn mark_linked() {
    let pid_tgid = bpf_get_current_pid_tgid();
    if let Some(pending) = PENDING.get_ptr_mut(&pid_tgid) {
        unsafe { (*pending).linked = 1 };
    }
}
