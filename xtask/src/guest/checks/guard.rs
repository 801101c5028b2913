//! Checks of `modtrace guard` (tests/guest/guard.sh): complain lets a module
//! outside the profile load and reports it; enforce loads the profile's
//! modules on demand and refuses the rest, each refusal attributed in
//! `modtrace trace --json` and in `modtrace guard log`, which were started
//! before the guard and follow it across a refresh and a restart; an
//! init_module image named in section 0, which the kernel skips; status,
//! stop, and loading after stop; the measured cost of a decision.

use serde_json::Value;

use super::{evidence, text, Facts};
use crate::guest::scenario as sc;

/// Outside the learned profile (tests/guest/guard.sh's GUARD_OUTSIDE).
const OUTSIDE: &str = "tcp_scalable";
/// Asked for after the guard was stopped and started anew (GUARD_RESTART_CC).
const RESTART_ALIAS: &str = "tcp_hybla";

/// The section's records; lines that are not one are passed over.
fn records(f: &Facts, section: &str) -> Result<Vec<Value>, String> {
    Ok(super::jsonl_section(f, section)?.0)
}

fn decision<'a>(list: &'a [Value], what: &str, pred: impl Fn(&Value) -> bool) -> Result<&'a Value, String> {
    let guard: Vec<&Value> = list.iter().filter(|r| text(r, "/kind").starts_with("guard_")).collect();
    guard.iter().copied().find(|r| pred(r)).ok_or_else(|| {
        let seen: Vec<String> = guard.iter().map(|r| r.to_string()).collect();
        format!("no {what} among {} guard decisions:\n      {}", guard.len(), seen.join("\n      "))
    })
}

fn traced(f: &Facts) -> Result<Vec<Value>, String> {
    records(f, "guard-trace.jsonl")
}

fn status(f: &Facts, name: &str, want: impl Fn(i32) -> bool, meaning: &str) -> Result<(), String> {
    let code = f.output.exit_code(name)?;
    if want(code) {
        Ok(())
    } else {
        let out = f.output.text(&format!("{name}.stdout")).unwrap_or_default();
        let err = f.output.text(&format!("{name}.stderr")).unwrap_or_default();
        Err(format!("{name}: exit {code}, expected {meaning}\n      stdout: {out}\n      stderr: {err}"))
    }
}

fn ok(f: &Facts, name: &str) -> Result<(), String> {
    status(f, name, |c| c == 0, "0")
}

fn refused(f: &Facts, name: &str) -> Result<(), String> {
    status(f, name, |c| c != 0, "a failure")
}

fn by(r: &Value, comm: &str, mode: &str) -> bool {
    text(r, "/process/comm") == comm && text(r, "/mode") == mode
}

/// The module file's own name: tcp_scalable.ko or tcp_scalable.ko.xz.
fn is_file_of(r: &Value, module: &str) -> bool {
    text(r, "/file").strip_prefix(module).is_some_and(|rest| rest.starts_with(".ko"))
}

pub fn status_before_start(f: &Facts) -> Result<(), String> {
    status(f, "guard-status-before", |c| c == 3, "3 (not running)")?;
    let out = f.output.text("guard-status-before.stdout")?;
    out.contains("not running").then_some(()).ok_or_else(|| format!("guard status before start says: {out}"))
}

pub fn complain_lets_outside_load_and_reports_it(f: &Facts) -> Result<(), String> {
    ok(f, "guard-start-complain")?;
    ok(f, "guard-complain-modprobe-outside")?;
    ok(f, "guard-complain-outside-loaded")?;
    let list = traced(f)?;
    let r = decision(&list, &format!("would-deny of {OUTSIDE} by modprobe"), |r| {
        text(r, "/kind") == "guard_would_deny"
            && by(r, "modprobe", "complain")
            && (is_file_of(r, OUTSIDE) || text(r, "/module") == OUTSIDE || text(r, "/hook") == "init_module")
    })?;
    if r.pointer("/process/pid").and_then(Value::as_u64).unwrap_or(0) == 0 {
        return Err(evidence("the would-deny names no process id", r));
    }
    Ok(())
}

pub fn enforce_loads_profile_modules_on_demand(f: &Facts) -> Result<(), String> {
    ok(f, "guard-start-enforce")?;
    ok(f, "guard-enforce-modprobe-profile")?;
    ok(f, "guard-enforce-profile-loaded")?;
    ok(f, "guard-enforce-autoload-profile")?;
    ok(f, "guard-enforce-autoload-profile-loaded")?;
    let list = traced(f)?;
    decision(&list, &format!("allowed request {} by ip", sc::DUMMY_ALIAS), |r| {
        text(r, "/kind") == "guard_allowed" && text(r, "/alias") == sc::DUMMY_ALIAS && by(r, sc::comm::IP, "enforce")
    })?;
    decision(&list, &format!("allowed load of {} by modprobe", sc::EXPLICIT_MODULE), |r| {
        text(r, "/kind") == "guard_allowed" && text(r, "/module") == sc::EXPLICIT_MODULE && by(r, "modprobe", "enforce")
    })?;
    Ok(())
}

