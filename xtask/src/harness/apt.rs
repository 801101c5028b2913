//! A private apt configuration (own source list, lists and cache) for one Debian
//! release with its updates, security and backports, without touching the
//! system's apt setup. Used only to find and download kernel packages.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::harness::cmd;

const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

pub struct PrivateApt {
    dir: PathBuf,
}

impl PrivateApt {
    /// Writes the private source list for Debian release `dist` (e.g. trixie;
    /// mirrors taken from the system's) under `dir`.
    pub fn prepare(dir: &Path, dist: &str) -> Result<Self> {
        let mirrors = Mirrors::from_system()?;
        for sub in ["state/lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        fs::write(dir.join("state/status"), "")?;
        fs::write(dir.join("sources.list"), mirrors.source_list(dist))?;
        Ok(Self { dir: dir.to_path_buf() })
    }

    /// An apt program (apt-get, apt-cache) bound to the private configuration.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        let opt = |key: &str, value: &Path| format!("{key}={}", value.display());
        for option in [
            opt("Dir::Etc::sourcelist", &self.dir.join("sources.list")),
            "Dir::Etc::sourceparts=-".to_string(),
            opt("Dir::State", &self.dir.join("state")),
            opt("Dir::State::status", &self.dir.join("state/status")),
            opt("Dir::Cache", &self.dir.join("cache")),
            "APT::Sandbox::User=root".to_string(),
            "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".to_string(),
            "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false".to_string(),
        ] {
            cmd.arg("-o").arg(option);
        }
        cmd
    }

    pub fn update(&self) -> Result<()> {
        cmd::run(self.command("apt-get").args(["-q", "update"]))
    }

    /// The package names that `package` depends on (candidate version).
    pub fn depends(&self, package: &str) -> Result<Vec<String>> {
        let text = cmd::output(self.command("apt-cache").args(["depends", package]))?;
        Ok(text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: "))
            .map(|name| name.trim_matches(|c| c == '<' || c == '>').to_string())
            .collect())
    }

    /// Downloads `package` into `into` and returns the .deb's path.
    pub fn download(&self, package: &str, into: &Path) -> Result<PathBuf> {
        fs::create_dir_all(into)?;
        cmd::run(self.command("apt-get").args(["-q", "download", package]).current_dir(into))?;
        find_deb(into, package)
    }
}

fn find_deb(dir: &Path, package: &str) -> Result<PathBuf> {
    // "NAME/RELEASE" asks for NAME from RELEASE; the file is NAME_VERSION_ARCH.deb.
    let name = package.split('/').next().unwrap_or(package);
    let prefix = format!("{name}_");
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(".deb") {
            return Ok(path);
        }
    }
    bail!("apt-get download left no {package}_*.deb in {}", dir.display())
}

/// The system's Debian mirror and security mirror URIs.
struct Mirrors {
    main: String,
    security: Option<String>,
}

impl Mirrors {
    fn from_system() -> Result<Self> {
        let uris = system_uris()?;
        let main = uris
            .iter()
            .find(|u| !u.contains("security"))
            .cloned()
            .context("no non-security Debian mirror in the system's apt sources")?;
        let security = uris.iter().find(|u| u.contains("security")).cloned();
        Ok(Self { main, security })
    }

    fn source_list(&self, dist: &str) -> String {
        let signed = if Path::new(KEYRING).exists() { format!("[signed-by={KEYRING}] ") } else { String::new() };
        let mut text = String::new();
        for suite in ["", "-updates", "-backports"] {
            text += &format!("deb {signed}{} {dist}{suite} main\n", self.main);
        }
        if let Some(security) = &self.security {
            text += &format!("deb {signed}{security} {dist}-security main\n");
        }
        text
    }
}

/// Every URI named in the system's apt sources, deb822 (`URIs:`) and one-line.
fn system_uris() -> Result<Vec<String>> {
    let mut uris = Vec::new();
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut parts: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        parts.sort();
        files.extend(parts);
    }
    for file in files {
        let name = file.to_string_lossy();
        if !(name.ends_with(".list") || name.ends_with(".sources")) {
            continue;
        }
        let Ok(text) = fs::read_to_string(&file) else { continue };
        uris.extend(uris_in(&text));
    }
    Ok(uris)
}

fn uris_in(text: &str) -> Vec<String> {
    let mut uris = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(list) = line.strip_prefix("URIs:") {
            uris.extend(list.split_whitespace().map(String::from));
        } else if let Some(rest) = line.strip_prefix("deb ") {
            let rest = rest.trim_start();
            let rest = match rest.strip_prefix('[') {
                Some(opts) => opts.split_once(']').map_or("", |(_, r)| r),
                None => rest,
            };
            uris.extend(rest.split_whitespace().next().map(String::from));
        }
    }
    uris
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_uris_in_both_formats() {
        let deb822 = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n";
        assert_eq!(uris_in(deb822), ["http://deb.debian.org/debian"]);
        let one_line = "# c\ndeb [arch=amd64] http://m.example/debian bookworm main\n";
        assert_eq!(uris_in(one_line), ["http://m.example/debian"]);
    }
}
