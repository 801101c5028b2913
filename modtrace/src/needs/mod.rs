//! The needs stage, between the profile and every output: from a profile, the
//! admin's decisions in it, the site's modprobe.d policy and a target kernel to
//! what that kernel must load, who needs it, and whether that may be trusted.
//! report, generate, check and lock all read what [`derive`] says.
//!
//! Every cause the profile recorded is resolved in the target kernel (a request
//! by its alias, a udev load by its device's modalias, anything else by the
//! module's name), so that a module that was renamed, split or built in since
//! learning is still found; what cannot be resolved is reported, never guessed.
//! Then each resolved module is, in this order: denied (an admin's `deny`),
//! disabled by the site (modprobe.d), listed (a trusted cause, or an admin's
//! `allow`), or left for review (see [`trust`]).

pub mod sitepolicy;
pub mod target;
pub mod trust;

use std::collections::{BTreeMap, BTreeSet};

use crate::needs::target::{Lookup, Target};
use crate::validate::{check_module, check_release, check_unit, Invalid};
use crate::profile::{Module, Profile, Requester, Trigger, TriggerKind, Verdict, BEFORE_LEARNING};
use crate::trace::scope::Scope;
use crate::needs::sitepolicy::SitePolicy;
pub use trust::Trust;

/// Why a module is needed: one recorded cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// The module as the profile names it.
    pub learned_as: String,
    pub kind: TriggerKind,
    /// For a person: "request for net-pf-5 by example.service (python3)". Raw
    /// profile text: escape it before writing (validate::comment).
    pub text: String,
    pub count: u64,
    /// Whether the cause may reach the files by itself, and why.
    pub trust: Trust,
    /// The alias the kernel requested, for a request.
    pub alias: Option<String>,
}

/// A reason, and how the target kernel matched it when that differs from the
/// learned name ("learned as X; alias A now resolves to Y").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cited {
    pub reason: Reason,
    pub note: Option<String>,
}

/// What the profile needs that the target kernel cannot provide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub learned_as: String,
    /// What was looked up: "alias net-pf-5", "device pci:v...", "module foo".
    pub looked_up: String,
    pub reason: Reason,
    /// A clue, e.g. the module still exists but the alias no longer names it.
    pub hint: Option<String>,
}

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} resolves to no module ({})", self.learned_as, self.looked_up, self.reason.text)?;
        if let Some(h) = &self.hint {
            write!(f, "; {h}")?;
        }
        Ok(())
    }
}

/// A module that is not listed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// For review: why its causes are not trusted. Denied: the decision. Site:
    /// the modprobe.d rule.
    pub why: String,
    pub cited: Vec<Cited>,
}

/// What one kernel must load for one profile.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub release: String,
    /// Every loadable module a trusted or accepted cause resolved to, with its
    /// reasons: what is listed.
    pub needs: BTreeMap<String, Vec<Cited>>,
    /// Modules only untrusted causes asked for, and no decision accepted:
    /// not listed until `modtrace allow` (or `modtrace review`).
    pub review: BTreeMap<String, Held>,
    /// Modules an admin denied: never listed.
    pub denied: BTreeMap<String, Held>,
    /// Modules the site's modprobe.d keeps from loading the way they were asked
    /// for: not listed; requests for them fail on purpose.
    pub site_disabled: BTreeMap<String, Held>,
    /// The needed modules no other needed module depends on: the list to load
    /// (modprobe loads the rest as their dependencies). Sorted.
    pub top_level: Vec<String>,
    /// Top-level module -> the modules it brings (its dependencies, transitively).
    pub brings: BTreeMap<String, Vec<String>>,
    /// Needed modules that are built into the target kernel: nothing to load.
    pub builtin: BTreeMap<String, Vec<Cited>>,
    pub unresolved: Vec<Unresolved>,
    /// Unit -> top-level modules it needs -> why.
    pub units: BTreeMap<String, BTreeMap<String, Vec<Cited>>>,
    /// Units that caused loads but get no drop-in, and why not.
    pub other_units: BTreeMap<String, String>,
    /// Things to know about the profile itself (lost events, unfinished runs).
    pub warnings: Vec<String>,
}

