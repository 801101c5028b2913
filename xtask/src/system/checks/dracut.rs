//! The checks of a suite whose initramfs dracut built (system/dracut.rs): every
//! module that initramfs holds and loaded was traced there, marked
//! `"stage": "initramfs"`, with its cause: udev for the storage drivers, the
//! root mount's request for its file system. PID 1's own start-up loads in the
//! initramfs (systemd's kmod-setup: autofs4, virtio_rng, qemu_fw_cfg here)
//! come before any unit can start (docs/dracut.md): they must be explained by
//! a preload source (PID 1's journal, the device udev sees), never "before
//! learning"; every other module of the initramfs must be traced there.

use std::collections::BTreeSet;

use serde_json::Value;

use super::services::{modules, s, triggers, PID1_LOADS};
use super::Facts;
use crate::check::CheckFn;

pub const DRACUT_CHECKS: &[(&str, CheckFn<Facts>)] = &[
    ("dracut_initramfs_loads_have_causes", initramfs_loads_have_causes),
    ("dracut_storage_loaded_by_udev", |f| loaded_there(f, "virtio_blk", "udev", None)),
    ("dracut_root_fs_requested_by_mount", |f| loaded_there(f, "ext4", "request", Some("fs-ext4"))),
];

/// The modules the dracut initramfs holds (`lsinitrd`), from the host.
fn held(f: &Facts) -> Result<&BTreeSet<String>, String> {
    f.dracut.as_ref().ok_or_else(|| "this suite's initramfs is not dracut's".to_string())
}

/// The cause a trigger of the initramfs names: who loaded or asked, never empty.
fn cause(t: &Value) -> Option<String> {
    let who = |p: &str| Some(s(t, p)).filter(|c| !c.is_empty());
    match s(t, "/kind") {
        "udev" => who("/loader/comm").map(|c| format!("udev ({c})")),
        "request" => who("/requester/comm").map(|c| format!("{} asked by {c}", s(t, "/alias"))),
        "explicit" => who("/loader/comm").map(|c| format!("loaded by {c}")),
        _ => None,
    }
}

/// Found loaded with a source that explains it (not "before learning").
fn explained_preload(t: &Value) -> bool {
    s(t, "/kind") == "preloaded" && !s(t, "/reason").is_empty() && s(t, "/reason") != "before learning"
}

/// Every module of the initramfs that boot 1 loaded has a trigger of stage
/// "initramfs" with a cause, or is one of PID 1's start-up loads explained by
/// a preload source; none other was found loaded.
fn initramfs_loads_have_causes(f: &Facts) -> Result<(), String> {
    let profile = f.b1()?.profile()?;
    let all = modules(&profile)?;
    let mut bad = Vec::new();
    let mut traced = 0;
    for name in held(f)? {
        let Some(m) = all.iter().find(|m| s(m, "/name") == name.as_str()) else { continue };
        let ts = triggers(m);
        let there = ts.iter().any(|t| s(t, "/stage") == "initramfs" && cause(t).is_some());
        let pid1 = PID1_LOADS.contains(&name.as_str());
        let found = |t: &Value| s(t, "/kind") == "preloaded" && !(pid1 && explained_preload(t));
        traced += usize::from(there);
        if ts.iter().any(found) || !(there || pid1 && ts.iter().any(explained_preload)) {
            bad.push(format!("{name}: {}", Value::from(ts)));
        }
    }
    if !bad.is_empty() {
        return Err(format!("without a cause in the initramfs: {}", bad.join("; ")));
    }
    if traced == 0 {
        return Err(format!("no module of the initramfs ({held:?}) was traced there", held = held(f)?));
    }
    Ok(())
}

