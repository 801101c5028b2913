//! What the kernel's module index says: alias -> module, module -> dependencies.
//! The real implementation reads modules.alias / modules.dep through libkmod.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// The module a module file's path names: "kernel/fs/ext4/ext4.ko.xz" ->
/// "ext4"; `NAME.ko` or compressed as kmod reads it (.xz, .zst, .gz), else None.
pub fn module_of_path(path: &str) -> Option<String> {
    let file = path.trim().rsplit('/').next()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"].iter().find_map(|ext| file.strip_suffix(ext))?;
    (!stem.is_empty()).then(|| normalize(stem))
}

/// Module names are compared the way the kernel does: '-' and '_' are the same.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

pub trait ModuleIndex {
    /// Modules that provide `alias` (or that are named `alias`); empty when none.
    fn resolve(&self, alias: &str) -> Vec<String>;
    /// Direct dependencies of `module` per modules.dep.
    fn depends_on(&self, module: &str) -> Vec<String>;

    /// `module`'s softdeps (modinfo softdep= and modprobe.d `softdep`): the
    /// modules modprobe loads before it, and those it loads after.
    fn softdeps(&self, _module: &str) -> (Vec<String>, Vec<String>) {
        (Vec::new(), Vec::new())
    }

    /// Whether `module` is built into the kernel (modules.builtin).
    fn builtin(&self, _module: &str) -> bool {
        false
    }

    /// `module`'s file in the module tree (modules.dep); None when unknown.
    fn file(&self, _module: &str) -> Option<PathBuf> {
        None
    }

    /// Everything `modprobe module` may load, in its order: each module's
    /// pre-softdeps and dependencies before it, its post-softdeps after.
    fn load_order(&self, module: &str) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut order = Vec::new();
        visit_with_softdeps(self, &normalize(module), &mut seen, &mut order);
        order
    }

    /// `module` and everything it needs, transitively, dependencies first.
    fn closure(&self, module: &str) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut order = Vec::new();
        visit(self, &normalize(module), &mut seen, &mut order);
        order
    }
}

fn visit<I: ModuleIndex + ?Sized>(index: &I, module: &str, seen: &mut BTreeSet<String>, order: &mut Vec<String>) {
    if !seen.insert(module.to_string()) {
        return;
    }
    for dep in index.depends_on(module) {
        visit(index, &normalize(&dep), seen, order);
    }
    order.push(module.to_string());
}

fn visit_with_softdeps<I: ModuleIndex + ?Sized>(
    index: &I,
    module: &str,
    seen: &mut BTreeSet<String>,
    order: &mut Vec<String>,
) {
    if !seen.insert(module.to_string()) {
        return;
    }
    let (pre, post) = index.softdeps(module);
    for dep in pre.iter().chain(&index.depends_on(module)) {
        visit_with_softdeps(index, &normalize(dep), seen, order);
    }
    order.push(module.to_string());
    for dep in &post {
        visit_with_softdeps(index, &normalize(dep), seen, order);
    }
}

/// (pre, post) softdeps of a module.
type Softdeps = (Vec<String>, Vec<String>);

/// An index held in memory: for tests and recorded sequences.
#[derive(Debug, Default, Clone)]
pub struct StaticIndex {
    pub aliases: BTreeMap<String, Vec<String>>,
    pub deps: BTreeMap<String, Vec<String>>,
    /// module -> (pre, post) softdeps.
    pub softdeps: BTreeMap<String, (Vec<String>, Vec<String>)>,
    pub builtin: BTreeSet<String>,
    /// module -> its file.
    pub files: BTreeMap<String, PathBuf>,
}

impl StaticIndex {
    pub fn alias(mut self, alias: &str, module: &str) -> Self {
        self.aliases.entry(alias.to_string()).or_default().push(normalize(module));
        self.deps.entry(normalize(module)).or_default();
        self
    }

    pub fn module(mut self, module: &str, deps: &[&str]) -> Self {
        self.deps.insert(normalize(module), deps.iter().map(|d| normalize(d)).collect());
        self
    }

    pub fn softdep(mut self, module: &str, pre: &[&str], post: &[&str]) -> Self {
        let names = |l: &[&str]| l.iter().map(|d| normalize(d)).collect();
        self.softdeps.insert(normalize(module), (names(pre), names(post)));
        self
    }

    pub fn builtin(mut self, module: &str) -> Self {
        self.builtin.insert(normalize(module));
        self
    }

    pub fn file(mut self, module: &str, path: &Path) -> Self {
        self.files.insert(normalize(module), path.to_path_buf());
        self
    }
}

impl ModuleIndex for StaticIndex {
    fn resolve(&self, alias: &str) -> Vec<String> {
        if let Some(mods) = self.aliases.get(alias) {
            return mods.clone();
        }
        let name = normalize(alias);
        if self.deps.contains_key(&name) {
            vec![name]
        } else {
            Vec::new()
        }
    }