impl Plan {
    /// Every module the plan loads: the top-level ones and their dependencies
    /// (built-in ones are in `builtin`).
    pub fn loaded_set(&self) -> BTreeSet<String> {
        let mut all: BTreeSet<String> = self.top_level.iter().cloned().collect();
        for deps in self.brings.values() {
            all.extend(deps.iter().cloned());
        }
        all
    }
}

/// Checks every name the generators could write: module names, the units of
/// every trigger, the kernel release. All offenders are returned, not the first.
pub fn validate(profile: &Profile, release: &str) -> Vec<Invalid> {
    let mut bad = Vec::new();
    let mut module = |value: &str, place: String| {
        if let Err(rule) = check_module(value) {
            bad.push(Invalid { what: "module name", value: value.to_string(), place, rule });
        }
    };
    for (i, m) in profile.modules.iter().enumerate() {
        module(&m.name, format!("modules[{i}].name"));
        for (j, d) in m.depends_on.iter().enumerate() {
            module(d, format!("modules[{i}] ({}).depends_on[{j}]", m.name));
        }
    }
    for (i, r) in profile.requests.iter().enumerate() {
        for (j, m) in r.resolves_to.iter().enumerate() {
            module(m, format!("requests[{i}].resolves_to[{j}]"));
        }
    }
    for (i, m) in profile.modules.iter().enumerate() {
        for (j, t) in m.triggers.iter().enumerate() {
            for (place, unit) in trigger_unit_fields(t) {
                if let Err(rule) = check_unit(unit) {
                    bad.push(Invalid {
                        what: "unit name",
                        value: unit.to_string(),
                        place: format!("modules[{i}] ({}).triggers[{j}].{place}", m.name),
                        rule,
                    });
                }
            }
        }
    }
    if let Err(rule) = check_release(release) {
        bad.push(Invalid { what: "kernel release", value: release.to_string(), place: "kernel".to_string(), rule });
    }
    bad
}

fn trigger_unit_fields(t: &Trigger) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    if let Some(u) = t.requester.as_ref().and_then(|r| r.unit.as_deref()) {
        out.push(("requester.unit".to_string(), u));
    }
    for (k, r) in t.also_requested_by.iter().enumerate() {
        if let Some(u) = r.unit.as_deref() {
            out.push((format!("also_requested_by[{k}].unit"), u));
        }
    }
    if let Some(u) = t.loader.as_ref().and_then(|l| l.unit.as_deref()) {
        out.push(("loader.unit".to_string(), u));
    }
    out
}

/// What to look up in the target kernel for one cause.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Name(String),
    Alias(String),
    Modalias(String),
}

impl Key {
    fn describe(&self) -> String {
        match self {
            Key::Name(n) => format!("module {n}"),
            Key::Alias(a) => format!("alias {a}"),
            Key::Modalias(m) => format!("device {m}"),
        }
    }
}

struct Entry {
    module: String,
    key: Key,
    reason: Reason,
    /// Units (with their scope) the need is attributed to.
    units: Vec<(String, Scope)>,
}

/// "example.service (python3, /usr/bin/python3, uid 0)", with the scope when
/// the unit is not the host's.
pub fn who(r: &Requester) -> String {
    let exe = r.exe.as_deref().map(|e| format!(", {e}")).unwrap_or_default();
    let uid = match r.uid {
        Some(u) => format!(", uid {u}"),
        None => ", uid unknown".to_string(),
    };
    let place = match (&r.scope, &r.unit) {
        (Scope::System { unit }, _) => unit.clone(),
        (Scope::Unknown, Some(u)) => format!("{u} (scope unknown)"),
        (Scope::Unknown, None) => return format!("{} (unit unknown{exe}{uid})", r.comm),
        (Scope::NoUnit, _) => "no unit".to_string(),
        (scope, _) => format!("the {scope}"),
    };
    format!("{place} ({}{exe}{uid})", r.comm)
}

