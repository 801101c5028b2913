//! The Debian package of each unit and executable a profile names, read from
//! dpkg's own database on the learning host: `/var/lib/dpkg/info/*.list` (the
//! files each package installed) and `/var/lib/dpkg/diversions`.
//!
//! dpkg records paths as the package shipped them: on a merged-/usr system
//! `/bin/kmod` of the list is `/usr/bin/kmod` on disk, and the other way round,
//! so both spellings are looked up. A diverted file belongs to the package
//! that diverted it (or to nobody, for a local diversion); the diverted-away
//! copy to the package it came from. A unit's package is that of its unit
//! file, found on systemd's search path (a template's for an instance).
//! The lists are read once per batch of new paths; answers are cached, at most
//! `CACHE_MAX` of them (or one batch, when a batch is larger).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::model::Profile;
use crate::trace::scope::Scope;

/// Answers kept between batches; beyond, the cache starts over.
pub const CACHE_MAX: usize = 4096;

/// Where systemd looks for system units, in its order of precedence.
const UNIT_DIRS: &[&str] = &[
    "etc/systemd/system",
    "run/systemd/system",
    "usr/local/lib/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
];

/// Directories merged /usr links from the root (/bin -> usr/bin, ...).
const MERGED: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// One diversion: `from` is replaced by the diverter's file, the original
/// moved to `to`; `by` is None for a local (admin's) diversion.
#[derive(Debug, Clone)]
struct Diversion {
    from: String,
    to: String,
    by: Option<String>,
}

/// dpkg's database under `root` ("/" on the learning host), with a cache.
#[derive(Debug)]
pub struct Dpkg {
    root: PathBuf,
    cache: BTreeMap<String, Option<String>>,
}

impl Dpkg {
    pub fn under(root: &Path) -> Dpkg {
        Dpkg { root: root.to_path_buf(), cache: BTreeMap::new() }
    }

    /// Whether there is a dpkg database (a Debian system) at all.
    pub fn present(&self) -> bool {
        self.root.join("var/lib/dpkg/info").is_dir()
    }

    /// The package of each of `paths` that one ships; one pass over the lists
    /// for the paths not answered before.
    pub fn packages_of(&mut self, paths: &BTreeSet<String>) -> BTreeMap<String, String> {
        let new: Vec<&String> = paths.iter().filter(|p| !self.cache.contains_key(*p)).collect();
        if !new.is_empty() {
            let diversions = self.diversions();
            let wanted: BTreeSet<String> = new.iter().flat_map(|p| spellings(p, &diversions)).collect();
            let owners = self.owners(&wanted);
            if self.cache.len() + new.len() > CACHE_MAX {
                self.cache.clear();
            }
            for p in new {
                self.cache.insert(p.clone(), package_of(p, &owners, &diversions));
            }
        }
        paths.iter().filter_map(|p| Some((p.clone(), self.cache.get(p)?.clone()?))).collect()
    }

    /// For each wanted path, the packages whose list holds it.
    fn owners(&self, wanted: &BTreeSet<String>) -> BTreeMap<String, Vec<String>> {
        let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let Ok(dir) = std::fs::read_dir(self.root.join("var/lib/dpkg/info")) else { return owners };
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".list") else { continue };
            // "libc6:amd64.list": the package is libc6.
            let package = stem.split(':').next().unwrap_or(stem).to_string();
            let Ok(file) = std::fs::File::open(entry.path()) else { continue };
            for line in BufReader::new(file).lines().map_while(Result::ok) {
                if wanted.contains(&line) {
                    owners.entry(line).or_default().push(package.clone());
                }
            }
        }
        owners
    }

    fn diversions(&self) -> Vec<Diversion> {
        let text = std::fs::read_to_string(self.root.join("var/lib/dpkg/diversions")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines
            .chunks_exact(3)
            .map(|c| Diversion {
                from: c[0].to_string(),
                to: c[1].to_string(),
                by: (c[2] != ":").then(|| c[2].to_string()),
            })
            .collect()
    }

    /// The unit file of a system unit (a template's for an instance), as a
    /// path on the host; None when masked or not found.
    pub fn unit_file(&self, unit: &str) -> Option<String> {
        let template = unit.split_once('@').and_then(|(prefix, rest)| {
            let suffix = rest.rsplit_once('.')?.1;
            Some(format!("{prefix}@.{suffix}"))
        });
        for name in std::iter::once(unit.to_string()).chain(template) {
            for dir in UNIT_DIRS {
                let path = self.root.join(dir).join(&name);
                if let Ok(target) = std::fs::read_link(&path) {
                    // A link to /dev/null masks the unit; another names its file.
                    let target = Path::new("/").join(dir).join(target);
                    return (target != Path::new("/dev/null")).then(|| target.to_string_lossy().into_owned());
                }
                if path.is_file() {
                    return Some(format!("/{dir}/{name}"));
                }
            }
        }
        None
    }
}

