//! The checks pass on a run shaped like a correct one, and each of them fails
//! when the fact it guards is broken.

use serde_json::{json, Value};

use super::*;

fn process(comm: &str, unit: Option<&str>) -> Value {
    let cgroup = unit.map(|u| format!("/system.slice/{u}"));
    json!({"pid": 100, "tgid": 100, "ppid": 1, "uid": 0, "comm": comm, "parent_comm": "init",
           "exe": null, "cmdline": null, "cgroup_id": 1, "cgroup": cgroup, "unit": unit})
}

fn record(what: Value, process: Value) -> Value {
    let mut r = json!({"time": "2025-01-01T00:00:00Z", "ts_ns": 1});
    let map = r.as_object_mut().unwrap();
    map.extend(what.as_object().unwrap().clone());
    map.insert("process".into(), process);
    r
}

fn request(alias: &str, requester: Value, resolves_to: &[&str]) -> Value {
    let what = json!({"kind": "request", "alias": alias, "wait": true, "call_site": "x",
                      "repeats": 0, "resolves_to": resolves_to});
    record(what, requester)
}

fn load(syscall: &str, module: Option<&str>, ret: i64, by: Value) -> Value {
    let error = (ret < 0).then_some("EEXIST");
    let what = json!({"kind": "load", "syscall": syscall, "fd": 3, "flags": 0, "image_len": 0,
                      "params": "", "ret": ret, "error": error, "repeats": 0, "module": module,
                      "cause": null});
    record(what, by)
}

fn explicit(module: &str, loader: &str, needed_by: &[&str]) -> Value {
    let mut loader_process = process(loader, None);
    loader_process["cmdline"] = json!([loader, "vfat"]);
    let cause = json!({"kind": "explicit", "loader": loader_process,
                       "invoked_by": {"pid": 1, "comm": "init", "exe": null, "unit": null},
                       "needed_by": needed_by});
    record(json!({"kind": "loaded", "module": module, "taints": 0, "cause": cause}), process(loader, None))
}

fn requested(module: &str, alias: &str, requester: Value, needed_by: &[&str]) -> Value {
    let cause = json!({"kind": "request", "alias": alias, "requester": requester, "module": null,
                       "needed_by": needed_by, "also_requested_by": []});
    let mut helper = process("modprobe", None);
    helper["cmdline"] = json!(["/sbin/modprobe", "-q", "--", alias]);
    record(json!({"kind": "loaded", "module": module, "taints": 0, "cause": cause}), helper)
}

fn good_records(compressed: bool) -> Vec<Value> {
    let syscall = if compressed { "init_module" } else { "finit_module" };
    let tool_in_unit = process("modtrace-guest", Some("example.service"));
    let mut unit_modprobe = explicit("nls_utf8", "modprobe", &[]);
    unit_modprobe["process"] = process("modprobe", Some("example.service"));
    unit_modprobe["cause"]["loader"] = process("modprobe", Some("example.service"));
    let mut records = vec![];
    records.extend([
        explicit("fat", "modprobe", &["vfat"]),
        load(syscall, Some("fat"), 0, process("modprobe", None)),
        explicit("vfat", "modprobe", &[]),
        load(syscall, Some("vfat"), 0, process("modprobe", None)),
        explicit("tcp_westwood", "insmod", &[]),
        load("finit_module", Some("tcp_westwood"), 0, process("insmod", None)),
        explicit("tcp_htcp", "modtrace-guest", &[]),
        load("init_module", Some("tcp_htcp"), 0, process("modtrace-guest", None)),
        load("init_module", None, -17, process("modtrace-guest", None)),
        request("fs-binfmt_misc", process("mount", None), &["binfmt_misc"]),
        requested("binfmt_misc", "fs-binfmt_misc", process("mount", None), &[]),
        request("net-pf-5", tool_in_unit.clone(), &["appletalk"]),
        requested("llc", "net-pf-5", tool_in_unit.clone(), &["psnap", "appletalk"]),
        requested("psnap", "net-pf-5", tool_in_unit.clone(), &["appletalk"]),
        requested("appletalk", "net-pf-5", tool_in_unit, &[]),
        unit_modprobe,
        request("rtnl-link-dummy", process("ip", None), &["dummy"]),
        requested("dummy", "rtnl-link-dummy", process("ip", None), &[]),
        request("net-pf-38", process("modtrace-guest", None), &[]),
        record(json!({"kind": "unloaded", "module": "vfat"}), process("rmmod", None)),
    ]);
    records
}

