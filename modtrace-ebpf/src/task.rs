//! The event header: which task fired the probe, and its parent; with the
//! globals userspace sets for it (modtrace's own tgid, task_struct offsets).

use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
    generated::{bpf_get_current_cgroup_id, bpf_ktime_get_ns},
};

use modtrace_common::{CGROUP_DEPTH, CGROUP_NAME_LEN, Header, PF_KTHREAD, TaskOffsets, flags};

use crate::{
    kernel::{self, Kptr, Task},
    mem::{clear, zero},
};

/// modtrace's own tgid: its activity is not traced.
// SAFETY: unmangled so that the loader finds it; no other symbol has the name.
#[unsafe(no_mangle)]
static SELF_TGID: u32 = 0;

/// task_struct offsets from the kernel's BTF; zero when unknown.
// SAFETY: as for SELF_TGID.
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
    // SAFETY: a read of a static nothing in the program writes.
    unsafe { core::ptr::read_volatile(&SELF_TGID) }
}

pub fn task_offsets() -> TaskOffsets {
    // SAFETY: as for SELF_TGID.
    unsafe { core::ptr::read_volatile(&TASK_OFFSETS) }
}

pub fn now() -> u64 {
    // SAFETY: no arguments, no memory touched.
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
    // SAFETY: no arguments, no memory touched.
    h.task.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    // Into the event itself: the helper pads the name with zeros (or clears it).
    kernel::current_comm(&mut h.task.comm);
    h.task.ppid = 0;
    zero(&mut h.task.parent_comm);
    let off = task_offsets();
    let task = Kptr::<Task>::current();
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
fn fill_namespaces(h: &mut Header, off: &TaskOffsets, task: Kptr<Task>) -> Result<(), i32> {
    if off.nsproxy == 0 {
        return Err(0);
    }
    // An exiting task's nsproxy is NULL: the reads through it fail.
    let nsproxy = task.nsproxy(off)?;
    let pid_ns = nsproxy.pid_ns(off)?;
    let mnt_ns = nsproxy.mnt_ns(off)?;
    h.task.pid_ns = pid_ns.inum(off)?;
    h.task.mnt_ns = mnt_ns.inum(off)?;
    Ok(())
}

/// The names of the task's cgroup v2 directory and its ancestors, leaf first,
/// from task->cgroups->dfl_cgrp->kn up the kernfs parents. Returns the CUT flags.
fn fill_cgroup_path(h: &mut Header, off: &TaskOffsets, task: Kptr<Task>) -> Result<u32, i32> {
    if off.cgroups == 0 || off.cgroup_kn == 0 || off.kn_name == 0 || off.kn_parent == 0 {
        return Err(0);
    }
    let mut cut = 0;
    let mut kn = task.cgroups(off)?.dfl_cgrp(off)?.kn(off)?;
    for level in 0..CGROUP_DEPTH {
        let parent = kn.parent(off)?;
        if parent.is_null() {
            return Ok(cut); // kn is the root, which has no name of its own
        }
        let read = kn.name(off)?.copy_to(&mut h.cgroup[level])?;
        if read.len() + 1 >= CGROUP_NAME_LEN {
            cut |= flags::CGROUP_NAME_CUT;
        }
        kn = parent;
    }
    if !kn.parent(off)?.is_null() {
        cut |= flags::CGROUP_PATH_CUT;
    }
    Ok(cut)
}

/// euid, audit loginuid/sessionid, the process's start time and whether the task
/// and its parent are kernel threads. Each is read on its own: one missing offset
/// or failed read leaves only that field unknown. Returns the KNOWN flags.
fn fill_identity(h: &mut Header, off: &TaskOffsets, task: Kptr<Task>) -> u32 {
    clear(&mut h.task.euid);
    clear(&mut h.task.loginuid);
    clear(&mut h.task.sessionid);
    clear(&mut h.task._pad);
    clear(&mut h.task.start_time);
    let mut known = 0;
    if off.cred != 0 && off.cred_euid != 0 {
        if let Ok(cred) = task.cred(off) {
            if let Ok(euid) = cred.euid(off) {
                h.task.euid = euid;
                known |= flags::EUID_KNOWN;
            }
        }
    }
    if off.loginuid != 0 && off.sessionid != 0 {
        let login = task.loginuid(off);
        let session = task.sessionid(off);
        if let (Ok(login), Ok(session)) = (login, session) {
            h.task.loginuid = login;
            h.task.sessionid = session;
            known |= flags::AUDIT_KNOWN;
        }
    }
    if off.group_leader != 0 && off.start_time != 0 {
        if let Ok(leader) = task.group_leader(off) {
            if let Ok(start) = leader.start_time(off) {
                h.task.start_time = start;
                known |= flags::START_TIME_KNOWN;
            }
        }
    }
    if off.task_flags != 0 {
        if let Ok(f) = task.flags(off) {
            known |= flags::KTHREAD_KNOWN | if f & PF_KTHREAD != 0 { flags::KTHREAD } else { 0 };
        }
        if off.real_parent != 0 {
            if let Ok(parent) = task.real_parent(off) {
                if let Ok(f) = parent.flags(off) {
                    let kthread = if f & PF_KTHREAD != 0 { flags::PARENT_KTHREAD } else { 0 };
                    known |= flags::PARENT_KTHREAD_KNOWN | kthread;
                }
            }
        }
    }
    known
}

/// Reads real_parent's tgid and comm at the offsets userspace found in BTF. Fails
/// without BTF (offsets 0) or where lockdown forbids reading kernel memory.
fn fill_parent(h: &mut Header, off: &TaskOffsets, task: Kptr<Task>) -> Result<(), i32> {
    if off.real_parent == 0 || off.tgid == 0 || off.comm == 0 {
        return Err(0);
    }
    let parent = task.real_parent(off)?;
    h.task.ppid = parent.tgid(off)?;
    parent.comm(off, &mut h.task.parent_comm)?;
    Ok(())
}

/// Copies the start of the current task's argv area (mm->arg_start..arg_end): its
/// length, capped at ARGS_LEN, and never past the area, which may end a page.
fn fill_args(h: &mut Header, off: &TaskOffsets, task: Kptr<Task>) -> Result<(), i32> {
    if off.mm == 0 || off.arg_end == 0 {
        return Err(0);
    }
    let mm = task.mm(off)?;
    if mm.is_null() {
        return Err(0); // kernel threads have no argv
    }
    let start = mm.arg_start(off)?;
    let end = mm.arg_end(off)?;
    let len = end.saturating_sub(start);
    kernel::user_bytes(start, len, &mut h.args)?;
    h.args_len = len as u32;
    Ok(())
}
