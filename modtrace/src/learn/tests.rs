use std::fs;
use std::time::Duration;

use super::*;
use crate::testutil::*;
use crate::profile::TriggerKind;

fn plan(dir: &TempDir) -> Plan {
    let proc_modules = dir.join("proc-modules");
    fs::write(
        &proc_modules,
        "ext4 1007616 1 - Live 0x0\njbd2 192512 1 ext4, Live 0x0\nmbcache 16384 1 ext4, Live 0x0\n",
    )
    .unwrap();
    let etc = dir.join("modules-load.d");
    fs::create_dir_all(&etc).unwrap();
    fs::write(etc.join("fs.conf"), "ext4\n").unwrap();
    let cmdline = dir.join("cmdline");
    fs::write(&cmdline, "ro quiet\n").unwrap();
    Plan {
        out: dir.join("state/profile.json"),
        fresh: false,
        duration: Some(Duration::from_secs(1)),
        proc_modules,
        preload: PreloadSources { dirs: vec![etc], cmdline, ..PreloadSources::under(&dir.join("root")) },
        checkpoint_every: Duration::from_secs(3600),
        progress: Progress::Quiet,
        kernel: "6.1.0-18-amd64".to_string(),
        host: "test".to_string(),
        boot_id: Some("boot-1".to_string()),
        follow_systemd: false,
        deputies_dir: PathBuf::from("/nonexistent/modtrace/deputies.d"),
        machine_id: Some("0123456789abcdef0123456789abcdef".to_string()),
        packages_root: None,
        evidence: None,
    }
}

fn replay(
    records: Vec<crate::trace::event::Record>,
    lost: u64,
) -> impl FnOnce(&mut dyn FnMut(Option<&crate::trace::event::Record>)) -> anyhow::Result<TraceEnd> {
    move |sink| {
        let n = records.len() as u64;
        for r in &records {
            sink(Some(r));
        }
        Ok(TraceEnd { records: n, drops: Drops { ring_loads: lost, ..Drops::default() }, ended_by: "duration".to_string(), from_initramfs: None })
    }
}

#[test]
fn learn_records_preloaded_and_traced_modules_and_accumulates() {
    let dir = TempDir::new("learn");
    let plan = plan(&dir);
    let index = appletalk_index();
    let out = learn(&plan, &index, replay(appletalk_sequence("2024-03-01T10:00:00Z", guest(5)), 0)).unwrap();
    assert_eq!(out.path, plan.out);
    assert_eq!(out.modules, 6);
    assert_eq!(out.top_level, 2, "appletalk and ext4");
    assert_eq!(out.new_modules.len(), 6);
    let p = profile::load(&plan.out).unwrap();
    assert_eq!(p.sessions.len(), 1);
    assert_eq!(p.sessions[0].records, 4);
    assert_eq!(p.sessions[0].ended_by.as_deref(), Some("duration"));
    assert_eq!(p.boots, ["boot-1"]);
    let ext4 = p.module("ext4").unwrap();
    assert_eq!(ext4.triggers[0].kind, TriggerKind::Preloaded);
    assert!(ext4.triggers[0].reason.as_deref().unwrap().ends_with("modules-load.d/fs.conf"));
    assert!(p.module("appletalk").unwrap().top_level);
    assert!(!p.module("psnap").unwrap().top_level);

    // A second run adds to it.
    let out = learn(&plan, &index, replay(appletalk_sequence("2024-03-02T10:00:00Z", guest(6)), 3)).unwrap();
    assert!(out.new_modules.is_empty());
    assert_eq!(out.drops.total(), 3);
    let p = profile::load(&plan.out).unwrap();
    assert_eq!(p.sessions.len(), 2);
    assert_eq!(p.lost_events(), 3);
    assert_eq!(p.module("appletalk").unwrap().count, 2);
    assert_eq!(p.module("ext4").unwrap().count, 2, "found preloaded by both sessions");
    assert!(outcome_line(&out).contains(&plan.out.display().to_string()));
}

