//! `cargo xtask deb`: the Debian package. Builds the release binary, renders
//! the man pages and shell completions with it (`modtrace generate-docs`, a
//! hidden subcommand: the definitions come from the binary that is packaged,
//! and xtask does not have to build modtrace's eBPF side as a library), then
//! runs cargo-deb with modtrace/Cargo.toml's `[package.metadata.deb]`.
//!
//! `cargo xtask deb --check` (and `cargo xtask test`) then inspects the
//! package: `dpkg-deb -I`/`-c`/`-e`, and `dpkg -x` into a scratch root where
//! the packaged binary runs and its man pages are rendered with man-db; the
//! maintainer scripts run against a scratch root through DPKG_ROOT.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use crate::check::{self, CheckFn};
use crate::harness::{cmd, paths};

/// The cargo-deb release `cargo xtask setup` installs (builds with rustc 1.85+).
pub const CARGO_DEB_VERSION: &str = "3.8.0";

/// Where the package's binary goes; the units and the kernel hook call it there.
const BINARY: &str = "/usr/sbin/modtrace";
const LEARN_UNIT: &str = "/lib/systemd/system/modtrace-learn.service";
const GUARD_UNIT: &str = "/lib/systemd/system/modtrace-guard.service";
const KERNEL_HOOK: &str = "/etc/kernel/postinst.d/modtrace";
const MAN_DIR: &str = "/usr/share/man/man8";
const INITRAMFS_HOOK: &str = "/usr/share/initramfs-tools/hooks/modtrace";
/// The initramfs's script that starts the probes; the system test's initramfs runs it too.
pub const INITRAMFS_SCRIPT: &str = "/usr/share/initramfs-tools/scripts/init-top/modtrace";
/// The dracut module: its module-setup.sh, the initramfs's unit (systemd inside) and hook (without).
const DRACUT_SETUP: &str = "/usr/lib/dracut/modules.d/99modtrace/module-setup.sh";
const DRACUT_UNIT: &str = "/usr/lib/dracut/modules.d/99modtrace/modtrace-early.service";
const DRACUT_HOOK: &str = "/usr/lib/dracut/modules.d/99modtrace/modtrace-early.sh";

/// Every file the package must have, with its mode as `dpkg-deb -c` shows it.
const EXPECTED_FILES: &[(&str, &str)] = &[
    (BINARY, "-rwxr-xr-x"),
    (LEARN_UNIT, "-rw-r--r--"),
    (GUARD_UNIT, "-rw-r--r--"),
    (KERNEL_HOOK, "-rwxr-xr-x"),
    ("/usr/share/man/man8/modtrace.8.gz", "-rw-r--r--"),
    ("/usr/share/bash-completion/completions/modtrace", "-rw-r--r--"),
    ("/usr/share/zsh/vendor-completions/_modtrace", "-rw-r--r--"),
    ("/usr/share/fish/vendor_completions.d/modtrace.fish", "-rw-r--r--"),
    ("/usr/share/doc/modtrace/README.md", "-rw-r--r--"),
    ("/usr/share/doc/modtrace/docs/lockdown.md", "-rw-r--r--"),
    ("/usr/share/doc/modtrace/docs/profile.md", "-rw-r--r--"),
    ("/usr/share/doc/modtrace/copyright", "-rw-r--r--"),
    // Orders early units after the learner while modtrace-learn.service is enabled.
    ("/lib/systemd/system-generators/modtrace-learn-generator", "-rwxr-xr-x"),
    ("/usr/share/doc/modtrace/changelog.Debian.gz", "-rw-r--r--"),
    // Learning from the initramfs on (while modtrace-learn.service is enabled).
    (INITRAMFS_HOOK, "-rwxr-xr-x"),
    (INITRAMFS_SCRIPT, "-rwxr-xr-x"),
    (DRACUT_SETUP, "-rwxr-xr-x"),
    (DRACUT_UNIT, "-rw-r--r--"),
    (DRACUT_HOOK, "-rwxr-xr-x"),
];

pub fn run(check_it: bool) -> Result<()> {
    let deb = build()?;
    if check_it {
        check(&deb)?;
    }
    println!("{}", deb.display());
    Ok(())
}

