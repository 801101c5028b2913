//! Loads from before learning (issue 21, part 1): a module an unprivileged
//! user made the kernel autoload before any tracer ran is found loaded with
//! nothing to explain it. It, and tcp_highspeed (root's modprobe, no
//! configuration), are "cause unknown": held for review by check and report,
//! with how to learn them from boot or accept them, and never listed; the
//! modules-load.d entry stays trusted. A second session while the user's
//! module is still loaded keeps it under review.

use serde_json::Value;

use super::learn::{json_section, module, text};
use super::trust::{listed, output};
use super::Facts;
use crate::guest::scenario::{self as sc, captured as cap, section};

const BEFORE_LEARNING: &str = "before learning";

/// The modules found loaded that nothing explains.
fn cause_unknown() -> [&'static str; 2] {
    [sc::PRELOAD_USER_MODULE, sc::PRELOADED_MODULE]
}

/// `m`'s triggers: exactly one, preloaded "before learning"; its count.
fn only_before_learning(p: &Value, name: &str) -> Result<u64, String> {
    let m = module(p, name)?;
    let triggers = m.pointer("/triggers").and_then(Value::as_array).cloned().unwrap_or_default();
    match triggers.as_slice() {
        [t] if text(t, "/kind") == "preloaded" && text(t, "/reason") == BEFORE_LEARNING => {
            Ok(t.pointer("/count").and_then(Value::as_u64).unwrap_or(0))
        }
        _ => Err(format!("{name}: expected one preloaded \"{BEFORE_LEARNING}\" trigger, found {triggers:?}")),
    }
}

/// check's "needs review" line for `m`, saying cause unknown, how to learn it
/// from boot, and the command that accepts it.
fn review_line(check: &str, m: &str) -> Result<(), String> {
    let Some((_, review)) = check.split_once("needs review:") else {
        return Err(format!("check has no `needs review:` section:\n{check}"));
    };
    let wanted = ["cause unknown", "modtrace-learn.service", &format!("accept: modtrace allow {m}")];
    let line = review.lines().find(|l| l.starts_with(&format!("  - {m}:")));
    match line {
        Some(l) if wanted.iter().all(|w| l.contains(w)) => Ok(()),
        _ => Err(format!("no review line for {m} with {wanted:?}:\n{check}")),
    }
}

/// The user's autoload before learning is in the profile as found loaded,
/// cause unknown, and nothing else.
pub fn user_autoload_found_cause_unknown(f: &Facts) -> Result<(), String> {
    let p = json_section(f, section::PROFILE)?;
    only_before_learning(&p, sc::PRELOAD_USER_MODULE).map(|_| ())
}

/// check and report hold both cause-unknown modules for review with the way
/// out; generate lists neither.
pub fn cause_unknown_held_for_review(f: &Facts) -> Result<(), String> {
    let check = output(f, cap::CHECK, &[0, 1])?;
    let report = output(f, cap::REPORT_TABLE, &[0])?;
    let list = f.output.text(section::GENERATED_LIST)?;
    for m in cause_unknown() {
        review_line(&check, m)?;
        let held = report.split_once("Needs review:").map(|(_, r)| r).unwrap_or_default();
        if !held.lines().any(|l| l.starts_with(&format!("  {m} (")) && l.contains("cause unknown")) {
            return Err(format!("report does not hold {m} for review, cause unknown:\n{report}"));
        }
        if listed(&list).contains(&m) {
            return Err(format!("generate lists {m}, whose cause is unknown:\n{list}"));
        }
    }
    Ok(())
}

/// The modules-load.d entry is listed, with its file as the reason, and is
/// not under review.
pub fn configured_module_stays_trusted(f: &Facts) -> Result<(), String> {
    let list = f.output.text(section::GENERATED_LIST)?;
    let reason = format!("explained by: {}", sc::MODULES_LOAD_CONF);
    if !listed(&list).contains(&sc::CONFIGURED_MODULE) || !list.contains(&reason) {
        return Err(format!("generate does not list {} with `{reason}`:\n{list}", sc::CONFIGURED_MODULE));
    }
    let check = output(f, cap::CHECK, &[0, 1])?;
    match check.lines().find(|l| l.starts_with(&format!("  - {}:", sc::CONFIGURED_MODULE))) {
        Some(l) => Err(format!("check holds {} back: {l}", sc::CONFIGURED_MODULE)),
        None => Ok(()),
    }
}

/// A second session that finds the user's module loaded again counts it in
/// the same trigger, still cause unknown, and check still holds it for review.
pub fn relearning_keeps_it_under_review(f: &Facts) -> Result<(), String> {
    output(f, cap::RELEARN, &[0])?;
    let p = json_section(f, section::RELEARN_PROFILE)?;
    let sessions = p.pointer("/sessions").and_then(Value::as_array).map_or(0, Vec::len);
    let count = only_before_learning(&p, sc::PRELOAD_USER_MODULE)?;
    if sessions < 2 || count < 2 {
        return Err(format!("after relearning: {sessions} session(s), found loaded {count} time(s); expected 2 and 2"));
    }
    review_line(&output(f, cap::CHECK_RELEARN, &[0, 1])?, sc::PRELOAD_USER_MODULE)
}
