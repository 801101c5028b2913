//! A fleet's baseline (`generate --min-hosts N`): the modules trusted on at
//! least N of a fleet profile's hosts, what a distribution ships; each host
//! learns the rest.
//!
//! A module is trusted on a host when a trusted cause of it was seen there
//! (a cause's trust does not depend on the host), or when that host allowed
//! it (the module, or an alias it was requested as there). An allow made on
//! the fleet profile itself, by no host, counts on every host that saw the
//! module. A deny wins as everywhere (derive).
//!
//! `report --by host` reads each host's share of the fleet as a profile of its
//! own ([`host_profile`]), through the same derivation as any profile.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{as_learned, trust, Plan};
use crate::profile::{time_cmp, Decision, Host, Module, Profile, Verdict};

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
    let mut names = std::iter::once(m.name.as_str()).chain(m.triggers.iter().filter_map(|t| t.alias.as_deref()));
    names.any(|n| profile.decision(n).is_some_and(|d| d.verdict == Verdict::Allow) && !decided_by_a_host(profile, n))
}

fn decided_by_a_host(profile: &Profile, name: &str) -> bool {
    profile.hosts.iter().any(|h| h.decisions.iter().any(|d| d.name == name))
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
    settle_top_level(&mut out);
    Some(Baseline { profile: out, left_out })
}

/// After modules were left out: a module whose dependents are all gone is to
/// be listed by itself.
fn settle_top_level(p: &mut Profile) {
    let kept: BTreeSet<String> = p.modules.iter().map(|m| m.name.clone()).collect();
    for m in &mut p.modules {
        m.needed_by.retain(|n| kept.contains(n));
        m.top_level = m.needed_by.is_empty();
    }
}

/// One host's share of a fleet profile, as a profile of its own: the modules,
/// causes and sessions seen on it, under the decisions that hold there. None
/// when `id` is not one of its hosts.
pub fn host_profile(profile: &Profile, id: &str) -> Option<Profile> {
    let host = profile.hosts.iter().find(|h| h.id == id)?;
    let on_it = |hosts: &[String]| hosts.iter().any(|h| h == id);
    let mut p = profile.clone();
    p.hosts.clear();
    (p.host, p.machine_id, p.boots) = (host.name.clone(), host.machine_id.clone(), host.boots.clone());
    p.sessions.retain(|s| s.host.as_deref() == Some(id));
    if let Some(last) = p.sessions.iter().max_by(|a, b| time_cmp(&a.end, &b.end)) {
        p.kernel = last.kernel.clone();
    }
    p.modules.retain(|m| on_it(&m.hosts));
    for m in &mut p.modules {
        m.triggers.retain(|t| on_it(&t.hosts));
    }
    settle_top_level(&mut p);
    p.decisions = decisions_on(profile, host);
    Some(p)
}

/// The decisions that hold on `host`: its own, then every deny of the fleet
/// (a deny anywhere wins) and the allows made on the fleet profile by no host.
fn decisions_on(profile: &Profile, host: &Host) -> Vec<Decision> {
    let mut on = Profile::new("", "");
    for d in &host.decisions {
        on.decide(d.clone());
    }
    for d in profile.decisions.iter().filter(|d| d.verdict == Verdict::Deny || !decided_by_a_host(profile, &d.name)) {
        on.decide(d.clone());
    }
    on.decisions
}

/// A host of a fleet and what the needs stage derives from its share.
#[derive(Debug, Clone)]
pub struct HostPlan {
    pub id: String,
    pub plan: Plan,
}

/// Each host's plan, as learned under the site policy of the system at `root`
/// (as_learned); empty for one host's profile. A name that cannot be written
/// leaves that host's plan empty; the fleet's own plan already says which.
pub fn host_plans(profile: &Profile, root: &Path) -> Vec<HostPlan> {
    let shares = profile.hosts.iter().filter_map(|h| Some((h.id.clone(), host_profile(profile, &h.id)?)));
    shares.map(|(id, p)| HostPlan { id, plan: as_learned(&p, root).0 }).collect()
}

#[cfg(test)]
mod tests;
