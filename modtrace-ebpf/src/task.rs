//! The event header: which task fired the probe, and its parent; with the
//! globals userspace sets for it (modtrace's own tgid, task_struct offsets).

use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
    bpf_probe_read_kernel, bpf_probe_read_kernel_buf, bpf_probe_read_kernel_str_bytes,
    generated::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_task, bpf_ktime_get_ns, bpf_probe_read_user,
    },
};
use core::ffi::c_void;

use modtrace_common::{ARGS_LEN, CGROUP_DEPTH, CGROUP_NAME_LEN, COMM_LEN, Header, PF_KTHREAD, TaskOffsets, flags};

use crate::mem::{clear, zero};

/// modtrace's own tgid: its activity is not traced.
#[unsafe(no_mangle)]
static SELF_TGID: u32 = 0;

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

pub fn task_offsets() -> TaskOffsets {
    unsafe { core::ptr::read_volatile(&TASK_OFFSETS) }
}

pub fn now() -> u64 {
    unsafe { bpf_ktime_get_ns() }
}

/// Fills `h` for the current task. Returns false for modtrace's own threads.
pub fn fill_header(h: &mut Header, kind: u32, ts_ns: u64) -> bool {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if tgid == self_tgid() {
        return false;
    }
    h.kind = kind;
    h.flags = 0;
    h.ts_ns = ts_ns;
    h.task.pid = pid_tgid as u32;
    h.task.tgid = tgid;
    h.task.uid = bpf_get_current_uid_gid() as u32;
    h.task.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    // Into the event itself: the helper pads the name with zeros (or clears it).
    unsafe { bpf_get_current_comm(h.task.comm.as_mut_ptr() as *mut c_void, COMM_LEN as u32) };
    h.task.ppid = 0;
    zero(&mut h.task.parent_comm);
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
    for name in h.cgroup.iter_mut() {
        zero(name);
    }
    if let Ok(cut) = fill_cgroup_path(h, &off, task) {
        h.flags |= flags::CGROUP_NAME_KNOWN | cut;
    }
    h.flags |= fill_identity(h, &off, task);
    clear(&mut h.task.pid_ns);
    clear(&mut h.task.mnt_ns);
    if fill_namespaces(h, &off, task).is_ok() {
        h.flags |= flags::NS_KNOWN;
    }
    true
}

/// The inode numbers of the task's pid and mount namespaces, through
/// task->nsproxy, for userspace to compare with init's.
///
/// The pid namespace is nsproxy->pid_ns_for_children, not the task's active
/// one (thread_pid->numbers[level].ns): after unshare(CLONE_NEWPID) a process
/// is still active in the host's namespace until it forks, but its children
/// are not; and setns() moves pid_ns_for_children only to the active namespace
/// or one below it (pidns_install), so it is init's only when the active one is
/// too. One pointer read fewer, and no index for the verifier to bound.
fn fill_namespaces(h: &mut Header, off: &TaskOffsets, task: *const u8) -> Result<(), i32> {
    if off.nsproxy == 0 {
        return Err(0);
    }
    // SAFETY: bpf_probe_read_kernel checks every address; a task that is exiting
    // has a NULL nsproxy, and that read fails instead of faulting.
    unsafe {
        let nsproxy: *const u8 = bpf_probe_read_kernel(task.add(off.nsproxy as usize) as *const *const u8)?;
        let pid_ns: *const u8 = bpf_probe_read_kernel(nsproxy.add(off.ns_pid as usize) as *const *const u8)?;
        let mnt_ns: *const u8 = bpf_probe_read_kernel(nsproxy.add(off.ns_mnt as usize) as *const *const u8)?;
        h.task.pid_ns = bpf_probe_read_kernel(pid_ns.add(off.pid_ns_inum as usize) as *const u32)?;
        h.task.mnt_ns = bpf_probe_read_kernel(mnt_ns.add(off.mnt_ns_inum as usize) as *const u32)?;
    }
    Ok(())
}