const GOOD_STDERR: [&str; 2] = [
    "modtrace: attached 9 programs in 800 ms",
    "modtrace: 20 events (SIGINT); lost 0 (requests 0, loads 0, failures 0); repeats folded and not yet reported: 0",
];

struct Run {
    records: Vec<String>,
    stderr: Vec<String>,
    marker: String,
}

impl Run {
    fn good(compressed: bool) -> Self {
        Self {
            records: good_records(compressed).iter().map(Value::to_string).collect(),
            stderr: GOOD_STDERR.iter().map(|s| s.to_string()).collect(),
            marker: "MODTRACE-GUEST-DONE failed_steps=0 tracer_status=0".into(),
        }
    }

    fn edit(&mut self, index: usize, change: impl FnOnce(&mut Value)) {
        let mut value: Value = serde_json::from_str(&self.records[index]).unwrap();
        change(&mut value);
        self.records[index] = value.to_string();
    }

    /// Index of the first record that satisfies `pred`.
    fn position(&self, pred: impl Fn(&Value) -> bool) -> usize {
        self.records.iter().position(|r| pred(&serde_json::from_str(r).unwrap())).expect("a matching record")
    }

    /// Index of the first record whose kind and module/alias match.
    fn find(&self, kind: &str, name: &str) -> usize {
        self.position(|v| text(v, "/kind") == kind && (text(v, "/module") == name || text(v, "/alias") == name))
    }

    fn checks(&self, compressed: bool) -> Vec<Check> {
        let serial = format!(
            "==== events begin\n{}\n==== events end\n==== trace-err begin\n{}\n==== trace-err end\n",
            self.records.join("\n"),
            self.stderr.join("\n")
        );
        let console = vec!["step modprobe_explicit: ok".to_string(), self.marker.clone()];
        check_all(&GuestOutput::parse(&console, &serial), compressed)
    }
}

fn failures(checks: &[Check]) -> Vec<&'static str> {
    checks.iter().filter(|c| c.result.is_err()).map(|c| c.name).collect()
}

#[test]
fn a_correct_run_passes_every_check() {
    for compressed in [false, true] {
        let checks = Run::good(compressed).checks(compressed);
        let failed: Vec<_> = checks.iter().filter_map(|c| c.result.as_ref().err()).collect();
        assert!(failed.is_empty(), "compressed={compressed}: {failed:#?}");
    }
}

/// Applies `break_it` to a correct run and expects exactly `check` to fail.
fn expect_failure(check: &str, compressed: bool, break_it: impl FnOnce(&mut Run)) {
    let mut run = Run::good(compressed);
    break_it(&mut run);
    let failed = failures(&run.checks(compressed));
    assert!(failed.contains(&check), "{check} did not fail; failures: {failed:?}");
}

