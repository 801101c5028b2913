//! modtrace: which kernel modules a machine needs, and who needs them.
//!
//! Data flows one way, one folder per stage:
//! loader (load and attach the eBPF programs of modtrace-ebpf's probes) ->
//! trace (ring-buffer bytes to events, attributed and joined: request ->
//! modprobe helper -> loads) -> profile (what was learned, and the admin's
//! decisions) -> needs (what a kernel must load, who needs it, and whether
//! that may be trusted) -> guard (the profile enforced in the kernel, a
//! second loader) -> outputs (report, lists, units, check, lock).

pub mod system;
pub mod loader;
pub mod trace;
pub mod profile;
pub mod needs;
pub mod learn;
pub mod guard;
pub mod outputs;
pub mod validate;
pub mod escape;
pub mod said;
pub mod cli;
#[cfg(test)]
pub(crate) mod testutil;