    fn depends_on(&self, module: &str) -> Vec<String> {
        self.deps.get(&normalize(module)).cloned().unwrap_or_default()
    }

    fn softdeps(&self, module: &str) -> (Vec<String>, Vec<String>) {
        self.softdeps.get(&normalize(module)).cloned().unwrap_or_default()
    }

    fn builtin(&self, module: &str) -> bool {
        self.builtin.contains(&normalize(module))
    }

    fn file(&self, module: &str) -> Option<PathBuf> {
        self.files.get(&normalize(module)).cloned()
    }
}

#[derive(Debug, Error)]
pub enum IndexError {
    #[error("{dir}: no modules.dep.bin (run depmod for this kernel)")]
    NotIndexed { dir: PathBuf },
    #[error("cannot open the module index{}: {source}", .dir.as_ref().map(|d| format!(" in {}", d.display())).unwrap_or_default())]
    Open { dir: Option<PathBuf>, source: kmod::Error },
}

/// The kernel's module index read through libkmod: modules.alias.bin,
/// modules.dep.bin and modules.builtin.bin as depmod wrote them, plus the
/// modprobe.d aliases. Answers are cached.
///
/// libkmod handles are not Send: keep a `KmodIndex` on the thread that made it.
pub struct KmodIndex {
    ctx: kmod::Context,
    /// A second libkmod context on the same directory, for softdeps.
    raw: Option<raw::Context>,
    /// modules.builtin, by module name.
    builtin: BTreeSet<String>,
    aliases: RefCell<HashMap<String, Vec<String>>>,
    deps: RefCell<HashMap<String, Vec<String>>>,
    softdeps: RefCell<HashMap<String, Softdeps>>,
}

impl KmodIndex {
    /// The running kernel's index (/lib/modules/$(uname -r)).
    pub fn running() -> Result<Self, IndexError> {
        let ctx = kmod::Context::new().map_err(|source| IndexError::Open { dir: None, source })?;
        check_indexed(Path::new(&ctx.dirname()))?;
        Ok(Self::with_context(ctx))
    }

    /// The index in a /lib/modules/KVER directory, e.g. another kernel's.
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        check_indexed(dir)?;
        let ctx = kmod::Context::new_with_dirname(dir)
            .map_err(|source| IndexError::Open { dir: Some(dir.to_path_buf()), source })?;
        Ok(Self::with_context(ctx))
    }

    fn with_context(ctx: kmod::Context) -> Self {
        let dir = PathBuf::from(ctx.dirname());
        KmodIndex {
            raw: raw::Context::new(&dir),
            builtin: read_builtin(&dir),
            ctx,
            aliases: RefCell::default(),
            deps: RefCell::default(),
            softdeps: RefCell::default(),
        }
    }

    fn lookup(&self, alias: &str) -> Vec<String> {
        match self.ctx.module_new_from_lookup(alias) {
            Ok(found) => names(found),
            Err(_) => Vec::new(),
        }
    }

    fn dependencies(&self, module: &str) -> Vec<String> {
        match self.ctx.module_new_from_name(module) {
            Ok(m) => names(m.dependencies()),
            Err(_) => Vec::new(),
        }
    }
}

/// The names in modules.builtin (lines such as kernel/fs/ext4/ext4.ko); none
/// when the file is missing.
fn read_builtin(dir: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().rsplit('/').next())
        .filter_map(|f| f.strip_suffix(".ko"))
        .map(normalize)
        .collect()
}

/// libkmod reads only depmod's binary indexes and finds nothing without them.
fn check_indexed(dir: &Path) -> Result<(), IndexError> {
    if dir.join("modules.dep.bin").is_file() {
        Ok(())
    } else {
        Err(IndexError::NotIndexed { dir: dir.to_path_buf() })
    }
}

