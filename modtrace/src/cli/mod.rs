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

pub mod allow;
pub mod check;
pub mod deny;
pub mod diff;
pub mod docs;
pub mod generate;
pub mod guard;
pub mod learn;
pub mod lock;
pub mod report;
pub mod review;
pub mod snapshot;
pub mod trace;

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

const TRACE_ABOUT: &str = "\
Prints one line per event until Ctrl-C, SIGTERM or the end of --duration:

  request  the kernel asks for an alias (request_module, e.g. net-pf-5 for a socket of family 5): the alias, the requesting process (pid, command, parent, uid, executable, cgroup, unit), and the modules the alias resolves to; none means the request will fail
  load  an init_module or finit_module call returns: the loader, the syscall, its flags and parameters, and the return code (EPERM after a lock)
  loaded  a module is linked into the kernel: its taint flags, the loader and the cause
  unloaded  a module is removed, and by which process

The cause of a loaded module is one of: request (the kernel's modprobe helper loaded \
it for a process that asked for an alias; the cause names that process, its \
executable and unit, and for a dependency the modules that needed it), explicit (a \
process called the syscall itself: modprobe, insmod, systemd-modules-load), udev \
(systemd-udevd loaded it for a device) or unknown (a helper loaded it and no request \
explains it: modtrace says so rather than guess).

Requests, loads and failed loads travel through separate ring buffers, so a process \
that loops on a failing load cannot push a real load out; repeats of one failure by \
one process within a second are folded into a count. At the end modtrace prints on \
standard error how many events it saw and how many the kernel dropped. trace writes \
no file.";

const LEARN_ABOUT: &str = "\
Traces like modtrace trace while the machine does its work, and merges every module \
that was loaded, with its causes, into the profile (by default \
/var/lib/modtrace/profile.json): counts add up, and each run is recorded as a \
session. Modules already loaded when learning starts are recorded as preloaded, with \
the source that explains them (a modules-load.d file or modules_load= argument, the \
initramfs's configuration, PID 1's journal, a trusted module's dependency, a device \
present now), or \"before learning\": cause unknown, which needs review. To learn \
their causes, learn from boot (modtrace-learn.service).

The profile is replaced atomically, saved as a checkpoint at most once a minute \
while something changes, and saved at the end, also after Ctrl-C or SIGTERM. A \
profile that cannot be read is refused, never overwritten. While learning, modtrace \
holds PATH.lock; a second learn on the same profile refuses to start.

modtrace-learn.service runs modtrace learn from early boot on, before \
systemd-modules-load and udev's coldplug, so that the boot's own loads are \
attributed too. It is installed disabled: enable it for a few boots (the hardware \
you use plugged in, your services started), then disable it.";

const REPORT_ABOUT: &str = concat!(
    "Shows one row per top-level module (no other module in the profile depends on it: \
the ones to list, since their dependencies follow by themselves, also after a \
kernel upgrade) with what caused it to load (the unit with its scope, the uid, the \
process), and its dependencies folded under it. --by unit answers the other \
question: what does a given systemd unit need? A user's or a container's unit is \
shown apart from the host's unit of the same name. Modules that need review, that \
an admin denied and that the site's modprobe.d disables have sections of their \
own, with the command that accepts each one waiting for review.\n\n",
    trust_text!()
);

const SNAPSHOT_ABOUT: &str = "\
Writes the list of loaded modules (/proc/modules) with the kernel release, host name \
and time, as JSON or as text, to compare later with modtrace diff (instead of lsmod \
| sort > before).";

const DIFF_ABOUT: &str = "\
Compares two lists of modules: snapshots (JSON or text, from modtrace snapshot), \
plain /proc/modules or lsmod output, or profiles, in any combination. Modules only \
in A and only in B are listed; where a profile knows why a module was loaded (A or B \
when they are profiles, or --profile), the cause is shown.";

const GENERATE_ABOUT: &str = concat!(
    "\
Reads the profile and writes, under --out and in the root file system's layout, the \
files that make the lock-down, printing every file it wrote:

  etc/modules-load.d/modtrace.conf  the top-level modules, one a line, for systemd-modules-load (their dependencies follow through modules.dep)
  etc/systemd/system/UNIT.d/modtrace-modules.conf  for each unit whose processes caused a load: Wants= and After=modprobe@NAME.service for each module it needs
  etc/systemd/system/modtrace-lock.service  loads the top-level modules, then writes 1 to /proc/sys/kernel/modules_disabled; not enabled by generate
  etc/modprobe.d/modtrace-deny.conf  with --deny only: refuses, and logs, every module of the kernel the profile does not need

Every file starts with a header naming modtrace's version, the command, the profile \
and kernel it was made from, and how to undo it; every listed module has a comment \
with its reasons. Drop-ins modtrace wrote earlier for units that no longer need one \
are removed. Names from the profile that are not valid module or unit names are \
refused, and nothing is written.

With --kernel, each cause in the profile is resolved again in that kernel's module \
index (modules.alias, modules.dep, modules.builtin): a request by its alias, a udev \
load by the module loaded for the device while the kernel has it (else by the \
device's modalias), anything else by the module's name. A module now \
built in is not listed; what resolves to nothing is reported as unresolved.

To install after review: cp -r /var/lib/modtrace/generated/etc/. /etc/, then \
systemctl daemon-reload and systemctl enable modtrace-lock.service. \
/usr/share/doc/modtrace/docs/lockdown.md explains the lock points and how to back out.\n\n",
    trust_text!(),
    " Modules the site's modprobe.d disables (install NAME /bin/false, a disabled-* \
script, blacklist for loads by alias) and modules an admin denied are not listed \
either; all of them are named in the comments of modules-load.d/modtrace.conf. \
No drop-in is written for a user's or a container's unit."
);

