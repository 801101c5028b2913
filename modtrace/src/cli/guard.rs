//! `modtrace guard`: start, status, stop, refresh, and the journal logger
//! (the guard itself is `crate::guard`).

use std::path::PathBuf;
use std::process::ExitCode;
use super::docs::{Page, PROFILE, USAGE};

use anyhow::bail;

use crate::guard::control::{self, Refreshed, Start};
use crate::guard::{log, status, Mode};
use crate::profile;

/// `--help`'s long text, and the man page's description.
pub const ABOUT: &str = "\
Enforces the profile in the kernel with BPF LSM programs, while the profile's \
modules keep loading on demand: a request_module alias that leads to no module of \
the profile is refused before any modprobe starts; finit_module must read an \
allowed module's own file in the running kernel's module tree (identified by \
device and inode, so a copy elsewhere is refused whatever its name); \
init_module (an image from memory) is refused unless --allow-init-module. \
complain mode allows everything and reports what enforce would refuse.

The programs are pinned under /sys/fs/bpf/modtrace/guard, so they keep deciding \
after guard start returns; starting again replaces the policy atomically. Every \
decision is counted (guard status) and sent to the journal by guard log \
(modtrace-guard.service runs both), and shown by modtrace trace while it runs; \
both find a guard started after them, or stopped and started anew. \
guard stop detaches it. Root can always stop it: it is a policy against everyone \
else and against mistakes; kernel.modules_disabled=1 is the final freeze.";

/// The man page's exit status, files, examples and references.
pub const PAGE: Page = Page {
    command: "guard",
    exit_status: &[
        (
            "0",
            "start: the policy is in force (pinned); status: a guard is in force (enforcing or complaining: each of \
             its programs has a live link in the kernel, and bpf is among the active LSMs); stop: none is running \
             any more; refresh: the guard is in line with its profile and the module files (or none runs, or the \
             kernel named is not the running one).",
        ),
        (
            "1",
            "The guard could not start (not root, no kernel BTF, bpf missing from the active LSMs, \
             lockdown=confidentiality, a profile that cannot be read) or another error; the reason and the fix \
             are printed. A policy already in force stays as it was. refresh: the running guard could not be \
             brought in line (its state file is gone, its profile cannot be read); the command to run is printed. \
             status: bpf is not among the active LSMs, said as start says it: no BPF LSM program runs, \
             attached or not.",
        ),
        ("3", "status: no guard is running."),
        (
            "4",
            "status: the guard was detached behind modtrace's back (its link pins removed, its pin directory \
             removed, not by guard stop): the programs it names have no live link, so they decide nothing. Start \
             it again with the command printed.",
        ),
        USAGE,
    ],
    files: &[
        PROFILE,
        ("/sys/fs/bpf/modtrace/guard/", "The pinned programs (link-*) and maps: the guard in force."),
        ("/run/modtrace/guard.json", "What guard start enforced, and since when, for guard status."),
        ("/sys/kernel/security/lsm", "The active LSMs; bpf must be among them."),
        ("/lib/systemd/system/modtrace-guard.service", "Starts the guard at boot and runs guard log; installed disabled."),
        (
            "/etc/kernel/postinst.d/modtrace",
            "Runs modtrace guard refresh --kernel KVER after a kernel package is installed: an upgrade of the \
             running kernel replaces module files, which the guard knows by inode.",
        ),
    ],
    examples: &[
        ("sudo modtrace guard start", "Complain mode: allow everything, report what enforce would refuse."),
        ("sudo modtrace guard start --mode enforce", "Refuse every module outside the profile; starting again replaces the policy."),
        (
            "sudo modtrace guard start --mode enforce --sealed",
            "Enforce, sealed until the next boot: not even root can stop it or change its policy before then.",
        ),
        ("journalctl MODTRACE_DECISION=denied", "Who tried to load what, and why it was refused."),
        ("journalctl -t modtrace-guard -o json", "Every decision, with its MODTRACE_* fields."),
        ("sudo modtrace guard refresh", "After the profile changed or module files were replaced: same profile and mode, new policy."),
        ("sudo modtrace guard stop", "Back out: detach the programs."),
    ],
    see_also: &["modtrace(8)", "modtrace-learn(8)", "modtrace-lock(8)", "journalctl(1)"],
};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// Enforce (or, first, complain about) the profile in the kernel; pinned, so it stays after the command returns.
    Start(StartArgs),
    /// Enforcing or complaining (programs attached, BPF LSM active), mode, since when, the profile, what is
    /// allowed, decisions so far; exit 3 when not running, 4 when detached behind modtrace's back.
    Status(StatusArgs),
    /// Detach the guard's programs and remove their pins.
    Stop,
    /// Write the guard's decisions to the journal (stdout without one) until SIGINT or SIGTERM, following
    /// the guard across stop and start (started before the guard, it waits for it).
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
    /// refused (EPERM), counted in `guard status` and logged with who tried. MODTRACE_GUARD_SEAL=yes
    /// (from /etc/default/modtrace in modtrace-guard.service) does the same.
    #[arg(long, env = "MODTRACE_GUARD_SEAL", value_parser = seal_value)]
    pub sealed: bool,
}

/// MODTRACE_GUARD_SEAL's value: empty (as a bare `MODTRACE_GUARD_SEAL=` line leaves it) is no.
fn seal_value(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "" | "no" | "n" | "false" | "0" | "off" => Ok(false),
        "yes" | "y" | "true" | "1" | "on" => Ok(true),
        _ => Err("MODTRACE_GUARD_SEAL takes yes or no (see /etc/default/modtrace)".into()),
    }
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

/// Exit 0 in force, 1 the BPF LSM is not active, 3 no guard, 4 detached.
fn status(json: bool) -> anyhow::Result<ExitCode> {
    let report = status::read()?;
    match json {
        true => println!("{}", status::json(&report)),
        false => status::text(&report).print(),
    }
    Ok(ExitCode::from(report.exit_code()))
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
