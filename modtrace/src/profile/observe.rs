//! Building a profile: pure functions from records (and /proc/modules at the
//! start of learning) to profile entries. Nothing here reads the system.

use std::collections::{BTreeMap, BTreeSet};

use super::bound::{add_also_requested, add_candidate, add_requester_bounded, Asked};
use super::model::{
    earliest, latest, taint_letters, AliasRequest, CountedRequester, Device, Failure, Loader, Module, Profile, Requester,
    Trigger, TriggerKind,
};
use crate::trace::event::{Cause, Parent, Process, Record, Syscall, What};
use crate::trace::modindex::{normalize, ModuleIndex};
use crate::trace::snapshot::LoadedModule;

/// The reason recorded for a module that was loaded before learning and that no
/// source explains (preload.rs): its cause is unknown, so it needs review.
pub const BEFORE_LEARNING: &str = "before learning";

impl Profile {
    /// Adds one correlated record. Returns whether the profile changed.
    pub fn observe(&mut self, rec: &Record) -> bool {
        match &rec.what {
            What::Request { .. } => self.observe_request(rec),
            What::Load { ret, .. } => {
                let linked = self.in_flight.remove(&rec.process.pid);
                if *ret == 0 {
                    // The `loaded` record of the same call carried module and cause.
                    return false;
                }
                if let Some(loaded) = linked {
                    self.retract_loaded(&loaded);
                }
                let Some(failure) = failure_of(rec) else { return false };
                self.add_failure_bounded(failure);
                true
            }
            What::Loaded { .. } => {
                self.in_flight.insert(rec.process.pid, rec.clone());
                self.add_loaded(rec)
            }
            What::Unloaded { .. } => false,
        }
    }

    fn observe_request(&mut self, rec: &Record) -> bool {
        let What::Request { alias, resolves_to, repeats, kthread, .. } = &rec.what else { return false };
        let count = 1 + u64::from(*repeats);
        // A kernel thread's request counts for whom it is joined to.
        let who = kthread.as_ref().and_then(|k| k.requester.as_ref()).unwrap_or(&rec.process);
        let asked = Asked { who: requester_of(who), alias, count, time: &rec.time };
        if self.fold_unresolved(asked, !resolves_to.is_empty()) {
            return true;
        }
        let req = self.request_mut(alias, &rec.time);
        req.count += count;
        req.first_seen = earliest(&req.first_seen, &rec.time);
        req.last_seen = latest(&req.last_seen, &rec.time);
        for m in resolves_to {
            insert_sorted(&mut req.resolves_to, normalize(m));
        }
        add_requester_bounded(&mut req.requesters, &mut req.requesters_folded, requester_of(who), count);
        true
    }

    /// Takes back a `loaded` observation whose load call failed (the module's
    /// init failed and the kernel freed it): its count and trigger go, and the
    /// module too when nothing else ever loaded it.
    fn retract_loaded(&mut self, rec: &Record) {
        let What::Loaded { module, cause, .. } = &rec.what else { return };
        let name = normalize(module);
        let trigger = trigger_of(&name, cause, rec);
        let Ok(i) = self.modules.binary_search_by(|m| m.name.as_str().cmp(&name)) else { return };
        let m = &mut self.modules[i];
        m.count = m.count.saturating_sub(1);
        if let Some(t) = m.triggers.iter_mut().find(|t| t.same_cause(&trigger)) {
            t.count = t.count.saturating_sub(1);
        }
        m.triggers.retain(|t| t.count > 0);
        if m.count == 0 && m.triggers.is_empty() {
            self.modules.remove(i);
        }
    }

