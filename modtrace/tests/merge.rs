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

/// a and b, b without binfmt_misc; a knows example.service's package.
fn two_hosts(dir: &Path) -> PathBuf {
    let mut a: serde_json::Value = serde_json::from_str(&example_as("a")).unwrap();
    a["packages"] = serde_json::json!({ "units": { "example.service": "example" } });
    let mut b: serde_json::Value = serde_json::from_str(&example_as("b")).unwrap();
    b["modules"].as_array_mut().unwrap().retain(|m| m["name"] != "binfmt_misc");
    let a = write(dir, "a.json", &a.to_string());
    let b = write(dir, "b.json", &b.to_string());
    let out = dir.join("fleet.json");
    let run = modtrace(&["merge", "--out", out.to_str().unwrap(), a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    out
}

#[test]
fn generate_min_hosts_lists_what_enough_hosts_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = two_hosts(dir.path());
    let out = dir.path().join("generated");
    let args = ["generate", "--profile", fleet.to_str().unwrap(), "--min-hosts", "2", "--out", out.to_str().unwrap()];
    let run = modtrace(&args);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(err.contains("trusted on fewer than 2 hosts: binfmt_misc (1/2)"), "{err}");
    let list = std::fs::read_to_string(out.join("etc/modules-load.d/modtrace.conf")).unwrap();
    let listed: Vec<&str> = list.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
    assert!(listed.contains(&"appletalk") && !listed.contains(&"binfmt_misc"), "{listed:?}");
    let union = modtrace(&["generate", "--profile", fleet.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(union.status.success());
    let list = std::fs::read_to_string(out.join("etc/modules-load.d/modtrace.conf")).unwrap();
    assert!(list.lines().any(|l| l == "binfmt_misc"), "without --min-hosts, the union:\n{list}");
    let host = modtrace(&["generate", "--profile", dir.path().join("a.json").to_str().unwrap(), "--min-hosts", "1"]);
    assert_eq!(host.status.code(), Some(1), "--min-hosts needs a fleet");
}

#[test]
fn generate_vendor_writes_drop_ins_under_their_packages() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = two_hosts(dir.path());
    let vendor = dir.path().join("vendor");
    let run = modtrace(&["generate", "--profile", fleet.to_str().unwrap(), "--vendor", vendor.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    let drop_in = vendor.join("example/usr/lib/systemd/system/example.service.d/modtrace-modules.conf");
    let text = std::fs::read_to_string(&drop_in).unwrap();
    assert!(text.contains("Wants=modprobe@appletalk.service"), "{text}");
    assert!(text.contains(&format!("--vendor {}", vendor.display())), "the header's command:\n{text}");
    assert!(!vendor.join("etc").exists(), "only the packages' drop-ins");
}
