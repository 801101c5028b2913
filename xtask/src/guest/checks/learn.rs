//! Checks on `modtrace learn` and what reads its profile: the profile JSON
//! (docs/profile.md), `report` in every format, `snapshot` + `diff`, and learn's
//! failure cases (a second learner, SIGKILL, a corrupt profile).

use serde_json::Value;

use super::{evidence, Facts};
use crate::guest::scenario::{self as sc, captured as cap, comm, section};

const SCHEMA: &str = "modtrace-profile/2";
/// docs/profile.md: the reason of a module nothing configures.
const BEFORE_LEARNING: &str = "before learning";

// ---- reading ----

/// A JSON section, parsed.
pub(super) fn json_section(f: &Facts, name: &str) -> Result<Value, String> {
    let text = f.output.text(name)?;
    serde_json::from_str(&text).map_err(|e| format!("{name} is not JSON ({e}):\n{text}"))
}

pub(super) fn profile(f: &Facts) -> Result<Value, String> {
    json_section(f, section::PROFILE)
}

/// `modules[]` entry `name` of a profile.
pub(super) fn module<'a>(p: &'a Value, name: &str) -> Result<&'a Value, String> {
    let modules = p.pointer("/modules").and_then(Value::as_array).ok_or("the profile has no modules list")?;
    modules.iter().find(|m| text(m, "/name") == name).ok_or_else(|| {
        let names: Vec<&str> = modules.iter().map(|m| text(m, "/name")).collect();
        format!("module {name} is not in the profile; it has {names:?}")
    })
}

pub(super) fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn strings<'a>(v: &'a Value, pointer: &str) -> Vec<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn expect_top_level(m: &Value, top: bool) -> Result<(), String> {
    match m.pointer("/top_level") {
        Some(Value::Bool(b)) if *b == top => Ok(()),
        found => Err(evidence(&format!("top_level is {found:?}, expected {top}"), m)),
    }
}

/// The first trigger of `m` that satisfies `pred`.
fn trigger<'a>(m: &'a Value, what: &str, pred: impl Fn(&Value) -> bool) -> Result<&'a Value, String> {
    let triggers = m.pointer("/triggers").and_then(Value::as_array);
    triggers.and_then(|t| t.iter().find(|t| pred(t))).ok_or_else(|| evidence(&format!("no trigger {what}"), m))
}

/// A captured command's stdout, after checking its exit status.
fn output_of(f: &Facts, name: &str, status: i32) -> Result<String, String> {
    let stdout = f.output.text(&format!("{name}.stdout")).unwrap_or_default();
    let stderr = f.output.text(&format!("{name}.stderr")).unwrap_or_default();
    match f.output.exit_code(name)? {
        s if s == status => Ok(stdout),
        s => Err(format!("{name} exited {s}, expected {status}\n      stdout: {stdout}\n      stderr: {stderr}")),
    }
}

// ---- the learner and its profile ----

/// SIGINT ends learning and saves: exit 0 and the closing line names the file.
pub fn learner_saved_on_sigint(f: &Facts) -> Result<(), String> {
    let stderr = f.output.text(&format!("{}.stderr", cap::LEARN))?;
    let status = f.output.exit_code(cap::LEARN)?;
    let saved = format!("profile saved to {}", sc::PROFILE);
    if status != 0 || !stderr.contains("learning ended (SIGINT)") || !stderr.contains(&saved) {
        return Err(format!("learn exited {status} after SIGINT, expected 0 and `{saved}`; stderr:\n{stderr}"));
    }
    Ok(())
}

