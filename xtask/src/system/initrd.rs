//! The system test's tiny initramfs: Debian's kernel has virtio_blk and ext4 as
//! modules, so something must load them before the root file system can be
//! mounted. Static busybox, those modules (dependencies first) and
//! tests/system/initramfs-init as /init, packed as a newc cpio.

use std::collections::BTreeSet;
use std::fs;
use std::io::BufWriter;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cpio::Archive;
use crate::kernels::{insmod_files, Kernel};
use crate::{cmd, files, paths};

const BUSYBOX: &str = "/bin/busybox";
/// What the root disk needs, in load order (`modprobe --show-depends` adds the rest).
const ROOT_DRIVERS: [&str; 5] = ["virtio_pci", "virtio_blk", "crc32c_generic", "crc32c_intel", "ext4"];

/// Stages the initramfs under `work/initramfs` and packs it to `work/initramfs.cpio`.
pub fn build(kernel: &Kernel, work: &Path) -> Result<PathBuf> {
    let root = work.join("initramfs");
    if root.exists() {
        fs::remove_dir_all(&root)?;
    }
    for dir in ["bin", "dev", "etc", "proc", "sys", "newroot", "lib/modules"] {
        fs::create_dir_all(root.join(dir))?;
    }
    files::install(Path::new(BUSYBOX), &root.join("bin/busybox"), 0o755)?;
    for applet in cmd::output_of(BUSYBOX, &["--list"])?.lines().map(str::trim) {
        // A link named busybox would replace the binary with a link to itself.
        if !applet.is_empty() && applet != "busybox" && !applet.contains('/') {
            symlink("busybox", root.join("bin").join(applet))?;
        }
    }
    let mut list = String::new();
    for file in module_files(kernel)? {
        let relative = file.strip_prefix(kernel.modules_dir()).with_context(|| format!("{}", file.display()))?;
        files::install(&file, &root.join("lib/modules").join(relative), 0o644)?;
        list += &format!("{}\n", relative.display());
    }
    fs::write(root.join("etc/modules.list"), list)?;
    files::install(&paths::workspace().join("tests/system/initramfs-init"), &root.join("init"), 0o755)?;

    let image = work.join("initramfs.cpio");
    let file = fs::File::create(&image).with_context(|| format!("creating {}", image.display()))?;
    let mut archive = Archive::new(BufWriter::new(file));
    archive.add_tree(&root)?;
    archive.add_char_device("dev/console", 5, 1)?;
    archive.finish()?;
    fs::remove_dir_all(&root)?;
    Ok(image)
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


