//! `modtrace check --kernel` and the lock's list across a real upgrade: a
//! profile learned on trixie's 6.12 resolved in trixie-backports' 7.3 tree,
//! both trees side by side as in /lib/modules (MODTRACE_TEST_UPGRADE_FROM and
//! MODTRACE_TEST_UPGRADE_TO, their lib/modules/KVER; `cargo xtask test` sets them).

use std::path::{Path, PathBuf};

use modtrace::needs::{self, sitepolicy::SitePolicy, target};
use modtrace::outputs::upgrade::{self, Fate, Upgrade};
use modtrace::profile::Profile;

fn tree(var: &str) -> PathBuf {
    let dir = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        panic!("{var} is not set: run `cargo xtask test`, which fetches trixie's 6.12 and backports kernels")
    });
    assert!(dir.join("modules.dep.bin").is_file(), "{var}={}: no modules.dep.bin", dir.display());
    dir
}

fn release(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

/// A root whose lib/modules holds the trees named (as links), and whose
/// modprobe.d has trixie's fbdev blacklist (cirrusfb, which a cirrus device's
/// modalias also names).
fn root_with(trees: &[PathBuf]) -> tempfile::TempDir {
    let root = tempfile::Builder::new().prefix("upgrade").tempdir().unwrap();
    let modules = root.path().join("lib/modules");
    std::fs::create_dir_all(&modules).unwrap();
    for t in trees {
        std::os::unix::fs::symlink(t, modules.join(release(t))).unwrap();
    }
    let modprobe_d = root.path().join("usr/lib/modprobe.d");
    std::fs::create_dir_all(&modprobe_d).unwrap();
    std::fs::write(modprobe_d.join("fbdev-blacklist.conf"), "blacklist cirrusfb\n").unwrap();
    root
}

fn trigger(kind: &str, extra: &str) -> String {
    format!(
        r#"{{"kind": "{kind}", {extra} "requester": {{"comm": "x", "pid": 1, "uid": 0, "unit": "init.scope",
            "cgroup": "/init.scope", "scope": {{"kind": "system", "unit": "init.scope"}}}},
            "loader": {{"comm": "modprobe", "uid": 0, "cgroup": "/", "scope": {{"kind": "no_unit"}}}}, "count": 1}}"#
    )
}

fn module(name: &str, trigger: &str) -> String {
    format!(
        r#"{{"name": "{name}", "top_level": true, "depends_on": [], "needed_by": [], "count": 1,
            "first_seen": "2026-12-07T10:00:00Z", "last_seen": "2026-12-07T10:00:00Z", "taints": [],
            "triggers": [{trigger}]}}"#
    )
}

