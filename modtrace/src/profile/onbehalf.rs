//! Loads systemd makes on another's behalf, traced back to who that was: the
//! profile stage rewrites the triggers of a learned session with this.
//!
//! - An automount: a process touches an autofs path (systemd-binfmt and
//!   /proc/sys/fs/binfmt_misc), PID 1 runs the mount unit, whose mount(8)
//!   makes the kernel request fs-NAME. The kernel sees only mount in the mount
//!   unit; systemd records the trigger in its journal ("Got automount request
//!   for PATH, triggered by PID (COMM)"). The request is given to that process
//!   and its unit, with the mount unit kept as `via`.
//! - modprobe@NAME.service, the unit systemd offers for declaring a module
//!   (and what `modtrace generate` writes into drop-ins): its loads are given
//!   to the units that want or require it, with modprobe@NAME.service as `via`.
//!
//! - A root deputy (trace/deputies.rs: udisks2, NetworkManager, ...) acting for a
//!   client: the load is given to the client the deputy names in its journal
//!   (udisks2's "on behalf of uid N", written by the running udisksd), with
//!   the deputy's unit as `via`; a deputy that does not say gets an unknown
//!   requester. Either way the deputy's own unit is not trusted for it.
//!
//! Each is right or says "unknown", never the trusted unit it came through:
//! an automount request is taken only when exactly one record of PID 1's
//! journal (trace/journal.rs: by the fields journald sets) for that automount and
//! path lies in the time window around the request, and the trigger's unit
//! only from /proc: as it was while the process waited on the automount
//! (wchan autofs_wait, read when the mount's request arrives), or as it is
//! when the load is handled; else its unit is unknown. A journal that has not
//! answered, or answered nothing that fits, makes the requester unknown.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::profile::{Profile, Requester, Trigger, TriggerKind};
use crate::trace::attribute::{exe, proc_cgroup_path};
use crate::trace::deputies::{self, Deputies, Says};
use crate::trace::event::{Cause, Process, Record, What};
use crate::trace::journal::{self, Entry};
use crate::trace::scope::{unit_of, Scope};

/// How long before the request an automount's journal record may be.
pub const WINDOW_BEFORE: Duration = Duration::from_secs(30);
/// How long after: the journal stamps a record when journald receives it,
/// which may be after the mount it announced has begun.
pub const WINDOW_AFTER: Duration = Duration::from_secs(10);
/// How long after a deputy's request its journal may say for whom: udisks
/// writes its line once the mount it asked for is done.
pub const DEPUTY_AFTER: Duration = Duration::from_secs(30);
/// How long `finish` waits for questions still out before saving: those left
/// are unknown.
pub const FINISH_DEADLINE: Duration = Duration::from_secs(20);

/// One "Got automount request" record of PID 1's journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutomountRequest {
    /// CLOCK_MONOTONIC of this boot, in microseconds: the clock of the
    /// kernel's event timestamps too, so no wall clock is compared.
    pub monotonic_us: u64,
    pub path: String,
    pub pid: u32,
    pub comm: String,
}

/// What the system says; the real one asks systemctl, journalctl and /proc.
pub trait Systemd {
    /// The units whose triggering starts `unit` (`TriggeredBy=`); None when
    /// systemctl did not answer.
    fn triggered_by(&mut self, unit: &str) -> Option<Vec<String>>;
    /// PID 1's "Got automount request" records of this boot for `automount`
    /// and `path`; None when the journal did not answer in time.
    fn automount_requests(&mut self, automount: &str, path: &str) -> Option<Vec<AutomountRequest>>;
    /// This boot's journal records written by a process whose comm is `comm`
    /// in the host's `unit` (journald's fields); None when it did not answer.
    fn deputy_journal(&mut self, unit: &str, comm: &str) -> Option<Vec<Entry>>;
    /// The process `pid`, when /proc still shows it with this comm.
    fn process(&mut self, pid: u32, comm: &str) -> Option<Requester>;
    /// The processes the kernel has waiting on an automount now (their
    /// /proc/PID/wchan is autofs_wait), as they are.
    fn waiting(&mut self) -> Vec<Requester>;
    /// The units that want, require or bind `unit` (`WantedBy=`, `RequiredBy=`,
    /// `RequisiteOf=`, `BoundBy=`), sorted.
    fn wanted_by(&mut self, unit: &str) -> Vec<String>;
    /// Waits a little before asking the journal again (it may lag behind).
    fn pause(&mut self);
    /// A handle another thread can ask, so that the learner's event loop never
    /// waits for systemctl or journalctl; None: ask in line (tests' fakes).
    fn fork(&self) -> Option<Box<dyn Systemd + Send>> {
        None
    }
}

