//! The kernel the generated files are for: its module index (alias -> module,
//! module -> dependencies), which modules are built in, and every module it ships.
//!
//! Either a real tree (/lib/modules/KVER: libkmod for the binary indexes, plus the
//! text lists modules.dep, modules.builtin and modules.builtin.modinfo), or the
//! profile itself, when no kernel is named: names and dependencies as learned,
//! nothing re-resolved.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use thiserror::Error;

use crate::trace::modindex::{module_of_path, normalize, IndexError, KmodIndex, ModuleIndex, StaticIndex};
use crate::profile::Profile;
use crate::validate;

#[derive(Debug, Error)]
pub enum TargetError {
    #[error("kernel {release}: {source}")]
    Index { release: String, source: IndexError },
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
}

/// Where a target's answers come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A depmod'ed /lib/modules/KVER directory.
    Tree(PathBuf),
    /// The profile's own names and dependencies (no kernel named).
    Profile,
}

/// What a name, an alias or a device's modalias stands for in the target kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookup {
    /// Modules to load (normalized names).
    pub loadable: Vec<String>,
    /// Modules built into the kernel: nothing to load.
    pub builtin: Vec<String>,
}

impl Lookup {
    pub fn is_empty(&self) -> bool {
        self.loadable.is_empty() && self.builtin.is_empty()
    }

    pub fn contains(&self, module: &str) -> bool {
        self.loadable.iter().chain(&self.builtin).any(|m| m == module)
    }
}

pub struct Target {
    pub release: String,
    pub source: Source,
    index: Box<dyn ModuleIndex>,
    builtin: BTreeSet<String>,
    /// Every loadable module of the kernel (modules.dep); None when not known.
    modules: Option<BTreeSet<String>>,
    /// Each module's file in the tree (modules.dep's path, relative to it).
    paths: BTreeMap<String, String>,
    /// The literal aliases each module had in the kernel the profile was
    /// learned on (its modules.alias), to follow a module renamed or split
    /// to what answers the same aliases here; empty when that tree is absent.
    learned_aliases: BTreeMap<String, Vec<String>>,
    /// Where each module's file was in that kernel's tree (its modules.dep):
    /// `updates/dkms/zfs.ko.xz` says DKMS built it there.
    learned_paths: BTreeMap<String, String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("release", &self.release)
            .field("source", &self.source)
            .field("builtin", &self.builtin.len())
            .field("modules", &self.modules.as_ref().map(|m| m.len()))
            .finish_non_exhaustive()
    }
}

impl Target {
    /// The kernel `release` whose modules are in `dir` (/lib/modules/KVER).
    pub fn open(release: &str, dir: &Path) -> Result<Target, TargetError> {
        let index =
            KmodIndex::open(dir).map_err(|source| TargetError::Index { release: release.to_string(), source })?;
        let dep = read_optional(&dir.join("modules.dep"))?;
        let modules = dep.as_deref().map(dep_modules);
        let paths = dep.as_deref().map(dep_paths).unwrap_or_default();
        let mut builtin = BTreeSet::new();
        if let Some(text) = read_optional(&dir.join("modules.builtin"))? {
            builtin.extend(path_list_modules(&text));
        }
        if let Some(bytes) = read_optional_bytes(&dir.join("modules.builtin.modinfo"))? {
            builtin.extend(modinfo_modules(&bytes));
        }
        Ok(Target {
            release: release.to_string(),
            source: Source::Tree(dir.to_path_buf()),
            index: Box::new(index),
            builtin,
            modules,
            paths,
            learned_aliases: BTreeMap::new(),
            learned_paths: BTreeMap::new(),
        })
    }

    /// A target made of an index held in memory (tests, recorded trees).
    pub fn from_index(
        release: &str,
        index: impl ModuleIndex + 'static,
        modules: Option<BTreeSet<String>>,
        builtin: BTreeSet<String>,
        source: Source,
    ) -> Target {
        Target {
            release: release.to_string(),
            source,
            index: Box::new(index),
            builtin,
            modules,
            paths: BTreeMap::new(),
            learned_aliases: BTreeMap::new(),
            learned_paths: BTreeMap::new(),
        }
    }

