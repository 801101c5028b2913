//! The site's own module policy, read as kmod reads it: modprobe.d files from
//! /etc, /run, /usr/local/lib, /usr/lib and /lib (a file name in an earlier
//! directory hides the same name in later ones; all files are then read in name
//! order), and modprobe.blacklist= / module_blacklist= on the kernel command line.
//!
//! What counts:
//! - `install NAME /bin/false` (or /bin/true, or a Kicksecure-style
//!   /bin/disabled-*-by-security-misc script): modprobe runs the command instead
//!   of loading NAME, by name, by alias or as a dependency. The first install
//!   line for a module wins, as in kmod.
//! - `blacklist NAME` (and modprobe.blacklist=): NAME's aliases are ignored, so
//!   the kernel's requests and udev do not load it; `modprobe NAME` still does.
//! - module_blacklist= on the command line: the kernel refuses to load it at all.
//!
//! Any other install command is the site's own way to load the module, not a
//! refusal.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::trace::modindex::normalize;

/// Where kmod looks for modprobe.d files, in order of precedence.
pub const DIRS: &[&str] =
    &["etc/modprobe.d", "run/modprobe.d", "usr/local/lib/modprobe.d", "usr/lib/modprobe.d", "lib/modprobe.d"];

/// Where a rule was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}", self.file.display(), self.line)
        }
    }
}

/// How a module is kept out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The module's (first) install command: a refusal when it loads nothing
    /// (false, true, a disabled-* script).
    Install { command: String, at: Origin },
    /// blacklist: its aliases are ignored; loading it by name still works.
    Blacklist { at: Origin },
    /// module_blacklist= on the kernel command line: the kernel refuses it.
    Kernel { at: Origin },
}

impl Refusal {
    /// Whether a load of this kind goes through: by name (explicit modprobe,
    /// modules-load.d, a dependency) or by alias (the kernel's requests, udev).
    pub fn refuses(&self, by_alias: bool) -> bool {
        match self {
            Refusal::Install { command, .. } => disables(command),
            Refusal::Kernel { .. } => true,
            Refusal::Blacklist { .. } => by_alias,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Install { command, at } => write!(f, "disabled by site policy: {at} installs it as `{command}`"),
            Refusal::Blacklist { at } => {
                write!(f, "blacklisted by site policy ({at}): not loaded by alias, only by name")
            }
            Refusal::Kernel { at } => write!(f, "refused by the kernel: module_blacklist= in {at}"),
        }
    }
}

/// The site's refusals, by module name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SitePolicy {
    pub install: BTreeMap<String, Refusal>,
    pub blacklist: BTreeMap<String, Refusal>,
    pub kernel: BTreeMap<String, Refusal>,
}

/// An install command that loads nothing: false, true, or a disabled-* script.
fn disables(command: &str) -> bool {
    let Some(program) = command.split_whitespace().next() else { return false };
    let base = program.rsplit('/').next().unwrap_or(program);
    matches!(base, "false" | "true") || base.starts_with("disabled-")
}

/// modprobe.d lines with backslash continuations joined, each with the number
/// of the line it started on.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let (start, mut line) = pending.take().unwrap_or((i + 1, String::new()));
        match raw.strip_suffix('\\') {
            Some(head) => {
                line.push_str(head);
                pending = Some((start, line));
            }
            None => {
                line.push_str(raw);
                out.push((start, line));
            }
        }
    }
    out.extend(pending);
    out
}

impl SitePolicy {
    /// Reads the policy of the system under `root` ("/" on a real system).
    pub fn read(root: &Path) -> SitePolicy {
        let mut policy = SitePolicy::default();
        for (path, text) in config_files(root) {
            policy.add_file(&path, &text);
        }
        if let Ok(cmdline) = fs::read_to_string(root.join("proc/cmdline")) {
            policy.add_cmdline(Path::new("/proc/cmdline"), &cmdline);
        }
        policy
    }

    /// Adds one modprobe.d file's rules (files must come in kmod's order).
    pub fn add_file(&mut self, path: &Path, text: &str) {
        for (line, content) in logical_lines(text) {
            let content = content.trim();
            if content.starts_with('#') {
                continue;
            }
            let mut words = content.split_whitespace();
            let (Some(keyword), Some(name)) = (words.next(), words.next()) else { continue };
            let at = Origin { file: path.to_path_buf(), line };
            let name = normalize(name);
            match keyword {
                "install" => {
                    let command = words.collect::<Vec<_>>().join(" ");
                    // kmod keeps the first install command of a module.
                    self.install.entry(name).or_insert(Refusal::Install { command, at });
                }
                "blacklist" => {
                    self.blacklist.entry(name).or_insert(Refusal::Blacklist { at });
                }
                _ => {}
            }
        }
    }

    /// modprobe.blacklist=A,B (kmod) and module_blacklist=A,B (the kernel).
    pub fn add_cmdline(&mut self, path: &Path, cmdline: &str) {
        let at = || Origin { file: path.to_path_buf(), line: 0 };
        for word in cmdline.split_whitespace() {
            if let Some(list) = word.strip_prefix("modprobe.blacklist=") {
                for m in list.split(',').filter(|m| !m.is_empty()) {
                    self.blacklist.entry(normalize(m)).or_insert(Refusal::Blacklist { at: at() });
                }
            } else if let Some(list) = word.strip_prefix("module_blacklist=") {
                for m in list.split(',').filter(|m| !m.is_empty()) {
                    self.kernel.entry(normalize(m)).or_insert(Refusal::Kernel { at: at() });
                }
            }
        }
    }

