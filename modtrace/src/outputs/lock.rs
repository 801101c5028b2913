//! `modtrace lock`: load the required modules, check they are loaded, then set
//! kernel.modules_disabled=1. Every step that touches the system goes through
//! [`Host`], so the logic is tested without a kernel; `--dry-run` prints the
//! steps and changes nothing.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::needs::{trust, Plan};
use crate::outputs::check::SystemPaths;
use crate::outputs::generate::LockPoint;
use crate::profile::{Profile, Verdict as Decided};
use crate::said::Said;
use crate::trace::snapshot::parse_proc_modules;

/// The system, as far as locking is concerned.
pub trait Host {
    /// kernel.modules_disabled is 1.
    fn locked(&self) -> Result<bool, String>;
    /// The modules loaded now (live ones).
    fn loaded(&self) -> Result<BTreeSet<String>, String>;
    /// Loads `module` (and its dependencies).
    fn modprobe(&mut self, module: &str) -> Result<(), String>;
    /// Writes 1 to kernel.modules_disabled.
    fn lock(&mut self) -> Result<(), String>;
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    pub dry_run: bool,
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Locked now (or, dry-run, would lock).
    Locked,
    /// Was locked already, and everything required is loaded.
    AlreadyLocked,
    /// Was locked already, but required modules are missing.
    AlreadyLockedMissing(Vec<String>),
    /// Did not lock, and why.
    Refused(Vec<String>),
    /// A step failed (reading state, writing the sysctl).
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What was done (or, dry-run, would be done), one line a step.
    pub steps: Vec<String>,
    pub result: Verdict,
}

impl Outcome {
    pub fn success(&self) -> bool {
        matches!(self.result, Verdict::Locked | Verdict::AlreadyLocked)
    }
}

/// `modtrace lock` on the system under `root`: the checks as at the late lock
/// point (everything the boot starts has started), then `lock`; what to say
/// and the exit status.
pub fn lock_here(profile: &Profile, root: &Path, opts: Options) -> (Said, u8) {
    let paths = SystemPaths::new(root);
    let report = crate::outputs::check::evaluate_system(profile, &paths, Some(LockPoint::Late));
    let mut said = Said::default();
    for w in &report.warnings {
        said.err(format!("modtrace: warning: {w}"));
    }
    let required = required(profile, report.plan.as_ref());
    let outcome = lock(&required, &report.blockers, &mut SystemHost::new(paths), opts);
    let (steps, status) = outcome.said(opts);
    said.append(steps);
    (said, status)
}

/// The top-level modules to load before locking: the plan's, or with no plan
/// for this kernel (its index is unreadable: only with --force) the profile's
/// own top-level modules that a trusted cause or an admin's allow asked for,
/// and no deny refused.
pub fn required(profile: &Profile, plan: Option<&Plan>) -> Vec<String> {
    if let Some(plan) = plan {
        return plan.top_level.clone();
    }
    let wanted = |m: &&crate::profile::Module| {
        let decided = profile.decision(&m.name).map(|d| d.verdict);
        decided == Some(Decided::Allow)
            || (decided.is_none() && m.triggers.iter().any(|t| trust::of_trigger(t).trusted()))
    };
    profile
        .modules
        .iter()
        .filter(|m| m.top_level && crate::validate::check_module(&m.name).is_ok())
        .filter(wanted)
        .map(|m| m.name.clone())
        .collect()
}

impl Outcome {
    /// The steps, then the verdict in words; and the exit status (0 locked).
    pub fn said(&self, opts: Options) -> (Said, u8) {
        let mut said = Said::default();
        for s in &self.steps {
            said.out(s.clone());
        }
        match &self.result {
            Verdict::Locked | Verdict::AlreadyLocked => return (said, 0),
            Verdict::AlreadyLockedMissing(missing) => said.err(format!(
                "modtrace: already locked, but {} required module(s) are not loaded: {}",
                missing.len(),
                missing.join(", ")
            )),
            Verdict::Refused(why) => {
                let what = if opts.dry_run { "dry run: the lock would be refused" } else { "refusing to lock" };
                let force = if opts.force { "" } else { "; --force locks anyway" };
                said.err(format!("modtrace: {what} ({} reason(s) above){force}", why.len()));
            }
            Verdict::Failed(e) => said.err(format!("modtrace: {e}")),
        }
        (said, 1)
    }
}

