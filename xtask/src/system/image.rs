//! The root disk image: the cached Debian base, the kernel's modules, modtrace
//! and the test's units and scripts, made into an ext4 image with
//! `mkfs.ext4 -d` (no loop device). Results come back out with debugfs.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use super::LockPoint;
use crate::harness::initramfs::{self, Modules};
use crate::harness::kernels::Kernel;
use crate::harness::{cmd, files, paths};

/// Where the guest scripts write their results (tests/system/common.sh).
pub const RESULTS: &str = "/var/lib/modtrace-test";
/// Where the package is copied in the guest for `apt-get install ./FILE`.
const PACKAGE_IN_GUEST: &str = "var/tmp/modtrace.deb";
/// tests/system files: (file, destination in the guest, mode).
const TEST_FILES: [(&str, &str, u32); 8] = [
    (FAKE_DM_UNIT, "etc/systemd/system/fake-dm.service", 0o644),
    ("tests/system/modtrace-test-learned.service", "etc/systemd/system/modtrace-test-learned.service", 0o644),
    ("tests/system/modtrace-test-guarded.service", "etc/systemd/system/modtrace-test-guarded.service", 0o644),
    ("tests/system/modtrace-test-locked.service", "etc/systemd/system/modtrace-test-locked.service", 0o644),
    ("tests/system/common.sh", "usr/local/lib/modtrace-test/common.sh", 0o644),
    ("tests/system/learned.sh", "usr/local/lib/modtrace-test/learned.sh", 0o755),
    ("tests/system/guarded.sh", "usr/local/lib/modtrace-test/guarded.sh", 0o755),
    ("tests/system/locked.sh", "usr/local/lib/modtrace-test/locked.sh", 0o755),
];
/// Written when the suite has the guard boot: learned.sh then enables
/// modtrace-guard.service (enforce) for the boot after it.
pub const GUARD_BOOT_MARK: &str = "etc/modtrace-test/guard-boot";
/// Written when the suite's guard boot seals the guard at boot
/// (MODTRACE_GUARD_SEAL=yes): learned.sh sets it, guarded.sh tries to undo it.
pub const SEALED_GUARD_MARK: &str = "etc/modtrace-test/sealed-guard";
/// The stand-in display manager, in the test and in the demo.
pub const FAKE_DM_UNIT: &str = "tests/system/fake-dm.service";
pub const FAKE_DM: &str = "fake-dm.service";
/// Enabled for boot 1; learned.sh switches to the locked boot's units.
const BOOT1_UNITS: [&str; 3] = ["modtrace-learn.service", FAKE_DM, "modtrace-test-learned.service"];
/// Masked for a quick, quiet boot: no login prompts on the console, no timers,
/// no first-boot questions.
const MASKED: [&str; 12] = [
    "serial-getty@ttyS0.service",
    "getty@tty1.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "systemd-networkd-wait-online.service",
    "systemd-timesyncd.service",
    "systemd-firstboot.service",
    "systemd-tmpfiles-clean.timer",
];

/// What a guest image holds besides the base system, the kernel's modules,
/// modtrace's package and the guest tool.
pub struct Contents<'a> {
    /// (file under the workspace, destination in the guest, mode).
    pub files: &'a [(&'a str, &'a str, u32)],
    /// Files written as they are: (destination in the guest, contents).
    pub written: Vec<(&'a str, Vec<u8>)>,
    /// Appended to /etc/fstab after the root file system's line.
    pub fstab: &'a str,
    /// Units to enable (with the guest's own systemctl).
    pub enable: &'a [&'a str],
}

/// The system test's first boot: learning, the fake display manager, learned.sh.
pub fn test_contents(lock_point: LockPoint) -> Contents<'static> {
    Contents {
        files: &TEST_FILES,
        written: vec![("etc/modtrace-test/lock-point", format!("{}\n", lock_point.as_str()).into_bytes())],
        fstab: "",
        enable: &BOOT1_UNITS,
    }
}

