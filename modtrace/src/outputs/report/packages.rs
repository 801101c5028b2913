//! `report --by package`: per Debian package (the profile's `packages`, read
//! from dpkg on the learning host), which of its units and executables need
//! which modules. A need goes to the units the needs stage attributes it to
//! and to the process that acted (the requester, or the loader of a load by
//! itself or by udev) when a unit of that cause does not already name the
//! executable's package; a unit or executable whose package is not known, a
//! user's or a container's unit, and a cause naming neither, go under
//! "(no package known)": never a guess.

use std::collections::BTreeMap;

use serde::Serialize;

use super::model::{shown, Shown};
use super::{unit_label, UnitNeed};
use crate::profile::{Profile, Trigger, TriggerKind};
use crate::trace::scope::Scope;

/// What the table calls the group of needs with no known package.
pub const NO_PACKAGE: &str = "(no package known)";

#[derive(Debug, Clone, Serialize)]
pub struct PackageGroup {
    /// None: no package is known.
    pub package: Option<String>,
    pub needs: Vec<PackageNeed>,
}

/// A unit or an executable of a package, and one module it needs.
#[derive(Debug, Clone, Serialize)]
pub struct PackageNeed {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executable: Option<String>,
    #[serde(flatten)]
    pub need: UnitNeed,
}

impl PackageNeed {
    /// Who needs it, for a sentence: the unit with its scope, or the executable.
    pub fn who(&self) -> Option<String> {
        unit_label(self.unit.as_deref(), self.scope.as_ref()).or(self.executable.clone())
    }
}

/// The executables whose process acted for `t`: the same ones whose units
/// needs::units_of names (a request's requesters, an explicit load's loader
/// or, through modprobe@, its requesters), and udev's loader.
fn executables(t: &Trigger) -> Vec<String> {
    let requesters = || t.requester.iter().chain(&t.also_requested_by).filter_map(|r| r.exe.clone()).collect();
    let loader = || t.loader.iter().filter_map(|l| l.exe.clone()).collect();
    match t.kind {
        TriggerKind::Request => requesters(),
        TriggerKind::Explicit if t.via.is_some() => requesters(),
        TriggerKind::Explicit | TriggerKind::Udev => loader(),
        TriggerKind::Preloaded | TriggerKind::Unknown => Vec::new(),
    }
}

/// The package of a host system unit; another's unit of the same name is not it.
fn unit_package(profile: &Profile, unit: &Option<String>, scope: &Option<Scope>) -> Option<String> {
    let system = matches!(scope, Some(Scope::System { .. }));
    unit.as_ref().filter(|_| system).and_then(|u| profile.packages.units.get(u).cloned())
}

/// One entry per package and unit or executable, packages in name order and
/// the unknown last.
pub(super) fn by_package(profile: &Profile) -> Vec<PackageGroup> {
    let mut groups: BTreeMap<(bool, String), Vec<PackageNeed>> = BTreeMap::new();
    let mut add = |package: Option<String>, need: PackageNeed| {
        let key = (package.is_none(), package.unwrap_or_default());
        groups.entry(key).or_default().push(need);
    };
    for Shown { trigger, places, need } in shown(profile) {
        let mut named = false;
        let mut of_units = Vec::new();
        for (unit, scope) in places.into_iter().filter(|(u, _)| u.is_some()) {
            let package = unit_package(profile, &unit, &scope);
            of_units.extend(package.clone());
            add(package, PackageNeed { unit, scope, executable: None, need: need.clone() });
            named = true;
        }
        let mut exes = executables(trigger);
        exes.sort();
        exes.dedup();
        for exe in exes.into_iter().filter(|e| e.starts_with('/')) {
            let package = profile.packages.executables.get(&exe).cloned();
            // nft in nftables.service: the unit already names the package.
            if package.as_ref().is_some_and(|p| of_units.contains(p)) {
                continue;
            }
            add(package, PackageNeed { unit: None, scope: None, executable: Some(exe), need: need.clone() });
            named = true;
        }
        if !named {
            add(None, PackageNeed { unit: None, scope: None, executable: None, need });
        }
    }
    groups
        .into_iter()
        .map(|((unknown, package), mut needs)| {
            needs.sort_by_key(|n| (n.who().is_none(), n.who(), n.need.module.clone()));
            PackageGroup { package: (!unknown).then_some(package), needs }
        })
        .collect()
}
