//! `modtrace check`: before anyone locks, what would break. Pure: the profile,
//! the running kernel's index and the system's state (read from files under a
//! root, so tests use temp directories) in; blockers, warnings and information
//! out.
//!
//! Blockers: modules loaded now that the profile lacks; profile entries this
//! kernel cannot resolve; requests that would fail after the lock; units whose
//! modules nothing loads before the lock; an installed lock unit that misses
//! modules the profile needs; lost events while learning. The state of
//! kernel.modules_disabled, kernel.modprobe, lockdown, module.sig_enforce and the
//! LSM list is information.

pub mod desktop;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use crate::outputs::generate::lock_unit::{parse_installed, Installed};
use crate::needs::target::{Lookup, Target};
use crate::needs::{self as plan, Plan};
use crate::outputs::generate::LockPoint;
use crate::trace::modindex::normalize;
use crate::needs::trust;
use crate::profile::{self, PreloadSources, Profile};
use crate::needs::sitepolicy::SitePolicy;
use crate::trace::snapshot::parse_proc_modules;
use crate::validate;

/// Where the system's files are: everything under `root` ("/" on a real system).
#[derive(Debug, Clone)]
pub struct SystemPaths {
    pub root: PathBuf,
}

impl Default for SystemPaths {
    fn default() -> Self {
        SystemPaths { root: PathBuf::from("/") }
    }
}

impl SystemPaths {
    pub fn new(root: impl Into<PathBuf>) -> SystemPaths {
        SystemPaths { root: root.into() }
    }

    pub fn at(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    pub fn proc_modules(&self) -> PathBuf {
        self.at("/proc/modules")
    }
    pub fn modules_disabled(&self) -> PathBuf {
        self.at("/proc/sys/kernel/modules_disabled")
    }
    pub fn modprobe(&self) -> PathBuf {
        self.at("/proc/sys/kernel/modprobe")
    }
    pub fn osrelease(&self) -> PathBuf {
        self.at("/proc/sys/kernel/osrelease")
    }
    pub fn lockdown(&self) -> PathBuf {
        self.at("/sys/kernel/security/lockdown")
    }
    pub fn sig_enforce(&self) -> PathBuf {
        self.at("/sys/module/module/parameters/sig_enforce")
    }
    pub fn lsm(&self) -> PathBuf {
        self.at("/sys/kernel/security/lsm")
    }
    pub fn sys_module(&self) -> PathBuf {
        self.at("/sys/module")
    }
    pub fn modules_dir(&self, release: &str) -> PathBuf {
        self.at("/lib/modules").join(release)
    }
    pub fn lock_unit(&self) -> PathBuf {
        self.at(&format!("/{}", crate::outputs::generate::LOCK_UNIT))
    }
    pub fn preload_sources(&self) -> PreloadSources {
        PreloadSources::under(&self.root)
    }
}

/// The system's module-loading state, as far as it can be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub release: Option<String>,
    /// kernel.modules_disabled.
    pub modules_disabled: Option<bool>,
    /// kernel.modprobe (empty: the kernel loads nothing by itself).
    pub modprobe: Option<String>,
    /// The selected lockdown mode (none, integrity, confidentiality).
    pub lockdown: Option<String>,
    /// module.sig_enforce.
    pub sig_enforce: Option<bool>,
    pub lsm: Option<Vec<String>>,
    /// Modules in /proc/modules; None when there is no /proc/modules.
    pub loaded: Option<Vec<String>>,
    /// `modtrace guard`: None when it is not running.
    pub guard: Option<String>,
    /// Problems reading the above (other than absence).
    pub errors: Vec<String>,
}

fn read_trimmed(path: &Path, errors: &mut Vec<String>) -> Option<String> {
    match fs::read_to_string(path) {
        Ok(t) => Some(t.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            errors.push(format!("{}: {e}", path.display()));
            None
        }
    }
}

/// "none [integrity] confidentiality" -> "integrity".
pub fn selected_lockdown(text: &str) -> Option<String> {
    let start = text.find('[')?;
    let end = text[start..].find(']')? + start;
    Some(text[start + 1..end].to_string())
}

pub fn read_state(paths: &SystemPaths) -> State {
    let mut errors = Vec::new();
    let release = read_trimmed(&paths.osrelease(), &mut errors);
    let modules_disabled = read_trimmed(&paths.modules_disabled(), &mut errors).map(|t| t != "0");
    let modprobe = read_trimmed(&paths.modprobe(), &mut errors);
    let lockdown = read_trimmed(&paths.lockdown(), &mut errors).and_then(|t| selected_lockdown(&t));
    let sig_enforce = read_trimmed(&paths.sig_enforce(), &mut errors).map(|t| t == "Y" || t == "1");
    let lsm = read_trimmed(&paths.lsm(), &mut errors)
        .map(|t| t.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect());
    let loaded = match fs::read_to_string(paths.proc_modules()) {
        Ok(text) => match parse_proc_modules(&text) {
            Ok(mods) => Some(mods.into_iter().map(|m| m.name).collect()),
            Err(e) => {
                errors.push(format!("{}: {e}", paths.proc_modules().display()));
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            errors.push(format!("{}: {e}", paths.proc_modules().display()));
            None
        }
    };
    let guard = crate::guard::summary(&paths.at(crate::guard::kernel::PIN_DIR), &paths.at(crate::guard::STATE_FILE));
    State { release, modules_disabled, modprobe, lockdown, sig_enforce, lsm, loaded, guard, errors }
}

/// An installed modtrace-lock.service, if there is one written by modtrace,
/// with its list for kernel `release`.
pub fn read_installed(paths: &SystemPaths, release: Option<&str>) -> Option<Installed> {
    let unit = fs::read_to_string(paths.lock_unit()).ok()?;
    let list = release.and_then(|r| {
        let path = paths.at(&format!("/{}", crate::outputs::generate::lock_unit::list_path(r)));
        fs::read_to_string(path).ok().map(|text| (r, text))
    });
    parse_installed(&unit, list.as_ref().map(|(r, t)| (*r, t.as_str())))
}

/// Modules configured in modules-load.d (and on the kernel command line).
pub fn configured_modules(paths: &SystemPaths) -> BTreeSet<String> {
    profile::configured_reasons(&paths.preload_sources()).into_keys().collect()
}

/// The running kernel's target, from the state's release, or why not.
fn running_target(profile: &Profile, paths: &SystemPaths, state: &State) -> Result<Target, String> {
    let release = state
        .release
        .clone()
        .ok_or_else(|| format!("{}: cannot read the kernel release", paths.osrelease().display()))?;
    validate::check_release(&release).map_err(|rule| format!("kernel release {release:?}: {rule}"))?;
    let target = Target::open(&release, &paths.modules_dir(&release)).map_err(|e| e.to_string())?;
    target.following(profile).map_err(|e| e.to_string())
}

/// Runs the check for `profile` on the system under `paths`.
pub fn evaluate_system(profile: &Profile, paths: &SystemPaths, lock_point: Option<LockPoint>) -> Report {
    let state = read_state(paths);
    let target = running_target(profile, paths, &state);
    let installed = read_installed(paths, state.release.as_deref());
    let lock_point = lock_point.or(installed.as_ref().and_then(|i| i.lock_point)).unwrap_or(LockPoint::AfterUdev);
    evaluate(&Inputs {
        profile,
        target: target.as_ref().map_err(Clone::clone),
        state: &state,
        lock_point,
        installed,
        configured: configured_modules(paths),
        site: SitePolicy::read(&paths.root),
    })
}

/// What `check` works from.
pub struct Inputs<'a> {
    pub profile: &'a Profile,
    /// The running kernel's index, or why it could not be read.
    pub target: Result<&'a Target, String>,
    pub state: &'a State,
    pub lock_point: LockPoint,
    pub installed: Option<Installed>,
    /// Modules systemd-modules-load loads anyway (modules-load.d, command line).
    pub configured: BTreeSet<String>,
    /// The site's modprobe.d policy.
    pub site: SitePolicy,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub blockers: Vec<String>,
    pub warnings: Vec<String>,
    /// What only untrusted processes asked for: not loaded before the lock
    /// unless accepted; each with who asked, how often, why, and the command.
    pub review: Vec<String>,
    pub info: Vec<String>,
    pub plan: Option<Plan>,
    /// When the profile shows a display manager: the lock point's advice.
    pub desktop: Option<desktop::Desktop>,
}