fn times(count: u64) -> String {
    if count == 1 {
        "once".to_string()
    } else {
        format!("{count} times")
    }
}

/// "modprobe (uid 0) in the system unit X.service", or with the scope it has.
pub fn loader_who(l: &crate::profile::Loader) -> String {
    let uid = l.uid.map(|u| format!("uid {u}")).unwrap_or_else(|| "uid unknown".to_string());
    let place = match (&l.scope, &l.unit) {
        (Scope::Unknown, Some(u)) => format!(" in {u} (scope unknown)"),
        (Scope::Unknown, None) => String::new(),
        (scope, _) => format!(" {}", scope.locative()),
    };
    format!("{} ({uid}){place}", l.comm)
}

/// A person's summary of a trigger.
pub fn describe_trigger(t: &Trigger) -> String {
    let base = match t.kind {
        TriggerKind::Request => {
            let mut s = format!("request for {}", t.alias.as_deref().unwrap_or("an unknown alias"));
            if let Some(r) = &t.requester {
                s.push_str(&format!(" by {}", who(r)));
            }
            if !t.also_requested_by.is_empty() {
                let others: Vec<String> = t.also_requested_by.iter().map(who).collect();
                s.push_str(&format!(", also by {}", others.join(", ")));
            }
            if !t.candidates.is_empty() {
                let mut others: Vec<String> = t.candidates.iter().map(who).collect();
                if t.candidates_folded > 0 {
                    others.push(format!("{} more untrusted", t.candidates_folded));
                }
                s.push_str(&format!(", or by {} (any of them could have been waiting)", others.join(", ")));
            }
            match &t.via {
                Some(via) if via.ends_with(".mount") => s.push_str(&format!(", through the automount's {via}")),
                Some(via) => s.push_str(&format!(", through {via}")),
                None => {}
            }
            s
        }
        TriggerKind::Explicit => {
            let mut s = match &t.loader {
                Some(l) => format!("loaded by {}", loader_who(l)),
                None => "loaded explicitly".to_string(),
            };
            let asked: Vec<String> = t.requester.iter().chain(&t.also_requested_by).map(who).collect();
            match &t.via {
                Some(via) if via.starts_with("modprobe@") => {
                    s.push_str(&format!(" for {}, wanted by {}", via, asked.join(", ")));
                }
                // A deputy (onbehalf.rs) for its client.
                Some(via) => s.push_str(&format!(", for {} through {via}", asked.join(", "))),
                None => {
                    if let Some(r) = &t.requester {
                        s.push_str(&format!(", run by {}", who(r)));
                    }
                }
            }
            s
        }
        TriggerKind::Udev => match &t.device {
            Some(d) => format!(
                "udev, for device {}{}",
                d.modalias.as_deref().map(str::trim).unwrap_or("(modalias unknown)"),
                d.devpath.as_deref().map(|p| format!(" at {p}")).unwrap_or_default()
            ),
            None => "udev, for a device (unknown)".to_string(),
        },
        TriggerKind::Preloaded => match t.reason.as_deref() {
            None | Some(BEFORE_LEARNING) => "already loaded when learning started, cause unknown".to_string(),
            Some(source) => format!("already loaded when learning started, explained by: {source}"),
        },
        TriggerKind::Unknown => format!(
            "loaded by a kernel helper, cause unknown{}",
            t.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
        ),
    };
    let stage = t.stage.as_deref().map(|s| format!(", in the {s}")).unwrap_or_default();
    format!("{base}{stage}; {}", times(t.count))
}

