use std::path::Path;

use aya_build::{Package, Toolchain};

/// Builds the eBPF programs with Debian's rustc (which ships a prebuilt `core` for
/// bpfel-unknown-none) and leaves the object in OUT_DIR for include_bytes.
fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let ebpf_dir = Path::new(&manifest_dir).join("../modtrace-ebpf");
    let ebpf_dir = ebpf_dir.to_str().expect("utf-8 path");
    println!("cargo:rerun-if-changed=../modtrace-common/src");
    let package = Package { name: "modtrace-ebpf", root_dir: ebpf_dir, ..Default::default() };
    aya_build::build_ebpf([package], Toolchain::Custom("/usr"))
}
