use std::collections::BTreeSet;

use super::*;
use crate::needs::target::Source;
use crate::testutil::{appletalk_index, example_profile, failed_load};
use crate::trace::modindex::StaticIndex;

fn target(index: StaticIndex, builtin: &[&str]) -> Target {
    let builtin: BTreeSet<String> = builtin.iter().map(|s| s.to_string()).collect();
    Target::from_index("7.3.4+deb13-amd64", index, None, builtin, Source::Tree("/lib/modules/7.3.4+deb13-amd64".into()))
}

fn fate(u: &Upgrade, module: &str) -> Fate {
    u.changes.iter().find(|c| c.module == module).unwrap_or_else(|| panic!("{module}: {u:?}")).fate.clone()
}

fn compare_with(index: StaticIndex, builtin: &[&str]) -> Upgrade {
    compare(&example_profile(), &SitePolicy::default(), &target(index, builtin)).unwrap()
}

/// The example's kernel, with appletalk renamed (net-pf-5 now answers atalk).
fn renamed_index() -> StaticIndex {
    let mut idx = appletalk_index();
    idx.deps.remove("appletalk");
    idx.aliases.remove("net-pf-5");
    idx.alias("net-pf-5", "atalk").module("atalk", &["psnap", "llc"])
}

/// The renamed kernel with `module` gone too.
fn without(mut idx: StaticIndex, module: &str) -> StaticIndex {
    idx.deps.remove(module);
    idx.aliases.retain(|_, to| !to.iter().any(|m| m == module));
    idx
}

#[test]
fn the_same_tree_changes_nothing_and_is_safe() {
    let u = compare_with(appletalk_index(), &[]);
    assert!(u.changes.iter().all(|c| c.fate == Fate::Same), "{u:?}");
    assert!(u.safe());
    assert!(said(&u).text(crate::said::Stream::Out).contains("safe to reboot into 7.3.4+deb13-amd64"));
}

#[test]
fn a_renamed_module_follows_its_alias_and_is_not_a_gap() {
    let u = compare_with(renamed_index(), &[]);
    assert_eq!(fate(&u, "appletalk"), Fate::Renamed(vec!["atalk".into()]));
    assert_eq!(fate(&u, "binfmt_misc"), Fate::Same);
    assert!(u.safe(), "{u:?}");
    assert!(said(&u).text(crate::said::Stream::Out).contains("appletalk: renamed to atalk"));
}

#[test]
fn built_in_and_gone_modules_are_named_and_gone_is_not_safe() {
    let without_sound = without(renamed_index(), "snd_hda_intel");
    let u = compare_with(without_sound, &["binfmt_misc"]);
    assert_eq!(fate(&u, "binfmt_misc"), Fate::BuiltIn(vec!["binfmt_misc".into()]));
    assert_eq!(fate(&u, "snd_hda_intel"), Fate::Gone);
    assert!(!u.safe());
    let text = said(&u).text(crate::said::Stream::Out);
    assert!(text.contains("binfmt_misc: now built into the kernel"), "{text}");
    assert!(text.contains("snd_hda_intel: GONE") && text.contains("NOT safe"), "{text}");
}

#[test]
fn two_modules_answered_by_one_are_merged() {
    let index = without(renamed_index(), "binfmt_misc").alias("fs-binfmt_misc", "atalk");
    let u = compare_with(index, &[]);
    assert_eq!(fate(&u, "appletalk"), Fate::Merged("atalk".into()));
    assert_eq!(fate(&u, "binfmt_misc"), Fate::Merged("atalk".into()));
}

#[test]
fn a_rename_that_failed_here_with_enodev_is_not_listed_and_the_cause_is_gone() {
    let mut p = example_profile();
    p.observe(&failed_load("2024-03-01T10:06:00Z", "net-pf-5", "atalk", -19, "ENODEV", 0));
    let u = compare(&p, &SitePolicy::default(), &target(renamed_index(), &[])).unwrap();
    assert_eq!(fate(&u, "appletalk"), Fate::Gone);
    assert!(!u.safe());
}

/// The example profile with zfs, loaded by a unit; the learned kernel had it
/// from DKMS (updates/dkms/).
fn with_zfs() -> Profile {
    let mut p = example_profile();
    let mut zfs = p.modules.iter().find(|m| m.name == "snd_hda_intel").unwrap().clone();
    zfs.name = "zfs".into();
    zfs.triggers.retain(|t| t.kind == crate::profile::TriggerKind::Udev);
    zfs.triggers[0].kind = crate::profile::TriggerKind::Preloaded;
    zfs.triggers[0].device = None;
    zfs.triggers[0].reason = Some("/etc/modules-load.d/zfs.conf".into());
    p.modules.push(zfs);
    p
}

