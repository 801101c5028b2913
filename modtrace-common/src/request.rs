//! module:module_request, the kernel asking for an alias (the probes'
//! request.rs), and the key its repeats are folded by.

use crate::{Header, NAME_LEN, SYMBOL_LEN};

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

/// Key of the request folding map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestKey {
    pub tgid: u32,
    pub _pad: u32,
    pub name_hash: u64,
}
