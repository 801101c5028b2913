//! `modtrace generate`: the files that lock module loading down, from the
//! profile, written under a directory laid out like the root file system, to
//! review and then copy (or straight into / with --out /).

use crate::escape::text;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};

use crate::needs::target::Target;
use crate::outputs::generate::{self, LockPoint, Options, Output};
use crate::validate;
use crate::profile::{self, system, Profile};
use crate::needs::sitepolicy::SitePolicy;

/// Where `generate` writes by default: next to the profile, to review first.
pub const DEFAULT_OUT: &str = "/var/lib/modtrace/generated";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The profile to read.
    #[arg(long, value_name = "PATH", default_value = profile::DEFAULT_PATH)]
    pub profile: PathBuf,
    /// The directory to write into, laid out like the root file system
    /// (DIR/etc/modules-load.d/..., DIR/etc/systemd/system/...). `--out /`
    /// installs directly.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_OUT)]
    pub out: PathBuf,
    /// Resolve the profile's aliases, devices and module names against this
    /// kernel's modules (/lib/modules/KVER). Without it the profile's names are
    /// used as learned, for the kernel it was learned on.
    #[arg(long, value_name = "KVER")]
    pub kernel: Option<String>,
    /// The kernel's module directory, if not /lib/modules/KVER.
    #[arg(long, value_name = "DIR")]
    pub modules_dir: Option<PathBuf>,
    /// When modtrace-lock.service locks: early (before sysinit.target),
    /// after-udev (after udev settled, before logins), late (after multi-user.target).
    #[arg(long, value_enum, default_value_t = LockPoint::AfterUdev)]
    pub lock_point: LockPoint,
    /// Also write modprobe.d/modtrace-deny.conf, refusing every module of the
    /// kernel the profile does not need (for systems that keep loading enabled).
    #[arg(long)]
    pub deny: bool,
    /// Exit 0 even when some of the profile's entries resolve to nothing in the
    /// kernel; without it the exit status is then 2. Either way they are listed
    /// on stderr and in the files, and the files are written.
    #[arg(long)]
    pub allow_unresolved: bool,
}

/// Loads the profile, or says how to learn one.
pub fn load_profile(path: &Path) -> anyhow::Result<Profile> {
    Ok(profile::load_existing(path)?)
}

/// The kernel the files are for: --kernel/--modules-dir, or the profile itself.
pub fn target(profile: &Profile, kernel: Option<&str>, modules_dir: Option<&Path>) -> anyhow::Result<Target> {
    let release = match (kernel, modules_dir) {
        (None, None) => return Ok(Target::from_profile(profile)),
        (Some(k), _) => k.to_string(),
        (None, Some(dir)) => dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .context("--modules-dir names no directory; give --kernel too")?,
    };
    if let Err(rule) = validate::check_release(&release) {
        bail!("kernel release {release:?}: {rule}");
    }
    let dir = modules_dir.map(Path::to_path_buf).unwrap_or_else(|| Path::new("/lib/modules").join(&release));
    Ok(Target::open(&release, &dir)?)
}

fn command_line(args: &Args) -> String {
    let mut cmd = format!("modtrace generate --profile {}", args.profile.display());
    if let Some(k) = &args.kernel {
        cmd.push_str(&format!(" --kernel {k}"));
    }
    if let Some(d) = &args.modules_dir {
        cmd.push_str(&format!(" --modules-dir {}", d.display()));
    }
    cmd.push_str(&format!(" --lock-point {}", args.lock_point.as_str()));
    if args.deny {
        cmd.push_str(" --deny");
    }
    cmd.push_str(&format!(" --out {}", args.out.display()));
    cmd
}

/// What writing did.
#[derive(Debug, Default)]
pub struct Written {
    pub written: Vec<PathBuf>,
    /// Drop-ins modtrace wrote earlier for units that no longer need one.
    pub removed: Vec<PathBuf>,
}

