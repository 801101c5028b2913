//! Why a module that was already loaded when learning started is there. Being
//! loaded is evidence of nothing (any user can make the kernel autoload a
//! module), so only a source that explains it counts: the configuration that
//! systemd-modules-load reads (modules-load.d files and the modules_load=
//! kernel argument), the initramfs's (initramfs.rs), PID 1's own insertions
//! (its journal), a device present now (coldplug.rs), or being a dependency
//! or softdep of a trusted module ([`dependency_reasons`]). Anything else is
//! "before learning": cause unknown. Paths are parameters so tests use temp dirs.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::trace::modindex::{normalize, ModuleIndex};

/// Where systemd-modules-load looks, in its order of precedence.
#[derive(Debug, Clone)]
pub struct PreloadSources {
    /// modules-load.d directories, most important first: a file name found in an
    /// earlier directory hides the same name in later ones.
    pub dirs: Vec<PathBuf>,
    /// The kernel command line (/proc/cmdline).
    pub cmdline: PathBuf,
    /// initramfs-tools' lists of modules its init loads: files, or directories
    /// of files.
    pub initramfs_tools: Vec<PathBuf>,
    /// dracut's configuration: files, or directories of `*.conf` files, most
    /// important first.
    pub dracut: Vec<PathBuf>,
    /// Where sysfs is mounted (/sys): the devices present now.
    pub sysfs: PathBuf,
}

impl Default for PreloadSources {
    fn default() -> Self {
        PreloadSources {
            dirs: [
                "/etc/modules-load.d",
                "/run/modules-load.d",
                "/usr/local/lib/modules-load.d",
                "/usr/lib/modules-load.d",
                "/lib/modules-load.d",
            ]
            .iter()
            .map(PathBuf::from)
            .collect(),
            cmdline: PathBuf::from("/proc/cmdline"),
            initramfs_tools: paths(&["/etc/initramfs-tools/modules", "/usr/share/initramfs-tools/modules.d"]),
            dracut: paths(&["/etc/dracut.conf", "/etc/dracut.conf.d", "/usr/lib/dracut/dracut.conf.d"]),
            sysfs: PathBuf::from("/sys"),
        }
    }
}

fn paths(list: &[&str]) -> Vec<PathBuf> {
    list.iter().map(PathBuf::from).collect()
}

impl PreloadSources {
    /// The default places under `root` ("/" on a real system).
    pub fn under(root: &Path) -> PreloadSources {
        let at = |p: &PathBuf| root.join(p.strip_prefix("/").unwrap_or(p));
        let d = PreloadSources::default();
        PreloadSources {
            dirs: d.dirs.iter().map(at).collect(),
            cmdline: at(&d.cmdline),
            initramfs_tools: d.initramfs_tools.iter().map(at).collect(),
            dracut: d.dracut.iter().map(at).collect(),
            sysfs: at(&d.sysfs),
        }
    }
}

/// Every source read from files, module name -> reason: modules-load.d and
/// the command line, the initramfs's configuration, and the devices present
/// now (resolved through `index`). PID 1's journal and dependencies are added
/// by the caller ([`add_reason`], [`dependency_reasons`]).
pub fn boot_reasons(sources: &PreloadSources, index: &dyn ModuleIndex) -> BTreeMap<String, String> {
    let mut reasons = configured_reasons(sources);
    merge_reasons(&mut reasons, super::initramfs::reasons(sources));
    merge_reasons(&mut reasons, super::coldplug::reasons(&sources.sysfs, index));
    reasons
}

/// Adds every reason of `more` (see [`add_reason`]).
pub fn merge_reasons(reasons: &mut BTreeMap<String, String>, more: BTreeMap<String, String>) {
    for (m, why) in more {
        for w in why.split("; ") {
            add_reason(reasons, std::slice::from_ref(&m), w);
        }
    }
}

/// Module name -> the configuration that loads it at boot, e.g.
/// "/etc/modules-load.d/appletalk.conf" or "kernel command line: modules-load=appletalk";
/// several are joined with "; ". Unreadable sources are skipped.
pub fn configured_reasons(sources: &PreloadSources) -> BTreeMap<String, String> {
    let mut reasons: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Ok(text) = fs::read_to_string(&sources.cmdline) {
        for (key, modules) in cmdline_modules(&text) {
            for m in modules {
                reasons.entry(m.clone()).or_default().push(format!("kernel command line: {key}={m}"));
            }
        }
    }
    for file in config_files(&sources.dirs) {
        let Ok(text) = fs::read_to_string(&file) else { continue };
        for m in conf_modules(&text) {
            reasons.entry(m).or_default().push(file.display().to_string());
        }
    }
    reasons
        .into_iter()
        .map(|(m, mut r)| {
            r.dedup();
            (m, r.join("; "))
        })
        .collect()
}

