//! `modtrace learn`: trace for a while and accumulate what was loaded, and why,
//! into the profile.
//!
//! Order matters: the lock, the writability check and loading the existing
//! profile all happen before tracing starts, so a second learner, a read-only
//! directory or a corrupt profile stop it at once (the corrupt file untouched)
//! instead of after hours of learning. /proc/modules is read once the probes
//! are attached, not before: a module loaded in between is then both there and
//! traced, and keeps its traced cause instead of going missing.

//!
//! - `evidence`: new modules and causes as structured journal entries.
//! - `live`: the running system's plan, tracer and early pins.
//! - `preloaded`: what was loaded before tracing, told from what was traced.
//! - `progress`: the display on stderr while learning runs.

pub mod evidence;
mod live;
mod preloaded;
mod progress;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context as _};

pub use live::{learn_here, pin_early, Live};
use preloaded::Preloaded;
pub use progress::{short_cause, Progress, Status, Ticker};

use crate::profile::packages::Dpkg;
use crate::profile::onbehalf::{NoSystemd, OnBehalf, RealSystemd, Systemd};
use crate::profile::{self, store, PreloadSources, Profile, Session};
use crate::system;
use crate::trace::deputies::Deputies;
use crate::trace::drops::Drops;
use crate::trace::event::{Record, What};
use crate::trace::modindex::{normalize, ModuleIndex};
use crate::trace::snapshot::read_proc_modules;

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
    /// /etc/machine-id: with the host name, the host's identity in a fleet.
    pub machine_id: Option<String>,
    /// Where dpkg's database and the unit files are read ("/" here), to tie
    /// units and executables to their packages; None: not looked up.
    pub packages_root: Option<PathBuf>,
    /// Where new modules and causes are announced (the journal here).
    pub evidence: Option<evidence::SharedSink>,
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
    /// Journal entries for new modules or causes held back by the bound (evidence.rs).
    pub held_back: u64,
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

/// What to say once learning ended: where the profile is, and what was lost.
pub fn closing_lines(o: &Outcome) -> Vec<String> {
    let mut lines = vec![outcome_line(o)];
    let d = &o.drops;
    if d.blocking() > 0 {
        lines.push(format!(
            "modtrace: warning: {} requests or loads were lost ({}); the profile may miss modules, learn again before locking",
            d.blocking(),
            d.describe()
        ));
    } else if d.reported() > 0 {
        lines.push(format!(
            "modtrace: note: {} failed load attempts, load results or untrusted processes' requests were lost ({}); \
             no module root needs is missing for them",
            d.reported(),
            d.describe()
        ));
    }
    if o.held_back > 0 {
        lines.push(format!(
            "modtrace: note: {} journal entries for new modules or causes were held back (at most {} for causes \
             that need review per session); the profile has them all",
            o.held_back,
            evidence::UNTRUSTED_MAX
        ));
    }
    lines
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
    let mut learner = Learner::new(plan, index, base_profile(plan)?)?;
    let ticker = Ticker::start(plan.progress, plan.duration, &plan.out, learner.status.clone());
    let result = trace(&mut |rec: Option<&Record>| learner.see(rec, &ticker));
    ticker.stop();
    learner.finish(result)
}

/// The profile to add to: the existing one, or with --fresh only the admin's
/// decisions of it (the file kept as PATH.bak). A profile that cannot be read
/// stops learning before it starts.
fn base_profile(plan: &Plan) -> anyhow::Result<Option<Profile>> {
    if plan.fresh {
        keep_backup(&plan.out)?;
        // Starting over forgets what was seen, not what an admin decided.
        let decisions = store::load_if_exists(&plan.out).ok().flatten().map(|p| p.decisions).unwrap_or_default();
        return Ok((!decisions.is_empty()).then(|| Profile { decisions, ..Profile::new(&plan.kernel, &plan.host) }));
    }
    let base = store::load_if_exists(&plan.out).map_err(|e| {
        anyhow!(
            "{e}\nrefusing to learn into it: the file is left as it is. Repair it, move it aside, or start a new profile with --fresh (which keeps it as {}.bak)",
            plan.out.display()
        )
    })?;
    if base.as_ref().is_some_and(Profile::is_fleet) {
        // A fleet's evidence is its hosts'; this host's goes in its own profile, merged later.
        return Err(anyhow!(
            "{}: a fleet profile (modtrace merge): learn into this host's own profile and merge it again",
            plan.out.display()
        ));
    }
    Ok(base)
}

