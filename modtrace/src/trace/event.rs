//! Decoded events (what the kernel saw) and records (what modtrace concludes).
//!
//! `Event` is the decoder's output: plain facts from one probe. `Record` is the
//! correlator's output: an event with its process described and, for loads, the
//! cause that the join across the modprobe hand-off found.

use serde::Serialize;

use crate::trace::scope::{Namespaces, Scope};

/// The task that fired a probe, as the kernel saw it. Every Option is None when
/// the kernel could not tell (no BTF, another layout, lockdown): never a guess.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Task {
    pub pid: u32,
    pub tgid: u32,
    /// None when the parent could not be read (no BTF, or lockdown).
    pub ppid: Option<u32>,
    /// Real uid (the kernel's, as in the initial user namespace).
    pub uid: u32,
    /// Effective uid.
    pub euid: Option<u32>,
    /// Audit login uid; u32::MAX (4294967295) is the kernel's "not set" (no login
    /// session: boot services, the kernel's own helpers).
    pub loginuid: Option<u32>,
    /// Audit session id; u32::MAX is "not set".
    pub sessionid: Option<u32>,
    /// When the process started (CLOCK_MONOTONIC ns): with the tgid it names one
    /// process even after its pid is reused.
    pub start_time_ns: Option<u64>,
    /// The task is a kernel thread (PF_KTHREAD).
    pub is_kthread: Option<bool>,
    /// The task's parent is a kernel thread: the mark of the kernel's usermode
    /// helper (modprobe started for request_module).
    pub parent_is_kthread: Option<bool>,
    pub cgroup_id: u64,
    pub comm: String,
    pub parent_comm: Option<String>,
    /// argv as the kernel saw it at event time (the first ARGS_LEN bytes); None
    /// for kernel threads or when it could not be read.
    pub args: Option<Vec<String>>,
    /// The argv area was longer than ARGS_LEN: the last argument of `args` may
    /// be cut short and must not be read as a whole one.
    pub args_cut: bool,
    /// The name of the task's cgroup v2 directory as the kernel saw it at event
    /// time (e.g. fake-dm.service); None when this kernel's layout is unknown.
    pub cgroup_name: Option<String>,
    /// The task's whole cgroup v2 path as the kernel saw it at event time,
    /// rebuilt from the directory names up to the root (e.g.
    /// /user.slice/user-1000.slice/user@1000.service/app.slice/x.service).
    /// None when unknown, or when it was deeper than the kernel side keeps
    /// (CGROUP_DEPTH) or a name was cut: a partial path never passes for a whole.
    pub cgroup_path: Option<String>,
    /// The task's pid and mount namespaces at event time; None without BTF.
    pub namespaces: Option<Namespaces>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Syscall {
    FinitModule,
    InitModule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// request_module(alias): the kernel wants a module and will run modprobe.
    /// `call_site_name` is the kernel's name of `call_site`; empty when it gave none.
    Request { alias: String, wait: bool, call_site: u64, call_site_name: String, repeats: u32 },
    /// An init_module/finit_module call and its result (0 or -errno).
    Load {
        syscall: Syscall,
        fd: Option<i32>,
        flags: u32,
        image_len: u64,
        params: String,
        ret: i64,
        repeats: u32,
    },
    /// A module was linked into the kernel.
    Loaded { module: String, taints: u32 },
    /// A module was removed.
    Unloaded { module: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    pub task: Task,
    pub body: Body,
}

/// A process as modtrace reports it: the kernel's facts plus what /proc and the
/// cgroup tree said when the event was handled. Fields are None when unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Process {
    pub pid: u32,
    pub tgid: u32,
    pub ppid: Option<u32>,
    pub uid: u32,
    /// Effective uid, audit login uid and audit session id, where the kernel
    /// side provides them.
    pub euid: Option<u32>,
    pub loginuid: Option<u32>,
    pub sessionid: Option<u32>,
    pub comm: String,
    pub parent_comm: Option<String>,
    /// The task is a kernel thread (PF_KTHREAD); None when the kernel could
    /// not say. A kernel thread acts for someone else (trace/kthread.rs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_thread: Option<bool>,
    pub exe: Option<String>,
    pub cmdline: Option<Vec<String>>,
    pub cgroup_id: u64,
    /// cgroup v2 path below the cgroup root, e.g. /system.slice/lightdm.service.
    pub cgroup: Option<String>,
    /// The unit named by the cgroup path, e.g. lightdm.service: whose unit it
    /// is (the host's, a user's, a container's) is in `scope`.
    pub unit: Option<String>,
    /// Inode numbers of the pid namespace (the one its children get) and the
    /// mount namespace, as /proc/PID/ns/pid and mnt name them (pid:[N]).
    pub pid_ns: Option<u32>,
    pub mnt_ns: Option<u32>,
    /// Whose unit: parsed from the whole cgroup path, and a container whatever
    /// the path says when the pid namespace is not init's; unknown without it.
    pub scope: Scope,
}

impl Process {
    /// The kernel's facts alone, argv included; exe and cgroup fields unknown.
    pub fn from_task(t: &Task) -> Process {
        Process {
            pid: t.pid,
            tgid: t.tgid,
            ppid: t.ppid,
            uid: t.uid,
            euid: t.euid,
            loginuid: t.loginuid,
            sessionid: t.sessionid,
            comm: t.comm.clone(),
            parent_comm: t.parent_comm.clone(),
            kernel_thread: t.is_kthread,
            exe: None,
            cmdline: t.args.clone(),
            cgroup_id: t.cgroup_id,
            cgroup: None,
            unit: None,
            pid_ns: t.namespaces.map(|n| n.pid),
            mnt_ns: t.namespaces.map(|n| n.mnt),
            scope: Scope::Unknown,
        }
    }
}

