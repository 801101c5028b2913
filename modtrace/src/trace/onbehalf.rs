//! Loads systemd makes on another's behalf, traced back to who that was.
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
//! Like the modprobe join, each is right or left alone: an automount request
//! is taken only when exactly one journal record of that automount, for that
//! path, lies in the time window before the request, and the trigger's unit
//! only from /proc: as it was while the process waited on the automount
//! (wchan autofs_wait, read when the mount's request arrives), or as it is
//! when the load is handled; else its unit is unknown.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;

use crate::trace::attribute::{exe, proc_cgroup_path};
use crate::trace::event::{Cause, Record, What};
use crate::profile::{Profile, Requester, Trigger, TriggerKind};
use crate::trace::scope::{unit_of, Scope};

/// How long before the request an automount's journal record may be.
pub const WINDOW_BEFORE: Duration = Duration::from_secs(30);
/// How long after: the journal stamps a record when journald receives it,
/// which may be after the mount it announced has begun.
pub const WINDOW_AFTER: Duration = Duration::from_secs(10);

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
    /// The units whose triggering starts `unit` (`TriggeredBy=`).
    fn triggered_by(&mut self, unit: &str) -> Vec<String>;
    /// PID 1's "Got automount request" records of this boot for `automount`.
    fn automount_requests(&mut self, automount: &str) -> Vec<AutomountRequest>;
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

/// What became of one mount unit's request.
#[derive(Debug, Clone, PartialEq)]
enum Resolution {
    /// The process that triggered the automount (its unit unknown when it was gone).
    Trigger(Requester),
    /// Not an automount, or nothing (or more than one thing) in the journal
    /// explains it: the mount unit stays the requester.
    Left(String),
}

