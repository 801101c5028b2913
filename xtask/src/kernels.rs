//! `cargo xtask kernels`: Debian kernel packages, downloaded, unpacked and
//! depmod'ed once into the cache.
//!
//! Layout under `<cache>/kernels/`: `apt/` (private apt), `debs/`, `<series>.kver`
//! (which release the series resolved to), `<KVER>/` (the unpacked package, with
//! `.modtrace-ready` once complete).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use clap::ValueEnum;

use crate::apt::PrivateApt;
use crate::{cmd, paths};

const READY: &str = ".modtrace-ready";

/// The kernel series the tests boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Series {
    /// bookworm's own kernel.
    #[value(name = "6.1")]
    V6_1,
    /// bookworm-backports' kernel.
    #[value(name = "6.12")]
    V6_12,
}

impl Series {
    pub const ALL: [Series; 2] = [Series::V6_1, Series::V6_12];

    fn name(self) -> &'static str {
        match self {
            Series::V6_1 => "6.1",
            Series::V6_12 => "6.12",
        }
    }

    /// The image package of this series' newest release, e.g. linux-image-6.1.0-37-amd64.
    fn resolve_package(self, apt: &PrivateApt) -> Result<String> {
        let mut candidates = match self {
            Series::V6_1 => apt
                .depends("linux-image-amd64")?
                .into_iter()
                .filter(|p| p.starts_with("linux-image-6.1.0-") && p.ends_with("-amd64"))
                .collect(),
            Series::V6_12 => apt.search_names(r"^linux-image-6\.12\.[0-9]+\+[a-z0-9]+-amd64$")?,
        };
        sort_versions(&mut candidates);
        candidates.pop().with_context(|| format!("no linux-image package found for {self}"))
    }
}

impl fmt::Display for Series {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which series a command works on.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Choice {
    #[value(name = "6.1")]
    V6_1,
    #[value(name = "6.12")]
    V6_12,
    All,
}

impl Choice {
    pub fn series(self) -> Vec<Series> {
        match self {
            Choice::V6_1 => vec![Series::V6_1],
            Choice::V6_12 => vec![Series::V6_12],
            Choice::All => Series::ALL.to_vec(),
        }
    }
}

/// An unpacked, depmod'ed kernel package.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub series: Series,
    pub kver: String,
    pub root: PathBuf,
}

impl Kernel {
    /// `modprobe --show-depends MODULE` against this kernel's tree.
    pub fn show_depends(&self, module: &str) -> Result<String> {
        crate::cmd::output(
            Command::new("modprobe")
                .arg("-d")
                .arg(&self.root)
                .args(["-S", &self.kver, "--show-depends", module]),
        )
    }

    pub fn modules_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.kver)
    }

    pub fn vmlinuz(&self) -> PathBuf {
        self.root.join("boot").join(format!("vmlinuz-{}", self.kver))
    }
}

pub fn run(choice: Choice, refresh: bool) -> Result<()> {
    let kernels = ensure(&choice.series(), refresh)?;
    for kernel in &kernels {
        println!("kernel {} {}: {}", kernel.series, kernel.kver, kernel.root.display());
        if kernel.series == Series::V6_1 {
            println!("MODTRACE_TEST_MODULES={}", kernel.modules_dir().display());
        }
    }
    Ok(())
}

/// Makes sure every series in `series` is unpacked in the cache; returns them in order.
pub fn ensure(series: &[Series], refresh: bool) -> Result<Vec<Kernel>> {
    let dir = paths::kernels();
    fs::create_dir_all(&dir)?;
    let mut apt = None;
    let mut kernels = Vec::new();
    for &s in series {
        let kernel = match cached(&dir, s).filter(|_| !refresh) {
            Some(kernel) => {
                eprintln!("kernels: {s} is cached: {}", kernel.kver);
                kernel
            }
            None => {
                if apt.is_none() {
                    let private = PrivateApt::prepare(&dir.join("apt"))?;
                    private.update()?;
                    apt = Some(private);
                }
                fetch(&dir, s, apt.as_ref().expect("apt was just prepared"))?
            }
        };
        kernels.push(kernel);
    }
    Ok(kernels)
}

