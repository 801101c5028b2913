//! The one derivation of what a profile needs on a target kernel: each
//! recorded cause resolved in the kernel, then denied, disabled by the site,
//! listed or left for review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::names::validate;
use super::sitepolicy::SitePolicy;
use super::target::{Lookup, Target};
use super::trust;
use super::units::{drop_in_refusal, units_of};
use super::wording::{describe_trigger, profile_warnings};
use super::{Cited, Held, Plan, Reason, Trust, Unresolved};
use crate::profile::{Module, Profile, Trigger, TriggerKind, Verdict, BEFORE_LEARNING};
use crate::trace::scope::Scope;
use crate::validate::{check_module, Invalid};

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
    /// Loaded in the initramfs: its units are the initramfs's (sysroot.mount).
    in_initramfs: bool,
}

/// Why a unit of the initramfs gets no drop-in.
const INITRAMFS_UNIT: &str =
    "a unit of the initramfs (its loads were there): drop-ins in /etc/systemd/system order the main system's units";

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
                    in_initramfs: false,
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
                in_initramfs: t.stage.is_some(),
            });
        }
    }
    out
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
///
/// When the kernel no longer has the learned module, what answers the aliases
/// it had in the kernel it was learned on (crc32c_generic's `crypto-crc32c`,
/// which a softdep asks for: crc32c_cryptoapi in 7.x) is followed first: a
/// rename or split of the same function. Else, when a modalias or an alias
/// now names several, they are narrowed to what this machine could load
/// (`narrow`); nothing left makes the cause unresolved, named, not guessed.
fn required(target: &Target, learned: &str, key: &Key, seen: &Seen<'_>) -> Lookup {
    if target.is_profile() {
        return target.lookup(learned);
    }
    if target.lookup(learned).is_empty() {
        let followed = seen.follow(target, learned);
        if !followed.is_empty() {
            return followed;
        }
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
                seen.narrow(modalias, now)
            }
        }
        Key::Alias(alias) => {
            let now = target.lookup(alias);
            if now.contains(learned) {
                only_learned(&now)
            } else {
                seen.narrow(alias, now)
            }
        }
    }
}

/// What this machine showed it can and cannot load, for narrowing what a
/// new kernel's modalias or alias names.
struct Seen<'a> {
    /// Device modalias or requested alias -> the modules loaded here for it.
    loaded_for: BTreeMap<String, BTreeSet<String>>,
    /// Modules whose load failed here with ENODEV or ENOENT (no such device,
    /// no such file): they cannot be listed.
    failed: BTreeSet<String>,
    /// What modprobe.d refuses for an alias (Debian's fbdev-blacklist.conf
    /// blacklists cirrusfb, which a cirrus device's modalias also names).
    site: &'a SitePolicy,
}

