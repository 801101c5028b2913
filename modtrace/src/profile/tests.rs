use std::collections::BTreeMap;
use std::fs;

use crate::testutil::*;
use super::*;
use crate::trace::event::What;
use crate::trace::snapshot::parse_proc_modules;

fn module<'a>(p: &'a Profile, name: &str) -> &'a Module {
    p.module(name).unwrap_or_else(|| panic!("{name} not in the profile"))
}

#[test]
fn appletalk_is_top_level_and_its_dependencies_are_not() {
    let mut p = Profile::new("6.1.0", "h");
    for r in appletalk_sequence("2024-03-01T10:00:00Z", guest(10)) {
        assert!(p.observe(&r));
    }
    p.settle(&appletalk_index());
    let names: Vec<&str> = p.modules.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["appletalk", "llc", "psnap"]);
    let at = module(&p, "appletalk");
    assert!(at.top_level);
    assert_eq!(at.depends_on, ["llc", "psnap"]);
    assert!(at.needed_by.is_empty());
    assert!(!module(&p, "psnap").top_level);
    assert_eq!(module(&p, "psnap").needed_by, ["appletalk"]);
    assert!(!module(&p, "llc").top_level);
    assert_eq!(module(&p, "llc").needed_by, ["appletalk", "psnap"]);
}

#[test]
fn a_dependency_alone_is_top_level() {
    // llc loaded by itself (no appletalk in the profile) is what must be listed.
    let mut p = Profile::new("6.1.0", "h");
    p.observe(&loaded_explicit("2024-03-01T10:00:00Z", "llc", 0));
    p.settle(&appletalk_index());
    assert!(module(&p, "llc").top_level);
}

#[test]
fn request_trigger_names_requester_loader_and_alias() {
    let mut p = Profile::new("6.1.0", "h");
    for r in appletalk_sequence("2024-03-01T10:00:00Z", guest(10)) {
        p.observe(&r);
    }
    let t = &module(&p, "appletalk").triggers;
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].kind, TriggerKind::Request);
    assert_eq!(t[0].alias.as_deref(), Some("net-pf-5"));
    assert_eq!(t[0].needed_by, None);
    let req = t[0].requester.as_ref().unwrap();
    assert_eq!(req.comm, "modtrace-guest");
    assert_eq!(req.exe.as_deref(), Some("/usr/bin/python3"));
    assert_eq!(req.unit.as_deref(), Some("example.service"));
    assert_eq!(req.cgroup.as_deref(), Some("/system.slice/example.service"));
    assert_eq!(req.pid, Some(10));
    assert_eq!(t[0].loader.as_ref().unwrap().comm, "modprobe");
    // Dependencies name the module that pulled them in.
    let psnap = &module(&p, "psnap").triggers[0];
    assert_eq!(psnap.needed_by.as_deref(), Some("appletalk"));
    assert_eq!(psnap.alias.as_deref(), Some("net-pf-5"));
    assert_eq!(module(&p, "llc").triggers[0].needed_by.as_deref(), Some("appletalk"));
}

#[test]
fn triggers_aggregate_across_pids_but_not_across_units() {
    let mut p = Profile::new("6.1.0", "h");
    for (pid, t) in [(10, "2024-03-01T10:00:00Z"), (11, "2024-03-01T11:00:00Z"), (12, "2024-03-01T09:00:00Z")] {
        for r in appletalk_sequence(t, guest(pid)) {
            p.observe(&r);
        }
    }
    let other = process(20, "modtrace-guest", Some("/usr/bin/python3"), Some("other.service"));
    for r in appletalk_sequence("2024-03-01T12:00:00Z", other) {
        p.observe(&r);
    }
    let at = module(&p, "appletalk");
    assert_eq!(at.count, 4);
    assert_eq!(at.triggers.len(), 2, "{:#?}", at.triggers);
    assert_eq!(at.triggers[0].count, 3);
    // The latest pid is kept, not one trigger per pid.
    assert_eq!(at.triggers[0].requester.as_ref().unwrap().pid, Some(12));
    assert_eq!(at.triggers[1].requester.as_ref().unwrap().unit.as_deref(), Some("other.service"));
    assert_eq!(at.first_seen, "2024-03-01T09:00:00Z");
    assert_eq!(at.last_seen, "2024-03-01T12:00:00Z");
    let req = &p.requests[0];
    assert_eq!(req.alias, "net-pf-5");
    assert_eq!(req.count, 4);
    assert_eq!(req.requesters.len(), 2);
    assert_eq!(req.requesters[0].count, 3);
}

