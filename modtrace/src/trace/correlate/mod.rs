//! The join across the modprobe hand-off: events in, records with causes out.
//!
//! request_module() fires in the requesting task, then the kernel starts
//! `modprobe -q -- ALIAS` as a child of a kernel thread, so the loads that follow
//! name the helper, not the requester. A request is kept pending with the modules
//! its alias needs (targets, their dependencies and softdeps) until every target
//! is in the kernel; one whose targets are loaded already or built in is
//! satisfied at once, since its helper will load nothing. The first load by a
//! helper (the kernel says its parent is a kernel thread) binds it to the
//! earliest pending request for the alias its argv names that needs the module;
//! its later loads follow the binding, kept by tgid and start time. Nothing here
//! reads /proc or touches BPF: `Describe` does that.

mod devices;
mod errno;
mod modprobe_args;

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::trace::attribute::{self, Describe};
use crate::trace::event::{Body, Cause, Device, Event, KthreadJoin, Process, Record, Syscall, Task, What};
use crate::trace::kthread::CryptoWaiters;
use crate::trace::modindex::{normalize, ModuleIndex};
use crate::trace::uevent::Uevent;
use devices::Devices;

pub use devices::{DEVICE_TTL_NS, MAX_DEVICES};
pub use errno::errno_name;
pub use modprobe_args::modprobe_names;

/// How long a request may wait for its helper, in event time.
pub const REQUEST_TTL_NS: u64 = 60 * 1_000_000_000;

/// At most this many requests wait at once. Anyone can cause requests (a socket of
/// an absent family from many processes): the oldest unserved one gives way, and
/// is counted, rather than memory and per-event work growing without bound.
pub const MAX_PENDING: usize = 4096;

/// Of those, at most this many made by untrusted processes (not root on the
/// host, Scope::root_on_host): their oldest gives way first, so that a user's
/// flood never pushes out root's requests, and its evictions block nothing.
pub const MAX_PENDING_UNTRUSTED: usize = 1024;

#[derive(Debug, Clone)]
struct Request {
    id: u64,
    alias: String,
    /// Who asked: the task, or for a kernel thread's request whom it is joined to.
    requester: Process,
    kthread: Option<KthreadJoin>,
    ts_ns: u64,
    /// The modules the alias resolved to, each with what modprobe loads for it
    /// (dependencies and softdeps first, the target, post-softdeps).
    targets: Vec<(String, Vec<String>)>,
    /// Targets not in the kernel yet: the request is complete when none is left.
    missing: BTreeSet<String>,
    /// The requester is not root on the host.
    untrusted: bool,
}

impl Request {
    fn complete(&self) -> bool {
        self.missing.is_empty()
    }

    fn needs(&self, module: &str) -> bool {
        self.targets.iter().any(|(_, closure)| closure.iter().any(|m| m == module))
    }
}

/// One process across pid reuse: its tgid and start time (None without BTF).
type ProcessKey = (u32, Option<u64>);

fn process_key(task: &Task) -> ProcessKey {
    (task.tgid, task.start_time_ns)
}

/// A helper process joined to the request it serves.
#[derive(Debug, Clone)]
struct Binding {
    request: u64,
    also_requested_by: Vec<Process>,
}

/// Whether a task is the kernel's modprobe helper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Helper {
    Yes,
    No,
    /// The kernel could not say who the parent is (no BTF) and the task runs
    /// the helper's program: it may be the kernel's helper or anybody's modprobe.
    Unknown,
}

/// Decides helper-ness from what the kernel read: the usermode helper is a user
/// process whose parent is a kernel thread (a kworker, or kthreadd for
/// request_module_nowait). Without the parent's flags only the name can rule it
/// out: the kernel's helper runs kernel.modprobe, so its comm is that file's name.
/// PID 1 is a child of the idle task, a kernel thread, yet never the helper: its
/// own loads (systemd's at start-up, seen by the initramfs's probes) are explicit.
pub fn helper_kind(task: &Task, helper_comm: &str) -> Helper {
    if task.tgid == 1 {
        return Helper::No;
    }
    match task.parent_is_kthread {
        Some(true) if task.is_kthread != Some(true) => Helper::Yes,
        Some(_) => Helper::No,
        None if task.comm == helper_comm => Helper::Unknown,
        None => Helper::No,
    }
}