type Job<T> = std::thread::JoinHandle<(String, T)>;

/// What became of one mount unit's or deputy's request.
#[derive(Debug, Clone, PartialEq)]
enum Resolution {
    /// Whom it was for: the process that triggered the automount (its unit
    /// unknown when it was gone), or a deputy's client, with how that is known.
    Trigger(Box<Requester>, Option<String>),
    /// A mount unit no automount triggers (fstab's): it stays the requester.
    Plain,
    /// It came through the unit for someone, but for whom is not known: why.
    Unknown(String),
}

/// Collects resolutions while learning (the trigger's /proc entry does not
/// wait) and applies them to the session's triggers.
pub struct OnBehalf<S: Systemd> {
    system: S,
    deputies: Deputies,
    /// Mount unit, or deputy_key(), -> resolution; a second, different
    /// resolution for the same key in one session makes it unknown.
    mounts: BTreeMap<String, Resolution>,
    /// Keys whose question is out.
    pending: std::collections::BTreeSet<String>,
    /// Mount unit -> who waited on an automount when its mount asked the
    /// kernel (the trigger may be gone by the time the load is handled).
    waiting: BTreeMap<String, Vec<Requester>>,
    /// (mount unit, mount's pid) already resolved: one mount's several loads
    /// (a module and its dependencies) ask systemd once.
    resolved: std::collections::BTreeSet<(String, u32)>,
    wanted: BTreeMap<String, Vec<String>>,
    /// Questions asked on other threads: mount unit -> resolution, and
    /// modprobe@ unit -> who wants it.
    mount_jobs: Vec<Job<Resolution>>,
    wanted_jobs: Vec<Job<Vec<String>>>,
    /// How many times to ask the journal before giving up.
    tries: u32,
}

/// A mount unit of the host's system manager, run by PID 1 (mount(8) or the
/// kernel's helper acting for it).
fn mount_unit_of(requester: &crate::trace::event::Process) -> Option<&str> {
    let unit = requester.scope.system_unit()?;
    (unit.ends_with(".mount") && requester.ppid == Some(1)).then_some(unit)
}

/// "proc-sys-fs-binfmt_misc" -> "/proc/sys/fs/binfmt_misc" (systemd.unit(5):
/// "-" is "/", "\xNN" a byte). None for what systemd would not have written.
pub fn unescape_path(stem: &str) -> Option<String> {
    if stem == "-" {
        return Some("/".to_string());
    }
    let mut out = Vec::new();
    let bytes = stem.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'-' => out.push(b'/'),
            b'\\' => {
                let hex = stem.get(i + 2..i + 4).filter(|_| bytes.get(i + 1) == Some(&b'x'))?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => out.push(b),
        }
        i += 1;
    }
    let path = String::from_utf8(out).ok()?;
    Some(format!("/{path}"))
}

/// The one record of `requests` for `path` that lies in the window around
/// `at_us` (monotonic); an error saying why when there is none or more than one.
pub fn the_one(requests: &[AutomountRequest], path: &str, at_us: u64) -> Result<AutomountRequest, String> {
    let from = at_us.saturating_sub(WINDOW_BEFORE.as_micros() as u64);
    let to = at_us + WINDOW_AFTER.as_micros() as u64;
    let found: Vec<&AutomountRequest> =
        requests.iter().filter(|r| r.path == path && (from..=to).contains(&r.monotonic_us)).collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!("no automount request for {path} in the journal in the {}s before", WINDOW_BEFORE.as_secs())),
        many => Err(format!("{} automount requests for {path} in the window: which one is not known", many.len())),
    }
}

impl<S: Systemd> OnBehalf<S> {
    pub fn new(system: S) -> Self {
        Self::with_deputies(system, Deputies::default())
    }

