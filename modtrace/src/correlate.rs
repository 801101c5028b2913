//! The join across the modprobe hand-off: events in, records with causes out.
//!
//! request_module() fires in the requesting task, then the kernel starts
//! `modprobe -q -- ALIAS` from a kworker, so the loads that follow name the helper,
//! not the requester. A request is kept pending with the modules its alias needs
//! (targets and their dependencies); the first load by a helper that one of them
//! explains binds the helper to it, and the helper's later loads follow the
//! binding. Nothing here reads /proc or touches BPF: `Describe` does that.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::attribute::Describe;
use crate::event::{Body, Cause, Device, Event, Process, Record, Syscall, Task, What};
use crate::uevent::Uevent;
use crate::modindex::{normalize, ModuleIndex};

/// How long a request may wait for its helper, in event time.
pub const REQUEST_TTL_NS: u64 = 60 * 1_000_000_000;

/// Device uevents are kept this long for udev loads to find.
pub const DEVICE_TTL_NS: u64 = 60 * 1_000_000_000;
/// At most this many device uevents are kept (a coldplug replays thousands).
pub const MAX_DEVICES: usize = 4096;

/// At most this many requests wait at once. Anyone can cause requests (a socket of
/// an absent family from many processes): the oldest unserved one gives way, and
/// is counted, rather than memory and per-event work growing without bound.
pub const MAX_PENDING: usize = 4096;

#[derive(Debug, Clone)]
struct Request {
    id: u64,
    alias: String,
    requester: Process,
    ts_ns: u64,
    /// The modules the alias resolved to, each with its closure (dependencies
    /// first, the target last).
    targets: Vec<(String, Vec<String>)>,
    /// Targets not loaded yet: the request is complete when none is left.
    missing: BTreeSet<String>,
}

impl Request {
    fn complete(&self) -> bool {
        self.missing.is_empty()
    }

    fn needs(&self, module: &str) -> bool {
        self.targets.iter().any(|(_, closure)| closure.iter().any(|m| m == module))
    }
}

/// A helper process joined to the request it serves.
#[derive(Debug, Clone)]
struct Binding {
    request: u64,
    also_requested_by: Vec<Process>,
}

/// Joins events into records. Feed it every event, in order.
#[derive(Debug)]
pub struct Correlator<I> {
    index: I,
    /// Requests in arrival order, so the first match is the earliest.
    requests: VecDeque<Request>,
    /// Helper tgid -> the request it serves.
    bound: HashMap<u32, Binding>,
    /// pid -> the module its last `loaded` named, until its `load` result comes.
    loaded_by: HashMap<u32, String>,
    next_id: u64,
    evicted: u64,
    /// Recent uevents that carry a MODALIAS, oldest first, with their arrival time.
    devices: VecDeque<(u64, Device)>,
}

impl<I: ModuleIndex> Correlator<I> {
    pub fn new(index: I) -> Self {
        Correlator { index, requests: VecDeque::new(), bound: HashMap::new(), loaded_by: HashMap::new(), next_id: 0, evicted: 0, devices: VecDeque::new() }
    }

    pub fn index(&self) -> &I {
        &self.index
    }

    /// Remembers a device uevent (with a MODALIAS) that arrived at `ts_ns`.
    pub fn device_event(&mut self, ts_ns: u64, ev: Uevent) {
        let Some(modalias) = ev.modalias else { return };
        if ev.action != "add" && ev.action != "bind" && ev.action != "change" {
            return;
        }
        self.expire_devices(ts_ns);
        if self.devices.len() >= MAX_DEVICES {
            self.devices.pop_front();
        }
        self.devices.push_back((ts_ns, Device { modalias, devpath: ev.devpath, subsystem: ev.subsystem }));
    }

    /// The device a udev load of `module` was for: recent devices whose MODALIAS
    /// needs `module` (itself or as a dependency). Only one distinct MODALIAS may
    /// match; several mean the device is not known for sure, so none is named.
    fn device_for(&self, module: Option<&str>) -> Option<Device> {
        let module = module?;
        let mut found: Option<&Device> = None;
        for (_, dev) in self.devices.iter().rev() {
            let needs = self.index.resolve(&dev.modalias).iter().any(|t| self.index.closure(t).iter().any(|m| m == module));
            if !needs {
                continue;
            }
            match found {
                None => found = Some(dev),
                Some(f) if f.modalias == dev.modalias => {}
                Some(_) => return None,
            }
        }
        found.cloned()
    }

