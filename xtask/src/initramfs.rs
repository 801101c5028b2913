//! The guest's initramfs: busybox, kmod, modtrace and the guest tool with their
//! libraries, the scenario's modules (with dependencies, depmod'ed in place),
//! tests/guest/init as /init, packed as a newc cpio.

use std::collections::BTreeSet;
use std::fs;
use std::io::BufWriter;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use crate::cpio::Archive;
use crate::kernels::{self, Kernel};
use crate::{cmd, files, paths, scenario};

const BUSYBOX: &str = "/bin/busybox";
const KMOD: &str = "/bin/kmod";
const KMOD_TOOLS: [&str; 6] = ["modprobe", "insmod", "rmmod", "depmod", "lsmod", "modinfo"];
const DIRS: [&str; 13] =
    ["bin", "sbin", "dev", "etc", "lib", "proc", "sys", "tmp", "run", "root", "mnt", "usr", scenario::LOOSE_DIR];

/// The programs the guest runs, built on the host.
pub struct Programs<'a> {
    pub modtrace: &'a Path,
    pub guest_tool: &'a Path,
}

/// Stages the guest's root under `work/root` and packs it to `work/initramfs.cpio`.
pub fn build(kernel: &Kernel, programs: &Programs, work: &Path) -> Result<PathBuf> {
    let root = work.join("root");
    if root.exists() {
        fs::remove_dir_all(&root)?;
    }
    for dir in DIRS {
        fs::create_dir_all(root.join(dir))?;
    }
    install_busybox(&root)?;
    install_kmod(&root)?;
    install_program(&root, programs.modtrace, "bin/modtrace")?;
    install_program(&root, programs.guest_tool, "bin/modtrace-guest")?;
    install_bpftool(&root, work)?;
    files::install(&paths::workspace().join("tests/guest/init"), &root.join("init"), 0o755)?;
    for script in ["guard.sh", "early.sh"] {
        files::install(&paths::workspace().join("tests/guest").join(script), &root.join(script), 0o755)?;
    }
    fs::write(root.join("etc/scenario.env"), scenario::env_file())?;
    install_modules(kernel, &root)?;
    install_loose_modules(kernel, &root)?;
    install_kthread_socket_modules(kernel, &root)?;
    pack(&root, &work.join("initramfs.cpio"))
}

/// Debian's bpftool (the host's release: its libelf, zlib and libcap are the
/// host's, as for every other program here), as /sbin/bpftool: the sealed
/// guard's undo attempts by id and by pin.
fn install_bpftool(root: &Path, work: &Path) -> Result<()> {
    let packages = crate::bench::unpack_packages(work, &["bpftool"])?;
    crate::bench::install_packaged(root, &packages, "usr/sbin/bpftool")?;
    symlink("/usr/sbin/bpftool", root.join("sbin/bpftool"))?;
    Ok(())
}

pub(crate) fn pack(root: &Path, image: &Path) -> Result<PathBuf> {
    let file = fs::File::create(image).with_context(|| format!("creating {}", image.display()))?;
    let mut archive = Archive::new(BufWriter::new(file));
    archive.add_tree(root)?;
    archive.add_char_device("dev/console", 5, 1)?;
    archive.finish()?;
    Ok(image.to_path_buf())
}

