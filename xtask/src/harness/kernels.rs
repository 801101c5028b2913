//! `cargo xtask kernels`: Debian kernel packages, downloaded, unpacked and
//! depmod'ed once into the cache.
//!
//! Layout under `<cache>/kernels/`: `apt-<dist>/` (a private apt per Debian release), `debs/`, `<dist>-<series>.kver`
//! (which release the series resolved to), `<KVER>/` (the unpacked package, with
//! `.modtrace-ready` once complete).

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use clap::builder::PossibleValue;
use clap::ValueEnum;

use crate::harness::apt::PrivateApt;
use crate::harness::{cmd, paths};

const READY: &str = ".modtrace-ready";

/// The kernel series the tests boot: what Debian users run now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Series {
    /// bookworm's own kernel (6.1).
    #[value(name = "6.1", alias = "bookworm")]
    Bookworm,
    /// trixie's own kernel (6.12, +deb13).
    #[value(name = "6.12", alias = "trixie")]
    Trixie,
    /// The newest kernel in trixie-backports (7.x on 2026-12-01), resolved at run time.
    #[value(name = "backports", alias = "trixie-backports")]
    TrixieBackports,
}

impl Series {
    pub const ALL: [Series; 3] = [Series::Bookworm, Series::Trixie, Series::TrixieBackports];

    fn name(self) -> &'static str {
        match self {
            Series::Bookworm => "6.1",
            Series::Trixie => "6.12",
            Series::TrixieBackports => "backports",
        }
    }

    /// The Debian release whose archive has this series.
    pub fn dist(self) -> &'static str {
        match self {
            Series::Bookworm => "bookworm",
            Series::Trixie | Series::TrixieBackports => "trixie",
        }
    }

    /// The image package of this series' newest release, e.g. linux-image-6.1.0-37-amd64.
    fn resolve_package(self, apt: &PrivateApt) -> Result<String> {
        let (meta, prefix) = match self {
            Series::Bookworm => ("linux-image-amd64", "linux-image-6.1.0-"),
            Series::Trixie => ("linux-image-amd64", "linux-image-6.12."),
            Series::TrixieBackports => ("linux-image-amd64/trixie-backports", "linux-image-"),
        };
        let mut candidates: Vec<String> = apt
            .depends(meta)?
            .into_iter()
            .filter(|p| p.starts_with(prefix) && p.ends_with("-amd64") && p != "linux-image-amd64")
            .collect();
        sort_versions(&mut candidates);
        candidates.pop().with_context(|| format!("no linux-image package found for {self} ({meta})"))
    }
}

impl fmt::Display for Series {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which series a command works on: one (named as `Series` names it), or all.
#[derive(Clone, Copy, Debug)]
pub struct Choice(Option<Series>);

impl ValueEnum for Choice {
    fn value_variants<'a>() -> &'a [Self] {
        const ALL: [Choice; 4] = [
            Choice(Some(Series::Bookworm)),
            Choice(Some(Series::Trixie)),
            Choice(Some(Series::TrixieBackports)),
            Choice(None),
        ];
        &ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        match self.0 {
            Some(series) => series.to_possible_value(),
            None => Some(PossibleValue::new("all")),
        }
    }
}

impl Choice {
    pub const ALL: Choice = Choice(None);

    pub fn series(self) -> Vec<Series> {
        match self.0 {
            Some(series) => vec![series],
            None => Series::ALL.to_vec(),
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
        crate::harness::cmd::output(Command::new("modprobe").arg("-d").arg(&self.root).args([
            "-S",
            &self.kver,
            "--show-depends",
            module,
        ]))
    }

    pub fn modules_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.kver)
    }

    /// /boot/vmlinuz-KVER, or from 7.x (linux-binary-KVER) /usr/lib/modules/KVER/vmlinuz.
    pub fn vmlinuz(&self) -> PathBuf {
        vmlinuz_in(&self.root, &self.kver)
            .unwrap_or_else(|| self.root.join("boot").join(format!("vmlinuz-{}", self.kver)))
    }
}

pub fn run(choice: Choice, refresh: bool) -> Result<()> {
    let kernels = ensure(&choice.series(), refresh)?;
    for kernel in &kernels {
        println!("kernel {} {}: {}", kernel.series, kernel.kver, kernel.root.display());
        if kernel.series == Series::Bookworm {
            println!("MODTRACE_TEST_MODULES={}", kernel.modules_dir().display());
        }
    }
    Ok(())
}