impl<'a> Seen<'a> {
    fn of(profile: &Profile, site: &'a SitePolicy) -> Seen<'a> {
        let failed = profile
            .failed
            .iter()
            .filter(|f| matches!(f.error.as_deref(), Some("ENODEV" | "ENOENT")))
            .filter_map(|f| f.module.clone())
            .collect();
        let mut loaded_for: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for m in &profile.modules {
            for t in &m.triggers {
                let modalias = t.device.as_ref().and_then(|d| d.modalias.as_deref()).map(str::trim);
                if let Some(key) = t.alias.as_deref().or(modalias) {
                    loaded_for.entry(key.to_string()).or_default().insert(m.name.clone());
                }
            }
        }
        Seen { loaded_for, failed, site }
    }

    /// What `key` (a modalias or an alias) names now, without what failed here
    /// or the site refuses: a single module is a rename; of several, only
    /// those that loaded here for the same device or alias before.
    fn narrow(&self, key: &str, now: Lookup) -> Lookup {
        let loads = |m: &String| !self.failed.contains(m) && self.site.refusal(m, true).is_none();
        let mut loadable: Vec<String> = now.loadable.into_iter().filter(loads).collect();
        if loadable.len() > 1 {
            let here = self.loaded_for.get(key);
            loadable.retain(|m| here.is_some_and(|h| h.contains(m)));
        }
        Lookup { loadable, builtin: now.builtin }
    }

    /// What `learned`'s aliases in the kernel it was learned on resolve to in
    /// `target`, each narrowed as a cause's alias is.
    fn follow(&self, target: &Target, learned: &str) -> Lookup {
        let mut out = Lookup::default();
        for alias in target.learned_aliases(learned) {
            let now = self.narrow(alias, target.lookup(alias));
            for m in now.loadable {
                if !out.loadable.contains(&m) {
                    out.loadable.push(m);
                }
            }
            for m in now.builtin {
                if !out.builtin.contains(&m) {
                    out.builtin.push(m);
                }
            }
        }
        out
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

/// The profile's needs as learned (nothing re-resolved), under the site
/// policy of the system at `root`: what `modtrace report` shows. A profile with
/// names that cannot be written still gets a report: an empty plan, and the
/// names for the caller to warn about.
pub fn as_learned(profile: &Profile, root: &Path) -> (Plan, Vec<Invalid>) {
    let site = SitePolicy::read(root);
    match derive(profile, &site, &Target::from_profile(profile)) {
        Ok(plan) => (plan, Vec::new()),
        Err(invalid) => (Plan::default(), invalid),
    }
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
    let seen = Seen::of(profile, site);
    for e in entries(profile) {
        let lookup = required(target, &e.module, &e.key, &seen);
        bad_names.extend(unwritable(target, &e, &lookup));
        if lookup.is_empty() {
            resolved_to_nothing(profile, target, &e, &mut plan);
        } else {
            place(profile, site, target, &e, &lookup, &mut plan);
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
        fold_into_top_level(needs, target);
    }
    plan.warnings = profile_warnings(profile);
    Ok(plan)
}

/// The names the target kernel resolves a cause to that cannot be written safely.
fn unwritable(target: &Target, e: &Entry, lookup: &Lookup) -> Vec<Invalid> {
    let mut bad = Vec::new();
    for m in lookup.loadable.iter().chain(&lookup.builtin) {
        if let Err(rule) = check_module(m) {
            bad.push(Invalid {
                what: "module name",
                value: m.clone(),
                place: format!("kernel {}: what {} resolves to", target.release, e.key.describe()),
                rule,
            });
        }
    }
    bad
}

/// A cause that resolves to no module in `target`: unresolved (which check
/// blocks on) when it was trusted or accepted, else only held for review.
fn resolved_to_nothing(profile: &Profile, target: &Target, e: &Entry, plan: &mut Plan) {
    let mut names = vec![e.module.as_str()];
    names.extend(e.reason.alias.as_deref());
    if let Some(why) = decided(profile, &names, Verdict::Deny) {
        // Denied: never asked for, so its absence is no gap either.
        hold(&mut plan.denied, &e.module, why, &Cited { reason: e.reason.clone(), note: None });
        return;
    }
    let accepted = e.reason.trust.trusted() || decided(profile, &names, Verdict::Allow).is_some();
    if !accepted {
        // Nothing to load for a cause nobody trusted: no blocker either.
        let why = format!("{}; {} resolves to nothing in {}", e.reason.trust.why(), e.key.describe(), target.release);
        hold(&mut plan.review, &e.module, why, &Cited { reason: e.reason.clone(), note: None });
        return;
    }
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
    plan.unresolved.push(Unresolved {
        learned_as: e.module.clone(),
        looked_up: e.key.describe(),
        reason: e.reason.clone(),
        hint,
    });
}

/// Where the modules a cause resolves to go: built in, listed (and then needed
/// by the cause's units), for review, denied or disabled by the site.
fn place(profile: &Profile, site: &SitePolicy, target: &Target, e: &Entry, lookup: &Lookup, plan: &mut Plan) {
    let note = (!lookup.contains(&e.module)).then(|| {
        let now: Vec<&str> = lookup.loadable.iter().chain(&lookup.builtin).map(String::as_str).collect();
        format!("learned as {}; in {} {} resolves to {}", e.module, target.release, e.key.describe(), now.join(", "))
    });
    let cited = Cited { reason: e.reason.clone(), note };
    for m in &lookup.builtin {
        plan.builtin.entry(m.clone()).or_default().push(cited.clone());
    }
    let mut listed: Vec<(String, Cited)> = Vec::new();
    for m in &lookup.loadable {
        match status(profile, site, m, e, &cited) {
            Status::Listed(c) => listed.push((m.clone(), c)),
            Status::Review(why) => hold(&mut plan.review, m, why, &cited),
            Status::Denied(why) => hold(&mut plan.denied, m, why, &cited),
            Status::Site(why) => hold(&mut plan.site_disabled, m, why, &cited),
        }
    }
    for (m, c) in &listed {
        plan.needs.entry(m.clone()).or_default().push(c.clone());
    }
    if !listed.is_empty() {
        add_to_units(e, &listed, plan);
    }
}

/// The listed modules of a cause, as needs of the units it is attributed to
/// (those a drop-in can be written for; the others are kept with the reason).
fn add_to_units(e: &Entry, listed: &[(String, Cited)], plan: &mut Plan) {
    for (unit, scope) in &e.units {
        if e.in_initramfs {
            plan.other_units.entry(unit.clone()).or_insert_with(|| INITRAMFS_UNIT.to_string());
            continue;
        }
        if let Some(why) = drop_in_refusal(unit, scope) {
            plan.other_units.entry(unit.clone()).or_insert(why);
            continue;
        }
        let needs = plan.units.entry(unit.clone()).or_default();
        for (m, c) in listed {
            needs.entry(m.clone()).or_default().push(c.clone());
        }
    }
}

/// A unit's needs by its top-level modules: a dependency's reasons move to
/// the unit's top-level module that brings it.
fn fold_into_top_level(needs: &mut BTreeMap<String, Vec<Cited>>, target: &Target) {
    let set: BTreeSet<String> = needs.keys().cloned().collect();
    let (top, _) = top_of(&set, |m| target.closure(m));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{example_profile, TempDir};

    #[test]
    fn as_learned_is_an_empty_plan_and_the_bad_names_for_a_profile_that_cannot_be_used() {
        let root = TempDir::new("as-learned");
        let mut p = example_profile();
        let (plan, invalid) = as_learned(&p, root.path());
        assert!(invalid.is_empty(), "{invalid:?}");
        assert!(plan.needs.contains_key("appletalk"), "{:?}", plan.needs.keys());

        p.modules[0].name = "../appletalk".to_string();
        let (plan, invalid) = as_learned(&p, root.path());
        assert!(plan.needs.is_empty() && plan.top_level.is_empty(), "{plan:?}");
        assert_eq!(invalid.first().map(|i| i.value.as_str()), Some("../appletalk"), "{invalid:?}");
    }
}
