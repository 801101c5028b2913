//! The root deputy of the trixie system test (issue 21): a user loop-mounts a
//! squashfs image through udisks2 (tests/system/common.sh, deputy_mount), and
//! root's fstab mounts a minix image at boot. The user's module must be the
//! user's, through udisks2.service, held for review with no drop-in and not
//! listed; root's stays trusted, listed, and works after the lock.

use std::collections::BTreeSet;

use serde_json::Value;

use super::services::{modules, s, triggers, works};
use super::Facts;
use crate::check::CheckFn;

const DEPUTY: &str = "udisks2.service";
/// What the user's mount makes the kernel load, and for whom.
const USER_MODULE: &str = "squashfs";
const USER_UID: u64 = 1000;
const ROOT_MOUNT: &str = "mnt-minix.mount";
const ROOT_MODULE: &str = "minix";

pub const DEPUTY_CHECKS: [(&str, CheckFn<Facts>); 5] = [
    ("deputy_user_mounted_through_udisks", user_mounted),
    ("deputy_load_is_the_users_via_udisks2", users_via_udisks),
    ("deputy_load_held_for_review", held_for_review),
    ("root_fstab_mount_trusted", root_mount_trusted),
    ("root_fstab_mount_works_after_lock", |f| works(f.b2()?, ROOT_MOUNT, "minix-mount", &[ROOT_MODULE])),
];

/// A trigger through a deputy for its client: a `via` that is neither an
/// automount's mount unit nor modprobe@, and the client's uid.
pub fn for_a_client(t: &Value) -> bool {
    let via = s(t, "/via");
    !via.is_empty() && !via.ends_with(".mount") && !via.starts_with("modprobe@") && t.pointer("/requester/uid").is_some()
}

/// Modules of the profile that only deputies' clients asked for: held for
/// review, so the locked boots do not load them.
pub fn clients_only(profile: &Value) -> BTreeSet<String> {
    let all = profile.get("modules").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    all.iter()
        .filter(|m| !triggers(m).is_empty() && triggers(m).iter().all(for_a_client))
        .map(|m| s(m, "/name").to_string())
        .collect()
}

fn user_mounted(f: &Facts) -> Result<(), String> {
    let r = f.b1()?;
    for step in ["deputy-useradd", "deputy-loop", "deputy-mount"] {
        if r.status(step)? != 0 {
            return Err(format!("{step} failed: {}", r.said(step)));
        }
    }
    match r.text("deputy-findmnt.out")? {
        out if out.contains(USER_MODULE) => Ok(()),
        out => Err(format!("no squashfs mount after udisksctl mount: {out:?}")),
    }
}

fn module<'a>(profile: &'a Value, name: &str) -> Result<&'a Value, String> {
    modules(profile)?.iter().find(|m| s(m, "/name") == name).ok_or_else(|| format!("{name} is not in the profile"))
}

/// Every trigger of the user's module: a request, through udisks2.service,
/// for uid 1000, with the deputy's word as the reason.
fn users_via_udisks(f: &Facts) -> Result<(), String> {
    let profile = f.b1()?.profile()?;
    let ts = triggers(module(&profile, USER_MODULE)?);
    let right = |t: &Value| {
        s(t, "/kind") == "request"
            && s(t, "/via") == DEPUTY
            && t.pointer("/requester/uid").and_then(Value::as_u64) == Some(USER_UID)
            && s(t, "/reason").contains(&format!("on behalf of uid {USER_UID}"))
    };
    match !ts.is_empty() && ts.iter().all(right) {
        true => Ok(()),
        false => Err(format!("{USER_MODULE} is not uid {USER_UID}'s through {DEPUTY} alone: {}", Value::from(ts))),
    }
}

/// check holds it for review, saying for whom; it is not listed, the lock
/// unit does not load it, and udisks2.service got no drop-in.
fn held_for_review(f: &Facts) -> Result<(), String> {
    let r = f.b1()?;
    let check = r.text("check.out")?;
    let said = format!("{USER_MODULE}: {DEPUTY} acted on behalf of uid {USER_UID}");
    if !check.lines().any(|l| l.trim_start().trim_start_matches("- ").starts_with(&said)) {
        return Err(format!("modtrace check does not hold {USER_MODULE} for review as {said:?}:\n{check}"));
    }
    let listed = r.text("generated/modtrace.conf")?;
    if listed.lines().any(|l| l.trim() == USER_MODULE) {
        return Err(format!("{USER_MODULE} is listed in modules-load.d:\n{listed}"));
    }
    if r.text("generated/modtrace-lock.service")?.contains(USER_MODULE) {
        return Err(format!("the lock unit loads {USER_MODULE}"));
    }
    match r.text(&format!("generated/dropin-{DEPUTY}.conf")) {
        Ok(dropin) => Err(format!("{DEPUTY} got a drop-in for what its client asked:\n{dropin}")),
        Err(_) => Ok(()),
    }
}

/// minix: mount(8) in mnt-minix.mount asked (no deputy, no automount),
/// listed, and the mount unit's drop-in wants it.
fn root_mount_trusted(f: &Facts) -> Result<(), String> {
    let r = f.b1()?;
    let profile = r.profile()?;
    let ts = triggers(module(&profile, ROOT_MODULE)?);
    let by_root = |t: &Value| {
        s(t, "/kind") == "request" && s(t, "/requester/unit") == ROOT_MOUNT && t.get("via").is_none()
    };
    if !ts.iter().any(by_root) {
        return Err(format!("{ROOT_MODULE} is not requested by {ROOT_MOUNT} itself: {}", Value::from(ts)));
    }
    if !r.text("generated/modtrace.conf")?.lines().any(|l| l.trim() == ROOT_MODULE) {
        return Err(format!("{ROOT_MODULE} is not listed in modules-load.d"));
    }
    let dropin = r.text(&format!("generated/dropin-{ROOT_MOUNT}.conf"))?;
    match dropin.contains(&format!("Wants=modprobe@{ROOT_MODULE}.service")) {
        true => Ok(()),
        false => Err(format!("{ROOT_MOUNT}'s drop-in does not want {ROOT_MODULE}:\n{dropin}")),
    }
}