impl Report {
    pub fn safe(&self) -> bool {
        self.blockers.is_empty()
    }
}

/// Who asked for a request, without the counts: the key that groups requests.
fn requesters_of(r: &profile::AliasRequest) -> String {
    let mut names: Vec<String> = r.requesters.iter().map(|q| plan::who(&q.who)).collect();
    names.dedup();
    if names.is_empty() {
        "unknown requester".to_string()
    } else {
        names.join(", ")
    }
}

fn who_requested(r: &profile::AliasRequest) -> String {
    let mut names: Vec<String> =
        r.requesters.iter().map(|q| format!("{}, {} time(s)", plan::who(&q.who), q.count)).collect();
    names.dedup();
    if names.is_empty() {
        "unknown requester".to_string()
    } else {
        names.join(", ")
    }
}

/// Blockers, warnings, review items and information for `inputs`, in four
/// passes over what the plan says is loaded before the lock.
pub fn evaluate(inputs: &Inputs) -> Report {
    let mut report = Report {
        info: state_info(inputs.state, inputs.lock_point),
        desktop: desktop::advise(inputs.profile, inputs.lock_point),
        ..Report::default()
    };
    learning_health(inputs, &mut report);
    let Some(loaded) = &inputs.state.loaded else {
        report.blockers.push(
            "this kernel has no loadable module support (no /proc/modules): there is nothing to lock".to_string(),
        );
        return report;
    };
    let (target, plan) = match target_and_plan(inputs) {
        Ok(found) => found,
        Err(blockers) => {
            unexplained_loads(inputs.profile, loaded, &|_| false, &mut report);
            report.blockers.extend(blockers);
            return report;
        }
    };
    // 1. Loaded now, and nothing in the profile explains it.
    let explained: BTreeSet<String> = plan.loaded_set().into_iter().chain(plan.needs.keys().cloned()).collect();
    unexplained_loads(inputs.profile, loaded, &|m| explained.contains(m), &mut report);
    // 2. Entries this kernel does not have.
    for u in &plan.unresolved {
        report.blockers.push(format!("not in kernel {}: {u}", target.release));
    }
    let before = before_lock(inputs, target, &plan, &mut report);
    // 3. Requests that would fail after the lock, and what the plan holds back.
    failing_requests(inputs, &plan, &before, &mut report);
    held_back(&plan, &before, &mut report);
    // 4. Units whose modules would not be there after the lock point.
    uncovered_units(&plan, &before, inputs.lock_point, &mut report);
    failed_loads(inputs, &before, &mut report);
    if inputs.lock_point == LockPoint::Early {
        report.warnings.push(
            "early lock point: drivers for hardware not present while learning (hotplug, a new disk) will not load"
                .to_string(),
        );
    }
    report.plan = Some(plan);
    report
}

/// Information: the state of module loading.
fn state_info(state: &State, lock_point: LockPoint) -> Vec<String> {
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "not available".to_string());
    let mut info = vec![format!("kernel: {}", show(&state.release))];
    info.push(match state.modules_disabled {
        Some(true) => "kernel.modules_disabled = 1: module loading is already locked until reboot".to_string(),
        Some(false) => "kernel.modules_disabled = 0: module loading is open".to_string(),
        None => "kernel.modules_disabled: not available (no module support?)".to_string(),
    });
    info.push(format!("modtrace guard: {}", state.guard.as_deref().unwrap_or("not running")));
    info.push(match state.modprobe.as_deref() {
        Some("") => {
            "kernel.modprobe is empty: the kernel requests no module by itself (request_module fails)".to_string()
        }
        Some(m) => format!("kernel.modprobe = {m}"),
        None => "kernel.modprobe: not available".to_string(),
    });
    info.push(format!("lockdown: {}", show(&state.lockdown)));
    info.push(format!(
        "module.sig_enforce: {}",
        match state.sig_enforce {
            Some(true) => "Y (only signed modules load)",
            Some(false) => "N",
            None => "not available",
        }
    ));
    info.push(format!(
        "LSMs: {}",
        state.lsm.as_ref().map(|l| l.join(",")).unwrap_or_else(|| "not available".to_string())
    ));
    info.push(format!("lock point checked: {}", lock_point.as_str()));
    info
}

/// What could not be read, what the profile warns of, and the events lost
/// while learning: lost loads or requests block, lost failures do not.
fn learning_health(inputs: &Inputs, report: &mut Report) {
    let p = inputs.profile;
    for e in &inputs.state.errors {
        report.warnings.push(format!("could not read {e}"));
    }
    report.warnings.extend(plan::profile_warnings(p).into_iter().filter(|w| !w.contains("events were lost")));
    let lost = crate::trace::drops::Verdict::of(p.sessions.iter().map(|s| (s.lost_events, s.drops.as_ref())));
    if lost.blocking > 0 {
        report.blockers.push(format!(
            "{} module requests or loads were lost while learning: the profile may miss modules; learn again",
            lost.blocking
        ));
    }
    if lost.unknown_kind > 0 {
        report.blockers.push(format!(
            "{} kernel events were lost while learning, by a modtrace that did not tell lost loads from lost \
             failures: the profile may miss modules; learn again",
            lost.unknown_kind
        ));
    }
    if lost.reported > 0 {
        report.warnings.push(format!(
            "{} failed load attempts, load results or untrusted processes' requests were lost while learning \
             (a flood): no module root needs is missing for them",
            lost.reported
        ));
    }
}