const LEARNED_DEP: &str = "kernel/net/appletalk/appletalk.ko.xz: kernel/net/802/psnap.ko.xz\nupdates/dkms/zfs.ko.xz:\n";

#[test]
fn a_dkms_module_not_built_for_the_new_kernel_is_named() {
    let p = with_zfs();
    let t = target(appletalk_index(), &[]).learned_from("", LEARNED_DEP);
    let u = compare(&p, &SitePolicy::default(), &t).unwrap();
    assert_eq!(fate(&u, "zfs"), Fate::NotBuilt("updates/dkms/zfs.ko.xz".into()), "{u:?}");
    assert!(!u.safe());
    let text = said(&u).text(crate::said::Stream::Out);
    assert!(text.contains("zfs: NOT BUILT for this kernel: it came from updates/dkms/zfs.ko.xz"), "{text}");

    // DKMS built it for the new kernel too: found there by its name.
    let t = target(appletalk_index().module("zfs", &[]), &[]).learned_from("", LEARNED_DEP);
    let u = compare(&p, &SitePolicy::default(), &t).unwrap();
    assert_eq!(fate(&u, "zfs"), Fate::Same, "{u:?}");
    assert!(u.safe(), "{u:?}");

    // An in-tree module that is gone stays plainly gone.
    let t = target(without(appletalk_index(), "snd_hda_intel"), &[]).learned_from("", LEARNED_DEP);
    let u = compare(&p, &SitePolicy::default(), &t).unwrap();
    assert_eq!(fate(&u, "snd_hda_intel"), Fate::Gone, "{u:?}");
}

#[test]
fn a_denied_module_the_new_kernel_lacks_is_neither_gone_nor_unresolved() {
    let mut p = example_profile();
    crate::profile::decide::decide(&mut p, "appletalk", crate::profile::Verdict::Deny, "2024-03-02T08:00:00Z").unwrap();
    let t = target(without(renamed_index(), "atalk"), &[]);
    let u = compare(&p, &SitePolicy::default(), &t).unwrap();
    assert!(u.changes.iter().all(|c| c.module != "appletalk"), "{u:?}");
    assert!(u.safe(), "{u:?}");
    let plan = crate::needs::derive(&p, &SitePolicy::default(), &t).unwrap();
    assert!(plan.unresolved.is_empty(), "{:?}", plan.unresolved);
    assert!(plan.denied.contains_key("appletalk"), "{:?}", plan.denied.keys());
}

fn unloadable(module: &str, entry: &str, device_only: bool) -> Unloadable {
    let why = format!("its file kernel/{module}.ko.xz is not in /lib/modules/7.3.4+deb13-amd64");
    Unloadable { module: module.into(), entry: entry.into(), device_only, why }
}

#[test]
fn a_device_driver_that_cannot_load_warns_and_a_needed_entry_is_not_safe() {
    let mut u = compare_with(appletalk_index(), &[]);
    assert_eq!((u.entries, u.unloadable.len()), (4, 0), "{u:?}");
    let text = said(&u).text(crate::said::Stream::Out);
    assert!(text.contains("lock list for 7.3.4+deb13-amd64: 4 entries, 4 load there"), "{text}");

    u.unloadable.push(unloadable("snd_hda_intel", "snd_hda_intel", true));
    assert!(u.safe(), "{u:?}");
    let text = said(&u).text(crate::said::Stream::Out);
    assert!(text.contains("snd_hda_intel: cannot load on 7.3.4+deb13-amd64 (its file"), "{text}");
    assert!(text.contains("a device's driver: the lock logs its failure and goes on"), "{text}");
    assert!(text.contains("4 entries, 3 load there") && text.contains("safe to reboot"), "{text}");

    u.unloadable.push(unloadable("psnap", "appletalk", false));
    assert!(!u.safe(), "{u:?}");
    let text = said(&u).text(crate::said::Stream::Out);
    assert!(text.contains("psnap: CANNOT LOAD on 7.3.4+deb13-amd64, which lock entry appletalk brings"), "{text}");
    assert!(text.contains("the lock would fail there") && text.contains("NOT safe to reboot"), "{text}");
}
