//! Putting files into guest roots: shared by the initramfs and the system image.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

/// Copies `from` to `to` (creating its directory) with `mode`.
pub fn install(from: &Path, to: &Path, mode: u32) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::copy(from, to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// The absolute library paths `ldd PROGRAM` names (none for static programs).
pub fn shared_libraries(program: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(program).output()?;
    Ok(libraries_in(&String::from_utf8_lossy(&out.stdout)))
}

pub(crate) fn libraries_in(ldd_output: &str) -> Vec<PathBuf> {
    ldd_output
        .lines()
        .filter_map(|line| match line.split_once("=>") {
            Some((_, target)) => target.split_whitespace().next(),
            None => line.split_whitespace().next(),
        })
        .filter(|path| path.starts_with('/'))
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_library_paths_from_ldd() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibkmod.so.2 => /lib/x86_64-linux-gnu/libkmod.so.2 (0x00007f)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            libraries_in(out),
            [PathBuf::from("/lib/x86_64-linux-gnu/libkmod.so.2"), PathBuf::from("/lib64/ld-linux-x86-64.so.2")]
        );
        assert!(libraries_in("\tstatically linked\n").is_empty());
    }
}
