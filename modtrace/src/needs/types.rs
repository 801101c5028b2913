//! The needs stage's answer: the plan for one kernel, and the reasons and
//! held-back modules it is made of.

use std::collections::{BTreeMap, BTreeSet};

use super::Trust;
use crate::profile::TriggerKind;

/// Why a module is needed: one recorded cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// The module as the profile names it.
    pub learned_as: String,
    pub kind: TriggerKind,
    /// For a person: "request for net-pf-5 by example.service (python3)". Raw
    /// profile text: escape it before writing (validate::comment).
    pub text: String,
    pub count: u64,
    /// Whether the cause may reach the files by itself, and why.
    pub trust: Trust,
    /// The alias the kernel requested, for a request.
    pub alias: Option<String>,
}

/// A reason, and how the target kernel matched it when that differs from the
/// learned name ("learned as X; alias A now resolves to Y").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cited {
    pub reason: Reason,
    pub note: Option<String>,
}

/// What the profile needs that the target kernel cannot provide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub learned_as: String,
    /// What was looked up: "alias net-pf-5", "device pci:v...", "module foo".
    pub looked_up: String,
    pub reason: Reason,
    /// A clue, e.g. the module still exists but the alias no longer names it.
    pub hint: Option<String>,
}

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} resolves to no module ({})", self.learned_as, self.looked_up, self.reason.text)?;
        if let Some(h) = &self.hint {
            write!(f, "; {h}")?;
        }
        Ok(())
    }
}

/// A module that is not listed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// For review: why its causes are not trusted. Denied: the decision. Site:
    /// the modprobe.d rule.
    pub why: String,
    pub cited: Vec<Cited>,
}

/// What one kernel must load for one profile.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub release: String,
    /// Every loadable module a trusted or accepted cause resolved to, with its
    /// reasons: what is listed.
    pub needs: BTreeMap<String, Vec<Cited>>,
    /// Modules only untrusted causes asked for, and no decision accepted:
    /// not listed until `modtrace allow` (or `modtrace review`).
    pub review: BTreeMap<String, Held>,
    /// Modules an admin denied: never listed.
    pub denied: BTreeMap<String, Held>,
    /// Modules the site's modprobe.d keeps from loading the way they were asked
    /// for: not listed; requests for them fail on purpose.
    pub site_disabled: BTreeMap<String, Held>,
    /// The needed modules no other needed module depends on: the list to load
    /// (modprobe loads the rest as their dependencies). Sorted.
    pub top_level: Vec<String>,
    /// Top-level module -> the modules it brings (its dependencies, transitively).
    pub brings: BTreeMap<String, Vec<String>>,
    /// Needed modules that are built into the target kernel: nothing to load.
    pub builtin: BTreeMap<String, Vec<Cited>>,
    pub unresolved: Vec<Unresolved>,
    /// Unit -> top-level modules it needs -> why.
    pub units: BTreeMap<String, BTreeMap<String, Vec<Cited>>>,
    /// Units that caused loads but get no drop-in, and why not.
    pub other_units: BTreeMap<String, String>,
    /// Things to know about the profile itself (lost events, unfinished runs).
    pub warnings: Vec<String>,
}

impl Plan {
    /// A listed module only udev's loads for devices need (every cause is a
    /// device's): the lock unit logs its failure and goes on (lock_unit.rs).
    pub fn device_only(&self, module: &str) -> bool {
        self.needs.get(module).is_some_and(|cited| cited.iter().all(|c| c.reason.kind == TriggerKind::Udev))
    }

    /// Every module the plan loads: the top-level ones and their dependencies
    /// (built-in ones are in `builtin`).
    pub fn loaded_set(&self) -> BTreeSet<String> {
        let mut all: BTreeSet<String> = self.top_level.iter().cloned().collect();
        for deps in self.brings.values() {
            all.extend(deps.iter().cloned());
        }
        all
    }
}
