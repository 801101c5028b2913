//! `modtrace review`'s pass, in the manner of aa-logprof: one module at a time
//! of those only untrusted processes asked for, with what it is, who asked, how
//! often and why that is not trusted; accept, deny or skip each. Works on any
//! input and output, so it is tested without a terminal.

use crate::escape::text;
use std::io::{self, BufRead, Write};
use std::path::Path;

use crate::needs::sitepolicy::SitePolicy;
use crate::needs::target::Target;
use crate::needs::Plan;
use crate::profile::decide::{self, DecideError};
use crate::profile::{Profile, Verdict};
use crate::system;

/// One module waiting for a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub module: String,
    /// Why its causes are not trusted.
    pub why: String,
    /// Each cause as a sentence ("request for net-pf-5 by ...; 3 times").
    pub asked: Vec<String>,
    /// Times it was asked for, over all causes.
    pub count: u64,
}

/// What needs a decision, from the needs stage, in module order.
pub fn items(plan: &Plan) -> Vec<Item> {
    plan.review
        .iter()
        .map(|(m, held)| Item {
            module: m.clone(),
            why: held.why.clone(),
            asked: held.cited.iter().map(|c| c.reason.text.clone()).collect(),
            count: held.cited.iter().map(|c| c.reason.count).sum(),
        })
        .collect()
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub accepted: Vec<String>,
    pub denied: Vec<String>,
    pub skipped: Vec<String>,
}

/// Asks about each item on `out`, reads the answers from `input`, and records
/// them in `profile`. `describe` gives a module's description (modinfo). Stops
/// at `q` or the end of input; what was not asked counts as skipped.
pub fn run(
    profile: &mut Profile,
    items: &[Item],
    describe: &dyn Fn(&str) -> Option<String>,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    now: &str,
) -> Result<Summary, DecideError> {
    let io = |e: io::Error| DecideError::Store(crate::profile::StoreError::Io { path: "(terminal)".into(), source: e });
    let mut summary = Summary::default();
    let mut quit = false;
    for (i, item) in items.iter().enumerate() {
        if quit {
            summary.skipped.push(item.module.clone());
            continue;
        }
        writeln!(out, "\n[{}/{}] {}", i + 1, items.len(), text(&item.module)).map_err(io)?;
        let what = describe(&item.module).unwrap_or_else(|| "(modinfo has no description)".to_string());
        writeln!(out, "  what it is:   {}", text(&what)).map_err(io)?;
        writeln!(out, "  not trusted:  {}", text(&item.why)).map_err(io)?;
        writeln!(out, "  asked {} time(s):", item.count).map_err(io)?;
        for a in &item.asked {
            writeln!(out, "    - {}", text(a)).map_err(io)?;
        }
        loop {
            write!(out, "(a)ccept: list it; (d)eny: never list it; (s)kip; (q)uit? ").map_err(io)?;
            out.flush().map_err(io)?;
            let mut line = String::new();
            if input.read_line(&mut line).map_err(io)? == 0 {
                quit = true;
                summary.skipped.push(item.module.clone());
                break;
            }
            let verdict = match line.trim() {
                "a" | "accept" => Some(Verdict::Allow),
                "d" | "deny" => Some(Verdict::Deny),
                "s" | "skip" | "" => None,
                "q" | "quit" => {
                    quit = true;
                    None
                }
                _ => continue,
            };
            match verdict {
                Some(v) => {
                    decide::decide(profile, &item.module, v, now)?;
                    match v {
                        Verdict::Allow => summary.accepted.push(item.module.clone()),
                        Verdict::Deny => summary.denied.push(item.module.clone()),
                    }
                }
                None => summary.skipped.push(item.module.clone()),
            }
            break;
        }
    }
    Ok(summary)
}

/// `modtrace review` of the profile at `path`: derives what needs review
/// (the site's modprobe.d at /), asks, and records the answers under the
/// learner's lock.
pub fn review_file(path: &Path, input: &mut dyn BufRead, out: &mut dyn Write) -> Result<Summary, DecideError> {
    let site = SitePolicy::read(Path::new("/"));
    decide::update(path, |p| {
        let plan = crate::needs::derive(p, &site, &Target::from_profile(p))
            .map_err(|bad| DecideError::Unusable(bad.iter().map(|i| i.to_string()).collect()))?;
        let items = items(&plan);
        if items.is_empty() {
            let io = |e: io::Error| DecideError::Store(crate::profile::StoreError::Io { path: "(terminal)".into(), source: e });
            writeln!(
                out,
                "nothing needs review: every listed module was asked for by root on the host, or was decided already"
            )
            .map_err(io)?;
        }
        run(p, &items, &modinfo_description, input, out, &system::now())
    })
}

/// The line after the review: what was decided, and what to run next.
pub fn closing_line(summary: &Summary, path: &Path) -> String {
    format!(
        "\n{} accepted, {} denied, {} skipped (recorded in {}); run modtrace generate to apply",
        summary.accepted.len(),
        summary.denied.len(),
        summary.skipped.len(),
        path.display()
    )
}

/// A module's description, from `modinfo -F description` (the kmod crate
/// binds no modinfo call); None when modinfo has none or is not there.
pub fn modinfo_description(module: &str) -> Option<String> {
    let out = std::process::Command::new("modinfo").args(["-F", "description", "--", module]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::needs::target::Target;
    use crate::testutil::untrusted_profile;

    #[test]
    fn review_accepts_denies_and_skips_one_at_a_time() {
        let mut p = untrusted_profile();
        let plan = crate::needs::plan(&p, &Target::from_profile(&p)).unwrap();
        let items = items(&plan);
        assert_eq!(items.iter().map(|i| i.module.as_str()).collect::<Vec<_>>(), ["dummy", "vfat"]);
        assert!(items[0].why.contains("container web"), "{items:?}");
        assert!(items[1].why.contains("uid 1000") && items[1].count == 2, "{items:?}");
        let items = &items[1..];
        let mut out = Vec::new();
        let s = run(
            &mut p,
            items,
            &|m| Some(format!("{m} is a file system")),
            &mut "x\na\n".as_bytes(),
            &mut out,
            "2024-03-02T00:00:00Z",
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("[1/1] vfat\n  what it is:   vfat is a file system"), "{text}");
        assert!(text.contains("user unit lightdm.service of uid 1000"), "{text}");
        assert_eq!(text.matches("(a)ccept").count(), 2, "an unknown answer asks again: {text}");
        assert_eq!(s.accepted, ["vfat"]);
        let plan = crate::needs::plan(&p, &Target::from_profile(&p)).unwrap();
        assert!(plan.top_level.contains(&"vfat".to_string()) && !plan.review.contains_key("vfat"));

        let mut p = untrusted_profile();
        let s = run(&mut p, items, &|_| None, &mut "d\n".as_bytes(), &mut Vec::new(), "t").unwrap();
        assert_eq!(s.denied, ["vfat"]);
        let plan = crate::needs::plan(&p, &Target::from_profile(&p)).unwrap();
        assert!(plan.denied.contains_key("vfat") && !plan.top_level.contains(&"vfat".to_string()));

        let mut p = untrusted_profile();
        let s = run(&mut p, items, &|_| None, &mut "".as_bytes(), &mut Vec::new(), "t").unwrap();
        assert_eq!((s.skipped, p.decisions.len()), (vec!["vfat".to_string()], 0));
    }
}
