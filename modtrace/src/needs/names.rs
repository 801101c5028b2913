//! Before deriving anything: every name from the profile that the generators
//! could write (modules, units, the kernel release) must be safe to write.

use crate::profile::{Profile, Trigger};
use crate::validate::{check_module, check_release, check_unit, Invalid};

/// Why a derivation was refused, in one line: every offending name.
pub fn unusable(invalid: &[Invalid]) -> String {
    let list: Vec<String> = invalid.iter().map(ToString::to_string).collect();
    format!("the profile has names that cannot be used: {}", list.join("; "))
}

/// Checks every name the generators could write: module names, the units of
/// every trigger, the kernel release. All offenders are returned, not the first.
pub fn validate(profile: &Profile, release: &str) -> Vec<Invalid> {
    let mut bad = Vec::new();
    let mut module = |value: &str, place: String| {
        if let Err(rule) = check_module(value) {
            bad.push(Invalid { what: "module name", value: value.to_string(), place, rule });
        }
    };
    for (i, m) in profile.modules.iter().enumerate() {
        module(&m.name, format!("modules[{i}].name"));
        for (j, d) in m.depends_on.iter().enumerate() {
            module(d, format!("modules[{i}] ({}).depends_on[{j}]", m.name));
        }
    }
    for (i, r) in profile.requests.iter().enumerate() {
        for (j, m) in r.resolves_to.iter().enumerate() {
            module(m, format!("requests[{i}].resolves_to[{j}]"));
        }
    }
    for (i, m) in profile.modules.iter().enumerate() {
        for (j, t) in m.triggers.iter().enumerate() {
            for (place, unit) in trigger_unit_fields(t) {
                if let Err(rule) = check_unit(unit) {
                    bad.push(Invalid {
                        what: "unit name",
                        value: unit.to_string(),
                        place: format!("modules[{i}] ({}).triggers[{j}].{place}", m.name),
                        rule,
                    });
                }
            }
        }
    }
    if let Err(rule) = check_release(release) {
        bad.push(Invalid { what: "kernel release", value: release.to_string(), place: "kernel".to_string(), rule });
    }
    bad
}

fn trigger_unit_fields(t: &Trigger) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    if let Some(u) = t.requester.as_ref().and_then(|r| r.unit.as_deref()) {
        out.push(("requester.unit".to_string(), u));
    }
    for (k, r) in t.also_requested_by.iter().enumerate() {
        if let Some(u) = r.unit.as_deref() {
            out.push((format!("also_requested_by[{k}].unit"), u));
        }
    }
    if let Some(u) = t.loader.as_ref().and_then(|l| l.unit.as_deref()) {
        out.push(("loader.unit".to_string(), u));
    }
    out
}