/// The units a trigger's need is attributed to, each with its scope: every
/// requester of a request (also_requested_by too), the loader of an explicit
/// load (its parent's cgroup is not recorded, so the parent's unit would have
/// no scope).
pub fn units_of(t: &Trigger) -> Vec<(String, Scope)> {
    let mut out: Vec<(String, Scope)> = Vec::new();
    let mut add = |unit: Option<&String>, scope: &Scope| {
        if let Some(u) = unit {
            if !out.iter().any(|(x, s)| x == u && s == scope) {
                out.push((u.clone(), scope.clone()));
            }
        }
    };
    match t.kind {
        TriggerKind::Request => {
            for r in t.requester.iter().chain(&t.also_requested_by) {
                add(r.unit.as_ref(), &r.scope);
            }
            // An automount's mount unit (onbehalf.rs) needs it too: it is a
            // host system unit, since only those are followed. Any other
            // `via` (a root deputy, a kernel thread: trace/kthread.rs) acted
            // for the requester: it gets nothing.
            if let Some(via) = t.via.as_ref().filter(|v| v.ends_with(".mount")) {
                add(Some(via), &Scope::System { unit: via.clone() });
            }
        }
        // modprobe@NAME.service: the units that want it (onbehalf.rs).
        TriggerKind::Explicit if t.via.is_some() => {
            for r in t.requester.iter().chain(&t.also_requested_by) {
                add(r.unit.as_ref(), &r.scope);
            }
        }
        TriggerKind::Explicit => {
            if let Some(l) = &t.loader {
                add(l.unit.as_ref(), &l.scope);
            }
        }
        // udev loads follow devices; preloaded and unknown ones name no unit.
        TriggerKind::Udev | TriggerKind::Preloaded | TriggerKind::Unknown => {}
    }
    out
}

/// A trigger that only loaded the module as another's dependency, or found it
/// loaded as one: the module it was needed by carries the need.
fn dependency_only(m: &Module, t: &Trigger) -> bool {
    t.needed_by.is_some()
        || (!m.top_level
            && t.kind == TriggerKind::Preloaded
            && t.reason.as_deref().is_none_or(|r| r == BEFORE_LEARNING))
}

fn entries(profile: &Profile) -> Vec<Entry> {
    let mut out = Vec::new();
    for m in &profile.modules {
        let own: Vec<&Trigger> = m.triggers.iter().filter(|t| !dependency_only(m, t)).collect();
        if own.is_empty() {
            if m.top_level {
                // Only seen as a dependency of something the profile does not
                // have (its load failed, say): kept, since nothing says it is not needed.
                let text = m.triggers.iter().map(describe_trigger).collect::<Vec<_>>().join(" | ");
                let trusts: Vec<Trust> = m.triggers.iter().map(trust::of_trigger).collect();
                let trust = trusts.iter().find(|t| t.trusted()).or(trusts.first()).cloned();
                out.push(Entry {
                    module: m.name.clone(),
                    key: Key::Name(m.name.clone()),
                    reason: Reason {
                        learned_as: m.name.clone(),
                        kind: m.triggers.first().map(|t| t.kind).unwrap_or(TriggerKind::Unknown),
                        text: if text.is_empty() { "no recorded cause".to_string() } else { text },
                        count: m.count,
                        trust: trust.unwrap_or_else(|| Trust::Review("no recorded cause".to_string())),
                        alias: None,
                    },
                    units: Vec::new(),
                });
            }
            continue;
        }
        for t in own {
            let key = match (t.kind, &t.alias, t.device.as_ref().and_then(|d| d.modalias.as_ref())) {
                (TriggerKind::Request, Some(alias), _) => Key::Alias(alias.clone()),
                // The kernel ends a CPU's MODALIAS with a newline: not part of it.
                (TriggerKind::Udev, _, Some(modalias)) if !modalias.trim().is_empty() => {
                    Key::Modalias(modalias.trim().to_string())
                }
                _ => Key::Name(m.name.clone()),
            };
            out.push(Entry {
                module: m.name.clone(),
                key,
                reason: Reason {
                    learned_as: m.name.clone(),
                    kind: t.kind,
                    text: describe_trigger(t),
                    count: t.count,
                    trust: trust::of_trigger(t),
                    alias: t.alias.clone(),
                },
                units: units_of(t),
            });
        }
    }
    out
}