/// Locks module loading after loading `required` (top-level modules). `blockers`
/// are what `check` found; they refuse the lock unless `opts.force`.
pub fn lock(required: &[String], blockers: &[String], host: &mut dyn Host, opts: Options) -> Outcome {
    let mut steps = Vec::new();
    let done = |steps: Vec<String>, result| Outcome { steps, result };
    let locked = match host.locked() {
        Ok(l) => l,
        Err(e) => return done(steps, Verdict::Failed(format!("cannot read kernel.modules_disabled: {e}"))),
    };
    let loaded = match host.loaded() {
        Ok(l) => l,
        Err(e) => return done(steps, Verdict::Failed(format!("cannot read the loaded modules: {e}"))),
    };
    if locked {
        let result = already_locked(required, &loaded, &mut steps);
        return done(steps, result);
    }
    if !blockers.is_empty() {
        steps.push(format!("modtrace check found {} blocker(s):", blockers.len()));
        steps.extend(blockers.iter().map(|b| format!("  - {b}")));
        if !opts.force {
            return done(steps, Verdict::Refused(blockers.to_vec()));
        }
        steps.push("--force: locking anyway".to_string());
    }
    let mut failures = load_required(required, &loaded, host, opts, &mut steps);
    verify_loaded(required, host, opts, &mut failures, &mut steps);
    if !failures.is_empty() {
        if !opts.force {
            steps.push("not locking: a required module is not loaded (use --force to lock anyway)".to_string());
            return done(steps, Verdict::Refused(failures));
        }
        steps.push(format!("--force: locking although {} required module(s) are not loaded", failures.len()));
    }
    let result = set_lock(host, opts, &mut steps);
    done(steps, result)
}

fn already_locked(required: &[String], loaded: &BTreeSet<String>, steps: &mut Vec<String>) -> Verdict {
    steps.push("kernel.modules_disabled is already 1: module loading is locked until reboot".to_string());
    let missing: Vec<String> = required.iter().filter(|m| !loaded.contains(*m)).cloned().collect();
    if missing.is_empty() {
        steps.push(format!("all {} required modules are loaded", required.len()));
        return Verdict::AlreadyLocked;
    }
    steps.push(format!("required but not loaded, and no longer loadable: {}", missing.join(", ")));
    Verdict::AlreadyLockedMissing(missing)
}

/// modprobe for each required module not loaded yet; the failures.
fn load_required(
    required: &[String],
    loaded: &BTreeSet<String>,
    host: &mut dyn Host,
    opts: Options,
    steps: &mut Vec<String>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for m in required {
        if loaded.contains(m) {
            steps.push(format!("{m}: already loaded"));
        } else if opts.dry_run {
            steps.push(format!("would run: modprobe -- {m}"));
        } else if let Err(e) = host.modprobe(m) {
            steps.push(format!("modprobe -- {m}: FAILED: {e}"));
            failures.push(format!("{m} failed to load: {e}"));
        } else {
            steps.push(format!("modprobe -- {m}: ok"));
        }
    }
    failures
}

/// Adds to `failures` each required module not loaded after modprobe.
fn verify_loaded(
    required: &[String],
    host: &mut dyn Host,
    opts: Options,
    failures: &mut Vec<String>,
    steps: &mut Vec<String>,
) {
    if opts.dry_run {
        steps.push(format!("would check that all {} required modules are loaded", required.len()));
        return;
    }
    match host.loaded() {
        Ok(now) => {
            for m in required {
                if !now.contains(m) && !failures.iter().any(|f| f.starts_with(&format!("{m} "))) {
                    failures.push(format!("{m} is not loaded after modprobe"));
                }
            }
            if failures.is_empty() {
                steps.push(format!("all {} required modules are loaded", required.len()));
            }
        }
        Err(e) => failures.push(format!("cannot read the loaded modules: {e}")),
    }
}

fn set_lock(host: &mut dyn Host, opts: Options, steps: &mut Vec<String>) -> Verdict {
    let would = if opts.dry_run { "would " } else { "" };
    steps.push(format!("{would}write 1 to /proc/sys/kernel/modules_disabled"));
    if !opts.dry_run {
        if let Err(e) = host.lock() {
            return Verdict::Failed(format!("cannot set kernel.modules_disabled=1: {e}"));
        }
        steps.push("locked: no module can be loaded or removed until reboot".to_string());
    }
    Verdict::Locked
}

/// The real system: /proc, /sys and modprobe.
#[derive(Debug, Clone)]
pub struct SystemHost {
    pub paths: SystemPaths,
    pub modprobe: PathBuf,
}