/// Joins events into records. Feed it every event, in order.
#[derive(Debug)]
pub struct Correlator<I> {
    index: I,
    /// Requests in arrival order, so the first match is the earliest.
    requests: VecDeque<Request>,
    /// Helper process -> the request it serves.
    bound: HashMap<ProcessKey, Binding>,
    /// pid -> the module its last `loaded` named, until its `load` result comes.
    loaded_by: HashMap<u32, String>,
    /// Modules in the kernel, each since when (event time): /proc/modules read
    /// once tracing began (`seed_present`), then every load and unload seen.
    present: HashMap<String, u64>,
    /// The comm of the kernel's helper: the file name of kernel.modprobe.
    helper_comm: String,
    next_id: u64,
    evicted: u64,
    evicted_untrusted: u64,
    devices: Devices,
    /// Requests for template instances the crypto manager's thread acts for.
    crypto: CryptoWaiters,
}

impl<I: ModuleIndex> Correlator<I> {
    pub fn new(index: I) -> Self {
        Correlator {
            index,
            requests: VecDeque::new(),
            bound: HashMap::new(),
            loaded_by: HashMap::new(),
            present: HashMap::new(),
            helper_comm: "modprobe".to_string(),
            next_id: 0,
            evicted: 0,
            evicted_untrusted: 0,
            devices: Devices::default(),
            crypto: CryptoWaiters::default(),
        }
    }

    /// The kernel's helper program (kernel.modprobe), for telling it apart where
    /// the kernel could not read the parent.
    pub fn with_helper_program(mut self, path: &str) -> Self {
        let name = path.rsplit('/').next().unwrap_or(path);
        // comm holds TASK_COMM_LEN - 1 bytes of the file name.
        let mut end = name.len().min(15);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        self.helper_comm = name[..end].to_string();
        self
    }

    /// Modules in the kernel at `at_ns`, read from /proc/modules once tracing
    /// began. A request from before then may have been what loaded one of them,
    /// so for it they do not count as there.
    pub fn seed_present(&mut self, modules: impl IntoIterator<Item = String>, at_ns: u64) {
        for m in modules {
            self.present.entry(normalize(&m)).or_insert(at_ns);
        }
    }

    pub fn index(&self) -> &I {
        &self.index
    }

    /// Remembers a device uevent (with a MODALIAS) that arrived at `ts_ns`.
    pub fn device_event(&mut self, ts_ns: u64, ev: Uevent) {
        self.devices.add(ts_ns, ev);
    }

    /// Requests of root on the host dropped unserved because MAX_PENDING were
    /// waiting: the profile may miss what they would have loaded.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Requests of untrusted processes dropped unserved: what they would have
    /// loaded needs review anyway, so their loss blocks nothing.
    pub fn evicted_untrusted(&self) -> u64 {
        self.evicted_untrusted
    }

    /// Requests still waiting for (or being served by) a helper.
    pub fn pending(&self) -> usize {
        self.requests.iter().filter(|r| !r.complete()).count()
    }

    /// The record for one event.
    pub fn handle(&mut self, event: Event, describe: &mut dyn Describe) -> Record {
        self.expire(event.ts_ns);
        let process = describe.process(&event.task);
        let what = match event.body {
            Body::Request { alias, wait, call_site, call_site_name, repeats } => {
                let kthread = self.crypto.request(event.ts_ns, &alias, &process);
                What::Request {
                    resolves_to: self.request(event.ts_ns, &alias, &process, kthread.as_ref()),
                    alias,
                    wait,
                    call_site: attribute::call_site(&call_site_name, call_site),
                    repeats,
                    kthread,
                }
            }
            Body::Loaded { module, taints } => {
                let cause = self.loaded(event.ts_ns, &event.task, &normalize(&module), &process, describe);
                What::Loaded { module, taints, cause }
            }
            Body::Load { syscall, fd, flags, image_len, params, ret, repeats } => {
                let load = Load { syscall, fd, flags, image_len, ret };
                self.load(&event.task, load, params, repeats, &process, describe)
            }
            Body::Unloaded { module } => {
                self.present.remove(&normalize(&module));
                What::Unloaded { module }
            }
        };
        Record { time: describe.wall_time(event.ts_ns), ts_ns: event.ts_ns, what, process, stage: None }
    }

