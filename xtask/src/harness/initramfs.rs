//! What every guest's root is made of: busybox, kmod and programs with their
//! libraries, a kernel's module files (depmod'ed in place), and the newc cpio
//! an initramfs is packed as.

use std::collections::BTreeSet;
use std::fs;
use std::io::BufWriter;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

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
    Ok(files)
}

/// The files of `modules` and of every module they depend on.
pub fn with_dependencies(kernel: &Kernel, modules: &[&str]) -> Result<BTreeSet<PathBuf>> {
    let mut files = BTreeSet::new();
    for module in modules {
        files.extend(module_files(kernel, module)?);
    }
    Ok(files)
}

/// Which of a kernel's modules go into a guest's root.
pub enum Modules<'a> {
    /// The whole tree under usr/lib/modules, as the kernel package installs
    /// it: for a full Debian system.
    All,
    /// These files (with_dependencies), under lib/modules, with the kernel's
    /// lists of built-in and ordered modules: for a small initramfs.
    Files(&'a BTreeSet<PathBuf>),
}

/// Installs `which` of the kernel's modules into `root`, then runs depmod
/// there so that modules.dep and modules.alias describe what is inside.
/// Returns the modules directory.
pub fn install_modules(kernel: &Kernel, root: &Path, which: Modules) -> Result<PathBuf> {
    let dest = match which {
        Modules::All => copy_module_tree(kernel, root)?,
        Modules::Files(files) => copy_module_files(kernel, root, files)?,
    };
    cmd::run(Command::new("depmod").arg("-b").arg(root).arg(&kernel.kver))?;
    Ok(dest)
}

fn copy_module_tree(kernel: &Kernel, root: &Path) -> Result<PathBuf> {
    let dir = root.join("usr/lib/modules");
    fs::create_dir_all(&dir)?;
    cmd::run(Command::new("cp").arg("-a").arg(kernel.modules_dir()).arg(dir.join(&kernel.kver)))?;
    // root/lib is a link to usr/lib in a merged-/usr system: depmod -b finds it there.
    Ok(dir.join(&kernel.kver))
}

fn copy_module_files(kernel: &Kernel, root: &Path, files: &BTreeSet<PathBuf>) -> Result<PathBuf> {
    let source = kernel.modules_dir();
    let dest = root.join("lib/modules").join(&kernel.kver);
    for file in files {
        let relative = file
            .strip_prefix(&source)
            .with_context(|| format!("{} is outside {}", file.display(), source.display()))?;
        files::install(file, &dest.join(relative), 0o644)?;
    }
    for index in ["modules.builtin", "modules.builtin.modinfo", "modules.order"] {
        files::install(&source.join(index), &dest.join(index), 0o644)?;
    }
    Ok(dest)
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