/// Makes sure every series in `series` is unpacked in the cache; returns them in order.
pub fn ensure(series: &[Series], refresh: bool) -> Result<Vec<Kernel>> {
    let dir = paths::kernels();
    fs::create_dir_all(&dir)?;
    let mut apts: BTreeMap<&str, PrivateApt> = BTreeMap::new();
    let mut kernels = Vec::new();
    for &s in series {
        let kernel = match cached(&dir, s).filter(|_| !refresh) {
            Some(kernel) => {
                eprintln!("kernels: {s} is cached: {}", kernel.kver);
                kernel
            }
            None => {
                let apt = match apts.entry(s.dist()) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => {
                        let private = PrivateApt::prepare(&dir.join(format!("apt-{}", s.dist())), s.dist())?;
                        private.update()?;
                        e.insert(private)
                    }
                };
                fetch(&dir, s, apt)?
            }
        };
        kernels.push(kernel);
    }
    Ok(kernels)
}

/// Names the suite too: "6.12" once meant bookworm-backports' kernel.
fn kver_file(dir: &Path, series: Series) -> PathBuf {
    dir.join(format!("{}-{series}.kver", series.dist()))
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
        let mut debs = Vec::new();
        for part in packages_of(apt, &package, &kver)? {
            debs.push(apt.download(&part, &dir.join("debs"))?);
        }
        unpack(&debs, &root, &kver)?;
    }
    fs::write(kver_file(dir, series), format!("{kver}\n"))?;
    Ok(Kernel { series, kver, root })
}

/// The packages that hold one kernel release: the image package itself, and from
/// 7.x the parts it depends on (linux-binary-, linux-modules-, linux-base-KVER),
/// since the image package has become a meta package there.
fn packages_of(apt: &PrivateApt, image: &str, kver: &str) -> Result<Vec<String>> {
    let mut packages = vec![image.to_string()];
    packages.extend(apt.depends(image)?.into_iter().filter(|p| is_kernel_part(p, kver)));
    Ok(packages)
}

fn is_kernel_part(package: &str, kver: &str) -> bool {
    ["linux-binary-", "linux-modules-", "linux-base-"].iter().any(|prefix| package.strip_prefix(prefix) == Some(kver))
}

/// Where a package set put the kernel: /boot (up to 6.x) or the modules directory (7.x).
fn vmlinuz_in(root: &Path, kver: &str) -> Option<PathBuf> {
    [root.join("boot").join(format!("vmlinuz-{kver}")), root.join("usr/lib/modules").join(kver).join("vmlinuz")]
        .into_iter()
        .find(|p| p.exists())
}

/// dpkg-deb -x every part into a scratch directory, depmod, then move into place and mark it.
fn unpack(debs: &[PathBuf], root: &Path, kver: &str) -> Result<()> {
    let scratch = PathBuf::from(format!("{}.partial", root.display()));
    if scratch.exists() {
        fs::remove_dir_all(&scratch)?;
    }
    for deb in debs {
        cmd::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&scratch))?;
    }
    link_usr_modules(&scratch, kver)?;
    let modules = scratch.join("lib/modules").join(kver);
    ensure!(modules.is_dir(), "{debs:?} have no lib/modules/{kver}");
    ensure!(vmlinuz_in(&scratch, kver).is_some(), "no vmlinuz in {debs:?}");
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
    match cached(&paths::kernels(), Series::Bookworm) {
        Some(kernel) => Ok(kernel.modules_dir()),
        None => bail!("the 6.1 kernel is not in the cache: run `cargo xtask kernels` first"),
    }
}

/// The cached trixie 6.12 and backports modules directories, for the host
/// tests of an upgrade between them (modtrace/tests/upgrade_kernels.rs).
pub fn upgrade_modules_dirs() -> Result<(PathBuf, PathBuf)> {
    let dir = paths::kernels();
    match (cached(&dir, Series::Trixie), cached(&dir, Series::TrixieBackports)) {
        (Some(from), Some(to)) => Ok((from.modules_dir(), to.modules_dir())),
        _ => bail!("trixie's 6.12 and backports kernels are not in the cache: run `cargo xtask kernels` first"),
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
        let mut names = vec!["linux-image-7.3.4+deb13-amd64".to_string(), "linux-image-6.19.14+deb13-amd64".into()];
        sort_versions(&mut names);
        assert_eq!(names.last().unwrap(), "linux-image-7.3.4+deb13-amd64");
    }

    #[test]
    fn split_packages_are_the_parts_of_the_same_release() {
        let kver = "7.3.4+deb13-amd64";
        assert!(is_kernel_part("linux-binary-7.3.4+deb13-amd64", kver));
        assert!(is_kernel_part("linux-modules-7.3.4+deb13-amd64", kver));
        assert!(is_kernel_part("linux-base-7.3.4+deb13-amd64", kver));
        assert!(!is_kernel_part("linux-base", kver));
        assert!(!is_kernel_part("linux-modules-7.2.12+deb13-amd64", kver));
        assert!(!is_kernel_part("initramfs-tools", kver));
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
