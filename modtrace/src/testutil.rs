//! Test helpers: temp directories and records built by hand, as the correlator
//! would emit them.

use std::path::{Path, PathBuf};

use crate::trace::event::{Cause, Parent, Process, Record, Syscall, What};
use crate::trace::modindex::StaticIndex;

/// A fresh directory under the system temp dir, removed when dropped; `put`
/// writes a file inside, making its directories.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        TempDir(tempfile::Builder::new().prefix(&format!("modtrace-test-{tag}-")).tempdir().unwrap())
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// Writes `text` to `path` inside, making its directories.
    pub fn put(&self, path: &str, text: &str) {
        let p = self.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// appletalk needs psnap and llc; psnap needs llc (as in a Debian kernel).
pub fn appletalk_index() -> StaticIndex {
    StaticIndex::default()
        .alias("net-pf-5", "appletalk")
        .alias("fs-binfmt_misc", "binfmt_misc")
        .module("appletalk", &["psnap", "llc"])
        .module("psnap", &["llc"])
        .module("llc", &[])
        .module("binfmt_misc", &[])
        .module("snd_hda_intel", &[])
        .module("ext4", &["jbd2", "mbcache"])
        .module("jbd2", &[])
        .module("mbcache", &[])
}

/// A root process in `unit`: a host system unit, or a login session of uid
/// 1000; no unit: the root cgroup.
pub fn process(pid: u32, comm: &str, exe: Option<&str>, unit: Option<&str>) -> Process {
    let cgroup = match unit {
        None => "/".to_string(),
        Some("init.scope") => "/init.scope".to_string(),
        Some(u) if u.starts_with("session-") => format!("/user.slice/user-1000.slice/{u}"),
        Some(u) => format!("/system.slice/{u}"),
    };
    in_cgroup(pid, comm, exe, 0, &cgroup)
}

/// A process of `uid` in the cgroup at `path`, its unit and scope read from it.
pub fn in_cgroup(pid: u32, comm: &str, exe: Option<&str>, uid: u32, path: &str) -> Process {
    let scope = crate::trace::scope::Scope::of(Some(path));
    Process {
        pid,
        tgid: pid,
        ppid: Some(1),
        uid,
        euid: None,
        loginuid: None,
        sessionid: None,
        comm: comm.to_string(),
        parent_comm: Some("systemd".to_string()),
        kernel_thread: Some(false),
        exe: exe.map(str::to_string),
        cmdline: None,
        cgroup_id: 1000 + u64::from(pid),
        cgroup: Some(path.to_string()),
        unit: scope.unit().map(str::to_string),
        pid_ns: None,
        mnt_ns: None,
        scope,
    }
}

pub fn guest(pid: u32) -> Process {
    process(pid, "modtrace-guest", Some("/usr/bin/python3"), Some("example.service"))
}

pub fn modprobe(pid: u32) -> Process {
    process(pid, "modprobe", Some("/usr/bin/kmod"), None)
}

pub fn request(time: &str, who: Process, alias: &str, resolves_to: &[&str]) -> Record {
    Record {
        stage: None,
        time: time.to_string(),
        ts_ns: 0,
        what: What::Request {
            alias: alias.to_string(),
            wait: true,
            call_site: "__sock_create+0x1a0".to_string(),
            repeats: 0,
            resolves_to: resolves_to.iter().map(|s| s.to_string()).collect(),
            kthread: None,
        },
        process: who,
    }
}

/// A `loaded` record for a module the modprobe helper loaded for `alias`.
pub fn loaded_for_request(
    time: &str,
    module: &str,
    alias: &str,
    alias_module: &str,
    requester: Process,
    needed_by: &[&str],
) -> Record {
    Record {
        stage: None,
        time: time.to_string(),
        ts_ns: 0,
        what: What::Loaded {
            module: module.to_string(),
            taints: 0,
            cause: Cause::Request {
                alias: alias.to_string(),
                requester,
                module: Some(alias_module.to_string()),
                needed_by: needed_by.iter().map(|s| s.to_string()).collect(),
                also_requested_by: Vec::new(), kthread: None,
            },
        },
        process: modprobe(900),
    }
}

/// The three loads `socket(AF_APPLETALK, ...)` causes: llc, psnap, appletalk.
pub fn appletalk_sequence(time: &str, requester: Process) -> Vec<Record> {
    vec![
        request(time, requester.clone(), "net-pf-5", &["appletalk"]),
        loaded_for_request(time, "llc", "net-pf-5", "appletalk", requester.clone(), &["psnap", "appletalk"]),
        loaded_for_request(time, "psnap", "net-pf-5", "appletalk", requester.clone(), &["appletalk"]),
        loaded_for_request(time, "appletalk", "net-pf-5", "appletalk", requester, &[]),
    ]
}

pub fn loaded_udev(time: &str, module: &str) -> Record {
    let udevd = process(300, "systemd-udevd", Some("/usr/lib/systemd/systemd-udevd"), Some("systemd-udevd.service"));
    Record {
        stage: None,
        time: time.to_string(),
        ts_ns: 0,
        what: What::Loaded {
            module: module.to_string(),
            taints: 0,
            cause: Cause::Udev { loader: udevd.clone(), device: None },
        },
        process: udevd,
    }
}

pub fn loaded_explicit(time: &str, module: &str, taints: u32) -> Record {
    let loader = process(700, "modprobe", Some("/usr/bin/kmod"), Some("session-2.scope"));
    Record {
        stage: None,
        time: time.to_string(),
        ts_ns: 0,
        what: What::Loaded {
            module: module.to_string(),
            taints,
            cause: Cause::Explicit {
                loader: loader.clone(),
                invoked_by: Some(Parent {
                    pid: 650,
                    comm: Some("bash".to_string()),
                    exe: Some("/usr/bin/bash".to_string()),
                    unit: Some("session-2.scope".to_string()),
                }),
                needed_by: Vec::new(),
            },
        },
        process: loader,
    }
}

pub fn failed_load(time: &str, alias: &str, module: &str, ret: i64, error: &str, repeats: u32) -> Record {
    Record {
        stage: None,
        time: time.to_string(),
        ts_ns: 0,
        what: What::Load {
            syscall: Syscall::FinitModule,
            fd: Some(3),
            flags: 0,
            image_len: 0,
            params: String::new(),
            ret,
            error: Some(error.to_string()),
            repeats,
            module: None,
            linked: None,
            cause: Some(Cause::Request {
                alias: alias.to_string(),
                requester: guest(4242),
                module: Some(module.to_string()),
                needed_by: Vec::new(),
                also_requested_by: Vec::new(), kthread: None,
            }),
        },
        process: modprobe(901),
    }
}

/// The profile docs/profile.md shows: built from records, as learning would.
pub fn example_profile() -> crate::profile::Profile {
    use crate::profile::{Profile, Session};
    use crate::trace::snapshot::parse_proc_modules;
    let mut p = Profile::new("6.1.0-18-amd64", "kicksecure");
    p.boots.push("6f0c3c9e-3f3e-4b7a-9a53-2d1e0f5b8c11".to_string());
    let proc_modules = "ext4 1007616 1 - Live 0x0000000000000000\njbd2 192512 1 ext4, Live 0x0000000000000000\nmbcache 16384 1 ext4, Live 0x0000000000000000\n";
    let mut reasons = std::collections::BTreeMap::new();
    reasons.insert("ext4".to_string(), "/etc/modules-load.d/ext4.conf".to_string());
    p.add_preloaded(&parse_proc_modules(proc_modules).unwrap(), &reasons, "2024-03-01T10:00:00Z");
    for r in appletalk_sequence("2024-03-01T10:02:13Z", guest(4242)) {
        p.observe(&r);
    }
    let systemd = process(1, "systemd", Some("/usr/lib/systemd/systemd"), Some("init.scope"));
    p.observe(&request("2024-03-01T10:03:00Z", systemd.clone(), "fs-binfmt_misc", &["binfmt_misc"]));
    p.observe(&loaded_for_request(
        "2024-03-01T10:03:00Z",
        "binfmt_misc",
        "fs-binfmt_misc",
        "binfmt_misc",
        systemd,
        &[],
    ));
    p.observe(&loaded_udev("2024-03-01T10:00:05Z", "snd_hda_intel"));
    p.observe(&request("2024-03-01T10:04:00Z", guest(4250), "net-pf-38", &[]));
    p.observe(&failed_load("2024-03-01T10:05:00Z", "net-pf-5", "appletalk", -1, "EPERM", 2));
    p.sessions.push(Session {
        start: "2024-03-01T10:00:00Z".to_string(),
        end: "2024-03-01T10:10:00Z".to_string(),
        duration_secs: 600,
        kernel: "6.1.0-18-amd64".to_string(),
        boot_id: Some("6f0c3c9e-3f3e-4b7a-9a53-2d1e0f5b8c11".to_string()),
        ended_by: Some("duration".to_string()),
        records: 9,
        lost_events: 0,
        drops: None,
        from_initramfs: None,
        host: None,
        extra: Default::default(),
    });
    p.settle(&appletalk_index());
    p
}

/// systemd-udevd, root in its system unit, as a profile records a loader.
pub fn udevd_loader() -> crate::profile::Loader {
    let p = process(300, "systemd-udevd", Some("/usr/lib/systemd/systemd-udevd"), Some("systemd-udevd.service"));
    crate::profile::Loader {
        comm: p.comm,
        exe: p.exe,
        uid: Some(0),
        euid: None,
        loginuid: None,
        unit: p.unit,
        scope: p.scope,
        cgroup: p.cgroup,
        pid_ns: None,
        mnt_ns: None,
        extra: Default::default(),
    }
}

/// A module udev loaded for the device with `modalias` (a CPU's, in the tests),
/// as a profile records it.
pub fn udev_device_module(modalias: &str, name: &str, deps: &[&str], top_level: bool) -> crate::profile::Module {
    use crate::profile::{Device, Module, Trigger, TriggerKind};
    let mut m = Module::new(name, "2024-03-01T10:00:00Z");
    m.top_level = top_level;
    m.depends_on = deps.iter().map(|d| d.to_string()).collect();
    m.count = 1;
    m.triggers.push(Trigger {
        device: Some(Device {
            modalias: Some(modalias.into()),
            devpath: Some("/devices/system/cpu/cpu1".into()),
            extra: Default::default(),
        }),
        loader: Some(udevd_loader()),
        count: 1,
        ..Trigger::new(TriggerKind::Udev)
    });
    m
}

/// A CPU's modalias: it names every CPU-feature module of the kernel, most of
/// which do not load.
pub const CPU_MODALIAS: &str = "cpu:type:x86,ven0002fam000Fmod006B:feature:,0000,0002,0003";

/// `base` plus the kernel of the two-boot system test, in small: the CPU's
/// modalias names amd64_edac (which fails to load in a VM, after loading its
/// dependency edac_mce_amd), kvm_amd, kvm_intel, powernow_k8 and sha1_ssse3.
pub fn with_cpu_modules(base: StaticIndex) -> StaticIndex {
    let mut idx = base
        .module("amd64_edac", &["edac_mce_amd"])
        .module("edac_mce_amd", &[])
        .module("kvm_amd", &["kvm", "ccp"])
        .module("kvm_intel", &["kvm"])
        .module("kvm", &["irqbypass"])
        .module("irqbypass", &[])
        .module("ccp", &[])
        .module("powernow_k8", &[])
        .module("sha1_ssse3", &[]);
    for m in ["amd64_edac", "kvm_amd", "kvm_intel", "powernow_k8", "sha1_ssse3"] {
        idx = idx.alias(CPU_MODALIAS, m);
    }
    idx
}

/// The cgroup paths: uid 1000's own manager running a unit named like
/// a system display manager, and a container's inner system unit.
pub const USER_DM_CGROUP: &str = "/user.slice/user-1000.slice/user@1000.service/app.slice/lightdm.service";
pub const CONTAINER_CGROUP: &str = "/machine.slice/systemd-nspawn@web.service/payload/system.slice/fake-dm.service";

/// `untrusted_profile`'s kernel: the example's plus vfat (fs-vfat) and dummy
/// (rtnl-link-dummy).
pub fn untrusted_index() -> StaticIndex {
    appletalk_index()
        .alias("fs-vfat", "vfat")
        .module("vfat", &[])
        .alias("rtnl-link-dummy", "dummy")
        .module("dummy", &[])
}

/// The example profile, plus what untrusted processes caused: uid 1000 in its
/// user unit lightdm.service asked for fs-vfat (twice), root in a container's
/// fake-dm.service for rtnl-link-dummy.
pub fn untrusted_profile() -> crate::profile::Profile {
    let mut p = example_profile();
    let user = in_cgroup(5000, "Xorg", Some("/usr/bin/Xorg"), 1000, USER_DM_CGROUP);
    for t in ["2024-03-01T10:07:00Z", "2024-03-01T10:07:30Z"] {
        p.observe(&request(t, user.clone(), "fs-vfat", &["vfat"]));
        p.observe(&loaded_for_request(t, "vfat", "fs-vfat", "vfat", user.clone(), &[]));
    }
    let root_in_container = in_cgroup(6000, "ip", Some("/usr/sbin/ip"), 0, CONTAINER_CGROUP);
    p.observe(&request("2024-03-01T10:08:00Z", root_in_container.clone(), "rtnl-link-dummy", &["dummy"]));
    p.observe(&loaded_for_request("2024-03-01T10:08:00Z", "dummy", "rtnl-link-dummy", "dummy", root_in_container, &[]));
    p.settle(&untrusted_index());
    p
}

/// `p` as host `name`'s profile for a fleet merge, its session on day `day` of
/// March 2024 (a later day is newer evidence).
pub fn as_host(mut p: crate::profile::Profile, name: &str, day: u32) -> crate::profile::fleet::Input {
    p.host = name.to_string();
    let s = &mut p.sessions[0];
    (s.start, s.end) = (format!("2024-03-{day:02}T10:00:00Z"), format!("2024-03-{day:02}T10:10:00Z"));
    crate::profile::fleet::Input { path: PathBuf::from(format!("{name}.json")), profile: p }
}

/// An admin's decision on a module, or on an alias (a name with a `-`).
pub fn decision(name: &str, verdict: crate::profile::Verdict) -> crate::profile::Decision {
    use crate::profile::DecisionTarget;
    let target = if name.contains('-') { DecisionTarget::Alias } else { DecisionTarget::Module };
    let time = "2024-03-09T00:00:00Z".into();
    crate::profile::Decision { name: name.into(), target, verdict, time, extra: Default::default() }
}