/// Fills `root` (already holding the base system) and writes `image`.
pub fn build(
    kernel: &Kernel,
    package: &Path,
    guest_tool: &Path,
    contents: &Contents,
    root: &Path,
    image: &Path,
) -> Result<()> {
    initramfs::install_modules(kernel, root, Modules::All)?;
    install_package(package, root)?;
    install_program(guest_tool, root, "usr/local/bin/modtrace-guest")?;
    initramfs::install_loose_module(kernel, LOOSE_MODULE, &root.join(LOOSE_MODULE_DEST))?;
    let workspace = paths::workspace();
    for (name, dest, mode) in contents.files {
        files::install(&workspace.join(name), &root.join(dest), *mode)?;
    }
    for (dest, bytes) in &contents.written {
        let dest = root.join(dest);
        fs::create_dir_all(dest.parent().expect("a guest path has a parent"))?;
        fs::write(&dest, bytes)?;
    }
    let fstab = format!("/dev/vda / ext4 rw,errors=remount-ro 0 1\n{}", contents.fstab);
    fs::write(root.join("etc/fstab"), fstab)?;
    fs::write(root.join("etc/hostname"), "modtrace-test\n")?;
    for unit in MASKED {
        let link = root.join("etc/systemd/system").join(unit);
        if link.symlink_metadata().is_ok() {
            fs::remove_file(&link)?;
        }
        symlink("/dev/null", &link)?;
    }
    // The guest's own systemctl (the host may have none) and [Install] sections.
    cmd::run(Command::new("chroot").arg(root).args(["systemctl", "enable"]).args(contents.enable))?;
    make_image(root, image)
}

/// An uncompressed module outside the profile, for locked.sh's init_module
/// attempt (trixie's modules are .ko.xz; init_module(2) wants an ELF image).
pub const LOOSE_MODULE: &str = "nls_utf8";
const LOOSE_MODULE_DEST: &str = "usr/local/lib/modtrace-test/nls_utf8.ko";

/// Installs modtrace's Debian package with the guest's own apt, as a user
/// would: its dependencies must be in the base system already (no network).
fn install_package(package: &Path, root: &Path) -> Result<()> {
    files::install(package, &root.join(PACKAGE_IN_GUEST), 0o644)?;
    cmd::run(
        Command::new("chroot")
            .arg(root)
            .args(["apt-get", "install", "-y", "--no-install-recommends"])
            .arg(format!("/{PACKAGE_IN_GUEST}"))
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    fs::remove_file(root.join(PACKAGE_IN_GUEST))?;
    Ok(())
}

/// Installs a host-built program; the libraries it links must be in the guest
/// already.
fn install_program(program: &Path, root: &Path, dest: &str) -> Result<()> {
    files::install(program, &root.join(dest), 0o755)?;
    let missing: Vec<String> = files::shared_libraries(program)?
        .into_iter()
        .filter(|lib| !root.join(lib.strip_prefix("/").unwrap_or(lib)).exists())
        .map(|lib| lib.display().to_string())
        .collect();
    if !missing.is_empty() {
        bail!(
            "{} needs libraries the guest lacks (add their packages to the debootstrap list): {}",
            program.display(),
            missing.join(", ")
        );
    }
    Ok(())
}

/// A sparse raw ext4 image of `root`: twice its content, at least 2 GiB.
fn make_image(root: &Path, image: &Path) -> Result<()> {
    let used_mib: u64 = cmd::output(Command::new("du").args(["-s", "-x", "--block-size=1M"]).arg(root))?
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .context("cannot read du's output")?;
    let size_mib = (used_mib * 2).max(2048);
    if image.exists() {
        fs::remove_file(image)?;
    }
    cmd::run(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "modtrace-root", "-d"])
            .arg(root)
            .arg(image)
            .arg(format!("{size_mib}M")),
    )
}

/// Copies the guest directory `RESULTS/name` out of `image` into `dest/name`.
pub fn read_results(image: &Path, name: &str, dest: &Path) -> Result<PathBuf> {
    let out = dest.join(name);
    if out.exists() {
        fs::remove_dir_all(&out)?;
    }
    fs::create_dir_all(dest)?;
    let request = format!("rdump {RESULTS}/{name} {}", dest.display());
    cmd::output(Command::new("debugfs").arg("-R").arg(&request).arg(image))?;
    ensure!(out.is_dir(), "the image has no {RESULTS}/{name}");
    Ok(out)
}
