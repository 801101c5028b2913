//! `cargo xtask bench`: one guest (6.1 unless `--kernel` says otherwise)
//! holding modtrace, Debian's bpftrace and bpftool, times the same storms
//! untraced, under bpftrace and under modtrace, and the same allowed loads
//! untraced, under the guard and sealed (tests/bench/init), then prints the
//! tables of medians and ratios (table.rs, guard.rs) and writes them to
//! target/bench/bench.md and bench.json.

pub mod guard;
pub mod table;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::harness::guest_output::GuestOutput;
use crate::harness::initramfs::{self, Modules};
use crate::harness::kernels::{self, Kernel, Series};
use crate::harness::qemu::{self, Boot, BootResult, Outcome};
use crate::harness::{artifacts, cmd, files, paths};
use table::{Figures, Settings};

/// Debian packages the guest runs beside modtrace (libbpfcc has libbcc_bpf,
/// which bpftrace links and the host usually lacks).
const PACKAGES: [&str; 3] = ["bpftrace", "bpftool", "libbpfcc"];
/// Modules modprobed one by one during the flood (no dependencies, not built in).
const LOAD_MODULES: [&str; 3] = ["loop", "dummy", "nls_ascii"];
/// Loaded and removed in the guard's storms: no dependencies, an init that
/// only registers a table, so the load path is as short as a real one gets
/// and the guard's share of it as large.
const GUARD_MODULE: &str = "nls_ascii";
const DIRS: [&str; 11] = ["bin", "sbin", "dev", "etc/bench", "lib", "proc", "sys", "tmp", "run", "root", "usr"];

pub struct Options {
    pub runs: u32,
    /// One run with small counts: proves the machinery, not the figures.
    pub smoke: bool,
    pub keep: bool,
    pub timeout: Duration,
    pub kernel: Series,
    /// Only the guard's figures.
    pub guard_only: bool,
}

pub fn run(options: Options) -> Result<()> {
    let mut settings = if options.smoke { Settings::smoke() } else { Settings::full(options.runs) };
    settings.guard_only = options.guard_only;
    let start = Instant::now();
    let kernel = kernels::ensure(&[options.kernel], false)?.remove(0);
    let built = artifacts::build(None)?;
    let work = paths::workspace().join("target/bench");
    fs::create_dir_all(&work)?;
    let packages = unpack_packages(&work, &PACKAGES)?;
    let image = build_initramfs(&kernel, &built, &packages, &settings, &work)?;
    // The smoke run in `xtask test` must not die of TCG's code-patching race;
    // the timed runs keep one host thread per vCPU.
    let threads = if options.smoke { qemu::Threads::Single } else { qemu::Threads::Multi };
    let (boot, output) = boot_guest(&kernel, &image, &work, options.timeout, threads)?;
    let figures = Figures::parse(&boot.console);
    let profile = output.section("bpftool").map(|s| table::parse_bpftool(&s.lines)).unwrap_or_default();
    let guard_profile = output.section("guard-bpftool").map(|s| table::parse_bpftool(&s.lines)).unwrap_or_default();
    let machine = format!(
        "{} under QEMU TCG ({}), 2 vCPUs, 2 GiB; {}",
        output.kernel.as_deref().unwrap_or(&kernel.kver),
        if threads == qemu::Threads::Single { "one host thread" } else { "a host thread per vCPU" },
        settings.describe()
    );
    write_table(&figures, (&profile, &guard_profile), &machine, options.guard_only, &work)?;
    if !options.keep {
        fs::remove_dir_all(work.join("root"))?;
        fs::remove_file(&image)?;
    }
    println!(
        "bench: {} and {} written; wall time {:.0} s (guest {:.0} s)",
        work.join("bench.md").display(),
        work.join("bench.json").display(),
        start.elapsed().as_secs_f64(),
        boot.elapsed.as_secs_f64()
    );
    let missing = figures.missing(options.guard_only);
    ensure!(missing.is_empty(), "the guest sent no figures for: {}", missing.join(", "));
    let heavy = table::over_verifier_budget(&profile);
    ensure!(
        heavy.is_empty(),
        "the verifier processed more than {} instructions for: {} (start-up pays for each; see target/bench/bench.md)",
        table::VERIFIER_BUDGET,
        heavy.join(", ")
    );
    Ok(())
}

/// Boots the bench guest (once more if it died before its init) and reads
/// what it sent back; fails unless it finished.
fn boot_guest(
    kernel: &Kernel,
    image: &Path,
    work: &Path,
    timeout: Duration,
    threads: qemu::Threads,
) -> Result<(BootResult, GuestOutput)> {
    let serial_log = work.join("ttyS1.log");
    let attempt = |_| {
        let _ = fs::remove_file(&serial_log);
        Boot {
            label: "bench".into(),
            kernel: kernel.vmlinuz(),
            initrd: image.to_path_buf(),
            serial_log: serial_log.clone(),
            timeout,
            memory_mib: 2048,
            threads,
        }
        .run()
    };
    let (boot, _) = qemu::retry_early_death("bench", attempt, BootResult::early_death)?;
    fs::write(work.join("console.log"), boot.console.join("\n") + "\n")?;
    if boot.outcome != Outcome::Done {
        bail!("the bench guest did not finish ({:?}); console in {}", boot.outcome, work.join("console.log").display());
    }
    let serial = String::from_utf8_lossy(&fs::read(&serial_log).unwrap_or_default()).into_owned();
    let output = GuestOutput::parse(&boot.console, &serial);
    Ok((boot, output))
}

