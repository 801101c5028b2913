//! `modtrace diff A B`: which modules one side has and the other has not, and
//! whose holders changed, with causes where a profile knows them. Each side is a
//! snapshot (JSON or text, including plain /proc/modules or lsmod output) or a
//! profile, told apart by the schema field. Loading reads files; comparing and
//! rendering are pure.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail};
use serde_json::Value;

use crate::profile::{self, store, Profile, TriggerKind};
use crate::trace::snapshot::{self, Snapshot};

/// One side of a diff.
#[derive(Debug, Clone)]
pub enum Side {
    Snapshot(Snapshot),
    Profile(Profile),
}

#[derive(Debug, Clone)]
pub struct Input {
    /// The file, as named on the command line.
    pub label: String,
    pub side: Side,
}

/// Reads a snapshot or a profile; errors name the file (and the line and column
/// for bad JSON).
pub fn load_input(path: &Path) -> anyhow::Result<Input> {
    let label = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| anyhow!("{label}: {e}"))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow!("{label}: not UTF-8 text, so neither a snapshot nor a profile"))?;
    if text.trim().is_empty() {
        bail!("{label}: the file is empty, neither a snapshot nor a profile");
    }
    if text.trim_start().starts_with('{') {
        let value: Value =
            serde_json::from_str(&text).map_err(|e| store::parse_error(path, &e, "snapshot or profile"))?;
        let side = match value.get("schema").and_then(Value::as_str) {
            Some(profile::SCHEMA) => Side::Profile(profile::load(path)?),
            Some(snapshot::SCHEMA) => {
                Side::Snapshot(serde_json::from_str(&text).map_err(|e| store::parse_error(path, &e, "snapshot"))?)
            }
            Some(other) => bail!(
                "{label}: unknown schema \"{other}\": diff reads {} and {} files",
                snapshot::SCHEMA,
                profile::SCHEMA
            ),
            None => bail!("{label}: JSON without a \"schema\" field: neither a modtrace snapshot nor a profile"),
        };
        return Ok(Input { label, side });
    }
    let snap = Snapshot::from_text(&text).map_err(|e| anyhow!("{label}: {e}"))?;
    Ok(Input { label, side: Side::Snapshot(snap) })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub module: String,
    /// What a profile says about why it is loaded.
    pub cause: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub module: String,
    pub holders: Option<(Vec<String>, Vec<String>)>,
    pub state: Option<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    pub added: Vec<Change>,
    pub removed: Vec<Change>,
    pub changed: Vec<Changed>,
    pub common: usize,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// name -> (holders, state) when the side knows them.
type Loaded = BTreeMap<String, Option<(Vec<String>, String)>>;

fn loaded(side: &Side) -> Loaded {
    match side {
        Side::Snapshot(s) => {
            s.modules.iter().map(|m| (m.name.clone(), Some((m.holders.clone(), m.state.clone())))).collect()
        }
        Side::Profile(p) => p.modules.iter().map(|m| (m.name.clone(), None)).collect(),
    }
}

/// Compares A with B. Causes come from whichever sides are profiles (B first),
/// then from `extra`, a profile given to explain two snapshots.
pub fn compare(a: &Input, b: &Input, extra: Option<&Profile>) -> Diff {
    let (la, lb) = (loaded(&a.side), loaded(&b.side));
    let mut profiles: Vec<&Profile> = Vec::new();
    for side in [&b.side, &a.side] {
        if let Side::Profile(p) = side {
            profiles.push(p);
        }
    }
    profiles.extend(extra);
    let cause = |m: &str| profiles.iter().find_map(|p| cause_of(p, m));
    let mut diff = Diff::default();
    for (name, info_b) in &lb {
        match la.get(name) {
            None => diff.added.push(Change { module: name.clone(), cause: cause(name) }),
            Some(info_a) => {
                diff.common += 1;
                if let (Some((ha, sa)), Some((hb, sb))) = (info_a, info_b) {
                    let holders = (ha != hb).then(|| (ha.clone(), hb.clone()));
                    let state = (sa != sb).then(|| (sa.clone(), sb.clone()));
                    if holders.is_some() || state.is_some() {
                        diff.changed.push(Changed { module: name.clone(), holders, state });
                    }
                }
            }
        }
    }
    for name in la.keys() {
        if !lb.contains_key(name) {
            diff.removed.push(Change { module: name.clone(), cause: cause(name) });
        }
    }
    diff
}

