//! `KmodIndex` against a real Debian kernel's module tree.
//!
//! MODTRACE_TEST_MODULES names a depmod'ed /lib/modules/KVER directory;
//! `cargo xtask test` provides one and runs them with `--include-ignored`; a
//! plain `cargo test` lists them as ignored, never as passed. Run by hand
//! without the variable they fail rather than pass.

use std::path::PathBuf;

use modtrace::trace::modindex::{KmodIndex, ModuleIndex};

fn index() -> KmodIndex {
    let dir = std::env::var_os("MODTRACE_TEST_MODULES").map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "MODTRACE_TEST_MODULES is not set: run `cargo xtask test`, which fetches a Debian \
             kernel, runs depmod and points this variable at its lib/modules/KVER"
        )
    });
    KmodIndex::open(&dir).unwrap_or_else(|e| panic!("MODTRACE_TEST_MODULES={}: {e}", dir.display()))
}

#[test]
#[ignore = "needs a Debian kernel tree: cargo xtask test runs it (MODTRACE_TEST_MODULES)"]
fn socket_family_alias_resolves_with_its_dependencies() {
    let idx = index();
    assert_eq!(idx.resolve("net-pf-5"), ["appletalk"]);
    let mut deps = idx.depends_on("appletalk");
    deps.sort();
    assert_eq!(deps, ["llc", "psnap"]);
    let closure = idx.closure("appletalk");
    assert_eq!(closure.last().map(String::as_str), Some("appletalk"));
    assert!(closure.contains(&"llc".to_string()) && closure.contains(&"psnap".to_string()), "{closure:?}");
}

#[test]
#[ignore = "needs a Debian kernel tree: cargo xtask test runs it (MODTRACE_TEST_MODULES)"]
fn filesystem_and_link_aliases_resolve() {
    let idx = index();
    assert_eq!(idx.resolve("fs-binfmt_misc"), ["binfmt_misc"]);
    assert_eq!(idx.resolve("rtnl-link-dummy"), ["dummy"]);
    assert_eq!(idx.resolve("net-pf-38"), ["af_alg"]);
}

#[test]
#[ignore = "needs a Debian kernel tree: cargo xtask test runs it (MODTRACE_TEST_MODULES)"]
fn module_names_resolve_to_themselves_and_dependencies_follow() {
    let idx = index();
    assert_eq!(idx.resolve("vfat"), ["vfat"]);
    assert_eq!(idx.depends_on("vfat"), ["fat"]);
    assert_eq!(idx.closure("vfat"), ["fat", "vfat"]);
}

#[test]
#[ignore = "needs a Debian kernel tree: cargo xtask test runs it (MODTRACE_TEST_MODULES)"]
fn unknown_alias_resolves_to_nothing() {
    let idx = index();
    assert!(idx.resolve("net-pf-9999-no-such-thing").is_empty());
    assert!(idx.depends_on("no_such_module").is_empty());
    // Asked twice: the cached answer is the same.
    assert!(idx.resolve("net-pf-9999-no-such-thing").is_empty());
}

#[test]
#[ignore = "needs a Debian kernel tree: cargo xtask test runs it (MODTRACE_TEST_MODULES)"]
fn a_tree_without_depmod_output_is_refused() {
    let err = KmodIndex::open(std::path::Path::new("/nonexistent/lib/modules/0.0")).unwrap_err();
    assert!(err.to_string().contains("depmod"), "{err}");
}

#[test]
#[ignore = "needs a Debian kernel tree: cargo xtask test runs it (MODTRACE_TEST_MODULES)"]
fn softdeps_resolve_to_modules_and_come_first_and_builtins_are_known() {
    let idx = index();
    // modules.softdep: "softdep ext4 pre: crypto-crc32c".
    let (pre, post) = idx.softdeps("ext4");
    assert!(pre.contains(&"crc32c_generic".to_string()), "{pre:?}");
    assert!(post.is_empty(), "{post:?}");
    let order = idx.load_order("ext4");
    let at = |m: &str| order.iter().position(|x| x == m).unwrap_or_else(|| panic!("{m} not in {order:?}"));
    assert!(at("crc32c_generic") < at("ext4") && at("jbd2") < at("ext4"), "{order:?}");
    assert!(!idx.closure("ext4").contains(&"crc32c_generic".to_string()));
    assert!(idx.builtin("unix") && idx.builtin("af_packet"));
    assert!(!idx.builtin("appletalk") && !idx.builtin("no_such_module"));
}

/// What explains a module found loaded, resolved in a real kernel's index: a
/// present device's modalias (udev's wildcards), and ext4's dependencies and
/// its softdep (modules.softdep: crypto-crc32c) when ext4 is trusted.
#[test]
#[ignore = "needs a Debian kernel tree: cargo xtask test runs it (MODTRACE_TEST_MODULES)"]
fn preload_sources_resolve_in_a_real_index() {
    use modtrace::profile::{coldplug, preload};
    use std::collections::{BTreeMap, BTreeSet};
    let idx = index();
    let sys = std::env::temp_dir().join(format!("modtrace-preload-{}", std::process::id()));
    let dev = sys.join("devices/pci0000:00/0000:00:03.0/virtio0");
    std::fs::create_dir_all(&dev).unwrap();
    std::fs::write(dev.join("modalias"), "virtio:d00000001v00001AF4\n").unwrap();
    let reasons = coldplug::reasons(&sys, &idx);
    std::fs::remove_dir_all(&sys).unwrap();
    assert_eq!(
        reasons.get("virtio_net").map(String::as_str),
        Some("udev coldplug: device virtio:d00000001v00001AF4 at /sys/devices/pci0000:00/0000:00:03.0/virtio0")
    );
    let loaded = ["ext4", "jbd2", "mbcache", "crc16", "crc32c_generic", "appletalk"].map(String::from).to_vec();
    let trusted = BTreeSet::from(["ext4".to_string()]);
    let deps = preload::dependency_reasons(&loaded, &BTreeMap::new(), &trusted, &idx);
    assert_eq!(deps.get("jbd2").map(String::as_str), Some("a dependency of ext4, which is trusted"));
    assert_eq!(deps.get("crc32c_generic").map(String::as_str), Some("a softdep of ext4, which is trusted"));
    assert!(!deps.contains_key("appletalk"), "{deps:?}");
}
