//! modtrace: which kernel modules a machine needs, and who needs them.
//!
//! Data flows one way, one module per stage:
//! probes (load and attach the eBPF programs) -> decode (ring-buffer bytes to
//! events) -> attribute (process, executable, cgroup, unit) -> correlate (request ->
//! modprobe helper -> loads) -> output (trace lines) / profile / report.

pub mod decode;
pub mod event;
pub mod modindex;
