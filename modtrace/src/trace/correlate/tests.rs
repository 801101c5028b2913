//! The join on recorded event sequences.
use super::*;
use crate::trace::event::{Device, Parent};
use crate::trace::modindex::StaticIndex;

const SEC: u64 = 1_000_000_000;
const EXAMPLE_CG: u64 = 500;
const SHELL_CG: u64 = 600;

/// Units by cgroup id, command lines by tgid; everything else unknown.
#[derive(Default)]
struct Fake {
    cmdlines: HashMap<u32, Vec<String>>,
}

impl Describe for Fake {
    fn process(&mut self, t: &Task) -> Process {
        let (cgroup, unit) = match t.cgroup_id {
            EXAMPLE_CG => (Some("/system.slice/example.service"), Some("example.service")),
            SHELL_CG => (Some("/user.slice/user-1000.slice/session-2.scope"), Some("session-2.scope")),
            _ => (None, None),
        };
        Process {
            cmdline: self.cmdlines.get(&t.tgid).cloned(),
            cgroup: cgroup.map(String::from),
            unit: unit.map(String::from),
            scope: crate::trace::scope::Scope::of(cgroup),
            ..Process::from_task(t)
        }
    }

    fn parent(&mut self, t: &Task) -> Option<Parent> {
        Some(Parent { pid: t.ppid?, comm: t.parent_comm.clone(), exe: None, unit: Some("session-2.scope".into()) })
    }

    fn wall_time(&mut self, ts_ns: u64) -> String {
        format!("t{ts_ns}")
    }
}

fn index() -> StaticIndex {
    StaticIndex::default()
        .alias("net-pf-5", "appletalk")
        .module("appletalk", &["psnap", "llc"])
        .module("psnap", &["llc"])
        .module("llc", &[])
        .alias("fs-binfmt_misc", "binfmt_misc")
        .module("vfat", &["fat"])
        .module("fat", &[])
        .module("snd_hda_intel", &[])
}

/// A task as a kernel with BTF reports it: its parent is a kernel thread when
/// the parent's name says so.
fn task(pid: u32, comm: &str, ppid: u32, parent_comm: &str, cgroup_id: u64) -> Task {
    let kthread = parent_comm.starts_with("kworker") || parent_comm == "kthreadd";
    Task {
        pid,
        tgid: pid,
        ppid: Some(ppid),
        cgroup_id,
        comm: comm.into(),
        parent_comm: Some(parent_comm.into()),
        start_time_ns: Some(u64::from(pid) * 1000),
        is_kthread: Some(false),
        parent_is_kthread: Some(kthread),
        ..Task::default()
    }
}

fn app(pid: u32) -> Task {
    Task { uid: 1000, ..task(pid, "python3", 1, "systemd", EXAMPLE_CG) }
}

/// The kernel's helper for net-pf-5, the alias most tests request.
fn helper(pid: u32) -> Task {
    helper_for(pid, "net-pf-5")
}

