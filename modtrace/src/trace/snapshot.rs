//! What is loaded right now: /proc/modules parsed, and the snapshot file that
//! `modtrace snapshot` writes and `modtrace diff` compares (the admins'
//! `lsmod | sort > before`, with holders, state and taints kept).

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::trace::modindex::normalize;

pub const SCHEMA: &str = "modtrace-snapshot/1";

/// One line of /proc/modules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadedModule {
    pub name: String,
    /// Bytes of memory the module takes.
    pub size: u64,
    /// Reference count; None when the kernel cannot unload modules ("-").
    pub users: Option<u32>,
    /// Modules that use this one (the "used by" column), sorted.
    #[serde(default)]
    pub holders: Vec<String>,
    /// "Live", "Loading" or "Unloading".
    pub state: String,
    /// Taint letters, e.g. ["O", "E"] for an unsigned out-of-tree module.
    #[serde(default)]
    pub taints: Vec<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Parses /proc/modules text (`name size refcount holders state address [taints]`);
/// the result is sorted by name.
pub fn parse_proc_modules(text: &str) -> Result<Vec<LoadedModule>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse_columns(line, i + 1)?);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn parse_columns(line: &str, lineno: usize) -> Result<LoadedModule, ParseError> {
    let err = |message: String| ParseError { line: lineno, message };
    let cols: Vec<&str> = line.split_whitespace().collect();
    if cols.len() < 5 {
        return Err(err(format!("expected at least 5 columns (name size users holders state), got {}", cols.len())));
    }
    let size = cols[1].parse().map_err(|_| err(format!("size \"{}\" is not a number", cols[1])))?;
    let users = match cols[2] {
        "-" => None,
        n => Some(n.parse().map_err(|_| err(format!("use count \"{n}\" is not a number")))?),
    };
    let taints = cols[5..]
        .iter()
        .find(|c| c.starts_with('(') && c.ends_with(')'))
        .map(|c| c[1..c.len() - 1].chars().map(|c| c.to_string()).collect())
        .unwrap_or_default();
    Ok(LoadedModule {
        name: normalize(cols[0]),
        size,
        users,
        holders: holders(cols[3]),
        state: cols[4].to_string(),
        taints,
        extra: Map::new(),
    })
}

/// The "used by" column: "-" or "a,b," (with "[permanent]" for modules that
/// cannot be unloaded, which is kept).
fn holders(col: &str) -> Vec<String> {
    if col == "-" {
        return Vec::new();
    }
    let mut h: Vec<String> = col
        .split(',')
        .filter(|s| !s.is_empty() && *s != "-")
        .map(|s| if s.starts_with('[') { s.to_string() } else { normalize(s) })
        .collect();
    h.sort();
    h.dedup();
    h
}

/// Reads and parses a /proc/modules file.
pub fn read_proc_modules(path: &Path) -> anyhow::Result<Vec<LoadedModule>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound && path == Path::new("/proc/modules") {
            crate::loader::ProbeError::NoModules.into()
        } else {
            anyhow::anyhow!("{}: {e}", path.display())
        }
    })?;
    parse_proc_modules(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// `modtrace snapshot`'s output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub schema: String,
    pub kernel: String,
    pub host: String,
    /// When it was taken, RFC 3339 UTC.
    pub time: String,
    /// Sorted by name.
    pub modules: Vec<LoadedModule>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Snapshot {
    pub fn new(kernel: &str, host: &str, time: &str, mut modules: Vec<LoadedModule>) -> Snapshot {
        modules.sort_by(|a, b| a.name.cmp(&b.name));
        Snapshot {
            schema: SCHEMA.to_string(),
            kernel: kernel.to_string(),
            host: host.to_string(),
            time: time.to_string(),
            modules,
            extra: Map::new(),
        }
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a snapshot always serializes");
        s.push('\n');
        s
    }

    /// Text like /proc/modules without the address column, after a header:
    ///
    /// ```text
    /// # modtrace-snapshot/1 kernel=6.1.0-18-amd64 host=deb time=2024-03-01T10:00:00Z
    /// # name size users holders state [taints]
    /// appletalk 53248 0 - Live
    /// ```
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "# {} kernel={} host={} time={}\n# name size users holders state [taints]\n",
            SCHEMA,
            self.kernel.replace(' ', "_"),
            self.host.replace(' ', "_"),
            self.time
        );
        for m in &self.modules {
            let users = m.users.map(|u| u.to_string()).unwrap_or_else(|| "-".to_string());
            let holders = if m.holders.is_empty() { "-".to_string() } else { format!("{},", m.holders.join(",")) };
            s.push_str(&format!("{} {} {} {} {}", m.name, m.size, users, holders, m.state));
            if !m.taints.is_empty() {
                s.push_str(&format!(" ({})", m.taints.concat()));
            }
            s.push('\n');
        }
        s
    }

    /// Parses what [`to_text`](Self::to_text) writes, a copy of /proc/modules, or
    /// `lsmod` output (sorted or not: its header line is skipped wherever it is).
    pub fn from_text(text: &str) -> Result<Snapshot, ParseError> {
        let mut snap = Snapshot::new("", "", "", Vec::new());
        for (i, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.is_empty() {
                continue;
            }
            if let Some(comment) = t.strip_prefix('#') {
                for word in comment.split_whitespace() {
                    match word.split_once('=') {
                        Some(("kernel", v)) => snap.kernel = v.to_string(),
                        Some(("host", v)) => snap.host = v.to_string(),
                        Some(("time", v)) => snap.time = v.to_string(),
                        _ => {}
                    }
                }
                continue;
            }
            let cols: Vec<&str> = t.split_whitespace().collect();
            if cols.len() >= 2 && cols[0] == "Module" && cols[1] == "Size" {
                continue;
            }
            let is_proc = cols.len() >= 5 && matches!(cols[4], "Live" | "Loading" | "Unloading");
            let module = if is_proc { parse_columns(t, i + 1)? } else { lsmod_line(&cols, i + 1)? };
            snap.modules.push(module);
        }
        snap.modules.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(snap)
    }
}

