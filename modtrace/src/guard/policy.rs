//! What the guard allows, computed from the profile's plan and the running
//! kernel's module index: module names, request_module strings, and module
//! files by (device, inode).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::needs::Plan;
use crate::trace::modindex::{normalize, ModuleIndex};
use crate::profile::{Profile, TriggerKind};

/// The allowed set of one kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Every allowed module (normalized names), built-in ones included.
    pub modules: BTreeSet<String>,
    /// Strings request_module may ask for.
    pub aliases: BTreeSet<String>,
    /// The module files finit_module may read.
    pub files: Vec<AllowedFile>,
    /// What the guard could not include, in plain words.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedFile {
    pub module: String,
    pub path: PathBuf,
    /// The kernel's encoding of the file system's device (MKDEV).
    pub dev: u32,
    pub ino: u64,
}

/// The modules the profile needs, as the plan derives them for generate and
/// lock: the top-level modules, their dependencies, and the built-in ones.
/// The guard's only dependency on how that is decided.
pub fn allowed_modules(plan: &Plan) -> BTreeSet<String> {
    let mut all = plan.loaded_set();
    all.extend(plan.builtin.keys().cloned());
    all
}

/// `modules` plus the soft dependencies modprobe loads with them (and theirs),
/// each with its hard dependencies.
pub fn with_softdeps(
    modules: &BTreeSet<String>,
    softdeps: &BTreeMap<String, Vec<String>>,
    index: &dyn ModuleIndex,
) -> BTreeSet<String> {
    let mut all = modules.clone();
    let mut todo: Vec<String> = modules.iter().cloned().collect();
    while let Some(m) = todo.pop() {
        for soft in softdeps.get(&m).into_iter().flatten() {
            for dep in index.closure(soft) {
                if all.insert(dep.clone()) {
                    todo.push(dep);
                }
            }
        }
    }
    all
}

/// modules.softdep: `softdep MODULE pre: A B post: C`.
pub fn parse_softdeps(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("softdep") {
            continue;
        }
        let Some(module) = words.next() else { continue };
        let deps = words.filter(|w| !w.ends_with(':')).map(normalize);
        out.entry(normalize(module)).or_default().extend(deps);
    }
    out
}

/// The request_module strings that lead to an allowed module:
/// - every literal alias of modules.alias naming one (net-pf-5, fs-vfat,
///   rtnl-link-dummy, crypto-...); pattern aliases (pci:v*d*...) are matched
///   by udev, never passed literally to request_module, so they are skipped;
/// - every alias the profile saw requested that resolves to one (which covers
///   requests that only a pattern matches);
/// - the module names themselves, with `_` and `-` (request_module("loop")).
pub fn allowed_aliases(
    allowed: &BTreeSet<String>,
    modules_alias: &str,
    profile: &Profile,
    index: &dyn ModuleIndex,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in modules_alias.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("alias") {
            continue;
        }
        let (Some(alias), Some(module)) = (words.next(), words.next()) else { continue };
        if !is_pattern(alias) && allowed.contains(&normalize(module)) {
            out.insert(alias.to_string());
        }
    }
    for alias in requested_aliases(profile) {
        if index.resolve(&alias).iter().any(|m| allowed.contains(m)) {
            out.insert(alias);
        }
    }
    for m in allowed {
        out.insert(m.clone());
        out.insert(m.replace('_', "-"));
    }
    out
}

fn is_pattern(alias: &str) -> bool {
    alias.contains(['*', '?', '['])
}

fn requested_aliases(profile: &Profile) -> BTreeSet<String> {
    let from_modules = profile
        .modules
        .iter()
        .flat_map(|m| &m.triggers)
        .filter(|t| t.kind == TriggerKind::Request)
        .filter_map(|t| t.alias.clone());
    from_modules.chain(profile.requests.iter().map(|r| r.alias.clone())).collect()
}

/// The file of each allowed loadable module, by the kernel's device and inode
/// numbers: a copy elsewhere has other numbers, whatever it is called. Only
/// files under `modules_dir` count.
pub fn module_files(
    modules: &BTreeSet<String>,
    builtin: &BTreeSet<String>,
    path_of: &dyn Fn(&str) -> Option<PathBuf>,
    modules_dir: &Path,
) -> (Vec<AllowedFile>, Vec<String>) {
    let root = modules_dir.canonicalize().unwrap_or_else(|_| modules_dir.to_path_buf());
    let mut files = Vec::new();
    let mut notes = Vec::new();
    for m in modules.iter().filter(|m| !builtin.contains(*m)) {
        let Some(path) = path_of(m) else {
            notes.push(format!("{m}: no file in {} (not allowed to load from a file)", root.display()));
            continue;
        };
        let real = path.canonicalize().unwrap_or(path.clone());
        if !real.starts_with(&root) {
            notes.push(format!("{m}: {} lies outside {} (left out)", real.display(), root.display()));
            continue;
        }
        match std::fs::metadata(&real) {
            Ok(meta) => {
                files.push(AllowedFile { module: m.clone(), path: real, dev: kernel_dev(meta.dev()), ino: meta.ino() })
            }
            Err(e) => notes.push(format!("{m}: {}: {e} (left out)", real.display())),
        }
    }
    (files, notes)
}

