//! Tests of the generators, on profiles built as learning would build them.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::needs::plan;
use crate::needs::target::Source;
use crate::trace::modindex::StaticIndex;
use crate::testutil::{
    appletalk_index, example_profile, loaded_for_request, process, request, udev_device_module, with_cpu_modules,
    TempDir, CPU_MODALIAS,
};
use crate::profile::{Device, Module, Requester, Trigger, TriggerKind};

const NOW: &str = "2024-03-02T08:00:00Z";

fn opts(point: LockPoint, deny: bool) -> Options {
    Options {
        profile_path: "/var/lib/modtrace/profile.json".into(),
        lock_point: point,
        deny,
        now: NOW.to_string(),
        command: "modtrace generate".to_string(),
        site: Default::default(),
    }
}

fn gen(p: &Profile, t: &Target, point: LockPoint) -> Output {
    generate(p, t, &opts(point, false)).unwrap_or_else(|e| panic!("{e}"))
}

/// A unit file as (section, key) -> values, failing on any line that is not a
/// comment, a blank, a section header or Key=Value.
fn parse_unit(text: &str) -> BTreeMap<(String, String), Vec<String>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let (k, v) = line.split_once('=').unwrap_or_else(|| panic!("not Key=Value: {line:?}\n{text}"));
        assert!(!section.is_empty(), "key outside a section: {line:?}");
        assert!(k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'), "odd key {k:?}");
        assert!(!line.ends_with('\\'), "continuation line: {line:?}");
        out.entry((section.clone(), k.to_string())).or_default().push(v.to_string());
    }
    out
}

fn values<'a>(unit: &'a BTreeMap<(String, String), Vec<String>>, section: &str, key: &str) -> Vec<&'a str> {
    unit.get(&(section.to_string(), key.to_string()))
        .map(|v| v.iter().flat_map(|s| s.split_whitespace()).collect())
        .unwrap_or_default()
}

/// The lines of a list file that are not comments.
fn listed(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
}

fn full_index() -> StaticIndex {
    appletalk_index()
}

fn tree_target(index: StaticIndex, builtin: &[&str], extra_modules: &[&str]) -> Target {
    let mut modules: BTreeSet<String> = index.deps.keys().cloned().collect();
    modules.extend(extra_modules.iter().map(|m| m.to_string()));
    let builtin: BTreeSet<String> = builtin.iter().map(|m| m.to_string()).collect();
    modules.retain(|m| !builtin.contains(m));
    Target::from_index(
        "6.1.0-56-amd64",
        index,
        Some(modules),
        builtin,
        Source::Tree("/lib/modules/6.1.0-56-amd64".into()),
    )
}

#[test]
fn modules_load_lists_top_level_modules_only_with_reasons() {
    let p = example_profile();
    let out = gen(&p, &Target::from_profile(&p), LockPoint::AfterUdev);
    let conf = &out.file(MODULES_LOAD).expect("modules-load.d file").contents;
    assert_eq!(listed(conf), ["appletalk", "binfmt_misc", "ext4", "snd_hda_intel"], "{conf}");
    assert!(conf.starts_with(MARK), "{conf}");
    assert!(conf.contains("# Profile: /var/lib/modtrace/profile.json"), "{conf}");
    assert!(conf.contains(NOW) && conf.contains("Undo: delete this file"), "{conf}");
    assert!(conf.contains("Kernel: 6.1.0-18-amd64 (as learned"), "{conf}");
    // Reasons: the unit and process, the alias, the count; the dependencies it brings.
    assert!(conf.contains("# appletalk, with llc, psnap:"), "{conf}");
    assert!(
        conf.contains("request for net-pf-5 by example.service (modtrace-guest, /usr/bin/python3, uid 0); once"),
        "{conf}"
    );
    assert!(conf.contains("explained by: /etc/modules-load.d/ext4.conf"), "{conf}");
    assert!(conf.contains("request for fs-binfmt_misc by init.scope (systemd"), "{conf}");
    assert!(conf.contains("udev, for a device"), "{conf}");
}

#[test]
fn drop_ins_for_real_units_only() {
    let p = example_profile();
    let out = gen(&p, &Target::from_profile(&p), LockPoint::AfterUdev);
    let dropins: Vec<&GeneratedFile> =
        out.files.iter().filter(|f| f.path.to_string_lossy().ends_with(DROP_IN_NAME)).collect();
    assert_eq!(dropins.len(), 1, "{:?}", dropins.iter().map(|f| &f.path).collect::<Vec<_>>());
    assert_eq!(dropins[0].path, std::path::Path::new("etc/systemd/system/example.service.d/modtrace-modules.conf"));
    let unit = parse_unit(&dropins[0].contents);
    assert_eq!(values(&unit, "Unit", "Wants"), ["modprobe@appletalk.service"]);
    assert_eq!(values(&unit, "Unit", "After"), ["modprobe@appletalk.service"]);
    assert!(
        dropins[0].contents.contains("# appletalk:\n#   - request for net-pf-5 by example.service"),
        "{}",
        dropins[0].contents
    );
    // PID 1's request (init.scope) gets no drop-in, and says why.
    assert!(out.plan.other_units.contains_key("init.scope"), "{:?}", out.plan.other_units);
}