/// Why a module was loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cause {
    /// The kernel requested an alias on behalf of `requester` and its modprobe
    /// helper loaded this module. `needed_by` is empty for the alias's own module
    /// and names the modules that depend on this one otherwise.
    Request {
        alias: String,
        requester: Process,
        /// The module the alias resolved to.
        module: Option<String>,
        needed_by: Vec<String>,
        /// Other processes whose pending requests this load also satisfies; when
        /// non-empty the requester is the earliest of several, not certain.
        also_requested_by: Vec<Process>,
        /// How a kernel thread's request was joined to `requester`; None when a
        /// process that is not a kernel thread asked itself.
        #[serde(skip_serializing_if = "Option::is_none")]
        kthread: Option<KthreadJoin>,
    },
    /// A process called init_module/finit_module itself (modprobe, insmod,
    /// systemd-modules-load); `invoked_by` is the loader's parent.
    Explicit { loader: Process, invoked_by: Option<Parent>, needed_by: Vec<String> },
    /// systemd-udevd loaded it for a device: the device whose uevent MODALIAS
    /// resolves to this module, when exactly one recent uevent does.
    Udev { loader: Process, device: Option<Device> },
    /// A kernel helper loaded it but no request explains it (lost events, or a
    /// request made before tracing began). Never guessed.
    Unknown { reason: String },
}

/// Who a kernel thread's request was for (trace/kthread.rs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KthreadJoin {
    /// The kernel thread that asked, e.g. "cryptomgr_probe (kernel thread)".
    pub via: String,
    /// The waiting requester it is joined to; None when nobody is joined, and
    /// `unjoined` says why.
    pub requester: Option<Process>,
    /// Other waiting requesters it could equally have been for: the join is
    /// then trusted only when every one of them is.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Process>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unjoined: Option<String>,
}

/// A device, from the kernel uevent that announced it (or its sysfs directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    pub modalias: String,
    pub devpath: String,
    pub subsystem: Option<String>,
    /// `vendor:device` (PCI) or `vendor:product` (USB) in lower-case hex, read
    /// from the modalias; None for other buses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ids: Option<String>,
}

impl Device {
    pub fn new(modalias: String, devpath: String, subsystem: Option<String>) -> Device {
        Device { ids: ids_of(&modalias), modalias, devpath, subsystem }
    }
}

/// The ids a PCI or USB modalias starts with: `pci:vVVVVVVVVdDDDDDDDD...` (32-bit
/// fields, the ids in their low 16 bits) or `usb:vVVVVpPPPP...`.
pub fn ids_of(modalias: &str) -> Option<String> {
    let hex = |s: &str| s.chars().all(|c| c.is_ascii_hexdigit()).then(|| s.to_ascii_lowercase());
    let (vendor, device) = if let Some(rest) = modalias.strip_prefix("pci:v") {
        let device = rest.get(8..)?.strip_prefix('d')?;
        (hex(rest.get(4..8)?)?, hex(device.get(4..8)?)?)
    } else if let Some(rest) = modalias.strip_prefix("usb:v") {
        let product = rest.get(4..)?.strip_prefix('p')?;
        (hex(rest.get(..4)?)?, hex(product.get(..4)?)?)
    } else {
        return None;
    };
    Some(format!("{vendor}:{device}"))
}

/// A loader's parent, as far as it is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Parent {
    pub pid: u32,
    pub comm: Option<String>,
    pub exe: Option<String>,
    pub unit: Option<String>,
}

/// One line of `modtrace trace --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// Wall-clock time, RFC 3339.
    pub time: String,
    pub ts_ns: u64,
    #[serde(flatten)]
    pub what: What,
    pub process: Process,
    /// "initramfs" for an event of the initramfs, seen by the probes it started
    /// (loader/early.rs); absent for the main system's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<&'static str>,
}

/// The stage of an event that happened before the main system's init started.
pub const INITRAMFS: &str = "initramfs";

/// An event's stage, given when the main system's init started (`initramfs_end_ns`):
/// "initramfs" before it, none after it or when the start is unknown.
pub fn stage_at(ts_ns: u64, initramfs_end_ns: Option<u64>) -> Option<&'static str> {
    initramfs_end_ns.is_some_and(|end| ts_ns < end).then_some(INITRAMFS)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum What {
    Request {
        alias: String,
        wait: bool,
        /// Kernel call site as `symbol+0xoff [module]`, named by the kernel at
        /// the request; the bare address when it could not name it.
        call_site: String,
        repeats: u32,
        /// Modules the alias resolves to in the running kernel; empty means the
        /// request will fail (no module provides it).
        resolves_to: Vec<String>,
        /// Set when a kernel thread asked: whom for, as far as a join tells.
        #[serde(skip_serializing_if = "Option::is_none")]
        kthread: Option<KthreadJoin>,
    },
    Load {
        syscall: Syscall,
        fd: Option<i32>,
        flags: u32,
        image_len: u64,
        params: String,
        ret: i64,
        /// strerror-style name of -ret, e.g. "EPERM"; None on success.
        error: Option<String>,
        repeats: u32,
        /// The module this call linked into the kernel (a `loaded` event from the
        /// same task came before the result). With an error, its init failed and
        /// the kernel removed it again. For a kernel helper's call that failed
        /// before linking: the module of its request it was loading, when only
        /// one could have been next; for udev's call that failed before linking,
        /// the module its device still needs, when only one could be next.
        module: Option<String>,
        /// With `module` and an error: whether the module was linked (its init
        /// failed) or the call failed before (refused, as under the lock).
        #[serde(skip_serializing_if = "Option::is_none")]
        linked: Option<bool>,
        cause: Option<Cause>,
    },
    Loaded { module: String, taints: u32, cause: Cause },
    Unloaded { module: String },
}
