//! modtrace's command line: the clap definitions of the program and its
//! subcommands, and the dispatch to each subcommand's `run` (one file per
//! subcommand: its clap arguments and its `run`).
//!
//! The definitions live here, in the library, so that the man pages and the
//! shell completions are rendered from exactly what the binary parses
//! ([`docs`], the hidden `modtrace generate-docs`).

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// What trust means, for every page that lists or holds back modules.
macro_rules! trust_text {
    () => {
        "A cause is trusted when root on the host caused it outside any container: a \
system unit, PID 1, udev, a kernel thread, a login session's root; a module \
already loaded when learning started only when a source explains it \
(modules-load.d, the initramfs, PID 1, a trusted module's dependency, a device \
present now). Anything else (an unprivileged uid, a user's own unit, a \
container, a uid or cgroup not known, a module loaded before learning whose \
cause is unknown) is not listed by generate, check or lock until accepted \
(modtrace review, modtrace allow)."
    };
}

pub mod allow;
pub mod check;
pub mod deny;
pub mod diff;
pub mod docs;
pub mod generate;
pub mod guard;
pub mod learn;
pub mod lock;
pub mod merge;
pub mod report;
pub mod review;
pub mod snapshot;
pub mod trace;

const LONG_ABOUT: &str = "\
modtrace watches, with eBPF, every way a kernel module gets into the kernel: \
init_module and finit_module calls (modprobe, insmod, systemd-modules-load, udev) \
and the requests the kernel makes by itself through its modprobe helper (for a \
socket of a new address family, a file system type, a crypto algorithm). It \
attributes each load to the process, executable and systemd unit that caused it.

From that evidence it builds a profile of the modules this machine needs, and turns \
the profile into a module lock-down: kernel.modules_disabled=1, set once everything \
needed is loaded, after which no module can be loaded or unloaded until the next boot.

The steps, each one reviewable:

  modtrace learn     trace while the machine does its work; add what loaded, and why, to the profile
  modtrace report    who needs which module
  modtrace generate  modules-load.d list, unit drop-ins and modtrace-lock.service, from the profile
  modtrace check     exit 0 when nothing found would break after the lock
  modtrace lock      lock the running system now (--dry-run shows every step)

trace, learn and lock need root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN, for the \
eBPF probes; lock loads modules and writes /proc/sys/kernel/modules_disabled); \
generate and check are run as root to read and write the system's files.";

/// Which kernel modules this machine needs, and who needs them.
#[derive(Parser, Debug)]
#[command(
    name = "modtrace",
    version,
    about = "Which kernel modules this machine needs, and who needs them",
    long_about = LONG_ABOUT
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Stream every module request, load and unload, with who caused it.
    #[command(long_about = trace::ABOUT)]
    Trace(trace::Args),
    /// Trace for a while and add what was loaded, and why, to the profile.
    #[command(long_about = learn::ABOUT)]
    Learn(learn::Args),
    /// Show the profile: top-level modules, their causes and dependencies.
    #[command(long_about = report::ABOUT)]
    Report(report::Args),
    /// Record the loaded modules (/proc/modules) to compare later.
    #[command(long_about = snapshot::ABOUT)]
    Snapshot(snapshot::Args),
    /// Compare two snapshots or profiles; exit 0 same, 1 different, 2 trouble.
    #[command(long_about = diff::ABOUT)]
    Diff(diff::Args),
    /// Write modules-load.d, unit drop-ins and a lock unit from the profile.
    #[command(long_about = generate::ABOUT)]
    Generate(generate::Args),
    /// Say what would break if module loading were locked; exit 0 safe, 1 blockers.
    #[command(long_about = check::ABOUT)]
    Check(check::Args),
    /// Load the needed modules, then set kernel.modules_disabled=1 now.
    #[command(long_about = lock::ABOUT)]
    Lock(lock::Args),
    /// Merge the profiles of several hosts into one fleet profile.
    #[command(long_about = merge::ABOUT)]
    Merge(merge::Args),
    /// Accept, deny or skip, one at a time, what only untrusted processes asked for.
    #[command(long_about = review::ABOUT)]
    Review(review::Args),
    /// Accept a module or alias that only untrusted processes asked for.
    #[command(long_about = allow::ABOUT)]
    Allow(allow::Args),
    /// Never list a module (or honour an alias), whoever asks.
    #[command(long_about = deny::ABOUT)]
    Deny(deny::Args),
    /// Enforce the profile in the kernel (BPF LSM): complain first, then enforce.
    #[command(long_about = guard::ABOUT)]
    Guard(guard::Args),
    /// Write the man pages and shell completions (packaging).
    #[command(hide = true)]
    GenerateDocs(docs::Args),
}

/// The whole command line as clap sees it, with each page's exit status,
/// files, examples and references as `--help`'s closing text.
pub fn command() -> clap::Command {
    docs::with_after_help(Cli::command())
}

/// Parses `args` (the program name first); a usage error, `--help` and
/// `--version` come back as clap's error, to print and exit with.
pub fn try_parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut cmd = command();
    let matches = cmd.try_get_matches_from_mut(args)?;
    Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
}

/// Parses the process's arguments; exits (status 2, 0 for --help) as clap does
/// when they do not parse.
pub fn parse() -> Cli {
    try_parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// Runs the subcommand. Its own status when it returns one (diff: 0 same, 1
/// different, 2 trouble; check: 1 blockers; ...); an error is printed as
/// `modtrace: ...` and exits 1.
pub fn dispatch(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Trace(args) => trace::run(args),
        Command::Learn(args) => learn::run(args),
        Command::Report(args) => report::run(args),
        Command::Snapshot(args) => snapshot::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Check(args) => check::run(args),
        Command::Lock(args) => lock::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Review(args) => review::run(args),
        Command::Allow(args) => allow::run(args),
        Command::Deny(args) => deny::run(args),
        Command::Guard(args) => guard::run(args),
        Command::GenerateDocs(args) => docs::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("modtrace: {}", error_text(&err));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes, each said once: many errors already name their
/// source in their own text, and `{:#}` would repeat it.
pub fn error_text(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}

#[cfg(test)]
mod error_text_tests {
    #[test]
    fn a_cause_already_in_the_message_is_not_said_twice() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let store = crate::profile::StoreError::Io { path: "/x/p.json.lock".into(), source: io };
        let text = super::error_text(&anyhow::Error::new(store));
        assert_eq!(text.matches("entity not found").count(), 1, "{text}");
        let wrapped = anyhow::anyhow!("inner cause").context("outer");
        assert_eq!(super::error_text(&wrapped), "outer: inner cause");
    }
}