#[test]
fn relearning_keeps_an_admins_decisions_also_when_starting_fresh() {
    let dir = TempDir::new("decisions");
    let mut plan = plan(&dir);
    let index = appletalk_index();
    learn(&plan, &index, replay(appletalk_sequence("2024-03-01T10:00:00Z", guest(5)), 0)).unwrap();
    crate::profile::decide::update(&plan.out, |p| {
        crate::profile::decide::decide(p, "net-pf-5", crate::profile::Verdict::Deny, "2024-03-01T11:00:00Z")
    })
    .unwrap();
    learn(&plan, &index, replay(appletalk_sequence("2024-03-02T10:00:00Z", guest(6)), 0)).unwrap();
    let p = profile::load(&plan.out).unwrap();
    assert_eq!(p.decision("net-pf-5").map(|d| d.verdict), Some(crate::profile::Verdict::Deny));
    assert_eq!(p.sessions.len(), 2);
    plan.fresh = true;
    learn(&plan, &index, replay(Vec::new(), 0)).unwrap();
    let p = profile::load(&plan.out).unwrap();
    assert_eq!(p.sessions.len(), 1, "fresh: the sessions are gone");
    assert_eq!(p.decision("net-pf-5").map(|d| d.verdict), Some(crate::profile::Verdict::Deny), "the decision is not");
}

#[test]
fn learn_refuses_a_corrupt_profile_before_tracing_and_leaves_it() {
    let dir = TempDir::new("corrupt");
    let plan = plan(&dir);
    fs::create_dir_all(plan.out.parent().unwrap()).unwrap();
    fs::write(&plan.out, "{\"schema\": \"modtrace-profile/1\", \"modules\": [").unwrap();
    let mut traced = false;
    let err = learn(&plan, &appletalk_index(), |_sink| {
        traced = true;
        Ok(TraceEnd { records: 0, drops: Drops::default(), ended_by: "duration".into(), from_initramfs: None })
    })
    .unwrap_err();
    assert!(!traced, "tracing must not start");
    let text = format!("{err:#}");
    assert!(text.contains("profile.json:1:") && text.contains("refusing"), "{text}");
    assert_eq!(fs::read_to_string(&plan.out).unwrap(), "{\"schema\": \"modtrace-profile/1\", \"modules\": [");
}

#[test]
fn fresh_keeps_a_backup_and_starts_over() {
    let dir = TempDir::new("fresh");
    let mut plan = plan(&dir);
    fs::create_dir_all(plan.out.parent().unwrap()).unwrap();
    fs::write(&plan.out, "not json").unwrap();
    plan.fresh = true;
    learn(&plan, &appletalk_index(), replay(vec![], 0)).unwrap();
    let mut bak = plan.out.clone().into_os_string();
    bak.push(".bak");
    assert_eq!(fs::read_to_string(bak).unwrap(), "not json");
    assert_eq!(profile::load(&plan.out).unwrap().sessions.len(), 1);
}

#[test]
fn learn_refuses_while_another_learner_holds_the_lock() {
    let dir = TempDir::new("locked");
    let plan = plan(&dir);
    fs::create_dir_all(plan.out.parent().unwrap()).unwrap();
    let _held = profile::lock(&plan.out).unwrap();
    let err = learn(&plan, &appletalk_index(), replay(vec![], 0)).unwrap_err().to_string();
    assert!(err.contains("already learning") && err.contains(&format!("pid {}", std::process::id())), "{err}");
    assert!(!plan.out.exists());
}

#[test]
fn checkpoints_are_written_while_learning() {
    let dir = TempDir::new("checkpoint");
    let mut plan = plan(&dir);
    plan.checkpoint_every = Duration::ZERO;
    let path = plan.out.clone();
    let records = appletalk_sequence("2024-03-01T10:00:00Z", guest(5));
    let out = learn(&plan, &appletalk_index(), |sink| {
        sink(Some(&records[0]));
        sink(Some(&records[3]));
        let mid = profile::load(&path).expect("a checkpoint was written");
        assert_eq!(mid.sessions[0].ended_by.as_deref(), Some("checkpoint"));
        assert!(mid.module("appletalk").is_some());
        Ok(TraceEnd { records: 2, drops: Drops::default(), ended_by: "SIGINT".into(), from_initramfs: None })
    })
    .unwrap();
    assert!(out.checkpoints >= 1);
    let p = profile::load(&path).unwrap();
    assert_eq!(p.sessions.len(), 1, "checkpoints do not add sessions");
    assert_eq!(p.sessions[0].ended_by.as_deref(), Some("SIGINT"));
}

