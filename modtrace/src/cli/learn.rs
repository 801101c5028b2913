//! `modtrace learn`: trace for a while and accumulate what was loaded, and why,
//! into the profile (the session itself is `crate::learn`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use super::trace::parse_duration;
use crate::learn::{learn, outcome_line, Plan, Progress, TraceEnd};
use crate::profile::{self, system, PreloadSources};
use crate::trace::modindex::KmodIndex;
use crate::trace::pipeline::{Options, Tracer};

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
        return pin_early();
    }
    let progress = if args.quiet {
        Progress::Quiet
    } else if std::io::stderr().is_terminal() {
        Progress::Bar
    } else {
        Progress::Plain
    };
    let plan = Plan {
        out: args.out,
        fresh: args.fresh,
        duration: args.duration,
        proc_modules: PathBuf::from("/proc/modules"),
        preload: PreloadSources::default(),
        checkpoint_every: args.checkpoint_every,
        progress,
        kernel: system::kernel_release(),
        host: system::hostname(),
        boot_id: system::boot_id(),
        follow_systemd: Path::new("/run/systemd/system").is_dir(),
        deputies_dir: PathBuf::from(crate::trace::deputies::DEPUTIES_DIR),
    };
    crate::loader::preflight::require_modules()?;
    let index = KmodIndex::running().context("reading the running kernel's module index")?;
    let duration = plan.duration;
    let checkpoint_every = plan.checkpoint_every.max(std::time::Duration::from_millis(100));
    let outcome = learn(&plan, &index, |sink| {
        let tracer = Tracer::start_taking_early()?;
        // Said on the run's first call of the sink, once SIGINT and SIGTERM are
        // handled: a stop right after systemd hears "ready" must still save.
        let mut ready = Some(announcement(&tracer));
        let summary = tracer.run(&Options { duration, tick: Some(checkpoint_every) }, &mut |rec| {
            if let Some(text) = ready.take() {
                eprint!("{text}");
                // Under systemd (Type=notify) the units ordered after the learner
                // start only now, so their loads are traced. Elsewhere a no-op.
                if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
                    eprintln!("modtrace: note: could not tell systemd that learning started: {e}");
                }
            }
            sink(rec)
        })?;
        Ok(TraceEnd {
            records: summary.records,
            drops: summary.drops,
            ended_by: summary.ended_by.to_string(),
            from_initramfs: summary.from_initramfs,
        })
    })?;
    eprintln!("{}", outcome_line(&outcome));
    let d = &outcome.drops;
    if d.blocking() > 0 {
        eprintln!(
            "modtrace: warning: {} requests or loads were lost ({}); the profile may miss modules, learn again before locking",
            d.blocking(),
            d.describe()
        );
    } else if d.reported() > 0 {
        eprintln!(
            "modtrace: note: {} failed load attempts, load results or untrusted processes' requests were lost ({}); \
             no module root needs is missing for them",
            d.reported(),
            d.describe()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The lines saying that learning runs, and what is degraded here.
fn announcement(tracer: &Tracer) -> String {
    let p = &tracer.probes;
    let mut text = format!("modtrace: attached {} programs in {} ms; learning\n", p.attached, p.attach_ms);
    for note in &p.notes {
        text += &format!("modtrace: note: {note}\n");
    }
    text
}

fn pin_early() -> anyhow::Result<ExitCode> {
    crate::loader::preflight::require_modules()?;
    let mut probes = crate::loader::Probes::attach()?;
    let dir = crate::loader::early::pin(&mut probes)?;
    eprintln!(
        "modtrace: tracing from early boot: {} probes attached in {} ms and pinned under {}; the next modtrace learn takes them over",
        probes.attached,
        probes.attach_ms,
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