    /// `deputies`: the known ones and the admin's (deputies::Deputies::load).
    pub fn with_deputies(system: S, deputies: Deputies) -> Self {
        OnBehalf {
            system,
            deputies,
            mounts: BTreeMap::new(),
            pending: Default::default(),
            waiting: BTreeMap::new(),
            resolved: Default::default(),
            wanted: BTreeMap::new(),
            mount_jobs: Vec::new(),
            wanted_jobs: Vec::new(),
            tries: 5,
        }
    }

    pub fn with_tries(system: S, tries: u32) -> Self {
        OnBehalf { tries, ..Self::new(system) }
    }

    /// Looks at one record as it arrives. A mount unit's request: who waits on
    /// an automount is noted at once, while the trigger still waits. A load
    /// it requested: resolved now.
    pub fn see(&mut self, rec: &Record) {
        if let What::Request { .. } = &rec.what {
            if let Some(unit) = mount_unit_of(&rec.process) {
                let now = self.system.waiting();
                self.waiting.insert(unit.to_string(), now);
            }
            return;
        }
        match &rec.what {
            What::Loaded { cause: Cause::Request { requester, alias, .. }, .. } => {
                match self.deputy_of(&requester.scope) {
                    Some((unit, says)) => self.see_deputy_request(&unit, says, alias, requester, rec.ts_ns),
                    None => self.see_mount_load(requester, rec.ts_ns),
                }
            }
            What::Loaded { module, cause: Cause::Explicit { loader, .. }, .. } => match self.deputy_of(&loader.scope) {
                Some((unit, _)) => {
                    let key = deputy_key(&unit, module);
                    self.record(&key, Resolution::Unknown(silent_deputy(&unit)));
                }
                None => self.see_modprobe_at(loader),
            },
            _ => {}
        }
    }

    /// The host system unit of `scope`, when it is a deputy, and what it says.
    fn deputy_of(&self, scope: &Scope) -> Option<(String, Says)> {
        let unit = scope.system_unit()?;
        self.deputies.says(unit).map(|says| (unit.to_string(), says))
    }

    fn see_mount_load(&mut self, requester: &Process, ts_ns: u64) {
        let Some(unit) = mount_unit_of(requester) else { return };
        if !self.resolved.insert((unit.to_string(), requester.tgid)) {
            return;
        }
        let waiting = self.waiting.get(unit).cloned().unwrap_or_default();
        let (unit, at, tries) = (unit.to_string(), ts_ns / 1000, self.tries);
        self.ask(unit.clone(), move |system| resolve_mount(system, &unit, at, &waiting, tries));
    }

    /// A deputy's request: what its journal says of it, asked once per
    /// deputy process and alias.
    fn see_deputy_request(&mut self, unit: &str, says: Says, alias: &str, requester: &Process, ts_ns: u64) {
        let key = deputy_key(unit, alias);
        if !self.resolved.insert((key.clone(), requester.tgid)) {
            return;
        }
        let comm = self.deputies.comm(unit);
        let (Says::UdisksJournal, Some(comm)) = (says, comm) else {
            self.record(&key, Resolution::Unknown(silent_deputy(unit)));
            return;
        };
        let pids: Vec<u32> = [Some(requester.tgid), requester.ppid].into_iter().flatten().collect();
        // udisks writes its line once the mount is done, which may be a
        // while after the load: asked longer than the automount's journal.
        let (unit, at, tries) = (unit.to_string(), ts_ns / 1000, self.tries * 4);
        self.ask(key, move |system| resolve_udisks(system, &unit, comm, &pids, at, tries));
    }

    /// Asks on another thread when the system can be forked, else in line.
    fn ask(&mut self, key: String, question: impl FnOnce(&mut dyn Systemd) -> Resolution + Send + 'static) {
        match self.system.fork() {
            Some(mut system) => {
                self.pending.insert(key.clone());
                self.mount_jobs.push(std::thread::spawn(move || (key, question(&mut *system))));
            }
            None => {
                let r = question(&mut self.system);
                self.record(&key, r);
            }
        }
    }