/// The running kernel and the plan for it, or the blockers that say why not.
fn target_and_plan<'a>(inputs: &Inputs<'a>) -> Result<(&'a Target, Plan), Vec<String>> {
    let target = match &inputs.target {
        Ok(t) => *t,
        Err(e) => return Err(vec![format!("cannot check the profile against this kernel: {e}")]),
    };
    match plan::derive(inputs.profile, &inputs.site, target) {
        Ok(plan) => Ok((target, plan)),
        Err(invalid) => Err(invalid.into_iter().map(|i| format!("the profile cannot be used: {i}")).collect()),
    }
}

/// Loaded now, and nothing in the profile explains it: not in the profile,
/// and not `explained` (a dependency, in this kernel, of what the profile needs).
fn unexplained_loads(p: &Profile, loaded: &[String], explained: &dyn Fn(&str) -> bool, report: &mut Report) {
    for m in loaded {
        if p.module(m).is_none() && !explained(m) {
            report.blockers.push(not_in_profile(m));
        }
    }
}

/// What is loaded before the lock: the lock unit's list (the installed one
/// when it is modtrace's and for this kernel, else what generate would write),
/// what modules-load.d loads, with their dependencies; built-ins are always there.
struct BeforeLock<'a> {
    target: &'a Target,
    covered: BTreeSet<String>,
}

impl BeforeLock<'_> {
    fn covers(&self, m: &str) -> bool {
        self.covered.contains(m) || self.target.is_builtin(m)
    }
}

fn before_lock<'a>(inputs: &Inputs, target: &'a Target, plan: &Plan, report: &mut Report) -> BeforeLock<'a> {
    let list = lock_unit_list(inputs, target, plan, report);
    let mut covered: BTreeSet<String> = BTreeSet::new();
    for m in list.iter().chain(inputs.configured.iter()) {
        covered.extend(target.closure(&normalize(m)));
    }
    BeforeLock { target, covered }
}

/// The modules the lock unit lists: the installed one's when it is for this
/// kernel (and then whatever the plan needs that it misses blocks), else the
/// plan's.
fn lock_unit_list(inputs: &Inputs, target: &Target, plan: &Plan, report: &mut Report) -> Vec<String> {
    match &inputs.installed {
        Some(inst) if inst.kernel.as_deref() == Some(target.release.as_str()) => {
            // What its modprobe -a loads in this kernel: the listed modules and
            // their dependencies. Every module the plan needs (the definition
            // generate writes from) must be among them; nothing else is asked.
            let loads: BTreeSet<String> = inst.modules.iter().flat_map(|m| target.closure(&normalize(m))).collect();
            for m in plan.needs.keys() {
                if !loads.contains(m) {
                    report.blockers.push(format!(
                        "the installed modtrace-lock.service does not load {m}, which the profile needs: regenerate (modtrace generate --out /)"
                    ));
                }
            }
            if let Some(lp) = inst.lock_point {
                report.info.push(format!("installed modtrace-lock.service locks at: {}", lp.as_str()));
            }
            return inst.modules.clone();
        }
        Some(_) => report.warnings.push(format!(
            "the installed modtrace-lock.service has no list for kernel {0} (/{1}): it does not lock this \
             kernel; regenerate with --kernel {0}",
            target.release,
            crate::outputs::generate::lock_unit::list_path(&target.release)
        )),
        None => report
            .info
            .push("no modtrace-lock.service installed: checked against what modtrace generate would write".to_string()),
    }
    plan.top_level.clone()
}

/// Requests that would fail after the lock. Those that found no module are
/// grouped by who asked: one warning each, so that a flood of them (or the
/// kernel's crypto self-tests) cannot bury the rest.
fn failing_requests(inputs: &Inputs, plan: &Plan, before: &BeforeLock, report: &mut Report) {
    let mut no_module: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for r in &inputs.profile.requests {
        let now = before.target.lookup(&r.alias);
        if now.is_empty() && r.resolves_to.is_empty() {
            no_module.entry(requesters_of(r)).or_default().push(&r.alias);
        } else if now.is_empty() {
            report.blockers.push(format!(
                "request for {} ({}) would fail: it resolved to {} when learned, and to no module in {}",
                r.alias,
                who_requested(r),
                r.resolves_to.join(", "),
                before.target.release
            ));
        } else if !now.loadable.iter().chain(&now.builtin).any(|m| before.covers(m)) {
            unloaded_request(inputs, plan, r, &now, report);
        }
    }
    for (who, aliases) in &no_module {
        report.warnings.push(no_module_warning(who, aliases));
    }
}

/// A request whose modules nothing loads before the lock: a blocker when
/// someone trusted asked; the site's or an admin's refusal, or an untrusted
/// requester, is what the lock is for.
fn unloaded_request(inputs: &Inputs, plan: &Plan, r: &profile::AliasRequest, now: &Lookup, report: &mut Report) {
    let modules = now.loadable.join(", ");
    let site: Vec<String> =
        now.loadable.iter().filter_map(|m| inputs.site.refusal(m, true).map(|why| format!("{m}: {why}"))).collect();
    if site.len() == now.loadable.len() {
        report.warnings.push(format!(
            "request for {} ({}) is denied by site policy, and keeps failing: {}",
            r.alias,
            who_requested(r),
            site.join("; ")
        ));
    } else if now.loadable.iter().all(|m| plan.denied.contains_key(m))
        || inputs.profile.decision(&r.alias).is_some_and(|d| d.verdict == profile::Verdict::Deny)
    {
        report.info.push(format!(
            "request for {} ({}) will fail after the lock: {modules} denied by an admin",
            r.alias,
            who_requested(r)
        ));
    } else if !r.requesters.iter().any(|q| trust::requester(&q.who).trusted()) {
        if now.loadable.iter().all(|m| plan.review.contains_key(m)) {
            return; // listed by held_back, by module, with who asked
        }
        let why = r.requesters.first().map(|q| trust::requester(&q.who).why().to_string()).unwrap_or_default();
        report.review.push(format!(
            "request for {} ({}) resolves to {modules}, which is not loaded before the lock: {why}; accept: modtrace allow {}",
            r.alias,
            who_requested(r),
            r.alias
        ));
    } else {
        report.blockers.push(format!(
            "request for {} ({}) would fail after the lock: it resolves to {modules}, which nothing loads before the lock",
            r.alias,
            who_requested(r),
        ));
    }
}

