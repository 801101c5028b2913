//! `modtrace guard`: start, status, stop, refresh, and the journal logger
//! (the guard itself is `crate::guard`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;

use crate::guard::control::{self, Refreshed, Start};
use crate::guard::{log, status, Mode};
use crate::profile;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// Enforce (or, first, complain about) the profile in the kernel; pinned, so it stays after the command returns.
    Start(StartArgs),
    /// Mode, since when, the profile, what is allowed, decisions so far; exit 3 when not running.
    Status(StatusArgs),
    /// Detach the guard's programs and remove their pins.
    Stop,
    /// Write the guard's decisions to the journal (stdout without one) until the guard stops.
    Log,
    /// If a guard runs, recompute it from the profile and mode it was started with and replace its
    /// policy when that changed (a new profile, module files replaced on disk); generate and the
    /// kernel postinst hook run it.
    Refresh(RefreshArgs),
}

#[derive(clap::Args, Debug)]
pub struct RefreshArgs {
    /// Only when this is the running kernel (the postinst hook passes the kernel it installed).
    #[arg(long, value_name = "KVER")]
    pub kernel: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct StartArgs {
    /// The profile whose modules are allowed.
    #[arg(long, value_name = "PATH", default_value = profile::DEFAULT_PATH)]
    pub profile: PathBuf,
    /// complain: allow everything, report what enforce would refuse. enforce: refuse it (EPERM).
    #[arg(long, value_enum, default_value_t = Mode::Complain)]
    pub mode: Mode,
    /// Allow init_module(2) (a module image from memory, no file to check) in enforce mode.
    /// Needed where kmod decompresses .ko.xz itself (Debian 12's kmod on 6.12 and newer kernels).
    #[arg(long)]
    pub allow_init_module: bool,
    /// Seal the guard until the next boot (enforce only): then no process, root included, can stop it,
    /// replace its policy, unpin or unmount it, or open its maps, programs and links; each attempt is
    /// refused (EPERM), counted in `guard status` and logged with who tried.
    #[arg(long)]
    pub sealed: bool,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // The pins and maps are root's: without root a running guard looks absent.
    let proc_status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    crate::loader::preflight::check_capabilities(&proc_status)?;
    match args.command {
        Sub::Start(a) => {
            let start =
                Start { profile: a.profile, mode: a.mode, allow_init_module: a.allow_init_module, sealed: a.sealed };
            control::start(&start)?.said().print();
        }
        Sub::Status(a) => return status(a.json),
        Sub::Stop => stop()?,
        Sub::Log => log::follow()?,
        Sub::Refresh(a) => refresh(a.kernel.as_deref())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Exit 3 when no guard runs.
fn status(json: bool) -> anyhow::Result<ExitCode> {
    let s = status::read()?;
    match json {
        true => println!("{}", status::json(s.as_ref())),
        false => status::text(s.as_ref()).print(),
    }
    Ok(if s.is_some() { ExitCode::SUCCESS } else { ExitCode::from(3) })
}

fn stop() -> anyhow::Result<()> {
    match control::stop()? {
        true => println!(
            "modtrace: guard stopped: its programs are detached and {} is removed",
            crate::guard::kernel::PIN_DIR
        ),
        false => println!("modtrace: the guard was not running"),
    }
    Ok(())
}

/// `guard refresh`: exit 0 when the guard is in line (or none runs), 1 with
/// the command to run when it cannot be brought in line by itself.
fn refresh(kernel: Option<&str>) -> anyhow::Result<()> {
    match control::refresh(kernel, None) {
        Refreshed::Cannot(c) => bail!("{c}"),
        Refreshed::Replaced(installed) => installed.said().print(),
        done => println!("modtrace: {done}"),
    }
    Ok(())
}
