//! Lines and cells the table and the markdown share: the header, the summary,
//! a unit's sentence, shortened causes.

use std::time::Duration;

use super::{Cause, Dependency, FailedLoad, HostCount, Report, UnitNeed};
use crate::profile::TriggerKind;

/// A CPU's modalias lists every CPU feature: hundreds of characters that would
/// push a table off any screen. Tables show its start; JSON keeps it whole.
pub(super) fn shortened(via: &str) -> String {
    const MAX: usize = 60;
    match via.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &via[..cut]),
        None => via.to_string(),
    }
}

fn duration_text(secs: u64) -> String {
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

pub(super) fn summary_line(r: &Report) -> String {
    let s = &r.summary;
    let plural = |n: u64, one: &str, many: &str| if n == 1 { format!("{n} {one}") } else { format!("{n} {many}") };
    let review = if s.needs_review > 0 { format!("; {} need review", s.needs_review) } else { String::new() };
    format!(
        "{}, {} top-level; {} found no module; {}{}; {}{review}",
        plural(s.modules as u64, "module", "modules"),
        s.top_level,
        plural(s.requests_without_module as u64, "request", "requests"),
        plural(s.failed_loads as u64, "failed load", "failed loads"),
        if s.failed_attempts as usize > s.failed_loads {
            format!(" ({} attempts)", s.failed_attempts)
        } else {
            String::new()
        },
        plural(s.lost_events, "lost event", "lost events"),
    )
}

pub(super) fn header_line(r: &Report) -> String {
    let early = match r.sessions_from_initramfs {
        0 => String::new(),
        n if n == r.sessions => ", from the initramfs on".to_string(),
        n => format!(", {n} from the initramfs on"),
    };
    format!(
        "{}: {} learning session{} ({}{early}), {} boot{}",
        whose(r),
        r.sessions,
        if r.sessions == 1 { "" } else { "s" },
        duration_text(r.learning_secs),
        r.boots,
        if r.boots == 1 { "" } else { "s" }
    )
}

/// "host kicksecure, kernel 6.1.0", or for a fleet its hosts and their kernels:
/// "fleet of 2 hosts (a, b), kernels 6.1.0, 6.12.0".
fn whose(r: &Report) -> String {
    let Some(hosts) = &r.fleet else { return format!("host {}, kernel {}", r.host, r.kernel) };
    let ids: Vec<&str> = hosts.iter().map(|h| h.id.as_str()).collect();
    let mut kernels: Vec<&str> = hosts.iter().flat_map(|h| h.kernels.iter().map(String::as_str)).collect();
    kernels.sort();
    kernels.dedup();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let kernels = match kernels.len() {
        1 => format!(", kernel {}", kernels[0]),
        0 => String::new(),
        _ => format!(", kernels {}", kernels.join(", ")),
    };
    format!("fleet of {} ({}){kernels}", plural(ids.len(), "host"), ids.join(", "))
}

/// A fleet's "2/3" cell; "-" when there is none.
pub(super) fn ratio(h: &Option<HostCount>) -> String {
    h.as_ref().map_or_else(|| "-".to_string(), HostCount::ratio)
}

/// After a sentence of a fleet's: " on 2/3 hosts (a, b)"; nothing for one host's profile.
pub(super) fn on_hosts(h: &Option<HostCount>) -> String {
    match h {
        Some(h) => format!(" on {} hosts ({})", h.ratio(), h.names.join(", ")),
        None => String::new(),
    }
}

pub(super) fn dash(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".to_string())
}

pub(super) fn uid_cell(c: &Cause) -> String {
    match (c.kind, c.uid) {
        (TriggerKind::Preloaded, _) => "-".to_string(),
        (_, Some(u)) => u.to_string(),
        (_, None) => "?".to_string(),
    }
}

/// A dependency's cell: "dependency", and its other causes, shortened.
pub(super) fn dependency_via(d: &Dependency) -> String {
    let own = d.own_triggers.iter().map(|t| shortened(&t.via)).collect::<Vec<_>>();
    if own.is_empty() {
        "dependency".to_string()
    } else {
        format!("dependency; also {}", own.join("; "))
    }
}

/// A sentence cut at 200 characters (a CPU modalias inside would push a
/// terminal's line off the screen).
pub(super) fn shortened_long(s: &str) -> String {
    match s.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

pub(super) fn failed_what(f: &FailedLoad) -> String {
    match (&f.module, &f.alias) {
        (Some(m), Some(a)) => format!("{m} (via {a})"),
        (Some(m), None) => m.clone(),
        (None, Some(a)) => format!("? (via {a})"),
        (None, None) => "?".to_string(),
    }
}

/// "lightdm.service needs binfmt_misc via fs-binfmt_misc (lightdm, 2 times)".
pub(super) fn unit_sentence(unit: Option<&str>, n: &UnitNeed) -> String {
    let who = unit.unwrap_or("");
    let deps = if n.dependencies.is_empty() { String::new() } else { format!(" (with {})", n.dependencies.join(", ")) };
    let by = match &n.process {
        Some(p) => format!("by {p}, "),
        None => String::new(),
    };
    let times = if n.count == 1 { "once".to_string() } else { format!("{} times", n.count) };
    let sentence = match n.kind {
        TriggerKind::Request => {
            let alias = n.via.strip_prefix("request ").unwrap_or(&n.via);
            format!("{who} needs {}{deps} via {alias}", n.module)
        }
        TriggerKind::Udev => match n.via.strip_prefix("udev ") {
            Some(device) => format!("{who} loads {}{deps} for device {device}", n.module),
            None => format!("{who} loads {}{deps} for a device", n.module),
        },
        TriggerKind::Explicit => format!("{who} loads {}{deps} explicitly", n.module),
        TriggerKind::Preloaded => match n.via.trim_start_matches("preloaded: ") {
            crate::profile::BEFORE_LEARNING => format!("{}{deps} was already loaded when learning started", n.module),
            reason => format!("{}{deps} is loaded at boot by {reason}", n.module),
        },
        TriggerKind::Unknown => format!("{}{deps}: {}", n.module, n.via),
    };
    format!("{} ({by}{times})", sentence.trim_start())
}

#[cfg(test)]
mod shortening_tests {
    use super::*;

    #[test]
    fn a_cpu_modalias_is_cut_in_tables_and_short_text_is_kept() {
        let cpu = format!("udev cpu:type:x86,ven0002fam000Fmod006B:feature:{}", ",0000".repeat(100));
        let short = shortened(&cpu);
        assert_eq!(short.chars().count(), 61);
        assert!(short.ends_with('…') && cpu.starts_with(short.trim_end_matches('…')));
        assert_eq!(shortened("request net-pf-5"), "request net-pf-5");
    }
}
