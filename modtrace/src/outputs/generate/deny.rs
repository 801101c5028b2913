//! etc/modprobe.d/modtrace-deny.conf (--deny): for systems that keep module
//! loading enabled, an `install` line for every module of the kernel the profile
//! does not need, so modprobe (and udev, through libkmod) logs and refuses it
//! instead of loading it.

use std::collections::BTreeSet;

use super::header::{self, comment_lines, Context};
use super::modules_load::unresolved_section;
use crate::needs::Plan;
use crate::needs::target::Target;
use crate::validate::check_module;
use crate::trace::modindex::normalize;
use crate::profile::Profile;

/// Modules that must stay loadable: what the plan loads (top-level modules
/// and their dependencies in the target kernel), and every module the profile
/// names with its dependencies there, except those held back (for review,
/// denied by an admin, disabled by the site).
pub fn allowed(profile: &Profile, plan: &Plan, target: &Target) -> BTreeSet<String> {
    let mut allowed = plan.loaded_set();
    allowed.extend(plan.needs.keys().cloned());
    let held = |m: &str| {
        plan.review.contains_key(m)
            || plan.denied.contains_key(m)
            || plan.site_disabled.contains_key(m)
            || profile.decision(m).is_some_and(|d| d.verdict == crate::profile::Verdict::Deny)
    };
    for m in &profile.modules {
        let name = normalize(&m.name);
        if held(&name) {
            continue;
        }
        if target.has_module(&name) == Some(true) {
            allowed.extend(target.closure(&name));
        }
        allowed.insert(name);
    }
    allowed
}

/// Every module of the kernel that is not allowed, sorted.
pub fn denied(profile: &Profile, plan: &Plan, target: &Target) -> Vec<String> {
    let allowed = allowed(profile, plan, target);
    target
        .all_modules()
        .map(|all| all.iter().filter(|m| !allowed.contains(*m) && !target.is_builtin(m)).cloned().collect())
        .unwrap_or_default()
}

pub fn render(profile: &Profile, plan: &Plan, target: &Target, ctx: &Context) -> String {
    let denied = denied(profile, plan, target);
    let total = target.all_modules().map(|a| a.len()).unwrap_or(0);
    let mut out = header::render(
        ctx,
        &format!(
            "For systems that keep module loading enabled: every module of kernel {} that the\n\
             profile does not need ({} of {}) is refused. modprobe, and udev through libkmod,\n\
             run the install command instead of loading it: it logs to the journal (tag modtrace)\n\
             and fails. This does not stop insmod or a direct init_module/finit_module call;\n\
             kernel.modules_disabled=1 (modtrace-lock.service) does.\n\
             Allowed: the profile's modules with their dependencies in this kernel, except those\n\
             that wait for review, were denied (modtrace deny) or the site disables.\n\
             initramfs-tools copies /etc/modprobe.d into the initramfs: run update-initramfs -u\n\
             after installing, changing or removing this file. dracut leaves it out (modtrace's\n\
             dracut module, docs/dracut.md).",
            plan.release,
            denied.len(),
            total
        ),
        "delete this file (then update-initramfs -u).",
    );
    for w in &plan.warnings {
        out.push_str(&comment_lines(&format!("WARNING: {}", crate::escape::text(w))));
    }
    out.push_str(&unresolved_section(plan));
    let (denied, odd): (Vec<String>, Vec<String>) = denied.into_iter().partition(|m| check_module(m).is_ok());
    if !odd.is_empty() {
        out.push_str(&comment_lines(&format!(
            "Not listed: {} file name(s) in modules.dep that are not module names: {}",
            odd.len(),
            odd.join(", ")
        )));
    }
    out.push('\n');
    for m in &denied {
        out.push_str(&format!(
            "install {m} /usr/bin/logger -t modtrace \"denied module {m}: not in the modtrace profile\" ; /bin/false\n"
        ));
    }
    out
}