#[test]
fn failed_requests_and_failed_loads_are_kept() {
    let mut p = Profile::new("6.1.0", "h");
    p.observe(&request("2024-03-01T10:00:00Z", guest(10), "net-pf-38", &[]));
    p.observe(&failed_load("2024-03-01T10:00:00Z", "net-pf-5", "appletalk", -1, "EPERM", 0));
    p.observe(&failed_load("2024-03-01T10:01:00Z", "net-pf-5", "appletalk", -1, "EPERM", 4));
    p.observe(&failed_load("2024-03-01T10:02:00Z", "net-pf-5", "appletalk", -2, "ENOENT", 0));
    assert_eq!(p.requests.len(), 1);
    assert!(p.requests[0].resolves_to.is_empty());
    assert_eq!(p.failed.len(), 2);
    let eperm = &p.failed[0];
    assert_eq!(eperm.count, 6, "1 + (1 + 4 folded repeats)");
    assert_eq!(eperm.error.as_deref(), Some("EPERM"));
    assert_eq!(eperm.module.as_deref(), Some("appletalk"));
    assert_eq!(eperm.alias.as_deref(), Some("net-pf-5"));
    assert_eq!(eperm.requester.as_ref().unwrap().comm, "modtrace-guest");
    assert_eq!(eperm.first_seen, "2024-03-01T10:00:00Z");
    assert_eq!(eperm.last_seen, "2024-03-01T10:01:00Z");
    assert!(p.modules.is_empty(), "a failed load is no module");
}

#[test]
fn taints_become_letters() {
    let mut p = Profile::new("6.1.0", "h");
    p.observe(&loaded_explicit("2024-03-01T10:00:00Z", "nvidia", (1 << 12) | (1 << 13) | 1));
    assert_eq!(module(&p, "nvidia").taints, ["E", "O", "P"]);
}

#[test]
fn preloaded_modules_carry_their_reason() {
    let mut p = Profile::new("6.1.0", "h");
    let text = "ext4 1007616 1 - Live 0x0\njbd2 192512 1 ext4, Live 0x0\nvboxdrv 700000 0 - Live 0x0 (OE)\n";
    let mut reasons = BTreeMap::new();
    reasons.insert("ext4".to_string(), "/etc/modules-load.d/ext4.conf".to_string());
    p.add_preloaded(&parse_proc_modules(text).unwrap(), &reasons, "2024-03-01T10:00:00Z");
    p.settle(&appletalk_index());
    let ext4 = module(&p, "ext4");
    assert_eq!(ext4.triggers[0].kind, TriggerKind::Preloaded);
    assert_eq!(ext4.triggers[0].reason.as_deref(), Some("/etc/modules-load.d/ext4.conf"));
    assert_eq!(module(&p, "jbd2").triggers[0].reason.as_deref(), Some(BEFORE_LEARNING));
    assert!(!module(&p, "jbd2").top_level);
    assert_eq!(module(&p, "vboxdrv").taints, ["E", "O"]);
    // A second session that finds it again counts it again, in the same trigger.
    p.add_preloaded(&parse_proc_modules(text).unwrap(), &reasons, "2024-03-02T10:00:00Z");
    assert_eq!(module(&p, "ext4").count, 2);
    assert_eq!(module(&p, "ext4").triggers.len(), 1);
    assert_eq!(module(&p, "ext4").last_seen, "2024-03-02T10:00:00Z");
}

