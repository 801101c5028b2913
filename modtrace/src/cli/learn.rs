//! `modtrace learn`: trace for a while and accumulate what was loaded, and why,
//! into the profile (the session itself is `crate::learn`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::trace::parse_duration;
use crate::learn::{self, Live};
use crate::profile;

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
