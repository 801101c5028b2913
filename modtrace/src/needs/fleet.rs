//! A fleet's baseline (`generate --min-hosts N`): the modules trusted on at
//! least N of a fleet profile's hosts, what a distribution ships; each host
//! learns the rest.
//!
//! A module is trusted on a host when a trusted cause of it was seen there
//! (a cause's trust does not depend on the host), or when that host allowed
//! it (the module, or an alias it was requested as there). An allow made on
//! the fleet profile itself, by no host, counts on every host that saw the
//! module. A deny wins as everywhere (derive).

use std::collections::{BTreeMap, BTreeSet};

use super::trust;
use crate::profile::{Host, Module, Profile, Verdict};

/// The baseline profile, and the modules it leaves out with on how many hosts
/// they were trusted.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub profile: Profile,
    pub left_out: Vec<(String, usize)>,
}

/// The hosts on which `m` was trusted.
pub fn trusted_on(profile: &Profile, m: &Module) -> BTreeSet<String> {
    let mut hosts: BTreeSet<String> = BTreeSet::new();
    for t in m.triggers.iter().filter(|t| trust::of_trigger(t).trusted()) {
        hosts.extend(t.hosts.iter().cloned());
    }
    for h in profile.hosts.iter().filter(|h| m.hosts.contains(&h.id)) {
        if host_allows(h, m) || fleet_allows(profile, m) {
            hosts.insert(h.id.clone());
        }
    }
    hosts
}

/// The names a host decides `m` by: the module, and the aliases it was
/// requested as on that host.
fn names_on<'a>(m: &'a Module, host: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let aliases = m.triggers.iter().filter(move |t| t.hosts.iter().any(|h| h == host)).filter_map(|t| t.alias.as_deref());
    std::iter::once(m.name.as_str()).chain(aliases)
}

fn host_allows(h: &Host, m: &Module) -> bool {
    names_on(m, &h.id).any(|n| h.decisions.iter().any(|d| d.name == n && d.verdict == Verdict::Allow))
}

/// An allow in the fleet's decisions that no host made: the fleet's own.
fn fleet_allows(profile: &Profile, m: &Module) -> bool {
    let by_a_host = |name: &str| profile.hosts.iter().any(|h| h.decisions.iter().any(|d| d.name == name));
    let mut names = std::iter::once(m.name.as_str()).chain(m.triggers.iter().filter_map(|t| t.alias.as_deref()));
    names.any(|n| profile.decision(n).is_some_and(|d| d.verdict == Verdict::Allow) && !by_a_host(n))
}

/// The fleet profile with only the modules trusted on at least `min_hosts`
/// hosts; None when `profile` is not a fleet's.
pub fn baseline(profile: &Profile, min_hosts: usize) -> Option<Baseline> {
    if !profile.is_fleet() {
        return None;
    }
    let direct: BTreeMap<&str, BTreeSet<String>> =
        profile.modules.iter().map(|m| (m.name.as_str(), trusted_on(profile, m))).collect();
    let mut out = profile.clone();
    let mut left_out = Vec::new();
    out.modules.retain(|m| {
        // A dependency is loaded with each module that needs it, wherever that was trusted.
        let dependents = m.needed_by.iter().filter_map(|d| direct.get(d.as_str()));
        let hosts: BTreeSet<&String> = direct[m.name.as_str()].iter().chain(dependents.flatten()).collect();
        if hosts.len() < min_hosts {
            left_out.push((m.name.clone(), hosts.len()));
        }
        hosts.len() >= min_hosts
    });
    let kept: BTreeSet<String> = out.modules.iter().map(|m| m.name.clone()).collect();
    for m in &mut out.modules {
        // A module whose dependents are left out is to be listed by itself.
        m.needed_by.retain(|n| kept.contains(n));
        m.top_level = m.needed_by.is_empty();
    }
    Some(Baseline { profile: out, left_out })
}

#[cfg(test)]
mod tests;