    fn see_modprobe_at(&mut self, loader: &Process) {
        let Some(unit) = modprobe_at_unit(&loader.scope) else { return };
        if self.wanted.contains_key(unit) || !self.resolved.insert((unit.to_string(), 0)) {
            return;
        }
        let unit = unit.to_string();
        match self.system.fork() {
            Some(mut system) => self.wanted_jobs.push(std::thread::spawn(move || {
                let units = system.wanted_by(&unit);
                (unit, units)
            })),
            None => {
                let units = self.system.wanted_by(&unit);
                self.wanted.insert(unit, units);
            }
        }
    }

    /// Takes in what the other threads found; with a deadline, waits for
    /// them until then (those still out stay pending: unknown).
    fn collect(&mut self, deadline: Option<Instant>) {
        for (key, r) in take_done(&mut self.mount_jobs, deadline) {
            self.pending.remove(&key);
            self.record(&key, r);
        }
        for (unit, units) in take_done(&mut self.wanted_jobs, deadline) {
            self.wanted.insert(unit, units);
        }
    }

    /// Waits for the questions still out (before the final save), at most
    /// FINISH_DEADLINE: what has not answered by then stays unknown.
    pub fn finish(&mut self) {
        self.finish_within(FINISH_DEADLINE);
    }

    pub fn finish_within(&mut self, deadline: Duration) {
        self.collect(Some(Instant::now() + deadline));
    }

    fn record(&mut self, key: &str, resolution: Resolution) {
        match self.mounts.get(key) {
            None => {
                self.mounts.insert(key.to_string(), resolution);
            }
            Some(old) if *old != resolution && !matches!(old, Resolution::Unknown(_)) => {
                let why = format!("{key}: two different answers in one session: which load was whose is not known");
                self.mounts.insert(key.to_string(), Resolution::Unknown(why));
            }
            Some(_) => {}
        }
    }

    /// Rewrites the session's triggers: requests by an automount's mount unit
    /// go to the trigger, loads by modprobe@NAME.service to the units that
    /// want it, a deputy's to its client (or to an unknown requester).
    pub fn apply(&mut self, profile: &mut Profile) {
        self.collect(None);
        for m in &mut profile.modules {
            for t in &mut m.triggers {
                if t.via.is_some() {
                    continue;
                }
                let deputy = match t.kind {
                    TriggerKind::Request => t.requester.as_ref().and_then(|r| self.deputy_of(&r.scope)),
                    TriggerKind::Explicit => t.loader.as_ref().and_then(|l| self.deputy_of(&l.scope)),
                    _ => None,
                };
                match (deputy, t.kind) {
                    (Some((unit, _)), _) => self.apply_deputy(t, &unit, &m.name),
                    (None, TriggerKind::Request) => self.apply_mount(t),
                    (None, TriggerKind::Explicit) => self.apply_modprobe_at(t),
                    _ => {}
                }
            }
        }
        self.apply_requests(profile);
        merge_same(profile);
    }

    /// The profile's requests list names who asked each alias: a deputy's or
    /// a mount unit's entry becomes whom it was for, as its triggers did, so
    /// that `check` does not count a client's request as root's.
    fn apply_requests(&mut self, profile: &mut Profile) {
        for r in &mut profile.requests {
            for q in &mut r.requesters {
                let Some(unit) = q.who.scope.system_unit().map(str::to_string) else { continue };
                let resolution = match self.deputy_of(&q.who.scope) {
                    Some(_) => self.mounts.get(&deputy_key(&unit, &r.alias)).cloned(),
                    None if unit.ends_with(".mount") => self.mounts.get(&unit).cloned(),
                    None => continue,
                };
                let resolution = match resolution {
                    Some(res) => res,
                    None if self.deputy_of(&q.who.scope).is_some() => Resolution::Unknown(silent_deputy(&unit)),
                    None if self.pending.contains(&unit) => Resolution::Unknown(not_yet(&unit)),
                    None => continue,
                };
                q.who = match resolution {
                    Resolution::Plain => continue,
                    Resolution::Trigger(who, _) => *who,
                    Resolution::Unknown(_) => unknown_requester(),
                };
            }
            merge_requesters(&mut r.requesters);
        }
    }

    fn apply_mount(&mut self, t: &mut Trigger) {
        let Some(r) = &t.requester else { return };
        let Some(unit) = r.scope.system_unit().filter(|u| u.ends_with(".mount")).map(str::to_string) else { return };
        let resolution = match self.mounts.get(&unit) {
            Some(r) => r.clone(),
            None if self.pending.contains(&unit) => Resolution::Unknown(not_yet(&unit)),
            None => return,
        };
        rewrite(t, &unit, resolution);
    }

