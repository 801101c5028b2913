//! `modtrace guard`: start, status, stop, and the journal logger.

use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::trace::attribute::SystemDescriber;
use crate::guard::policy::Policy;
use crate::guard::{self, encode, kernel, refresh, Mode, State};
use crate::trace::decision;
use crate::trace::output;
use crate::loader::btf;
use crate::profile;
use crate::needs::sitepolicy::SitePolicy;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// Enforce (or, first, complain about) the profile in the kernel; pinned, so it stays after the command returns.
    Start(StartArgs),
    /// Mode, since when, the profile, what is allowed, decisions so far; exit 3 when not running.
    Status(StatusArgs),
    /// Detach the guard's programs and remove their pins.
    Stop,
    /// Write the guard's decisions to the journal (stdout without one) until the guard stops.
    Log,
    /// If a guard runs, recompute it from the profile and mode it was started with and replace its
    /// policy when that changed (a new profile, module files replaced on disk); generate and the
    /// kernel postinst hook run it.
    Refresh(RefreshArgs),
}

#[derive(clap::Args, Debug)]
pub struct RefreshArgs {
    /// Only when this is the running kernel (the postinst hook passes the kernel it installed).
    #[arg(long, value_name = "KVER")]
    pub kernel: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct StartArgs {
    /// The profile whose modules are allowed.
    #[arg(long, value_name = "PATH", default_value = profile::DEFAULT_PATH)]
    pub profile: PathBuf,
    /// complain: allow everything, report what enforce would refuse. enforce: refuse it (EPERM).
    #[arg(long, value_enum, default_value_t = Mode::Complain)]
    pub mode: Mode,
    /// Allow init_module(2) (a module image from memory, no file to check) in enforce mode.
    /// Needed where kmod decompresses .ko.xz itself (Debian 12's kmod on 6.12 and newer kernels).
    #[arg(long)]
    pub allow_init_module: bool,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // The pins and maps are root's: without root a running guard looks absent.
    let proc_status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    crate::loader::preflight::check_capabilities(&proc_status)?;
    match args.command {
        Sub::Start(a) => start(a),
        Sub::Status(a) => status(a),
        Sub::Stop => stop(),
        Sub::Log => log(),
        Sub::Refresh(a) => refresh(a.kernel.as_deref()),
    }
}

fn start(args: StartArgs) -> anyhow::Result<ExitCode> {
    kernel::preflight()?;
    let policy = running_policy(&args.profile)?;
    install(&args, &policy, None)?;
    Ok(ExitCode::SUCCESS)
}

/// The allowed set of the running kernel for the profile at `path`.
fn running_policy(path: &Path) -> anyhow::Result<Policy> {
    let profile = super::generate::load_profile(path)?;
    let release = profile::system::kernel_release();
    let modules_dir = kmod::Context::new().context("opening the running kernel's module index")?.dirname();
    guard::compute(&profile, &SitePolicy::read(Path::new("/")), &release, Path::new(&modules_dir))
}

/// Installs `policy` (or replaces the one in force) and says so; `changes`:
/// why a refresh replaced it.
fn install(args: &StartArgs, policy: &Policy, changes: Option<&[String]>) -> anyhow::Result<()> {
    let facts = kernel::kernel_facts(Path::new(btf::VMLINUX_BTF))?;
    let release = profile::system::kernel_release();
    let build = |generation: u32| {
        (encode::encode(policy, generation), encode::config(generation, args.mode, args.allow_init_module, &facts))
    };
    let replacing = kernel::is_pinned();
    let generation = if replacing { kernel::replace_policy(&build)? } else { kernel::install(&build)? };
    let skipped = encode::encode(policy, generation).skipped;
    let state = State {
        mode: args.mode,
        allow_init_module: args.allow_init_module,
        since: profile::system::now(),
        profile: args.profile.clone(),
        kernel: release.clone(),
        generation,
        modules: policy.modules.len(),
        aliases: policy.aliases.len(),
        files: policy.files.len(),
    };
    guard::write_state(&state)?;
    println!(
        "modtrace: guard {} ({}) on kernel {release}, from {}: {} modules allowed ({} module files, {} request names); init_module {}; pinned under {}",
        if replacing { "policy replaced" } else { "started" },
        args.mode.as_str(),
        args.profile.display(),
        state.modules,
        state.files,
        state.aliases,
        if args.allow_init_module { "allowed" } else if args.mode == Mode::Enforce { "refused" } else { "reported" },
        kernel::PIN_DIR,
    );
    for change in changes.unwrap_or_default() {
        println!("  {change}");
    }
    for note in policy.notes.iter().chain(skipped.iter().map(|s| s as &String)) {
        eprintln!("modtrace: note: {note}");
    }
    Ok(())
}

/// `guard refresh`: exit 0 when the guard is in line (or none runs), 1 with
/// the command to run when it cannot be brought in line by itself.
fn refresh(kernel: Option<&str>) -> anyhow::Result<ExitCode> {
    match refresh_guard(kernel, None)? {
        Refreshed::Cannot(c) => bail!("{c}"),
        // install() said what it replaced, and why.
        Refreshed::Replaced => {}
        done => println!("modtrace: {done}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// What a refresh did.
pub enum Refreshed {
    NotRunning,
    OtherKernel { running: String },
    OtherProfile(refresh::Cannot),
    Unchanged { modules: usize },
    Replaced,
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
            Refreshed::Replaced => write!(f, "guard policy replaced"),
            Refreshed::Cannot(c) => write!(f, "the guard could not be refreshed: {c}"),
        }
    }
}

/// Brings a running guard in line with its profile (for `kernel`, if given,
/// only when it is the running one; for generate, only when `profile` is the
/// guard's). Errors past the scope become Cannot, with the command to run.
pub fn refresh_guard(kernel: Option<&str>, profile: Option<&Path>) -> anyhow::Result<Refreshed> {
    let state = guard::read_state();
    let running = profile::system::kernel_release();
    let state = match refresh::scope(kernel::is_pinned(), state.as_ref(), &running, kernel, profile) {
        refresh::Scope::NotRunning => return Ok(Refreshed::NotRunning),
        refresh::Scope::OtherKernel { running } => return Ok(Refreshed::OtherKernel { running }),
        refresh::Scope::OtherProfile(c) => return Ok(Refreshed::OtherProfile(c)),
        refresh::Scope::Cannot(c) => return Ok(Refreshed::Cannot(c)),
        refresh::Scope::Refresh(state) => state,
    };
    let cannot = |e: anyhow::Error| {
        Refreshed::Cannot(refresh::Cannot {
            why: format!("{e:#}"),
            run: refresh::start_command(Some(state), None) + " (once that is fixed)",
        })
    };
    let args =
        StartArgs { profile: state.profile.clone(), mode: state.mode, allow_init_module: state.allow_init_module };
    let policy = match running_policy(&args.profile) {
        Ok(p) => p,
        Err(e) => return Ok(cannot(e)),
    };
    let now = match kernel::enforced() {
        Ok(Some(now)) => now,
        Ok(None) => return Ok(cannot(anyhow::anyhow!("the guard's config map holds no generation"))),
        Err(e) => return Ok(cannot(e.into())),
    };
    let wanted = refresh::Enforced::from_encoded(&encode::encode(&policy, 0));
    let changes = refresh::changes(&now, &wanted);
    if changes.is_empty() {
        return Ok(Refreshed::Unchanged { modules: policy.modules.len() });
    }
    match install(&args, &policy, Some(&changes)) {
        Ok(()) => Ok(Refreshed::Replaced),
        Err(e) => Ok(cannot(e)),
    }
}

fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    if !kernel::is_pinned() {
        if args.json {
            println!("{}", serde_json::json!({ "active": false }));
        } else {
            println!("modtrace: the guard is not running");
        }
        return Ok(ExitCode::from(3));
    }
    let counts = kernel::counts()?;
    let config = kernel::current_config()?;
    let state = guard::read_state();
    if args.json {
        let v = serde_json::json!({ "active": true, "state": state, "generation": config.map(|c| c.generation), "decisions": counts });
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    match &state {
        Some(s) => println!(
            "modtrace: guard active, mode {}, since {}, profile {} (kernel {}): {} modules allowed ({} files, {} request names), init_module {}",
            s.mode.as_str(),
            s.since,
            s.profile.display(),
            s.kernel,
            s.modules,
            s.files,
            s.aliases,
            if s.allow_init_module { "allowed" } else { "not allowed" }
        ),
        None => println!("modtrace: guard active ({} missing: mode and profile unknown)", guard::STATE_FILE),
    }
    println!(
        "decisions: {} allowed, {} denied, {} would deny; {} lost (never logged); {}",
        counts.allowed,
        counts.denied,
        counts.would_deny,
        counts.lost,
        skipped_words(counts.skipped)
    );
    if let Some(skipped) = counts.skipped.filter(|n| *n > 0) {
        eprintln!(
            "modtrace: warning: the kernel skipped the guard's hook {skipped} time(s) (its program was already \
             running on that CPU, preempted): those operations went through undecided"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn skipped_words(skipped: Option<u64>) -> String {
    match skipped {
        Some(n) => format!("{n} skipped by the kernel (let through undecided)"),
        None => "skipped by the kernel: unknown (the guard was started by an older modtrace; restart it)".into(),
    }
}

fn stop() -> anyhow::Result<ExitCode> {
    let was = kernel::uninstall()?;
    guard::remove_state();
    if was {
        println!("modtrace: guard stopped: its programs are detached and {} is removed", kernel::PIN_DIR);
    } else {
        println!("modtrace: the guard was not running");
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads the log ring until the guard is stopped. Enforcement never waits
/// for this process: when it is gone, decisions go on and are counted lost.
fn log() -> anyhow::Result<ExitCode> {
    if !kernel::is_pinned() {
        bail!("the guard is not running: start it first (modtrace guard start)");
    }
    let mut ring = kernel::ring("GUARD_LOG")?;
    // Tagged as documented (journalctl -t modtrace-guard), not after the program.
    let journal = systemd_journal_logger::connected_to_journal()
        .then(systemd_journal_logger::JournalLog::new)
        .transpose()
        .context("connecting to the journal")?
        .map(|j| j.with_syslog_identifier(JOURNAL_TAG.to_string()));
    let mut describer = SystemDescriber::new();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let fd = ring.as_raw_fd();
        // SAFETY: the ring outlives this loop.
        let ready = unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?;
        let mut check = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                guard = ready.readable() => guard?.clear_ready(),
                _ = check.tick() => if !kernel::is_pinned() { break },
            }
            while let Some(item) = ring.next() {
                let Ok(d) = decision::decode(&item) else { continue };
                let rec = decision::record(&d, &mut describer);
                emit(journal.as_ref(), &rec);
            }
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The SYSLOG_IDENTIFIER of the guard's journal entries.
pub const JOURNAL_TAG: &str = "modtrace-guard";

fn emit(journal: Option<&systemd_journal_logger::JournalLog>, rec: &decision::GuardRecord) {
    let Some(journal) = journal else {
        println!("{}", serde_json::to_string(rec).expect("records serialize"));
        let _ = std::io::stdout().flush();
        return;
    };
    let fields = journal_fields(rec);
    let kv: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let level = if rec.kind == "guard_allowed" { log::Level::Info } else { log::Level::Warn };
    let message = output::guard_human(rec);
    let _ = journal.journal_send(
        &log::Record::builder()
            .level(level)
            .target("modtrace-guard")
            .args(format_args!("{message}"))
            .key_values(&kv)
            .build(),
    );
}

/// The structured fields of a decision's journal entry (MODTRACE_*).
pub fn journal_fields(rec: &decision::GuardRecord) -> Vec<(&'static str, String)> {
    let p = &rec.process;
    let mut f = vec![
        ("MODTRACE_DECISION", rec.kind.trim_start_matches("guard_").to_string()),
        ("MODTRACE_HOOK", rec.hook.to_string()),
        ("MODTRACE_MODE", rec.mode.to_string()),
        ("MODTRACE_REASON", rec.reason.clone()),
        ("MODTRACE_PID", p.tgid.to_string()),
        ("MODTRACE_UID", p.uid.to_string()),
        ("MODTRACE_COMM", p.comm.clone()),
        // "system", "user", "session", "container", "none" or "unknown", and in words.
        ("MODTRACE_SCOPE", p.scope.kind().to_string()),
        ("MODTRACE_SCOPE_TEXT", p.scope.to_string()),
        ("MODTRACE_REPEATS", rec.repeats.to_string()),
    ];
    let optional = [
        ("MODTRACE_ALIAS", rec.alias.clone()),
        ("MODTRACE_MODULE", rec.module.clone()),
        ("MODTRACE_FILE", rec.file.clone()),
        ("MODTRACE_DEV", rec.dev.clone()),
        ("MODTRACE_INO", rec.ino.map(|i| i.to_string())),
        ("MODTRACE_EXE", p.exe.clone()),
        ("MODTRACE_UNIT", p.unit.clone()),
        ("MODTRACE_CGROUP", p.cgroup.clone()),
    ];
    f.extend(optional.into_iter().filter_map(|(k, v)| Some((k, v?))));
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::in_cgroup;

    #[test]
    fn journal_entries_carry_the_decision_and_the_requester_as_fields() {
        let rec = decision::GuardRecord {
            time: "2026-12-01T20:42:18.360Z".into(),
            ts_ns: 1,
            kind: "guard_denied".into(),
            hook: "request",
            mode: "enforce",
            alias: Some("net-pf-38".into()),
            module: None,
            file: None,
            dev: None,
            ino: None,
            reason: "net-pf-38 resolves to no module of the profile".into(),
            repeats: 2,
            process: in_cgroup(9, "python3", Some("/usr/bin/python3.11"), 1000, "/user.slice/user-1000.slice/session-2.scope"),
        };
        let fields = journal_fields(&rec);
        let get = |k: &str| fields.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("MODTRACE_DECISION"), Some("denied"));
        assert_eq!((get("MODTRACE_HOOK"), get("MODTRACE_MODE")), (Some("request"), Some("enforce")));
        assert_eq!(
            (get("MODTRACE_ALIAS"), get("MODTRACE_UID"), get("MODTRACE_PID")),
            (Some("net-pf-38"), Some("1000"), Some("9"))
        );
        assert_eq!((get("MODTRACE_EXE"), get("MODTRACE_UNIT")), (Some("/usr/bin/python3.11"), Some("session-2.scope")));
        assert_eq!(get("MODTRACE_REPEATS"), Some("2"));
        assert_eq!(get("MODTRACE_SCOPE"), Some("session"));
        assert_eq!(get("MODTRACE_SCOPE_TEXT"), Some("login session session-2.scope of uid 1000"));
        assert_eq!(
            (get("MODTRACE_FILE"), get("MODTRACE_MODULE")),
            (None, None),
            "unknown fields are left out, not empty"
        );
    }
}
