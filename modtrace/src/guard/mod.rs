//! `modtrace guard`: the profile enforced in the kernel by BPF LSM programs,
//! pinned so that they keep deciding after the command returns.
//!
//! policy (what the profile allows) -> encode (map entries of one generation)
//! -> kernel (load, pin, swap generations, counters); control (start,
//! refresh, stop), liveness (what the kernel says is attached), status, and
//! log (decisions to the journal). What the programs
//! decide is decoded by the trace stage (`trace::decision`), beside the
//! tracer's own events.

pub mod control;
pub mod encode;
pub mod kernel;
pub mod liveness;
pub mod log;
pub mod policy;
pub mod refresh;
pub mod seal;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::needs::target::Target;
use crate::needs::sitepolicy::SitePolicy;
use crate::trace::modindex::KmodIndex;
use crate::profile::{self, Profile};
pub use encode::Mode;
use policy::Policy;

/// What `guard start` records for `guard status` (tmpfs: gone at reboot, as
/// the pins are).
pub const STATE_FILE: &str = "/run/modtrace/guard.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub mode: Mode,
    pub allow_init_module: bool,
    /// Sealed until the next boot (absent in the state of an older modtrace).
    #[serde(default)]
    pub sealed: bool,
    pub since: String,
    pub profile: PathBuf,
    pub kernel: String,
    pub generation: u32,
    pub modules: usize,
    pub aliases: usize,
    pub files: usize,
    /// Each program's link id, by program (absent in the state of an older
    /// modtrace): a sealed guard's links cannot be opened, only listed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, u32>,
}

/// The allowed set of the running kernel for `profile`: what generate and lock
/// would load (the needs derivation: trusted or accepted, not denied, not
/// disabled by the site's modprobe.d), with dependencies and softdeps.
pub fn compute(profile: &Profile, site: &SitePolicy, release: &str, modules_dir: &Path) -> anyhow::Result<Policy> {
    let target = Target::open(release, modules_dir)?;
    let plan = crate::needs::derive(profile, site, &target)
        .map_err(|invalid| anyhow::anyhow!("{}", crate::needs::unusable(&invalid)))?;
    let index = KmodIndex::open(modules_dir)?;
    let read = |name: &str| std::fs::read_to_string(modules_dir.join(name)).unwrap_or_default();
    let softdeps = policy::parse_softdeps(&read("modules.softdep"));
    let modules = policy::with_softdeps(&policy::allowed_modules(&plan), &softdeps, &index);
    let builtin: BTreeSet<String> = plan.builtin.keys().cloned().collect();
    let aliases = policy::allowed_aliases(&modules, &read("modules.alias"), profile, &index);
    let kmod = kmod::Context::new_with_dirname(modules_dir).context("opening the module index")?;
    let path_of = |m: &str| kmod.module_new_from_name(m).ok()?.path().map(|p| modules_dir.join(p));
    let (files, mut notes) = policy::module_files(&modules, &builtin, &path_of, modules_dir);
    notes.extend(plan.unresolved.iter().map(|u| format!("not allowed: {u}")));
    if !plan.review.is_empty() {
        notes.push(format!(
            "not allowed until an admin accepts them (modtrace review): {}",
            plan.review.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(Policy { modules, aliases, files, notes })
}

pub fn read_state() -> Option<State> {
    let text = std::fs::read_to_string(STATE_FILE).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn write_state(state: &State) -> anyhow::Result<()> {
    let path = Path::new(STATE_FILE);
    std::fs::create_dir_all(path.parent().expect("a directory")).with_context(|| format!("creating {}", STATE_FILE))?;
    let text = serde_json::to_string_pretty(state)? + "\n";
    profile::atomic_write(path, text.as_bytes())?;
    Ok(())
}

pub fn remove_state() {
    let _ = std::fs::remove_file(STATE_FILE);
}

/// One line on the guard for `check`, from its pins (`guard status` asks the
/// kernel): None when none is pinned under `pin_dir` and no start is left undone.
pub fn summary(pin_dir: &Path, state_file: &Path) -> Option<String> {
    let state = std::fs::read_to_string(state_file).ok().and_then(|t| serde_json::from_str::<State>(&t).ok());
    if !pin_dir.join("GUARD_CONFIG").exists() && state.is_none() {
        return None;
    }
    let unpinned: Vec<&str> =
        kernel::PROGRAMS.iter().map(|(p, _)| *p).filter(|p| !pin_dir.join(format!("link-{p}")).exists()).collect();
    if !unpinned.is_empty() {
        return Some(format!(
            "detached behind modtrace's back: no link pin for {} (modtrace guard status)",
            unpinned.join(", ")
        ));
    }
    Some(match state {
        Some(s) => format!(
            "{} since {}, from {} ({} modules allowed)",
            s.mode.as_str(),
            s.since,
            s.profile.display(),
            s.modules
        ),
        None => format!("running (pinned under {}; mode unknown)", pin_dir.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_for_check_names_mode_since_and_profile() {
        let dir = std::env::temp_dir().join(format!("modtrace-guard-summary-{}", std::process::id()));
        let pins = dir.join("pins");
        let state_file = dir.join("guard.json");
        std::fs::create_dir_all(&pins).unwrap();
        assert_eq!(summary(&pins, &state_file), None, "nothing pinned: not running");
        std::fs::write(pins.join("GUARD_CONFIG"), b"").unwrap();
        let detached = summary(&pins, &state_file).unwrap();
        assert!(detached.starts_with("detached behind modtrace's back: no link pin for guard_request, "), "{detached}");
        for (prog, _) in kernel::PROGRAMS {
            std::fs::write(pins.join(format!("link-{prog}")), b"").unwrap();
        }
        assert!(summary(&pins, &state_file).unwrap().contains("mode unknown"));
        let state = State {
            mode: Mode::Enforce,
            allow_init_module: false,
            sealed: false,
            since: "2026-12-01T20:00:00Z".into(),
            profile: "/var/lib/modtrace/profile.json".into(),
            kernel: "6.1.0-57-amd64".into(),
            generation: 2,
            modules: 14,
            aliases: 90,
            files: 13,
            links: BTreeMap::new(),
        };
        std::fs::write(&state_file, serde_json::to_string(&state).unwrap()).unwrap();
        assert_eq!(
            summary(&pins, &state_file).unwrap(),
            "enforce since 2026-12-01T20:00:00Z, from /var/lib/modtrace/profile.json (14 modules allowed)"
        );
        // Every pin removed, the state of its start left: detached, not absent.
        std::fs::remove_dir_all(&pins).unwrap();
        assert!(summary(&pins, &state_file).unwrap().contains("no link pin for guard_request, guard_read_file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
