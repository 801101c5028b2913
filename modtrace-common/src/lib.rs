//! Wire types shared by the eBPF programs and userspace.
//!
//! Every event is a fixed-size `#[repr(C)]` struct that starts with [`Header`]. There
//! are no `bool` or enum fields and all padding is explicit, so any byte pattern is a
//! valid value and userspace can decode with a length check and an unaligned read.
#![no_std]

pub mod guard;

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
}

/// task_struct.flags bit of kernel threads (include/linux/sched.h).
pub const PF_KTHREAD: u32 = 0x0020_0000;

/// `LoadEvent::syscall` values.
pub mod syscall {
    pub const FINIT_MODULE: u32 = 1;
    pub const INIT_MODULE: u32 = 2;
}

/// Which probe reports a load call (the LOAD_PROBE map's one value): the exit
/// tracepoint from the start, then fexit on the syscall's function once the
/// loader has handed over to it (loader/handover.rs).
pub mod load_probe {
    /// The exit tracepoint reports every call.
    pub const TRACEPOINT: u32 = 0;
    /// Both are attached: fexit reports the calls it sees and marks them, the
    /// tracepoint reports the others.
    pub const BOTH: u32 = 1;
    /// fexit reports every call; the tracepoint is detached or about to be.
    pub const FEXIT: u32 = 2;
}

/// Ring buffers, kept apart so that a flood of one kind cannot crowd out another.
pub mod ring {
    /// Requests (request_module): unprivileged code can cause these at will.
    pub const REQUESTS: u32 = 0;
    /// Successful loads, loaded and unloaded modules: what a profile is made of.
    pub const LOADS: u32 = 1;
    /// Failed load attempts: the cheapest thing for an attacker to repeat.
    pub const FAILURES: u32 = 2;
    /// Number of rings.
    pub const COUNT: u32 = 3;
}

/// Slots of the drop counter array: the rings' own (indexed by `ring::*`), then
/// the other ways an event is lost in the kernel.
pub mod drop {
    /// module_request whose alias could not be read: a lost request.
    pub const REQUEST_NAME_UNREAD: u32 = 3;
    /// module_load/module_free whose module name could not be read: a lost load.
    pub const MODULE_NAME_UNREAD: u32 = 4;
    /// A syscall exit with no entry kept for it (the map was full, or tracing
    /// began during the call): its result is not known.
    pub const EXIT_WITHOUT_ENTRY: u32 = 5;
    /// Repeats carried by a record its ring refused (the record itself counts
    /// in the ring's slot): failures or requests already seen once.
    pub const REPEATS_REFUSED: u32 = 6;
    /// Number of slots.
    pub const COUNT: u32 = 7;
}

/// FOLD_LEDGER's slots: repeats added to the fold maps' entries, and taken out
/// of them to be carried by a record. The maps are LRU: a full map drops an
/// entry with its count, unseen; once the probes are detached, what was added
/// and neither taken nor still held went with such an entry.
pub mod ledger {
    pub const ADDED: u32 = 0;
    pub const TAKEN: u32 = 1;
    /// Number of slots.
    pub const COUNT: u32 = 2;
}

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

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestEvent {
    pub header: Header,
    /// Kernel address that called request_module.
    pub call_site: u64,
    /// 1 when the caller waits for modprobe to finish.
    pub wait: u32,
    /// Identical requests by the same process that were folded into this one since
    /// the last one was sent.
    pub repeats: u32,
    pub name: [u8; NAME_LEN],
    /// `call_site` named by the kernel (bpf_snprintf's %pS), NUL-terminated;
    /// empty when it could not: no kallsyms to read and keep in userspace.
    pub call_site_name: [u8; SYMBOL_LEN],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadEvent {
    pub header: Header,
    pub syscall: u32,
    /// finit_module's file descriptor; -1 for init_module.
    pub fd: i32,
    /// finit_module's flags (MODULE_INIT_*); 0 for init_module.
    pub flags: u32,
    /// Failed attempts by the same process folded into this one since the last one sent.
    pub repeats: u32,
    /// init_module's image length; 0 for finit_module.
    pub image_len: u64,
    /// The syscall's return value: 0 or -errno.
    pub ret: i64,
    pub params: [u8; PARAMS_LEN],
}

/// module:module_load (taints set) and module:module_free (taints 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleEvent {
    pub header: Header,
    pub taints: u32,
    pub _pad: u32,
    pub name: [u8; NAME_LEN],
}

// The probes zero these fields a word at a time (modtrace-ebpf's mem::zero):
// each must start 8-aligned, in events that are.
const _: () = {
    use core::mem::{align_of, offset_of};
    assert!(align_of::<Header>() == 8 && align_of::<LoadEvent>() == 8);
    assert!(offset_of!(Header, task).is_multiple_of(8) && offset_of!(Task, parent_comm).is_multiple_of(8));
    assert!(offset_of!(Header, cgroup).is_multiple_of(8) && CGROUP_NAME_LEN.is_multiple_of(8));
    assert!(offset_of!(LoadEvent, params).is_multiple_of(8) && offset_of!(ModuleEvent, name).is_multiple_of(8));
};

/// What the syscall enter probe keeps for the exit probe, keyed by pid_tgid.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingLoad {
    pub ts_ns: u64,
    pub syscall: u32,
    pub fd: i32,
    pub flags: u32,
    pub _pad: u32,
    pub image_len: u64,
    pub params: [u8; PARAMS_LEN],
}

