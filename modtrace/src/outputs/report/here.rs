//! `modtrace report` as run: reads the profile, asks the needs stage for its
//! plan (and each host's, for `--by host` on a fleet), renders it.

use std::path::Path;

use super::{render_with, Format, GroupBy};
use crate::needs::{self, fleet::host_plans};
use crate::profile;
use crate::said::Said;

/// The report of the profile at `path`, under the site policy of the system at `root`.
pub fn report_here(path: &Path, root: &Path, format: Format, by: GroupBy) -> anyhow::Result<Said> {
    let p = profile::load_existing(path)?;
    let (plan, invalid) = needs::as_learned(&p, root);
    let mut said = Said::default();
    for i in invalid {
        said.err(format!("modtrace: warning: the profile cannot be used to generate anything: {i}"));
    }
    let hosts = if by == GroupBy::Host { host_plans(&p, root) } else { Vec::new() };
    let text = render_with(&p, &plan, &hosts, format, by);
    said.out(text.strip_suffix('\n').unwrap_or(&text));
    Ok(said)
}
