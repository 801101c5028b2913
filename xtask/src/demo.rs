//! `cargo xtask demo`: the whole workflow on a real Debian system, for anyone
//! whose own kernel cannot trace. Debian trixie (its 6.12 kernel, modtrace from
//! its package) boots once under QEMU with services that need modules: a
//! stand-in display manager (binfmt_misc, an AppleTalk socket), a VPN stand-in
//! (tun) and an fstab mount of a FAT image (loop, vfat). modtrace-learn.service
//! learns from early boot; tests/demo/demo.sh then runs report, generate, check,
//! lock --dry-run, the lock, and a refused load under `modtrace trace`, and the
//! console shows each command with its real output.

use std::fs;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::harness::kernels::{self, Series};
use crate::harness::{artifacts, paths};
use crate::package;
use crate::system::{base, boot, image, initrd};

const SUITE: &str = "trixie";
/// demo.sh prefixes what it shows with this.
const SHOWN: &str = "DEMO| ";
const FAT_IMAGE: &str = "var/lib/modtrace-demo/disk.img";
const FILES: [(&str, &str, u32); 4] = [
    (image::FAKE_DM_UNIT, "etc/systemd/system/fake-dm.service", 0o644),
    ("tests/demo/vpn-demo.service", "etc/systemd/system/vpn-demo.service", 0o644),
    ("tests/demo/modtrace-demo.service", "etc/systemd/system/modtrace-demo.service", 0o644),
    ("tests/demo/demo.sh", "usr/local/lib/modtrace-demo/demo.sh", 0o755),
];
const ENABLE: [&str; 4] = ["modtrace-learn.service", "fake-dm.service", "vpn-demo.service", "modtrace-demo.service"];
/// The FAT image, loop-mounted at boot by systemd's fstab generator.
const FSTAB: &str = "/var/lib/modtrace-demo/disk.img /mnt/demo vfat loop,ro,nofail 0 0\n";

pub fn run() -> Result<()> {
    let start = Instant::now();
    println!("demo: preparing Debian {SUITE} with modtrace's package (cached after the first run)...");
    let kernel = kernels::ensure(&[Series::Trixie], false)?.remove(0);
    let package = package::build()?;
    let built = artifacts::build(None)?;
    let work = paths::vm_work().join("demo");
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    fs::create_dir_all(&work)?;
    let base = base::ensure(SUITE)?;
    let root = work.join("root");
    base::extract(&base.tarball, &root)?;
    let contents = image::Contents {
        files: &FILES,
        written: vec![(FAT_IMAGE, crate::system::services::fat_image(&work)?)],
        fstab: FSTAB,
        enable: &ENABLE,
    };
    let disk = work.join("root.img");
    image::build(&kernel, &package, &built.guest_tool, &contents, &root, &disk)?;
    let initrd = initrd::build(&kernel, &work, &root)?;
    fs::remove_dir_all(&root)?;
    println!(
        "demo: ready after {:.0} s; booting Debian {SUITE} (kernel {}) under QEMU, software-emulated: ~2 minutes",
        start.elapsed().as_secs_f64(),
        kernel.kver
    );
    let vmlinuz = kernel.vmlinuz();
    let machine = boot::Machine {
        label: "demo",
        kernel: &vmlinuz,
        initrd: &initrd,
        image: &disk,
        timeout: Duration::from_secs(600),
        devices: &[],
        only: Some(SHOWN),
        extra: boot::Extra::default(),
    };
    let (run, _) = crate::harness::qemu::retry_early_death("demo", |_| machine.run(), boot::Run::early_death)?;
    fs::write(work.join("console.log"), run.console.join("\n") + "\n")?;
    println!();
    match run.verdict() {
        Ok(()) => {
            println!("demo: finished in {:.0} s; the whole console: {}", start.elapsed().as_secs_f64(), work.join("console.log").display());
            Ok(())
        }
        Err(why) => bail!("the demo guest did not finish: {why}; its console: {}", work.join("console.log").display()),
    }
}
