//! The modules found loaded when learning began, told apart from the ones the
//! probes saw load: only those loaded before tracing are "preloaded".

use std::collections::BTreeSet;
use std::path::Path;

use crate::trace::event::{Record, What};
use crate::trace::modindex::normalize;
use crate::trace::snapshot::{read_proc_modules, LoadedModule};

/// The modules loaded when learning began, read once the probes were attached,
/// and the traced loads from before that read: those were loaded while tracing,
/// so they keep their traced cause and are not "preloaded".
#[derive(Debug, Default)]
pub(super) struct Preloaded {
    pub(super) read: bool,
    /// When /proc/modules was read (CLOCK_MONOTONIC, the records' clock).
    at_ns: u64,
    modules: Vec<LoadedModule>,
    traced_before: BTreeSet<String>,
    /// Modules unloaded after the read: loaded again, they were preloaded before.
    unloaded: BTreeSet<String>,
}

impl Preloaded {
    /// Reads /proc/modules; returns how many modules it lists.
    pub(super) fn read_now(&mut self, path: &Path) -> anyhow::Result<usize> {
        self.read = true;
        self.at_ns = crate::trace::pipeline::monotonic_ns();
        self.modules = read_proc_modules(path)?;
        Ok(self.modules.len())
    }

    pub(super) fn saw(&mut self, rec: &Record) {
        match &rec.what {
            What::Loaded { module, .. } => {
                let name = normalize(module);
                // A module listed by the read whose `loaded` record comes later,
                // with no unload between, was still loading then: /proc/modules
                // shows a module before its module_load tracepoint fires.
                let in_flight = self.modules.iter().any(|m| normalize(&m.name) == name)
                    && !self.unloaded.contains(&name);
                if !self.read || rec.ts_ns <= self.at_ns || in_flight {
                    self.traced_before.insert(name);
                }
            }
            What::Unloaded { module } if self.read => {
                self.unloaded.insert(normalize(module));
            }
            _ => {}
        }
    }

    /// The modules loaded before tracing began.
    pub(super) fn before_tracing(&self) -> Vec<LoadedModule> {
        let traced = |m: &LoadedModule| self.traced_before.contains(&normalize(&m.name));
        self.modules.iter().filter(|m| !traced(m)).cloned().collect()
    }
}
