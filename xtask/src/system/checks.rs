//! The host's verdict on the two boots: named checks over the files the guest
//! scripts recorded (tests/system/common.sh: one file per fact), each failing
//! with its evidence.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use super::LockPoint;
use crate::check::{self, Check, CheckFn};
use crate::system::services::Known;

mod deputy;
pub mod desktop;
mod dracut;
mod evidence;
mod guard;
pub mod refused_device;
mod sealed;
mod services;
pub mod upgrade;
pub use services::explained;

/// The fake display manager and the modules it makes the kernel request.
const FAKE_DM: &str = "fake-dm.service";
const FAKE_DM_MODULES: [&str; 4] = ["binfmt_misc", "appletalk", "psnap", "llc"];
const FAKE_DM_ALIAS: &str = "net-pf-5";
const BINFMT_ALIAS: &str = "fs-binfmt_misc";
const LEARN_UNIT: &str = "modtrace-learn.service";
const LOCK_UNIT: &str = "modtrace-lock.service";
/// The unit of locked.sh, which makes the denied attempts.
const LOCKED_UNIT: &str = "modtrace-test-locked.service";
/// locked.sh's attempts (tests/system/locked.sh): modules the profile must not have.
const DENIED_EXPLICIT: &str = "isofs";
const DENIED_EXPLICIT_DEPENDENCY: &str = "cdrom";
const DENIED_IN_MEMORY: &str = super::image::LOOSE_MODULE;
const DENIED_ALIAS: &str = "net-pf-35";
const DENIED_REQUESTED: &str = "phonet";
const MODPROBE: &str = "modprobe";
const GUEST_TOOL: &str = "modtrace-guest";
const EPERM_TEXT: &str = "Operation not permitted";

/// The files one boot's script left, by path relative to its result directory.
#[derive(Debug, Default, Clone)]
pub struct Recorded {
    files: BTreeMap<String, String>,
}

impl Recorded {
    pub fn read_dir(dir: &Path) -> Result<Self> {
        let mut recorded = Recorded::default();
        recorded.add_dir(dir, "")?;
        Ok(recorded)
    }

    fn add_dir(&mut self, dir: &Path, prefix: &str) -> Result<()> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.file_type()?.is_dir() {
                self.add_dir(&entry.path(), &format!("{name}/"))?;
            } else {
                self.files.insert(name, String::from_utf8_lossy(&fs::read(entry.path())?).into_owned());
            }
        }
        Ok(())
    }

    #[cfg(test)]
    pub fn insert(&mut self, name: &str, text: &str) {
        self.files.insert(name.to_string(), text.to_string());
    }

    #[cfg(test)]
    pub fn remove(&mut self, name: &str) {
        self.files.remove(name);
    }

    pub fn text(&self, name: &str) -> Result<&str, String> {
        self.files.get(name).map(String::as_str).ok_or_else(|| format!("nothing recorded in {name}"))
    }

    /// The exit status in NAME.status.
    fn status(&self, name: &str) -> Result<i32, String> {
        let file = format!("{name}.status");
        let text = self.text(&file)?;
        text.trim().parse().map_err(|_| format!("{file} is not a number: {text:?}"))
    }

    /// A command's stderr and stdout, for evidence.
    fn said(&self, name: &str) -> String {
        let mut out = String::new();
        for ext in ["err", "out"] {
            if let Ok(text) = self.text(&format!("{name}.{ext}")) {
                out += text.trim_end();
                out += "\n";
            }
        }
        out.trim_end().to_string()
    }

    /// `systemctl show` of UNIT, as recorded in FILE (default unit-UNIT.show).
    pub fn unit(&self, unit: &str) -> Result<Unit, String> {
        self.unit_in(&format!("unit-{unit}.show"))
    }

    fn unit_in(&self, file: &str) -> Result<Unit, String> {
        let props = self
            .text(file)?
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Unit { props })
    }

    /// Module names in a copy of /proc/modules.
    pub fn modules(&self, name: &str) -> Result<BTreeSet<String>, String> {
        let modules: BTreeSet<String> =
            self.text(name)?.lines().filter_map(|l| l.split_whitespace().next()).map(String::from).collect();
        if modules.is_empty() {
            return Err(format!("{name} lists no module"));
        }
        Ok(modules)
    }

    fn profile(&self) -> Result<Value, String> {
        let text = self.text("profile.json")?;
        serde_json::from_str(text).map_err(|e| format!("profile.json does not parse: {e}"))
    }

    /// The JSON lines of `modtrace trace --json`.
    fn trace(&self) -> Result<Vec<Value>, String> {
        let mut records = Vec::new();
        for line in self.text("trace.jsonl")?.lines().filter(|l| !l.trim().is_empty()) {
            records.push(serde_json::from_str(line).map_err(|e| format!("trace.jsonl: {e}: {line}"))?);
        }
        Ok(records)
    }
}