/// `module` was loaded in the initramfs by a trigger of `kind` (the alias
/// `alias` for a request), with a cause.
fn loaded_there(f: &Facts, module: &str, kind: &str, alias: Option<&str>) -> Result<(), String> {
    let profile = f.b1()?.profile()?;
    let m = modules(&profile)?
        .iter()
        .find(|m| s(m, "/name") == module)
        .ok_or_else(|| format!("{module} is not in the profile"))?;
    let found = triggers(m).iter().any(|t| {
        s(t, "/stage") == "initramfs"
            && s(t, "/kind") == kind
            && alias.is_none_or(|a| s(t, "/alias") == a)
            && cause(t).is_some()
    });
    match found {
        true => Ok(()),
        false => Err(format!("{module}: no {kind} trigger of the initramfs: {}", Value::from(triggers(m)))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::system::checks::{Boot, Recorded};
    use crate::system::LockPoint;

    fn initramfs(kind: &str, extra: Value) -> Value {
        let mut t = json!({"kind": kind, "stage": "initramfs", "count": 1,
                           "loader": {"comm": "(udev-worker)", "uid": 0, "scope": {"kind": "no_unit"}}});
        t.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        t
    }

    /// The dracut initramfs's modules as traced there, PID 1's as found loaded.
    fn good_profile() -> Value {
        json!({"modules": [
            {"name": "virtio_blk", "triggers": [initramfs("udev", json!({}))]},
            {"name": "ext4", "triggers": [initramfs("request", json!({"alias": "fs-ext4",
                "requester": {"comm": "mount", "unit": "sysroot.mount"}}))]},
            {"name": "autofs4", "triggers": [{"kind": "preloaded",
                "reason": "inserted by systemd (PID 1) before any unit (its journal)"}]},
            {"name": "virtio_rng", "triggers": [{"kind": "preloaded",
                "reason": "udev coldplug: device virtio:d00000004v00001AF4 at /sys/devices/virtio1"}]},
            {"name": "vfat", "triggers": [{"kind": "request", "alias": "fs-vfat", "requester": {"comm": "mount"}}]},
        ]})
    }

    /// A boot 1 with `edit`ed good_profile().
    fn facts(edit: impl FnOnce(&mut Value)) -> Facts {
        let mut profile = good_profile();
        edit(&mut profile);
        let mut r = Recorded::default();
        r.insert("profile.json", &profile.to_string());
        let held = ["virtio_blk", "ext4", "autofs4", "virtio_rng", "crc32c_generic"];
        let held = held.map(String::from).into_iter().collect();
        Facts {
            lock_point: LockPoint::AfterUdev,
            boot1: Boot { finished: Ok(()), recorded: Some(r) },
            boot2: Boot::not_run("not needed"),
            guard: None,
            sealed_guard: false,
            services: None,
            dracut: Some(held),
            watchdog: false,
            desktop: false,
        }
    }

    fn failures(f: &Facts) -> Vec<&'static str> {
        crate::check::run(DRACUT_CHECKS, f).into_iter().filter(|c| c.result.is_err()).map(|c| c.name).collect()
    }

    fn module<'a>(p: &'a mut Value, name: &str) -> &'a mut Value {
        p["modules"].as_array_mut().unwrap().iter_mut().find(|m| m["name"] == name).unwrap()
    }

    #[test]
    fn a_dracut_initramfs_traced_with_causes_passes() {
        assert_eq!(failures(&facts(|_| {})), Vec::<&str>::new());
    }

    #[test]
    fn each_dracut_check_can_fail() {
        let before = json!([{"kind": "preloaded", "reason": "before learning"}]);
        let f = facts(|p| module(p, "virtio_blk")["triggers"] = before.clone());
        assert_eq!(failures(&f), ["dracut_initramfs_loads_have_causes", "dracut_storage_loaded_by_udev"]);
        // Traced, but after the initramfs (no stage): not the initramfs's.
        let f = facts(|p| {
            module(p, "ext4")["triggers"][0].as_object_mut().unwrap().remove("stage");
        });
        assert_eq!(failures(&f), ["dracut_initramfs_loads_have_causes", "dracut_root_fs_requested_by_mount"]);
        // A request with no requester has no cause.
        let f = facts(|p| module(p, "ext4")["triggers"][0]["requester"] = json!({}));
        assert_eq!(failures(&f), ["dracut_initramfs_loads_have_causes", "dracut_root_fs_requested_by_mount"]);
        // PID 1's own load without a source is "before learning".
        let f = facts(|p| module(p, "autofs4")["triggers"] = before.clone());
        assert_eq!(failures(&f), ["dracut_initramfs_loads_have_causes"]);
        // A device present explains PID 1's start-up loads only, not udev's in the initramfs.
        let coldplug = module(&mut good_profile(), "virtio_rng")["triggers"].clone();
        let f = facts(|p| module(p, "virtio_blk")["triggers"] = coldplug);
        assert_eq!(failures(&f), ["dracut_initramfs_loads_have_causes", "dracut_storage_loaded_by_udev"]);
        let f = facts(|p| p["modules"].as_array_mut().unwrap().retain(|m| m["name"] == "vfat"));
        let all = DRACUT_CHECKS.iter().map(|(name, _)| *name).collect::<Vec<_>>();
        assert_eq!(failures(&f), all);
    }
}
