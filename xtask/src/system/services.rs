//! The real services of the trixie system test: Debian's own units loading
//! modules by different paths, each learned, locked and then used.
//!
//! | unit | how it loads | modules it needs |
//! | --- | --- | --- |
//! | nftables.service (DefaultDependencies=no) | nft asks the kernel (request) | nf_tables, nft_ct, nft_chain_nat, nft_masq |
//! | wg-quick@mtwg0.service | `ip link add … type wireguard` (request rtnl-link-wireguard) | wireguard |
//! | systemd-binfmt.service | writes /proc/sys/fs/binfmt_misc/register: the automount, PID 1's mount | binfmt_misc (via proc-sys-fs-binfmt_misc.mount) |
//! | mnt-fat.mount (fstab, loop) | mount(8) asks for fs-vfat | vfat |
//! | modtrace-test-tun.service | `ip tuntap add` opens /dev/net/tun (char-major-10-200) | tun |
//! | mnt-minix.mount (fstab, loop) | mount(8) asks for fs-minix: root's own, trusted | minix |
//!
//! And a root deputy (checks/deputy.rs): a user loop-mounts a squashfs image
//! through udisks2 (tests/system/common.sh, deputy_mount), which must be held
//! for review as that user's, with no drop-in for udisks2.service.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::Result;

use super::image::{self, Contents};
use super::LockPoint;
use crate::harness::cmd;

/// The suites whose test runs the real services (and whose base has their packages).
pub fn suite_has_services(suite: &str) -> bool {
    suite == "trixie"
}

/// Where the FAT and minix images live in the guest, and where fstab mounts them.
const FAT_IMAGE: &str = "var/lib/modtrace-test-data/fat.img";
const MINIX_IMAGE: &str = "var/lib/modtrace-test-data/minix.img";
const FSTAB: &str = "/var/lib/modtrace-test-data/fat.img /mnt/fat vfat loop,ro,nofail 0 0\n\
                     /var/lib/modtrace-test-data/minix.img /mnt/minix minix loop,ro,nofail 0 0\n";
/// The image the user mounts through udisks2 (common.sh, deputy_mount).
const USER_IMAGE: &str = "var/lib/modtrace-test-data/user.squashfs";

const FILES: [(&str, &str, u32); 5] = [
    ("tests/system/services/nftables.conf", "etc/nftables.conf", 0o755),
    ("tests/system/services/mtwg0.conf", "etc/wireguard/mtwg0.conf", 0o600),
    ("tests/system/services/binfmt.conf", "etc/binfmt.d/modtrace-test.conf", 0o644),
    ("tests/system/services/modtrace-test-tun.service", "etc/systemd/system/modtrace-test-tun.service", 0o644),
    ("tests/system/services/50-modtrace-test-udisks.rules", "etc/polkit-1/rules.d/50-modtrace-test-udisks.rules", 0o644),
];
const ENABLE: [&str; 3] = ["nftables.service", "wg-quick@mtwg0.service", "modtrace-test-tun.service"];

/// One service: its unit, and the modules the profile must attribute to it.
pub struct Service {
    pub unit: &'static str,
    pub modules: &'static [&'static str],
    /// The unit the load came through (the automount's mount unit), if any.
    pub via: Option<&'static str>,
}

pub const SERVICES: [Service; 5] = [
    Service { unit: "nftables.service", modules: &["nf_tables", "nft_ct", "nft_chain_nat", "nft_masq"], via: None },
    Service { unit: "wg-quick@mtwg0.service", modules: &["wireguard"], via: None },
    Service {
        unit: "systemd-binfmt.service",
        modules: &["binfmt_misc"],
        via: Some("proc-sys-fs-binfmt_misc.mount"),
    },
    Service { unit: "mnt-fat.mount", modules: &["vfat"], via: None },
    Service { unit: "modtrace-test-tun.service", modules: &["tun"], via: None },
];

/// An image's contents, owned: the test's own plus, for a suite with
/// services, theirs.
pub struct TestContents {
    files: Vec<(&'static str, &'static str, u32)>,
    written: Vec<(&'static str, Vec<u8>)>,
    fstab: String,
    enable: Vec<&'static str>,
}

impl TestContents {
    pub fn contents(&self) -> Contents<'_> {
        Contents {
            files: &self.files,
            written: self.written.iter().map(|(d, b)| (*d, b.clone())).collect(),
            fstab: &self.fstab,
            enable: &self.enable,
        }
    }
}