    /// A deputy's load: its client, or an unknown requester; never the deputy.
    fn apply_deputy(&mut self, t: &mut Trigger, unit: &str, module: &str) {
        let key = match (t.kind, &t.alias) {
            (TriggerKind::Request, Some(alias)) => deputy_key(unit, alias),
            _ => deputy_key(unit, module),
        };
        let resolution = match self.mounts.get(&key) {
            Some(r) => r.clone(),
            None if self.pending.contains(&key) => Resolution::Unknown(not_yet(unit)),
            None => Resolution::Unknown(silent_deputy(unit)),
        };
        // Other requests the load answered from the deputy's own processes
        // were the deputy's too: not root's wish either.
        t.also_requested_by.retain(|r| self.deputy_of(&r.scope).is_none());
        rewrite(t, unit, resolution);
    }

    fn apply_modprobe_at(&mut self, t: &mut Trigger) {
        let Some(unit) = t.loader.as_ref().and_then(|l| modprobe_at_unit(&l.scope)) else { return };
        // Not asked yet (a trigger from before this run): nothing to say.
        let Some(consumers) = self.wanted.get(unit) else { return };
        let Some((first, rest)) = consumers.split_first() else { return };
        t.via = Some(unit.to_string());
        t.requester = Some(unit_requester(first));
        t.also_requested_by = rest.iter().map(|u| unit_requester(u)).collect();
    }
}

/// modprobe@NAME.service of the host's system manager.
fn modprobe_at_unit(scope: &Scope) -> Option<&str> {
    scope.system_unit().filter(|u| u.starts_with("modprobe@") && u.ends_with(".service"))
}

