//! Fleets: the profiles of many hosts merged into one (`modtrace merge`).
//!
//! A host is its name plus its /etc/machine-id. A profile from before modtrace
//! recorded the machine id joins the host of its name when there is exactly
//! one, else it is a host of its own. Several profiles of one host count once:
//! one whose sessions include all of another's is the newer state of the same
//! learning (learning accumulates), so it replaces it; profiles without a
//! session in common are separate learning (after `learn --fresh`, say) and add
//! up; profiles sharing some sessions but not all would count those twice, and
//! are refused.
//!
//! Every module and cause keeps the ids of the hosts that saw it. Decisions
//! merge conservatively: a deny on any input wins, and each host keeps its own
//! decisions, so that an allow counts for the host that made it (needs/fleet.rs).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::model::{time_cmp, Decision, Host, Profile, Verdict};
use super::observe::insert_sorted;
use super::store::{self, StoreError};
use crate::said::Said;

#[derive(Debug, Error)]
pub enum FleetError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{}: already a fleet profile ({hosts} hosts): merge the hosts' own profiles", path.display())]
    FleetInput { path: PathBuf, hosts: usize },
    #[error(
        "{} and {} are profiles of host {host} that share some learning sessions but not all: neither is the \
         newer state of the other, and merging both would count the shared sessions twice; give only one",
        a.display(),
        b.display()
    )]
    Overlap { host: String, a: PathBuf, b: PathBuf },
    #[error("no profile to merge")]
    NoInput,
}

/// One host's profile, read from `path`.
#[derive(Debug, Clone)]
pub struct Input {
    pub path: PathBuf,
    pub profile: Profile,
}

/// Reads every input before anything is written: the first that cannot be
/// read, or is a fleet already, stops the merge with its name.
pub fn load_inputs(paths: &[PathBuf]) -> Result<Vec<Input>, FleetError> {
    let mut inputs = Vec::new();
    for path in paths {
        let profile = store::load_existing(path)?;
        if profile.is_fleet() {
            return Err(FleetError::FleetInput { path: path.clone(), hosts: profile.hosts.len() });
        }
        inputs.push(Input { path: path.clone(), profile });
    }
    Ok(inputs)
}

/// `modtrace merge`: reads `paths`, merges them and writes the fleet profile to
/// `out` atomically; nothing is written when an input fails.
pub fn merge_files(paths: &[PathBuf], out: &Path) -> Result<Said, FleetError> {
    let inputs = load_inputs(paths)?;
    let (fleet, notes) = merge(inputs)?;
    store::save(out, &fleet)?;
    let mut said = Said::default();
    for note in notes {
        said.err(format!("modtrace: note: {note}"));
    }
    let ids: Vec<&str> = fleet.hosts.iter().map(|h| h.id.as_str()).collect();
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    said.out(format!(
        "modtrace: merged {} profile{} of {} host{} ({}) into {}: {} modules",
        paths.len(),
        plural(paths.len()),
        fleet.hosts.len(),
        plural(fleet.hosts.len()),
        ids.join(", "),
        out.display(),
        fleet.modules.len()
    ));
    Ok(said)
}

/// The evidence of one host: its profiles combined, and every decision of them.
struct HostEvidence {
    name: String,
    machine_id: Option<String>,
    profile: Profile,
    path: PathBuf,
    decisions: Vec<Decision>,
}

/// Merges host profiles into a fleet profile; also says which inputs were
/// found to be the same host.
pub fn merge(inputs: Vec<Input>) -> Result<(Profile, Vec<String>), FleetError> {
    if inputs.is_empty() {
        return Err(FleetError::NoInput);
    }
    let all_decisions: Vec<Decision> = inputs.iter().flat_map(|i| i.profile.decisions.iter().cloned()).collect();
    let (hosts, notes) = group(inputs)?;
    let ids = host_ids(&hosts);
    let mut fleet = Profile::new("", &format!("fleet of {} hosts", hosts.len()));
    for (host, id) in hosts.into_iter().zip(ids) {
        fleet.hosts.push(host_entry(&host, &id));
        let mut p = host.profile;
        tag(&mut p, &id);
        p.decisions.clear();
        (p.kernel, p.host, p.machine_id) = (String::new(), String::new(), None);
        fleet.merge(p);
    }
    fleet.hosts.sort_by(|a, b| a.id.cmp(&b.id));
    fleet.sessions.sort_by(|a, b| time_cmp(&a.start, &b.start));
    let latest = fleet.sessions.iter().max_by(|a, b| time_cmp(&a.end, &b.end));
    fleet.kernel = latest.map(|s| s.kernel.clone()).unwrap_or_default();
    fleet.decisions = conservative(all_decisions);
    Ok((fleet, notes))
}

/// The time of a profile's latest evidence: the end of its latest session.
fn newest(p: &Profile) -> String {
    p.sessions.iter().map(|s| s.end.clone()).max_by(|a, b| time_cmp(a, b)).unwrap_or_default()
}

