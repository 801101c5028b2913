//! The system test's tiny initramfs: Debian's kernel has virtio_blk and ext4 as
//! modules, so something must load them before the root file system can be
//! mounted. Static busybox, those modules (dependencies first) and
//! tests/system/initramfs-init as /init, packed as a newc cpio. Like a Debian
//! initramfs built while modtrace-learn.service is enabled, it holds the
//! image's modtrace and the package's init-top script, which /init runs
//! before its first module load.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::harness::kernels::{insmod_files, Kernel};
use crate::harness::{files, initramfs, paths};
use crate::package;

/// What the root disk needs, in load order (`modprobe --show-depends` adds the rest).
const ROOT_DRIVERS: [&str; 5] = ["virtio_pci", "virtio_blk", "crc32c_generic", "crc32c_intel", "ext4"];

/// Stages the initramfs under `work/initramfs` and packs it to `work/initramfs.cpio`;
/// modtrace comes from the staged system root `system`.
pub fn build(kernel: &Kernel, work: &Path, system: &Path) -> Result<PathBuf> {
    let root = work.join("initramfs");
    if root.exists() {
        fs::remove_dir_all(&root)?;
    }
    for dir in ["bin", "dev", "etc", "proc", "sys", "newroot", "lib/modules"] {
        fs::create_dir_all(root.join(dir))?;
    }
    initramfs::install_busybox(&root)?;
    add_modtrace(system, &root)?;
    let mut list = String::new();
    for file in module_files(kernel)? {
        let relative = file.strip_prefix(kernel.modules_dir()).with_context(|| format!("{}", file.display()))?;
        files::install(&file, &root.join("lib/modules").join(relative), 0o644)?;
        list += &format!("{}\n", relative.display());
    }
    fs::write(root.join("etc/modules.list"), list)?;
    files::install(&paths::workspace().join("tests/system/initramfs-init"), &root.join("init"), 0o755)?;

    let image = initramfs::pack(&root, &work.join("initramfs.cpio"))?;
    fs::remove_dir_all(&root)?;
    Ok(image)
}

/// The package's modtrace (built on this host: its libraries are the host's)
/// and its init-top script, where initramfs-tools would put them.
fn add_modtrace(system: &Path, root: &Path) -> Result<()> {
    let binary = system.join("usr/sbin/modtrace");
    initramfs::install_program(root, &binary, "usr/sbin/modtrace")?;
    let script = package::INITRAMFS_SCRIPT.trim_start_matches('/');
    let script = system.join(script);
    files::install(&script, &root.join("scripts/init-top/modtrace"), 0o755)
}

/// The module names the initramfs loads ("crc32c-intel.ko.xz" is crc32c_intel).
pub fn module_names(kernel: &Kernel) -> Result<BTreeSet<String>> {
    Ok(module_files(kernel)?
        .iter()
        .filter_map(|f| f.file_name()?.to_str()?.split('.').next().map(|n| n.replace('-', "_")))
        .collect())
}

/// The .ko files of ROOT_DRIVERS and their dependencies, each once, in load order.
fn module_files(kernel: &Kernel) -> Result<Vec<PathBuf>> {
    let mut seen = BTreeSet::new();
    let mut files = Vec::new();
    for module in ROOT_DRIVERS {
        let out = kernel.show_depends(module)?;
        let mine = insmod_files(&out);
        if mine.is_empty() && !out.contains("builtin ") {
            bail!("{module} is neither a module nor built into {}: {out}", kernel.kver);
        }
        files.extend(mine.into_iter().filter(|f| seen.insert(f.clone())));
    }
    Ok(files)
}


