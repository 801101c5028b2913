use super::*;
use std::time::Duration;

use crate::needs::units_of;
use crate::testutil::{appletalk_index, in_cgroup, loaded_for_request, process};
use crate::trace::event::{Parent, Process};
use crate::trace::journal::Entry;

/// What a fake system says, and what was asked of it.
#[derive(Default)]
struct Fake {
    triggers: BTreeMap<String, Vec<String>>,
    /// systemctl does not answer.
    systemctl_silent: bool,
    /// The journal, as it reads after `lag` questions (earlier: empty);
    /// `unanswered`: journalctl never answers in time.
    journal: Vec<AutomountRequest>,
    lag: u32,
    unanswered: bool,
    asked_journal: u32,
    /// The deputies' journal records.
    deputy: Vec<Entry>,
    procs: BTreeMap<u32, Requester>,
    /// Who waits on the automount when the mount's request is seen.
    waiting: Vec<Requester>,
    wanted: BTreeMap<String, Vec<String>>,
}

impl Fake {
    fn answer<T: Clone>(&mut self, what: &[T]) -> Option<Vec<T>> {
        self.asked_journal += 1;
        match (self.unanswered, self.asked_journal > self.lag) {
            (true, _) => None,
            (false, true) => Some(what.to_vec()),
            (false, false) => Some(Vec::new()),
        }
    }
}

impl Systemd for &mut Fake {
    fn triggered_by(&mut self, unit: &str) -> Option<Vec<String>> {
        (!self.systemctl_silent).then(|| self.triggers.get(unit).cloned().unwrap_or_default())
    }
    fn automount_requests(&mut self, _automount: &str, path: &str) -> Option<Vec<AutomountRequest>> {
        let journal: Vec<AutomountRequest> = self.journal.iter().filter(|r| r.path == path).cloned().collect();
        self.answer(&journal)
    }
    fn deputy_journal(&mut self, unit: &str, comm: &str) -> Option<Vec<Entry>> {
        let records: Vec<Entry> = self
            .deputy
            .iter()
            .filter(|e| e.unit.as_deref() == Some(unit) && e.comm.as_deref() == Some(comm))
            .cloned()
            .collect();
        self.answer(&records)
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
    f.journal.push(AutomountRequest {
        monotonic_us: 4_000_000,
        path: PATH.into(),
        pid: 233,
        comm: "systemd-binfmt".into(),
    });
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
        pid_ns: None,
        mnt_ns: None,
        extra: Default::default(),
    }
}