/// What the system test's image holds for `suite`.
pub fn test_contents(suite: &str, lock_point: LockPoint, work: &Path) -> Result<TestContents> {
    let base = image::test_contents(lock_point);
    let mut owned = TestContents {
        files: base.files.to_vec(),
        written: base.written,
        fstab: base.fstab.to_string(),
        enable: base.enable.to_vec(),
    };
    if suite_has_services(suite) {
        owned.files.extend(FILES);
        owned.enable.extend(ENABLE);
        owned.fstab.push_str(FSTAB);
        owned.written.push((FAT_IMAGE, fat_image(work)?));
        owned.written.push((MINIX_IMAGE, made_image(work, "minix.img", mkfs_minix)?));
        owned.written.push((USER_IMAGE, made_image(work, "user.squashfs", |f| mksquashfs(work, f))?));
        owned.written.push(("etc/modtrace-test/services", b"trixie's real services\n".to_vec()));
    }
    if suite == "desktop" {
        // The real display manager replaces the stand-in (which also claims
        // display-manager.service, and would mount binfmt_misc itself).
        owned.files.retain(|(file, _, _)| *file != image::FAKE_DM_UNIT);
        owned.enable.retain(|unit| *unit != image::FAKE_DM);
        owned.files.extend(super::desktop::FILES);
        owned.written.extend(super::desktop::written());
    }
    Ok(owned)
}

/// A small FAT file system image, made with mkfs.vfat (dosfstools).
pub fn fat_image(work: &Path) -> Result<Vec<u8>> {
    made_image(work, "fat.img", |f| cmd::run(Command::new("mkfs.vfat").args(["-C", "-n", "MODTRACE"]).arg(f).arg("4096")))
}

/// An image made by `make` at `work/name`, read back.
fn made_image(work: &Path, name: &str, make: impl FnOnce(&Path) -> Result<()>) -> Result<Vec<u8>> {
    let file = work.join(name);
    if file.exists() {
        fs::remove_file(&file)?;
    }
    make(&file)?;
    Ok(fs::read(&file)?)
}

/// A 64 KiB minix file system (util-linux's mkfs.minix).
fn mkfs_minix(file: &Path) -> Result<()> {
    fs::File::create(file)?.set_len(64 * 1024)?;
    cmd::run(Command::new("mkfs.minix").arg(file))
}

/// A squashfs image holding one file (squashfs-tools).
fn mksquashfs(work: &Path, file: &Path) -> Result<()> {
    let src = work.join("user-image");
    fs::create_dir_all(&src)?;
    fs::write(src.join("readme.txt"), "a user's file\n")?;
    cmd::run(Command::new("mksquashfs").arg(&src).arg(file).args(["-noappend", "-quiet", "-all-root"]))
}

/// What the host knows about a suite with services, for the checks.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Modules the initramfs loaded (before any learner could run).
    pub initramfs: BTreeSet<String>,
}

/// modtrace-learn-generator, run on a made-up root (MODTRACE_GENERATOR_ROOT).
#[cfg(test)]
mod generator_tests {
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::Path;
    use std::process::Command;

    const GENERATOR: &str = "packaging/systemd/modtrace-learn-generator";

