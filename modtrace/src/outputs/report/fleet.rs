//! The report of a fleet profile (modtrace merge): its hosts, on how many of
//! them each module and cause was seen, and `--by host`: what each host
//! needs, as the needs stage derives it from that host's share of the fleet.

use serde::Serialize;

use super::model::held;
use super::Held;
use crate::needs::fleet::HostPlan;
use crate::needs::Plan;
use crate::profile::Profile;

/// A host of the fleet, as the report's header names it.
#[derive(Debug, Clone, Serialize)]
pub struct FleetHost {
    /// The name the fleet's `hosts` lists use.
    pub id: String,
    pub name: String,
    pub kernels: Vec<String>,
    pub sessions: usize,
    pub boots: usize,
}

/// The hosts that saw a module or a cause: `count` of the fleet's `of`.
#[derive(Debug, Clone, Serialize)]
pub struct HostCount {
    pub count: usize,
    pub of: usize,
    pub names: Vec<String>,
}

impl HostCount {
    /// "2/3".
    pub fn ratio(&self) -> String {
        format!("{}/{}", self.count, self.of)
    }
}

/// One host of `--by host`: what its evidence needs (trusted, or accepted by
/// a decision that holds there), and what waits for review.
#[derive(Debug, Clone, Serialize)]
pub struct HostGroup {
    pub host: String,
    pub kernels: Vec<String>,
    pub sessions: usize,
    pub boots: usize,
    pub needs: Vec<HostNeed>,
    pub needs_review: Vec<Held>,
    pub denied: Vec<Held>,
    pub site_disabled: Vec<Held>,
}

/// A top-level module a host needs, what it brings, and why.
#[derive(Debug, Clone, Serialize)]
pub struct HostNeed {
    pub module: String,
    pub dependencies: Vec<String>,
    pub why: Vec<String>,
}

/// The fleet's hosts; None for one host's profile.
pub(super) fn hosts(profile: &Profile) -> Option<Vec<FleetHost>> {
    profile.is_fleet().then(|| {
        let entry = |h: &crate::profile::Host| FleetHost {
            id: h.id.clone(),
            name: h.name.clone(),
            kernels: h.kernels.clone(),
            sessions: h.sessions,
            boots: h.boots.len(),
        };
        profile.hosts.iter().map(entry).collect()
    })
}

/// `names` out of the fleet's hosts; None for one host's profile.
pub(super) fn count(profile: &Profile, names: &[String]) -> Option<HostCount> {
    profile.is_fleet().then(|| HostCount { count: names.len(), of: profile.hosts.len(), names: names.to_vec() })
}

/// `--by host`: each host of a fleet with its plan (needs::fleet::host_plans),
/// or the one host of a host's profile with the profile's plan.
pub(super) fn by_host(profile: &Profile, plan: &Plan, plans: &[HostPlan]) -> Vec<HostGroup> {
    if !profile.is_fleet() {
        let kernels = if profile.kernel.is_empty() { Vec::new() } else { vec![profile.kernel.clone()] };
        let (sessions, boots) = (profile.sessions.len(), profile.boots.len());
        return vec![group(profile.host.clone(), kernels, sessions, boots, plan)];
    }
    let host_plan = |id: &str| plans.iter().find(|p| p.id == id).map(|p| &p.plan);
    profile
        .hosts
        .iter()
        .filter_map(|h| Some(group(h.id.clone(), h.kernels.clone(), h.sessions, h.boots.len(), host_plan(&h.id)?)))
        .collect()
}

fn group(host: String, kernels: Vec<String>, sessions: usize, boots: usize, plan: &Plan) -> HostGroup {
    let needs = plan
        .top_level
        .iter()
        .map(|m| HostNeed {
            module: m.clone(),
            dependencies: plan.brings.get(m).cloned().unwrap_or_default(),
            why: plan.needs.get(m).into_iter().flatten().map(|c| c.reason.text.clone()).collect(),
        })
        .collect();
    HostGroup {
        host,
        kernels,
        sessions,
        boots,
        needs,
        needs_review: held(&plan.review, true),
        denied: held(&plan.denied, false),
        site_disabled: held(&plan.site_disabled, false),
    }
}

/// A host's heading: "web1 (kernel 6.12.0; 2 sessions, 3 boots)".
pub(super) fn host_heading(g: &HostGroup) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let kernels = match g.kernels.len() {
        0 => String::new(),
        1 => format!("kernel {}; ", g.kernels[0]),
        _ => format!("kernels {}; ", g.kernels.join(", ")),
    };
    format!("{} ({kernels}{}, {})", g.host, plural(g.sessions, "session"), plural(g.boots, "boot"))
}

/// A host's lines: each need, then each module for review, denied or
/// disabled by the site.
pub(super) fn host_lines(g: &HostGroup) -> Vec<String> {
    let mut lines: Vec<String> = g
        .needs
        .iter()
        .map(|n| {
            let with = match n.dependencies.is_empty() {
                true => String::new(),
                false => format!(" (with {})", n.dependencies.join(", ")),
            };
            format!("needs {}{with}: {}", n.module, n.why.join("; "))
        })
        .collect();
    let held = [("review", &g.needs_review), ("denied", &g.denied), ("disabled by the site", &g.site_disabled)];
    for (word, list) in held {
        lines.extend(list.iter().map(|h| format!("{word}: {}: {}", h.module, h.why)));
    }
    if lines.is_empty() {
        lines.push("needs nothing".to_string());
    }
    lines
}
