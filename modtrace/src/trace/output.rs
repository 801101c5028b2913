//! Rendering records for `modtrace trace`: one human line, or one JSON object.

use crate::trace::event::{Cause, Device, Process, Record, Syscall, What};
use crate::trace::scope::Scope;
use crate::trace::decision::GuardRecord;

pub fn json(rec: &Record) -> String {
    serde_json::to_string(rec).expect("records serialize")
}

/// `HH:MM:SS.mmm kind     what, by whom, because of what`: one line, whatever
/// an alias, a process name or a unit holds (escape::text).
pub fn human(rec: &Record) -> String {
    crate::escape::text(&human_line(rec)).into_owned()
}

fn human_line(rec: &Record) -> String {
    let clock = rec.time.get(11..23).unwrap_or(&rec.time);
    let who = who(&rec.process);
    match &rec.what {
        What::Request { alias, resolves_to, repeats, .. } => {
            let to = if resolves_to.is_empty() { "no module (will fail)".to_string() } else { resolves_to.join(", ") };
            format!("{clock} request  {alias} by {who} -> {to}{}", repeated(*repeats))
        }
        What::Load { syscall, ret, error, module, linked, repeats, cause, .. } => {
            let error = error.as_deref().unwrap_or("?");
            let outcome = match (ret, module) {
                (0, Some(m)) => format!("ok: {m}"),
                (0, None) => "ok".to_string(),
                (_, Some(m)) if *linked == Some(false) => format!("failed {error} loading {m}"),
                (_, Some(m)) => format!("failed {error}: {m}'s init failed, removed again"),
                _ => format!("failed {error}"),
            };
            let why = cause.as_ref().map(|c| format!(" <- {}", cause_text(c))).unwrap_or_default();
            format!("{clock} load     {} {outcome} by {who}{why}{}", syscall_name(*syscall), repeated(*repeats))
        }
        What::Loaded { module, cause, .. } => format!("{clock} loaded   {module} by {who} <- {}", cause_text(cause)),
        What::Unloaded { module } => format!("{clock} unloaded {module} by {who}"),
    }
}

/// A guard decision: `HH:MM:SS.mmm guard    denied request net-pf-38 by x[9] (unit): reason`.
pub fn guard_human(rec: &GuardRecord) -> String {
    crate::escape::text(&guard_line(rec)).into_owned()
}

fn guard_line(rec: &GuardRecord) -> String {
    let clock = rec.time.get(11..23).unwrap_or(&rec.time);
    let verdict = rec.kind.trim_start_matches("guard_").replace('_', " ");
    let what = match (rec.hook, &rec.alias, &rec.module, &rec.file) {
        _ if rec.attempt.is_some() => format!("seal: {}", rec.attempt.as_deref().unwrap_or_default()),
        ("request", Some(alias), _, _) => format!("request {alias}"),
        (hook, _, module, file) => {
            let mut s = hook.to_string();
            if let Some(m) = module {
                s.push_str(&format!(" {m}"));
            }
            if let Some(f) = file {
                s.push_str(&format!(" file {f}"));
            }
            if let (Some(dev), Some(ino)) = (&rec.dev, rec.ino) {
                s.push_str(&format!(" (dev {dev} ino {ino})"));
            }
            if let Some(d) = &rec.device {
                s.push_str(&format!(" for {}", device_text(d)));
            }
            s
        }
    };
    let exe = rec.process.exe.as_deref().map(|e| format!(" {e}")).unwrap_or_default();
    format!(
        "{clock} guard    {verdict} ({}) {what} by {} uid {}{exe}: {}{}",
        rec.mode,
        who(&rec.process),
        rec.process.uid,
        rec.reason,
        repeated(rec.repeats)
    )
}

pub fn guard_json(rec: &GuardRecord) -> String {
    serde_json::to_string(rec).expect("records serialize")
}

/// `DEVPATH (MODALIAS)`, with `ids VENDOR:DEVICE` where the bus has them.
pub fn device_text(d: &Device) -> String {
    match &d.ids {
        Some(ids) => format!("{} ({}, ids {ids})", d.devpath, d.modalias),
        None => format!("{} ({})", d.devpath, d.modalias),
    }
}

fn syscall_name(s: Syscall) -> &'static str {
    match s {
        Syscall::FinitModule => "finit_module",
        Syscall::InitModule => "init_module",
    }
}

fn repeated(n: u32) -> String {
    if n == 0 { String::new() } else { format!(" (+{n} identical, folded)") }
}

/// `comm[tgid] (unit)` for a host system unit; any other unit with its scope,
/// so that a user's or a container's unit never reads as a system unit.
fn who(p: &Process) -> String {
    let mut s = format!("{}[{}]", p.comm, p.tgid);
    if p.uid != 0 {
        s.push_str(&format!(" uid {}", p.uid));
    }
    match (&p.scope, &p.unit) {
        (Scope::System { unit }, _) => s.push_str(&format!(" ({unit})")),
        (Scope::Unknown, Some(unit)) => s.push_str(&format!(" ({unit}, scope unknown)")),
        (Scope::Unknown | Scope::NoUnit, None) => {}
        (scope, _) => s.push_str(&format!(" ({scope})")),
    }
    s
}

