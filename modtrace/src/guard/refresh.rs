//! Keeping a running guard in line with its profile and the module files on
//! disk (`guard refresh`, run by generate and the kernel postinst hook): what
//! the guard enforces now, compared with what the same profile allows today.

use std::collections::BTreeSet;
use std::path::Path;

use super::encode::Encoded;
use super::State;
use crate::trace::decode::cstr;

/// What one generation of the guard allows, without its generation number:
/// the same shape whether read from the pinned maps or freshly encoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enforced {
    pub aliases: BTreeSet<String>,
    pub modules: BTreeSet<String>,
    /// (kernel device number, inode, module).
    pub files: BTreeSet<(u32, u64, String)>,
}

impl Enforced {
    pub fn from_encoded(e: &Encoded) -> Self {
        Enforced {
            aliases: e.aliases.iter().map(|k| cstr(&k.name)).collect(),
            modules: e.modules.iter().map(|k| cstr(&k.name)).collect(),
            files: e.files.iter().map(|(k, v)| (k.dev, k.ino, cstr(&v.module))).collect(),
        }
    }
}

/// Why a running guard cannot be refreshed by itself, and the command that does it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cannot {
    pub why: String,
    pub run: String,
}

impl std::fmt::Display for Cannot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; run: {}", self.why, self.run)
    }
}

/// Whether `refresh` has anything to do, before any profile is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope<'a> {
    /// No guard is pinned.
    NotRunning,
    /// The kernel named (a postinst hook's, generate's) is not the running
    /// one: its module files are not what the guard checks; when it boots,
    /// modtrace-guard.service computes its own policy.
    OtherKernel {
        running: String,
    },
    /// The guard runs from another profile than the one named: it is left
    /// as it is.
    OtherProfile(Cannot),
    Cannot(Cannot),
    /// Recompute from the profile and mode the guard was started with.
    Refresh(&'a State),
}

/// The command that starts the guard as `state` describes it (or, without
/// state, with the mode left to the admin).
pub fn start_command(state: Option<&State>, profile: Option<&Path>) -> String {
    let mut cmd = String::from("modtrace guard start");
    if let Some(p) = profile.or(state.map(|s| s.profile.as_path())) {
        if p != Path::new(crate::profile::DEFAULT_PATH) {
            cmd.push_str(&format!(" --profile {}", p.display()));
        }
    }
    match state {
        Some(s) => {
            cmd.push_str(&format!(" --mode {}", s.mode.as_str()));
            if s.allow_init_module {
                cmd.push_str(" --allow-init-module");
            }
        }
        None => cmd.push_str(" --mode complain|enforce"),
    }
    cmd
}

/// What a refresh asked for `kernel` (None: the running one) and, by
/// generate, for `profile` (None: the guard's own) must do.
pub fn scope<'a>(
    pinned: bool,
    state: Option<&'a State>,
    running: &str,
    kernel: Option<&str>,
    profile: Option<&Path>,
) -> Scope<'a> {
    if !pinned {
        return Scope::NotRunning;
    }
    if kernel.is_some_and(|k| k != running) {
        return Scope::OtherKernel { running: running.to_string() };
    }
    let Some(state) = state else {
        return Scope::Cannot(Cannot {
            why: format!("a guard runs but {} is missing, so its mode and profile are unknown", super::STATE_FILE),
            run: start_command(None, profile),
        });
    };
    if let Some(p) = profile {
        if !same_file(p, &state.profile) {
            return Scope::OtherProfile(Cannot {
                why: format!("the running guard enforces {}, not {}", state.profile.display(), p.display()),
                run: start_command(Some(state), Some(p)),
            });
        }
    }
    Scope::Refresh(state)
}

fn same_file(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    canon(a) == canon(b)
}

