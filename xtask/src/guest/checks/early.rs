//! Learning from early boot (tests/guest/early.sh): the probes `modtrace learn
//! --early` pinned traced a modprobe and a kernel request while no modtrace
//! process ran; the learner took them over, released a stale build's pins
//! unread, and learned both loads with their causes from the kernel's facts.

use serde_json::Value;

use super::{text, Facts};
use crate::guest::scenario::{self as sc, captured as cap, section};

fn stderr_of(f: &Facts, name: &str, want: &[&str]) -> Result<(), String> {
    let code = f.output.exit_code(name)?;
    let err = f.output.text(&format!("{name}.stderr")).unwrap_or_default();
    if code != 0 {
        return Err(format!("{name} exited {code}: {err}"));
    }
    match want.iter().find(|w| !err.contains(**w)) {
        Some(w) => Err(format!("{name}'s stderr does not say {w:?}: {err}")),
        None => Ok(()),
    }
}

/// Pinned, taken over (the stale build's pins released unread), and nothing
/// left pinned.
pub fn probes_pinned_and_taken_over(f: &Facts) -> Result<(), String> {
    stderr_of(f, cap::EARLY_PIN, &["pinned under /sys/fs/bpf/modtrace/early/"])?;
    let foreign = format!("another modtrace build's probes ({}): released unread", sc::EARLY_FOREIGN);
    stderr_of(f, cap::EARLY_LEARN, &["took over", &foreign])?;
    match f.output.exit_code(cap::EARLY_RELEASED)? {
        0 => Ok(()),
        code => Err(format!("/sys/fs/bpf/modtrace/early is still there after the learner took it over ({code})")),
    }
}

fn triggers_of(profile: &Value, module: &str) -> Result<Vec<Value>, String> {
    let modules = profile.get("modules").and_then(Value::as_array).ok_or("the early profile has no modules")?;
    let m = modules
        .iter()
        .find(|m| text(m, "/name") == module)
        .ok_or_else(|| format!("{module} is not in the early profile"))?;
    Ok(m.get("triggers").and_then(Value::as_array).cloned().unwrap_or_default())
}

/// Both loads made while only the early probes ran are learned with their
/// causes: modprobe's explicit load, and the request by ip served by the
/// kernel's helper. Their processes were gone when the learner read them:
/// no executable is named (a reused pid's would be a guess).
pub fn loads_learned_with_causes(f: &Facts) -> Result<(), String> {
    let profile: Value = serde_json::from_str(&f.output.text(section::EARLY_PROFILE)?)
        .map_err(|e| format!("early.json does not parse: {e}"))?;
    let taken = profile.pointer("/sessions/0/from_initramfs").and_then(Value::as_u64).unwrap_or(0);
    if taken < 2 {
        return Err(format!("the session does not say it took the early probes' events over: {:?}", profile.get("sessions")));
    }
    let explicit = triggers_of(&profile, sc::EARLY_MODULE)?;
    let ok = explicit.iter().any(|t| {
        text(t, "/kind") == "explicit" && text(t, "/loader/comm") == sc::comm::MODPROBE && t.pointer("/loader/exe") == Some(&Value::Null)
    });
    if !ok || explicit.iter().any(|t| text(t, "/kind") == "preloaded") {
        return Err(format!("{} is not modprobe's explicit load alone: {}", sc::EARLY_MODULE, Value::from(explicit)));
    }
    let requested = triggers_of(&profile, sc::EARLY_REQUEST_MODULE)?;
    let ok = requested.iter().any(|t| {
        text(t, "/kind") == "request"
            && text(t, "/alias") == sc::EARLY_ALIAS
            && text(t, "/requester/comm") == sc::comm::IP
            && t.pointer("/requester/exe") == Some(&Value::Null)
    });
    if !ok || requested.iter().any(|t| text(t, "/kind") == "preloaded") {
        return Err(format!("{} is not ip's request {}: {}", sc::EARLY_REQUEST_MODULE, sc::EARLY_ALIAS, Value::from(requested)));
    }
    Ok(())
}
