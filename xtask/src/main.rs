//! Project automation: `cargo xtask setup | kernels | vm-test | test`.

mod apt;
mod artifacts;
mod assertions;
mod cmd;
mod cpio;
mod guest_output;
mod initramfs;
mod kernels;
mod paths;
mod qemu;
mod scenario;
mod setup;
mod test;
mod vm_test;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

use kernels::Choice;

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
    },
    /// The full test suite: kernels, cargo test --workspace, vm-test on all kernels.
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
        Task::Kernels { kernel, refresh } => kernels::run(kernel, refresh),
        Task::VmTest { kernel, keep, timeout, modtrace } => {
            vm_test::run(vm_test::Options { kernel, keep, timeout: Duration::from_secs(timeout), modtrace })
        }
        Task::Test { timeout } => test::run(Duration::from_secs(timeout)),
    }
}
