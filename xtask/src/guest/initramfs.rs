//! The guest's initramfs: busybox, kmod, modtrace and the guest tool with their
//! libraries, the scenario's modules (with dependencies, depmod'ed in place),
//! tests/guest/init as /init, packed as a newc cpio.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};

use super::scenario;
use crate::harness::initramfs::{
    install_busybox, install_kmod, install_loose_module, install_modules, install_program, install_uncompressed,
    module_files, pack, with_dependencies, Modules,
};
use crate::harness::kernels::{self, Kernel};
use crate::harness::{files, paths};

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
    install_scenario_modules(kernel, &root)?;
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
    std::os::unix::fs::symlink("/usr/sbin/bpftool", root.join("sbin/bpftool"))?;
    Ok(())
}

/// The scenario's modprobe-able modules and their dependencies, without the
/// one whose alias must stay unresolved.
fn install_scenario_modules(kernel: &Kernel, root: &Path) -> Result<()> {
    let mut files = with_dependencies(kernel, &scenario::MODPROBE_MODULES)?;
    // Modules in some kernels, built in in others.
    for module in scenario::KTHREAD_IF_MODULE {
        files.extend(module_files(kernel, module).unwrap_or_default());
    }
    let missing = format!("/{}.ko", scenario::MISSING_MODULE);
    if let Some(file) = files.iter().find(|f| f.to_string_lossy().contains(&missing)) {
        bail!("{} is among the modules' dependencies; it must stay out of the image", file.display());
    }
    let dest = install_modules(kernel, root, Modules::Files(&files))?;
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

/// True when the kernel's modules are compressed (.ko.xz): kmod then loads them
/// with init_module after a failed finit_module.
pub fn compressed_modules(kernel: &Kernel) -> Result<bool> {
    let files = module_files(kernel, scenario::EXPLICIT_MODULE)?;
    Ok(files.iter().any(|f| f.extension().is_some_and(|e| e == "xz")))
}
