//! Project automation: `cargo xtask setup | kernels | vm-test | deb | demo | bench | fuzz | test`.

mod bench;
mod check;
mod demo;
mod fuzz;
mod guest;
mod harness;
mod package;
mod setup;
mod system;
mod test;
mod vendored;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

use harness::kernels::Choice;

#[derive(Parser)]
#[command(name = "xtask", about = "modtrace's build, download and test tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the Debian packages and the bpf-linker the project needs (root).
    Setup,
    /// Download and unpack the Debian kernels the tests boot, into the cache.
    Kernels {
        #[arg(long, value_enum, default_value = "all")]
        kernel: Choice,
        /// Look the newest releases up again instead of trusting the cache.
        #[arg(long)]
        refresh: bool,
    },
    /// Boot each kernel under QEMU with modtrace tracing a scripted scenario.
    VmTest {
        #[arg(long, value_enum, default_value = "all")]
        kernel: Choice,
        /// Keep each guest's staged root and initramfs image under target/vm-test.
        #[arg(long)]
        keep: bool,
        /// Seconds a guest may run before QEMU is killed.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Put this binary in the guest instead of building target/release/modtrace.
        #[arg(long)]
        modtrace: Option<PathBuf>,
        /// Boot the first kernel once with a broken initramfs first: its early
        /// death must be retried and reported (what `cargo xtask test` does).
        #[arg(long)]
        break_first_boot: bool,
        /// Instead: boot a whole Debian system three times, learning, guarded, then
        /// locked, with modtrace installed from its package (tests/system/README.md).
        /// --timeout is then per boot.
        #[arg(long)]
        system: bool,
        /// With --system: the Debian release(s) to boot (bookworm with 6.1, trixie
        /// with 6.12); all by default.
        #[arg(long, value_enum, requires = "system")]
        suite: Vec<system::Suite>,
        /// With --system: the lock point modtrace generate is given.
        #[arg(long, value_enum, default_value = "after-udev", requires = "system")]
        lock_point: system::LockPoint,
    },
    /// Build the Debian package (release binary, man pages, completions, cargo-deb);
    /// prints the path of target/debian/modtrace_*.deb.
    Deb {
        /// Then inspect it: files, modes, maintainer scripts, man pages (as `cargo xtask test` does).
        #[arg(long)]
        check: bool,
    },
    /// Show the whole workflow (learn, report, generate, check, lock, a refused
    /// load) inside a Debian trixie guest under QEMU, in about two minutes: for
    /// machines whose own kernel cannot trace.
    Demo,
    /// Time modtrace beside Debian's bpftrace and untraced, in one guest
    /// (2 vCPUs, TCG): start-up, the failure path, requests, a flood, memory,
    /// idle CPU, and allowed loads under the guard and sealed; prints medians
    /// and ratios, writes target/bench/bench.{md,json}.
    Bench {
        /// Runs of each figure and tool.
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// One run with small counts (proves the machinery; the figures mean little).
        #[arg(long)]
        smoke: bool,
        /// Keep the staged root and the initramfs under target/bench.
        #[arg(long)]
        keep: bool,
        /// Seconds the guest may run before QEMU is killed.
        #[arg(long, default_value_t = 900)]
        timeout: u64,
        /// The kernel the guest boots: 6.1, 6.12 or backports (7.x).
        #[arg(long, value_enum, default_value = "6.1")]
        kernel: harness::kernels::Series,
        /// Only the guard's figures (allowed loads untraced, guarded, sealed; opens).
        #[arg(long)]
        guard_only: bool,
    },
    /// Fuzz the decoder and the parsers (fuzz/README.md) for a bounded time:
    /// nightly + libFuzzer + ASan; replays seeds and regressions on stable
    /// when there is no nightly toolchain.
    Fuzz {
        /// Total seconds, shared by the targets.
        #[arg(long, default_value_t = 40)]
        seconds: u64,
        /// Only this target: decode, profile, proc_modules, modprobe_d or module_name.
        #[arg(long)]
        target: Option<String>,
    },
    /// The full test suite: kernels, cargo test --workspace, 40 s of fuzzing, the
    /// package, vm-test on all kernels, bench --smoke, vm-test --system on
    /// bookworm and trixie.
    Test {
        /// Seconds each guest may run before QEMU is killed.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> Result<()> {
    match task {
        Task::Setup => setup::run(),
        Task::Kernels { kernel, refresh } => harness::kernels::run(kernel, refresh),
        Task::VmTest { system: true, keep, timeout, lock_point, suite, .. } => system::run(system::Options {
            suites: if suite.is_empty() { system::Suite::ALL.to_vec() } else { suite },
            lock_point,
            keep,
            timeout: Duration::from_secs(timeout),
        }),
        Task::VmTest { kernel, keep, timeout, modtrace, break_first_boot, .. } => guest::run(guest::Options {
            kernel,
            keep,
            timeout: Duration::from_secs(timeout),
            modtrace,
            break_first_boot,
        }),
        Task::Deb { check } => package::run(check),
        Task::Demo => demo::run(),
        Task::Fuzz { seconds, target } => fuzz::run(fuzz::Options { seconds, target }),
        Task::Bench { runs, smoke, keep, timeout, kernel, guard_only } => {
            let timeout = Duration::from_secs(timeout);
            bench::run(bench::Options { runs, smoke, keep, timeout, kernel, guard_only })
        }
        Task::Test { timeout } => {
            // The system test runs even when an earlier part failed: CI then
            // reports every failure of the run at once.
            let start = std::time::Instant::now();
            let suite = test::run(Duration::from_secs(timeout));
            let suite_time = start.elapsed();
            let system = system::run(system::Options {
                suites: system::Suite::ALL.to_vec(),
                lock_point: system::LockPoint::AfterUdev,
                keep: false,
                timeout: Duration::from_secs(timeout),
            });
            println!(
                "xtask test: wall time {:.0} s (host tests, package and vm-test {:.0} s; system tests {:.0} s)",
                start.elapsed().as_secs_f64(),
                suite_time.as_secs_f64(),
                (start.elapsed() - suite_time).as_secs_f64()
            );
            match (suite, system) {
                (Ok(()), system) => system,
                (Err(suite), Ok(())) => Err(suite),
                (Err(suite), Err(system)) => Err(suite.context(format!("and vm-test --system: {system:#}"))),
            }
        }
    }
}
