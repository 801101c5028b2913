//! `modtrace learn`: trace for a while and accumulate what was loaded, and why,
//! into the profile.
//!
//! Order matters: the lock, the writability check and loading the existing
//! profile all happen before tracing starts, so a second learner, a read-only
//! directory or a corrupt profile stop it at once (the corrupt file untouched)
//! instead of after hours of learning. /proc/modules is read once the probes
//! are attached, not before: a module loaded in between is then both there and
//! traced, and keeps its traced cause instead of going missing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context as _};
use indicatif::{ProgressBar, ProgressStyle};

use crate::trace::event::{Cause, Record, What};
use crate::trace::modindex::ModuleIndex;
use crate::trace::deputies::Deputies;
use crate::profile::onbehalf::{NoSystemd, OnBehalf, RealSystemd, Systemd};
use crate::profile::{self, store, system, PreloadSources, Profile, Session};
use crate::trace::drops::Drops;
use crate::trace::snapshot::{read_proc_modules, LoadedModule};

/// How learning shows progress on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Quiet,
    /// A line every minute (stderr is not a terminal: a journal, a log file).
    Plain,
    /// A live progress bar.
    Bar,
}

/// Everything `learn` needs besides the index and the tracer.
#[derive(Debug, Clone)]
pub struct Plan {
    pub out: PathBuf,
    pub fresh: bool,
    pub duration: Option<Duration>,
    /// /proc/modules (a parameter for tests).
    pub proc_modules: PathBuf,
    pub preload: PreloadSources,
    /// Save at most this often while learning (when something changed).
    pub checkpoint_every: Duration,
    pub progress: Progress,
    pub kernel: String,
    pub host: String,
    pub boot_id: Option<String>,
    /// Ask systemd (systemctl, journal, /proc) who an automount or a
    /// modprobe@ load was for (onbehalf.rs): when PID 1 is systemd.
    pub follow_systemd: bool,
    /// The admin's deputies (trace/deputies.rs), besides the known ones.
    pub deputies_dir: PathBuf,
}

/// What the tracer reports when it returns.
#[derive(Debug, Clone)]
pub struct TraceEnd {
    pub records: u64,
    /// Events lost, by kind.
    pub drops: Drops,
    /// "duration", "SIGINT" or "SIGTERM".
    pub ended_by: String,
    /// Events of the probes the initramfs started, when they were taken over.
    pub from_initramfs: Option<u64>,
}

/// What a learning run did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub path: PathBuf,
    pub modules: usize,
    pub top_level: usize,
    /// Modules this run added to the profile.
    pub new_modules: Vec<String>,
    pub records: u64,
    pub drops: Drops,
    pub ended_by: String,
    pub checkpoints: u32,
}

pub fn outcome_line(o: &Outcome) -> String {
    let new = if o.new_modules.is_empty() {
        "no new module".to_string()
    } else if o.new_modules.len() <= 8 {
        format!("new: {}", o.new_modules.join(", "))
    } else {
        format!("{} new", o.new_modules.len())
    };
    format!(
        "modtrace: learning ended ({}); profile saved to {}: {} modules, {} top-level ({new}); see: modtrace report --profile {}",
        o.ended_by,
        o.path.display(),
        o.modules,
        o.top_level,
        o.path.display()
    )
}

