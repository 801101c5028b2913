//! `generate --vendor DIR`: the unit drop-ins again, sorted by the Debian
//! package that ships each unit (the profile's `packages`), as that package
//! would ship them: DIR/PACKAGE/usr/lib/systemd/system/UNIT.d/. What a
//! distribution or upstream can ship instead of a modules-load.d list.

use std::path::{Path, PathBuf};

use super::{GeneratedFile, Output, DROP_IN_NAME, UNIT_DIR};
use crate::profile::Profile;

/// Where a package's unit drop-ins go, below its own directory.
pub const VENDOR_UNIT_DIR: &str = "usr/lib/systemd/system";

/// The drop-ins of `output` under their packages' directories, and the units
/// whose package is not known (their drop-ins stay the site's).
pub fn files(profile: &Profile, output: &Output) -> (Vec<GeneratedFile>, Vec<String>) {
    let mut files = Vec::new();
    let mut unpackaged = Vec::new();
    for f in &output.files {
        let Some(unit) = unit_of(&f.path) else { continue };
        match profile.packages.units.get(&unit).filter(|p| package_name_ok(p)) {
            Some(package) => files.push(GeneratedFile {
                path: PathBuf::from(package).join(VENDOR_UNIT_DIR).join(format!("{unit}.d")).join(DROP_IN_NAME),
                contents: f.contents.clone(),
            }),
            None => unpackaged.push(unit),
        }
    }
    (files, unpackaged)
}

/// The unit of a drop-in generate writes (etc/systemd/system/UNIT.d/NAME).
fn unit_of(path: &Path) -> Option<String> {
    if path.file_name()? != DROP_IN_NAME || path.parent()?.parent()? != Path::new(UNIT_DIR) {
        return None;
    }
    let dir = path.parent()?.file_name()?.to_str()?;
    dir.strip_suffix(".d").map(str::to_string)
}

/// Debian policy's package names (lower case, digits, + - .), which are also
/// safe as a directory name.
fn package_name_ok(name: &str) -> bool {
    name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(units: &[&str]) -> Output {
        let files = units
            .iter()
            .map(|u| GeneratedFile { path: super::super::dropins::path_for(u), contents: format!("[Unit]\n# {u}\n") })
            .chain([GeneratedFile { path: PathBuf::from(super::super::MODULES_LOAD), contents: String::new() }])
            .collect();
        Output { files, plan: Default::default() }
    }

    #[test]
    fn each_packaged_units_drop_in_goes_under_its_package() {
        let mut p = Profile::new("6.12.0", "h");
        p.packages.units.insert("nftables.service".into(), "nftables".into());
        p.packages.units.insert("evil.service".into(), "../../etc".into());
        let (files, unpackaged) = files(&p, &output(&["nftables.service", "admin.service", "evil.service"]));
        let paths: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
        assert_eq!(paths, ["nftables/usr/lib/systemd/system/nftables.service.d/modtrace-modules.conf"]);
        assert_eq!(files[0].contents, "[Unit]\n# nftables.service\n");
        assert_eq!(unpackaged, ["admin.service", "evil.service"], "no package, or one that is no package name");
    }
}
