//! Who asked: the kernel's facts about a requester (uid, euid, audit login uid
//! and session, the whole cgroup path) and the scope parsed from them, on the
//! request and on the loads it caused, for a logged-in user's unit named like a
//! system unit and for a unit in a container's cgroup tree named like a host
//! unit.
//!
//! Each scenario has one function returning its request and loaded records, so
//! a check of another field (the profile's or the report's view) is one more line.

use serde_json::Value;

use super::{evidence, expect, expect_requested, expect_suffix, find, loaded, Facts};
use crate::guest::scenario::{self as sc, comm};

/// The request record for `alias` and the `loaded` record of `module`, which
/// must be caused by that request.
fn request_and_load<'a>(f: &'a Facts, alias: &str, module: &str, requester: &str) -> Result<[&'a Value; 2], String> {
    let request = find(f, &format!("`request` record for {alias}"), |r| {
        super::text(r, "/kind") == "request" && super::text(r, "/alias") == alias
    })?;
    super::expect_contains(request, "/resolves_to", &[module])?;
    let load = loaded(f, module)?;
    expect_requested(load, alias, requester)?;
    Ok([request, load])
}

/// The user unit's socket: its request and the load of its module.
pub fn user_unit(f: &Facts) -> Result<[&Value; 2], String> {
    request_and_load(f, sc::WHO_USER_ALIAS, sc::WHO_USER_MODULE, comm::GUEST_TOOL)
}

/// The container unit's mount: its request and the load of its module.
pub fn container_unit(f: &Facts) -> Result<[&Value; 2], String> {
    request_and_load(f, sc::WHO_CONTAINER_ALIAS, sc::WHO_CONTAINER_MODULE, comm::MOUNT)
}

fn number(r: &Value, pointer: &str) -> Result<u64, String> {
    r.pointer(pointer).and_then(Value::as_u64).ok_or_else(|| evidence(&format!("no number at {pointer}"), r))
}

fn expect_number(r: &Value, pointer: &str, expected: u64) -> Result<(), String> {
    match number(r, pointer)? {
        n if n == expected => Ok(()),
        n => Err(evidence(&format!("{pointer} is {n}, expected {expected}"), r)),
    }
}

/// uid, euid, loginuid and the whole cgroup path of a process (at `at`, e.g.
/// "/process" or "/cause/requester"); a set loginuid comes with a session.
fn expect_who(r: &Value, at: &str, uid: u64, loginuid: u64, cgroup: &str) -> Result<(), String> {
    expect_number(r, &format!("{at}/uid"), uid)?;
    expect_number(r, &format!("{at}/euid"), uid)?;
    expect_number(r, &format!("{at}/loginuid"), loginuid)?;
    let session = number(r, &format!("{at}/sessionid"))?;
    if (loginuid == sc::AUDIT_UNSET) != (session == sc::AUDIT_UNSET) {
        return Err(evidence(&format!("loginuid {loginuid} with session {session}"), r));
    }
    expect(r, &format!("{at}/cgroup"), cgroup)
}

/// The kernel's helper that served a request: root, never logged in, a child
/// of a kernel thread (not of the requester).
fn expect_kernel_helper(load: &Value, alias: &str) -> Result<(), String> {
    expect_number(load, "/process/uid", 0)?;
    expect_number(load, "/process/loginuid", sc::AUDIT_UNSET)?;
    expect_suffix(load, "/process/cmdline/3", alias)
}

/// The scope parsed from that path: whose unit it is.
fn expect_scope(r: &Value, at: &str, fields: &[(&str, &str)]) -> Result<(), String> {
    for (field, value) in fields {
        let pointer = format!("{at}/scope/{field}");
        match r.pointer(&pointer) {
            Some(Value::String(s)) if s == value => {}
            Some(Value::Number(n)) if n.to_string() == *value => {}
            other => return Err(evidence(&format!("{pointer} is {other:?}, expected {value}"), r)),
        }
    }
    Ok(())
}

pub fn user_unit_requester(f: &Facts) -> Result<(), String> {
    let [request, load] = user_unit(f)?;
    let uid = u64::from(sc::WHO_USER_UID);
    let scope = [("kind", "user"), ("uid", &*uid.to_string()), ("unit", "lightdm.service")];
    for (r, at) in [(request, "/process"), (load, "/cause/requester")] {
        expect_who(r, at, uid, uid, sc::WHO_USER_CGROUP)?;
        expect_scope(r, at, &scope)?;
    }
    expect_kernel_helper(load, sc::WHO_USER_ALIAS)
}

pub fn container_unit_requester(f: &Facts) -> Result<(), String> {
    let [request, load] = container_unit(f)?;
    let scope = [("kind", "container"), ("runtime", "systemd-nspawn"), ("name", "box"), ("unit", "cron.service")];
    for (r, at) in [(request, "/process"), (load, "/cause/requester")] {
        expect_who(r, at, 0, sc::AUDIT_UNSET, sc::WHO_CONTAINER_CGROUP)?;
        expect_scope(r, at, &scope)?;
    }
    expect_kernel_helper(load, sc::WHO_CONTAINER_ALIAS)
}