#[test]
fn a_unit_of_the_initramfs_gets_no_drop_in() {
    // dracut's sysroot.mount asked for fs-vfat in the initramfs; the main system has no such unit.
    let mut p = example_profile();
    let mount = process(11, "mount", Some("/usr/bin/mount"), Some("sysroot.mount"));
    p.observe(&loaded_for_request(NOW, "vfat", "fs-vfat", "vfat", mount, &[]));
    let vfat = p.modules.iter_mut().find(|m| m.name == "vfat").unwrap();
    vfat.triggers.iter_mut().for_each(|t| t.stage = Some("initramfs".into()));
    let out = gen(&p, &Target::from_profile(&p), LockPoint::AfterUdev);
    let dropin = out.files.iter().find(|f| f.path.to_string_lossy().contains("sysroot.mount"));
    assert!(dropin.is_none(), "a drop-in for sysroot.mount: {dropin:?}");
    let why = out.plan.other_units.get("sysroot.mount").expect("sysroot.mount is named with its reason");
    assert!(why.contains("a unit of the initramfs"), "{why}");
    assert!(out.plan.needs.contains_key("vfat"), "the module is still listed: {:?}", out.plan.needs.keys());
}

#[test]
fn drop_in_lists_top_level_modules_of_each_unit() {
    // A service that loaded vfat (which needs fat) and fat itself: one line, vfat.
    let mut p = Profile::new("6.1.0-56-amd64", "h");
    let svc = process(10, "mounter", Some("/usr/bin/mounter"), Some("mounter.service"));
    for (alias, module, needed_by) in [("fs-vfat", "fat", vec!["vfat"]), ("fs-vfat", "vfat", vec![])] {
        p.observe(&loaded_for_request(NOW, module, alias, "vfat", svc.clone(), &needed_by));
    }
    let fat = p.modules.iter_mut().find(|m| m.name == "fat").unwrap();
    fat.triggers.push(Trigger {
        requester: Some(Requester {
            comm: "mounter".into(),
            exe: None,
            pid: None,
            unit: Some("mounter.service".into()),
            cgroup: Some("/system.slice/mounter.service".into()),
            uid: Some(0),
            euid: None,
            loginuid: None,
            kernel_thread: Some(false),
            scope: crate::trace::scope::Scope::of(Some("/system.slice/mounter.service")),
            pid_ns: None,
            mnt_ns: None,
            extra: Default::default(),
        }),
        count: 2,
        ..Trigger::new(TriggerKind::Explicit)
    });
    let idx = StaticIndex::default().alias("fs-vfat", "vfat").module("vfat", &["fat"]).module("fat", &[]);
    p.settle(&idx);
    let out = gen(&p, &tree_target(idx, &[], &[]), LockPoint::AfterUdev);
    let f = out.file("etc/systemd/system/mounter.service.d/modtrace-modules.conf").expect("drop-in");
    let unit = parse_unit(&f.contents);
    assert_eq!(values(&unit, "Unit", "Wants"), ["modprobe@vfat.service"], "{}", f.contents);
    assert_eq!(listed(&out.file(MODULES_LOAD).unwrap().contents), ["vfat"]);
}

