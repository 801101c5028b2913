//! The profile file's data model: what `modtrace learn` writes and `report`,
//! `diff` and the generators read. docs/profile.md documents every field.
//!
//! Lists that are looked up by a key (modules by name, requests by alias) are kept
//! sorted by that key, so that the same observations always give the same file.
//! Every object a person may extend by hand keeps the fields it does not know in
//! `extra`, so they survive a merge and a rewrite.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::trace::scope::Scope;

/// The `schema` value of the profile format this modtrace writes.
pub const SCHEMA: &str = "modtrace-profile/2";
/// The format before requesters and loaders carried uid and scope: read, and
/// migrated on reading (store::load), never written.
pub const SCHEMA_V1: &str = "modtrace-profile/1";

type Extra = Map<String, Value>;

/// Everything learned about one machine's module loads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub schema: String,
    /// Kernel release (uname -r) of the latest learning session.
    pub kernel: String,
    /// Host name of the latest learning session; a fleet's "fleet of N hosts".
    pub host: String,
    /// /etc/machine-id of the learning host, where it has one: with `host`, what
    /// tells one host from another when profiles are merged (fleet.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// A fleet profile's hosts (`modtrace merge`), by id; empty in a host's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<Host>,
    /// Distinct boot ids (/proc/sys/kernel/random/boot_id) that learning saw, sorted.
    #[serde(default)]
    pub boots: Vec<String>,
    #[serde(default)]
    pub sessions: Vec<Session>,
    /// One entry per module seen, sorted by name.
    #[serde(default)]
    pub modules: Vec<Module>,
    /// One entry per alias the kernel requested, sorted by alias.
    #[serde(default)]
    pub requests: Vec<AliasRequest>,
    /// Load attempts that failed, identical ones folded.
    #[serde(default)]
    pub failed: Vec<Failure>,
    /// Failed calls of untrusted processes beyond the entries `failed` keeps
    /// for them (bound.rs): counted, not listed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_folded: u64,
    /// Aliases that resolved to no module, requested by untrusted processes:
    /// one entry per requester with a count and the first few names, instead
    /// of one `requests` entry per name (bound.rs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folded_requests: Vec<FoldedRequests>,
    /// An admin's word on a module or alias (modtrace allow/deny/review),
    /// sorted by name; kept through merges and relearning.
    #[serde(default)]
    pub decisions: Vec<Decision>,
    /// Set when the file was read as an older schema and migrated: its
    /// requesters and loaders have no uid, so no trigger of theirs is trusted
    /// by that alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrated_from: Option<String>,
    /// The Debian package of each unit and executable the profile names, read
    /// from dpkg's database on the learning host (packages.rs).
    #[serde(default, skip_serializing_if = "Packages::is_empty")]
    pub packages: Packages,
    #[serde(flatten)]
    pub extra: Extra,
    /// The last `loaded` record of each loader pid until its load call returns:
    /// module_load fires before the module's init, so when the call then fails
    /// the module was freed again and that observation is taken back. Never
    /// written to the file.
    #[serde(skip)]
    pub in_flight: std::collections::BTreeMap<u32, crate::trace::event::Record>,
}

/// One learning run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// RFC 3339, UTC.
    pub start: String,
    pub end: String,
    pub duration_secs: u64,
    pub kernel: String,
    #[serde(default)]
    pub boot_id: Option<String>,
    /// "duration", "SIGINT" or "SIGTERM".
    #[serde(default)]
    pub ended_by: Option<String>,
    /// Records observed.
    #[serde(default)]
    pub records: u64,
    /// Kernel events dropped because a ring buffer was full. Anything above 0
    /// means the profile may miss something.
    #[serde(default)]
    pub lost_events: u64,
    /// The lost events by kind (absent in sessions from before modtrace told
    /// them apart): only lost requests and loads can hide a module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drops: Option<crate::trace::drops::Drops>,
    /// Set when the session took over the probes the initramfs started (it
    /// learned from the initramfs on): how many events they had seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_initramfs: Option<u64>,
    /// In a fleet profile: the id of the host that learned it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One host of a fleet profile: who it is and what its learning covered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// Its name in the fleet's `hosts` lists: the host name, with the first 8
    /// characters of its machine id after a `/` when two hosts share a name.
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// Kernel releases its sessions ran, sorted.
    #[serde(default)]
    pub kernels: Vec<String>,
    #[serde(default)]
    pub boots: Vec<String>,
    /// Its learning sessions (the fleet's `sessions` with this `host`).
    #[serde(default)]
    pub sessions: usize,
    /// The host's own decisions: an allow here counts for this host only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<Decision>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Debian packages of units and executables (packages.rs), both maps sorted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Packages {
    /// Unit name to the package that ships its unit file.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub units: std::collections::BTreeMap<String, String>,
    /// Executable path, as the profile names it, to its package.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub executables: std::collections::BTreeMap<String, String>,
}

