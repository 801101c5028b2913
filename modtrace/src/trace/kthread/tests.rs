//! The crypto manager's join, on the request sequences the kernel makes
//! (crypto/api.c crypto_larval_lookup, crypto/algboss.c cryptomgr_probe).
use super::*;
use crate::needs::trust;
use crate::profile::{Profile, TriggerKind};
use crate::trace::attribute::Describe;
use crate::trace::correlate::Correlator;
use crate::trace::event::{Body, Cause, Event, Parent, Record, Task, What};
use crate::trace::modindex::StaticIndex;
use crate::trace::scope::Scope;

const SEC: u64 = 1_000_000_000;
const ROOT_CG: u64 = 1;
const USER_CG: u64 = 600;
const SYSTEM_CG: u64 = 500;

struct Fake;

impl Describe for Fake {
    fn process(&mut self, t: &Task) -> Process {
        let cgroup = match t.cgroup_id {
            ROOT_CG => "/",
            USER_CG => "/user.slice/user-1000.slice/session-2.scope",
            SYSTEM_CG => "/system.slice/cryptsetup.service",
            _ => "/odd",
        };
        Process {
            cgroup: Some(cgroup.to_string()),
            unit: crate::trace::scope::unit_of(cgroup),
            scope: Scope::of(Some(cgroup)),
            ..Process::from_task(t)
        }
    }
    fn parent(&mut self, _: &Task) -> Option<Parent> {
        None
    }
    fn wall_time(&mut self, ts_ns: u64) -> String {
        format!("t{ts_ns}")
    }
}

fn index() -> StaticIndex {
    StaticIndex::default()
        .alias("crypto-lrw", "lrw")
        .alias("crypto-cast6", "cast6_generic")
        .alias("crypto-ecb", "ecb")
        .module("lrw", &[])
        .module("cast6_generic", &[])
        .module("ecb", &[])
}

fn user(pid: u32) -> Task {
    Task {
        pid,
        tgid: pid,
        uid: 1000,
        comm: "alg-bind".into(),
        cgroup_id: USER_CG,
        is_kthread: Some(false),
        parent_is_kthread: Some(false),
        start_time_ns: Some(u64::from(pid)),
        ..Task::default()
    }
}

fn root(pid: u32) -> Task {
    Task { uid: 0, comm: "cryptsetup".into(), cgroup_id: SYSTEM_CG, ..user(pid) }
}

fn kthread(pid: u32, comm: &str) -> Task {
    Task { uid: 0, comm: comm.into(), cgroup_id: ROOT_CG, is_kthread: Some(true), ..user(pid) }
}

fn helper(pid: u32, alias: &str) -> Task {
    Task {
        uid: 0,
        comm: "modprobe".into(),
        cgroup_id: ROOT_CG,
        parent_is_kthread: Some(true),
        args: Some(vec!["/sbin/modprobe".into(), "-q".into(), "--".into(), alias.into()]),
        ..user(pid)
    }
}

fn request(ts: u64, task: Task, alias: &str) -> Event {
    let (call_site, call_site_name) = (0, String::new());
    let body = Body::Request { alias: alias.into(), wait: true, call_site, call_site_name, repeats: 0 };
    Event { ts_ns: ts, task, body }
}

fn loaded(ts: u64, task: Task, module: &str) -> Event {
    Event { ts_ns: ts, task, body: Body::Loaded { module: module.into(), taints: 0 } }
}

/// What a bind of "lrw(cast6)" makes the kernel do: the process's own two
/// requests, then the probe thread's, each served by a helper.
fn lrw_bind(asker: Task, at: u64, thread: u32) -> Vec<Event> {
    let t = || kthread(thread, CRYPTO_PROBE);
    vec![
        request(at, asker.clone(), "crypto-lrw(cast6)"),
        request(at + 1, asker, "crypto-lrw(cast6)-all"),
        request(at + 2, t(), "crypto-lrw"),
        loaded(at + 3, helper(thread + 1, "crypto-lrw"), "lrw"),
        request(at + 4, t(), "crypto-cast6"),
        loaded(at + 5, helper(thread + 2, "crypto-cast6"), "cast6_generic"),
        request(at + 6, t(), "crypto-cast6-all"),
    ]
}

