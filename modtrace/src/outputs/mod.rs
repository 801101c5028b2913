//! What modtrace makes of a profile's needs (and of snapshots): reports, the
//! review, diffs, generated lists and units, the checks before locking and the
//! lock. The guard, which enforces the profile in the kernel, is a stage of its
//! own (`crate::guard`).

pub mod check;
pub mod diff;
pub mod generate;
pub mod lock;
pub mod report;
pub mod review;
pub mod upgrade;

#[cfg(test)]
mod escape_tests;
