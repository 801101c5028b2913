//! What every guest's initramfs is made of: busybox, kmod and programs with
//! their libraries, kernel module files, packed as a newc cpio.

use std::fs;
use std::io::BufWriter;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use crate::guest::scenario;
use crate::harness::cpio::Archive;
use crate::harness::kernels::{self, Kernel};
use crate::harness::{cmd, files};

const BUSYBOX: &str = "/bin/busybox";
const KMOD: &str = "/bin/kmod";
const KMOD_TOOLS: [&str; 6] = ["modprobe", "insmod", "rmmod", "depmod", "lsmod", "modinfo"];

pub fn pack(root: &Path, image: &Path) -> Result<PathBuf> {
    let file = fs::File::create(image).with_context(|| format!("creating {}", image.display()))?;
    let mut archive = Archive::new(BufWriter::new(file));
    archive.add_tree(root)?;
    archive.add_char_device("dev/console", 5, 1)?;
    archive.finish()?;
    Ok(image.to_path_buf())
}

/// Copies a program to `root/dest` and every shared library `ldd` names for it.
pub fn install_program(root: &Path, program: &Path, dest: &str) -> Result<()> {
    files::install(program, &root.join(dest), 0o755)?;
    for library in files::shared_libraries(program)? {
        let inside = root.join(library.strip_prefix("/").expect("ldd paths are absolute"));
        if !inside.exists() {
            files::install(&library, &inside, 0o755)?;
        }
    }
    Ok(())
}

/// busybox-static with a symlink per applet (not for `busybox` itself, which
/// would replace the binary with a link to itself).
pub fn install_busybox(root: &Path) -> Result<()> {
    install_program(root, Path::new(BUSYBOX), "bin/busybox")?;
    for applet in cmd::output_of(BUSYBOX, &["--list"])?.lines().map(str::trim) {
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        symlink("busybox", root.join("bin").join(applet))?;
    }
    Ok(())
}

/// The real kmod as /sbin/modprobe etc. (PATH puts /sbin before busybox's /bin).
pub fn install_kmod(root: &Path) -> Result<()> {
    install_program(root, Path::new(KMOD), "bin/kmod")?;
    for tool in KMOD_TOOLS {
        symlink("/bin/kmod", root.join("sbin").join(tool))?;
    }
    Ok(())
}

/// The files `modprobe --show-depends` would insert for `module`, dependencies first.
pub fn module_files(kernel: &Kernel, module: &str) -> Result<Vec<PathBuf>> {
    let out = kernel.show_depends(module)?;
    let files = kernels::insmod_files(&out);
    if files.is_empty() {
        bail!("{module} is not a loadable module of {}: {out}", kernel.kver);
    }
    if files.iter().any(|f| f.to_string_lossy().contains(&format!("/{}.ko", scenario::MISSING_MODULE))) {
        bail!("{module} depends on {}, which must stay out of the image", scenario::MISSING_MODULE);
    }
    Ok(files)
}

/// An uncompressed copy of `module`, which must have no dependencies, at `dest`.
pub fn install_loose_module(kernel: &Kernel, module: &str, dest: &Path) -> Result<()> {
    let files = module_files(kernel, module)?;
    ensure!(files.len() == 1, "{module} has dependencies in {}: {files:?}", kernel.kver);
    fs::create_dir_all(dest.parent().expect("a module file has a directory"))?;
    install_uncompressed(&files[0], dest)
}

/// Copies a module file to `dest`, decompressing a .ko.xz.
pub fn install_uncompressed(file: &Path, dest: &Path) -> Result<()> {
    if file.extension().is_some_and(|e| e == "xz") {
        let out = Command::new("xz").arg("-dc").arg(file).output()?;
        ensure!(out.status.success(), "xz -dc {} failed", file.display());
        fs::write(dest, out.stdout)?;
        fs::set_permissions(dest, fs::Permissions::from_mode(0o644))?;
        Ok(())
    } else {
        files::install(file, dest, 0o644)
    }
}