impl Packages {
    pub fn is_empty(&self) -> bool {
        self.units.is_empty() && self.executables.is_empty()
    }
}

/// One kernel module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Module {
    pub name: String,
    /// No other module in this profile depends on it (per modules.dep): the
    /// modules to list; the others follow as their dependencies.
    pub top_level: bool,
    /// Direct dependencies per the kernel's modules.dep.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Modules of this profile that need it, directly or through others.
    #[serde(default)]
    pub needed_by: Vec<String>,
    /// Times it arrived: loads observed plus learning sessions that found it
    /// already loaded; the sum of its triggers' counts.
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
    /// Kernel taint letters the module carries (O out-of-tree, E unsigned, ...).
    #[serde(default)]
    pub taints: Vec<String>,
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    /// In a fleet profile: the ids of the hosts that saw it, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// The kernel requested an alias (request_module) and its modprobe helper loaded it.
    Request,
    /// A process loaded it itself (modprobe, insmod, systemd-modules-load).
    Explicit,
    /// systemd-udevd loaded it for a device.
    Udev,
    /// Already loaded when learning started.
    Preloaded,
    /// Loaded by a kernel helper that no observed request explains.
    Unknown,
}

impl TriggerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Request => "request",
            TriggerKind::Explicit => "explicit",
            TriggerKind::Udev => "udev",
            TriggerKind::Preloaded => "preloaded",
            TriggerKind::Unknown => "unknown",
        }
    }
}

/// Why a module arrived; identical causes are one trigger with a count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    pub kind: TriggerKind,
    /// The alias the kernel requested (kind "request").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Set when the module was loaded only as a dependency: the module whose
    /// load pulled it in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needed_by: Option<String>,
    /// Who asked: the process whose request_module call it was (request), or the
    /// loader's parent (explicit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<Requester>,
    /// Other processes whose pending requests the same load satisfied: when set,
    /// `requester` is the earliest of several.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_requested_by: Vec<Requester>,
    /// A kernel thread's request that more than one waiting process could have
    /// caused (trace/kthread.rs): the others besides `requester`. Trusted only
    /// when every one of them is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Requester>,
    /// The process that called init_module/finit_module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loader: Option<Loader>,
    /// The device a udev load was for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
    /// The unit systemd ran on the requester's behalf, through which the load
    /// came: the mount unit of an automount (the requester is the process that
    /// touched the path), or modprobe@NAME.service (the requesters are the
    /// units that want it), see onbehalf.rs; or the kernel thread that asked
    /// for the requester, e.g. "cryptomgr_probe (kernel thread)", see
    /// trace/kthread.rs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// "initramfs": the load happened in the initramfs, before the main
    /// system's init, and was seen by the probes the initramfs started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Preloaded: the source that explains it (modules-load.d, the initramfs,
    /// PID 1, a trusted module's dependency, a present device), or "before
    /// learning": cause unknown. Unknown: why no cause could be told.
    /// Request by a kernel thread joined to nobody: why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub count: u64,
    /// Untrusted processes beyond those `also_requested_by` keeps (bound.rs).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub also_requested_folded: u64,
    /// Untrusted candidates beyond those `candidates` keeps (bound.rs).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub candidates_folded: u64,
    /// In a fleet profile: the ids of the hosts that saw this cause, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A process that asked for a module. `pid` and `cgroup` are the latest seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Requester {
    pub comm: String,
    #[serde(default)]
    pub exe: Option<String>,
    #[serde(default)]
    pub pid: Option<u32>,
    /// Real and effective uid, audit login uid; None when not known (a
    /// migrated /1 profile, or a kernel that did not say).
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub euid: Option<u32>,
    #[serde(default)]
    pub loginuid: Option<u32>,
    /// Whether it is a kernel thread (which acts for someone else); None when
    /// not known (a profile from before modtrace recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_thread: Option<bool>,
    #[serde(default)]
    pub unit: Option<String>,
    /// Whose unit `unit` is (the host's, a user's, a container's).
    #[serde(default)]
    pub scope: Scope,
    #[serde(default)]
    pub cgroup: Option<String>,
    /// Inode numbers of its pid and mount namespaces (the latest seen), where
    /// the kernel told them; a pid namespace not init's made `scope` a container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_ns: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mnt_ns: Option<u32>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A process that loaded a module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Loader {
    pub comm: String,
    #[serde(default)]
    pub exe: Option<String>,
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub euid: Option<u32>,
    #[serde(default)]
    pub loginuid: Option<u32>,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub scope: Scope,
    #[serde(default)]
    pub cgroup: Option<String>,
    /// Inode numbers of its pid and mount namespaces (the latest seen), where
    /// the kernel told them; a pid namespace not init's made `scope` a container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_ns: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mnt_ns: Option<u32>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// What an admin decided about a module or an alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Accepted: listed even though who asked is not trusted.
    Allow,
    /// Never listed; goes into generate --deny's modprobe.d file.
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionTarget {
    Module,
    Alias,
}

