//! Merging hosts' profiles into a fleet: hosts told apart, counted once, and
//! decisions merged conservatively.

use std::path::PathBuf;

use super::*;
use crate::profile::{DecisionTarget, Module};
use crate::testutil::example_profile;

/// The example profile as host `name` learned it in one session starting on `day`.
fn host(name: &str, machine: Option<&str>, day: u32) -> Profile {
    let mut p = example_profile();
    p.host = name.to_string();
    p.machine_id = machine.map(str::to_string);
    let s = &mut p.sessions[0];
    (s.start, s.end) = (format!("2024-03-{day:02}T10:00:00Z"), format!("2024-03-{day:02}T10:10:00Z"));
    p
}

fn input(name: &str, profile: Profile) -> Input {
    Input { path: PathBuf::from(name), profile }
}

fn module<'a>(p: &'a Profile, name: &str) -> &'a Module {
    p.module(name).unwrap_or_else(|| panic!("{name} not in the fleet"))
}

fn decision(name: &str, verdict: Verdict, time: &str) -> Decision {
    let target = DecisionTarget::Module;
    Decision { name: name.into(), target, verdict, time: time.into(), extra: Default::default() }
}

#[test]
fn two_hosts_keep_who_saw_each_module_and_cause() {
    let mut b = host("b", Some("bbbbbbbbbbbb"), 2);
    b.modules.retain(|m| m.name != "binfmt_misc");
    b.kernel = "6.12.0".into();
    b.sessions[0].kernel = "6.12.0".into();
    let (fleet, notes) = merge(vec![input("a.json", host("a", Some("aaaaaaaaaaaa"), 1)), input("b.json", b)]).unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    assert!(fleet.is_fleet());
    let ids: Vec<&str> = fleet.hosts.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(fleet.host, "fleet of 2 hosts");
    assert_eq!(fleet.hosts[1].kernels, ["6.12.0"]);
    assert_eq!(fleet.hosts[0].machine_id.as_deref(), Some("aaaaaaaaaaaa"));
    assert_eq!(fleet.kernel, "6.12.0", "the kernel of the latest session");
    assert_eq!(module(&fleet, "appletalk").hosts, ["a", "b"]);
    assert_eq!(module(&fleet, "binfmt_misc").hosts, ["a"]);
    let appletalk = &module(&fleet, "appletalk").triggers;
    assert_eq!(appletalk.len(), 1, "the same cause on two hosts is one cause");
    assert_eq!(appletalk[0].hosts, ["a", "b"]);
    assert_eq!(appletalk[0].count, 2);
    let hosts: Vec<Option<&str>> = fleet.sessions.iter().map(|s| s.host.as_deref()).collect();
    assert_eq!(hosts, [Some("a"), Some("b")]);
}

#[test]
fn the_same_profile_twice_counts_once() {
    let a = host("a", Some("aaaaaaaaaaaa"), 1);
    let (fleet, notes) = merge(vec![input("a.json", a.clone()), input("copy.json", a.clone())]).unwrap();
    assert_eq!(fleet.hosts.len(), 1);
    assert_eq!(fleet.hosts[0].sessions, 1);
    assert_eq!(fleet.sessions.len(), 1);
    assert_eq!(module(&fleet, "appletalk").count, module(&a, "appletalk").count);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("a.json") && notes[0].contains("copy.json"), "{notes:?}");
}

#[test]
fn a_later_profile_of_the_same_host_replaces_the_earlier() {
    let first = host("a", Some("aaaaaaaaaaaa"), 1);
    let mut later = first.clone();
    later.merge(host("a", Some("aaaaaaaaaaaa"), 2));
    assert_eq!(module(&later, "appletalk").count, 2);
    // Given newest first: the order of the files does not matter.
    let (fleet, _) = merge(vec![input("later.json", later), input("first.json", first)]).unwrap();
    assert_eq!(fleet.hosts.len(), 1);
    assert_eq!(fleet.hosts[0].sessions, 2);
    assert_eq!(module(&fleet, "appletalk").count, 2, "not 3: the first file's session is in the later one");
}

#[test]
fn a_profile_without_machine_id_joins_the_host_of_its_name() {
    let old = host("a", None, 1);
    let mut newer = old.clone();
    newer.merge(host("a", Some("aaaaaaaaaaaa"), 2));
    let (fleet, _) = merge(vec![input("old.json", old), input("new.json", newer)]).unwrap();
    assert_eq!(fleet.hosts.len(), 1);
    assert_eq!(fleet.hosts[0].machine_id.as_deref(), Some("aaaaaaaaaaaa"));
}