/// Schema, the guest's kernel, one finished session that lost nothing but the
/// load results the kernel may skip on a preemptible kernel (the module_load
/// events still name those modules).
pub fn profile_schema_kernel_session(f: &Facts) -> Result<(), String> {
    let p = profile(f)?;
    if text(&p, "/schema") != SCHEMA {
        return Err(format!("schema is {:?}, expected {SCHEMA}", p.pointer("/schema")));
    }
    let kernel = f.output.kernel.as_deref().ok_or("the guest never said which kernel it runs")?;
    if text(&p, "/kernel") != kernel {
        return Err(format!("kernel is {:?}, the guest runs {kernel}", p.pointer("/kernel")));
    }
    let sessions = p.pointer("/sessions").and_then(Value::as_array).ok_or("no sessions list")?;
    let [session] = sessions.as_slice() else {
        return Err(format!("{} sessions, expected 1: {sessions:?}", sessions.len()));
    };
    if text(session, "/end").is_empty() || text(session, "/ended_by") != "SIGINT" {
        return Err(evidence("the session has no end, or did not end by SIGINT", session));
    }
    if text(session, "/kernel") != kernel {
        return Err(evidence(&format!("the session's kernel is not {kernel}"), session));
    }
    let skipped = session.pointer("/drops/skipped_results").and_then(Value::as_u64).unwrap_or(0);
    match session.pointer("/lost_events").and_then(Value::as_u64) {
        Some(lost) if lost == skipped => Ok(()),
        _ => Err(evidence("the session lost events other than skipped load results (or does not say)", session)),
    }
}

/// top is top-level, requested (net-pf-24) by the guest tool, root, in the
/// unit, whose scope is the host's system unit.
pub fn profile_chain_top(f: &Facts) -> Result<(), String> {
    let p = profile(f)?;
    let [top, _, _] = sc::CHAIN;
    let m = module(&p, top)?;
    expect_top_level(m, true)?;
    let what = format!("request {} by {} (uid 0) in system unit {}", sc::CHAIN_ALIAS, comm::GUEST_TOOL, sc::UNIT);
    trigger(m, &what, |t| {
        text(t, "/kind") == "request"
            && text(t, "/alias") == sc::CHAIN_ALIAS
            && text(t, "/requester/comm") == comm::GUEST_TOOL
            && text(t, "/requester/unit") == sc::UNIT
            && t.pointer("/requester/uid").and_then(Value::as_u64) == Some(0)
            && text(t, "/requester/scope/kind") == "system"
            && text(t, "/requester/scope/unit") == sc::UNIT
    })
    .map(|_| ())
}

/// middle and bottom are dependencies only, needed by top.
pub fn profile_chain_dependencies(f: &Facts) -> Result<(), String> {
    let p = profile(f)?;
    let [top, middle, bottom] = sc::CHAIN;
    for name in [middle, bottom] {
        let m = module(&p, name)?;
        expect_top_level(m, false)?;
        if !strings(m, "/needed_by").contains(&top) {
            return Err(evidence(&format!("needed_by of {name} lacks {top}"), m));
        }
    }
    Ok(())
}

pub fn profile_binfmt_misc(f: &Facts) -> Result<(), String> {
    let p = profile(f)?;
    let m = module(&p, sc::BINFMT_MODULE)?;
    expect_top_level(m, true)?;
    trigger(m, &format!("request {} by {}", sc::BINFMT_ALIAS, comm::MOUNT), |t| {
        text(t, "/kind") == "request"
            && text(t, "/alias") == sc::BINFMT_ALIAS
            && text(t, "/requester/comm") == comm::MOUNT
    })
    .map(|_| ())
}

/// vfat was modprobe'd (explicit, top-level); fat came as its dependency.
pub fn profile_vfat_fat(f: &Facts) -> Result<(), String> {
    let p = profile(f)?;
    let vfat = module(&p, sc::EXPLICIT_MODULE)?;
    expect_top_level(vfat, true)?;
    trigger(vfat, "explicit by modprobe", |t| {
        text(t, "/kind") == "explicit" && text(t, "/loader/comm") == comm::MODPROBE
    })?;
    let fat = module(&p, sc::EXPLICIT_DEPENDENCY)?;
    expect_top_level(fat, false)?;
    if !strings(fat, "/needed_by").contains(&sc::EXPLICIT_MODULE) {
        return Err(evidence(&format!("needed_by lacks {}", sc::EXPLICIT_MODULE), fat));
    }
    Ok(())
}