/// A unit's properties from `systemctl show`.
pub struct Unit {
    props: BTreeMap<String, String>,
}

impl Unit {
    pub fn get(&self, key: &str) -> &str {
        self.props.get(key).map_or("", String::as_str)
    }

    /// A monotonic timestamp (µs since boot); None when unset (0 or missing).
    pub fn micros(&self, key: &str) -> Option<u64> {
        self.get(key).parse().ok().filter(|&t| t > 0)
    }

    fn expect(&self, key: &str, want: &str) -> Result<(), String> {
        match self.get(key) {
            got if got == want => Ok(()),
            got => Err(format!("{} has {key}={got:?}, expected {want:?} ({})", self.get("Id"), self.summary())),
        }
    }

    fn summary(&self) -> String {
        ["ActiveState", "SubState", "Result", "ExecMainStatus"]
            .iter()
            .map(|k| format!("{k}={}", self.get(k)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One boot: how QEMU ended, and what the guest recorded.
#[derive(Clone)]
pub struct Boot {
    pub finished: Result<(), String>,
    pub recorded: Option<Recorded>,
}

impl Boot {
    pub fn not_run(why: &str) -> Self {
        Boot { finished: Err(why.to_string()), recorded: None }
    }
}

/// Everything a check may look at.
pub struct Facts {
    pub lock_point: LockPoint,
    pub boot1: Boot,
    pub boot2: Boot,
    /// The guard boot between them (guard.rs), for a suite that has one.
    pub guard: Option<Boot>,
    /// That guard boot sealed the guard at boot (seal.rs) instead of refreshing it.
    pub sealed_guard: bool,
    /// For a suite with the real services (services.rs): what the host knows.
    pub services: Option<Known>,
    /// For a suite whose initramfs dracut built (system/dracut.rs): the modules it holds.
    pub dracut: Option<BTreeSet<String>>,
    /// The guard and locked boots had the watchdog whose driver udev cannot
    /// load (refused_device.rs).
    pub watchdog: bool,
    /// The desktop suite (system/desktop.rs): lightdm and Xfce instead of fake-dm.
    pub desktop: bool,
}

impl Facts {
    fn b1(&self) -> Result<&Recorded, String> {
        self.boot1.recorded.as_ref().ok_or_else(|| "boot 1 recorded nothing".to_string())
    }

    fn b2(&self) -> Result<&Recorded, String> {
        self.boot2.recorded.as_ref().ok_or_else(|| "boot 2 recorded nothing".to_string())
    }

    /// The profile's modules less those only a deputy's clients or only
    /// unprivileged processes asked for (held for review, so not loaded in the
    /// locked boots).
    fn kept_modules(&self) -> Result<BTreeSet<String>, String> {
        let profile = self.b1()?.profile()?;
        let held: BTreeSet<String> = deputy::clients_only(&profile).into_iter().chain(users_only(&profile)).collect();
        Ok(self.profile_modules()?.difference(&held).cloned().collect())
    }

    /// The module names of the profile boot 1 learned.
    fn profile_modules(&self) -> Result<BTreeSet<String>, String> {
        let profile = self.b1()?.profile()?;
        let modules = profile.get("modules").and_then(Value::as_array).ok_or("the profile has no modules list")?;
        Ok(modules.iter().filter_map(|m| m.get("name").and_then(Value::as_str)).map(String::from).collect())
    }
}

/// Modules of the profile that only unprivileged processes asked for (on the
/// desktop, the user's PipeWire asks for snd-seq): held for review.
fn users_only(profile: &Value) -> BTreeSet<String> {
    let by_a_user = |t: &Value| t.pointer("/requester/uid").and_then(Value::as_u64).is_some_and(|uid| uid != 0);
    let all = profile.get("modules").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    all.iter()
        .filter(|m| !services::triggers(m).is_empty() && services::triggers(m).iter().all(by_a_user))
        .filter_map(|m| m.get("name").and_then(Value::as_str).map(String::from))
        .collect()
}

const CHECKS: &[(&str, CheckFn<Facts>)] = &[
    ("boot1_finished", |f| f.boot1.finished.clone()),
    ("boot1_reached_multi_user", |f| reached_multi_user(f.b1()?)),
    ("boot1_no_failed_units", |f| no_failed_units(f.b1()?)),
    ("boot1_unlocked", |f| modules_disabled(f.b1()?, "0")),
    ("package_installed_from_deb", package_installed),
    ("learn_service_learned_and_saved", learned_and_saved),
    ("generate_installed_lock_down", generate_installed),
    ("check_found_no_blockers", check_found_no_blockers),
    ("boot2_units_enabled", boot2_units_enabled),
    ("boot2_finished", |f| f.boot2.finished.clone()),
    ("boot2_reached_multi_user", |f| reached_multi_user(f.b2()?)),
    ("boot2_no_failed_units", |f| no_failed_units(f.b2()?)),
    ("lock_service_succeeded", lock_service_succeeded),
    ("modules_disabled_is_1", |f| modules_disabled(f.b2()?, "1")),
    ("boot1_modules_kept_in_boot2", boot1_modules_kept),
    ("profile_covers_boot1_modules", profile_covers_boot1),
    ("profile_modules_were_loaded_in_boot1", profile_modules_loaded),
    ("nothing_before_learning", nothing_before_learning),
    ("denied_modprobe_eperm", denied_modprobe),
    ("denied_init_module_eperm", denied_init_module),
    ("denied_request_eperm", denied_request),
    ("tracer_ran_cleanly", tracer_ran_cleanly),
    ("traced_denied_modprobe", traced_denied_modprobe),
    ("traced_denied_init_module", traced_denied_init_module),
    ("traced_denied_request", traced_denied_request),
    ("purge_keeps_profile_and_lock", purge_keeps_profile),
];

/// The stand-in display manager's, in every suite but the desktop.
const FAKE_DM_CHECKS: &[(&str, CheckFn<Facts>)] = &[
    ("profile_has_fake_dm_requests", profile_has_fake_dm_requests),
    ("fake_dm_succeeded_after_lock", fake_dm_succeeded),
    ("fake_dm_modules_loaded", fake_dm_modules_loaded),
];

/// The common checks, then those of the services and the guard boot where the suite has them.
pub fn check_all(facts: &Facts) -> Vec<Check> {
    let services = if facts.services.is_some() { services::SERVICE_CHECKS } else { &[] };
    let deputy = if facts.services.is_some() { &deputy::DEPUTY_CHECKS[..] } else { &[] };
    let evidence = if facts.services.is_some() { &evidence::EVIDENCE_CHECKS[..] } else { &[] };
    let guard = if facts.guard.is_some() { guard::GUARD_CHECKS } else { &[] };
    let after = match (facts.guard.is_some(), facts.sealed_guard) {
        (false, _) => &[][..],
        (true, false) => guard::REFRESH_CHECKS,
        (true, true) => sealed::SEALED_CHECKS,
    };
    let dracut = if facts.dracut.is_some() { dracut::DRACUT_CHECKS } else { &[] };
    let watchdog = if facts.watchdog { refused_device::REFUSED_DEVICE_CHECKS } else { &[] };
    let (fake_dm, desktop) = match facts.desktop {
        false => (FAKE_DM_CHECKS, &[][..]),
        true => (&[][..], desktop::DESKTOP_CHECKS),
    };
    let tables = [CHECKS, fake_dm, services, deputy, evidence, guard, after, dracut, watchdog, desktop];
    tables.into_iter().flat_map(|table| check::run(table, facts)).collect()
}

// ---- both boots ----

fn reached_multi_user(r: &Recorded) -> Result<(), String> {
    let target = r.unit("multi-user.target")?;
    target.expect("ActiveState", "active")?;
    target
        .micros("ActiveEnterTimestampMonotonic")
        .map(|_| ())
        .ok_or_else(|| "multi-user.target was never entered".into())
}

/// `systemctl is-system-running` says running (not degraded), no unit failed.
fn no_failed_units(r: &Recorded) -> Result<(), String> {
    let state = r.text("system-state")?.trim();
    let failed = r.text("failed-units")?.trim();
    if state.lines().last() != Some("running") || !failed.is_empty() {
        return Err(format!("system state {state:?}; failed units: {failed:?}"));
    }
    Ok(())
}

fn modules_disabled(r: &Recorded, want: &str) -> Result<(), String> {
    match r.text("modules-disabled")?.trim() {
        got if got == want => Ok(()),
        got => Err(format!("kernel.modules_disabled is {got:?}, expected {want}")),
    }
}

// ---- boot 1: learning and generating ----

/// dpkg knows modtrace as installed: the image got it from its .deb.
fn package_installed(f: &Facts) -> Result<(), String> {
    let status = f.b1()?.text("package-status")?.trim();
    match status.strip_prefix("install ok installed ") {
        Some(version) if !version.is_empty() => Ok(()),
        _ => Err(format!("dpkg-query says {status:?}, not `install ok installed VERSION`")),
    }
}

/// The learner ran through the boot, saved on SIGTERM and lost nothing.
fn learned_and_saved(f: &Facts) -> Result<(), String> {
    let r = f.b1()?;
    r.unit(LEARN_UNIT)?.expect("ActiveState", "active")?;
    if r.status("learn-stop")? != 0 {
        return Err(format!("systemctl stop {LEARN_UNIT} failed: {}", r.said("learn-stop")));
    }
    let stopped = r.unit_in(&format!("unit-{LEARN_UNIT}.stopped"))?;
    let log = r.text("learn.log").unwrap_or_default().trim();
    stopped.expect("Result", "success").map_err(|e| format!("{e}; its log:\n{log}"))?;
    stopped.expect("ExecMainStatus", "0").map_err(|e| format!("{e}; its log:\n{log}"))?;
    let profile = r.profile()?;
    let session = profile.pointer("/sessions").and_then(Value::as_array).and_then(|s| s.last());
    let session = session.ok_or("the profile has no learning session")?;
    let ended_by = session.get("ended_by").and_then(Value::as_str).unwrap_or("");
    if ended_by != "SIGTERM" {
        return Err(format!("the session ended by {ended_by:?}, expected SIGTERM (systemctl stop): {session}"));
    }
    match session.get("lost_events").and_then(Value::as_u64) {
        Some(0) => Ok(()),
        lost => Err(format!("the session lost kernel events: {lost:?}")),
    }
}

/// The profile names fake-dm.service as the requester of net-pf-5 (appletalk)
/// and has every module of fake-dm, binfmt_misc as a request.
fn profile_has_fake_dm_requests(f: &Facts) -> Result<(), String> {
    let profile = f.b1()?.profile()?;
    let modules = profile.get("modules").and_then(Value::as_array).ok_or("the profile has no modules list")?;
    let module = |name: &str| modules.iter().find(|m| m.get("name").and_then(Value::as_str) == Some(name));
    let missing: Vec<&str> = FAKE_DM_MODULES.into_iter().filter(|m| module(m).is_none()).collect();
    if !missing.is_empty() {
        return Err(format!("the profile lacks {missing:?}"));
    }
    let triggers = |name: &str| module(name).and_then(|m| m.get("triggers")).and_then(Value::as_array).cloned();
    let appletalk = triggers("appletalk").unwrap_or_default();
    let by_fake_dm = appletalk.iter().any(|t| {
        t.get("kind").and_then(Value::as_str) == Some("request")
            && t.get("alias").and_then(Value::as_str) == Some(FAKE_DM_ALIAS)
            && t.pointer("/requester/unit").and_then(Value::as_str) == Some(FAKE_DM)
    });
    if !by_fake_dm {
        return Err(format!(
            "appletalk has no request {FAKE_DM_ALIAS} by {FAKE_DM}: triggers {}",
            Value::from(appletalk)
        ));
    }
    let binfmt = triggers("binfmt_misc").unwrap_or_default();
    let requested = binfmt.iter().any(|t| {
        t.get("kind").and_then(Value::as_str) == Some("request")
            && t.get("alias").and_then(Value::as_str) == Some(BINFMT_ALIAS)
    });
    if !requested {
        return Err(format!("binfmt_misc has no request {BINFMT_ALIAS}: triggers {}", Value::from(binfmt)));
    }
    Ok(())
}

/// `modtrace generate --out /` succeeded and wrote the list, the lock unit for
/// the lock point asked for, and (where it runs) fake-dm's drop-in naming appletalk.
fn generate_installed(f: &Facts) -> Result<(), String> {
    let r = f.b1()?;
    if r.status("generate")? != 0 {
        return Err(format!("modtrace generate failed ({}): {}", r.status("generate")?, r.said("generate")));
    }
    let list = r.text("generated/modtrace.conf")?;
    if !list.lines().any(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        return Err("modules-load.d/modtrace.conf lists no module".into());
    }
    let unit = r.text(&format!("generated/{LOCK_UNIT}"))?;
    let point = format!("X-Modtrace-LockPoint={}", f.lock_point.as_str());
    if !unit.lines().any(|l| l.trim() == point) || !unit.contains("modules_disabled") {
        return Err(format!("{LOCK_UNIT} has no `{point}` or does not write modules_disabled:\n{unit}"));
    }
    if f.desktop {
        return Ok(());
    }
    let dropin = r.text(&format!("generated/dropin-{FAKE_DM}.conf"))?;
    let wants = "modprobe@appletalk.service";
    if !dropin.lines().any(|l| l.starts_with("Wants=") && l.contains(wants)) {
        return Err(format!("{FAKE_DM}'s drop-in has no Wants={wants}:\n{dropin}"));
    }
    Ok(())
}

fn check_found_no_blockers(f: &Facts) -> Result<(), String> {
    let r = f.b1()?;
    match r.status("check")? {
        0 => Ok(()),
        code => Err(format!("modtrace check exited {code}:\n{}", r.said("check"))),
    }
}

fn boot2_units_enabled(f: &Facts) -> Result<(), String> {
    let r = f.b1()?;
    for step in ["enable", "disable"] {
        if r.status(step)? != 0 {
            return Err(format!("systemctl {step} failed: {}", r.said(step)));
        }
    }
    Ok(())
}

// ---- boot 2: locked ----

/// What `apt-get purge modtrace` left (tests/system/locked.sh): the profile and
/// the installed lock service stay, the program and generate's output go.
fn purge_keeps_profile(f: &Facts) -> Result<(), String> {
    let r = f.b2()?;
    let status = r.text("purge.status")?.trim();
    if status != "0" {
        return Err(format!("apt-get purge exited {status}: {}", r.text("purge.err").unwrap_or_default()));
    }
    let after = r.text("after-purge")?;
    let want = [
        "present /var/lib/modtrace/profile.json",
        "absent /var/lib/modtrace/generated",
        "absent /usr/sbin/modtrace",
        "present /etc/systemd/system/modtrace-lock.service",
    ];
    let missing: Vec<&str> = want.into_iter().filter(|w| !after.lines().any(|l| l == *w)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("after the purge, expected {missing:?}; the guest recorded:\n{after}"))
    }
}

fn lock_service_succeeded(f: &Facts) -> Result<(), String> {
    let lock = f.b2()?.unit(LOCK_UNIT)?;
    lock.expect("ActiveState", "active")?;
    lock.expect("Result", "success")
}

/// fake-dm succeeded; at the early and after-udev lock points it also started
/// after the lock, so the modules it needed came from the lock unit's list.
fn fake_dm_succeeded(f: &Facts) -> Result<(), String> {
    let r = f.b2()?;
    let dm = r.unit(FAKE_DM)?;
    dm.expect("ActiveState", "active")?;
    dm.expect("Result", "success")?;
    if f.lock_point == LockPoint::Late {
        return Ok(());
    }
    let locked =
        r.unit(LOCK_UNIT)?.micros("ActiveEnterTimestampMonotonic").ok_or("the lock unit never became active")?;
    let started = dm.micros("InactiveExitTimestampMonotonic").ok_or("fake-dm has no start time")?;
    if started < locked {
        return Err(format!(
            "fake-dm started at {:.3} s, before the lock at {:.3} s: its modules did not have to come from the list",
            secs(started),
            secs(locked)
        ));
    }
    Ok(())
}

/// fake-dm's modules were loaded in both boots (in boot 2 necessarily before
/// the lock: nothing loads after it).
fn fake_dm_modules_loaded(f: &Facts) -> Result<(), String> {
    for (boot, r) in [("boot 1", f.b1()?), ("boot 2", f.b2()?)] {
        let loaded = r.modules("proc-modules")?;
        let missing: Vec<&str> = FAKE_DM_MODULES.into_iter().filter(|m| !loaded.contains(*m)).collect();
        if !missing.is_empty() {
            return Err(format!("{boot} did not load {missing:?}"));
        }
    }
    Ok(())
}

/// Every module boot 1 had loaded that the profile keeps is loaded in the locked
/// boot: a boot that finishes with modules missing (a lock set too early) fails.
fn boot1_modules_kept(f: &Facts) -> Result<(), String> {
    let boot1 = f.b1()?.modules("proc-modules")?;
    let boot2 = f.b2()?.modules("proc-modules")?;
    let profile = f.kept_modules()?;
    let kept: BTreeSet<&String> = boot1.intersection(&profile).collect();
    if kept.is_empty() {
        return Err("the profile keeps none of boot 1's modules".into());
    }
    let missing: Vec<&&String> = kept.iter().filter(|m| !boot2.contains(**m)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "{} of the {} boot-1 modules the profile keeps are not loaded in boot 2: {missing:?}",
            missing.len(),
            kept.len()
        ));
    }
    Ok(())
}

/// Learning saw every module boot 1 loaded (or found it loaded when it started).
fn profile_covers_boot1(f: &Facts) -> Result<(), String> {
    let boot1 = f.b1()?.modules("proc-modules")?;
    let profile = f.profile_modules()?;
    let missing: Vec<&String> = boot1.difference(&profile).collect();
    if !missing.is_empty() {
        return Err(format!(
            "{} of boot 1's {} modules are not in the profile: {missing:?}",
            missing.len(),
            boot1.len()
        ));
    }
    Ok(())
}

/// The probes the initramfs started saw every load of boot 1: no module was
/// already there, unexplained, when learning started.
fn nothing_before_learning(f: &Facts) -> Result<(), String> {
    let profile = f.b1()?.profile()?;
    let modules = profile.get("modules").and_then(Value::as_array).ok_or("the profile has no modules list")?;
    let before: Vec<&str> = modules
        .iter()
        .filter(|m| {
            let triggers = m.get("triggers").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
            triggers.iter().any(|t| {
                t.get("kind").and_then(Value::as_str) == Some("preloaded")
                    && t.get("reason").and_then(Value::as_str).is_none_or(|r| r == "before learning")
            })
        })
        .filter_map(|m| m.get("name").and_then(Value::as_str))
        .collect();
    if !before.is_empty() {
        return Err(format!("{} modules were loaded before learning, untraced: {before:?}", before.len()));
    }
    let sessions = profile.get("sessions").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    if !sessions.iter().any(|s| s.get("from_initramfs").and_then(Value::as_u64).is_some_and(|n| n > 0)) {
        return Err(format!("no learning session took over the initramfs's probes: {sessions:?}"));
    }
    Ok(())
}

/// Every module of the profile was loaded in boot 1 when learning ended: a
/// module whose load failed (its init returned ENODEV: a driver for hardware
/// that is not there) must not be in the profile, or the lock unit's
/// `modprobe -a` fails on it and the machine is never locked.
fn profile_modules_loaded(f: &Facts) -> Result<(), String> {
    let boot1 = f.b1()?.modules("proc-modules")?;
    let profile = f.profile_modules()?;
    let never: Vec<&String> = profile.difference(&boot1).collect();
    if !never.is_empty() {
        return Err(format!(
            "the profile has {} modules that were not loaded when boot 1 ended (a failed load?): {never:?}",
            never.len()
        ));
    }
    Ok(())
}

/// A denied attempt of the locked boot 2 (see refused).
fn denied(f: &Facts, step: &str, modules: &[&str], eperm_text: bool) -> Result<(), String> {
    let profile = f.profile_modules()?;
    locked(f)?;
    refused(f.b2()?, &profile, step, modules, eperm_text)
}

/// An attempt recorded in `r` as `step` failed with EPERM (or, for a request,
/// failed), none of `modules` is loaded afterwards, and the profile never had
/// them (or the attempt proves nothing).
fn refused(
    r: &Recorded,
    profile: &BTreeSet<String>,
    step: &str,
    modules: &[&str],
    eperm_text: bool,
) -> Result<(), String> {
    if let Some(m) = modules.iter().find(|m| profile.contains(**m)) {
        return Err(format!("the profile has {m}: this attempt proves nothing"));
    }
    let status = r.status(step)?;
    let said = r.said(step);
    if status == 0 || (eperm_text && !said.contains(EPERM_TEXT)) {
        return Err(format!("{step} exited {status}, expected a failure with {EPERM_TEXT:?}: {said}"));
    }
    let after = r.modules("proc-modules-after")?;
    match modules.iter().find(|m| after.contains(**m)) {
        Some(m) => Err(format!("{m} is loaded after {step}")),
        None => Ok(()),
    }
}

/// The denied attempts mean something only in a locked boot.
fn locked(f: &Facts) -> Result<(), String> {
    modules_disabled(f.b2()?, "1").map_err(|e| format!("boot 2 is not locked, nothing could be refused: {e}"))
}

fn denied_modprobe(f: &Facts) -> Result<(), String> {
    denied(f, "deny-modprobe", &[DENIED_EXPLICIT, DENIED_EXPLICIT_DEPENDENCY], true)
}

fn denied_init_module(f: &Facts) -> Result<(), String> {
    denied(f, "deny-init-module", &[DENIED_IN_MEMORY], true)
}

/// socket(AF_PHONET) fails (EAFNOSUPPORT): the helper's load was refused.
fn denied_request(f: &Facts) -> Result<(), String> {
    denied(f, "deny-request", &[DENIED_REQUESTED], false)
}

// ---- boot 2: what modtrace trace saw of the denied attempts ----

fn tracer_ran_cleanly(f: &Facts) -> Result<(), String> {
    let r = f.b2()?;
    let err = r.text("trace.err")?;
    if !err.lines().any(|l| l.starts_with("modtrace: attached")) {
        return Err(format!("modtrace trace never attached:\n{err}"));
    }
    if r.status("trace")? != 0 {
        return Err(format!("modtrace trace exited {}:\n{err}", r.status("trace")?));
    }
    if err.contains("could not be decoded") || !err.contains("lost 0 ") {
        return Err(format!("modtrace trace lost or could not decode events:\n{err}"));
    }
    Ok(())
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn mentions(v: &Value, pointer: &str, word: &str) -> bool {
    v.pointer(pointer).and_then(Value::as_array).is_some_and(|a| a.iter().any(|w| w.as_str() == Some(word)))
}

/// Load records that failed with EPERM, made by `comm`.
fn denied_loads<'a>(records: &'a [Value], comm: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| text(r, "/kind") == "load" && text(r, "/error") == "EPERM" && text(r, "/process/comm") == comm)
        .collect()
}