    fn helper(&self, task: &Task) -> Helper {
        helper_kind(task, &self.helper_comm)
    }

    /// Whether `module` was in the kernel at event time `at_ns`.
    fn in_kernel(&self, module: &str, at_ns: u64) -> bool {
        self.present.get(module).is_some_and(|since| *since <= at_ns) || self.index.builtin(module)
    }

    /// Resolves the alias and keeps the request pending while something it
    /// resolves to is missing. A repeated request is one event and counts once.
    fn request(&mut self, ts_ns: u64, alias: &str, asker: &Process, kthread: Option<&KthreadJoin>) -> Vec<String> {
        let resolves_to = self.index.resolve(alias).iter().map(|m| normalize(m)).collect::<Vec<_>>();
        let missing: BTreeSet<String> = resolves_to.iter().filter(|t| !self.in_kernel(t, ts_ns)).cloned().collect();
        // Loaded already or built in: the helper finds it there and loads
        // nothing, so nothing may wait for it and be credited to a later helper.
        if missing.is_empty() {
            return resolves_to;
        }
        // A kernel thread counts as whom it is joined to; unjoined, as nobody's own.
        let requester = kthread.and_then(|k| k.requester.clone()).unwrap_or_else(|| asker.clone());
        let untrusted = !requester.scope.root_own(Some(requester.uid), requester.euid, requester.kernel_thread);
        self.make_room(untrusted);
        let targets = resolves_to.iter().map(|t| (t.clone(), self.index.load_order(t))).collect();
        self.requests.push_back(Request {
            id: self.next_id,
            alias: alias.to_string(),
            requester,
            kthread: kthread.cloned(),
            ts_ns,
            targets,
            missing,
            untrusted,
        });
        self.next_id += 1;
        resolves_to
    }

    fn loaded(&mut self, ts_ns: u64, task: &Task, module: &str, process: &Process, d: &mut dyn Describe) -> Cause {
        let cause = match self.helper(task) {
            Helper::Yes => self.helper_cause(task, Some(module), process),
            Helper::No => self.direct_cause(task, Some(module), process, d),
            Helper::Unknown => Cause::Unknown { reason: undecided_reason(Some(module)) },
        };
        self.loaded_by.insert(task.pid, module.to_string());
        self.arrived(module, ts_ns);
        cause
    }

    fn load(
        &mut self,
        task: &Task,
        l: Load,
        params: String,
        repeats: u32,
        process: &Process,
        d: &mut dyn Describe,
    ) -> What {
        // On failure too: module_load fires before the module's init, so a module
        // named here with an error was linked, its init failed, and it was freed.
        let linked = self.loaded_by.remove(&task.pid);
        if let Some(m) = linked.as_ref().filter(|_| l.ret < 0) {
            self.present.remove(m);
        }
        let was_linked = linked.is_some();
        let mut module = linked;
        let unlinked_failure = module.is_none() && l.ret < 0;
        let cause = match self.helper(task) {
            Helper::Yes => {
                // A helper's call that failed before linking: the module it was
                // loading is the next one of its request, when only one can be.
                if unlinked_failure {
                    module = self.failing_module(task, process);
                }
                self.helper_cause(task, module.as_deref(), process)
            }
            Helper::No if unlinked_failure && is_udev(task) => {
                let (device, next) = self.refused_udev();
                module = next;
                Cause::Udev { loader: process.clone(), device }
            }
            Helper::No => self.direct_cause(task, module.as_deref(), process, d),
            Helper::Unknown => Cause::Unknown { reason: undecided_reason(module.as_deref()) },
        };
        self.release(process_key(task));
        What::Load {
            syscall: l.syscall,
            fd: l.fd,
            flags: l.flags,
            image_len: l.image_len,
            params,
            ret: l.ret,
            error: (l.ret < 0).then(|| errno_name(-l.ret)),
            repeats,
            linked: module.as_ref().filter(|_| l.ret < 0).map(|_| was_linked),
            module,
            cause: Some(cause),
        }
    }