/// One decision; the latest for a name replaces earlier ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// A module name (normalised, `_` for `-`) or an alias as the kernel requested it.
    pub name: String,
    pub target: DecisionTarget,
    pub verdict: Verdict,
    /// RFC 3339, when it was decided.
    pub time: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A device (from its uevent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    #[serde(default)]
    pub modalias: Option<String>,
    #[serde(default)]
    pub devpath: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// An alias the kernel requested (request_module).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasRequest {
    pub alias: String,
    /// Modules the alias resolved to; empty: no module provides it, the request
    /// failed (and will keep failing after a lock, which is what you want to know).
    #[serde(default)]
    pub resolves_to: Vec<String>,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
    #[serde(default)]
    pub requesters: Vec<CountedRequester>,
    /// Untrusted requesters beyond those `requesters` keeps (bound.rs): their
    /// requests are in `count`, they are not listed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub requesters_folded: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Requests of one untrusted process for aliases that no module provides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldedRequests {
    /// Who asked; absent on the one entry that gathers every requester beyond
    /// the bound on entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<Requester>,
    /// Requests, repeats included.
    pub count: u64,
    /// The first distinct aliases, at most bound::FOLDED_NAMES_KEPT.
    #[serde(default)]
    pub aliases: Vec<String>,
    pub first_seen: String,
    pub last_seen: String,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountedRequester {
    #[serde(flatten)]
    pub who: Requester,
    pub count: u64,
}

/// Failed init_module/finit_module calls, identical ones folded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The module, when known (from the request that started the load).
    #[serde(default)]
    pub module: Option<String>,
    /// The alias whose request started the load, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// "finit_module" or "init_module".
    pub syscall: String,
    /// The return value, -errno.
    pub ret: i64,
    /// Its name, e.g. "EPERM" (what every load gets after kernel.modules_disabled=1).
    #[serde(default)]
    pub error: Option<String>,
    pub loader: Loader,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<Requester>,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Profile {
    /// An empty profile for this kernel and host.
    pub fn new(kernel: &str, host: &str) -> Profile {
        Profile {
            schema: SCHEMA.to_string(),
            kernel: kernel.to_string(),
            host: host.to_string(),
            machine_id: None,
            hosts: Vec::new(),
            boots: Vec::new(),
            sessions: Vec::new(),
            modules: Vec::new(),
            requests: Vec::new(),
            failed: Vec::new(),
            failed_folded: 0,
            folded_requests: Vec::new(),
            decisions: Vec::new(),
            migrated_from: None,
            packages: Packages::default(),
            extra: Extra::new(),
            in_flight: Default::default(),
        }
    }

    pub fn module(&self, name: &str) -> Option<&Module> {
        let name = crate::trace::modindex::normalize(name);
        self.modules.binary_search_by(|m| m.name.as_str().cmp(&name)).ok().map(|i| &self.modules[i])
    }

    /// A fleet profile (`modtrace merge`): the evidence of several hosts.
    pub fn is_fleet(&self) -> bool {
        !self.hosts.is_empty()
    }

    /// Total kernel events lost over all sessions.
    pub fn lost_events(&self) -> u64 {
        self.sessions.iter().map(|s| s.lost_events).sum()
    }

    /// Pretty JSON with a final newline: the file's contents.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a profile always serializes");
        text.push('\n');
        text
    }
}

impl Module {
    pub fn new(name: &str, time: &str) -> Module {
        Module {
            name: name.to_string(),
            top_level: true,
            depends_on: Vec::new(),
            needed_by: Vec::new(),
            count: 0,
            first_seen: time.to_string(),
            last_seen: time.to_string(),
            taints: Vec::new(),
            triggers: Vec::new(),
            hosts: Vec::new(),
            extra: Extra::new(),
        }
    }
}