#[test]
fn lock_unit_per_lock_point() {
    let p = example_profile();
    let t = Target::from_profile(&p);
    let list_path = lock_unit::list_path("6.1.0-18-amd64");
    // snd_hda_intel only udev loaded, for a device: its failure does not stop the lock.
    let expect_list = "MODTRACE_NEEDED=\"appletalk binfmt_misc ext4\"\nMODTRACE_DEVICES=\"snd_hda_intel\"\n";
    for point in [LockPoint::Early, LockPoint::AfterUdev, LockPoint::Late] {
        let out = gen(&p, &t, point);
        let text = &out.file(LOCK_UNIT).expect("lock unit").contents;
        assert!(text.starts_with(MARK));
        let u = parse_unit(text);
        assert_eq!(values(&u, "Service", "Type"), ["oneshot"]);
        assert_eq!(values(&u, "Service", "RemainAfterExit"), ["yes"]);
        let exec = &u[&("Service".to_string(), "ExecStart".to_string())];
        assert_eq!(exec.len(), 3, "{exec:?}");
        assert_eq!(exec[0], "/bin/sh -c 'test -z \"$$MODTRACE_NEEDED\" || exec /sbin/modprobe -a -- $$MODTRACE_NEEDED'");
        assert_eq!(
            exec[1],
            "-/bin/sh -c 'test -z \"$$MODTRACE_DEVICES\" || exec /sbin/modprobe -a -- $$MODTRACE_DEVICES'"
        );
        assert!(exec[2].contains("echo 1 > /proc/sys/kernel/modules_disabled"), "{exec:?}");
        // The running kernel's list (%v: its release), none on another kernel.
        assert_eq!(values(&u, "Service", "EnvironmentFile"), ["/etc/modtrace/lock/%v.conf"]);
        let conds = values(&u, "Unit", "ConditionPathExists");
        assert_eq!(conds, ["/etc/modtrace/lock/%v.conf", "/proc/sys/kernel/modules_disabled"]);
        assert!(values(&u, "Unit", "ConditionKernelVersion").is_empty());
        let list = &out.file(&list_path).expect("the kernel's list").contents;
        assert!(list.starts_with(MARK) && list.ends_with(expect_list), "{list}");
        assert_eq!(values(&u, "Unit", "ConditionKernelCommandLine"), ["!modtrace.nolock"]);
        assert_eq!(values(&u, "Unit", "X-Modtrace-LockPoint"), [point.as_str()]);
        let after = values(&u, "Unit", "After");
        let before = values(&u, "Unit", "Before");
        let wanted = values(&u, "Install", "WantedBy");
        let settle = values(&u, "Service", "ExecStartPre");
        match point {
            LockPoint::Early => {
                assert_eq!(values(&u, "Unit", "DefaultDependencies"), ["no"]);
                assert!(after.contains(&"systemd-modules-load.service"), "{after:?}");
                assert!(before.contains(&"sysinit.target"), "{before:?}");
                assert_eq!(wanted, ["sysinit.target"]);
                assert!(settle.is_empty(), "{settle:?}");
            }
            LockPoint::AfterUdev => {
                assert!(values(&u, "Unit", "DefaultDependencies").is_empty());
                for a in ["systemd-udev-trigger.service", "systemd-modules-load.service"] {
                    assert!(after.contains(&a), "{after:?}");
                }
                for b in
                    ["multi-user.target", "systemd-user-sessions.service", "display-manager.service", "getty.target"]
                {
                    assert!(before.contains(&b), "{before:?}");
                }
                assert!(!before.contains(&"sysinit.target"));
                assert_eq!(settle, ["/bin/udevadm", "settle"]);
                assert_eq!(wanted, ["multi-user.target"]);
            }
            LockPoint::Late => {
                assert!(after.contains(&"multi-user.target"), "{after:?}");
                assert!(before.is_empty(), "{before:?}");
                assert_eq!(settle, ["/bin/udevadm", "settle"]);
                assert_eq!(wanted, ["multi-user.target"]);
            }
        }
        // It reads back as what it is.
        let inst = lock_unit::parse_installed(text, Some(("6.1.0-18-amd64", list))).expect("ours");
        assert_eq!(inst.lock_point, Some(point));
        assert_eq!(inst.kernel.as_deref(), Some("6.1.0-18-amd64"));
        assert_eq!(inst.modules, ["appletalk", "binfmt_misc", "ext4", "snd_hda_intel"]);
        assert_eq!(lock_unit::parse_installed(text, None).expect("ours").kernel, None);
    }
}

#[test]
fn deny_list_excludes_the_profile_and_its_dependencies() {
    let p = example_profile();
    let t = tree_target(full_index().module("crc16", &[]), &[], &["dummy", "evil_fs", "snd_hda_codec"]);
    assert!(matches!(
        generate(&p, &Target::from_profile(&p), &opts(LockPoint::AfterUdev, true)),
        Err(GenerateError::DenyNeedsTree)
    ));
    let out = generate(&p, &t, &opts(LockPoint::AfterUdev, true)).unwrap();
    let deny = &out.file(DENY).expect("deny file").contents;
    let lines = listed(deny);
    let denied: Vec<&str> = lines.iter().map(|l| l.split_whitespace().nth(1).unwrap()).collect();
    assert_eq!(denied, ["crc16", "dummy", "evil_fs", "snd_hda_codec"], "{deny}");
    assert_eq!(
        lines[1],
        "install dummy /usr/bin/logger -t modtrace \"denied module dummy: not in the modtrace profile\" ; /bin/false"
    );
    for m in ["appletalk", "llc", "psnap", "ext4", "jbd2", "mbcache", "binfmt_misc", "snd_hda_intel"] {
        assert!(!denied.contains(&m), "{m} denied");
    }
}

