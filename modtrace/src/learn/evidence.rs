//! Learning's evidence on the journal: every module `learn` learns, and every
//! cause new to the profile, as one structured entry with a fixed MESSAGE_ID
//! and MODTRACE_* fields (docs/journal.md), so that any journal collector
//! carries a fleet's evidence.
//!
//! Entries are made from the profile as saved (at each checkpoint and at the
//! end), so they carry the cause as the profile records it: credited to the
//! unit systemd acted for, with its trust and package. A process anyone can
//! start can make up causes by the thousand, so a session sends at most
//! `UNTRUSTED_MAX` entries for causes that need review, and `ENTRIES_MAX` in
//! all; what is held back is counted, and said in one last entry.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::needs::trust;
use crate::profile::{Profile, Trigger};

/// The MESSAGE_ID of an entry for a learned module or a new cause.
pub const MESSAGE_ID: &str = "a0494ea2749d4e5189d4ce8ce09fa450";
/// The MESSAGE_ID of the entry that counts what a session held back.
pub const HELD_BACK_MESSAGE_ID: &str = "dc10ac8205f54d6eacad990fe6d3cf7d";
/// Entries a session sends for causes that need review.
pub const UNTRUSTED_MAX: usize = 32;
/// Entries a session sends in all.
pub const ENTRIES_MAX: usize = 1024;

/// One journal entry: its message, priority and fields (MESSAGE_ID first).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub level: log::Level,
    pub message: String,
    pub fields: Vec<(&'static str, String)>,
}

impl Entry {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
}

/// Where the entries go: the journal while learning, a list in tests.
pub trait Sink: std::fmt::Debug + Send {
    fn send(&mut self, entry: &Entry);
}

/// A sink the plan can hold and clone.
pub type SharedSink = Arc<Mutex<dyn Sink>>;

/// What a session has sent, and held back.
#[derive(Debug)]
pub struct Evidence {
    sink: Option<SharedSink>,
    /// Causes already announced (or held back), by module.
    seen: BTreeMap<String, Vec<Trigger>>,
    sent: usize,
    untrusted_sent: usize,
    pub held_back: u64,
}

impl Evidence {
    pub fn new(sink: Option<SharedSink>) -> Evidence {
        Evidence { sink, seen: BTreeMap::new(), sent: 0, untrusted_sent: 0, held_back: 0 }
    }

    /// Announces what `now` has that `base` (the profile before the session)
    /// did not, and that was not announced before.
    pub fn announce(&mut self, base: Option<&Profile>, now: &Profile) {
        if self.sink.is_none() {
            return;
        }
        for m in &now.modules {
            let before = base.and_then(|b| b.module(&m.name));
            for t in &m.triggers {
                let known = before.is_some_and(|b| b.triggers.iter().any(|o| o.same_cause(t)));
                let seen = self.seen.entry(m.name.clone()).or_default();
                if known || seen.iter().any(|o| o.same_cause(t)) {
                    continue;
                }
                let new_module = before.is_none() && seen.is_empty();
                seen.push(t.clone());
                self.offer(entry(&m.name, t, now, new_module));
            }
        }
    }

    fn offer(&mut self, entry: Entry) {
        let untrusted = entry.field("MODTRACE_TRUST") != Some("trusted");
        if self.sent >= ENTRIES_MAX || (untrusted && self.untrusted_sent >= UNTRUSTED_MAX) {
            self.held_back += 1;
            return;
        }
        self.sent += 1;
        self.untrusted_sent += usize::from(untrusted);
        self.send(&entry);
    }

    fn send(&self, entry: &Entry) {
        if let Some(sink) = &self.sink {
            if let Ok(mut sink) = sink.lock() {
                sink.send(entry);
            }
        }
    }

    /// At the end of the session: one entry counting what was held back.
    pub fn finish(&self) {
        if self.held_back == 0 {
            return;
        }
        self.send(&Entry {
            level: log::Level::Warn,
            message: format!(
                "modtrace learn held back {} journal entries for new modules or causes (at most {UNTRUSTED_MAX} \
                 for causes that need review, {ENTRIES_MAX} in all, per session); the profile has them all",
                self.held_back
            ),
            fields: vec![
                ("MESSAGE_ID", HELD_BACK_MESSAGE_ID.to_string()),
                ("MODTRACE_HELD_BACK", self.held_back.to_string()),
            ],
        });
    }
}

/// The entry for one new cause of `module`.
fn entry(module: &str, t: &Trigger, profile: &Profile, new_module: bool) -> Entry {
    let trust = trust::of_trigger(t);
    let (exe, uid, unit, scope) = match (&t.requester, &t.loader) {
        (Some(r), _) => (r.exe.clone(), r.uid, r.unit.clone(), Some(r.scope.kind())),
        (None, Some(l)) => (l.exe.clone(), l.uid, l.unit.clone(), Some(l.scope.kind())),
        (None, None) => (None, None, None, None),
    };
    let package = unit.as_ref().and_then(|u| profile.packages.units.get(u)).or_else(|| {
        exe.as_ref().and_then(|e| profile.packages.executables.get(e))
    });
    let mut fields = vec![
        ("MESSAGE_ID", MESSAGE_ID.to_string()),
        ("MODTRACE_MODULE", module.to_string()),
        ("MODTRACE_CAUSE", t.kind.as_str().to_string()),
        ("MODTRACE_TRUST", if trust.trusted() { "trusted" } else { "review" }.to_string()),
        ("MODTRACE_NEW", if new_module { "module" } else { "cause" }.to_string()),
    ];
    let optional = [
        ("MODTRACE_ALIAS", t.alias.clone()),
        ("MODTRACE_UNIT", unit),
        ("MODTRACE_UID", uid.map(|u| u.to_string())),
        ("MODTRACE_SCOPE", scope.map(str::to_string)),
        ("MODTRACE_PACKAGE", package.cloned()),
        ("MODTRACE_EXE", exe),
    ];
    fields.extend(optional.into_iter().filter_map(|(k, v)| Some((k, v?))));
    let word = if trust.trusted() { "trusted" } else { "needs review" };
    Entry {
        level: if trust.trusted() { log::Level::Info } else { log::Level::Warn },
        message: format!("modtrace learned {module}: {} ({word}: {})", crate::needs::describe_trigger(t), trust.why()),
        fields,
    }
}

#[cfg(test)]
pub(crate) mod tests;
