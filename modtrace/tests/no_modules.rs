//! On a kernel without loadable module support every command that needs the
//! running kernel's modules says so in the same words (issue: `trace` named a
//! missing modules.dep.bin instead). This machine kind's own kernel has no
//! module support, so there the words are checked; on a kernel with modules,
//! that none of the commands claims otherwise.

use std::path::Path;
use std::process::Command;

const COMMANDS: &[&[&str]] = &[
    &["trace", "--duration", "1s"],
    &["learn", "--duration", "1s", "--out", "/nonexistent-modtrace-test/p.json"],
    &["learn", "--early"],
    &["snapshot"],
    &["guard", "start", "--mode", "complain"],
];

const WORDS: &str = "this kernel was built without loadable module support";

fn stderr_of(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_modtrace")).args(args).output().expect("run modtrace");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn every_command_names_a_kernel_without_modules_alike() {
    let no_modules = !Path::new("/proc/modules").exists();
    let mut lines = Vec::new();
    for args in COMMANDS {
        let (code, err) = stderr_of(args);
        let line = err.lines().find(|l| l.contains(WORDS)).map(str::to_string);
        match (no_modules, line) {
            (true, Some(l)) => {
                assert_eq!(code, Some(1), "{args:?}: {err}");
                lines.push(l);
            }
            (true, None) => panic!("{args:?} did not name the missing module support:\n{err}"),
            (false, Some(l)) => panic!("{args:?} says there is no module support on a kernel with /proc/modules: {l}"),
            (false, None) => {}
        }
    }
    lines.dedup();
    assert!(lines.len() <= 1, "the commands say it in different words: {lines:#?}");
}
