//! What the kernel's module index says: alias -> module, module -> dependencies.
//! The real implementation reads modules.alias / modules.dep through libkmod.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Module names are compared the way the kernel does: '-' and '_' are the same.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

pub trait ModuleIndex {
    /// Modules that provide `alias` (or that are named `alias`); empty when none.
    fn resolve(&self, alias: &str) -> Vec<String>;
    /// Direct dependencies of `module` per modules.dep.
    fn depends_on(&self, module: &str) -> Vec<String>;

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

/// An index held in memory: for tests and recorded sequences.
#[derive(Debug, Default, Clone)]
pub struct StaticIndex {
    pub aliases: BTreeMap<String, Vec<String>>,
    pub deps: BTreeMap<String, Vec<String>>,
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
    aliases: RefCell<HashMap<String, Vec<String>>>,
    deps: RefCell<HashMap<String, Vec<String>>>,
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
        KmodIndex { ctx, aliases: RefCell::default(), deps: RefCell::default() }
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

fn cached(cache: &RefCell<HashMap<String, Vec<String>>>, key: &str, find: impl FnOnce() -> Vec<String>) -> Vec<String> {
    if let Some(hit) = cache.borrow().get(key) {
        return hit.clone();
    }
    let found = find();
    cache.borrow_mut().insert(key.to_string(), found.clone());
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
}