fn names(modules: kmod::ModuleIterator) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in modules {
        let name = normalize(&m.name().to_string_lossy());
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// Entries a lookup cache holds before it starts over: anyone can make the
/// kernel request names (each distinct one a lookup), so the cache must not
/// grow with them; a lookup costs microseconds, so starting over costs little.
pub const CACHE_MAX: usize = 8192;

fn cached(cache: &RefCell<HashMap<String, Vec<String>>>, key: &str, find: impl FnOnce() -> Vec<String>) -> Vec<String> {
    if let Some(hit) = cache.borrow().get(key) {
        return hit.clone();
    }
    let found = find();
    let mut cache = cache.borrow_mut();
    if cache.len() >= CACHE_MAX {
        cache.clear();
    }
    cache.insert(key.to_string(), found.clone());
    found
}

impl ModuleIndex for KmodIndex {
    fn resolve(&self, alias: &str) -> Vec<String> {
        cached(&self.aliases, alias, || self.lookup(alias))
    }

    fn depends_on(&self, module: &str) -> Vec<String> {
        let module = normalize(module);
        cached(&self.deps, &module, || self.dependencies(&module))
    }

    fn softdeps(&self, module: &str) -> (Vec<String>, Vec<String>) {
        let module = normalize(module);
        if let Some(hit) = self.softdeps.borrow().get(&module) {
            return hit.clone();
        }
        let found = self.raw.as_ref().map(|r| r.softdeps(&module)).unwrap_or_default();
        self.softdeps.borrow_mut().insert(module, found.clone());
        found
    }

    fn builtin(&self, module: &str) -> bool {
        self.builtin.contains(&normalize(module))
    }

    fn file(&self, module: &str) -> Option<PathBuf> {
        let m = self.ctx.module_new_from_name(&normalize(module)).ok()?;
        m.path().map(PathBuf::from)
    }
}

/// kmod_module_get_softdeps, which the kmod crate leaves out.
mod raw {
    use std::ffi::{CStr, CString};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::ptr::{null, null_mut};

    use kmod_sys as k;

    use super::normalize;

    pub struct Context(*mut k::kmod_ctx);

    impl Context {
        pub fn new(dir: &Path) -> Option<Context> {
            let dir = CString::new(dir.as_os_str().as_bytes()).ok()?;
            // SAFETY: a valid C string; NULL config paths mean libkmod's defaults
            // (modprobe.d and the directory's modules.softdep).
            let ctx = unsafe { k::kmod_new(dir.as_ptr(), null()) };
            (!ctx.is_null()).then_some(Context(ctx))
        }

        /// (pre, post) softdeps of `module`, each resolved to module names.
        pub fn softdeps(&self, module: &str) -> (Vec<String>, Vec<String>) {
            let Ok(name) = CString::new(module) else { return Default::default() };
            let mut m = null_mut();
            // SAFETY: self.0 is a live context, name a valid C string; m is
            // released below.
            if unsafe { k::kmod_module_new_from_name(self.0, name.as_ptr(), &mut m) } < 0 || m.is_null() {
                return Default::default();
            }
            let (mut pre, mut post) = (null_mut(), null_mut());
            // SAFETY: m is a live module; the lists it returns are ours to free.
            let rc = unsafe { k::kmod_module_get_softdeps(m, &mut pre, &mut post) };
            let found = if rc < 0 { Default::default() } else { (names(pre), names(post)) };
            // SAFETY: each was returned by libkmod above and is released once.
            unsafe {
                k::kmod_module_unref_list(pre);
                k::kmod_module_unref_list(post);
                k::kmod_module_unref(m);
            }
            found
        }
    }

    fn names(list: *mut k::kmod_list) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut entry = list;
        while !entry.is_null() {
            // SAFETY: entry is an element of a live list; the module reference
            // taken by get_module is dropped after its name is copied.
            unsafe {
                let m = k::kmod_module_get_module(entry);
                if !m.is_null() {
                    let name = normalize(&CStr::from_ptr(k::kmod_module_get_name(m)).to_string_lossy());
                    if !out.contains(&name) {
                        out.push(name);
                    }
                    k::kmod_module_unref(m);
                }
                entry = k::kmod_list_next(list, entry);
            }
        }
        out
    }

    impl Drop for Context {
        fn drop(&mut self) {
            // SAFETY: the context was made by kmod_new and is released once.
            unsafe { k::kmod_unref(self.0) };
        }
    }
}

impl std::fmt::Debug for KmodIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmodIndex").field("dir", &self.ctx.dirname()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closure_lists_dependencies_first_once() {
        let idx = StaticIndex::default()
            .alias("net-pf-5", "appletalk")
            .module("appletalk", &["psnap", "llc"])
            .module("psnap", &["llc"])
            .module("llc", &[]);
        assert_eq!(idx.resolve("net-pf-5"), vec!["appletalk"]);
        assert_eq!(idx.closure("appletalk"), vec!["llc", "psnap", "appletalk"]);
        assert!(idx.resolve("net-pf-38").is_empty());
    }

    #[test]
    fn a_lookup_cache_does_not_grow_with_distinct_names() {
        let cache = RefCell::new(HashMap::new());
        for i in 0..(3 * CACHE_MAX) {
            assert!(cached(&cache, &format!("bogus-{i}"), Vec::new).is_empty());
            assert!(cache.borrow().len() <= CACHE_MAX);
        }
        assert_eq!(cached(&cache, "net-pf-5", || vec!["appletalk".to_string()]), ["appletalk"]);
        assert_eq!(cached(&cache, "net-pf-5", Vec::new), ["appletalk"], "a hit is answered from the cache");
    }
}
