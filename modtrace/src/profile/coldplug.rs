//! Modules that udev's coldplug loads for a device present now: at every boot
//! systemd-udev-trigger replays each device's uevent, and udev loads what its
//! MODALIAS resolves to in modules.alias. A module found loaded when learning
//! starts that a present device resolves to is explained by that device.
//!
//! Devices under /sys/devices/virtual are left out: software made them (uinput,
//! a user namespace's links, a module's own), so they say nothing about the
//! hardware root put in the machine.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::trace::modindex::{normalize, ModuleIndex};

/// A device: its MODALIAS and where it is, as "/sys/devices/...".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Present {
    pub modalias: String,
    pub devpath: String,
}

/// Module name -> "udev coldplug: device MODALIAS at /sys/devices/...", for
/// the first present device (by path) that resolves to it.
pub fn reasons(sysfs: &Path, index: &dyn ModuleIndex) -> BTreeMap<String, String> {
    let mut reasons = BTreeMap::new();
    let mut resolved: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in devices(sysfs) {
        let modules = resolved.entry(d.modalias.clone()).or_insert_with(|| index.resolve(&d.modalias));
        for m in modules.iter() {
            reasons
                .entry(normalize(m))
                .or_insert_with(|| format!("udev coldplug: device {} at {}", d.modalias, d.devpath));
        }
    }
    reasons
}

/// Every device under `sysfs`/devices with a modalias, sorted by path; links
/// are not followed (sysfs links back up the tree).
pub fn devices(sysfs: &Path) -> Vec<Present> {
    let root = sysfs.join("devices");
    let mut out = Vec::new();
    let mut todo: Vec<PathBuf> = vec![root.clone()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let Ok(kind) = e.file_type() else { continue };
            let path = e.path();
            if kind.is_dir() && path != root.join("virtual") {
                todo.push(path);
            } else if kind.is_file() && e.file_name() == "modalias" {
                let Ok(text) = fs::read_to_string(&path) else { continue };
                let modalias = text.trim();
                if modalias.is_empty() {
                    continue;
                }
                let rel = dir.strip_prefix(sysfs).unwrap_or(&dir);
                out.push(Present { modalias: modalias.to_string(), devpath: format!("/sys/{}", rel.display()) });
            }
        }
    }
    out.sort_by(|a, b| a.devpath.cmp(&b.devpath));
    out
}