/// What trixie's system test learned on 6.12, in small: the crc32c providers
/// the initramfs loaded, nfnetlink requested by PID 1, a CPU-feature module
/// udev loaded, a cirrus VGA's driver, wireguard, and (with `appletalk`)
/// AppleTalk, which 7.3 no longer has.
fn profile(from: &str, appletalk: bool) -> Profile {
    let cpu = r#""device": {"modalias": "cpu:type:x86,ven0000fam0006mod0006:feature:,0000,0001,0094,00C1\n", "devpath": "/devices/system/cpu/cpu0"},"#;
    let vga = r#""device": {"modalias": "pci:v00001013d000000B8sv00001AF4sd00001100bc03sc00i00", "devpath": "/devices/pci0000:00/0000:00:02.0"},"#;
    let mut modules = vec![
        module("crc32c_generic", &trigger("explicit", "")),
        module("crc32c_intel", &trigger("explicit", "")),
        module("nfnetlink", &trigger("request", r#""alias": "net-pf-16-proto-12","#)),
        module("sha256_ssse3", &trigger("udev", cpu)),
        module("cirrus", &trigger("udev", vga)),
        module("wireguard", &trigger("request", r#""alias": "rtnl-link-wireguard","#)),
    ];
    if appletalk {
        modules.push(module("appletalk", &trigger("request", r#""alias": "net-pf-5","#)));
    }
    let json = format!(
        r#"{{"schema": "modtrace-profile/2", "kernel": "{from}", "host": "test", "boots": [], "sessions": [],
            "modules": [{}], "requests": [], "failed": []}}"#,
        modules.join(",")
    );
    serde_json::from_str(&json).expect("test profile parses")
}

fn fate(u: &Upgrade, module: &str) -> Fate {
    u.changes.iter().find(|c| c.module == module).unwrap_or_else(|| panic!("{module}: {u:?}")).fate.clone()
}

fn compare(root: &Path, profile: &Profile, to: &str) -> Upgrade {
    let target = target::choose(profile, Some(to), Some(&root.join("lib/modules").join(to))).unwrap();
    upgrade::compare(profile, &SitePolicy::read(root), &target).unwrap()
}

#[test]
#[ignore = "needs trixie's two kernel trees: cargo xtask test runs it"]
fn renames_splits_and_built_ins_are_followed_from_6_12_to_7_3() {
    let (from, to) = (tree("MODTRACE_TEST_UPGRADE_FROM"), tree("MODTRACE_TEST_UPGRADE_TO"));
    let root = root_with(&[from.clone(), to.clone()]);
    let p = profile(&release(&from), false);
    let u = compare(root.path(), &p, &release(&to));
    // 7.x's crc32c_cryptoapi answers crypto-crc32c, the alias both had (and
    // jbd2's softdep asks for): followed, not gone.
    assert_eq!(fate(&u, "crc32c_generic"), Fate::Merged("crc32c_cryptoapi".into()), "{u:?}");
    assert_eq!(fate(&u, "crc32c_intel"), Fate::Merged("crc32c_cryptoapi".into()), "{u:?}");
    // CONFIG_NETFILTER_NETLINK=y: net-pf-16-proto-12 is the built-in "netfilter".
    assert_eq!(fate(&u, "nfnetlink"), Fate::BuiltIn(vec!["netfilter".into()]), "{u:?}");
    assert_eq!(fate(&u, "sha256_ssse3"), Fate::BuiltIn(vec!["sha256".into()]), "{u:?}");
    // The device's modalias names cirrusfb (blacklisted) and cirrus_qemu.
    assert_eq!(fate(&u, "cirrus"), Fate::Renamed(vec!["cirrus_qemu".into()]), "{u:?}");
    assert_eq!(fate(&u, "wireguard"), Fate::Same);
    assert!(u.safe(), "{u:?}");

    let (said, status) = upgrade::check_kernel(&p, root.path(), &release(&to)).unwrap();
    let text = said.text(modtrace::said::Stream::Out);
    assert_eq!(status, 0, "{text}");
    assert!(text.contains("crc32c_generic: merged into crc32c_cryptoapi"), "{text}");
    assert!(text.contains("nfnetlink: now built into the kernel, as netfilter"), "{text}");

    // The lock for 7.3 loads the successors and leaves nothing unresolved.
    let beside = root.path().join("lib/modules").join(release(&to));
    let target = target::choose(&p, Some(&release(&to)), Some(&beside)).unwrap();
    let plan = needs::derive(&p, &SitePolicy::read(root.path()), &target).unwrap();
    assert!(plan.unresolved.is_empty(), "{:?}", plan.unresolved);
    let listed: Vec<&str> = plan.top_level.iter().map(String::as_str).collect();
    for m in ["crc32c_cryptoapi", "cirrus_qemu", "wireguard"] {
        assert!(listed.contains(&m), "{m} not listed: {listed:?}");
    }
    assert!(!listed.contains(&"cirrusfb"), "{listed:?}");
}

#[test]
#[ignore = "needs trixie's two kernel trees: cargo xtask test runs it"]
fn a_module_7_3_lacks_is_gone_and_not_safe() {
    let (from, to) = (tree("MODTRACE_TEST_UPGRADE_FROM"), tree("MODTRACE_TEST_UPGRADE_TO"));
    let root = root_with(&[from.clone(), to.clone()]);
    let p = profile(&release(&from), true);
    let (said, status) = upgrade::check_kernel(&p, root.path(), &release(&to)).unwrap();
    let text = said.text(modtrace::said::Stream::Out);
    assert_eq!(status, 1, "{text}");
    assert!(text.contains("appletalk: GONE"), "{text}");
    assert!(text.contains("NOT safe to reboot into"), "{text}");
}

#[test]
#[ignore = "needs trixie's two kernel trees: cargo xtask test runs it"]
fn without_the_learned_tree_a_rename_by_alias_cannot_be_followed() {
    // The old kernel removed first: crc32c_generic's aliases are unknown, so
    // nothing answers its cause by name; said, not guessed.
    let (from, to) = (tree("MODTRACE_TEST_UPGRADE_FROM"), tree("MODTRACE_TEST_UPGRADE_TO"));
    let root = root_with(std::slice::from_ref(&to));
    let u = compare(root.path(), &profile(&release(&from), false), &release(&to));
    assert_eq!(fate(&u, "crc32c_generic"), Fate::Gone, "{u:?}");
    assert!(!u.safe());
}

/// `to`'s tree as a farm of links beside `from` in a new root, without the
/// files of `missing` (as when a module package was not unpacked).
fn root_without(from: &Path, to: &Path, missing: &[&str]) -> tempfile::TempDir {
    let root = root_with(std::slice::from_ref(&from.to_path_buf()));
    link_tree(to, &root.path().join("lib/modules").join(release(to)), missing);
    root
}

fn link_tree(from: &Path, to: &Path, missing: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (name, path) = (entry.file_name(), entry.path());
        if entry.file_type().unwrap().is_dir() {
            link_tree(&path, &to.join(&name), missing);
        } else if !missing.iter().any(|m| name.to_string_lossy().starts_with(&format!("{m}.ko"))) {
            std::os::unix::fs::symlink(&path, to.join(&name)).unwrap();
        }
    }
}

#[test]
#[ignore = "needs trixie's two kernel trees: cargo xtask test runs it"]
fn check_kernel_lists_the_lock_entries_7_3_cannot_load() {
    let (from, to) = (tree("MODTRACE_TEST_UPGRADE_FROM"), tree("MODTRACE_TEST_UPGRADE_TO"));
    let p = profile(&release(&from), false);
    let whole = root_with(&[from.clone(), to.clone()]);
    let (said, status) = upgrade::check_kernel(&p, whole.path(), &release(&to)).unwrap();
    let text = said.text(modtrace::said::Stream::Out);
    assert_eq!(status, 0, "{text}");
    let u = compare(whole.path(), &p, &release(&to));
    assert!(u.unloadable.is_empty() && u.entries >= 3, "{u:?}");
    let all_load = format!("lock list for {}: {} entries, {} load there", release(&to), u.entries, u.entries);
    assert!(text.contains(&all_load), "{text}");

    // wireguard's file missing: a needed entry, so the lock would fail.
    let root = root_without(&from, &to, &["wireguard"]);
    let (said, status) = upgrade::check_kernel(&p, root.path(), &release(&to)).unwrap();
    let text = said.text(modtrace::said::Stream::Out);
    assert_eq!(status, 1, "{text}");
    let file = "its file kernel/drivers/net/wireguard/wireguard.ko.xz is not in";
    assert!(text.contains(&format!("wireguard: CANNOT LOAD on {}", release(&to))) && text.contains(file), "{text}");
    assert!(text.contains("the lock would fail there") && text.contains("NOT safe to reboot into"), "{text}");

    // cirrus_qemu's: a device's driver (ExecStart=- in the lock unit), so only a warning.
    let root = root_without(&from, &to, &["cirrus-qemu"]);
    let (said, status) = upgrade::check_kernel(&p, root.path(), &release(&to)).unwrap();
    let text = said.text(modtrace::said::Stream::Out);
    assert_eq!(status, 0, "{text}");
    assert!(text.contains("cirrus_qemu: cannot load on") && text.contains("a device's driver"), "{text}");
    assert!(text.contains(&format!("{} entries, {} load there", u.entries, u.entries - 1)), "{text}");
}