    /// The cause of a helper's load: its binding, made now if it has none.
    fn helper_cause(&mut self, task: &Task, module: Option<&str>, helper: &Process) -> Cause {
        let key = process_key(task);
        if !self.bound.contains_key(&key) {
            if let Err(reason) = self.bind(key, module, task, helper) {
                return Cause::Unknown { reason };
            }
        }
        match self.bound.get(&key) {
            Some(b) => self.request_cause(b, module),
            None => Cause::Unknown { reason: unbound_load_reason(task, module) },
        }
    }

    /// Binds a helper to the request that explains its first load (or its first
    /// failed call, `module` None): among pending requests for the alias its argv
    /// names that need `module`, one not yet served by a helper, the earliest.
    /// Every request starts its own helper, hence the preference.
    fn bind(&mut self, key: ProcessKey, module: Option<&str>, task: &Task, helper: &Process) -> Result<(), String> {
        let alias = helper_alias(task, helper).map_err(|why| no_alias_reason(helper, module, why))?;
        let served: BTreeSet<u64> = self.bound.values().map(|b| b.request).collect();
        let mut matches: Vec<&Request> = self
            .requests
            .iter()
            .filter(|r| !r.complete() && r.alias == alias && module.is_none_or(|m| r.needs(m)))
            .collect();
        // Stable: arrival order stays within each group.
        matches.sort_by_key(|r| served.contains(&r.id));
        let Some(chosen) = matches.first() else {
            return Err(unrequested_reason(helper, module, &alias));
        };
        let mut also: Vec<Process> = Vec::new();
        // A kernel thread's request joined to several candidates names none
        // for sure: it adds nobody who could make the load trusted.
        for r in matches[1..].iter().filter(|r| r.kthread.as_ref().is_none_or(|k| k.candidates.is_empty())) {
            let other = r.requester.tgid != chosen.requester.tgid;
            if other && !also.iter().any(|p| p.tgid == r.requester.tgid) {
                also.push(r.requester.clone());
            }
        }
        let binding = Binding { request: chosen.id, also_requested_by: also };
        self.bound.insert(key, binding);
        Ok(())
    }

    /// The module a helper's call that failed before linking was loading: of its
    /// request's modules, the one not in the kernel whose dependencies all are.
    /// None when several could be next (modprobe's order among them is its own).
    fn failing_module(&mut self, task: &Task, helper: &Process) -> Option<String> {
        let key = process_key(task);
        if !self.bound.contains_key(&key) {
            self.bind(key, None, task, helper).ok()?;
        }
        let request = self.bound.get(&key)?.request;
        let req = self.requests.iter().find(|r| r.id == request)?;
        self.next_to_load(req.targets.iter().flat_map(|(_, order)| order))
    }

