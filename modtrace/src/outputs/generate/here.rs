//! `modtrace generate` on this machine: the profile read, the files generated
//! and written under --out, a running guard brought in line, and what to say.

use std::path::{Path, PathBuf};

use super::write::write_output;
use super::{fleet, generate, LockPoint, Options, DENY};
use crate::escape::text;
use crate::guard::control::{self, Refreshed};
use crate::needs::sitepolicy::SitePolicy;
use crate::needs::target::{self, Target};
use crate::needs::Plan;
use crate::profile;
use crate::system;
use crate::said::Said;

/// Where generate writes by default.
pub const DEFAULT_OUT: &str = "/var/lib/modtrace/generated";

/// What to generate, from where, for which kernel.
#[derive(Debug, Clone)]
pub struct Request {
    pub profile: PathBuf,
    pub out: PathBuf,
    pub kernel: Option<String>,
    pub modules_dir: Option<PathBuf>,
    pub lock_point: LockPoint,
    pub deny: bool,
    pub allow_unresolved: bool,
    /// A fleet's baseline: what was trusted on at least this many hosts.
    pub min_hosts: Option<usize>,
    /// Write the drop-ins by package under this directory instead.
    pub vendor: Option<PathBuf>,
}

impl Request {
    /// The command, as the files' headers record it.
    fn command_line(&self) -> String {
        let mut cmd = format!("modtrace generate --profile {}", self.profile.display());
        if let Some(k) = &self.kernel {
            cmd.push_str(&format!(" --kernel {k}"));
        }
        if let Some(d) = &self.modules_dir {
            cmd.push_str(&format!(" --modules-dir {}", d.display()));
        }
        cmd.push_str(&format!(" --lock-point {}", self.lock_point.as_str()));
        if self.deny {
            cmd.push_str(" --deny");
        }
        if let Some(n) = self.min_hosts {
            cmd.push_str(&format!(" --min-hosts {n}"));
        }
        match &self.vendor {
            Some(dir) => cmd.push_str(&format!(" --vendor {}", dir.display())),
            None => cmd.push_str(&format!(" --out {}", self.out.display())),
        }
        cmd
    }
}

/// What generate did: what to say, and the exit status (0; 2: entries left
/// unresolved without --allow-unresolved; 1: the running guard could not be
/// brought in line).
#[derive(Debug)]
pub struct Generated {
    pub said: Said,
    pub status: u8,
}

pub fn generate_here(req: &Request) -> anyhow::Result<Generated> {
    let (profile, mut said) = fleet::baseline_of(profile::load_existing(&req.profile)?, req.min_hosts, &req.profile)?;
    let target = target::choose(&profile, req.kernel.as_deref(), req.modules_dir.as_deref())?;
    let opts = Options {
        profile_path: req.profile.clone(),
        lock_point: req.lock_point,
        deny: req.deny,
        now: system::now(),
        command: req.command_line(),
        site: SitePolicy::read(Path::new("/")),
    };
    let output = generate(&profile, &target, &opts)?;
    if let Some(dir) = &req.vendor {
        said.append(fleet::vendor_here(dir, &profile, &output)?);
        return Ok(Generated { said, status: 0 });
    }
    let done = write_output(&req.out, &output)?;
    for p in &done.written {
        said.out(format!("wrote {}", p.display()));
    }
    for p in &done.removed {
        said.out(format!("removed {} (the unit no longer needs a module)", p.display()));
    }
    let old_deny = req.out.join(DENY);
    if !req.deny && old_deny.exists() {
        said.err(format!(
            "modtrace: note: {} (an earlier --deny) was left as it is: it may refuse a module this kernel needs; \
             regenerate with --deny, or delete it",
            old_deny.display()
        ));
    }
    said.append(plan_summary(&output.plan, &target));
    if req.out != Path::new("/") {
        said.out(format!(
            "review, then install: modtrace check; cp -r {}/etc/. /etc/ && systemctl daemon-reload && systemctl enable modtrace-lock.service",
            req.out.display()
        ));
    }
    let guard_in_line = refresh_guard(&req.profile, &target.release, &mut said);
    Ok(Generated { status: exit_status(req, &output.plan, &target, guard_in_line, &mut said), said })
}

fn exit_status(req: &Request, plan: &Plan, target: &Target, guard_in_line: bool, said: &mut Said) -> u8 {
    if !plan.unresolved.is_empty() && !req.allow_unresolved {
        said.err(format!(
            "modtrace: {} entr{} of the profile could not be resolved in kernel {} (listed above and in the files); \
             the files are written; rerun with --allow-unresolved to accept that",
            plan.unresolved.len(),
            if plan.unresolved.len() == 1 { "y" } else { "ies" },
            target.release
        ));
        return 2;
    }
    if guard_in_line { 0 } else { 1 }
}

/// What the files hold, and what they leave out and why.
fn plan_summary(plan: &Plan, target: &Target) -> Said {
    let mut said = Said::default();
    said.out(format!(
        "kernel {}: {} top-level module(s) to load, {} unit drop-in(s), {} built in, {} unresolved",
        target.release,
        plan.top_level.len(),
        plan.units.len(),
        plan.builtin.len(),
        plan.unresolved.len()
    ));
    for w in &plan.warnings {
        said.err(format!("modtrace: warning: {}", text(w)));
    }
    if !plan.review.is_empty() {
        let names: Vec<&str> = plan.review.keys().map(String::as_str).collect();
        said.err(format!(
            "modtrace: not listed, {} module(s) with no evidence that root wanted them: {} (modtrace report says why; accept with modtrace review or modtrace allow NAME)",
            names.len(),
            names.join(", ")
        ));
    }
    for (m, held) in plan.denied.iter().chain(&plan.site_disabled) {
        said.err(format!("modtrace: not listed: {m}: {}", text(&held.why)));
    }
    for (unit, why) in &plan.other_units {
        said.err(format!("modtrace: note: no drop-in for {}: {}", text(unit), text(why)));
    }
    for u in &plan.unresolved {
        said.err(format!("modtrace: unresolved in {}: {}", target.release, text(&u.to_string())));
    }
    said
}

/// A running guard for this kernel and profile takes the new policy; false
/// when it could not.
fn refresh_guard(profile: &Path, release: &str, said: &mut Said) -> bool {
    match control::refresh(Some(release), Some(profile)) {
        Refreshed::NotRunning | Refreshed::OtherKernel { .. } => true,
        Refreshed::Replaced(installed) => {
            said.append(installed.said());
            true
        }
        r @ Refreshed::Unchanged { .. } => {
            said.out(format!("modtrace: {r}"));
            true
        }
        r @ (Refreshed::OtherProfile(_) | Refreshed::Sealed) => {
            said.err(format!("modtrace: note: {r}"));
            true
        }
        r @ Refreshed::Cannot(_) => {
            said.err(format!("modtrace: error: the files are written, but {r}"));
            false
        }
    }
}
