//! `generate` for a distribution: `--min-hosts N`, the baseline of a fleet
//! profile (needs/fleet.rs), and `--vendor DIR`, the drop-ins by package
//! (vendor.rs) instead of the site's files.

use std::path::Path;

use anyhow::bail;

use super::write::write_output;
use super::{vendor, Output};
use crate::escape::text;
use crate::needs::fleet::baseline;
use crate::profile::Profile;
use crate::said::Said;

/// The profile to generate from: the baseline of at least `min_hosts` hosts
/// when asked for, with what it leaves out said.
pub fn baseline_of(profile: Profile, min_hosts: Option<usize>, path: &Path) -> anyhow::Result<(Profile, Said)> {
    let mut said = Said::default();
    let Some(n) = min_hosts else { return Ok((profile, said)) };
    let Some(b) = baseline(&profile, n) else {
        bail!("--min-hosts counts the hosts of a fleet profile (modtrace merge); {} is one host's", path.display())
    };
    let hosts = profile.hosts.len();
    if n > hosts {
        said.err(format!("modtrace: warning: --min-hosts {n}, but the fleet has {hosts} hosts: nothing can be listed"));
    }
    if !b.left_out.is_empty() {
        let names: Vec<String> = b.left_out.iter().map(|(m, k)| format!("{} ({k}/{hosts})", text(m))).collect();
        said.err(format!("modtrace: not in the baseline, trusted on fewer than {n} hosts: {}", names.join(", ")));
    }
    Ok((b.profile, said))
}

/// `--vendor DIR`: writes each packaged unit's drop-in under its package.
pub fn vendor_here(dir: &Path, profile: &Profile, output: &Output) -> anyhow::Result<Said> {
    let (files, unpackaged) = vendor::files(profile, output);
    let packages: std::collections::BTreeSet<_> = files.iter().filter_map(|f| f.path.iter().next()).collect();
    let summary = format!("{} drop-in(s) for {} package(s) under {}", files.len(), packages.len(), dir.display());
    let done = write_output(dir, &Output { files, plan: Default::default() })?;
    let mut said = Said::default();
    for p in &done.written {
        said.out(format!("wrote {}", p.display()));
    }
    for unit in unpackaged {
        said.err(format!("modtrace: note: no package is known for {}: its drop-in is left out", text(&unit)));
    }
    said.out(summary);
    Ok(said)
}