/// net-pf-38 is listed among the requests, resolving to no module.
pub fn profile_request_without_module(f: &Facts) -> Result<(), String> {
    let p = profile(f)?;
    let requests = p.pointer("/requests").and_then(Value::as_array).ok_or("the profile has no requests list")?;
    let r = requests
        .iter()
        .find(|r| text(r, "/alias") == sc::MISSING_ALIAS)
        .ok_or_else(|| format!("no request for {} in {requests:?}", sc::MISSING_ALIAS))?;
    if !strings(r, "/resolves_to").is_empty() || r.pointer("/resolves_to").is_none() {
        return Err(evidence("it resolves to a module, or does not say", r));
    }
    if r.pointer("/count").and_then(Value::as_u64).unwrap_or(0) == 0 {
        return Err(evidence("its count is not positive", r));
    }
    Ok(())
}

/// The second init_module of tcp_htcp (EEXIST) is among the failed loads.
pub fn profile_failed_eexist(f: &Facts) -> Result<(), String> {
    failure(&profile(f)?, "init_module", "EEXIST", -17).map(|_| ())
}

/// The failed-load flood's finit_module calls (EINVAL) are among the failed
/// loads, named as finit_module, their repeats folded in: the learner keeps its
/// load calls on the exit tracepoint, which tells the two calls apart by number.
pub fn profile_failed_finit_module(f: &Facts) -> Result<(), String> {
    let p = profile(f)?;
    let x = failure(&p, "finit_module", "EINVAL", -22)?;
    match x.pointer("/count").and_then(Value::as_u64).unwrap_or(0) {
        count if count > 1 => Ok(()),
        _ => Err(evidence("the finit_module EINVAL failure has no repeats folded in", x)),
    }
}

/// The profile's failed load by the guest tool with this syscall, error and return value.
fn failure<'a>(p: &'a Value, syscall: &str, error: &str, ret: i64) -> Result<&'a Value, String> {
    let failed = p.pointer("/failed").and_then(Value::as_array).ok_or("the profile has no failed list")?;
    failed
        .iter()
        .find(|x| {
            text(x, "/syscall") == syscall
                && text(x, "/error") == error
                && x.pointer("/ret") == Some(&Value::from(ret))
                && text(x, "/loader/comm") == comm::GUEST_TOOL
        })
        .ok_or_else(|| format!("no {syscall} {error} failure by {} in {failed:?}", comm::GUEST_TOOL))
}

/// Loaded before learning and listed in modules-load.d: preloaded, that file the reason.
pub fn profile_preloaded_configured(f: &Facts) -> Result<(), String> {
    let p = profile(f)?;
    let m = module(&p, sc::CONFIGURED_MODULE)?;
    trigger(m, &format!("preloaded by {}", sc::MODULES_LOAD_CONF), |t| {
        text(t, "/kind") == "preloaded" && text(t, "/reason").contains(sc::MODULES_LOAD_CONF)
    })
    .map(|_| ())
}

/// Loaded before learning by root's modprobe, configured nowhere: preloaded
/// "before learning", cause unknown (preload.rs checks that it needs review).
pub fn profile_preloaded_unconfigured(f: &Facts) -> Result<(), String> {
    let p = profile(f)?;
    let m = module(&p, sc::PRELOADED_MODULE)?;
    trigger(m, &format!("preloaded {BEFORE_LEARNING}"), |t| {
        text(t, "/kind") == "preloaded" && text(t, "/reason") == BEFORE_LEARNING
    })
    .map(|_| ())
}

/// What loaded during the flood is in the profile too, with its cause.
pub fn profile_keeps_flood_loads(f: &Facts) -> Result<(), String> {
    let p = profile(f)?;
    let m = module(&p, sc::FLOOD_AUTOLOAD_MODULE)?;
    trigger(m, &format!("request {} by {}", sc::FLOOD_ALIAS, comm::GUEST_TOOL), |t| {
        text(t, "/kind") == "request"
            && text(t, "/alias") == sc::FLOOD_ALIAS
            && text(t, "/requester/comm") == comm::GUEST_TOOL
    })?;
    let m = module(&p, sc::FLOOD_EXPLICIT_MODULE)?;
    trigger(m, "explicit by modprobe", |t| text(t, "/kind") == "explicit" && text(t, "/loader/comm") == comm::MODPROBE)
        .map(|_| ())
}

// ---- report ----

