//! `cargo xtask vm-test`: per kernel, build the initramfs, boot it under QEMU,
//! and judge what the guest sent back.

pub mod checks;
mod initramfs;
pub mod scenario;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::check::{self, Check};
use crate::harness::artifacts::{self, Built};
use crate::harness::guest_output::GuestOutput;
use crate::harness::kernels::{self, Choice, Kernel};
use crate::harness::paths;
use crate::harness::qemu::{self, Boot, BootResult, Outcome};
use initramfs::Programs;

pub struct Options {
    pub kernel: Choice,
    pub keep: bool,
    pub timeout: Duration,
    pub modtrace: Option<PathBuf>,
    /// Boot the first kernel once with a broken initramfs, to prove that a guest
    /// dying before its init is retried and reported.
    pub break_first_boot: bool,
}

struct Report {
    label: String,
    initramfs_time: Duration,
    boot_time: Duration,
    /// Why the first boot was retried, when it was.
    retried: Option<String>,
    attach: Option<String>,
    checks: Vec<Check>,
    logs: PathBuf,
}

impl Report {
    fn failed(&self) -> usize {
        check::failed(&self.checks)
    }
}

pub fn run(options: Options) -> Result<()> {
    let kernels = kernels::ensure(&options.kernel.series(), false)?;
    let built = artifacts::build(options.modtrace.as_deref())?;
    let mut reports = Vec::new();
    for (i, kernel) in kernels.iter().enumerate() {
        let report = run_kernel(kernel, &built, &options, options.break_first_boot && i == 0)?;
        print_report(&report);
        reports.push(report);
    }
    print_summary(&reports);
    let failed: Vec<&str> = reports.iter().filter(|r| r.failed() > 0).map(|r| r.label.as_str()).collect();
    if !failed.is_empty() {
        bail!("vm-test failed on {}", failed.join(", "));
    }
    Ok(())
}

fn run_kernel(kernel: &Kernel, built: &Built, options: &Options, break_first_boot: bool) -> Result<Report> {
    let label = format!("{} ({})", kernel.series, kernel.kver);
    let work = paths::vm_work().join(&kernel.kver);
    fs::create_dir_all(&work)?;
    let start = Instant::now();
    let programs = Programs { modtrace: &built.modtrace, guest_tool: &built.guest_tool };
    let image = initramfs::build(kernel, &programs, &work)?;
    let initramfs_time = start.elapsed();
    let (boot, output) = boot_guest(kernel, &label, &image, &work, options.timeout, break_first_boot)?;
    save_logs(&work, &boot, &output)?;
    let mut results = vec![Check { name: "guest_finished", result: boot_result(&boot) }];
    if break_first_boot {
        results.push(Check { name: "early_death_retried", result: early_death_retried(&boot) });
    }
    let attach = checks::attach_line(&output).map(String::from);
    results.extend(checks::check_all(output, initramfs::compressed_modules(kernel)?));
    if !options.keep {
        fs::remove_dir_all(work.join("root"))?;
        fs::remove_file(&image)?;
    }
    Ok(Report {
        label,
        initramfs_time,
        boot_time: boot.elapsed,
        retried: boot.retried.clone(),
        attach,
        checks: results,
        logs: work,
    })
}

/// Boots the guest (once more if it died before its init; with
/// `break_first_boot`, first from an initramfs that has none) and reads what
/// it sent back.
fn boot_guest(
    kernel: &Kernel,
    label: &str,
    image: &Path,
    work: &Path,
    timeout: Duration,
    break_first_boot: bool,
) -> Result<(BootResult, GuestOutput)> {
    let serial_log = work.join("ttyS1.log");
    let broken = work.join("broken-initramfs.cpio");
    if break_first_boot {
        fs::write(&broken, "not a cpio archive: the kernel finds no init and panics\n".repeat(64))?;
    }
    let attempt = |n: u32| {
        let _ = fs::remove_file(&serial_log);
        let initrd = if break_first_boot && n == 0 { broken.clone() } else { image.to_path_buf() };
        let boot = Boot {
            label: kernel.series.to_string(),
            kernel: kernel.vmlinuz(),
            initrd,
            serial_log: serial_log.clone(),
            timeout,
            memory_mib: 1024,
            threads: qemu::Threads::Single,
        };
        boot.run()
    };
    let (mut boot, retried) = qemu::retry_early_death(label, attempt, BootResult::early_death)?;
    boot.retried = retried;
    let serial = String::from_utf8_lossy(&fs::read(&serial_log).unwrap_or_default()).into_owned();
    let output = GuestOutput::parse(&boot.console, &serial);
    Ok((boot, output))
}

/// The boot from the broken initramfs died and was retried, for that reason.
fn early_death_retried(boot: &BootResult) -> Result<(), String> {
    match &boot.retried {
        // What a kernel says when the initramfs holds no init.
        Some(why) if why.contains("Unable to mount root fs") => Ok(()),
        Some(why) => Err(format!("retried, but not for the broken initramfs: {why}")),
        None => Err("the boot with a broken initramfs was not retried".into()),
    }
}

fn boot_result(boot: &BootResult) -> Result<(), String> {
    match &boot.outcome {
        Outcome::Done => Ok(()),
        Outcome::Exited(how) => Err(format!("the guest stopped without its done marker ({how})")),
        Outcome::Panicked => Err("kernel panic (see the console above)".into()),
        Outcome::NoInit => Err(format!("the guest's init did not start within {:?}", qemu::INIT_DEADLINE)),
        Outcome::TimedOut => Err(format!("timed out after {:.0?}; QEMU killed", boot.elapsed)),
    }
}

/// The console, the tracer's output and the guest's module list, for reading later.
fn save_logs(work: &Path, boot: &BootResult, output: &GuestOutput) -> Result<()> {
    fs::write(work.join("console.log"), boot.console.join("\n") + "\n")?;
    for (name, file) in [("events", "events.jsonl"), ("trace-err", "trace.err"), ("lsmod", "lsmod.txt")] {
        let lines = output.section(name).map(|s| s.lines.join("\n") + "\n").unwrap_or_default();
        fs::write(work.join(file), lines)?;
    }
    Ok(())
}

fn print_report(report: &Report) {
    println!();
    println!("== vm-test {}", report.label);
    println!(
        "   initramfs {:.1} s, boot+test {:.1} s, {}",
        report.initramfs_time.as_secs_f64(),
        report.boot_time.as_secs_f64(),
        report.attach.as_deref().unwrap_or("modtrace never attached")
    );
    if let Some(why) = &report.retried {
        println!("   RETRIED once: the first boot died before its init ran ({why})");
    }
    check::print(&report.checks);
    println!("   logs: {}", report.logs.display());
}

fn print_summary(reports: &[Report]) {
    println!();
    for report in reports {
        let total = report.checks.len();
        let failed = report.failed();
        let verdict = if failed == 0 { "PASS" } else { "FAIL" };
        let retried = if report.retried.is_some() { " (after one retried early boot)" } else { "" };
        println!("vm-test {verdict} {}: {} passed, {failed} failed{retried}", report.label, total - failed);
    }
    let total: usize = reports.iter().map(|r| r.checks.len()).sum();
    let failed: usize = reports.iter().map(Report::failed).sum();
    println!("vm-test: {} passed, {failed} failed", total - failed);
}
