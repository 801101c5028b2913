//! The checks of a guard boot that sealed the guard at boot
//! (MODTRACE_GUARD_SEAL=yes in /etc/default/modtrace; tests/system/guarded.sh's
//! `sealed`): modtrace-guard.service started it sealed; root's attempts to
//! undo it from a unit were refused, counted, and logged to the journal with
//! who tried; the kernel hook and generate left it as it was and said the new
//! policy applies from the next boot; the profile's modules still load.

use serde_json::Value;

use super::guard::{
    expect_fields, failed_eperm, field, g, journal, status_json, succeeded_saying, GUARDED_UNIT, GUARD_UNIT,
};
use super::Facts;
use crate::check::CheckFn;

/// What guarded.sh loads again while sealed (unloaded first): in the profile.
const PROFILE_MODULE: &str = "appletalk";
/// The attempts to undo the sealed guard: (step, what it tried).
const UNDO: [(&str, &str); 4] = [
    ("sealed-stop", "modtrace guard stop"),
    ("sealed-start-complain", "modtrace guard start --mode complain"),
    ("sealed-rm", "rm -rf of the pin directory"),
    ("sealed-umount", "umount /sys/fs/bpf"),
];
/// Who must be named in the journal for a refusal, by command name.
const LOGGED: [&str; 2] = ["rm", "umount"];
const SEALED_WORDS: &str = "sealed until the next boot";
/// util-linux's umount says this for EPERM, root or not.
const UMOUNT_EPERM_WORDS: &str = "must be superuser to unmount";
const DEFERRED_WORDS: &str = "applies from the next boot";

pub const SEALED_CHECKS: &[(&str, CheckFn<Facts>)] = &[
    ("guard_sealed_at_boot", sealed_at_boot),
    ("guard_sealed_undo_refused", undo_refused),
    ("guard_sealed_refusals_counted", refusals_counted),
    ("guard_sealed_refusals_logged_with_who", refusals_logged),
    ("guard_sealed_hook_defers_to_next_boot", |f| succeeded_saying(g(f)?, "sealed-hook", DEFERRED_WORDS)),
    ("guard_sealed_generate_defers_to_next_boot", |f| succeeded_saying(g(f)?, "sealed-generate", DEFERRED_WORDS)),
    ("guard_sealed_profile_module_loads", profile_module_loads),
];

/// `guard status --json`, before any attempt: sealed, by the unit at boot.
fn sealed_at_boot(f: &Facts) -> Result<(), String> {
    let v = status_json(g(f)?, "guard-status")?;
    match v.pointer("/sealed") {
        Some(Value::Bool(true)) => Ok(()),
        _ => Err(format!("guard status does not say the guard was sealed at boot: {v}")),
    }
}

/// Each attempt failed: the kernel's EPERM, or modtrace's words for it.
fn undo_refused(f: &Facts) -> Result<(), String> {
    let r = g(f)?;
    for (step, what) in UNDO {
        let said = r.said(step);
        if r.status(step)? != 0 && [SEALED_WORDS, UMOUNT_EPERM_WORDS].iter().any(|w| said.contains(w)) {
            continue;
        }
        failed_eperm(r, step, what)?;
    }
    Ok(())
}

/// `guard status` after the attempts counts at least one refusal for each.
fn refusals_counted(f: &Facts) -> Result<(), String> {
    let v = status_json(g(f)?, "guard-status-sealed")?;
    let refused = v.pointer("/decisions/refused").and_then(Value::as_u64).unwrap_or(0);
    if v.pointer("/sealed") != Some(&Value::Bool(true)) || refused < UNDO.len() as u64 {
        return Err(format!("guard status is not sealed or counts fewer than {} refusals: {v}", UNDO.len()));
    }
    Ok(())
}

/// The logger of modtrace-guard.service wrote each refusal of rm and umount,
/// naming root's process and guarded.sh's unit.
fn refusals_logged(f: &Facts) -> Result<(), String> {
    let entries = journal(g(f)?, "journal-sealed.json")?;
    for comm in LOGGED {
        let found = entries.iter().find(|e| field(e, "MODTRACE_COMM") == comm);
        let Some(e) = found else {
            return Err(format!("no seal refusal by {comm} in the journal ({} entries)", entries.len()));
        };
        let want = [
            ("MODTRACE_DECISION", "refused"),
            ("MODTRACE_HOOK", "seal"),
            ("MODTRACE_UID", "0"),
            ("MODTRACE_UNIT", GUARDED_UNIT),
            ("_SYSTEMD_UNIT", GUARD_UNIT),
        ];
        expect_fields(e, &want)?;
        if field(e, "MODTRACE_PID").parse::<u32>().unwrap_or(0) == 0 || field(e, "MODTRACE_ATTEMPT").is_empty() {
            return Err(format!("the refusal of {comm} names no process or attempt: {e}"));
        }
    }
    Ok(())
}

/// A module of the profile, unloaded, loads again under the sealed guard.
fn profile_module_loads(f: &Facts) -> Result<(), String> {
    let r = g(f)?;
    for step in ["sealed-rmmod", "sealed-modprobe"] {
        if r.status(step)? != 0 {
            return Err(format!("{step} ({PROFILE_MODULE}) failed: {}", r.said(step)));
        }
    }
    match r.modules("proc-modules-sealed")?.contains(PROFILE_MODULE) {
        true => Ok(()),
        false => Err(format!("{PROFILE_MODULE} is not loaded after modprobe under the sealed guard")),
    }
}
