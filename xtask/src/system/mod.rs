//! `cargo xtask vm-test --system`: the proof that the lock-down works. A real
//! Debian system (systemd, udev, kmod and the suite's own kernel: bookworm with
//! 6.1, trixie with 6.12), with modtrace installed from its Debian package,
//! boots under QEMU: boot 1 learns with modtrace-learn.service and generates
//! the lock-down, the guard boot runs modtrace-guard.service in enforce mode
//! (checks/guard.rs), boot 2 boots locked and ends by purging the package; the
//! host judges what each recorded (tests/system/README.md).

pub mod base;
pub mod boot;
mod checks;
pub mod desktop;
pub mod dracut;
pub mod image;
pub mod initrd;
pub mod services;
pub mod upgrade;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::ValueEnum;

use crate::check::{self, Check};
use crate::harness::kernels::{self, Kernel, Series};
use crate::harness::{artifacts, paths};
use crate::package;
use checks::{Boot, Facts, Recorded};

/// The Debian releases the system test boots, each with its own kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Suite {
    Bookworm,
    Trixie,
    /// trixie with Debian's dracut building the initramfs (system/dracut.rs).
    Desktop,
}

impl Suite {
    pub const ALL: [Suite; 3] = [Suite::Bookworm, Suite::Trixie, Suite::Desktop];

    pub fn name(self) -> &'static str {
        match self {
            Suite::Bookworm => "bookworm",
            Suite::Trixie => "trixie",
            Suite::Desktop => "desktop",
        }
    }

    /// Whether a guard boot (modtrace-guard.service in enforce mode, checks/guard.rs)
    /// comes between the learning boot and the locked one.
    pub fn has_guard_boot(self) -> bool {
        GUARD_BOOT_SUITES.contains(&self)
    }

    /// Whether that guard boot seals the guard at boot (MODTRACE_GUARD_SEAL=yes):
    /// bookworm's does (checks/seal.rs), trixie's stays unsealed to show a
    /// refresh by the kernel hook and by generate.
    pub fn seals_guard_boot(self) -> bool {
        self == Suite::Bookworm
    }

    fn kernel(self) -> Series {
        match self {
            Suite::Bookworm => Series::Bookworm,
            Suite::Trixie | Suite::Desktop => Series::Trixie,
        }
    }

    /// Whether the guard and locked boots get a device whose driver the
    /// profile lacks (checks/refused_device.rs): bookworm's.
    fn adds_watchdog(self) -> bool {
        self == Suite::Bookworm
    }

    /// Whether the image's own dracut builds the initramfs (else initrd.rs does).
    fn uses_dracut(self) -> bool {
        self == Suite::Desktop
    }
}

/// The suites whose test has the guard boot: one boot more (tests/system/README.md).
const GUARD_BOOT_SUITES: [Suite; 2] = [Suite::Bookworm, Suite::Trixie];

/// `modtrace generate --lock-point`: where modtrace-lock.service locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LockPoint {
    Early,
    AfterUdev,
    Late,
}

impl LockPoint {
    pub fn as_str(self) -> &'static str {
        match self {
            LockPoint::Early => "early",
            LockPoint::AfterUdev => "after-udev",
            LockPoint::Late => "late",
        }
    }
}

pub struct Options {
    pub suites: Vec<Suite>,
    pub lock_point: LockPoint,
    /// Keep the staged root and the disk image.
    pub keep: bool,
    /// Per boot.
    pub timeout: Duration,
}

/// How long each part took.
#[derive(Default)]
struct Times {
    base: Duration,
    base_cached: bool,
    image: Duration,
    initrd: Duration,
    boots: Vec<(String, Option<Duration>, Duration)>,
    /// Boots that died before init and were tried again, and why.
    retried: Vec<String>,
    /// For a suite with services: how the profile's modules are explained.
    explained: Option<String>,
    /// For the desktop: what loaded binfmt_misc, from the report and its evidence.
    binfmt: Option<String>,
}