    /// Why the site keeps `module` from loading this way, if it does.
    pub fn refusal(&self, module: &str, by_alias: bool) -> Option<&Refusal> {
        let m = normalize(module);
        [&self.kernel, &self.install, &self.blacklist]
            .into_iter()
            .filter_map(|rules| rules.get(&m))
            .find(|r| r.refuses(by_alias))
    }

    /// Whether the site keeps `module` out whichever way it is asked for.
    pub fn disables(&self, module: &str) -> Option<&Refusal> {
        self.refusal(module, false)
    }
}

/// The modprobe.d files kmod reads under `root`, in the order it reads them.
pub fn config_files(root: &Path) -> Vec<(PathBuf, String)> {
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in DIRS {
        let Ok(entries) = fs::read_dir(root.join(dir)) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".conf") || name.starts_with('.') {
                continue;
            }
            // The first directory that has the name wins.
            by_name.entry(name).or_insert_with(|| Path::new("/").join(dir).join(e.file_name()));
        }
    }
    by_name
        .into_values()
        .filter_map(|shown| {
            let real = root.join(shown.strip_prefix("/").unwrap_or(&shown));
            fs::read_to_string(real).ok().map(|text| (shown, text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    /// Shaped like security-misc's /etc/modprobe.d/30_security-misc_disable.conf.
    const SECURITY_MISC: &str = "\
## Copyright (C) 2012 - 2025 ENCRYPTED SUPPORT LLC <adrelanos@whonix.org>
## See the file COPYING for copying conditions.

## Disable Bluetooth.
install bluetooth /bin/disabled-bluetooth-by-security-misc
install btusb /bin/disabled-bluetooth-by-security-misc

## Disable uncommon network protocols.
install dccp /bin/disabled-network-by-security-misc
install appletalk /bin/disabled-network-by-security-misc
install n-hdlc /bin/disabled-network-by-security-misc

## Disable uncommon file systems.
install cramfs /bin/disabled-filesys-by-security-misc
install vivid /bin/false
install msr /bin/true
#install llc /bin/false
";

    const SECURITY_MISC_BLACKLIST: &str = "\
## Blacklist automatic loading of the Amateur Radio protocol modules.
blacklist ax25
blacklist netrom
";

    fn write(root: &TempDir, path: &str, text: &str) {
        let p = root.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn kicksecure_style_files_disable_and_blacklist() {
        let root = TempDir::new("site");
        write(&root, "etc/modprobe.d/30_security-misc_disable.conf", SECURITY_MISC);
        write(&root, "etc/modprobe.d/30_security-misc_blacklist.conf", SECURITY_MISC_BLACKLIST);
        write(&root, "lib/modprobe.d/aliases.conf", "alias net-pf-5 appletalk\noptions snd slots=1\n");
        let site = SitePolicy::read(root.path());
        for m in ["bluetooth", "btusb", "dccp", "appletalk", "n_hdlc", "cramfs", "vivid", "msr"] {
            assert!(site.disables(m).is_some(), "{m}: {site:#?}");
            assert!(site.refusal(m, true).is_some(), "{m}");
        }
        let r = site.disables("appletalk").unwrap().to_string();
        assert_eq!(
            r,
            "disabled by site policy: /etc/modprobe.d/30_security-misc_disable.conf:10 installs it as `/bin/disabled-network-by-security-misc`"
        );
        // A commented-out line is nothing; blacklist stops alias loads only.
        assert_eq!(site.refusal("llc", true), None);
        assert_eq!(site.disables("ax25"), None);
        assert!(site.refusal("ax25", true).unwrap().to_string().contains("not loaded by alias"));
        assert_eq!(site.refusal("snd", true), None);
    }

    #[test]
    fn etc_hides_the_same_file_name_in_lib_and_the_first_install_wins() {
        let root = TempDir::new("site-order");
        write(&root, "lib/modprobe.d/50-x.conf", "install vfat /bin/false\n");
        write(&root, "etc/modprobe.d/50-x.conf", "# emptied by the admin\n");
        write(&root, "usr/lib/modprobe.d/10-a.conf", "install loop /sbin/modprobe --ignore-install loop max_loop=8\n");
        write(&root, "run/modprobe.d/20-b.conf", "install loop /bin/false\ninstall fat \\\n  /bin/false\n");
        let site = SitePolicy::read(root.path());
        assert_eq!(site.disables("vfat"), None, "{site:#?}");
        // 10-a.conf comes first: its install command loads loop, so it is no refusal.
        assert_eq!(site.disables("loop"), None, "{site:#?}");
        match site.disables("fat") {
            Some(Refusal::Install { command, at }) => {
                assert_eq!(command, "/bin/false");
                assert_eq!(at.to_string(), "/run/modprobe.d/20-b.conf:2");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_kernel_command_line_blacklists() {
        let mut site = SitePolicy::default();
        site.add_cmdline(
            Path::new("/proc/cmdline"),
            "quiet modprobe.blacklist=pcspkr,snd-pcsp module_blacklist=firewire-core",
        );
        assert!(site.refusal("snd_pcsp", true).is_some());
        assert_eq!(site.refusal("pcspkr", false), None);
        assert!(site.refusal("firewire_core", false).unwrap().to_string().contains("module_blacklist="));
    }
}