#[test]
fn preload_reasons_from_modules_load_d_and_cmdline() {
    let dir = TempDir::new("preload");
    let etc = dir.join("etc");
    let usr = dir.join("usr");
    fs::create_dir_all(&etc).unwrap();
    fs::create_dir_all(&usr).unwrap();
    fs::write(etc.join("net.conf"), "# comment\n; also a comment\n\nappletalk\n  psnap  \n").unwrap();
    fs::write(etc.join("ignored.txt"), "binfmt_misc\n").unwrap();
    // Same name in /usr/lib: hidden by /etc's file.
    fs::write(usr.join("net.conf"), "llc\n").unwrap();
    fs::write(usr.join("snd.conf"), "snd-hda-intel\n").unwrap();
    // Masked by a link to /dev/null in /etc.
    fs::write(usr.join("masked.conf"), "ext4\n").unwrap();
    std::os::unix::fs::symlink("/dev/null", etc.join("masked.conf")).unwrap();
    let cmdline = dir.join("cmdline");
    fs::write(
        &cmdline,
        "BOOT_IMAGE=/vmlinuz root=UUID=x ro modules-load=vfat,appletalk rd.modules_load=\"dm_crypt\" quiet\n",
    )
    .unwrap();
    let sources = PreloadSources { dirs: vec![etc.clone(), usr.clone()], cmdline, ..PreloadSources::under(dir.path()) };
    let reasons = configured_reasons(&sources);
    let etc_net = etc.join("net.conf").display().to_string();
    assert_eq!(reasons.get("appletalk"), Some(&format!("kernel command line: modules-load=appletalk; {etc_net}")));
    assert_eq!(reasons.get("psnap"), Some(&etc_net));
    assert_eq!(reasons.get("snd_hda_intel"), Some(&usr.join("snd.conf").display().to_string()));
    assert_eq!(reasons.get("vfat").map(String::as_str), Some("kernel command line: modules-load=vfat"));
    assert_eq!(reasons.get("dm_crypt").map(String::as_str), Some("kernel command line: rd.modules_load=dm_crypt"));
    assert!(!reasons.contains_key("llc"), "hidden by /etc/.../net.conf");
    assert!(!reasons.contains_key("ext4"), "masked");
    assert!(!reasons.contains_key("binfmt_misc"), "not a .conf file");
    // Missing sources are no error.
    let none = configured_reasons(&PreloadSources::under(&dir.join("nope")));
    assert!(none.is_empty());
}

fn session(start: &str, end: &str, boot: &str) -> Session {
    Session {
        start: start.to_string(),
        end: end.to_string(),
        duration_secs: 60,
        kernel: "6.1.0".to_string(),
        boot_id: Some(boot.to_string()),
        ended_by: Some("duration".to_string()),
        records: 4,
        lost_events: 1,
        drops: None,
        from_initramfs: None,
        host: None,
        extra: Default::default(),
    }
}

#[test]
fn merge_adds_counts_and_widens_times() {
    let mut old = Profile::new("6.1.0-17-amd64", "h");
    old.boots.push("boot-a".into());
    old.sessions.push(session("2024-03-01T10:00:00Z", "2024-03-01T10:01:00Z", "boot-a"));
    for r in appletalk_sequence("2024-03-01T10:00:30Z", guest(10)) {
        old.observe(&r);
    }
    old.settle(&appletalk_index());
    let mut new = Profile::new("6.1.0-18-amd64", "h");
    new.boots.push("boot-b".into());
    new.boots.push("boot-a".into());
    new.boots.sort();
    new.sessions.push(session("2024-03-02T10:00:00Z", "2024-03-02T10:01:00Z", "boot-b"));
    for r in appletalk_sequence("2024-03-02T10:00:30Z", guest(99)) {
        new.observe(&r);
    }
    for r in appletalk_sequence("2024-02-28T10:00:30Z", guest(98)) {
        new.observe(&r);
    }
    new.observe(&loaded_udev("2024-03-02T10:00:40Z", "snd_hda_intel"));
    old.merge(new);
    old.settle(&appletalk_index());
    assert_eq!(old.kernel, "6.1.0-18-amd64");
    assert_eq!(old.boots, ["boot-a", "boot-b"]);
    assert_eq!(old.sessions.len(), 2);
    assert_eq!(old.lost_events(), 2);
    let at = module(&old, "appletalk");
    assert_eq!(at.count, 3);
    assert_eq!(at.triggers.len(), 1);
    assert_eq!(at.triggers[0].count, 3);
    assert_eq!(at.triggers[0].requester.as_ref().unwrap().pid, Some(98), "the newer side's latest pid");
    assert_eq!(at.first_seen, "2024-02-28T10:00:30Z");
    assert_eq!(at.last_seen, "2024-03-02T10:00:30Z");
    assert!(at.top_level);
    assert!(module(&old, "snd_hda_intel").top_level);
    assert_eq!(old.requests[0].count, 3);
    assert_eq!(old.requests[0].requesters[0].count, 3);
}