pub fn enforce_refuses_explicit_load_outside(f: &Facts) -> Result<(), String> {
    refused(f, "guard-enforce-modprobe-outside")?;
    status(f, "guard-enforce-outside-loaded", |c| c != 0, "not loaded")?;
    let list = traced(f)?;
    decision(&list, &format!("denied load of {OUTSIDE} by modprobe"), |r| {
        text(r, "/kind") == "guard_denied"
            && by(r, "modprobe", "enforce")
            && (is_file_of(r, OUTSIDE) || text(r, "/module") == OUTSIDE)
    })?;
    Ok(())
}

pub fn enforce_refuses_autoload_outside(f: &Facts) -> Result<(), String> {
    refused(f, "guard-enforce-autoload-outside")?;
    let list = traced(f)?;
    let r = decision(&list, &format!("denied request {OUTSIDE} by sh"), |r| {
        text(r, "/kind") == "guard_denied" && text(r, "/hook") == "request" && text(r, "/alias") == OUTSIDE
    })?;
    if !by(r, "sh", "enforce") || r.pointer("/process/uid") != Some(&Value::from(0)) {
        return Err(evidence("the refused request is not attributed to the shell (uid 0) that wrote the sysctl", r));
    }
    Ok(())
}

pub fn enforce_refuses_renamed_module_file(f: &Facts) -> Result<(), String> {
    refused(f, "guard-enforce-renamed-file")?;
    status(f, "guard-enforce-renamed-loaded", |c| c != 0, "not loaded")?;
    let list = traced(f)?;
    let r = decision(&list, "denied finit_module of renamed.ko", |r| {
        text(r, "/kind") == "guard_denied" && text(r, "/hook") == "finit_module" && text(r, "/file") == "renamed.ko"
    })?;
    if !by(r, "insmod", "enforce") || r.pointer("/module").is_some_and(|m| !m.is_null()) {
        return Err(evidence("expected insmod, and no module named for a file outside the tree", r));
    }
    Ok(())
}

pub fn enforce_refuses_init_module_outside(f: &Facts) -> Result<(), String> {
    refused(f, "guard-enforce-init-module")?;
    let list = traced(f)?;
    decision(&list, "denied init_module by modtrace-guest", |r| {
        text(r, "/kind") == "guard_denied"
            && text(r, "/hook") == "init_module"
            && by(r, sc::comm::GUEST_TOOL, "enforce")
    })?;
    Ok(())
}

/// The decoy image (guard.sh's guard_decoy): OUTSIDE's module with section 0
/// named .gnu.linkonce.this_module, pointing at the profile module's name.
/// Refused by the guard (EPERM, not the kernel's ENOEXEC), under the name the
/// kernel would have loaded it as, and not loaded.
pub fn decoy_init_module_named_as_the_kernel_names_it(f: &Facts) -> Result<(), String> {
    refused(f, "guard-decoy-init-module")?;
    let err = f.output.text("guard-decoy-init-module.stderr")?;
    if !err.contains("Operation not permitted") {
        return Err(format!("guard-decoy-init-module: expected EPERM from the guard, got: {err}"));
    }
    status(f, "guard-decoy-loaded", |c| c != 0, "not loaded")?;
    let list = traced(f)?;
    decision(&list, &format!("denied init_module of {OUTSIDE} by modtrace-guest"), |r| {
        text(r, "/kind") == "guard_denied"
            && text(r, "/hook") == "init_module"
            && text(r, "/module") == OUTSIDE
            && by(r, sc::comm::GUEST_TOOL, "enforce")
    })?;
    Ok(())
}

