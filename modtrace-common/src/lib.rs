//! Wire types shared by the eBPF programs and userspace.
//!
//! Every event is a fixed-size `#[repr(C)]` struct that starts with [`Header`]. There
//! are no `bool` or enum fields and all padding is explicit, so any byte pattern is a
//! valid value and userspace can decode with a length check and an unaligned read.
#![no_std]

pub mod elf;
pub mod fold;
pub mod guard;
pub mod header;
pub mod load;
pub mod module;
pub mod request;
pub mod seal;

pub use fold::*;
pub use header::*;
pub use load::*;
pub use module::*;
pub use request::*;

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

// The probes zero these fields a word at a time (modtrace-ebpf's mem::zero):
// each must start 8-aligned, in events that are.
const _: () = {
    use core::mem::{align_of, offset_of};
    assert!(align_of::<Header>() == 8 && align_of::<LoadEvent>() == 8);
    assert!(offset_of!(Header, task).is_multiple_of(8) && offset_of!(Task, parent_comm).is_multiple_of(8));
    assert!(offset_of!(Header, cgroup).is_multiple_of(8) && CGROUP_NAME_LEN.is_multiple_of(8));
    assert!(offset_of!(LoadEvent, params).is_multiple_of(8) && offset_of!(ModuleEvent, name).is_multiple_of(8));
};

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
        const HEADER: usize = 104 + 8 + ARGS_LEN + CGROUP_NAME_LEN * CGROUP_DEPTH;
        assert_eq!(size_of::<Task>(), 88);
        assert_eq!(size_of::<Header>(), HEADER);
        assert_eq!(size_of::<RequestEvent>(), HEADER + 16 + NAME_LEN + SYMBOL_LEN);
        assert_eq!(size_of::<LoadEvent>(), HEADER + 32 + PARAMS_LEN);
        assert_eq!(size_of::<ModuleEvent>(), HEADER + 8 + NAME_LEN);
        assert_eq!(size_of::<PendingLoad>(), 32 + PARAMS_LEN);
        assert_eq!(size_of::<RepeatState>(), 24);
        assert_eq!(size_of::<FoldCache>(), 24);
        assert_eq!(size_of::<RequestKey>(), 16);
        assert_eq!(size_of::<TaskOffsets>(), 92);
    }
}