fn run(events: Vec<Event>) -> (Vec<Record>, Profile) {
    let mut c = Correlator::new(index());
    let mut profile = Profile::new("k", "h");
    let records: Vec<Record> = events.into_iter().map(|e| c.handle(e, &mut Fake)).collect();
    for r in &records {
        profile.observe(r);
    }
    (records, profile)
}

fn trigger_of<'a>(p: &'a Profile, module: &str) -> &'a crate::profile::Trigger {
    let m = p.modules.iter().find(|m| m.name == module).unwrap_or_else(|| panic!("{module} not in profile"));
    assert_eq!(m.triggers.len(), 1, "{:?}", m.triggers);
    &m.triggers[0]
}

#[test]
fn names_inside_an_algorithm_name() {
    assert_eq!(components("lrw(cast6)"), ["lrw(cast6)", "lrw", "cast6"]);
    assert_eq!(
        components("authenc(hmac(sha256),cbc(aes))"),
        ["authenc(hmac(sha256),cbc(aes))", "authenc", "hmac(sha256)", "hmac", "sha256", "cbc(aes)", "cbc", "aes"]
    );
    assert_eq!(components("xts(ecb(aes))"), ["xts(ecb(aes))", "xts", "ecb(aes)", "ecb", "aes"]);
    assert_eq!(components("aes"), ["aes"]);
    assert_eq!(components("broken(aes"), ["broken(aes"], "not a template the manager would start");
}

#[test]
fn template_and_inner_are_joined_to_the_unprivileged_binder() {
    let (records, profile) = run(lrw_bind(user(100), 10 * SEC, 200));
    for module in ["lrw", "cast6_generic"] {
        let t = trigger_of(&profile, module);
        assert_eq!(t.kind, TriggerKind::Request);
        let r = t.requester.as_ref().unwrap();
        assert_eq!((r.comm.as_str(), r.uid, r.kernel_thread), ("alg-bind", Some(1000), Some(false)), "{module}");
        assert_eq!(r.unit.as_deref(), Some("session-2.scope"));
        assert_eq!(t.via.as_deref(), Some("cryptomgr_probe (kernel thread)"));
        let why = trust::of_trigger(t);
        assert!(!why.trusted() && why.why().contains("uid 1000"), "{module}: {why:?}");
    }
    // The "-all" request the thread makes is joined too, and counted for the binder.
    let all = records.iter().find(|r| matches!(&r.what, What::Request { alias, .. } if alias == "crypto-cast6-all"));
    let What::Request { kthread: Some(k), .. } = &all.unwrap().what else { panic!("no join on the -all request") };
    assert_eq!(k.requester.as_ref().map(|p| p.uid), Some(1000));
    // It resolves to nothing and the binder is untrusted: folded under the binder (bound.rs).
    let folded = profile.folded_requests.iter().find(|f| f.aliases.iter().any(|a| a == "crypto-cast6-all"));
    assert_eq!(folded.and_then(|f| f.requester.as_ref()).map(|r| r.comm.as_str()), Some("alg-bind"));
    assert!(profile.requests.iter().all(|r| r.alias != "crypto-cast6-all"));
}

#[test]
fn a_root_bind_is_trusted_through_the_thread() {
    let (_, profile) = run(lrw_bind(root(100), 10 * SEC, 200));
    let t = trigger_of(&profile, "cast6_generic");
    assert_eq!(t.requester.as_ref().unwrap().comm, "cryptsetup");
    assert_eq!(t.via.as_deref(), Some("cryptomgr_probe (kernel thread)"));
    assert!(trust::of_trigger(t).trusted(), "{:?}", trust::of_trigger(t));
}

