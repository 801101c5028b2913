//! The root disk image: the cached Debian base, the kernel's modules, modtrace
//! and the test's units and scripts, made into an ext4 image with
//! `mkfs.ext4 -d` (no loop device). Results come back out with debugfs.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use super::LockPoint;
use crate::artifacts::Built;
use crate::kernels::Kernel;
use crate::{cmd, files, paths};

/// Where the guest scripts write their results (tests/system/common.sh).
pub const RESULTS: &str = "/var/lib/modtrace-test";
/// The real learning unit, installed as a package would.
const LEARN_UNIT: &str = "packaging/systemd/modtrace-learn.service";
/// tests/system files: (name, destination in the guest, mode).
const TEST_FILES: [(&str, &str, u32); 6] = [
    ("fake-dm.service", "etc/systemd/system/fake-dm.service", 0o644),
    ("modtrace-test-learned.service", "etc/systemd/system/modtrace-test-learned.service", 0o644),
    ("modtrace-test-locked.service", "etc/systemd/system/modtrace-test-locked.service", 0o644),
    ("common.sh", "usr/local/lib/modtrace-test/common.sh", 0o644),
    ("learned.sh", "usr/local/lib/modtrace-test/learned.sh", 0o755),
    ("locked.sh", "usr/local/lib/modtrace-test/locked.sh", 0o755),
];
/// Enabled for boot 1; learned.sh switches to the locked boot's units.
const BOOT1_UNITS: [&str; 3] = ["modtrace-learn.service", "fake-dm.service", "modtrace-test-learned.service"];
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

/// Fills `root` (already holding the base system) and writes `image`.
pub fn build(kernel: &Kernel, built: &Built, lock_point: LockPoint, root: &Path, image: &Path) -> Result<()> {
    install_modules(kernel, root)?;
    install_program(&built.modtrace, root, "usr/sbin/modtrace")?;
    install_program(&built.guest_tool, root, "usr/local/bin/modtrace-guest")?;
    let workspace = paths::workspace();
    let learn_unit = workspace.join(LEARN_UNIT);
    ensure!(learn_unit.exists(), "{} is missing", learn_unit.display());
    files::install(&learn_unit, &root.join("usr/lib/systemd/system/modtrace-learn.service"), 0o644)?;
    for (name, dest, mode) in TEST_FILES {
        files::install(&workspace.join("tests/system").join(name), &root.join(dest), mode)?;
    }
    fs::create_dir_all(root.join("etc/modtrace-test"))?;
    fs::write(root.join("etc/modtrace-test/lock-point"), format!("{}\n", lock_point.as_str()))?;
    fs::write(root.join("etc/fstab"), "/dev/vda / ext4 rw,errors=remount-ro 0 1\n")?;
    fs::write(root.join("etc/hostname"), "modtrace-test\n")?;
    for unit in MASKED {
        let link = root.join("etc/systemd/system").join(unit);
        if link.symlink_metadata().is_ok() {
            fs::remove_file(&link)?;
        }
        symlink("/dev/null", &link)?;
    }
    // The guest's own systemctl (the host may have none) and [Install] sections.
    cmd::run(Command::new("chroot").arg(root).args(["systemctl", "enable"]).args(BOOT1_UNITS))?;
    make_image(root, image)
}

/// The whole modules tree of the kernel, as its package installs it, then depmod.
fn install_modules(kernel: &Kernel, root: &Path) -> Result<()> {
    let dir = root.join("usr/lib/modules");
    fs::create_dir_all(&dir)?;
    cmd::run(Command::new("cp").arg("-a").arg(kernel.modules_dir()).arg(dir.join(&kernel.kver)))?;
    // root/lib is a link to usr/lib in a merged-/usr system: depmod -b finds it there.
    cmd::run(Command::new("depmod").arg("-b").arg(root).arg(&kernel.kver))
}

/// Installs a host-built program; the libraries it links must be in the guest
/// already (bookworm's, the same release as the host's).
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