/// The paths dpkg may list for a file at `path`: both sides of merged /usr,
/// and the original of a diverted-away copy.
fn spellings(path: &str, diversions: &[Diversion]) -> Vec<String> {
    let mut out = vec![path.to_string()];
    if let Some(rest) = path.strip_prefix("/usr/") {
        if MERGED.iter().any(|d| rest.starts_with(&format!("{d}/"))) {
            out.push(format!("/{rest}"));
        }
    } else if MERGED.iter().any(|d| path.starts_with(&format!("/{d}/"))) {
        out.push(format!("/usr{path}"));
    }
    let diverted: Vec<String> =
        diversions.iter().filter(|d| out.contains(&d.to) || out.contains(&d.from)).map(|d| d.from.clone()).collect();
    out.extend(diverted);
    out
}

/// Who ships the file at `path`, diversions considered.
fn package_of(path: &str, owners: &BTreeMap<String, Vec<String>>, diversions: &[Diversion]) -> Option<String> {
    let names = spellings(path, &[]);
    for d in diversions {
        if names.contains(&d.from) {
            return d.by.clone();
        }
        if names.contains(&d.to) {
            let original = owners.get(&d.from)?;
            return original.iter().find(|p| Some(*p) != d.by.as_ref()).cloned();
        }
    }
    names.iter().find_map(|n| owners.get(n)?.first().cloned())
}

impl Profile {
    /// Records the package of every executable and system unit the profile
    /// names that dpkg knows; what it knew before is kept.
    pub fn record_packages(&mut self, dpkg: &mut Dpkg) {
        let (exes, units) = self.named();
        let files: BTreeMap<String, String> =
            units.into_iter().filter_map(|u| Some((u.clone(), dpkg.unit_file(&u)?))).collect();
        let mut paths = exes.clone();
        paths.extend(files.values().cloned());
        let owned = dpkg.packages_of(&paths);
        for (unit, file) in files {
            if let Some(package) = owned.get(&file) {
                self.packages.units.insert(unit, package.clone());
            }
        }
        for (path, package) in owned.into_iter().filter(|(p, _)| exes.contains(p)) {
            self.packages.executables.insert(path, package);
        }
    }

    /// The executables and the host's system units the profile names.
    fn named(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let (mut exes, mut units) = (BTreeSet::new(), BTreeSet::new());
        let mut add = |exe: &Option<String>, scope: &Scope| {
            exes.extend(exe.iter().filter(|e| e.starts_with('/')).cloned());
            if let Scope::System { unit } = scope {
                units.insert(unit.clone());
            }
        };
        for t in self.modules.iter().flat_map(|m| &m.triggers) {
            for r in t.requester.iter().chain(&t.also_requested_by).chain(&t.candidates) {
                add(&r.exe, &r.scope);
            }
            if let Some(l) = &t.loader {
                add(&l.exe, &l.scope);
            }
            if let Some(via) = t.via.as_ref().filter(|v| v.ends_with(".mount") || v.ends_with(".service")) {
                add(&None, &Scope::System { unit: via.clone() });
            }
        }
        for r in self.requests.iter().flat_map(|r| &r.requesters) {
            add(&r.who.exe, &r.who.scope);
        }
        for f in &self.failed {
            add(&f.loader.exe, &f.loader.scope);
        }
        (exes, units)
    }
}

#[cfg(test)]
mod tests;