#[test]
fn a_tick_saves_a_change_that_no_later_record_would() {
    let dir = TempDir::new("tick");
    let mut plan = plan(&dir);
    plan.checkpoint_every = Duration::from_millis(50);
    let path = plan.out.clone();
    let records = appletalk_sequence("2024-03-01T10:00:00Z", guest(5));
    learn(&plan, &appletalk_index(), |sink| {
        sink(Some(&records[0]));
        sink(Some(&records[3]));
        assert!(!path.exists(), "no checkpoint before the interval");
        std::thread::sleep(Duration::from_millis(80));
        sink(None);
        let mid = profile::load(&path).expect("the tick wrote a checkpoint");
        assert!(mid.module("appletalk").is_some());
        Ok(TraceEnd { records: 1, drops: Drops::default(), ended_by: "SIGINT".into(), from_initramfs: None })
    })
    .unwrap();
}

#[test]
fn a_tracer_that_fails_after_records_still_saves() {
    let dir = TempDir::new("fails");
    let plan = plan(&dir);
    let records = appletalk_sequence("2024-03-01T10:00:00Z", guest(5));
    let err = learn(&plan, &appletalk_index(), |sink| {
        for r in &records {
            sink(Some(r));
        }
        Err(anyhow!("ring buffer went away"))
    })
    .unwrap_err();
    assert!(format!("{err:#}").contains("saved in"), "{err:#}");
    let p = profile::load(&plan.out).unwrap();
    assert!(p.module("appletalk").is_some());
    assert_eq!(p.sessions[0].ended_by.as_deref(), Some("error"));

    // A tracer that cannot start writes nothing.
    let dir = TempDir::new("nostart");
    let plan = self::plan(&dir);
    learn(&plan, &appletalk_index(), |_| Err(anyhow!("no BPF"))).unwrap_err();
    assert!(!plan.out.exists());
}

#[test]
fn progress_displays_start_and_stop() {
    // Exercises the templates and the ticker threads (the bar hides itself when
    // stderr is not a terminal, as under `cargo test`).
    for mode in [Progress::Bar, Progress::Plain, Progress::Quiet] {
        for duration in [Some(Duration::from_secs(5)), None] {
            let status = Arc::new(Mutex::new(Status { modules: 3, latest: Some("appletalk (udev)".into()) }));
            let t = Ticker::start(mode, duration, std::path::Path::new("/tmp/p.json"), status);
            t.say("modtrace: a message");
            std::thread::sleep(Duration::from_millis(300));
            t.stop();
        }
    }
}

#[test]
fn short_causes_read_well() {
    let rec = &appletalk_sequence("2024-03-01T10:00:00Z", guest(5))[1];
    let crate::trace::event::What::Loaded { cause, .. } = &rec.what else { panic!() };
    assert_eq!(short_cause(cause), "for appletalk, request net-pf-5 by modtrace-guest");
    let rec = loaded_explicit("2024-03-01T10:00:00Z", "llc", 0);
    let crate::trace::event::What::Loaded { cause, .. } = &rec.what else { panic!() };
    assert_eq!(short_cause(cause), "explicit by modprobe from bash");
}

