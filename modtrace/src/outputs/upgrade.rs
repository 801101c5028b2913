//! `modtrace check --kernel KVER`: what an upgrade to KVER changes for the
//! profile, before the reboot. The profile's needs as learned are compared
//! with its needs resolved in KVER's module tree (the one derivation,
//! `needs::derive`, for both): each needed module stays, is renamed, split,
//! merged into another, built in, or gone (with the units that needed it).
//! The derivation already narrows what a new kernel's modalias or alias
//! names to what loaded here for it, without what failed here with ENODEV or
//! ENOENT: the lock for KVER lists nothing this machine cannot load, and a
//! cause nothing certain answers is gone, named. The list the lock would load
//! on KVER is then checked entry by entry against KVER's tree: a needed entry
//! that cannot load there fails the lock (not safe); a device's driver only
//! warns, as the lock unit logs its failure and goes on (`ExecStart=-`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::needs::sitepolicy::SitePolicy;
use crate::needs::target::Target;
use crate::needs::{self, Plan};
use crate::profile::Profile;
use crate::said::Said;

/// What became of one module the profile needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Same,
    /// Its causes resolve to another module now (one: renamed; several: split).
    Renamed(Vec<String>),
    /// Another learned module's causes resolve to the same new module too.
    Merged(String),
    /// Built in now (under these names: its own, or its successor's).
    BuiltIn(Vec<String>),
    /// Nothing in KVER answers its causes.
    Gone,
    /// An out-of-tree module (DKMS's updates/dkms/, or extra/) the learned
    /// kernel had from this path, and KVER has not: DKMS did not build it.
    NotBuilt(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub module: String,
    pub fate: Fate,
    /// The units whose loads needed it (as learned).
    pub units: Vec<String>,
}

/// A module of KVER's lock list (an entry, or a dependency it brings) that
/// modprobe cannot load there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unloadable {
    pub module: String,
    /// The list's entry that loads it (itself, or what brings it).
    pub entry: String,
    /// The entry is a device's driver (MODTRACE_DEVICES): its failure is
    /// logged and the lock goes on.
    pub device_only: bool,
    pub why: String,
}

/// The comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    pub from: String,
    pub to: String,
    pub changes: Vec<Change>,
    /// How many entries the lock list for KVER has.
    pub entries: usize,
    pub unloadable: Vec<Unloadable>,
}

impl Upgrade {
    /// Safe to reboot into KVER locked: no needed module gone, and every
    /// needed entry of its lock list loads there.
    pub fn safe(&self) -> bool {
        !self.changes.iter().any(|c| matches!(c.fate, Fate::Gone | Fate::NotBuilt(_)))
            && self.unloadable.iter().all(|u| u.device_only)
    }
}

/// Compares the profile's needs as learned with its needs in `target`.
pub fn compare(profile: &Profile, site: &SitePolicy, target: &Target) -> Result<Upgrade, String> {
    let invalid = |bad: Vec<crate::validate::Invalid>| needs::unusable(&bad);
    let learned = needs::derive(profile, site, &Target::from_profile(profile)).map_err(invalid)?;
    let after = needs::derive(profile, site, target).map_err(invalid)?;
    let now_as = answered_by(&after);
    let changes = learned.needs.keys().map(|m| change(m, &learned, &after, &now_as, target)).collect();
    let (entries, unloadable) = (after.top_level.len(), unloadable(&after, target));
    Ok(Upgrade { from: profile.kernel.clone(), to: target.release.clone(), changes, entries, unloadable })
}

/// The modules of `plan`'s lock list (each entry and what it brings) that
/// cannot load on `target`.
fn unloadable(plan: &Plan, target: &Target) -> Vec<Unloadable> {
    let mut out = Vec::new();
    for entry in &plan.top_level {
        let brings = plan.brings.get(entry).map(Vec::as_slice).unwrap_or_default();
        for module in std::iter::once(entry).chain(brings) {
            if let Some(why) = target.cannot_load(module) {
                let device_only = plan.device_only(entry);
                out.push(Unloadable { module: module.clone(), entry: entry.clone(), device_only, why });
            }
        }
    }
    out
}

/// Learned module -> the modules (loadable or built in) that answer its
/// causes in the new plan.
fn answered_by(after: &Plan) -> BTreeMap<String, BTreeSet<String>> {
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, cited) in after.needs.iter().chain(&after.builtin) {
        for c in cited {
            map.entry(c.reason.learned_as.clone()).or_default().insert(module.clone());
        }
    }
    map
}

