use super::*;
use crate::trace::event::{Parent, Process};
use crate::needs::units_of;
use crate::profile::testutil::{appletalk_index, in_cgroup, loaded_for_request, process};

/// What a fake system says, and what was asked of it.
#[derive(Default)]
struct Fake {
    triggers: BTreeMap<String, Vec<String>>,
    /// The journal, as it reads after `lag` questions (earlier: empty).
    journal: Vec<AutomountRequest>,
    lag: u32,
    asked_journal: u32,
    procs: BTreeMap<u32, Requester>,
    /// Who waits on the automount when the mount's request is seen.
    waiting: Vec<Requester>,
    wanted: BTreeMap<String, Vec<String>>,
}

impl Systemd for &mut Fake {
    fn triggered_by(&mut self, unit: &str) -> Vec<String> {
        self.triggers.get(unit).cloned().unwrap_or_default()
    }
    fn automount_requests(&mut self, _automount: &str) -> Vec<AutomountRequest> {
        self.asked_journal += 1;
        if self.asked_journal > self.lag {
            self.journal.clone()
        } else {
            Vec::new()
        }
    }
    fn process(&mut self, pid: u32, comm: &str) -> Option<Requester> {
        self.procs.get(&pid).filter(|r| r.comm == comm).cloned()
    }
    fn waiting(&mut self) -> Vec<Requester> {
        self.waiting.clone()
    }
    fn wanted_by(&mut self, unit: &str) -> Vec<String> {
        self.wanted.get(unit).cloned().unwrap_or_default()
    }
    fn pause(&mut self) {}
}

const MOUNT: &str = "proc-sys-fs-binfmt_misc.mount";
const AUTOMOUNT: &str = "proc-sys-fs-binfmt_misc.automount";
const PATH: &str = "/proc/sys/fs/binfmt_misc";

fn binfmt_fake() -> Fake {
    let mut f = Fake::default();
    f.triggers.insert(MOUNT.into(), vec![AUTOMOUNT.into()]);
    f.journal.push(AutomountRequest { monotonic_us: 4_000_000, path: PATH.into(), pid: 233, comm: "systemd-binfmt".into() });
    f.procs.insert(233, requester_in(233, "systemd-binfmt", "/system.slice/systemd-binfmt.service"));
    f
}

fn requester_in(pid: u32, comm: &str, cgroup: &str) -> Requester {
    let scope = Scope::of(Some(cgroup));
    Requester {
        comm: comm.into(),
        exe: None,
        pid: Some(pid),
        uid: Some(0),
        euid: Some(0),
        loginuid: None,
        kernel_thread: Some(false),
        unit: scope.unit().map(str::to_string),
        scope,
        cgroup: Some(cgroup.into()),
        extra: Default::default(),
    }
}

/// mount(8) run by PID 1 in the mount unit, and the binfmt_misc load it caused, at `ts_s`.
fn binfmt_load(ts_s: u64) -> Record {
    let mount = in_cgroup(400, "mount", Some("/usr/bin/mount"), 0, &format!("/system.slice/{MOUNT}"));
    let mut rec = loaded_for_request("2026-12-01T10:00:05Z", "binfmt_misc", "fs-binfmt_misc", "binfmt_misc", mount, &[]);
    rec.ts_ns = ts_s * 1_000_000_000;
    rec
}

fn learned(records: &[Record], fake: &mut Fake) -> Profile {
    let mut p = Profile::new("6.12.0", "host");
    let mut on = OnBehalf::new(fake);
    for r in records {
        on.see(r);
        p.observe(r);
    }
    on.apply(&mut p);
    p.settle(&appletalk_index());
    p
}

fn only_trigger<'a>(p: &'a Profile, module: &str) -> &'a Trigger {
    let m = p.module(module).unwrap();
    assert_eq!(m.triggers.len(), 1, "{:?}", m.triggers);
    &m.triggers[0]
}

