//! Which units a need is attributed to, and which of them can be given a
//! drop-in that orders them after their modules.

use crate::profile::{Trigger, TriggerKind};
use crate::trace::scope::Scope;

/// The units a trigger's need is attributed to, each with its scope: every
/// requester of a request (also_requested_by too), the loader of an explicit
/// load (its parent's cgroup is not recorded, so the parent's unit would have
/// no scope).
pub fn units_of(t: &Trigger) -> Vec<(String, Scope)> {
    let mut out: Vec<(String, Scope)> = Vec::new();
    let mut add = |unit: Option<&String>, scope: &Scope| {
        if let Some(u) = unit {
            if !out.iter().any(|(x, s)| x == u && s == scope) {
                out.push((u.clone(), scope.clone()));
            }
        }
    };
    match t.kind {
        TriggerKind::Request => {
            for r in t.requester.iter().chain(&t.also_requested_by) {
                add(r.unit.as_ref(), &r.scope);
            }
            // An automount's mount unit (onbehalf.rs) needs it too: it is a
            // host system unit, since only those are followed. Any other
            // `via` (a root deputy, a kernel thread: trace/kthread.rs) acted
            // for the requester: it gets nothing.
            if let Some(via) = t.via.as_ref().filter(|v| v.ends_with(".mount")) {
                add(Some(via), &Scope::System { unit: via.clone() });
            }
        }
        // modprobe@NAME.service: the units that want it (onbehalf.rs).
        TriggerKind::Explicit if t.via.is_some() => {
            for r in t.requester.iter().chain(&t.also_requested_by) {
                add(r.unit.as_ref(), &r.scope);
            }
        }
        TriggerKind::Explicit => {
            if let Some(l) = &t.loader {
                add(l.unit.as_ref(), &l.scope);
            }
        }
        // udev loads follow devices; preloaded and unknown ones name no unit.
        TriggerKind::Udev | TriggerKind::Preloaded | TriggerKind::Unknown => {}
    }
    out
}

/// Units whose processes the generated files can order after their modules:
/// the host's system services, sockets, mounts and swaps. A user's or a
/// container's unit (whatever its name), anything else, and units that load
/// modules themselves, get none (and the reason is kept for the report).
pub fn drop_in_refusal(unit: &str, scope: &Scope) -> Option<String> {
    if scope.system_unit().is_none() {
        return Some(format!(
            "not a unit of the host's system manager but the {scope}: drop-ins in /etc/systemd/system do not apply to it"
        ));
    }
    let kind = unit.rsplit('.').next().unwrap_or("");
    if !matches!(kind, "service" | "socket" | "mount" | "swap") {
        return Some(format!(
            "a .{kind} unit (a login session, PID 1, a slice or a transient scope): no unit file can declare its modules"
        ));
    }
    if unit.contains("@.") {
        return Some("a template, not a running unit".to_string());
    }
    let stem = &unit[..unit.len() - kind.len() - 1];
    if stem.strip_prefix("run-u").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) {
        return Some("a transient unit (systemd-run): it has no unit file".to_string());
    }
    if matches!(
        unit,
        "systemd-udevd.service"
            | "systemd-modules-load.service"
            | "kmod-static-nodes.service"
            | "modtrace-lock.service"
            | "modtrace-learn.service"
    ) || unit.starts_with("modprobe@")
    {
        return Some("it loads modules itself (or is modtrace's own)".to_string());
    }
    None
}
