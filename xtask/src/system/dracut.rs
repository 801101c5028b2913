//! The desktop suite's initramfs, built the way Kicksecure builds its own:
//! Debian's dracut, run with `dracut --force` in a chroot of the staged image
//! after modtrace's package is installed and modtrace-learn.service enabled,
//! so the package's dracut module (packaging/dracut/99modtrace) decides what
//! goes in. A chroot rather than a first boot: the image's own dracut, kmod
//! and module tree make the same initramfs without a boot more (about two
//! minutes of TCG), and host-only detection is off (`--no-hostonly`), since in
//! a chroot it would see the build host's disks and mounts, not the guest's.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::harness::cmd;
use crate::harness::kernels::Kernel;
use crate::harness::qemu::INIT_MARKER;

/// What the root disk needs (dependencies follow): `--drivers` makes these the
/// initramfs's only kernel modules, so udev and the root mount load them there.
const DRIVERS: &str = "virtio_pci virtio_blk ext4 crc32c_generic";
/// Staged in the guest's root for `dracut --include`: a unit that prints the
/// init marker (the harness's sign that the boot reached the initramfs).
const MARKER_TREE: &str = "var/tmp/modtrace-test-initrd";
const MARKER_UNIT: &str = "modtrace-test-init-started.service";
/// The locked boot's systemd-modules-load loads the profile's modules one by
/// one; under TCG on a loaded host kvm_amd's init alone took 48 s of it
/// (2026-12-07), and systemd's default 90 s start timeout failed the unit.
pub fn modules_load_timeout() -> (&'static str, Vec<u8>) {
    let dropin = "etc/systemd/system/systemd-modules-load.service.d/modtrace-test-tcg.conf";
    let text = "# modtrace's system test: TCG is slow (xtask/src/system/dracut.rs).\n[Service]\nTimeoutStartSec=5min\n";
    (dropin, text.as_bytes().to_vec())
}
/// Where dracut writes the image inside the chroot.
const OUT: &str = "var/tmp/modtrace-test-initrd.img";

/// The initramfs dracut built, and the kernel modules it holds.
pub struct Built {
    pub image: PathBuf,
    pub modules: BTreeSet<String>,
}

/// Runs the image's dracut in a chroot of `root` and returns the initramfs,
/// moved to `work/initramfs.img`, with the modules `lsinitrd` lists in it.
pub fn build(kernel: &Kernel, work: &Path, root: &Path) -> Result<Built> {
    stage_marker(root)?;
    let proc = root.join("proc");
    cmd::run(Command::new("mount").args(["-t", "proc", "proc"]).arg(&proc))?;
    let built = cmd::run(
        Command::new("chroot")
            .arg(root)
            .args(["dracut", "--force", "--no-hostonly", "--drivers", DRIVERS])
            .arg("--include")
            .arg(format!("/{MARKER_TREE}"))
            .arg("/")
            .arg(format!("/{OUT}"))
            .arg(&kernel.kver),
    );
    let lsinitrd = || cmd::output(Command::new("chroot").arg(root).arg("lsinitrd").arg(format!("/{OUT}")));
    let listed = built.and_then(|_| lsinitrd());
    // Unmounted before anything else: the staged root is deleted later.
    cmd::run(Command::new("umount").arg(&proc)).context("unmounting the chroot's /proc")?;
    let modules = module_names(&listed?);
    let image = work.join("initramfs.img");
    fs::rename(root.join(OUT), &image)?;
    fs::remove_dir_all(root.join(MARKER_TREE))?;
    if modules.is_empty() {
        bail!("lsinitrd lists no kernel module in dracut's initramfs {}", image.display());
    }
    Ok(Built { image, modules })
}

/// Module names in `lsinitrd` output ("…/virtio_blk.ko.xz" is virtio_blk).
fn module_names(listing: &str) -> BTreeSet<String> {
    listing
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        .filter(|path| path.contains(".ko"))
        .filter_map(|path| path.rsplit('/').next()?.split(".ko").next().map(|n| n.replace('-', "_")))
        .collect()
}

/// The marker unit, enabled for the initramfs's sysinit.target.
fn stage_marker(root: &Path) -> Result<()> {
    let units = root.join(MARKER_TREE).join("usr/lib/systemd/system");
    fs::create_dir_all(units.join("sysinit.target.wants"))?;
    let unit = format!(
        "[Unit]\nDescription=modtrace system test: the initramfs runs\nDefaultDependencies=no\n\n\
         [Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo {INIT_MARKER} >/dev/console'\n"
    );
    fs::write(units.join(MARKER_UNIT), unit)?;
    let link = units.join("sysinit.target.wants").join(MARKER_UNIT);
    if link.symlink_metadata().is_err() {
        symlink(format!("../{MARKER_UNIT}"), link)?;
    }
    Ok(())
}