#[test]
fn two_binders_waiting_make_the_join_need_review_naming_them() {
    // root and a user both wait for lrw(cast6): the one thread acts for both.
    let mut events = vec![request(SEC, root(90), "crypto-lrw(cast6)")];
    events.extend(lrw_bind(user(100), 2 * SEC, 200));
    let (_, profile) = run(events);
    let t = trigger_of(&profile, "cast6_generic");
    assert_eq!(t.requester.as_ref().unwrap().comm, "cryptsetup", "the earliest waiter first");
    assert_eq!(t.candidates.len(), 1);
    assert_eq!(t.candidates[0].uid, Some(1000));
    let why = trust::of_trigger(t);
    assert!(!why.trusted(), "{why:?}");
    assert!(why.why().contains("alg-bind (uid 1000)") && why.why().contains("one of 2"), "{why:?}");
    // Two root waiters are trusted together.
    let mut events = vec![request(SEC, root(90), "crypto-lrw(cast6)")];
    events.extend(lrw_bind(root(100), 2 * SEC, 200));
    let (_, profile) = run(events);
    let t = trigger_of(&profile, "cast6_generic");
    assert_eq!(t.candidates.len(), 1);
    assert!(trust::of_trigger(t).trusted(), "{:?}", trust::of_trigger(t));
}

#[test]
fn a_kernel_thread_nobody_waits_for_needs_review() {
    // The binder's own requests were not seen (before tracing): nothing to join.
    let events: Vec<Event> = lrw_bind(root(100), 10 * SEC, 200).into_iter().skip(2).collect();
    let (_, profile) = run(events);
    let t = trigger_of(&profile, "cast6_generic");
    let r = t.requester.as_ref().unwrap();
    assert_eq!((r.comm.as_str(), r.kernel_thread), ("cryptomgr_probe", Some(true)));
    assert_eq!(t.via, None);
    assert!(t.reason.as_deref().unwrap().starts_with(UNJOINED), "{:?}", t.reason);
    let why = trust::of_trigger(t);
    assert!(!why.trusted() && why.why().starts_with(UNJOINED), "{why:?}");
    // A waiter from longer ago than the kernel waits is no waiter.
    let mut events = vec![request(SEC, root(90), "crypto-lrw(cast6)")];
    events.extend(lrw_bind(user(100), 100 * SEC, 200).into_iter().skip(2));
    let (_, profile) = run(events);
    assert!(!trust::of_trigger(trigger_of(&profile, "cast6_generic")).trusted());
}

#[test]
fn a_kernel_thread_waiting_too_keeps_a_root_join_from_being_trusted() {
    // cifsd (a kernel thread, for a remote server) and root both wait.
    let mut events = vec![request(SEC, kthread(80, "cifsd"), "crypto-lrw(cast6)")];
    events.extend(lrw_bind(root(100), 2 * SEC, 200));
    let (_, profile) = run(events);
    let t = trigger_of(&profile, "cast6_generic");
    assert_eq!(t.requester.as_ref().unwrap().comm, "cifsd");
    assert_eq!(t.candidates[0].comm, "cryptsetup");
    let why = trust::of_trigger(t);
    assert!(!why.trusted() && why.why().contains("cifsd (uid 0)"), "{why:?}");
}

#[test]
fn other_kernel_threads_are_joined_to_nobody() {
    let events = vec![
        request(SEC, root(90), "crypto-lrw(cast6)"),
        request(2 * SEC, kthread(300, "kworker/0:1"), "crypto-cast6"),
        loaded(3 * SEC, helper(301, "crypto-cast6"), "cast6_generic"),
    ];
    let (records, profile) = run(events);
    let t = trigger_of(&profile, "cast6_generic");
    assert_eq!(t.requester.as_ref().unwrap().comm, "kworker/0:1");
    assert!(t.reason.as_deref().unwrap().contains("kworker/0:1 is not a thread modtrace can join"), "{t:?}");
    assert!(!trust::of_trigger(t).trusted());
    let Cause::Request { kthread: Some(k), .. } = (match &records[2].what {
        What::Loaded { cause, .. } => cause,
        other => panic!("{other:?}"),
    }) else {
        panic!("no join")
    };
    assert_eq!(k.via, "kworker/0:1 (kernel thread)");
}

