//! `modtrace generate`, `check` and `lock` against a real Debian kernel's module
//! tree (MODTRACE_TEST_MODULES, as for kernel_index.rs; `cargo xtask test` sets
//! it): aliases and devices resolved in that kernel, built-in modules, modules
//! it does not have, the deny list; and the commands' exit codes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use modtrace::needs::{self, target::Target};
use modtrace::outputs::generate::{self, LockPoint, Options};
use modtrace::profile::Profile;

const KVER: &str = "6.1.0-56-amd64";

fn tree() -> PathBuf {
    let dir = std::env::var_os("MODTRACE_TEST_MODULES").map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "MODTRACE_TEST_MODULES is not set: run `cargo xtask test`, which fetches a Debian \
             kernel, runs depmod and points this variable at its lib/modules/KVER"
        )
    });
    assert!(dir.join("modules.dep.bin").is_file(), "MODTRACE_TEST_MODULES={}: no modules.dep.bin", dir.display());
    dir
}

fn requester(comm: &str, unit: &str) -> String {
    let cgroup = if unit == "init.scope" { "/init.scope".to_string() } else { format!("/system.slice/{unit}") };
    format!(
        r#"{{"comm": "{comm}", "exe": "/usr/bin/{comm}", "pid": 42, "uid": 0, "unit": "{unit}", "cgroup": "{cgroup}",
             "scope": {{"kind": "system", "unit": "{unit}"}}}}"#
    )
}

fn module(name: &str, triggers: &str) -> String {
    format!(
        r#"{{"name": "{name}", "top_level": true, "depends_on": [], "needed_by": [], "count": 1,
            "first_seen": "2024-03-01T10:00:00Z", "last_seen": "2024-03-01T10:00:00Z", "taints": [],
            "triggers": [{triggers}]}}"#
    )
}

/// A profile learned on an older kernel: appletalk under an old name, found
/// through its alias; vfat loaded by a service; a NIC driver by udev; ipv6
/// requested (built into Debian's kernel); a module this kernel does not have.
fn profile_json() -> String {
    let modprobe = r#"{"comm": "modprobe", "exe": "/usr/bin/kmod", "uid": 0, "unit": null, "cgroup": "/", "scope": {"kind": "no_unit"}}"#;
    let modules = [
        module(
            "appletalk_old",
            &format!(
                r#"{{"kind": "request", "alias": "net-pf-5", "requester": {}, "loader": {modprobe}, "count": 2}}"#,
                requester("python3", "example.service")
            ),
        ),
        module(
            "binfmt_misc",
            &format!(
                r#"{{"kind": "request", "alias": "fs-binfmt_misc", "requester": {}, "loader": {modprobe}, "count": 1}}"#,
                requester("systemd", "init.scope")
            ),
        ),
        module(
            "e1000e",
            r#"{"kind": "udev", "device": {"modalias": "pci:v00008086d000015B8sv00001028sd000007A1bc02sc00i00", "devpath": "/devices/pci0000:00/0000:00:1f.6"},
                "loader": {"comm": "systemd-udevd", "uid": 0, "unit": "systemd-udevd.service", "scope": {"kind": "system", "unit": "systemd-udevd.service"}}, "count": 1}"#,
        ),
        module(
            "ipv6",
            &format!(
                r#"{{"kind": "request", "alias": "net-pf-10", "requester": {}, "loader": {modprobe}, "count": 1}}"#,
                requester("sshd", "ssh.service")
            ),
        ),
        // Configured at boot, so trusted: a need this kernel cannot meet.
        module("no_such_module_xyz", r#"{"kind": "preloaded", "reason": "/etc/modules-load.d/old.conf", "count": 1}"#),
        module(
            "vfat",
            &format!(
                r#"{{"kind": "explicit", "requester": {}, "loader": {{"comm": "modprobe", "exe": "/usr/bin/kmod", "uid": 0, "unit": "mounter.service", "scope": {{"kind": "system", "unit": "mounter.service"}}}}, "count": 3}}"#,
                requester("mounter", "mounter.service")
            ),
        ),
    ];
    format!(
        r#"{{"schema": "modtrace-profile/2", "kernel": "6.1.0-18-amd64", "host": "test", "boots": [], "sessions": [],
            "modules": [{}], "requests": [], "failed": []}}"#,
        modules.join(",")
    )
}

