//! What modtrace makes of a profile's needs (and of snapshots): reports, the
//! review, diffs, generated lists and units, the checks before locking, the
//! lock, and the guard that enforces the profile in the kernel.

pub mod check;
pub mod diff;
pub mod generate;
pub mod guard;
pub mod lock;
pub mod report;
pub mod review;

#[cfg(test)]
mod escape_tests;
