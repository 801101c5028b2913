//! The init_module name parse against every module of a real Debian kernel
//! (MODTRACE_TEST_MODULES, as for modtrace's kernel tests; `cargo xtask test`
//! sets it): each is named by its file's name, as kbuild names it ('-' as
//! '_'), so no module the kernel would load is refused for its image's shape.

use std::path::{Path, PathBuf};

use modtrace_common::{elf, NAME_LEN};

/// offsetof(struct module, name) on Debian's 6.1 (guard/kernel.rs reads it from BTF).
const NAME_OFF: u64 = 24;

fn modules(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            modules(&path, out);
        } else if path.extension().is_some_and(|e| e == "ko") {
            out.push(path);
        }
    }
}

#[test]
#[ignore = "needs a Debian kernel tree: cargo xtask test runs it (MODTRACE_TEST_MODULES)"]
fn every_module_of_a_real_kernel_is_named_by_its_file() {
    let dir = std::env::var_os("MODTRACE_TEST_MODULES").map(PathBuf::from).unwrap_or_else(|| {
        panic!("MODTRACE_TEST_MODULES is not set: run `cargo xtask test`, which points it at a Debian kernel's lib/modules/KVER")
    });
    let mut files = Vec::new();
    modules(&dir.join("kernel"), &mut files);
    assert!(files.len() > 1000, "{}: only {} uncompressed modules", dir.display(), files.len());
    for file in &files {
        let image = std::fs::read(file).unwrap();
        let mut out = [0u8; NAME_LEN];
        let parsed = elf::module_name(&image[..], NAME_OFF, &mut out);
        let name = std::str::from_utf8(&out[..out.iter().position(|&b| b == 0).unwrap()]).unwrap();
        let want = file.file_stem().unwrap().to_str().unwrap().replace('-', "_");
        assert_eq!((parsed, name), (Ok(()), want.as_str()), "{}", file.display());
    }
}