#[test]
fn unknown_fields_survive_merge_and_rewrite() {
    let dir = TempDir::new("extra");
    let path = dir.join("profile.json");
    let mut p = Profile::new("6.1.0", "h");
    for r in appletalk_sequence("2024-03-01T10:00:00Z", guest(10)) {
        p.observe(&r);
    }
    p.settle(&appletalk_index());
    let mut v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
    v["comment"] = "kept by hand".into();
    v["modules"][0]["decision"] = "keep".into();
    v["modules"][0]["triggers"][0]["note"] = "a test".into();
    v["requests"][0]["ticket"] = 42.into();
    fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();

    let mut loaded = load(&path).unwrap();
    let mut newer = Profile::new("6.1.0", "h");
    for r in appletalk_sequence("2024-03-02T10:00:00Z", guest(11)) {
        newer.observe(&r);
    }
    loaded.merge(newer);
    loaded.settle(&appletalk_index());
    save(&path, &loaded).unwrap();
    let back: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(back["comment"], "kept by hand");
    assert_eq!(back["modules"][0]["name"], "appletalk");
    assert_eq!(back["modules"][0]["decision"], "keep");
    assert_eq!(back["modules"][0]["count"], 2);
    assert_eq!(back["modules"][0]["triggers"][0]["note"], "a test");
    assert_eq!(back["requests"][0]["ticket"], 42);
    // And the file round-trips to the same text.
    assert_eq!(load(&path).unwrap().to_json(), fs::read_to_string(&path).unwrap());
}

#[test]
fn output_is_deterministic_and_keys_are_in_a_stable_order() {
    let a = example_profile().to_json();
    let b = example_profile().to_json();
    assert_eq!(a, b);
    let top: Vec<String> =
        serde_json::from_str::<serde_json::Value>(&a).unwrap().as_object().unwrap().keys().cloned().collect();
    assert_eq!(top, ["schema", "kernel", "host", "boots", "sessions", "modules", "requests", "failed", "decisions"]);
}