pub fn run(options: Options) -> Result<()> {
    let start = Instant::now();
    // What users install: the package, and the guest tool beside it.
    let package = package::build()?;
    let built = artifacts::build(None)?;
    let mut summary = Vec::new();
    for &suite in &options.suites {
        let (passed, failed) = run_suite(suite, &package, &built.guest_tool, &options)?;
        summary.push((suite, passed, failed));
    }
    println!();
    for (suite, passed, failed) in &summary {
        println!("vm-test --system {}: {passed} passed, {failed} failed", suite.name());
    }
    let (passed, failed) = summary.iter().fold((0, 0), |(p, f), (_, sp, sf)| (p + sp, f + sf));
    println!("vm-test --system: {passed} passed, {failed} failed in {:.0} s", start.elapsed().as_secs_f64());
    if failed > 0 {
        bail!("vm-test --system failed");
    }
    Ok(())
}

/// Every boot of one suite; returns how many checks passed and failed.
fn run_suite(suite: Suite, package: &Path, guest_tool: &Path, options: &Options) -> Result<(usize, usize)> {
    let start = Instant::now();
    let kernel = kernels::ensure(&[suite.kernel()], false)?.remove(0);
    let work = paths::vm_work().join(format!("system-{}", suite.name()));
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    fs::create_dir_all(&work)?;
    let mut times = Times::default();
    let Disk { image, initrd, dracut, next } = build_disk(suite, &kernel, package, guest_tool, options, &work, &mut times)?;
    let (boot1, guard, boot2) = boot_all(suite, &kernel, &initrd, &image, options, &work, &mut times)?;
    let boot3 = match &next {
        Some(next) if boot2.recorded.is_some() && boot2.finished.is_ok() => {
            let (boot3, elapsed) = upgrade::boot3(next, &image, options.timeout, &work)?;
            times.boots.push(("boot3".to_string(), None, elapsed));
            Some(boot3)
        }
        Some(_) => Some(Boot::not_run("not booted: boot 2 did not finish")),
        None => None,
    };
    if !options.keep {
        fs::remove_file(&image)?;
    }

    let known = match services::suite_has_services(suite.name()) {
        true => Some(services::Known { initramfs: initrd::module_names(&kernel)? }),
        false => None,
    };
    let sealed_guard = suite.seals_guard_boot();
    let watchdog = suite.adds_watchdog();
    let desktop = suite == Suite::Desktop;
    let facts = Facts {
        lock_point: options.lock_point,
        boot1,
        boot2,
        guard,
        sealed_guard,
        services: known,
        dracut,
        watchdog,
        desktop,
    };
    let mut results = checks::check_all(&facts);
    if let (Some(next), Some(boot3)) = (&next, &boot3) {
        let upgrade = checks::upgrade::UpgradeFacts {
            kver: next.kernel.kver.clone(),
            boot1: facts.boot1.recorded.clone(),
            boot2: facts.boot2.recorded.clone(),
            boot3: boot3.clone(),
            learned_on: kernel.kver.clone(),
        };
        results.extend(check::run(checks::upgrade::UPGRADE_CHECKS, &upgrade));
    }
    times.explained = explained(&facts);
    let answer = || checks::desktop::binfmt_answer(&facts).unwrap_or_else(|e| format!("no answer: {e}"));
    times.binfmt = desktop.then(answer);
    let boots: Vec<&Boot> =
        [Some(&facts.boot1), facts.guard.as_ref(), Some(&facts.boot2), boot3.as_ref()].into_iter().flatten().collect();
    print_report(suite, &kernel, options, &times, &boots, &results, &work);
    let failed = check::failed(&results);
    println!(
        "vm-test --system {}: {} passed, {failed} failed in {:.0} s",
        suite.name(),
        results.len() - failed,
        start.elapsed().as_secs_f64()
    );
    Ok((results.len() - failed, failed))
}

/// What build_disk made for one suite.
struct Disk {
    image: PathBuf,
    initrd: PathBuf,
    /// The modules of dracut's initramfs, for a suite that uses dracut.
    dracut: Option<BTreeSet<String>>,
    /// The kernel a suite with the upgrade boot installs.
    next: Option<upgrade::Next>,
}

