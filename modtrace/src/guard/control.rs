//! Starting, refreshing and stopping the guard: the policy computed for the
//! running kernel, installed (or swapped in for the one in force), and the
//! state `guard status` reads.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use super::policy::Policy;
use super::{encode, kernel, refresh, seal, Mode, State};
use crate::loader::btf;
use crate::needs::sitepolicy::SitePolicy;
use crate::profile;
use crate::said::Said;

/// What the guard is started with.
#[derive(Debug, Clone)]
pub struct Start {
    pub profile: PathBuf,
    pub mode: Mode,
    pub allow_init_module: bool,
    /// Sealed until the next boot (enforce only): guard/seal.rs.
    pub sealed: bool,
}

/// What an install did, to be said.
#[derive(Debug)]
pub struct Installed {
    pub replacing: bool,
    pub state: State,
    /// Why a refresh replaced the policy.
    pub changes: Vec<String>,
    pub notes: Vec<String>,
}

impl Installed {
    pub fn said(&self) -> Said {
        let s = &self.state;
        let init_module = if s.allow_init_module {
            "allowed"
        } else if s.mode == Mode::Enforce {
            "refused"
        } else {
            "reported"
        };
        let mut said = Said::default();
        said.out(format!(
            "modtrace: guard {} ({}) on kernel {}, from {}: {} modules allowed ({} module files, {} request names); init_module {init_module}; pinned under {}",
            if self.replacing { "policy replaced" } else { "started" },
            s.mode.as_str().to_string() + if s.sealed { ", sealed until the next boot" } else { "" },
            s.kernel,
            s.profile.display(),
            s.modules,
            s.files,
            s.aliases,
            kernel::PIN_DIR,
        ));
        for change in &self.changes {
            said.out(format!("  {change}"));
        }
        for note in &self.notes {
            said.err(format!("modtrace: note: {note}"));
        }
        said
    }
}

/// `guard start`: the profile's policy for the running kernel, in force.
pub fn start(start: &Start) -> anyhow::Result<Installed> {
    if start.sealed && start.mode != Mode::Enforce {
        bail!("--sealed needs --mode enforce: a guard that refuses nothing is not worth sealing until the next boot");
    }
    kernel::preflight()?;
    let policy = running_policy(&start.profile)?;
    install(start, &policy, Vec::new()).map_err(sealed_refusal)
}

/// An error of a command that a sealed guard refused, said as such.
fn sealed_refusal(e: anyhow::Error) -> anyhow::Error {
    if !seal::is_sealed() {
        return e;
    }
    anyhow::anyhow!(
        "the guard is sealed until the next boot: nothing can stop it, replace its policy or unpin it before then \
         (the kernel refused: {e:#}); the attempt is counted in `modtrace guard status`"
    )
}

/// The allowed set of the running kernel for the profile at `path`.
fn running_policy(path: &Path) -> anyhow::Result<Policy> {
    let profile = profile::load_existing(path)?;
    let release = crate::system::kernel_release();
    let modules_dir = kmod::Context::new().context("opening the running kernel's module index")?.dirname();
    super::compute(&profile, &SitePolicy::read(Path::new("/")), &release, Path::new(&modules_dir))
}

/// Installs `policy`, or replaces the one in force; `changes`: why a refresh
/// replaced it.
fn install(start: &Start, policy: &Policy, changes: Vec<String>) -> anyhow::Result<Installed> {
    let facts = kernel::kernel_facts(Path::new(btf::VMLINUX_BTF))?;
    let build = |generation: u32| {
        (encode::encode(policy, generation), encode::config(generation, start.mode, start.allow_init_module, &facts))
    };
    let replacing = kernel::is_pinned();
    let mut notes = Vec::new();
    let (generation, links) = if replacing && !start.sealed {
        // Same links: the policy is swapped under them.
        let links = super::read_state().map(|s| s.links).unwrap_or_default();
        (kernel::replace_policy(&build)?, links)
    } else {
        if replacing {
            // The seal's programs go with a fresh load: no sealing in place.
            kernel::uninstall()?;
            notes.push("the running guard was stopped and started again, sealed".to_string());
        }
        let installed = kernel::install(&build, start.sealed)?;
        (installed.generation, installed.links)
    };
    let skipped = encode::encode(policy, generation).skipped;
    let state = State {
        mode: start.mode,
        allow_init_module: start.allow_init_module,
        sealed: start.sealed,
        since: crate::system::now(),
        profile: start.profile.clone(),
        kernel: crate::system::kernel_release(),
        generation,
        modules: policy.modules.len(),
        aliases: policy.aliases.len(),
        files: policy.files.len(),
        links,
    };
    super::write_state(&state)?;
    notes.extend(policy.notes.iter().chain(&skipped).cloned());
    Ok(Installed { replacing, state, changes, notes })
}