/// The names of the task's cgroup v2 directory and its ancestors, leaf first,
/// from task->cgroups->dfl_cgrp->kn up the kernfs parents. Returns the CUT flags.
fn fill_cgroup_path(h: &mut Header, off: &TaskOffsets, task: *const u8) -> Result<u32, i32> {
    if off.cgroups == 0 || off.cgroup_kn == 0 || off.kn_name == 0 || off.kn_parent == 0 {
        return Err(0);
    }
    let mut cut = 0;
    unsafe {
        let css_set: *const u8 = bpf_probe_read_kernel(task.add(off.cgroups as usize) as *const *const u8)?;
        let cgroup: *const u8 = bpf_probe_read_kernel(css_set.add(off.dfl_cgrp as usize) as *const *const u8)?;
        let mut kn: *const u8 = bpf_probe_read_kernel(cgroup.add(off.cgroup_kn as usize) as *const *const u8)?;
        for level in 0..CGROUP_DEPTH {
            let parent: *const u8 = bpf_probe_read_kernel(kn.add(off.kn_parent as usize) as *const *const u8)?;
            if parent.is_null() {
                return Ok(cut); // kn is the root, which has no name of its own
            }
            let name: *const u8 = bpf_probe_read_kernel(kn.add(off.kn_name as usize) as *const *const u8)?;
            let read = bpf_probe_read_kernel_str_bytes(name, &mut h.cgroup[level])?;
            if read.len() + 1 >= CGROUP_NAME_LEN {
                cut |= flags::CGROUP_NAME_CUT;
            }
            kn = parent;
        }
        let parent: *const u8 = bpf_probe_read_kernel(kn.add(off.kn_parent as usize) as *const *const u8)?;
        if !parent.is_null() {
            cut |= flags::CGROUP_PATH_CUT;
        }
    }
    Ok(cut)
}

/// euid, audit loginuid/sessionid, the process's start time and whether the task
/// and its parent are kernel threads. Each is read on its own: one missing offset
/// or failed read leaves only that field unknown. Returns the KNOWN flags.
fn fill_identity(h: &mut Header, off: &TaskOffsets, task: *const u8) -> u32 {
    clear(&mut h.task.euid);
    clear(&mut h.task.loginuid);
    clear(&mut h.task.sessionid);
    clear(&mut h.task._pad);
    clear(&mut h.task.start_time);
    let mut known = 0;
    unsafe {
        if off.cred != 0 && off.cred_euid != 0 {
            if let Ok(cred) = bpf_probe_read_kernel(task.add(off.cred as usize) as *const *const u8) {
                if let Ok(euid) = bpf_probe_read_kernel(cred.add(off.cred_euid as usize) as *const u32) {
                    h.task.euid = euid;
                    known |= flags::EUID_KNOWN;
                }
            }
        }
        if off.loginuid != 0 && off.sessionid != 0 {
            let login = bpf_probe_read_kernel(task.add(off.loginuid as usize) as *const u32);
            let session = bpf_probe_read_kernel(task.add(off.sessionid as usize) as *const u32);
            if let (Ok(login), Ok(session)) = (login, session) {
                h.task.loginuid = login;
                h.task.sessionid = session;
                known |= flags::AUDIT_KNOWN;
            }
        }
        if off.group_leader != 0 && off.start_time != 0 {
            if let Ok(leader) = bpf_probe_read_kernel(task.add(off.group_leader as usize) as *const *const u8) {
                if let Ok(start) = bpf_probe_read_kernel(leader.add(off.start_time as usize) as *const u64) {
                    h.task.start_time = start;
                    known |= flags::START_TIME_KNOWN;
                }
            }
        }
        if off.task_flags != 0 {
            if let Ok(f) = bpf_probe_read_kernel(task.add(off.task_flags as usize) as *const u32) {
                known |= flags::KTHREAD_KNOWN | if f & PF_KTHREAD != 0 { flags::KTHREAD } else { 0 };
            }
            if off.real_parent != 0 {
                if let Ok(parent) = bpf_probe_read_kernel(task.add(off.real_parent as usize) as *const *const u8) {
                    if let Ok(f) = bpf_probe_read_kernel(parent.add(off.task_flags as usize) as *const u32) {
                        let kthread = if f & PF_KTHREAD != 0 { flags::PARENT_KTHREAD } else { 0 };
                        known |= flags::PARENT_KTHREAD_KNOWN | kthread;
                    }
                }
            }
        }
    }
    known
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
