//! Writing a generation under --out: every destination checked before the
//! first file is replaced, each file replaced atomically, and modtrace's own
//! stale drop-ins removed.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{Output, DROP_IN_NAME, MARK, UNIT_DIR};
use crate::profile;

/// What writing did.
#[derive(Debug, Default)]
pub struct Written {
    pub written: Vec<PathBuf>,
    /// Drop-ins modtrace wrote earlier for units that no longer need one.
    pub removed: Vec<PathBuf>,
}

/// Writes every file under `out` (each replaced atomically), then removes
/// modtrace's own drop-ins (recognised by their first line) that this
/// generation did not write.
pub fn write_output(out: &Path, output: &Output) -> anyhow::Result<Written> {
    let mut done = Written::default();
    // Every destination is checked before the first file is replaced, so that a
    // read-only directory does not leave half a generation behind.
    for f in &output.files {
        let dest = out.join(&f.path);
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        profile::check_writable(&dest)?;
    }
    for f in &output.files {
        let dest = out.join(&f.path);
        profile::atomic_write(&dest, f.contents.as_bytes())?;
        done.written.push(dest);
    }
    let keep: BTreeSet<&PathBuf> = done.written.iter().collect();
    let units = out.join(UNIT_DIR);
    if let Ok(dirs) = fs::read_dir(&units) {
        for d in dirs.flatten() {
            if !d.file_name().to_string_lossy().ends_with(".d") {
                continue;
            }
            let candidate = d.path().join(DROP_IN_NAME);
            if keep.contains(&candidate) {
                continue;
            }
            let ours = fs::read_to_string(&candidate).map(|t| t.starts_with(MARK)).unwrap_or(false);
            if ours {
                fs::remove_file(&candidate).with_context(|| format!("removing {}", candidate.display()))?;
                let _ = fs::remove_dir(d.path()); // only when empty
                done.removed.push(candidate);
            }
        }
    }
    Ok(done)
}
