//! Every renderer shows what a user controls (process names, executables,
//! aliases, units) on the lines it means to print: no newline, carriage
//! return, terminal escape or bidi override of theirs reaches the output.

use crate::needs::sitepolicy::SitePolicy;
use crate::needs::target::Target;
use crate::outputs::{check, diff, report, review};
use crate::testutil::{example_profile, in_cgroup, process, request};
use crate::profile::Profile;

const EVIL: &str = "x\nNOT safe to lock: 0\r\u{1b}[2J\u{1b}]0;t\u{7}\u{202e}\u{85}";

/// example_profile with `name` for every requester's comm and exe, appletalk's
/// requester a user (so it needs review), and root's request for an alias
/// named `name` that found no module.
fn profile(name: &str) -> Profile {
    let mut p = example_profile();
    for m in &mut p.modules {
        for t in &mut m.triggers {
            if let Some(r) = &mut t.requester {
                r.comm = name.to_string();
                r.exe = Some(format!("/tmp/{name}"));
                if m.name == "appletalk" {
                    r.uid = Some(1000);
                }
            }
        }
    }
    p.observe(&request("2024-03-01T10:05:00Z", process(7, name, None, Some("example.service")), name, &[]));
    p
}

fn shown_safely(what: &str, evil: &str, plain: &str) {
    assert!(!evil.chars().any(|c| c.is_control() && c != '\n'), "{what}: {evil}");
    assert_eq!(evil.lines().count(), plain.lines().count(), "{what} has lines of its own:\n{evil}");
    assert!(evil.contains("x\\nNOT safe to lock: 0\\r\\x1b[2J"), "{what} hides the name:\n{evil}");
}

fn rendered(name: &str, format: report::Format, by: report::GroupBy) -> String {
    let p = profile(name);
    let plan = crate::needs::derive(&p, &SitePolicy::default(), &Target::from_profile(&p)).unwrap();
    report::render(&p, &plan, format, by)
}

#[test]
fn report_table_and_markdown() {
    use report::{Format, GroupBy};
    let ways = [(Format::Table, GroupBy::Module), (Format::Table, GroupBy::Unit), (Format::Markdown, GroupBy::Module)];
    for (format, by) in ways {
        shown_safely(&format!("{format:?} by {by:?}"), &rendered(EVIL, format, by), &rendered("x", format, by));
    }
}

#[test]
fn check_lines() {
    let with = |name: &str| {
        let r = check::Report {
            blockers: vec![format!("{name} is loaded now")],
            warnings: vec![format!("request by {name}")],
            review: vec![format!("kcm: asked by {name}")],
            info: vec![format!("kernel {name}")],
            plan: None,
            desktop: Some(check::desktop::Desktop {
                display_manager: format!("process {name}"),
                lock_point: "late",
                advice: format!("{name} races the lock"),
            }),
        };
        check::render(&r)
    };
    shown_safely("check", &with(EVIL), &with("x"));
}

#[test]
fn review_questions() {
    let ask = |name: &str| {
        let why = format!("uid 1000 ({name})");
        let item = review::Item { module: "kcm".into(), why, asked: vec![name.into()], count: 1 };
        let mut out = Vec::new();
        let mut p = Profile::new("6.1.0", "h");
        review::run(&mut p, &[item], &|_| Some(name.to_string()), &mut "s\n".as_bytes(), &mut out, "now").unwrap();
        String::from_utf8(out).unwrap()
    };
    shown_safely("review", &ask(EVIL), &ask("x"));
}

#[test]
fn trace_lines() {
    let line = |name: &str| {
        let mut rec = request("2024-03-01T10:05:00.123Z", in_cgroup(7, name, Some(name), 1000, "/x"), name, &[]);
        rec.process.unit = Some(name.to_string());
        crate::trace::output::human(&rec)
    };
    shown_safely("trace", &line(EVIL), &line("x"));
}

#[test]
fn diff_lines() {
    let render = |name: &str| {
        let snap = |mods: &str| {
            let modules = crate::trace::snapshot::parse_proc_modules(mods).unwrap();
            diff::Input {
                label: format!("/tmp/{name}"),
                side: diff::Side::Snapshot(crate::trace::snapshot::Snapshot::new("6.1", name, "t", modules)),
            }
        };
        let (a, b) = (snap("ext4 1 0 - Live 0x0\n"), snap("ext4 1 0 - Live 0x0\nllc 1 0 - Live 0x0\n"));
        let mut d = diff::compare(&a, &b, None);
        d.added[0].cause = Some(format!("request by {name}"));
        diff::render(&a, &b, &d)
    };
    shown_safely("diff", &render(EVIL), &render("x"));
}

#[test]
fn the_report_shows_folded_requests() {
    let mut p = example_profile();
    let user = in_cgroup(9, "flood", None, 1000, "/user.slice/user-1000.slice/session-3.scope");
    for n in 0..600 {
        p.observe(&request("2024-03-01T10:05:00Z", user.clone(), &format!("bogus-{n}"), &[]));
    }
    let plan = crate::needs::derive(&p, &SitePolicy::default(), &Target::from_profile(&p)).unwrap();
    let table = report::render(&p, &plan, report::Format::Table, report::GroupBy::Module);
    let row = table.lines().find(|l| l.starts_with("bogus-0, bogus-1")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("(folded: the first 8 names)") && row.contains(" 600 ") && row.contains("flood"), "{row}");
}