/// Writes every file under `out` (each replaced atomically), then removes
/// modtrace's own drop-ins (recognised by their first line) that this
/// generation did not write.
pub fn write_output(out: &Path, output: &Output) -> anyhow::Result<Written> {
    let mut done = Written::default();
    // Every destination is checked before the first file is replaced, so that a
    // read-only directory does not leave half a generation behind.
    for f in &output.files {
        let dest = out.join(&f.path);
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        profile::check_writable(&dest)?;
    }
    for f in &output.files {
        let dest = out.join(&f.path);
        profile::atomic_write(&dest, f.contents.as_bytes())?;
        done.written.push(dest);
    }
    let keep: BTreeSet<&PathBuf> = done.written.iter().collect();
    let units = out.join(generate::UNIT_DIR);
    if let Ok(dirs) = fs::read_dir(&units) {
        for d in dirs.flatten() {
            if !d.file_name().to_string_lossy().ends_with(".d") {
                continue;
            }
            let candidate = d.path().join(generate::DROP_IN_NAME);
            if keep.contains(&candidate) {
                continue;
            }
            let ours = fs::read_to_string(&candidate).map(|t| t.starts_with(generate::MARK)).unwrap_or(false);
            if ours {
                fs::remove_file(&candidate).with_context(|| format!("removing {}", candidate.display()))?;
                let _ = fs::remove_dir(d.path()); // only when empty
                done.removed.push(candidate);
            }
        }
    }
    Ok(done)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let profile = load_profile(&args.profile)?;
    let target = target(&profile, args.kernel.as_deref(), args.modules_dir.as_deref())?;
    let opts = Options {
        profile_path: args.profile.clone(),
        lock_point: args.lock_point,
        deny: args.deny,
        now: system::now(),
        command: command_line(&args),
        site: SitePolicy::read(Path::new("/")),
    };
    let output = generate::generate(&profile, &target, &opts)?;
    let done = write_output(&args.out, &output)?;
    for p in &done.written {
        println!("wrote {}", p.display());
    }
    for p in &done.removed {
        println!("removed {} (the unit no longer needs a module)", p.display());
    }
    let old_deny = args.out.join(generate::DENY);
    if !args.deny && old_deny.exists() {
        eprintln!(
            "modtrace: note: {} (an earlier --deny) was left as it is: it may refuse a module this kernel needs; \
             regenerate with --deny, or delete it",
            old_deny.display()
        );
    }
    let plan = &output.plan;
    println!(
        "kernel {}: {} top-level module(s) to load, {} unit drop-in(s), {} built in, {} unresolved",
        target.release,
        plan.top_level.len(),
        plan.units.len(),
        plan.builtin.len(),
        plan.unresolved.len()
    );
    for w in &plan.warnings {
        eprintln!("modtrace: warning: {}", text(w));
    }
    if !plan.review.is_empty() {
        let names: Vec<&str> = plan.review.keys().map(String::as_str).collect();
        eprintln!(
            "modtrace: not listed, {} module(s) with no evidence that root wanted them: {} (modtrace report says why; accept with modtrace review or modtrace allow NAME)",
            names.len(),
            names.join(", ")
        );
    }
    for (m, held) in plan.denied.iter().chain(&plan.site_disabled) {
        eprintln!("modtrace: not listed: {m}: {}", text(&held.why));
    }
    for (unit, why) in &plan.other_units {
        eprintln!("modtrace: note: no drop-in for {}: {}", text(unit), text(why));
    }
    for u in &plan.unresolved {
        eprintln!("modtrace: unresolved in {}: {}", target.release, text(&u.to_string()));
    }
    if args.out != Path::new("/") {
        println!(
            "review, then install: modtrace check; cp -r {}/etc/. /etc/ && systemctl daemon-reload && systemctl enable modtrace-lock.service",
            args.out.display()
        );
    }
    let guard_in_line = refresh_guard(&args.profile, &target.release);
    if !plan.unresolved.is_empty() && !args.allow_unresolved {
        eprintln!(
            "modtrace: {} entr{} of the profile could not be resolved in kernel {} (listed above and in the files); \
             the files are written; rerun with --allow-unresolved to accept that",
            plan.unresolved.len(),
            if plan.unresolved.len() == 1 { "y" } else { "ies" },
            target.release
        );
        return Ok(ExitCode::from(2));
    }
    if !guard_in_line {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// A guard running on this kernel from the same profile follows what generate
/// derived: refreshed when that changed. False when it could not be brought
/// in line (said so, with the command to run).
fn refresh_guard(profile: &Path, release: &str) -> bool {
    use crate::guard::control::Refreshed;
    match Ok::<_, anyhow::Error>(crate::guard::control::refresh(Some(release), Some(profile))) {
        Ok(Refreshed::NotRunning | Refreshed::OtherKernel { .. }) => true,
        Ok(Refreshed::Replaced(installed)) => {
            installed.said().print();
            true
        }
        Ok(r @ Refreshed::Unchanged { .. }) => {
            println!("modtrace: {r}");
            true
        }
        Ok(r @ (Refreshed::OtherProfile(_) | Refreshed::Sealed)) => {
            eprintln!("modtrace: note: {r}");
            true
        }
        Ok(r @ Refreshed::Cannot(_)) => {
            eprintln!("modtrace: error: the files are written, but {r}");
            false
        }
        Err(e) => {
            eprintln!("modtrace: error: the files are written, but the running guard could not be refreshed: {e:#}");
            false
        }
    }
}
