//! The report's view model: what the profile and the needs stage's plan say,
//! gathered once for every format. Serialized as it is for JSON.

use std::collections::BTreeMap;

use serde::Serialize;

use super::fleet::{self, FleetHost, HostCount, HostGroup};
use super::packages::{by_package, PackageGroup};
use super::GroupBy;
use crate::needs::fleet::HostPlan;
use crate::needs::{self, trust, Plan};
use crate::profile::{Module, Profile, Trigger, TriggerKind};
use crate::trace::scope::Scope;

/// The report's contents, and the JSON format's output.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub kernel: String,
    pub host: String,
    pub sessions: usize,
    /// Sessions that learned from the initramfs on (took its probes over).
    pub sessions_from_initramfs: usize,
    pub learning_secs: u64,
    pub boots: usize,
    /// A fleet profile's hosts (modtrace merge); absent for one host's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<Vec<FleetHost>>,
    pub summary: Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modules: Option<Vec<TopLevel>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub units: Option<Vec<UnitGroup>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_host: Option<Vec<HostGroup>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packages: Option<Vec<PackageGroup>>,
    pub requests_without_module: Vec<MissingRequest>,
    pub failed: Vec<FailedLoad>,
    /// Modules only untrusted processes asked for: not listed until accepted.
    pub needs_review: Vec<Held>,
    /// Modules an admin denied.
    pub denied: Vec<Held>,
    /// Modules the site's modprobe.d keeps out.
    pub site_disabled: Vec<Held>,
    pub warnings: Vec<String>,
}