    /// Follows the profile's modules from the kernel it was learned on, whose
    /// tree is beside this one (/lib/modules/LEARNED): a module this kernel
    /// lacks is answered by what its literal aliases resolve to here. Nothing
    /// to follow when that tree is gone or is this one.
    pub fn following(self, profile: &Profile) -> Result<Target, TargetError> {
        let Source::Tree(dir) = &self.source else { return Ok(self) };
        if profile.kernel == self.release || validate::check_release(&profile.kernel).is_err() {
            return Ok(self);
        }
        let Some(parent) = dir.parent() else { return Ok(self) };
        let learned = parent.join(&profile.kernel);
        let aliases = read_optional(&learned.join("modules.alias"))?.unwrap_or_default();
        let deps = read_optional(&learned.join("modules.dep"))?.unwrap_or_default();
        Ok(self.learned_from(&aliases, &deps))
    }

    /// The learned kernel's modules.alias and modules.dep, as text.
    pub fn learned_from(mut self, modules_alias: &str, modules_dep: &str) -> Target {
        self.learned_aliases = literal_aliases(modules_alias);
        self.learned_paths = dep_paths(modules_dep);
        self
    }

    /// Where `module`'s file was in the kernel the profile was learned on.
    pub fn learned_path(&self, module: &str) -> Option<&str> {
        self.learned_paths.get(&normalize(module)).map(String::as_str)
    }

    /// `module`'s literal aliases in the kernel the profile was learned on.
    pub fn learned_aliases(&self, module: &str) -> &[String] {
        self.learned_aliases.get(&normalize(module)).map(Vec::as_slice).unwrap_or_default()
    }

    /// The profile as its own kernel: every module it names, with the
    /// dependencies it recorded; no alias is re-resolved, nothing is built in.
    pub fn from_profile(profile: &Profile) -> Target {
        let mut index = StaticIndex::default();
        for m in &profile.modules {
            let deps: Vec<&str> = m.depends_on.iter().map(String::as_str).collect();
            index = index.module(&m.name, &deps);
        }
        Target {
            release: profile.kernel.clone(),
            source: Source::Profile,
            index: Box::new(index),
            builtin: BTreeSet::new(),
            modules: None,
            paths: BTreeMap::new(),
            learned_aliases: BTreeMap::new(),
            learned_paths: BTreeMap::new(),
        }
    }

    pub fn is_profile(&self) -> bool {
        self.source == Source::Profile
    }

    /// What `key` (a module name, an alias, a modalias) stands for here.
    pub fn lookup(&self, key: &str) -> Lookup {
        let mut out = Lookup::default();
        for m in self.index.resolve(key) {
            let m = normalize(&m);
            let list = if self.builtin.contains(&m) { &mut out.builtin } else { &mut out.loadable };
            if !list.contains(&m) {
                list.push(m);
            }
        }
        // A name listed as built in that the binary index does not know (a
        // modules.builtin edited by hand, or an index older than the list).
        if out.is_empty() && self.builtin.contains(&normalize(key)) {
            out.builtin.push(normalize(key));
        }
        out
    }

    pub fn is_builtin(&self, module: &str) -> bool {
        self.builtin.contains(&normalize(module))
    }

    /// Whether the kernel ships `module` as a loadable module. Unknown (None)
    /// when the module list is not known (profile targets).
    pub fn has_module(&self, module: &str) -> Option<bool> {
        self.modules.as_ref().map(|m| m.contains(&normalize(module)))
    }

    /// Why modprobe could not load `module` (a name of a lock list) on this
    /// kernel, if it could not: not built in, and neither its file (modules.dep's
    /// path) in the tree nor an alias of that name. None when it loads, or
    /// when the target is the profile (nothing to look at).
    pub fn cannot_load(&self, module: &str) -> Option<String> {
        let Source::Tree(dir) = &self.source else { return None };
        if self.is_builtin(module) {
            return None;
        }
        match self.paths.get(&normalize(module)) {
            Some(path) if dir.join(path).exists() => None,
            Some(path) => Some(format!("its file {path} is not in {}", dir.display())),
            None if self.has_module(module) == Some(true) => None,
            None if !self.lookup(module).is_empty() => None,
            None => Some(format!("not in kernel {}'s module tree, not built in, and no alias of it", self.release)),
        }
    }

    /// `module` and everything it needs, dependencies first.
    pub fn closure(&self, module: &str) -> Vec<String> {
        self.index.closure(module)
    }