/// `*.conf` files by name, the first directory that has a name winning; a file
/// that is a link to /dev/null masks the name.
fn config_files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in dirs {
        let Ok(entries) = fs::read_dir(dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".conf") && !by_name.contains_key(&name) {
                by_name.insert(name, entry.path());
            }
        }
    }
    by_name.into_values().filter(|p| !is_masked(p)).collect()
}

fn is_masked(path: &Path) -> bool {
    fs::read_link(path).map(|t| t == Path::new("/dev/null")).unwrap_or(false)
}

/// Module names in a modules-load.d file: one per line, `#` and `;` start comments.
pub fn conf_modules(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .map(normalize)
        .collect()
}

/// (argument as written, modules) for every modules_load=, modules-load= and
/// rd.modules_load= / rd.modules-load= argument of a kernel command line, and
/// dracut's rd.driver.pre= / rd.driver.post= (dracut.cmdline(7): "force
/// loading kernel module").
pub fn cmdline_modules(cmdline: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for word in split_cmdline(cmdline) {
        let Some((key, value)) = word.split_once('=') else { continue };
        let k = key.replace('-', "_");
        if matches!(k.as_str(), "modules_load" | "rd.modules_load" | "rd.driver.pre" | "rd.driver.post") {
            let modules: Vec<String> =
                value.split(',').map(str::trim).filter(|m| !m.is_empty()).map(normalize).collect();
            out.push((key.to_string(), modules));
        }
    }
    out
}

/// Splits on whitespace outside double quotes, dropping the quotes.
fn split_cmdline(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// The reason for a module PID 1 inserted itself before starting any unit.
pub const PID1_INSERTED: &str = "inserted by systemd (PID 1) before any unit (its journal)";

/// Modules PID 1's journal says it inserted ("Inserted module 'autofs4'"),
/// from `journalctl -o cat` lines of PID 1.
pub fn pid1_inserted(journal: &str) -> Vec<String> {
    journal
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Inserted module '")?.strip_suffix('\''))
        .map(normalize)
        .collect()
}

/// PID 1's messages of this boot, one a line; empty when the journal cannot
/// be read in time. Only records journald says PID 1 wrote (trace/journal.rs:
/// `_PID=1`, or its kmsg lines from before journald), never what a writer
/// says of itself; a message of several lines is left out, so that no line
/// of it can pass for a message of its own.
pub fn pid1_journal() -> String {
    use crate::trace::journal;
    let matches: Vec<String> = journal::PID1.iter().map(|m| m.to_string()).collect();
    journal::pid1_lines(&journal::query(&matches, journal::DEADLINE).unwrap_or_default())
}

/// Adds `why` to each module's reason (joined with "; ", as configured_reasons does).
pub fn add_reason(reasons: &mut BTreeMap<String, String>, modules: &[String], why: &str) {
    for m in modules {
        let r = reasons.entry(m.clone()).or_default();
        if !r.split("; ").any(|x| x == why) {
            if !r.is_empty() {
                r.push_str("; ");
            }
            r.push_str(why);
        }
    }
}

/// Reasons for the modules of `loaded` that no source in `reasons` explains
/// but that modprobe loads with a trusted module: a dependency (modules.dep)
/// or softdep of a module in `trusted` (the profile's trusted modules), or of
/// one of `loaded` that a source explains, or of one explained so in turn.
/// "a dependency of tcp_bic, which is trusted" / "a softdep of ...".
pub fn dependency_reasons(
    loaded: &[String],
    reasons: &BTreeMap<String, String>,
    trusted: &BTreeSet<String>,
    index: &dyn ModuleIndex,
) -> BTreeMap<String, String> {
    let mut vouching: BTreeSet<String> = trusted.clone();
    vouching.extend(loaded.iter().filter(|m| reasons.contains_key(*m)).cloned());
    let mut found: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let open: Vec<&String> =
            loaded.iter().filter(|m| !reasons.contains_key(*m) && !found.contains_key(*m)).collect();
        let new: Vec<(String, String)> = open
            .into_iter()
            .filter_map(|m| Some((m.clone(), vouching.iter().find_map(|t| pulled_in_by(index, t, m))?)))
            .collect();
        if new.is_empty() {
            return found;
        }
        vouching.extend(new.iter().map(|(m, _)| m.clone()));
        found.extend(new);
    }
}

/// How `modprobe trusted` loads `module`, if it does.
fn pulled_in_by(index: &dyn ModuleIndex, trusted: &str, module: &str) -> Option<String> {
    if trusted == module || !index.load_order(trusted).iter().any(|m| m == module) {
        return None;
    }
    let kind = if index.closure(trusted).iter().any(|m| m == module) { "dependency" } else { "softdep" };
    Some(format!("a {kind} of {trusted}, which is trusted"))
}

#[cfg(test)]
mod tests;