fn kver_file(dir: &Path, series: Series) -> PathBuf {
    dir.join(format!("{series}.kver"))
}

fn cached(dir: &Path, series: Series) -> Option<Kernel> {
    let kver = fs::read_to_string(kver_file(dir, series)).ok()?.trim().to_string();
    let root = dir.join(&kver);
    root.join(READY).exists().then_some(Kernel { series, kver, root })
}

fn fetch(dir: &Path, series: Series, apt: &PrivateApt) -> Result<Kernel> {
    let package = series.resolve_package(apt)?;
    let kver = package.strip_prefix("linux-image-").expect("resolved names start so").to_string();
    let root = dir.join(&kver);
    if !root.join(READY).exists() {
        eprintln!("kernels: {series} is {package}: downloading");
        let deb = apt.download(&package, &dir.join("debs"))?;
        unpack(&deb, &root, &kver)?;
    }
    fs::write(kver_file(dir, series), format!("{kver}\n"))?;
    Ok(Kernel { series, kver, root })
}

/// dpkg-deb -x into a scratch directory, depmod, then move into place and mark it.
fn unpack(deb: &Path, root: &Path, kver: &str) -> Result<()> {
    let scratch = PathBuf::from(format!("{}.partial", root.display()));
    if scratch.exists() {
        fs::remove_dir_all(&scratch)?;
    }
    cmd::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&scratch))?;
    link_usr_modules(&scratch, kver)?;
    let modules = scratch.join("lib/modules").join(kver);
    ensure!(modules.is_dir(), "{} has no lib/modules/{kver}", deb.display());
    ensure!(scratch.join(format!("boot/vmlinuz-{kver}")).exists(), "no vmlinuz in {}", deb.display());
    cmd::run(Command::new("depmod").arg("-b").arg(&scratch).arg(kver))?;
    if root.exists() {
        fs::remove_dir_all(root)?;
    }
    fs::rename(&scratch, root)?;
    fs::write(root.join(READY), "")?;
    Ok(())
}

/// Packages built for a merged /usr ship usr/lib/modules; depmod -b wants lib/modules.
fn link_usr_modules(root: &Path, kver: &str) -> Result<()> {
    let usr = root.join("usr/lib/modules").join(kver);
    let lib = root.join("lib/modules");
    if usr.is_dir() && !lib.exists() {
        fs::create_dir_all(root.join("lib"))?;
        std::os::unix::fs::symlink("../usr/lib/modules", &lib)?;
    }
    Ok(())
}

/// Sorts Debian package names by the version numbers they contain.
fn sort_versions(names: &mut [String]) {
    names.sort_by_key(|name| numbers_in(name));
}

fn numbers_in(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap_or(0)).collect()
}

/// The cached 6.1 modules directory for host tests of the real libkmod index.
pub fn test_modules_dir() -> Result<PathBuf> {
    match cached(&paths::kernels(), Series::V6_1) {
        Some(kernel) => Ok(kernel.modules_dir()),
        None => bail!("the 6.1 kernel is not in the cache: run `cargo xtask kernels` first"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_release_sorts_last() {
        let mut names = vec![
            "linux-image-6.12.9+bpo-amd64".to_string(),
            "linux-image-6.12.38+deb12-amd64".to_string(),
            "linux-image-6.12.10+deb12-amd64".to_string(),
        ];
        sort_versions(&mut names);
        assert_eq!(names.last().unwrap(), "linux-image-6.12.38+deb12-amd64");
    }
}

/// The files of the `insmod FILE ...` lines of `modprobe --show-depends`,
/// dependencies first.
pub fn insmod_files(show_depends: &str) -> Vec<PathBuf> {
    show_depends
        .lines()
        .filter_map(|line| line.strip_prefix("insmod "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod show_depends_tests {
    use super::*;

    #[test]
    fn reads_insmod_lines() {
        let out = "insmod /m/kernel/drivers/virtio/virtio_ring.ko \nbuiltin crc32c\ninsmod /m/ext4.ko opt=1\n";
        assert_eq!(insmod_files(out), [PathBuf::from("/m/kernel/drivers/virtio/virtio_ring.ko"), "/m/ext4.ko".into()]);
    }
}