/// Collects resolutions while learning (the trigger's /proc entry does not
/// wait) and applies them to the session's triggers.
pub struct OnBehalf<S: Systemd> {
    system: S,
    /// Mount unit -> resolution; a second, different resolution for the same
    /// unit in one session makes it ambiguous (Left).
    mounts: BTreeMap<String, Resolution>,
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

/// The one record of `requests` for `path` that lies in the window before
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
        OnBehalf {
            system,
            mounts: BTreeMap::new(),
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
            What::Loaded { cause: Cause::Request { requester, .. }, .. } => self.see_mount_load(requester, rec.ts_ns),
            What::Loaded { cause: Cause::Explicit { loader, .. }, .. } => self.see_modprobe_at(loader),
            _ => {}
        }
    }

    fn see_mount_load(&mut self, requester: &crate::trace::event::Process, ts_ns: u64) {
        let Some(unit) = mount_unit_of(requester) else { return };
        if !self.resolved.insert((unit.to_string(), requester.tgid)) {
            return;
        }
        let waiting = self.waiting.get(unit).cloned().unwrap_or_default();
        let (unit, at, tries) = (unit.to_string(), ts_ns / 1000, self.tries);
        match self.system.fork() {
            Some(mut system) => self.mount_jobs.push(std::thread::spawn(move || {
                let r = resolve_mount(&mut *system, &unit, at, &waiting, tries);
                (unit, r)
            })),
            None => {
                let r = resolve_mount(&mut self.system, &unit, at, &waiting, tries);
                self.record_mount(&unit, r);
            }
        }
    }

    fn see_modprobe_at(&mut self, loader: &crate::trace::event::Process) {
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

    /// Takes in what the other threads found; with `wait`, waits for all.
    fn collect(&mut self, wait: bool) {
        for job in take_done(&mut self.mount_jobs, wait) {
            self.record_mount(&job.0, job.1);
        }
        for (unit, units) in take_done(&mut self.wanted_jobs, wait) {
            self.wanted.insert(unit, units);
        }
    }

    /// Waits for every question still out (before the final save).
    pub fn finish(&mut self) {
        self.collect(true);
    }

    fn record_mount(&mut self, unit: &str, resolution: Resolution) {
        match self.mounts.get(unit) {
            None => {
                self.mounts.insert(unit.to_string(), resolution);
            }
            Some(old) if *old != resolution && !matches!(old, Resolution::Left(_)) => {
                let why = "two different automount triggers in one session: which load was whose is not known";
                self.mounts.insert(unit.to_string(), Resolution::Left(why.to_string()));
            }
            Some(_) => {}
        }
    }

    /// Rewrites the session's triggers: requests by an automount's mount unit
    /// go to the trigger, loads by modprobe@NAME.service to the units that want it.
    pub fn apply(&mut self, profile: &mut Profile) {
        self.collect(false);
        for m in &mut profile.modules {
            for t in &mut m.triggers {
                if t.via.is_some() {
                    continue;
                }
                match t.kind {
                    TriggerKind::Request => self.apply_mount(t),
                    TriggerKind::Explicit => self.apply_modprobe_at(t),
                    _ => {}
                }
            }
        }
        merge_same(profile);
    }

    fn apply_mount(&mut self, t: &mut Trigger) {
        let Some(r) = &t.requester else { return };
        let Some(unit) = r.scope.system_unit().filter(|u| u.ends_with(".mount")) else { return };
        if let Some(Resolution::Trigger(who)) = self.mounts.get(unit) {
            t.via = Some(unit.to_string());
            t.requester = Some(who.clone());
        }
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

/// The finished jobs (all, with `wait`), joined; a job that panicked is dropped.
fn take_done<T>(jobs: &mut Vec<Job<T>>, wait: bool) -> Vec<(String, T)> {
    let (done, out): (Vec<_>, Vec<_>) = jobs.drain(..).partition(|j| wait || j.is_finished());
    *jobs = out;
    done.into_iter().filter_map(|j| j.join().ok()).collect()
}

/// Who triggered the automount of mount unit `unit` whose mount asked the
/// kernel at `at` (monotonic µs): PID 1's journal must name exactly one
/// process for that path; its unit is the one it had while it waited, or
/// what /proc says now, or unknown.
fn resolve_mount(system: &mut dyn Systemd, unit: &str, at: u64, waiting: &[Requester], tries: u32) -> Resolution {
    let stem = unit.strip_suffix(".mount").unwrap_or(unit);
    let automount = format!("{stem}.automount");
    if !system.triggered_by(unit).contains(&automount) {
        return Resolution::Left(format!("{unit} is not triggered by {automount}"));
    }
    let Some(path) = unescape_path(stem) else {
        return Resolution::Left(format!("{unit}: not a mount unit name systemd writes"));
    };
    let mut last = String::new();
    for attempt in 0..tries.max(1) {
        if attempt > 0 {
            system.pause();
        }
        match the_one(&system.automount_requests(&automount), &path, at) {
            Ok(req) => {
                let waited = waiting.iter().find(|r| r.pid == Some(req.pid) && r.comm == req.comm).cloned();
                let who = waited.or_else(|| system.process(req.pid, &req.comm)).unwrap_or_else(|| gone(&req));
                return Resolution::Trigger(who);
            }
            // More than one will not become one by waiting.
            Err(why) if why.contains("which one") => return Resolution::Left(why),
            Err(why) => last = why,
        }
    }
    Resolution::Left(last)
}

/// The trigger as the journal named it, /proc no longer showing it: its unit
/// is unknown.
fn gone(req: &AutomountRequest) -> Requester {
    Requester {
        comm: req.comm.clone(),
        exe: None,
        pid: Some(req.pid),
        uid: None,
        euid: None,
        loginuid: None,
        kernel_thread: None,
        unit: None,
        scope: Scope::Unknown,
        cgroup: None,
        extra: Default::default(),
    }
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
        extra: Default::default(),
    }
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
    fn triggered_by(&mut self, unit: &str) -> Vec<String> {
        (**self).triggered_by(unit)
    }
    fn automount_requests(&mut self, automount: &str) -> Vec<AutomountRequest> {
        (**self).automount_requests(automount)
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

/// A system without systemd: nothing is followed.
pub struct NoSystemd;

impl Systemd for NoSystemd {
    fn triggered_by(&mut self, _: &str) -> Vec<String> {
        Vec::new()
    }
    fn automount_requests(&mut self, _: &str) -> Vec<AutomountRequest> {
        Vec::new()
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

fn systemctl_show(unit: &str, properties: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("systemctl");
    cmd.args(["show", "--value"]);
    for p in properties {
        cmd.arg(format!("--property={p}"));
    }
    let Ok(out) = cmd.arg("--").arg(unit).output() else { return Vec::new() };
    if !out.status.success() {
        return Vec::new();
    }
    let mut units: Vec<String> =
        String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect();
    units.sort();
    units.dedup();
    units
}

#[derive(Deserialize)]
struct JournalEntry {
    #[serde(rename = "MESSAGE")]
    message: Option<serde_json::Value>,
    #[serde(rename = "__MONOTONIC_TIMESTAMP")]
    monotonic: Option<String>,
}

/// "proc-sys-fs-binfmt_misc.automount: Got automount request for
/// /proc/sys/fs/binfmt_misc, triggered by 233 (systemd-binfmt)" (PID 1 puts
/// the unit first, as systemd 252 and 257 do; without it is read too).
pub fn parse_automount_message(message: &str) -> Option<(String, u32, String)> {
    const GOT: &str = "Got automount request for ";
    let rest = match message.split_once(": ") {
        Some((unit, rest)) if unit.ends_with(".automount") => rest,
        _ => message,
    };
    let rest = rest.strip_prefix(GOT)?;
    let (path, rest) = rest.rsplit_once(", triggered by ")?;
    let (pid, comm) = rest.split_once(' ')?;
    let comm = comm.strip_prefix('(')?.strip_suffix(')')?;
    Some((path.to_string(), pid.parse().ok()?, comm.to_string()))
}

/// journalctl -o json lines to automount requests; other lines are skipped.
pub fn parse_journal(json_lines: &str) -> Vec<AutomountRequest> {
    json_lines
        .lines()
        .filter_map(|line| {
            let e: JournalEntry = serde_json::from_str(line).ok()?;
            let (path, pid, comm) = parse_automount_message(e.message?.as_str()?)?;
            Some(AutomountRequest { monotonic_us: e.monotonic?.parse().ok()?, path, pid, comm })
        })
        .collect()
}

impl Systemd for RealSystemd {
    fn triggered_by(&mut self, unit: &str) -> Vec<String> {
        systemctl_show(unit, &["TriggeredBy"])
    }

    fn automount_requests(&mut self, automount: &str) -> Vec<AutomountRequest> {
        let out = Command::new("journalctl")
            .args(["--boot", "--output=json", "--no-pager", "--quiet", "_PID=1"])
            .arg(format!("UNIT={automount}"))
            .output();
        match out {
            Ok(o) if o.status.success() => parse_journal(&String::from_utf8_lossy(&o.stdout)),
            _ => Vec::new(),
        }
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
        systemctl_show(unit, &["WantedBy", "RequiredBy", "RequisiteOf", "BoundBy"])
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
            extra: Default::default(),
        })
    }
}

#[cfg(test)]
#[path = "onbehalf_tests.rs"]
mod tests;
