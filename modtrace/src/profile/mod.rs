//! The profile: every module a machine loaded while learning, why, and who asked.
//!
//! - `model`: the file's types (schema "modtrace-profile/2", docs/profile.md).
//! - `migrate`: reading /1 profiles, and hand-edited ones (sorting, duplicates).
//! - `observe`: building from records, pure.
//! - `onbehalf`: loads systemd or a root deputy made for another, given to
//!   whoever that was (automounts, modprobe@ units, udisks2's clients).
//! - `bound`: what untrusted processes may add (folded unresolved requests).
//! - `merge`: accumulating sessions and profiles (decisions: the later wins).
//! - `decide`: an admin's allow/deny, written under the lock.
//! - `fleet`: many hosts' profiles merged into one (`modtrace merge`).
//! - `preload`: why a module loaded before learning is there (modules-load.d,
//!   cmdline, PID 1, dependencies of trusted modules), with `initramfs` (its
//!   configuration) and `coldplug` (devices present now); else cause unknown.
//! - `packages`: the Debian package of each unit and executable, from dpkg's database.
//! - `store`: load with clear errors, atomic write, writability check, learner lock.

pub mod bound;
pub mod coldplug;
pub mod decide;
pub mod fleet;
pub mod initramfs;
pub mod merge;
pub mod migrate;
pub mod model;
pub mod observe;
pub mod packages;
pub mod onbehalf;
pub mod preload;
pub mod store;

#[cfg(test)]
mod tests;

pub use model::*;
pub use observe::BEFORE_LEARNING;
pub use preload::{configured_reasons, PreloadSources};
pub use store::{atomic_write, check_writable, load, load_existing, load_if_exists, lock, save, LearnLock, StoreError};

/// Where `modtrace learn` writes and `modtrace report` reads by default.
pub const DEFAULT_PATH: &str = "/var/lib/modtrace/profile.json";