fn profile() -> Profile {
    serde_json::from_str(&profile_json()).expect("test profile parses")
}

fn opts(deny: bool) -> Options {
    Options {
        profile_path: "/var/lib/modtrace/profile.json".into(),
        lock_point: LockPoint::AfterUdev,
        deny,
        now: "2024-03-02T08:00:00Z".into(),
        command: "test".into(),
        site: Default::default(),
    }
}

fn listed(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
}

#[test]
#[ignore = "needs a Debian kernel tree: cargo xtask test runs it (MODTRACE_TEST_MODULES)"]
fn aliases_devices_and_names_resolve_in_the_target_kernel() {
    let t = Target::open(KVER, &tree()).unwrap();
    let out = generate::generate(&profile(), &t, &opts(false)).unwrap();
    let conf = &out.file(generate::MODULES_LOAD).unwrap().contents;
    assert_eq!(listed(conf), ["appletalk", "binfmt_misc", "e1000e", "vfat"], "{conf}");
    // The request's alias, not the old name, decided.
    assert!(
        conf.contains("learned as appletalk_old; in 6.1.0-56-amd64 alias net-pf-5 resolves to appletalk"),
        "{conf}"
    );
    assert!(conf.contains("# appletalk, with llc, psnap:"), "{conf}");
    // ipv6 is built into Debian's 6.1: noted, not listed.
    assert!(out.plan.builtin.contains_key("ipv6"), "{:?}", out.plan.builtin.keys());
    assert!(conf.contains("# Built into kernel 6.1.0-56-amd64, so not listed:\n#   ipv6:"), "{conf}");
    // The module this kernel does not have is reported, in the file too.
    assert_eq!(out.plan.unresolved.len(), 1, "{:?}", out.plan.unresolved);
    assert_eq!(out.plan.unresolved[0].learned_as, "no_such_module_xyz");
    assert!(conf.contains("#   - no_such_module_xyz: module no_such_module_xyz resolves to no module"), "{conf}");
    // Drop-ins: the services, not PID 1, not ssh.service (its module is built in).
    let dropin =
        |u: &str| out.file(&format!("etc/systemd/system/{u}.d/modtrace-modules.conf")).map(|f| f.contents.clone());
    assert!(dropin("example.service")
        .unwrap()
        .contains("Wants=modprobe@appletalk.service\nAfter=modprobe@appletalk.service\n"));
    assert!(dropin("mounter.service").unwrap().contains("Wants=modprobe@vfat.service\n"));
    assert!(dropin("ssh.service").is_none());
    let list = &out.file(&list_of(KVER)).unwrap().contents;
    assert!(list.contains("MODTRACE_NEEDED=\"appletalk binfmt_misc vfat\"\n"), "{list}");
    // The NIC's driver only udev loaded: a failure to load it does not stop the lock.
    assert!(list.contains("MODTRACE_DEVICES=\"e1000e\"\n"), "{list}");
}

/// The lock's list for kernel `release`, relative to the root.
fn list_of(release: &str) -> String {
    generate::lock_unit::list_path(release)
}

