//! Man pages and shell completions, rendered from the clap definitions in
//! [`super::Cli`]: `modtrace generate-docs --man DIR --completions DIR` (hidden;
//! the Debian package build runs it on the release binary).
//!
//! What clap does not know about a command (its exit status, the files it
//! reads and writes, examples, related pages) is in [`PAGES`]: it closes
//! `--help` as plain text, and becomes the EXIT STATUS, FILES, EXAMPLES and SEE
//! ALSO sections of the man page.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Arg, ArgGroup};
use clap_complete::Shell;
use clap_mangen::roff::{bold, italic, roman, Inline, Roff};
use clap_mangen::Man;

/// Man pages go to section 8: system administration commands.
pub const SECTION: &str = "8";

#[derive(clap::Args, Debug)]
#[command(group(ArgGroup::new("what").required(true).multiple(true).args(["man", "completions"])))]
pub struct Args {
    /// Write one man page per command (modtrace.8, modtrace-trace.8, ...) into DIR.
    #[arg(long, value_name = "DIR")]
    pub man: Option<PathBuf>,
    /// Write the bash, zsh and fish completions (modtrace.bash, _modtrace,
    /// modtrace.fish) into DIR.
    #[arg(long, value_name = "DIR")]
    pub completions: Option<PathBuf>,
    /// The date in the man pages' footer (YYYY-MM-DD); none by default, so that
    /// the same sources give the same pages.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub date: Option<String>,
}