/// Learns into `plan.out`: lock, check, load, then `trace` (which calls the sink
/// with None once its probes are attached, then for every record and with None
/// now and then, and returns when learning ends), checkpointing along the way,
/// and save. The modules already loaded are read at the sink's first call. When
/// `trace` fails after records arrived, what was learned is saved before the
/// error is returned.
pub fn learn(
    plan: &Plan,
    index: &dyn ModuleIndex,
    trace: impl FnOnce(&mut dyn FnMut(Option<&Record>)) -> anyhow::Result<TraceEnd>,
) -> anyhow::Result<Outcome> {
    if let Some(dir) = plan.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // Writability first: a read-only directory then says so, rather than failing
    // to create the lock file.
    store::check_writable(&plan.out)?;
    let _lock = store::lock(&plan.out)?;
    let base = if plan.fresh {
        keep_backup(&plan.out)?;
        // Starting over forgets what was seen, not what an admin decided.
        let decisions = store::load_if_exists(&plan.out).ok().flatten().map(|p| p.decisions).unwrap_or_default();
        (!decisions.is_empty()).then(|| Profile { decisions, ..Profile::new(&plan.kernel, &plan.host) })
    } else {
        store::load_if_exists(&plan.out).map_err(|e| {
            anyhow!(
                "{e}\nrefusing to learn into it: the file is left as it is. Repair it, move it aside, or start a new profile with --fresh (which keeps it as {}.bak)",
                plan.out.display()
            )
        })?
    };
    let known: BTreeSet<String> = base.iter().flat_map(|p| p.modules.iter().map(|m| m.name.clone())).collect();

    let start = SystemTime::now();
    let start_text = system::rfc3339(start);
    let mut session = Profile::new(&plan.kernel, &plan.host);
    session.boots.extend(plan.boot_id.clone());
    // What explains a module found loaded (preload.rs); the rest is "before
    // learning", cause unknown.
    let mut reasons = profile::preload::boot_reasons(&plan.preload, index);
    if plan.follow_systemd {
        let inserted = profile::preload::pid1_inserted(&profile::preload::pid1_journal());
        profile::preload::add_reason(&mut reasons, &inserted, profile::preload::PID1_INSERTED);
    }
    // Checked now, so a kernel without modules stops learning before it starts.
    read_proc_modules(&plan.proc_modules)?;
    let mut preloaded = Preloaded::default();

    // onbehalf: loads systemd made for another unit, given to that unit.
    // Root deputies' loads: given to their clients, or to nobody known.
    let system: Box<dyn Systemd> =
        if plan.follow_systemd { Box::new(RealSystemd::default()) } else { Box::new(NoSystemd) };
    let behalf = std::cell::RefCell::new(OnBehalf::with_deputies(system, Deputies::load(&plan.deputies_dir)));
    let compose = |session: &Profile, preloaded: &Preloaded, end_of: &TraceEnd| -> Profile {
        let end = SystemTime::now();
        let mut profile = base.clone().unwrap_or_else(|| Profile::new(&plan.kernel, &plan.host));
        let mut s = session.clone();
        let before = preloaded.before_tracing();
        let names: Vec<String> = before.iter().map(|m| crate::trace::modindex::normalize(&m.name)).collect();
        let trusted = trusted_modules(base.iter().chain([session]));
        let mut why = reasons.clone();
        why.extend(profile::preload::dependency_reasons(&names, &reasons, &trusted, index));
        s.add_preloaded(&before, &why, &start_text);
        behalf.borrow_mut().apply(&mut s);
        s.sessions.push(Session {
            start: start_text.clone(),
            end: system::rfc3339(end),
            duration_secs: end.duration_since(start).unwrap_or_default().as_secs(),
            kernel: plan.kernel.clone(),
            boot_id: plan.boot_id.clone(),
            ended_by: Some(end_of.ended_by.clone()),
            records: end_of.records,
            lost_events: end_of.drops.total(),
            drops: Some(end_of.drops),
            from_initramfs: end_of.from_initramfs,
            extra: Default::default(),
        });
        profile.merge(s);
        profile.settle(index);
        profile
    };

    let status = Arc::new(Mutex::new(Status { modules: module_count(&known, &session), latest: None }));
    let ticker = Ticker::start(plan.progress, plan.duration, &plan.out, status.clone());

    let mut records = 0u64;
    let mut dirty = false;
    let mut checkpoints = 0u32;
    let mut last_checkpoint = Instant::now();
    let result = trace(&mut |rec: Option<&Record>| {
        if !preloaded.read {
            match preloaded.read_now(&plan.proc_modules) {
                Ok(n) => dirty |= n > 0,
                Err(e) => ticker.say(&format!("modtrace: warning: {e:#}")),
            }
        }
        // None is a tick: a change waiting for its checkpoint is saved even
        // when no further record comes.
        if let Some(rec) = rec {
            records += 1;
            behalf.borrow_mut().see(rec);
            preloaded.saw(rec);
            dirty |= session.observe(rec);
            if let What::Loaded { module, cause, .. } = &rec.what {
                if let Ok(mut s) = status.lock() {
                    s.modules = module_count(&known, &session);
                    s.latest = Some(format!("{module} ({})", short_cause(cause)));
                }
            }
        }
        if dirty && last_checkpoint.elapsed() >= plan.checkpoint_every {
            let checkpoint =
                TraceEnd { records, drops: Drops::default(), ended_by: "checkpoint".into(), from_initramfs: None };
            match store::save(&plan.out, &compose(&session, &preloaded, &checkpoint)) {
                Ok(()) => {
                    dirty = false;
                    checkpoints += 1;
                }
                Err(e) => ticker.say(&format!("modtrace: warning: checkpoint failed (will retry): {e}")),
            }
            last_checkpoint = Instant::now();
        }
    });
    ticker.stop();

    let (end, failure) = match result {
        Ok(end) => (end, None),
        Err(e) => {
            if records == 0 && checkpoints == 0 {
                // Tracing never started (or saw nothing): nothing to save.
                return Err(e);
            }
            (TraceEnd { records, drops: Drops::default(), ended_by: "error".to_string(), from_initramfs: None }, Some(e))
        }
    };
    if !preloaded.read {
        // The tracer never called the sink: what is loaded now is all there is.
        preloaded.read_now(&plan.proc_modules)?;
    }
    behalf.borrow_mut().finish();
    let finished = compose(&session, &preloaded, &TraceEnd { records: end.records.max(records), ..end.clone() });
    store::save(&plan.out, &finished).context("saving the profile")?;
    if let Some(e) = failure {
        return Err(
            e.context(format!("tracing failed; what was learned until then is saved in {}", plan.out.display()))
        );
    }
    Ok(Outcome {
        path: plan.out.clone(),
        modules: finished.modules.len(),
        top_level: finished.modules.iter().filter(|m| m.top_level).count(),
        new_modules: finished.modules.iter().filter(|m| !known.contains(&m.name)).map(|m| m.name.clone()).collect(),
        records: end.records.max(records),
        drops: end.drops,
        ended_by: end.ended_by,
        checkpoints,
    })
}