/// Builds target/debian/modtrace_VERSION-REVISION_ARCH.deb and returns its path.
pub fn build() -> Result<PathBuf> {
    let workspace = paths::workspace();
    let mut version = Command::new(paths::cargo());
    version.args(["deb", "--version"]);
    if cmd::output(&mut version).is_err() {
        bail!("cargo-deb is not installed: run `cargo xtask setup` (it installs cargo-deb {CARGO_DEB_VERSION})");
    }
    cmd::run(Command::new(paths::cargo()).current_dir(&workspace).args(["build", "--release", "-p", "modtrace"]))?;
    let binary = workspace.join("target/release/modtrace");
    ensure!(binary.exists(), "the build left no {}", binary.display());

    // The path modtrace/Cargo.toml's assets name (cargo-deb maps target/release).
    let docs = workspace.join("target/release/modtrace-docs");
    if docs.exists() {
        fs::remove_dir_all(&docs).with_context(|| format!("removing {}", docs.display()))?;
    }
    let mut generate = Command::new(&binary);
    generate.arg("generate-docs").arg("--man").arg(docs.join("man")).arg("--completions").arg(docs.join("completions"));
    if let Some(date) = commit_date(&workspace) {
        generate.args(["--date", &date]);
    }
    cmd::output(&mut generate)?;
    let pages = files_with_suffix(&docs.join("man"), ".8")?;
    ensure!(!pages.is_empty(), "generate-docs wrote no man page");
    // gzip -n: no name and time in the header, so the same page gives the same bytes.
    cmd::run(Command::new("gzip").args(["-9nf"]).args(&pages))?;

    let out_dir = workspace.join("target/debian");
    for old in files_with_suffix(&out_dir, ".deb").unwrap_or_default() {
        if old.file_name().is_some_and(|n| n.to_string_lossy().starts_with("modtrace_")) {
            fs::remove_file(&old)?;
        }
    }
    let mut cargo_deb = Command::new(paths::cargo());
    cargo_deb.current_dir(&workspace).args(["deb", "-p", "modtrace", "--no-build"]);
    eprintln!("+ {}", cmd::describe(&cargo_deb));
    let printed = cmd::output(&mut cargo_deb)?;
    let deb = printed.lines().rev().map(str::trim).find(|l| l.ends_with(".deb")).map(PathBuf::from);
    let Some(deb) = deb else { bail!("cargo deb printed no package path:\n{printed}") };
    ensure!(deb.is_file(), "cargo deb named {}, which does not exist", deb.display());
    Ok(deb)
}

/// The last commit's date (YYYY-MM-DD), for the man pages' footer.
fn commit_date(workspace: &Path) -> Option<String> {
    let mut git = Command::new("git");
    git.arg("-C").arg(workspace).args(["log", "-1", "--format=%cs"]);
    let date = cmd::output(&mut git).ok()?.trim().to_string();
    (date.len() == 10).then_some(date)
}

fn files_with_suffix(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.to_string_lossy().ends_with(suffix) {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

// ---------------------------------------------------------------------------
// Inspection

/// One line of `dpkg-deb -c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub mode: String,
    pub owner: String,
    pub size: u64,
    /// Absolute, without a trailing slash: "/usr/sbin/modtrace".
    pub path: String,
    pub link: Option<String>,
}

/// Parses `dpkg-deb -c` output:
/// `-rwxr-xr-x 0/0   4217328 2026-11-27 00:00 ./usr/sbin/modtrace`.
pub fn parse_contents(listing: &str) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for line in listing.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        ensure!(fields.len() >= 6, "not a dpkg-deb -c line: {line:?}");
        let size = fields[2].parse().with_context(|| format!("size in {line:?}"))?;
        let rest = fields[5..].join(" ");
        let (name, link) = match rest.split_once(" -> ") {
            Some((n, l)) => (n.to_string(), Some(l.to_string())),
            None => (rest, None),
        };
        let path = format!("/{}", name.trim_start_matches("./").trim_end_matches('/'));
        entries.push(Entry { mode: fields[0].to_string(), owner: fields[1].to_string(), size, path, link });
    }
    Ok(entries)
}

/// The fields of a control file (continuation lines joined with "\n").
pub fn parse_control(text: &str) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(key) = &last {
                let value: &mut String = fields.entry(key.clone()).or_default();
                value.push('\n');
                value.push_str(line.trim());
            }
        } else if let Some((key, value)) = line.split_once(':') {
            fields.insert(key.trim().to_string(), value.trim().to_string());
            last = Some(key.trim().to_string());
        }
    }
    fields
}