/// Units whose processes the generated files can order after their modules:
/// the host's system services, sockets, mounts and swaps. A user's or a
/// container's unit (whatever its name), anything else, and units that load
/// modules themselves, get none (and the reason is kept for the report).
pub fn drop_in_refusal(unit: &str, scope: &Scope) -> Option<String> {
    if scope.system_unit().is_none() {
        return Some(format!(
            "not a unit of the host's system manager but the {scope}: drop-ins in /etc/systemd/system do not apply to it"
        ));
    }
    let kind = unit.rsplit('.').next().unwrap_or("");
    if !matches!(kind, "service" | "socket" | "mount" | "swap") {
        return Some(format!(
            "a .{kind} unit (a login session, PID 1, a slice or a transient scope): no unit file can declare its modules"
        ));
    }
    if unit.contains("@.") {
        return Some("a template, not a running unit".to_string());
    }
    let stem = &unit[..unit.len() - kind.len() - 1];
    if stem.strip_prefix("run-u").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) {
        return Some("a transient unit (systemd-run): it has no unit file".to_string());
    }
    if matches!(
        unit,
        "systemd-udevd.service"
            | "systemd-modules-load.service"
            | "kmod-static-nodes.service"
            | "modtrace-lock.service"
            | "modtrace-learn.service"
    ) || unit.starts_with("modprobe@")
    {
        return Some("it loads modules itself (or is modtrace's own)".to_string());
    }
    None
}

/// The modules of `set` that no other module of `set` needs (per `closure`).
pub fn top_of(
    set: &BTreeSet<String>,
    closure: impl Fn(&str) -> Vec<String>,
) -> (Vec<String>, BTreeMap<String, Vec<String>>) {
    let deps: BTreeMap<&String, BTreeSet<String>> =
        set.iter().map(|m| (m, closure(m).into_iter().filter(|d| d != m).collect())).collect();
    let mut top = Vec::new();
    let mut brings = BTreeMap::new();
    for m in set {
        let needed_by_other = deps.iter().any(|(o, d)| *o != m && d.contains(m) && !deps[m].contains(*o));
        if !needed_by_other {
            top.push(m.clone());
            brings.insert(m.clone(), deps[m].iter().cloned().collect());
        }
    }
    (top, brings)
}

/// What one recorded cause requires in `target`, `learned` being the module
/// that was loaded for it. The one definition of "the modules this profile
/// requires for kernel K": `generate` (files), `check` (blockers) and `lock` all
/// get it through [`plan`], so that a lock generated for a kernel is exactly what
/// check then asks for on it.
///
/// - A profile target (no kernel named) re-resolves nothing: the module as learned.
/// - A udev load: the module that was loaded for the device, while `target` still
///   has it (found by its name, or among the modalias's modules). A modalias can
///   name many modules (a CPU's `cpu:type:x86,...` names a dozen, some of which
///   fail to load, like amd64_edac in a VM): the one that loaded is the one
///   needed. Only when the kernel no longer has it, every module the modalias
///   names now.
/// - A request: its alias's module(s) in `target`. When they still include the
///   module that was loaded for it, only that one: the others were tried when
///   learning (modprobe loads every module of an alias) and did not load, or
///   were not there then; the request was answered without them.
/// - Anything else: the module by its name.
fn required(target: &Target, learned: &str, key: &Key) -> Lookup {
    if target.is_profile() {
        return target.lookup(learned);
    }
    let only_learned = |l: &Lookup| Lookup {
        loadable: l.loadable.iter().filter(|m| *m == learned).cloned().collect(),
        builtin: l.builtin.iter().filter(|m| *m == learned).cloned().collect(),
    };
    match key {
        Key::Name(name) => target.lookup(name),
        Key::Modalias(modalias) => {
            let by_name = target.lookup(learned);
            if by_name.contains(learned) {
                return only_learned(&by_name);
            }
            let now = target.lookup(modalias);
            if now.contains(learned) {
                only_learned(&now)
            } else {
                now
            }
        }
        Key::Alias(alias) => {
            let now = target.lookup(alias);
            if now.contains(learned) {
                only_learned(&now)
            } else {
                now
            }
        }
    }
}

/// Where one resolved module of one cause goes.
enum Status {
    Listed(Cited),
    Review(String),
    Denied(String),
    Site(String),
}

