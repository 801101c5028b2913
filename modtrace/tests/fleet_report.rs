//! A fleet of real hosts: the profiles two system-test guests learned
//! (tests/fixtures/fleet/README.md: Debian 12 on 6.1, Debian 13 on 6.12),
//! merged, reported (N/M, --by host, --by package) and cut by --min-hosts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BOOKWORM: &str = "modtrace-test/d34de89f";
const TRIXIE: &str = "modtrace-test/b0ff863b";

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fleet").join(name).display().to_string()
}

fn modtrace(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modtrace")).args(args).output().expect("run modtrace")
}

fn stdout(run: &Output) -> String {
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    String::from_utf8_lossy(&run.stdout).into_owned()
}

fn merged(dir: &Path, name: &str, inputs: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut args = vec!["merge".to_string(), "--out".into(), out.display().to_string()];
    args.extend(inputs.iter().map(|i| fixture(i)));
    stdout(&modtrace(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    out
}

fn json(path: &Path, by: &str) -> serde_json::Value {
    let run = modtrace(&["report", "--profile", path.to_str().unwrap(), "--format", "json", "--by", by]);
    serde_json::from_str(&stdout(&run)).unwrap()
}

fn names(v: &serde_json::Value) -> Vec<&str> {
    v.as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect()
}

#[test]
fn merging_is_idempotent_and_order_free() {
    let dir = tempfile::tempdir().unwrap();
    let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
    let once = read(merged(dir.path(), "a.json", &["bookworm.json", "trixie.json"]));
    let again = read(merged(dir.path(), "b.json", &["bookworm.json", "trixie.json", "bookworm.json"]));
    let turned = read(merged(dir.path(), "c.json", &["trixie.json", "bookworm.json"]));
    assert_eq!(once, again, "the same host's profile twice counts once");
    assert_eq!(once, turned, "the order of the inputs does not matter");
    let fleet: serde_json::Value = serde_json::from_str(&once).unwrap();
    let ids: Vec<&str> = fleet["hosts"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [TRIXIE, BOOKWORM], "two hosts of one name, told apart by machine id");
}

#[test]
fn each_module_row_says_on_how_many_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = merged(dir.path(), "fleet.json", &["bookworm.json", "trixie.json"]);
    let v = json(&fleet, "module");
    let hosts: Vec<&str> = v["fleet"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap()).collect();
    assert_eq!(hosts, [TRIXIE, BOOKWORM]);
    let module = |name: &str| v["modules"].as_array().unwrap().iter().find(|m| m["module"] == name).unwrap().clone();
    let on = |name: &str| (module(name)["hosts"]["count"].as_u64().unwrap(), module(name)["hosts"]["of"].clone());
    assert_eq!(on("appletalk"), (2, 2.into()));
    assert_eq!(names(&module("dm_mod")["hosts"]["names"]), [BOOKWORM], "systemd-repart ran on bookworm only");
    assert_eq!(names(&module("nft_chain_nat")["hosts"]["names"]), [TRIXIE], "nftables ran on trixie only");
    // binfmt_misc: bookworm's mount, trixie's systemd-binfmt; each cause on one host.
    let binfmt = module("binfmt_misc");
    let causes: Vec<u64> =
        binfmt["triggers"].as_array().unwrap().iter().map(|t| t["hosts"]["count"].as_u64().unwrap()).collect();
    assert_eq!((module("binfmt_misc")["hosts"]["count"].as_u64(), causes), (Some(2), vec![1, 1]));

    let text = stdout(&modtrace(&["report", "--profile", fleet.to_str().unwrap()]));
    let header = format!("fleet of 2 hosts ({TRIXIE}, {BOOKWORM}), kernels 6.1.0-57-amd64, 6.12.118+deb13-amd64:");
    assert!(text.starts_with(&header), "{text}");
    let row = |start: &str| text.lines().find(|l| l.starts_with(start)).unwrap_or_else(|| panic!("{start}:\n{text}"));
    assert!(row("MODULE ").split_whitespace().take(3).eq(["MODULE", "HOSTS", "COUNT"]), "{text}");
    assert!(row("dm_mod ").split_whitespace().nth(1) == Some("1/2"), "{text}");
    assert!(row("appletalk ").split_whitespace().nth(1) == Some("2/2"), "{text}");
}

#[test]
fn one_hosts_profile_reads_as_before() {
    let text = stdout(&modtrace(&["report", "--profile", &fixture("bookworm.json")]));
    assert!(text.starts_with("host modtrace-test, kernel 6.1.0-57-amd64: 1 learning session"), "{text}");
    assert!(text.contains("\nMODULE ") && !text.contains("HOSTS") && !text.contains("/2 "), "{text}");
    let v = json(Path::new(&fixture("bookworm.json")), "module");
    assert!(v.get("fleet").is_none() && v["modules"][0].get("hosts").is_none(), "{v}");
}

#[test]
fn by_host_shows_what_each_host_needs_and_what_waits_for_review() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = merged(dir.path(), "fleet.json", &["bookworm.json", "trixie.json"]);
    let v = json(&fleet, "host");
    let host = |id: &str| v["by_host"].as_array().unwrap().iter().find(|h| h["host"] == id).unwrap().clone();
    let needs = |id: &str| -> Vec<String> {
        host(id)["needs"].as_array().unwrap().iter().map(|n| n["module"].as_str().unwrap().to_string()).collect()
    };
    let (bookworm, trixie) = (needs(BOOKWORM), needs(TRIXIE));
    for m in ["appletalk", "ext4", "configfs"] {
        assert!(bookworm.iter().any(|n| n == m) && trixie.iter().any(|n| n == m), "{m} on both");
    }
    assert!(bookworm.iter().any(|n| n == "dm_mod") && !trixie.iter().any(|n| n == "dm_mod"));
    assert!(trixie.iter().any(|n| n == "nft_chain_nat") && !bookworm.iter().any(|n| n == "nft_chain_nat"));
    assert_eq!(host(TRIXIE)["needs_review"][0]["module"], "squashfs", "udisks2 mounted for uid 1000");
    assert!(host(BOOKWORM)["needs_review"].as_array().unwrap().is_empty());
    assert_eq!(host(TRIXIE)["kernels"][0], "6.12.118+deb13-amd64");

    let text = stdout(&modtrace(&["report", "--profile", fleet.to_str().unwrap(), "--by", "host"]));
    let start = text.find(&format!("\n{TRIXIE} (kernel 6.12.118+deb13-amd64; 1 session, 1 boot)\n")).expect(&text);
    let section = &text[start + 1..text[start + 1..].find(&format!("\n{BOOKWORM} ")).unwrap() + start + 1];
    assert!(section.contains("\n  needs nft_ct (with ") && section.contains("\n  review: squashfs: "), "{section}");
}