    /// Requests dropped unserved because MAX_PENDING were waiting.
    pub fn evicted(&self) -> u64 {
        self.evicted
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
            Body::Request { alias, wait, call_site, repeats } => What::Request {
                resolves_to: self.request(event.ts_ns, &alias, &process),
                alias,
                wait,
                call_site: describe.symbol(call_site),
                repeats,
            },
            Body::Loaded { module, taints } => {
                let cause = self.loaded(&event.task, &normalize(&module), &process, describe);
                What::Loaded { module, taints, cause }
            }
            Body::Load { syscall, fd, flags, image_len, params, ret, repeats } => {
                let load = Load { syscall, fd, flags, image_len, ret };
                self.load(&event.task, load, params, repeats, &process, describe)
            }
            Body::Unloaded { module } => What::Unloaded { module },
        };
        Record { time: describe.wall_time(event.ts_ns), ts_ns: event.ts_ns, what, process }
    }

    /// Resolves the alias and keeps the request pending when something provides
    /// it. A repeated request is one event and counts once.
    fn request(&mut self, ts_ns: u64, alias: &str, requester: &Process) -> Vec<String> {
        let resolves_to = self.index.resolve(alias).iter().map(|m| normalize(m)).collect::<Vec<_>>();
        if !resolves_to.is_empty() {
            self.make_room();
            let targets = resolves_to.iter().map(|t| (t.clone(), self.index.closure(t))).collect();
            self.requests.push_back(Request {
                id: self.next_id,
                alias: alias.to_string(),
                requester: requester.clone(),
                ts_ns,
                targets,
                missing: resolves_to.iter().cloned().collect(),
            });
            self.next_id += 1;
        }
        resolves_to
    }

    fn loaded(&mut self, task: &Task, module: &str, process: &Process, d: &mut dyn Describe) -> Cause {
        let cause = match self.binding(task) {
            Some(b) => self.request_cause(b, Some(module)),
            None if is_helper(task) => self.bind(task.tgid, module, process),
            None => self.direct_cause(task, Some(module), process, d),
        };
        self.loaded_by.insert(task.pid, module.to_string());
        self.arrived(module);
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
        let module = self.loaded_by.remove(&task.pid);
        let cause = match self.binding(task) {
            Some(b) => self.request_cause(b, module.as_deref()),
            None if is_helper(task) => Cause::Unknown { reason: unbound_load_reason(task, module.as_deref()) },
            None => self.direct_cause(task, module.as_deref(), process, d),
        };
        self.release(task.tgid);
        What::Load {
            syscall: l.syscall,
            fd: l.fd,
            flags: l.flags,
            image_len: l.image_len,
            params,
            ret: l.ret,
            error: (l.ret < 0).then(|| errno_name(-l.ret)),
            repeats,
            module,
            cause: Some(cause),
        }
    }

    /// The request a helper serves. Only helpers are looked up, so a reused tgid
    /// of an ordinary process never inherits a binding.
    fn binding(&self, task: &Task) -> Option<&Binding> {
        self.bound.get(&task.tgid).filter(|_| is_helper(task))
    }

    /// Binds a helper to the request that explains its first load: among pending
    /// requests that need `module` (and, when the helper's command line names its
    /// alias, only those for that alias), one not yet served by a helper, the
    /// earliest. Every request starts its own helper, hence the preference.
    fn bind(&mut self, tgid: u32, module: &str, helper: &Process) -> Cause {
        let alias = helper.cmdline.as_deref().and_then(|c| modprobe_names(c).into_iter().next());
        let served: BTreeSet<u64> = self.bound.values().map(|b| b.request).collect();
        let mut matches: Vec<&Request> = self
            .requests
            .iter()
            .filter(|r| !r.complete() && r.needs(module))
            .filter(|r| alias.as_ref().is_none_or(|a| *a == r.alias))
            .collect();
        // Stable: arrival order stays within each group.
        matches.sort_by_key(|r| served.contains(&r.id));
        let Some(chosen) = matches.first() else {
            return Cause::Unknown { reason: unrequested_reason(helper, module, alias.as_deref()) };
        };
        let mut also: Vec<Process> = Vec::new();
        for r in &matches[1..] {
            let other = r.requester.tgid != chosen.requester.tgid;
            if other && !also.iter().any(|p| p.tgid == r.requester.tgid) {
                also.push(r.requester.clone());
            }
        }
        let binding = Binding { request: chosen.id, also_requested_by: also };
        let cause = self.request_cause(&binding, Some(module));
        self.bound.insert(tgid, binding);
        cause
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

    fn dependents(&self, closure: &[String], module: &str) -> Vec<String> {
        closure.iter().filter(|m| self.index.depends_on(m).iter().any(|d| normalize(d) == module)).cloned().collect()
    }

    /// A load by a process that is not a kernel helper: udev, or explicit.
    fn direct_cause(&self, task: &Task, module: Option<&str>, loader: &Process, d: &mut dyn Describe) -> Cause {
        if is_udev(task) {
            return Cause::Udev { loader: loader.clone(), device: self.device_for(module) };
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
            for m in self.dependents(&self.index.closure(t), module) {
                if !out.contains(&m) {
                    out.push(m);
                }
            }
        }
        out
    }

    /// Evicts the oldest request no helper serves once MAX_PENDING are kept.
    fn make_room(&mut self) {
        if self.requests.len() < MAX_PENDING {
            return;
        }
        let used: BTreeSet<u64> = self.bound.values().map(|b| b.request).collect();
        if let Some(oldest) = self.requests.iter().position(|r| !used.contains(&r.id)) {
            self.requests.remove(oldest);
            self.evicted += 1;
        }
    }

    /// A target arrived: every request waiting for it has it now, whoever loaded it.
    fn arrived(&mut self, module: &str) {
        for r in &mut self.requests {
            r.missing.remove(module);
        }
        self.forget_unused();
    }

    /// The helper's syscall returned: once its request is complete the helper has
    /// nothing left to do for it.
    fn release(&mut self, tgid: u32) {
        let done =
            self.bound.get(&tgid).is_some_and(|b| self.requests.iter().any(|r| r.id == b.request && r.complete()));
        if done {
            self.bound.remove(&tgid);
            self.forget_unused();
        }
    }

    /// Drops requests that are complete and serve no helper.
    fn forget_unused(&mut self) {
        let used: BTreeSet<u64> = self.bound.values().map(|b| b.request).collect();
        self.requests.retain(|r| !r.complete() || used.contains(&r.id));
    }

    fn expire_devices(&mut self, now_ns: u64) {
        while self.devices.front().is_some_and(|(t, _)| t.saturating_add(DEVICE_TTL_NS) < now_ns) {
            self.devices.pop_front();
        }
    }

    /// Requests arrive in time order, so the expired ones are at the front.
    fn expire(&mut self, now_ns: u64) {
        self.expire_devices(now_ns);
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

/// The kernel's usermode helper: its parent is a kernel thread (a kworker for
/// request_module(), kthreadd for request_module_nowait()).
pub fn is_helper(task: &Task) -> bool {
    let parent = task.parent_comm.as_deref().unwrap_or("");
    parent.starts_with("kworker") || parent == "kthreadd" || task.ppid == Some(2)
}

/// systemd-udevd or one of its workers, or a program a udev worker ran.
pub fn is_udev(task: &Task) -> bool {
    let udev = |c: &str| c == "systemd-udevd" || c == "(udev-worker)";
    udev(&task.comm) || task.parent_comm.as_deref().is_some_and(udev)
}

/// The module names (or aliases) a `modprobe` command line asks to load; empty
/// for other programs and for removals. Without -a only the first name is a
/// module: the rest are its parameters.
pub fn modprobe_names(cmdline: &[String]) -> Vec<String> {
    let Some((prog, args)) = cmdline.split_first() else { return Vec::new() };
    if prog.rsplit('/').next() != Some("modprobe") {
        return Vec::new();
    }
    let (mut all, mut remove, mut options_done) = (false, false, false);
    let mut names = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg.is_empty() {
            continue;
        }
        if options_done || !arg.starts_with('-') || arg == "-" {
            names.push(arg.clone());
        } else if arg == "--" {
            options_done = true;
        } else if let Some(long) = arg.strip_prefix("--") {
            match long {
                "all" => all = true,
                "remove" => remove = true,
                "config" | "dirname" | "set-version" => {
                    args.next();
                }
                _ => {}
            }
        } else {
            let flags = &arg[1..];
            // -C, -d and -S take a value, attached or as the next argument.
            if let Some(at) = flags.find(['C', 'd', 'S']) {
                if at + 1 == flags.len() {
                    args.next();
                }
            }
            let flags = flags.split(['C', 'd', 'S']).next().unwrap_or("");
            all |= flags.contains('a');
            remove |= flags.contains('r');
        }
    }
    if remove {
        return Vec::new();
    }
    if !all {
        names.truncate(1);
    }
    names
}

fn unrequested_reason(helper: &Process, module: &str, alias: Option<&str>) -> String {
    let parent = helper.parent_comm.as_deref().unwrap_or("a kernel thread");
    let seen = match alias {
        Some(a) => {
            format!("its command line names alias {a}, and no pending request for {a} that needs {module} was seen")
        }
        None => format!("no pending request for an alias that needs {module} was seen"),
    };
    format!(
        "a kernel modprobe helper (child of {parent}) loaded {module}, but {seen}: events were lost, \
         or the request came before tracing began"
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

/// The errno name of a positive error number, e.g. "EPERM"; "errno N" otherwise.
pub fn errno_name(errno: i64) -> String {
    let name = match errno {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        4 => "EINTR",
        5 => "EIO",
        6 => "ENXIO",
        7 => "E2BIG",
        8 => "ENOEXEC",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        19 => "ENODEV",
        21 => "EISDIR",
        22 => "EINVAL",
        26 => "ETXTBSY",
        27 => "EFBIG",
        28 => "ENOSPC",
        30 => "EROFS",
        34 => "ERANGE",
        38 => "ENOSYS",
        61 => "ENODATA",
        62 => "ETIME",
        65 => "ENOPKG",
        74 => "EBADMSG",
        75 => "EOVERFLOW",
        95 => "EOPNOTSUPP",
        110 => "ETIMEDOUT",
        126 => "ENOKEY",
        127 => "EKEYEXPIRED",
        128 => "EKEYREVOKED",
        129 => "EKEYREJECTED",
        // Kernel-internal codes the syscall exit can still show.
        512 => "ERESTARTSYS",
        513 => "ERESTARTNOINTR",
        514 => "ERESTARTNOHAND",
        516 => "ERESTART_RESTARTBLOCK",
        _ => return format!("errno {errno}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Parent;
    use crate::modindex::StaticIndex;

    const SEC: u64 = 1_000_000_000;
    const EXAMPLE_CG: u64 = 500;
    const SHELL_CG: u64 = 600;

    /// Units by cgroup id, command lines by tgid; everything else unknown.
    #[derive(Default)]
    struct Fake {
        cmdlines: HashMap<u32, Vec<String>>,
    }

    impl Describe for Fake {
        fn process(&mut self, t: &Task) -> Process {
            let (cgroup, unit) = match t.cgroup_id {
                EXAMPLE_CG => (Some("/system.slice/example.service"), Some("example.service")),
                SHELL_CG => (Some("/user.slice/user-1000.slice/session-2.scope"), Some("session-2.scope")),
                _ => (None, None),
            };
            Process {
                cmdline: self.cmdlines.get(&t.tgid).cloned(),
                cgroup: cgroup.map(String::from),
                unit: unit.map(String::from),
                ..Process::from_task(t)
            }
        }

        fn parent(&mut self, t: &Task) -> Option<Parent> {
            Some(Parent { pid: t.ppid?, comm: t.parent_comm.clone(), exe: None, unit: Some("session-2.scope".into()) })
        }

        fn symbol(&mut self, addr: u64) -> String {
            format!("sym@{addr:#x}")
        }

        fn wall_time(&mut self, ts_ns: u64) -> String {
            format!("t{ts_ns}")
        }
    }

    fn index() -> StaticIndex {
        StaticIndex::default()
            .alias("net-pf-5", "appletalk")
            .module("appletalk", &["psnap", "llc"])
            .module("psnap", &["llc"])
            .module("llc", &[])
            .alias("fs-binfmt_misc", "binfmt_misc")
            .module("vfat", &["fat"])
            .module("fat", &[])
            .module("snd_hda_intel", &[])
    }

    fn task(pid: u32, comm: &str, ppid: u32, parent_comm: &str, cgroup_id: u64) -> Task {
        Task {
            pid,
            tgid: pid,
            ppid: Some(ppid),
            uid: 0,
            cgroup_id,
            comm: comm.into(),
            parent_comm: Some(parent_comm.into()),
            args: None,
            cgroup_name: None,
        }
    }

    fn app(pid: u32) -> Task {
        Task { uid: 1000, ..task(pid, "python3", 1, "systemd", EXAMPLE_CG) }
    }

    fn helper(pid: u32) -> Task {
        task(pid, "modprobe", 77, "kworker/u4:1", 1)
    }

    fn request(ts: u64, t: Task, alias: &str) -> Event {
        Event {
            ts_ns: ts,
            task: t,
            body: Body::Request { alias: alias.into(), wait: true, call_site: 0xffff_ffff_8123_0000, repeats: 0 },
        }
    }

    fn loaded(ts: u64, t: Task, module: &str) -> Event {
        Event { ts_ns: ts, task: t, body: Body::Loaded { module: module.into(), taints: 0 } }
    }

    fn load(ts: u64, t: Task, ret: i64) -> Event {
        Event {
            ts_ns: ts,
            task: t,
            body: Body::Load {
                syscall: Syscall::FinitModule,
                fd: Some(3),
                flags: 0,
                image_len: 0,
                params: String::new(),
                ret,
                repeats: 0,
            },
        }
    }

    fn run(c: &mut Correlator<StaticIndex>, d: &mut Fake, events: &[Event]) -> Vec<Record> {
        events.iter().map(|e| c.handle(e.clone(), d)).collect()
    }

    /// The cause of a `loaded` or `load` record.
    fn cause(r: &Record) -> &Cause {
        match &r.what {
            What::Loaded { cause, .. } => cause,
            What::Load { cause: Some(cause), .. } => cause,
            other => panic!("no cause in {other:?}"),
        }
    }

    /// (alias, requester pid, target, needed_by) of a request cause.
    fn by_request(r: &Record) -> (&str, u32, Option<&str>, Vec<&str>) {
        match cause(r) {
            Cause::Request { alias, requester, module, needed_by, .. } => {
                (alias.as_str(), requester.pid, module.as_deref(), needed_by.iter().map(String::as_str).collect())
            }
            other => panic!("not a request: {other:?}"),
        }
    }

    fn appletalk_autoload(t0: u64, requester: Task, h: u32) -> Vec<Event> {
        vec![
            request(t0, requester, "net-pf-5"),
            loaded(t0 + 10, helper(h), "llc"),
            load(t0 + 11, helper(h), 0),
            loaded(t0 + 20, helper(h), "psnap"),
            load(t0 + 21, helper(h), 0),
            loaded(t0 + 30, helper(h), "appletalk"),
            load(t0 + 31, helper(h), 0),
        ]
    }

    #[test]
    fn appletalk_autoload_is_caused_by_the_requester() {
        let mut c = Correlator::new(index());
        let mut d = Fake::default();
        let recs = run(&mut c, &mut d, &appletalk_autoload(SEC, app(100), 900));

        match &recs[0].what {
            What::Request { alias, call_site, resolves_to, .. } => {
                assert_eq!(alias, "net-pf-5");
                assert_eq!(call_site, "sym@0xffffffff81230000");
                assert_eq!(resolves_to, &["appletalk"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(recs[0].process.unit.as_deref(), Some("example.service"));
        assert_eq!(recs[0].time, format!("t{SEC}"));

        assert_eq!(by_request(&recs[1]), ("net-pf-5", 100, Some("appletalk"), vec!["psnap", "appletalk"]));
        assert_eq!(by_request(&recs[3]), ("net-pf-5", 100, Some("appletalk"), vec!["appletalk"]));
        assert_eq!(by_request(&recs[5]), ("net-pf-5", 100, Some("appletalk"), vec![]));
        for r in &recs[1..] {
            let Cause::Request { requester, also_requested_by, .. } = cause(r) else { panic!() };
            assert_eq!(requester.unit.as_deref(), Some("example.service"));
            assert!(also_requested_by.is_empty());
        }
        // Each result carries the module its call loaded.
        let modules: Vec<_> = [&recs[2], &recs[4], &recs[6]]
            .iter()
            .map(|r| match &r.what {
                What::Load { module, error, .. } => {
                    assert_eq!(error, &None);
                    module.clone().unwrap()
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(modules, ["llc", "psnap", "appletalk"]);
        assert_eq!(c.pending(), 0);
        assert!(c.bound.is_empty() && c.requests.is_empty());
    }

    #[test]
    fn binfmt_misc_request_from_pid1() {
        let mut c = Correlator::new(index());
        let mut d = Fake::default();
        let pid1 = task(1, "systemd", 0, "swapper/0", 2);
        let nowait_helper = task(300, "modprobe", 2, "kthreadd", 1);
        let recs = run(
            &mut c,
            &mut d,
            &[
                request(SEC, pid1, "fs-binfmt_misc"),
                loaded(SEC + 5, nowait_helper.clone(), "binfmt_misc"),
                load(SEC + 6, nowait_helper, 0),
            ],
        );
        assert_eq!(by_request(&recs[1]), ("fs-binfmt_misc", 1, Some("binfmt_misc"), vec![]));
        assert_eq!(by_request(&recs[2]), ("fs-binfmt_misc", 1, Some("binfmt_misc"), vec![]));
    }

    #[test]
    fn explicit_modprobe_vfat_from_a_shell() {
        let mut c = Correlator::new(index());
        let mut d = Fake::default();
        d.cmdlines.insert(400, vec!["modprobe".into(), "-v".into(), "vfat".into()]);
        let mp = task(400, "modprobe", 350, "bash", SHELL_CG);
        let recs = run(
            &mut c,
            &mut d,
            &[
                loaded(SEC, mp.clone(), "fat"),
                load(SEC + 1, mp.clone(), 0),
                loaded(SEC + 2, mp.clone(), "vfat"),
                load(SEC + 3, mp, 0),
            ],
        );
        for (rec, needed) in
            [(&recs[0], vec!["vfat"]), (&recs[1], vec!["vfat"]), (&recs[2], vec![]), (&recs[3], vec![])]
        {
            match cause(rec) {
                Cause::Explicit { loader, invoked_by, needed_by } => {
                    assert_eq!(loader.pid, 400);
                    assert_eq!(loader.unit.as_deref(), Some("session-2.scope"));
                    let parent = invoked_by.as_ref().unwrap();
                    assert_eq!((parent.pid, parent.comm.as_deref()), (350, Some("bash")));
                    assert_eq!(needed_by, &needed);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn udev_loads_are_udev() {
        let mut c = Correlator::new(index());
        let mut d = Fake::default();
        let worker = task(500, "(udev-worker)", 450, "systemd-udevd", 3);
        let recs = run(&mut c, &mut d, &[loaded(SEC, worker.clone(), "snd_hda_intel"), load(SEC + 1, worker, 0)]);
        for r in &recs {
            assert!(matches!(cause(r), Cause::Udev { loader, .. } if loader.pid == 500), "{r:?}");
        }
        let udevd = task(450, "systemd-udevd", 1, "systemd", 3);
        assert!(matches!(cause(&c.handle(loaded(SEC + 2, udevd, "fat"), &mut d)), Cause::Udev { .. }));
    }

    fn uevent(action: &str, devpath: &str, modalias: &str) -> Uevent {
        Uevent {
            action: action.into(),
            devpath: devpath.into(),
            subsystem: Some("pci".into()),
            modalias: Some(modalias.into()),
        }
    }

    fn udev_device(rec: &Record) -> Option<&Device> {
        match cause(rec) {
            Cause::Udev { device, .. } => device.as_ref(),
            other => panic!("not udev: {other:?}"),
        }
    }

    #[test]
    fn a_udev_load_names_the_device_whose_modalias_needs_the_module() {
        let idx = index().alias("pci:v00008086d00002668*", "snd_hda_intel").module("snd_hda_intel", &["snd_hda_codec"]);
        let mut c = Correlator::new(idx);
        let mut d = Fake::default();
        c.device_event(SEC, uevent("add", "/devices/pci0000:00/0000:00:1b.0", "pci:v00008086d00002668*"));
        c.device_event(SEC, uevent("add", "/devices/pci0000:00/0000:00:02.0", "pci:v00001234d00001111*"));
        c.device_event(SEC, uevent("remove", "/devices/pci0000:00/0000:00:05.0", "pci:v00008086d00002668*"));
        let worker = task(500, "(udev-worker)", 450, "systemd-udevd", 3);
        let dep = c.handle(loaded(SEC + 1, worker.clone(), "snd_hda_codec"), &mut d);
        let top = c.handle(loaded(SEC + 2, worker.clone(), "snd_hda_intel"), &mut d);
        for rec in [&dep, &top] {
            let dev = udev_device(rec).expect("device known");
            assert_eq!(dev.devpath, "/devices/pci0000:00/0000:00:1b.0");
        }
        // A module no recent device needs gets no device, and old uevents expire.
        assert_eq!(udev_device(&c.handle(loaded(SEC + 3, worker.clone(), "fat"), &mut d)), None);
        let late = c.handle(loaded(SEC + DEVICE_TTL_NS + 10, worker, "snd_hda_intel"), &mut d);
        assert_eq!(udev_device(&late), None);
    }

    #[test]
    fn two_different_devices_needing_the_module_name_none() {
        let idx = index().alias("usb:v1*", "usbhid").alias("usb:v2*", "usbhid");
        let mut c = Correlator::new(idx);
        let mut d = Fake::default();
        c.device_event(SEC, uevent("add", "/devices/usb1/1-1", "usb:v1*"));
        c.device_event(SEC, uevent("add", "/devices/usb1/1-2", "usb:v2*"));
        let worker = task(500, "(udev-worker)", 450, "systemd-udevd", 3);
        assert_eq!(udev_device(&c.handle(loaded(SEC + 1, worker, "usbhid"), &mut d)), None);
    }

    #[test]
    fn helper_load_without_a_request_is_unknown() {
        let mut c = Correlator::new(index());
        let mut d = Fake::default();
        let recs = run(&mut c, &mut d, &[loaded(SEC, helper(900), "appletalk"), load(SEC + 1, helper(900), 0)]);
        for r in &recs {
            let Cause::Unknown { reason } = cause(r) else { panic!("{r:?}") };
            assert!(reason.contains("events were lost") && reason.contains("before tracing began"), "{reason}");
        }
        let Cause::Unknown { reason } = cause(&recs[0]) else { panic!() };
        assert!(reason.contains("appletalk"), "{reason}");
    }

    #[test]
    fn two_requesters_of_one_alias_earliest_wins_other_is_listed() {
        let mut c = Correlator::new(index());
        let mut d = Fake::default();
        let other = Task { pid: 200, tgid: 200, ..app(200) };
        let mut events = vec![request(SEC, app(100), "net-pf-5"), request(SEC + 1, other, "net-pf-5")];
        events.extend(appletalk_autoload(SEC + 2, app(100), 900).into_iter().skip(1));
        let recs = run(&mut c, &mut d, &events);
        for r in &recs[2..] {
            let Cause::Request { requester, also_requested_by, .. } = cause(r) else { panic!("{r:?}") };
            assert_eq!(requester.pid, 100);
            assert_eq!(also_requested_by.iter().map(|p| p.pid).collect::<Vec<_>>(), [200]);
        }
        // appletalk arrived: the second request is satisfied too, nothing waits.
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn a_helper_whose_command_line_names_the_alias_joins_that_request() {
        let mut c = Correlator::new(index().alias("net-pf-4", "ipx").module("ipx", &["psnap", "llc"]));
        let mut d = Fake::default();
        d.cmdlines.insert(900, vec!["/sbin/modprobe".into(), "-q".into(), "--".into(), "net-pf-4".into()]);
        let recs = run(
            &mut c,
            &mut d,
            &[
                request(SEC, app(100), "net-pf-5"),
                request(SEC + 1, app(101), "net-pf-4"),
                loaded(SEC + 2, helper(900), "llc"),
            ],
        );
        assert_eq!(by_request(&recs[2]), ("net-pf-4", 101, Some("ipx"), vec!["psnap", "ipx"]));
    }

    #[test]
    fn a_helper_for_an_alias_never_requested_is_unknown_even_if_another_request_fits() {
        let mut c = Correlator::new(index());
        let mut d = Fake::default();
        d.cmdlines.insert(900, vec!["modprobe".into(), "-q".into(), "--".into(), "net-pf-4".into()]);
        let recs = run(&mut c, &mut d, &[request(SEC, app(100), "net-pf-5"), loaded(SEC + 1, helper(900), "llc")]);
        let Cause::Unknown { reason } = cause(&recs[1]) else { panic!("{:?}", recs[1]) };
        assert!(reason.contains("net-pf-4"), "{reason}");
        assert_eq!(c.pending(), 1);
    }

    #[test]
    fn a_reused_tgid_that_is_no_helper_inherits_no_binding() {
        let mut c = Correlator::new(index());
        let mut d = Fake::default();
        let reused = task(900, "modprobe", 350, "bash", SHELL_CG);
        let recs = run(
            &mut c,
            &mut d,
            &[
                request(SEC, app(100), "net-pf-5"),
                loaded(SEC + 1, helper(900), "llc"),
                loaded(SEC + 2, reused, "psnap"),
            ],
        );
        assert_eq!(by_request(&recs[1]).1, 100);
        assert!(matches!(cause(&recs[2]), Cause::Explicit { .. }), "{:?}", recs[2]);
    }

    #[test]
    fn an_expired_request_does_not_match() {
        let mut c = Correlator::new(index());
        let mut d = Fake::default();
        let recs = run(
            &mut c,
            &mut d,
            &[request(SEC, app(100), "net-pf-5"), loaded(SEC + REQUEST_TTL_NS + 1, helper(900), "llc")],
        );
        assert!(matches!(cause(&recs[1]), Cause::Unknown { .. }));
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn a_request_that_resolves_to_nothing_keeps_nothing_pending() {
        let mut c = Correlator::new(index());
        let mut d = Fake::default();
        let rec = c.handle(request(SEC, app(100), "net-pf-38"), &mut d);
        assert!(matches!(&rec.what, What::Request { resolves_to, .. } if resolves_to.is_empty()));
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn repeated_request_counts_once() {
        let mut c = Correlator::new(index());
        let mut d = Fake::default();
        let mut ev = request(SEC, app(100), "net-pf-5");
        if let Body::Request { repeats, .. } = &mut ev.body {
            *repeats = 4;
        }
        let rec = c.handle(ev, &mut d);
        assert!(matches!(rec.what, What::Request { repeats: 4, .. }));
        assert_eq!(c.pending(), 1);
    }

    #[test]
    fn a_request_flood_is_bounded_and_the_newest_request_still_joins() {
        let mut c = Correlator::new(index());
        let mut d = Fake::default();
        for i in 0..(MAX_PENDING as u32 + 10) {
            c.handle(request(SEC + u64::from(i), app(10_000 + i), "net-pf-5"), &mut d);
        }
        assert_eq!(c.pending(), MAX_PENDING);
        assert_eq!(c.evicted(), 10);
        // The last requester is still waiting; the earliest kept is the 11th.
        let rec = c.handle(loaded(2 * SEC, helper(900), "appletalk"), &mut d);
        let (alias, requester, _, _) = by_request(&rec);
        assert_eq!((alias, requester), ("net-pf-5", 10_010));
    }

    #[test]
    fn failed_finit_module_with_eperm() {
        let mut c = Correlator::new(index());
        let mut d = Fake::default();
        d.cmdlines.insert(400, vec!["modprobe".into(), "vfat".into()]);
        let rec = c.handle(load(SEC, task(400, "modprobe", 350, "bash", SHELL_CG), -1), &mut d);
        match &rec.what {
            What::Load { ret, error, module, cause: Some(Cause::Explicit { needed_by, .. }), .. } => {
                assert_eq!((*ret, error.as_deref(), module), (-1, Some("EPERM"), &None));
                assert!(needed_by.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn failed_helper_load_uses_only_its_binding() {
        let mut c = Correlator::new(index());
        let mut d = Fake::default();
        let recs = run(
            &mut c,
            &mut d,
            &[
                request(SEC, app(100), "net-pf-5"),
                loaded(SEC + 1, helper(900), "llc"),
                load(SEC + 2, helper(900), 0),
                load(SEC + 3, helper(900), -129),
                load(SEC + 4, helper(901), -129),
            ],
        );
        match &recs[3].what {
            What::Load { error, module, .. } => assert_eq!((error.as_deref(), module), (Some("EKEYREJECTED"), &None)),
            other => panic!("{other:?}"),
        }
        assert_eq!(by_request(&recs[3]), ("net-pf-5", 100, Some("appletalk"), vec![]));
        assert!(matches!(cause(&recs[4]), Cause::Unknown { .. }));
    }

    #[test]
    fn load_after_loaded_carries_the_module_and_interleaving_is_kept_apart() {
        let mut c = Correlator::new(index());
        let mut d = Fake::default();
        let a = task(400, "modprobe", 350, "bash", SHELL_CG);
        let b = task(410, "insmod", 350, "bash", SHELL_CG);
        let recs = run(
            &mut c,
            &mut d,
            &[
                loaded(SEC, a.clone(), "fat"),
                loaded(SEC + 1, b.clone(), "llc"),
                load(SEC + 2, a.clone(), 0),
                load(SEC + 3, b.clone(), 0),
                load(SEC + 4, a, 0),
                loaded(SEC + 5, b.clone(), "psnap"),
                load(SEC + 6, b, -19),
            ],
        );
        let module = |r: &Record| match &r.what {
            What::Load { module, error, .. } => (module.clone(), error.clone()),
            other => panic!("{other:?}"),
        };
        assert_eq!(module(&recs[2]), (Some("fat".into()), None));
        assert_eq!(module(&recs[3]), (Some("llc".into()), None));
        assert_eq!(module(&recs[4]), (None, None));
        // Linked, then its init failed (ENODEV): the module is named with the error.
        assert_eq!(module(&recs[6]), (Some("psnap".into()), Some("ENODEV".into())));
    }

    #[test]
    fn interleaved_helpers_of_two_requests_stay_apart() {
        let mut c = Correlator::new(index());
        let mut d = Fake::default();
        let other = Task { cgroup_id: 9, ..app(200) };
        let recs = run(
            &mut c,
            &mut d,
            &[
                request(SEC, app(100), "net-pf-5"),
                request(SEC + 1, other, "fs-binfmt_misc"),
                loaded(SEC + 2, helper(901), "binfmt_misc"),
                loaded(SEC + 3, helper(900), "llc"),
                load(SEC + 4, helper(901), 0),
                load(SEC + 5, helper(900), 0),
                loaded(SEC + 6, helper(900), "psnap"),
            ],
        );
        assert_eq!(by_request(&recs[2]).0, "fs-binfmt_misc");
        assert_eq!(by_request(&recs[3]).0, "net-pf-5");
        assert_eq!(by_request(&recs[4]), ("fs-binfmt_misc", 200, Some("binfmt_misc"), vec![]));
        assert_eq!(by_request(&recs[5]), ("net-pf-5", 100, Some("appletalk"), vec!["psnap", "appletalk"]));
        assert_eq!(by_request(&recs[6]).1, 100);
    }

    #[test]
    fn unloaded_is_plain_and_records_serialize() {
        let mut c = Correlator::new(index());
        let mut d = Fake::default();
        let rec =
            c.handle(Event { ts_ns: SEC, task: helper(5), body: Body::Unloaded { module: "llc".into() } }, &mut d);
        assert_eq!(rec.what, What::Unloaded { module: "llc".into() });
        let json = serde_json::to_value(&rec).unwrap();
        assert_eq!(json["kind"], "unloaded");
        assert_eq!(json["process"]["pid"], 5);
    }

    #[test]
    fn modprobe_command_lines() {
        let names = |args: &[&str]| modprobe_names(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(names(&["modprobe", "-q", "--", "net-pf-5"]), ["net-pf-5"]);
        assert_eq!(names(&["/sbin/modprobe", "-v", "vfat", "debug=1"]), ["vfat"]);
        assert_eq!(names(&["modprobe", "-C", "/etc/x.conf", "-a", "fat", "vfat"]), ["fat", "vfat"]);
        assert_eq!(names(&["modprobe", "-qa", "--dirname", "/x", "fat", "vfat"]), ["fat", "vfat"]);
        assert_eq!(names(&["modprobe", "-S6.1.0", "vfat"]), ["vfat"]);
        assert!(names(&["modprobe", "-r", "vfat"]).is_empty());
        assert!(names(&["insmod", "vfat.ko"]).is_empty());
        assert!(names(&[]).is_empty());
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(1), "EPERM");
        assert_eq!(errno_name(17), "EEXIST");
        assert_eq!(errno_name(129), "EKEYREJECTED");
        assert_eq!(errno_name(123), "errno 123");
    }

    #[test]
    fn helper_and_udev_detection() {
        assert!(is_helper(&helper(1)));
        assert!(is_helper(&task(1, "modprobe", 2, "kthreadd", 0)));
        assert!(is_helper(&Task { parent_comm: None, ..task(1, "modprobe", 2, "", 0) }));
        assert!(!is_helper(&task(1, "modprobe", 350, "bash", 0)));
        assert!(is_udev(&task(1, "systemd-udevd", 1, "systemd", 0)));
        assert!(!is_udev(&task(1, "modprobe", 1, "systemd", 0)));
    }
}
