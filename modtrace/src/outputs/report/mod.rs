//! `modtrace report`'s rendering: profile -> text for a person deciding what to
//! keep (table), for an issue or a wiki (markdown), or for a script (JSON).
//! Pure: no I/O here but in `here` (reading the profile). The view model is in
//! `model` (a fleet's parts in `fleet`, the package view in `packages`), each
//! format in its own file.

mod fleet;
mod here;
mod json;
mod markdown;
mod model;
mod packages;
mod table;
mod wording;

pub use fleet::{FleetHost, HostCount, HostGroup, HostNeed};
pub use here::report_here;
pub use model::{
    build, build_with, unit_label, Cause, Dependency, FailedLoad, Held, MissingRequest, Report, Summary, TopLevel,
    UnitGroup, UnitNeed,
};
pub use packages::{PackageGroup, PackageNeed, NO_PACKAGE};

use crate::needs::fleet::HostPlan;
use crate::needs::Plan;
use crate::profile::Profile;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Markdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    /// One entry per top-level module, its dependencies folded under it.
    Module,
    /// One entry per systemd unit: what it needs, and through which alias.
    Unit,
    /// One entry per host of a fleet profile: what it needs, and what waits for review there.
    Host,
    /// One entry per Debian package: which of its units and executables need which modules.
    Package,
}

/// Renders the profile.
pub fn render(profile: &Profile, plan: &Plan, format: Format, by: GroupBy) -> String {
    render_with(profile, plan, &[], format, by)
}

/// [`render`], with each host's plan of a fleet profile for `--by host`.
pub fn render_with(profile: &Profile, plan: &Plan, host_plans: &[HostPlan], format: Format, by: GroupBy) -> String {
    let report = build_with(profile, plan, host_plans, by);
    match format {
        Format::Json => json::json(&report),
        // Each value went through escape::text where it was placed; this pass
        // catches what a line was built from unescaped.
        Format::Table => crate::escape::lines(&table::table(&report)).into_owned(),
        Format::Markdown => crate::escape::lines(&markdown::markdown(&report)).into_owned(),
    }
}

