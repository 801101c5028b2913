//! The checks of the guard boot (tests/system/guarded.sh), between boot 1 and
//! boot 2: modtrace-guard.service enforced the learned profile from early boot;
//! the boot still reached multi-user.target with every learned module loaded;
//! loads outside the profile were refused with EPERM, and the journal says who
//! tried, in MODTRACE_* fields; a replaced module file is refused until the
//! kernel postinst hook refreshes the guard (REFRESH_CHECKS; a suite whose
//! guard boot seals the guard has sealed.rs's checks instead).

use std::collections::BTreeSet;

use serde_json::Value;

use super::{
    modules_disabled, no_failed_units, reached_multi_user, refused, Facts, Recorded, DENIED_ALIAS, DENIED_EXPLICIT,
    DENIED_EXPLICIT_DEPENDENCY, DENIED_IN_MEMORY, DENIED_REQUESTED, EPERM_TEXT, GUEST_TOOL, MODPROBE,
};
use crate::check::CheckFn;

pub(super) const GUARD_UNIT: &str = "modtrace-guard.service";
/// The unit of guarded.sh, which makes the refused attempts.
pub(super) const GUARDED_UNIT: &str = "modtrace-test-guarded.service";
const PROFILE_PATH: &str = "/var/lib/modtrace/profile.json";
/// What guarded.sh replaces (same bytes, new inode), as an upgrade would.
const REPLACED_MODULE: &str = "appletalk";
/// The units that load modules at boot, which the guard must precede.
const LOADERS: [&str; 2] = ["systemd-modules-load.service", "systemd-udevd.service"];

pub const GUARD_CHECKS: &[(&str, CheckFn<Facts>)] = &[
    ("guard_boot_finished", finished),
    ("guard_boot_reached_multi_user", |f| reached_multi_user(g(f)?)),
    ("guard_boot_no_failed_units", |f| no_failed_units(g(f)?)),
    ("guard_boot_unlocked", |f| modules_disabled(g(f)?, "0")),
    ("guard_service_before_module_loaders", service_before_loaders),
    ("guard_status_enforce_from_profile", status_enforce),
    ("guard_boot_kept_learned_modules", kept_learned_modules),
    ("guard_boot_refused_nothing_learned", refused_nothing_learned),
    ("guard_denied_modprobe_eperm", |f| {
        refused(g(f)?, &f.profile_modules()?, "deny-modprobe", &[DENIED_EXPLICIT, DENIED_EXPLICIT_DEPENDENCY], true)
    }),
    ("guard_denied_init_module_eperm", |f| {
        refused(g(f)?, &f.profile_modules()?, "deny-init-module", &[DENIED_IN_MEMORY], true)
    }),
    ("guard_denied_request", |f| refused(g(f)?, &f.profile_modules()?, "deny-request", &[DENIED_REQUESTED], false)),
    ("guard_journal_denied_modprobe", journal_denied_modprobe),
    ("guard_journal_denied_init_module", journal_denied_init_module),
    ("guard_journal_denied_request", journal_denied_request),
    ("guard_boot_switched_to_lock", switched_to_lock),
];

/// The unsealed guard boot's: the kernel hook and generate replace its policy.
pub const REFRESH_CHECKS: &[(&str, CheckFn<Facts>)] = &[
    ("guard_refused_replaced_file", refused_replaced_file),
    ("guard_hook_refreshed_replaced_file", hook_refreshed),
    ("guard_generate_left_an_unchanged_guard", generate_unchanged),
    ("guard_generate_names_the_guards_other_profile", generate_other_profile),
    ("guard_generate_refreshed_a_changed_set", generate_changed),
];

fn guard_boot(f: &Facts) -> Result<&super::Boot, String> {
    f.guard.as_ref().ok_or_else(|| "this suite has no guard boot".to_string())
}

fn finished(f: &Facts) -> Result<(), String> {
    guard_boot(f)?.finished.clone()
}

/// What the guard boot recorded.
pub(super) fn g(f: &Facts) -> Result<&Recorded, String> {
    guard_boot(f)?.recorded.as_ref().ok_or_else(|| "the guard boot recorded nothing".to_string())
}