/// `guard stop`: whether a guard was running.
pub fn stop() -> anyhow::Result<bool> {
    let was = kernel::uninstall().map_err(|e| sealed_refusal(e.into()))?;
    super::remove_state();
    Ok(was)
}

/// What a refresh did.
pub enum Refreshed {
    NotRunning,
    OtherKernel { running: String },
    OtherProfile(refresh::Cannot),
    Unchanged { modules: usize },
    Replaced(Installed),
    /// Sealed until the next boot: the new policy applies from then.
    Sealed,
    Cannot(refresh::Cannot),
}

impl std::fmt::Display for Refreshed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refreshed::NotRunning => write!(f, "no guard is running: nothing to refresh"),
            Refreshed::OtherKernel { running } => write!(
                f,
                "the guard enforces the running kernel {running}, whose module files this does not change; \
                 at that kernel's boot modtrace-guard.service computes its own policy"
            ),
            Refreshed::OtherProfile(c) => write!(f, "the guard is left as it is: {c}"),
            Refreshed::Unchanged { modules } => write!(f, "guard policy unchanged ({modules} modules allowed)"),
            Refreshed::Replaced(_) => write!(f, "guard policy replaced"),
            Refreshed::Sealed => write!(
                f,
                "the guard is sealed until the next boot, so its policy stays as it is: the new policy applies \
                 from the next boot (modtrace-guard.service computes it then)"
            ),
            Refreshed::Cannot(c) => write!(f, "the guard could not be refreshed: {c}"),
        }
    }
}

/// Brings a running guard in line with its profile (for `kernel`, if given,
/// only when it is the running one; for generate, only when `profile` is the
/// guard's). Errors past the scope become Cannot, with the command to run.
pub fn refresh(kernel: Option<&str>, profile: Option<&Path>) -> Refreshed {
    let state = super::read_state();
    let running = crate::system::kernel_release();
    let state = match refresh::scope(kernel::is_pinned(), state.as_ref(), &running, kernel, profile) {
        refresh::Scope::NotRunning => return Refreshed::NotRunning,
        refresh::Scope::OtherKernel { running } => return Refreshed::OtherKernel { running },
        refresh::Scope::OtherProfile(c) => return Refreshed::OtherProfile(c),
        refresh::Scope::Cannot(c) => return Refreshed::Cannot(c),
        refresh::Scope::Refresh(state) => state,
    };
    // Trying would only be refused (and counted as an attempt to undo it).
    if seal::is_sealed() {
        return Refreshed::Sealed;
    }
    let start = Start {
        profile: state.profile.clone(),
        mode: state.mode,
        allow_init_module: state.allow_init_module,
        sealed: false,
    };
    replace_if_changed(&start).unwrap_or_else(|e| {
        Refreshed::Cannot(refresh::Cannot {
            why: format!("{e:#}"),
            run: refresh::start_command(Some(state), None) + " (once that is fixed)",
        })
    })
}

fn replace_if_changed(start: &Start) -> anyhow::Result<Refreshed> {
    let policy = running_policy(&start.profile)?;
    let now = kernel::enforced()?.context("the guard's config map holds no generation")?;
    let wanted = refresh::Enforced::from_encoded(&encode::encode(&policy, 0));
    let changes = refresh::changes(&now, &wanted);
    if changes.is_empty() {
        return Ok(Refreshed::Unchanged { modules: policy.modules.len() });
    }
    Ok(Refreshed::Replaced(install(start, &policy, changes)?))
}