#[test]
fn a_module_loaded_between_attaching_and_reading_proc_modules_keeps_its_traced_cause() {
    let dir = TempDir::new("attach-first");
    let plan = plan(&dir);
    let records = appletalk_sequence("2024-03-01T10:00:00Z", guest(5));
    let proc_modules = plan.proc_modules.clone();
    learn(&plan, &appletalk_index(), |sink| {
        // tcp_bic loaded while the probes were being attached (no record);
        // then, attached, the autoload happens; then the tracer says it is
        // attached (learn reads /proc/modules), and the ring is drained after.
        let mut text = fs::read_to_string(&proc_modules).unwrap();
        text.push_str("tcp_bic 16384 0 - Live 0x0\nllc 16384 2 psnap,appletalk, Live 0x0\npsnap 16384 1 appletalk, Live 0x0\nappletalk 45056 0 - Live 0x0\n");
        fs::write(&proc_modules, text).unwrap();
        sink(None);
        for r in &records {
            sink(Some(r));
        }
        Ok(TraceEnd { records: 4, drops: Drops::default(), ended_by: "duration".into(), from_initramfs: None })
    })
    .unwrap();
    let p = profile::load(&plan.out).unwrap();
    for m in ["llc", "psnap", "appletalk"] {
        let kinds: Vec<_> = p.module(m).unwrap().triggers.iter().map(|t| t.kind).collect();
        assert_eq!(kinds, [TriggerKind::Request], "{m}");
    }
    for m in ["ext4", "tcp_bic"] {
        let kinds: Vec<_> = p.module(m).expect(m).triggers.iter().map(|t| t.kind).collect();
        assert_eq!(kinds, [TriggerKind::Preloaded], "{m}");
    }
    assert_eq!(p.sessions[0].drops, Some(Drops::default()));
}

#[test]
fn a_module_still_loading_when_proc_modules_is_read_is_traced_not_preloaded() {
    let dir = TempDir::new("in-flight");
    let plan = plan(&dir);
    let proc_modules = plan.proc_modules.clone();
    learn(&plan, &appletalk_index(), |sink| {
        let mut text = fs::read_to_string(&proc_modules).unwrap();
        // /proc/modules lists vfat while its load is still in flight.
        text.push_str("vfat 24576 0 - Loading 0x0\n");
        fs::write(&proc_modules, text).unwrap();
        sink(None);
        let later = crate::trace::pipeline::monotonic_ns() + 1_000_000_000;
        let mut vfat = loaded_explicit("2024-03-01T10:00:01Z", "vfat", 0);
        vfat.ts_ns = later;
        sink(Some(&vfat));
        // ext4 was there before: unloaded and loaded again, it stays preloaded too.
        let mut gone = loaded_explicit("2024-03-01T10:00:02Z", "ext4", 0);
        gone.what = What::Unloaded { module: "ext4".into() };
        gone.ts_ns = later + 1;
        sink(Some(&gone));
        let mut again = loaded_explicit("2024-03-01T10:00:03Z", "ext4", 0);
        again.ts_ns = later + 2;
        sink(Some(&again));
        Ok(TraceEnd { records: 3, drops: Drops::default(), ended_by: "duration".into(), from_initramfs: None })
    })
    .unwrap();
    let p = profile::load(&plan.out).unwrap();
    let kinds = |m: &str| -> Vec<TriggerKind> { p.module(m).expect(m).triggers.iter().map(|t| t.kind).collect() };
    assert_eq!(kinds("vfat"), [TriggerKind::Explicit]);
    let mut ext4 = kinds("ext4");
    ext4.sort();
    assert_eq!(ext4, [TriggerKind::Explicit, TriggerKind::Preloaded]);
}

