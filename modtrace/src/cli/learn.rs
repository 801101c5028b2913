//! `modtrace learn`: trace for a while and accumulate what was loaded, and why,
//! into the profile (the session itself is `crate::learn`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use super::docs::{Page, PROFILE, USAGE};

use super::trace::parse_duration;
use crate::learn::{self, Live};
use crate::profile;

/// `--help`'s long text, and the man page's description.
pub const ABOUT: &str = "\
Traces like modtrace trace while the machine does its work, and merges every module \
that was loaded, with its causes, into the profile (by default \
/var/lib/modtrace/profile.json): counts add up, and each run is recorded as a \
session. Modules already loaded when learning starts are recorded as preloaded, with \
the source that explains them (a modules-load.d file or modules_load= argument, the \
initramfs's configuration, PID 1's journal, a trusted module's dependency, a device \
present now), or \"before learning\": cause unknown, which needs review. To learn \
their causes, learn from boot (modtrace-learn.service).

The profile is replaced atomically, saved as a checkpoint at most once a minute \
while something changes, and saved at the end, also after Ctrl-C or SIGTERM. A \
profile that cannot be read is refused, never overwritten. While learning, modtrace \
holds PATH.lock; a second learn on the same profile refuses to start.

modtrace-learn.service runs modtrace learn from early boot on, before \
systemd-modules-load and udev's coldplug, so that the boot's own loads are \
attributed too. It is installed disabled: enable it for a few boots (the hardware \
you use plugged in, your services started), then disable it.";

/// The man page's exit status, files, examples and references.
pub const PAGE: Page = Page {
    command: "learn",
    exit_status: &[
        ("0", "Learning ended and the profile was saved (also after Ctrl-C or SIGTERM)."),
        (
            "1",
            "Learning could not start or the profile could not be saved: not root, a profile that cannot be read \
             (it is left as it is), another learn holding the lock. What was learned before a tracing error is \
             saved first.",
        ),
        USAGE,
    ],
    files: &[
        PROFILE,
        ("/var/lib/modtrace/profile.json.bak", "The previous profile, kept by --fresh."),
        ("/var/lib/modtrace/profile.json.lock", "Held (flock) while learning, with the learner's pid."),
        (
            "/lib/systemd/system/modtrace-learn.service",
            "Runs modtrace learn --quiet from early boot on while enabled; installed disabled.",
        ),
        ("/etc/default/modtrace", "MODTRACE_LEARN_DURATION=10m: how long modtrace-learn.service learns (30s, 2h, 1d)."),
    ],
    examples: &[
        ("sudo modtrace learn --duration 10m", "Learn for ten minutes, adding to the profile."),
        ("sudo modtrace learn --fresh --duration 1h", "Start a new profile; the old one is kept as profile.json.bak."),
        (
            "sudo systemctl enable modtrace-learn.service",
            "Learn at every boot from now on; systemctl disable modtrace-learn.service stops that.",
        ),
    ],
    see_also: &["modtrace(8)", "modtrace-report(8)", "modtrace-trace(8)", "modtrace-generate(8)"],
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How long to learn: 30s, 10m, 2h, 1d. Without it, until Ctrl-C or SIGTERM;
    /// either one ends learning early and the profile is still saved.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// The profile to add to (created with its directory when missing).
    #[arg(long, value_name = "PATH", default_value = profile::DEFAULT_PATH)]
    pub out: PathBuf,
    /// Start a new profile instead of adding to the existing one, which is kept
    /// as PATH.bak.
    #[arg(long)]
    pub fresh: bool,
    /// No progress display (the final line saying where the profile is still prints).
    #[arg(long, short)]
    pub quiet: bool,
    /// Attach the probes, leave them pinned under /sys/fs/bpf/modtrace/early and
    /// exit: the initramfs runs this (packaging/initramfs-tools) so that loads
    /// are traced from its first one on; the next `modtrace learn` (the main
    /// system's modtrace-learn.service) takes over what they saw.
    #[arg(long, conflicts_with_all = ["duration", "fresh", "out"])]
    pub early: bool,
    /// Save a checkpoint at most this often while something changes (tests use 1s).
    #[arg(long, hide = true, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub checkpoint_every: Duration,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.early {
        eprintln!("{}", learn::pin_early()?);
        return Ok(ExitCode::SUCCESS);
    }
    let live = Live {
        out: args.out,
        fresh: args.fresh,
        duration: args.duration,
        quiet: args.quiet,
        checkpoint_every: args.checkpoint_every,
    };
    for line in learn::closing_lines(&learn::learn_here(live)?) {
        eprintln!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