/// Copies a program to `root/dest` and every shared library `ldd` names for it.
pub(crate) fn install_program(root: &Path, program: &Path, dest: &str) -> Result<()> {
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
pub(crate) fn install_busybox(root: &Path) -> Result<()> {
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
pub(crate) fn install_kmod(root: &Path) -> Result<()> {
    install_program(root, Path::new(KMOD), "bin/kmod")?;
    for tool in KMOD_TOOLS {
        symlink("/bin/kmod", root.join("sbin").join(tool))?;
    }
    Ok(())
}

/// The scenario's modprobe-able modules and their dependencies, in the same
/// layout as the kernel package, then depmod so the index matches the content.
fn install_modules(kernel: &Kernel, root: &Path) -> Result<()> {
    let source = kernel.modules_dir();
    let dest = root.join("lib/modules").join(&kernel.kver);
    let mut files = BTreeSet::new();
    for module in scenario::MODPROBE_MODULES {
        files.extend(module_files(kernel, module)?);
    }
    // Modules in some kernels, built in in others.
    for module in scenario::KTHREAD_IF_MODULE {
        files.extend(module_files(kernel, module).unwrap_or_default());
    }
    for file in &files {
        let relative = file
            .strip_prefix(&source)
            .with_context(|| format!("{} is outside {}", file.display(), source.display()))?;
        files::install(file, &dest.join(relative), 0o644)?;
    }
    for index in ["modules.builtin", "modules.builtin.modinfo", "modules.order"] {
        files::install(&source.join(index), &dest.join(index), 0o644)?;
    }
    cmd::run(Command::new("depmod").arg("-b").arg(root).arg(&kernel.kver))?;
    check_missing_alias(&dest)
}

/// The request for the missing alias must fail: nothing in the image may provide it.
fn check_missing_alias(modules: &Path) -> Result<()> {
    let aliases = fs::read_to_string(modules.join("modules.alias"))?;
    let needle = format!("alias {} ", scenario::MISSING_ALIAS);
    ensure!(
        !aliases.lines().any(|l| l.starts_with(&needle)),
        "the initramfs provides {}, whose request must fail",
        scenario::MISSING_ALIAS
    );
    Ok(())
}

/// The files `modprobe --show-depends` would insert for `module`, dependencies first.
pub(crate) fn module_files(kernel: &Kernel, module: &str) -> Result<Vec<PathBuf>> {
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

/// AF_ALG's modules for the kernel-thread step, uncompressed (busybox insmod)
/// outside /lib/modules: depmod never sees them, so net-pf-38 stays missing.
fn install_kthread_socket_modules(kernel: &Kernel, root: &Path) -> Result<()> {
    for module in scenario::KTHREAD_SOCKET_MODULES {
        let files = kernels::insmod_files(&kernel.show_depends(module)?);
        let file = files.last().with_context(|| format!("{module} is not a loadable module of {}", kernel.kver))?;
        let dest = root.join(scenario::KTHREAD_DIR).join(format!("{module}.ko"));
        fs::create_dir_all(dest.parent().expect("a module file has a directory"))?;
        install_uncompressed(file, &dest)?;
    }
    Ok(())
}

/// Uncompressed copies, for insmod and init_module (busybox reads no .ko.xz), of
/// modules that must have no dependencies (so one call loads each).
fn install_loose_modules(kernel: &Kernel, root: &Path) -> Result<()> {
    for module in scenario::LOOSE_MODULES {
        install_loose_module(kernel, module, &root.join(scenario::LOOSE_DIR).join(format!("{module}.ko")))?;
    }
    Ok(())
}

/// An uncompressed copy of `module`, which must have no dependencies, at `dest`.
pub fn install_loose_module(kernel: &Kernel, module: &str, dest: &Path) -> Result<()> {
    let files = module_files(kernel, module)?;
    ensure!(files.len() == 1, "{module} has dependencies in {}: {files:?}", kernel.kver);
    fs::create_dir_all(dest.parent().expect("a module file has a directory"))?;
    install_uncompressed(&files[0], dest)
}

/// Copies a module file to `dest`, decompressing a .ko.xz.
fn install_uncompressed(file: &Path, dest: &Path) -> Result<()> {
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

/// True when the kernel's modules are compressed (.ko.xz): kmod then loads them
/// with init_module after a failed finit_module.
pub fn compressed_modules(kernel: &Kernel) -> Result<bool> {
    let files = module_files(kernel, scenario::EXPLICIT_MODULE)?;
    Ok(files.iter().any(|f| f.extension().is_some_and(|e| e == "xz")))
}

