//! The table format: aligned columns for a person at a terminal.

use super::wording::{
    dash, dependency_via, failed_what, header_line, shortened, shortened_long, summary_line, uid_cell, unit_sentence,
};
use super::{unit_label, FailedLoad, MissingRequest, Report, TopLevel, UnitGroup};
use crate::escape::text;

/// Aligned columns; the columns listed in `right` are right-aligned.
fn columns(rows: &[Vec<String>], right: &[usize]) -> String {
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(|c| text(c).into_owned()).collect()).collect();
    let n = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut widths = vec![0; n];
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i] - cell.chars().count();
            if right.contains(&i) {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                if i + 1 < row.len() {
                    line.push_str(&" ".repeat(pad));
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub(super) fn table(r: &Report) -> String {
    let mut out = format!("{}\n", text(&header_line(r)));
    for w in &r.warnings {
        out.push_str(&format!("WARNING: {}\n", text(w)));
    }
    out.push('\n');
    if let Some(modules) = &r.modules {
        out.push_str(&modules_table(modules));
    }
    if let Some(units) = &r.units {
        out.push_str(&by_unit(units));
    }
    out.push_str(&held_text(r));
    if !r.requests_without_module.is_empty() {
        out.push_str(&missing_table(&r.requests_without_module));
    }
    if !r.failed.is_empty() {
        out.push_str(&failed_table(&r.failed));
    }
    out.push_str(&format!("\n{}\n", summary_line(r)));
    out
}

/// Top-level modules, one row per cause, their dependencies indented below them.
fn modules_table(modules: &[TopLevel]) -> String {
    let mut rows =
        vec![vec!["MODULE".into(), "COUNT".into(), "UNIT".into(), "UID".into(), "PROCESS".into(), "VIA".into()]];
    for m in modules {
        let name = if m.taints.is_empty() { m.module.clone() } else { format!("{} ({})", m.module, m.taints.concat()) };
        if m.triggers.is_empty() {
            rows.push(vec![name.clone(), m.count.to_string(), "-".into(), "-".into(), "-".into(), "-".into()]);
        }
        for (i, t) in m.triggers.iter().enumerate() {
            rows.push(vec![
                if i == 0 { name.clone() } else { String::new() },
                t.count.to_string(),
                dash(&unit_label(t.unit.as_deref(), t.scope.as_ref())),
                uid_cell(t),
                dash(&t.process),
                shortened(&t.via),
            ]);
        }
        for d in &m.dependencies {
            let (module, count, via) = (format!("  {}", d.module), d.count.to_string(), dependency_via(d));
            rows.push(vec![module, count, String::new(), String::new(), String::new(), via]);
        }
    }
    columns(&rows, &[1])
}

/// Each unit's label, and one sentence per need under it.
fn by_unit(units: &[UnitGroup]) -> String {
    let mut out = String::new();
    for g in units {
        let label = unit_label(g.unit.as_deref(), g.scope.as_ref());
        let label = label.as_deref().unwrap_or("(no unit: preloaded, or outside systemd)");
        out.push_str(&format!("{}\n", text(label)));
        for n in &g.needs {
            out.push_str(&format!("  {}\n", text(&unit_sentence(g.unit.as_deref(), n))));
        }
    }
    out
}

fn missing_table(missing: &[MissingRequest]) -> String {
    let mut rows = vec![vec!["ALIAS".into(), "COUNT".into(), "REQUESTED BY".into()]];
    for m in missing {
        rows.push(vec![m.alias.clone(), m.count.to_string(), m.requested_by.join("; ")]);
    }
    format!("\nRequests that found no module (they fail now, and after a lock too):\n{}", columns(&rows, &[1]))
}

fn failed_table(failed: &[FailedLoad]) -> String {
    let mut rows = vec![vec!["MODULE".into(), "ERROR".into(), "COUNT".into(), "LOADER".into(), "REQUESTED BY".into()]];
    for f in failed {
        rows.push(vec![failed_what(f), f.error.clone(), f.count.to_string(), f.loader.clone(), dash(&f.requested_by)]);
    }
    format!("\nFailed loads:\n{}", columns(&rows, &[2]))
}

/// The held-back modules as text: for review (with the command that accepts
/// each), denied, disabled by the site.
fn held_text(r: &Report) -> String {
    let mut out = String::new();
    if !r.needs_review.is_empty() {
        out.push_str("\nNeeds review: no evidence that root on the host wanted these (only other processes asked, or the cause is unknown); not listed until accepted:\n");
        for h in &r.needs_review {
            out.push_str(&format!("  {} ({} time(s)): {}\n", text(&h.module), h.count, text(&h.why)));
            for a in &h.asked {
                out.push_str(&format!("    - {}\n", text(&shortened_long(a))));
            }
            if let Some(cmd) = &h.accept {
                out.push_str(&format!("    accept: {}\n", text(cmd)));
            }
        }
    }
    for (title, list) in
        [("Denied (never listed)", &r.denied), ("Disabled by site policy (not listed)", &r.site_disabled)]
    {
        if list.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{title}:\n"));
        for h in list {
            out.push_str(&format!("  {}: {}\n", text(&h.module), text(&h.why)));
        }
    }
    out
}