/// The admin's decision with `verdict` on any of `names` (module names, the
/// alias), as a sentence.
fn decided(profile: &Profile, names: &[&str], verdict: Verdict) -> Option<String> {
    names.iter().find_map(|n| {
        let d = profile.decision(n).filter(|d| d.verdict == verdict)?;
        let word = match verdict {
            Verdict::Allow => "accepted",
            Verdict::Deny => "denied",
        };
        Some(format!("{word} by an admin (modtrace {} {}, {})", word_of(verdict), d.name, d.time))
    })
}

fn word_of(v: Verdict) -> &'static str {
    match v {
        Verdict::Allow => "allow",
        Verdict::Deny => "deny",
    }
}

/// Denied, disabled by the site, listed (trusted or accepted), or for review.
fn status(profile: &Profile, site: &SitePolicy, module: &str, e: &Entry, cited: &Cited) -> Status {
    let mut names = vec![module, e.module.as_str()];
    names.extend(e.reason.alias.as_deref());
    if let Some(why) = decided(profile, &names, Verdict::Deny) {
        return Status::Denied(why);
    }
    if let Some(r) = site.refusal(module, !matches!(e.key, Key::Name(_))) {
        return Status::Site(r.to_string());
    }
    if e.reason.trust.trusted() {
        return Status::Listed(cited.clone());
    }
    match decided(profile, &names, Verdict::Allow) {
        Some(why) => {
            let mut accepted = cited.clone();
            accepted.reason.trust = Trust::Trusted(format!("{why}; {}", e.reason.trust.why()));
            Status::Listed(accepted)
        }
        None => Status::Review(e.reason.trust.why().to_string()),
    }
}

fn hold(map: &mut BTreeMap<String, Held>, module: &str, why: String, cited: &Cited) {
    let held = map.entry(module.to_string()).or_insert_with(|| Held { why: why.clone(), cited: Vec::new() });
    if !held.why.split("; ").any(|w| w == why) {
        held.why = format!("{}; {why}", held.why);
    }
    held.cited.push(cited.clone());
}

/// The profile's needs on `target`, with no site policy: for tests and for
/// profiles read away from their machine.
pub fn plan(profile: &Profile, target: &Target) -> Result<Plan, Vec<Invalid>> {
    derive(profile, &SitePolicy::default(), target)
}

