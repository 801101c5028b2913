//! init_module/finit_module calls and their results (the probes' load.rs).

use crate::{Header, PARAMS_LEN};

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