/// The load and request records, one short line each, for evidence.
fn loads_summary(records: &[Value]) -> String {
    let lines: Vec<String> = records
        .iter()
        .filter(|r| matches!(text(r, "/kind"), "load" | "request"))
        .map(|r| {
            let what = match text(r, "/kind") {
                "load" => format!(
                    "load {} of {} ret={} error={}",
                    text(r, "/syscall"),
                    r.pointer("/module").and_then(Value::as_str).unwrap_or("?"),
                    r.pointer("/ret").and_then(Value::as_i64).unwrap_or(0),
                    r.pointer("/error").and_then(Value::as_str).unwrap_or("-"),
                ),
                _ => format!("request {}", text(r, "/alias")),
            };
            let cmdline: Vec<&str> = r
                .pointer("/process/cmdline")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            format!(
                "  {what} by {} (unit {}, cmdline {:?})",
                text(r, "/process/comm"),
                r.pointer("/process/unit").and_then(Value::as_str).unwrap_or("none"),
                cmdline.join(" ")
            )
        })
        .collect();
    if lines.is_empty() {
        "no load or request record at all".into()
    } else {
        format!("the trace has:\n{}", lines.join("\n"))
    }
}

fn expect_unit(r: &Value, unit: &str) -> Result<(), String> {
    match text(r, "/process/unit") {
        got if got == unit => Ok(()),
        got => Err(format!("the denied attempt is attributed to unit {got:?}, expected {unit}: {r}")),
    }
}

