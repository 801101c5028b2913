//! Modules the initramfs's own configuration names, for modules found loaded
//! when learning starts: root wrote them there for the earliest boot.
//!
//! - initramfs-tools: /etc/initramfs-tools/modules and the files of
//!   /usr/share/initramfs-tools/modules.d, one module per line (then its
//!   parameters), `#` comments: copied into the initramfs and loaded by its init.
//! - dracut: `add_drivers` (included in the initramfs) and `force_drivers`
//!   (also loaded early) in /etc/dracut.conf and the `*.conf` files of
//!   /etc/dracut.conf.d and /usr/lib/dracut/dracut.conf.d (dracut.conf(5); a
//!   file in an earlier directory hides the same name in a later one).
//!
//! `rd.modules_load=` and `rd.driver.pre=` on the kernel command line are read
//! with the rest of the command line (preload.rs).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::preload::{add_reason, PreloadSources};
use crate::trace::modindex::normalize;

/// Module name -> "initramfs: FILE" or "initramfs: force_drivers in FILE";
/// several are joined with "; ". Unreadable sources are skipped.
pub fn reasons(sources: &PreloadSources) -> BTreeMap<String, String> {
    let mut reasons = BTreeMap::new();
    for file in files(&sources.initramfs_tools, |_| true) {
        let Ok(text) = fs::read_to_string(&file) else { continue };
        add_reason(&mut reasons, &tools_modules(&text), &format!("initramfs: {}", file.display()));
    }
    for file in files(&sources.dracut, |name| name.ends_with(".conf")) {
        let Ok(text) = fs::read_to_string(&file) else { continue };
        for (key, modules) in dracut_drivers(&text) {
            add_reason(&mut reasons, &modules, &format!("initramfs: {key} in {}", file.display()));
        }
    }
    reasons
}

/// The files among `places` (files as they are, directories by the names
/// `keep` accepts; a name in an earlier directory hides it in later ones).
fn files(places: &[PathBuf], keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for place in places {
        if !place.is_dir() {
            out.push(place.clone());
            continue;
        }
        let Ok(entries) = fs::read_dir(place) else { continue };
        let mut names: Vec<(String, PathBuf)> = entries
            .flatten()
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .filter(|(n, _)| keep(n) && !seen.contains(n))
            .collect();
        names.sort();
        seen.extend(names.iter().map(|(n, _)| n.clone()));
        out.extend(names.into_iter().map(|(_, p)| p).filter(|p| !is_dev_null(p)));
    }
    out
}

fn is_dev_null(path: &Path) -> bool {
    fs::read_link(path).map(|t| t == Path::new("/dev/null")).unwrap_or(false)
}

/// initramfs-tools' list: the first word of each line that is not a comment.
pub fn tools_modules(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .map(normalize)
        .collect()
}

/// (key, modules) of every `add_drivers` / `force_drivers` assignment (`=` or
/// `+=`, the value quoted with " or ' or not at all) in a dracut.conf file.
pub fn dracut_drivers(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        let Some((key, value)) = line.split_once('=') else { continue };
        let key = key.trim().trim_end_matches('+');
        if key != "add_drivers" && key != "force_drivers" {
            continue;
        }
        let value = value.trim();
        let value = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
            _ => value.split('#').next().unwrap_or(""),
        };
        let modules: Vec<String> = value.split_whitespace().map(normalize).collect();
        if !modules.is_empty() {
            out.push((key.to_string(), modules));
        }
    }
    out
}
