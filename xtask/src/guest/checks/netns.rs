//! Containers by namespace, not by name (issue 21, part 5): root processes in
//! a host system unit's cgroup (where systemd-nspawn --keep-unit and podman
//! --cgroups=split put containers) but in new pid and mount namespaces are
//! containers in the trace and the profile, need review, and get neither a
//! list entry nor a drop-in; a process of the same cgroup in init's
//! namespaces stays the host's system unit, so each check fails both ways.

use serde_json::{json, Value};

use super::{evidence, expect, expect_requested, find, loaded, text, Facts};
use crate::guest::scenario::{self as sc, captured as cap, comm, section};

/// (alias, module) of the mounts in new namespaces: forked, and not yet forked.
fn in_new_namespaces() -> [(String, &'static str); 2] {
    [sc::NETNS_FORKED_FS, sc::NETNS_UNFORKED_FS].map(|fs| (format!("fs-{fs}"), fs))
}

fn in_inits_namespaces() -> (String, &'static str) {
    (format!("fs-{}", sc::NETNS_HOST_FS), sc::NETNS_HOST_FS)
}

fn container_scope() -> Value {
    json!({"kind": "container", "runtime": "namespaces", "name": sc::NETNS_UNIT, "namespaces": ["pid", "mnt"]})
}

fn system_scope() -> Value {
    json!({"kind": "system", "unit": sc::NETNS_UNIT})
}

/// `who` (a trace's process, a profile's requester) has `scope` and a pid
/// namespace; returns its inode number. `r` is the evidence.
fn scoped(who: &Value, scope: &Value, r: &Value) -> Result<u64, String> {
    if who.get("scope") != Some(scope) {
        return Err(evidence(&format!("scope is {:?}, expected {scope}", who.get("scope")), r));
    }
    who.get("pid_ns").and_then(Value::as_u64).ok_or_else(|| evidence("no pid_ns", r))
}

/// The trace's request for `alias` by mount in the unit's cgroup and the
/// `loaded` record it caused, both with `scope`: the requester's pid namespace.
fn traced(f: &Facts, (alias, module): &(String, &str), scope: &Value) -> Result<u64, String> {
    let request = find(f, &format!("`request` record for {alias}"), |r| {
        text(r, "/kind") == "request" && text(r, "/alias") == alias
    })?;
    expect(request, "/process/comm", comm::MOUNT)?;
    expect(request, "/process/cgroup", sc::NETNS_CGROUP)?;
    expect(request, "/process/unit", sc::NETNS_UNIT)?;
    let ns = scoped(&request["process"], scope, request)?;
    let load = loaded(f, module)?;
    expect_requested(load, alias, comm::MOUNT)?;
    scoped(&load["cause"]["requester"], scope, load)?;
    Ok(ns)
}

/// Each namespace's inode number differs from the host process's.
fn not_hosts(host: u64, others: &[(String, u64)]) -> Result<(), String> {
    match others.iter().find(|(_, ns)| *ns == host) {
        Some((what, _)) => Err(format!("{what} was asked in a new pid namespace, yet its pid_ns is init's ({host})")),
        None => Ok(()),
    }
}

pub fn trace_new_namespaces_are_a_container(f: &Facts) -> Result<(), String> {
    let host = traced(f, &in_inits_namespaces(), &system_scope())?;
    let mut others = Vec::new();
    for asked in in_new_namespaces() {
        others.push((asked.0.clone(), traced(f, &asked, &container_scope())?));
    }
    not_hosts(host, &others)
}

pub fn trace_inits_namespaces_stay_the_system_unit(f: &Facts) -> Result<(), String> {
    traced(f, &in_inits_namespaces(), &system_scope()).map(drop)
}

/// The profile's requester of `module`'s request trigger for `alias`.
fn profile_requester<'a>(p: &'a Value, (alias, module): &(String, &str)) -> Result<&'a Value, String> {
    let modules = p.pointer("/modules").and_then(Value::as_array).ok_or("the profile has no modules list")?;
    let m = modules.iter().find(|m| text(m, "/name") == *module).ok_or(format!("{module} is not in the profile"))?;
    let triggers = m.pointer("/triggers").and_then(Value::as_array);
    let t = triggers.and_then(|t| t.iter().find(|t| text(t, "/kind") == "request" && text(t, "/alias") == alias));
    t.map(|t| &t["requester"]).ok_or_else(|| evidence(&format!("no request trigger for {alias}"), m))
}

pub fn profile_scopes_by_namespace(f: &Facts) -> Result<(), String> {
    let text = f.output.text(section::PROFILE)?;
    let p: Value = serde_json::from_str(&text).map_err(|e| format!("the profile is not JSON ({e})"))?;
    let host = profile_requester(&p, &in_inits_namespaces())?;
    let host_ns = scoped(host, &system_scope(), host)?;
    let mut others = Vec::new();
    for asked in in_new_namespaces() {
        let r = profile_requester(&p, &asked)?;
        others.push((asked.0.clone(), scoped(r, &container_scope(), r)?));
    }
    not_hosts(host_ns, &others)
}

fn listed(list: &str) -> Vec<&str> {
    list.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
}

/// check's review lines name each container's module, saying its namespaces
/// are not init's, and not the host process's module.
fn expect_review(f: &Facts) -> Result<(), String> {
    let status = f.output.exit_code(cap::CHECK)?;
    let out = f.output.text(&format!("{}.stdout", cap::CHECK)).unwrap_or_default();
    if ![0, 1].contains(&status) {
        return Err(format!("check exited {status}:\n{out}"));
    }
    let review = out.split_once("needs review:").map(|(_, r)| r).unwrap_or_default();
    let review: Vec<&str> = review.lines().skip(1).take_while(|l| l.starts_with("  - ")).collect();
    let line = |m: &str| review.iter().find(|l| l.starts_with(&format!("  - {m}:"))).copied();
    for (_, m) in in_new_namespaces() {
        if !line(m).is_some_and(|l| l.contains("pid and mount namespaces not init's")) {
            return Err(format!("no review line for {m} saying its namespaces are not init's:\n{out}"));
        }
    }
    match line(sc::NETNS_HOST_FS) {
        Some(l) => Err(format!("{} (root, init's namespaces) needs review: {l}", sc::NETNS_HOST_FS)),
        None => Ok(()),
    }
}

/// In `text` (what), the host process's module and none of the containers'.
fn only_the_hosts(what: &str, text: &str, names: &[&str], host: &str) -> Result<(), String> {
    if !names.contains(&host) {
        return Err(format!("{what} lacks {host} (root in {} in init's namespaces):\n{text}", sc::NETNS_UNIT));
    }
    match in_new_namespaces().iter().find(|(_, m)| names.contains(m)) {
        Some((_, m)) => Err(format!("{what} has {m}, which only a container asked for:\n{text}")),
        None => Ok(()),
    }
}

pub fn container_needs_review_and_gets_nothing(f: &Facts) -> Result<(), String> {
    expect_review(f)?;
    let list = f.output.text(section::GENERATED_LIST)?;
    only_the_hosts("the generated list", &list, &listed(&list), sc::NETNS_HOST_FS)?;
    let drop_in = f.output.text(sc::NETNS_DROP_IN)?;
    let wanted: Vec<&str> = drop_in
        .lines()
        .filter_map(|l| l.strip_prefix("Wants=modprobe@")?.strip_suffix(".service"))
        .collect();
    only_the_hosts(&format!("{}'s drop-in", sc::NETNS_UNIT), &drop_in, &wanted, sc::NETNS_HOST_FS)
}