/// st_dev (glibc's encoding) as the kernel's dev_t: major << 20 | minor.
pub fn kernel_dev(st_dev: u64) -> u32 {
    let major = libc::major(st_dev) as u32;
    let minor = libc::minor(st_dev) as u32;
    (major << 20) | (minor & 0xf_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::needs::Plan;
    use crate::trace::modindex::StaticIndex;

    #[test]
    fn allowed_modules_are_the_loaded_set_and_the_builtin_ones() {
        let plan = Plan {
            top_level: vec!["vfat".into(), "appletalk".into()],
            brings: [
                ("vfat".to_string(), vec!["fat".to_string()]),
                ("appletalk".into(), vec!["psnap".into(), "llc".into()]),
            ]
            .into_iter()
            .collect(),
            builtin: [("ext4".to_string(), vec![])].into_iter().collect(),
            ..Plan::default()
        };
        let got: Vec<String> = allowed_modules(&plan).into_iter().collect();
        assert_eq!(got, ["appletalk", "ext4", "fat", "llc", "psnap", "vfat"]);
    }

    #[test]
    fn softdeps_and_their_dependencies_are_allowed_too() {
        let text =
            "# Soft dependencies\nsoftdep ext4 pre: crc32c\nsoftdep crc32c post: crc32c-intel\nsoftdep other pre: x\n";
        let soft = parse_softdeps(text);
        assert_eq!(soft["crc32c"], ["crc32c_intel"]);
        let index =
            StaticIndex::default().module("crc32c", &["crypto_hash"]).module("crc32c_intel", &[]).module("x", &[]);
        let start: BTreeSet<String> = ["ext4".to_string()].into();
        let got: Vec<String> = with_softdeps(&start, &soft, &index).into_iter().collect();
        assert_eq!(got, ["crc32c", "crc32c_intel", "crypto_hash", "ext4"]);
    }

    pub(crate) fn profile_with_requests(aliases: &[&str]) -> Profile {
        let requests: Vec<serde_json::Value> = aliases
            .iter()
            .map(|a| serde_json::json!({"alias": a, "count": 1, "first_seen": "t", "last_seen": "t"}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "schema": "modtrace-profile/1", "kernel": "6.1.0-test", "host": "h",
            "boots": [], "sessions": [], "modules": [], "requests": requests, "failed": []
        }))
        .unwrap()
    }

    #[test]
    fn aliases_are_literal_ones_recorded_ones_and_names() {
        let allowed: BTreeSet<String> = ["appletalk".to_string(), "nf_conntrack".to_string()].into();
        let alias_file = "alias net-pf-5 appletalk\nalias pci:v00001234d*sv*sd*bc*sc*i* appletalk\nalias net-pf-38 af_alg\nalias nf-conntrack-x nf_conntrack\n";
        let profile = profile_with_requests(&["char-major-99-1", "net-pf-38"]);
        let index = StaticIndex::default().alias("char-major-99-1", "appletalk");
        let got: Vec<String> = allowed_aliases(&allowed, alias_file, &profile, &index).into_iter().collect();
        assert_eq!(
            got,
            ["appletalk", "char-major-99-1", "net-pf-5", "nf-conntrack", "nf-conntrack-x", "nf_conntrack"],
            "the pattern alias, and net-pf-38 (its module is not allowed), stay out"
        );
    }

    #[test]
    fn files_are_identified_by_device_and_inode_under_the_module_tree() {
        let dir = std::env::temp_dir().join(format!("modtrace-guard-files-{}", std::process::id()));
        let tree = dir.join("lib/modules/6.1.0-test");
        std::fs::create_dir_all(tree.join("kernel/fs")).unwrap();
        std::fs::write(tree.join("kernel/fs/vfat.ko"), b"vfat").unwrap();
        std::fs::write(dir.join("fat.ko"), b"a copy elsewhere").unwrap();
        let modules: BTreeSet<String> = ["vfat".into(), "fat".into(), "ext4".into(), "gone".into()].into();
        let builtin: BTreeSet<String> = ["ext4".into()].into();
        let path_of = |m: &str| match m {
            "vfat" => Some(tree.join("kernel/fs/vfat.ko")),
            "fat" => Some(dir.join("fat.ko")),
            _ => None,
        };
        let (files, notes) = module_files(&modules, &builtin, &path_of, &tree);
        assert_eq!(files.len(), 1, "{files:?}");
        let meta = std::fs::metadata(tree.join("kernel/fs/vfat.ko")).unwrap();
        assert_eq!(
            (files[0].module.as_str(), files[0].ino, files[0].dev),
            ("vfat", meta.ino(), kernel_dev(meta.dev()))
        );
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes.iter().any(|n| n.starts_with("fat: ") && n.contains("outside")), "{notes:?}");
        assert!(notes.iter().any(|n| n.starts_with("gone: no file")), "{notes:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn device_numbers_use_the_kernels_encoding() {
        assert_eq!(kernel_dev(libc::makedev(8, 1)), (8 << 20) | 1);
        assert_eq!(kernel_dev(libc::makedev(259, 70000)), (259 << 20) | 70000);
    }
}