    /// Of `modules`, the one not in the kernel whose dependencies all are:
    /// what a loader working through them calls next. None when several are.
    fn next_to_load<'a>(&self, modules: impl Iterator<Item = &'a String>) -> Option<String> {
        let next: BTreeSet<&String> = modules
            .filter(|m| !self.in_kernel(m, u64::MAX))
            .filter(|m| self.index.depends_on(m).iter().all(|d| self.in_kernel(&normalize(d), u64::MAX)))
            .collect();
        match next.len() {
            1 => next.into_iter().next().cloned(),
            _ => None,
        }
    }

    /// A udev worker's call that failed before linking (refused: the lock, the
    /// guard): the one recent device still needing a module not in the kernel,
    /// and the module udev's libkmod calls next for it, when only one can be.
    fn refused_udev(&self) -> (Option<Device>, Option<String>) {
        let missing = |m: &str| !self.in_kernel(m, u64::MAX);
        let Some(device) = self.devices.awaiting_driver(&self.index, &missing) else { return (None, None) };
        let orders: Vec<String> =
            self.index.resolve(&device.modalias).iter().flat_map(|t| self.index.load_order(t)).collect();
        let next = self.next_to_load(orders.iter());
        (Some(device), next)
    }

    fn request_cause(&self, binding: &Binding, module: Option<&str>) -> Cause {
        let Some(req) = self.requests.iter().find(|r| r.id == binding.request) else {
            return Cause::Unknown { reason: "the bound request expired".to_string() };
        };
        let (target, needed_by) = match module {
            Some(m) => self.target_of(req, m),
            None => (req.targets.first().map(|(t, _)| t.clone()), Vec::new()),
        };
        Cause::Request {
            alias: req.alias.clone(),
            requester: req.requester.clone(),
            module: target,
            needed_by,
            also_requested_by: binding.also_requested_by.clone(),
            kthread: req.kthread.clone(),
        }
    }

    /// The target that `module` was loaded for, and the modules of its closure
    /// that need `module` directly.
    fn target_of(&self, req: &Request, module: &str) -> (Option<String>, Vec<String>) {
        if req.targets.iter().any(|(t, _)| t == module) {
            return (Some(module.to_string()), Vec::new());
        }
        match req.targets.iter().find(|(_, closure)| closure.iter().any(|m| m == module)) {
            Some((t, closure)) => (Some(t.clone()), self.dependents(closure, module)),
            None => (req.targets.first().map(|(t, _)| t.clone()), Vec::new()),
        }
    }

    /// The modules of `closure` that need `module` directly: as a dependency or
    /// as a softdep.
    fn dependents(&self, closure: &[String], module: &str) -> Vec<String> {
        let needs = |m: &String| {
            let (pre, post) = self.index.softdeps(m);
            self.index.depends_on(m).iter().chain(&pre).chain(&post).any(|d| normalize(d) == module)
        };
        closure.iter().filter(|m| needs(m)).cloned().collect()
    }

    /// A load by a process that is not a kernel helper: udev, or explicit.
    fn direct_cause(&self, task: &Task, module: Option<&str>, loader: &Process, d: &mut dyn Describe) -> Cause {
        if is_udev(task) {
            return Cause::Udev { loader: loader.clone(), device: self.devices.device_for(&self.index, module) };
        }
        let needed_by = match (module, loader.cmdline.as_deref()) {
            (Some(m), Some(cmdline)) => self.explicit_needed_by(cmdline, m),
            _ => Vec::new(),
        };
        Cause::Explicit { loader: loader.clone(), invoked_by: d.parent(task), needed_by }
    }
    /// For `modprobe NAME...`: the modules in the named targets' closures that
    /// need `module` directly; empty when `module` is one of the targets.
    fn explicit_needed_by(&self, cmdline: &[String], module: &str) -> Vec<String> {
        let targets: Vec<String> =
            modprobe_names(cmdline).iter().flat_map(|n| self.index.resolve(n)).map(|t| normalize(&t)).collect();
        if targets.iter().any(|t| t == module) {
            return Vec::new();
        }
        let mut out: Vec<String> = Vec::new();
        for t in &targets {
            for m in self.dependents(&self.index.load_order(t), module) {
                if !out.contains(&m) {
                    out.push(m);
                }
            }
        }
        out
    }

    /// Makes room for one more request: evicts the oldest untrusted request no
    /// helper serves once MAX_PENDING_UNTRUSTED of them (for an untrusted one)
    /// or MAX_PENDING in all are kept; root's oldest only when no untrusted
    /// one can go.
    fn make_room(&mut self, untrusted: bool) {
        if self.requests.len() < MAX_PENDING_UNTRUSTED {
            return;
        }
        let their_share_full =
            untrusted && self.requests.iter().filter(|r| r.untrusted).count() >= MAX_PENDING_UNTRUSTED;
        if !their_share_full && self.requests.len() < MAX_PENDING {
            return;
        }
        let used: BTreeSet<u64> = self.bound.values().map(|b| b.request).collect();
        let unserved = |r: &Request| !used.contains(&r.id);
        let oldest = match self.requests.iter().position(|r| r.untrusted && unserved(r)) {
            Some(i) => Some(i),
            None if their_share_full => None,
            None => self.requests.iter().position(unserved),
        };
        if let Some(r) = oldest.and_then(|i| self.requests.remove(i)) {
            match r.untrusted {
                true => self.evicted_untrusted += 1,
                false => self.evicted += 1,
            }
        }
    }

    /// A target arrived: every request waiting for it has it now, whoever loaded it.
    fn arrived(&mut self, module: &str, ts_ns: u64) {
        self.present.insert(module.to_string(), ts_ns);
        for r in &mut self.requests {
            r.missing.remove(module);
        }
        self.forget_unused();
    }

    /// The helper's syscall returned: once its request is complete the helper has
    /// nothing left to do for it.
    fn release(&mut self, key: ProcessKey) {
        let done =
            self.bound.get(&key).is_some_and(|b| self.requests.iter().any(|r| r.id == b.request && r.complete()));
        if done {
            self.bound.remove(&key);
            self.forget_unused();
        }
    }

    /// Drops requests that are complete and serve no helper.
    fn forget_unused(&mut self) {
        let used: BTreeSet<u64> = self.bound.values().map(|b| b.request).collect();
        self.requests.retain(|r| !r.complete() || used.contains(&r.id));
    }

    /// Requests arrive in time order, so the expired ones are at the front.
    fn expire(&mut self, now_ns: u64) {
        self.devices.expire(now_ns);
        let before = self.requests.len();
        while self.requests.front().is_some_and(|r| r.ts_ns.saturating_add(REQUEST_TTL_NS) < now_ns) {
            self.requests.pop_front();
        }
        if self.requests.len() != before {
            let live: BTreeSet<u64> = self.requests.iter().map(|r| r.id).collect();
            self.bound.retain(|_, b| live.contains(&b.request));
        }
    }
}

