//! The programs the guest runs, built for the host's architecture: modtrace
//! (release, dynamically linked) and the static guest tool.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Result};

use crate::harness::{cmd, paths};

const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";

pub struct Built {
    pub modtrace: PathBuf,
    pub guest_tool: PathBuf,
}

/// Builds both programs; `modtrace` replaces the built tracer when given.
pub fn build(modtrace: Option<&Path>) -> Result<Built> {
    let modtrace = match modtrace {
        Some(path) => {
            eprintln!("vm-test: using {} as modtrace", path.display());
            path.to_path_buf()
        }
        None => build_modtrace()?,
    };
    Ok(Built { modtrace, guest_tool: build_guest_tool()? })
}

fn cargo_build() -> Command {
    let mut cargo = Command::new(paths::cargo());
    cargo.current_dir(paths::workspace()).args(["build", "--release"]);
    cargo
}

fn build_modtrace() -> Result<PathBuf> {
    cmd::run(cargo_build().args(["-p", "modtrace"]))?;
    existing(paths::workspace().join("target/release/modtrace"))
}

/// Statically linked (crt-static) so the initramfs needs no libraries for it.
fn build_guest_tool() -> Result<PathBuf> {
    let rustflags = format!("CARGO_TARGET_{}_RUSTFLAGS", GUEST_TARGET.to_uppercase().replace('-', "_"));
    cmd::run(
        cargo_build()
            .args(["-p", "modtrace-guest", "--target", GUEST_TARGET])
            .env(rustflags, "-C target-feature=+crt-static"),
    )?;
    existing(paths::workspace().join("target").join(GUEST_TARGET).join("release/modtrace-guest"))
}

fn existing(path: PathBuf) -> Result<PathBuf> {
    ensure!(path.exists(), "the build left no {}", path.display());
    Ok(path)
}
