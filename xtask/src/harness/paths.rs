//! Where things are: the workspace, the download cache, build outputs.

use std::path::{Path, PathBuf};

/// The workspace root (xtask lives one level below it).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask has a parent directory").to_path_buf()
}

/// `${MODTRACE_CACHE:-$HOME/.cache/modtrace}`.
pub fn cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("MODTRACE_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/modtrace")
}

/// Downloaded and unpacked kernels.
pub fn kernels() -> PathBuf {
    cache().join("kernels")
}

/// Per-run output of vm-test: initramfs trees, images, event logs.
pub fn vm_work() -> PathBuf {
    workspace().join("target/vm-test")
}

/// The cargo that runs xtask, so nested builds use the same toolchain.
pub fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}