/// A module the needs stage holds back, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Held {
    pub module: String,
    pub why: String,
    /// Who asked, each cause as a sentence with its count.
    pub asked: Vec<String>,
    pub count: u64,
    /// The command that accepts it (needs review only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub modules: usize,
    pub top_level: usize,
    pub requests_without_module: usize,
    /// Distinct failed loads (same module, error, loader and requester folded).
    pub failed_loads: usize,
    pub failed_attempts: u64,
    pub lost_events: u64,
    pub needs_review: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopLevel {
    pub module: String,
    pub count: u64,
    /// On a fleet profile, the hosts that saw it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<HostCount>,
    pub taints: Vec<String>,
    pub triggers: Vec<Cause>,
    pub dependencies: Vec<Dependency>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dependency {
    pub module: String,
    pub count: u64,
    /// On a fleet profile, the hosts that saw it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<HostCount>,
    /// Causes other than being a dependency (it was also loaded for itself).
    pub own_triggers: Vec<Cause>,
}

/// One trigger, as a person reads it.
#[derive(Debug, Clone, Serialize)]
pub struct Cause {
    pub kind: TriggerKind,
    pub unit: Option<String>,
    /// Whose unit `unit` is; None for preloaded modules.
    pub scope: Option<Scope>,
    /// The uid of who asked (or of the loader for udev, explicit and unknown loads).
    pub uid: Option<u32>,
    /// Whether the cause may reach the generated files by itself, and why.
    pub trusted: bool,
    pub trust: String,
    /// "comm (exe)" of who asked (or of the loader for udev and unknown loads).
    pub process: Option<String>,
    /// Alias, device, or reason: "request net-pf-5", "udev pci:v...", "preloaded: before learning".
    pub via: String,
    pub count: u64,
    /// On a fleet profile, the hosts that saw it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<HostCount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnitGroup {
    /// None: processes outside any systemd unit, or preloaded modules.
    pub unit: Option<String>,
    /// Whose unit it is: a user's or a container's unit of the same name is
    /// another group than the host's.
    pub scope: Option<Scope>,
    pub needs: Vec<UnitNeed>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnitNeed {
    pub module: String,
    pub kind: TriggerKind,
    pub trusted: bool,
    pub via: String,
    pub process: Option<String>,
    pub count: u64,
    /// Modules it pulls in with it, per modules.dep.
    pub dependencies: Vec<String>,
    /// On a fleet profile, the hosts that saw it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<HostCount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MissingRequest {
    pub alias: String,
    pub count: u64,
    pub requested_by: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedLoad {
    pub module: Option<String>,
    pub alias: Option<String>,
    pub error: String,
    pub loader: String,
    pub requested_by: Option<String>,
    pub count: u64,
}

fn process_name(comm: &str, exe: Option<&str>) -> String {
    match exe {
        Some(exe) if !exe.is_empty() && exe.rsplit('/').next() != Some(comm) => format!("{comm} ({exe})"),
        _ => comm.to_string(),
    }
}

/// Where a cause happened (unit, scope, uid).
type At = (Option<String>, Option<Scope>, Option<u32>);

impl Cause {
    /// The cause `t` of a module of `profile`, with its hosts on a fleet's.
    fn on(profile: &Profile, t: &Trigger) -> Cause {
        Cause { hosts: fleet::count(profile, &t.hosts), ..Cause::of(t) }
    }

    fn of(t: &Trigger) -> Cause {
        let ((unit, scope, uid), process, via) = Cause::who_and_via(t);
        let via = match &t.needed_by {
            Some(n) => format!("{via} (for {n})"),
            None => via,
        };
        let via = match &t.stage {
            Some(stage) => format!("{via} in the {stage}"),
            None => via,
        };
        let trust = trust::of_trigger(t);
        Cause {
            kind: t.kind,
            unit,
            scope,
            uid,
            trusted: trust.trusted(),
            trust: trust.why().to_string(),
            process,
            via,
            count: t.count,
            hosts: None,
        }
    }

    /// Where the cause happened, who acted, and through what, by its kind.
    fn who_and_via(t: &Trigger) -> (At, Option<String>, String) {
        let requester = t.requester.as_ref();
        let loader = t.loader.as_ref();
        let req_name = requester.map(|r| process_name(&r.comm, r.exe.as_deref()));
        let loader_name = loader.map(|l| process_name(&l.comm, l.exe.as_deref()));
        let req_at = requester.map(|r| (r.unit.clone(), Some(r.scope.clone()), r.uid));
        let loader_at = loader.map(|l| (l.unit.clone(), Some(l.scope.clone()), l.uid));
        let none = (None, None, None);
        match t.kind {
            TriggerKind::Request => {
                let via = t.via.as_ref().map(|v| format!(" via {v}")).unwrap_or_default();
                (req_at.unwrap_or(none), req_name, format!("request {}{via}", t.alias.as_deref().unwrap_or("?")))
            }
            TriggerKind::Explicit => {
                let process = match (&loader_name, &req_name) {
                    (Some(l), Some(r)) => Some(format!("{l} from {r}")),
                    (l, r) => l.clone().or(r.clone()),
                };
                match &t.via {
                    // modprobe@NAME.service: the unit that wants it (onbehalf.rs).
                    Some(via) => (req_at.unwrap_or(none), process, format!("explicit via {via}")),
                    // The loader's cgroup is recorded (its scope is known), its parent's is not.
                    None => (loader_at.or(req_at).unwrap_or(none), process, "explicit".to_string()),
                }
            }
            TriggerKind::Udev => {
                let device = t.device.as_ref().and_then(|d| d.modalias.clone().or(d.devpath.clone()));
                let via = match device {
                    Some(d) => format!("udev {d}"),
                    None => "udev".to_string(),
                };
                (loader_at.unwrap_or(none), loader_name, via)
            }
            TriggerKind::Preloaded => {
                (none, None, format!("preloaded: {}", t.reason.as_deref().unwrap_or(crate::profile::BEFORE_LEARNING)))
            }
            TriggerKind::Unknown => (
                loader_at.unwrap_or(none),
                loader_name,
                format!("unknown: {}", t.reason.as_deref().unwrap_or("no request explains it")),
            ),
        }
    }
}

/// Dependencies of `top` that are in the profile, each once, every module
/// before the modules it needs (appletalk: psnap, then llc).
fn folded_deps<'a>(profile: &'a Profile, top: &'a Module) -> Vec<&'a Module> {
    fn post_order<'a>(
        profile: &'a Profile,
        m: &'a Module,
        seen: &mut std::collections::BTreeSet<String>,
        out: &mut Vec<&'a Module>,
    ) {
        for d in m.depends_on.iter().rev() {
            if let Some(dm) = profile.module(d) {
                if seen.insert(dm.name.clone()) {
                    post_order(profile, dm, seen, out);
                }
            }
        }
        out.push(m);
    }
    let mut seen = std::collections::BTreeSet::new();
    seen.insert(top.name.clone());
    let mut out = Vec::new();
    post_order(profile, top, &mut seen, &mut out);
    out.pop(); // `top` itself
    out.reverse();
    out
}

/// Triggers worth showing for a dependency besides being one: not "preloaded
/// before learning", which modules.dep already explains.
fn own(m: &Module) -> impl Iterator<Item = &Trigger> {
    m.triggers
        .iter()
        .filter(|t| t.needed_by.is_none())
        .filter(|t| !(t.kind == TriggerKind::Preloaded && t.reason.as_deref() == Some(crate::profile::BEFORE_LEARNING)))
}

fn own_triggers(profile: &Profile, m: &Module) -> Vec<Cause> {
    own(m).map(|t| Cause::on(profile, t)).collect()
}

/// "comm (exe), unit" with the unit's scope when it is not the host's, and the
/// uid when it is not root's.
fn placed(comm: &str, exe: Option<&str>, unit: Option<&str>, scope: &Scope, uid: Option<u32>) -> String {
    let mut name = process_name(comm, exe);
    if let Some(u) = uid.filter(|u| *u != 0) {
        name.push_str(&format!(" uid {u}"));
    }
    match unit_label(unit, Some(scope)) {
        Some(u) => format!("{name}, {u}"),
        None => name,
    }
}

pub(super) fn held(map: &std::collections::BTreeMap<String, needs::Held>, accept: bool) -> Vec<Held> {
    map.iter()
        .map(|(m, h)| Held {
            module: m.clone(),
            why: h.why.clone(),
            asked: h.cited.iter().map(|c| c.reason.text.clone()).collect(),
            count: h.cited.iter().map(|c| c.reason.count).sum(),
            accept: accept.then(|| format!("modtrace allow {m}")),
        })
        .collect()
}

/// A folded entry (profile/bound.rs) as a row: its first names, and how many
/// requests it counts.
fn folded_row(f: &crate::profile::FoldedRequests) -> MissingRequest {
    let who = match &f.requester {
        Some(r) => placed(&r.comm, r.exe.as_deref(), r.unit.as_deref(), &r.scope, r.uid),
        None => "untrusted processes beyond the bound".to_string(),
    };
    MissingRequest {
        alias: format!("{} ... (folded: the first {} names)", f.aliases.join(", "), f.aliases.len()),
        count: f.count,
        requested_by: vec![who],
    }
}

/// Builds the report's contents; `plan` is the needs stage's view of the
/// profile (what is listed, held for review, denied, disabled by the site).
pub fn build(profile: &Profile, plan: &Plan, by: GroupBy) -> Report {
    build_with(profile, plan, &[], by)
}

/// [`build`], with each host's plan of a fleet profile for `--by host`
/// (needs::fleet::host_plans).
pub fn build_with(profile: &Profile, plan: &Plan, host_plans: &[HostPlan], by: GroupBy) -> Report {
    let top: Vec<&Module> = profile.modules.iter().filter(|m| m.top_level).collect();
    let missing = missing_requests(profile);
    let failed = failed_loads(profile);
    let lost = profile.lost_events();
    let warnings = warnings(profile, lost);
    let needs_review = held(&plan.review, true);

    let (mut modules, mut units, mut by_host, mut packages) = (None, None, None, None);
    match by {
        GroupBy::Module => modules = Some(top.iter().map(|m| top_level(profile, m)).collect()),
        GroupBy::Unit => units = Some(by_unit(profile)),
        GroupBy::Host => by_host = Some(fleet::by_host(profile, plan, host_plans)),
        GroupBy::Package => packages = Some(by_package(profile)),
    }
    Report {
        schema: "modtrace-report/1",
        kernel: profile.kernel.clone(),
        host: profile.host.clone(),
        sessions: profile.sessions.len(),
        sessions_from_initramfs: profile.sessions.iter().filter(|s| s.from_initramfs.is_some()).count(),
        learning_secs: profile.sessions.iter().map(|s| s.duration_secs).sum(),
        boots: profile.boots.len(),
        fleet: fleet::hosts(profile),
        summary: Summary {
            modules: profile.modules.len(),
            top_level: top.len(),
            requests_without_module: missing.len(),
            failed_loads: failed.len(),
            failed_attempts: profile.failed.iter().map(|f| f.count).sum(),
            lost_events: lost,
            needs_review: needs_review.len(),
        },
        modules,
        units,
        by_host,
        packages,
        requests_without_module: missing,
        failed,
        needs_review,
        denied: held(&plan.denied, false),
        site_disabled: held(&plan.site_disabled, false),
        warnings,
    }
}

/// Requests that found no module, and the folded entries of the bound.
fn missing_requests(profile: &Profile) -> Vec<MissingRequest> {
    let mut missing: Vec<MissingRequest> = profile
        .requests
        .iter()
        .filter(|r| r.resolves_to.is_empty())
        .map(|r| MissingRequest {
            alias: r.alias.clone(),
            count: r.count,
            requested_by: r
                .requesters
                .iter()
                .map(|c| placed(&c.who.comm, c.who.exe.as_deref(), c.who.unit.as_deref(), &c.who.scope, c.who.uid))
                .chain((r.requesters_folded > 0).then(|| format!("{} more by untrusted ones", r.requesters_folded)))
                .collect(),
        })
        .collect();
    missing.extend(profile.folded_requests.iter().map(folded_row));
    missing
}

fn failed_loads(profile: &Profile) -> Vec<FailedLoad> {
    profile
        .failed
        .iter()
        .map(|f| FailedLoad {
            module: f.module.clone(),
            alias: f.alias.clone(),
            error: f.error.clone().unwrap_or_else(|| format!("{}", f.ret)),
            loader: placed(&f.loader.comm, f.loader.exe.as_deref(), f.loader.unit.as_deref(), &f.loader.scope, f.loader.uid),
            requested_by: f.requester.as_ref().map(|r| placed(&r.comm, r.exe.as_deref(), r.unit.as_deref(), &r.scope, r.uid)),
            count: f.count,
        })
        .collect()
}

/// What to know before trusting the profile: lost events, loads with no
/// cause, no session, an old format.
fn warnings(profile: &Profile, lost: u64) -> Vec<String> {
    let mut warnings = Vec::new();
    if lost > 0 {
        warnings.push(format!(
            "{lost} kernel events were lost while learning: this profile may miss modules; learn again before locking"
        ));
    }
    let unknown: Vec<&str> = profile
        .modules
        .iter()
        .filter(|m| m.triggers.iter().any(|t| t.kind == TriggerKind::Unknown))
        .map(|m| m.name.as_str())
        .collect();
    if !unknown.is_empty() {
        warnings.push(format!("no cause could be told for some loads of: {}", unknown.join(", ")));
    }
    if profile.sessions.is_empty() {
        warnings.push("the profile has no learning session".to_string());
    }
    if let Some(old) = &profile.migrated_from {
        warnings.push(format!(
            "read as {old}, which recorded no uid: its requests and loads need review (modtrace review) or a new learning session"
        ));
    }
    warnings
}

fn top_level(profile: &Profile, m: &Module) -> TopLevel {
    let triggers: Vec<Cause> = m.triggers.iter().map(|t| Cause::on(profile, t)).collect();
    // A dependency loaded by the same udev event as its parent says nothing new.
    let new_to_parent = |c: &Cause| !triggers.iter().any(|t| t.via == c.via);
    TopLevel {
        module: m.name.clone(),
        count: m.count,
        hosts: fleet::count(profile, &m.hosts),
        taints: m.taints.clone(),
        dependencies: folded_deps(profile, m)
            .into_iter()
            .map(|d| Dependency {
                module: d.name.clone(),
                count: d.count,
                hosts: fleet::count(profile, &d.hosts),
                own_triggers: own_triggers(profile, d).into_iter().filter(|c| new_to_parent(c)).collect(),
            })
            .collect(),
        triggers,
    }
}

/// "lightdm.service", or with its scope when it is not a host system unit:
/// "lightdm.service [user unit of uid 1000]".
pub fn unit_label(unit: Option<&str>, scope: Option<&Scope>) -> Option<String> {
    let note = match scope {
        None | Some(Scope::System { .. }) | Some(Scope::NoUnit) => None,
        Some(Scope::User { uid, .. }) => Some(format!("user unit of uid {uid}")),
        Some(Scope::Session { uid, .. }) => Some(format!("session of uid {uid}")),
        Some(Scope::Container { runtime, name, .. }) => Some(format!("container {name}, {runtime}")),
        Some(Scope::Unknown) => Some("scope unknown".to_string()),
    };
    match (unit, note) {
        (Some(u), Some(n)) => Some(format!("{u} [{n}]")),
        (Some(u), None) => Some(u.to_string()),
        (None, Some(n)) if !matches!(scope, Some(Scope::Unknown)) => Some(format!("[{n}]")),
        _ => None,
    }
}

/// A cause the unit and package views show, the places the needs stage
/// attributes it to, and its need as a unit's row.
pub(super) struct Shown<'a> {
    pub trigger: &'a Trigger,
    pub places: Vec<(Option<String>, Option<Scope>)>,
    pub need: UnitNeed,
}

/// Every top-level module's own causes, and a dependency's causes of its own.
pub(super) fn shown(profile: &Profile) -> Vec<Shown<'_>> {
    let mut out = Vec::new();
    for m in &profile.modules {
        let triggers: Vec<&Trigger> = if m.top_level {
            m.triggers.iter().filter(|t| t.needed_by.is_none()).collect()
        } else {
            own(m).collect()
        };
        for t in triggers {
            let cause = Cause::of(t);
            // Every unit the needs stage attributes the trigger to (all who
            // asked for a shared load), else the cause's own (udev's loader).
            let mut places: Vec<(Option<String>, Option<Scope>)> =
                needs::units_of(t).into_iter().map(|(u, s)| (Some(u), Some(s))).collect();
            if places.is_empty() {
                places.push((cause.unit.clone(), cause.scope.clone()));
            }
            let need = UnitNeed {
                module: m.name.clone(),
                kind: t.kind,
                trusted: cause.trusted,
                via: cause.via,
                process: cause.process,
                count: t.count,
                dependencies: folded_deps(profile, m).iter().map(|d| d.name.clone()).collect(),
                hosts: fleet::count(profile, &t.hosts),
            };
            out.push(Shown { trigger: t, places, need });
        }
    }
    out
}

fn by_unit(profile: &Profile) -> Vec<UnitGroup> {
    // Key: Some(unit) first in label order, then None (no unit / preloaded).
    type Key = (bool, String);
    type Group = (Option<String>, Option<Scope>, Vec<UnitNeed>);
    let mut groups: BTreeMap<Key, Group> = BTreeMap::new();
    for Shown { places, need, .. } in shown(profile) {
        for (unit, scope) in places {
            let key = match unit_label(unit.as_deref(), scope.as_ref()) {
                Some(label) if unit.is_some() => (false, label),
                _ => (true, String::new()),
            };
            let entry = groups.entry(key).or_insert_with(|| (unit.clone(), scope.clone(), Vec::new()));
            entry.2.push(need.clone());
        }
    }
    groups
        .into_iter()
        .map(
            |((none, _), (unit, scope, needs))| {
                if none {
                    UnitGroup { unit: None, scope: None, needs }
                } else {
                    UnitGroup { unit, scope, needs }
                }
            },
        )
        .collect()
}
