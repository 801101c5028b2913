//! What every event starts with: the task that was running, its parent,
//! argv and cgroup path (the probes' task.rs fills it), and the offsets into
//! the kernel's structures it is read with.

/// Bytes kept of a task's `comm` (TASK_COMM_LEN).
pub const COMM_LEN: usize = 16;
/// Bytes kept of a module name or requested alias (MODULE_NAME_LEN is 56 on 64-bit).
pub const NAME_LEN: usize = 64;
/// Bytes kept of a call site's name as the kernel prints it (%pS:
/// `symbol+0xoff/0xsize [module]`).
pub const SYMBOL_LEN: usize = 96;
/// Bytes kept of the parameter string passed to init_module/finit_module.
pub const PARAMS_LEN: usize = 128;
/// Bytes kept of each cgroup v2 directory name on the way from the task's cgroup
/// up to the root (systemd unit names such as lightdm.service; docker-ID.scope
/// names are 77 bytes). Read in the kernel because a short-lived unit's cgroup
/// can be gone before userspace looks its id up, and names (unlike ancestor
/// ids) still say where it was once it is gone.
pub const CGROUP_NAME_LEN: usize = 96;
/// Levels of the cgroup path kept, leaf first. systemd's deepest usual paths
/// (a user's app in user@UID.service, a unit in an nspawn container's payload)
/// have 5; deeper ones are cut at the top and flagged CGROUP_PATH_CUT.
pub const CGROUP_DEPTH: usize = 6;
/// Bytes kept of the task's argv (NUL-separated), read in the kernel at event time
/// because short-lived loaders (modprobe) are gone before userspace could look.
pub const ARGS_LEN: usize = 128;

/// `Header::kind` values.
pub mod kind {
    /// module:module_request: the kernel asked for an alias (request_module).
    pub const REQUEST: u32 = 1;
    /// init_module/finit_module syscall: the attempt (enter) joined with its result (exit).
    pub const LOAD: u32 = 2;
    /// module:module_load: a module was linked into the kernel.
    pub const LOADED: u32 = 3;
    /// module:module_free: a module was removed.
    pub const UNLOADED: u32 = 4;
    /// A decision of `modtrace guard`'s LSM programs (guard::GuardEvent).
    pub const GUARD: u32 = 5;
}

/// `Header::flags` bits.
pub mod flags {
    /// ppid and parent_comm were read from the task's real_parent.
    pub const PARENT_KNOWN: u32 = 1;
    /// `Header::args` holds the task's argv.
    pub const ARGS_KNOWN: u32 = 2;
    /// `Header::cgroup` holds the task's cgroup path, leaf first, up to the first
    /// empty slot (the root is not stored).
    pub const CGROUP_NAME_KNOWN: u32 = 4;
    /// The cgroup path has more levels than CGROUP_DEPTH: the top is missing.
    pub const CGROUP_PATH_CUT: u32 = 8;
    /// A cgroup name filled its whole slot and may be cut.
    pub const CGROUP_NAME_CUT: u32 = 16;
    /// `Task::euid` was read from the task's credentials.
    pub const EUID_KNOWN: u32 = 32;
    /// `Task::loginuid` and `Task::sessionid` were read (kernels with CONFIG_AUDIT).
    pub const AUDIT_KNOWN: u32 = 64;
    /// `Task::start_time` was read.
    pub const START_TIME_KNOWN: u32 = 128;
    /// The task's own flags were read; KTHREAD tells whether it is a kernel thread.
    pub const KTHREAD_KNOWN: u32 = 256;
    pub const KTHREAD: u32 = 512;
    /// The parent's flags were read; PARENT_KTHREAD tells whether it is a kernel
    /// thread (PF_KTHREAD): the mark of the kernel's usermode helper.
    pub const PARENT_KTHREAD_KNOWN: u32 = 1024;
    pub const PARENT_KTHREAD: u32 = 2048;
    /// `Task::pid_ns` and `Task::mnt_ns` were read through task->nsproxy.
    pub const NS_KNOWN: u32 = 4096;
}

