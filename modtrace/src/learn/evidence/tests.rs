//! Journal entries for new modules and causes: their fields, and the bound.

use std::sync::{Arc, Mutex};

use super::*;
use crate::profile::{Module, Requester, TriggerKind};
use crate::trace::scope::Scope;

#[derive(Debug, Default)]
pub(crate) struct Capture(pub Vec<Entry>);

impl Sink for Capture {
    fn send(&mut self, entry: &Entry) {
        self.0.push(entry.clone());
    }
}

/// A sink for a plan, and the handle to read what it got.
pub(crate) fn capture() -> (SharedSink, Arc<Mutex<Capture>>) {
    let capture = Arc::new(Mutex::new(Capture::default()));
    (capture.clone(), capture)
}

fn requested_by(comm: &str, uid: u32, cgroup: &str) -> Trigger {
    Trigger {
        alias: Some("net-pf-5".into()),
        requester: Some(Requester {
            comm: comm.into(),
            exe: Some(format!("/usr/bin/{comm}")),
            pid: Some(10),
            uid: Some(uid),
            euid: Some(uid),
            loginuid: None,
            kernel_thread: Some(false),
            unit: Scope::of(Some(cgroup)).unit().map(str::to_string),
            scope: Scope::of(Some(cgroup)),
            cgroup: Some(cgroup.into()),
            pid_ns: None,
            mnt_ns: None,
            extra: Default::default(),
        }),
        count: 1,
        ..Trigger::new(TriggerKind::Request)
    }
}

fn with_module(p: &mut Profile, name: &str, triggers: Vec<Trigger>) {
    let mut m = Module::new(name, "2024-03-01T10:00:00Z");
    m.triggers = triggers;
    p.modules.push(m);
    p.modules.sort_by(|a, b| a.name.cmp(&b.name));
}

#[test]
fn a_new_module_is_one_entry_with_its_cause_trust_and_package() {
    let (sink, got) = capture();
    let mut p = Profile::new("6.12.0", "h");
    with_module(&mut p, "appletalk", vec![requested_by("atalkd", 0, "/system.slice/netatalk.service")]);
    p.packages.units.insert("netatalk.service".into(), "netatalk".into());
    let mut evidence = Evidence::new(Some(sink));
    evidence.announce(None, &p);
    let entries = &got.lock().unwrap().0;
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    let fields = [
        ("MESSAGE_ID", MESSAGE_ID),
        ("MODTRACE_MODULE", "appletalk"),
        ("MODTRACE_ALIAS", "net-pf-5"),
        ("MODTRACE_CAUSE", "request"),
        ("MODTRACE_UNIT", "netatalk.service"),
        ("MODTRACE_UID", "0"),
        ("MODTRACE_SCOPE", "system"),
        ("MODTRACE_TRUST", "trusted"),
        ("MODTRACE_PACKAGE", "netatalk"),
        ("MODTRACE_NEW", "module"),
        ("MODTRACE_EXE", "/usr/bin/atalkd"),
    ];
    for (name, value) in fields {
        assert_eq!(e.field(name), Some(value), "{name} in {e:?}");
    }
    assert_eq!(e.level, log::Level::Info);
    assert!(e.message.starts_with("modtrace learned appletalk: "), "{}", e.message);
}

#[test]
fn only_what_is_new_to_the_profile_is_announced_and_only_once() {
    let (sink, got) = capture();
    let mut base = Profile::new("6.12.0", "h");
    with_module(&mut base, "appletalk", vec![requested_by("atalkd", 0, "/system.slice/netatalk.service")]);
    let mut now = base.clone();
    let user = requested_by("python3", 1000, "/user.slice/user-1000.slice/session-2.scope");
    now.modules[0].triggers.push(user);
    let mut evidence = Evidence::new(Some(sink));
    evidence.announce(Some(&base), &now);
    evidence.announce(Some(&base), &now);
    let entries = &got.lock().unwrap().0;
    assert_eq!(entries.len(), 1, "the known cause is not announced, the new one once: {entries:?}");
    let e = &entries[0];
    assert_eq!((e.field("MODTRACE_NEW"), e.field("MODTRACE_TRUST")), (Some("cause"), Some("review")));
    assert_eq!((e.field("MODTRACE_UID"), e.field("MODTRACE_SCOPE")), (Some("1000"), Some("session")));
    assert_eq!(e.field("MODTRACE_PACKAGE"), None, "unknown fields are left out, not empty");
    assert_eq!(e.level, log::Level::Warn);
}

#[test]
fn a_flood_of_untrusted_causes_is_bounded_and_counted() {
    let (sink, got) = capture();
    let mut p = Profile::new("6.12.0", "h");
    let flood = (0..UNTRUSTED_MAX + 40)
        .map(|i| requested_by(&format!("p{i}"), 1000, "/user.slice/user-1000.slice/session-2.scope"))
        .collect();
    with_module(&mut p, "appletalk", flood);
    with_module(&mut p, "nf_tables", vec![requested_by("nft", 0, "/system.slice/nftables.service")]);
    let mut evidence = Evidence::new(Some(sink));
    evidence.announce(None, &p);
    evidence.finish();
    assert_eq!(evidence.held_back, 40);
    let entries = &got.lock().unwrap().0;
    let review = entries.iter().filter(|e| e.field("MODTRACE_TRUST") == Some("review")).count();
    assert_eq!(review, UNTRUSTED_MAX);
    assert!(
        entries.iter().any(|e| e.field("MODTRACE_MODULE") == Some("nf_tables")),
        "root's cause still gets through after the flood"
    );
    let last = entries.last().unwrap();
    assert_eq!((last.field("MESSAGE_ID"), last.field("MODTRACE_HELD_BACK")), (Some(HELD_BACK_MESSAGE_ID), Some("40")));
}

#[test]
fn without_a_sink_nothing_is_kept() {
    let mut p = Profile::new("6.12.0", "h");
    with_module(&mut p, "appletalk", vec![requested_by("atalkd", 0, "/system.slice/netatalk.service")]);
    let mut evidence = Evidence::new(None);
    evidence.announce(None, &p);
    assert!(evidence.seen.is_empty() && evidence.held_back == 0);
}