/// The suite's disk image (the base system, the package, the test's files)
/// and its initramfs.
fn build_disk(
    suite: Suite,
    kernel: &Kernel,
    package: &Path,
    guest_tool: &Path,
    options: &Options,
    work: &Path,
    times: &mut Times,
) -> Result<Disk> {
    let base = base::ensure(suite.name())?;
    (times.base, times.base_cached) = (base.elapsed, base.cached);
    let t = Instant::now();
    let root = work.join("root");
    base::extract(&base.tarball, &root)?;
    let image = work.join("root.img");
    let contents = services::test_contents(suite.name(), options.lock_point, work)?;
    let mut contents = contents.contents();
    if suite.has_guard_boot() {
        contents.written.push((image::GUARD_BOOT_MARK, b"modtrace-guard.service, enforce, before boot 2\n".to_vec()));
    }
    if suite.seals_guard_boot() {
        contents.written.push((image::SEALED_GUARD_MARK, b"MODTRACE_GUARD_SEAL=yes in the guard boot\n".to_vec()));
    }
    if suite.uses_dracut() {
        contents.written.push(dracut::modules_load_timeout());
    }
    if suite == Suite::Desktop {
        desktop::stage(&root)?;
    }
    let next = upgrade::suite_has_upgrade(suite.name()).then(upgrade::next_kernel).transpose()?;
    if let Some(next) = &next {
        upgrade::stage(next, &root)?;
    }
    image::build(kernel, package, guest_tool, &contents, &root, &image)?;
    times.image = t.elapsed();
    let t = Instant::now();
    let (initrd, dracut) = match suite.uses_dracut() {
        true => dracut::build(kernel, work, &root).map(|b| (b.image, Some(b.modules)))?,
        false => (initrd::build(kernel, work, &root)?, None),
    };
    times.initrd = t.elapsed();
    if !options.keep {
        fs::remove_dir_all(&root)?;
    }
    Ok(Disk { image, initrd, dracut, next })
}

/// Boot 1, the guard boot where the suite has one, then boot 2; a boot after
/// one that did not go well is not run.
fn boot_all(
    suite: Suite,
    kernel: &Kernel,
    initrd: &Path,
    image: &Path,
    options: &Options,
    work: &Path,
    times: &mut Times,
) -> Result<(Boot, Option<Boot>, Boot)> {
    let vmlinuz = kernel.vmlinuz();
    let devices = if suite == Suite::Desktop { &desktop::DEVICES[..] } else { &[] };
    let mut run = |label, timeout| {
        let extra = boot_extra(suite, label);
        let machine = boot::Machine { label, kernel: &vmlinuz, initrd, image, timeout, devices, only: None, extra };
        boot(&machine, work, times)
    };
    // The desktop's session comes up after the boot (desktop.rs).
    let per_boot = options.timeout + if suite == Suite::Desktop { desktop::SESSION_TIME } else { Duration::ZERO };
    let boot1 = run("boot1", per_boot)?;
    let went_well = |b: &Boot| b.recorded.is_some() && b.finished.is_ok();
    let guard = match suite.has_guard_boot() {
        false => None,
        true if went_well(&boot1) => Some(run("guard", per_boot)?),
        true => Some(Boot::not_run("not booted: boot 1 did not finish")),
    };
    let boot2 = if went_well(&boot1) && guard.as_ref().is_none_or(went_well) {
        // Where it installs the next kernel, apt and update-initramfs take
        // minutes more under TCG.
        let upgrading = upgrade::suite_has_upgrade(suite.name());
        run("boot2", if upgrading { per_boot + upgrade::INSTALL_TIME } else { per_boot })?
    } else {
        Boot::not_run("not booted: an earlier boot did not finish")
    };
    Ok((boot1, guard, boot2))
}