    fn add_loaded(&mut self, rec: &Record) -> bool {
        match &rec.what {
            What::Loaded { module, taints, cause } => {
                let name = normalize(module);
                let trigger = trigger_of(&name, cause, rec);
                if let Cause::Request { alias, module: Some(m), .. } = cause {
                    if normalize(m) == name {
                        let req = self.request_mut(alias, &rec.time);
                        insert_sorted(&mut req.resolves_to, name.clone());
                    }
                }
                let m = self.module_mut(&name, &rec.time);
                m.count += 1;
                m.first_seen = earliest(&m.first_seen, &rec.time);
                m.last_seen = latest(&m.last_seen, &rec.time);
                for t in taint_letters(*taints) {
                    insert_sorted(&mut m.taints, t);
                }
                add_trigger(&mut m.triggers, trigger);
                true
            }
            _ => false,
        }
    }

    /// Records the modules found in /proc/modules when learning starts, with the
    /// source that explains each (`reasons`, by module name, see preload.rs) or
    /// "before learning" (cause unknown). One count per learning session that
    /// found it loaded.
    pub fn add_preloaded(&mut self, loaded: &[LoadedModule], reasons: &BTreeMap<String, String>, time: &str) {
        for lm in loaded {
            let name = normalize(&lm.name);
            let mut trigger = Trigger::new(TriggerKind::Preloaded);
            trigger.reason = Some(reasons.get(&name).cloned().unwrap_or_else(|| BEFORE_LEARNING.to_string()));
            trigger.count = 1;
            let m = self.module_mut(&name, time);
            m.count += 1;
            m.first_seen = earliest(&m.first_seen, time);
            m.last_seen = latest(&m.last_seen, time);
            for t in &lm.taints {
                insert_sorted(&mut m.taints, t.clone());
            }
            add_trigger(&mut m.triggers, trigger);
        }
    }

    /// Computes `depends_on`, `needed_by` and `top_level` from the kernel's module
    /// index. A module the index does not know (another kernel's, or removed) keeps
    /// the dependencies recorded earlier.
    pub fn settle(&mut self, index: &dyn ModuleIndex) {
        for m in &mut self.modules {
            if index.resolve(&m.name).iter().any(|r| normalize(r) == m.name) {
                let mut deps: Vec<String> = index.depends_on(&m.name).iter().map(|d| normalize(d)).collect();
                deps.sort();
                deps.dedup();
                m.depends_on = deps;
            }
        }
        let recorded: BTreeMap<String, Vec<String>> =
            self.modules.iter().map(|m| (m.name.clone(), m.depends_on.clone())).collect();
        let deps_of = |name: &str| -> Vec<String> {
            match recorded.get(name) {
                Some(d) => d.clone(),
                None => index.depends_on(name).iter().map(|d| normalize(d)).collect(),
            }
        };
        let mut needed_by: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for name in recorded.keys() {
            for dep in reachable(name, &deps_of) {
                if dep != *name && recorded.contains_key(&dep) {
                    needed_by.entry(dep).or_default().insert(name.clone());
                }
            }
        }
        for m in &mut self.modules {
            m.needed_by = needed_by.remove(&m.name).map(|s| s.into_iter().collect()).unwrap_or_default();
            m.top_level = m.needed_by.is_empty();
        }
    }

    pub(crate) fn module_mut(&mut self, name: &str, time: &str) -> &mut Module {
        let i = match self.modules.binary_search_by(|m| m.name.as_str().cmp(name)) {
            Ok(i) => i,
            Err(i) => {
                self.modules.insert(i, Module::new(name, time));
                i
            }
        };
        &mut self.modules[i]
    }

    pub(crate) fn request_mut(&mut self, alias: &str, time: &str) -> &mut AliasRequest {
        let i = match self.requests.binary_search_by(|r| r.alias.as_str().cmp(alias)) {
            Ok(i) => i,
            Err(i) => {
                self.requests.insert(
                    i,
                    AliasRequest {
                        alias: alias.to_string(),
                        resolves_to: Vec::new(),
                        count: 0,
                        first_seen: time.to_string(),
                        last_seen: time.to_string(),
                        requesters: Vec::new(),
                        requesters_folded: 0,
                        extra: Default::default(),
                    },
                );
                i
            }
        };
        &mut self.requests[i]
    }
}