impl SystemHost {
    pub fn new(paths: SystemPaths) -> SystemHost {
        let modprobe = ["/sbin/modprobe", "/usr/sbin/modprobe", "/usr/bin/modprobe"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("modprobe"));
        SystemHost { paths, modprobe }
    }
}

impl Host for SystemHost {
    fn locked(&self) -> Result<bool, String> {
        let path = self.paths.modules_disabled();
        match fs::read_to_string(&path) {
            Ok(t) => Ok(t.trim() != "0"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
                "no {}: this kernel has no loadable module support, there is nothing to lock",
                path.display()
            )),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    fn loaded(&self) -> Result<BTreeSet<String>, String> {
        let path = self.paths.proc_modules();
        let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mods = parse_proc_modules(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut live: BTreeSet<String> = mods.into_iter().filter(|m| m.state == "Live").map(|m| m.name).collect();
        // Built-in modules are in /sys/module but never in /proc/modules.
        if let Ok(dir) = fs::read_dir(self.paths.sys_module()) {
            for e in dir.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !e.path().join("initstate").exists() {
                    live.insert(crate::trace::modindex::normalize(&name));
                }
            }
        }
        Ok(live)
    }

    fn modprobe(&mut self, module: &str) -> Result<(), String> {
        let out = Command::new(&self.modprobe)
            .arg("--")
            .arg(module)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.modprobe.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
            Err(if err.is_empty() { format!("modprobe exited with {}", out.status) } else { err })
        }
    }

