//! etc/systemd/system/modtrace-lock.service: a oneshot that loads the top-level
//! modules of the profile (modprobe -a) and then sets kernel.modules_disabled=1,
//! at the lock point asked for. Every choice is explained in the unit's comments.
//! The modules are the running kernel's list, etc/modtrace/lock/KVER.conf (one
//! per kernel generated for): after an upgrade the previous kernel, still in the
//! boot menu, stays locked with its own list.

use super::header::{self, comment_lines, Context};
use super::modules_load::unresolved_section;
use crate::needs::Plan;
use crate::validate::{check_module, check_release};
use super::LockPoint;

/// Keys modtrace reads back (systemd ignores keys starting with X-).
pub const KEY_LOCK_POINT: &str = "X-Modtrace-LockPoint";
/// The per-kernel lists, and their two variables.
pub const LISTS: &str = "etc/modtrace/lock";
const NEEDED: &str = "MODTRACE_NEEDED";
const DEVICES: &str = "MODTRACE_DEVICES";

/// Where the list for kernel `release` goes, relative to the root.
pub fn list_path(release: &str) -> String {
    format!("{LISTS}/{release}.conf")
}
/// The kernel command-line word that skips the lock for one boot.
pub const NOLOCK: &str = "modtrace.nolock";
pub const MODPROBE: &str = "/sbin/modprobe";

fn ordering(point: LockPoint) -> (&'static str, &'static str, &'static str) {
    match point {
        LockPoint::Early => (
            "early: as Kicksecure's harden-module-loading.service, right after\n\
             systemd-modules-load.service and before sysinit.target, so before nearly every\n\
             service and before udev has handled the coldplug events. Safest against\n\
             anything that starts later; riskiest for the boot: udev only queues device\n\
             events (systemd-udev-trigger), so a driver for hardware not seen while learning,\n\
             or any module not listed below, can no longer load. Measured in a Debian guest:\n\
             locking at sysinit without loading a list first left 35 of 56 boot modules\n\
             unloaded while the boot still looked healthy; here the list is loaded first.",
            "# No default dependencies: it must run before sysinit.target, which the defaults\n\
             # would order it after; shutdown.target is then declared by hand.\n\
             DefaultDependencies=no\n\
             After=systemd-modules-load.service\n\
             Before=sysinit.target shutdown.target\n\
             Conflicts=shutdown.target\n",
            "sysinit.target",
        ),
        LockPoint::AfterUdev => (
            "after-udev (the default): after udev has handled every coldplug event\n\
             (systemd-udev-trigger.service queues them, `udevadm settle` below waits for\n\
             them), so the drivers of the hardware present at boot are loaded; before\n\
             multi-user.target and before anyone can log in (systemd-user-sessions.service\n\
             opens logins; getty.target and display-manager.service offer them). Measured in a\n\
             Debian guest: locking after udev settle kept all 56 boot modules. Services that\n\
             start at the same time get their modules from the list below, and from\n\
             modprobe@NAME.service through modtrace's drop-ins.",
            "# Default dependencies: after sysinit.target and basic.target.\n\
             After=systemd-udev-trigger.service systemd-modules-load.service\n\
             Before=multi-user.target systemd-user-sessions.service display-manager.service getty.target\n",
            "multi-user.target",
        ),
        LockPoint::Late => (
            "late: after multi-user.target, as NixOS's lockKernelModules does: every service\n\
             of the boot has loaded what it loads. But logins (getty, ssh, a display manager)\n\
             may already be possible before the lock, and anything started until then can\n\
             still load modules.",
            "# Default dependencies: after sysinit.target and basic.target.\n\
             After=multi-user.target systemd-udev-trigger.service systemd-modules-load.service\n",
            "multi-user.target",
        ),
    }
}

pub fn render(plan: &Plan, ctx: &Context, point: LockPoint) -> String {
    assert!(check_release(&plan.release).is_ok(), "unvalidated kernel release {:?}", plan.release);
    let (why, order, wanted_by) = ordering(point);
    let mut out = header::render(
        ctx,
        "Loads the modules this machine needs (the top-level modules of the profile;\n\
         modprobe loads their dependencies), then sets kernel.modules_disabled=1: from then\n\
         until the next reboot no module can be loaded or removed, and the setting cannot\n\
         be turned back. Not enabled by generation: systemctl enable modtrace-lock.service",
        "systemctl disable modtrace-lock.service; delete this file; systemctl daemon-reload.\n\
         A lock already set lasts until reboot. To boot once without it, add modtrace.nolock\n\
         to the kernel command line.",
    );
    out.push_str("#\n");
    out.push_str(&comment_lines(&format!("Lock point: {why}\n(modtrace generate --lock-point early|after-udev|late)")));
    out.push_str(&unit_section(point));
    out.push_str(order);
    out.push_str(&service_section(point));
    out.push_str(&format!("\n[Install]\nWantedBy={wanted_by}\n"));
    out
}