/// modprobe isofs: its finit_module (of cdrom, isofs's dependency, first) failed
/// with EPERM, attributed to modprobe in locked.sh's unit.
fn traced_denied_modprobe(f: &Facts) -> Result<(), String> {
    locked(f)?;
    let records = f.b2()?.trace()?;
    // Not the kernel's helper (`modprobe -q -- ALIAS`); its command line, when
    // modtrace has it, names isofs.
    let by_locked_sh = |r: &Value| match r.pointer("/process/cmdline").and_then(Value::as_array) {
        Some(_) => mentions(r, "/process/cmdline", DENIED_EXPLICIT) && !mentions(r, "/process/cmdline", "--"),
        None => true,
    };
    let found =
        denied_loads(&records, MODPROBE).into_iter().find(|r| text(r, "/syscall") == "finit_module" && by_locked_sh(r));
    let r = found.ok_or_else(|| {
        format!("no finit_module by modprobe {DENIED_EXPLICIT} failed with EPERM; {}", loads_summary(&records))
    })?;
    expect_unit(r, LOCKED_UNIT)
}

fn traced_denied_init_module(f: &Facts) -> Result<(), String> {
    locked(f)?;
    let records = f.b2()?.trace()?;
    let found = denied_loads(&records, GUEST_TOOL).into_iter().find(|r| text(r, "/syscall") == "init_module");
    let r = found
        .ok_or_else(|| format!("no init_module by {GUEST_TOOL} failed with EPERM; {}", loads_summary(&records)))?;
    expect_unit(r, LOCKED_UNIT)
}