#[test]
fn automount_request_goes_to_the_process_that_touched_the_path() {
    let mut fake = binfmt_fake();
    let p = learned(&[binfmt_load(5)], &mut fake);
    let t = only_trigger(&p, "binfmt_misc");
    let r = t.requester.as_ref().unwrap();
    assert_eq!((r.comm.as_str(), r.pid), ("systemd-binfmt", Some(233)));
    assert_eq!(r.scope, Scope::System { unit: "systemd-binfmt.service".into() });
    assert_eq!(t.via.as_deref(), Some(MOUNT));
    // generate puts the drop-in on both: the trigger, and the mount unit it came through.
    let units: Vec<String> = units_of(t).into_iter().map(|(u, _)| u).collect();
    assert_eq!(units, ["systemd-binfmt.service", MOUNT]);
}

#[test]
fn a_lagging_journal_is_asked_again() {
    let mut fake = binfmt_fake();
    fake.lag = 3;
    let p = learned(&[binfmt_load(5)], &mut fake);
    assert_eq!(only_trigger(&p, "binfmt_misc").via.as_deref(), Some(MOUNT));
    assert_eq!(fake.asked_journal, 4);
}

#[test]
fn a_journal_that_never_says_leaves_the_mount_unit() {
    let mut fake = binfmt_fake();
    fake.lag = u32::MAX;
    let mut p = Profile::new("k", "h");
    let mut on = OnBehalf::with_tries(&mut fake, 3);
    let rec = binfmt_load(5);
    on.see(&rec);
    p.observe(&rec);
    on.apply(&mut p);
    let t = only_trigger(&p, "binfmt_misc");
    assert_eq!(t.via, None);
    assert_eq!(t.requester.as_ref().unwrap().unit.as_deref(), Some(MOUNT));
    assert_eq!(fake.asked_journal, 3);
}

#[test]
fn outside_the_window_or_for_another_path_is_no_match() {
    for (ts, path) in [(40, PATH), (5, "/proc/sys/fs/other")] {
        let mut fake = binfmt_fake();
        fake.journal[0].path = path.into();
        let mut on = OnBehalf::with_tries(&mut fake, 1);
        let mut p = Profile::new("k", "h");
        let rec = binfmt_load(ts);
        on.see(&rec);
        p.observe(&rec);
        on.apply(&mut p);
        assert_eq!(only_trigger(&p, "binfmt_misc").via, None, "ts {ts} path {path}");
    }
}

#[test]
fn two_candidates_are_unknown_not_the_first() {
    let mut fake = binfmt_fake();
    let second = AutomountRequest { monotonic_us: 4_500_000, path: PATH.into(), pid: 300, comm: "lightdm".into() };
    fake.journal.push(second);
    let p = learned(&[binfmt_load(5)], &mut fake);
    let t = only_trigger(&p, "binfmt_misc");
    assert_eq!(t.via, None);
    assert_eq!(t.requester.as_ref().unwrap().unit.as_deref(), Some(MOUNT));
    // Waiting would not make two into one: asked once.
    assert_eq!(fake.asked_journal, 1);
}

#[test]
fn a_trigger_gone_from_proc_has_an_unknown_unit() {
    let mut fake = binfmt_fake();
    fake.procs.clear();
    let p = learned(&[binfmt_load(5)], &mut fake);
    let t = only_trigger(&p, "binfmt_misc");
    let r = t.requester.as_ref().unwrap();
    assert_eq!((r.comm.as_str(), r.unit.as_deref(), &r.scope), ("systemd-binfmt", None, &Scope::Unknown));
    assert_eq!(t.via.as_deref(), Some(MOUNT));
    assert!(!crate::needs::trust::of_trigger(t).trusted(), "an unknown unit is reviewed");
}

#[test]
fn a_user_session_trigger_is_kept_as_such() {
    let mut fake = binfmt_fake();
    fake.procs.insert(233, requester_in(233, "systemd-binfmt", "/user.slice/user-1000.slice/session-2.scope"));
    let p = learned(&[binfmt_load(5)], &mut fake);
    let t = only_trigger(&p, "binfmt_misc");
    assert!(matches!(t.requester.as_ref().unwrap().scope, Scope::Session { uid: 1000, .. }));
}