/// mount(8) run by PID 1 in the mount unit, and the binfmt_misc load it caused, at `ts_s`.
fn binfmt_load(ts_s: u64) -> Record {
    let mount = in_cgroup(400, "mount", Some("/usr/bin/mount"), 0, &format!("/system.slice/{MOUNT}"));
    let mut rec =
        loaded_for_request("2026-12-01T10:00:05Z", "binfmt_misc", "fs-binfmt_misc", "binfmt_misc", mount, &[]);
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

/// The binfmt load learned with `tries` questions to the journal.
fn learned_with(fake: &mut Fake, tries: u32, rec: Record) -> Profile {
    let mut p = Profile::new("k", "h");
    let mut on = OnBehalf::with_tries(fake, tries);
    on.see(&rec);
    p.observe(&rec);
    on.apply(&mut p);
    p
}

/// Through the mount unit for someone nobody knows: reviewed, and why.
fn assert_unknown_through(t: &Trigger, via: &str, why: &str) {
    assert_eq!(t.via.as_deref(), Some(via));
    let r = t.requester.as_ref().unwrap();
    assert_eq!((r.uid, r.unit.as_deref(), &r.scope), (None, None, &Scope::Unknown), "{r:?}");
    let trust = crate::needs::trust::of_trigger(t);
    assert!(!trust.trusted() && trust.why().contains(why), "{trust:?}");
}

#[test]
fn a_journal_that_never_says_makes_the_requester_unknown() {
    let mut fake = binfmt_fake();
    fake.lag = u32::MAX;
    let p = learned_with(&mut fake, 3, binfmt_load(5));
    assert_unknown_through(only_trigger(&p, "binfmt_misc"), MOUNT, "no automount request");
    assert_eq!(fake.asked_journal, 3);
}

#[test]
fn a_journal_that_does_not_answer_in_time_is_unknown_not_the_mount_unit() {
    let mut fake = binfmt_fake();
    fake.unanswered = true;
    let p = learned_with(&mut fake, 2, binfmt_load(5));
    assert_unknown_through(only_trigger(&p, "binfmt_misc"), MOUNT, "did not answer in time");
    let mut fake = binfmt_fake();
    fake.systemctl_silent = true;
    let p = learned_with(&mut fake, 2, binfmt_load(5));
    assert_unknown_through(only_trigger(&p, "binfmt_misc"), MOUNT, "systemctl did not say");
}

#[test]
fn outside_the_window_or_for_another_path_is_unknown() {
    // At 40 s the record (4 s) lies 36 s before the request: outside the 30 s.
    for (ts, path) in [(40, PATH), (5, "/proc/sys/fs/other")] {
        let mut fake = binfmt_fake();
        fake.journal[0].path = path.into();
        let p = learned_with(&mut fake, 1, binfmt_load(ts));
        assert_unknown_through(only_trigger(&p, "binfmt_misc"), MOUNT, "no automount request");
    }
}

#[test]
fn a_record_written_after_the_window_is_not_taken() {
    let mut fake = binfmt_fake();
    // The request at 5 s; the record 11 s later (the window ends 10 s after).
    fake.journal[0].monotonic_us = 16_000_001;
    let p = learned_with(&mut fake, 1, binfmt_load(5));
    assert_unknown_through(only_trigger(&p, "binfmt_misc"), MOUNT, "no automount request");
    fake.journal[0].monotonic_us = 15_000_000;
    let p = learned_with(&mut binfmt_fake_with(fake.journal.clone()), 1, binfmt_load(5));
    assert_eq!(only_trigger(&p, "binfmt_misc").requester.as_ref().unwrap().comm, "systemd-binfmt");
}

fn binfmt_fake_with(journal: Vec<AutomountRequest>) -> Fake {
    Fake { journal, ..binfmt_fake() }
}

#[test]
fn two_candidates_are_unknown_not_the_first() {
    let mut fake = binfmt_fake();
    let second = AutomountRequest { monotonic_us: 4_500_000, path: PATH.into(), pid: 300, comm: "lightdm".into() };
    fake.journal.push(second);
    let p = learned(&[binfmt_load(5)], &mut fake);
    assert_unknown_through(only_trigger(&p, "binfmt_misc"), MOUNT, "which one is not known");
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

fn pid1_line(message: &str, monotonic: u64) -> String {
    serde_json::json!({"MESSAGE": message, "__MONOTONIC_TIMESTAMP": monotonic.to_string(), "_PID": "1", "UNIT": AUTOMOUNT})
        .to_string()
}

#[test]
fn journal_json_lines_are_read() {
    let text = [
        pid1_line(
            &format!("{AUTOMOUNT}: Got automount request for {PATH}, triggered by 233 (systemd-binfmt)"),
            4_123_456,
        ),
        pid1_line("Mounting proc-sys-fs-binfmt_misc.mount...", 4_200_000),
        r#"{"MESSAGE":[1,2,3],"__MONOTONIC_TIMESTAMP":"1","_PID":"1"}"#.to_string(),
        "not json".to_string(),
    ]
    .join("\n");
    let got = parse_journal(&text, AUTOMOUNT, PATH);
    assert_eq!(
        got,
        [AutomountRequest { monotonic_us: 4_123_456, path: PATH.into(), pid: 233, comm: "systemd-binfmt".into() }]
    );
    let read = |m: &str| parse_automount_message(m, AUTOMOUNT, PATH);
    // Without the unit first (older systemd) too; another automount's is not this one's.
    assert_eq!(read(&format!("Got automount request for {PATH}, triggered by 9 (x y)")), Some((9, "x y".into())));
    assert_eq!(read(&format!("x.automount: Got automount request for {PATH}, triggered by 9 (x)")), None);
    assert_eq!(read(&format!("Got automount request for {PATH}/more, triggered by 9 (x)")), None);
    assert_eq!(read(&format!("Got automount request for {PATH}, triggered by 9x (x)")), None);
}

#[test]
fn no_process_name_shifts_the_fields() {
    // Any 15 bytes are a valid comm: the parse anchors on the known path and
    // takes the pid and comm by their structure from there.
    for comm in [", triggered by ", "a) (b", "(", ")", "x (1)", " (7) "] {
        let message = format!("{AUTOMOUNT}: Got automount request for {PATH}, triggered by 4242 ({comm})");
        assert_eq!(parse_automount_message(&message, AUTOMOUNT, PATH), Some((4242, comm.to_string())), "{comm:?}");
    }
    // The path a process name pretends to be is not the one asked about.
    let fake_path = "Got automount request for /x, triggered by 1 (a), triggered by 4242 (b)";
    assert_eq!(parse_automount_message(fake_path, AUTOMOUNT, PATH), None);
}

#[test]
fn a_user_s_logger_entry_that_says_systemd_is_not_pid_1_s() {
    let message = format!("{AUTOMOUNT}: Got automount request for {PATH}, triggered by 4242 (evil)");
    let forged = serde_json::json!({
        "MESSAGE": message, "__MONOTONIC_TIMESTAMP": "4000000", "UNIT": AUTOMOUNT,
        "SYSLOG_IDENTIFIER": "systemd", "SYSLOG_PID": "1",
        "_PID": "4242", "_UID": "1000", "_TRANSPORT": "journal",
    });
    assert!(parse_journal(&forged.to_string(), AUTOMOUNT, PATH).is_empty());
    // PID 1's own line before journald, imported from /dev/kmsg, is read.
    let kmsg = serde_json::json!({
        "MESSAGE": message.replace("4242 (evil)", "233 (systemd-binfmt)"), "__MONOTONIC_TIMESTAMP": "4000000",
        "SYSLOG_IDENTIFIER": "systemd", "SYSLOG_PID": "1", "_TRANSPORT": "kernel",
    });
    assert_eq!(parse_journal(&kmsg.to_string(), AUTOMOUNT, PATH)[0].pid, 233);
}

/// The mount's own request (What::Request), seen before its load.
fn binfmt_request() -> Record {
    let mount = in_cgroup(400, "mount", Some("/usr/bin/mount"), 0, &format!("/system.slice/{MOUNT}"));
    let mut rec = crate::testutil::request("2026-12-01T10:00:05Z", mount, "fs-binfmt_misc", &["binfmt_misc"]);
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
    /// How long the journal takes to answer.
    slow: Duration,
}

impl Systemd for Forking {
    fn triggered_by(&mut self, _: &str) -> Option<Vec<String>> {
        Some(vec![AUTOMOUNT.into()])
    }
    fn automount_requests(&mut self, _: &str, _: &str) -> Option<Vec<AutomountRequest>> {
        std::thread::sleep(self.slow);
        Some(self.journal.clone())
    }
    fn deputy_journal(&mut self, _: &str, _: &str) -> Option<Vec<Entry>> {
        None
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
    let system = Forking {
        journal: fake.journal.clone(),
        waiting: fake.procs.values().cloned().collect(),
        slow: Duration::ZERO,
    };
    let mut on = OnBehalf::new(system);
    let mut p = Profile::new("k", "h");
    for r in [binfmt_request(), binfmt_load(5), modprobe_at_load("llc")] {
        on.see(&r);
        p.observe(&r);
    }
    on.finish();
    on.apply(&mut p);
    assert_eq!(
        only_trigger(&p, "binfmt_misc").requester.as_ref().unwrap().unit.as_deref(),
        Some("systemd-binfmt.service")
    );
    assert_eq!(only_trigger(&p, "llc").via.as_deref(), Some("modprobe@llc.service"));
}

#[test]
fn a_journal_still_out_at_the_end_is_unknown() {
    let fake = binfmt_fake();
    let system = Forking { journal: fake.journal.clone(), waiting: Vec::new(), slow: Duration::from_secs(5) };
    let mut on = OnBehalf::new(system);
    let mut p = Profile::new("k", "h");
    let rec = binfmt_load(5);
    on.see(&rec);
    p.observe(&rec);
    // A checkpoint while it is out, then the end with no time left.
    let mut checkpoint = p.clone();
    on.apply(&mut checkpoint);
    assert_unknown_through(only_trigger(&checkpoint, "binfmt_misc"), MOUNT, "had not answered in time");
    on.finish_within(Duration::from_millis(50));
    on.apply(&mut p);
    assert_unknown_through(only_trigger(&p, "binfmt_misc"), MOUNT, "had not answered in time");
}

// ---------------------------------------------------------------------------
// Root deputies

const UDISKS: &str = "udisks2.service";
const UDISKSD_PID: u32 = 640;

/// udisksd's request for fs-squashfs at 20 s, and the load it caused.
fn udisks_load() -> Record {
    let udisksd =
        in_cgroup(UDISKSD_PID, "udisksd", Some("/usr/libexec/udisks2/udisksd"), 0, "/system.slice/udisks2.service");
    let mut rec = loaded_for_request("2026-12-01T10:00:20Z", "squashfs", "fs-squashfs", "squashfs", udisksd, &[]);
    rec.ts_ns = 20_000_000_000;
    rec
}

/// A record of udisks2's journal, as journald wrote its trusted fields.
fn udisks_says(message: &str, monotonic_us: u64) -> Entry {
    Entry {
        message: message.into(),
        monotonic_us,
        pid: Some(UDISKSD_PID),
        comm: Some("udisksd".into()),
        unit: Some(UDISKS.into()),
        transport: Some("journal".into()),
        ..Entry::default()
    }
}

const MOUNTED: &str = "Mounted /dev/loop1 at /media/alice/disk on behalf of uid 1000";

fn deputy_learned(deputy: Vec<Entry>, records: &[Record]) -> Profile {
    let mut fake = Fake { deputy, ..Fake::default() };
    learned(records, &mut fake)
}

#[test]
fn udisks_loads_are_the_uid_it_acted_for() {
    let p = deputy_learned(vec![udisks_says(MOUNTED, 21_000_000)], &[udisks_load()]);
    let t = only_trigger(&p, "squashfs");
    assert_eq!(t.via.as_deref(), Some(UDISKS));
    let r = t.requester.as_ref().unwrap();
    assert_eq!((r.uid, &r.scope), (Some(1000), &Scope::Unknown));
    let trust = crate::needs::trust::of_trigger(t);
    assert!(!trust.trusted());
    assert!(
        trust.why().starts_with(
            "udisks2.service acted on behalf of uid 1000 (its journal), an unprivileged process (uid 1000)"
        ),
        "{trust:?}"
    );
    assert!(units_of(t).is_empty(), "the deputy's unit gets no drop-in: {:?}", units_of(t));
    assert!(crate::needs::describe_trigger(t).contains("through udisks2.service"));
}

#[test]
fn nothing_of_a_deputy_s_load_reaches_the_list_or_a_drop_in() {
    let mut p = deputy_learned(vec![udisks_says(MOUNTED, 21_000_000)], &[udisks_load()]);
    p.settle(&crate::testutil::appletalk_index().module("squashfs", &[]).alias("fs-squashfs", "squashfs"));
    let plan = crate::needs::plan(&p, &crate::needs::target::Target::from_profile(&p)).unwrap();
    assert!(plan.needs.is_empty() && plan.units.is_empty(), "{:?} {:?}", plan.needs, plan.units);
    assert!(plan.review.contains_key("squashfs"));
    assert!(!plan.other_units.contains_key(UDISKS));
}

#[test]
fn udisks_lines_that_do_not_fit_are_not_taken() {
    let from = |pid: u32, comm: &str, unit: &str| Entry {
        pid: Some(pid),
        comm: Some(comm.into()),
        unit: Some(unit.into()),
        ..udisks_says(MOUNTED, 21_000_000)
    };
    let cases = [
        // Another process of the unit, and another unit, saying the same.
        vec![from(641, "udisksd", UDISKS)],
        // Before the request, and after the window.
        vec![udisks_says(MOUNTED, 18_000_000), udisks_says(MOUNTED, 50_000_001)],
        // Not a mount line.
        vec![udisks_says("Set up loop device /dev/loop1 (backed by /home/alice/img)", 21_000_000)],
        Vec::new(),
    ];
    for deputy in cases {
        let p = deputy_learned(deputy.clone(), &[udisks_load()]);
        assert_unknown_through(
            only_trigger(&p, "squashfs"),
            UDISKS,
            "udisks2.service acts for clients and did not say for whom",
        );
    }
}

#[test]
fn a_deputy_that_acted_for_two_uids_at_once_is_unknown() {
    let other = "Mounted /dev/loop2 at /media/bob/disk on behalf of uid 1001";
    let p = deputy_learned(vec![udisks_says(MOUNTED, 21_000_000), udisks_says(other, 22_000_000)], &[udisks_load()]);
    assert_unknown_through(only_trigger(&p, "squashfs"), UDISKS, "acted for uids 1000, 1001");
}

#[test]
fn a_deputy_s_journal_that_does_not_answer_is_unknown() {
    let mut fake = Fake { unanswered: true, deputy: vec![udisks_says(MOUNTED, 21_000_000)], ..Fake::default() };
    let p = learned(&[udisks_load()], &mut fake);
    assert_unknown_through(only_trigger(&p, "squashfs"), UDISKS, "journal did not answer in time");
}

#[test]
fn deputies_that_do_not_say_need_review() {
    let nm = in_cgroup(700, "NetworkManager", None, 0, "/system.slice/NetworkManager.service");
    let request = loaded_for_request("2026-12-01T10:00:20Z", "bonding", "rtnl-link-bond", "bonding", nm, &[]);
    // dockerd runs modprobe itself: an explicit load in docker.service.
    let mut explicit = modprobe_at_load("br_netfilter");
    if let What::Loaded { cause: Cause::Explicit { loader, .. }, .. } = &mut explicit.what {
        *loader = in_cgroup(800, "modprobe", Some("/usr/bin/kmod"), 0, "/system.slice/docker.service");
    }
    let p = deputy_learned(Vec::new(), &[request, explicit]);
    assert_unknown_through(
        only_trigger(&p, "bonding"),
        "NetworkManager.service",
        "NetworkManager.service acts for clients and did not say for whom",
    );
    let t = only_trigger(&p, "br_netfilter");
    assert_unknown_through(t, "docker.service", "docker.service acts for clients and did not say for whom");
    assert!(units_of(t).is_empty());
}

#[test]
fn an_admin_s_deputy_is_one_too() {
    let dir = std::env::temp_dir().join(format!("modtrace-onbehalf-deputies-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("site.conf"), "mountd.service\n").unwrap();
    let mountd = in_cgroup(900, "mountd", None, 0, "/system.slice/mountd.service");
    let rec = loaded_for_request("2026-12-01T10:00:20Z", "binfmt_misc", "fs-binfmt_misc", "binfmt_misc", mountd, &[]);
    let mut fake = Fake::default();
    let mut on = OnBehalf::with_deputies(&mut fake, crate::trace::deputies::Deputies::load(&dir));
    let mut p = Profile::new("k", "h");
    on.see(&rec);
    p.observe(&rec);
    on.apply(&mut p);
    assert_unknown_through(only_trigger(&p, "binfmt_misc"), "mountd.service", "did not say");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_root_service_that_is_no_deputy_stays_trusted() {
    let svc = in_cgroup(700, "fake-dm", None, 0, "/system.slice/fake-dm.service");
    let rec = loaded_for_request("2026-12-01T10:00:20Z", "appletalk", "net-pf-5", "appletalk", svc, &[]);
    let p = deputy_learned(Vec::new(), &[rec]);
    let t = only_trigger(&p, "appletalk");
    assert_eq!(t.via, None);
    assert!(crate::needs::trust::of_trigger(t).trusted());
}

#[test]
fn the_requests_list_names_the_client_not_the_deputy() {
    let udisksd = in_cgroup(UDISKSD_PID, "udisksd", None, 0, "/system.slice/udisks2.service");
    let mut request = crate::testutil::request("2026-12-01T10:00:20Z", udisksd, "fs-squashfs", &["squashfs"]);
    request.ts_ns = 20_000_000_000;
    let p = deputy_learned(vec![udisks_says(MOUNTED, 21_000_000)], &[request.clone(), udisks_load()]);
    let asked = &p.requests.iter().find(|r| r.alias == "fs-squashfs").unwrap().requesters;
    assert_eq!(asked.len(), 1);
    assert_eq!((asked[0].who.uid, &asked[0].who.scope), (Some(1000), &Scope::Unknown));
    assert!(!crate::needs::trust::requester(&asked[0].who).trusted());
    // A deputy that does not say: nobody known, not the deputy.
    let p = deputy_learned(Vec::new(), &[request, udisks_load()]);
    let asked = &p.requests.iter().find(|r| r.alias == "fs-squashfs").unwrap().requesters;
    assert_eq!((asked[0].who.uid, asked[0].who.comm.as_str()), (None, "unknown"));
}