pub fn status_reports_mode_profile_and_counts(f: &Facts) -> Result<(), String> {
    ok(f, "guard-status")?;
    let out = f.output.text("guard-status.stdout")?;
    if !out.contains("mode enforce") || !out.contains(sc::PROFILE) {
        return Err(format!("guard status does not name the mode and profile:\n{out}"));
    }
    ok(f, "guard-status-json")?;
    let json = f.output.text("guard-status-json.stdout")?;
    let v: Value = serde_json::from_str(json.trim()).map_err(|e| format!("{e}: {json}"))?;
    let n = |p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    if v["active"] != Value::Bool(true) || text(&v, "/state/mode") != "enforce" {
        return Err(evidence("status --json is not active/enforce", &v));
    }
    // Refused: the explicit load, the autoload, the renamed file, init_module.
    if n("/decisions/denied") < 4 || n("/decisions/would_deny") < 1 || n("/decisions/allowed") < 2 {
        return Err(evidence("too few decisions counted", &v));
    }
    if n("/decisions/lost") != 0 {
        return Err(evidence("decisions were lost", &v));
    }
    // Read from the pinned programs' fdinfo: a number, and none skipped here.
    if v.pointer("/decisions/skipped").and_then(Value::as_u64) != Some(0) || !out.contains("0 skipped by the kernel") {
        return Err(evidence("status does not say that no hook run was skipped", &v));
    }
    Ok(())
}

pub fn stop_restores_loading(f: &Facts) -> Result<(), String> {
    ok(f, "guard-stop")?;
    let out = f.output.text("guard-stop.stdout")?;
    if !out.contains("guard stopped") {
        return Err(format!("guard stop says: {out}"));
    }
    status(f, "guard-status-after", |c| c == 3, "3 (not running)")?;
    ok(f, "guard-after-autoload")?;
    ok(f, "guard-after-outside-loaded")
}

pub fn log_carries_the_refusals(f: &Facts) -> Result<(), String> {
    ok(f, "guard-log")?;
    let list = records(f, "guard-log.jsonl")?;
    decision(&list, &format!("logged denied request {OUTSIDE}"), |r| {
        text(r, "/kind") == "guard_denied" && text(r, "/alias") == OUTSIDE && text(r, "/process/comm") == "sh"
    })?;
    decision(&list, "logged denied renamed.ko", |r| {
        text(r, "/kind") == "guard_denied" && text(r, "/file") == "renamed.ko"
    })?;
    Ok(())
}

/// The trace and the logger were started before the guard, and ran across a
/// refresh and a stop and new start: both show the new guard's refusal.
pub fn watchers_follow_the_guard(f: &Facts) -> Result<(), String> {
    ok(f, "guard-refresh")?;
    ok(f, "guard-restart-stop")?;
    ok(f, "guard-restart-start")?;
    status(f, "guard-restart-autoload", |c| c != 0, "a failure (refused)")?;
    let denied = |r: &Value| text(r, "/kind") == "guard_denied" && text(r, "/alias") == RESTART_ALIAS;
    decision(&traced(f)?, &format!("traced refusal of {RESTART_ALIAS} after the restart"), denied)?;
    decision(&records(f, "guard-log.jsonl")?, &format!("logged refusal of {RESTART_ALIAS} after the restart"), denied)?;
    Ok(())
}

/// `finit-loop: file=F count=N errors=E:N,... micros_per_call=U`.
fn cost(f: &Facts, name: &str) -> Result<(String, f64), String> {
    ok(f, name)?;
    let out = f.output.text(&format!("{name}.stdout"))?;
    let field = |key: &str| out.split_whitespace().find_map(|w| w.strip_prefix(key)).map(str::to_string);
    let errors = field("errors=").ok_or_else(|| format!("{name}: {out}"))?;
    let micros = field("micros_per_call=").and_then(|m| m.parse().ok()).ok_or_else(|| format!("{name}: {out}"))?;
    Ok((errors, micros))
}

/// The same 1000 finit_module calls with and without the guard, same boot:
/// every call with the guard on the renamed file was refused (EPERM), and
/// without it none was. Prints the figures.
pub fn cost_of_a_decision_measured(f: &Facts) -> Result<(), String> {
    let (allowed_errors, allowed) = cost(f, "guard-cost-allowed")?;
    let (refused_errors, refused) = cost(f, "guard-cost-refused")?;
    let (_, allowed_bare) = cost(f, "guard-cost-allowed-unguarded")?;
    let (bare_errors, refused_bare) = cost(f, "guard-cost-renamed-unguarded")?;
    if refused_errors != "1:1000" {
        return Err(format!("with the guard, the renamed file gave {refused_errors}, expected EPERM (1) 1000 times"));
    }
    if bare_errors.contains("1:") {
        return Err(format!("without the guard, the renamed file still gave EPERM: {bare_errors}"));
    }
    eprintln!(
        "      guard cost: allowed file {allowed:.1} us/call with guard vs {allowed_bare:.1} without (x{:.2}, {allowed_errors}); \
         refused file {refused:.1} us/call (EPERM) vs {refused_bare:.1} without (x{:.2}, {bare_errors})",
        allowed / allowed_bare,
        refused / refused_bare
    );
    Ok(())
}
