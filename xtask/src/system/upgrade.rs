//! The trixie suite's kernel upgrade (issue 22): the image carries the next
//! kernel's packages (trixie-backports', with the linux-base they pre-depend
//! on) and initramfs-tools; the locked boot 2 installs them with the guest's
//! own `apt-get install` (tests/system/upgrade.sh); boot 3 boots that kernel
//! with the initramfs its package built, both taken from the disk
//! (tests/system/upgraded.sh; checks/upgrade.rs judges).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use super::boot;
use super::checks::{Boot, Recorded};
use crate::harness::apt::PrivateApt;
use crate::harness::kernels::{self, Kernel, Series};
use crate::harness::{cmd, files, paths};

/// What debootstrap adds for it: the initramfs generator the kernel package
/// runs (it pulls in trixie's linux-base).
pub const INCLUDE: [&str; 1] = ["initramfs-tools"];
/// The kernel release to install, for upgrade.sh; its presence asks for the upgrade.
const MARK: &str = "etc/modtrace-test/upgrade";
const DEBS_IN_GUEST: &str = "var/cache/modtrace-test/debs";
const FILES: [(&str, &str, u32); 3] = [
    ("tests/system/upgrade.sh", "usr/local/lib/modtrace-test/upgrade.sh", 0o644),
    ("tests/system/upgraded.sh", "usr/local/lib/modtrace-test/upgraded.sh", 0o755),
    ("tests/system/modtrace-test-upgraded.service", "etc/systemd/system/modtrace-test-upgraded.service", 0o644),
];

/// What boot 2 may take beyond the per-boot limit when it installs the next
/// kernel: apt and update-initramfs took about 6 minutes under TCG.
pub const INSTALL_TIME: Duration = Duration::from_secs(600);

/// Whether `suite`'s test has the upgrade boots: trixie's.
pub fn suite_has_upgrade(suite: &str) -> bool {
    suite == "trixie"
}

/// QEMU's VGA card for `suite`: a Cirrus for the upgrade, whose driver is
/// `cirrus` in 6.12 and `cirrus_qemu` in 7.x (a rename the lock must follow).
pub fn vga(suite: &str) -> Option<&'static str> {
    suite_has_upgrade(suite).then_some("cirrus")
}

/// The kernel to upgrade to and the packages that install it.
pub struct Next {
    pub kernel: Kernel,
    pub debs: Vec<PathBuf>,
}

/// trixie-backports' newest kernel (cached by `cargo xtask kernels`), its
/// packages, and backports' linux-base (its pre-dependency; trixie's is older).
pub fn next_kernel() -> Result<Next> {
    let kernel = kernels::ensure(&[Series::TrixieBackports], false)?.remove(0);
    let dir = paths::kernels().join("debs");
    let mut debs = Vec::new();
    for entry in fs::read_dir(&dir)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if name.contains(&format!("-{}_", kernel.kver)) && name.ends_with(".deb") {
            debs.push(path);
        }
    }
    ensure!(debs.iter().any(|d| d.to_string_lossy().contains("linux-image-")), "no linux-image .deb in {}", dir.display());
    debs.push(linux_base(&dir)?);
    Ok(Next { kernel, debs })
}

/// linux-base from trixie-backports, downloaded once into `dir`.
fn linux_base(dir: &Path) -> Result<PathBuf> {
    let cached = fs::read_dir(dir)?.flatten().map(|e| e.path()).find(|p| {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        name.starts_with("linux-base_") && name.contains("bpo") && name.ends_with(".deb")
    });
    if let Some(deb) = cached {
        return Ok(deb);
    }
    let apt = PrivateApt::prepare(&paths::kernels().join("apt-trixie"), "trixie")?;
    apt.update()?;
    apt.download("linux-base/trixie-backports", dir)
}

/// Puts the packages, the release to install and the guest scripts into `root`.
pub fn stage(next: &Next, root: &Path) -> Result<()> {
    let debs = root.join(DEBS_IN_GUEST);
    for deb in &next.debs {
        files::install(deb, &debs.join(deb.file_name().context("a .deb has a name")?), 0o644)?;
    }
    let mark = root.join(MARK);
    fs::create_dir_all(mark.parent().expect("a guest path has a parent"))?;
    fs::write(mark, format!("{}\n", next.kernel.kver))?;
    let workspace = paths::workspace();
    for (name, dest, mode) in FILES {
        files::install(&workspace.join(name), &root.join(dest), mode)?;
    }
    Ok(())
}

/// Boot 3: the installed kernel and its initramfs, out of the image.
pub fn boot3(next: &Next, image: &Path, timeout: Duration, work: &Path) -> Result<(Boot, Duration)> {
    let kver = &next.kernel.kver;
    let dir = work.join("upgrade");
    fs::create_dir_all(&dir)?;
    let initrd = dir.join(format!("initrd.img-{kver}"));
    let vmlinuz = dir.join(format!("vmlinuz-{kver}"));
    // 7.x's linux-binary ships the kernel in the modules directory; /boot has
    // it when the package's hooks copied it there.
    let kernel = dump(image, &format!("/boot/vmlinuz-{kver}"), &vmlinuz)
        .or_else(|_| dump(image, &format!("/usr/lib/modules/{kver}/vmlinuz"), &vmlinuz));
    if let Err(err) = dump(image, &format!("/boot/initrd.img-{kver}"), &initrd).and(kernel) {
        return Ok((Boot::not_run(&format!("the image has no kernel or initramfs for {kver}: {err:#}")), Duration::ZERO));
    }
    let machine = boot::Machine {
        label: "boot3",
        kernel: &vmlinuz,
        initrd: &initrd,
        image,
        timeout,
        devices: &[],
        only: None,
        extra: boot::Extra { vga: vga("trixie"), ..boot::Extra::default() },
    };
    let run = machine.run()?;
    fs::write(work.join("console-boot3.log"), run.console.join("\n") + "\n")?;
    let recorded = match super::image::read_results(image, "boot3", &work.join("results")) {
        Ok(dir) => Some(Recorded::read_dir(&dir)?),
        Err(err) => {
            eprintln!("system: boot3: nothing to read back: {err:#}");
            None
        }
    };
    Ok((Boot { finished: run.verdict(), recorded }, run.elapsed))
}

/// Copies the file `path` out of the ext4 `image` (following nothing: the
/// package installs real files there) and checks it is not empty.
fn dump(image: &Path, path: &str, dest: &Path) -> Result<()> {
    let request = format!("dump {path} {}", dest.display());
    cmd::output(Command::new("debugfs").arg("-R").arg(&request).arg(image))?;
    let size = fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    ensure!(size > 1 << 20, "{path}: {size} bytes out of the image");
    Ok(())
}