    /// Every loadable module of this kernel, when known.
    pub fn all_modules(&self) -> Option<&BTreeSet<String>> {
        self.modules.as_ref()
    }

    /// Where the answers come from, for headers and messages.
    pub fn describe(&self) -> String {
        match &self.source {
            Source::Tree(dir) => format!("{} (module index {})", self.release, dir.display()),
            Source::Profile => {
                format!("{} (as learned: names and dependencies from the profile, not re-resolved)", self.release)
            }
        }
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, TargetError> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TargetError::Read { path: path.to_path_buf(), source }),
    }
}

fn read_optional_bytes(path: &Path) -> Result<Option<Vec<u8>>, TargetError> {
    match fs::read(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TargetError::Read { path: path.to_path_buf(), source }),
    }
}

/// modules.dep's module -> path ("kernel/fs/ext4/ext4.ko.xz: ...").
fn dep_paths(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split(':').next())
        .filter_map(|path| Some((module_of_path(path)?, path.trim().to_string())))
        .collect()
}

/// The modules listed in modules.dep ("path: dep dep ...").
pub fn dep_modules(text: &str) -> BTreeSet<String> {
    text.lines().filter_map(|l| l.split(':').next()).filter_map(module_of_path).collect()
}

/// The modules of a list of paths (modules.builtin, modules.order).
pub fn path_list_modules(text: &str) -> BTreeSet<String> {
    text.lines().filter_map(module_of_path).collect()
}

/// Module names in modules.builtin.modinfo (NUL-separated "module.key=value").
pub fn modinfo_modules(bytes: &[u8]) -> BTreeSet<String> {
    bytes
        .split(|b| *b == 0)
        .filter_map(|rec| {
            let text = std::str::from_utf8(rec).ok()?;
            let (name, _) = text.split_once('.')?;
            (!name.is_empty()).then(|| normalize(name))
        })
        .collect()
}

/// modules.alias ("alias NAME MODULE") by module, without the patterns
/// (a device's `pci:v*d*...`): only a literal alias names a function.
pub fn literal_aliases(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some("alias"), Some(alias), Some(module)) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        if !alias.contains(['*', '?', '[']) {
            map.entry(normalize(module)).or_default().push(alias.to_string());
        }
    }
    map
}

/// The kernel to resolve for: a release (its tree under /lib/modules, or
/// `modules_dir`), a tree (its name is the release), or the profile itself.
pub fn choose(profile: &Profile, kernel: Option<&str>, modules_dir: Option<&Path>) -> anyhow::Result<Target> {
    let release = match (kernel, modules_dir) {
        (None, None) => return Ok(Target::from_profile(profile)),
        (Some(k), _) => k.to_string(),
        (None, Some(dir)) => dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .context("--modules-dir names no directory; give --kernel too")?,
    };
    if let Err(rule) = validate::check_release(&release) {
        bail!("kernel release {release:?}: {rule}");
    }
    let dir = modules_dir.map(Path::to_path_buf).unwrap_or_else(|| Path::new("/lib/modules").join(&release));
    Ok(Target::open(&release, &dir)?.following(profile)?)
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_to_names() {
        assert_eq!(module_of_path("kernel/fs/ext4/ext4.ko").as_deref(), Some("ext4"));
        assert_eq!(module_of_path("kernel/sound/pci/hda/snd-hda-intel.ko.xz").as_deref(), Some("snd_hda_intel"));
        assert_eq!(module_of_path("updates/dkms/zfs.ko.zst").as_deref(), Some("zfs"));
        assert_eq!(module_of_path("# comment"), None);
        let deps =
            dep_modules("kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko\nkernel/lib/crc16.ko:\n");
        assert_eq!(deps.into_iter().collect::<Vec<_>>(), ["crc16", "ext4"]);
        let mi = modinfo_modules(b"tracefs.alias=fs-tracefs\0ext4.license=GPL\0\0");
        assert_eq!(mi.into_iter().collect::<Vec<_>>(), ["ext4", "tracefs"]);
        let aliases = literal_aliases("# Aliases\nalias crc32c crc32c_generic\nalias cpu:type:x86,* crc32c-intel\n");
        assert_eq!(aliases.get("crc32c_generic").map(Vec::as_slice), Some(&["crc32c".to_string()][..]));
        assert!(!aliases.contains_key("crc32c_intel"), "{aliases:?}");
    }
}