/// task_struct.flags bit of kernel threads (include/linux/sched.h).
pub const PF_KTHREAD: u32 = 0x0020_0000;

/// Who was running when the event fired.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Task {
    pub pid: u32,
    pub tgid: u32,
    /// Parent's tgid; valid when `Header::flags` has PARENT_KNOWN.
    pub ppid: u32,
    pub uid: u32,
    /// cgroup v2 id: the inode number of the task's cgroup directory.
    pub cgroup_id: u64,
    pub comm: [u8; COMM_LEN],
    pub parent_comm: [u8; COMM_LEN],
    /// Effective uid (cred->euid); valid with EUID_KNOWN.
    pub euid: u32,
    /// Audit login uid and session id (task->loginuid, task->sessionid); valid
    /// with AUDIT_KNOWN. u32::MAX is the kernel's "not set".
    pub loginuid: u32,
    pub sessionid: u32,
    pub _pad: u32,
    /// The process's start (group_leader->start_time, CLOCK_MONOTONIC ns): with
    /// the tgid it names one process, even once its pid is reused.
    pub start_time: u64,
    /// Inode numbers of the task's pid namespace (the one its children get,
    /// nsproxy->pid_ns_for_children) and mount namespace, as /proc/PID/ns/*
    /// name them; valid with NS_KNOWN.
    pub pid_ns: u32,
    pub mnt_ns: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: u32,
    pub flags: u32,
    /// bpf_ktime_get_ns(): CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    pub task: Task,
    /// Length of the task's whole argv area (may exceed ARGS_LEN).
    pub args_len: u32,
    pub _pad: u32,
    /// The start of the argv area: arguments separated by NULs.
    pub args: [u8; ARGS_LEN],
    /// The task's cgroup v2 path, leaf first: [0] is the task's own directory,
    /// [1] its parent, ... The root and unused slots are empty.
    pub cgroup: [[u8; CGROUP_NAME_LEN]; CGROUP_DEPTH],
}

/// Offsets into `struct task_struct`, filled by userspace from the kernel's BTF. All
/// zero means unknown: the parent fields then stay empty.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskOffsets {
    pub real_parent: u32,
    pub tgid: u32,
    pub comm: u32,
    /// task_struct.mm, then mm_struct.arg_start and arg_end.
    pub mm: u32,
    pub arg_start: u32,
    pub arg_end: u32,
    /// task_struct.cgroups -> css_set.dfl_cgrp -> cgroup.kn -> kernfs_node.name;
    /// zero when this kernel's BTF lacks one of them (the name is then unknown).
    pub cgroups: u32,
    pub dfl_cgrp: u32,
    pub cgroup_kn: u32,
    pub kn_name: u32,
    /// kernfs_node.parent (__parent on newer kernels): the walk up the cgroup path.
    pub kn_parent: u32,
    /// task_struct.cred, then cred.euid; zero when unknown.
    pub cred: u32,
    pub cred_euid: u32,
    /// task_struct.loginuid and sessionid (CONFIG_AUDIT); zero when absent.
    pub loginuid: u32,
    pub sessionid: u32,
    /// task_struct.group_leader and start_time; zero when unknown.
    pub group_leader: u32,
    pub start_time: u32,
    /// task_struct.flags; zero when unknown.
    pub task_flags: u32,
    /// task_struct.nsproxy, then nsproxy.pid_ns_for_children and mnt_ns, then
    /// where ns.inum is in pid_namespace and in mnt_namespace. One group: a
    /// zero `nsproxy` means unknown (the others may be real zero offsets).
    pub nsproxy: u32,
    pub ns_pid: u32,
    pub ns_mnt: u32,
    pub pid_ns_inum: u32,
    pub mnt_ns_inum: u32,
}