#[test]
fn separate_learning_of_one_host_adds_up() {
    let (fleet, notes) = merge(vec![
        input("before-fresh.json", host("a", Some("aaaaaaaaaaaa"), 1)),
        input("after-fresh.json", host("a", Some("aaaaaaaaaaaa"), 5)),
    ])
    .unwrap();
    assert_eq!(fleet.hosts.len(), 1);
    assert_eq!(fleet.hosts[0].sessions, 2);
    assert_eq!(module(&fleet, "appletalk").count, 2);
    assert!(notes[0].contains("different sessions"), "{notes:?}");
}

#[test]
fn profiles_sharing_some_sessions_are_refused() {
    let mut one = host("a", Some("aaaaaaaaaaaa"), 1);
    let mut other = one.clone();
    one.merge(host("a", Some("aaaaaaaaaaaa"), 2));
    other.merge(host("a", Some("aaaaaaaaaaaa"), 3));
    let err = merge(vec![input("one.json", one), input("other.json", other)]).unwrap_err();
    assert!(matches!(err, FleetError::Overlap { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("one.json") && text.contains("other.json") && text.contains("host a"), "{text}");
}

#[test]
fn hosts_of_one_name_are_told_apart_by_machine_id() {
    let (fleet, _) = merge(vec![
        input("1.json", host("debian", Some("0123456789ab"), 1)),
        input("2.json", host("debian", Some("fedcba987654"), 2)),
    ])
    .unwrap();
    let ids: Vec<&str> = fleet.hosts.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["debian/01234567", "debian/fedcba98"]);
    assert_eq!(module(&fleet, "appletalk").hosts, ids);
}

#[test]
fn a_deny_on_any_input_wins_and_an_allow_stays_with_its_host() {
    let mut a = host("a", Some("aaaaaaaaaaaa"), 1);
    let mut b = host("b", Some("bbbbbbbbbbbb"), 2);
    let mut c = host("c", Some("cccccccccccc"), 3);
    b.decide(decision("appletalk", Verdict::Deny, "2024-03-01T00:00:00Z"));
    a.decide(decision("appletalk", Verdict::Allow, "2024-03-09T00:00:00Z"));
    c.decide(decision("ext4", Verdict::Allow, "2024-03-09T00:00:00Z"));
    let (fleet, _) = merge(vec![input("a.json", a), input("b.json", b), input("c.json", c)]).unwrap();
    let verdict = |name: &str| fleet.decision(name).map(|d| d.verdict);
    assert_eq!(verdict("appletalk"), Some(Verdict::Deny), "an earlier deny beats a later allow");
    assert_eq!(verdict("ext4"), Some(Verdict::Allow), "the union of the hosts' needs");
    let own = |id: &str| fleet.hosts.iter().find(|h| h.id == id).unwrap().decisions.clone();
    assert_eq!(own("a")[0].verdict, Verdict::Allow, "host a's own word is kept");
    assert_eq!(own("c").iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["ext4"]);
    assert!(own("b").iter().all(|d| d.name != "ext4"), "c's allow is not b's");
}

#[test]
fn a_fleet_profile_saves_and_loads_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (fleet, _) =
        merge(vec![input("a", host("a", Some("aaaaaaaaaaaa"), 1)), input("b", host("b", None, 2))]).unwrap();
    let path = dir.path().join("fleet.json");
    store::save(&path, &fleet).unwrap();
    assert_eq!(store::load(&path).unwrap(), fleet);
}

#[test]
fn a_corrupt_input_is_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("a.json");
    store::save(&good, &host("a", None, 1)).unwrap();
    let bad = dir.path().join("b.json");
    std::fs::write(&bad, "{\"schema\": \"modtrace-profile/2\", \"kernel\": ").unwrap();
    let out = dir.path().join("fleet.json");
    let err = merge_files(&[good.clone(), bad.clone()], &out).unwrap_err();
    assert!(err.to_string().contains(&bad.display().to_string()), "{err}");
    assert!(!out.exists(), "nothing written");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "no temporary file left either");
    let missing = dir.path().join("missing.json");
    let err = merge_files(&[good.clone(), missing.clone()], &out).unwrap_err();
    assert!(err.to_string().contains(&missing.display().to_string()), "{err}");
    assert!(!out.exists());
}

#[test]
fn a_fleet_is_not_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let (a, out) = (dir.path().join("a.json"), dir.path().join("fleet.json"));
    store::save(&a, &host("a", None, 1)).unwrap();
    let said = merge_files(std::slice::from_ref(&a), &out).unwrap();
    assert!(said.text(crate::said::Stream::Out).contains("1 host (a)"), "{said:?}");
    let err = merge_files(std::slice::from_ref(&out), &dir.path().join("again.json")).unwrap_err();
    assert!(matches!(err, FleetError::FleetInput { hosts: 1, .. }), "{err}");
}

#[test]
fn a_session_of_a_host_profile_has_no_host_field() {
    let text = host("a", None, 1).to_json();
    assert!(!text.contains("\"hosts\"") && !text.contains("\"machine_id\""), "{text}");
}