fn cause_text(c: &Cause) -> String {
    match c {
        Cause::Request { alias, requester, needed_by, also_requested_by, .. } => {
            let mut s = format!("request {alias} from {}", who(requester));
            if !needed_by.is_empty() {
                s.push_str(&format!(", needed by {}", needed_by.join(", ")));
            }
            if !also_requested_by.is_empty() {
                s.push_str(&format!(", also requested by {}", also_requested_by.iter().map(who).collect::<Vec<_>>().join(", ")));
            }
            s
        }
        Cause::Explicit { loader, invoked_by, needed_by } => {
            let mut s = format!("explicit by {}", who(loader));
            if let Some(parent) = invoked_by {
                let comm = parent.comm.as_deref().unwrap_or("?");
                s.push_str(&format!(", run by {comm}[{}]", parent.pid));
                if let Some(unit) = &parent.unit {
                    s.push_str(&format!(" ({unit})"));
                }
            }
            if !needed_by.is_empty() {
                s.push_str(&format!(", needed by {}", needed_by.join(", ")));
            }
            s
        }
        Cause::Udev { loader, device } => match device {
            Some(d) => format!("udev {} for {}", who(loader), device_text(d)),
            None => format!("udev {} for an unknown device", who(loader)),
        },
        Cause::Unknown { reason } => format!("unknown: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::event::{Device, Parent};

    fn process(comm: &str, tgid: u32, unit: Option<&str>) -> Process {
        let cgroup = unit.map(|u| format!("/system.slice/{u}"));
        Process {
            pid: tgid,
            tgid,
            ppid: Some(1),
            uid: 0,
            euid: None,
            loginuid: None,
            sessionid: None,
            comm: comm.into(),
            parent_comm: Some("sh".into()),
            kernel_thread: Some(false),
            exe: None,
            cmdline: None,
            cgroup_id: 1,
            pid_ns: None,
            mnt_ns: None,
            scope: Scope::of(cgroup.as_deref()),
            cgroup,
            unit: unit.map(String::from),
        }
    }

    #[test]
    fn a_users_or_a_containers_unit_is_shown_with_its_scope() {
        let mut p = process("python3", 100, Some("lightdm.service"));
        p.uid = 1000;
        p.cgroup = Some("/user.slice/user-1000.slice/user@1000.service/app.slice/lightdm.service".into());
        p.scope = Scope::of(p.cgroup.as_deref());
        let what = What::Request {
            alias: "net-pf-5".into(),
            wait: true,
            call_site: "x".into(),
            repeats: 0,
            resolves_to: vec![],
            kthread: None,
        };
        let line = human(&record(what.clone(), p.clone()));
        assert!(line.contains("by python3[100] uid 1000 (user unit lightdm.service of uid 1000) ->"), "{line}");
        p.uid = 0;
        p.scope = Scope::of(Some("/machine.slice/systemd-nspawn@web.service/payload/system.slice/lightdm.service"));
        let line = human(&record(what.clone(), p.clone()));
        assert!(line.contains("(container web (systemd-nspawn), its unit lightdm.service)"), "{line}");
        p.scope = Scope::Unknown;
        assert!(human(&record(what, p.clone())).contains("(lightdm.service, scope unknown)"));
        let v: serde_json::Value = serde_json::from_str(&json(&record(What::Unloaded { module: "x".into() }, p))).unwrap();
        assert_eq!(v["process"]["scope"]["kind"], "unknown");
    }

    fn record(what: What, by: Process) -> Record {
        Record { time: "2026-11-27T21:57:50.080Z".into(), ts_ns: 1, what, process: by, stage: None }
    }

    #[test]
    fn an_autoloaded_dependency_names_requester_unit_alias_and_dependents() {
        let cause = Cause::Request {
            alias: "net-pf-5".into(),
            requester: process("python3", 100, Some("lightdm.service")),
            module: Some("appletalk".into()),
            needed_by: vec!["psnap".into(), "appletalk".into()],
            also_requested_by: vec![], kthread: None,
        };
        let line = human(&record(What::Loaded { module: "llc".into(), taints: 0, cause }, process("modprobe", 7, None)));
        assert_eq!(
            line,
            "21:57:50.080 loaded   llc by modprobe[7] <- request net-pf-5 from python3[100] (lightdm.service), needed by psnap, appletalk"
        );
    }

    #[test]
    fn a_failed_request_says_it_will_fail_and_folded_repeats_show() {
        let what = What::Request {
            alias: "net-pf-38".into(),
            wait: true,
            call_site: "__sock_create+0x1a0".into(),
            repeats: 41,
            resolves_to: vec![],
            kthread: None,
        };
        let line = human(&record(what, process("spam", 9, None)));
        assert_eq!(line, "21:57:50.080 request  net-pf-38 by spam[9] -> no module (will fail) (+41 identical, folded)");
    }

    #[test]
    fn loads_explicit_udev_and_unknown_causes_read_plainly() {
        let loader = process("modprobe", 7, None);
        let explicit = Cause::Explicit {
            loader: loader.clone(),
            invoked_by: Some(Parent { pid: 1, comm: Some("systemd".into()), exe: None, unit: Some("init.scope".into()) }),
            needed_by: vec![],
        };
        let denied = What::Load {
            syscall: Syscall::FinitModule,
            fd: Some(3),
            flags: 0,
            image_len: 0,
            params: String::new(),
            ret: -1,
            error: Some("EPERM".into()),
            repeats: 0,
            module: None,
            linked: None,
            cause: Some(explicit),
        };
        assert_eq!(
            human(&record(denied, loader.clone())),
            "21:57:50.080 load     finit_module failed EPERM by modprobe[7] <- explicit by modprobe[7], run by systemd[1] (init.scope)"
        );
        let device = Device::new("pci:v8086*".into(), "/devices/pci0000:00/0000:00:1b.0".into(), None);
        let udev = Cause::Udev { loader: process("(udev-worker)", 300, Some("systemd-udevd.service")), device: Some(device) };
        let line = human(&record(What::Loaded { module: "snd_hda_intel".into(), taints: 0, cause: udev }, loader.clone()));
        assert!(line.ends_with("<- udev (udev-worker)[300] (systemd-udevd.service) for /devices/pci0000:00/0000:00:1b.0 (pci:v8086*)"), "{line}");
        let unknown = Cause::Unknown { reason: "no request seen".into() };
        let line = human(&record(What::Loaded { module: "x".into(), taints: 0, cause: unknown }, loader));
        assert!(line.ends_with("<- unknown: no request seen"), "{line}");
    }

    #[test]
    fn pci_and_usb_devices_show_their_ids() {
        use crate::trace::event::ids_of;
        assert_eq!(ids_of("pci:v00008086d000025ABsv00001AF4sd00001100bc08sc80i00").as_deref(), Some("8086:25ab"));
        assert_eq!(ids_of("usb:v067Bp2303d0300dc00dsc00dp00icFFisc00ip00in00").as_deref(), Some("067b:2303"));
        for other in ["acpi:PNP0501:", "pci:v0000", "usb:vXYZWp2303", "virtio:d00000001v00001AF4", ""] {
            assert_eq!(ids_of(other), None, "{other}");
        }
        let d = Device::new("usb:v067Bp2303d0300".into(), "/devices/usb2/2-1/2-1:1.0".into(), Some("usb".into()));
        assert_eq!(device_text(&d), "/devices/usb2/2-1/2-1:1.0 (usb:v067Bp2303d0300, ids 067b:2303)");
    }

    #[test]
    fn guard_decisions_read_plainly_and_as_json() {
        let rec = GuardRecord {
            time: "2026-11-27T21:57:50.080Z".into(),
            ts_ns: 1,
            kind: "guard_denied".into(),
            hook: "finit_module",
            mode: "enforce",
            alias: None,
            module: None,
            file: Some("evil.ko".into()),
            dev: Some("0:1".into()),
            ino: Some(77),
            attempt: None,
            device: None,
            reason: "the file is no allowed module's file in the kernel's module tree".into(),
            repeats: 0,
            process: process("insmod", 12, Some("session-2.scope")),
        };
        assert_eq!(
            guard_human(&rec),
            "21:57:50.080 guard    denied (enforce) finit_module file evil.ko (dev 0:1 ino 77) by insmod[12] (session-2.scope) uid 0: the file is no allowed module's file in the kernel's module tree"
        );
        let v: serde_json::Value = serde_json::from_str(&guard_json(&rec)).unwrap();
        assert_eq!((v["kind"].as_str(), v["file"].as_str(), v["process"]["comm"].as_str()), (Some("guard_denied"), Some("evil.ko"), Some("insmod")));
        assert!(v["device"].is_null(), "no device tied: null, never a guess");
        let wdt = "pci:v00008086d000025ABsv00001AF4sd00001100bc08sc80i00";
        let udev = GuardRecord {
            module: Some("i6300esb".into()),
            file: Some("i6300esb.ko".into()),
            device: Some(Device::new(wdt.into(), "/devices/pci0000:00/0000:00:03.0".into(), Some("pci".into()))),
            process: process("(udev-worker)", 300, Some("systemd-udevd.service")),
            ..rec
        };
        let line = guard_human(&udev);
        let want = format!(
            "finit_module i6300esb file i6300esb.ko (dev 0:1 ino 77) for /devices/pci0000:00/0000:00:03.0 ({wdt}, \
             ids 8086:25ab) by (udev-worker)[300]"
        );
        assert!(line.contains(&want), "{line}");
    }

    #[test]
    fn json_is_one_line_with_kind_and_process() {
        let line = json(&record(What::Unloaded { module: "vfat".into() }, process("rmmod", 5, None)));
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["kind"], "unloaded");
        assert_eq!(v["module"], "vfat");
        assert_eq!(v["process"]["comm"], "rmmod");
    }
}