/// Prints the tables and writes them to `work`/bench.md and bench.json.
fn write_table(
    figures: &Figures,
    (profile, guard_profile): (&[table::ProgramTime], &[table::ProgramTime]),
    machine: &str,
    guard_only: bool,
    work: &Path,
) -> Result<()> {
    let mut markdown = table::markdown(figures, profile, machine, &today()?);
    if guard_only {
        // The tracer's rows would be dashes: the heading line alone.
        markdown = markdown.lines().next().unwrap_or_default().to_string() + "\n";
    }
    markdown += &guard::markdown(figures, guard_profile, GUARD_MODULE);
    println!("\n{markdown}");
    fs::write(work.join("bench.md"), &markdown)?;
    fs::write(work.join("bench.json"), table::json(figures, profile, machine) + "\n")?;
    Ok(())
}

fn today() -> Result<String> {
    Ok(cmd::output_of("date", &["-u", "+%Y-%m-%d"])?.trim().to_string())
}

/// Downloads (once) and unpacks `packages` (bpftrace, bpftool and libbcc_bpf
/// here) with the system's apt; returns the unpacked tree.
pub(crate) fn unpack_packages(work: &Path, packages: &[&str]) -> Result<PathBuf> {
    let debs = work.join("debs");
    let tree = work.join("packages");
    fs::create_dir_all(&debs)?;
    for &package in packages {
        if find_deb(&debs, package)?.is_none() {
            cmd::run(Command::new("apt-get").args(["-q", "download", package]).current_dir(&debs))?;
        }
        let deb = find_deb(&debs, package)?.with_context(|| format!("apt-get download {package} left no .deb"))?;
        cmd::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree))?;
    }
    Ok(tree)
}

fn find_deb(dir: &Path, package: &str) -> Result<Option<PathBuf>> {
    let prefix = format!("{package}_");
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(".deb") {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

fn build_initramfs(
    kernel: &Kernel,
    built: &artifacts::Built,
    packages: &Path,
    settings: &Settings,
    work: &Path,
) -> Result<PathBuf> {
    let root = work.join("root");
    if root.exists() {
        fs::remove_dir_all(&root)?;
    }
    for dir in DIRS {
        fs::create_dir_all(root.join(dir))?;
    }
    initramfs::install_busybox(&root)?;
    initramfs::install_kmod(&root)?;
    initramfs::install_program(&root, &built.modtrace, "bin/modtrace")?;
    initramfs::install_program(&root, &built.guest_tool, "bin/modtrace-guest")?;
    install_packaged(&root, packages, "usr/bin/bpftrace")?;
    install_packaged(&root, packages, "usr/sbin/bpftool")?;
    let bench = paths::workspace().join("tests/bench");
    files::install(&bench.join("init"), &root.join("init"), 0o755)?;
    for script in ["modules.bt", "count.bt"] {
        files::install(&bench.join(script), &root.join("etc/bench").join(script), 0o644)?;
    }
    fs::write(root.join("etc/bench.env"), settings.env_file(&LOAD_MODULES, GUARD_MODULE))?;
    let modules = initramfs::with_dependencies(kernel, &LOAD_MODULES)?;
    initramfs::install_modules(kernel, &root, Modules::Files(&modules))?;
    initramfs::pack(&root, &work.join("initramfs.cpio"))
}

/// A program from the unpacked packages, with every library `ldd` names,
/// looked up in the packages first (libbcc_bpf) and then on the host.
pub(crate) fn install_packaged(root: &Path, packages: &Path, program: &str) -> Result<()> {
    let source = packages.join(program);
    files::install(&source, &root.join(program), 0o755)?;
    let lib_dirs = ["usr/lib/x86_64-linux-gnu", "usr/lib"].map(|d| packages.join(d).display().to_string()).join(":");
    let out = Command::new("ldd").arg(&source).env("LD_LIBRARY_PATH", lib_dirs).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        !text.contains("not found"),
        "{program} needs libraries this host lacks (cargo xtask setup installs them):\n{text}"
    );
    for library in files::libraries_in(&text) {
        // A library from the packages goes where the package puts it.
        let path = library.strip_prefix(packages).unwrap_or(library.strip_prefix("/").expect("ldd paths are absolute"));
        let inside = root.join(path);
        if !inside.exists() {
            files::install(&library, &inside, 0o755)?;
        }
    }
    Ok(())
}
