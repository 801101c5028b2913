//! Kernel threads acting for a user: an unprivileged AF_ALG bind to
//! lrw(cast6) makes the crypto manager's thread cryptomgr_probe request lrw
//! and cast6. Its requests must be given to the binder (uid, via the thread),
//! the modules must need review, and generate must not list them.

use serde_json::Value;

use super::{evidence, expect, find, learn, loaded, text, Facts};
use crate::guest::scenario::{self as sc, captured as cap, section};

/// The binder's uid at `pointer` of a record or trigger.
fn expect_binder(r: &Value, pointer: &str) -> Result<(), String> {
    match r.pointer(pointer).and_then(Value::as_u64) {
        Some(uid) if uid == u64::from(sc::KTHREAD_UID) => Ok(()),
        other => Err(evidence(&format!("{pointer} is {other:?}, expected the binder's uid {}", sc::KTHREAD_UID), r)),
    }
}

fn modules() -> [(&'static str, &'static str); 2] {
    [sc::KTHREAD_TEMPLATE, sc::KTHREAD_INNER]
}

/// The thread's request is a kernel thread's, joined to the binder; the
/// load it caused names the binder as requester, via the thread.
pub fn joined_to_binder(f: &Facts) -> Result<(), String> {
    for (alias, module) in modules() {
        let request = find(f, &format!("`request` record for {alias} by a kernel thread"), |r| {
            text(r, "/kind") == "request" && text(r, "/alias") == alias && r.pointer("/process/kernel_thread").is_some()
        })?;
        expect(request, "/process/comm", "cryptomgr_probe")?;
        if request.pointer("/process/kernel_thread") != Some(&Value::Bool(true)) {
            return Err(evidence("the requester is not marked a kernel thread", request));
        }
        expect_binder(request, "/kthread/requester/uid")?;
        let load = loaded(f, module)?;
        expect(load, "/cause/kind", "request")?;
        expect(load, "/cause/alias", alias)?;
        expect_binder(load, "/cause/requester/uid")?;
        expect(load, "/cause/kthread/via", sc::KTHREAD_VIA)?;
    }
    Ok(())
}

/// The profile's triggers name the binder, via the thread, and no other.
pub fn profile_names_binder(f: &Facts) -> Result<(), String> {
    let p = learn::profile(f)?;
    for (alias, module) in modules() {
        let m = learn::module(&p, module)?;
        let triggers = m.pointer("/triggers").and_then(Value::as_array).ok_or_else(|| evidence("no triggers", m))?;
        if triggers.is_empty() {
            return Err(evidence("no triggers", m));
        }
        for t in triggers {
            expect(t, "/alias", alias)?;
            expect_binder(t, "/requester/uid")?;
            expect(t, "/via", sc::KTHREAD_VIA)?;
        }
    }
    Ok(())
}

/// Neither module is listed; check puts them under review.
pub fn needs_review_not_listed(f: &Facts) -> Result<(), String> {
    let list = f.output.text(section::GENERATED_LIST)?;
    let check = f.output.text(&format!("{}.stdout", cap::CHECK))?;
    let review = check.split_once("needs review:").map(|(_, r)| r).unwrap_or_default();
    for (_, module) in modules() {
        if list.lines().any(|l| l.trim() == module) {
            return Err(format!("generate lists {module}, which a kernel thread asked for a user:\n{list}"));
        }
        if !review.lines().any(|l| l.starts_with(&format!("  - {module}:"))) {
            return Err(format!("check has no review line for {module}:\n{check}"));
        }
    }
    Ok(())
}
