//! The needs stage's sentences: who asked, what a trigger was, what to know
//! about the profile. Raw profile text: the outputs escape it.

use crate::profile::{Profile, Requester, Trigger, TriggerKind, BEFORE_LEARNING};
use crate::trace::scope::Scope;

/// "example.service (python3, /usr/bin/python3, uid 0)", with the scope when
/// the unit is not the host's.
pub fn who(r: &Requester) -> String {
    let exe = r.exe.as_deref().map(|e| format!(", {e}")).unwrap_or_default();
    let uid = match r.uid {
        Some(u) => format!(", uid {u}"),
        None => ", uid unknown".to_string(),
    };
    let place = match (&r.scope, &r.unit) {
        (Scope::System { unit }, _) => unit.clone(),
        (Scope::Unknown, Some(u)) => format!("{u} (scope unknown)"),
        (Scope::Unknown, None) => return format!("{} (unit unknown{exe}{uid})", r.comm),
        (Scope::NoUnit, _) => "no unit".to_string(),
        (scope, _) => format!("the {scope}"),
    };
    format!("{place} ({}{exe}{uid})", r.comm)
}

fn times(count: u64) -> String {
    if count == 1 {
        "once".to_string()
    } else {
        format!("{count} times")
    }
}

/// "modprobe (uid 0) in the system unit X.service", or with the scope it has.
pub fn loader_who(l: &crate::profile::Loader) -> String {
    let uid = l.uid.map(|u| format!("uid {u}")).unwrap_or_else(|| "uid unknown".to_string());
    let place = match (&l.scope, &l.unit) {
        (Scope::Unknown, Some(u)) => format!(" in {u} (scope unknown)"),
        (Scope::Unknown, None) => String::new(),
        (scope, _) => format!(" {}", scope.locative()),
    };
    format!("{} ({uid}){place}", l.comm)
}

/// A person's summary of a trigger.
pub fn describe_trigger(t: &Trigger) -> String {
    let base = match t.kind {
        TriggerKind::Request => describe_request(t),
        TriggerKind::Explicit => describe_explicit(t),
        TriggerKind::Udev => match &t.device {
            Some(d) => format!(
                "udev, for device {}{}",
                d.modalias.as_deref().map(str::trim).unwrap_or("(modalias unknown)"),
                d.devpath.as_deref().map(|p| format!(" at {p}")).unwrap_or_default()
            ),
            None => "udev, for a device (unknown)".to_string(),
        },
        TriggerKind::Preloaded => match t.reason.as_deref() {
            None | Some(BEFORE_LEARNING) => "already loaded when learning started, cause unknown".to_string(),
            Some(source) => format!("already loaded when learning started, explained by: {source}"),
        },
        TriggerKind::Unknown => format!(
            "loaded by a kernel helper, cause unknown{}",
            t.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
        ),
    };
    let stage = t.stage.as_deref().map(|s| format!(", in the {s}")).unwrap_or_default();
    format!("{base}{stage}; {}", times(t.count))
}

/// A request: the alias, who asked (and who else may have been waiting), and
/// what it went through.
fn describe_request(t: &Trigger) -> String {
    let mut s = format!("request for {}", t.alias.as_deref().unwrap_or("an unknown alias"));
    if let Some(r) = &t.requester {
        s.push_str(&format!(" by {}", who(r)));
    }
    if !t.also_requested_by.is_empty() {
        let others: Vec<String> = t.also_requested_by.iter().map(who).collect();
        s.push_str(&format!(", also by {}", others.join(", ")));
    }
    if !t.candidates.is_empty() {
        let mut others: Vec<String> = t.candidates.iter().map(who).collect();
        if t.candidates_folded > 0 {
            others.push(format!("{} more untrusted", t.candidates_folded));
        }
        s.push_str(&format!(", or by {} (any of them could have been waiting)", others.join(", ")));
    }
    match &t.via {
        Some(via) if via.ends_with(".mount") => s.push_str(&format!(", through the automount's {via}")),
        Some(via) => s.push_str(&format!(", through {via}")),
        None => {}
    }
    s
}

/// An explicit load: who loaded it, and for whom.
fn describe_explicit(t: &Trigger) -> String {
    let mut s = match &t.loader {
        Some(l) => format!("loaded by {}", loader_who(l)),
        None => "loaded explicitly".to_string(),
    };
    let asked: Vec<String> = t.requester.iter().chain(&t.also_requested_by).map(who).collect();
    match &t.via {
        Some(via) if via.starts_with("modprobe@") => {
            s.push_str(&format!(" for {}, wanted by {}", via, asked.join(", ")));
        }
        // A deputy (onbehalf.rs) for its client.
        Some(via) => s.push_str(&format!(", for {} through {via}", asked.join(", "))),
        None => {
            if let Some(r) = &t.requester {
                s.push_str(&format!(", run by {}", who(r)));
            }
        }
    }
    s
}

/// What a person should know about how complete the profile is.
pub fn profile_warnings(profile: &Profile) -> Vec<String> {
    let mut w = Vec::new();
    if profile.modules.is_empty() {
        w.push(
            "the profile lists no module at all: learn first (modtrace learn), or this kernel has everything built in"
                .to_string(),
        );
    }
    let lost = profile.lost_events();
    if lost > 0 {
        w.push(format!(
            "{lost} kernel events were lost while learning: the profile may miss modules; learn again before locking"
        ));
    }
    let unfinished =
        profile.sessions.iter().filter(|s| matches!(s.ended_by.as_deref(), Some("error") | Some("checkpoint"))).count();
    if unfinished > 0 {
        w.push(format!(
            "{unfinished} learning session(s) did not finish (ended by an error, or only a checkpoint was saved): what they saw last may be missing"
        ));
    }
    w
}
