//! `cargo xtask setup`: the Debian packages and the bpf-linker the project needs.
//! Idempotent: installs only what is missing and says what it does.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

use crate::harness::{cmd, paths};

/// Debian packages for building (eBPF and host) and for the QEMU tests.
const PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "rustc-web",
    "cargo-web",
    "libstd-rust-web-dev-bpf",
    "libkmod-dev",
    "libclang-dev",
    "pkg-config",
    "qemu-system-x86",
    "busybox-static",
    "kmod",
    "cpio",
    "xz-utils",
    "iproute2",
    "debootstrap",
    "e2fsprogs",
    // cargo xtask deb: dpkg-shlibdeps for cargo-deb's $auto Depends, man-db and
    // groff to render the packaged man pages in its check.
    "dpkg-dev",
    "man-db",
    "groff-base",
    // The package's lintian check; the demo's FAT image.
    "lintian",
    "dosfstools",
    // The system test's user image (squashfs), mounted through udisks2.
    "squashfs-tools",
    // cargo xtask bench: the libraries Debian's bpftrace and bpftool link (the
    // guest gets the host's copies; the programs come from apt-get download).
    "libllvm14",
    "libclang1-14",
    "libbpf1",
    "libdw1",
    "libz3-4",
    "libelf1",
];

const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn run() -> Result<()> {
    check_host()?;
    install_packages()?;
    install_bpf_linker()?;
    install_cargo_deb()?;
    eprintln!("setup: done");
    Ok(())
}

fn check_host() -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!("setup installs Debian packages: run it as root");
    }
    if !Path::new("/usr/bin/apt-get").exists() || !Path::new("/usr/bin/dpkg-query").exists() {
        bail!("setup needs a Debian-like system (apt-get and dpkg-query not found)");
    }
    Ok(())
}

fn is_installed(package: &str) -> bool {
    cmd::output_of("dpkg-query", &["-W", "-f=${db:Status-Status}", package])
        .map(|status| status.trim() == "installed")
        .unwrap_or(false)
}

fn install_packages() -> Result<()> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !is_installed(p)).collect();
    if missing.is_empty() {
        eprintln!("setup: all {} Debian packages already installed", PACKAGES.len());
        return Ok(());
    }
    eprintln!("setup: installing missing Debian packages: {}", missing.join(" "));
    cmd::run(Command::new("apt-get").arg("update"))?;
    cmd::run(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn bpf_linker_is_current() -> bool {
    cmd::output_of("bpf-linker", &["--version"])
        .map(|v| v.split_whitespace().any(|word| word == BPF_LINKER_VERSION))
        .unwrap_or(false)
}

fn install_bpf_linker() -> Result<()> {
    if bpf_linker_is_current() {
        eprintln!("setup: bpf-linker {BPF_LINKER_VERSION} already installed");
        return Ok(());
    }
    eprintln!("setup: installing bpf-linker {BPF_LINKER_VERSION} against LLVM 22");
    cmd::run(
        Command::new(paths::cargo())
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION, "--locked"])
            .args(["--no-default-features", "--features", "llvm-22"])
            .env("LLVM_PREFIX", "/usr/lib/llvm-22"),
    )
}

/// cargo-deb, for `cargo xtask deb`; installed from crates.io when missing.
fn install_cargo_deb() -> Result<()> {
    let wanted = crate::package::CARGO_DEB_VERSION;
    let installed = cmd::output_of("cargo-deb", &["--version"]).unwrap_or_default();
    if installed.split_whitespace().any(|word| word == wanted) {
        eprintln!("setup: cargo-deb {wanted} already installed");
        return Ok(());
    }
    eprintln!("setup: installing cargo-deb {wanted}");
    cmd::run(Command::new(paths::cargo()).args(["install", "cargo-deb", "--version", wanted, "--locked"]))
}
