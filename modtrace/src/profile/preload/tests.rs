//! The sources that explain a module found loaded when learning starts, each
//! from temp dirs; and what is left: "before learning", cause unknown.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::testutil::TempDir;
use crate::profile::{coldplug, initramfs};
use crate::trace::modindex::StaticIndex;

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn initramfs_tools_and_dracut_configuration_explain_a_module() {
    let dir = TempDir::new("initramfs");
    dir.put("etc/initramfs-tools/modules", "# list\nraid1\n  dm-crypt  \nnvme io_timeout=10\n");
    dir.put("usr/share/initramfs-tools/modules.d/vendor", "virtio_blk\n");
    dir.put("etc/dracut.conf", "add_drivers+=\" e1000e \"  # NIC\nomit_drivers+=\" floppy \"\n");
    dir.put("etc/dracut.conf.d/10-net.conf", "force_drivers+='igb ixgbe'\n#force_drivers+=\" tg3 \"\n");
    dir.put("usr/lib/dracut/dracut.conf.d/10-net.conf", "force_drivers+=\" hidden \"\n");
    dir.put("usr/lib/dracut/dracut.conf.d/50-x.conf", "add_drivers=usb_storage\n");
    dir.put("etc/dracut.conf.d/notes.txt", "add_drivers+=\" ignored \"\n");
    let reasons = initramfs::reasons(&PreloadSources::under(dir.path()));
    let at = |p: &str| dir.join(p).display().to_string();
    assert_eq!(reasons["dm_crypt"], format!("initramfs: {}", at("etc/initramfs-tools/modules")));
    let tools = format!("initramfs: {}", at("etc/initramfs-tools/modules"));
    assert_eq!(reasons["nvme"], tools, "parameters follow the name");
    assert_eq!(reasons["virtio_blk"], format!("initramfs: {}", at("usr/share/initramfs-tools/modules.d/vendor")));
    assert_eq!(reasons["e1000e"], format!("initramfs: add_drivers in {}", at("etc/dracut.conf")));
    assert_eq!(reasons["igb"], format!("initramfs: force_drivers in {}", at("etc/dracut.conf.d/10-net.conf")));
    assert!(reasons.contains_key("ixgbe") && reasons.contains_key("usb_storage") && reasons.contains_key("raid1"));
    for absent in ["floppy", "tg3", "hidden", "ignored", "list"] {
        assert!(!reasons.contains_key(absent), "{absent}: {reasons:?}");
    }
}

#[test]
fn a_device_present_now_explains_its_module_but_a_virtual_one_does_not() {
    let dir = TempDir::new("sysfs");
    dir.put("devices/pci0000:00/0000:00:03.0/virtio0/modalias", "virtio:d00000001v00001AF4\n");
    dir.put("devices/pci0000:00/0000:00:03.0/modalias", "pci:v00001AF4d00001000\n");
    dir.put("devices/platform/pcspkr/modalias", "platform:pcspkr\n");
    dir.put("devices/virtual/input/input9/modalias", "input:b0003v1234p5678e0001-e0,1,k71,\n");
    dir.put("devices/system/cpu/online", "0-1\n");
    std::os::unix::fs::symlink(dir.join("devices/pci0000:00"), dir.join("devices/platform/loop")).unwrap();
    let index = StaticIndex::default()
        .alias("virtio:d00000001v00001AF4", "virtio_net")
        .alias("pci:v00001AF4d00001000", "virtio_pci")
        .alias("input:b0003v1234p5678e0001-e0,1,k71,", "joydev");
    let found = coldplug::devices(dir.path());
    assert_eq!(found.len(), 3, "links not followed, virtual left out: {found:?}");
    let reasons = coldplug::reasons(dir.path(), &index);
    assert_eq!(
        reasons["virtio_net"],
        "udev coldplug: device virtio:d00000001v00001AF4 at /sys/devices/pci0000:00/0000:00:03.0/virtio0"
    );
    assert!(reasons["virtio_pci"].ends_with("at /sys/devices/pci0000:00/0000:00:03.0"), "{reasons:?}");
    assert!(!reasons.contains_key("joydev"), "a device software made is no evidence: {reasons:?}");
    assert!(coldplug::reasons(&dir.join("nope"), &index).is_empty());
}