/// "request net-pf-5 by modtrace-guest, example.service", from the module's most
/// frequent trigger; "needed by appletalk" for a dependency.
pub fn cause_of(profile: &Profile, module: &str) -> Option<String> {
    let m = profile.module(module)?;
    let mut triggers: Vec<_> = m.triggers.iter().collect();
    triggers.sort_by_key(|t| std::cmp::Reverse(t.count));
    let t = triggers.first()?;
    // A user's or a container's unit says whose it is.
    let who = |comm: &str, unit: &Option<String>, scope: &crate::trace::scope::Scope| match crate::outputs::report::unit_label(
        unit.as_deref(),
        Some(scope),
    ) {
        Some(u) => format!("{comm}, {u}"),
        None => comm.to_string(),
    };
    let text = if let Some(n) = &t.needed_by {
        format!("needed by {n}")
    } else {
        match t.kind {
            TriggerKind::Request => {
                let alias = t.alias.as_deref().unwrap_or("?");
                match &t.requester {
                    Some(r) => format!("request {alias} by {}", who(&r.comm, &r.unit, &r.scope)),
                    None => format!("request {alias}"),
                }
            }
            TriggerKind::Explicit => match (&t.loader, &t.requester) {
                (Some(l), Some(r)) => format!("explicit: {} from {}", l.comm, who(&r.comm, &r.unit, &r.scope)),
                (Some(l), None) => format!("explicit: {}", who(&l.comm, &l.unit, &l.scope)),
                _ => "explicit".to_string(),
            },
            TriggerKind::Udev => match t.device.as_ref().and_then(|d| d.modalias.clone()) {
                Some(d) => format!("udev, device {d}"),
                None => "udev".to_string(),
            },
            TriggerKind::Preloaded => format!("preloaded: {}", t.reason.as_deref().unwrap_or(profile::BEFORE_LEARNING)),
            TriggerKind::Unknown => format!("cause unknown: {}", t.reason.as_deref().unwrap_or("?")),
        }
    };
    let others = triggers.len() - 1;
    Some(match others {
        0 => text,
        1 => format!("{text}; 1 other cause"),
        n => format!("{text}; {n} other causes"),
    })
}

fn describe(input: &Input) -> String {
    match &input.side {
        Side::Snapshot(s) => {
            let mut parts = vec!["snapshot".to_string()];
            if !s.kernel.is_empty() {
                parts.push(format!("kernel {}", s.kernel));
            }
            if !s.host.is_empty() {
                parts.push(format!("host {}", s.host));
            }
            if !s.time.is_empty() {
                parts.push(s.time.clone());
            }
            format!("{} ({})", input.label, parts.join(", "))
        }
        Side::Profile(p) => {
            format!("{} (profile, kernel {}, host {}, {} modules)", input.label, p.kernel, p.host, p.modules.len())
        }
    }
}

use crate::escape::text;

/// diff-style text: `---`/`+++` headers, `+`, `-` and `~` lines, a count line.
pub fn render(a: &Input, b: &Input, diff: &Diff) -> String {
    let mut out = format!("--- {}\n+++ {}\n", text(&describe(a)), text(&describe(b)));
    let with_cause = |c: &Change| match &c.cause {
        Some(cause) => format!("{} ({})", text(&c.module), text(cause)),
        None => text(&c.module).into_owned(),
    };
    for c in &diff.added {
        out.push_str(&format!("+ {}\n", with_cause(c)));
    }
    for c in &diff.removed {
        out.push_str(&format!("- {}\n", with_cause(c)));
    }
    let list = |v: &Vec<String>| if v.is_empty() { "-".to_string() } else { v.join(",") };
    for c in &diff.changed {
        let mut parts = Vec::new();
        if let Some((old, new)) = &c.holders {
            parts.push(format!("used by {} -> {}", list(old), list(new)));
        }
        if let Some((old, new)) = &c.state {
            parts.push(format!("state {old} -> {new}"));
        }
        out.push_str(&format!("~ {}: {}\n", text(&c.module), text(&parts.join("; "))));
    }
    if diff.is_empty() {
        out.push_str(&format!("no difference: the same {} modules\n", diff.common));
    } else {
        out.push_str(&format!(
            "{} added, {} removed, {} changed, {} the same\n",
            diff.added.len(),
            diff.removed.len(),
            diff.changed.len(),
            diff.common - diff.changed.len()
        ));
    }
    crate::escape::lines(&out).into_owned()
}

/// Compares the files `a` and `b` (each a snapshot, /proc/modules or lsmod
/// text, or a profile), with causes from `explain`, and writes the result to
/// `out`: 0 when they hold the same modules, 1 when not.
pub fn diff_files(a: &Path, b: &Path, explain: Option<&Path>, out: &mut dyn Write) -> anyhow::Result<u8> {
    let a = load_input(a)?;
    let b = load_input(b)?;
    let extra = explain.map(profile::load).transpose()?;
    let d = compare(&a, &b, extra.as_ref());
    out.write_all(render(&a, &b, &d).as_bytes())?;
    Ok(if d.is_empty() { 0 } else { 1 })
}

