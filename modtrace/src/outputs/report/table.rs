//! The table format: aligned columns for a person at a terminal.

use super::fleet::{host_heading, host_lines};
use super::wording::{
    dash, dependency_via, failed_what, header_line, on_hosts, ratio, shortened, shortened_long, summary_line, uid_cell,
    unit_sentence,
};
use super::{unit_label, FailedLoad, HostGroup, MissingRequest, PackageGroup, Report, TopLevel, UnitGroup, NO_PACKAGE};
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
    if let Some(hosts) = &r.by_host {
        out.push_str(&by_host(hosts));
    }
    if let Some(packages) = &r.packages {
        out.push_str(&by_package(packages));
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
/// A fleet's has a HOSTS column: on how many hosts the module was seen, and
/// each cause when it has several (on a row of their own below the module's).
fn modules_table(modules: &[TopLevel]) -> String {
    let fleet = modules.iter().any(|m| m.hosts.is_some());
    let mut rows =
        vec![vec!["MODULE".into(), "COUNT".into(), "UNIT".into(), "UID".into(), "PROCESS".into(), "VIA".into()]];
    for m in modules {
        let name = if m.taints.is_empty() { m.module.clone() } else { format!("{} ({})", m.module, m.taints.concat()) };
        if m.triggers.is_empty() {
            rows.push(vec![name.clone(), m.count.to_string(), "-".into(), "-".into(), "-".into(), "-".into()]);
        }
        let own_row = fleet && m.triggers.len() > 1;
        if own_row {
            let blank = || String::new();
            rows.push(vec![name.clone(), m.count.to_string(), blank(), blank(), blank(), blank()]);
        }
        for (i, t) in m.triggers.iter().enumerate() {
            rows.push(vec![
                if i == 0 && !own_row { name.clone() } else { String::new() },
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
    if fleet {
        return columns(&with_hosts(modules, rows), &[2]);
    }
    columns(&rows, &[1])
}

/// The rows of modules_table with a HOSTS column after the module's name:
/// the module's hosts on its first row, each cause's on a row of its own.
fn with_hosts(modules: &[TopLevel], mut rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    let mut cells = vec!["HOSTS".to_string()];
    for m in modules {
        cells.push(ratio(&m.hosts));
        if m.triggers.len() > 1 {
            cells.extend(m.triggers.iter().map(|t| ratio(&t.hosts)));
        }
        cells.extend(m.dependencies.iter().map(|d| ratio(&d.hosts)));
    }
    for (row, cell) in rows.iter_mut().zip(cells) {
        row.insert(1, cell);
    }
    rows
}

/// Each unit's label, and one sentence per need under it.
fn by_unit(units: &[UnitGroup]) -> String {
    let mut out = String::new();
    for g in units {
        let label = unit_label(g.unit.as_deref(), g.scope.as_ref());
        let label = label.as_deref().unwrap_or("(no unit: preloaded, or outside systemd)");
        out.push_str(&format!("{}\n", text(label)));
        for n in &g.needs {
            out.push_str(&format!("  {}{}\n", text(&unit_sentence(g.unit.as_deref(), n)), text(&on_hosts(&n.hosts))));
        }
    }
    out
}

/// Each host's heading, and a line per need, review or deny under it.
fn by_host(hosts: &[HostGroup]) -> String {
    let mut out = String::new();
    for g in hosts {
        out.push_str(&format!("{}\n", text(&host_heading(g))));
        for line in host_lines(g) {
            out.push_str(&format!("  {}\n", text(&shortened_long(&line))));
        }
    }
    out
}

/// Each package, and a sentence per unit or executable of it and module it needs.
fn by_package(packages: &[PackageGroup]) -> String {
    let mut out = String::new();
    for g in packages {
        out.push_str(&format!("{}\n", text(g.package.as_deref().unwrap_or(NO_PACKAGE))));
        for n in &g.needs {
            let sentence = shortened_long(&unit_sentence(n.who().as_deref(), &n.need));
            out.push_str(&format!("  {}{}\n", text(&sentence), text(&on_hosts(&n.need.hosts))));
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