/// modtrace-guard.service was up (its ExecStartPre, `guard start`, done)
/// before systemd-modules-load and udev started, and its logger still runs.
fn service_before_loaders(f: &Facts) -> Result<(), String> {
    let r = g(f)?;
    let unit = r.unit(GUARD_UNIT)?;
    unit.expect("ActiveState", "active")?;
    unit.expect("SubState", "running")?;
    let up = unit.micros("ActiveEnterTimestampMonotonic").ok_or("modtrace-guard.service was never active")?;
    for loader in LOADERS {
        let started = r
            .unit(loader)?
            .micros("InactiveExitTimestampMonotonic")
            .ok_or_else(|| format!("{loader} never started (nothing to order the guard before)"))?;
        if started < up {
            return Err(format!(
                "{loader} started at {:.3} s, before the guard was in force at {:.3} s",
                super::secs(started),
                super::secs(up)
            ));
        }
    }
    Ok(())
}

pub(super) fn status_json(r: &Recorded, step: &str) -> Result<Value, String> {
    if r.status(step)? != 0 {
        return Err(format!("modtrace guard status exited {}: {}", r.status(step)?, r.said(step)));
    }
    let out = r.text(&format!("{step}.out"))?;
    serde_json::from_str(out).map_err(|e| format!("{step}.out does not parse ({e}): {out}"))
}

/// `guard status --json`: active, enforce, from the default profile, nothing
/// lost, and no hook run skipped (a number: read from the pinned programs).
fn status_enforce(f: &Facts) -> Result<(), String> {
    let v = status_json(g(f)?, "guard-status")?;
    let want =
        [("/active", Value::from(true)), ("/state/mode", "enforce".into()), ("/state/profile", PROFILE_PATH.into())];
    for (pointer, value) in want {
        if v.pointer(pointer) != Some(&value) {
            return Err(format!("guard status has {pointer} = {:?}, expected {value}: {v}", v.pointer(pointer)));
        }
    }
    // A sealed guard's programs cannot be opened, so their run counts are
    // unknown (null), never a guessed 0.
    let skipped = v.pointer("/decisions/skipped");
    let unknown_when_sealed = f.sealed_guard && skipped == Some(&Value::Null);
    if skipped.and_then(Value::as_u64) != Some(0) && !unknown_when_sealed {
        return Err(format!("guard status does not say that no hook run was skipped: {v}"));
    }
    match v.pointer("/decisions/lost").and_then(Value::as_u64) {
        Some(0) => Ok(()),
        lost => Err(format!("the guard lost decisions: {lost:?}: {v}")),
    }
}

/// Every boot-1 module the profile keeps is loaded in the guarded boot:
/// modules-load.d, udev and the services loaded them through the guard.
fn kept_learned_modules(f: &Facts) -> Result<(), String> {
    let boot1 = f.b1()?.modules("proc-modules")?;
    let guarded = g(f)?.modules("proc-modules")?;
    let profile = f.kept_modules()?;
    let kept: BTreeSet<&String> = boot1.intersection(&profile).collect();
    let missing: Vec<&&String> = kept.iter().filter(|m| !guarded.contains(**m)).collect();
    if kept.is_empty() || !missing.is_empty() {
        return Err(format!(
            "{} of the {} boot-1 modules the profile keeps are not loaded under the guard: {missing:?}",
            missing.len(),
            kept.len()
        ));
    }
    Ok(())
}

/// The journal's JSON lines (journalctl -o json) in `name`.
pub(super) fn journal(r: &Recorded, name: &str) -> Result<Vec<Value>, String> {
    let mut entries = Vec::new();
    for line in r.text(name)?.lines().filter(|l| l.starts_with('{')) {
        entries.push(serde_json::from_str(line).map_err(|e| format!("{name}: {e}: {line}"))?);
    }
    Ok(entries)
}

pub(super) fn field<'a>(entry: &'a Value, name: &str) -> &'a str {
    entry.get(name).and_then(Value::as_str).unwrap_or("")
}