fn fs_index() -> StaticIndex {
    StaticIndex::default()
        .module("ext4", &["jbd2", "mbcache"])
        .module("jbd2", &[])
        .module("mbcache", &[])
        .module("crc32c_generic", &[])
        .module("atm", &[])
        .module("br2684", &["atm"])
        // Softdeps as libkmod gives them: resolved to modules.
        .softdep("ext4", &["crc32c_generic"], &[])
}

#[test]
fn dependencies_and_softdeps_of_a_trusted_module_are_explained() {
    let loaded = names(&["atm", "crc32c_generic", "ext4", "jbd2", "mbcache"]);
    let index = fs_index();
    // ext4 configured: its dependencies and its softdep follow; atm does not.
    let reasons = BTreeMap::from([("ext4".to_string(), "/etc/modules-load.d/fs.conf".to_string())]);
    let deps = dependency_reasons(&loaded, &reasons, &BTreeSet::new(), &index);
    assert_eq!(deps["jbd2"], "a dependency of ext4, which is trusted");
    assert_eq!(deps["mbcache"], "a dependency of ext4, which is trusted");
    assert_eq!(deps["crc32c_generic"], "a softdep of ext4, which is trusted");
    assert!(!deps.contains_key("atm") && !deps.contains_key("ext4"), "{deps:?}");
    // Nothing explains ext4: none of them is explained.
    assert!(dependency_reasons(&loaded, &BTreeMap::new(), &BTreeSet::new(), &index).is_empty());
    // ext4 trusted in the profile (a root modprobe while learning) vouches too.
    let trusted = BTreeSet::from(["ext4".to_string()]);
    assert_eq!(dependency_reasons(&loaded, &BTreeMap::new(), &trusted, &index).len(), 3);
    // A trusted module that does not pull it in explains nothing.
    let unrelated = BTreeSet::from(["tcp_bic".to_string()]);
    assert!(dependency_reasons(&names(&["atm"]), &BTreeMap::new(), &unrelated, &index).is_empty());
}

#[test]
fn a_dependency_explained_in_turn_vouches_for_its_own() {
    let index =
        StaticIndex::default().module("a", &["b"]).module("b", &[]).module("c", &[]).softdep("b", &["c"], &[]);
    let reasons = BTreeMap::from([("a".to_string(), "initramfs: x".to_string())]);
    let deps = dependency_reasons(&names(&["a", "b", "c"]), &reasons, &BTreeSet::new(), &index);
    assert_eq!(deps["b"], "a dependency of a, which is trusted");
    let c = deps["c"].as_str();
    assert!(c == "a softdep of a, which is trusted" || c == "a softdep of b, which is trusted", "{deps:?}");
}

#[test]
fn boot_reasons_join_every_source() {
    let dir = TempDir::new("boot");
    dir.put("etc/modules-load.d/x.conf", "tcp_bic\n");
    dir.put("etc/initramfs-tools/modules", "tcp_bic\n");
    dir.put("proc/cmdline", "ro rd.driver.pre=virtio_net\n");
    dir.put("sys/devices/pci0000:00/virtio0/modalias", "virtio:d00000001v00001AF4\n");
    let index = StaticIndex::default().alias("virtio:d00000001v00001AF4", "virtio_net");
    let reasons = boot_reasons(&PreloadSources::under(dir.path()), &index);
    let bic = &reasons["tcp_bic"];
    assert!(bic.contains("modules-load.d/x.conf; initramfs: "), "{bic}");
    assert!(bic.ends_with("etc/initramfs-tools/modules"), "{bic}");
    let device = "udev coldplug: device virtio:d00000001v00001AF4 at /sys/devices/pci0000:00/virtio0";
    assert_eq!(reasons["virtio_net"], format!("kernel command line: rd.driver.pre=virtio_net; {device}"));
    assert_eq!(reasons.len(), 2, "{reasons:?}");
}
