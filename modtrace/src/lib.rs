//! modtrace: which kernel modules a machine needs, and who needs them.
//!
//! Data flows one way, one folder per stage; no stage imports a later one:
//! loader (load and attach the eBPF programs of modtrace-ebpf's probes) ->
//! trace (ring-buffer bytes to events, attributed and joined: request ->
//! modprobe helper -> loads; the guard's decisions decoded beside them) ->
//! profile (what was learned, and the admin's decisions) -> needs (what a
//! kernel must load, who needs it, and whether that may be trusted) -> guard
//! (the profile enforced in the kernel, a second loader) -> outputs (report,
//! lists, units, check, lock).
//!
//! `learn` runs a learning session: the trace stage into the profile, saved
//! as it goes. `cli` parses each command's arguments and makes one call into
//! a stage; the stages return data and what to say (`said`), and never print,
//! except where printing is the job (the trace stream, learning's progress,
//! the guard's journal logger). `system` holds the running system's facts,
//! `validate` and `escape` what may be written into files and terminals,
//! `journal` how entries reach journald.

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
pub mod journal;
pub mod said;
pub mod cli;
#[cfg(test)]
pub(crate) mod testutil;
