//! The report of a fleet: host counts, `--by host` under each host's own
//! decisions, `--by package` without guessing, and hosts' names escaped.
//! (Real guest profiles: tests/fleet_report.rs.)

use super::*;
use crate::needs::fleet::{host_plans, HostPlan};
use crate::needs::{self, target::Target};
use crate::profile::fleet::merge;
use crate::profile::Verdict;
use crate::testutil::{as_host, decision, example_profile, untrusted_profile};

/// Host `a`: example_profile; `c` and `d`: untrusted_profile (a user's vfat,
/// a container's dummy), `c` allowing fs-vfat; `d` denies binfmt_misc.
fn fleet(a: &str) -> Profile {
    let mut c = untrusted_profile();
    c.decide(decision("fs-vfat", Verdict::Allow));
    let mut d = untrusted_profile();
    d.decide(decision("binfmt_misc", Verdict::Deny));
    merge(vec![as_host(example_profile(), a, 1), as_host(c, "c", 2), as_host(d, "d", 3)]).unwrap().0
}

fn plans(p: &Profile) -> (needs::Plan, Vec<HostPlan>) {
    let plan = needs::plan(p, &Target::from_profile(p)).unwrap();
    // No modprobe.d under a directory that does not exist: no site policy.
    (plan, host_plans(p, std::path::Path::new("/nonexistent")))
}

fn report(p: &Profile, by: GroupBy) -> Report {
    let (plan, hosts) = plans(p);
    build_with(p, &plan, &hosts, by)
}

#[test]
fn module_rows_and_causes_count_the_hosts_that_saw_them() {
    let r = report(&fleet("a"), GroupBy::Module);
    let ids: Vec<&str> = r.fleet.as_ref().unwrap().iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["a", "c", "d"]);
    let m = |name: &str| r.modules.as_ref().unwrap().iter().find(|m| m.module == name).unwrap();
    let h = m("appletalk").hosts.as_ref().unwrap();
    assert_eq!((h.count, h.of, h.ratio()), (3, 3, "3/3".to_string()));
    assert_eq!(m("vfat").hosts.as_ref().unwrap().names, ["c", "d"]);
    assert_eq!(m("ext4").triggers[0].hosts.as_ref().unwrap().ratio(), "3/3");
    let table = table::table(&r);
    let vfat = table.lines().find(|l| l.starts_with("vfat ")).unwrap_or_else(|| panic!("{table}"));
    assert_eq!(vfat.split_whitespace().nth(1), Some("2/3"), "{table}");
    assert!(table.starts_with("fleet of 3 hosts (a, c, d), kernel 6.1.0-18-amd64: 3 learning sessions"), "{table}");
}

#[test]
fn by_host_applies_a_hosts_allow_there_only_and_every_deny_everywhere() {
    let r = report(&fleet("a"), GroupBy::Host);
    let hosts = r.by_host.unwrap();
    let host = |id: &str| hosts.iter().find(|h| h.host == id).unwrap();
    let needs = |id: &str| host(id).needs.iter().map(|n| n.module.clone()).collect::<Vec<_>>();
    let review = |id: &str| host(id).needs_review.iter().map(|n| n.module.clone()).collect::<Vec<_>>();
    assert!(needs("c").contains(&"vfat".to_string()) && !review("c").contains(&"vfat".to_string()));
    assert!(review("d").contains(&"vfat".to_string()) && !needs("d").contains(&"vfat".to_string()), "c's allow is c's");
    assert!(!needs("a").contains(&"vfat".to_string()), "a never saw vfat");
    for id in ["a", "c", "d"] {
        assert!(!needs(id).contains(&"binfmt_misc".to_string()), "d's deny holds on {id}");
    }
    assert!(host("a").denied.iter().any(|h| h.module == "binfmt_misc"));
    assert!(needs("a").contains(&"appletalk".to_string()) && review("c").contains(&"dummy".to_string()));
}

#[test]
fn by_host_of_one_hosts_profile_is_its_plan() {
    let p = example_profile();
    let plan = needs::plan(&p, &Target::from_profile(&p)).unwrap();
    let r = build_with(&p, &plan, &[], GroupBy::Host);
    let hosts = r.by_host.clone().unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].host, "kicksecure");
    let needs: Vec<&str> = hosts[0].needs.iter().map(|n| n.module.as_str()).collect();
    assert_eq!(needs, plan.top_level.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(r.fleet.is_none() && !json::json(&r).contains("\"fleet\""));
}

#[test]
fn by_package_never_gives_a_users_unit_the_systems_package() {
    let mut p = untrusted_profile();
    // The host's lightdm.service is packaged; the user's unit of that name is not it.
    p.packages.units.insert("lightdm.service".into(), "lightdm".into());
    p.packages.units.insert("example.service".into(), "example".into());
    let r = build(&p, &needs::plan(&p, &Target::from_profile(&p)).unwrap(), GroupBy::Package);
    let groups = r.packages.unwrap();
    let of = |package: Option<&str>| groups.iter().find(|g| g.package.as_deref() == package);
    assert!(of(Some("lightdm")).is_none(), "{groups:#?}");
    let example = of(Some("example")).unwrap();
    assert!(example.needs.iter().any(|n| n.unit.as_deref() == Some("example.service") && n.need.module == "appletalk"));
    let unknown = of(None).unwrap();
    let vfat: Vec<Option<String>> = unknown.needs.iter().filter(|n| n.need.module == "vfat").map(|n| n.who()).collect();
    assert!(vfat.contains(&Some("lightdm.service [user unit of uid 1000]".into())), "{vfat:?}");
    let table = table::table(&build(&p, &needs::plan(&p, &Target::from_profile(&p)).unwrap(), GroupBy::Package));
    assert!(table.contains("\n(no package known)\n  "), "{table}");
    assert!(table.contains("\nexample\n  example.service needs appletalk"), "{table}");
}

#[test]
fn hosts_names_are_escaped_in_every_view() {
    const EVIL: &str = "x\n\u{1b}[2J\u{202e}";
    for by in [GroupBy::Module, GroupBy::Host, GroupBy::Unit, GroupBy::Package] {
        for format in [Format::Table, Format::Markdown] {
            let p = fleet(EVIL);
            let (plan, hosts) = plans(&p);
            let text = render_with(&p, &plan, &hosts, format, by);
            assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{by:?} {format:?}: {text}");
            // Markdown doubles the backslashes of the escapes.
            assert!(text.contains("x\\") && text.contains("x1b[2J"), "{by:?} {format:?} hides the name:\n{text}");
        }
    }
}