/// diff(1)'s exit status: 0 same, 1 different, 2 trouble (said on stderr).
pub fn status(a: &Path, b: &Path, explain: Option<&Path>, out: &mut dyn Write) -> u8 {
    match diff_files(a, b, explain, out).and_then(|s| {
        out.flush()?;
        Ok(s)
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("modtrace diff: {e:#}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{example_profile, TempDir};
    use crate::trace::snapshot::parse_proc_modules;

    const BEFORE: &str = "ext4 1007616 1 - Live 0x0\njbd2 192512 1 ext4, Live 0x0\nmbcache 16384 1 ext4, Live 0x0\nfloppy 100 0 - Live 0x0\n";
    const AFTER: &str = "ext4 1007616 1 - Live 0x0\njbd2 192512 2 ext4,ocfs2, Live 0x0\nmbcache 16384 1 ext4, Live 0x0\nappletalk 53248 0 - Live 0x0\npsnap 16384 1 appletalk, Live 0x0\nllc 16384 2 psnap,appletalk, Live 0x0\n";

    fn snap(text: &str) -> Snapshot {
        Snapshot::new("6.1.0-18-amd64", "deb", "2024-03-01T10:00:00Z", parse_proc_modules(text).unwrap())
    }

    fn write_all(dir: &TempDir) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
        let a = dir.join("before.json");
        let b = dir.join("after.txt");
        let p = dir.join("profile.json");
        std::fs::write(&a, snap(BEFORE).to_json()).unwrap();
        std::fs::write(&b, snap(AFTER).to_text()).unwrap();
        std::fs::write(&p, example_profile().to_json()).unwrap();
        (a, b, p)
    }

    #[test]
    fn equal_is_0_different_is_1_trouble_is_2() {
        let dir = TempDir::new("diff");
        let (a, b, _) = write_all(&dir);
        let mut out = Vec::new();
        assert_eq!(diff_files(&a, &a, None, &mut out).unwrap(), 0);
        assert!(String::from_utf8(out).unwrap().contains("no difference: the same 4 modules"));
        let mut out = Vec::new();
        assert_eq!(diff_files(&a, &b, None, &mut out).unwrap(), 1);

        let bad = dir.join("bad.json");
        std::fs::write(&bad, "{\"schema\": \"modtrace-snapshot/1\", \"modules\": [").unwrap();
        assert_eq!(status(&a, &bad, None, &mut Vec::new()), 2);
        assert_eq!(status(&a, &dir.join("missing"), None, &mut Vec::new()), 2);
        assert_eq!(status(&a, &b, None, &mut Vec::new()), 1);
        let err = load_input(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.json:1:") && err.contains("truncated"), "{err}");
    }

    #[test]
    fn shows_added_removed_and_changed_holders_with_causes() {
        let dir = TempDir::new("diff-causes");
        let (a, b, p) = write_all(&dir);
        let mut out = Vec::new();
        diff_files(&a, &b, Some(&p), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("+ appletalk (request net-pf-5 by modtrace-guest, example.service)\n"), "{text}");
        assert!(text.contains("+ psnap (needed by appletalk)\n"), "{text}");
        assert!(text.contains("+ llc (needed by appletalk)\n"), "{text}");
        assert!(text.contains("- floppy\n"), "{text}");
        assert!(text.contains("~ jbd2: used by ext4 -> ext4,ocfs2\n"), "{text}");
        assert!(text.trim_end().ends_with("3 added, 1 removed, 1 changed, 2 the same"), "{text}");
        assert!(
            text.starts_with(&format!(
                "--- {} (snapshot, kernel 6.1.0-18-amd64, host deb, 2024-03-01T10:00:00Z)\n",
                a.display()
            )),
            "{text}"
        );
    }

    #[test]
    fn a_snapshot_against_a_profile() {
        let dir = TempDir::new("diff-profile");
        let (a, _, p) = write_all(&dir);
        let mut out = Vec::new();
        assert_eq!(diff_files(&a, &p, None, &mut out).unwrap(), 1);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("+ binfmt_misc (request fs-binfmt_misc by systemd, init.scope)\n"), "{text}");
        assert!(text.contains("+ snd_hda_intel (udev)\n"), "{text}");
        assert!(text.contains("- floppy\n"), "{text}");
        assert!(!text.contains("~ "), "a profile has no holders to compare: {text}");
        // Profile against itself: equal.
        assert_eq!(diff_files(&p, &p, None, &mut Vec::new()).unwrap(), 0);
    }

    #[test]
    fn unknown_json_is_refused() {
        let dir = TempDir::new("diff-unknown");
        let f = dir.join("x.json");
        std::fs::write(&f, "{\"schema\": \"something-else/1\"}").unwrap();
        let err = load_input(&f).unwrap_err().to_string();
        assert!(err.contains("unknown schema \"something-else/1\""), "{err}");
    }
}