fn helper_for(pid: u32, alias: &str) -> Task {
    Task { args: Some(argv(&["/sbin/modprobe", "-q", "--", alias])), ..task(pid, "modprobe", 77, "kworker/u4:1", 1) }
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

fn request(ts: u64, t: Task, alias: &str) -> Event {
    Event {
        ts_ns: ts,
        task: t,
        body: Body::Request {
            alias: alias.into(),
            wait: true,
            call_site: 0xffff_ffff_8123_0000,
            call_site_name: "__sock_create+0x1a0/0x2e0".into(),
            repeats: 0,
        },
    }
}

fn loaded(ts: u64, t: Task, module: &str) -> Event {
    Event { ts_ns: ts, task: t, body: Body::Loaded { module: module.into(), taints: 0 } }
}

fn load(ts: u64, t: Task, ret: i64) -> Event {
    Event {
        ts_ns: ts,
        task: t,
        body: Body::Load {
            syscall: Syscall::FinitModule,
            fd: Some(3),
            flags: 0,
            image_len: 0,
            params: String::new(),
            ret,
            repeats: 0,
        },
    }
}

fn run(c: &mut Correlator<StaticIndex>, d: &mut Fake, events: &[Event]) -> Vec<Record> {
    events.iter().map(|e| c.handle(e.clone(), d)).collect()
}

/// The cause of a `loaded` or `load` record.
fn cause(r: &Record) -> &Cause {
    match &r.what {
        What::Loaded { cause, .. } => cause,
        What::Load { cause: Some(cause), .. } => cause,
        other => panic!("no cause in {other:?}"),
    }
}

/// (alias, requester pid, target, needed_by) of a request cause.
fn by_request(r: &Record) -> (&str, u32, Option<&str>, Vec<&str>) {
    match cause(r) {
        Cause::Request { alias, requester, module, needed_by, .. } => {
            (alias.as_str(), requester.pid, module.as_deref(), needed_by.iter().map(String::as_str).collect())
        }
        other => panic!("not a request: {other:?}"),
    }
}

fn appletalk_autoload(t0: u64, requester: Task, h: u32) -> Vec<Event> {
    vec![
        request(t0, requester, "net-pf-5"),
        loaded(t0 + 10, helper(h), "llc"),
        load(t0 + 11, helper(h), 0),
        loaded(t0 + 20, helper(h), "psnap"),
        load(t0 + 21, helper(h), 0),
        loaded(t0 + 30, helper(h), "appletalk"),
        load(t0 + 31, helper(h), 0),
    ]
}

#[test]
fn appletalk_autoload_is_caused_by_the_requester() {
    let mut c = Correlator::new(index());
    let mut d = Fake::default();
    let recs = run(&mut c, &mut d, &appletalk_autoload(SEC, app(100), 900));

    match &recs[0].what {
        What::Request { alias, call_site, resolves_to, .. } => {
            assert_eq!(alias, "net-pf-5");
            assert_eq!(call_site, "__sock_create+0x1a0");
            assert_eq!(resolves_to, &["appletalk"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(recs[0].process.unit.as_deref(), Some("example.service"));
    assert_eq!(recs[0].time, format!("t{SEC}"));

    assert_eq!(by_request(&recs[1]), ("net-pf-5", 100, Some("appletalk"), vec!["psnap", "appletalk"]));
    assert_eq!(by_request(&recs[3]), ("net-pf-5", 100, Some("appletalk"), vec!["appletalk"]));
    assert_eq!(by_request(&recs[5]), ("net-pf-5", 100, Some("appletalk"), vec![]));
    for r in &recs[1..] {
        let Cause::Request { requester, also_requested_by, .. } = cause(r) else { panic!() };
        assert_eq!(requester.unit.as_deref(), Some("example.service"));
        assert!(also_requested_by.is_empty());
    }
    // Each result carries the module its call loaded.
    let modules: Vec<_> = [&recs[2], &recs[4], &recs[6]]
        .iter()
        .map(|r| match &r.what {
            What::Load { module, error, .. } => {
                assert_eq!(error, &None);
                module.clone().unwrap()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(modules, ["llc", "psnap", "appletalk"]);
    assert_eq!(c.pending(), 0);
    assert!(c.bound.is_empty() && c.requests.is_empty());
}

#[test]
fn binfmt_misc_request_from_pid1() {
    let mut c = Correlator::new(index());
    let mut d = Fake::default();
    let pid1 = task(1, "systemd", 0, "swapper/0", 2);
    let nowait_helper = Task { parent_comm: Some("kthreadd".into()), ppid: Some(2), ..helper_for(300, "fs-binfmt_misc") };
    let recs = run(
        &mut c,
        &mut d,
        &[
            request(SEC, pid1, "fs-binfmt_misc"),
            loaded(SEC + 5, nowait_helper.clone(), "binfmt_misc"),
            load(SEC + 6, nowait_helper, 0),
        ],
    );
    assert_eq!(by_request(&recs[1]), ("fs-binfmt_misc", 1, Some("binfmt_misc"), vec![]));
    assert_eq!(by_request(&recs[2]), ("fs-binfmt_misc", 1, Some("binfmt_misc"), vec![]));
}

#[test]
fn explicit_modprobe_vfat_from_a_shell() {
    let mut c = Correlator::new(index());
    let mut d = Fake::default();
    d.cmdlines.insert(400, vec!["modprobe".into(), "-v".into(), "vfat".into()]);
    let mp = task(400, "modprobe", 350, "bash", SHELL_CG);
    let recs = run(
        &mut c,
        &mut d,
        &[
            loaded(SEC, mp.clone(), "fat"),
            load(SEC + 1, mp.clone(), 0),
            loaded(SEC + 2, mp.clone(), "vfat"),
            load(SEC + 3, mp, 0),
        ],
    );
    for (rec, needed) in
        [(&recs[0], vec!["vfat"]), (&recs[1], vec!["vfat"]), (&recs[2], vec![]), (&recs[3], vec![])]
    {
        match cause(rec) {
            Cause::Explicit { loader, invoked_by, needed_by } => {
                assert_eq!(loader.pid, 400);
                assert_eq!(loader.unit.as_deref(), Some("session-2.scope"));
                let parent = invoked_by.as_ref().unwrap();
                assert_eq!((parent.pid, parent.comm.as_deref()), (350, Some("bash")));
                assert_eq!(needed_by, &needed);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn udev_loads_are_udev() {
    let mut c = Correlator::new(index());
    let mut d = Fake::default();
    let worker = task(500, "(udev-worker)", 450, "systemd-udevd", 3);
    let recs = run(&mut c, &mut d, &[loaded(SEC, worker.clone(), "snd_hda_intel"), load(SEC + 1, worker, 0)]);
    for r in &recs {
        assert!(matches!(cause(r), Cause::Udev { loader, .. } if loader.pid == 500), "{r:?}");
    }
    let udevd = task(450, "systemd-udevd", 1, "systemd", 3);
    assert!(matches!(cause(&c.handle(loaded(SEC + 2, udevd, "fat"), &mut d)), Cause::Udev { .. }));
}

fn uevent(action: &str, devpath: &str, modalias: &str) -> Uevent {
    Uevent {
        action: action.into(),
        devpath: devpath.into(),
        subsystem: Some("pci".into()),
        modalias: Some(modalias.into()),
    }
}

fn udev_device(rec: &Record) -> Option<&Device> {
    match cause(rec) {
        Cause::Udev { device, .. } => device.as_ref(),
        other => panic!("not udev: {other:?}"),
    }
}

#[test]
fn a_udev_load_names_the_device_whose_modalias_needs_the_module() {
    let idx = index().alias("pci:v00008086d00002668*", "snd_hda_intel").module("snd_hda_intel", &["snd_hda_codec"]);
    let mut c = Correlator::new(idx);
    let mut d = Fake::default();
    c.device_event(SEC, uevent("add", "/devices/pci0000:00/0000:00:1b.0", "pci:v00008086d00002668*"));
    c.device_event(SEC, uevent("add", "/devices/pci0000:00/0000:00:02.0", "pci:v00001234d00001111*"));
    c.device_event(SEC, uevent("remove", "/devices/pci0000:00/0000:00:05.0", "pci:v00008086d00002668*"));
    let worker = task(500, "(udev-worker)", 450, "systemd-udevd", 3);
    let dep = c.handle(loaded(SEC + 1, worker.clone(), "snd_hda_codec"), &mut d);
    let top = c.handle(loaded(SEC + 2, worker.clone(), "snd_hda_intel"), &mut d);
    for rec in [&dep, &top] {
        let dev = udev_device(rec).expect("device known");
        assert_eq!(dev.devpath, "/devices/pci0000:00/0000:00:1b.0");
    }
    // A module no recent device needs gets no device, and old uevents expire.
    assert_eq!(udev_device(&c.handle(loaded(SEC + 3, worker.clone(), "fat"), &mut d)), None);
    let late = c.handle(loaded(SEC + DEVICE_TTL_NS + 10, worker, "snd_hda_intel"), &mut d);
    assert_eq!(udev_device(&late), None);
}

#[test]
fn two_different_devices_needing_the_module_name_none() {
    let idx = index().alias("usb:v1*", "usbhid").alias("usb:v2*", "usbhid");
    let mut c = Correlator::new(idx);
    let mut d = Fake::default();
    c.device_event(SEC, uevent("add", "/devices/usb1/1-1", "usb:v1*"));
    c.device_event(SEC, uevent("add", "/devices/usb1/1-2", "usb:v2*"));
    let worker = task(500, "(udev-worker)", 450, "systemd-udevd", 3);
    assert_eq!(udev_device(&c.handle(loaded(SEC + 1, worker, "usbhid"), &mut d)), None);
}

/// (module, linked, device path) of a failed load record by udev.
fn refused_udev(rec: &Record) -> (Option<&str>, Option<bool>, Option<&str>) {
    match &rec.what {
        What::Load { module, linked, cause: Some(Cause::Udev { device, .. }), .. } => {
            (module.as_deref(), *linked, device.as_ref().map(|d| d.devpath.as_str()))
        }
        other => panic!("not a udev load: {other:?}"),
    }
}

const SERIAL: &str = "usb:v067Bp2303d0300dc00dsc00dp00icFFisc00ip00in00";

#[test]
fn a_refused_udev_load_names_the_device_and_the_module_udev_loads_next() {
    let idx = index().alias(SERIAL, "pl2303").module("pl2303", &["usbserial"]).module("usbserial", &[]);
    let mut c = Correlator::new(idx);
    let mut d = Fake::default();
    c.device_event(SEC, uevent("add", "/devices/pci0000:00/0000:00:1d.0/usb2/2-1/2-1:1.0", SERIAL));
    // A device whose driver is in the kernel waits for nothing.
    c.seed_present(["snd_hda_intel".to_string()], 0);
    c.device_event(SEC, uevent("add", "/devices/pci0000:00/0000:00:1b.0", "snd_hda_intel"));
    let worker = task(500, "(udev-worker)", 450, "systemd-udevd", 3);
    let rec = c.handle(load(SEC + 1, worker.clone(), -1), &mut d);
    // usbserial first: pl2303 needs it, and kmod loads dependencies first.
    let serial = "/devices/pci0000:00/0000:00:1d.0/usb2/2-1/2-1:1.0";
    assert_eq!(refused_udev(&rec), (Some("usbserial"), Some(false), Some(serial)));
    let Cause::Udev { device: Some(dev), .. } = cause(&rec) else { panic!() };
    assert_eq!((dev.modalias.as_str(), dev.ids.as_deref()), (SERIAL, Some("067b:2303")));
    assert!(crate::trace::output::human(&rec).contains("failed EPERM loading usbserial by (udev-worker)[500]"));
    // With usbserial in, pl2303 is next.
    c.handle(loaded(SEC + 2, task(600, "modprobe", 1, "bash", SHELL_CG), "usbserial"), &mut d);
    assert_eq!(refused_udev(&c.handle(load(SEC + 3, worker, -1), &mut d)).0, Some("pl2303"));
}

#[test]
fn a_refused_udev_load_names_no_device_when_two_or_none_wait() {
    let idx = index().alias(SERIAL, "pl2303").alias("pci:v00008086d000025AB", "i6300esb");
    let mut c = Correlator::new(idx);
    let mut d = Fake::default();
    let worker = task(500, "(udev-worker)", 450, "systemd-udevd", 3);
    assert_eq!(refused_udev(&c.handle(load(SEC, worker.clone(), -1), &mut d)), (None, None, None), "no device seen");
    c.device_event(SEC, uevent("add", "/devices/usb2/2-1/2-1:1.0", SERIAL));
    c.device_event(SEC, uevent("add", "/devices/pci0000:00/0000:00:04.0", "pci:v00008086d000025AB"));
    assert_eq!(refused_udev(&c.handle(load(SEC + 1, worker.clone(), -1), &mut d)), (None, None, None), "two wait");
    // Expired uevents are no evidence either.
    let late = c.handle(load(SEC + DEVICE_TTL_NS + 10, worker, -1), &mut d);
    assert_eq!(refused_udev(&late), (None, None, None));
}

#[test]
fn helper_load_without_a_request_is_unknown() {
    let mut c = Correlator::new(index());
    let mut d = Fake::default();
    let recs = run(&mut c, &mut d, &[loaded(SEC, helper(900), "appletalk"), load(SEC + 1, helper(900), 0)]);
    for r in &recs {
        let Cause::Unknown { reason } = cause(r) else { panic!("{r:?}") };
        assert!(reason.contains("events were lost") && reason.contains("before tracing began"), "{reason}");
    }
    let Cause::Unknown { reason } = cause(&recs[0]) else { panic!() };
    assert!(reason.contains("appletalk"), "{reason}");
}

#[test]
fn two_requesters_of_one_alias_earliest_wins_other_is_listed() {
    let mut c = Correlator::new(index());
    let mut d = Fake::default();
    let other = Task { pid: 200, tgid: 200, ..app(200) };
    let mut events = vec![request(SEC, app(100), "net-pf-5"), request(SEC + 1, other, "net-pf-5")];
    events.extend(appletalk_autoload(SEC + 2, app(100), 900).into_iter().skip(1));
    let recs = run(&mut c, &mut d, &events);
    for r in &recs[2..] {
        let Cause::Request { requester, also_requested_by, .. } = cause(r) else { panic!("{r:?}") };
        assert_eq!(requester.pid, 100);
        assert_eq!(also_requested_by.iter().map(|p| p.pid).collect::<Vec<_>>(), [200]);
    }
    // appletalk arrived: the second request is satisfied too, nothing waits.
    assert_eq!(c.pending(), 0);
}

#[test]
fn a_helper_whose_command_line_names_the_alias_joins_that_request() {
    let mut c = Correlator::new(index().alias("net-pf-4", "ipx").module("ipx", &["psnap", "llc"]));
    let mut d = Fake::default();
    let recs = run(
        &mut c,
        &mut d,
        &[
            request(SEC, app(100), "net-pf-5"),
            request(SEC + 1, app(101), "net-pf-4"),
            loaded(SEC + 2, helper_for(900, "net-pf-4"), "llc"),
        ],
    );
    assert_eq!(by_request(&recs[2]), ("net-pf-4", 101, Some("ipx"), vec!["psnap", "ipx"]));
}

#[test]
fn a_helper_for_an_alias_never_requested_is_unknown_even_if_another_request_fits() {
    let mut c = Correlator::new(index());
    let mut d = Fake::default();
    let recs =
        run(&mut c, &mut d, &[request(SEC, app(100), "net-pf-5"), loaded(SEC + 1, helper_for(900, "net-pf-4"), "llc")]);
    let Cause::Unknown { reason } = cause(&recs[1]) else { panic!("{:?}", recs[1]) };
    assert!(reason.contains("net-pf-4"), "{reason}");
    assert_eq!(c.pending(), 1);
}

#[test]
fn a_reused_tgid_that_is_no_helper_inherits_no_binding() {
    let mut c = Correlator::new(index());
    let mut d = Fake::default();
    let reused = task(900, "modprobe", 350, "bash", SHELL_CG);
    let recs = run(
        &mut c,
        &mut d,
        &[
            request(SEC, app(100), "net-pf-5"),
            loaded(SEC + 1, helper(900), "llc"),
            loaded(SEC + 2, reused, "psnap"),
        ],
    );
    assert_eq!(by_request(&recs[1]).1, 100);
    assert!(matches!(cause(&recs[2]), Cause::Explicit { .. }), "{:?}", recs[2]);
}

#[test]
fn an_expired_request_does_not_match() {
    let mut c = Correlator::new(index());
    let mut d = Fake::default();
    let recs = run(
        &mut c,
        &mut d,
        &[request(SEC, app(100), "net-pf-5"), loaded(SEC + REQUEST_TTL_NS + 1, helper(900), "llc")],
    );
    assert!(matches!(cause(&recs[1]), Cause::Unknown { .. }));
    assert_eq!(c.pending(), 0);
}

#[test]
fn a_request_that_resolves_to_nothing_keeps_nothing_pending() {
    let mut c = Correlator::new(index());
    let mut d = Fake::default();
    let rec = c.handle(request(SEC, app(100), "net-pf-38"), &mut d);
    assert!(matches!(&rec.what, What::Request { resolves_to, .. } if resolves_to.is_empty()));
    assert_eq!(c.pending(), 0);
}

#[test]
fn repeated_request_counts_once() {
    let mut c = Correlator::new(index());
    let mut d = Fake::default();
    let mut ev = request(SEC, app(100), "net-pf-5");
    if let Body::Request { repeats, .. } = &mut ev.body {
        *repeats = 4;
    }
    let rec = c.handle(ev, &mut d);
    assert!(matches!(rec.what, What::Request { repeats: 4, .. }));
    assert_eq!(c.pending(), 1);
}

/// A root process in a host system unit.
fn root_app(pid: u32) -> Task {
    Task { uid: 0, euid: Some(0), ..task(pid, "python3", 1, "systemd", EXAMPLE_CG) }
}

#[test]
fn a_request_flood_is_bounded_and_the_newest_request_still_joins() {
    let mut c = Correlator::new(index());
    let mut d = Fake::default();
    for i in 0..(MAX_PENDING as u32 + 10) {
        c.handle(request(SEC + u64::from(i), root_app(10_000 + i), "net-pf-5"), &mut d);
    }
    assert_eq!(c.pending(), MAX_PENDING);
    assert_eq!((c.evicted(), c.evicted_untrusted()), (10, 0));
    // The last requester is still waiting; the earliest kept is the 11th.
    let rec = c.handle(loaded(2 * SEC, helper(900), "appletalk"), &mut d);
    let (alias, requester, _, _) = by_request(&rec);
    assert_eq!((alias, requester), ("net-pf-5", 10_010));
}

#[test]
fn failed_finit_module_with_eperm() {
    let mut c = Correlator::new(index());
    let mut d = Fake::default();
    d.cmdlines.insert(400, vec!["modprobe".into(), "vfat".into()]);
    let rec = c.handle(load(SEC, task(400, "modprobe", 350, "bash", SHELL_CG), -1), &mut d);
    match &rec.what {
        What::Load { ret, error, module, cause: Some(Cause::Explicit { needed_by, .. }), .. } => {
            assert_eq!((*ret, error.as_deref(), module), (-1, Some("EPERM"), &None));
            assert!(needed_by.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failed_helper_load_names_the_module_it_was_loading() {
    let mut c = Correlator::new(index());
    let mut d = Fake::default();
    let recs = run(
        &mut c,
        &mut d,
        &[
            request(SEC, app(100), "net-pf-5"),
            loaded(SEC + 1, helper(900), "llc"),
            load(SEC + 2, helper(900), 0),
            load(SEC + 3, helper(900), -129),
            load(SEC + 4, helper_for(901, "net-pf-4"), -129),
        ],
    );
    // llc is in, so psnap (which needs only llc) was next; appletalk needs psnap.
    match &recs[3].what {
        What::Load { error, module, .. } => {
            assert_eq!((error.as_deref(), module.as_deref()), (Some("EKEYREJECTED"), Some("psnap")))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(by_request(&recs[3]), ("net-pf-5", 100, Some("appletalk"), vec!["appletalk"]));
    // A helper whose alias nobody requested stays unknown.
    assert!(matches!(cause(&recs[4]), Cause::Unknown { .. }), "{:?}", recs[4]);
}

#[test]
fn a_helper_whose_first_call_fails_is_bound_by_its_alias_and_names_no_module_when_two_could_be_next() {
    let idx = index().alias("net-pf-9", "x").module("x", &["a", "b"]).module("a", &[]).module("b", &[]);
    let mut c = Correlator::new(idx);
    let mut d = Fake::default();
    let recs = run(
        &mut c,
        &mut d,
        &[request(SEC, app(100), "net-pf-9"), load(SEC + 1, helper_for(900, "net-pf-9"), -2)],
    );
    match &recs[1].what {
        What::Load { module, .. } => assert_eq!(module, &None),
        other => panic!("{other:?}"),
    }
    assert_eq!(by_request(&recs[1]).0, "net-pf-9");
    assert_eq!(by_request(&recs[1]).1, 100);
}

#[test]
fn load_after_loaded_carries_the_module_and_interleaving_is_kept_apart() {
    let mut c = Correlator::new(index());
    let mut d = Fake::default();
    let a = task(400, "modprobe", 350, "bash", SHELL_CG);
    let b = task(410, "insmod", 350, "bash", SHELL_CG);
    let recs = run(
        &mut c,
        &mut d,
        &[
            loaded(SEC, a.clone(), "fat"),
            loaded(SEC + 1, b.clone(), "llc"),
            load(SEC + 2, a.clone(), 0),
            load(SEC + 3, b.clone(), 0),
            load(SEC + 4, a, 0),
            loaded(SEC + 5, b.clone(), "psnap"),
            load(SEC + 6, b, -19),
        ],
    );
    let module = |r: &Record| match &r.what {
        What::Load { module, error, .. } => (module.clone(), error.clone()),
        other => panic!("{other:?}"),
    };
    assert_eq!(module(&recs[2]), (Some("fat".into()), None));
    assert_eq!(module(&recs[3]), (Some("llc".into()), None));
    assert_eq!(module(&recs[4]), (None, None));
    // Linked, then its init failed (ENODEV): the module is named with the error.
    assert_eq!(module(&recs[6]), (Some("psnap".into()), Some("ENODEV".into())));
}

#[test]
fn interleaved_helpers_of_two_requests_stay_apart() {
    let mut c = Correlator::new(index());
    let mut d = Fake::default();
    let other = Task { cgroup_id: 9, ..app(200) };
    let recs = run(
        &mut c,
        &mut d,
        &[
            request(SEC, app(100), "net-pf-5"),
            request(SEC + 1, other, "fs-binfmt_misc"),
            loaded(SEC + 2, helper_for(901, "fs-binfmt_misc"), "binfmt_misc"),
            loaded(SEC + 3, helper(900), "llc"),
            load(SEC + 4, helper_for(901, "fs-binfmt_misc"), 0),
            load(SEC + 5, helper(900), 0),
            loaded(SEC + 6, helper(900), "psnap"),
        ],
    );
    assert_eq!(by_request(&recs[2]).0, "fs-binfmt_misc");
    assert_eq!(by_request(&recs[3]).0, "net-pf-5");
    assert_eq!(by_request(&recs[4]), ("fs-binfmt_misc", 200, Some("binfmt_misc"), vec![]));
    assert_eq!(by_request(&recs[5]), ("net-pf-5", 100, Some("appletalk"), vec!["psnap", "appletalk"]));
    assert_eq!(by_request(&recs[6]).1, 100);
}

#[test]
fn unloaded_is_plain_and_records_serialize() {
    let mut c = Correlator::new(index());
    let mut d = Fake::default();
    let rec =
        c.handle(Event { ts_ns: SEC, task: helper(5), body: Body::Unloaded { module: "llc".into() } }, &mut d);
    assert_eq!(rec.what, What::Unloaded { module: "llc".into() });
    let json = serde_json::to_value(&rec).unwrap();
    assert_eq!(json["kind"], "unloaded");
    assert_eq!(json["process"]["pid"], 5);
}

#[test]
fn helper_and_udev_detection() {
    let kinds = |t: &Task| helper_kind(t, "modprobe");
    assert_eq!(kinds(&helper(7)), Helper::Yes);
    assert_eq!(kinds(&task(7, "modprobe", 2, "kthreadd", 0)), Helper::Yes);
    assert_eq!(kinds(&task(7, "modprobe", 350, "bash", 0)), Helper::No);
    // The kernel's word counts, not the parent's name.
    let renamed = Task { parent_is_kthread: Some(false), ..task(1, "modprobe", 2, "kworker/0:1", 0) };
    assert_eq!(kinds(&renamed), Helper::No);
    // A kernel thread itself is never the helper.
    assert_eq!(kinds(&Task { is_kthread: Some(true), ..helper(7) }), Helper::No);
    // Nor is PID 1, whose parent is the idle task (a kernel thread).
    assert_eq!(kinds(&Task { parent_is_kthread: Some(true), ..task(1, "systemd", 0, "swapper/0", 0) }), Helper::No);
    // No BTF: the parent is unknown, and only another program's name rules it out.
    let no_btf = |comm: &str| Task { ppid: None, parent_comm: None, parent_is_kthread: None, ..task(7, comm, 0, "", 0) };
    assert_eq!(kinds(&no_btf("modprobe")), Helper::Unknown);
    assert_eq!(kinds(&no_btf("insmod")), Helper::No);
    assert!(is_udev(&task(1, "systemd-udevd", 1, "systemd", 0)));
    assert!(!is_udev(&task(1, "modprobe", 1, "systemd", 0)));
}

// ---- the join's holes, each on a recorded sequence ----

#[test]
fn without_btf_a_modprobe_is_unknown_and_other_loaders_stay_explicit() {
    let mut c = Correlator::new(index());
    let mut d = Fake::default();
    let no_btf = |pid: u32, comm: &str| Task {
        ppid: None,
        parent_comm: None,
        parent_is_kthread: None,
        is_kthread: None,
        start_time_ns: None,
        ..task(pid, comm, 0, "", 1)
    };
    let recs = run(
        &mut c,
        &mut d,
        &[
            request(SEC, app(100), "net-pf-5"),
            loaded(SEC + 1, no_btf(900, "modprobe"), "llc"),
            load(SEC + 2, no_btf(900, "modprobe"), 0),
            loaded(SEC + 3, no_btf(910, "insmod"), "fat"),
        ],
    );
    for r in &recs[1..3] {
        let Cause::Unknown { reason } = cause(r) else { panic!("a guess: {r:?}") };
        assert!(reason.contains("no BTF"), "{reason}");
    }
    assert!(matches!(cause(&recs[3]), Cause::Explicit { loader, .. } if loader.pid == 910), "{:?}", recs[3]);
    // The request was not served by a helper known as one.
    assert_eq!(c.pending(), 1);
}

#[test]
fn a_reused_tgid_with_another_start_time_is_another_process() {
    let mut c = Correlator::new(index());
    let mut d = Fake::default();
    let first = helper(900);
    let reused = Task { start_time_ns: Some(9_999_999), ..helper_for(900, "fs-binfmt_misc") };
    let recs = run(
        &mut c,
        &mut d,
        &[
            request(SEC, app(100), "net-pf-5"),
            request(SEC + 1, Task { pid: 200, tgid: 200, ..app(200) }, "fs-binfmt_misc"),
            loaded(SEC + 2, first, "llc"),
            loaded(SEC + 3, reused, "binfmt_misc"),
        ],
    );
    assert_eq!(by_request(&recs[2]).0, "net-pf-5");
    assert_eq!(by_request(&recs[3]), ("fs-binfmt_misc", 200, Some("binfmt_misc"), vec![]));
}

#[test]
fn a_helpers_alias_must_match_even_when_another_request_needs_the_module() {
    // Both requests need llc; the helper says it serves net-pf-4 (ipx).
    let mut c = Correlator::new(index().alias("net-pf-4", "ipx").module("ipx", &["llc"]));
    let mut d = Fake::default();
    let recs = run(
        &mut c,
        &mut d,
        &[
            request(SEC, app(100), "net-pf-5"),
            request(SEC + 1, Task { pid: 101, tgid: 101, ..app(101) }, "net-pf-4"),
            loaded(SEC + 2, helper_for(900, "net-pf-4"), "llc"),
        ],
    );
    assert_eq!(by_request(&recs[2]), ("net-pf-4", 101, Some("ipx"), vec!["ipx"]));
}

#[test]
fn a_request_already_satisfied_keeps_nothing_pending_for_a_later_helper() {
    let mut c = Correlator::new(index().builtin("binfmt_misc"));
    c.seed_present(["llc", "psnap", "appletalk"].map(String::from), SEC - 1);
    let mut d = Fake::default();
    let first = c.handle(request(SEC, app(100), "net-pf-5"), &mut d);
    assert!(matches!(&first.what, What::Request { resolves_to, .. } if resolves_to == &["appletalk"]));
    let builtin = c.handle(request(SEC, task(1, "systemd", 0, "swapper/0", 2), "fs-binfmt_misc"), &mut d);
    assert!(matches!(&builtin.what, What::Request { resolves_to, .. } if resolves_to == &["binfmt_misc"]));
    assert_eq!(c.pending(), 0);

    // appletalk is removed, then another process asks: the load is its own.
    let rmmod = task(300, "rmmod", 350, "bash", SHELL_CG);
    let later = Task { pid: 200, tgid: 200, ..app(200) };
    let mut events = vec![Event { ts_ns: 2 * SEC, task: rmmod, body: Body::Unloaded { module: "appletalk".into() } }];
    events.push(request(3 * SEC, later, "net-pf-5"));
    events.push(loaded(3 * SEC + 1, helper(900), "appletalk"));
    let recs = run(&mut c, &mut d, &events);
    let Cause::Request { requester, also_requested_by, .. } = cause(&recs[2]) else { panic!("{:?}", recs[2]) };
    assert_eq!(requester.pid, 200);
    assert!(also_requested_by.is_empty(), "{also_requested_by:?}");
    assert_eq!(c.pending(), 0);
}

#[test]
fn a_request_from_before_proc_modules_was_read_still_waits_for_its_helper() {
    // The request came at SEC; /proc/modules, read at SEC + 5, shows appletalk,
    // which that request's helper loaded meanwhile (its events come after).
    let mut c = Correlator::new(index());
    c.seed_present(["llc", "psnap", "appletalk"].map(String::from), SEC + 5);
    let mut d = Fake::default();
    let recs = run(&mut c, &mut d, &appletalk_autoload(SEC, app(100), 900));
    for r in &recs[1..] {
        assert_eq!(by_request(r).1, 100, "{r:?}");
    }
}

#[test]
fn softdeps_belong_to_the_request() {
    let mut c = Correlator::new(index().softdep("appletalk", &["crc_x"], &["post_y"]).module("crc_x", &[]));
    let mut d = Fake::default();
    let recs = run(
        &mut c,
        &mut d,
        &[
            request(SEC, app(100), "net-pf-5"),
            loaded(SEC + 1, helper(900), "crc_x"),
            load(SEC + 2, helper(900), 0),
            loaded(SEC + 3, helper(900), "llc"),
            loaded(SEC + 4, helper(901), "post_y"),
        ],
    );
    assert_eq!(by_request(&recs[1]), ("net-pf-5", 100, Some("appletalk"), vec!["appletalk"]));
    assert_eq!(by_request(&recs[3]).1, 100);
    // A second helper for the same alias, loading the post-softdep.
    assert_eq!(by_request(&recs[4]), ("net-pf-5", 100, Some("appletalk"), vec!["appletalk"]));
}

#[test]
fn a_cut_argv_is_not_read_as_a_shorter_alias() {
    let mut c = Correlator::new(index().alias("net-pf-1", "unix_x").module("unix_x", &["llc"]));
    let mut d = Fake::default();
    // The kernel kept "net-pf-1" of "net-pf-10...": a longer argv than ARGS_LEN.
    let cut = Task {
        args: Some(argv(&["/sbin/modprobe", "-q", "--", "net-pf-1"])),
        args_cut: true,
        ..helper(900)
    };
    let recs = run(&mut c, &mut d, &[request(SEC, app(100), "net-pf-1"), loaded(SEC + 1, cut, "llc")]);
    let Cause::Unknown { reason } = cause(&recs[1]) else { panic!("read short: {:?}", recs[1]) };
    assert!(reason.contains("cut"), "{reason}");
    assert_eq!(c.pending(), 1);
}

#[test]
fn a_users_flood_keeps_to_its_share_and_roots_requests_survive_it() {
    let mut c = Correlator::new(index());
    let mut d = Fake::default();
    let mut ts = SEC;
    for i in 0..10 {
        c.handle(request(ts, root_app(500 + i), "net-pf-5"), &mut d);
        ts += 1;
    }
    let flood = 3 * MAX_PENDING as u32;
    for i in 0..flood {
        c.handle(request(ts, app(10_000 + i), "net-pf-5"), &mut d);
        ts += 1;
    }
    assert_eq!(c.pending(), 10 + MAX_PENDING_UNTRUSTED, "the user's requests keep to their share");
    assert_eq!((c.evicted(), c.evicted_untrusted()), (0, u64::from(flood) - MAX_PENDING_UNTRUSTED as u64));
    // Root's earliest request is still there: the first helper serves it.
    let rec = c.handle(loaded(2 * SEC, helper(900), "appletalk"), &mut d);
    assert_eq!(by_request(&rec).1, 500);
}

#[test]
fn a_full_table_evicts_the_users_oldest_before_any_of_roots() {
    let mut c = Correlator::new(index());
    let mut d = Fake::default();
    let mut ts = SEC;
    for i in 0..MAX_PENDING_UNTRUSTED as u32 {
        c.handle(request(ts, app(10_000 + i), "net-pf-5"), &mut d);
        ts += 1;
    }
    for i in 0..(MAX_PENDING - MAX_PENDING_UNTRUSTED + 5) as u32 {
        c.handle(request(ts, root_app(50_000 + i), "net-pf-5"), &mut d);
        ts += 1;
    }
    assert_eq!(c.pending(), MAX_PENDING);
    assert_eq!((c.evicted(), c.evicted_untrusted()), (0, 5), "the user's five oldest gave way");
    let rec = c.handle(loaded(2 * SEC, helper(900), "appletalk"), &mut d);
    assert_eq!(by_request(&rec).1, 10_005, "the earliest kept is the user's sixth");
}
