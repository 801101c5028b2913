//! The event header: which task fired the probe, and its parent.

use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
    bpf_probe_read_kernel, bpf_probe_read_kernel_buf,
    generated::{bpf_get_current_cgroup_id, bpf_get_current_task, bpf_ktime_get_ns},
};
use modtrace_common::{Header, flags};

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
    if fill_parent(h).is_ok() {
        h.flags |= flags::PARENT_KNOWN;
    }
    true
}

/// Reads real_parent's tgid and comm at the offsets userspace found in BTF. Fails
/// without BTF (offsets 0) or where lockdown forbids reading kernel memory.
fn fill_parent(h: &mut Header) -> Result<(), i32> {
    let off = task_offsets();
    if off.real_parent == 0 || off.tgid == 0 || off.comm == 0 {
        return Err(0);
    }
    unsafe {
        let task = bpf_get_current_task() as *const u8;
        let parent: *const u8 = bpf_probe_read_kernel(task.add(off.real_parent as usize) as *const *const u8)?;
        h.task.ppid = bpf_probe_read_kernel(parent.add(off.tgid as usize) as *const u32)?;
        bpf_probe_read_kernel_buf(parent.add(off.comm as usize), &mut h.task.parent_comm)?;
    }
    Ok(())
}