/// A module a user made the kernel autoload before learning (atm, for a
/// socket): found loaded, nothing explains it. It needs review in the first
/// session and in every later one that finds it loaded again; only a load
/// that root makes while learning adds a trusted cause. ext4's dependencies,
/// loaded with it, are explained by it.
#[test]
fn a_module_found_loaded_stays_under_review_until_root_loads_it() {
    let dir = TempDir::new("relearn");
    let plan = plan(&dir);
    let with_atm = format!("{}atm 16384 0 - Live 0x0\n", fs::read_to_string(&plan.proc_modules).unwrap());
    fs::write(&plan.proc_modules, with_atm).unwrap();
    let index = appletalk_index();
    let review = |p: &Profile| {
        let plan = crate::needs::plan(p, &crate::needs::target::Target::from_profile(p)).unwrap();
        (plan.review.get("atm").map(|h| h.why.clone()), plan.needs.contains_key("atm"))
    };
    for session in 1..=2u64 {
        learn(&plan, &index, replay(Vec::new(), 0)).unwrap();
        let p = profile::load(&plan.out).unwrap();
        let atm = p.module("atm").unwrap();
        assert_eq!((atm.triggers.len(), atm.triggers[0].count), (1, session), "{atm:?}");
        assert_eq!(atm.triggers[0].reason.as_deref(), Some(crate::profile::BEFORE_LEARNING));
        let (why, listed) = review(&p);
        assert!(!listed && why.as_deref().is_some_and(|w| w.contains("cause unknown")), "session {session}: {why:?}");
        let jbd2 = &p.module("jbd2").unwrap().triggers[0];
        assert_eq!(jbd2.reason.as_deref(), Some("a dependency of ext4, which is trusted"));
    }
    // Unloaded, then root's modprobe loads it while learning.
    fs::write(&plan.proc_modules, "ext4 1007616 1 - Live 0x0\n").unwrap();
    learn(&plan, &index, replay(vec![loaded_explicit("2024-03-03T10:00:00Z", "atm", 0)], 0)).unwrap();
    let p = profile::load(&plan.out).unwrap();
    let kinds: Vec<TriggerKind> = p.module("atm").unwrap().triggers.iter().map(|t| t.kind).collect();
    assert_eq!(kinds, [TriggerKind::Preloaded, TriggerKind::Explicit]);
    assert_eq!(review(&p), (None, true), "root's own load is trusted");
}

#[test]
fn learning_announces_new_modules_and_records_machine_id_and_packages() {
    let dir = TempDir::new("learn-evidence");
    let root = dir.join("root");
    for (path, text) in [
        ("var/lib/dpkg/info/python3-minimal.list", "/usr/bin/python3\n"),
        ("var/lib/dpkg/info/kmod.list", "/bin/kmod\n"),
        ("var/lib/dpkg/info/example.list", "/lib/systemd/system/example.service\n"),
        ("lib/systemd/system/example.service", "[Unit]\n"),
    ] {
        fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
        fs::write(root.join(path), text).unwrap();
    }
    let (sink, got) = super::evidence::tests::capture();
    let plan = Plan { packages_root: Some(root), evidence: Some(sink), ..plan(&dir) };
    learn(&plan, &appletalk_index(), replay(appletalk_sequence("2024-03-01T10:00:00Z", guest(5)), 0)).unwrap();
    let p = profile::load(&plan.out).unwrap();
    assert_eq!(p.machine_id.as_deref(), Some("0123456789abcdef0123456789abcdef"));
    assert_eq!(p.packages.units.get("example.service").map(String::as_str), Some("example"));
    assert_eq!(p.packages.executables.get("/usr/bin/kmod").map(String::as_str), Some("kmod"));
    let modules: Vec<String> = {
        let entries = &got.lock().unwrap().0;
        let appletalk = entries.iter().find(|e| e.field("MODTRACE_MODULE") == Some("appletalk")).unwrap();
        assert_eq!(appletalk.field("MODTRACE_PACKAGE"), Some("example"), "{appletalk:?}");
        assert_eq!(appletalk.field("MODTRACE_TRUST"), Some("trusted"));
        entries.iter().filter_map(|e| e.field("MODTRACE_MODULE").map(str::to_string)).collect()
    };
    for m in ["appletalk", "ext4", "jbd2", "llc", "mbcache", "psnap"] {
        assert_eq!(modules.iter().filter(|n| *n == m).count(), 1, "{m} announced once: {modules:?}");
    }
    got.lock().unwrap().0.clear();
    learn(&plan, &appletalk_index(), replay(appletalk_sequence("2024-03-01T11:00:00Z", guest(6)), 0)).unwrap();
    let again = &got.lock().unwrap().0;
    assert!(again.iter().all(|e| e.field("MODTRACE_MODULE").is_none()), "nothing new the second time: {again:?}");
}