#[cfg(test)]
mod fleet_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::needs;
    use crate::trace::scope::Scope;
    use crate::needs::target::Target;
    use crate::testutil::example_profile;

    fn render(p: &Profile, format: Format, by: GroupBy) -> String {
        let plan = needs::plan(p, &Target::from_profile(p)).unwrap();
        super::render(p, &plan, format, by)
    }

    #[test]
    fn table_shows_top_level_modules_with_causes_and_folded_dependencies() {
        let text = render(&example_profile(), Format::Table, GroupBy::Module);
        let lines: Vec<&str> = text.lines().collect();
        let row = |start: &str| {
            *lines
                .iter()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("no row starting {start:?} in\n{text}"))
        };
        let at = row("appletalk ");
        assert!(
            at.contains("example.service")
                && at.contains("modtrace-guest (/usr/bin/python3)")
                && at.contains("request net-pf-5"),
            "{at}"
        );
        let at_i = lines.iter().position(|l| l.starts_with("appletalk ")).unwrap();
        assert!(lines[at_i + 1].starts_with("  psnap ") && lines[at_i + 1].ends_with("dependency"), "{text}");
        assert!(lines[at_i + 2].starts_with("  llc "), "{text}");
        assert!(row("binfmt_misc ").contains("init.scope"));
        assert!(row("ext4 ").contains("preloaded: /etc/modules-load.d/ext4.conf"));
        assert!(row("  jbd2 ").contains("dependency"));
        assert!(row("snd_hda_intel ").contains("systemd-udevd.service"));
        assert!(!text.contains("\npsnap "), "psnap is not top-level:\n{text}");
        assert!(row("net-pf-38 ").contains("modtrace-guest (/usr/bin/python3), example.service"), "{text}");
        assert!(row("appletalk (via net-pf-5) ").contains("EPERM"), "{text}");
        assert_eq!(
            *lines.last().unwrap(),
            "8 modules, 4 top-level; 1 request found no module; 1 failed load (3 attempts); 0 lost events"
        );
        assert!(
            lines[0].starts_with("host kicksecure, kernel 6.1.0-18-amd64: 1 learning session (10m), 1 boot"),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn the_header_says_which_sessions_learned_from_the_initramfs_on() {
        let mut p = example_profile();
        p.sessions[0].from_initramfs = Some(34);
        let text = render(&p, Format::Table, GroupBy::Module);
        assert!(text.starts_with("host kicksecure, kernel 6.1.0-18-amd64: 1 learning session (10m, from the initramfs on), 1 boot"), "{text}");
        let mut second = p.sessions[0].clone();
        second.from_initramfs = None;
        p.sessions.push(second);
        let text = render(&p, Format::Table, GroupBy::Module);
        assert!(text.contains("2 learning sessions (20m, 1 from the initramfs on)"), "{text}");
    }

    #[test]
    fn a_load_of_the_initramfs_says_so() {
        let mut p = example_profile();
        let ext4 = p.modules.iter_mut().find(|m| m.name == "ext4").unwrap();
        let mut t = crate::profile::Trigger::new(crate::profile::TriggerKind::Explicit);
        t.loader = Some(crate::testutil::udevd_loader());
        t.loader.as_mut().unwrap().comm = "insmod".into();
        t.stage = Some("initramfs".into());
        t.count = 1;
        ext4.triggers = vec![t];
        let text = render(&p, Format::Table, GroupBy::Module);
        let row = text.lines().find(|l| l.starts_with("ext4 ")).unwrap_or_else(|| panic!("{text}"));
        assert!(row.contains("explicit in the initramfs") && row.contains("insmod"), "{row}");
    }

    #[test]
    fn by_unit_says_who_needs_what() {
        let text = render(&example_profile(), Format::Table, GroupBy::Unit);
        assert!(text.contains("example.service\n  example.service needs appletalk (with psnap, llc) via net-pf-5 (by modtrace-guest (/usr/bin/python3), once)"), "{text}");
        assert!(text.contains("init.scope needs binfmt_misc via fs-binfmt_misc"), "{text}");
        assert!(
            text.contains("systemd-udevd.service loads snd_hda_intel for a device (by systemd-udevd, once)"),
            "{text}"
        );
        assert!(
            text.contains("ext4 (with jbd2, mbcache) is loaded at boot by /etc/modules-load.d/ext4.conf (once)"),
            "{text}"
        );
        assert!(!text.contains("jbd2 was"), "a dependency preloaded before learning is no need of its own: {text}");
        // Dependencies are not listed as needs of their own.
        assert!(!text.contains("needs psnap"), "{text}");
        // Units in name order, no-unit last.
        let ex = text.find("\nexample.service\n").unwrap();
        let init = text.find("\ninit.scope\n").unwrap();
        let none = text.find("(no unit").unwrap();
        assert!(ex < init && init < none, "{text}");
    }

    #[test]
    fn markdown_is_a_table_with_escaped_cells() {
        let mut p = example_profile();
        let ext4 = p.modules.iter_mut().find(|m| m.name == "ext4").unwrap();
        ext4.triggers[0].reason = Some("a|b".to_string());
        let text = render(&p, Format::Markdown, GroupBy::Module);
        assert!(text.starts_with("## modtrace profile of kicksecure (kernel 6.1.0-18-amd64)\n"), "{text}");
        assert!(
            text.contains("| Module | Count | Unit | UID | Process | Via |\n|---|---:|---|---|---|---|\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "| **appletalk** | 1 | `example.service` | 0 | modtrace-guest (/usr/bin/python3) | request net-pf-5 |"
            ),
            "{text}"
        );
        assert!(text.contains("| ↳ psnap | 1 | | | | dependency |"), "{text}");
        assert!(text.contains("a\\|b"), "pipes escaped: {text}");
        assert!(text.contains("### Requests that found no module"), "{text}");
        assert!(text.contains("| `net-pf-38` | 1 |"), "{text}");
        assert!(text.contains("### Failed loads"), "{text}");
        assert!(text.contains("**Summary:** 8 modules"), "{text}");
        let by_unit = render(&example_profile(), Format::Markdown, GroupBy::Unit);
        assert!(by_unit.contains("#### `example.service`\n\n- example.service needs appletalk"), "{by_unit}");
    }

    #[test]
    fn json_is_for_scripts() {
        let v: serde_json::Value =
            serde_json::from_str(&render(&example_profile(), Format::Json, GroupBy::Module)).unwrap();
        assert_eq!(v["schema"], "modtrace-report/1");
        assert_eq!(v["summary"]["modules"], 8);
        assert_eq!(v["summary"]["top_level"], 4);
        assert_eq!(v["summary"]["requests_without_module"], 1);
        assert_eq!(v["summary"]["failed_attempts"], 3);
        let at = v["modules"].as_array().unwrap().iter().find(|m| m["module"] == "appletalk").unwrap();
        assert_eq!(at["triggers"][0]["unit"], "example.service");
        assert_eq!(at["triggers"][0]["kind"], "request");
        let deps: Vec<&str> =
            at["dependencies"].as_array().unwrap().iter().map(|d| d["module"].as_str().unwrap()).collect();
        assert_eq!(deps, ["psnap", "llc"]);
        assert!(v.get("units").is_none());
        let u: serde_json::Value =
            serde_json::from_str(&render(&example_profile(), Format::Json, GroupBy::Unit)).unwrap();
        assert_eq!(u["units"][0]["unit"], "example.service");
        assert_eq!(u["units"][0]["needs"][0]["module"], "appletalk");
        assert_eq!(u["units"][0]["needs"][0]["via"], "request net-pf-5");
    }

    #[test]
    fn untrusted_requesters_are_shown_with_uid_and_scope_under_their_own_heading() {
        use crate::testutil::untrusted_profile;
        let p = untrusted_profile();
        let text = render(&p, Format::Table, GroupBy::Module);
        let vfat = text.lines().find(|l| l.starts_with("vfat ")).unwrap_or_else(|| panic!("{text}"));
        assert!(vfat.contains("lightdm.service [user unit of uid 1000]") && vfat.contains(" 1000 "), "{vfat}");
        let dummy = text.lines().find(|l| l.starts_with("dummy ")).unwrap();
        assert!(dummy.contains("fake-dm.service [container web, systemd-nspawn]"), "{dummy}");
        let start = text.find("Needs review:").unwrap_or_else(|| panic!("{text}"));
        let review = &text[start..start + text[start..].find("\n\n").unwrap()];
        assert!(
            review.contains(
                "vfat (2 time(s)): an unprivileged process (uid 1000) in the user unit lightdm.service of uid 1000"
            ),
            "{review}"
        );
        assert!(
            review.contains("accept: modtrace allow vfat") && review.contains("accept: modtrace allow dummy"),
            "{review}"
        );
        assert!(!review.contains("appletalk"), "root in a system unit is trusted: {review}");
        assert!(text.trim_end().ends_with("2 need review"), "{text}");

        // By unit: the user's lightdm.service is not the host's.
        let by = render(&p, Format::Table, GroupBy::Unit);
        assert!(
            by.contains("\nlightdm.service [user unit of uid 1000]\n  lightdm.service needs vfat via fs-vfat"),
            "{by}"
        );
        assert!(!by.contains("\nlightdm.service\n"), "{by}");
        let json: serde_json::Value = serde_json::from_str(&render(&p, Format::Json, GroupBy::Module)).unwrap();
        let m = json["modules"].as_array().unwrap().iter().find(|m| m["module"] == "vfat").unwrap();
        assert_eq!(m["triggers"][0]["scope"]["kind"], "user");
        assert_eq!(m["triggers"][0]["uid"], 1000);
        assert_eq!(m["triggers"][0]["trusted"], false);
        assert_eq!(json["needs_review"][1]["accept"], "modtrace allow vfat");
        let md = render(&p, Format::Markdown, GroupBy::Module);
        assert!(md.contains("### Needs review") && md.contains("`modtrace allow vfat`"), "{md}");
    }

    #[test]
    fn by_unit_names_every_requester_of_a_shared_load() {
        let mut p = example_profile();
        let at = p.modules.iter_mut().find(|m| m.name == "appletalk").unwrap();
        let mut other = at.triggers[0].requester.clone().unwrap();
        other.unit = Some("other.service".into());
        other.scope = Scope::System { unit: "other.service".into() };
        at.triggers[0].also_requested_by.push(other);
        let by = render(&p, Format::Table, GroupBy::Unit);
        assert!(by.contains("\nother.service\n  other.service needs appletalk"), "{by}");
    }

    #[test]
    fn lost_events_are_a_warning() {
        let mut p = example_profile();
        p.sessions[0].lost_events = 7;
        let text = render(&p, Format::Table, GroupBy::Module);
        assert!(text.contains("WARNING: 7 kernel events were lost"), "{text}");
        assert!(text.trim_end().ends_with("7 lost events"), "{text}");
    }
}