#[test]
fn the_waiter_table_is_bounded_and_a_drop_never_makes_a_join_trusted() {
    let mut w = CryptoWaiters::default();
    let describe = |t: &Task| Fake.process(t);
    let root_p = describe(&root(1));
    w.request(SEC, "crypto-lrw(cast6)", &root_p);
    // One user floods with template names of its own, then binds lrw(cast6).
    for i in 0..MAX_WAITERS as u32 + 10 {
        w.request(SEC + u64::from(i), &format!("crypto-x{i}(y)"), &describe(&user(1000 + i)));
    }
    assert_eq!(w.waiters.len(), MAX_WAITERS);
    assert_eq!(w.dropped(), 11);
    let thread = describe(&kthread(5, CRYPTO_PROBE));
    let join = w.request(2 * SEC, "crypto-cast6", &thread).unwrap();
    assert_eq!(join.requester, None, "root's waiter was dropped: joining it alone would be a guess");
    assert!(join.unjoined.unwrap().contains("more than 1024"));
    // Once the window the dropped ones could match in has passed, joins resume.
    let later = SEC + u64::from(MAX_WAITERS as u32 + 10) + WAIT_NS + 1;
    w.request(later, "crypto-lrw(cast6)", &root_p);
    let join = w.request(later + 1, "crypto-cast6", &describe(&kthread(6, CRYPTO_PROBE))).unwrap();
    assert_eq!(join.requester.map(|p| p.comm), Some("cryptsetup".to_string()));
    assert!(w.waiters.len() <= 2, "expired waiters go: {}", w.waiters.len());
    // Threads are bounded the same way.
    for pid in 0..MAX_WAITERS as u32 + 1 {
        w.request(later + 2, "crypto-cast6", &describe(&kthread(10_000 + pid, CRYPTO_PROBE)));
    }
    assert_eq!(w.threads.len(), MAX_WAITERS);
}

#[test]
fn a_thread_follows_its_first_request_and_a_nested_template_its_requester() {
    // lrw(cast6) on 6.1: the thread asks for lrw, cast6 and ecb(cast6); the
    // nested thread for ecb(cast6) asks for ecb, and cast6 is there already.
    let nested = || kthread(300, CRYPTO_PROBE);
    let mut events = lrw_bind(user(100), SEC, 200);
    events.extend([
        request(SEC + 10, kthread(200, CRYPTO_PROBE), "crypto-ecb(cast6)"),
        request(SEC + 11, nested(), "crypto-ecb"),
        loaded(SEC + 12, helper(301, "crypto-ecb"), "ecb"),
        // Another waiter's name containing ecb, after the nested thread bound.
        request(SEC + 13, root(90), "crypto-ecb(aes)"),
        request(SEC + 14, nested(), "crypto-ecb-all"),
    ]);
    let (records, profile) = run(events);
    let t = trigger_of(&profile, "ecb");
    assert_eq!(t.requester.as_ref().unwrap().uid, Some(1000), "{t:?}");
    assert!(t.candidates.is_empty(), "{t:?}");
    let last = records.last().unwrap();
    let What::Request { kthread: Some(k), .. } = &last.what else { panic!("{last:?}") };
    assert_eq!((k.requester.as_ref().map(|p| p.uid), k.candidates.len()), (Some(1000), 0), "bound at its first");
}

#[test]
fn names_that_start_no_thread_are_not_kept() {
    let mut w = CryptoWaiters::default();
    let p = Fake.process(&user(1));
    for alias in ["crypto-aes", "crypto-aes-all", "net-pf-38", "crypto-", "algif-skcipher"] {
        assert_eq!(w.request(SEC, alias, &p), None);
    }
    assert!(w.waiters.is_empty());
    w.request(SEC, "crypto-lrw(cast6)", &p);
    w.request(SEC + 1, "crypto-lrw(cast6)-all", &p);
    assert_eq!(w.waiters.len(), 1, "the -all request refreshes the same waiter");
}