/// The modules loaded when learning began, read once the probes were attached,
/// and the traced loads from before that read: those were loaded while tracing,
/// so they keep their traced cause and are not "preloaded".
#[derive(Debug, Default)]
struct Preloaded {
    read: bool,
    /// When /proc/modules was read (CLOCK_MONOTONIC, the records' clock).
    at_ns: u64,
    modules: Vec<LoadedModule>,
    traced_before: BTreeSet<String>,
    /// Modules unloaded after the read: loaded again, they were preloaded before.
    unloaded: BTreeSet<String>,
}

impl Preloaded {
    /// Reads /proc/modules; returns how many modules it lists.
    fn read_now(&mut self, path: &Path) -> anyhow::Result<usize> {
        self.read = true;
        self.at_ns = crate::trace::pipeline::monotonic_ns();
        self.modules = read_proc_modules(path)?;
        Ok(self.modules.len())
    }

    fn saw(&mut self, rec: &Record) {
        match &rec.what {
            What::Loaded { module, .. } => {
                let name = crate::trace::modindex::normalize(module);
                // A module listed by the read whose `loaded` record comes later,
                // with no unload between, was still loading then: /proc/modules
                // shows a module before its module_load tracepoint fires.
                let in_flight = self.modules.iter().any(|m| crate::trace::modindex::normalize(&m.name) == name)
                    && !self.unloaded.contains(&name);
                if !self.read || rec.ts_ns <= self.at_ns || in_flight {
                    self.traced_before.insert(name);
                }
            }
            What::Unloaded { module } if self.read => {
                self.unloaded.insert(crate::trace::modindex::normalize(module));
            }
            _ => {}
        }
    }

    /// The modules loaded before tracing began.
    fn before_tracing(&self) -> Vec<LoadedModule> {
        let traced = |m: &LoadedModule| self.traced_before.contains(&crate::trace::modindex::normalize(&m.name));
        self.modules.iter().filter(|m| !traced(m)).cloned().collect()
    }
}

/// Modules with a cause the needs stage trusts, in any of `profiles`: what
/// vouches for their dependencies found loaded.
fn trusted_modules<'a>(profiles: impl Iterator<Item = &'a Profile>) -> BTreeSet<String> {
    let trusted = |m: &&crate::profile::Module| m.triggers.iter().any(|t| crate::needs::trust::of_trigger(t).trusted());
    profiles.flat_map(|p| p.modules.iter().filter(trusted).map(|m| m.name.clone())).collect()
}

/// --fresh: the old file (readable or not) is kept as PATH.bak before anything
/// replaces it.
fn keep_backup(path: &Path) -> anyhow::Result<()> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let mut bak = path.as_os_str().to_owned();
            bak.push(".bak");
            let bak = PathBuf::from(bak);
            store::atomic_write(&bak, &bytes)?;
            eprintln!("modtrace: --fresh: the previous profile is kept as {}", bak.display());
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow!("{}: {e}", path.display())),
    }
}