fn copy_index(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    // libkmod looks at the module files of dependencies: link them, copy the indexes.
    std::os::unix::fs::symlink(tree().join("kernel"), to.join("kernel")).unwrap();
    for e in std::fs::read_dir(tree()).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("modules.") {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

#[test]
#[ignore = "needs a Debian kernel tree: cargo xtask test runs it (MODTRACE_TEST_MODULES)"]
fn a_module_built_in_per_modules_builtin_is_noted_not_listed() {
    let tmp = tempfile::Builder::new().prefix("builtin").tempdir().unwrap();
    let dir = tmp.path().join(KVER);
    copy_index(&dir);
    let mut builtin = std::fs::read_to_string(dir.join("modules.builtin")).unwrap();
    builtin.push_str("kernel/fs/fat/vfat.ko\n");
    std::fs::write(dir.join("modules.builtin"), builtin).unwrap();
    let t = Target::open(KVER, &dir).unwrap();
    let out = generate::generate(&profile(), &t, &opts(false)).unwrap();
    let conf = &out.file(generate::MODULES_LOAD).unwrap().contents;
    assert_eq!(listed(conf), ["appletalk", "binfmt_misc", "e1000e"], "{conf}");
    assert!(out.plan.builtin.contains_key("vfat"));
    assert!(out.file("etc/systemd/system/mounter.service.d/modtrace-modules.conf").is_none());
}

#[test]
#[ignore = "needs a Debian kernel tree: cargo xtask test runs it (MODTRACE_TEST_MODULES)"]
fn deny_list_covers_the_rest_of_the_kernel() {
    let t = Target::open(KVER, &tree()).unwrap();
    let out = generate::generate(&profile(), &t, &opts(true)).unwrap();
    let deny = &out.file(generate::DENY).unwrap().contents;
    let denied: BTreeSet<&str> = listed(deny).iter().map(|l| l.split_whitespace().nth(1).unwrap()).collect();
    for kept in ["appletalk", "psnap", "llc", "vfat", "fat", "binfmt_misc", "e1000e"] {
        assert!(!denied.contains(kept), "{kept} denied");
    }
    for gone in ["dummy", "8021q", "wireguard", "af_alg"] {
        assert!(denied.contains(gone), "{gone} not denied");
    }
    assert!(!denied.contains("ipv6"), "a built-in module is not a file modprobe could load");
    let all = t.all_modules().unwrap().len();
    assert!(denied.len() > all - 30 && denied.len() < all, "{} of {all}", denied.len());
}

fn modtrace(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_modtrace")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs a Debian kernel tree: cargo xtask test runs it (MODTRACE_TEST_MODULES)"]
fn generate_exits_non_zero_on_unresolved_entries_unless_allowed() {
    let tmp = tempfile::Builder::new().prefix("cli").tempdir().unwrap();
    let p = tmp.path().join("profile.json");
    std::fs::write(&p, profile_json()).unwrap();
    let out = tmp.path().join("out");
    let tree = tree();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> =
            ["generate", "--profile", p.to_str().unwrap(), "--out", out.to_str().unwrap(), "--kernel", KVER]
                .iter()
                .map(|s| s.to_string())
                .collect();
        a.extend(["--modules-dir".to_string(), tree.to_string_lossy().into_owned()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |a: Vec<String>| modtrace(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let (code, stdout, stderr) = run(args(&[]));
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(stderr.contains("unresolved in 6.1.0-56-amd64: no_such_module_xyz"), "{stderr}");
    assert!(stdout.contains("wrote ") && out.join("etc/modules-load.d/modtrace.conf").is_file(), "{stdout}");
    let (code, _, stderr) = run(args(&["--allow-unresolved"]));
    assert_eq!(code, 0, "{stderr}");

    // A profile that tries to inject: refused, naming the entry, nothing written.
    let evil = profile_json().replace("\"mounter.service\"", "\"a b.service\"");
    std::fs::write(&p, evil).unwrap();
    let out2 = tmp.path().join("out2");
    let (code, _, stderr) = modtrace(&["generate", "--profile", p.to_str().unwrap(), "--out", out2.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("invalid unit name \"a b.service\""), "{stderr}");
    assert!(!out2.exists(), "nothing is written for a refused profile");
}

/// A root with the running kernel's files: proc, sys, and lib/modules/KVER.
fn system_root(tmp: &tempfile::TempDir, proc_modules: &str) -> PathBuf {
    let root = tmp.path().join("root");
    let put = |path: &str, text: &str| {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    put("proc/sys/kernel/osrelease", &format!("{KVER}\n"));
    put("proc/sys/kernel/modules_disabled", "0\n");
    put("proc/sys/kernel/modprobe", "/sbin/modprobe\n");
    put("proc/modules", proc_modules);
    put("proc/cmdline", "root=/dev/vda1\n");
    std::fs::create_dir_all(root.join("lib/modules")).unwrap();
    std::os::unix::fs::symlink(tree(), root.join("lib/modules").join(KVER)).unwrap();
    root
}

#[test]
#[ignore = "needs a Debian kernel tree: cargo xtask test runs it (MODTRACE_TEST_MODULES)"]
fn check_and_lock_on_a_system_root() {
    let tmp = tempfile::Builder::new().prefix("check").tempdir().unwrap();
    let p = tmp.path().join("profile.json");
    // Without the module this kernel lacks, the profile is complete for it.
    let mut prof = profile();
    prof.modules.retain(|m| m.name != "no_such_module_xyz");
    std::fs::write(&p, prof.to_json()).unwrap();
    let loaded = "appletalk 1 0 - Live 0x0\npsnap 1 1 appletalk, Live 0x0\nllc 1 2 appletalk,psnap, Live 0x0\n\
                  binfmt_misc 1 1 - Live 0x0\ne1000e 1 0 - Live 0x0\nvfat 1 0 - Live 0x0\nfat 1 1 vfat, Live 0x0\n";
    let root = system_root(&tmp, loaded);
    let (code, stdout, _) = modtrace(&["check", "--profile", p.to_str().unwrap(), "--root", root.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("safe to lock"), "{stdout}");

    // An unknown module loaded now: a blocker, exit 1.
    std::fs::write(root.join("proc/modules"), format!("{loaded}wireguard 1 0 - Live 0x0\n")).unwrap();
    let (code, stdout, _) = modtrace(&["check", "--profile", p.to_str().unwrap(), "--root", root.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("wireguard is loaded now but not in the profile"), "{stdout}");

    // lock --dry-run: refuses because of the blocker, changes nothing.
    let (code, stdout, stderr) =
        modtrace(&["lock", "--dry-run", "--profile", p.to_str().unwrap(), "--root", root.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("modtrace check found 1 blocker(s)"), "{stdout}");
    // --force --dry-run: every step printed, still nothing changed.
    let (code, stdout, stderr) =
        modtrace(&["lock", "--dry-run", "--force", "--profile", p.to_str().unwrap(), "--root", root.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("appletalk: already loaded"), "{stdout}");
    assert!(stdout.contains("would write 1 to /proc/sys/kernel/modules_disabled"), "{stdout}");
    assert_eq!(std::fs::read_to_string(root.join("proc/sys/kernel/modules_disabled")).unwrap(), "0\n");
}

/// The CPU's modalias from the two-boot system test (a QEMU guest's AMD CPU), with
/// the newline the kernel ends it with. In Debian's 6.1 it names amd64_edac,
/// kvm_amd, powernow_k8, the crypto and crc modules and more.
const CPU_MODALIAS: &str = "cpu:type:x86,ven0002fam000Fmod006B:feature:,0000,0002,0003,0004,0005,0006,0007,0008,0009,000B,000C,000D,000E,000F,0010,0011,0013,0016,0017,0018,0019,001A,001B,001C,0020,0022,0023,0024,0025,0026,0027,0028,0029,002B,002C,002D,002E,002F,0030,0031,0034,0036,0037,0038,003A,003B,003D,003E,003F,0064,006E,0070,0072,0074,0075,0079,007A,0080,0081,0083,0089,008C,008D,0093,0094,0096,0097,0099,009A,009B,009C,009D,009E,009F,00C0,00C1,00C2,00C4,00C5,00C6,00C8,00ED,00F3,010F,0120,0123,0125,0127,0128,0129,012E,0133,0134,0136,0137,0138,0140,0142,0165,016C,01C2,01E0,01F0,01FC,0202,0203,0204,0209,0210,021F\n";

/// What udev loaded for that CPU in the system test, as its profile recorded it:
/// module, dependencies; every one with the CPU's udev trigger (the
/// dependencies too). amd64_edac failed to load (no EDAC in a VM) after its
/// dependency edac_mce_amd had loaded; with `without`, the modules of the run
/// where kvm_amd and powernow_k8 failed as well.
fn cpu_profile_json(without: &[&str]) -> String {
    let loaded: &[(&str, &[&str])] = &[
        ("aesni_intel", &["cryptd", "crypto_simd"]),
        ("ccp", &[]),
        ("crc32_pclmul", &[]),
        ("crct10dif_common", &[]),
        ("crct10dif_pclmul", &["crct10dif_common"]),
        ("cryptd", &[]),
        ("crypto_simd", &["cryptd"]),
        ("edac_mce_amd", &[]),
        ("ghash_clmulni_intel", &["cryptd"]),
        ("irqbypass", &[]),
        ("kvm", &["irqbypass"]),
        ("kvm_amd", &["ccp", "irqbypass", "kvm"]),
        ("powernow_k8", &[]),
        ("sha1_ssse3", &[]),
        ("sha256_ssse3", &[]),
        ("sha512_generic", &[]),
        ("sha512_ssse3", &["sha512_generic"]),
    ];
    let loaded: Vec<_> = loaded.iter().filter(|(m, _)| !without.contains(m)).collect();
    let trigger = format!(
        r#"{{"kind": "udev", "loader": {{"comm": "(udev-worker)", "exe": "/usr/bin/udevadm", "uid": 0, "unit": "systemd-udevd.service",
                                       "scope": {{"kind": "system", "unit": "systemd-udevd.service"}}}},
            "device": {{"modalias": {}, "devpath": "/devices/system/cpu/cpu1"}}, "count": 1}}"#,
        serde_json::to_string(CPU_MODALIAS).unwrap()
    );
    let modules: Vec<String> = loaded
        .iter()
        .map(|(name, deps)| {
            let needed_by: Vec<String> =
                loaded.iter().filter(|(_, d)| d.contains(name)).map(|(m, _)| format!("\"{m}\"")).collect();
            let deps: Vec<String> = deps.iter().map(|d| format!("\"{d}\"")).collect();
            format!(
                r#"{{"name": "{name}", "top_level": {}, "depends_on": [{}], "needed_by": [{}], "count": 1,
                    "first_seen": "2026-11-27T22:40:51Z", "last_seen": "2026-11-27T22:40:51Z", "taints": [],
                    "triggers": [{trigger}]}}"#,
                needed_by.is_empty(),
                deps.join(", "),
                needed_by.join(", ")
            )
        })
        .collect();
    format!(
        r#"{{"schema": "modtrace-profile/2", "kernel": "{KVER}", "host": "modtrace-test", "boots": [], "sessions": [],
            "modules": [{}], "requests": [],
            "failed": [{{"module": null, "syscall": "finit_module", "ret": -19, "error": "ENODEV",
                         "loader": {{"comm": "(udev-worker)", "exe": "/usr/bin/udevadm", "uid": 0, "unit": "systemd-udevd.service",
                                       "scope": {{"kind": "system", "unit": "systemd-udevd.service"}}}},
                         "count": 7, "first_seen": "2026-11-27T22:40:51Z", "last_seen": "2026-11-27T22:41:00Z"}}]}}"#,
        modules.join(",")
    )
}

/// /proc/modules with every module of `profile` loaded.
fn proc_modules_of(profile: &Profile) -> String {
    profile.modules.iter().map(|m| format!("{} 16384 0 - Live 0x0\n", m.name)).collect()
}

#[test]
#[ignore = "needs a Debian kernel tree: cargo xtask test runs it (MODTRACE_TEST_MODULES)"]
fn check_right_after_generate_on_the_same_kernel_finds_no_blocker() {
    // The modalias really names more than what loaded in this kernel.
    let t = Target::open(KVER, &tree()).unwrap();
    let named = t.lookup(CPU_MODALIAS.trim()).loadable;
    for m in ["amd64_edac", "kvm_amd", "powernow_k8", "aesni_intel", "edac_mce_amd", "kvm_intel"] {
        // Not edac_mce_amd (amd64_edac's dependency), nor kvm_intel (no VMX).
        assert_eq!(named.contains(&m.to_string()), !m.starts_with("edac") && m != "kvm_intel", "{m}: {named:?}");
    }
    for without in [&[][..], &["kvm_amd", "powernow_k8"][..]] {
        let tmp = tempfile::Builder::new().prefix("cpu").tempdir().unwrap();
        let p = tmp.path().join("profile.json");
        std::fs::write(&p, cpu_profile_json(without)).unwrap();
        let prof: Profile = serde_json::from_str(&cpu_profile_json(without)).unwrap();
        let root = system_root(&tmp, &proc_modules_of(&prof));

        // One definition of what the profile needs: as learned, or resolved in
        // the same kernel, the same modules.
        let learned = needs::plan(&prof, &Target::from_profile(&prof)).unwrap();
        let resolved = needs::plan(&prof, &t).unwrap();
        assert_eq!(resolved.needs.keys().collect::<Vec<_>>(), learned.needs.keys().collect::<Vec<_>>());
        assert_eq!(resolved.top_level, learned.top_level);
        assert!(resolved.unresolved.is_empty(), "{:?}", resolved.unresolved);

        // The documented workflow: generate --out /, then check.
        let (code, stdout, stderr) =
            modtrace(&["generate", "--profile", p.to_str().unwrap(), "--out", root.to_str().unwrap()]);
        assert_eq!(code, 0, "{stdout}\n{stderr}");
        let (code, stdout, stderr) =
            modtrace(&["check", "--profile", p.to_str().unwrap(), "--root", root.to_str().unwrap()]);
        assert_eq!(code, 0, "without {without:?}:\n{stdout}\n{stderr}");
        assert!(stdout.contains("safe to lock: no blocker found"), "{stdout}");
        assert!(!stdout.contains("amd64_edac"), "{stdout}");

        // With --kernel for the same kernel: the same list.
        let written = std::fs::read_to_string(root.join(list_of(KVER))).unwrap();
        let out = generate::generate(&prof, &t, &opts(false)).unwrap();
        let vars = |text: &str| text.lines().filter(|l| l.starts_with("MODTRACE_")).collect::<Vec<_>>().join("\n");
        assert_eq!(vars(&written), vars(&out.file(&list_of(KVER)).unwrap().contents));
        assert!(!vars(&written).contains("amd64_edac"), "{written}");
    }
}

#[test]
#[ignore = "needs a Debian kernel tree: cargo xtask test runs it (MODTRACE_TEST_MODULES)"]
fn check_still_names_a_module_the_installed_lock_does_not_load() {
    let tmp = tempfile::Builder::new().prefix("cpu-gap").tempdir().unwrap();
    let p = tmp.path().join("profile.json");
    std::fs::write(&p, cpu_profile_json(&["powernow_k8"])).unwrap();
    let root = system_root(&tmp, "");
    let (code, _, stderr) = modtrace(&["generate", "--profile", p.to_str().unwrap(), "--out", root.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    // Learned again since: powernow_k8 loaded this time; the lock is now stale.
    std::fs::write(&p, cpu_profile_json(&[])).unwrap();
    let prof: Profile = serde_json::from_str(&cpu_profile_json(&[])).unwrap();
    std::fs::write(root.join("proc/modules"), proc_modules_of(&prof)).unwrap();
    let (code, stdout, _) = modtrace(&["check", "--profile", p.to_str().unwrap(), "--root", root.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    let blockers: Vec<&str> = stdout.lines().filter(|l| l.starts_with("  - ")).collect();
    assert_eq!(
        blockers,
        ["  - the installed modtrace-lock.service does not load powernow_k8, which the profile needs: regenerate (modtrace generate --out /)"],
        "{stdout}"
    );
}

fn hook(root: &Path, profile: &Path, binary: &str) -> (i32, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/kernel/postinst.d/modtrace");
    let out = Command::new("sh")
        .arg(&script)
        .arg(KVER)
        .arg(format!("/boot/vmlinuz-{KVER}"))
        .env("MODTRACE", binary)
        .env("MODTRACE_PROFILE", profile)
        .env("MODTRACE_ROOT", root)
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
#[ignore = "needs a Debian kernel tree: cargo xtask test runs it (MODTRACE_TEST_MODULES)"]
fn kernel_postinst_hook_regenerates_an_enabled_lock_and_never_fails() {
    let tmp = tempfile::Builder::new().prefix("hook").tempdir().unwrap();
    let p = tmp.path().join("profile.json");
    std::fs::write(&p, profile_json()).unwrap();
    let root = system_root(&tmp, "");
    let unit = root.join(generate::LOCK_UNIT);
    let bin = env!("CARGO_BIN_EXE_modtrace");
    // No lock set up: nothing happens.
    assert_eq!(hook(&root, &p, bin), (0, String::new()));

    // A lock generated for the kernel the profile was learned on, early lock point.
    let (code, _, stderr) = modtrace(&[
        "generate",
        "--profile",
        p.to_str().unwrap(),
        "--out",
        root.to_str().unwrap(),
        "--lock-point",
        "early",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let before = std::fs::read_to_string(&unit).unwrap();
    let (old_list, new_list) = (root.join(list_of("6.1.0-18-amd64")), root.join(list_of(KVER)));
    let old = std::fs::read_to_string(&old_list).unwrap();
    assert!(old.contains("MODTRACE_NEEDED=\"appletalk_old binfmt_misc ipv6 no_such_module_xyz vfat\"\n"), "{old}");
    // Installed but not enabled: left alone.
    let (code, stderr) = hook(&root, &p, bin);
    assert_eq!((code, stderr.as_str()), (0, ""));
    assert_eq!(std::fs::read_to_string(&unit).unwrap(), before);

    // Enabled, but the new kernel lacks a module the profile needs: check
    // --kernel says so, and no lock is installed for it.
    let wants = root.join("etc/systemd/system/sysinit.target.wants");
    std::fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink("../modtrace-lock.service", wants.join("modtrace-lock.service")).unwrap();
    let (code, stderr) = hook(&root, &p, bin);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read_to_string(&unit).unwrap(), before);
    assert!(!new_list.exists(), "no list for the new kernel");
    assert!(stderr.contains("check: NOT safe to reboot into 6.1.0-56-amd64 locked"), "{stderr}");
    assert!(stderr.contains("check:   no_such_module_xyz: GONE"), "{stderr}");
    assert!(stderr.contains("no module lock is installed for it, so it boots unlocked"), "{stderr}");

    // Without that need: regenerated for the new kernel, lock point kept.
    let mut without: serde_json::Value = serde_json::from_str(&profile_json()).unwrap();
    without["modules"].as_array_mut().unwrap().retain(|m| m["name"] != "no_such_module_xyz");
    std::fs::write(&p, without.to_string()).unwrap();
    let (code, stderr) = hook(&root, &p, bin);
    assert_eq!(code, 0, "{stderr}");
    let after = std::fs::read_to_string(&unit).unwrap();
    assert!(after.contains("X-Modtrace-LockPoint=early\n"), "{after}");
    let new = std::fs::read_to_string(&new_list).unwrap();
    assert!(new.contains("MODTRACE_NEEDED=\"appletalk binfmt_misc vfat\"\n"), "{new}");
    // The previous kernel keeps its own list: its boot stays locked.
    assert_eq!(std::fs::read_to_string(&old_list).unwrap(), old);
    assert!(stderr.contains("check: safe to reboot into 6.1.0-56-amd64"), "{stderr}");
    assert!(stderr.contains("check:   appletalk_old: renamed to appletalk"), "{stderr}");
    assert!(stderr.contains("module lock regenerated (lock point early)"), "{stderr}");

    // Whatever goes wrong, the kernel installation goes on.
    let (code, stderr) = hook(&root, &p, "/nonexistent/modtrace");
    assert_eq!(code, 0);
    assert!(stderr.contains("will boot without the module lock"), "{stderr}");
    std::fs::write(&p, "{ not json").unwrap();
    let (code, stderr) = hook(&root, &p, bin);
    assert_eq!(code, 0);
    assert!(stderr.contains("could not decide (exit 1)"), "{stderr}");
}

/// The hook with a stand-in for modtrace that says `said` and exits `code`;
/// `pins`: where a guard would be pinned (the root has no lock set up).
fn guard_hook(tmp: &tempfile::TempDir, pins: &Path, said: &str, code: i32) -> (i32, String, String) {
    let calls = tmp.path().join("calls");
    let fake = tmp.path().join("fake-modtrace");
    std::fs::write(&fake, format!("#!/bin/sh\necho \"$@\" >>{}\necho '{said}'\nexit {code}\n", calls.display()))
        .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/kernel/postinst.d/modtrace");
    let out = Command::new("sh")
        .arg(&script)
        .arg(KVER)
        .env("MODTRACE", &fake)
        .env("MODTRACE_PROFILE", tmp.path().join("none.json"))
        .env("MODTRACE_GUARD_PINS", pins)
        .env("MODTRACE_ROOT", tmp.path().join("root"))
        .output()
        .unwrap();
    let calls = std::fs::read_to_string(&calls).unwrap_or_default();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned(), calls)
}

#[test]
#[ignore = "needs a Debian kernel tree: cargo xtask test runs it (MODTRACE_TEST_MODULES)"]
fn kernel_postinst_hook_refreshes_a_running_guard_for_its_kernel() {
    let tmp = tempfile::Builder::new().prefix("guard-hook").tempdir().unwrap();
    let pins = tmp.path().join("pins");
    // No guard pinned: modtrace is not even asked.
    let (code, stderr, calls) = guard_hook(&tmp, &pins, "", 0);
    assert_eq!((code, stderr.as_str(), calls.as_str()), (0, "", ""));

    std::fs::create_dir_all(&pins).unwrap();
    let (code, stderr, calls) = guard_hook(&tmp, &pins, "modtrace: guard policy replaced", 0);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(calls, format!("guard refresh --kernel {KVER}\n"));
    assert!(stderr.contains(&format!("modtrace (kernel {KVER}): modtrace: guard policy replaced")), "{stderr}");

    // The refresh cannot: what it says to run is passed on, and the installation goes on.
    let said = "modtrace: error: a guard runs but /run/modtrace/guard.json is missing; run: modtrace guard start --mode complain|enforce";
    let (code, stderr, _) = guard_hook(&tmp, &pins, said, 1);
    assert_eq!(code, 0);
    assert!(stderr.contains("run: modtrace guard start --mode complain|enforce"), "{stderr}");
    assert!(stderr.contains("the running guard was not refreshed (exit 1)"), "{stderr}");
}
