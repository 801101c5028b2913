//! The Debian system the test boots: `debootstrap --variant=minbase` once,
//! trimmed, kept as a tarball under `<cache>/system/` whose name carries a hash
//! of what was asked for (suite, variant, packages), so a changed package list
//! makes a new one and reruns skip the download. One tarball per Debian suite.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::harness::{cmd, paths};

const VARIANT: &str = "minbase";
/// systemd as init, udev for coldplug, kmod (libkmod2 for modtrace), iproute2;
/// apt is in minbase (the test installs modtrace's package with it).
const INCLUDE: [&str; 5] = ["systemd", "systemd-sysv", "udev", "kmod", "iproute2"];
/// The real services the trixie system test runs (services.rs): a firewall
/// ruleset and a WireGuard interface, from the suite's own archive; udisks2
/// with polkitd (which needs logind: libpam-systemd is what provides it to
/// debootstrap) and the system bus, the root deputy a user mounts through
/// (checks/deputy.rs).
const SERVICES_INCLUDE: [&str; 6] = ["nftables", "wireguard-tools", "udisks2", "polkitd", "libpam-systemd", "dbus"];

/// The desktop suite: trixie whose initramfs Debian's dracut builds (dracut.rs),
/// with the desktop Kicksecure ships, Depends only (debootstrap installs no
/// Recommends): lightdm and its greeter, Xorg (its modesetting driver is in
/// -core) with libinput, a minimal Xfce session (xfce4-session pulls
/// xfce4-settings, xfconf and x11-xserver-utils; xfwm4, xfce4-panel), the
/// session bus through systemd --user, udisks2 with polkitd and logind, and
/// PipeWire with WirePlumber and alsa-utils (checks/desktop.rs).
const DESKTOP_INCLUDE: [&str; 17] = [
    "dracut",
    "lightdm",
    "lightdm-gtk-greeter",
    "xserver-xorg-core",
    "xserver-xorg-input-libinput",
    "xfce4-session",
    "xfwm4",
    "xfce4-panel",
    "dbus-user-session",
    "udisks2",
    "polkitd",
    "libpam-systemd",
    "dbus",
    "pipewire",
    "pipewire-pulse",
    "wireplumber",
    "alsa-utils",
];

/// What debootstrap installs for `suite`.
fn include(suite: &str) -> Vec<&'static str> {
    let mut all = INCLUDE.to_vec();
    if super::services::suite_has_services(suite) {
        all.extend(SERVICES_INCLUDE);
    }
    if suite == "desktop" {
        all.extend(DESKTOP_INCLUDE);
    }
    if super::upgrade::suite_has_upgrade(suite) {
        all.extend(super::upgrade::INCLUDE);
    }
    all
}

/// The Debian release debootstrap installs for `suite`.
fn release(suite: &str) -> &str {
    match suite {
        "desktop" => "trixie",
        other => other,
    }
}
/// Removed after debootstrap: not needed to boot, a third of the size.
const TRIM: [&str; 6] =
    ["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "var/cache/apt", "var/lib/apt/lists"];
const SOURCES: &str = "/etc/apt/sources.list.d/debian.sources";

pub struct Base {
    pub tarball: PathBuf,
    /// False when debootstrap ran now.
    pub cached: bool,
    pub elapsed: Duration,
}

/// What the tarball holds; its hash names the file.
fn key(suite: &str) -> String {
    format!("suite={suite} variant={VARIANT} include={} trim={}", include(suite).join(","), TRIM.join(","))
}

fn file_name(suite: &str, key: &str) -> String {
    format!("debian-{suite}-{VARIANT}-{:016x}.tar", fnv1a(key.as_bytes()))
}

/// FNV-1a, 64 bits: stable across Rust releases (std's hasher is not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The cached tarball of Debian `suite` (bookworm, trixie), made first if missing.
pub fn ensure(suite: &str) -> Result<Base> {
    let start = Instant::now();
    let dir = paths::cache().join("system");
    fs::create_dir_all(&dir)?;
    let key = key(suite);
    let name = file_name(suite, &key);
    let tarball = dir.join(&name);
    if tarball.exists() {
        eprintln!("system: debootstrap result is cached: {}", tarball.display());
        return Ok(Base { tarball, cached: true, elapsed: start.elapsed() });
    }
    if !Path::new("/usr/sbin/debootstrap").exists() {
        bail!("debootstrap is not installed: run `cargo xtask setup`");
    }
    let mirror = mirror()?;
    let staging = dir.join(format!("{name}.root"));
    if staging.exists() {
        fs::remove_dir_all(&staging)?;
    }
    eprintln!("system: debootstrap {suite} ({VARIANT}, {}) from {mirror}", include(suite).join(","));
    cmd::run(
        Command::new("debootstrap")
            .arg(format!("--variant={VARIANT}"))
            .arg(format!("--include={}", include(suite).join(",")))
            .arg(release(suite))
            .arg(&staging)
            .arg(&mirror),
    )?;
    for sub in TRIM {
        empty_dir(&staging.join(sub))?;
    }
    let partial = dir.join(format!("{name}.partial"));
    cmd::run(Command::new("tar").arg("--numeric-owner").arg("-C").arg(&staging).arg("-cf").arg(&partial).arg("."))?;
    fs::rename(&partial, &tarball)?;
    fs::write(dir.join(format!("{name}.key")), format!("{key}\nmirror={mirror}\n"))?;
    fs::remove_dir_all(&staging)?;
    Ok(Base { tarball, cached: false, elapsed: start.elapsed() })
}

/// Unpacks the tarball into `root` (emptied first), owners and modes kept.
pub fn extract(tarball: &Path, root: &Path) -> Result<()> {
    if root.exists() {
        fs::remove_dir_all(root).with_context(|| format!("removing {}", root.display()))?;
    }
    fs::create_dir_all(root)?;
    cmd::run(Command::new("tar").arg("--numeric-owner").arg("-xpf").arg(tarball).arg("-C").arg(root))
}

fn empty_dir(dir: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else { return Ok(()) };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() && !path.is_symlink() {
            fs::remove_dir_all(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// The Debian mirror of the system's apt sources (not the security one).
fn mirror() -> Result<String> {
    let text = fs::read_to_string(SOURCES).with_context(|| format!("reading {SOURCES}"))?;
    main_mirror(&text).with_context(|| format!("no non-security `URIs:` line in {SOURCES}"))
}

fn main_mirror(deb822: &str) -> Option<String> {
    deb822
        .lines()
        .filter_map(|line| line.trim().strip_prefix("URIs:"))
        .flat_map(str::split_whitespace)
        .find(|uri| !uri.contains("security"))
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_is_the_non_security_uri() {
        let sources = "Types: deb\n# http://snapshot.debian.org/archive/debian-security/x\n\
                       URIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n\n\
                       Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n";
        assert_eq!(main_mirror(sources).as_deref(), Some("http://mirror.example/debian"));
        assert_eq!(main_mirror("URIs: http://deb.debian.org/debian-security\n"), None);
    }

    #[test]
    fn the_tarball_name_follows_the_package_list() {
        let name = file_name("bookworm", &key("bookworm"));
        assert!(name.starts_with("debian-bookworm-minbase-") && name.ends_with(".tar"), "{name}");
        assert_ne!(file_name("x", "include=systemd"), file_name("x", "include=systemd,udev"));
        assert_ne!(file_name("trixie", &key("trixie")), name);
        assert_eq!(file_name("bookworm", &key("bookworm")), name);
    }
}
