//! Learning on the running system: its plan, its tracer (taking over the
//! initramfs's probes), and `learn --early`, which only pins the probes.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;

use super::evidence::{Entry, SharedSink, Sink};
use super::{learn, Outcome, Plan, Progress, TraceEnd};
use crate::profile::PreloadSources;
use crate::system;
use crate::trace::modindex::KmodIndex;
use crate::trace::pipeline::{Options, Tracer};

/// What the command line decides about a learning run.
#[derive(Debug, Clone)]
pub struct Live {
    pub out: PathBuf,
    pub fresh: bool,
    pub duration: Option<Duration>,
    pub quiet: bool,
    pub checkpoint_every: Duration,
}

impl Live {
    /// The plan for this machine: its kernel, host, boot, /proc/modules and
    /// systemd (when PID 1 is systemd).
    pub fn plan(self) -> Plan {
        let progress = if self.quiet {
            Progress::Quiet
        } else if std::io::stderr().is_terminal() {
            Progress::Bar
        } else {
            Progress::Plain
        };
        Plan {
            out: self.out,
            fresh: self.fresh,
            duration: self.duration,
            proc_modules: PathBuf::from("/proc/modules"),
            preload: PreloadSources::default(),
            checkpoint_every: self.checkpoint_every,
            progress,
            kernel: system::kernel_release(),
            host: system::hostname(),
            boot_id: system::boot_id(),
            follow_systemd: Path::new("/run/systemd/system").is_dir(),
            deputies_dir: PathBuf::from(crate::trace::deputies::DEPUTIES_DIR),
            machine_id: system::machine_id(),
            packages_root: Some(PathBuf::from("/")),
            evidence: Some(Arc::new(Mutex::new(JournalSink::default())) as SharedSink),
        }
    }
}

/// Learning's journal entries (tag modtrace-learn). It connects when it first
/// has something to send: learning from early boot may start before journald.
#[derive(Default)]
struct JournalSink(Option<systemd_journal_logger::JournalLog>);

impl std::fmt::Debug for JournalSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JournalSink")
    }
}

impl Sink for JournalSink {
    fn send(&mut self, e: &Entry) {
        if self.0.is_none() {
            // Without journald (yet), this entry is dropped; the profile has it.
            self.0 = crate::journal::connect("modtrace-learn").ok().flatten();
        }
        if let Some(journal) = &self.0 {
            crate::journal::send(journal, e.level, "modtrace-learn", &e.message, &e.fields);
        }
    }
}

/// Learns on this machine with the eBPF tracer until the duration ends or a
/// signal comes.
pub fn learn_here(live: Live) -> anyhow::Result<Outcome> {
    let plan = live.plan();
    crate::loader::preflight::require_modules()?;
    let index = KmodIndex::running().context("reading the running kernel's module index")?;
    let options = Options { duration: plan.duration, tick: Some(plan.checkpoint_every.max(Duration::from_millis(100))) };
    learn(&plan, &index, |sink| {
        let tracer = Tracer::start_taking_early()?;
        // Said on the run's first call of the sink, once SIGINT and SIGTERM are
        // handled: a stop right after systemd hears "ready" must still save.
        let mut ready = Some(announcement(&tracer));
        let summary = tracer.run(&options, &mut |rec| {
            if let Some(text) = ready.take() {
                eprint!("{text}");
                tell_systemd_ready();
            }
            sink(rec)
        })?;
        Ok(TraceEnd {
            records: summary.records,
            drops: summary.drops,
            ended_by: summary.ended_by.to_string(),
            from_initramfs: summary.from_initramfs,
        })
    })
}

/// Under systemd (Type=notify) the units ordered after the learner start only
/// now, so their loads are traced. Elsewhere a no-op.
fn tell_systemd_ready() {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        eprintln!("modtrace: note: could not tell systemd that learning started: {e}");
    }
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

/// `learn --early`: attaches the probes and leaves them pinned for the main
/// system's learner; returns what to say.
pub fn pin_early() -> anyhow::Result<String> {
    crate::loader::preflight::require_modules()?;
    let mut probes = crate::loader::Probes::attach()?;
    let dir = crate::loader::early::pin(&mut probes)?;
    Ok(format!(
        "modtrace: tracing from early boot: {} probes attached in {} ms and pinned under {}; the next modtrace learn takes them over",
        probes.attached,
        probes.attach_ms,
        dir.display()
    ))
}