impl Requester {
    /// The same process for counting: command, executable, uids, unit and scope.
    pub fn same_as(&self, other: &Requester) -> bool {
        self.comm == other.comm
            && self.exe == other.exe
            && self.uid == other.uid
            && self.euid == other.euid
            && self.unit == other.unit
            && self.scope == other.scope
    }

    /// Takes what differs from one process to the next of the same kind (see
    /// `same_as`): the latest pid, cgroup and namespaces. Namespaces are not
    /// part of `same_as`: every new container would be another requester.
    pub fn keep_latest(&mut self, newer: Requester) {
        self.pid = newer.pid.or(self.pid);
        self.cgroup = newer.cgroup.or(self.cgroup.take());
        self.pid_ns = newer.pid_ns.or(self.pid_ns);
        self.mnt_ns = newer.mnt_ns.or(self.mnt_ns);
        // Once seen as a kernel thread, always: it can only lower trust.
        self.kernel_thread = match (self.kernel_thread, newer.kernel_thread) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (old, new) => new.or(old),
        };
    }
}

impl Loader {
    pub fn same_as(&self, other: &Loader) -> bool {
        self.comm == other.comm
            && self.exe == other.exe
            && self.uid == other.uid
            && self.euid == other.euid
            && self.unit == other.unit
            && self.scope == other.scope
    }
}

impl Profile {
    /// The decision about `name` (a module, normalised, or an alias).
    pub fn decision(&self, name: &str) -> Option<&Decision> {
        self.decisions.iter().find(|d| d.name == name)
    }

    /// Records a decision, replacing an earlier one for the same name.
    pub fn decide(&mut self, decision: Decision) {
        match self.decisions.binary_search_by(|d| d.name.as_str().cmp(&decision.name)) {
            Ok(i) => self.decisions[i] = decision,
            Err(i) => self.decisions.insert(i, decision),
        }
    }
}

impl Trigger {
    pub fn new(kind: TriggerKind) -> Trigger {
        Trigger {
            kind,
            alias: None,
            needed_by: None,
            requester: None,
            also_requested_by: Vec::new(),
            candidates: Vec::new(),
            loader: None,
            device: None,
            via: None,
            stage: None,
            reason: None,
            count: 0,
            also_requested_folded: 0,
            candidates_folded: 0,
            hosts: Vec::new(),
            extra: Extra::new(),
        }
    }

    /// Two triggers are the same cause when kind, alias, the module that needed
    /// it, requester and loader (comm, exe, unit), device and reason agree; pids
    /// do not matter.
    pub fn same_cause(&self, other: &Trigger) -> bool {
        fn opt_eq<T>(a: &Option<T>, b: &Option<T>, eq: impl Fn(&T, &T) -> bool) -> bool {
            match (a, b) {
                (None, None) => true,
                (Some(a), Some(b)) => eq(a, b),
                _ => false,
            }
        }
        self.kind == other.kind
            && self.alias == other.alias
            && self.needed_by == other.needed_by
            && opt_eq(&self.requester, &other.requester, Requester::same_as)
            && opt_eq(&self.loader, &other.loader, Loader::same_as)
            && opt_eq(&self.device, &other.device, |a, b| a.modalias == b.modalias && a.devpath == b.devpath)
            && self.reason == other.reason
            && self.via == other.via
            && self.stage == other.stage
    }
}

impl Failure {
    pub fn same_failure(&self, other: &Failure) -> bool {
        self.module == other.module
            && self.alias == other.alias
            && self.syscall == other.syscall
            && self.ret == other.ret
            && self.loader.same_as(&other.loader)
            && match (&self.requester, &other.requester) {
                (None, None) => true,
                (Some(a), Some(b)) => a.same_as(b),
                _ => false,
            }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Kernel taint letters of a module's taint bitmask (kernel/panic.c taint_flags).
pub fn taint_letters(mask: u32) -> Vec<String> {
    const LETTERS: &[u8] = b"PFSRMBUDAWCIOELKXTN";
    LETTERS
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1u32 << bit) != 0)
        .map(|(_, c)| (*c as char).to_string())
        .collect()
}

/// Orders RFC 3339 times; falls back to comparing the text when one does not parse.
pub fn time_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    match (humantime::parse_rfc3339_weak(a), humantime::parse_rfc3339_weak(b)) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

pub fn earliest(a: &str, b: &str) -> String {
    if time_cmp(b, a).is_lt() {
        b.to_string()
    } else {
        a.to_string()
    }
}

pub fn latest(a: &str, b: &str) -> String {
    if time_cmp(b, a).is_gt() {
        b.to_string()
    } else {
        a.to_string()
    }
}
