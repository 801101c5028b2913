//! The checks of the real services (services.rs), run for a suite that has
//! them: each service's modules are learned under its unit, every module of
//! the profile was traced (the initramfs's loads by the probes it started,
//! PID 1's own before any unit), none is "before learning", and after the lock
//! each service really works.

use serde_json::Value;

use super::{Facts, Recorded};
use crate::check::CheckFn;
use crate::system::services::{Known, Service, SERVICES};

const LEARNER: &str = "modtrace-learn.service";
/// What PID 1 loads itself before it starts any unit (systemd's
/// src/core/kmod-setup.c, for this QEMU machine: virtio-rng, fw_cfg). Only
/// autofs4 gets a line in its journal; the probes the initramfs started see
/// them all.
pub(super) const PID1_LOADS: [&str; 4] = ["autofs4", "ip_tables", "virtio_rng", "qemu_fw_cfg"];

pub const SERVICE_CHECKS: &[(&str, CheckFn<Facts>)] = &[
    ("generator_ordered_early_units", generator_ordered),
    ("profile_names_nftables", |f| names(f, &SERVICES[0])),
    ("profile_names_wireguard", |f| names(f, &SERVICES[1])),
    ("profile_names_binfmt_trigger", |f| names(f, &SERVICES[2])),
    ("profile_names_fat_mount", |f| names(f, &SERVICES[3])),
    ("profile_names_tun_user", |f| names(f, &SERVICES[4])),
    ("profile_explains_every_module", explains_every_module),
    ("initramfs_loads_traced", initramfs_traced),
    ("pid1_loads_traced", pid1_traced),
    ("nftables_ruleset_after_lock", |f| nftables_works(f.b2()?)),
    ("wireguard_up_after_lock", |f| wireguard_works(f.b2()?)),
    ("binfmt_registered_after_lock", |f| binfmt_works(f.b2()?)),
    ("fat_mounted_after_lock", |f| fat_works(f.b2()?)),
    ("tun_up_after_lock", |f| tun_works(f.b2()?)),
];

fn known(f: &Facts) -> Result<&Known, String> {
    f.services.as_ref().ok_or_else(|| "this suite has no services".to_string())
}

/// modtrace-learn-generator ordered nftables.service and systemd-binfmt.service
/// (both DefaultDependencies=no) after the learner in boot 1.
fn generator_ordered(f: &Facts) -> Result<(), String> {
    let listed = f.b1()?.text("generator-dropins")?;
    let missing: Vec<&str> = ["nftables.service", "systemd-binfmt.service"]
        .into_iter()
        .filter(|u| !listed.contains(&format!("/{u}.d/50-modtrace-learn.conf")))
        .collect();
    if !missing.is_empty() {
        return Err(format!("no generator drop-in ordering {missing:?} after {LEARNER}; found: {listed:?}"));
    }
    Ok(())
}

pub(super) fn modules(profile: &Value) -> Result<&Vec<Value>, String> {
    profile.get("modules").and_then(Value::as_array).ok_or_else(|| "the profile has no modules list".into())
}

pub(super) fn triggers(m: &Value) -> &[Value] {
    m.get("triggers").and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

pub(super) fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The unit a trigger names: the requester's for a request (and a modprobe@
/// load followed to who wants it), the loader's for other explicit loads and udev.
fn unit_of(t: &Value) -> &str {
    match (s(t, "/kind"), t.get("via").is_some()) {
        ("request", _) | ("explicit", true) => s(t, "/requester/unit"),
        _ => s(t, "/loader/unit"),
    }
}

/// Every module of the service has a trigger naming its unit (and the way
/// it came, for the automount), and none found it "before learning".
fn names(f: &Facts, service: &Service) -> Result<(), String> {
    let profile = f.b1()?.profile()?;
    let all = modules(&profile)?;
    for name in service.modules {
        let m = all
            .iter()
            .find(|m| s(m, "/name") == *name)
            .ok_or_else(|| format!("{name} ({}) is not in the profile", service.unit))?;
        let ts = triggers(m);
        let named = ts.iter().any(|t| unit_of(t) == service.unit && service.via.is_none_or(|v| s(t, "/via") == v));
        let early = ts.iter().any(|t| s(t, "/kind") == "preloaded");
        if !named || early {
            let via = service.via.map(|v| format!(" via {v}")).unwrap_or_default();
            return Err(format!("{name} is not attributed to {}{via} alone: triggers {}", service.unit, Value::from(ts)));
        }
    }
    Ok(())
}

/// PID 1's own load: explicit, by systemd, in the root cgroup (before it
/// moved itself into init.scope).
fn by_pid1(t: &Value) -> bool {
    s(t, "/kind") == "explicit" && s(t, "/loader/comm") == "systemd" && s(t, "/loader/scope/kind") == "no_unit"
}

/// Why a trigger explains its module, or None. "before learning" never does.
fn explanation(t: &Value) -> Option<&'static str> {
    if s(t, "/stage") == "initramfs" {
        return Some("initramfs");
    }
    match s(t, "/kind") {
        "preloaded" if s(t, "/reason") != "before learning" && t.get("reason").is_some() => Some("configured"),
        "explicit" if by_pid1(t) => Some("PID 1 before any unit"),
        "request" if s(t, "/requester/scope/kind") == "no_unit" => Some("kernel"),
        "request" | "explicit" if super::deputy::for_a_client(t) => Some("a deputy's client"),
        "request" | "explicit" | "udev" if !unit_of(t).is_empty() => Some("unit"),
        "request" | "explicit" | "udev" if t.get("needed_by").is_some() => Some("dependency"),
        _ => None,
    }
}