/// No refusal while the machine booted names a module of the profile: what
/// the boot loaded (or asked for) the guard allowed.
fn refused_nothing_learned(f: &Facts) -> Result<(), String> {
    let profile = f.profile_modules()?;
    let entries = journal(g(f)?, "journal-boot-denied.json")?;
    let learned: Vec<String> = entries
        .iter()
        .filter(|e| {
            let module = field(e, "MODTRACE_MODULE");
            let file = field(e, "MODTRACE_FILE");
            profile.contains(module) || profile.iter().any(|m| file.split('.').next() == Some(m.as_str()))
        })
        .map(|e| format!("{} by {} ({})", field(e, "MESSAGE"), field(e, "MODTRACE_COMM"), field(e, "MODTRACE_UNIT")))
        .collect();
    if !learned.is_empty() {
        return Err(format!("the guard refused modules of the profile during boot: {learned:#?}"));
    }
    Ok(())
}

/// A refusal in the journal: logged by modtrace-guard.service's logger with
/// the decision's fields, attributed to `comm` in guarded.sh's unit.
fn journal_refusal(f: &Facts, hook: &str, comm: &str, what: impl Fn(&Value) -> bool) -> Result<(), String> {
    let entries = journal(g(f)?, "guard-journal.json")?;
    let decisions: Vec<&Value> = entries.iter().filter(|e| !field(e, "MODTRACE_DECISION").is_empty()).collect();
    let found = decisions
        .iter()
        .find(|e| field(e, "MODTRACE_DECISION") == "denied" && field(e, "MODTRACE_HOOK") == hook && what(e));
    let Some(e) = found else {
        let seen: Vec<String> = decisions
            .iter()
            .map(|e| {
                format!(
                    "{} {} {}{} by {}",
                    field(e, "MODTRACE_DECISION"),
                    field(e, "MODTRACE_HOOK"),
                    field(e, "MODTRACE_ALIAS"),
                    field(e, "MODTRACE_FILE"),
                    field(e, "MODTRACE_COMM")
                )
            })
            .collect();
        return Err(format!("no denied {hook} decision of that kind in the journal; decisions there: {seen:#?}"));
    };
    let want = [
        ("_SYSTEMD_UNIT", GUARD_UNIT),
        // What the docs tell admins to filter on: journalctl -t modtrace-guard.
        ("SYSLOG_IDENTIFIER", "modtrace-guard"),
        ("MODTRACE_MODE", "enforce"),
        ("MODTRACE_COMM", comm),
        ("MODTRACE_UNIT", GUARDED_UNIT),
        ("MODTRACE_SCOPE", "system"),
        ("MODTRACE_UID", "0"),
    ];
    expect_fields(e, &want)?;
    if field(e, "MODTRACE_PID").parse::<u32>().is_err() || field(e, "MODTRACE_REASON").is_empty() {
        return Err(format!("the journal entry has no MODTRACE_PID or MODTRACE_REASON: {e}"));
    }
    Ok(())
}

/// The journal entry `e` has each field of `want` with its value.
pub(super) fn expect_fields(e: &Value, want: &[(&str, &str)]) -> Result<(), String> {
    match want.iter().find(|(name, value)| field(e, name) != *value) {
        Some((name, value)) => {
            Err(format!("the journal entry has {name}={:?}, expected {value:?}: {e}", field(e, name)))
        }
        None => Ok(()),
    }
}

/// modprobe isofs: the file refused is cdrom's (loaded first) or isofs's.
fn journal_denied_modprobe(f: &Facts) -> Result<(), String> {
    journal_refusal(f, "finit_module", MODPROBE, |e| {
        let module = field(e, "MODTRACE_FILE").split('.').next().unwrap_or("");
        [DENIED_EXPLICIT, DENIED_EXPLICIT_DEPENDENCY].contains(&module) && !field(e, "MODTRACE_INO").is_empty()
    })
}

fn journal_denied_init_module(f: &Facts) -> Result<(), String> {
    journal_refusal(f, "init_module", GUEST_TOOL, |_| true)
}

fn journal_denied_request(f: &Facts) -> Result<(), String> {
    journal_refusal(f, "request", GUEST_TOOL, |e| field(e, "MODTRACE_ALIAS") == DENIED_ALIAS)
}