/// What `target` must load for `profile` under the site's policy `site`, and
/// what is held back (for review, denied, disabled by the site). Refuses
/// profiles with names that cannot be written safely (all of them listed).
pub fn derive(profile: &Profile, site: &SitePolicy, target: &Target) -> Result<Plan, Vec<Invalid>> {
    let invalid = validate(profile, &target.release);
    if !invalid.is_empty() {
        return Err(invalid);
    }
    let mut plan = Plan { release: target.release.clone(), ..Plan::default() };
    let mut bad_names = Vec::new();
    for e in entries(profile) {
        let lookup = required(target, &e.module, &e.key);
        for m in lookup.loadable.iter().chain(&lookup.builtin) {
            if let Err(rule) = check_module(m) {
                bad_names.push(Invalid {
                    what: "module name",
                    value: m.clone(),
                    place: format!("kernel {}: what {} resolves to", target.release, e.key.describe()),
                    rule,
                });
            }
        }
        let accepted = e.reason.trust.trusted() || {
            let mut names = vec![e.module.as_str()];
            names.extend(e.reason.alias.as_deref());
            decided(profile, &names, Verdict::Allow).is_some()
        };
        if lookup.is_empty() {
            let hint = match &e.key {
                Key::Name(_) => None,
                _ if !target.lookup(&e.module).is_empty() => Some(format!(
                    "module {} still exists in {}, but {} no longer resolves to it",
                    e.module,
                    target.release,
                    e.key.describe()
                )),
                _ => None,
            };
            if !accepted {
                // Nothing to load for a cause nobody trusted: no blocker either.
                let why =
                    format!("{}; {} resolves to nothing in {}", e.reason.trust.why(), e.key.describe(), target.release);
                hold(&mut plan.review, &e.module, why, &Cited { reason: e.reason.clone(), note: None });
                continue;
            }
            plan.unresolved.push(Unresolved {
                learned_as: e.module.clone(),
                looked_up: e.key.describe(),
                reason: e.reason.clone(),
                hint,
            });
            continue;
        }
        let note = (!lookup.contains(&e.module)).then(|| {
            let now: Vec<&str> = lookup.loadable.iter().chain(&lookup.builtin).map(String::as_str).collect();
            format!(
                "learned as {}; in {} {} resolves to {}",
                e.module,
                target.release,
                e.key.describe(),
                now.join(", ")
            )
        });
        let cited = Cited { reason: e.reason.clone(), note };
        for m in &lookup.builtin {
            plan.builtin.entry(m.clone()).or_default().push(cited.clone());
        }
        let mut listed: Vec<(String, Cited)> = Vec::new();
        for m in &lookup.loadable {
            match status(profile, site, m, &e, &cited) {
                Status::Listed(c) => listed.push((m.clone(), c)),
                Status::Review(why) => hold(&mut plan.review, m, why, &cited),
                Status::Denied(why) => hold(&mut plan.denied, m, why, &cited),
                Status::Site(why) => hold(&mut plan.site_disabled, m, why, &cited),
            }
        }
        for (m, c) in &listed {
            plan.needs.entry(m.clone()).or_default().push(c.clone());
        }
        if listed.is_empty() {
            continue;
        }
        for (unit, scope) in &e.units {
            if let Some(why) = drop_in_refusal(unit, scope) {
                plan.other_units.entry(unit.clone()).or_insert(why);
                continue;
            }
            let needs = plan.units.entry(unit.clone()).or_default();
            for (m, c) in &listed {
                needs.entry(m.clone()).or_default().push(c.clone());
            }
        }
    }
    // A module listed for one cause is not held back for another.
    for held in [&mut plan.review, &mut plan.denied, &mut plan.site_disabled] {
        held.retain(|m, _| !plan.needs.contains_key(m));
    }
    if !bad_names.is_empty() {
        bad_names.dedup();
        return Err(bad_names);
    }
    let needed: BTreeSet<String> = plan.needs.keys().cloned().collect();
    let (top, brings) = top_of(&needed, |m| target.closure(m));
    plan.top_level = top;
    plan.brings = brings;
    for needs in plan.units.values_mut() {
        let set: BTreeSet<String> = needs.keys().cloned().collect();
        let (top, _) = top_of(&set, |m| target.closure(m));
        // A dependency's reasons move to the unit's top-level module that brings it.
        let mut kept: BTreeMap<String, Vec<Cited>> = BTreeMap::new();
        for (m, cited) in std::mem::take(needs) {
            let owner = if top.contains(&m) {
                m.clone()
            } else {
                top.iter().find(|t| target.closure(t).contains(&m)).cloned().unwrap_or(m.clone())
            };
            kept.entry(owner).or_default().extend(cited);
        }
        *needs = kept;
    }
    plan.warnings = profile_warnings(profile);
    Ok(plan)
}

/// What a person should know about how complete the profile is.
pub fn profile_warnings(profile: &Profile) -> Vec<String> {
    let mut w = Vec::new();
    if profile.modules.is_empty() {
        w.push(
            "the profile lists no module at all: learn first (modtrace learn), or this kernel has everything built in"
                .to_string(),
        );
    }
    let lost = profile.lost_events();
    if lost > 0 {
        w.push(format!(
            "{lost} kernel events were lost while learning: the profile may miss modules; learn again before locking"
        ));
    }
    let unfinished =
        profile.sessions.iter().filter(|s| matches!(s.ended_by.as_deref(), Some("error") | Some("checkpoint"))).count();
    if unfinished > 0 {
        w.push(format!(
            "{unfinished} learning session(s) did not finish (ended by an error, or only a checkpoint was saved): what they saw last may be missing"
        ));
    }
    w
}