/// Per-process state for folding repeated failures or requests, keyed by tgid
/// (failures) or by tgid and alias hash (requests).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RepeatState {
    /// When the last event of this key was sent.
    pub last_sent_ns: u64,
    /// Until this jiffies value the window surely lasts, so a repeat before it
    /// is folded without reading the clock (which costs microseconds where the
    /// clocksource is an emulated HPET). Derived from a clock reading with
    /// MAX_JIFFY_NS, so it holds for every HZ.
    pub sure_until_jiffies: u64,
    /// Events folded since then; carried on the next one sent. 64 bits so the
    /// probes can add to it and take it with one atomic instruction each:
    /// threads of one process on several CPUs, and FoldCache flushes, share it.
    pub folded: u64,
}

/// One CPU's cached fold state of one load-call program (FAIL_CACHE): the
/// process whose failures it last folded, so repeats of that process on this
/// CPU are counted here, with a plain add and no FAIL_REPEATS lookup, while
/// its window surely lasts.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoldCache {
    /// The process (tgid) whose FAIL_REPEATS entry this caches; 0: none.
    pub tgid: u32,
    pub _pad: u32,
    /// Copied from that entry when cached: its window surely lasts until then.
    pub sure_until_jiffies: u64,
    /// Repeats counted here and not yet added to the entry's `folded`.
    pub folded: u64,
}

/// Key of the request folding map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestKey {
    pub tgid: u32,
    pub _pad: u32,
    pub name_hash: u64,
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
}

/// Tracepoint record layouts the probes read, by (group, event, field) offset.
/// Userspace checks each against the kernel's format file before loading, so a
/// kernel with another layout is refused instead of misread.
pub mod tp {
    pub const REQUEST_IP: usize = 8;
    pub const REQUEST_WAIT: usize = 16;
    pub const REQUEST_NAME: usize = 20;
    pub const LOAD_TAINTS: usize = 8;
    pub const LOAD_NAME: usize = 12;
    pub const FREE_NAME: usize = 8;
    /// sys_enter_*: arguments start here, 8 bytes each.
    pub const SYSCALL_ARG0: usize = 16;
    pub const SYSCALL_ARG1: usize = 24;
    pub const SYSCALL_ARG2: usize = 32;
    /// sys_exit_*: the syscall's number, then its return value.
    pub const SYSCALL_NR: usize = 8;
    pub const SYSCALL_RET: usize = 16;

    /// (group, event, field, offset) for every field read.
    pub const FIELDS: &[(&str, &str, &str, usize)] = &[
        ("module", "module_request", "ip", REQUEST_IP),
        ("module", "module_request", "wait", REQUEST_WAIT),
        ("module", "module_request", "name", REQUEST_NAME),
        ("module", "module_load", "taints", LOAD_TAINTS),
        ("module", "module_load", "name", LOAD_NAME),
        ("module", "module_free", "name", FREE_NAME),
        ("syscalls", "sys_enter_finit_module", "fd", SYSCALL_ARG0),
        ("syscalls", "sys_enter_finit_module", "uargs", SYSCALL_ARG1),
        ("syscalls", "sys_enter_finit_module", "flags", SYSCALL_ARG2),
        ("syscalls", "sys_enter_init_module", "umod", SYSCALL_ARG0),
        ("syscalls", "sys_enter_init_module", "len", SYSCALL_ARG1),
        ("syscalls", "sys_enter_init_module", "uargs", SYSCALL_ARG2),
        ("syscalls", "sys_exit_finit_module", "__syscall_nr", SYSCALL_NR),
        ("syscalls", "sys_exit_finit_module", "ret", SYSCALL_RET),
        ("syscalls", "sys_exit_init_module", "__syscall_nr", SYSCALL_NR),
        ("syscalls", "sys_exit_init_module", "ret", SYSCALL_RET),
    ];
}

/// Where x86-64 keeps a syscall's first three arguments in the registers saved
/// at entry (struct pt_regs, a uapi layout: di, si, dx). The exit probe reads
/// them there, so a call needs no entry probe; userspace checks the offsets
/// against the kernel's BTF and otherwise keeps the entry probes.
pub mod regs {
    pub const ARG0: usize = 112;
    pub const ARG1: usize = 104;
    pub const ARG2: usize = 96;

    /// (pt_regs member, offset) for every register read.
    pub const FIELDS: &[(&str, usize)] = &[("di", ARG0), ("si", ARG1), ("dx", ARG2)];
}

/// Events of one kind from one process within this window are folded into a count.
pub const FOLD_WINDOW_NS: u64 = 1_000_000_000;

/// The longest a jiffy lasts: Linux's HZ is at least 100 (kernel/Kconfig.hz).
pub const MAX_JIFFY_NS: u64 = 10_000_000;

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: plain-old-data: repr(C), integer fields only, explicit padding.
    unsafe impl aya::Pod for PendingLoad {}
    unsafe impl aya::Pod for RepeatState {}
    unsafe impl aya::Pod for FoldCache {}
    unsafe impl aya::Pod for RequestKey {}
    unsafe impl aya::Pod for TaskOffsets {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn sizes_have_no_hidden_padding() {
        const HEADER: usize = 96 + 8 + ARGS_LEN + CGROUP_NAME_LEN * CGROUP_DEPTH;
        assert_eq!(size_of::<Task>(), 80);
        assert_eq!(size_of::<Header>(), HEADER);
        assert_eq!(size_of::<RequestEvent>(), HEADER + 16 + NAME_LEN + SYMBOL_LEN);
        assert_eq!(size_of::<LoadEvent>(), HEADER + 32 + PARAMS_LEN);
        assert_eq!(size_of::<ModuleEvent>(), HEADER + 8 + NAME_LEN);
        assert_eq!(size_of::<PendingLoad>(), 32 + PARAMS_LEN);
        assert_eq!(size_of::<RepeatState>(), 24);
        assert_eq!(size_of::<FoldCache>(), 24);
        assert_eq!(size_of::<RequestKey>(), 16);
        assert_eq!(size_of::<TaskOffsets>(), 72);
    }
}
