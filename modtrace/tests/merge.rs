//! `modtrace merge` as a user runs it: the exit status, what is written (and
//! what is not, when an input is corrupt), and `report` reading the fleet.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// docs/profile.md's example profile, learned by host `name`.
fn example_as(name: &str) -> String {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/profile.md")).unwrap();
    let start = doc.find("<!-- example:begin -->\n```json\n").unwrap() + "<!-- example:begin -->\n```json\n".len();
    let end = doc[start..].find("```\n<!-- example:end -->").unwrap() + start;
    let mut v: serde_json::Value = serde_json::from_str(&doc[start..end]).unwrap();
    v["host"] = name.into();
    v["machine_id"] = format!("{name:0>32}").into();
    serde_json::to_string_pretty(&v).unwrap()
}

fn modtrace(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modtrace")).args(args).output().expect("run modtrace")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn two_hosts_merge_and_the_fleet_reads_as_a_profile() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.json", &example_as("a"));
    let b = write(dir.path(), "b.json", &example_as("b"));
    let out = dir.path().join("fleet.json");
    let run = modtrace(&["merge", "--out", out.to_str().unwrap(), a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(String::from_utf8_lossy(&run.stdout).contains("2 hosts (a, b)"));
    let fleet: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(fleet["hosts"].as_array().unwrap().len(), 2);
    let report = modtrace(&["report", "--profile", out.to_str().unwrap()]);
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(text.contains("fleet of 2 hosts") && text.contains("appletalk"), "{text}");
}

#[test]
fn a_corrupt_input_fails_naming_it_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.json", &example_as("a"));
    let bad = write(dir.path(), "bad.json", &example_as("b")[..200]);
    let out = dir.path().join("fleet.json");
    let run = modtrace(&["merge", "--out", out.to_str().unwrap(), a.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains(bad.to_str().unwrap()) && err.contains("truncated"), "{err}");
    assert!(!out.exists());
    let usage = modtrace(&["merge", "--out", out.to_str().unwrap()]);
    assert_eq!(usage.status.code(), Some(2), "no input is a usage error");
}