/// The names under "Commands:" in a clap help text, but `help`.
pub fn help_commands(help: &str) -> Vec<String> {
    section_lines(help, "Commands:")
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// The options (`--json`, `-q`) and arguments (`<A>`) a clap `-h` text lists.
pub fn help_options(help: &str) -> Vec<String> {
    let mut found = Vec::new();
    for heading in ["Arguments:", "Options:"] {
        for line in section_lines(help, heading) {
            let spec = line.trim().split("  ").next().unwrap_or("");
            for token in spec.split([',', ' ']).map(str::trim).filter(|t| !t.is_empty()) {
                let is_option = token.starts_with('-') && token.len() > 1;
                let is_argument = heading == "Arguments:" && token.starts_with('<') && token.ends_with('>');
                if is_option || is_argument {
                    found.push(token.to_string());
                }
            }
        }
    }
    found
}

fn section_lines<'a>(help: &'a str, heading: &'a str) -> impl Iterator<Item = &'a str> {
    help.lines()
        .skip_while(move |l| l.trim() != heading)
        .skip(1)
        .take_while(|l| !l.trim().is_empty() && l.starts_with(' '))
}

/// Roff source as text to search: `\-` is "-", `\*(Aq` "'", font changes go.
pub fn unroff(roff: &str) -> String {
    let mut text = roff.replace("\\-", "-").replace("\\*(Aq", "'").replace("\\(aq", "'");
    for font in ["\\fB", "\\fI", "\\fR", "\\fP"] {
        text = text.replace(font, "");
    }
    text
}

/// Lines of a shell script that would enable or start a unit, comments aside.
pub fn enabling_lines(script: &str) -> Vec<String> {
    let words: &[&[&str]] = &[
        &["systemctl", "enable"],
        &["systemctl", "reenable"],
        &["systemctl", "start"],
        &["systemctl", "restart"],
        &["systemctl", "--now"],
        &["systemctl", "preset"],
        &["deb-systemd-helper", "enable"],
        &["deb-systemd-helper", "reenable"],
        &["deb-systemd-invoke", "start"],
        &["deb-systemd-invoke", "restart"],
        &["ln", ".wants"],
    ];
    let enables = |line: &str| {
        let tokens: Vec<&str> =
            line.split(|c: char| c.is_whitespace() || ";|&()\"'`".contains(c)).filter(|t| !t.is_empty()).collect();
        words.iter().any(|w| {
            let (program, arg) = (w[0], w[1]);
            let arg_there = |t: &&str| if arg.starts_with('.') { t.contains(arg) } else { *t == arg };
            tokens.iter().any(|t| *t == program || t.ends_with(&format!("/{program}"))) && tokens.iter().any(arg_there)
        })
    };
    script
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty() && enables(l))
        .map(str::to_string)
        .collect()
}

