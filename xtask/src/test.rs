//! `cargo xtask test`: the project's whole test suite, as CI runs it.

use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::guest::{self, Options};
use crate::harness::kernels::{self, Choice, Series};
use crate::harness::{artifacts, cmd, paths};
use crate::system::{self, LockPoint, Suite};
use crate::{bench, fuzz, package};

/// The system suites a second lane boots while the first runs everything
/// else: the machine has two cores and each guest runs on one host thread,
/// so two guests at once take about the time of one (the run was 42 min
/// with every suite after the rest, CI's limit is 60).
const LANE_SUITES: [Suite; 2] = [Suite::Trixie, Suite::Desktop];

/// Everything, as CI runs it; the system tests run even when an earlier part
/// failed, so CI reports every failure of the run at once.
pub fn run_all(timeout: Duration) -> Result<()> {
    let start = Instant::now();
    kernels::ensure(&Series::ALL, false)?;
    let lane = Lane::start(timeout)?;
    let suite = run(timeout);
    let suite_time = start.elapsed();
    let options = system::Options { suites: vec![Suite::Bookworm], lock_point: LockPoint::AfterUdev, keep: false, timeout };
    let bookworm = system::run(options);
    let lane = lane.finish();
    println!(
        "xtask test: wall time {:.0} s (host tests, package, vm-test and bench {:.0} s, then bookworm's system \
         test; trixie's and desktop's beside them)",
        start.elapsed().as_secs_f64(),
        suite_time.as_secs_f64(),
    );
    let failures: Vec<String> = [suite, bookworm, lane].into_iter().filter_map(|r| r.err()).map(|e| format!("{e:#}")).collect();
    if !failures.is_empty() {
        bail!("{}", failures.join("; and "));
    }
    Ok(())
}

/// `vm-test --system` of LANE_SUITES in a child process, its output in a file
/// (printed when it ends, so two runs' console lines do not interleave).
struct Lane {
    child: Child,
    log: PathBuf,
}

impl Lane {
    fn start(timeout: Duration) -> Result<Lane> {
        // Built once here: the first lane's package check rebuilds
        // target/debian while the child installs from its own copy.
        let deb = package::build()?;
        artifacts::build(None)?;
        let dir = paths::vm_work().join("lane");
        fs::create_dir_all(&dir)?;
        let copy = dir.join("modtrace.deb");
        fs::copy(&deb, &copy).with_context(|| format!("copying {} to {}", deb.display(), copy.display()))?;
        let log = dir.join("system.log");
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["vm-test", "--system", "--timeout", &timeout.as_secs().to_string()]);
        for suite in LANE_SUITES {
            cmd.args(["--suite", suite.name()]);
        }
        cmd.env(system::PREBUILT_DEB, &copy).stdout(out.try_clone()?).stderr(out);
        let child = cmd.spawn().context("starting the system tests' second lane")?;
        let names: Vec<&str> = LANE_SUITES.iter().map(|s| s.name()).collect();
        eprintln!("test: vm-test --system {} runs beside the rest; its log: {}", names.join(", "), log.display());
        Ok(Lane { child, log })
    }

    /// Waits for the child, prints its log, and fails if it failed.
    fn finish(mut self) -> Result<()> {
        let status = self.child.wait()?;
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        println!("\n===== the second lane (vm-test --system), {} =====\n{text}", self.log.display());
        if !status.success() {
            bail!("vm-test --system of the second lane failed ({status}; see above or {})", self.log.display());
        }
        Ok(())
    }
}

/// Host tests, fuzzing, the package, vm-test and bench's smoke run.
fn run(timeout: Duration) -> Result<()> {
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