/// What changed between the generation in force and the one the profile
/// gives today, in words; empty when nothing did.
pub fn changes(now: &Enforced, wanted: &Enforced) -> Vec<String> {
    let mut out = Vec::new();
    let names = |added: Vec<&String>| added.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    let added: Vec<&String> = wanted.modules.difference(&now.modules).collect();
    if !added.is_empty() {
        out.push(format!("{} module(s) now allowed: {}", added.len(), names(added)));
    }
    let removed: Vec<&String> = now.modules.difference(&wanted.modules).collect();
    if !removed.is_empty() {
        out.push(format!("{} module(s) no longer allowed: {}", removed.len(), names(removed)));
    }
    let moved: BTreeSet<&String> = now
        .files
        .symmetric_difference(&wanted.files)
        .map(|(_, _, m)| m)
        .filter(|m| now.modules.contains(*m) && wanted.modules.contains(*m))
        .collect();
    if !moved.is_empty() {
        out.push(format!(
            "{} module file(s) replaced on disk (new inode): {}",
            moved.len(),
            names(moved.into_iter().collect())
        ));
    }
    if out.is_empty() && now.aliases != wanted.aliases {
        let n = now.aliases.symmetric_difference(&wanted.aliases).count();
        out.push(format!("{n} request name(s) changed"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::Mode;

    fn state(mode: Mode, profile: &str) -> State {
        State {
            mode,
            allow_init_module: true,
            sealed: false,
            since: "2026-12-01T20:00:00Z".into(),
            profile: profile.into(),
            kernel: "6.12.118+deb13-amd64".into(),
            generation: 3,
            modules: 2,
            aliases: 4,
            files: 2,
            links: Default::default(),
        }
    }

    fn enforced(modules: &[&str], files: &[(u64, &str)]) -> Enforced {
        Enforced {
            aliases: modules.iter().map(|m| m.to_string()).collect(),
            modules: modules.iter().map(|m| m.to_string()).collect(),
            files: files.iter().map(|(ino, m)| (8 << 20 | 1, *ino, m.to_string())).collect(),
        }
    }

    const RUNNING: &str = "6.12.118+deb13-amd64";

    #[test]
    fn nothing_runs_or_another_kernel_leaves_nothing_to_do() {
        let s = state(Mode::Enforce, "/var/lib/modtrace/profile.json");
        assert_eq!(scope(false, Some(&s), RUNNING, None, None), Scope::NotRunning);
        assert_eq!(
            scope(true, Some(&s), RUNNING, Some("6.12.119+deb13-amd64"), None),
            Scope::OtherKernel { running: RUNNING.into() }
        );
        assert_eq!(scope(true, Some(&s), RUNNING, Some(RUNNING), None), Scope::Refresh(&s));
    }

    #[test]
    fn without_its_state_the_guard_is_left_alone_and_the_command_named() {
        let Scope::Cannot(c) = scope(true, None, RUNNING, None, None) else { panic!() };
        assert!(c.why.contains("/run/modtrace/guard.json is missing"), "{c}");
        assert_eq!(c.run, "modtrace guard start --mode complain|enforce");
    }

    #[test]
    fn another_profile_than_the_guards_is_named_with_the_command_that_switches() {
        let s = state(Mode::Enforce, "/var/lib/modtrace/profile.json");
        let Scope::OtherProfile(c) = scope(true, Some(&s), RUNNING, None, Some(Path::new("/root/p.json"))) else {
            panic!()
        };
        assert_eq!(c.why, "the running guard enforces /var/lib/modtrace/profile.json, not /root/p.json");
        assert_eq!(c.run, "modtrace guard start --profile /root/p.json --mode enforce --allow-init-module");
        let same = Path::new("/var/lib/modtrace/profile.json");
        assert_eq!(scope(true, Some(&s), RUNNING, None, Some(same)), Scope::Refresh(&s));
    }

    #[test]
    fn the_same_set_and_files_need_no_refresh() {
        let now = enforced(&["vfat", "fat"], &[(10, "vfat"), (11, "fat")]);
        assert!(changes(&now, &now.clone()).is_empty());
    }

    #[test]
    fn a_changed_set_or_a_replaced_file_is_named() {
        let now = enforced(&["vfat", "fat", "isofs"], &[(10, "vfat"), (11, "fat"), (12, "isofs")]);
        let wanted = enforced(&["vfat", "fat", "tun"], &[(10, "vfat"), (21, "fat"), (13, "tun")]);
        assert_eq!(
            changes(&now, &wanted),
            [
                "1 module(s) now allowed: tun",
                "1 module(s) no longer allowed: isofs",
                "1 module file(s) replaced on disk (new inode): fat",
            ]
        );
        let mut aliases = now.clone();
        aliases.aliases.insert("net-pf-5".into());
        assert_eq!(changes(&now, &aliases), ["1 request name(s) changed"]);
    }
}