#[test]
fn every_check_can_fail() {
    expect_failure("guest_steps_succeeded", false, |r| {
        r.marker = "MODTRACE-GUEST-DONE failed_steps=1 tracer_status=0".into()
    });
    expect_failure("tracer_attached", false, |r| {
        r.stderr.remove(0);
    });
    expect_failure("tracer_exited_cleanly", false, |r| {
        r.marker = "MODTRACE-GUEST-DONE failed_steps=0 tracer_status=137".into()
    });
    expect_failure("events_parse_as_json", false, |r| r.records.push("{\"kind\": ".into()));
    expect_failure("no_lost_events", false, |r| r.stderr[1] = r.stderr[1].replace("lost 0", "lost 3"));
    expect_failure("no_lost_events", false, |r| {
        r.stderr.pop();
    });
    let i = |r: &Run, kind, name| r.find(kind, name);
    expect_failure("vfat_explicit_by_modprobe", false, |r| {
        r.edit(i(r, "loaded", "vfat"), |v| v["cause"]["invoked_by"]["comm"] = json!("sh"))
    });
    expect_failure("vfat_explicit_by_modprobe", false, |r| {
        r.edit(i(r, "loaded", "vfat"), |v| v["process"]["exe"] = json!("/bin/busybox"))
    });
    expect_failure("fat_explicit_dependency_of_vfat", false, |r| {
        r.edit(i(r, "loaded", "fat"), |v| v["cause"]["needed_by"] = json!([]))
    });
    expect_failure("vfat_fat_load_syscalls", false, |r| {
        r.edit(i(r, "load", "vfat"), |v| v["syscall"] = json!("init_module"))
    });
    expect_failure("vfat_fat_load_syscalls", true, |r| {
        r.edit(i(r, "load", "fat"), |v| v["syscall"] = json!("finit_module"))
    });
    expect_failure("failed_init_module_reported", false, |r| {
        let failed = r.position(|v| v["ret"].as_i64().is_some_and(|ret| ret < 0));
        r.edit(failed, |v| v["error"] = json!("EPERM"))
    });
    expect_failure("insmod_finit_module", false, |r| {
        r.edit(i(r, "load", "tcp_westwood"), |v| v["process"]["comm"] = json!("modprobe"))
    });
    expect_failure("init_module_syscall", false, |r| r.edit(i(r, "load", "tcp_htcp"), |v| v["ret"] = json!(-17)));
    expect_failure("binfmt_misc_request_by_mount", false, |r| {
        r.records.remove(i(r, "request", "fs-binfmt_misc"));
    });
    expect_failure("binfmt_misc_loaded_by_request", false, |r| {
        r.edit(i(r, "loaded", "binfmt_misc"), |v| v["cause"] = json!({"kind": "unknown", "reason": "x"}))
    });
    expect_failure("appletalk_loaded_by_unit_request", false, |r| {
        r.edit(i(r, "loaded", "appletalk"), |v| v["cause"]["requester"]["unit"] = json!(null))
    });
    expect_failure("appletalk_loaded_by_unit_request", false, |r| {
        r.edit(i(r, "loaded", "appletalk"), |v| v["process"]["comm"] = json!("modtrace-guest"))
    });
    expect_failure("psnap_needed_by_appletalk", false, |r| {
        r.edit(i(r, "loaded", "psnap"), |v| v["cause"]["needed_by"] = json!([]))
    });
    expect_failure("llc_needed_by_psnap", false, |r| {
        r.edit(i(r, "loaded", "llc"), |v| v["cause"]["requester"]["cgroup"] = json!("/"))
    });
    expect_failure("unit_explicit_modprobe", false, |r| {
        r.edit(i(r, "loaded", "nls_utf8"), |v| v["process"]["unit"] = json!("other.service"))
    });
    expect_failure("dummy_loaded_by_ip_request", false, |r| {
        r.edit(i(r, "loaded", "dummy"), |v| v["cause"]["alias"] = json!("dummy"))
    });
    expect_failure("net_pf_38_request_fails", false, |r| {
        r.edit(i(r, "request", "net-pf-38"), |v| v["resolves_to"] = json!(["af_alg"]))
    });
    expect_failure("net_pf_38_request_fails", false, |r| {
        r.records.push(requested("af_alg", "net-pf-38", process("x", None), &[]).to_string())
    });
    expect_failure("vfat_unloaded_by_rmmod", false, |r| {
        r.edit(i(r, "unloaded", "vfat"), |v| v["process"]["comm"] = json!("modprobe"))
    });
}

#[test]
fn every_check_is_exercised_by_a_failure() {
    let source = include_str!("tests.rs");
    for (name, _) in CHECKS {
        assert!(source.contains(&format!("expect_failure(\"{name}\"")), "{name} has no failure test");
    }
}

#[test]
fn lost_counts_read_the_number_after_lost() {
    assert_eq!(lost_counts(GOOD_STDERR[1]), [0]);
    assert_eq!(lost_counts("modtrace: 5 events (x); lost 2 (requests 2)"), [2]);
    assert!(lost_counts("nothing here 5").is_empty());
}