/// The replaced file (a new inode) was refused before the refresh: the guard
/// knows files by inode, not by name.
fn refused_replaced_file(f: &Facts) -> Result<(), String> {
    let r = g(f)?;
    if r.status("replace-rmmod")? != 0 {
        return Err(format!("rmmod {REPLACED_MODULE} failed: {}", r.said("replace-rmmod")));
    }
    failed_eperm(r, "replace-stale", &format!("modprobe {REPLACED_MODULE} of its replaced file"))
}

/// `step` succeeded and said `want` (on stdout or stderr).
pub(super) fn succeeded_saying(r: &Recorded, step: &str, want: &str) -> Result<(), String> {
    let said = r.said(step);
    match r.status(step)? {
        0 if said.contains(want) => Ok(()),
        status => Err(format!("{step} exited {status}, expected 0 and `{want}`: {said}")),
    }
}

/// `step` (`what`) failed with EPERM.
pub(super) fn failed_eperm(r: &Recorded, step: &str, what: &str) -> Result<(), String> {
    let said = r.said(step);
    match r.status(step)? {
        status if status != 0 && said.contains(EPERM_TEXT) => Ok(()),
        status => Err(format!("{what} exited {status}, expected a failure with {EPERM_TEXT:?}: {said}")),
    }
}

/// The kernel postinst hook, run for the running kernel, refreshed the guard
/// from the same profile and mode; the replaced file loads again.
fn hook_refreshed(f: &Facts) -> Result<(), String> {
    let r = g(f)?;
    succeeded_saying(r, "replace-hook", "guard policy replaced")?;
    if r.status("replace-modprobe")? != 0 {
        return Err(format!("modprobe {REPLACED_MODULE} after the refresh failed: {}", r.said("replace-modprobe")));
    }
    if !r.modules("proc-modules-replaced")?.contains(REPLACED_MODULE) {
        return Err(format!("{REPLACED_MODULE} is not loaded after the refresh"));
    }
    let before = status_json(r, "guard-status")?;
    let after = status_json(r, "guard-status-after")?;
    let generation = |v: &Value| v.pointer("/generation").and_then(Value::as_u64).unwrap_or(0);
    if generation(&after) <= generation(&before) {
        return Err(format!(
            "the guard's generation did not advance: {} then {}",
            generation(&before),
            generation(&after)
        ));
    }
    for pointer in ["/state/mode", "/state/profile"] {
        if after.pointer(pointer) != before.pointer(pointer) {
            return Err(format!("the refresh changed {pointer}: {before} then {after}"));
        }
    }
    Ok(())
}

/// `modtrace generate` with the guard's profile and nothing changed: it says
/// the guard is unchanged, and exits 0.
fn generate_unchanged(f: &Facts) -> Result<(), String> {
    succeeded_saying(g(f)?, "generate-unchanged", "guard policy unchanged")
}

/// With the guard switched to a copy of the profile, generate from the default
/// one leaves the guard alone and names the command that would switch it.
fn generate_other_profile(f: &Facts) -> Result<(), String> {
    let r = g(f)?;
    succeeded_saying(r, "guard-start-copy", "guard policy replaced")?;
    succeeded_saying(r, "generate-other-profile", "the guard is left as it is")?;
    succeeded_saying(r, "generate-other-profile", "run: modtrace guard start --mode enforce")
}

/// The copy denies appletalk: generate from it replaced the guard's policy,
/// said appletalk is no longer allowed, and appletalk is then refused.
fn generate_changed(f: &Facts) -> Result<(), String> {
    let r = g(f)?;
    succeeded_saying(r, "deny-copy", "")?;
    succeeded_saying(r, "generate-changed", "guard policy replaced")?;
    succeeded_saying(r, "generate-changed", &format!("no longer allowed: {REPLACED_MODULE}"))?;
    failed_eperm(r, "generate-refused", &format!("modprobe {REPLACED_MODULE} after generate denied it"))
}

fn switched_to_lock(f: &Facts) -> Result<(), String> {
    let r = g(f)?;
    for step in ["enable", "disable"] {
        if r.status(step)? != 0 {
            return Err(format!("systemctl {step} failed: {}", r.said(step)));
        }
    }
    Ok(())
}