/// Each module the initramfs loads was traced there: insmod's explicit load,
/// marked as the initramfs's.
fn initramfs_traced(f: &Facts) -> Result<(), String> {
    let profile = f.b1()?.profile()?;
    let all = modules(&profile)?;
    let bad: Vec<String> = known(f)?
        .initramfs
        .iter()
        .filter(|name| {
            let m = all.iter().find(|m| s(m, "/name") == name.as_str());
            !m.is_some_and(|m| {
                triggers(m).iter().any(|t| s(t, "/stage") == "initramfs" && s(t, "/loader/comm") == "insmod")
            })
        })
        .map(|name| {
            let ts = all.iter().find(|m| s(m, "/name") == name.as_str()).map(|m| Value::from(triggers(m)));
            format!("{name}: {}", ts.map_or("not in the profile".to_string(), |t| t.to_string()))
        })
        .collect();
    match bad.is_empty() {
        true => Ok(()),
        false => Err(format!("not traced as the initramfs's insmod: {}", bad.join("; "))),
    }
}

/// PID 1's own start-up loads were traced as explicit loads by systemd, not
/// found "before learning".
fn pid1_traced(f: &Facts) -> Result<(), String> {
    let profile = f.b1()?.profile()?;
    let all = modules(&profile)?;
    let bad: Vec<String> = PID1_LOADS
        .iter()
        .filter_map(|name| {
            let m = all.iter().find(|m| s(m, "/name") == *name);
            match m {
                Some(m) if triggers(m).iter().any(by_pid1) && triggers(m).iter().all(|t| s(t, "/kind") != "preloaded") => None,
                Some(m) => Some(format!("{name}: {}", Value::from(triggers(m)))),
                None => Some(format!("{name}: not in the profile")),
            }
        })
        .collect();
    match bad.is_empty() {
        true => Ok(()),
        false => Err(format!("not traced as PID 1's own loads: {}", bad.join("; "))),
    }
}

/// (how, count) per kind of explanation, and the modules nothing explains.
pub type Explained = (Vec<(&'static str, usize)>, Vec<String>);

/// Counts of how the profile's modules are explained (for the report), and
/// the ones nothing explains.
pub fn explained(r: &Recorded) -> Result<Explained, String> {
    let profile = r.profile()?;
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    let mut unexplained = Vec::new();
    for m in modules(&profile)? {
        let name = s(m, "/name");
        // The best explanation any trigger gives: a unit before anything else.
        let found: Vec<&'static str> = triggers(m).iter().filter_map(explanation).collect();
        let best = ["unit", "kernel", "configured", "initramfs", "PID 1 before any unit", "a deputy's client", "dependency"]
            .into_iter()
            .find(|how| found.contains(how));
        match best {
            Some(how) => match counts.iter_mut().find(|(h, _)| *h == how) {
                Some((_, n)) => *n += 1,
                None => counts.push((how, 1)),
            },
            None => unexplained.push(format!("{name}: {}", Value::from(triggers(m)))),
        }
    }
    Ok((counts, unexplained))
}

/// Every module has a cause naming a unit (or the kernel's own request), or was
/// loaded by the initramfs before any learner could run.
fn explains_every_module(f: &Facts) -> Result<(), String> {
    let (_, unexplained) = explained(f.b1()?)?;
    if !unexplained.is_empty() {
        return Err(format!("{} modules have no cause naming a unit: {}", unexplained.len(), unexplained.join("; ")));
    }
    Ok(())
}

/// After the lock (in the boot `r` recorded) the unit is active and its
/// command said `want`.
pub(super) fn works(r: &Recorded, unit: &str, step: &str, want: &[&str]) -> Result<(), String> {
    let u = r.unit(unit)?;
    u.expect("ActiveState", "active")?;
    if r.status(step)? != 0 {
        return Err(format!("{step} failed after the lock: {}", r.said(step)));
    }
    let out = r.text(&format!("{step}.out"))?;
    match want.iter().find(|w| !out.contains(**w)) {
        Some(w) => Err(format!("{step} after the lock does not show {w:?}: {out:?}")),
        None => Ok(()),
    }
}

pub(super) fn nftables_works(r: &Recorded) -> Result<(), String> {
    works(r, "nftables.service", "nft-ruleset", &["ct state established,related accept", "masquerade"])
}

pub(super) fn wireguard_works(r: &Recorded) -> Result<(), String> {
    works(r, "wg-quick@mtwg0.service", "wg-link", &["mtwg0", "wireguard"])
}

pub(super) fn binfmt_works(r: &Recorded) -> Result<(), String> {
    works(r, "systemd-binfmt.service", "binfmt-entry", &["enabled", "interpreter /bin/true"])
}

pub(super) fn fat_works(r: &Recorded) -> Result<(), String> {
    works(r, "mnt-fat.mount", "fat-mount", &["vfat"])
}

/// The interface exists and is administratively up (`<...,UP,...>`).
pub(super) fn tun_works(r: &Recorded) -> Result<(), String> {
    works(r, "modtrace-test-tun.service", "tun-link", &["mttun0"])?;
    let out = r.text("tun-link.out")?;
    let flags = out.split_once('<').and_then(|(_, r)| r.split_once('>')).map_or("", |(flags, _)| flags);
    match flags.split(',').any(|fl| fl == "UP") {
        true => Ok(()),
        false => Err(format!("mttun0 is not up after the lock: {out:?}")),
    }
}
