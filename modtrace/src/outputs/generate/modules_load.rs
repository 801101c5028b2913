//! etc/modules-load.d/modtrace.conf: the top-level modules, one a line, for
//! systemd-modules-load (which loads each with its dependencies).

use std::fmt::Write as _;

use super::header::{self, comment_lines, Context};
use crate::needs::{Cited, Plan};
use crate::escape::text as esc;
use crate::validate::check_module;

/// "  - request for net-pf-5 by ...; once (learned as X; ...)" lines.
pub fn reasons(cited: &[Cited], indent: &str) -> String {
    let mut text = String::new();
    for c in cited {
        // Each value one line, whatever a process name in it holds.
        let _ = write!(text, "{indent}- {}", esc(&c.reason.text));
        // An untrusted cause that is listed says who accepted it.
        if c.reason.trust.why().starts_with("accepted") {
            let _ = write!(text, " [{}]", esc(c.reason.trust.why()));
        }
        if let Some(n) = &c.note {
            let _ = write!(text, " [{}]", esc(n));
        }
        text.push('\n');
    }
    comment_lines(&text)
}

/// The unresolved entries, as comment lines (shared with the other files).
pub fn unresolved_section(plan: &Plan) -> String {
    if plan.unresolved.is_empty() {
        return String::new();
    }
    let mut text = format!(
        "\nUNRESOLVED: {} cause(s) in the profile name nothing in kernel {}; nothing is loaded for them\n(modtrace generate exits non-zero for this unless --allow-unresolved):\n",
        plan.unresolved.len(),
        plan.release
    );
    for u in &plan.unresolved {
        let _ = writeln!(text, "  - {}", esc(&u.to_string()));
    }
    comment_lines(&text)
}

/// The modules held back, as comment lines: for review (with the command that
/// accepts each), denied by an admin, disabled by the site.
pub fn held_section(plan: &Plan) -> String {
    let mut text = String::new();
    if !plan.review.is_empty() {
        let _ = writeln!(
            text,
            "\nNEEDS REVIEW, not listed: no evidence that root on the host wanted these\n(an unprivileged uid, a user's unit, a container, a uid or scope not known, or loaded before learning, cause unknown):"
        );
        for (m, held) in &plan.review {
            let _ = writeln!(text, "  {m}: {} (accept: modtrace allow {m}; or modtrace review)", esc(&held.why));
            for c in &held.cited {
                let _ = writeln!(text, "    - {}", esc(&c.reason.text));
            }
        }
    }
    if !plan.denied.is_empty() {
        let _ = writeln!(text, "\nDenied, not listed:");
        for (m, held) in &plan.denied {
            let _ = writeln!(text, "  {m}: {}", esc(&held.why));
        }
    }
    if !plan.site_disabled.is_empty() {
        let _ = writeln!(text, "\nDisabled by this site's modprobe.d, not listed (requests for them fail on purpose):");
        for (m, held) in &plan.site_disabled {
            let _ = writeln!(text, "  {m}: {}", esc(&held.why));
        }
    }
    comment_lines(&text)
}

pub fn render(plan: &Plan, ctx: &Context) -> String {
    let mut out = header::render(
        ctx,
        "The modules this machine needs, for systemd-modules-load.service, which loads them early\n\
         at boot. Only top-level modules are listed: each is loaded with its dependencies\n\
         (modules.dep), so they follow a kernel upgrade by themselves.",
        "delete this file (modules it loaded stay loaded until reboot).",
    );
    for w in &plan.warnings {
        out.push_str(&comment_lines(&format!("WARNING: {}", esc(w))));
    }
    for m in &plan.top_level {
        // plan() only lets valid names through; a failure here is a bug, not input.
        assert!(check_module(m).is_ok(), "unvalidated module name {m:?}");
        out.push('\n');
        let brings = plan.brings.get(m).filter(|b| !b.is_empty());
        let head = match brings {
            Some(b) => format!("{m}, with {}:", b.join(", ")),
            None => format!("{m}:"),
        };
        out.push_str(&comment_lines(&head));
        out.push_str(&reasons(&plan.needs[m], "  "));
        out.push_str(m);
        out.push('\n');
    }
    let deps_with_reasons: Vec<&String> = plan.needs.keys().filter(|m| !plan.top_level.contains(m)).collect();
    if !deps_with_reasons.is_empty() {
        out.push_str(&comment_lines("\nAlso needed by themselves, and loaded as dependencies of the modules above:"));
        for m in deps_with_reasons {
            let owners: Vec<&str> =
                plan.brings.iter().filter(|(_, d)| d.contains(m)).map(|(t, _)| t.as_str()).collect();
            out.push_str(&comment_lines(&format!("  {m}, with {}:", owners.join(", "))));
            out.push_str(&reasons(&plan.needs[m], "    "));
        }
    }
    if !plan.builtin.is_empty() {
        out.push_str(&comment_lines(&format!("\nBuilt into kernel {}, so not listed:", plan.release)));
        for (m, cited) in &plan.builtin {
            out.push_str(&comment_lines(&format!("  {m}:")));
            out.push_str(&reasons(cited, "    "));
        }
    }
    out.push_str(&unresolved_section(plan));
    out.push_str(&held_section(plan));
    out
}