#[test]
fn unknown_schema_is_an_error() {
    let dir = TempDir::new("schema");
    let path = dir.join("p.json");
    fs::write(&path, r#"{"schema": "modtrace-profile/3", "kernel": "x"}"#).unwrap();
    let err = load(&path).unwrap_err().to_string();
    assert!(err.contains("p.json"), "{err}");
    assert!(err.contains("unknown schema \"modtrace-profile/3\""), "{err}");
    fs::write(&path, r#"{"kernel": "x"}"#).unwrap();
    let err = load(&path).unwrap_err().to_string();
    assert!(err.contains("no \"schema\" field"), "{err}");
    fs::write(&path, r#"["modtrace-profile/1"]"#).unwrap();
    let err = load(&path).unwrap_err().to_string();
    assert!(err.contains("not a JSON object"), "{err}");
}

#[test]
fn truncated_and_non_json_files_name_file_and_position() {
    let dir = TempDir::new("bad");
    let path = dir.join("profile.json");
    let good = example_profile().to_json();
    let cut = &good[..good.len() / 2];
    fs::write(&path, cut).unwrap();
    let err = load(&path).unwrap_err();
    let StoreError::Parse { line, column, .. } = &err else { panic!("{err:?}") };
    let expected_line = cut.lines().count();
    assert_eq!(*line, expected_line, "{err}");
    assert!(*column > 0);
    let text = err.to_string();
    assert!(text.starts_with(&format!("{}:{line}:{column}: ", path.display())), "{text}");
    assert!(text.contains("truncated"), "{text}");
    assert_eq!(fs::read_to_string(&path).unwrap(), cut, "the file is untouched");

    fs::write(&path, "schema = modtrace\n").unwrap();
    let text = load(&path).unwrap_err().to_string();
    assert!(text.starts_with(&format!("{}:1:1: not valid JSON", path.display())), "{text}");

    fs::write(&path, "").unwrap();
    assert!(load(&path).unwrap_err().to_string().contains("empty"));

    // Right schema, wrong shape: the position of the bad field.
    fs::write(&path, "{\n  \"schema\": \"modtrace-profile/1\",\n  \"kernel\": 5,\n  \"host\": \"h\"\n}\n").unwrap();
    let err = load(&path).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Parse { line: 3, .. }), "{text}");
    assert!(text.contains("not a valid modtrace profile"), "{text}");
}

#[test]
fn atomic_write_replaces_and_keeps_the_old_file_on_failure() {
    let dir = TempDir::new("atomic");
    let path = dir.join("profile.json");
    save(&path, &Profile::new("1", "old")).unwrap();
    let old = fs::read_to_string(&path).unwrap();
    // A directory where the temp file goes: the write fails, the old file stays.
    fs::create_dir(store::temp_path(&path)).unwrap();
    let err = save(&path, &Profile::new("2", "new")).unwrap_err();
    assert!(err.to_string().contains("profile.json"), "{err}");
    assert_eq!(fs::read_to_string(&path).unwrap(), old);
    fs::remove_dir(store::temp_path(&path)).unwrap();
    // Then it works, and leaves no temp file behind.
    save(&path, &Profile::new("2", "new")).unwrap();
    assert_eq!(load(&path).unwrap().host, "new");
    let names: Vec<String> =
        fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["profile.json"]);
}

#[test]
fn atomic_write_keeps_the_file_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("mode");
    let path = dir.join("profile.json");
    save(&path, &Profile::new("1", "h")).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    save(&path, &Profile::new("2", "h")).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn check_writable_refuses_a_missing_directory_and_a_directory_profile() {
    let dir = TempDir::new("writable");
    check_writable(&dir.join("profile.json")).unwrap();
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "the probe file is removed");
    let err = check_writable(&dir.join("missing/profile.json")).unwrap_err().to_string();
    assert!(err.contains("cannot write in") && err.contains("missing"), "{err}");
    fs::create_dir(dir.join("isdir")).unwrap();
    let err = check_writable(&dir.join("isdir")).unwrap_err().to_string();
    assert!(err.contains("is a directory"), "{err}");
}

#[test]
fn a_second_learner_is_refused_with_the_holders_pid() {
    let dir = TempDir::new("lock");
    let path = dir.join("profile.json");
    let held = lock(&path).unwrap();
    assert_eq!(held.path, dir.join("profile.json.lock"));
    assert_eq!(fs::read_to_string(&held.path).unwrap().trim(), std::process::id().to_string());
    let err = lock(&path).unwrap_err();
    assert!(matches!(err, StoreError::Locked { pid: Some(pid), .. } if pid == std::process::id()), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("pid {}", std::process::id())) && text.contains("profile.json"), "{text}");
    drop(held);
    lock(&path).expect("free again once the holder is gone");
}

/// docs/profile.md's example is this test's profile, so it cannot drift.
/// MODTRACE_BLESS=1 rewrites the example in the doc.
#[test]
fn docs_example_is_a_real_profile() {
    let doc_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/profile.md");
    let doc = fs::read_to_string(&doc_path).expect("docs/profile.md");
    let start_marker = "<!-- example:begin -->\n```json\n";
    let end_marker = "```\n<!-- example:end -->";
    let start = doc.find(start_marker).expect("example start marker") + start_marker.len();
    let end = doc[start..].find(end_marker).expect("example end marker") + start;
    let json = example_profile().to_json();
    if std::env::var_os("MODTRACE_BLESS").is_some() {
        fs::write(&doc_path, format!("{}{}{}", &doc[..start], json, &doc[end..])).unwrap();
        return;
    }
    assert_eq!(&doc[start..end], json, "docs/profile.md's example is stale: rerun with MODTRACE_BLESS=1");
    // Every key of the example is documented.
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut keys = std::collections::BTreeSet::new();
    collect_keys(&v, &mut keys);
    for k in keys {
        assert!(doc.contains(&format!("`{k}`")), "docs/profile.md does not document `{k}`");
    }
}