/// etc/modtrace/lock/KVER.conf: what the unit loads on kernel KVER, as the
/// two variables its EnvironmentFile= sets.
pub fn render_list(plan: &Plan, ctx: &Context) -> String {
    assert!(check_release(&plan.release).is_ok(), "unvalidated kernel release {:?}", plan.release);
    let mut out = header::render(
        ctx,
        &format!(
            "What modtrace-lock.service loads before it locks, on kernel {} only (the reasons\n\
             are in /{}). {NEEDED}: the needed top-level modules (modprobe\n\
             loads their dependencies); one that fails to load stops the lock. {DEVICES}: the\n\
             drivers only udev loaded, each for a device; their failure is logged and does\n\
             not stop it (udev loads the same module for the same device).",
            plan.release,
            super::MODULES_LOAD
        ),
        "delete this file: this kernel then boots unlocked.",
    );
    for w in &plan.warnings {
        out.push_str(&comment_lines(&format!("WARNING: {}", crate::escape::text(w))));
    }
    out.push_str(&unresolved_section(plan));
    for m in &plan.top_level {
        assert!(check_module(m).is_ok(), "unvalidated module name {m:?}");
    }
    let (devices, needed): (Vec<&String>, Vec<&String>) = plan.top_level.iter().partition(|m| plan.device_only(m));
    out.push_str(&format!("{NEEDED}=\"{}\"\n{DEVICES}=\"{}\"\n", join(&needed), join(&devices)));
    out
}

/// [Unit]: only on a kernel with a list, and not with modtrace.nolock.
fn unit_section(point: LockPoint) -> String {
    format!(
        "\n[Unit]\n\
         Description=Lock kernel module loading (modtrace: load the needed modules, then kernel.modules_disabled=1)\n\
         # Only on a kernel with a list (%v: the running kernel's release): one the kernel\n\
         # postinst hook made no list for (check --kernel found the lock would fail there)\n\
         # boots unlocked rather than locked with a list that may not fit it.\n\
         ConditionPathExists=/{LISTS}/%v.conf\n\
         # One boot without the lock: add {NOLOCK} to the kernel command line.\n\
         ConditionKernelCommandLine=!{NOLOCK}\n\
         # A kernel without loadable module support has nothing to lock.\n\
         ConditionPathExists=/proc/sys/kernel/modules_disabled\n\
         # Read by modtrace check and the kernel postinst hook; systemd ignores X- keys.\n\
         {KEY_LOCK_POINT}={point}\n",
        point = point.as_str()
    )
}

/// [Service]: settle udev (unless early), load the running kernel's list (a
/// device's driver that cannot load does not stop the lock), lock.
fn service_section(point: LockPoint) -> String {
    let mut out = String::from(
        "\n[Service]\nType=oneshot\n# Stays active after locking, so systemctl status shows the lock.\nRemainAfterExit=yes\n",
    );
    if point != LockPoint::Early {
        out.push_str(
            "# Wait until udev has handled every queued device event, so the drivers it loads\n\
             # for present hardware are in before the lock. If it times out (120 s) the unit\n\
             # fails and does not lock.\n\
             ExecStartPre=/bin/udevadm settle\n",
        );
    }
    out.push_str(&format!(
        "EnvironmentFile=/{LISTS}/%v.conf\n\
         # Load every needed top-level module of this kernel's list. If one fails to load,\n\
         # the unit fails here and the lines after do not run: the machine stays unlocked\n\
         # rather than locked without a module it needs (systemctl status modtrace-lock.service).\n\
         # ($$ is a $ for the shell; an empty list loads nothing.)\n\
         ExecStart=/bin/sh -c 'test -z \"$${NEEDED}\" || exec {MODPROBE} -a -- $${NEEDED}'\n\
         # The drivers udev loaded for a device: a failure (\"No such device\": that device\n\
         # is not on this machine, or another driver has it) is logged and does not stop\n\
         # the lock: udev loads the same module for the same device, so it would not load\n\
         # in an unlocked boot either.\n\
         ExecStart=-/bin/sh -c 'test -z \"$${DEVICES}\" || exec {MODPROBE} -a -- $${DEVICES}'\n"
    ));
    out.push_str(
        "# The lock itself. Written directly, so that procps (sysctl) is not needed.\n\
         ExecStart=/bin/sh -c 'echo 1 > /proc/sys/kernel/modules_disabled'\n",
    );
    out
}

fn join(modules: &[&String]) -> String {
    modules.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(" ")
}

/// What an installed modtrace-lock.service says: its lock point, and (from
/// the running kernel's list, when there is one) that kernel and the modules
/// it loads. None when the unit is not modtrace's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub lock_point: Option<LockPoint>,
    pub kernel: Option<String>,
    pub modules: Vec<String>,
}

/// The unit's text, and the list for `release` as (release, text) if any.
pub fn parse_installed(unit: &str, list: Option<(&str, &str)>) -> Option<Installed> {
    if !unit.starts_with(super::MARK) {
        return None;
    }
    let mut found = Installed { lock_point: None, kernel: None, modules: Vec::new() };
    for line in unit.lines() {
        if let Some(v) = line.trim().strip_prefix(&format!("{KEY_LOCK_POINT}=")) {
            found.lock_point = LockPoint::parse(v.trim());
        }
    }
    if let Some((release, text)) = list.filter(|(_, text)| text.starts_with(super::MARK)) {
        found.kernel = Some(release.to_string());
        for line in text.lines() {
            let value = line.strip_prefix(&format!("{NEEDED}=")).or_else(|| line.strip_prefix(&format!("{DEVICES}=")));
            let words = value.map(|v| v.trim().trim_matches('"')).unwrap_or_default();
            found.modules.extend(words.split_whitespace().map(crate::trace::modindex::normalize));
        }
    }
    Some(found)
}
