//! The checks of a refused driver load (issue 24, item 3): where the suite adds
//! QEMU's i6300esb watchdog to the guard and locked boots (bookworm; never to
//! boot 1, so its driver is never learned), udev's load of that driver is
//! refused, and what modtrace says of the refusal names the module, udev and
//! the device: its sysfs path, modalias and PCI ids. guarded.sh and locked.sh
//! announce the device again (`retrigger_watchdog` in common.sh) while the
//! guard's logger, or `modtrace trace --json`, runs.

use serde_json::Value;

use super::guard::{expect_fields, field, g, journal};
use super::{locked, loads_summary, text, Facts, Recorded};
use crate::check::CheckFn;

/// QEMU's device, its driver (a module of bookworm's 6.1, not built in) and ids.
pub const QEMU_DEVICE: &str = "i6300esb";
pub const WATCHDOG_MODULE: &str = "i6300esb";
const WATCHDOG_FILE: &str = "i6300esb.ko";
const WATCHDOG_MODALIAS: &str = "pci:v00008086d000025AB";
const WATCHDOG_IDS: &str = "8086:25ab";
const UDEV_UNIT: &str = "systemd-udevd.service";
/// What trace/correlate's is_udev takes for udev: the daemon or its worker.
const UDEV_COMMS: [&str; 2] = ["(udev-worker)", "systemd-udevd"];

pub const REFUSED_DEVICE_CHECKS: &[(&str, CheckFn<Facts>)] = &[
    ("guard_watchdog_retriggered_unbound", |f| retriggered(g(f)?)),
    ("guard_refused_driver_names_its_device", guard_names_device),
    ("boot2_watchdog_retriggered_unbound", |f| retriggered(f.b2()?)),
    ("traced_refused_driver_names_its_device", traced_names_device),
];

/// The device was there without a driver, and `udevadm trigger` announced it.
fn retriggered(r: &Recorded) -> Result<(), String> {
    let sysfs = r.text("watchdog-sysfs")?;
    if !sysfs.starts_with(WATCHDOG_MODALIAS) {
        return Err(format!("the watchdog's sysfs modalias, vendor and device: {sysfs:?}"));
    }
    match (r.text("watchdog-driver")?.trim(), r.status("watchdog-trigger")?) {
        ("none", 0) => Ok(()),
        (driver, status) => Err(format!(
            "the watchdog's driver: {driver} (expected none: its load refused); udevadm trigger exited {status}: {}",
            r.said("watchdog-trigger")
        )),
    }
}

/// The sysfs path the guest found the watchdog at, as DEVPATH (/devices/...).
fn devpath(r: &Recorded) -> Result<String, String> {
    let path = r.text("watchdog-device")?.trim();
    match path.starts_with("/devices/") {
        true => Ok(path.to_string()),
        false => Err(format!("the watchdog's recorded sysfs path is {path:?}")),
    }
}

/// The guard's journal holds a refusal of the watchdog's driver file by udev,
/// naming the module and the device.
fn guard_names_device(f: &Facts) -> Result<(), String> {
    let r = g(f)?;
    let devpath = devpath(r)?;
    let entries = journal(r, "guard-journal.json")?;
    let refusals: Vec<&Value> = entries
        .iter()
        .filter(|e| field(e, "MODTRACE_DECISION") == "denied" && field(e, "MODTRACE_FILE") == WATCHDOG_FILE)
        .collect();
    if refusals.is_empty() {
        return Err(format!("no refusal of {WATCHDOG_FILE} in the guard's journal ({} entries)", entries.len()));
    }
    // The coldplug's refusal and the re-announced one's: one must name it all.
    first_ok(refusals.iter().map(|e| names_device(e, &devpath)))
}

/// Ok if any is; else the first error.
fn first_ok(results: impl Iterator<Item = Result<(), String>>) -> Result<(), String> {
    let mut first = None;
    for r in results {
        match r {
            Ok(()) => return Ok(()),
            Err(e) => first = first.or(Some(e)),
        }
    }
    Err(first.unwrap_or_else(|| "nothing to check".to_string()))
}

fn names_device(e: &Value, devpath: &str) -> Result<(), String> {
    expect_fields(
        e,
        &[
            ("MODTRACE_HOOK", "finit_module"),
            ("MODTRACE_MODULE", WATCHDOG_MODULE),
            ("MODTRACE_UNIT", UDEV_UNIT),
            ("MODTRACE_DEVICE", devpath),
            ("MODTRACE_SUBSYSTEM", "pci"),
            ("MODTRACE_DEVICE_IDS", WATCHDOG_IDS),
        ],
    )?;
    let udev = UDEV_COMMS.contains(&field(e, "MODTRACE_COMM"));
    if !udev || !field(e, "MODTRACE_MODALIAS").starts_with(WATCHDOG_MODALIAS) {
        return Err(format!("the refusal is not udev's or names another modalias: {e}"));
    }
    Ok(())
}

/// `trace --json` in the locked boot: udev's finit_module failed with EPERM,
/// and the record names the module (not linked) and the device.
fn traced_names_device(f: &Facts) -> Result<(), String> {
    locked(f)?;
    let r = f.b2()?;
    let devpath = devpath(r)?;
    let records = r.trace()?;
    let refused: Vec<&Value> = records
        .iter()
        .filter(|r| {
            text(r, "/kind") == "load"
                && text(r, "/error") == "EPERM"
                && text(r, "/syscall") == "finit_module"
                && UDEV_COMMS.contains(&text(r, "/process/comm"))
        })
        .collect();
    if refused.is_empty() {
        return Err(format!("no finit_module by udev failed with EPERM; {}", loads_summary(&records)));
    }
    first_ok(refused.iter().map(|rec| record_names_device(rec, &devpath)))
}

fn record_names_device(rec: &Value, devpath: &str) -> Result<(), String> {
    let want = [
        ("/module", WATCHDOG_MODULE),
        ("/process/unit", UDEV_UNIT),
        ("/cause/kind", "udev"),
        ("/cause/device/devpath", devpath),
        ("/cause/device/subsystem", "pci"),
        ("/cause/device/ids", WATCHDOG_IDS),
    ];
    if let Some((pointer, value)) = want.iter().find(|(p, v)| text(rec, p) != *v) {
        return Err(format!("the refused udev load has {pointer}={:?}, expected {value:?}: {rec}", text(rec, pointer)));
    }
    let modalias_ok = text(rec, "/cause/device/modalias").starts_with(WATCHDOG_MODALIAS);
    if !modalias_ok || rec.pointer("/linked") != Some(&Value::Bool(false)) {
        return Err(format!("the refused udev load names another modalias or says it was linked: {rec}"));
    }
    Ok(())
}
