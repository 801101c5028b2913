//! `modtrace trace`: stream every module request, load and unload as it happens.

use std::{process::ExitCode, time::Duration};
use super::docs::{Page, USAGE};

use crate::trace::stream;

/// `--help`'s long text, and the man page's description.
pub const ABOUT: &str = "\
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

/// The man page's exit status, files, examples and references.
pub const PAGE: Page = Page {
    command: "trace",
    exit_status: &[
        ("0", "Tracing ended: Ctrl-C, SIGTERM, the end of --duration, or standard output was closed."),
        (
            "1",
            "The probes could not be loaded or attached (not root, a kernel without loadable module support, \
             lockdown=confidentiality), or another error; the reason is printed.",
        ),
        USAGE,
    ],
    files: &[
        ("/sys/kernel/tracing", "tracefs, where the tracepoints are found; modtrace mounts it when missing."),
        ("/sys/kernel/btf/vmlinux", "Kernel BTF; without it, parent process fields come from /proc only."),
        ("/lib/modules/$(uname -r)/", "The module index (modules.alias, modules.dep) that resolves requests."),
    ],
    examples: &[
        ("sudo modtrace trace", "Follow module loads until Ctrl-C."),
        (
            "sudo modtrace trace --json --duration 1m > loads.jsonl",
            "One JSON object per event, for one minute, for scripts (jq).",
        ),
    ],
    see_also: &["modtrace(8)", "modtrace-learn(8)", "modprobe(8)", "lsmod(8)"],
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// One JSON object per line instead of human-readable lines.
    #[arg(long)]
    pub json: bool,
    /// Stop after this long (30s, 10m, 2h, 1d); default: until Ctrl-C or SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 30s, 10m, 2h, 1d)"))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let summary = stream::stream(args.json, args.duration)?;
    stream::closing(&summary).print();
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_the_docs_say() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
        assert!(parse_duration("soon").unwrap_err().contains("examples"));
    }
}