    fn lock(&mut self) -> Result<(), String> {
        let path = self.paths.modules_disabled();
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"1\n"))
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_plan_only_trusted_or_allowed_top_level_modules_are_required() {
        let mut p = crate::testutil::untrusted_profile();
        let top: Vec<String> = p.modules.iter().filter(|m| m.top_level).map(|m| m.name.clone()).collect();
        assert!(top.contains(&"vfat".to_string()) && top.contains(&"dummy".to_string()), "{top:?}");
        let before = required(&p, None);
        assert!(!before.is_empty() && !before.contains(&"vfat".to_string()), "{before:?}");
        assert!(!before.contains(&"dummy".to_string()), "{before:?}");
        crate::profile::decide::decide(&mut p, "vfat", Decided::Allow, "2024-03-02T00:00:00Z").unwrap();
        crate::profile::decide::decide(&mut p, &before[0], Decided::Deny, "2024-03-02T00:00:00Z").unwrap();
        let after = required(&p, None);
        assert!(after.contains(&"vfat".to_string()) && !after.contains(&before[0]), "{after:?}");
        let plan = Plan { top_level: vec!["ext4".into()], ..Plan::default() };
        assert_eq!(required(&p, Some(&plan)), ["ext4"], "a plan's list wins");
    }

    /// A host in memory that records every call that would change the system.
    #[derive(Default)]
    struct Fake {
        locked: bool,
        loaded: BTreeSet<String>,
        /// Modules whose modprobe fails.
        broken: BTreeSet<String>,
        /// Modules modprobe "loads" without them showing up.
        vanishing: BTreeSet<String>,
        calls: Vec<String>,
    }

    impl Host for Fake {
        fn locked(&self) -> Result<bool, String> {
            Ok(self.locked)
        }
        fn loaded(&self) -> Result<BTreeSet<String>, String> {
            Ok(self.loaded.clone())
        }
        fn modprobe(&mut self, module: &str) -> Result<(), String> {
            self.calls.push(format!("modprobe {module}"));
            if self.broken.contains(module) {
                return Err(format!("modprobe: FATAL: Module {module} not found"));
            }
            if !self.vanishing.contains(module) {
                self.loaded.insert(module.to_string());
            }
            Ok(())
        }
        fn lock(&mut self) -> Result<(), String> {
            self.calls.push("lock".to_string());
            self.locked = true;
            Ok(())
        }
    }

    fn req() -> Vec<String> {
        vec!["appletalk".into(), "ext4".into(), "snd_hda_intel".into()]
    }

    fn fake(loaded: &[&str]) -> Fake {
        Fake { loaded: loaded.iter().map(|s| s.to_string()).collect(), ..Fake::default() }
    }

    #[test]
    fn loads_verifies_then_locks() {
        let mut h = fake(&["ext4"]);
        let out = lock(&req(), &[], &mut h, Options::default());
        assert_eq!(out.result, Verdict::Locked, "{:?}", out.steps);
        assert_eq!(h.calls, ["modprobe appletalk", "modprobe snd_hda_intel", "lock"]);
        assert!(out.steps.contains(&"ext4: already loaded".to_string()));
        assert!(out.steps.iter().any(|s| s == "all 3 required modules are loaded"));
    }

    #[test]
    fn dry_run_prints_every_step_and_calls_nothing() {
        let mut h = fake(&["ext4"]);
        let out = lock(&req(), &[], &mut h, Options { dry_run: true, force: false });
        assert!(h.calls.is_empty(), "{:?}", h.calls);
        assert!(!h.locked);
        assert_eq!(out.result, Verdict::Locked);
        assert_eq!(
            out.steps,
            [
                "would run: modprobe -- appletalk",
                "ext4: already loaded",
                "would run: modprobe -- snd_hda_intel",
                "would check that all 3 required modules are loaded",
                "would write 1 to /proc/sys/kernel/modules_disabled",
            ]
        );
    }

    #[test]
    fn a_failing_modprobe_refuses_the_lock() {
        let mut h = fake(&[]);
        h.broken.insert("snd_hda_intel".into());
        let out = lock(&req(), &[], &mut h, Options::default());
        match &out.result {
            Verdict::Refused(why) => {
                assert!(why[0].contains("snd_hda_intel failed to load: modprobe: FATAL"), "{why:?}")
            }
            other => panic!("{other:?}"),
        }
        assert!(!h.calls.contains(&"lock".to_string()), "{:?}", h.calls);
        assert!(!out.success());
    }

    #[test]
    fn a_module_missing_after_modprobe_refuses_the_lock() {
        let mut h = fake(&[]);
        h.vanishing.insert("ext4".into());
        let out = lock(&req(), &[], &mut h, Options::default());
        assert_eq!(out.result, Verdict::Refused(vec!["ext4 is not loaded after modprobe".into()]));
        assert!(!h.locked);
    }

    #[test]
    fn force_locks_despite_failures_and_blockers() {
        let mut h = fake(&[]);
        h.broken.insert("appletalk".into());
        let blockers = vec!["wireguard is loaded now but not in the profile".to_string()];
        let out = lock(&req(), &blockers, &mut h, Options { dry_run: false, force: true });
        assert_eq!(out.result, Verdict::Locked, "{:?}", out.steps);
        assert!(h.locked);
        assert!(out.steps.iter().any(|s| s.starts_with("--force: locking although 1")), "{:?}", out.steps);
    }

    #[test]
    fn blockers_refuse_before_anything_is_loaded() {
        let mut h = fake(&[]);
        let blockers = vec!["request for net-pf-5 would fail".to_string()];
        let out = lock(&req(), &blockers, &mut h, Options::default());
        assert_eq!(out.result, Verdict::Refused(blockers));
        assert!(h.calls.is_empty(), "{:?}", h.calls);
    }

    #[test]
    fn already_locked_says_so() {
        let mut h = fake(&["appletalk", "ext4", "snd_hda_intel"]);
        h.locked = true;
        let out = lock(&req(), &[], &mut h, Options::default());
        assert_eq!(out.result, Verdict::AlreadyLocked);
        assert!(out.success() && h.calls.is_empty());
        let mut h = fake(&["ext4"]);
        h.locked = true;
        let out = lock(&req(), &[], &mut h, Options::default());
        assert_eq!(out.result, Verdict::AlreadyLockedMissing(vec!["appletalk".into(), "snd_hda_intel".into()]));
        assert!(!out.success() && h.calls.is_empty());
    }

    #[test]
    fn system_host_reads_proc_and_sys_under_a_root() {
        let dir = crate::testutil::TempDir::new("lock-host");
        let paths = SystemPaths::new(dir.path());
        std::fs::create_dir_all(dir.join("proc/sys/kernel")).unwrap();
        std::fs::write(paths.modules_disabled(), "0\n").unwrap();
        std::fs::write(paths.proc_modules(), "ext4 1 0 - Live 0x0\nllc 1 0 - Loading 0x0\n").unwrap();
        std::fs::create_dir_all(paths.sys_module().join("unix")).unwrap(); // built in: no initstate
        std::fs::create_dir_all(paths.sys_module().join("llc")).unwrap();
        std::fs::write(paths.sys_module().join("llc/initstate"), "coming\n").unwrap();
        let mut host = SystemHost::new(paths.clone());
        assert!(!host.locked().unwrap());
        assert_eq!(host.loaded().unwrap().into_iter().collect::<Vec<_>>(), ["ext4", "unix"]);
        host.lock().unwrap();
        assert!(host.locked().unwrap());
    }
}