fn collect_keys(v: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                out.insert(k.clone());
                collect_keys(v, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_keys(v, out)),
        _ => {}
    }
}

/// A udev worker's cpufreq driver: module_load fired, then init failed (ENODEV)
/// and the kernel freed it. It must not be listed: the lock unit would fail on it.
#[test]
fn a_module_whose_init_failed_is_taken_back_and_listed_as_failed() {
    let udev_load_failed = |time: &str, module: &str| {
        let mut r = failed_load(time, "", module, -19, "ENODEV", 0);
        let loaded = loaded_udev(time, module);
        r.process = loaded.process.clone();
        if let What::Load { module: m, cause, .. } = &mut r.what {
            *m = Some(module.to_string());
            *cause = match &loaded.what {
                What::Loaded { cause, .. } => Some(cause.clone()),
                _ => None,
            };
        }
        r
    };
    let mut p = Profile::new("6.1.0", "h");
    p.observe(&loaded_udev("2024-03-01T10:00:00Z", "snd_hda_intel"));
    p.observe(&loaded_udev("2024-03-01T10:00:01Z", "acpi_cpufreq"));
    p.observe(&udev_load_failed("2024-03-01T10:00:01Z", "acpi_cpufreq"));
    assert!(p.module("acpi_cpufreq").is_none(), "{:?}", p.modules);
    assert!(p.module("snd_hda_intel").is_some());
    let f = &p.failed[0];
    assert_eq!((f.module.as_deref(), f.error.as_deref()), (Some("acpi_cpufreq"), Some("ENODEV")));

    // Loaded for real once, failed once later: kept, with one count.
    p.observe(&loaded_udev("2024-03-01T10:01:00Z", "acpi_cpufreq"));
    p.observe(&loaded_udev("2024-03-01T10:02:00Z", "acpi_cpufreq"));
    p.observe(&udev_load_failed("2024-03-01T10:02:00Z", "acpi_cpufreq"));
    assert_eq!(module(&p, "acpi_cpufreq").count, 1);
    assert_eq!(module(&p, "acpi_cpufreq").triggers[0].count, 1);
}

/// A modtrace-profile/1 file: read, never refused; scopes from the recorded
/// cgroups, uids unknown, so its request is for review and its preload trusted.
#[test]
fn a_v1_profile_is_migrated_and_its_requests_are_not_trusted_by_themselves() {
    let dir = TempDir::new("v1");
    let path = dir.join("p.json");
    let v1 = r#"{"schema": "modtrace-profile/1", "kernel": "6.1.0-18-amd64", "host": "h", "boots": [], "sessions": [],
      "modules": [
        {"name": "ext4", "top_level": true, "count": 1, "first_seen": "t", "last_seen": "t",
         "triggers": [{"kind": "preloaded", "reason": "/etc/modules-load.d/ext4.conf", "count": 1}]},
        {"name": "appletalk", "top_level": true, "count": 1, "first_seen": "t", "last_seen": "t",
         "triggers": [{"kind": "request", "alias": "net-pf-5", "count": 1,
           "requester": {"comm": "Xorg", "exe": null, "pid": 7, "unit": "lightdm.service",
                         "cgroup": "/user.slice/user-1000.slice/user@1000.service/app.slice/lightdm.service"},
           "loader": {"comm": "modprobe", "exe": "/usr/bin/kmod", "unit": null}}]}],
      "requests": [{"alias": "net-pf-5", "resolves_to": ["appletalk"], "count": 1, "first_seen": "t", "last_seen": "t",
                    "requesters": [{"comm": "Xorg", "unit": "lightdm.service", "cgroup": "/system.slice/lightdm.service", "count": 1}]}],
      "failed": []}"#;
    fs::write(&path, v1).unwrap();
    let p = load(&path).unwrap();
    assert_eq!(p.schema, SCHEMA);
    assert_eq!(p.migrated_from.as_deref(), Some(SCHEMA_V1));
    assert_eq!(p.modules[0].name, "appletalk", "sorted on reading");
    let t = &p.modules[0].triggers[0];
    let r = t.requester.as_ref().unwrap();
    assert_eq!(r.uid, None);
    assert_eq!(r.scope, crate::trace::scope::Scope::User { uid: 1000, unit: "lightdm.service".into() });
    assert_eq!(t.loader.as_ref().unwrap().scope, crate::trace::scope::Scope::Unknown, "a /1 loader has no cgroup");
    assert_eq!(p.requests[0].requesters[0].who.scope, crate::trace::scope::Scope::System { unit: "lightdm.service".into() });
    let plan = crate::needs::plan(&p, &crate::needs::target::Target::from_profile(&p)).unwrap();
    assert_eq!(plan.top_level, ["ext4"]);
    assert!(plan.review.contains_key("appletalk"), "{:?}", plan.review);
    // Saving writes /2, and reading that back is no migration.
    save(&path, &p).unwrap();
    let again = load(&path).unwrap();
    assert!(fs::read_to_string(&path).unwrap().contains("\"schema\": \"modtrace-profile/2\""));
    assert_eq!(again.migrated_from.as_deref(), Some(SCHEMA_V1), "the note stays");
}