fn module_count(known: &BTreeSet<String>, session: &Profile) -> usize {
    known.len() + session.modules.iter().filter(|m| !known.contains(&m.name)).count()
}

/// "request net-pf-5 by modtrace-guest", "udev", "explicit by modprobe".
pub fn short_cause(cause: &Cause) -> String {
    match cause {
        Cause::Request { alias, requester, module, needed_by, .. } => {
            let base = format!("request {alias} by {}", requester.comm);
            match (needed_by.is_empty(), module) {
                (false, Some(m)) => format!("for {m}, {base}"),
                _ => base,
            }
        }
        Cause::Explicit { loader, invoked_by, .. } => match invoked_by.as_ref().and_then(|p| p.comm.clone()) {
            Some(parent) => format!("explicit by {} from {parent}", loader.comm),
            None => format!("explicit by {}", loader.comm),
        },
        Cause::Udev { .. } => "udev".to_string(),
        Cause::Unknown { .. } => "cause unknown".to_string(),
    }
}

struct Status {
    modules: usize,
    latest: Option<String>,
}

/// Shows progress from its own thread, so the time left moves even when no
/// module loads.
struct Ticker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    bar: Option<ProgressBar>,
}

impl Ticker {
    fn start(mode: Progress, duration: Option<Duration>, out: &Path, status: Arc<Mutex<Status>>) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let left = move || duration.map(|d| d.saturating_sub(started.elapsed()));
        let describe = move |status: &Arc<Mutex<Status>>| -> String {
            let (modules, latest) = match status.lock() {
                Ok(s) => (s.modules, s.latest.clone()),
                Err(_) => (0, None),
            };
            let mut text = format!("{modules} modules");
            if let Some(l) = latest {
                text.push_str(&format!(", latest: {l}"));
            }
            text
        };
        match mode {
            Progress::Quiet => Ticker { stop, handle: None, bar: None },
            Progress::Bar => {
                let bar = match duration {
                    Some(d) => {
                        let bar = ProgressBar::new(d.as_secs().max(1));
                        bar.set_style(
                            ProgressStyle::with_template("{spinner} learning [{bar:24}] {prefix} left · {wide_msg}")
                                .expect("a valid template")
                                .progress_chars("=> "),
                        );
                        bar
                    }
                    None => {
                        let bar = ProgressBar::new_spinner();
                        bar.set_style(
                            ProgressStyle::with_template(
                                "{spinner} learning for {elapsed} (Ctrl-C ends it) · {wide_msg}",
                            )
                            .expect("a valid template"),
                        );
                        bar
                    }
                };
                let thread_bar = bar.clone();
                let thread_stop = stop.clone();
                let handle = std::thread::spawn(move || {
                    while !thread_stop.load(Ordering::Relaxed) {
                        if let Some(l) = left() {
                            thread_bar.set_position(duration.unwrap_or_default().as_secs().saturating_sub(l.as_secs()));
                            thread_bar
                                .set_prefix(humantime::format_duration(Duration::from_secs(l.as_secs())).to_string());
                        }
                        thread_bar.set_message(describe(&status));
                        thread_bar.tick();
                        std::thread::sleep(Duration::from_millis(250));
                    }
                });
                Ticker { stop, handle: Some(handle), bar: Some(bar) }
            }
            Progress::Plain => {
                let what = match duration {
                    Some(d) => format!("for {}", humantime::format_duration(d)),
                    None => "until SIGINT or SIGTERM".to_string(),
                };
                eprintln!("modtrace: learning {what} into {}", out.display());
                let thread_stop = stop.clone();
                let handle = std::thread::spawn(move || {
                    let mut last = Instant::now();
                    while !thread_stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(250));
                        if last.elapsed() >= Duration::from_secs(60) {
                            last = Instant::now();
                            let left = match left() {
                                Some(l) => {
                                    format!("{} left, ", humantime::format_duration(Duration::from_secs(l.as_secs())))
                                }
                                None => String::new(),
                            };
                            eprintln!("modtrace: learning: {left}{}", describe(&status));
                        }
                    }
                });
                Ticker { stop, handle: Some(handle), bar: None }
            }
        }
    }

    /// A message that must not be garbled by the progress bar.
    fn say(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests;
