//! modtrace: which kernel modules a machine needs, and who needs them.
//!
//! Data flows one way, one module per stage:
//! probes (load and attach the eBPF programs) -> decode (ring-buffer bytes to
//! events) -> attribute (process, executable, cgroup, unit) -> correlate (request ->
//! modprobe helper -> loads) -> output (trace lines) / profile / report.

pub mod attribute;
pub mod check;
pub mod correlate;
pub mod decode;
pub mod diff;
pub mod drops;
pub mod event;
pub mod generate;
pub mod guard;
pub mod lock;
pub mod modindex;
pub mod needs;
pub mod output;
pub mod pipeline;
pub mod probes;
pub mod profile;
pub mod report;
pub mod review;
pub mod scope;
pub mod sitepolicy;
pub mod snapshot;
pub mod uevent;
pub mod cli;