/// socket(AF_PHONET): the request names modtrace-guest in locked.sh's unit, and
/// the kernel's modprobe helper for that alias was refused with EPERM.
fn traced_denied_request(f: &Facts) -> Result<(), String> {
    locked(f)?;
    let records = f.b2()?.trace()?;
    let request = records
        .iter()
        .find(|r| text(r, "/kind") == "request" && text(r, "/alias") == DENIED_ALIAS)
        .ok_or_else(|| format!("no request for {DENIED_ALIAS}; {}", loads_summary(&records)))?;
    if text(request, "/process/comm") != GUEST_TOOL {
        return Err(format!(
            "the request for {DENIED_ALIAS} names {:?}, expected {GUEST_TOOL}: {request}",
            text(request, "/process/comm")
        ));
    }
    expect_unit(request, LOCKED_UNIT)?;
    let helper = denied_loads(&records, MODPROBE)
        .into_iter()
        .any(|r| mentions(r, "/process/cmdline", DENIED_ALIAS) || text(r, "/cause/alias") == DENIED_ALIAS);
    if !helper {
        return Err(format!(
            "no load by the modprobe helper for {DENIED_ALIAS} failed with EPERM; {}",
            loads_summary(&records)
        ));
    }
    Ok(())
}

// ---- timings, for the report ----

pub fn secs(micros: u64) -> f64 {
    micros as f64 / 1e6
}

/// What the guest says about its boot's timing, one line each.
pub fn timings(r: &Recorded) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(line) = r.text("analyze-time").ok().and_then(|t| t.lines().next()) {
        lines.push(line.trim().to_string());
    }
    for (unit, key, what) in [
        ("multi-user.target", "ActiveEnterTimestampMonotonic", "multi-user.target reached"),
        (LOCK_UNIT, "ActiveEnterTimestampMonotonic", "modules locked"),
        (FAKE_DM, "InactiveExitTimestampMonotonic", "fake-dm started"),
        ("modtrace-guard.service", "ActiveEnterTimestampMonotonic", "guard in force"),
    ] {
        if let Some(t) = r.unit(unit).ok().and_then(|u| u.micros(key)) {
            lines.push(format!("{what} at {:.1} s", secs(t)));
        }
    }
    if let Ok(modules) = r.modules("proc-modules") {
        lines.push(format!("{} modules loaded", modules.len()));
    }
    lines
}

#[cfg(test)]
mod tests;
