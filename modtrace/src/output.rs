//! Rendering records for `modtrace trace`: one human line, or one JSON object.

use crate::event::{Cause, Process, Record, What};

pub fn json(rec: &Record) -> String {
    serde_json::to_string(rec).expect("records serialize")
}

/// `HH:MM:SS.mmm kind     what, by whom, because of what`.
pub fn human(rec: &Record) -> String {
    let clock = rec.time.get(11..23).unwrap_or(&rec.time);
    let who = who(&rec.process);
    match &rec.what {
        What::Request { alias, resolves_to, repeats, .. } => {
            let to = if resolves_to.is_empty() { "no module (will fail)".to_string() } else { resolves_to.join(", ") };
            format!("{clock} request  {alias} by {who} -> {to}{}", repeated(*repeats))
        }
        What::Load { syscall, ret, error, module, repeats, cause, .. } => {
            let outcome = match (ret, module) {
                (0, Some(m)) => format!("ok: {m}"),
                (0, None) => "ok".to_string(),
                _ => format!("failed {}", error.as_deref().unwrap_or("?")),
            };
            let why = cause.as_ref().map(|c| format!(" <- {}", cause_text(c))).unwrap_or_default();
            format!("{clock} load     {syscall:?} {outcome} by {who}{why}{}", repeated(*repeats))
        }
        What::Loaded { module, cause, .. } => format!("{clock} loaded   {module} by {who} <- {}", cause_text(cause)),
        What::Unloaded { module } => format!("{clock} unloaded {module} by {who}"),
    }
}

fn repeated(n: u32) -> String {
    if n == 0 { String::new() } else { format!(" (+{n} identical, folded)") }
}

fn who(p: &Process) -> String {
    let mut s = format!("{}[{}]", p.comm, p.tgid);
    if let Some(unit) = &p.unit {
        s.push_str(&format!(" ({unit})"));
    }
    s
}

fn cause_text(c: &Cause) -> String {
    match c {
        Cause::Request { alias, requester, needed_by, also_requested_by, .. } => {
            let mut s = format!("request {alias} from {}", who(requester));
            if !needed_by.is_empty() {
                s.push_str(&format!(", needed by {}", needed_by.join(", ")));
            }
            if !also_requested_by.is_empty() {
                s.push_str(&format!(", also requested by {}", also_requested_by.iter().map(who).collect::<Vec<_>>().join(", ")));
            }
            s
        }
        Cause::Explicit { loader, invoked_by, needed_by } => {
            let mut s = format!("explicit by {}", who(loader));
            if let Some(parent) = invoked_by {
                let comm = parent.comm.as_deref().unwrap_or("?");
                s.push_str(&format!(", run by {comm}[{}]", parent.pid));
                if let Some(unit) = &parent.unit {
                    s.push_str(&format!(" ({unit})"));
                }
            }
            if !needed_by.is_empty() {
                s.push_str(&format!(", needed by {}", needed_by.join(", ")));
            }
            s
        }
        Cause::Udev { loader, device } => match device {
            Some(d) => format!("udev {} for {} ({})", who(loader), d.devpath, d.modalias),
            None => format!("udev {}", who(loader)),
        },
        Cause::Unknown { reason } => format!("unknown: {reason}"),
    }
}