/// Every module `start` needs, transitively (not `start` itself unless in a cycle).
fn reachable(start: &str, deps_of: &dyn Fn(&str) -> Vec<String>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = deps_of(start);
    while let Some(d) = todo.pop() {
        if seen.insert(d.clone()) {
            todo.extend(deps_of(&d));
        }
    }
    seen
}

pub(crate) fn insert_sorted(list: &mut Vec<String>, value: String) {
    if let Err(i) = list.binary_search(&value) {
        list.insert(i, value);
    }
}

/// Adds a trigger, or its count to the same cause already there (keeping the
/// latest pid, cgroup and namespaces of the requester).
pub(crate) fn add_trigger(list: &mut Vec<Trigger>, new: Trigger) {
    match list.iter_mut().find(|t| t.same_cause(&new)) {
        Some(t) => {
            t.count += new.count;
            if let (Some(old), Some(newer)) = (&mut t.requester, new.requester) {
                old.keep_latest(newer);
            }
            for r in new.also_requested_by {
                add_also_requested(t, r);
            }
            t.also_requested_folded += new.also_requested_folded;
            for r in new.candidates {
                add_candidate(t, r);
            }
            t.candidates_folded += new.candidates_folded;
            if t.device.is_none() {
                t.device = new.device;
            }
            for h in new.hosts {
                insert_sorted(&mut t.hosts, h);
            }
            for (k, v) in new.extra {
                t.extra.insert(k, v);
            }
        }
        None => list.push(new),
    }
}

pub(crate) fn add_requester(list: &mut Vec<CountedRequester>, who: Requester, count: u64) {
    match list.iter_mut().find(|r| r.who.same_as(&who)) {
        Some(r) => {
            r.count += count;
            let mut who = who;
            let extra = std::mem::take(&mut who.extra);
            r.who.keep_latest(who);
            r.who.extra.extend(extra);
        }
        None => list.push(CountedRequester { who, count }),
    }
}

pub(crate) fn add_failure(list: &mut Vec<Failure>, new: Failure) {
    match list.iter_mut().find(|f| f.same_failure(&new)) {
        Some(f) => {
            f.count += new.count;
            f.first_seen = earliest(&f.first_seen, &new.first_seen);
            f.last_seen = latest(&f.last_seen, &new.last_seen);
            if f.error.is_none() {
                f.error = new.error;
            }
            for (k, v) in new.extra {
                f.extra.insert(k, v);
            }
        }
        None => list.push(new),
    }
}

pub(crate) fn requester_of(p: &Process) -> Requester {
    Requester {
        comm: p.comm.clone(),
        exe: p.exe.clone(),
        pid: Some(p.tgid),
        uid: Some(p.uid),
        euid: p.euid,
        loginuid: p.loginuid,
        kernel_thread: p.kernel_thread,
        unit: p.unit.clone(),
        scope: p.scope.clone(),
        cgroup: p.cgroup.clone(),
        pid_ns: p.pid_ns,
        mnt_ns: p.mnt_ns,
        extra: Default::default(),
    }
}

/// A loader's parent: the kernel gives neither its uid nor its cgroup.
fn parent_requester(p: &Parent) -> Requester {
    Requester {
        comm: p.comm.clone().unwrap_or_default(),
        exe: p.exe.clone(),
        pid: Some(p.pid),
        uid: None,
        euid: None,
        loginuid: None,
        kernel_thread: None,
        unit: p.unit.clone(),
        scope: Default::default(),
        cgroup: None,
        pid_ns: None,
        mnt_ns: None,
        extra: Default::default(),
    }
}

pub(crate) fn loader_of(p: &Process) -> Loader {
    Loader {
        comm: p.comm.clone(),
        exe: p.exe.clone(),
        uid: Some(p.uid),
        euid: p.euid,
        loginuid: p.loginuid,
        unit: p.unit.clone(),
        scope: p.scope.clone(),
        cgroup: p.cgroup.clone(),
        pid_ns: p.pid_ns,
        mnt_ns: p.mnt_ns,
        extra: Default::default(),
    }
}

