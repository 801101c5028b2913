//! Issue 21 part 6: a user's flood of names no module provides. Every request
//! is seen with the user's uid, the profile folds them into one entry (a count
//! and the first few names) that stays small, and nothing about them blocks
//! `check`.

use serde_json::Value;

use super::{evidence, text, Facts};
use crate::guest::scenario::{self as sc, captured as cap, section};

fn flood_alias(alias: &str) -> bool {
    alias.starts_with(&format!("fs-{}", sc::UNTRUSTED_FLOOD_PREFIX))
}

fn profile(f: &Facts) -> Result<Value, String> {
    let text = f.output.text(section::PROFILE)?;
    serde_json::from_str(&text).map_err(|e| format!("the profile is not JSON: {e}"))
}

/// The tracer saw every distinct name, each from the user's uid.
fn every_request_seen(f: &Facts) -> Result<(), String> {
    let mut aliases: Vec<&str> = Vec::new();
    for r in f.records.iter().filter(|r| text(r, "/kind") == "request" && flood_alias(text(r, "/alias"))) {
        if r.pointer("/process/uid").and_then(Value::as_u64) != Some(u64::from(sc::WHO_USER_UID)) {
            return Err(evidence("a request of the user's flood not from the user's uid", r));
        }
        aliases.push(text(r, "/alias"));
    }
    aliases.sort_unstable();
    aliases.dedup();
    match aliases.len() as u32 {
        n if n == sc::UNTRUSTED_FLOOD_NAMES => Ok(()),
        n => Err(format!("{n} distinct names of the user's flood were traced, {} sent", sc::UNTRUSTED_FLOOD_NAMES)),
    }
}

/// The profile holds the flood as one folded entry of the user's, with the
/// whole count and at most the bound of names, in under the stated bytes; no
/// request entry of its own for any of the names.
pub fn folded_in_profile(f: &Facts) -> Result<(), String> {
    match f.output.exit_code(cap::UNTRUSTED_FLOOD)? {
        0 => {}
        n => return Err(format!("the user's flood exited {n}: {}", f.output.text("untrusted-flood.stderr")?)),
    }
    every_request_seen(f)?;
    let p = profile(f)?;
    let listed = p["requests"].as_array().into_iter().flatten().find(|r| flood_alias(text(r, "/alias")));
    if let Some(r) = listed {
        return Err(evidence("a name of the user's flood has a requests entry of its own", r));
    }
    let folded = p["folded_requests"].as_array().cloned().unwrap_or_default();
    let mine: Vec<&Value> = folded
        .iter()
        .filter(|e| e["aliases"].as_array().into_iter().flatten().any(|a| flood_alias(a.as_str().unwrap_or(""))))
        .collect();
    let [entry] = mine.as_slice() else {
        return Err(format!("{} folded entries hold the user's names, one expected: {folded:?}", mine.len()));
    };
    expect_entry(entry)
}

fn expect_entry(entry: &Value) -> Result<(), String> {
    if entry.pointer("/requester/uid").and_then(Value::as_u64) != Some(u64::from(sc::WHO_USER_UID)) {
        return Err(evidence("the folded entry is not the user's", entry));
    }
    if entry["count"].as_u64().unwrap_or(0) < u64::from(sc::UNTRUSTED_FLOOD_NAMES) {
        return Err(evidence(
            &format!("the folded entry counts fewer than the {} names sent", sc::UNTRUSTED_FLOOD_NAMES),
            entry,
        ));
    }
    let names = entry["aliases"].as_array().map(Vec::len).unwrap_or(0);
    if names == 0 || names > sc::UNTRUSTED_FLOOD_NAMES_KEPT {
        return Err(evidence(&format!("{names} names kept, 1 to {} expected", sc::UNTRUSTED_FLOOD_NAMES_KEPT), entry));
    }
    let bytes = serde_json::to_string_pretty(entry).map(|s| s.len()).unwrap_or(usize::MAX);
    if bytes > sc::UNTRUSTED_FLOOD_MAX_BYTES {
        return Err(evidence(
            &format!("the folded entry takes {bytes} bytes, over {}", sc::UNTRUSTED_FLOOD_MAX_BYTES),
            entry,
        ));
    }
    Ok(())
}

/// No blocking eviction in the learned session, the untrusted ones counted
/// apart (in the profile and on the tracer's summary line), and `check` names
/// no lost requests.
pub fn blocks_nothing(f: &Facts) -> Result<(), String> {
    let p = profile(f)?;
    let drops = p.pointer("/sessions/0/drops").ok_or("the profile's session has no drops")?;
    if drops["evicted_requests"].as_u64() != Some(0) || !drops["evicted_untrusted_requests"].is_u64() {
        return Err(evidence("evictions not split, or some blocking", drops));
    }
    let summary = f.output.text("trace-err")?;
    if !summary.lines().any(|l| l.contains("; lost ") && l.contains(", untrusted requests evicted ")) {
        return Err(format!("the tracer's summary line names no untrusted evictions:\n{summary}"));
    }
    let check = f.output.text(&format!("{}.stdout", cap::CHECK))?;
    match check.lines().find(|l| l.contains("requests or loads were lost")) {
        Some(l) => Err(format!("check blocks on lost requests: {l}")),
        None => Ok(()),
    }
}