#[test]
fn built_in_modules_are_noted_not_listed() {
    let p = example_profile();
    let t = tree_target(full_index(), &["ext4"], &[]);
    let out = gen(&p, &t, LockPoint::AfterUdev);
    let conf = &out.file(MODULES_LOAD).unwrap().contents;
    assert_eq!(listed(conf), ["appletalk", "binfmt_misc", "snd_hda_intel"], "{conf}");
    assert!(conf.contains("# Built into kernel 6.1.0-56-amd64, so not listed:\n#   ext4:"), "{conf}");
    assert!(out.plan.builtin.contains_key("ext4"));
    assert!(out.plan.unresolved.is_empty(), "{:?}", out.plan.unresolved);
}

#[test]
fn aliases_resolve_in_the_target_kernel_not_the_old_name() {
    // net-pf-5 is provided by appletalk_ng in the target; appletalk is gone.
    let p = example_profile();
    let idx = StaticIndex::default()
        .alias("net-pf-5", "appletalk_ng")
        .alias("fs-binfmt_misc", "binfmt_misc")
        .module("appletalk_ng", &["llc"])
        .module("llc", &[])
        .module("binfmt_misc", &[])
        .module("snd_hda_intel", &[])
        .module("ext4", &["jbd2", "mbcache"])
        .module("jbd2", &[])
        .module("mbcache", &[]);
    let out = gen(&p, &tree_target(idx, &[], &[]), LockPoint::AfterUdev);
    let conf = &out.file(MODULES_LOAD).unwrap().contents;
    assert_eq!(listed(conf), ["appletalk_ng", "binfmt_misc", "ext4", "snd_hda_intel"], "{conf}");
    assert!(conf.contains("learned as appletalk; in 6.1.0-56-amd64 alias net-pf-5 resolves to appletalk_ng"), "{conf}");
    let unit = parse_unit(&out.file("etc/systemd/system/example.service.d/modtrace-modules.conf").unwrap().contents);
    assert_eq!(values(&unit, "Unit", "Wants"), ["modprobe@appletalk_ng.service"]);
}

#[test]
fn a_request_whose_alias_is_gone_is_unresolved_even_if_the_module_remains() {
    let p = example_profile();
    let idx2 = StaticIndex { deps: full_index().deps, ..Default::default() };
    let idx2 = idx2.alias("fs-binfmt_misc", "binfmt_misc"); // net-pf-5 no longer an alias
    let out = gen(&p, &tree_target(idx2, &[], &[]), LockPoint::AfterUdev);
    assert_eq!(out.plan.unresolved.len(), 1, "{:?}", out.plan.unresolved);
    let u = &out.plan.unresolved[0];
    assert_eq!(u.looked_up, "alias net-pf-5");
    assert!(u.hint.as_deref().unwrap_or("").contains("module appletalk still exists"), "{u}");
    assert!(!listed(&out.file(MODULES_LOAD).unwrap().contents).contains(&"appletalk"));
    let list = &out.file(&lock_unit::list_path(&out.plan.release)).unwrap().contents;
    assert!(list.contains("# UNRESOLVED: 1 cause(s)"), "{list}");
    assert!(out.file(MODULES_LOAD).unwrap().contents.contains("#   - appletalk: alias net-pf-5 resolves to no module"));
}

#[test]
fn udev_loads_resolve_by_modalias() {
    let mut p = Profile::new("6.1.0-18-amd64", "h");
    let mut m = Module::new("e1000e_old", NOW);
    m.triggers.push(Trigger {
        device: Some(Device {
            modalias: Some("pci:v00008086d000015B8sv0sd0bc02sc00i00".into()),
            devpath: Some("/devices/pci0000:00/0000:00:1f.6".into()),
            extra: Default::default(),
        }),
        loader: Some(crate::testutil::udevd_loader()),
        count: 1,
        ..Trigger::new(TriggerKind::Udev)
    });
    m.count = 1;
    p.modules.push(m);
    let idx = StaticIndex::default()
        .alias("pci:v00008086d000015B8sv0sd0bc02sc00i00", "e1000e")
        .alias("pci:v00008086d000015B8sv0sd0bc02sc00i00", "other_nic")
        .module("e1000e", &[]);
    // e1000e_old is gone and the modalias names two modules, neither loaded
    // here for the device: unresolved, not guessed.
    let out = gen(&p, &tree_target(idx, &[], &[]), LockPoint::AfterUdev);
    assert!(listed(&out.file(MODULES_LOAD).unwrap().contents).is_empty());
    assert_eq!(out.plan.unresolved.len(), 1, "{:?}", out.plan.unresolved);
    // One module for the device now: a rename, followed.
    let idx = StaticIndex::default().alias("pci:v00008086d000015B8sv0sd0bc02sc00i00", "e1000e").module("e1000e", &[]);
    let out = gen(&p, &tree_target(idx, &[], &[]), LockPoint::AfterUdev);
    assert_eq!(listed(&out.file(MODULES_LOAD).unwrap().contents), ["e1000e"]);
    // While the kernel still has the module that was loaded, only that one.
    let idx = StaticIndex::default()
        .alias("pci:v00008086d000015B8sv0sd0bc02sc00i00", "e1000e_old")
        .alias("pci:v00008086d000015B8sv0sd0bc02sc00i00", "other_nic");
    let out = gen(&p, &tree_target(idx, &[], &[]), LockPoint::AfterUdev);
    assert_eq!(listed(&out.file(MODULES_LOAD).unwrap().contents), ["e1000e_old"]);
}