/// Every expected file there, with its mode, owned by root; no enable link
/// shipped in the package.
pub fn check_files(entries: &[Entry]) -> Result<(), String> {
    let mut problems = Vec::new();
    for (path, mode) in EXPECTED_FILES {
        match entries.iter().find(|e| e.path == *path) {
            None => problems.push(format!("{path} is missing")),
            Some(e) if e.mode != *mode => problems.push(format!("{path} has mode {}, not {mode}", e.mode)),
            Some(_) => {}
        }
    }
    for e in entries {
        if e.owner != "0/0" && e.owner != "root/root" {
            problems.push(format!("{} is owned by {}", e.path, e.owner));
        }
        if e.path.contains(".wants/") || e.path.contains(".requires/") {
            problems.push(format!("{} enables a unit", e.path));
        }
        if e.mode.starts_with('-') && e.size == 0 {
            problems.push(format!("{} is empty", e.path));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

const CHECKS: &[(&str, CheckFn<Facts>)] = &[
    ("control_fields", control_fields),
    ("files_and_modes", files_and_modes),
    ("conffiles", conffiles),
    ("learn_unit_installed_disabled", learn_unit_installed_disabled),
    ("units_and_hook_call_the_packaged_binary", units_and_hook_call_the_packaged_binary),
    ("packaged_binary_runs", packaged_binary_runs),
    ("man_page_for_every_command", man_page_for_every_command),
    ("man_pages_mention_every_option", man_pages_mention_every_option),
    ("man_pages_render_without_warnings", man_pages_render_without_warnings),
    ("bash_completion_loads", bash_completion_loads),
    ("maintainer_scripts_parse", maintainer_scripts_parse),
    ("maintainer_scripts_keep_the_profile", maintainer_scripts_keep_the_profile),
    ("lintian_clean", lintian_clean),
];

/// lintian finds no error and no warning (informational tags are not policy).
fn lintian_clean(facts: &Facts) -> Result<(), String> {
    let out = Command::new("lintian")
        .arg(&facts.deb)
        .output()
        .map_err(|e| format!("cannot run lintian (installed by `cargo xtask setup`): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let problems = lintian_problems(&text);
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    // Exit 0, or 2 when only informational tags were emitted.
    match out.status.code() {
        Some(0) | Some(2) => Ok(()),
        code => Err(format!("lintian exited {code:?}: {}", String::from_utf8_lossy(&out.stderr).trim())),
    }
}

/// The error (E:) and warning (W:) tags of lintian's output.
pub fn lintian_problems(output: &str) -> Vec<&str> {
    output.lines().map(str::trim).filter(|l| l.starts_with("E: ") || l.starts_with("W: ")).collect()
}

/// What the checks look at, read once.
pub struct Facts {
    /// The package file itself.
    pub deb: PathBuf,
    pub control: BTreeMap<String, String>,
    pub entries: Vec<Entry>,
    /// The control archive (dpkg-deb -e): control, conffiles, postinst, ...
    pub control_dir: PathBuf,
    /// The data archive (dpkg -x).
    pub root: PathBuf,
    /// Scratch space for the checks.
    pub work: PathBuf,
}

impl Facts {
    fn read(deb: &Path) -> Result<Facts> {
        let work = paths::workspace().join("target/deb-check");
        if work.exists() {
            fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
        }
        fs::create_dir_all(&work)?;
        let control_dir = work.join("control");
        let root = work.join("root");
        cmd::output(Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control_dir))?;
        cmd::output(Command::new("dpkg").arg("-x").arg(deb).arg(&root))?;
        let info = cmd::output(Command::new("dpkg-deb").arg("-f").arg(deb))?;
        let listing = cmd::output(Command::new("dpkg-deb").arg("-c").arg(deb))?;
        Ok(Facts {
            deb: deb.to_path_buf(),
            control: parse_control(&info),
            entries: parse_contents(&listing)?,
            control_dir,
            root,
            work,
        })
    }

    fn in_root(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    fn script(&self, name: &str) -> Option<String> {
        fs::read_to_string(self.control_dir.join(name)).ok()
    }

    /// Runs the packaged binary with `args`: (status, stdout, stderr).
    fn modtrace(&self, args: &[&str]) -> Result<(i32, String, String), String> {
        let out = Command::new(self.in_root(BINARY))
            .args(args)
            .env("LC_ALL", "C.UTF-8")
            .output()
            .map_err(|e| format!("cannot run the packaged {BINARY}: {e}"))?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// The packaged modtrace's subcommands, from its own --help.
    fn commands(&self) -> Result<Vec<String>, String> {
        let (status, help, err) = self.modtrace(&["--help"])?;
        if status != 0 {
            return Err(format!("modtrace --help exited {status}: {err}"));
        }
        let commands = help_commands(&help);
        if commands.is_empty() {
            return Err(format!("modtrace --help lists no command:\n{help}"));
        }
        Ok(commands)
    }

    fn man_page(&self, name: &str) -> Result<String, String> {
        let path = self.in_root(&format!("{MAN_DIR}/{name}.8.gz"));
        let out = Command::new("gzip")
            .arg("-dc")
            .arg(&path)
            .output()
            .map_err(|e| format!("gzip -dc {}: {e}", path.display()))?;
        if !out.status.success() {
            return Err(format!("{}: {}", path.display(), String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Runs every check on `deb`, prints each verdict, and fails if any failed.
pub fn check(deb: &Path) -> Result<()> {
    eprintln!("deb: inspecting {}", deb.display());
    let facts = Facts::read(deb)?;
    let checks = check::run(CHECKS, &facts);
    println!();
    println!("== deb {}", deb.display());
    check::print(&checks);
    let failed = check::failed(&checks);
    println!("deb: {} passed, {failed} failed", checks.len() - failed);
    if failed > 0 {
        bail!("the Debian package failed {failed} check(s); scratch files in {}", facts.work.display());
    }
    Ok(())
}

fn field<'a>(facts: &'a Facts, name: &str) -> Result<&'a str, String> {
    facts.control.get(name).map(String::as_str).ok_or_else(|| format!("no {name} field"))
}

fn control_fields(facts: &Facts) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut want = |name: &str, ok: &dyn Fn(&str) -> bool, what: &str| match field(facts, name) {
        Ok(value) if ok(value) => {}
        Ok(value) => problems.push(format!("{name}: {value:?} is not {what}")),
        Err(e) => problems.push(e),
    };
    want("Package", &|v| v == "modtrace", "modtrace");
    want("Section", &|v| v == "admin", "admin");
    want("Architecture", &|v| !v.is_empty() && v != "all", "an architecture");
    want(
        "Depends",
        &|v| ["libc6", "libkmod2", "kmod"].iter().all(|p| v.split(',').any(|d| d.trim().starts_with(p))),
        "libc6, libkmod2 and kmod",
    );
    want("Recommends", &|v| v.split(',').any(|d| d.trim() == "systemd"), "systemd");
    want(
        "Description",
        &|v| {
            let synopsis = v.lines().next().unwrap_or("");
            !synopsis.is_empty() && synopsis.len() < 80 && v.lines().count() > 3 && v.contains("disabled")
        },
        "a synopsis under 80 characters and an extended description",
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn files_and_modes(facts: &Facts) -> Result<(), String> {
    check_files(&facts.entries)
}

fn conffiles(facts: &Facts) -> Result<(), String> {
    let listed: Vec<String> =
        facts.script("conffiles").unwrap_or_default().lines().map(|l| l.trim().to_string()).collect();
    let mut problems = Vec::new();
    if !listed.iter().any(|l| l == KERNEL_HOOK) {
        problems.push(format!("{KERNEL_HOOK} is not a conffile (conffiles: {listed:?})"));
    }
    for e in facts.entries.iter().filter(|e| e.path.starts_with("/etc/") && e.mode.starts_with('-')) {
        if !listed.contains(&e.path) {
            problems.push(format!("{} is in /etc but not a conffile", e.path));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn learn_unit_installed_disabled(facts: &Facts) -> Result<(), String> {
    let mut problems = Vec::new();
    for name in ["preinst", "postinst", "prerm", "postrm"] {
        if let Some(script) = facts.script(name) {
            for line in enabling_lines(&script) {
                problems.push(format!("{name}: {line}"));
            }
        }
    }
    if facts.script("postinst").is_none() {
        problems.push("no postinst (it creates /var/lib/modtrace)".into());
    }
    for path in [LEARN_UNIT, GUARD_UNIT] {
        let unit = fs::read_to_string(facts.in_root(path)).map_err(|e| format!("{path}: {e}"))?;
        if !unit.contains("[Install]") {
            problems.push(format!("{path} has no [Install] section: it could not be enabled"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn units_and_hook_call_the_packaged_binary(facts: &Facts) -> Result<(), String> {
    let unit = fs::read_to_string(facts.in_root(LEARN_UNIT)).map_err(|e| format!("{LEARN_UNIT}: {e}"))?;
    let exec = unit.lines().find(|l| l.starts_with("ExecStart=")).ok_or("the learn unit has no ExecStart=")?;
    if !exec.starts_with(&format!("ExecStart={BINARY} ")) {
        return Err(format!("the learn unit runs {exec:?}, not {BINARY}"));
    }
    let guard = fs::read_to_string(facts.in_root(GUARD_UNIT)).map_err(|e| format!("{GUARD_UNIT}: {e}"))?;
    let execs: Vec<&str> = guard.lines().filter(|l| l.starts_with("ExecStart")).collect();
    if execs.is_empty() || execs.iter().any(|l| !l.contains(&format!("={BINARY} guard "))) {
        return Err(format!("the guard unit runs {execs:?}, not {BINARY} guard"));
    }
    guard_start_failure_fails_the_unit(&guard)?;
    dracut_calls_the_packaged_binary(facts)?;
    let hook = fs::read_to_string(facts.in_root(KERNEL_HOOK)).map_err(|e| format!("{KERNEL_HOOK}: {e}"))?;
    if !hook.contains(&format!(":-{BINARY}}}")) {
        return Err(format!("the kernel hook does not default to {BINARY}"));
    }
    if !facts.entries.iter().any(|e| e.path == BINARY) {
        return Err(format!("{BINARY} is not in the package"));
    }
    Ok(())
}

/// A `guard start` that fails must fail the guard unit (`systemctl --failed`):
/// it runs as ExecStartPre= without the `-` that would ignore its status,
/// before the logger (ExecStart=), which systemd then never starts.
pub fn guard_start_failure_fails_the_unit(unit: &str) -> Result<(), String> {
    let pre = unit.lines().find_map(|l| l.strip_prefix("ExecStartPre=")).ok_or("the guard unit has no ExecStartPre=")?;
    let prefixes: String = pre.chars().take_while(|c| !c.is_alphanumeric() && *c != '/').collect();
    if !pre.contains(" guard start ") || prefixes.contains('-') {
        return Err(format!("the guard unit's ExecStartPre={pre} would not fail the unit when guard start fails"));
    }
    if !unit.lines().any(|l| l.starts_with("ExecStart=") && l.ends_with(" guard log")) {
        return Err("the guard unit's ExecStart= is not the logger (guard log)".into());
    }
    Ok(())
}

/// The dracut module's unit and scripts run the packaged binary.
fn dracut_calls_the_packaged_binary(facts: &Facts) -> Result<(), String> {
    let early = fs::read_to_string(facts.in_root(DRACUT_UNIT)).map_err(|e| format!("{DRACUT_UNIT}: {e}"))?;
    if !early.lines().any(|l| l == format!("ExecStart=-{BINARY} learn --early")) {
        return Err(format!("the dracut module's unit does not run {BINARY} learn --early"));
    }
    for script in [DRACUT_SETUP, DRACUT_HOOK] {
        let text = fs::read_to_string(facts.in_root(script)).map_err(|e| format!("{script}: {e}"))?;
        if !text.contains(BINARY) {
            return Err(format!("{script} does not name {BINARY}"));
        }
    }
    Ok(())
}

fn packaged_binary_runs(facts: &Facts) -> Result<(), String> {
    let (status, out, err) = facts.modtrace(&["--help"])?;
    if status != 0 || !out.contains("Usage: modtrace") {
        return Err(format!("modtrace --help: exit {status}, {out}{err}"));
    }
    let (status, out, err) = facts.modtrace(&["--version"])?;
    let version = field(facts, "Version")?;
    let upstream = version.rsplit_once('-').map(|(u, _)| u).unwrap_or(version);
    if status != 0 || out.trim() != format!("modtrace {upstream}") {
        return Err(format!("modtrace --version: exit {status}, {out:?}{err}; the package is {version}"));
    }
    let (status, _, err) = facts.modtrace(&["no-such-command"])?;
    if status != 2 {
        return Err(format!("an unknown command exits {status}, not 2: {err}"));
    }
    Ok(())
}

fn man_page_for_every_command(facts: &Facts) -> Result<(), String> {
    let commands = facts.commands()?;
    let mut names = vec!["modtrace".to_string()];
    names.extend(commands.iter().map(|c| format!("modtrace-{c}")));
    let mut problems = Vec::new();
    for name in &names {
        let path = format!("{MAN_DIR}/{name}.8.gz");
        match facts.entries.iter().find(|e| e.path == path) {
            None => problems.push(format!("{path} is missing")),
            Some(e) if e.mode != "-rw-r--r--" => problems.push(format!("{path} has mode {}", e.mode)),
            Some(_) => {}
        }
    }
    for e in facts.entries.iter().filter(|e| e.path.starts_with(&format!("{MAN_DIR}/"))) {
        let name = e.path.trim_start_matches(&format!("{MAN_DIR}/")).trim_end_matches(".8.gz");
        if !names.iter().any(|n| n == name) {
            problems.push(format!("{} documents no command of modtrace --help", e.path));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn man_pages_mention_every_option(facts: &Facts) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut pages = vec![(vec![], "modtrace".to_string())];
    pages.extend(facts.commands()?.into_iter().map(|c| (vec![c.clone()], format!("modtrace-{c}"))));
    for (args, name) in pages {
        let mut argv: Vec<&str> = args.iter().map(String::as_str).collect();
        argv.push("-h");
        let (status, help, err) = facts.modtrace(&argv)?;
        if status != 0 {
            problems.push(format!("modtrace {} exited {status}: {err}", argv.join(" ")));
            continue;
        }
        let options = help_options(&help);
        if !options.iter().any(|o| o == "--help") {
            problems.push(format!("no options found in modtrace {}:\n{help}", argv.join(" ")));
        }
        let page = match facts.man_page(&name) {
            Ok(page) => unroff(&page),
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        for option in options {
            if !page.contains(&option) {
                problems.push(format!("{name}(8) does not mention {option}"));
            }
        }
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "EXIT STATUS", "SEE ALSO"] {
            if !page.contains(&format!(".SH {section}")) && !page.contains(&format!(".SH \"{section}\"")) {
                problems.push(format!("{name}(8) has no {section} section"));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Renders every page with man-db (`man -l`, groff's warnings on) as a
/// reader would see it.
fn man_pages_render_without_warnings(facts: &Facts) -> Result<(), String> {
    if Command::new("man").arg("--version").output().is_err() {
        return Err("man-db is not installed (cargo xtask setup installs it)".into());
    }
    let mut problems = Vec::new();
    let mut rendered = 0;
    for e in facts.entries.iter().filter(|e| e.path.starts_with(&format!("{MAN_DIR}/"))) {
        let path = facts.in_root(&e.path);
        let out = Command::new("man")
            .arg("--warnings")
            .arg("-l")
            .arg(&path)
            .env("LC_ALL", "C.UTF-8")
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .env_remove("MANOPT")
            .output()
            .map_err(|e| format!("cannot run man: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let warnings = String::from_utf8_lossy(&out.stderr);
        let title = e.path.rsplit('/').next().unwrap_or("").trim_end_matches(".8.gz").to_uppercase();
        if !out.status.success() {
            problems.push(format!("man -l {}: {}", e.path, out.status));
        } else if !warnings.trim().is_empty() {
            problems.push(format!("man -l {} warns: {}", e.path, warnings.trim()));
        } else if !text.starts_with(&format!("{title}(8)")) || !text.contains("EXIT STATUS") {
            problems.push(format!("man -l {} does not look like a page: {:?}", e.path, text.lines().next()));
        } else {
            rendered += 1;
        }
    }
    if rendered == 0 && problems.is_empty() {
        problems.push("no man page rendered".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn bash_completion_loads(facts: &Facts) -> Result<(), String> {
    let script = facts.in_root("/usr/share/bash-completion/completions/modtrace");
    let out = Command::new("bash")
        .arg("--norc")
        .arg("-c")
        .arg(r#"source "$1" && complete -p modtrace && _modtrace_words() { COMP_WORDS=(modtrace "$1"); COMP_CWORD=1; COMPREPLY=(); _modtrace modtrace "$1" modtrace; printf '%s\n' "${COMPREPLY[@]}"; }; _modtrace_words ge"#)
        .arg("bash")
        .arg(&script)
        .output()
        .map_err(|e| format!("cannot run bash: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !text.contains("-F _modtrace modtrace") {
        return Err(format!("bash cannot load it: {}{}", text, String::from_utf8_lossy(&out.stderr)));
    }
    if !text.lines().any(|l| l == "generate") || text.lines().any(|l| l == "generate-docs") {
        return Err(format!(
            "\"modtrace ge<TAB>\" offers {:?}, not just generate",
            text.lines().skip(1).collect::<Vec<_>>()
        ));
    }
    Ok(())
}

fn maintainer_scripts_parse(facts: &Facts) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut scripts: Vec<PathBuf> = ["postinst", "prerm", "postrm"].iter().map(|n| facts.control_dir.join(n)).collect();
    scripts.push(facts.in_root(KERNEL_HOOK));
    for script in scripts {
        match fs::metadata(&script) {
            Err(e) => problems.push(format!("{}: {e}", script.display())),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => {
                problems.push(format!("{} is not executable", script.display()))
            }
            Ok(_) => {
                let out = Command::new("sh").arg("-n").arg(&script).output().map_err(|e| e.to_string())?;
                if !out.status.success() {
                    problems.push(format!("sh -n {}: {}", script.display(), String::from_utf8_lossy(&out.stderr)));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Runs a maintainer script against `root` (DPKG_ROOT): (success, stderr).
fn run_script(facts: &Facts, name: &str, arg: &str, root: &Path) -> Result<(bool, String), String> {
    let out = Command::new("sh")
        .arg(facts.control_dir.join(name))
        .arg(arg)
        .env("DPKG_ROOT", root)
        .output()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    Ok((out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned()))
}

/// Under a scratch DPKG_ROOT: the package's state, the link that enables the
/// learner, and the lock unit generate installs.
const STATE: &str = "var/lib/modtrace";
const LEARN_LINK: &str = "etc/systemd/system/sysinit.target.wants/modtrace-learn.service";
const INSTALLED_LOCK_UNIT: &str = "etc/systemd/system/modtrace-lock.service";

/// postinst makes /var/lib/modtrace (0700); remove leaves everything; purge
/// removes generated files and enable links only, keeps the profile and says
/// so, and removes the directory when nothing else is in it.
fn maintainer_scripts_keep_the_profile(facts: &Facts) -> Result<(), String> {
    let root = facts.work.join("scripts-root");
    configure(facts, &root)?;
    let state = root.join(STATE);
    let mode =
        fs::metadata(&state).map_err(|e| format!("postinst made no {}: {e}", state.display()))?.permissions().mode();
    if mode & 0o777 != 0o700 {
        return Err(format!("/var/lib/modtrace has mode {:o}, not 700", mode & 0o777));
    }
    fill_state(&root).map_err(|e| e.to_string())?;
    remove_keeps_everything(facts, &root)?;
    purge_keeps_the_profile(facts, &root)?;
    // Nothing of the admin's left: the directory goes.
    let clean = facts.work.join("scripts-root-clean");
    configure(facts, &clean)?;
    fs::create_dir_all(clean.join(STATE).join("generated")).map_err(|e| e.to_string())?;
    let (ok, err) = run_script(facts, "postrm", "purge", &clean)?;
    if !ok || clean.join(STATE).exists() {
        return Err(format!("postrm purge of an empty state left /var/lib/modtrace (ok: {ok}): {err}"));
    }
    Ok(())
}

fn configure(facts: &Facts, root: &Path) -> Result<(), String> {
    let (ok, err) = run_script(facts, "postinst", "configure", root)?;
    if !ok {
        return Err(format!("postinst configure failed: {err}"));
    }
    Ok(())
}

/// What a machine that learned and generated has: the profile, its backup,
/// lock and a temporary file, generated output, the learner enabled and the
/// lock unit installed.
fn fill_state(root: &Path) -> std::io::Result<()> {
    let state = root.join(STATE);
    fs::write(state.join("profile.json"), "{}")?;
    fs::write(state.join("profile.json.bak"), "{}")?;
    fs::write(state.join("profile.json.lock"), "1")?;
    fs::write(state.join(".profile.json.123.tmp"), "")?;
    fs::create_dir_all(state.join("generated/etc/modules-load.d"))?;
    fs::write(state.join("generated/etc/modules-load.d/modtrace.conf"), "vfat\n")?;
    let link = root.join(LEARN_LINK);
    fs::create_dir_all(link.parent().expect("a unit link has a directory"))?;
    symlink(LEARN_UNIT, link)?;
    fs::write(root.join(INSTALLED_LOCK_UNIT), "# Generated by modtrace\n")
}

fn remove_keeps_everything(facts: &Facts, root: &Path) -> Result<(), String> {
    let (ok, err) = run_script(facts, "postrm", "remove", root)?;
    if !ok {
        return Err(format!("postrm remove failed: {err}"));
    }
    let state = root.join(STATE);
    for kept in ["profile.json", "profile.json.bak", "profile.json.lock", "generated/etc/modules-load.d/modtrace.conf"]
    {
        if !state.join(kept).exists() {
            return Err(format!("postrm remove deleted /var/lib/modtrace/{kept}"));
        }
    }
    if !err.contains("modtrace-lock.service is still installed") {
        return Err(format!("postrm remove does not say that the lock unit stays: {err:?}"));
    }
    Ok(())
}

fn purge_keeps_the_profile(facts: &Facts, root: &Path) -> Result<(), String> {
    let (ok, err) = run_script(facts, "postrm", "purge", root)?;
    if !ok {
        return Err(format!("postrm purge failed: {err}"));
    }
    let state = root.join(STATE);
    for kept in ["profile.json", "profile.json.bak"] {
        if !state.join(kept).exists() {
            return Err(format!("postrm purge deleted the admin's /var/lib/modtrace/{kept}"));
        }
    }
    for gone in ["generated", "profile.json.lock", ".profile.json.123.tmp"] {
        if state.join(gone).exists() {
            return Err(format!("postrm purge left /var/lib/modtrace/{gone}"));
        }
    }
    if fs::symlink_metadata(root.join(LEARN_LINK)).is_ok() {
        return Err("postrm purge left the link enabling modtrace-learn.service".into());
    }
    if !root.join(INSTALLED_LOCK_UNIT).exists() {
        return Err("postrm purge deleted /etc/systemd/system/modtrace-lock.service".into());
    }
    if !err.contains("kept /var/lib/modtrace")
        || !err.contains("profile.json")
        || !err.contains("removed /var/lib/modtrace/generated")
    {
        return Err(format!("postrm purge does not say what it kept and removed: {err:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
