//! What the learned profile becomes once trust decides: generate lists only what
//! root on the host needed (the chain of example.service, run by root), never
//! the modules a logged-in user's unit or a container's unit caused, and writes
//! no drop-in for those units; check shows them under "needs review" with the
//! command that accepts them; a request the site's modprobe.d disables is a
//! warning, not a blocker; `modtrace allow` of the user's module lists it, and
//! still writes no drop-in for the user's unit.

use crate::guest::scenario::{self as sc, captured as cap, section};

use super::Facts;

/// A captured command's stdout, when it exited with one of `statuses`.
pub(super) fn output(f: &Facts, name: &str, statuses: &[i32]) -> Result<String, String> {
    let status = f.output.exit_code(name)?;
    let stdout = f.output.text(&format!("{name}.stdout")).unwrap_or_default();
    if statuses.contains(&status) {
        return Ok(stdout);
    }
    let stderr = f.output.text(&format!("{name}.stderr")).unwrap_or_default();
    Err(format!("{name} exited {status}, expected one of {statuses:?}\n      stdout: {stdout}\n      stderr: {stderr}"))
}

pub(super) fn listed(list: &str) -> Vec<&str> {
    list.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
}

/// The drop-in files of a `find . -type f` listing of generate's output.
fn drop_in_units(files: &str) -> Vec<&str> {
    files
        .lines()
        .filter_map(|l| l.strip_prefix("./etc/systemd/system/"))
        .filter_map(|l| l.strip_suffix(".d/modtrace-modules.conf"))
        .collect()
}

fn untrusted_modules() -> [&'static str; 2] {
    [sc::WHO_USER_MODULE, sc::WHO_CONTAINER_MODULE]
}

pub fn generate_lists_root_needs_only(f: &Facts) -> Result<(), String> {
    output(f, cap::GENERATE, &[0])?;
    let list = f.output.text(section::GENERATED_LIST)?;
    let names = listed(&list);
    if !names.contains(&sc::CHAIN[0]) {
        return Err(format!("the list lacks {} (root in {}):\n{list}", sc::CHAIN[0], sc::UNIT));
    }
    let wrong: Vec<&str> =
        untrusted_modules().into_iter().chain([sc::SITE_DISABLED_MODULE]).filter(|m| names.contains(m)).collect();
    match wrong.is_empty() {
        true => Ok(()),
        false => Err(format!("the list names {wrong:?}, which only untrusted processes or a disabled request asked for:\n{list}")),
    }
}

pub fn no_drop_in_for_user_or_container_unit(f: &Facts) -> Result<(), String> {
    let files = f.output.text(section::GENERATED_FILES)?;
    let units = drop_in_units(&files);
    if !units.contains(&sc::UNIT) {
        return Err(format!("no drop-in for {} (a host system unit run by root):\n{files}", sc::UNIT));
    }
    let user_unit = sc::WHO_USER_CGROUP.rsplit('/').next().unwrap_or_default();
    let container_unit = sc::WHO_CONTAINER_CGROUP.rsplit('/').next().unwrap_or_default();
    match units.iter().find(|u| **u == user_unit || **u == container_unit) {
        Some(u) => Err(format!("a drop-in for {u}, a user's or a container's unit, under /etc/systemd/system:\n{files}")),
        None => Ok(()),
    }
}

/// check's "needs review" lines name each untrusted module with its accept command.
pub fn check_puts_untrusted_under_review(f: &Facts) -> Result<(), String> {
    // 0 safe, 1 blockers: either is a verdict; 2 would be an error.
    let out = output(f, cap::CHECK, &[0, 1])?;
    let Some((_, review)) = out.split_once("needs review:") else {
        return Err(format!("check has no `needs review:` section:\n{out}"));
    };
    let review: Vec<&str> = review.lines().skip(1).take_while(|l| l.starts_with("  - ")).collect();
    for m in untrusted_modules() {
        let accept = format!("accept: modtrace allow {m}");
        if !review.iter().any(|l| l.starts_with(&format!("  - {m}:")) && l.contains(&accept)) {
            return Err(format!("no review line for {m} with `{accept}`:\n{out}"));
        }
    }
    Ok(())
}

/// The disabled module's request is a warning naming the site policy, and no
/// blocker mentions it.
pub fn site_disabled_request_warns_not_blocks(f: &Facts) -> Result<(), String> {
    let out = output(f, cap::CHECK, &[0, 1])?;
    let warned = out.lines().any(|l| {
        l.starts_with("warning: ") && l.contains(sc::SITE_DISABLED_ALIAS) && l.contains("denied by site policy")
    });
    if !warned {
        return Err(format!("no warning that {} is denied by site policy:\n{out}", sc::SITE_DISABLED_ALIAS));
    }
    let blockers = out.split_once("NOT safe to lock:").map(|(_, b)| b).unwrap_or_default();
    let blocking = blockers.lines().find(|l| {
        l.contains(sc::SITE_DISABLED_ALIAS) || l.starts_with(&format!("  - {}:", sc::SITE_DISABLED_MODULE))
    });
    match blocking {
        Some(l) => Err(format!("the site-disabled request blocks the lock: {l}\n{out}")),
        None => Ok(()),
    }
}

/// After `modtrace allow` of the user's module it is listed, and its unit still
/// gets no drop-in.
pub fn allow_lists_the_accepted_module(f: &Facts) -> Result<(), String> {
    output(f, cap::ALLOW, &[0])?;
    output(f, cap::GENERATE_ACCEPTED, &[0])?;
    let list = f.output.text(section::ACCEPTED_LIST)?;
    if !listed(&list).contains(&sc::WHO_USER_MODULE) {
        return Err(format!("{} is not listed after modtrace allow:\n{list}", sc::WHO_USER_MODULE));
    }
    if listed(&list).contains(&sc::WHO_CONTAINER_MODULE) {
        return Err(format!("{} is listed though only {} was accepted:\n{list}", sc::WHO_CONTAINER_MODULE, sc::WHO_USER_MODULE));
    }
    let files = f.output.text(section::ACCEPTED_FILES)?;
    let user_unit = sc::WHO_USER_CGROUP.rsplit('/').next().unwrap_or_default();
    match drop_in_units(&files).contains(&user_unit) {
        true => Err(format!("accepting the module wrote a drop-in for the user's {user_unit}:\n{files}")),
        false => Ok(()),
    }
}
