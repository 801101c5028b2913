//! The markdown format: tables and lists for an issue or a wiki.

use super::fleet::{host_heading, host_lines};
use super::wording::{
    dash, dependency_via, failed_what, header_line, on_hosts, shortened, shortened_long, summary_line, uid_cell,
    unit_sentence,
};
use super::{
    unit_label, FailedLoad, Held, HostGroup, MissingRequest, PackageGroup, Report, TopLevel, UnitGroup, NO_PACKAGE,
};
use crate::escape::text;

fn md(s: &str) -> String {
    text(s).replace('\\', "\\\\").replace('|', "\\|")
}

fn code(s: &str) -> String {
    if s.is_empty() || s == "-" {
        s.to_string()
    } else {
        format!("`{}`", text(s).replace('`', "'").replace('|', "\\|"))
    }
}

pub(super) fn markdown(r: &Report) -> String {
    let mut out =
        format!("## modtrace profile of {} (kernel {})\n\n{}\n", md(&r.host), md(&r.kernel), md(&header_line(r)));
    if !r.warnings.is_empty() {
        out.push('\n');
        for w in &r.warnings {
            out.push_str(&format!("> **Warning:** {}\n", md(w)));
        }
    }
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
    if !r.requests_without_module.is_empty() {
        out.push_str(&missing_table(&r.requests_without_module));
    }
    if !r.failed.is_empty() {
        out.push_str(&failed_table(&r.failed));
    }
    if !r.needs_review.is_empty() {
        out.push_str(&review_table(&r.needs_review));
    }
    for (title, list) in [("Denied", &r.denied), ("Disabled by site policy", &r.site_disabled)] {
        if list.is_empty() {
            continue;
        }
        out.push_str(&format!("\n### {title}\n\n"));
        for h in list {
            out.push_str(&format!("- {}: {}\n", code(&h.module), md(&h.why)));
        }
    }
    out.push_str(&format!("\n**Summary:** {}\n", md(&summary_line(r))));
    out
}

/// Top-level modules, one row per cause, their dependencies below them.
fn modules_table(modules: &[TopLevel]) -> String {
    let mut out =
        "\n### Modules\n\n| Module | Count | Unit | UID | Process | Via |\n|---|---:|---|---|---|---|\n".to_string();
    for m in modules {
        let name = if m.taints.is_empty() {
            format!("**{}**", md(&m.module))
        } else {
            format!("**{}** ({})", md(&m.module), m.taints.concat())
        };
        // A fleet's: on how many hosts it was seen.
        let name = match &m.hosts {
            Some(h) => format!("{name} ({} hosts)", h.ratio()),
            None => name,
        };
        if m.triggers.is_empty() {
            out.push_str(&format!("| {name} | {} | | | | |\n", m.count));
        }
        for (i, t) in m.triggers.iter().enumerate() {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                if i == 0 { name.as_str() } else { "" },
                t.count,
                code(&dash(&unit_label(t.unit.as_deref(), t.scope.as_ref()))),
                uid_cell(t),
                md(&dash(&t.process)),
                md(&shortened(&t.via)),
            ));
        }
        for d in &m.dependencies {
            out.push_str(&format!("| ↳ {} | {} | | | | {} |\n", md(&d.module), d.count, md(&dependency_via(d))));
        }
    }
    out
}

/// One heading per unit, one sentence per need.
fn by_unit(units: &[UnitGroup]) -> String {
    let mut out = "\n### By unit\n".to_string();
    for g in units {
        out.push_str(&format!(
            "\n#### {}\n\n",
            match unit_label(g.unit.as_deref(), g.scope.as_ref()) {
                Some(u) if g.unit.is_some() => code(&u),
                _ => "No unit (preloaded, or outside systemd)".to_string(),
            }
        ));
        for n in &g.needs {
            out.push_str(&format!("- {}{}\n", md(&unit_sentence(g.unit.as_deref(), n)), md(&on_hosts(&n.hosts))));
        }
    }
    out
}

fn by_host(hosts: &[HostGroup]) -> String {
    let mut out = "\n### By host\n".to_string();
    for g in hosts {
        out.push_str(&format!("\n#### {}\n\n", md(&host_heading(g))));
        for line in host_lines(g) {
            out.push_str(&format!("- {}\n", md(&shortened_long(&line))));
        }
    }
    out
}

fn by_package(packages: &[PackageGroup]) -> String {
    let mut out = "\n### By package\n".to_string();
    for g in packages {
        let title = g.package.as_deref().map_or_else(|| NO_PACKAGE.to_string(), code);
        out.push_str(&format!("\n#### {title}\n\n"));
        for n in &g.needs {
            let sentence = shortened_long(&unit_sentence(n.who().as_deref(), &n.need));
            out.push_str(&format!("- {}{}\n", md(&sentence), md(&on_hosts(&n.need.hosts))));
        }
    }
    out
}

fn missing_table(missing: &[MissingRequest]) -> String {
    let mut out =
        "\n### Requests that found no module\n\n| Alias | Count | Requested by |\n|---|---:|---|\n".to_string();
    for m in missing {
        out.push_str(&format!("| {} | {} | {} |\n", code(&m.alias), m.count, md(&m.requested_by.join("; "))));
    }
    out
}

fn failed_table(failed: &[FailedLoad]) -> String {
    let mut out = String::from(
        "\n### Failed loads\n\n| Module | Error | Count | Loader | Requested by |\n|---|---|---:|---|---|\n",
    );
    for f in failed {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            md(&failed_what(f)),
            code(&f.error),
            f.count,
            md(&f.loader),
            md(&dash(&f.requested_by))
        ));
    }
    out
}

fn review_table(review: &[Held]) -> String {
    let mut out = "\n### Needs review\n\nOnly processes that are not root on the host asked for these; not listed until accepted.\n\n| Module | Count | Why | Asked | Accept |\n|---|---:|---|---|---|\n".to_string();
    for h in review {
        let asked: Vec<String> = h.asked.iter().map(|a| shortened_long(a)).collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            md(&h.module),
            h.count,
            md(&h.why),
            md(&asked.join("; ")),
            code(h.accept.as_deref().unwrap_or("-"))
        ));
    }
    out
}