const CHECK_ABOUT: &str = concat!(
    "\
Reads the profile and the running system, and lists what would break if module \
loading were locked at the lock point (the installed modtrace-lock.service's, or \
--lock-point):

  a module loaded now that the profile neither lists nor needs as a dependency: after a locked boot nothing would load it
  a profile entry this kernel cannot resolve (a module renamed, removed or an alias gone)
  a request that would fail after the lock: its alias resolves to no module, or to none loaded before the lock
  a unit whose modules nothing loads before the lock point
  an installed modtrace-lock.service for this kernel that does not load a module the profile needs (regenerate it)
  kernel events lost while learning

Requests that already failed while learning only warn. Shown as information: \
kernel.modules_disabled, kernel.modprobe, the kernel lockdown mode, \
module.sig_enforce and the active LSMs.\n\n\
Not blockers: what only untrusted processes asked for (listed under \"needs \
review\", with the command that accepts it), requests for a module the site's \
modprobe.d disables (a warning: denied by site policy), and modules an admin \
denied.\n\n",
    trust_text!()
);

const LOCK_ABOUT: &str = "\
Locks the running system now, as the late lock point would: runs the checks of \
modtrace check, loads each top-level module of the profile that is not loaded yet \
(modprobe), verifies that all of them are loaded (/proc/modules, built-in ones in \
/sys/module), then writes 1 to /proc/sys/kernel/modules_disabled.

It refuses, with the reasons, when check finds blockers or a required module does \
not load, unless --force. The lock cannot be undone: until the next reboot no module \
can be loaded or unloaded. Already locked: it says so.";

const REVIEW_ABOUT: &str = concat!(
    "Goes through the modules that only untrusted processes asked for, one at a time, \
showing what the module is (modinfo's description), who asked (uid, scope, unit, \
process), how often, and why that is not trusted, and asks: accept (list it), deny \
(never list it; generate --deny refuses it), skip (decide later) or quit. The \
decisions are written into the profile at the end, atomically and under the \
learner's lock, and are kept when learning merges new sessions in.\n\n",
    trust_text!()
);

const ALLOW_ABOUT: &str = "\
Records in the profile that NAME, a module or an alias the kernel requested \
(net-pf-5, fs-vfat), is accepted although only untrusted processes asked for it: \
generate lists it (a user's or a container's unit still gets no drop-in), check \
and lock load it. Names starting with '-' are refused. The decision is kept when \
learning merges new sessions in; modtrace deny NAME replaces it.";

const DENY_ABOUT: &str = "\
Records in the profile that NAME, a module or an alias, is denied: generate, check \
and lock never list it whoever asked for it, and generate --deny's modprobe.d file \
refuses the module. A module the profile does not know may be denied too. Names \
starting with '-' are refused. The decision is kept when learning merges new \
sessions in; modtrace allow NAME replaces it.";
const GUARD_ABOUT: &str = "\
Enforces the profile in the kernel with BPF LSM programs, while the profile's \
modules keep loading on demand: a request_module alias that leads to no module of \
the profile is refused before any modprobe starts; finit_module must read an \
allowed module's own file in the running kernel's module tree (identified by \
device and inode, so a copy elsewhere is refused whatever its name); \
init_module (an image from memory) is refused unless --allow-init-module. \
complain mode allows everything and reports what enforce would refuse.

The programs are pinned under /sys/fs/bpf/modtrace/guard, so they keep deciding \
after guard start returns; starting again replaces the policy atomically. Every \
decision is counted (guard status) and sent to the journal by guard log \
(modtrace-guard.service runs both), and shown by modtrace trace while it runs. \
guard stop detaches it. Root can always stop it: it is a policy against everyone \
else and against mistakes; kernel.modules_disabled=1 is the final freeze.";

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
    #[command(long_about = TRACE_ABOUT)]
    Trace(trace::Args),
    /// Trace for a while and add what was loaded, and why, to the profile.
    #[command(long_about = LEARN_ABOUT)]
    Learn(learn::Args),
    /// Show the profile: top-level modules, their causes and dependencies.
    #[command(long_about = REPORT_ABOUT)]
    Report(report::Args),
    /// Record the loaded modules (/proc/modules) to compare later.
    #[command(long_about = SNAPSHOT_ABOUT)]
    Snapshot(snapshot::Args),
    /// Compare two snapshots or profiles; exit 0 same, 1 different, 2 trouble.
    #[command(long_about = DIFF_ABOUT)]
    Diff(diff::Args),
    /// Write modules-load.d, unit drop-ins and a lock unit from the profile.
    #[command(long_about = GENERATE_ABOUT)]
    Generate(generate::Args),
    /// Say what would break if module loading were locked; exit 0 safe, 1 blockers.
    #[command(long_about = CHECK_ABOUT)]
    Check(check::Args),
    /// Load the needed modules, then set kernel.modules_disabled=1 now.
    #[command(long_about = LOCK_ABOUT)]
    Lock(lock::Args),
    /// Accept, deny or skip, one at a time, what only untrusted processes asked for.
    #[command(long_about = REVIEW_ABOUT)]
    Review(review::Args),
    /// Accept a module or alias that only untrusted processes asked for.
    #[command(long_about = ALLOW_ABOUT)]
    Allow(allow::Args),
    /// Never list a module (or honour an alias), whoever asks.
    #[command(long_about = DENY_ABOUT)]
    Deny(deny::Args),
    /// Enforce the profile in the kernel (BPF LSM): complain first, then enforce.
    #[command(long_about = GUARD_ABOUT)]
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