#[test]
fn a_plain_mount_unit_is_not_asked_about_in_the_journal() {
    let mut fake = binfmt_fake();
    fake.triggers.clear();
    let p = learned(&[binfmt_load(5)], &mut fake);
    assert_eq!(only_trigger(&p, "binfmt_misc").via, None);
    assert_eq!(fake.asked_journal, 0);
}

#[test]
fn a_mount_not_run_by_pid_1_is_left_alone() {
    let mut fake = binfmt_fake();
    let mut rec = binfmt_load(5);
    if let What::Loaded { cause: Cause::Request { requester, .. }, .. } = &mut rec.what {
        requester.ppid = Some(77);
    }
    let p = learned(&[rec], &mut fake);
    assert_eq!(only_trigger(&p, "binfmt_misc").via, None);
}

fn modprobe_at_load(module: &str) -> Record {
    let unit = format!("modprobe@{module}.service");
    let loader: Process = process(500, "modprobe", Some("/usr/bin/kmod"), Some(&unit));
    Record {
        stage: None,
        time: "2026-12-01T10:00:01Z".into(),
        ts_ns: 1,
        what: What::Loaded {
            module: module.into(),
            taints: 0,
            cause: Cause::Explicit {
                loader: loader.clone(),
                invoked_by: Some(Parent {
                    pid: 1,
                    comm: Some("systemd".into()),
                    exe: None,
                    unit: Some("init.scope".into()),
                }),
                needed_by: Vec::new(),
            },
        },
        process: loader,
    }
}

#[test]
fn modprobe_at_names_the_units_that_want_it() {
    let mut fake = Fake::default();
    fake.wanted.insert("modprobe@llc.service".into(), vec!["a.service".into(), "b.mount".into()]);
    let p = learned(&[modprobe_at_load("llc")], &mut fake);
    let t = only_trigger(&p, "llc");
    assert_eq!(t.via.as_deref(), Some("modprobe@llc.service"));
    let units: Vec<String> = units_of(t).into_iter().map(|(u, _)| u).collect();
    assert_eq!(units, ["a.service", "b.mount"]);
    assert!(crate::needs::trust::of_trigger(t).trusted());
}

#[test]
fn modprobe_at_wanted_by_nobody_stays_as_it_was() {
    let mut fake = Fake::default();
    let p = learned(&[modprobe_at_load("llc")], &mut fake);
    let t = only_trigger(&p, "llc");
    assert_eq!(t.via, None);
    assert_eq!(t.loader.as_ref().unwrap().unit.as_deref(), Some("modprobe@llc.service"));
}

#[test]
fn unit_names_unescape_as_systemd_writes_them() {
    assert_eq!(unescape_path("proc-sys-fs-binfmt_misc").as_deref(), Some("/proc/sys/fs/binfmt_misc"));
    assert_eq!(unescape_path("mnt-a\\x2db").as_deref(), Some("/mnt/a-b"));
    assert_eq!(unescape_path("-").as_deref(), Some("/"));
    assert_eq!(unescape_path("mnt-\\x2"), None);
}

#[test]
fn journal_json_lines_are_read() {
    let text = concat!(
        r#"{"MESSAGE":"proc-sys-fs-binfmt_misc.automount: Got automount request for /proc/sys/fs/binfmt_misc, triggered by 233 (systemd-binfmt)","__MONOTONIC_TIMESTAMP":"4123456","_PID":"1"}"#,
        "\n",
        r#"{"MESSAGE":"Mounting proc-sys-fs-binfmt_misc.mount...","__MONOTONIC_TIMESTAMP":"4200000"}"#,
        "\n",
        r#"{"MESSAGE":[1,2,3],"__MONOTONIC_TIMESTAMP":"1"}"#,
        "\nnot json\n"
    );
    let got = parse_journal(text);
    assert_eq!(
        got,
        [AutomountRequest { monotonic_us: 4_123_456, path: PATH.into(), pid: 233, comm: "systemd-binfmt".into() }]
    );
    assert_eq!(parse_automount_message("Got automount request for /a, b, triggered by 9 (x y)"), Some(("/a, b".into(), 9, "x y".into())));
    // As PID 1 writes it to the journal: the unit first.
    let msg = "proc-sys-fs-binfmt_misc.automount: Got automount request for /proc/sys/fs/binfmt_misc, triggered by 302 (systemd-binfmt)";
    assert_eq!(parse_automount_message(msg), Some((PATH.into(), 302, "systemd-binfmt".into())));
    assert_eq!(parse_automount_message("x.service: Got automount request for /a, triggered by 9 (x)"), None);
}