/// What the plan does not list: for review (unless loaded anyway), denied,
/// disabled by the site.
fn held_back(plan: &Plan, before: &BeforeLock, report: &mut Report) {
    for (m, held) in &plan.review {
        if before.covers(m) {
            continue;
        }
        let asked: Vec<&str> = held.cited.iter().map(|c| c.reason.text.as_str()).collect();
        report.review.push(format!("{m}: {}; asked: {}; accept: modtrace allow {m}", held.why, asked.join(" | ")));
    }
    for (m, held) in &plan.denied {
        report.info.push(format!("{m} is not listed: {}", held.why));
    }
    for (m, held) in &plan.site_disabled {
        report.warnings.push(format!("{m} is not listed: {}", held.why));
    }
}

fn uncovered_units(plan: &Plan, before: &BeforeLock, lock_point: LockPoint, report: &mut Report) {
    for (unit, needs) in &plan.units {
        for m in needs.keys() {
            if !before.covers(m) {
                report.blockers.push(format!(
                    "{unit} needs {m}, which nothing loads before the lock ({}): it would fail to load after it",
                    lock_point.as_str()
                ));
            }
        }
    }
}

/// Loads that failed while learning, of modules the profile lacks and nothing
/// loads before the lock.
fn failed_loads(inputs: &Inputs, before: &BeforeLock, report: &mut Report) {
    let p = inputs.profile;
    for f in &p.failed {
        let Some(m) = f.module.as_deref() else { continue };
        let m = normalize(m);
        if p.module(&m).is_some() || before.covers(&m) || before.target.lookup(&m).is_empty() {
            continue;
        }
        let by = f.requester.as_ref().map(plan::who).unwrap_or_else(|| plan::loader_who(&f.loader));
        let error = f.error.as_deref().unwrap_or("error");
        // A refusal (a lock or a policy already in force while learning) hides a
        // module that may be needed; any other error (ENODEV: no such hardware)
        // is the module's own and happens with or without the lock.
        let trusted = f.requester.as_ref().is_none_or(|r| trust::requester(r).trusted());
        if let Some(why) = inputs.site.disables(&m) {
            report.warnings.push(format!(
                "{m} was refused while learning ({error}, {} time(s), for {by}): denied by site policy ({why})",
                f.count
            ));
        } else if matches!(error, "EPERM" | "EACCES") && !trusted {
            report.review.push(format!(
                "{m} was refused while learning ({error}, {} time(s), for {by}), and only an untrusted process asked: accept: modtrace allow {m}",
                f.count
            ));
        } else if matches!(error, "EPERM" | "EACCES") {
            report.blockers.push(format!(
                "{m} was refused while learning ({error}, {} time(s), for {by}) and is not in the list: \
                 if it is needed, learn again without what refused it",
                f.count
            ));
        } else {
            report.warnings.push(format!(
                "{m} failed to load while learning ({error}, {} time(s), for {by}): it fails without the lock \
                 too, and will keep failing",
                f.count
            ));
        }
    }
}

/// A module loaded now that the profile lacks. Learning while it stays
/// loaded would only find it there, cause unknown (needs review): the advice
/// is to see it load while learning, or to learn from boot.
fn not_in_profile(m: &str) -> String {
    format!(
        "{m} is loaded now but not in the profile: after a locked boot nothing would load it, and who loaded it \
         is unknown (learning now would only find it loaded, cause unknown). If it is needed, learn while it \
         loads: modprobe -r {m}, then modtrace learn while what needs it runs, or learn from boot \
         (modtrace-learn.service); if it is not, unload it (modprobe -r {m})"
    )
}

/// The aliases listed in one warning about requests that found no module.
const ALIASES_SHOWN: usize = 8;

fn no_module_warning(who: &str, aliases: &[&str]) -> String {
    if let [alias] = aliases {
        return format!("request for {alias} ({who}) resolves to no module: it fails already and will keep failing");
    }
    let shown = aliases.iter().take(ALIASES_SHOWN).copied().collect::<Vec<_>>().join(", ");
    let more = match aliases.len().saturating_sub(ALIASES_SHOWN) {
        0 => String::new(),
        n => format!(" and {n} more (modtrace report lists them)"),
    };
    format!(
        "{} requests by {who} resolve to no module: {shown}{more}; they fail already and will keep failing",
        aliases.len()
    )
}

/// Every item one line, whatever a process name or alias in it holds.
pub fn render(report: &Report) -> String {
    use crate::escape::text;
    let mut out = String::new();
    for i in &report.info {
        let _ = writeln!(out, "info: {}", text(i));
    }
    for w in &report.warnings {
        let _ = writeln!(out, "warning: {}", text(w));
    }
    if let Some(d) = &report.desktop {
        let (dm, point) = (text(&d.display_manager), d.lock_point);
        let _ = writeln!(out, "advice: a desktop ({dm}) with lock point {point}: {}", text(&d.advice));
    }
    if let Some(plan) = &report.plan {
        let _ = writeln!(
            out,
            "needed: {} top-level module(s) ({} with dependencies), {} built in",
            plan.top_level.len(),
            plan.loaded_set().len(),
            plan.builtin.len()
        );
    }
    if !report.review.is_empty() {
        let _ = writeln!(
            out,
            "needs review: {} item(s) with no evidence that root wanted them (only untrusted processes asked, or the cause is unknown); not loaded before the lock unless accepted:",
            report.review.len()
        );
        for r in &report.review {
            let _ = writeln!(out, "  - {}", text(r));
        }
    }
    if report.blockers.is_empty() {
        out.push_str("safe to lock: no blocker found\n");
    } else {
        let _ = writeln!(out, "NOT safe to lock: {} blocker(s):", report.blockers.len());
        for b in &report.blockers {
            let _ = writeln!(out, "  - {}", text(b));
        }
    }
    out
}