/// `name size users [holders]`, as lsmod prints.
fn lsmod_line(cols: &[&str], lineno: usize) -> Result<LoadedModule, ParseError> {
    let err = |message: String| ParseError { line: lineno, message };
    if !(3..=4).contains(&cols.len()) {
        return Err(err(format!(
            "not a snapshot line: expected \"name size users holders state\" or lsmod's \"name size users [holders]\", got {} columns",
            cols.len()
        )));
    }
    let size = cols[1].parse().map_err(|_| err(format!("size \"{}\" is not a number", cols[1])))?;
    let users = match cols[2] {
        "-" => None,
        n => Some(n.parse().map_err(|_| err(format!("use count \"{n}\" is not a number")))?),
    };
    Ok(LoadedModule {
        name: normalize(cols[0]),
        size,
        users,
        holders: cols.get(3).map(|c| holders(c)).unwrap_or_default(),
        state: "Live".to_string(),
        taints: Vec::new(),
        extra: Map::new(),
    })
}

/// How `modtrace snapshot` writes a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Text,
}

/// A snapshot of the modules listed in `proc_modules` (normally
/// /proc/modules), with this machine's kernel, host and time, as text.
pub fn render(proc_modules: &Path, format: Format) -> anyhow::Result<String> {
    use crate::system;
    let modules = read_proc_modules(proc_modules)?;
    let snap = Snapshot::new(&system::kernel_release(), &system::hostname(), &system::now(), modules);
    Ok(match format {
        Format::Json => snap.to_json(),
        Format::Text => snap.to_text(),
    })
}

/// How many modules a rendered snapshot lists.
pub fn count(text: &str, format: Format) -> usize {
    match format {
        Format::Text => text.lines().filter(|l| !l.starts_with('#')).count(),
        Format::Json => serde_json::from_str::<Snapshot>(text).map(|s| s.modules.len()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded from a Debian 12 guest after `socket(AF_APPLETALK, ...)`.
    const PROC_MODULES: &str = "\
appletalk 53248 0 - Live 0x0000000000000000
psnap 16384 1 appletalk, Live 0x0000000000000000
llc 16384 2 psnap,appletalk, Live 0x0000000000000000
vboxdrv 696320 0 - Live 0x0000000000000000 (OE)
ip_tables 36864 0 - Loading 0x0000000000000000
crc32c_intel 24576 3 [permanent], Live 0x0000000000000000
";

    #[test]
    fn parses_proc_modules() {
        let mods = parse_proc_modules(PROC_MODULES).unwrap();
        let names: Vec<&str> = mods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["appletalk", "crc32c_intel", "ip_tables", "llc", "psnap", "vboxdrv"]);
        let llc = &mods[3];
        assert_eq!(llc.size, 16384);
        assert_eq!(llc.users, Some(2));
        assert_eq!(llc.holders, ["appletalk", "psnap"]);
        assert_eq!(llc.state, "Live");
        assert!(llc.taints.is_empty());
        assert_eq!(mods[5].taints, ["O", "E"]);
        assert_eq!(mods[2].state, "Loading");
        assert_eq!(mods[1].holders, ["[permanent]"]);
        assert!(mods[0].holders.is_empty());
    }

    #[test]
    fn bad_lines_are_errors_with_their_line() {
        let err = parse_proc_modules("appletalk 53248 0 - Live 0x0\nllc big 1 - Live 0x0\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("big"), "{err}");
        assert_eq!(parse_proc_modules("short line\n").unwrap_err().line, 1);
    }

    #[test]
    fn text_and_json_round_trip() {
        let snap =
            Snapshot::new("6.1.0-18-amd64", "deb", "2024-03-01T10:00:00Z", parse_proc_modules(PROC_MODULES).unwrap());
        let text = snap.to_text();
        assert!(
            text.starts_with("# modtrace-snapshot/1 kernel=6.1.0-18-amd64 host=deb time=2024-03-01T10:00:00Z\n"),
            "{text}"
        );
        assert!(text.contains("\nllc 16384 2 appletalk,psnap, Live\n"), "{text}");
        assert!(text.contains("\nvboxdrv 696320 0 - Live (OE)\n"), "{text}");
        assert_eq!(Snapshot::from_text(&text).unwrap(), snap);
        let json = snap.to_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["schema"], SCHEMA);
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["schema", "kernel", "host", "time", "modules"]);
        assert_eq!(serde_json::from_str::<Snapshot>(&json).unwrap(), snap);
    }

    #[test]
    fn reads_lsmod_output_even_sorted() {
        let lsmod = "appletalk              53248  0\nllc                    16384  2 psnap,appletalk\nModule                  Size  Used by\npsnap                  16384  1 appletalk\n";
        let snap = Snapshot::from_text(lsmod).unwrap();
        let names: Vec<&str> = snap.modules.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["appletalk", "llc", "psnap"]);
        assert_eq!(snap.modules[1].holders, ["appletalk", "psnap"]);
        assert!(Snapshot::from_text("this is not lsmod output at all\n").is_err());
    }
}