/// The module a dependency load was for: the alias's module when the kernel
/// requested it, else the modules that need it (as the correlator named them).
fn needing_module(this: &str, alias_module: Option<&String>, needed_by: &[String]) -> Option<String> {
    if needed_by.is_empty() {
        return None;
    }
    if let Some(m) = alias_module {
        let m = normalize(m);
        if m != this {
            return Some(m);
        }
    }
    let mut names: Vec<String> = needed_by.iter().map(|n| normalize(n)).collect();
    names.sort();
    names.dedup();
    Some(names.join(","))
}

fn trigger_of(module: &str, cause: &Cause, rec: &Record) -> Trigger {
    Trigger { stage: rec.stage.map(str::to_string), ..cause_trigger(module, cause, &rec.process) }
}

fn cause_trigger(module: &str, cause: &Cause, process: &Process) -> Trigger {
    match cause {
        Cause::Request { alias, requester, module: alias_module, needed_by, also_requested_by, kthread } => {
            let mut t = Trigger::new(TriggerKind::Request);
            t.alias = Some(alias.clone());
            t.needed_by = needing_module(module, alias_module.as_ref(), needed_by);
            t.requester = Some(requester_of(requester));
            for p in also_requested_by {
                add_also_requested(&mut t, requester_of(p));
            }
            if let Some(k) = kthread {
                t.via = k.requester.is_some().then(|| k.via.clone());
                for c in &k.candidates {
                    add_candidate(&mut t, requester_of(c));
                }
                t.reason = k.unjoined.clone();
            }
            t.loader = Some(loader_of(process));
            t.count = 1;
            t
        }
        Cause::Explicit { loader, invoked_by, needed_by } => {
            let mut t = Trigger::new(TriggerKind::Explicit);
            t.needed_by = needing_module(module, None, needed_by);
            t.requester = invoked_by.as_ref().map(parent_requester);
            t.loader = Some(loader_of(loader));
            t.count = 1;
            t
        }
        Cause::Udev { loader, device } => {
            let mut t = Trigger::new(TriggerKind::Udev);
            t.device = device.as_ref().map(|d| Device {
                modalias: Some(d.modalias.clone()),
                devpath: Some(d.devpath.clone()),
                extra: Default::default(),
            });
            t.loader = Some(loader_of(loader));
            t.count = 1;
            t
        }
        Cause::Unknown { reason } => {
            let mut t = Trigger::new(TriggerKind::Unknown);
            t.reason = Some(reason.clone());
            t.loader = Some(loader_of(process));
            t.count = 1;
            t
        }
    }
}
/// A failed load call (`ret` != 0) as the profile keeps it; None for
/// another kind of record.
fn failure_of(rec: &Record) -> Option<Failure> {
    let What::Load { syscall, ret, error, repeats, module, cause, .. } = &rec.what else { return None };
    let (alias, requester, cause_module) = match cause {
        Some(Cause::Request { alias, requester, module, .. }) => {
            (Some(alias.clone()), Some(requester_of(requester)), module.clone())
        }
        Some(Cause::Explicit { invoked_by, .. }) => (None, invoked_by.as_ref().map(parent_requester), None),
        _ => (None, None, None),
    };
    Some(Failure {
        module: module.clone().or(cause_module).map(|m| normalize(&m)),
        alias,
        syscall: match syscall {
            Syscall::FinitModule => "finit_module",
            Syscall::InitModule => "init_module",
        }
        .to_string(),
        ret: *ret,
        error: error.clone(),
        loader: loader_of(&rec.process),
        requester,
        count: 1 + u64::from(*repeats),
        first_seen: rec.time.clone(),
        last_seen: rec.time.clone(),
        extra: Default::default(),
    })
}