/// A CPU's modalias: it names every CPU-feature module, most of which fail to
/// load or are not wanted.
const CPU: &str = CPU_MODALIAS;

fn cpu_module(name: &str, deps: &[&str], top_level: bool) -> Module {
    udev_device_module(CPU, name, deps, top_level)
}

/// What udev loaded for the CPU on the two-boot system test: edac_mce_amd (the
/// dependency of amd64_edac, which then failed), kvm_amd with its dependencies
/// (which carry the same udev trigger), sha1_ssse3.
fn cpu_profile() -> Profile {
    let mut p = Profile::new("6.1.0-56-amd64", "h");
    p.modules = vec![
        cpu_module("ccp", &[], false),
        cpu_module("edac_mce_amd", &[], true),
        cpu_module("irqbypass", &[], false),
        cpu_module("kvm", &["irqbypass"], false),
        cpu_module("kvm_amd", &["ccp", "irqbypass", "kvm"], true),
        cpu_module("sha1_ssse3", &[], true),
    ];
    p
}

fn cpu_index() -> StaticIndex {
    with_cpu_modules(StaticIndex::default())
}

#[test]
fn a_device_needs_the_module_loaded_for_it_not_every_module_its_modalias_names() {
    let p = cpu_profile();
    let learned = plan(&p, &Target::from_profile(&p)).unwrap();
    let kernel = plan(&p, &tree_target(cpu_index(), &[], &[])).unwrap();
    // The same kernel, resolved or as learned: the same modules.
    let names = |plan: &Plan| plan.needs.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&kernel), ["ccp", "edac_mce_amd", "irqbypass", "kvm", "kvm_amd", "sha1_ssse3"]);
    assert_eq!(names(&kernel), names(&learned));
    assert_eq!(kernel.top_level, ["edac_mce_amd", "kvm_amd", "sha1_ssse3"]);
    assert_eq!(kernel.top_level, learned.top_level);
    assert!(kernel.unresolved.is_empty(), "{:?}", kernel.unresolved);
    // Nothing was re-resolved, so no "learned as" note.
    assert!(kernel.needs.values().flatten().all(|c| c.note.is_none()), "{:?}", kernel.needs);
}

#[test]
fn a_modalias_ends_before_the_newline_the_kernel_sends_for_a_cpu() {
    // The kernel ends a CPU's MODALIAS with a newline; the profile keeps it.
    let mut p = Profile::new("6.1.0-18-amd64", "h");
    // powernow_k8 loaded here for this CPU too: what the gone module narrows to.
    p.modules = vec![
        udev_device_module(&format!("{CPU}\n"), "powernow_k8_old", &[], true),
        udev_device_module(&format!("{CPU}\n"), "powernow_k8", &[], true),
    ];
    let plan = plan(&p, &tree_target(cpu_index(), &[], &[])).unwrap();
    assert!(plan.unresolved.is_empty(), "{:?}", plan.unresolved);
    assert!(plan.top_level.contains(&"powernow_k8".to_string()), "{:?}", plan.top_level);
    let text = &plan.needs["powernow_k8"][0].reason.text;
    assert_eq!(text, &format!("udev, for device {CPU} at /devices/system/cpu/cpu1; once"));
}

#[test]
fn a_device_whose_module_is_gone_is_narrowed_to_what_loaded_here_for_it() {
    // A later kernel without edac_mce_amd (merged into amd64_edac, say): its
    // CPU modalias names five modules; only those loaded here for this CPU
    // (kvm_amd, sha1_ssse3) answer it, not amd64_edac, kvm_intel or
    // powernow_k8, which this machine never loaded (or saw fail).
    let p = cpu_profile();
    let mut idx = cpu_index();
    idx.deps.remove("edac_mce_amd");
    idx.deps.insert("amd64_edac".into(), Vec::new());
    let now = plan(&p, &tree_target(idx, &[], &[])).unwrap();
    assert_eq!(now.top_level, ["kvm_amd", "sha1_ssse3"]);
    assert!(now.unresolved.is_empty(), "{:?}", now.unresolved);
    let note = now.needs["kvm_amd"].iter().find_map(|c| c.note.as_deref()).unwrap_or("");
    assert!(note.starts_with("learned as edac_mce_amd; in 6.1.0-56-amd64 device cpu:type:x86,"), "{note}");
    // Only the gone module loaded for the device: nothing certain, unresolved.
    let mut alone = Profile::new("6.1.0-18-amd64", "h");
    alone.modules = vec![cpu_module("edac_mce_amd", &[], true)];
    let mut idx = cpu_index();
    idx.deps.remove("edac_mce_amd");
    let none = plan(&alone, &tree_target(idx, &[], &[])).unwrap();
    assert!(none.top_level.is_empty(), "{:?}", none.top_level);
    assert_eq!(none.unresolved.len(), 1, "{:?}", none.unresolved);
    assert_eq!(none.unresolved[0].looked_up, format!("device {CPU}"));
}

