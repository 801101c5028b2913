//! What the kernel's module index says: alias -> module, module -> dependencies.
//! The real implementation reads modules.alias / modules.dep through libkmod.

use std::collections::{BTreeMap, BTreeSet};

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

fn visit<I: ModuleIndex + ?Sized>(
    index: &I,
    module: &str,
    seen: &mut BTreeSet<String>,
    order: &mut Vec<String>,
) {
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
        if self.deps.contains_key(&name) { vec![name] } else { Vec::new() }
    }

    fn depends_on(&self, module: &str) -> Vec<String> {
        self.deps.get(&normalize(module)).cloned().unwrap_or_default()
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