/// `check --json`: the same report as one JSON object.
pub fn render_json(report: &Report) -> String {
    let needed = report.plan.as_ref().map(|plan| {
        serde_json::json!({
            "top_level": plan.top_level,
            "with_dependencies": plan.loaded_set().len(),
            "built_in": plan.builtin.keys().collect::<Vec<_>>(),
        })
    });
    let json = serde_json::json!({
        "safe": report.safe(),
        "blockers": report.blockers,
        "warnings": report.warnings,
        "review": report.review,
        "info": report.info,
        "needed": needed,
        "desktop": report.desktop,
    });
    format!("{json:#}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::needs::target::{Source, Target};
    use crate::trace::modindex::StaticIndex;
    use crate::testutil::{appletalk_index, example_profile, TempDir};

    const RELEASE: &str = "6.1.0-56-amd64";
    const LOADED: &str =
        "appletalk 40960 0 - Live 0x0\npsnap 16384 1 appletalk, Live 0x0\nllc 16384 2 appletalk,psnap, Live 0x0\n\
                          binfmt_misc 24576 1 - Live 0x0\next4 1007616 1 - Live 0x0\njbd2 192512 1 ext4, Live 0x0\n\
                          mbcache 16384 1 ext4, Live 0x0\nsnd_hda_intel 57344 0 - Live 0x0\n";

    fn root(loaded: Option<&str>) -> TempDir {
        let dir = TempDir::new("check-root");
        let put = |path: &str, text: &str| {
            let p = dir.path().join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        };
        put("proc/sys/kernel/osrelease", &format!("{RELEASE}\n"));
        put("proc/sys/kernel/modules_disabled", "0\n");
        put("proc/sys/kernel/modprobe", "/sbin/modprobe\n");
        put("sys/kernel/security/lockdown", "none [integrity] confidentiality\n");
        put("sys/module/module/parameters/sig_enforce", "Y\n");
        put("sys/kernel/security/lsm", "lockdown,capability,landlock,yama,apparmor");
        put("proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/vda1\n");
        if let Some(l) = loaded {
            put("proc/modules", l);
        }
        dir
    }

    fn target(index: StaticIndex, builtin: &[&str]) -> Target {
        let modules = index.deps.keys().cloned().collect();
        Target::from_index(
            RELEASE,
            index,
            Some(modules),
            builtin.iter().map(|s| s.to_string()).collect(),
            Source::Tree("/x".into()),
        )
    }

    fn run(root: &TempDir, profile: &Profile, target: &Target, point: LockPoint) -> Report {
        let paths = SystemPaths::new(root.path());
        let state = read_state(&paths);
        evaluate(&Inputs {
            profile,
            target: Ok(target),
            state: &state,
            lock_point: point,
            installed: read_installed(&paths, state.release.as_deref()),
            configured: configured_modules(&paths),
            site: SitePolicy::read(root.path()),
        })
    }

    #[test]
    fn requests_without_module_are_one_warning_per_requester() {
        assert_eq!(
            no_module_warning("x (uid 0)", &["net-pf-38"]),
            "request for net-pf-38 (x (uid 0)) resolves to no module: it fails already and will keep failing"
        );
        let many: Vec<String> = (0..10).map(|i| format!("fs-f{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let w = no_module_warning("spam (uid 0)", &many);
        assert!(w.starts_with("10 requests by spam (uid 0) resolve to no module: fs-f0, fs-f1,"), "{w}");
        assert!(w.contains("fs-f7 and 2 more (modtrace report lists them)") && !w.contains("fs-f8"), "{w}");
    }

    #[test]
    fn state_is_read_from_files_under_the_root() {
        let r = root(Some(LOADED));
        let state = read_state(&SystemPaths::new(r.path()));
        assert_eq!(state.release.as_deref(), Some(RELEASE));
        assert_eq!(state.modules_disabled, Some(false));
        assert_eq!(state.modprobe.as_deref(), Some("/sbin/modprobe"));
        assert_eq!(state.lockdown.as_deref(), Some("integrity"));
        assert_eq!(state.sig_enforce, Some(true));
        assert_eq!(state.lsm.as_ref().unwrap().len(), 5);
        assert_eq!(state.loaded.as_ref().unwrap().len(), 8);
        fs::write(r.join("proc/sys/kernel/modules_disabled"), "1\n").unwrap();
        fs::write(r.join("proc/sys/kernel/modprobe"), "\n").unwrap();
        let report = run(&r, &example_profile(), &target(appletalk_index(), &[]), LockPoint::AfterUdev);
        let info = report.info.join("\n");
        assert!(info.contains("already locked"), "{info}");
        assert!(info.contains("kernel.modprobe is empty"), "{info}");
        assert!(info.contains("lockdown: integrity") && info.contains("module.sig_enforce: Y"), "{info}");
    }

    #[test]
    fn a_complete_profile_is_safe() {
        let r = root(Some(LOADED));
        let report = run(&r, &example_profile(), &target(appletalk_index(), &[]), LockPoint::AfterUdev);
        assert!(report.safe(), "{}", render(&report));
        // net-pf-38 found no module when learned and finds none now: a warning only.
        assert!(report.warnings.iter().any(|w| w.contains("net-pf-38")), "{:?}", report.warnings);
        assert!(render(&report).contains("safe to lock"));
    }

    #[test]
    fn a_profile_with_a_display_manager_gets_the_lock_points_advice_in_text_and_json() {
        let r = root(Some(LOADED));
        let mut p = example_profile();
        let plain = run(&r, &p, &target(appletalk_index(), &[]), LockPoint::AfterUdev);
        assert!(plain.desktop.is_none() && !render(&plain).contains("advice:"), "{}", render(&plain));
        let requester = p.modules.iter_mut().flat_map(|m| &mut m.triggers).find_map(|t| t.requester.as_mut());
        let requester = requester.unwrap();
        requester.unit = Some("lightdm.service".into());
        requester.scope = crate::trace::scope::Scope::System { unit: "lightdm.service".into() };
        let report = run(&r, &p, &target(appletalk_index(), &[]), LockPoint::Late);
        let text = render(&report);
        let line = text.lines().find(|l| l.starts_with("advice: ")).unwrap_or_else(|| panic!("{text}"));
        assert!(line.starts_with("advice: a desktop (lightdm.service) with lock point late: "), "{line}");
        assert!(line.contains("races") && line.contains("sealed guard instead of the lock"), "{line}");
        let json: serde_json::Value = serde_json::from_str(&render_json(&report)).unwrap();
        assert_eq!(json["desktop"]["display_manager"], "lightdm.service", "{json}");
        assert_eq!(json["desktop"]["lock_point"], "late", "{json}");
        assert!(json["desktop"]["advice"].as_str().unwrap().contains("lightdm.service"), "{json}");
        assert_eq!(json["safe"], report.safe(), "{json}");
        assert!(json["needed"]["top_level"].as_array().is_some_and(|a| !a.is_empty()), "{json}");
        let plain: serde_json::Value = serde_json::from_str(&render_json(&plain)).unwrap();
        assert!(plain["desktop"].is_null(), "{plain}");
    }

    #[test]
    fn blockers_loaded_unknown_unresolved_and_failing_requests() {
        let extra = format!("{LOADED}wireguard 94208 0 - Live 0x0\n");
        let r = root(Some(&extra));
        // This kernel has no binfmt_misc, and fs-binfmt_misc resolves to nothing.
        let mut idx = appletalk_index();
        idx.deps.remove("binfmt_misc");
        idx.aliases.remove("fs-binfmt_misc");
        let report = run(&r, &example_profile(), &target(idx, &[]), LockPoint::AfterUdev);
        assert!(!report.safe());
        let all = report.blockers.join("\n");
        assert!(all.contains("wireguard is loaded now but not in the profile"), "{all}");
        assert!(
            all.contains("not in kernel 6.1.0-56-amd64: binfmt_misc: alias fs-binfmt_misc resolves to no module"),
            "{all}"
        );
        assert!(
            all.contains("request for fs-binfmt_misc (init.scope (systemd, /usr/lib/systemd/systemd, uid 0), 1 time(s)) would fail: it resolved to binfmt_misc"),
            "{all}"
        );
        assert!(render(&report).contains("NOT safe to lock"));
    }

    /// The Kicksecure case: security-misc disables appletalk; the
    /// request failed while learning, on purpose, and must not stop the lock.
    #[test]
    fn a_request_the_site_disables_is_a_warning_not_a_blocker() {
        use crate::testutil::{guest, request};
        let loaded = LOADED.replace("appletalk 40960 0 - Live 0x0\n", "");
        let r = root(Some(&loaded));
        let mut p = example_profile();
        p.modules.retain(|m| m.name != "appletalk");
        p.failed.clear();
        p.observe(&request("2024-03-01T10:06:00Z", guest(4300), "net-pf-5", &["appletalk"]));
        p.settle(&appletalk_index());
        let report = run(&r, &p, &target(appletalk_index(), &[]), LockPoint::AfterUdev);
        assert!(!report.safe(), "without the site's file it is a blocker: {}", render(&report));
        assert!(report.blockers.iter().any(|b| b.contains("request for net-pf-5")), "{:?}", report.blockers);

        let conf = r.join("etc/modprobe.d/30_security-misc_disable.conf");
        fs::create_dir_all(conf.parent().unwrap()).unwrap();
        fs::write(&conf, "install appletalk /bin/disabled-network-by-security-misc\n").unwrap();
        let report = run(&r, &p, &target(appletalk_index(), &[]), LockPoint::AfterUdev);
        assert!(report.safe(), "{}", render(&report));
        let w = report.warnings.join("\n");
        assert!(w.contains("request for net-pf-5") && w.contains("denied by site policy"), "{w}");
        assert!(w.contains("30_security-misc_disable.conf:1"), "{w}");

        // blacklist: the kernel's request (by alias) is refused on purpose too.
        fs::write(&conf, "blacklist appletalk\n").unwrap();
        let report = run(&r, &p, &target(appletalk_index(), &[]), LockPoint::AfterUdev);
        assert!(report.safe(), "{}", render(&report));
        assert!(report.warnings.join("\n").contains("not loaded by alias"), "{:?}", report.warnings);
    }

    /// uid 1000 in its own user manager, in a unit named like a display
    /// manager: its request is for review, not a blocker, and not listed.
    #[test]
    fn an_untrusted_request_is_for_review_not_a_blocker() {
        use crate::testutil::{appletalk_sequence, in_cgroup};
        let r = root(Some(LOADED));
        let mut p = example_profile();
        p.modules.retain(|m| !["appletalk", "psnap", "llc"].contains(&m.name.as_str()));
        p.requests.retain(|q| q.alias != "net-pf-5");
        p.failed.clear();
        let user = in_cgroup(
            5000,
            "Xorg",
            Some("/usr/bin/Xorg"),
            1000,
            "/user.slice/user-1000.slice/user@1000.service/app.slice/lightdm.service",
        );
        for rec in appletalk_sequence("2024-03-01T10:06:00Z", user) {
            p.observe(&rec);
        }
        p.settle(&appletalk_index());
        let report = run(&r, &p, &target(appletalk_index(), &[]), LockPoint::AfterUdev);
        assert!(report.safe(), "{}", render(&report));
        let plan = report.plan.as_ref().unwrap();
        assert!(!plan.top_level.contains(&"appletalk".to_string()), "{:?}", plan.top_level);
        assert!(plan.units.is_empty(), "no drop-in for a user's unit: {:?}", plan.units);
        let text = render(&report);
        assert!(text.contains("needs review:"), "{text}");
        assert!(text.contains("accept: modtrace allow appletalk"), "{text}");
        assert_eq!(report.review.len(), 1, "one item, by module: {:?}", report.review);
        assert!(text.contains("uid 1000") && text.contains("user unit lightdm.service of uid 1000"), "{text}");

        // Accepted: listed, and check then asks for it like any other need.
        p.decide(crate::profile::Decision {
            name: "net-pf-5".into(),
            target: crate::profile::DecisionTarget::Alias,
            verdict: crate::profile::Verdict::Allow,
            time: "2024-03-02T00:00:00Z".into(),
            extra: Default::default(),
        });
        let report = run(&r, &p, &target(appletalk_index(), &[]), LockPoint::AfterUdev);
        let plan = report.plan.as_ref().unwrap();
        assert!(plan.top_level.contains(&"appletalk".to_string()), "{:?}", plan.top_level);
        assert!(plan.units.is_empty(), "accepted, but still no drop-in for a user's unit");
        assert!(report.review.is_empty(), "{:?}", report.review);
    }

    /// Seen in a Debian guest: udev tries cpufreq drivers whose init fails
    /// (ENODEV). They fail with or without a lock; only a refusal hides a need.
    #[test]
    fn a_failed_init_warns_and_a_refused_load_blocks() {
        let r = root(Some(LOADED));
        let idx = appletalk_index().module("acpi_cpufreq", &[]).module("tun", &[]);
        let mut p = example_profile();
        let mut failure = p.failed[0].clone();
        failure.module = Some("acpi_cpufreq".into());
        failure.error = Some("ENODEV".into());
        failure.ret = -19;
        p.failed = vec![failure.clone()];
        let report = run(&r, &p, &target(idx.clone(), &[]), LockPoint::AfterUdev);
        assert!(report.safe(), "{}", render(&report));
        assert!(report.warnings.iter().any(|w| w.contains("acpi_cpufreq failed to load while learning (ENODEV")));

        failure.module = Some("tun".into());
        failure.error = Some("EPERM".into());
        failure.ret = -1;
        p.failed = vec![failure];
        let report = run(&r, &p, &target(idx, &[]), LockPoint::AfterUdev);
        assert!(!report.safe());
        assert!(
            report.blockers.iter().any(|b| b.contains("tun was refused while learning (EPERM")),
            "{:?}",
            report.blockers
        );
    }

    #[test]
    fn a_request_resolving_to_a_module_not_in_the_list_blocks() {
        let r = root(Some(LOADED));
        // The kernel now answers net-pf-5 with a module nothing loads.
        let mut idx2 = appletalk_index().module("appletalk_ng", &[]);
        idx2.aliases.insert("net-pf-5".into(), vec!["appletalk_ng".into()]);
        // ...and an installed lock unit that predates it.
        let p = example_profile();
        let out = crate::outputs::generate::generate(
            &p,
            &target(appletalk_index(), &[]),
            &crate::outputs::generate::Options {
                profile_path: "/p".into(),
                lock_point: LockPoint::Early,
                deny: false,
                now: "now".into(),
                command: "test".into(),
                site: Default::default(),
            },
        )
        .unwrap();
        let list = crate::outputs::generate::lock_unit::list_path(&out.plan.release);
        for path in [crate::outputs::generate::LOCK_UNIT, list.as_str()] {
            let dest = r.join(path);
            fs::create_dir_all(dest.parent().unwrap()).unwrap();
            fs::write(&dest, &out.file(path).unwrap().contents).unwrap();
        }
        let report = run(&r, &p, &target(idx2, &[]), LockPoint::Early);
        let all = report.blockers.join("\n");
        assert!(
            all.contains("request for net-pf-5 (example.service (modtrace-guest, /usr/bin/python3, uid 0), 1 time(s)) would fail after the lock: it resolves to appletalk_ng"),
            "{all}"
        );
        assert!(all.contains("the installed modtrace-lock.service does not load appletalk_ng"), "{all}");
        assert!(
            all.contains("example.service needs appletalk_ng, which nothing loads before the lock (early)"),
            "{all}"
        );
        assert!(report.info.iter().any(|i| i.contains("installed modtrace-lock.service locks at: early")));
    }

    #[test]
    fn modules_load_d_counts_as_loaded_before_the_lock() {
        let r = root(Some(LOADED));
        let mut idx2 = appletalk_index().module("appletalk_ng", &[]);
        idx2.aliases.insert("net-pf-5".into(), vec!["appletalk_ng".into()]);
        fs::create_dir_all(r.join("etc/modules-load.d")).unwrap();
        fs::write(r.join("etc/modules-load.d/at.conf"), "appletalk_ng\n").unwrap();
        let report = run(&r, &example_profile(), &target(idx2, &[]), LockPoint::AfterUdev);
        assert!(report.safe(), "{}", render(&report));
    }

    #[test]
    fn built_in_modules_need_no_loading() {
        // ext4 is built into this kernel: not in /proc/modules, nothing to load.
        let r = root(Some(LOADED.replace("ext4 1007616 1 - Live 0x0\n", "").as_str()));
        let report = run(&r, &example_profile(), &target(appletalk_index(), &["ext4"]), LockPoint::AfterUdev);
        assert!(report.safe(), "{}", render(&report));
        let plan = report.plan.as_ref().unwrap();
        assert!(plan.builtin.contains_key("ext4") && !plan.top_level.contains(&"ext4".to_string()), "{plan:?}");
    }

    #[test]
    fn lost_events_block_and_no_module_support_blocks() {
        let r = root(Some(LOADED));
        let mut p = example_profile();
        p.sessions[0].lost_events = 3;
        let report = run(&r, &p, &target(appletalk_index(), &[]), LockPoint::AfterUdev);
        // A session that did not say what it lost blocks: it may have been loads.
        assert!(report.blockers.iter().any(|b| b.contains("3 kernel events were lost")), "{:?}", report.blockers);

        let r = root(None);
        let report = run(&r, &example_profile(), &target(appletalk_index(), &[]), LockPoint::AfterUdev);
        assert!(report.blockers.iter().any(|b| b.contains("no loadable module support")), "{:?}", report.blockers);
    }

    #[test]
    fn lost_failures_are_reported_and_only_lost_loads_or_requests_block() {
        use crate::trace::drops::Drops;
        let r = root(Some(LOADED));
        let with = |d: Drops| {
            let mut p = example_profile();
            p.sessions[0].lost_events = d.total();
            p.sessions[0].drops = Some(d);
            run(&r, &p, &target(appletalk_index(), &[]), LockPoint::AfterUdev)
        };
        let flood = with(Drops { ring_failures: 5000, results_without_call: 3, ..Drops::default() });
        assert!(flood.safe(), "{}", render(&flood));
        assert!(flood.warnings.iter().any(|w| w.contains("5003 failed load attempts")), "{:?}", flood.warnings);
        // A user's flood of pending requests: reported, never a blocker (so `lock` does not refuse).
        let users = with(Drops { evicted_untrusted_requests: 600, ..Drops::default() });
        assert!(users.safe() && users.blockers.is_empty(), "{}", render(&users));
        assert!(users.warnings.iter().any(|w| w.contains("600 failed load attempts, load results or untrusted")));
        for d in [Drops { ring_loads: 1, ..Drops::default() }, Drops { evicted_requests: 2, ..Drops::default() }] {
            let report = with(d);
            let n = d.blocking();
            assert!(
                report.blockers.iter().any(|b| b.contains(&format!("{n} module requests or loads were lost"))),
                "{:?}",
                report.blockers
            );
        }
    }

    use crate::testutil::CPU_MODALIAS as CPU;

    fn udev_module(name: &str, deps: &[&str], top_level: bool) -> profile::Module {
        crate::testutil::udev_device_module(CPU, name, deps, top_level)
    }

    fn cpu_index() -> StaticIndex {
        crate::testutil::with_cpu_modules(appletalk_index())
    }

    /// example_profile, learned on this kernel, plus what udev loaded for the
    /// CPU: what loaded of the modules its modalias names, and edac_mce_amd.
    fn cpu_profile() -> Profile {
        let mut p = example_profile();
        p.kernel = RELEASE.to_string();
        p.modules.extend([
            udev_module("edac_mce_amd", &[], true),
            udev_module("kvm_amd", &["ccp", "irqbypass", "kvm"], true),
            udev_module("kvm", &["irqbypass"], false),
            udev_module("irqbypass", &[], false),
            udev_module("ccp", &[], false),
            udev_module("sha1_ssse3", &[], true),
        ]);
        p.modules.sort_by(|a, b| a.name.cmp(&b.name));
        p
    }

    const CPU_LOADED: &str = "edac_mce_amd 1 0 - Live 0x0\nkvm_amd 1 0 - Live 0x0\nkvm 1 1 kvm_amd, Live 0x0\n\
                              irqbypass 1 1 kvm, Live 0x0\nccp 1 1 kvm_amd, Live 0x0\nsha1_ssse3 1 0 - Live 0x0\n";

    /// `modtrace generate --out /` (no --kernel: the profile's names as learned).
    fn install_generated(root: &TempDir, p: &Profile) {
        let out = crate::outputs::generate::generate(
            p,
            &Target::from_profile(p),
            &crate::outputs::generate::Options {
                profile_path: "/var/lib/modtrace/profile.json".into(),
                lock_point: LockPoint::AfterUdev,
                deny: false,
                now: "now".into(),
                command: "test".into(),
                site: Default::default(),
            },
        )
        .unwrap();
        for f in &out.files {
            let dest = root.path().join(&f.path);
            fs::create_dir_all(dest.parent().unwrap()).unwrap();
            fs::write(dest, &f.contents).unwrap();
        }
    }

    #[test]
    fn check_right_after_generate_asks_for_nothing_generate_did_not_install() {
        // The two-boot system test: generate --out /, then check, same kernel.
        // The CPU's modalias names amd64_edac, kvm_intel and powernow_k8 too;
        // they are not in the profile and must not be asked for.
        let r = root(Some(&format!("{LOADED}{CPU_LOADED}")));
        let p = cpu_profile();
        install_generated(&r, &p);
        let report = run(&r, &p, &target(cpu_index(), &[]), LockPoint::AfterUdev);
        assert!(report.safe(), "{}", render(&report));
        let plan = report.plan.as_ref().unwrap();
        for m in ["amd64_edac", "kvm_intel", "powernow_k8"] {
            assert!(!plan.needs.contains_key(m), "{m} is not in the profile: {:?}", plan.needs.keys());
        }
        assert!(plan.top_level.contains(&"edac_mce_amd".to_string()), "{:?}", plan.top_level);

        // The run that found kvm_amd failing: its dependencies loaded, it did not.
        let mut p2 = cpu_profile();
        p2.modules.retain(|m| m.name != "kvm_amd");
        for m in p2.modules.iter_mut().filter(|m| m.name == "kvm") {
            m.top_level = true;
        }
        let r2 = root(Some(&format!("{LOADED}{}", CPU_LOADED.replace("kvm_amd 1 0 - Live 0x0\n", ""))));
        install_generated(&r2, &p2);
        let report = run(&r2, &p2, &target(cpu_index(), &[]), LockPoint::AfterUdev);
        assert!(report.safe(), "{}", render(&report));
    }

    #[test]
    fn a_module_the_installed_lock_unit_lacks_still_blocks() {
        // Generated before powernow_k8 was learned: a real gap, named.
        let r = root(Some(&format!("{LOADED}{CPU_LOADED}powernow_k8 1 0 - Live 0x0\n")));
        let p = cpu_profile();
        install_generated(&r, &p);
        let mut learned_more = p.clone();
        learned_more.modules.push(udev_module("powernow_k8", &[], true));
        learned_more.modules.sort_by(|a, b| a.name.cmp(&b.name));
        let report = run(&r, &learned_more, &target(cpu_index(), &[]), LockPoint::AfterUdev);
        assert_eq!(
            report.blockers,
            ["the installed modtrace-lock.service does not load powernow_k8, which the profile needs: \
                 regenerate (modtrace generate --out /)"],
            "{}",
            render(&report)
        );
        // A dependency the installed list brings is no gap: kvm comes with kvm_amd.
        assert!(!report.blockers.iter().any(|b| b.contains(" kvm,") || b.contains(" ccp,")));
    }

    #[test]
    fn an_unreadable_index_blocks() {
        let r = root(Some(LOADED));
        let paths = SystemPaths::new(r.path());
        let state = read_state(&paths);
        let p = example_profile();
        let report = evaluate(&Inputs {
            profile: &p,
            target: Err("no modules.dep.bin".to_string()),
            state: &state,
            lock_point: LockPoint::Late,
            installed: None,
            configured: BTreeSet::new(),
            site: SitePolicy::default(),
        });
        assert!(report.blockers.iter().any(|b| b.contains("no modules.dep.bin")), "{:?}", report.blockers);
    }

    /// The system check reads the release and the index under the root: no
    /// index there, or a release that is no name, blocks; the lock point is
    /// the one asked for, else after-udev when no lock unit is installed.
    #[test]
    fn the_system_check_reads_the_kernel_under_the_root() {
        let r = root(Some(LOADED));
        let p = example_profile();
        let paths = SystemPaths::new(r.path());
        let report = evaluate_system(&p, &paths, None);
        let blocked = |report: &Report, words: &str| report.blockers.iter().any(|b| b.contains(words));
        assert!(blocked(&report, "cannot check the profile against this kernel: "), "{:?}", report.blockers);
        assert!(report.info.iter().any(|i| i == "lock point checked: after-udev"), "{:?}", report.info);

        fs::write(r.join("proc/sys/kernel/osrelease"), "../6.1\n").unwrap();
        let report = evaluate_system(&p, &paths, Some(LockPoint::Late));
        assert!(blocked(&report, "kernel release \"../6.1\": "), "{:?}", report.blockers);
        assert!(report.info.iter().any(|i| i == "lock point checked: late"), "{:?}", report.info);
    }

    /// A module found loaded before learning that nothing explains: for
    /// review, saying how to learn it from boot or accept it; never the
    /// "learn while it is in use" advice, which would only record it again.
    #[test]
    fn a_module_loaded_before_learning_with_no_cause_is_for_review() {
        let r = root(Some(&format!("{LOADED}atm 16384 0 - Live 0x0\nwireguard 94208 0 - Live 0x0\n")));
        let mut p = example_profile();
        let atm = parse_proc_modules("atm 16384 0 - Live 0x0\n").unwrap();
        p.add_preloaded(&atm, &Default::default(), "2024-03-01T10:00:00Z");
        let report = run(&r, &p, &target(appletalk_index().module("atm", &[]), &[]), LockPoint::AfterUdev);
        let line = report.review.iter().find(|l| l.starts_with("atm: "));
        let line = line.unwrap_or_else(|| panic!("{}", render(&report)));
        for words in ["cause unknown", "modtrace-learn.service", "accept: modtrace allow atm"] {
            assert!(line.contains(words), "{words}: {line}");
        }
        assert!(!report.blockers.iter().any(|b| b.starts_with("atm ")), "{:?}", report.blockers);
        // Loaded now, not in the profile: learning now would only find it loaded.
        let wg = report.blockers.iter().find(|b| b.starts_with("wireguard ")).unwrap();
        assert!(wg.contains("modprobe -r wireguard") && wg.contains("learn from boot"), "{wg}");
        assert!(!render(&report).contains("learn while it is in use"), "{}", render(&report));
        assert!(!report.plan.unwrap().loaded_set().contains("atm"));
    }
}