fn change(
    module: &str,
    learned: &Plan,
    after: &Plan,
    now_as: &BTreeMap<String, BTreeSet<String>>,
    target: &Target,
) -> Change {
    let now: Vec<String> = now_as.get(module).map(|s| s.iter().cloned().collect()).unwrap_or_default();
    let fate = if now.iter().any(|n| n == module) && !after.builtin.contains_key(module) {
        Fate::Same
    } else if !now.is_empty() && now.iter().all(|n| after.builtin.contains_key(n)) {
        Fate::BuiltIn(now)
    } else if now.is_empty() {
        out_of_tree(target.learned_path(module)).map_or(Fate::Gone, |p| Fate::NotBuilt(p.to_string()))
    } else if now.len() == 1 && now_as.iter().any(|(other, n)| other != module && n.contains(&now[0])) {
        Fate::Merged(now[0].clone())
    } else {
        Fate::Renamed(now)
    };
    Change { module: module.to_string(), fate, units: units_needing(module, learned) }
}

/// A path of a module DKMS (updates/) or another out-of-tree build (extra/) installed.
fn out_of_tree(path: Option<&str>) -> Option<&str> {
    path.filter(|p| p.starts_with("updates/") || p.starts_with("extra/"))
}

/// The units whose top-level modules are, or bring, `module`.
fn units_needing(module: &str, plan: &Plan) -> Vec<String> {
    let brings = |top: &str| top == module || plan.brings.get(top).is_some_and(|deps| deps.iter().any(|d| d == module));
    plan.units.iter().filter(|(_, tops)| tops.keys().any(|t| brings(t))).map(|(unit, _)| unit.clone()).collect()
}

/// `check --kernel KVER` on the system under `root`: KVER's tree is
/// ROOT/lib/modules/KVER; what to say, and the exit status (0 safe, 1 not).
pub fn check_kernel(profile: &Profile, root: &Path, release: &str) -> anyhow::Result<(Said, u8)> {
    let tree = root.join("lib/modules").join(release);
    let target = crate::needs::target::choose(profile, Some(release), Some(&tree))?;
    let upgrade = compare(profile, &SitePolicy::read(root), &target).map_err(anyhow::Error::msg)?;
    Ok((said(&upgrade), if upgrade.safe() { 0 } else { 1 }))
}

/// The comparison in words; the last line is the verdict.
pub fn said(u: &Upgrade) -> Said {
    let mut said = Said::default();
    said.out(format!("modtrace: the profile (learned on {}) on kernel {}:", u.from, u.to));
    for c in u.changes.iter().filter(|c| c.fate != Fate::Same) {
        said.out(format!("  {}", describe(c)));
    }
    let same = u.changes.iter().filter(|c| c.fate == Fate::Same).count();
    said.out(format!("  {same} needed module(s) unchanged"));
    for x in &u.unloadable {
        said.out(format!("  {}", cannot_load(x, &u.to)));
    }
    let loads = u.entries - u.unloadable.iter().map(|x| &x.entry).collect::<BTreeSet<_>>().len();
    said.out(format!("  lock list for {}: {} entries, {loads} load there", u.to, u.entries));
    said.out(if u.safe() {
        format!("safe to reboot into {}: every needed module resolves there", u.to)
    } else {
        format!("NOT safe to reboot into {} locked: see above", u.to)
    });
    said
}

fn cannot_load(x: &Unloadable, to: &str) -> String {
    let m = crate::escape::text(&x.module);
    let by = match x.entry == x.module {
        true => String::new(),
        false => format!(", which lock entry {} brings", crate::escape::text(&x.entry)),
    };
    match x.device_only {
        true => format!(
            "{m}: cannot load on {to}{by} ({}); a device's driver: the lock logs its failure and goes on",
            crate::escape::text(&x.why)
        ),
        false => format!("{m}: CANNOT LOAD on {to}{by} ({}): the lock would fail there", crate::escape::text(&x.why)),
    }
}

fn describe(c: &Change) -> String {
    let units = if c.units.is_empty() { String::new() } else { format!(" (needed by {})", c.units.join(", ")) };
    let m = crate::escape::text(&c.module);
    match &c.fate {
        Fate::Same => format!("{m}: unchanged"),
        Fate::Renamed(to) if to.len() == 1 => format!("{m}: renamed to {}", to[0]),
        Fate::Renamed(to) => format!("{m}: split into {}", to.join(", ")),
        Fate::Merged(into) => format!("{m}: merged into {into}"),
        Fate::BuiltIn(as_) if as_.iter().any(|n| n == &c.module) => format!("{m}: now built into the kernel"),
        Fate::BuiltIn(as_) => format!("{m}: now built into the kernel, as {}", as_.join(", ")),
        Fate::Gone => format!("{m}: GONE, nothing in this kernel answers its causes{units}"),
        Fate::NotBuilt(path) => format!(
            "{m}: NOT BUILT for this kernel: it came from {} (DKMS or another out-of-tree build), which this \
             kernel's tree lacks; build it for this kernel (dkms autoinstall -k KVER){units}",
            crate::escape::text(path)
        ),
    }
}

#[cfg(test)]
mod tests;