/// The table's top row shows its unit and its trigger.
pub fn report_table(f: &Facts) -> Result<(), String> {
    let out = output_of(f, cap::REPORT_TABLE, 0)?;
    let [top, _, _] = sc::CHAIN;
    let row = out.lines().find(|l| l.split_whitespace().next() == Some(top));
    match row {
        Some(r) if r.contains(&format!("request {}", sc::CHAIN_ALIAS)) && r.contains(sc::UNIT) => Ok(()),
        _ => Err(format!("no `{top} ... {} ... request {}` row:\n{out}", sc::UNIT, sc::CHAIN_ALIAS)),
    }
}

/// Markdown: a table header with its separator line, and the top row.
pub fn report_markdown(f: &Facts) -> Result<(), String> {
    let out = output_of(f, cap::REPORT_MARKDOWN, 0)?;
    let lines: Vec<&str> = out.lines().collect();
    let header = lines.windows(2).any(|w| w[0].starts_with("| Module |") && w[1].starts_with("|---"));
    let [top, _, _] = sc::CHAIN;
    let row = lines.iter().any(|l| l.starts_with(&format!("| **{top}** |")) && l.contains(sc::CHAIN_ALIAS));
    if header && row {
        Ok(())
    } else {
        Err(format!("no `| Module |` header with its `|---` line, or no {top} row:\n{out}"))
    }
}

/// JSON: parses, has its schema, the guest's kernel and top top-level.
pub fn report_json(f: &Facts) -> Result<(), String> {
    let out = output_of(f, cap::REPORT_JSON, 0)?;
    let r: Value = serde_json::from_str(&out).map_err(|e| format!("not JSON ({e}):\n{out}"))?;
    let [top, _, _] = sc::CHAIN;
    let modules = r.pointer("/modules").and_then(Value::as_array);
    let has = modules.is_some_and(|m| m.iter().any(|m| text(m, "/module") == top));
    let kernel = f.output.kernel.as_deref().unwrap_or("?");
    if text(&r, "/schema") == "modtrace-report/1" && text(&r, "/kernel") == kernel && has {
        Ok(())
    } else {
        Err(format!("expected schema modtrace-report/1, kernel {kernel} and module {top}:\n{out}"))
    }
}

/// `--by unit` names the unit and what it needs.
pub fn report_by_unit(f: &Facts) -> Result<(), String> {
    let out = output_of(f, cap::REPORT_BY_UNIT, 0)?;
    let [top, _, _] = sc::CHAIN;
    let heading = out.lines().any(|l| l.trim() == sc::UNIT);
    let need = out.lines().any(|l| l.contains(&format!("{} needs {top}", sc::UNIT)));
    if heading && need {
        Ok(())
    } else {
        Err(format!("no `{}` group saying it needs {top}:\n{out}", sc::UNIT))
    }
}

// ---- snapshot and diff ----

/// diff(1)'s convention: 1 when the snapshots differ, 0 when they are the same.
pub fn diff_exit_codes(f: &Facts) -> Result<(), String> {
    let changed = output_of(f, cap::DIFF_CHANGED, 1)?;
    let [top, _, _] = sc::CHAIN;
    if !changed.lines().any(|l| l == format!("+ {top}")) {
        return Err(format!("the diff does not add {top}:\n{changed}"));
    }
    let same = output_of(f, cap::DIFF_SAME, 0)?;
    if !same.contains("no difference") {
        return Err(format!("a snapshot compared with itself:\n{same}"));
    }
    Ok(())
}

/// With --profile, an added module is shown with its cause.
pub fn diff_explained_by_profile(f: &Facts) -> Result<(), String> {
    let out = output_of(f, cap::DIFF_EXPLAINED, 1)?;
    let [top, _, _] = sc::CHAIN;
    let line = out.lines().find(|l| l.starts_with(&format!("+ {top} (")));
    match line {
        Some(l) if l.contains(sc::CHAIN_ALIAS) => Ok(()),
        _ => Err(format!("no `+ {top} (... {} ...)` line:\n{out}", sc::CHAIN_ALIAS)),
    }
}

// ---- learn's failure cases ----

/// A second learner on the same profile refuses, naming the lock and the pid.
pub fn second_learner_refused(f: &Facts) -> Result<(), String> {
    let pid = f.output.text("learn.pid")?.trim().to_string();
    let stderr = f.output.text(&format!("{}.stderr", cap::SECOND_LEARNER))?;
    let status = f.output.exit_code(cap::SECOND_LEARNER)?;
    if status == 0 || !stderr.contains(&format!("pid {pid}")) || !stderr.contains(".lock") {
        return Err(format!("the second learner exited {status}, expected non-zero and a message naming the lock and pid {pid}:\n{stderr}"));
    }
    Ok(())
}