    fn unit(root: &Path, name: &str, text: &str) {
        let dir = root.join("usr/lib/systemd/system");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(name), text).unwrap();
    }

    fn enable(root: &Path, target: &str, name: &str) {
        let wants = root.join("etc/systemd/system").join(format!("{target}.wants"));
        fs::create_dir_all(&wants).unwrap();
        symlink(format!("/usr/lib/systemd/system/{name}"), wants.join(name)).unwrap();
    }

    /// The units the generator ordered after the learner.
    fn run(root: &Path) -> Vec<String> {
        let out = root.join("out");
        let _ = fs::remove_dir_all(&out);
        fs::create_dir_all(&out).unwrap();
        let status = Command::new("sh")
            .arg(crate::harness::paths::workspace().join(GENERATOR))
            .arg(&out)
            .env("MODTRACE_GENERATOR_ROOT", root)
            .status()
            .unwrap();
        assert!(status.success());
        let mut units: Vec<String> = fs::read_dir(&out)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().trim_end_matches(".d").to_string())
            .collect();
        units.sort();
        for u in &units {
            let text = fs::read_to_string(out.join(format!("{u}.d/50-modtrace-learn.conf"))).unwrap();
            assert!(text.contains("[Unit]\nAfter=modtrace-learn.service\n"), "{text}");
        }
        units
    }

    #[test]
    fn early_units_wait_for_the_learner_only_while_it_is_enabled() {
        let root = std::env::temp_dir().join(format!("modtrace-generator-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let early = "[Unit]\nDefaultDependencies=no\nBefore=network-pre.target shutdown.target\n";
        unit(&root, "nftables.service", early);
        unit(&root, "systemd-binfmt.service", "[Unit]\nDefaultDependencies=no\nAfter=local-fs.target\n");
        unit(&root, "modprobe@.service", "[Unit]\nDefaultDependencies=no\nBefore=sysinit.target\n");
        unit(&root, "wg@.service", "[Unit]\nDefaultDependencies=no\n");
        // What the learner waits for: ordering it after the learner would make a cycle.
        unit(&root, "early-fs.service", "[Unit]\nDefaultDependencies=no\nBefore=local-fs.target\n");
        unit(&root, "crypt.service", "[Unit]\nDefaultDependencies=no\nBefore=cryptsetup.target\n");
        // Default dependencies: after sysinit.target, so after the learner already.
        unit(&root, "late.service", "[Unit]\nDescription=late\n");
        for name in ["nftables.service", "early-fs.service", "crypt.service"] {
            enable(&root, "sysinit.target", name);
        }
        enable(&root, "multi-user.target", "late.service");
        let wg = root.join("etc/systemd/system/multi-user.target.wants/wg@x.service");
        symlink("/usr/lib/systemd/system/wg@.service", wg).unwrap();
        // Early probes an initramfs started while learning was still enabled.
        let early = root.join("sys/fs/bpf/modtrace/early/0123456789abcdef");
        fs::create_dir_all(&early).unwrap();
        fs::write(early.join("link-0"), "").unwrap();
        assert!(run(&root).is_empty(), "learning is not enabled: nothing is ordered");
        assert!(!root.join("sys/fs/bpf/modtrace/early").exists(), "nobody takes the early probes over: released");
        unit(&root, "modtrace-learn.service", "[Unit]\nDefaultDependencies=no\n");
        enable(&root, "sysinit.target", "modtrace-learn.service");
        fs::create_dir_all(&early).unwrap();
        assert_eq!(run(&root), ["modprobe@.service", "nftables.service", "systemd-binfmt.service", "wg@x.service"]);
        assert!(early.exists(), "the learner takes them over: kept");
        fs::remove_dir_all(&root).unwrap();
    }
}

/// packaging/initramfs-tools/hooks/modtrace, with a stand-in for initramfs-tools'
/// hook-functions that records what it was asked to copy.
#[cfg(test)]
mod initramfs_hook_tests {
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::process::Command;

    #[test]
    fn modtrace_goes_into_the_initramfs_only_while_learning_is_enabled() {
        let root = std::env::temp_dir().join(format!("modtrace-hook-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        let copied = root.join("copied");
        fs::write(root.join("hook-functions"), format!("copy_exec() {{ echo \"$*\" >> {}; }}\n", copied.display())).unwrap();
        let run = || {
            let status = Command::new("sh")
                .arg(crate::harness::paths::workspace().join("packaging/initramfs-tools/hooks/modtrace"))
                .env("MODTRACE_HOOK_FUNCTIONS", root.join("hook-functions"))
                .env("MODTRACE_HOOK_ROOT", &root)
                .status()
                .unwrap();
            assert!(status.success());
            fs::read_to_string(&copied).unwrap_or_default()
        };
        assert_eq!(run(), "", "learning is not enabled: nothing copied");
        let wants = root.join("etc/systemd/system/sysinit.target.wants");
        fs::create_dir_all(&wants).unwrap();
        symlink("/lib/systemd/system/modtrace-learn.service", wants.join("modtrace-learn.service")).unwrap();
        assert_eq!(run(), "/usr/sbin/modtrace /usr/sbin\n");
        let out = Command::new("sh")
            .arg(crate::harness::paths::workspace().join("packaging/initramfs-tools/hooks/modtrace"))
            .arg("prereqs")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "\n");
        fs::remove_dir_all(&root).unwrap();
    }
}