#[test]
fn a_request_needs_the_module_of_its_alias_that_answered_it() {
    // crypto-crc32c names crc32c_intel and crc32c_generic; the CPU lacked
    // SSE4.2, so only crc32c_generic loaded: crc32c_intel is not needed (and
    // listing it would make modprobe -a fail, and the lock unit with it).
    let mut p = Profile::new("6.1.0-56-amd64", "h");
    let mut m = Module::new("crc32c_generic", NOW);
    m.count = 1;
    m.triggers.push(Trigger {
        alias: Some("crypto-crc32c".into()),
        requester: Some(Requester {
            comm: "cryptsetup".into(),
            exe: Some("/usr/sbin/cryptsetup".into()),
            pid: Some(40),
            unit: Some("example.service".into()),
            cgroup: Some("/system.slice/example.service".into()),
            uid: Some(0),
            euid: None,
            loginuid: None,
            kernel_thread: Some(false),
            scope: crate::trace::scope::Scope::of(Some("/system.slice/example.service")),
            pid_ns: None,
            mnt_ns: None,
            extra: Default::default(),
        }),
        count: 1,
        ..Trigger::new(TriggerKind::Request)
    });
    p.modules.push(m);
    let idx = StaticIndex::default()
        .alias("crypto-crc32c", "crc32c_intel")
        .alias("crypto-crc32c", "crc32c_generic")
        .module("crc32c_intel", &[])
        .module("crc32c_generic", &[]);
    let kernel = plan(&p, &tree_target(idx, &[], &[])).unwrap();
    assert_eq!(kernel.top_level, ["crc32c_generic"]);
    assert_eq!(kernel.top_level, plan(&p, &Target::from_profile(&p)).unwrap().top_level);
    // When the alias no longer names it, the alias decides.
    let idx = StaticIndex::default()
        .alias("crypto-crc32c", "crc32c_intel")
        .module("crc32c_intel", &[])
        .module("crc32c_generic", &[]);
    assert_eq!(plan(&p, &tree_target(idx, &[], &[])).unwrap().top_level, ["crc32c_intel"]);
}

