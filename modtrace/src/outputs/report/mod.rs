//! `modtrace report`'s rendering: profile -> text for a person deciding what to
//! keep (table), for an issue or a wiki (markdown), or for a script (JSON).
//! Pure: no I/O here.

use crate::escape::text;
use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::needs::{self, trust, Plan};
use crate::profile::{Module, Profile, Trigger, TriggerKind};
use crate::trace::scope::Scope;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Markdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    /// One entry per top-level module, its dependencies folded under it.
    Module,
    /// One entry per systemd unit: what it needs, and through which alias.
    Unit,
}

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
    pub summary: Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modules: Option<Vec<TopLevel>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub units: Option<Vec<UnitGroup>>,
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
    pub taints: Vec<String>,
    pub triggers: Vec<Cause>,
    pub dependencies: Vec<Dependency>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dependency {
    pub module: String,
    pub count: u64,
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

impl Cause {
    fn of(t: &Trigger) -> Cause {
        let requester = t.requester.as_ref();
        let loader = t.loader.as_ref();
        let req_name = requester.map(|r| process_name(&r.comm, r.exe.as_deref()));
        let loader_name = loader.map(|l| process_name(&l.comm, l.exe.as_deref()));
        let req_at = requester.map(|r| (r.unit.clone(), Some(r.scope.clone()), r.uid));
        let loader_at = loader.map(|l| (l.unit.clone(), Some(l.scope.clone()), l.uid));
        let none = (None, None, None);
        let (at, process, via) = match t.kind {
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
        };
        let via = match &t.needed_by {
            Some(n) => format!("{via} (for {n})"),
            None => via,
        };
        let via = match &t.stage {
            Some(stage) => format!("{via} in the {stage}"),
            None => via,
        };
        let (unit, scope, uid) = at;
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

/// Causes worth showing for a dependency besides being one: not "preloaded
/// before learning", which modules.dep already explains.
fn own_triggers(m: &Module) -> Vec<Cause> {
    m.triggers
        .iter()
        .filter(|t| t.needed_by.is_none())
        .filter(|t| !(t.kind == TriggerKind::Preloaded && t.reason.as_deref() == Some(crate::profile::BEFORE_LEARNING)))
        .map(Cause::of)
        .collect()
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

fn held(map: &std::collections::BTreeMap<String, needs::Held>, accept: bool) -> Vec<Held> {
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
    let top: Vec<&Module> = profile.modules.iter().filter(|m| m.top_level).collect();
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
    let failed: Vec<FailedLoad> = profile
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
        .collect();
    let lost = profile.lost_events();
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
    let needs_review = held(&plan.review, true);

    let (modules, units) = match by {
        GroupBy::Module => (Some(top.iter().map(|m| top_level(profile, m)).collect()), None),
        GroupBy::Unit => (None, Some(by_unit(profile))),
    };
    Report {
        schema: "modtrace-report/1",
        kernel: profile.kernel.clone(),
        host: profile.host.clone(),
        sessions: profile.sessions.len(),
        sessions_from_initramfs: profile.sessions.iter().filter(|s| s.from_initramfs.is_some()).count(),
        learning_secs: profile.sessions.iter().map(|s| s.duration_secs).sum(),
        boots: profile.boots.len(),
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
        requests_without_module: missing,
        failed,
        needs_review,
        denied: held(&plan.denied, false),
        site_disabled: held(&plan.site_disabled, false),
        warnings,
    }
}

fn top_level(profile: &Profile, m: &Module) -> TopLevel {
    let triggers: Vec<Cause> = m.triggers.iter().map(Cause::of).collect();
    // A dependency loaded by the same udev event as its parent says nothing new.
    let new_to_parent = |c: &Cause| !triggers.iter().any(|t| t.via == c.via);
    TopLevel {
        module: m.name.clone(),
        count: m.count,
        taints: m.taints.clone(),
        dependencies: folded_deps(profile, m)
            .into_iter()
            .map(|d| Dependency {
                module: d.name.clone(),
                count: d.count,
                own_triggers: own_triggers(d).into_iter().filter(|c| new_to_parent(c)).collect(),
            })
            .collect(),
        triggers,
    }
}

/// A CPU's modalias lists every CPU feature: hundreds of characters that would
/// push a table off any screen. Tables show its start; JSON keeps it whole.
fn shortened(via: &str) -> String {
    const MAX: usize = 60;
    match via.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &via[..cut]),
        None => via.to_string(),
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

fn by_unit(profile: &Profile) -> Vec<UnitGroup> {
    // Key: Some(unit) first in label order, then None (no unit / preloaded).
    type Key = (bool, String);
    type Group = (Option<String>, Option<Scope>, Vec<UnitNeed>);
    let mut groups: BTreeMap<Key, Group> = BTreeMap::new();
    for m in &profile.modules {
        let shown: Vec<&Trigger> = if m.top_level {
            m.triggers.iter().filter(|t| t.needed_by.is_none()).collect()
        } else {
            m.triggers
                .iter()
                .filter(|t| {
                    t.needed_by.is_none()
                        && !(t.kind == TriggerKind::Preloaded
                            && t.reason.as_deref() == Some(crate::profile::BEFORE_LEARNING))
                })
                .collect()
        };
        for t in shown {
            let cause = Cause::of(t);
            // Every unit the needs stage attributes the trigger to (all who
            // asked for a shared load), else the cause's own (udev's loader).
            let mut places: Vec<(Option<String>, Option<Scope>)> =
                needs::units_of(t).into_iter().map(|(u, s)| (Some(u), Some(s))).collect();
            if places.is_empty() {
                places.push((cause.unit.clone(), cause.scope.clone()));
            }
            for (unit, scope) in places {
                let key = match unit_label(unit.as_deref(), scope.as_ref()) {
                    Some(label) if unit.is_some() => (false, label),
                    _ => (true, String::new()),
                };
                let entry = groups.entry(key).or_insert_with(|| (unit.clone(), scope.clone(), Vec::new()));
                entry.2.push(UnitNeed {
                    module: m.name.clone(),
                    kind: t.kind,
                    trusted: cause.trusted,
                    via: cause.via.clone(),
                    process: cause.process.clone(),
                    count: t.count,
                    dependencies: folded_deps(profile, m).iter().map(|d| d.name.clone()).collect(),
                });
            }
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

/// Renders the profile.
pub fn render(profile: &Profile, plan: &Plan, format: Format, by: GroupBy) -> String {
    let report = build(profile, plan, by);
    match format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&report).expect("a report always serializes");
            s.push('\n');
            s
        }
        // Each value went through escape::text where it was placed; this pass
        // catches what a line was built from unescaped.
        Format::Table => crate::escape::lines(&table(&report)).into_owned(),
        Format::Markdown => crate::escape::lines(&markdown(&report)).into_owned(),
    }
}

fn duration_text(secs: u64) -> String {
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

fn summary_line(r: &Report) -> String {
    let s = &r.summary;
    let plural = |n: u64, one: &str, many: &str| if n == 1 { format!("{n} {one}") } else { format!("{n} {many}") };
    let review = if s.needs_review > 0 { format!("; {} need review", s.needs_review) } else { String::new() };
    format!(
        "{}, {} top-level; {} found no module; {}{}; {}{review}",
        plural(s.modules as u64, "module", "modules"),
        s.top_level,
        plural(s.requests_without_module as u64, "request", "requests"),
        plural(s.failed_loads as u64, "failed load", "failed loads"),
        if s.failed_attempts as usize > s.failed_loads {
            format!(" ({} attempts)", s.failed_attempts)
        } else {
            String::new()
        },
        plural(s.lost_events, "lost event", "lost events"),
    )
}

fn header_line(r: &Report) -> String {
    let early = match r.sessions_from_initramfs {
        0 => String::new(),
        n if n == r.sessions => ", from the initramfs on".to_string(),
        n => format!(", {n} from the initramfs on"),
    };
    format!(
        "host {}, kernel {}: {} learning session{} ({}{early}), {} boot{}",
        r.host,
        r.kernel,
        r.sessions,
        if r.sessions == 1 { "" } else { "s" },
        duration_text(r.learning_secs),
        r.boots,
        if r.boots == 1 { "" } else { "s" }
    )
}

/// Aligned columns; the columns listed in `right` are right-aligned.
fn columns(rows: &[Vec<String>], right: &[usize]) -> String {
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(|c| text(c).into_owned()).collect()).collect();
    let n = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut widths = vec![0; n];
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i] - cell.chars().count();
            if right.contains(&i) {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                if i + 1 < row.len() {
                    line.push_str(&" ".repeat(pad));
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn dash(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".to_string())
}

fn table(r: &Report) -> String {
    let mut out = format!("{}\n", text(&header_line(r)));
    for w in &r.warnings {
        out.push_str(&format!("WARNING: {}\n", text(w)));
    }
    out.push('\n');
    if let Some(modules) = &r.modules {
        let mut rows =
            vec![vec!["MODULE".into(), "COUNT".into(), "UNIT".into(), "UID".into(), "PROCESS".into(), "VIA".into()]];
        for m in modules {
            let name =
                if m.taints.is_empty() { m.module.clone() } else { format!("{} ({})", m.module, m.taints.concat()) };
            if m.triggers.is_empty() {
                rows.push(vec![name.clone(), m.count.to_string(), "-".into(), "-".into(), "-".into(), "-".into()]);
            }
            for (i, t) in m.triggers.iter().enumerate() {
                rows.push(vec![
                    if i == 0 { name.clone() } else { String::new() },
                    t.count.to_string(),
                    dash(&unit_label(t.unit.as_deref(), t.scope.as_ref())),
                    uid_cell(t),
                    dash(&t.process),
                    shortened(&t.via),
                ]);
            }
            for d in &m.dependencies {
                let own = d.own_triggers.iter().map(|t| shortened(&t.via)).collect::<Vec<_>>();
                let via = if own.is_empty() {
                    "dependency".to_string()
                } else {
                    format!("dependency; also {}", own.join("; "))
                };
                rows.push(vec![
                    format!("  {}", d.module),
                    d.count.to_string(),
                    String::new(),
                    String::new(),
                    String::new(),
                    via,
                ]);
            }
        }
        out.push_str(&columns(&rows, &[1]));
    }
    if let Some(units) = &r.units {
        for g in units {
            let label = unit_label(g.unit.as_deref(), g.scope.as_ref());
            let label = label.as_deref().unwrap_or("(no unit: preloaded, or outside systemd)");
            out.push_str(&format!("{}\n", text(label)));
            for n in &g.needs {
                out.push_str(&format!("  {}\n", text(&unit_sentence(g.unit.as_deref(), n))));
            }
        }
    }
    out.push_str(&held_text(r));
    if !r.requests_without_module.is_empty() {
        out.push_str("\nRequests that found no module (they fail now, and after a lock too):\n");
        let mut rows = vec![vec!["ALIAS".into(), "COUNT".into(), "REQUESTED BY".into()]];
        for m in &r.requests_without_module {
            rows.push(vec![m.alias.clone(), m.count.to_string(), m.requested_by.join("; ")]);
        }
        out.push_str(&columns(&rows, &[1]));
    }
    if !r.failed.is_empty() {
        out.push_str("\nFailed loads:\n");
        let mut rows =
            vec![vec!["MODULE".into(), "ERROR".into(), "COUNT".into(), "LOADER".into(), "REQUESTED BY".into()]];
        for f in &r.failed {
            rows.push(vec![
                failed_what(f),
                f.error.clone(),
                f.count.to_string(),
                f.loader.clone(),
                dash(&f.requested_by),
            ]);
        }
        out.push_str(&columns(&rows, &[2]));
    }
    out.push_str(&format!("\n{}\n", summary_line(r)));
    out
}

fn uid_cell(c: &Cause) -> String {
    match (c.kind, c.uid) {
        (TriggerKind::Preloaded, _) => "-".to_string(),
        (_, Some(u)) => u.to_string(),
        (_, None) => "?".to_string(),
    }
}

/// The held-back modules as text: for review (with the command that accepts
/// each), denied, disabled by the site.
fn held_text(r: &Report) -> String {
    let mut out = String::new();
    if !r.needs_review.is_empty() {
        out.push_str("\nNeeds review: no evidence that root on the host wanted these (only other processes asked, or the cause is unknown); not listed until accepted:\n");
        for h in &r.needs_review {
            out.push_str(&format!("  {} ({} time(s)): {}\n", text(&h.module), h.count, text(&h.why)));
            for a in &h.asked {
                out.push_str(&format!("    - {}\n", text(&shortened_long(a))));
            }
            if let Some(cmd) = &h.accept {
                out.push_str(&format!("    accept: {}\n", text(cmd)));
            }
        }
    }
    for (title, list) in
        [("Denied (never listed)", &r.denied), ("Disabled by site policy (not listed)", &r.site_disabled)]
    {
        if list.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{title}:\n"));
        for h in list {
            out.push_str(&format!("  {}: {}\n", text(&h.module), text(&h.why)));
        }
    }
    out
}

/// A sentence cut at 200 characters (a CPU modalias inside would push a
/// terminal's line off the screen).
fn shortened_long(s: &str) -> String {
    match s.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

fn failed_what(f: &FailedLoad) -> String {
    match (&f.module, &f.alias) {
        (Some(m), Some(a)) => format!("{m} (via {a})"),
        (Some(m), None) => m.clone(),
        (None, Some(a)) => format!("? (via {a})"),
        (None, None) => "?".to_string(),
    }
}

/// "lightdm.service needs binfmt_misc via fs-binfmt_misc (lightdm, 2 times)".
fn unit_sentence(unit: Option<&str>, n: &UnitNeed) -> String {
    let who = unit.unwrap_or("");
    let deps = if n.dependencies.is_empty() { String::new() } else { format!(" (with {})", n.dependencies.join(", ")) };
    let by = match &n.process {
        Some(p) => format!("by {p}, "),
        None => String::new(),
    };
    let times = if n.count == 1 { "once".to_string() } else { format!("{} times", n.count) };
    let sentence = match n.kind {
        TriggerKind::Request => {
            let alias = n.via.strip_prefix("request ").unwrap_or(&n.via);
            format!("{who} needs {}{deps} via {alias}", n.module)
        }
        TriggerKind::Udev => match n.via.strip_prefix("udev ") {
            Some(device) => format!("{who} loads {}{deps} for device {device}", n.module),
            None => format!("{who} loads {}{deps} for a device", n.module),
        },
        TriggerKind::Explicit => format!("{who} loads {}{deps} explicitly", n.module),
        TriggerKind::Preloaded => match n.via.trim_start_matches("preloaded: ") {
            crate::profile::BEFORE_LEARNING => format!("{}{deps} was already loaded when learning started", n.module),
            reason => format!("{}{deps} is loaded at boot by {reason}", n.module),
        },
        TriggerKind::Unknown => format!("{}{deps}: {}", n.module, n.via),
    };
    format!("{} ({by}{times})", sentence.trim_start())
}

fn md(s: &str) -> String {
    text(s).replace('\\', "\\\\").replace('|', "\\|")
}

fn code(s: &str) -> String {
    if s.is_empty() || s == "-" {
        s.to_string()
    } else {
        format!("`{}`", text(s).replace('`', "'").replace('|', "\\|"))
    }
}

fn markdown(r: &Report) -> String {
    let mut out =
        format!("## modtrace profile of {} (kernel {})\n\n{}\n", md(&r.host), md(&r.kernel), md(&header_line(r)));
    if !r.warnings.is_empty() {
        out.push('\n');
        for w in &r.warnings {
            out.push_str(&format!("> **Warning:** {}\n", md(w)));
        }
    }
    if let Some(modules) = &r.modules {
        out.push_str("\n### Modules\n\n| Module | Count | Unit | UID | Process | Via |\n|---|---:|---|---|---|---|\n");
        for m in modules {
            let name = if m.taints.is_empty() {
                format!("**{}**", md(&m.module))
            } else {
                format!("**{}** ({})", md(&m.module), m.taints.concat())
            };
            if m.triggers.is_empty() {
                out.push_str(&format!("| {name} | {} | | | | |\n", m.count));
            }
            for (i, t) in m.triggers.iter().enumerate() {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} |\n",
                    if i == 0 { name.as_str() } else { "" },
                    t.count,
                    code(&dash(&unit_label(t.unit.as_deref(), t.scope.as_ref()))),
                    uid_cell(t),
                    md(&dash(&t.process)),
                    md(&shortened(&t.via)),
                ));
            }
            for d in &m.dependencies {
                let own = d.own_triggers.iter().map(|t| shortened(&t.via)).collect::<Vec<_>>();
                let via = if own.is_empty() {
                    "dependency".to_string()
                } else {
                    format!("dependency; also {}", own.join("; "))
                };
                out.push_str(&format!("| ↳ {} | {} | | | | {} |\n", md(&d.module), d.count, md(&via)));
            }
        }
    }
    if let Some(units) = &r.units {
        out.push_str("\n### By unit\n");
        for g in units {
            out.push_str(&format!(
                "\n#### {}\n\n",
                match unit_label(g.unit.as_deref(), g.scope.as_ref()) {
                    Some(u) if g.unit.is_some() => code(&u),
                    _ => "No unit (preloaded, or outside systemd)".to_string(),
                }
            ));
            for n in &g.needs {
                out.push_str(&format!("- {}\n", md(&unit_sentence(g.unit.as_deref(), n))));
            }
        }
    }
    if !r.requests_without_module.is_empty() {
        out.push_str("\n### Requests that found no module\n\n| Alias | Count | Requested by |\n|---|---:|---|\n");
        for m in &r.requests_without_module {
            out.push_str(&format!("| {} | {} | {} |\n", code(&m.alias), m.count, md(&m.requested_by.join("; "))));
        }
    }
    if !r.failed.is_empty() {
        out.push_str(
            "\n### Failed loads\n\n| Module | Error | Count | Loader | Requested by |\n|---|---|---:|---|---|\n",
        );
        for f in &r.failed {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                md(&failed_what(f)),
                code(&f.error),
                f.count,
                md(&f.loader),
                md(&dash(&f.requested_by))
            ));
        }
    }
    if !r.needs_review.is_empty() {
        out.push_str("\n### Needs review\n\nOnly processes that are not root on the host asked for these; not listed until accepted.\n\n| Module | Count | Why | Asked | Accept |\n|---|---:|---|---|---|\n");
        for h in &r.needs_review {
            let asked: Vec<String> = h.asked.iter().map(|a| shortened_long(a)).collect();
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                md(&h.module),
                h.count,
                md(&h.why),
                md(&asked.join("; ")),
                code(h.accept.as_deref().unwrap_or("-"))
            ));
        }
    }
    for (title, list) in [("Denied", &r.denied), ("Disabled by site policy", &r.site_disabled)] {
        if list.is_empty() {
            continue;
        }
        out.push_str(&format!("\n### {title}\n\n"));
        for h in list {
            out.push_str(&format!("- {}: {}\n", code(&h.module), md(&h.why)));
        }
    }
    out.push_str(&format!("\n**Summary:** {}\n", md(&summary_line(r))));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::needs::target::Target;
    use crate::testutil::example_profile;

    fn render(p: &Profile, format: Format, by: GroupBy) -> String {
        let plan = needs::plan(p, &Target::from_profile(p)).unwrap();
        super::render(p, &plan, format, by)
    }

    #[test]
    fn table_shows_top_level_modules_with_causes_and_folded_dependencies() {
        let text = render(&example_profile(), Format::Table, GroupBy::Module);
        let lines: Vec<&str> = text.lines().collect();
        let row = |start: &str| {
            *lines
                .iter()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("no row starting {start:?} in\n{text}"))
        };
        let at = row("appletalk ");
        assert!(
            at.contains("example.service")
                && at.contains("modtrace-guest (/usr/bin/python3)")
                && at.contains("request net-pf-5"),
            "{at}"
        );
        let at_i = lines.iter().position(|l| l.starts_with("appletalk ")).unwrap();
        assert!(lines[at_i + 1].starts_with("  psnap ") && lines[at_i + 1].ends_with("dependency"), "{text}");
        assert!(lines[at_i + 2].starts_with("  llc "), "{text}");
        assert!(row("binfmt_misc ").contains("init.scope"));
        assert!(row("ext4 ").contains("preloaded: /etc/modules-load.d/ext4.conf"));
        assert!(row("  jbd2 ").contains("dependency"));
        assert!(row("snd_hda_intel ").contains("systemd-udevd.service"));
        assert!(!text.contains("\npsnap "), "psnap is not top-level:\n{text}");
        assert!(row("net-pf-38 ").contains("modtrace-guest (/usr/bin/python3), example.service"), "{text}");
        assert!(row("appletalk (via net-pf-5) ").contains("EPERM"), "{text}");
        assert_eq!(
            *lines.last().unwrap(),
            "8 modules, 4 top-level; 1 request found no module; 1 failed load (3 attempts); 0 lost events"
        );
        assert!(
            lines[0].starts_with("host kicksecure, kernel 6.1.0-18-amd64: 1 learning session (10m), 1 boot"),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn the_header_says_which_sessions_learned_from_the_initramfs_on() {
        let mut p = example_profile();
        p.sessions[0].from_initramfs = Some(34);
        let text = render(&p, Format::Table, GroupBy::Module);
        assert!(text.starts_with("host kicksecure, kernel 6.1.0-18-amd64: 1 learning session (10m, from the initramfs on), 1 boot"), "{text}");
        let mut second = p.sessions[0].clone();
        second.from_initramfs = None;
        p.sessions.push(second);
        let text = render(&p, Format::Table, GroupBy::Module);
        assert!(text.contains("2 learning sessions (20m, 1 from the initramfs on)"), "{text}");
    }

    #[test]
    fn a_load_of_the_initramfs_says_so() {
        let mut p = example_profile();
        let ext4 = p.modules.iter_mut().find(|m| m.name == "ext4").unwrap();
        let mut t = crate::profile::Trigger::new(crate::profile::TriggerKind::Explicit);
        t.loader = Some(crate::testutil::udevd_loader());
        t.loader.as_mut().unwrap().comm = "insmod".into();
        t.stage = Some("initramfs".into());
        t.count = 1;
        ext4.triggers = vec![t];
        let text = render(&p, Format::Table, GroupBy::Module);
        let row = text.lines().find(|l| l.starts_with("ext4 ")).unwrap_or_else(|| panic!("{text}"));
        assert!(row.contains("explicit in the initramfs") && row.contains("insmod"), "{row}");
    }

    #[test]
    fn by_unit_says_who_needs_what() {
        let text = render(&example_profile(), Format::Table, GroupBy::Unit);
        assert!(text.contains("example.service\n  example.service needs appletalk (with psnap, llc) via net-pf-5 (by modtrace-guest (/usr/bin/python3), once)"), "{text}");
        assert!(text.contains("init.scope needs binfmt_misc via fs-binfmt_misc"), "{text}");
        assert!(
            text.contains("systemd-udevd.service loads snd_hda_intel for a device (by systemd-udevd, once)"),
            "{text}"
        );
        assert!(
            text.contains("ext4 (with jbd2, mbcache) is loaded at boot by /etc/modules-load.d/ext4.conf (once)"),
            "{text}"
        );
        assert!(!text.contains("jbd2 was"), "a dependency preloaded before learning is no need of its own: {text}");
        // Dependencies are not listed as needs of their own.
        assert!(!text.contains("needs psnap"), "{text}");
        // Units in name order, no-unit last.
        let ex = text.find("\nexample.service\n").unwrap();
        let init = text.find("\ninit.scope\n").unwrap();
        let none = text.find("(no unit").unwrap();
        assert!(ex < init && init < none, "{text}");
    }

    #[test]
    fn markdown_is_a_table_with_escaped_cells() {
        let mut p = example_profile();
        let ext4 = p.modules.iter_mut().find(|m| m.name == "ext4").unwrap();
        ext4.triggers[0].reason = Some("a|b".to_string());
        let text = render(&p, Format::Markdown, GroupBy::Module);
        assert!(text.starts_with("## modtrace profile of kicksecure (kernel 6.1.0-18-amd64)\n"), "{text}");
        assert!(
            text.contains("| Module | Count | Unit | UID | Process | Via |\n|---|---:|---|---|---|---|\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "| **appletalk** | 1 | `example.service` | 0 | modtrace-guest (/usr/bin/python3) | request net-pf-5 |"
            ),
            "{text}"
        );
        assert!(text.contains("| ↳ psnap | 1 | | | | dependency |"), "{text}");
        assert!(text.contains("a\\|b"), "pipes escaped: {text}");
        assert!(text.contains("### Requests that found no module"), "{text}");
        assert!(text.contains("| `net-pf-38` | 1 |"), "{text}");
        assert!(text.contains("### Failed loads"), "{text}");
        assert!(text.contains("**Summary:** 8 modules"), "{text}");
        let by_unit = render(&example_profile(), Format::Markdown, GroupBy::Unit);
        assert!(by_unit.contains("#### `example.service`\n\n- example.service needs appletalk"), "{by_unit}");
    }

    #[test]
    fn json_is_for_scripts() {
        let v: serde_json::Value =
            serde_json::from_str(&render(&example_profile(), Format::Json, GroupBy::Module)).unwrap();
        assert_eq!(v["schema"], "modtrace-report/1");
        assert_eq!(v["summary"]["modules"], 8);
        assert_eq!(v["summary"]["top_level"], 4);
        assert_eq!(v["summary"]["requests_without_module"], 1);
        assert_eq!(v["summary"]["failed_attempts"], 3);
        let at = v["modules"].as_array().unwrap().iter().find(|m| m["module"] == "appletalk").unwrap();
        assert_eq!(at["triggers"][0]["unit"], "example.service");
        assert_eq!(at["triggers"][0]["kind"], "request");
        let deps: Vec<&str> =
            at["dependencies"].as_array().unwrap().iter().map(|d| d["module"].as_str().unwrap()).collect();
        assert_eq!(deps, ["psnap", "llc"]);
        assert!(v.get("units").is_none());
        let u: serde_json::Value =
            serde_json::from_str(&render(&example_profile(), Format::Json, GroupBy::Unit)).unwrap();
        assert_eq!(u["units"][0]["unit"], "example.service");
        assert_eq!(u["units"][0]["needs"][0]["module"], "appletalk");
        assert_eq!(u["units"][0]["needs"][0]["via"], "request net-pf-5");
    }

    #[test]
    fn untrusted_requesters_are_shown_with_uid_and_scope_under_their_own_heading() {
        use crate::testutil::untrusted_profile;
        let p = untrusted_profile();
        let text = render(&p, Format::Table, GroupBy::Module);
        let vfat = text.lines().find(|l| l.starts_with("vfat ")).unwrap_or_else(|| panic!("{text}"));
        assert!(vfat.contains("lightdm.service [user unit of uid 1000]") && vfat.contains(" 1000 "), "{vfat}");
        let dummy = text.lines().find(|l| l.starts_with("dummy ")).unwrap();
        assert!(dummy.contains("fake-dm.service [container web, systemd-nspawn]"), "{dummy}");
        let start = text.find("Needs review:").unwrap_or_else(|| panic!("{text}"));
        let review = &text[start..start + text[start..].find("\n\n").unwrap()];
        assert!(
            review.contains(
                "vfat (2 time(s)): an unprivileged process (uid 1000) in the user unit lightdm.service of uid 1000"
            ),
            "{review}"
        );
        assert!(
            review.contains("accept: modtrace allow vfat") && review.contains("accept: modtrace allow dummy"),
            "{review}"
        );
        assert!(!review.contains("appletalk"), "root in a system unit is trusted: {review}");
        assert!(text.trim_end().ends_with("2 need review"), "{text}");

        // By unit: the user's lightdm.service is not the host's.
        let by = render(&p, Format::Table, GroupBy::Unit);
        assert!(
            by.contains("\nlightdm.service [user unit of uid 1000]\n  lightdm.service needs vfat via fs-vfat"),
            "{by}"
        );
        assert!(!by.contains("\nlightdm.service\n"), "{by}");
        let json: serde_json::Value = serde_json::from_str(&render(&p, Format::Json, GroupBy::Module)).unwrap();
        let m = json["modules"].as_array().unwrap().iter().find(|m| m["module"] == "vfat").unwrap();
        assert_eq!(m["triggers"][0]["scope"]["kind"], "user");
        assert_eq!(m["triggers"][0]["uid"], 1000);
        assert_eq!(m["triggers"][0]["trusted"], false);
        assert_eq!(json["needs_review"][1]["accept"], "modtrace allow vfat");
        let md = render(&p, Format::Markdown, GroupBy::Module);
        assert!(md.contains("### Needs review") && md.contains("`modtrace allow vfat`"), "{md}");
    }

    #[test]
    fn by_unit_names_every_requester_of_a_shared_load() {
        let mut p = example_profile();
        let at = p.modules.iter_mut().find(|m| m.name == "appletalk").unwrap();
        let mut other = at.triggers[0].requester.clone().unwrap();
        other.unit = Some("other.service".into());
        other.scope = Scope::System { unit: "other.service".into() };
        at.triggers[0].also_requested_by.push(other);
        let by = render(&p, Format::Table, GroupBy::Unit);
        assert!(by.contains("\nother.service\n  other.service needs appletalk"), "{by}");
    }

    #[test]
    fn lost_events_are_a_warning() {
        let mut p = example_profile();
        p.sessions[0].lost_events = 7;
        let text = render(&p, Format::Table, GroupBy::Module);
        assert!(text.contains("WARNING: 7 kernel events were lost"), "{text}");
        assert!(text.trim_end().ends_with("7 lost events"), "{text}");
    }
}

#[cfg(test)]
mod shortening_tests {
    use super::*;

    #[test]
    fn a_cpu_modalias_is_cut_in_tables_and_short_text_is_kept() {
        let cpu = format!("udev cpu:type:x86,ven0002fam000Fmod006B:feature:{}", ",0000".repeat(100));
        let short = shortened(&cpu);
        assert_eq!(short.chars().count(), 61);
        assert!(short.ends_with('…') && cpu.starts_with(short.trim_end_matches('…')));
        assert_eq!(shortened("request net-pf-5"), "request net-pf-5");
    }
}