/// The numeric parts of a load result, passed together.
#[derive(Debug, Clone, Copy)]
struct Load {
    syscall: Syscall,
    fd: Option<i32>,
    flags: u32,
    image_len: u64,
    ret: i64,
}

/// The alias a kernel helper was started for: the name its argv gives
/// modprobe. The kernel's copy of argv comes first (/proc's is read later); an
/// argv cut at ARGS_LEN loses its last argument rather than have it read short.
fn helper_alias(task: &Task, helper: &Process) -> Result<String, &'static str> {
    let argv: Vec<String> = match &task.args {
        Some(args) if task.args_cut => args[..args.len().saturating_sub(1)].to_vec(),
        Some(args) => args.clone(),
        None => helper.cmdline.clone().ok_or("its command line could not be read")?,
    };
    let cut = if task.args_cut { "its command line was cut before the alias" } else { "its command line names no alias" };
    modprobe_names(&argv).into_iter().next().ok_or(cut)
}

/// systemd-udevd or one of its workers, or a program a udev worker ran.
pub fn is_udev(task: &Task) -> bool {
    let udev = |c: &str| c == "systemd-udevd" || c == "(udev-worker)";
    udev(&task.comm) || task.parent_comm.as_deref().is_some_and(udev)
}

fn unrequested_reason(helper: &Process, module: Option<&str>, alias: &str) -> String {
    let parent = helper.parent_comm.as_deref().unwrap_or("a kernel thread");
    let (did, needs) = match module {
        Some(m) => (format!("loaded {m}"), format!(" that needs {m}")),
        None => ("failed to load a module".to_string(), String::new()),
    };
    format!(
        "a kernel modprobe helper (child of {parent}) {did}; its command line names alias {alias}, and no pending \
         request for {alias}{needs} was seen: events were lost, or the request came before tracing began"
    )
}

fn no_alias_reason(helper: &Process, module: Option<&str>, why: &str) -> String {
    let parent = helper.parent_comm.as_deref().unwrap_or("a kernel thread");
    let did = module.map(|m| format!("loaded {m}")).unwrap_or_else(|| "failed to load a module".to_string());
    format!("a kernel modprobe helper (child of {parent}) {did}, but {why}, so which request it served is not known")
}

/// Without the kernel's BTF the parent of a task is not known, and a `modprobe`
/// may be the kernel's helper or one a process ran.
fn undecided_reason(module: Option<&str>) -> String {
    let what = module.map(|m| format!("loaded {m}")).unwrap_or_else(|| "made a load call".to_string());
    format!(
        "a modprobe {what}, but this kernel has no BTF, so modtrace cannot tell whether the kernel started it \
         for a request or a process ran it"
    )
}

fn unbound_load_reason(task: &Task, module: Option<&str>) -> String {
    let what = module.map(|m| format!("load of {m}")).unwrap_or_else(|| "load".to_string());
    format!(
        "the {what} by kernel modprobe helper {} is joined to no request seen: events were lost, \
         or the request came before tracing began",
        task.tgid
    )
}

#[cfg(test)]
mod tests;
