//! Root deputies: system services that do things for clients who ask over
//! D-Bus or a socket (polkit deciding), so that a module they make the kernel
//! load is the client's wish, not root's. Their own unit must not be trusted
//! for it, nor get a drop-in for it. docs/deputies.md lists them and why.
//!
//! The list is [`KNOWN`] plus one unit per line in `*.conf` files of
//! /etc/modtrace/deputies.d (`#` starts a comment): an admin's own deputies,
//! which say nothing modtrace can read, so their loads need review.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// What a deputy tells of whom it acted for, in a form modtrace reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Says {
    /// udisks2: "Mounted DEV at PATH on behalf of uid N" in its journal,
    /// written by its running udisksd.
    UdisksJournal,
    /// Nothing modtrace can read reliably: its loads need review.
    Nothing,
}

/// One known deputy: its unit, the process that writes its journal, and
/// what it tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deputy {
    pub unit: &'static str,
    /// The main process's comm, as journald records it in `_COMM`.
    pub comm: &'static str,
    pub says: Says,
}

const fn silent(unit: &'static str, comm: &'static str) -> Deputy {
    Deputy { unit, comm, says: Says::Nothing }
}

/// The deputies modtrace knows, by unit (docs/deputies.md says what each does
/// for clients and why it is handled or not).
pub const KNOWN: &[Deputy] = &[
    Deputy { unit: "udisks2.service", comm: "udisksd", says: Says::UdisksJournal },
    silent("NetworkManager.service", "NetworkManager"),
    silent("ModemManager.service", "ModemManager"),
    silent("bluetooth.service", "bluetoothd"),
    silent("wpa_supplicant.service", "wpa_supplicant"),
    silent("iwd.service", "iwd"),
    silent("cups.service", "cupsd"),
    silent("libvirtd.service", "libvirtd"),
    silent("virtqemud.service", "virtqemud"),
    silent("virtnetworkd.service", "virtnetworkd"),
    silent("docker.service", "dockerd"),
    silent("containerd.service", "containerd"),
    silent("podman.service", "podman"),
    silent("incus.service", "incusd"),
    silent("lxd.service", "lxd"),
    silent("systemd-machined.service", "systemd-machine"),
    silent("systemd-importd.service", "systemd-importd"),
    silent("fwupd.service", "fwupd"),
    silent("packagekit.service", "packagekitd"),
    silent("snapd.service", "snapd"),
    silent("flatpak-system-helper.service", "flatpak-system-"),
];

/// Where admins add deputies.
pub const DEPUTIES_DIR: &str = "/etc/modtrace/deputies.d";

/// The deputies of this host: the known ones and the admin's.
#[derive(Debug, Clone)]
pub struct Deputies {
    by_unit: BTreeMap<String, Says>,
    comm: BTreeMap<String, &'static str>,
}

impl Default for Deputies {
    /// The known ones only.
    fn default() -> Self {
        Deputies {
            by_unit: KNOWN.iter().map(|d| (d.unit.to_string(), d.says)).collect(),
            comm: KNOWN.iter().map(|d| (d.unit.to_string(), d.comm)).collect(),
        }
    }
}

impl Deputies {
    /// The known ones plus the units listed in `dir`'s `*.conf` files; an
    /// unreadable directory adds none.
    pub fn load(dir: &Path) -> Deputies {
        let mut all = Deputies::default();
        for unit in conf_files(dir).iter().filter_map(|f| fs::read_to_string(f).ok()).flat_map(|t| units_in(&t)) {
            all.by_unit.entry(unit).or_insert(Says::Nothing);
        }
        all
    }

    /// What `unit` tells, when it is a deputy.
    pub fn says(&self, unit: &str) -> Option<Says> {
        self.by_unit.get(unit).copied()
    }

    /// The comm of a known deputy's main process.
    pub fn comm(&self, unit: &str) -> Option<&'static str> {
        self.comm.get(unit).copied()
    }
}

fn conf_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> =
        entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "conf")).collect();
    files.sort();
    files
}

/// Unit names in a deputies.d file: one a line, `#` to the end of a line is a comment.
pub fn units_in(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The uid udisks2 mounted for, from its line "Mounted DEV[ (system)] at PATH
/// on behalf of uid N", to which newer udisks add " (requested by uid M)" when
/// M asked for N (then M is who asked). Read from the end, which udisks writes
/// last, so that a volume label in PATH cannot shift it.
pub fn udisks_client(message: &str) -> Option<u32> {
    if !message.starts_with("Mounted ") {
        return None;
    }
    let (rest, requested) = match message.strip_suffix(')').and_then(|m| m.rsplit_once(" (requested by uid ")) {
        Some((rest, m)) => (rest, Some(m)),
        None => (message, None),
    };
    let (_, uid) = rest.rsplit_once(" on behalf of uid ")?;
    let uid = number(uid)?;
    match requested {
        Some(m) => number(m),
        None => Some(uid),
    }
}

fn number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admin_adds_deputies_in_a_directory() {
        let dir = std::env::temp_dir().join(format!("modtrace-deputies-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("site.conf"), "# ours\nmountd.service  # mounts for users\n\nudisks2.service\n").unwrap();
        fs::write(dir.join("ignored.txt"), "other.service\n").unwrap();
        let d = Deputies::load(&dir);
        assert_eq!(d.says("mountd.service"), Some(Says::Nothing));
        assert_eq!(d.says("udisks2.service"), Some(Says::UdisksJournal), "a known one keeps what it says");
        assert_eq!(d.says("other.service"), None);
        assert_eq!(d.says("NetworkManager.service"), Some(Says::Nothing));
        assert_eq!(d.comm("udisks2.service"), Some("udisksd"));
        assert_eq!(Deputies::load(&dir.join("missing")).says("mountd.service"), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn udisks_lines_are_read_from_the_end() {
        let read = udisks_client;
        assert_eq!(read("Mounted /dev/loop0 at /media/u/IMG on behalf of uid 1000"), Some(1000));
        assert_eq!(read("Mounted /dev/sdb1 (system) at /mnt/x on behalf of uid 0"), Some(0));
        assert_eq!(read("Mounted /dev/loop0 at /media/u/x on behalf of uid 1000 (requested by uid 1001)"), Some(1001));
        // A label that says otherwise is part of the path.
        assert_eq!(read("Mounted /dev/loop0 at /media/u/a on behalf of uid 0 on behalf of uid 1000"), Some(1000));
        assert_eq!(read("Mounted /dev/loop0 at /media/u/b (requested by uid 0) on behalf of uid 1000"), Some(1000));
        for other in [
            "Unmounted /dev/loop0 on behalf of uid 1000",
            "Mounted /dev/loop0 at /media/u/c on behalf of uid 1000x",
            "Mounted /dev/loop0 at /media/u/d on behalf of uid ",
            "Set up loop device /dev/loop0 (backed by /home/u/img)",
        ] {
            assert_eq!(read(other), None, "{other}");
        }
    }

    #[test]
    fn comms_fit_the_kernel_s_15_bytes() {
        for d in KNOWN {
            assert!(d.comm.len() <= 15, "{}", d.comm);
        }
    }
}
