//! `cargo xtask fuzz`: builds fuzz/ with the nightly toolchain, libFuzzer and
//! AddressSanitizer (the flags cargo-fuzz passes; no cargo-fuzz install), and
//! runs each target for its share of the time over the seeds and the
//! regression inputs. Without a nightly toolchain it replays the seeds and
//! regressions on stable (`cargo test` in fuzz/) and says so.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::harness::{cmd, paths};

pub const TARGETS: [&str; 5] = ["decode", "profile", "proc_modules", "modprobe_d", "module_name"];
const TRIPLE: &str = "x86_64-unknown-linux-gnu";
const RUSTFLAGS: &str = "-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares -Zsanitizer=address --cfg fuzzing \
    -Cdebug-assertions -Coverflow-checks";

pub struct Options {
    /// Total time, shared evenly by the targets run.
    pub seconds: u64,
    /// Only this target (else all).
    pub target: Option<String>,
}

fn fuzz_dir() -> PathBuf {
    paths::workspace().join("fuzz")
}

fn target_dir() -> PathBuf {
    paths::workspace().join("target/fuzz")
}

pub fn run(options: Options) -> Result<()> {
    let targets: Vec<&str> = match &options.target {
        Some(t) if TARGETS.contains(&t.as_str()) => vec![t.as_str()],
        Some(t) => bail!("no fuzz target {t}; the targets are {}", TARGETS.join(", ")),
        None => TARGETS.to_vec(),
    };
    let start = Instant::now();
    if !nightly_available() {
        eprintln!("fuzz: no nightly toolchain (`rustup run nightly rustc` failed): replaying the seeds and regressions on stable only");
        cmd::run(stable_cargo().args(["test", "--release"]))?;
        println!("fuzz: replay only (no fuzzing) in {:.0} s", start.elapsed().as_secs_f64());
        return Ok(());
    }
    build()?;
    let bin = target_dir().join(TRIPLE).join("release");
    let share = Duration::from_secs((options.seconds / targets.len() as u64).max(1));
    let mut failed = Vec::new();
    for target in &targets {
        let corpus = target_dir().join("corpus").join(target);
        fs::create_dir_all(&corpus)?;
        if matches!(*target, "decode" | "profile") {
            cmd::run(Command::new(bin.join("seeds")).arg(target).arg(&corpus))?;
        }
        if let Err(e) = fuzz_one(&bin.join(target), target, &corpus, share) {
            eprintln!("fuzz: {target}: {e:#}");
            failed.push(*target);
        }
    }
    println!("fuzz: {} target(s), {:.0?} each, wall time {:.0} s", targets.len(), share, start.elapsed().as_secs_f64());
    if !failed.is_empty() {
        bail!(
            "fuzz target(s) {} failed: the input is under target/fuzz/artifacts/TARGET/; once fixed, \
             copy it to fuzz/regressions/TARGET/ so every run replays it",
            failed.join(", ")
        );
    }
    Ok(())
}

fn nightly_available() -> bool {
    Command::new("rustup").args(["run", "nightly", "rustc", "--version"]).output().is_ok_and(|o| o.status.success())
}

fn stable_cargo() -> Command {
    let mut cargo = Command::new(paths::cargo());
    cargo.current_dir(fuzz_dir()).env("CARGO_TARGET_DIR", target_dir().join("stable"));
    cargo
}

/// The fuzz binaries, instrumented (the flags go to the target only, so build
/// scripts and the eBPF build modtrace's build.rs runs do not get them).
fn build() -> Result<()> {
    let flags_var = format!("CARGO_TARGET_{}_RUSTFLAGS", TRIPLE.to_uppercase().replace('-', "_"));
    cmd::run(
        Command::new("rustup")
            .args(["run", "nightly", "cargo", "build", "--release", "--features", "libfuzzer", "--bins"])
            .args(["--target", TRIPLE])
            .current_dir(fuzz_dir())
            .env("CARGO_TARGET_DIR", target_dir())
            .env(flags_var, RUSTFLAGS),
    )
}

/// Runs one target for `length` over its corpus, the committed seeds and the
/// regression inputs; a crash, a hang (10 s) or a leak fails it.
fn fuzz_one(bin: &Path, target: &str, corpus: &Path, length: Duration) -> Result<()> {
    let artifacts = target_dir().join("artifacts").join(target);
    fs::create_dir_all(&artifacts)?;
    let mut command = Command::new(bin);
    command
        .arg(format!("-max_total_time={}", length.as_secs()))
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(corpus);
    for dir in ["seeds", "regressions"] {
        let inputs = fuzz_dir().join(dir).join(target);
        if inputs.is_dir() {
            command.arg(inputs);
        }
    }
    let start = Instant::now();
    cmd::run(&mut command).with_context(|| format!("after {:.0} s", start.elapsed().as_secs_f64()))?;
    println!("fuzz: {target}: no crash in {:.0} s", start.elapsed().as_secs_f64());
    Ok(())
}
