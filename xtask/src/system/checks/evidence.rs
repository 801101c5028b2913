//! A fleet's evidence from the trixie system test's learning boot (issue 25):
//! learn's structured journal entries (learned.sh records `journalctl -o json
//! MESSAGE_ID=...` in learn-evidence.json; docs/journal.md), one for every
//! module of the profile, and the Debian packages the profile names for the
//! real services' units.

use std::collections::BTreeSet;

use serde_json::Value;

use super::services::{modules, s};
use super::Facts;
use crate::check::CheckFn;

/// learn's MESSAGE_ID (modtrace/src/learn/evidence.rs).
const MESSAGE_ID: &str = "a0494ea2749d4e5189d4ce8ce09fa450";

pub const EVIDENCE_CHECKS: [(&str, CheckFn<Facts>); 3] = [
    ("learn_journal_has_every_module", every_module),
    ("learn_journal_names_unit_and_package", |f| names(f, "nf_tables", "nftables.service", "nftables")),
    ("profile_names_service_packages", packages),
];

/// The entries learned.sh recorded, each with learn's MESSAGE_ID.
fn entries(f: &Facts) -> Result<Vec<Value>, String> {
    let text = f.b1()?.text("learn-evidence.json")?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value = serde_json::from_str(line).map_err(|e| format!("learn-evidence.json: {e}: {line}"))?;
        if s(&entry, "/MESSAGE_ID") != MESSAGE_ID {
            return Err(format!("an entry without learn's MESSAGE_ID: {line}"));
        }
        out.push(entry);
    }
    Ok(out)
}

/// Every module of the profile has its entry, with a cause and a trust.
fn every_module(f: &Facts) -> Result<(), String> {
    let entries = entries(f)?;
    let announced: BTreeSet<&str> = entries
        .iter()
        .filter(|e| !s(e, "/MODTRACE_CAUSE").is_empty() && !s(e, "/MODTRACE_TRUST").is_empty())
        .map(|e| s(e, "/MODTRACE_MODULE"))
        .collect();
    let profile = f.b1()?.profile()?;
    let missing: Vec<&str> =
        modules(&profile)?.iter().map(|m| s(m, "/name")).filter(|m| !announced.contains(m)).collect();
    match missing.is_empty() {
        true => Ok(()),
        false => Err(format!("no journal entry for {missing:?} ({} entries)", entries.len())),
    }
}

/// The module's entry names the unit that asked, its package, and its trust.
fn names(f: &Facts, module: &str, unit: &str, package: &str) -> Result<(), String> {
    let entries = entries(f)?;
    let entry = entries.iter().find(|e| s(e, "/MODTRACE_MODULE") == module).ok_or(format!("no entry for {module}"))?;
    let got = ["/MODTRACE_UNIT", "/MODTRACE_PACKAGE", "/MODTRACE_TRUST", "/MODTRACE_UID", "/MODTRACE_SCOPE"]
        .map(|k| s(entry, k));
    match got == [unit, package, "trusted", "0", "system"] {
        true => Ok(()),
        false => Err(format!("{module}'s entry: {entry}")),
    }
}

/// The profile ties the services' units to the packages that ship them.
fn packages(f: &Facts) -> Result<(), String> {
    let profile = f.b1()?.profile()?;
    let want = [
        ("/packages/units/nftables.service", "nftables"),
        ("/packages/units/systemd-binfmt.service", "systemd"),
        ("/packages/units/wg-quick@mtwg0.service", "wireguard-tools"),
        ("/packages/executables/~1usr~1sbin~1nft", "nftables"),
    ];
    let wrong: Vec<String> =
        want.iter().filter(|(k, v)| s(&profile, k) != *v).map(|(k, v)| format!("{k}: want {v:?}")).collect();
    match wrong.is_empty() {
        true => Ok(()),
        false => Err(format!("{wrong:?}; the profile's packages: {}", profile.get("packages").unwrap_or(&Value::Null))),
    }
}