#[test]
fn by_package_says_which_units_of_a_package_need_what() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = merged(dir.path(), "fleet.json", &["bookworm.json", "trixie.json"]);
    let v = json(&fleet, "package");
    let groups = v["packages"].as_array().unwrap();
    let group = |p: Option<&str>| groups.iter().find(|g| g["package"].as_str() == p).unwrap().clone();
    let pairs = |g: serde_json::Value| -> Vec<(String, String)> {
        let who = |n: &serde_json::Value| n["unit"].as_str().or(n["executable"].as_str()).unwrap_or("").to_string();
        g["needs"].as_array().unwrap().iter().map(|n| (who(n), n["module"].as_str().unwrap().to_string())).collect()
    };
    let has = |g: &[(String, String)], who: &str, m: &str| g.iter().any(|(w, n)| w == who && n == m);
    let systemd = pairs(group(Some("systemd")));
    assert!(has(&systemd, "systemd-binfmt.service", "binfmt_misc"), "{systemd:?}");
    assert!(has(&systemd, "systemd-repart.service", "dm_mod") && has(&systemd, "sys-kernel-config.mount", "configfs"));
    let nftables = pairs(group(Some("nftables")));
    assert!(has(&nftables, "nftables.service", "nft_chain_nat"), "{nftables:?}");
    assert!(!nftables.iter().any(|(w, _)| w == "/usr/sbin/nft"), "nft's need is already its unit's");
    assert!(has(&pairs(group(Some("wireguard-tools"))), "wg-quick@mtwg0.service", "wireguard"));
    assert!(has(&pairs(group(Some("mount"))), "/usr/bin/mount", "vfat"), "mnt-fat.mount is the test's own");
    let unknown = pairs(group(None));
    assert!(has(&unknown, "fake-dm.service", "appletalk") && has(&unknown, "mnt-fat.mount", "vfat"), "{unknown:?}");
    assert_eq!(groups.last().unwrap()["package"], serde_json::Value::Null, "the unknown last");

    let text = stdout(&modtrace(&["report", "--profile", fleet.to_str().unwrap(), "--by", "package"]));
    let nf_tables = "\nnftables\n  nftables.service needs nf_tables (with libcrc32c, nfnetlink) via \
                     nfnetlink-subsys-10";
    assert!(text.contains(nf_tables), "{text}");
    assert!(text.contains(&format!("on 1/2 hosts ({TRIXIE})")) && text.contains("\n(no package known)\n"), "{text}");
}

#[test]
fn min_hosts_keeps_what_both_hosts_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = merged(dir.path(), "fleet.json", &["bookworm.json", "trixie.json"]);
    let out = dir.path().join("baseline");
    let (fleet, out) = (fleet.to_str().unwrap(), out.to_str().unwrap());
    let run = modtrace(&["generate", "--profile", fleet, "--min-hosts", "2", "--out", out]);
    let err = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "{err}");
    for left_out in ["dm_mod (1/2)", "nft_chain_nat (1/2)", "fuse (1/2)", "minix (1/2)"] {
        assert!(err.contains(left_out), "{left_out}: {err}");
    }
    let list = std::fs::read_to_string(Path::new(out).join("etc/modules-load.d/modtrace.conf")).unwrap();
    let listed: Vec<&str> = list.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
    for m in ["appletalk", "configfs", "ext4", "binfmt_misc"] {
        assert!(listed.contains(&m), "{m} was trusted on both: {listed:?}");
    }
    assert!(!listed.contains(&"dm_mod") && !listed.contains(&"squashfs"), "{listed:?}");
}