#[test]
fn module_names_come_from_lsinitrd_lines() {
    let listing = "Image: /var/tmp/x.img: 12M\n\
        -rw-r--r--   1 root root  41234 Dec  7 20:00 usr/lib/modules/K/kernel/drivers/block/virtio_blk.ko.xz\n\
        -rw-r--r--   1 root root   9000 Dec  7 20:00 usr/lib/modules/K/kernel/arch/x86/crypto/crc32c-intel.ko.xz\n\
        -rw-r--r--   1 root root    900 Dec  7 20:00 usr/lib/modules/6.12.57+deb13-amd64/modules.dep\n\
        drwxr-xr-x   2 root root      0 Dec  7 20:00 usr/lib/dracut/hooks/cmdline\n";
    let names: Vec<String> = module_names(listing).into_iter().collect();
    assert_eq!(names, ["crc32c_intel", "virtio_blk"]);
}

/// packaging/dracut/99modtrace/module-setup.sh, with stand-ins for dracut's
/// functions that record what it was asked to install.
#[cfg(test)]
mod module_setup_tests {
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::Path;
    use std::process::Command;

    /// Runs install() with `systemd` in the image or not; returns what it did.
    fn install(root: &Path, systemd: bool) -> String {
        let log = root.join("log");
        let _ = fs::remove_file(&log);
        let script = crate::harness::paths::workspace().join("packaging/dracut/99modtrace/module-setup.sh");
        let stand_ins = format!(
            "inst_binary() {{ echo \"inst_binary $*\" >> {log}; }}\n\
             inst_simple() {{ echo \"inst_simple ${{1##*/}} $2\" >> {log}; }}\n\
             inst_hook() {{ echo \"inst_hook $1 $2 ${{3##*/}}\" >> {log}; }}\n\
             dracut_module_included() {{ [ \"$1\" = systemd ] && [ {systemd} = true ]; }}\n\
             SYSTEMCTL='echo systemctl'\n. {script}\ncheck && install >> {log}\n",
            log = log.display(),
            script = script.display(),
        );
        let status = Command::new("bash")
            .arg("-c")
            .arg(stand_ins)
            .env("dracutsysrootdir", root)
            .env("initdir", root.join("initdir"))
            .env("moddir", "/usr/lib/dracut/modules.d/99modtrace")
            .env("systemdsystemunitdir", "/usr/lib/systemd/system")
            .status()
            .unwrap();
        assert!(status.success());
        fs::read_to_string(&log).unwrap_or_default().replace(&root.display().to_string(), "ROOT")
    }

    #[test]
    fn modtrace_goes_into_a_dracut_initramfs_only_while_learning_is_enabled() {
        let root = std::env::temp_dir().join(format!("modtrace-dracut-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let deny = root.join("initdir/etc/modprobe.d/modtrace-deny.conf");
        let list = root.join("initdir/etc/modules-load.d/modtrace.conf");
        let other = root.join("initdir/etc/modprobe.d/site.conf");
        for file in [&deny, &list, &other] {
            fs::create_dir_all(file.parent().unwrap()).unwrap();
            fs::write(file, "install vfat /bin/false\n").unwrap();
        }
        assert_eq!(install(&root, true), "", "learning is not enabled: nothing installed");
        assert!(!deny.exists(), "the deny list stays out even while learning is off");
        assert!(!list.exists(), "so does generate's modules-load.d list");
        assert!(other.exists(), "the site's own modprobe.d files stay");

        let wants = root.join("etc/systemd/system/sysinit.target.wants");
        fs::create_dir_all(&wants).unwrap();
        symlink("/lib/systemd/system/modtrace-learn.service", wants.join("modtrace-learn.service")).unwrap();
        fs::write(&deny, "install vfat /bin/false\n").unwrap();
        assert_eq!(
            install(&root, true),
            "inst_binary /usr/sbin/modtrace\n\
             inst_simple modtrace-early.service /usr/lib/systemd/system/modtrace-early.service\n\
             systemctl -q --root ROOT/initdir add-wants sysinit.target modtrace-early.service\n"
        );
        assert!(!deny.exists());
        assert_eq!(install(&root, false), "inst_binary /usr/sbin/modtrace\ninst_hook cmdline 00 modtrace-early.sh\n");
        fs::remove_dir_all(&root).unwrap();
    }
}