fn parse_date(text: &str) -> Result<String, String> {
    let ok = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    if ok {
        Ok(text.to_string())
    } else {
        Err("expected YYYY-MM-DD".to_string())
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &args.man {
        for page in man_pages(args.date.as_deref().unwrap_or(""))? {
            let path = write(dir, &page.file_name, &page.roff)?;
            println!("{}", path.display());
        }
    }
    if let Some(dir) = &args.completions {
        for (name, script) in completions()? {
            let path = write(dir, name, &script)?;
            println!("{}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write(dir: &Path, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(name);
    fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// What a man page says beyond clap's synopsis, description and options.
#[derive(Debug)]
pub struct Page {
    /// The subcommand, or "" for modtrace itself.
    pub command: &'static str,
    /// (status, meaning)
    pub exit_status: &'static [(&'static str, &'static str)],
    /// (path, what it is)
    pub files: &'static [(&'static str, &'static str)],
    /// (command line, what it does)
    pub examples: &'static [(&'static str, &'static str)],
    /// Other pages, as `name(section)`, and documents.
    pub see_also: &'static [&'static str],
}

const PROFILE: (&str, &str) = (
    "/var/lib/modtrace/profile.json",
    "The profile: every module learned, with its causes (JSON). The format is described in \
     /usr/share/doc/modtrace/docs/profile.md.",
);
const ERROR: (&str, &str) = ("1", "An error, explained on standard error as \"modtrace: ...\".");
const USAGE: (&str, &str) = ("2", "The command line could not be parsed (an unknown option, a missing argument).");
const DOCS: &str = "/usr/share/doc/modtrace/";

pub const PAGES: &[Page] = &[
    Page {
        command: "",
        exit_status: &[
            ("0", "Success; each command's page says what that means for it."),
            (
                "1",
                "An error, explained on standard error as \"modtrace: ...\"; also a negative answer: \
                 modules differ (diff), blockers found (check), the lock refused (lock).",
            ),
            (
                "2",
                "The command line could not be parsed; also diff's \"could not compare\" and generate's \
                 \"some entries resolve to nothing\".",
            ),
        ],
        files: &[
            PROFILE,
            (
                "/var/lib/modtrace/generated/",
                "What modtrace generate writes by default: the lock-down files, laid out as under /, to review \
                 before copying them to /etc.",
            ),
            (
                "/lib/systemd/system/modtrace-learn.service",
                "Runs modtrace learn from early boot on, at every boot while enabled. Installed disabled.",
            ),
            ("/etc/default/modtrace", "MODTRACE_LEARN_DURATION: how long modtrace-learn.service learns (default 10m)."),
            (
                "/etc/systemd/system/modtrace-lock.service",
                "The lock unit, once installed from modtrace generate's output: loads the needed modules, then sets \
                 kernel.modules_disabled=1. Boot with modtrace.nolock on the kernel command line to skip it once.",
            ),
            (
                "/etc/kernel/postinst.d/modtrace",
                "Regenerates the lock-down files for each newly installed kernel while modtrace-lock.service is \
                 enabled; it never fails the kernel's installation.",
            ),
            (DOCS, "README.md, docs/lockdown.md (the lock points, backing out), docs/profile.md (the profile's format)."),
        ],
        examples: &[
            ("sudo modtrace trace --duration 30s", "Show every module request and load for 30 seconds, with who caused it."),
            ("sudo modtrace learn --duration 10m && modtrace report", "Learn for ten minutes, then read the profile."),
            ("sudo systemctl enable modtrace-learn.service", "Learn from early boot on, at every boot until disabled."),
            (
                "sudo modtrace generate && sudo modtrace check",
                "Write the lock-down files for review, and check that nothing known would break.",
            ),
        ],
        see_also: &[
            "modtrace-trace(8)",
            "modtrace-learn(8)",
            "modtrace-report(8)",
            "modtrace-snapshot(8)",
            "modtrace-diff(8)",
            "modtrace-generate(8)",
            "modtrace-check(8)",
            "modtrace-lock(8)",
            "modtrace-guard(8)",
            "modprobe(8)",
            "modules-load.d(5)",
            "systemd-modules-load.service(8)",
            "proc(5)",
            DOCS,
        ],
    },
    Page {
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
    },
    Page {
        command: "learn",
        exit_status: &[
            ("0", "Learning ended and the profile was saved (also after Ctrl-C or SIGTERM)."),
            (
                "1",
                "Learning could not start or the profile could not be saved: not root, a profile that cannot be read \
                 (it is left as it is), another learn holding the lock. What was learned before a tracing error is \
                 saved first.",
            ),
            USAGE,
        ],
        files: &[
            PROFILE,
            ("/var/lib/modtrace/profile.json.bak", "The previous profile, kept by --fresh."),
            ("/var/lib/modtrace/profile.json.lock", "Held (flock) while learning, with the learner's pid."),
            (
                "/lib/systemd/system/modtrace-learn.service",
                "Runs modtrace learn --quiet from early boot on while enabled; installed disabled.",
            ),
            ("/etc/default/modtrace", "MODTRACE_LEARN_DURATION=10m: how long modtrace-learn.service learns (30s, 2h, 1d)."),
        ],
        examples: &[
            ("sudo modtrace learn --duration 10m", "Learn for ten minutes, adding to the profile."),
            ("sudo modtrace learn --fresh --duration 1h", "Start a new profile; the old one is kept as profile.json.bak."),
            (
                "sudo systemctl enable modtrace-learn.service",
                "Learn at every boot from now on; systemctl disable modtrace-learn.service stops that.",
            ),
        ],
        see_also: &["modtrace(8)", "modtrace-report(8)", "modtrace-trace(8)", "modtrace-generate(8)"],
    },
    Page {
        command: "report",
        exit_status: &[("0", "The report was printed."), ERROR, USAGE],
        files: &[PROFILE],
        examples: &[
            ("modtrace report", "Each top-level module, what caused it, and its dependencies."),
            ("modtrace report --by unit", "What each systemd unit needs."),
            ("modtrace report --format markdown > modules.md", "The same as a Markdown table, for an issue or a wiki."),
        ],
        see_also: &["modtrace(8)", "modtrace-learn(8)", "modtrace-generate(8)"],
    },
    Page {
        command: "snapshot",
        exit_status: &[("0", "The snapshot was written."), ERROR, USAGE],
        files: &[("/proc/modules", "The modules loaded now.")],
        examples: &[
            ("modtrace snapshot --out before.json", "Record what is loaded before a change."),
            (
                "modtrace snapshot --out after.json && modtrace diff before.json after.json",
                "After the change (an upgrade, a reboot): what changed.",
            ),
        ],
        see_also: &["modtrace(8)", "modtrace-diff(8)", "lsmod(8)"],
    },
    Page {
        command: "diff",
        exit_status: &[
            ("0", "The same modules."),
            ("1", "The modules differ."),
            ("2", "Trouble: a file could not be read or understood (explained on standard error), or a usage error."),
        ],
        files: &[PROFILE],
        examples: &[
            ("modtrace diff before.json after.json", "Modules loaded or unloaded between two snapshots."),
            (
                "modtrace diff /var/lib/modtrace/profile.json /proc/modules",
                "What is loaded now that the profile has not seen, and what it knows that is not loaded.",
            ),
        ],
        see_also: &["modtrace(8)", "modtrace-snapshot(8)", "diff(1)"],
    },
    Page {
        command: "generate",
        exit_status: &[
            ("0", "The files were written."),
            (
                "1",
                "An error: no profile, names in the profile that are not valid module or unit names (nothing is \
                 written), a file that could not be written; or the files were written but a guard running from \
                 this profile on this kernel could not be refreshed (the command to run is printed).",
            ),
            (
                "2",
                "The files were written, but some of the profile's entries resolve to nothing in the kernel (listed \
                 on standard error and in the files); --allow-unresolved makes this 0. Also a usage error.",
            ),
        ],
        files: &[
            PROFILE,
            ("/var/lib/modtrace/generated/", "Where the files go by default (--out), laid out as under /."),
            ("/etc/modules-load.d/modtrace.conf", "The top-level modules, for systemd-modules-load."),
            ("/etc/systemd/system/UNIT.d/modtrace-modules.conf", "A unit's drop-in: the modules it needs."),
            ("/etc/systemd/system/modtrace-lock.service", "The lock unit: loads the modules, then locks."),
            ("/etc/modprobe.d/modtrace-deny.conf", "With --deny: every other module of the kernel refused."),
            (
                "/etc/kernel/postinst.d/modtrace",
                "Runs modtrace generate --kernel KVER --out / for each newly installed kernel while \
                 modtrace-lock.service is enabled.",
            ),
            (
                "/sys/fs/bpf/modtrace/guard/",
                "A running guard (modtrace guard): when it runs from the same profile on the kernel the files are \
                 for, generate replaces its policy if what the profile allows changed.",
            ),
        ],
        examples: &[
            ("sudo modtrace generate", "Write the files under /var/lib/modtrace/generated, to review."),
            (
                "sudo cp -r /var/lib/modtrace/generated/etc/. /etc/ && sudo systemctl daemon-reload && sudo systemctl enable modtrace-lock.service",
                "Install them; the next boot locks module loading.",
            ),
            (
                "sudo modtrace generate --lock-point early --kernel 6.1.0-28-amd64",
                "Lock before sysinit.target, with the profile resolved in another installed kernel.",
            ),
        ],
        see_also: &[
            "modtrace(8)",
            "modtrace-check(8)",
            "modtrace-lock(8)",
            "modules-load.d(5)",
            "modprobe.d(5)",
            "systemd.unit(5)",
            "systemd-modules-load.service(8)",
            "/usr/share/doc/modtrace/docs/lockdown.md",
        ],
    },
    Page {
        command: "check",
        exit_status: &[
            ("0", "Nothing found that would break after the lock."),
            ("1", "Blockers were found (listed), or an error (explained on standard error)."),
            USAGE,
        ],
        files: &[
            PROFILE,
            ("/etc/systemd/system/modtrace-lock.service", "The installed lock unit: its lock point, kernel and module list."),
            ("/proc/modules", "The modules loaded now."),
            ("/lib/modules/$(uname -r)/", "The running kernel's module index."),
        ],
        examples: &[
            ("sudo modtrace check", "Before enabling modtrace-lock.service, and after changing the hardware or the services."),
            ("sudo modtrace check --lock-point early", "The same, for a lock before sysinit.target."),
        ],
        see_also: &["modtrace(8)", "modtrace-generate(8)", "modtrace-lock(8)"],
    },
    Page {
        command: "lock",
        exit_status: &[
            (
                "0",
                "Locked (with --dry-run: the lock would go ahead), or already locked with every required module loaded.",
            ),
            (
                "1",
                "Refused (check found blockers, or a required module did not load), already locked with a required \
                 module missing, or an error.",
            ),
            USAGE,
        ],
        files: &[
            PROFILE,
            ("/proc/sys/kernel/modules_disabled", "Written 1 to lock; reads 1 once locked, until the next boot."),
        ],
        examples: &[
            ("sudo modtrace lock --dry-run", "Every step, and whether the lock would go ahead; nothing changes."),
            ("sudo modtrace lock", "Load what the profile needs, then lock module loading until the next boot."),
        ],
        see_also: &["modtrace(8)", "modtrace-check(8)", "modtrace-generate(8)", "proc(5)"],
    },
    Page {
        command: "review",
        exit_status: &[("0", "The pass ended (every item answered, skipped, or quit); the decisions are saved."), ERROR, USAGE],
        files: &[PROFILE],
        examples: &[
            ("sudo modtrace review", "Decide, one module at a time, what only untrusted processes asked for."),
            ("sudo modtrace review --profile ./p.json", "The same for another profile."),
        ],
        see_also: &["modtrace(8)", "modtrace-allow(8)", "modtrace-deny(8)", "modtrace-report(8)", "modinfo(8)"],
    },
    Page {
        command: "allow",
        exit_status: &[("0", "The decision is recorded in the profile."), ERROR, USAGE],
        files: &[PROFILE],
        examples: &[
            ("sudo modtrace allow net-pf-5", "Accept the AppleTalk socket requests an unprivileged user made."),
            ("sudo modtrace allow vfat", "Accept the module vfat, whoever asked for it."),
        ],
        see_also: &["modtrace(8)", "modtrace-deny(8)", "modtrace-review(8)", "modtrace-generate(8)"],
    },
    Page {
        command: "deny",
        exit_status: &[("0", "The decision is recorded in the profile."), ERROR, USAGE],
        files: &[PROFILE],
        examples: &[
            ("sudo modtrace deny algif_aead", "Never list algif_aead; generate --deny refuses it."),
            ("sudo modtrace deny net-pf-38", "Never honour the kernel's requests for net-pf-38."),
        ],
        see_also: &["modtrace(8)", "modtrace-allow(8)", "modtrace-review(8)", "modprobe.d(5)"],
    },
    Page {
        command: "guard",
        exit_status: &[
            (
                "0",
                "start: the policy is in force (pinned); status: a guard is running; stop: none is running any more; \
                 refresh: the guard is in line with its profile and the module files (or none runs, or the kernel \
                 named is not the running one).",
            ),
            (
                "1",
                "The guard could not start (not root, no kernel BTF, bpf missing from the active LSMs, \
                 lockdown=confidentiality, a profile that cannot be read) or another error; the reason and the fix \
                 are printed. A policy already in force stays as it was. refresh: the running guard could not be \
                 brought in line (its state file is gone, its profile cannot be read); the command to run is printed.",
            ),
            ("3", "status: no guard is running."),
            USAGE,
        ],
        files: &[
            PROFILE,
            ("/sys/fs/bpf/modtrace/guard/", "The pinned programs (link-*) and maps: the guard in force."),
            ("/run/modtrace/guard.json", "What guard start enforced, and since when, for guard status."),
            ("/sys/kernel/security/lsm", "The active LSMs; bpf must be among them."),
            ("/lib/systemd/system/modtrace-guard.service", "Starts the guard at boot and runs guard log; installed disabled."),
            (
                "/etc/kernel/postinst.d/modtrace",
                "Runs modtrace guard refresh --kernel KVER after a kernel package is installed: an upgrade of the \
                 running kernel replaces module files, which the guard knows by inode.",
            ),
        ],
        examples: &[
            ("sudo modtrace guard start", "Complain mode: allow everything, report what enforce would refuse."),
            ("sudo modtrace guard start --mode enforce", "Refuse every module outside the profile; starting again replaces the policy."),
            (
                "sudo modtrace guard start --mode enforce --sealed",
                "Enforce, sealed until the next boot: not even root can stop it or change its policy before then.",
            ),
            ("journalctl MODTRACE_DECISION=denied", "Who tried to load what, and why it was refused."),
            ("journalctl -t modtrace-guard -o json", "Every decision, with its MODTRACE_* fields."),
            ("sudo modtrace guard refresh", "After the profile changed or module files were replaced: same profile and mode, new policy."),
            ("sudo modtrace guard stop", "Back out: detach the programs."),
        ],
        see_also: &["modtrace(8)", "modtrace-learn(8)", "modtrace-lock(8)", "journalctl(1)"],
    },
];

/// The page of `command` ("" for modtrace itself).
pub fn page(command: &str) -> Option<&'static Page> {
    PAGES.iter().find(|p| p.command == command)
}

/// `--help`'s closing text for a page.
pub fn after_help(page: &Page) -> String {
    let mut out = String::new();
    let mut section = |title: &str, items: &[(&str, &str)]| {
        if items.is_empty() {
            return;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(title);
        out.push_str(":\n");
        for (term, text) in items {
            if term.len() <= 4 {
                out.push_str(&format!("  {term:<4}{text}\n"));
            } else {
                out.push_str(&format!("  {term}\n          {text}\n"));
            }
        }
    };
    section("Exit status", page.exit_status);
    section("Files", page.files);
    section("Examples", page.examples);
    if !page.see_also.is_empty() {
        out.push_str(&format!("\nSee also: {}\n", page.see_also.join(", ")));
    }
    out
}

/// `cmd` with every page's [`after_help`] as its `--help` closing text.
pub fn with_after_help(mut cmd: clap::Command) -> clap::Command {
    for page in PAGES {
        let text = after_help(page);
        if page.command.is_empty() {
            cmd = cmd.after_long_help(text);
        } else {
            cmd = cmd.mut_subcommand(page.command, |sub| sub.after_long_help(text));
        }
    }
    cmd
}

/// One rendered man page.
#[derive(Debug, Clone)]
pub struct ManPage {
    /// The command's page name: "modtrace", "modtrace-trace", ...
    pub name: String,
    /// "modtrace-trace.8"
    pub file_name: String,
    pub roff: String,
}

/// The commands that get a page: modtrace itself, then each subcommand a user
/// can call (not the hidden ones, not `help`), built so that each knows its
/// full name ("modtrace-trace", usage "modtrace trace").
pub fn documented_commands() -> Vec<clap::Command> {
    let mut root = super::command().disable_help_subcommand(true);
    root.build();
    let subs: Vec<clap::Command> = root.get_subcommands().filter(|s| !s.is_hide_set()).cloned().collect();
    let mut all = vec![root];
    all.extend(subs);
    all
}

/// Every man page: modtrace(8) and one per subcommand.
pub fn man_pages(date: &str) -> anyhow::Result<Vec<ManPage>> {
    let mut pages = Vec::new();
    for (i, cmd) in documented_commands().into_iter().enumerate() {
        let command = if i == 0 { "" } else { cmd.get_name() };
        let extra = page(command).with_context(|| format!("no page for the command {:?}", cmd.get_name()))?;
        pages.push(render_man(cmd, extra, date)?);
    }
    Ok(pages)
}

/// Renders one page: clap_mangen's title, name, synopsis, options and command
/// list; the description with its lists as tagged paragraphs; then the
/// page's EXIT STATUS, FILES, EXAMPLES and SEE ALSO.
pub fn render_man(cmd: clap::Command, extra: &Page, date: &str) -> anyhow::Result<ManPage> {
    let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name()).to_string();
    let description = cmd.get_long_about().or_else(|| cmd.get_about()).map(|s| s.to_string()).unwrap_or_default();
    let has_options = cmd.get_arguments().any(|a| !a.is_hide_set());
    let has_commands = cmd.get_subcommands().any(|s| !s.is_hide_set());
    // The closing text is rendered as proper sections below, the version is in
    // the footer.
    let cmd = cmd.after_help(None).after_long_help(None).subcommand_help_heading("COMMANDS");
    let man = Man::new(cmd).section(SECTION);

    // The title line by hand: clap_mangen drops an empty date argument, which
    // shifts the source and manual into the wrong fields.
    let mut out = Roff::new().render().into_bytes();
    out.extend_from_slice(title_line(&name, date).as_bytes());
    let mut part = Vec::new();
    man.render_name_section(&mut part)?;
    push_part(&mut out, &part);
    let mut part = Vec::new();
    man.render_synopsis_section(&mut part)?;
    push_part(&mut out, &part);

    let mut roff = Roff::new();
    roff.control("SH", ["DESCRIPTION"]);
    description_roff(&mut roff, &description);
    push_part(&mut out, roff.render().as_bytes());

    if has_options {
        let mut part = Vec::new();
        man.render_options_section(&mut part)?;
        push_part(&mut out, &part);
    }
    if has_commands {
        let mut part = Vec::new();
        man.render_subcommands_section(&mut part)?;
        push_part(&mut out, &part);
    }
    push_part(&mut out, sections_roff(extra).as_bytes());
    let roff = String::from_utf8(out).context("a man page that is not UTF-8")?;
    Ok(ManPage { file_name: format!("{name}.{SECTION}"), name, roff })
}

/// `.TH "MODTRACE\-TRACE" 8 "DATE" "modtrace VERSION" "System Manager's Manual"`
pub fn title_line(name: &str, date: &str) -> String {
    let quoted = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "").replace('-', "\\-"));
    format!(
        ".TH {} {SECTION} {} {} {}\n",
        quoted(&name.to_uppercase()),
        quoted(date),
        quoted(&format!("modtrace {}", env!("CARGO_PKG_VERSION"))),
        quoted(MANUAL)
    )
}

/// The manual section 8 pages belong to, as man-db names it.
pub const MANUAL: &str = "System Manager's Manual";

/// Appends a rendered part without the string definitions every
/// [`Roff::to_writer`] starts with (the first part keeps them).
fn push_part(out: &mut Vec<u8>, part: &[u8]) {
    let preamble = Roff::new().render();
    out.extend_from_slice(part.strip_prefix(preamble.as_bytes()).unwrap_or(part));
}

/// A long description as roff: blank lines separate paragraphs; a block whose
/// lines are all indented is a list: "  TERM  TEXT" items become tagged
/// paragraphs, other indented lines bullets.
pub fn description_roff(roff: &mut Roff, text: &str) {
    let mut first = true;
    for block in text.split("\n\n").map(|b| b.trim_matches('\n')).filter(|b| !b.trim().is_empty()) {
        let lines: Vec<&str> = block.lines().collect();
        if lines.iter().all(|l| l.starts_with("  ")) {
            for line in lines {
                let line = line.trim();
                match line.split_once("  ") {
                    Some((term, text)) => {
                        roff.control("TP", []);
                        roff.text([bold(term.trim())]);
                        roff.text([roman(text.trim())]);
                    }
                    None => {
                        roff.control("IP", ["\\(bu", "2"]);
                        roff.text([roman(line)]);
                    }
                }
            }
        } else {
            if !first {
                roff.control("PP", []);
            }
            let joined: Vec<&str> = lines.iter().map(|l| l.trim()).collect();
            roff.text([roman(joined.join(" "))]);
        }
        first = false;
    }
}

/// EXIT STATUS, FILES, EXAMPLES, SEE ALSO.
pub fn sections_roff(page: &Page) -> String {
    let mut roff = Roff::new();
    let tagged = |roff: &mut Roff, title: &str, items: &[(&str, &str)], tag: fn(&str) -> Inline| {
        if items.is_empty() {
            return;
        }
        roff.control("SH", [title]);
        for (term, text) in items {
            roff.control("TP", []);
            roff.text([tag(term)]);
            roff.text([roman(*text)]);
        }
    };
    tagged(&mut roff, "EXIT STATUS", page.exit_status, |s| bold(s));
    tagged(&mut roff, "FILES", page.files, |s| italic(s));
    tagged(&mut roff, "EXAMPLES", page.examples, |s| bold(s));
    if !page.see_also.is_empty() {
        roff.control("SH", ["SEE ALSO"]);
        let mut line = Vec::new();
        for (i, reference) in page.see_also.iter().enumerate() {
            if i > 0 {
                line.push(roman(", "));
            }
            match reference.split_once('(') {
                Some((name, section)) => {
                    line.push(bold(name));
                    line.push(roman(format!("({section}")));
                }
                None => line.push(italic(*reference)),
            }
        }
        roff.text(line);
    }
    roff.render()
}

/// The shells completions are written for, with their file names.
pub const SHELLS: &[(Shell, &str)] =
    &[(Shell::Bash, "modtrace.bash"), (Shell::Zsh, "_modtrace"), (Shell::Fish, "modtrace.fish")];

/// (file name, script) for each shell in [`SHELLS`].
pub fn completions() -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut out = Vec::new();
    for (shell, file) in SHELLS {
        let mut cmd = visible(&super::command());
        let mut buf = Vec::new();
        clap_complete::generate(*shell, &mut cmd, "modtrace", &mut buf);
        out.push((*file, String::from_utf8(buf).context("a completion script that is not UTF-8")?));
    }
    Ok(out)
}

/// `cmd` without its hidden arguments and subcommands (the completion
/// generators offer everything they find): name, texts, version, the visible
/// arguments and, recursively, the visible subcommands.
pub fn visible(cmd: &clap::Command) -> clap::Command {
    let mut out = clap::Command::new(cmd.get_name().to_string());
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    if let Some(about) = cmd.get_long_about() {
        out = out.long_about(about.clone());
    }
    if let Some(version) = cmd.get_version() {
        out = out.version(version.to_string());
    }
    let args: Vec<Arg> = cmd.get_arguments().filter(|a| !a.is_hide_set()).cloned().collect();
    out = out.args(args);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        out = out.subcommand(visible(sub));
    }
    out
}

#[cfg(test)]
mod tests;
