//! Every seed and every input a fuzzer once failed on (regressions/TARGET/)
//! goes through its target's check on each `cargo test`.

use std::fs;
use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    if target == "decode" {
        for record in modtrace_fuzz::decode_seeds() {
            check(&record);
            seen += 1;
        }
    }
    if target == "profile" {
        check(modtrace_fuzz::profile_seed().as_bytes());
    }
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = fs::read_dir(root.join(dir).join(target)) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = fs::read(&path).unwrap();
            println!("{}", path.display());
            check(&data);
            seen += 1;
        }
    }
    assert!(seen > 0, "no seeds for {target}");
}

#[test]
fn decode() {
    replay("decode", modtrace_fuzz::decode);
}

#[test]
fn profile() {
    replay("profile", modtrace_fuzz::profile);
}

#[test]
fn proc_modules() {
    replay("proc_modules", modtrace_fuzz::proc_modules);
}

#[test]
fn modprobe_d() {
    replay("modprobe_d", modtrace_fuzz::modprobe_d);
}

#[test]
fn module_name() {
    replay("module_name", modtrace_fuzz::module_name);
}