/// SIGKILL during learning leaves the last checkpoint: a profile with the module
/// that loaded before the kill (with its cause), its session marked as a checkpoint.
pub fn killed_learner_checkpoint(f: &Facts) -> Result<(), String> {
    let status = f.output.exit_code(cap::KILLED_LEARNER)?;
    if status != 128 + 9 {
        return Err(format!("the learner's status was {status}, expected 137 (SIGKILL)"));
    }
    let p = json_section(f, section::KILLED_PROFILE)?;
    if text(&p, "/schema") != SCHEMA {
        return Err(format!("schema is {:?}, expected {SCHEMA}", p.pointer("/schema")));
    }
    // Loaded after this learner started: learned from its load, not found preloaded.
    let m = module(&p, sc::KILLED_LEARNER_MODULE)?;
    trigger(m, "explicit by modprobe", |t| {
        text(t, "/kind") == "explicit" && text(t, "/loader/comm") == comm::MODPROBE
    })?;
    let ended = p.pointer("/sessions").and_then(Value::as_array).and_then(|s| s.last()).map(|s| text(s, "/ended_by"));
    match ended {
        Some("checkpoint") => Ok(()),
        other => Err(format!("the last session ended by {other:?}, expected \"checkpoint\"")),
    }
}

/// A truncated profile: learn refuses it, names the file with line and column,
/// and leaves it byte for byte as it was.
pub fn corrupt_profile_refused_and_kept(f: &Facts) -> Result<(), String> {
    let status = f.output.exit_code(cap::CORRUPT_LEARNER)?;
    let stderr = f.output.text(&format!("{}.stderr", cap::CORRUPT_LEARNER))?;
    if status == 0 || !names_position(&stderr, sc::CORRUPT_PROFILE) {
        return Err(format!(
            "learn exited {status}, expected non-zero and `{}:LINE:COLUMN` in:\n{stderr}",
            sc::CORRUPT_PROFILE
        ));
    }
    let cmp = f.output.exit_code(cap::CORRUPT_CMP)?;
    let after = f.output.text(section::CORRUPT_AFTER)?;
    if cmp != 0 || after != sc::CORRUPT_TEXT {
        return Err(format!("the file changed (cmp exit {cmp}); now:\n{after}"));
    }
    Ok(())
}

/// `text` contains `PATH:LINE:COLUMN` with numbers.
pub(super) fn names_position(text: &str, path: &str) -> bool {
    text.match_indices(&format!("{path}:")).any(|(i, m)| {
        let mut parts = text[i + m.len()..].splitn(3, ':');
        let number = |s: Option<&str>| s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
        number(parts.next()) && number(parts.next())
    })
}

/// The learner stored its session's losses by kind, and they add up to the
/// session's total.
pub fn profile_session_drops_by_kind(f: &Facts) -> Result<(), String> {
    const KINDS: [&str; 15] = [
        "ring_requests",
        "ring_loads",
        "ring_failures",
        "unreadable_aliases",
        "unreadable_module_names",
        "results_without_call",
        "evicted_requests",
        "evicted_untrusted_requests",
        "undecodable_requests",
        "undecodable_loads",
        "undecodable_failures",
        "skipped_requests",
        "skipped_loads",
        "skipped_results",
        "lost_repeats",
    ];
    let p = profile(f)?;
    let session = p.pointer("/sessions/0").ok_or("the profile has no session")?;
    let drops = session.pointer("/drops").ok_or_else(|| evidence("the session has no drops", session))?;
    let mut sum = 0;
    for kind in KINDS {
        sum += drops.get(kind).and_then(Value::as_u64).ok_or_else(|| evidence(&format!("drops has no {kind}"), session))?;
    }
    match session.pointer("/lost_events").and_then(Value::as_u64) {
        Some(total) if total == sum => Ok(()),
        _ => Err(evidence(&format!("lost_events is not the sum of the drops ({sum})"), session)),
    }
}