/// A hand edit: unsorted entries are sorted, duplicates refused with both positions.
#[test]
fn hand_edited_duplicates_are_refused_with_their_positions() {
    let dir = TempDir::new("dups");
    let path = dir.join("p.json");
    let mut p = example_profile();
    p.modules.reverse();
    save(&path, &p).unwrap();
    assert_eq!(load(&path).unwrap().modules, example_profile().modules);
    let dup = p.modules[0].clone();
    p.modules.push(dup);
    save(&path, &p).unwrap();
    let err = load(&path).unwrap_err().to_string();
    assert!(err.contains("modules[0] and modules[8] are both \"snd_hda_intel\""), "{err}");
    let mut p = example_profile();
    p.modules[1].name = "binfmt-misc".into();
    p.modules.push(example_profile().modules[1].clone());
    save(&path, &p).unwrap();
    assert!(load(&path).unwrap_err().to_string().contains("are both \"binfmt_misc\""), "names are compared normalised");
}

#[test]
fn pid1_s_own_insertions_are_a_reason() {
    use super::preload::{add_reason, pid1_inserted, PID1_INSERTED};
    let journal = "systemd 257.9-1~deb13u1 running in system mode\nInserted module 'autofs4'\nInserted module 'dmi-sysfs'\nSet hostname to <x>.\n";
    let inserted = pid1_inserted(journal);
    assert_eq!(inserted, ["autofs4", "dmi_sysfs"]);
    let mut reasons = BTreeMap::from([("autofs4".to_string(), "/etc/modules-load.d/a.conf".to_string())]);
    add_reason(&mut reasons, &inserted, PID1_INSERTED);
    add_reason(&mut reasons, &inserted, PID1_INSERTED);
    assert_eq!(reasons["autofs4"], format!("/etc/modules-load.d/a.conf; {PID1_INSERTED}"));
    assert_eq!(reasons["dmi_sysfs"], PID1_INSERTED);
}

#[test]
fn a_load_seen_in_the_initramfs_keeps_its_stage_and_cause_apart() {
    let mut p = Profile::new("6.12", "host");
    let mut early = loaded_explicit("2026-12-01T00:00:01Z", "ext4", 0);
    early.stage = Some(crate::trace::event::INITRAMFS);
    p.observe(&early);
    p.observe(&loaded_explicit("2026-12-01T00:00:09Z", "ext4", 0));
    let triggers = &module(&p, "ext4").triggers;
    assert_eq!(triggers.len(), 2, "{triggers:?}");
    assert_eq!(triggers.iter().filter(|t| t.stage.as_deref() == Some("initramfs")).count(), 1);
    let text = serde_json::to_string(&p).unwrap();
    assert_eq!(text.matches("\"stage\":\"initramfs\"").count(), 1, "{text}");
    let back: Profile = serde_json::from_str(&text).unwrap();
    assert_eq!(back.modules, p.modules);
}
