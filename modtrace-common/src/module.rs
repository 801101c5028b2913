//! Modules linked into and removed from the kernel (the probes' module.rs).

use crate::{Header, NAME_LEN};

/// module:module_load (taints set) and module:module_free (taints 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleEvent {
    pub header: Header,
    pub taints: u32,
    pub _pad: u32,
    pub name: [u8; NAME_LEN],
}