/// Inputs grouped by host, oldest first so each is combined with a newer one.
fn group(mut inputs: Vec<Input>) -> Result<(Vec<HostEvidence>, Vec<String>), FleetError> {
    inputs.sort_by(|a, b| time_cmp(&newest(&a.profile), &newest(&b.profile)));
    let mut hosts: Vec<HostEvidence> = Vec::new();
    let mut notes = Vec::new();
    for input in inputs {
        match same_host(&hosts, &input.profile) {
            Some(i) => notes.push(absorb(&mut hosts[i], input)?),
            None => hosts.push(HostEvidence {
                name: input.profile.host.clone(),
                machine_id: input.profile.machine_id.clone(),
                decisions: input.profile.decisions.clone(),
                path: input.path,
                profile: input.profile,
            }),
        }
    }
    Ok((hosts, notes))
}

/// The host `p` belongs to: same name and machine id; without a machine id on
/// one side, the only host of that name.
fn same_host(hosts: &[HostEvidence], p: &Profile) -> Option<usize> {
    let named: Vec<usize> = (0..hosts.len()).filter(|i| hosts[*i].name == p.host).collect();
    match &p.machine_id {
        Some(id) => named
            .iter()
            .copied()
            .find(|i| hosts[*i].machine_id.as_ref() == Some(id))
            .or_else(|| (named.len() == 1 && hosts[named[0]].machine_id.is_none()).then(|| named[0])),
        None => (named.len() == 1).then(|| named[0]),
    }
}

/// A session's identity across copies of a profile: a checkpoint and the final
/// save of one run share it.
fn session_keys(p: &Profile) -> BTreeSet<(String, Option<String>)> {
    p.sessions.iter().map(|s| (s.start.clone(), s.boot_id.clone())).collect()
}

/// Combines a newer profile of the same host, without counting anything twice.
fn absorb(host: &mut HostEvidence, input: Input) -> Result<String, FleetError> {
    let (mine, theirs) = (session_keys(&host.profile), session_keys(&input.profile));
    let name = input.profile.host.clone();
    host.decisions.extend(input.profile.decisions.iter().cloned());
    host.machine_id = input.profile.machine_id.clone().or(host.machine_id.take());
    let (a, b) = (host.path.display().to_string(), input.path.display().to_string());
    let note = if theirs.is_superset(&mine) {
        host.profile = input.profile;
        host.path = input.path;
        format!("{a} and {b} are host {name}; {b} holds all of {a}'s sessions, so only {b} counts")
    } else if mine.is_superset(&theirs) {
        format!("{a} and {b} are host {name}; {a} holds all of {b}'s sessions, so only {a} counts")
    } else if mine.is_disjoint(&theirs) {
        host.profile.merge(input.profile);
        format!("{a} and {b} are host {name} with different sessions: counted as one host, their evidence added")
    } else {
        return Err(FleetError::Overlap { host: name, a: host.path.clone(), b: input.path });
    };
    Ok(note)
}

/// Host ids: the name, and where two hosts share one, the start of the machine id.
fn host_ids(hosts: &[HostEvidence]) -> Vec<String> {
    let name = |h: &HostEvidence| if h.name.is_empty() { "unknown".to_string() } else { h.name.clone() };
    hosts
        .iter()
        .map(|h| match hosts.iter().filter(|o| o.name == h.name).count() {
            1 => name(h),
            _ => format!("{}/{}", name(h), h.machine_id.as_deref().map_or("no-machine-id", |m| &m[..m.len().min(8)])),
        })
        .collect()
}

fn host_entry(host: &HostEvidence, id: &str) -> Host {
    let p = &host.profile;
    let mut kernels: Vec<String> = Vec::new();
    for k in p.sessions.iter().map(|s| &s.kernel).chain([&p.kernel]).filter(|k| !k.is_empty()) {
        insert_sorted(&mut kernels, k.clone());
    }
    let mut own = Profile::new("", "");
    for d in latest_first(host.decisions.clone()) {
        own.decide(d);
    }
    Host {
        id: id.to_string(),
        name: host.name.clone(),
        machine_id: host.machine_id.clone(),
        kernels,
        boots: p.boots.clone(),
        sessions: p.sessions.len(),
        decisions: own.decisions,
        extra: Default::default(),
    }
}

/// Decisions ordered so that deciding them in turn leaves the latest for each name.
fn latest_first(mut decisions: Vec<Decision>) -> Vec<Decision> {
    decisions.sort_by(|a, b| time_cmp(&a.time, &b.time));
    decisions
}

/// The fleet's decisions: for each name a deny when any input denies it (the
/// latest deny), else the latest allow.
fn conservative(decisions: Vec<Decision>) -> Vec<Decision> {
    let mut fleet = Profile::new("", "");
    for d in latest_first(decisions) {
        let denied = fleet.decision(&d.name).is_some_and(|mine| mine.verdict == Verdict::Deny);
        if !denied || d.verdict == Verdict::Deny {
            fleet.decide(d);
        }
    }
    fleet.decisions
}

/// Marks every module, cause and session of one host's profile with its id.
fn tag(p: &mut Profile, id: &str) {
    for m in &mut p.modules {
        m.hosts = vec![id.to_string()];
        for t in &mut m.triggers {
            t.hosts = vec![id.to_string()];
        }
    }
    for s in &mut p.sessions {
        s.host = Some(id.to_string());
    }
}

#[cfg(test)]
mod tests;