/// One learning session: what the tracer said so far, and when it was last saved.
struct Learner<'a> {
    plan: &'a Plan,
    index: &'a dyn ModuleIndex,
    base: Option<Profile>,
    /// Modules the profile had before this session.
    known: BTreeSet<String>,
    start: SystemTime,
    session: Profile,
    /// What explains a module found loaded (preload.rs); the rest is "before
    /// learning", cause unknown.
    reasons: BTreeMap<String, String>,
    preloaded: Preloaded,
    /// Loads systemd made for another unit, given to that unit; root deputies'
    /// loads, given to their clients or to nobody known.
    behalf: OnBehalf<Box<dyn Systemd>>,
    status: Arc<Mutex<Status>>,
    /// The packages of units and executables, when dpkg's database is there.
    dpkg: Option<Dpkg>,
    evidence: evidence::Evidence,
    records: u64,
    dirty: bool,
    checkpoints: u32,
    last_checkpoint: Instant,
}

impl<'a> Learner<'a> {
    fn new(plan: &'a Plan, index: &'a dyn ModuleIndex, base: Option<Profile>) -> anyhow::Result<Learner<'a>> {
        let known: BTreeSet<String> = base.iter().flat_map(|p| p.modules.iter().map(|m| m.name.clone())).collect();
        let mut session = Profile::new(&plan.kernel, &plan.host);
        session.boots.extend(plan.boot_id.clone());
        session.machine_id.clone_from(&plan.machine_id);
        let mut reasons = profile::preload::boot_reasons(&plan.preload, index);
        if plan.follow_systemd {
            let inserted = profile::preload::pid1_inserted(&profile::preload::pid1_journal());
            profile::preload::add_reason(&mut reasons, &inserted, profile::preload::PID1_INSERTED);
        }
        // Checked now, so a kernel without modules stops learning before it starts.
        read_proc_modules(&plan.proc_modules)?;
        let system: Box<dyn Systemd> =
            if plan.follow_systemd { Box::new(RealSystemd::default()) } else { Box::new(NoSystemd) };
        let behalf = OnBehalf::with_deputies(system, Deputies::load(&plan.deputies_dir));
        let status = Arc::new(Mutex::new(Status { modules: module_count(&known, &session), latest: None }));
        Ok(Learner {
            plan,
            index,
            base,
            known,
            start: SystemTime::now(),
            session,
            reasons,
            preloaded: Preloaded::default(),
            behalf,
            status,
            dpkg: plan.packages_root.as_deref().map(Dpkg::under).filter(Dpkg::present),
            evidence: evidence::Evidence::new(plan.evidence.clone()),
            records: 0,
            dirty: false,
            checkpoints: 0,
            last_checkpoint: Instant::now(),
        })
    }

    /// The tracer's sink: a record, or None for a tick (a change waiting for
    /// its checkpoint is saved even when no further record comes).
    fn see(&mut self, rec: Option<&Record>, ticker: &Ticker) {
        if !self.preloaded.read {
            match self.preloaded.read_now(&self.plan.proc_modules) {
                Ok(n) => self.dirty |= n > 0,
                Err(e) => ticker.say(&format!("modtrace: warning: {e:#}")),
            }
        }
        if let Some(rec) = rec {
            self.observe(rec);
        }
        if self.dirty && self.last_checkpoint.elapsed() >= self.plan.checkpoint_every {
            self.checkpoint(ticker);
        }
    }

    fn observe(&mut self, rec: &Record) {
        self.records += 1;
        self.behalf.see(rec);
        self.preloaded.saw(rec);
        self.dirty |= self.session.observe(rec);
        if let What::Loaded { module, cause, .. } = &rec.what {
            if let Ok(mut s) = self.status.lock() {
                s.modules = module_count(&self.known, &self.session);
                s.latest = Some(format!("{module} ({})", short_cause(cause)));
            }
        }
    }

    fn checkpoint(&mut self, ticker: &Ticker) {
        let end = TraceEnd { records: self.records, drops: Drops::default(), ended_by: "checkpoint".into(), from_initramfs: None };
        let profile = self.compose(&end);
        match store::save(&self.plan.out, &profile) {
            Ok(()) => {
                self.dirty = false;
                self.checkpoints += 1;
            }
            Err(e) => ticker.say(&format!("modtrace: warning: checkpoint failed (will retry): {e}")),
        }
        self.last_checkpoint = Instant::now();
    }

    /// The profile as it would be saved now: the base, with this session merged in.
    fn compose(&mut self, end_of: &TraceEnd) -> Profile {
        let mut profile = self.base.clone().unwrap_or_else(|| Profile::new(&self.plan.kernel, &self.plan.host));
        let mut s = self.session.clone();
        let before = self.preloaded.before_tracing();
        let names: Vec<String> = before.iter().map(|m| normalize(&m.name)).collect();
        let trusted = trusted_modules(self.base.iter().chain([&self.session]));
        let mut why = self.reasons.clone();
        why.extend(profile::preload::dependency_reasons(&names, &self.reasons, &trusted, self.index));
        let start = system::rfc3339(self.start);
        s.add_preloaded(&before, &why, &start);
        self.behalf.apply(&mut s);
        s.sessions.push(self.session_record(start, end_of));
        profile.merge(s);
        profile.settle(self.index);
        if let Some(dpkg) = &mut self.dpkg {
            profile.record_packages(dpkg);
        }
        self.evidence.announce(self.base.as_ref(), &profile);
        profile
    }

    fn session_record(&self, start: String, end_of: &TraceEnd) -> Session {
        let end = SystemTime::now();
        Session {
            start,
            end: system::rfc3339(end),
            duration_secs: end.duration_since(self.start).unwrap_or_default().as_secs(),
            kernel: self.plan.kernel.clone(),
            boot_id: self.plan.boot_id.clone(),
            ended_by: Some(end_of.ended_by.clone()),
            records: end_of.records,
            lost_events: end_of.drops.total(),
            drops: Some(end_of.drops),
            from_initramfs: end_of.from_initramfs,
            host: None,
            extra: Default::default(),
        }
    }

    /// Saves what was learned, also when the tracer failed after records arrived.
    fn finish(mut self, result: anyhow::Result<TraceEnd>) -> anyhow::Result<Outcome> {
        let records = self.records;
        let (end, failure) = match result {
            Ok(end) => (end, None),
            // Tracing never started (or saw nothing): nothing to save.
            Err(e) if records == 0 && self.checkpoints == 0 => return Err(e),
            Err(e) => {
                (TraceEnd { records, drops: Drops::default(), ended_by: "error".to_string(), from_initramfs: None }, Some(e))
            }
        };
        if !self.preloaded.read {
            // The tracer never called the sink: what is loaded now is all there is.
            self.preloaded.read_now(&self.plan.proc_modules)?;
        }
        self.behalf.finish();
        let end = TraceEnd { records: end.records.max(records), ..end };
        let finished = self.compose(&end);
        self.evidence.finish();
        store::save(&self.plan.out, &finished).context("saving the profile")?;
        if let Some(e) = failure {
            let out = self.plan.out.display();
            return Err(e.context(format!("tracing failed; what was learned until then is saved in {out}")));
        }
        Ok(Outcome {
            path: self.plan.out.clone(),
            modules: finished.modules.len(),
            top_level: finished.modules.iter().filter(|m| m.top_level).count(),
            new_modules: finished.modules.iter().filter(|m| !self.known.contains(&m.name)).map(|m| m.name.clone()).collect(),
            records: end.records,
            drops: end.drops,
            ended_by: end.ended_by,
            checkpoints: self.checkpoints,
            held_back: self.evidence.held_back,
        })
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

#[cfg(test)]
mod tests;