/// The finished jobs, joined; with a deadline, those that finish by then too.
/// A job that panicked is dropped (its key stays pending: unknown).
fn take_done<T>(jobs: &mut Vec<Job<T>>, deadline: Option<Instant>) -> Vec<(String, T)> {
    if let Some(deadline) = deadline {
        while jobs.iter().any(|j| !j.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let (done, out): (Vec<_>, Vec<_>) = jobs.drain(..).partition(|j| j.is_finished());
    *jobs = out;
    done.into_iter().filter_map(|j| j.join().ok()).collect()
}

/// The key of a deputy's answers: its unit and the alias it requested (or
/// the module it loaded).
fn deputy_key(unit: &str, what: &str) -> String {
    format!("{unit} {what}")
}

fn silent_deputy(unit: &str) -> String {
    format!("{unit} acts for clients and did not say for whom")
}

fn not_yet(unit: &str) -> String {
    format!("who this load through {unit} was for is not known: the journal had not answered in time")
}

/// Gives the trigger to whom it was for, through `unit`.
fn rewrite(t: &mut Trigger, unit: &str, resolution: Resolution) {
    let (who, why) = match resolution {
        Resolution::Plain => return,
        Resolution::Trigger(who, how) => (*who, how),
        Resolution::Unknown(why) => (unknown_requester(), Some(why)),
    };
    t.via = Some(unit.to_string());
    t.requester = Some(who);
    t.reason = why;
}

/// Who triggered the automount of mount unit `unit` whose mount asked the
/// kernel at `at` (monotonic µs): PID 1's journal must name exactly one
/// process for that path; its unit is the one it had while it waited, or
/// what /proc says now, or unknown. A mount unit no automount triggers is
/// fstab's (Plain); a journal that says nothing that fits: Unknown.
fn resolve_mount(system: &mut dyn Systemd, unit: &str, at: u64, waiting: &[Requester], tries: u32) -> Resolution {
    let stem = unit.strip_suffix(".mount").unwrap_or(unit);
    let automount = format!("{stem}.automount");
    match system.triggered_by(unit) {
        None => return Resolution::Unknown(format!("systemctl did not say whether {automount} triggers {unit}")),
        Some(units) if !units.contains(&automount) => return Resolution::Plain,
        Some(_) => {}
    }
    let Some(path) = unescape_path(stem) else {
        return Resolution::Unknown(format!("{unit}: not a mount unit name systemd writes"));
    };
    let mut last = format!("the journal did not answer in time about {automount}");
    for attempt in 0..tries.max(1) {
        if attempt > 0 {
            system.pause();
        }
        let Some(requests) = system.automount_requests(&automount, &path) else { continue };
        match the_one(&requests, &path, at) {
            Ok(req) => {
                let waited = waiting.iter().find(|r| r.pid == Some(req.pid) && r.comm == req.comm).cloned();
                let who = waited.or_else(|| system.process(req.pid, &req.comm)).unwrap_or_else(|| gone(&req));
                return Resolution::Trigger(Box::new(who), None);
            }
            // More than one will not become one by waiting.
            Err(why) if why.contains("which one") => return Resolution::Unknown(why),
            Err(why) => last = why,
        }
    }
    Resolution::Unknown(last)
}

/// Whom udisks2 (`unit`, main process `comm`, one of `pids`) acted for in a
/// request at `at` (monotonic µs): its "on behalf of uid N" lines written in
/// the window after the request (it writes them once the mount is done)
/// must all name the same uid.
fn resolve_udisks(system: &mut dyn Systemd, unit: &str, comm: &str, pids: &[u32], at: u64, tries: u32) -> Resolution {
    let to = at + DEPUTY_AFTER.as_micros() as u64;
    let from = at.saturating_sub(1_000_000);
    let mut last = format!("{unit}'s journal did not answer in time");
    for attempt in 0..tries.max(1) {
        if attempt > 0 {
            system.pause();
        }
        let Some(entries) = system.deputy_journal(unit, comm) else { continue };
        let mut uids: Vec<u32> = entries
            .iter()
            .filter(|e| (from..=to).contains(&e.monotonic_us) && pids.iter().any(|p| e.from_process(unit, comm, *p)))
            .filter_map(|e| deputies::udisks_client(&e.message))
            .collect();
        uids.sort();
        uids.dedup();
        match uids.as_slice() {
            [uid] => {
                let how = format!("{unit} acted on behalf of uid {uid} (its journal)");
                return Resolution::Trigger(Box::new(client(*uid)), Some(how));
            }
            [] => last = silent_deputy(unit),
            many => {
                let all: Vec<String> = many.iter().map(u32::to_string).collect();
                let why = format!("{unit} acted for uids {} at that time: which is not known", all.join(", "));
                return Resolution::Unknown(why);
            }
        }
    }
    Resolution::Unknown(last)
}

/// A deputy's client: its uid, as the deputy said; its unit and session are
/// not known.
fn client(uid: u32) -> Requester {
    Requester { uid: Some(uid), ..unknown_requester() }
}

/// Nobody known.
fn unknown_requester() -> Requester {
    Requester {
        comm: "unknown".to_string(),
        exe: None,
        pid: None,
        uid: None,
        euid: None,
        loginuid: None,
        kernel_thread: None,
        unit: None,
        scope: Scope::Unknown,
        cgroup: None,
        pid_ns: None,
        mnt_ns: None,
        extra: Default::default(),
    }
}

/// The trigger as the journal named it, /proc no longer showing it: its unit
/// is unknown.
fn gone(req: &AutomountRequest) -> Requester {
    Requester { comm: req.comm.clone(), pid: Some(req.pid), ..unknown_requester() }
}

/// A unit of PID 1 that declared the module (Wants=modprobe@NAME.service):
/// PID 1 started the loader for it, from a unit file root installed.
fn unit_requester(unit: &str) -> Requester {
    Requester {
        comm: "systemd".to_string(),
        exe: None,
        pid: Some(1),
        uid: Some(0),
        euid: Some(0),
        loginuid: None,
        kernel_thread: Some(false),
        unit: Some(unit.to_string()),
        scope: Scope::System { unit: unit.to_string() },
        cgroup: None,
        pid_ns: None,
        mnt_ns: None,
        extra: Default::default(),
    }
}

/// Requesters that became the same are one, with their counts added.
fn merge_requesters(requesters: &mut Vec<crate::profile::CountedRequester>) {
    let mut merged: Vec<crate::profile::CountedRequester> = Vec::new();
    for q in requesters.drain(..) {
        match merged.iter_mut().find(|o| o.who.same_as(&q.who)) {
            Some(o) => o.count += q.count,
            None => merged.push(q),
        }
    }
    *requesters = merged;
}

/// Triggers that became the same cause are one, with their counts added.
fn merge_same(profile: &mut Profile) {
    for m in &mut profile.modules {
        let mut merged: Vec<Trigger> = Vec::new();
        for t in m.triggers.drain(..) {
            match merged.iter_mut().find(|o| o.same_cause(&t)) {
                Some(o) => o.count += t.count,
                None => merged.push(t),
            }
        }
        m.triggers = merged;
    }
}

impl<T: Systemd + ?Sized> Systemd for Box<T> {
    fn triggered_by(&mut self, unit: &str) -> Option<Vec<String>> {
        (**self).triggered_by(unit)
    }
    fn automount_requests(&mut self, automount: &str, path: &str) -> Option<Vec<AutomountRequest>> {
        (**self).automount_requests(automount, path)
    }
    fn deputy_journal(&mut self, unit: &str, comm: &str) -> Option<Vec<Entry>> {
        (**self).deputy_journal(unit, comm)
    }
    fn process(&mut self, pid: u32, comm: &str) -> Option<Requester> {
        (**self).process(pid, comm)
    }
    fn waiting(&mut self) -> Vec<Requester> {
        (**self).waiting()
    }
    fn wanted_by(&mut self, unit: &str) -> Vec<String> {
        (**self).wanted_by(unit)
    }
    fn pause(&mut self) {
        (**self).pause()
    }
    fn fork(&self) -> Option<Box<dyn Systemd + Send>> {
        (**self).fork()
    }
}

/// A system without systemd: nothing is followed, and what would need
/// asking is unknown.
pub struct NoSystemd;

impl Systemd for NoSystemd {
    fn triggered_by(&mut self, _: &str) -> Option<Vec<String>> {
        Some(Vec::new())
    }
    fn automount_requests(&mut self, _: &str, _: &str) -> Option<Vec<AutomountRequest>> {
        None
    }
    fn deputy_journal(&mut self, _: &str, _: &str) -> Option<Vec<Entry>> {
        None
    }
    fn process(&mut self, _: u32, _: &str) -> Option<Requester> {
        None
    }
    fn waiting(&mut self) -> Vec<Requester> {
        Vec::new()
    }
    fn wanted_by(&mut self, _: &str) -> Vec<String> {
        Vec::new()
    }
    fn pause(&mut self) {}
}

// ---------------------------------------------------------------------------
// The real system: systemctl, journalctl, /proc

/// Asks the running systemd. journalctl's JSON output (systemd's documented
/// export format) is read rather than linking libsystemd: the package then
/// depends on nothing new, and journalctl is wherever PID 1 is systemd.
pub struct RealSystemd {
    pub proc_root: PathBuf,
}

impl Default for RealSystemd {
    fn default() -> Self {
        RealSystemd { proc_root: PathBuf::from("/proc") }
    }
}

/// The units in `properties` of `unit`, sorted; None when systemctl failed.
fn systemctl_show(unit: &str, properties: &[&str]) -> Option<Vec<String>> {
    let mut cmd = Command::new("systemctl");
    cmd.args(["show", "--value"]);
    for p in properties {
        cmd.arg(format!("--property={p}"));
    }
    let out = cmd.arg("--").arg(unit).output().ok().filter(|o| o.status.success())?;
    let mut units: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect();
    units.sort();
    units.dedup();
    Some(units)
}

/// The pid and comm in PID 1's "[AUTOMOUNT: ]Got automount request for PATH,
/// triggered by PID (COMM)" about `automount` and `path`. Anchored on what
/// is known (the unit, the path), then read by its exact structure: digits,
/// " (", and the comm up to the final ")", whatever the comm holds.
pub fn parse_automount_message(message: &str, automount: &str, path: &str) -> Option<(u32, String)> {
    let rest = message.strip_prefix(automount).and_then(|r| r.strip_prefix(": ")).unwrap_or(message);
    let rest = rest.strip_prefix("Got automount request for ")?.strip_prefix(path)?.strip_prefix(", triggered by ")?;
    let (pid, comm) = rest.split_once(" (")?;
    let comm = comm.strip_suffix(')')?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((pid.parse().ok()?, comm.to_string()))
}

/// journalctl -o json lines to the automount requests PID 1 wrote about
/// `automount` and `path`; other lines, and lines by anyone else, are skipped.
pub fn parse_journal(json_lines: &str, automount: &str, path: &str) -> Vec<AutomountRequest> {
    requests_in(journal::parse(json_lines), automount, path)
}

fn requests_in(entries: Vec<Entry>, automount: &str, path: &str) -> Vec<AutomountRequest> {
    entries
        .into_iter()
        .filter(Entry::from_pid1)
        .filter_map(|e| {
            let (pid, comm) = parse_automount_message(&e.message, automount, path)?;
            Some(AutomountRequest { monotonic_us: e.monotonic_us, path: path.to_string(), pid, comm })
        })
        .collect()
}

impl Systemd for RealSystemd {
    fn triggered_by(&mut self, unit: &str) -> Option<Vec<String>> {
        systemctl_show(unit, &["TriggeredBy"])
    }

    fn automount_requests(&mut self, automount: &str, path: &str) -> Option<Vec<AutomountRequest>> {
        // PID 1's records about the automount, and its kmsg lines from
        // before journald (journal.rs says why those are PID 1's).
        let mut matches: Vec<String> = vec!["_PID=1".into(), format!("UNIT={automount}"), "+".into()];
        matches.extend(journal::PID1[2..].iter().map(|m| m.to_string()));
        Some(requests_in(journal::query(&matches, journal::DEADLINE)?, automount, path))
    }

    fn deputy_journal(&mut self, unit: &str, comm: &str) -> Option<Vec<Entry>> {
        let matches = [format!("_SYSTEMD_UNIT={unit}"), format!("_COMM={comm}")];
        journal::query(&matches, journal::DEADLINE)
    }

    fn process(&mut self, pid: u32, comm: &str) -> Option<Requester> {
        let r = self.read_process(pid)?;
        (r.comm == comm).then_some(r)
    }

    fn waiting(&mut self) -> Vec<Requester> {
        let Ok(entries) = fs::read_dir(&self.proc_root) else { return Vec::new() };
        let pids = entries.flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok());
        let waiting: Vec<u32> = pids
            .filter(|pid| {
                let wchan = fs::read_to_string(self.proc_root.join(pid.to_string()).join("wchan"));
                wchan.is_ok_and(|w| w.trim() == "autofs_wait")
            })
            .collect();
        waiting.into_iter().filter_map(|pid| self.read_process(pid)).collect()
    }

    fn wanted_by(&mut self, unit: &str) -> Vec<String> {
        systemctl_show(unit, &["WantedBy", "RequiredBy", "RequisiteOf", "BoundBy"]).unwrap_or_default()
    }

    /// The learner's event loop waits meanwhile: a few short waits only.
    fn pause(&mut self) {
        std::thread::sleep(Duration::from_millis(200));
    }

    fn fork(&self) -> Option<Box<dyn Systemd + Send>> {
        Some(Box::new(RealSystemd { proc_root: self.proc_root.clone() }))
    }
}

impl RealSystemd {
    /// What /proc says of `pid` now: comm, uids, login uid, exe, cgroup.
    fn read_process(&self, pid: u32) -> Option<Requester> {
        let dir = self.proc_root.join(pid.to_string());
        let comm = fs::read_to_string(dir.join("comm")).ok()?.trim_end_matches('\n').to_string();
        let status = fs::read_to_string(dir.join("status")).ok()?;
        let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
        let mut ids = uids.split_whitespace().map(|x| x.parse::<u32>().ok());
        let (uid, euid) = (ids.next()??, ids.next()??);
        let cgroup = proc_cgroup_path(&fs::read_to_string(dir.join("cgroup")).ok()?);
        let loginuid = fs::read_to_string(dir.join("loginuid")).ok().and_then(|s| s.trim().parse().ok());
        Some(Requester {
            comm,
            exe: exe(&self.proc_root, pid),
            pid: Some(pid),
            uid: Some(uid),
            euid: Some(euid),
            loginuid: loginuid.filter(|l| *l != u32::MAX),
            kernel_thread: None,
            unit: cgroup.as_deref().and_then(unit_of),
            scope: Scope::of(cgroup.as_deref()),
            cgroup,
            pid_ns: None,
            mnt_ns: None,
            extra: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests;