/// What one boot adds to the machine. bookworm's guard and locked boots get
/// QEMU's i6300esb watchdog, whose driver boot 1 never saw (refused_device.rs).
/// In the locked boot the kernel refuses that driver at coldplug
/// (module_blacklist), so that it is still missing after the lock, as for a
/// device plugged in then, when locked.sh announces the device again.
/// trixie's boots get a Cirrus VGA (upgrade::vga).
fn boot_extra(suite: Suite, label: &str) -> boot::Extra {
    let device = checks::refused_device::QEMU_DEVICE;
    let vga = upgrade::vga(suite.name());
    match (suite.adds_watchdog(), label) {
        (true, "guard") => boot::Extra { qemu: vec!["-device", device], append: vec![], vga },
        (true, "boot2") => {
            let blacklist = format!("module_blacklist={}", checks::refused_device::WATCHDOG_MODULE);
            boot::Extra { qemu: vec!["-device", device], append: vec![blacklist], vga }
        }
        _ => boot::Extra { vga, ..boot::Extra::default() },
    }
}

/// For a suite with services: how the profile's modules are explained.
fn explained(facts: &Facts) -> Option<String> {
    let (Some(_), Some(r)) = (&facts.services, &facts.boot1.recorded) else { return None };
    let (counts, unexplained) = checks::explained(r).ok()?;
    let counts: Vec<String> = counts.iter().map(|(how, n)| format!("{n} {how}")).collect();
    Some(format!("profile: explained by {}; unexplained {}", counts.join(", "), unexplained.len()))
}

/// Boots `machine` once and reads back what the guest recorded.
fn boot(machine: &boot::Machine, work: &Path, times: &mut Times) -> Result<Boot> {
    let (label, image) = (machine.label, machine.image);
    // A boot that died before the initramfs's init never mounted the disk: trying again is safe.
    let (run, retried) = crate::harness::qemu::retry_early_death(label, |_| machine.run(), boot::Run::early_death)?;
    if let Some(why) = &retried {
        times.retried.push(format!("{label}: the first boot died before its init ran ({why}); retried once"));
    }
    fs::write(work.join(format!("console-{label}.log")), run.console.join("\n") + "\n")?;
    times.boots.push((label.to_string(), run.to_marker, run.elapsed));
    let recorded = match image::read_results(image, label, &work.join("results")) {
        Ok(dir) => Some(Recorded::read_dir(&dir)?),
        Err(err) => {
            eprintln!("system: {label}: nothing to read back: {err:#}");
            None
        }
    };
    Ok(Boot { finished: run.verdict(), recorded })
}

fn print_report(
    suite: Suite,
    kernel: &Kernel,
    options: &Options,
    times: &Times,
    boots: &[&Boot],
    results: &[Check],
    work: &Path,
) {
    println!();
    println!(
        "== vm-test --system: Debian {}, kernel {}, lock point {}",
        suite.name(),
        kernel.kver,
        options.lock_point.as_str()
    );
    let base = if times.base_cached { "cached" } else { "debootstrap ran" };
    println!(
        "   base system {base} ({:.1} s); image {:.1} s; initramfs {:.1} s",
        times.base.as_secs_f64(),
        times.image.as_secs_f64(),
        times.initrd.as_secs_f64()
    );
    for (i, (label, to_marker, elapsed)) in times.boots.iter().enumerate() {
        let marker =
            to_marker.map_or("no done marker".into(), |d| format!("done marker after {:.1} s", d.as_secs_f64()));
        let variant = if label == "guard" { " (the guard variant's added time)" } else { "" };
        println!("   {label}: {marker}, QEMU ran {:.1} s{variant}", elapsed.as_secs_f64());
        if let Some(recorded) = boots.get(i).and_then(|b| b.recorded.as_ref()) {
            for line in checks::timings(recorded) {
                println!("      {line}");
            }
        }
    }
    if let Some(line) = &times.explained {
        println!("   {line}");
    }
    if let Some(answer) = &times.binfmt {
        println!("   binfmt_misc on this desktop: {answer}");
    }
    for line in &times.retried {
        println!("   RETRIED {line}");
    }
    check::print(results);
    println!("   logs: {}", work.display());
}