#[test]
fn injection_through_names_is_refused_naming_the_entry() {
    let mut p = example_profile();
    p.modules.push(Module::new("x\nExecStart=/bin/sh", NOW));
    let err = generate(&p, &Target::from_profile(&p), &opts(LockPoint::AfterUdev, false)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(r#"invalid module name "x\nExecStart=/bin/sh""#), "{text}");
    assert!(text.contains("nothing was generated"), "{text}");

    let mut p = example_profile();
    let evil = process(5, "evil", None, Some("a b.service"));
    p.observe(&request(NOW, evil.clone(), "net-pf-5", &["appletalk"]));
    p.observe(&loaded_for_request(NOW, "appletalk", "net-pf-5", "appletalk", evil, &[]));
    let err = generate(&p, &Target::from_profile(&p), &opts(LockPoint::AfterUdev, false)).unwrap_err();
    assert!(
        err.to_string().contains(r#"invalid unit name "a b.service" at modules[0] (appletalk).triggers["#),
        "{err}"
    );

    for bad in ["%n.service", "a;b.service", "x.service\n[Service]", "$HOME.service"] {
        let mut p = example_profile();
        p.modules[0].triggers[0].requester.as_mut().unwrap().unit = Some(bad.to_string());
        assert!(
            matches!(
                generate(&p, &Target::from_profile(&p), &opts(LockPoint::Late, false)),
                Err(GenerateError::Invalid(_))
            ),
            "{bad:?}"
        );
    }
    let mut p = example_profile();
    p.kernel = "6.1\nExecStart=/bin/sh".into();
    assert!(matches!(
        generate(&p, &Target::from_profile(&p), &opts(LockPoint::Late, false)),
        Err(GenerateError::Invalid(_))
    ));
}

#[test]
fn text_in_comments_cannot_add_lines() {
    let mut p = example_profile();
    let r = p.modules[0].triggers[0].requester.as_mut().unwrap();
    r.comm = "x\n[Service]\nExecStart=/bin/INJECTED -c evil\\\nExecStartPost=/bin/INJECTED".into();
    r.exe = Some("/tmp/\u{7f}\r\nExecStartPre=/bin/INJECTED".into());
    let out = generate(&p, &Target::from_profile(&p), &opts(LockPoint::AfterUdev, false)).unwrap();
    for f in &out.files {
        for line in f.contents.lines() {
            assert!(!line.contains("INJECTED") || line.starts_with('#'), "{}: {line:?}", f.path.display());
            assert!(!line.ends_with('\\'), "a line that would continue: {line:?}");
            assert!(!line.starts_with("[Service]") || !f.path.to_string_lossy().ends_with(DROP_IN_NAME), "{line:?}");
        }
        if f.path.to_string_lossy().ends_with(".service") || f.path.to_string_lossy().ends_with(DROP_IN_NAME) {
            let unit = parse_unit(&f.contents);
            assert!(!unit.keys().any(|(s, _)| s == "Service" && f.path.to_string_lossy().ends_with(DROP_IN_NAME)));
        }
    }
}

#[test]
fn write_output_writes_files_and_removes_only_its_own_stale_drop_ins() {
    use super::write::write_output;
    let dir = TempDir::new("generate-out");
    let stale = dir.path().join("etc/systemd/system/gone.service.d");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join(DROP_IN_NAME), format!("{MARK} 0.0.1 at then\n[Unit]\n")).unwrap();
    let foreign = dir.path().join("etc/systemd/system/admin.service.d");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join(DROP_IN_NAME), "[Unit]\nWants=x.service\n").unwrap();

    let p = example_profile();
    let out = gen(&p, &Target::from_profile(&p), LockPoint::AfterUdev);
    let done = write_output(dir.path(), &out).unwrap();
    assert_eq!(done.written.len(), out.files.len());
    for f in &out.files {
        assert_eq!(std::fs::read_to_string(dir.path().join(&f.path)).unwrap(), f.contents);
    }
    assert_eq!(done.removed, [stale.join(DROP_IN_NAME)]);
    assert!(!stale.exists(), "the emptied directory goes too");
    assert!(foreign.join(DROP_IN_NAME).exists(), "a file modtrace did not write stays");
}

#[test]
fn warnings_about_lost_events_reach_the_files() {
    let mut p = example_profile();
    p.sessions[0].lost_events = 7;
    let out = gen(&p, &Target::from_profile(&p), LockPoint::AfterUdev);
    assert!(out.file(MODULES_LOAD).unwrap().contents.contains("# WARNING: 7 kernel events were lost"));
    let list = &out.file(&lock_unit::list_path(&out.plan.release)).unwrap().contents;
    assert!(list.contains("# WARNING: 7 kernel events were lost"), "{list}");
}

/// The issue's measurements: uid 1000's unit named like a display manager, and
/// root in a container's inner system.slice: neither is listed, neither gets a
/// drop-in (also once accepted), and the comments say who asked.
#[test]
fn untrusted_requests_are_not_listed_and_user_or_container_units_get_no_drop_in() {
    use crate::testutil::{untrusted_index, untrusted_profile};
    let mut p = untrusted_profile();
    let target = tree_target(untrusted_index(), &[], &[]);
    let out = gen(&p, &target, LockPoint::AfterUdev);
    let conf = &out.file(MODULES_LOAD).unwrap().contents;
    assert_eq!(listed(conf), ["appletalk", "binfmt_misc", "ext4", "snd_hda_intel"], "{conf}");
    assert!(conf.contains("# NEEDS REVIEW, not listed"), "{conf}");
    assert!(conf.contains("#   vfat: an unprivileged process (uid 1000) in the user unit lightdm.service of uid 1000 (accept: modtrace allow vfat"), "{conf}");
    assert!(
        conf.contains(
            "request for fs-vfat by the user unit lightdm.service of uid 1000 (Xorg, /usr/bin/Xorg, uid 1000); 2 times"
        ),
        "{conf}"
    );
    assert!(
        conf.contains("dummy: root, but in the container web (systemd-nspawn), its unit fake-dm.service"),
        "{conf}"
    );
    let paths: Vec<String> = out.files.iter().map(|f| f.path.display().to_string()).collect();
    assert!(paths.iter().all(|p| !p.contains("lightdm") && !p.contains("fake-dm")), "{paths:?}");
    assert!(paths.contains(&"etc/systemd/system/example.service.d/modtrace-modules.conf".to_string()), "{paths:?}");

    for name in ["vfat", "rtnl-link-dummy"] {
        crate::profile::decide::decide(&mut p, name, crate::profile::Verdict::Allow, NOW).unwrap();
    }
    let out = gen(&p, &target, LockPoint::AfterUdev);
    let conf = &out.file(MODULES_LOAD).unwrap().contents;
    assert_eq!(listed(conf), ["appletalk", "binfmt_misc", "dummy", "ext4", "snd_hda_intel", "vfat"], "{conf}");
    assert!(conf.contains("accepted by an admin (modtrace allow vfat"), "{conf}");
    let paths: Vec<String> = out.files.iter().map(|f| f.path.display().to_string()).collect();
    assert!(paths.iter().all(|p| !p.contains("lightdm") && !p.contains("fake-dm")), "{paths:?}");
    let notes: Vec<&String> = out.plan.other_units.values().collect();
    assert!(notes.iter().any(|n| n.contains("user unit lightdm.service of uid 1000")), "{notes:?}");
}

/// A denied module and one the site disables are never listed; --deny refuses both.
#[test]
fn denied_and_site_disabled_modules_are_not_listed_and_deny_refuses_them() {
    let mut p = example_profile();
    crate::profile::decide::decide(&mut p, "binfmt_misc", crate::profile::Verdict::Deny, NOW).unwrap();
    let mut o = opts(LockPoint::AfterUdev, true);
    o.site.add_file(
        std::path::Path::new("/etc/modprobe.d/30_security-misc_disable.conf"),
        "install appletalk /bin/disabled-network-by-security-misc\n",
    );
    let target = tree_target(appletalk_index(), &[], &[]);
    let out = generate(&p, &target, &o).unwrap();
    let conf = &out.file(MODULES_LOAD).unwrap().contents;
    assert_eq!(listed(conf), ["ext4", "snd_hda_intel"], "{conf}");
    assert!(conf.contains("#   binfmt_misc: denied by an admin (modtrace deny binfmt_misc"), "{conf}");
    assert!(
        conf.contains("#   appletalk: disabled by site policy: /etc/modprobe.d/30_security-misc_disable.conf:1"),
        "{conf}"
    );
    let deny = &out.file(DENY).unwrap().contents;
    for m in ["binfmt_misc", "appletalk"] {
        assert!(deny.contains(&format!("\ninstall {m} ")), "{m}: {deny}");
    }
    assert!(!deny.contains("\ninstall ext4 "), "{deny}");
    assert!(!out.files.iter().any(|f| f.path.display().to_string().contains("init.scope")));
}

/// blacklist stops loads by alias only: a module the kernel requested is not
/// listed, the same module loaded by name (modprobe NAME) still is.
#[test]
fn a_blacklisted_module_is_held_for_its_alias_loads_only() {
    let p = example_profile();
    let mut o = opts(LockPoint::AfterUdev, false);
    o.site.add_file(std::path::Path::new("/etc/modprobe.d/blacklist.conf"), "blacklist appletalk\nblacklist ext4\n");
    let out = generate(&p, &tree_target(appletalk_index(), &[], &[]), &o).unwrap();
    let conf = &out.file(MODULES_LOAD).unwrap().contents;
    assert_eq!(listed(conf), ["binfmt_misc", "ext4", "snd_hda_intel"], "{conf}");
    assert!(conf.contains("appletalk: blacklisted by site policy (/etc/modprobe.d/blacklist.conf:1)"), "{conf}");
    assert!(out.plan.units.is_empty() || !out.plan.units.values().any(|m| m.contains_key("appletalk")));
}

#[test]
fn a_newline_or_escape_in_a_process_name_stays_inside_one_comment_line() {
    let mut p = example_profile();
    let evil = "x\ninstall evil /bin/sh\r\u{1b}[2J\u{202e}";
    for m in &mut p.modules {
        for t in &mut m.triggers {
            if let Some(r) = &mut t.requester {
                r.comm = evil.to_string();
                r.exe = Some("/tmp/a\nblacklist ext4".to_string());
            }
        }
    }
    let t = tree_target(full_index().module("crc16", &[]), &[], &["dummy"]);
    let out = generate(&p, &t, &opts(LockPoint::AfterUdev, true)).unwrap();
    for f in &out.files {
        let text = &f.contents;
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{}: {text}", f.path.display());
        for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            assert!(!line.contains("evil") && !line.starts_with("blacklist"), "{}: {line:?}", f.path.display());
        }
    }
    let conf = &out.file(MODULES_LOAD).unwrap().contents;
    assert_eq!(listed(conf), ["appletalk", "binfmt_misc", "ext4", "snd_hda_intel"], "{conf}");
    assert!(conf.contains("x\\ninstall evil /bin/sh\\r\\x1b[2J\\u{202e}"), "shown, escaped, on its line: {conf}");
    assert!(conf.contains("/tmp/a\\nblacklist ext4"), "{conf}");
    let deny = &out.file(DENY).unwrap().contents;
    assert!(listed(deny).iter().all(|l| l.starts_with("install ") && !l.contains("evil")), "{deny}");
}
