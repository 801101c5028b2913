//! `cargo xtask test`: the project's whole test suite, as CI runs it.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use crate::guest::{self, Options};
use crate::harness::kernels::{self, Choice, Series};
use crate::harness::{cmd, paths};
use crate::{bench, fuzz, package};

pub fn run(timeout: Duration) -> Result<()> {
    kernels::ensure(&Series::ALL, false)?;
    host_tests()?;
    fuzz::run(fuzz::Options { seconds: 40, target: None })?;
    // The Debian package: built from the release binary, then inspected.
    package::check(&package::build()?)?;
    guest::run(Options { kernel: Choice::ALL, keep: false, timeout, modtrace: None, break_first_boot: true })?;
    // The bench's machinery in one short run (about a minute); its figures
    // are printed, not judged: `cargo xtask bench` is the measurement.
    let kernel = crate::harness::kernels::Series::Bookworm;
    bench::run(bench::Options { runs: 1, smoke: true, keep: false, timeout, kernel, guard_only: false })
}

/// cargo test over the workspace, with the real 6.1 module index as a fixture:
/// the tests that need it are #[ignore]d for a plain `cargo test`, and run here.
fn host_tests() -> Result<()> {
    let modules = kernels::test_modules_dir()?;
    let (from, to) = kernels::upgrade_modules_dirs()?;
    eprintln!("test: MODTRACE_TEST_MODULES={}", modules.display());
    cmd::run(
        Command::new(paths::cargo())
            .current_dir(paths::workspace())
            .args(["test", "--workspace", "--", "--include-ignored"])
            .env("MODTRACE_TEST_MODULES", modules)
            .env("MODTRACE_TEST_UPGRADE_FROM", from)
            .env("MODTRACE_TEST_UPGRADE_TO", to),
    )
}
