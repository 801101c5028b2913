//! The event header: which task fired the probe, and its parent.

use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
    bpf_probe_read_kernel, bpf_probe_read_kernel_buf, bpf_probe_read_kernel_str_bytes,
    generated::{bpf_get_current_cgroup_id, bpf_get_current_task, bpf_ktime_get_ns, bpf_probe_read_user},
};
use core::ffi::c_void;

use modtrace_common::{ARGS_LEN, CGROUP_NAME_LEN, Header, TaskOffsets, flags};

use crate::maps::task_offsets;

pub fn now() -> u64 {
    unsafe { bpf_ktime_get_ns() }
}

/// Fills `h` for the current task. Returns false for modtrace's own threads.
pub fn fill_header(h: &mut Header, kind: u32, ts_ns: u64) -> bool {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if tgid == crate::maps::self_tgid() {
        return false;
    }
    h.kind = kind;
    h.flags = 0;
    h.ts_ns = ts_ns;
    h.task.pid = pid_tgid as u32;
    h.task.tgid = tgid;
    h.task.uid = bpf_get_current_uid_gid() as u32;
    h.task.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    h.task.comm = bpf_get_current_comm().unwrap_or([0; 16]);
    h.task.ppid = 0;
    h.task.parent_comm = [0; 16];
    let off = task_offsets();
    let task = unsafe { bpf_get_current_task() } as *const u8;
    if fill_parent(h, &off, task).is_ok() {
        h.flags |= flags::PARENT_KNOWN;
    }
    h.args_len = 0;
    h._pad = 0;
    if fill_args(h, &off, task).is_ok() {
        h.flags |= flags::ARGS_KNOWN;
    }
    h.cgroup_name = [0; CGROUP_NAME_LEN];
    if fill_cgroup_name(h, &off, task).is_ok() {
        h.flags |= flags::CGROUP_NAME_KNOWN;
    }
    true
}

/// The name of the task's cgroup v2 directory, from task->cgroups->dfl_cgrp->kn.
fn fill_cgroup_name(h: &mut Header, off: &TaskOffsets, task: *const u8) -> Result<(), i32> {
    if off.cgroups == 0 || off.cgroup_kn == 0 || off.kn_name == 0 {
        return Err(0);
    }
    unsafe {
        let css_set: *const u8 = bpf_probe_read_kernel(task.add(off.cgroups as usize) as *const *const u8)?;
        let cgroup: *const u8 = bpf_probe_read_kernel(css_set.add(off.dfl_cgrp as usize) as *const *const u8)?;
        let kn: *const u8 = bpf_probe_read_kernel(cgroup.add(off.cgroup_kn as usize) as *const *const u8)?;
        let name: *const u8 = bpf_probe_read_kernel(kn.add(off.kn_name as usize) as *const *const u8)?;
        bpf_probe_read_kernel_str_bytes(name, &mut h.cgroup_name)?;
    }
    Ok(())
}

/// Reads real_parent's tgid and comm at the offsets userspace found in BTF. Fails
/// without BTF (offsets 0) or where lockdown forbids reading kernel memory.
fn fill_parent(h: &mut Header, off: &TaskOffsets, task: *const u8) -> Result<(), i32> {
    if off.real_parent == 0 || off.tgid == 0 || off.comm == 0 {
        return Err(0);
    }
    unsafe {
        let parent: *const u8 = bpf_probe_read_kernel(task.add(off.real_parent as usize) as *const *const u8)?;
        h.task.ppid = bpf_probe_read_kernel(parent.add(off.tgid as usize) as *const u32)?;
        bpf_probe_read_kernel_buf(parent.add(off.comm as usize), &mut h.task.parent_comm)?;
    }
    Ok(())
}

/// Copies the start of the current task's argv area (mm->arg_start..arg_end): its
/// length, capped at ARGS_LEN, and never past the area, which may end a page.
fn fill_args(h: &mut Header, off: &TaskOffsets, task: *const u8) -> Result<(), i32> {
    if off.mm == 0 || off.arg_end == 0 {
        return Err(0);
    }
    unsafe {
        let mm: *const u8 = bpf_probe_read_kernel(task.add(off.mm as usize) as *const *const u8)?;
        if mm.is_null() {
            return Err(0); // kernel threads have no argv
        }
        let start: u64 = bpf_probe_read_kernel(mm.add(off.arg_start as usize) as *const u64)?;
        let end: u64 = bpf_probe_read_kernel(mm.add(off.arg_end as usize) as *const u64)?;
        let len = end.saturating_sub(start);
        // The comparison gives the verifier its bound on the size.
        let size = if len > ARGS_LEN as u64 { ARGS_LEN as u32 } else { len as u32 };
        let rc = bpf_probe_read_user(h.args.as_mut_ptr() as *mut c_void, size, start as *const c_void);
        if rc != 0 {
            return Err(rc as i32);
        }
        h.args_len = len as u32;
    }
    Ok(())
}