/// The mount's own request (What::Request), seen before its load.
fn binfmt_request() -> Record {
    let mount = in_cgroup(400, "mount", Some("/usr/bin/mount"), 0, &format!("/system.slice/{MOUNT}"));
    let mut rec = crate::profile::testutil::request("2026-12-01T10:00:05Z", mount, "fs-binfmt_misc", &["binfmt_misc"]);
    rec.ts_ns = 5_000_000_000;
    rec
}

#[test]
fn a_trigger_seen_waiting_at_the_request_is_known_after_it_exited() {
    let mut fake = binfmt_fake();
    let waiting = fake.procs.remove(&233).unwrap();
    fake.waiting = vec![waiting];
    let p = learned(&[binfmt_request(), binfmt_load(5)], &mut fake);
    let t = only_trigger(&p, "binfmt_misc");
    assert_eq!(t.requester.as_ref().unwrap().unit.as_deref(), Some("systemd-binfmt.service"));
    assert_eq!(t.via.as_deref(), Some(MOUNT));
}

#[test]
fn a_waiting_process_the_journal_does_not_name_is_not_taken() {
    let mut fake = binfmt_fake();
    fake.procs.clear();
    fake.waiting = vec![requester_in(500, "lightdm", "/system.slice/lightdm.service")];
    let p = learned(&[binfmt_request(), binfmt_load(5)], &mut fake);
    let r = only_trigger(&p, "binfmt_misc").requester.clone().unwrap();
    assert_eq!((r.comm.as_str(), r.unit), ("systemd-binfmt", None));
}

#[test]
fn one_mount_s_loads_ask_systemd_once() {
    let mut fake = binfmt_fake();
    let mut dependency = binfmt_load(5);
    if let What::Loaded { module, .. } = &mut dependency.what {
        *module = "llc".into();
    }
    let p = learned(&[binfmt_load(5), dependency], &mut fake);
    assert_eq!(fake.asked_journal, 1);
    assert_eq!(only_trigger(&p, "llc").via.as_deref(), Some(MOUNT));
}

/// A system that can be asked from another thread, answering as `binfmt_fake`.
#[derive(Clone)]
struct Forking {
    journal: Vec<AutomountRequest>,
    waiting: Vec<Requester>,
}

impl Systemd for Forking {
    fn triggered_by(&mut self, _: &str) -> Vec<String> {
        vec![AUTOMOUNT.into()]
    }
    fn automount_requests(&mut self, _: &str) -> Vec<AutomountRequest> {
        self.journal.clone()
    }
    fn process(&mut self, _: u32, _: &str) -> Option<Requester> {
        None
    }
    fn waiting(&mut self) -> Vec<Requester> {
        self.waiting.clone()
    }
    fn wanted_by(&mut self, _: &str) -> Vec<String> {
        vec!["a.service".into()]
    }
    fn pause(&mut self) {}
    fn fork(&self) -> Option<Box<dyn Systemd + Send>> {
        Some(Box::new(self.clone()))
    }
}

#[test]
fn questions_go_to_another_thread_and_are_taken_in_before_saving() {
    let fake = binfmt_fake();
    let system = Forking { journal: fake.journal.clone(), waiting: fake.procs.values().cloned().collect() };
    let mut on = OnBehalf::new(system);
    let mut p = Profile::new("k", "h");
    for r in [binfmt_request(), binfmt_load(5), modprobe_at_load("llc")] {
        on.see(&r);
        p.observe(&r);
    }
    on.finish();
    on.apply(&mut p);
    assert_eq!(only_trigger(&p, "binfmt_misc").requester.as_ref().unwrap().unit.as_deref(), Some("systemd-binfmt.service"));
    assert_eq!(only_trigger(&p, "llc").via.as_deref(), Some("modprobe@llc.service"));
}
