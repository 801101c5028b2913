//! What a refused file load was for: the module (the module tree's file of
//! that name is the very file refused: same device and inode) and, for a load
//! udev attempted, the device still waiting for that driver in sysfs. A file
//! is named by the guard before the kernel reads it, so the module's own name
//! is never known to the kernel; only this evidence names it, or nothing does.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::trace::event::Device;
use crate::trace::modindex::{module_of_path, ModuleIndex};

/// The module whose file in the module tree is the file refused: its name
/// from the file's, and only if the index's file for that name has the
/// refused file's device (`major:minor`) and inode. A file elsewhere (a copy,
/// a user's build) names no module, whatever it is called.
pub fn module_of_file(index: &dyn ModuleIndex, file: &str, dev: &str, ino: u64) -> Option<String> {
    let name = module_of_path(file)?;
    let meta = fs::metadata(index.file(&name)?).ok()?;
    let tree_dev = format!("{}:{}", libc::major(meta.dev()), libc::minor(meta.dev()));
    (tree_dev == dev && meta.ino() == ino).then_some(name)
}

/// The device under `sys` (/sys) that waits for `module`: devices with a
/// modalias, no driver bound, whose modalias needs `module` (itself or as a
/// dependency). Only one device may match: with several (even of one
/// modalias) which one udev was loading for is not known, and none is named.
pub fn unbound_device(sys: &Path, index: &dyn ModuleIndex, module: &str) -> Option<Device> {
    let mut found: Option<Device> = None;
    for (bus, dir) in bus_devices(sys) {
        if dir.join("driver").exists() {
            continue;
        }
        let Ok(text) = fs::read_to_string(dir.join("modalias")) else { continue };
        let modalias = text.trim_end().to_string();
        let needs = index.resolve(&modalias).iter().any(|t| index.closure(t).iter().any(|m| m == module));
        if !needs {
            continue;
        }
        if found.is_some() {
            return None;
        }
        found = Some(Device::new(modalias, devpath(sys, &dir)?, Some(bus)));
    }
    found
}

/// (bus, device directory) for every device of every bus under `sys`.
fn bus_devices(sys: &Path) -> Vec<(String, std::path::PathBuf)> {
    let Ok(buses) = fs::read_dir(sys.join("bus")) else { return Vec::new() };
    let mut out = Vec::new();
    for bus in buses.flatten() {
        let Ok(devices) = fs::read_dir(bus.path().join("devices")) else { continue };
        let name = bus.file_name().to_string_lossy().into_owned();
        out.extend(devices.flatten().map(|d| (name.clone(), d.path())));
    }
    out
}

/// The device's path below `sys` as a uevent's DEVPATH says it (/devices/...).
fn devpath(sys: &Path, dir: &Path) -> Option<String> {
    let real = fs::canonicalize(dir).ok()?;
    let root = fs::canonicalize(sys).ok()?;
    Some(format!("/{}", real.strip_prefix(root).ok()?.display()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::trace::modindex::StaticIndex;
    use std::os::unix::fs::symlink;

    pub(crate) const WDT: &str = "pci:v00008086d000025ABsv00001AF4sd00001100bc08sc80i00";

    /// A sysfs tree: pci devices (name, modalias, driver bound).
    pub(crate) fn sysfs(devices: &[(&str, &str, bool)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("bus/pci/devices")).unwrap();
        for (name, modalias, bound) in devices {
            let dir = root.path().join("devices/pci0000:00").join(name);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("modalias"), format!("{modalias}\n")).unwrap();
            if *bound {
                fs::create_dir_all(dir.join("driver")).unwrap();
            }
            symlink(format!("../../../devices/pci0000:00/{name}"), root.path().join("bus/pci/devices").join(name))
                .unwrap();
        }
        root
    }

    #[test]
    fn file_names_give_module_names() {
        assert_eq!(module_of_path("i6300esb.ko").as_deref(), Some("i6300esb"));
        assert_eq!(module_of_path("snd-hda-intel.ko.xz").as_deref(), Some("snd_hda_intel"));
        assert_eq!(module_of_path("usbserial.ko.zst").as_deref(), Some("usbserial"));
        assert_eq!(module_of_path("evil.so"), None);
        assert_eq!(module_of_path(".ko"), None);
    }

    #[test]
    fn only_the_module_trees_own_file_names_a_module() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("i6300esb.ko");
        fs::write(&file, b"\x7fELF").unwrap();
        let meta = fs::metadata(&file).unwrap();
        let dev = format!("{}:{}", libc::major(meta.dev()), libc::minor(meta.dev()));
        let index = StaticIndex::default().module("i6300esb", &[]).file("i6300esb", &file);
        assert_eq!(module_of_file(&index, "i6300esb.ko", &dev, meta.ino()).as_deref(), Some("i6300esb"));
        assert_eq!(module_of_file(&index, "i6300esb.ko", &dev, meta.ino() + 1), None, "another inode: a copy");
        assert_eq!(module_of_file(&index, "i6300esb.ko", "0:999", meta.ino()), None, "another device");
        assert_eq!(module_of_file(&StaticIndex::default(), "i6300esb.ko", &dev, meta.ino()), None, "not in the tree");
    }

    #[test]
    fn the_one_unbound_device_needing_the_module_is_named() {
        let index = StaticIndex::default().alias(WDT, "i6300esb").alias("pci:v00001AF4d00001000", "virtio_pci");
        let sys = sysfs(&[("0000:00:03.0", WDT, false), ("0000:00:02.0", "pci:v00001AF4d00001000", false)]);
        let d = unbound_device(sys.path(), &index, "i6300esb").expect("the watchdog");
        assert_eq!(d.devpath, "/devices/pci0000:00/0000:00:03.0");
        assert_eq!(
            (d.modalias.as_str(), d.subsystem.as_deref(), d.ids.as_deref()),
            (WDT, Some("pci"), Some("8086:25ab"))
        );
        assert_eq!(unbound_device(sys.path(), &index, "usbserial"), None, "no device needs it");
    }

    #[test]
    fn a_bound_device_or_two_different_ones_name_none() {
        let index = StaticIndex::default().alias(WDT, "i6300esb").alias("pci:v00008086d000025AC", "i6300esb");
        let bound = sysfs(&[("0000:00:03.0", WDT, true)]);
        assert_eq!(unbound_device(bound.path(), &index, "i6300esb"), None, "its driver is bound");
        let two = sysfs(&[("0000:00:03.0", WDT, false), ("0000:00:04.0", "pci:v00008086d000025AC", false)]);
        assert_eq!(unbound_device(two.path(), &index, "i6300esb"), None, "which one is not known");
        let same = sysfs(&[("0000:00:03.0", WDT, false), ("0000:00:04.0", WDT, false)]);
        assert_eq!(unbound_device(same.path(), &index, "i6300esb"), None, "two alike: which one is not known");
    }
}
