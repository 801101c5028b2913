//! A fleet's baseline: trusted on at least N hosts, allows per host, denies
//! everywhere; and a fleet without --min-hosts as the union of its hosts.

use super::*;
use crate::needs::sitepolicy::SitePolicy;
use crate::needs::target::Target;
use crate::profile::fleet::merge;
use crate::testutil::{as_host, decision, example_profile, untrusted_profile};

/// a and b: root's modules (b without binfmt_misc); c and d: the same plus a
/// user's vfat and a container's dummy, which c allowed (vfat).
fn fleet(edit: impl Fn(&str, &mut Profile)) -> Profile {
    let mut inputs = Vec::new();
    for (i, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
        let mut p = if i < 2 { example_profile() } else { untrusted_profile() };
        if name == "b" {
            p.modules.retain(|m| m.name != "binfmt_misc");
        }
        if name == "c" {
            p.decide(decision("fs-vfat", Verdict::Allow));
        }
        edit(name, &mut p);
        inputs.push(as_host(p, name, i as u32 + 1));
    }
    merge(inputs).unwrap().0
}

fn counts(b: &Baseline) -> Vec<(&str, usize)> {
    b.left_out.iter().map(|(m, n)| (m.as_str(), *n)).collect()
}

fn kept(b: &Baseline) -> Vec<&str> {
    b.profile.modules.iter().map(|m| m.name.as_str()).collect()
}

#[test]
fn an_allow_counts_on_the_host_that_made_it_only() {
    let f = fleet(|_, _| {});
    let on = |name: &str| trusted_on(&f, f.module(name).unwrap()).into_iter().collect::<Vec<_>>();
    assert_eq!(on("appletalk"), ["a", "b", "c", "d"]);
    assert_eq!(on("binfmt_misc"), ["a", "c", "d"]);
    assert_eq!(on("vfat"), ["c"], "d saw vfat too, but only c allowed it");
    assert!(on("dummy").is_empty());
}

#[test]
fn min_hosts_keeps_what_was_trusted_on_enough_hosts() {
    let f = fleet(|_, _| {});
    let three = baseline(&f, 3).unwrap();
    assert_eq!(counts(&three), [("dummy", 0), ("vfat", 1)]);
    assert!(kept(&three).contains(&"binfmt_misc") && kept(&three).contains(&"jbd2"), "{:?}", kept(&three));
    let four = baseline(&f, 4).unwrap();
    assert_eq!(counts(&four), [("binfmt_misc", 3), ("dummy", 0), ("vfat", 1)]);
    let plan = crate::needs::derive(&four.profile, &SitePolicy::default(), &Target::from_profile(&four.profile)).unwrap();
    assert!(plan.top_level.contains(&"appletalk".to_string()), "{:?}", plan.top_level);
    assert!(!plan.needs.contains_key("binfmt_misc") && !plan.needs.contains_key("vfat"));
    assert!(baseline(&example_profile(), 1).is_none(), "a host's own profile has no baseline");
}

#[test]
fn dependencies_count_where_the_module_needing_them_was_trusted() {
    let b = baseline(&fleet(|_, _| {}), 4).unwrap();
    let jbd2 = b.profile.module("jbd2").expect("kept: ext4 needs it on every host");
    assert!(!jbd2.top_level, "still ext4's dependency");
}

#[test]
fn an_allow_on_the_fleet_itself_counts_on_every_host_that_saw_it() {
    let mut f = fleet(|_, _| {});
    f.decide(decision("dummy", Verdict::Allow));
    assert_eq!(trusted_on(&f, f.module("dummy").unwrap()).len(), 2);
    assert_eq!(counts(&baseline(&f, 2).unwrap()), [("vfat", 1)]);
}

#[test]
fn a_deny_on_one_host_keeps_the_module_out_of_the_fleet() {
    let f = fleet(|name, p| {
        if name == "b" {
            p.decide(decision("appletalk", Verdict::Deny));
        }
    });
    let b = baseline(&f, 2).unwrap();
    let plan = crate::needs::derive(&b.profile, &SitePolicy::default(), &Target::from_profile(&b.profile)).unwrap();
    assert!(plan.denied.contains_key("appletalk"), "{:?}", plan.denied.keys());
    assert!(!plan.top_level.contains(&"appletalk".to_string()));
}

#[test]
fn without_min_hosts_a_fleet_needs_the_union_of_its_hosts_trusted_needs() {
    let f = fleet(|_, _| {});
    let plan = crate::needs::derive(&f, &SitePolicy::default(), &Target::from_profile(&f)).unwrap();
    for m in ["appletalk", "binfmt_misc", "vfat"] {
        assert!(plan.needs.contains_key(m), "{m} needed: {:?}", plan.needs.keys());
    }
    assert!(plan.review.contains_key("dummy"), "no host trusted it: {:?}", plan.review.keys());
}

#[test]
fn a_hosts_share_holds_what_it_saw_under_the_decisions_that_hold_there() {
    let f = fleet(|name, p| {
        if name == "d" {
            // d saw llc alone: its dependents were never loaded there.
            p.modules.retain(|m| m.name == "llc" || m.name == "vfat");
            p.decide(decision("appletalk", Verdict::Deny));
        }
    });
    let d = host_profile(&f, "d").unwrap();
    let names: Vec<&str> = d.modules.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["llc", "vfat"]);
    assert!(d.module("llc").unwrap().top_level, "no module needing it was seen on d");
    assert!(!d.is_fleet() && d.host == "d" && d.sessions.len() == 1);
    let verdict = |p: &Profile, n: &str| p.decision(n).map(|d| d.verdict);
    assert_eq!(verdict(&d, "fs-vfat"), None, "c's allow is c's");
    let c = host_profile(&f, "c").unwrap();
    assert_eq!(verdict(&c, "fs-vfat"), Some(Verdict::Allow));
    assert_eq!(verdict(&c, "appletalk"), Some(Verdict::Deny), "d's deny holds on c too");
    assert!(c.module("appletalk").unwrap().triggers.iter().all(|t| t.hosts.contains(&"c".to_string())));
    assert!(host_profile(&f, "nobody").is_none());
}
