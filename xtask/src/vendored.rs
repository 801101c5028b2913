//! vendor/aya must stay crates.io's aya 0.14.0 plus vendor/aya.patch and
//! nothing else (vendor/README.md): a hash of the tree says so.

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use crate::harness::paths;

    /// aya-0.14.0.crate from crates.io, unpacked (without cargo's .cargo-ok marker).
    const PRISTINE: &str = "0a2a0bf85d31c3afd279865c20a54a43a94501955ed055f7841496cfb29b1343";
    /// The same with vendor/aya.patch applied.
    const PATCHED: &str = "3d57b3468080bdb4a310da7293965c931c5598d393729c4f9dbb73429222d919";

    /// sha256 of the sorted `sha256sum` lines of every file under `dir`.
    fn tree_hash(dir: &Path) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg("find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum")
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
    }

    fn run(cmd: &mut Command) {
        let status = cmd.status().unwrap();
        assert!(status.success(), "{cmd:?}: {status}");
    }

    #[test]
    fn vendored_aya_is_crates_io_aya_plus_its_one_patch() {
        let vendor = paths::workspace().join("vendor");
        assert_eq!(tree_hash(&vendor.join("aya")), PATCHED, "vendor/aya holds more than aya 0.14.0 + vendor/aya.patch");
        let copy = std::env::temp_dir().join(format!("modtrace-vendored-aya-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&copy);
        run(Command::new("cp").arg("-r").arg(vendor.join("aya")).arg(&copy));
        run(Command::new("patch").args(["-R", "-p1", "-s", "-i"]).arg(vendor.join("aya.patch")).current_dir(&copy));
        let pristine = tree_hash(&copy);
        std::fs::remove_dir_all(&copy).unwrap();
        assert_eq!(pristine, PRISTINE, "vendor/aya without vendor/aya.patch is not crates.io's aya 0.14.0");
    }
}
