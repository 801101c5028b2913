//! The checks pass on a run shaped like a correct one, and each of them fails
//! when the fact it guards is broken.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;
use crate::guest::scenario::{captured as cap, section};
use crate::harness::guest_output::EXIT_CODES;

const KERNEL: &str = "6.1.0-56-amd64";
/// The main learner's pid, as the guest reports it.
const LEARNER_PID: &str = "321";
const SPAM_LOADS_PID: u64 = 500;
/// alternate-failed-loads' two processes.
const IN_TURN_PIDS: [u64; 2] = [510, 511];
const SPAM_REQUESTS_PID: u64 = 501;
const SECOND: u64 = 1_000_000_000;

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
    let what = json!({"kind": "request", "alias": alias, "wait": true, "call_site": "__sock_create+0x1a0",
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

fn einval(mut r: Value) -> Value {
    r["error"] = json!("EINVAL");
    r
}

fn pid(mut p: Value, pid: u64) -> Value {
    (p["pid"], p["tgid"]) = (json!(pid), json!(pid));
    p
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
        einval(load("finit_module", None, -22, pid(process("modtrace-guest", None), 300))),
        einval(load("init_module", Some("loop"), -22, pid(process("modtrace-guest", None), 300))),
        request("fs-binfmt_misc", process("mount", None), &["binfmt_misc"]),
        requested("binfmt_misc", "fs-binfmt_misc", process("mount", None), &[]),
        request("net-pf-24", tool_in_unit.clone(), &["pppox"]),
        requested("slhc", "net-pf-24", tool_in_unit.clone(), &["ppp_generic", "pppox"]),
        requested("ppp_generic", "net-pf-24", tool_in_unit.clone(), &["pppox"]),
        requested("pppox", "net-pf-24", tool_in_unit, &[]),
        unit_modprobe,
        request("rtnl-link-dummy", process("ip", None), &["dummy"]),
        requested("dummy", "rtnl-link-dummy", process("ip", None), &[]),
        request("net-pf-38", process("modtrace-guest", None), &[]),
        record(json!({"kind": "unloaded", "module": "vfat"}), process("rmmod", None)),
    ]);
    records.extend(flood_records());
    records.extend(who_records());
    records.extend(kthread_records());
    records.extend(distinct_flood_records());
    records.extend(untrusted_flood_records());
    records.extend(netns_records());
    records.push(explicit("tcp_scalable", "modprobe", &[]));
    with_load_calls(records)
}

/// Each `loaded` record without the load call that linked it gets one, from
/// the same process, right after it.
fn with_load_calls(records: Vec<Value>) -> Vec<Value> {
    let has_call = |records: &[Value], loaded: &Value| {
        records.iter().any(|r| {
            r["kind"] == "load" && r["process"]["pid"] == loaded["process"]["pid"] && r["module"] == loaded["module"]
        })
    };
    let mut out = Vec::new();
    for (i, r) in records.iter().enumerate() {
        out.push(r.clone());
        if r["kind"] == "loaded" && !has_call(&records[i..], r) {
            let mut call = load("finit_module", r["module"].as_str(), 0, r["process"].clone());
            call["ts_ns"] = r["ts_ns"].clone();
            out.push(call);
        }
    }
    out
}

/// The kernel's facts on a process: uid (and euid), loginuid/session and the
/// cgroup path.
fn who(mut p: Value, uid: u64, loginuid: u64, cgroup: &str) -> Value {
    let session = if loginuid == sc::AUDIT_UNSET { sc::AUDIT_UNSET } else { 3 };
    p["uid"] = json!(uid);
    p["euid"] = json!(uid);
    p["loginuid"] = json!(loginuid);
    p["sessionid"] = json!(session);
    p["cgroup"] = json!(cgroup);
    p
}

/// The kernel's helper as the kernel reports it: root, never logged in.
fn kernel_helper(mut r: Value) -> Value {
    r["process"] = who(r["process"].take(), 0, sc::AUDIT_UNSET, "/");
    r
}

/// A logged-in uid 1000 in a user unit, and root in a container's unit.
fn who_records() -> Vec<Value> {
    let uid = u64::from(sc::WHO_USER_UID);
    let mut user = who(process("modtrace-guest", None), uid, uid, sc::WHO_USER_CGROUP);
    user["scope"] = json!({"kind": "user", "uid": uid, "unit": "lightdm.service"});
    let mut container = who(process("mount", None), 0, sc::AUDIT_UNSET, sc::WHO_CONTAINER_CGROUP);
    container["scope"] = json!({"kind": "container", "runtime": "systemd-nspawn", "name": "box", "unit": "cron.service"});
    vec![
        request(sc::WHO_USER_ALIAS, user.clone(), &[sc::WHO_USER_MODULE]),
        kernel_helper(requested(sc::WHO_USER_MODULE, sc::WHO_USER_ALIAS, user, &[])),
        request(sc::WHO_CONTAINER_ALIAS, container.clone(), &[sc::WHO_CONTAINER_MODULE]),
        kernel_helper(requested(sc::WHO_CONTAINER_MODULE, sc::WHO_CONTAINER_ALIAS, container, &[])),
    ]
}

/// The crypto manager's thread asks for lrw and cast6 for the binder, uid
/// KTHREAD_UID; each load names the binder, via the thread.
fn kthread_records() -> Vec<Value> {
    let mut binder = process("modtrace-guest", None);
    binder["uid"] = json!(sc::KTHREAD_UID);
    let mut thread = process("cryptomgr_probe", None);
    thread["kernel_thread"] = json!(true);
    let join = json!({"via": sc::KTHREAD_VIA, "requester": binder});
    let mut out: Vec<Value> = sc::KTHREAD_SOCKET_MODULES.iter().map(|m| explicit(m, "insmod", &[])).collect();
    for (alias, module) in [sc::KTHREAD_TEMPLATE, sc::KTHREAD_INNER] {
        let mut r = request(alias, thread.clone(), &[module]);
        r["kthread"] = join.clone();
        let mut l = kernel_helper(requested(module, alias, binder.clone(), &[]));
        l["cause"]["kthread"] = join.clone();
        out.extend([r, l]);
    }
    out
}

fn kthread_profile_module(alias: &str, module: &str) -> Value {
    let mut t = trigger_request(alias, "modtrace-guest", None, None);
    t["requester"]["uid"] = json!(sc::KTHREAD_UID);
    t["via"] = json!(sc::KTHREAD_VIA);
    profile_module(module, &[], &[], vec![t])
}

/// Processes of the distinct flood: pids from here, one per batch.
const DISTINCT_PID: u64 = 700;
const DISTINCT_PROCESSES: u64 = 4;

/// Four processes of two requests each, each for an alias of its own, with an
/// autoload and a modprobe in the middle.
fn distinct_flood_records() -> Vec<Value> {
    let mut records = vec![];
    for n in 0..2 * DISTINCT_PROCESSES {
        let alias = format!("fs-{}{n}", sc::DISTINCT_FLOOD_PREFIX);
        let requester = spammer(DISTINCT_PID + n / 2);
        records.push(at(request(&alias, requester, &[]), 40 * SECOND + n * SECOND / 10));
    }
    let tool = process("modtrace-guest", None);
    records.push(at(request(sc::DISTINCT_FLOOD_ALIAS, tool.clone(), &[sc::DISTINCT_FLOOD_AUTOLOAD_MODULE]), 40 * SECOND + 1));
    records.push(at(requested(sc::DISTINCT_FLOOD_AUTOLOAD_MODULE, sc::DISTINCT_FLOOD_ALIAS, tool, &[]), 40 * SECOND + 2));
    records.push(at(explicit(sc::DISTINCT_FLOOD_EXPLICIT_MODULE, "modprobe", &[]), 40 * SECOND + 3));
    records
}

/// The user's flood: one process of uid 1000, every name of its own, none
/// resolving to a module.
fn untrusted_flood_records() -> Vec<Value> {
    let uid = u64::from(sc::WHO_USER_UID);
    let mut user = who(process("modtrace-guest", None), uid, uid, sc::WHO_USER_CGROUP);
    user["scope"] = json!({"kind": "user", "uid": uid, "unit": "lightdm.service"});
    (0..sc::UNTRUSTED_FLOOD_NAMES)
        .map(|n| {
            let alias = format!("fs-{}{n}", sc::UNTRUSTED_FLOOD_PREFIX);
            at(request(&alias, user.clone(), &[]), 50 * SECOND + u64::from(n))
        })
        .collect()
}

/// The profile's entry for that flood.
fn untrusted_flood_entry() -> Value {
    let aliases: Vec<String> =
        (0..sc::UNTRUSTED_FLOOD_NAMES_KEPT).map(|n| format!("fs-{}{n}", sc::UNTRUSTED_FLOOD_PREFIX)).collect();
    json!({"requester": {"comm": "modtrace-guest", "exe": null, "pid": 800, "uid": sc::WHO_USER_UID,
                         "euid": sc::WHO_USER_UID, "cgroup": sc::WHO_USER_CGROUP,
                         "scope": {"kind": "user", "uid": sc::WHO_USER_UID, "unit": "lightdm.service"}},
           "count": sc::UNTRUSTED_FLOOD_NAMES, "aliases": aliases,
           "first_seen": "2025-01-01T00:00:00Z", "last_seen": "2025-01-01T00:00:00Z"})
}

fn at(mut r: Value, ts_ns: u64) -> Value {
    r["ts_ns"] = json!(ts_ns);
    r
}

fn spammer(pid: u64) -> Value {
    let mut p = process("modtrace-guest", None);
    p["pid"] = json!(pid);
    p["tgid"] = json!(pid);
    p
}

/// Five seconds of both floods (a record a second, repeats folded into the
/// next), with an autoload and a modprobe in the middle.
fn flood_records() -> Vec<Value> {
    let tool = process("modtrace-guest", None);
    let mut records = vec![];
    for i in 0..5u64 {
        let mut failed = load("finit_module", None, -22, spammer(SPAM_LOADS_PID));
        failed["error"] = json!("EINVAL");
        failed["repeats"] = json!(if i == 0 { 0 } else { 30_000 });
        records.push(at(failed, (10 + i) * SECOND));
        let mut requested = request("net-pf-38", spammer(SPAM_REQUESTS_PID), &[]);
        requested["repeats"] = json!(if i == 0 { 0 } else { 40 });
        records.push(at(requested, (10 + i) * SECOND + SECOND / 10));
    }
    for (n, pid) in IN_TURN_PIDS.into_iter().enumerate() {
        for i in 0..3u64 {
            let mut failed = load("finit_module", None, -22, spammer(pid));
            failed["error"] = json!("EINVAL");
            failed["repeats"] = json!(if i == 0 { 0 } else { 2000 });
            records.push(at(failed, (16 + i) * SECOND + n as u64));
        }
    }
    records.push(at(request("net-pf-35", tool.clone(), &["phonet"]), 11 * SECOND));
    records.push(at(requested("phonet", "net-pf-35", tool, &[]), 11 * SECOND + SECOND / 2));
    records.push(at(explicit("tcp_illinois", "modprobe", &[]), 12 * SECOND));
    records
}

const ATTACHED: &str = "modtrace: attached 9 programs in 800 ms";
const HANDED_OVER: &str = "modtrace: note: load calls handed over to fexit on __x64_sys_finit_module and __x64_sys_init_module in 1290 ms (verify 160 ms, attach 120 ms, both attached 1000 ms); their exit tracepoints detached";

/// The tracer's closing line for `events` records.
fn summary_line(events: usize) -> String {
    format!(
        "modtrace: {events} events (SIGINT); lost 0 (requests 0, loads 0, failures 0, unreadable aliases 0, \
         unreadable module names 0, results without their call 0, requests evicted 0, \
         untrusted requests evicted 0, undecodable 0, \
         skipped requests 0, skipped loads 0, skipped results 0, repeats 0); \
         lost loads and requests: 0; repeats folded and not yet reported: 1500"
    )
}

// ---- the tracer with small fold maps (fold_evictions) ----

/// The processes taking turns under it, and each one's attempts.
const EVICT_PIDS: std::ops::Range<u64> = 600..610;
const EVICT_ATTEMPTS: u64 = 400;

/// Each process: three records carrying 20 repeats each (630 attempts of
/// 4000); the summary holds the rest: 270 folded, 100 in refused records,
/// 3000 repeats lost with evicted entries.
fn evict_sections() -> Vec<(String, String)> {
    let records: Vec<String> = EVICT_PIDS
        .flat_map(|pid| {
            (0..3).map(move |n| {
                let mut p = process("modtrace-guest", None);
                (p["pid"], p["tgid"]) = (json!(pid), json!(pid));
                let mut r = at(load("finit_module", None, -22, p), (pid - 590 + n) * SECOND);
                r["repeats"] = json!(20);
                r.to_string()
            })
        })
        .collect();
    let summary = "modtrace: 30 events (SIGINT); lost 3100 (requests 0, loads 0, failures 100, unreadable aliases 0, \
                   unreadable module names 0, results without their call 0, requests evicted 0, \
                   untrusted requests evicted 0, undecodable 0, \
                   skipped requests 0, skipped loads 0, skipped results 0, repeats 3000); \
                   lost loads and requests: 0; repeats folded and not yet reported: 270";
    let spam: Vec<String> = EVICT_PIDS
        .map(|pid| format!("alternate-failed-loads: pid={pid} attempts={EVICT_ATTEMPTS} failed={EVICT_ATTEMPTS} seconds=1.0"))
        .collect();
    vec![
        (cap::EVICT_EVENTS.into(), records.join("\n")),
        (cap::EVICT_TRACE_ERR.into(), format!("{ATTACHED}\n{summary}")),
        (format!("{}.stdout", cap::EVICT_FAILED_LOADS), spam.join("\n")),
    ]
}

fn trigger_request(alias: &str, requester: &str, unit: Option<&str>, needed_by: Option<&str>) -> Value {
    let mut t = json!({"kind": "request", "alias": alias,
                       "requester": {"comm": requester, "exe": null, "pid": 7, "uid": 0, "unit": unit, "cgroup": null,
                                     "scope": match unit { Some(u) => json!({"kind": "system", "unit": u}), None => json!({"kind": "unknown"}) }},
                       "loader": {"comm": "modprobe", "exe": "/usr/bin/kmod", "unit": null}, "count": 1});
    if let Some(n) = needed_by {
        t["needed_by"] = json!(n);
    }
    t
}

fn trigger_explicit(needed_by: Option<&str>) -> Value {
    let mut t = json!({"kind": "explicit", "requester": {"comm": "init", "exe": null, "pid": 1, "unit": null, "cgroup": null},
                       "loader": {"comm": "modprobe", "exe": "/usr/bin/kmod", "unit": null}, "count": 1});
    if let Some(n) = needed_by {
        t["needed_by"] = json!(n);
    }
    t
}

fn trigger_preloaded(reason: &str) -> Value {
    json!({"kind": "preloaded", "reason": reason, "count": 1})
}

fn profile_module(name: &str, depends_on: &[&str], needed_by: &[&str], triggers: Vec<Value>) -> Value {
    json!({"name": name, "top_level": needed_by.is_empty(), "depends_on": depends_on, "needed_by": needed_by,
           "count": 1, "first_seen": "2025-01-01T00:00:00Z", "last_seen": "2025-01-01T00:00:00Z",
           "taints": [], "triggers": triggers})
}

fn session(ended_by: &str) -> Value {
    let drops = json!({"ring_requests": 0, "ring_loads": 0, "ring_failures": 0, "unreadable_aliases": 0,
                       "unreadable_module_names": 0, "results_without_call": 0, "evicted_requests": 0,
                       "evicted_untrusted_requests": 0,
                       "undecodable_requests": 0, "undecodable_loads": 0, "undecodable_failures": 0,
                       "skipped_requests": 0, "skipped_loads": 0, "skipped_results": 0,
                       "lost_repeats": 0});
    json!({"start": "2025-01-01T00:00:00Z", "end": "2025-01-01T00:00:30Z", "duration_secs": 30,
           "kernel": KERNEL, "boot_id": null, "ended_by": ended_by, "records": 60, "lost_events": 0,
           "drops": drops})
}

fn good_profile() -> Value {
    let tool_in_unit = |needed_by| trigger_request("net-pf-24", "modtrace-guest", Some("example.service"), needed_by);
    json!({
        "schema": "modtrace-profile/2", "kernel": KERNEL, "host": "guest", "boots": [],
        "sessions": [session("SIGINT")],
        "modules": [
            profile_module("pppox", &["slhc", "ppp_generic"], &[], vec![tool_in_unit(None)]),
            profile_module("binfmt_misc", &[], &[], vec![trigger_request("fs-binfmt_misc", "mount", None, None)]),
            profile_module("fat", &[], &["vfat"], vec![trigger_explicit(Some("vfat"))]),
            profile_module("slhc", &[], &["pppox", "ppp_generic"], vec![tool_in_unit(Some("pppox"))]),
            profile_module("phonet", &[], &[], vec![trigger_request("net-pf-35", "modtrace-guest", None, None)]),
            profile_module("ppp_generic", &["slhc"], &["pppox"], vec![tool_in_unit(Some("pppox"))]),
            profile_module("tcp_bic", &[], &[], vec![trigger_preloaded("/etc/modules-load.d/modtrace-test.conf")]),
            profile_module("tcp_highspeed", &[], &[], vec![trigger_preloaded("before learning")]),
            profile_module(sc::PRELOAD_USER_MODULE, &[], &[], vec![trigger_preloaded("before learning")]),
            profile_module("tcp_illinois", &[], &[], vec![trigger_explicit(None)]),
            profile_module("vfat", &["fat"], &[], vec![trigger_explicit(None)]),
            kthread_profile_module(sc::KTHREAD_TEMPLATE.0, sc::KTHREAD_TEMPLATE.1),
            kthread_profile_module(sc::KTHREAD_INNER.0, sc::KTHREAD_INNER.1),
        ],
        "requests": [{"alias": "net-pf-38", "resolves_to": [], "count": 200,
                      "first_seen": "2025-01-01T00:00:00Z", "last_seen": "2025-01-01T00:00:00Z",
                      "requesters": [{"comm": "modtrace-guest", "exe": null, "pid": 9, "unit": null, "cgroup": null, "count": 200}]}],
        "failed": [{"module": null, "syscall": "init_module", "ret": -17, "error": "EEXIST",
                    "loader": {"comm": "modtrace-guest", "exe": null, "unit": null}, "count": 1,
                    "first_seen": "2025-01-01T00:00:00Z", "last_seen": "2025-01-01T00:00:00Z"},
                   {"module": null, "syscall": "finit_module", "ret": -22, "error": "EINVAL",
                    "loader": {"comm": "modtrace-guest", "exe": null, "unit": null}, "count": 5001,
                    "first_seen": "2025-01-01T00:00:00Z", "last_seen": "2025-01-01T00:00:00Z"}],
        "folded_requests": [untrusted_flood_entry()]
    })
}

fn killed_profile() -> Value {
    json!({"schema": "modtrace-profile/2", "kernel": KERNEL, "host": "guest", "sessions": [session("checkpoint")],
           "modules": [profile_module("tcp_scalable", &[], &[], vec![trigger_explicit(None)])]})
}

const MODULES_AT_START: &str = "tcp_bic 16384 0 - Live 0x0\ntcp_highspeed 16384 0 - Live 0x0";
const LSMOD_AT_END: [&str; 19] = [
    "Module                  Size  Used by",
    "kcm 16384 0",
    "minix 16384 0",
    "qrtr 16384 0",
    "tcp_vegas 16384 0",
    "tcp_scalable 16384 0",
    "tcp_illinois 16384 0",
    "phonet 16384 0",
    "dummy 16384 0",
    "nls_utf8 16384 0",
    "pppox 16384 0",
    "ppp_generic 16384 1 pppox",
    "slhc 16384 2 ppp_generic,pppox",
    "binfmt_misc 16384 1",
    "tcp_htcp 16384 0",
    "tcp_westwood 16384 0",
    "fat 16384 0",
    "tcp_highspeed 16384 0",
    "tcp_bic 16384 0",
];

const REPORT_TABLE: &str = "host guest, kernel 6.1.0-56-amd64: 1 learning session (30s), 0 boots

MODULE     COUNT  UNIT             PROCESS         VIA
pppox      1  example.service  modtrace-guest  request net-pf-24
  ppp_generic        1                                   dependency
  slhc          1                                   dependency

Needs review: no evidence that root on the host wanted these (only other processes asked, or the cause is unknown); not listed until accepted:
  atm (1 time(s)): loaded before learning, cause unknown: no modules-load.d entry ...
    - already loaded when learning started, cause unknown; once
    accept: modtrace allow atm
  tcp_highspeed (1 time(s)): loaded before learning, cause unknown: no modules-load.d entry ...
    accept: modtrace allow tcp_highspeed";

const REPORT_MARKDOWN: &str = "## modtrace profile of guest (kernel 6.1.0-56-amd64)

### Modules

| Module | Count | Unit | Process | Via |
|---|---:|---|---|---|
| **pppox** | 1 | `example.service` | modtrace-guest | request net-pf-24 |
| ↳ ppp_generic | 1 | | | dependency |";

const REPORT_BY_UNIT: &str = "host guest, kernel 6.1.0-56-amd64: 1 learning session (30s), 0 boots

example.service
  example.service needs pppox (with ppp_generic, slhc) via net-pf-24 (by modtrace-guest, once)
(no unit: preloaded, or outside systemd)
  tcp_highspeed was already loaded when learning started (once)";

const DIFF_HEAD: &str =
    "--- /tmp/before.json (snapshot, kernel 6.1.0-56-amd64)\n+++ /tmp/after.json (snapshot, kernel 6.1.0-56-amd64)";

/// Everything the guest sends besides the events and the tracer's stderr.
fn good_sections() -> BTreeMap<String, String> {
    let report_json = json!({"schema": "modtrace-report/1", "kernel": KERNEL, "modules": [{"module": "pppox"}]});
    let exit_codes = "learn-second 1\nspam-failed-loads 0\nspam-requests 0\nlearn 0\ndiff-before-after 1\n\
                      diff-before-before 0\ndiff-profile 1\nreport-table 0\nreport-markdown 0\nreport-json 0\n\
                      report-by-unit 0\nlearn-killed 137\nlearn-corrupt 1\ncorrupt-cmp 0\nspam-distinct-requests 0\n\
                      alternate-failed-loads 0\nevict-failed-loads 0\nevict-trace 0\nuntrusted-flood 0";
    let texts: Vec<(&str, String)> = vec![
        (section::MODULES_AT_START, MODULES_AT_START.into()),
        ("lsmod", LSMOD_AT_END.join("\n")),
        (EXIT_CODES, exit_codes.into()),
        ("learn.pid", LEARNER_PID.into()),
        ("learn.stderr", "modtrace: learning ended (SIGINT); profile saved to /var/lib/modtrace/profile.json: 10 modules, 7 top-level (new: pppox); see: modtrace report --profile /var/lib/modtrace/profile.json".into()),
        ("learn-second.stderr", format!("modtrace: another modtrace learn (pid {LEARNER_PID}) is already learning into /var/lib/modtrace/profile.json (it holds /var/lib/modtrace/profile.json.lock); wait for it to finish or stop it")),
        ("learn-corrupt.stderr", "modtrace: /tmp/corrupt.json:1:47: the file ends early, a truncated modtrace profile? (EOF while parsing a list)\nrefusing to learn into it: the file is left as it is.".into()),
        (section::CORRUPT_AFTER, sc::CORRUPT_TEXT.into()),
        (section::PROFILE, serde_json::to_string_pretty(&with_netns_modules(good_profile())).unwrap()),
        (section::KILLED_PROFILE, serde_json::to_string_pretty(&killed_profile()).unwrap()),
        ("report-table.stdout", REPORT_TABLE.into()),
        ("report-markdown.stdout", REPORT_MARKDOWN.into()),
        ("report-json.stdout", serde_json::to_string_pretty(&report_json).unwrap()),
        ("report-by-unit.stdout", REPORT_BY_UNIT.into()),
        ("diff-before-after.stdout", format!("{DIFF_HEAD}\n+ pppox\n+ slhc\n2 added, 0 removed, 0 changed, 2 the same")),
        ("diff-before-before.stdout", format!("{DIFF_HEAD}\nno difference: the same 2 modules")),
        ("diff-profile.stdout", format!("{DIFF_HEAD}\n+ pppox (request net-pf-24 by modtrace-guest, example.service)\n+ slhc (needed by pppox)\n2 added, 0 removed, 0 changed, 2 the same")),
        ("spam-failed-loads.stdout", format!("spam-failed-loads: pid={SPAM_LOADS_PID} attempts=121000 failed=121000 seconds=5.0")),
        ("alternate-failed-loads.stdout", IN_TURN_PIDS.map(|pid| format!("alternate-failed-loads: pid={pid} attempts=4100 failed=4100 seconds=3.0")).join("\n")),
        ("spam-requests.stdout", format!("spam-requests: pid={SPAM_REQUESTS_PID} attempts=180 failed=180 seconds=5.0")),
        ("spam-distinct-requests.stdout", format!("spam-distinct-requests: pid=699 processes={DISTINCT_PROCESSES} attempts=8 failed=8 seconds=4.0")),
    ];
    let mut all: BTreeMap<String, String> = texts.into_iter().map(|(name, text)| (name.to_string(), text)).collect();
    let codes = all.get_mut(EXIT_CODES).unwrap();
    codes.push('\n');
    codes.push_str(GUARD_EXIT_CODES);
    codes.push_str(TRUST_EXIT_CODES);
    codes.push_str(EARLY_EXIT_CODES);
    all.extend(early_sections());
    all.extend(evict_sections());
    all.extend(guard_sections());
    all.extend(trust_sections());
    all.extend(preload_sections());
    codes_of(&mut all).push_str(PRELOAD_EXIT_CODES);
    all.extend(super::seal::fixture::sections());
    codes_of(&mut all).push_str(&format!("\n{}", super::seal::fixture::exit_codes()));
    all
}

fn codes_of(all: &mut BTreeMap<String, String>) -> &mut String {
    all.get_mut(EXIT_CODES).unwrap()
}

// ---- learning from early boot (tests/guest/early.sh) ----

const EARLY_EXIT_CODES: &str = "\nearly-pin 0\nearly-learn 0\nearly-released 0";

fn early_profile() -> Value {
    let gone = |comm: &str| json!({"comm": comm, "exe": null, "uid": 0, "cgroup": "/", "scope": {"kind": "no_unit"}});
    let explicit = json!({"kind": "explicit", "loader": gone("modprobe"), "requester": gone("init"), "count": 1});
    let request = json!({"kind": "request", "alias": sc::EARLY_ALIAS, "requester": gone("ip"), "loader": gone("modprobe"), "count": 1});
    json!({"schema": "modtrace-profile/2", "sessions": [{"start": "a", "end": "b", "from_initramfs": 6}], "modules": [
        profile_module(sc::EARLY_REQUEST_MODULE, &[], &[], vec![request]),
        profile_module(sc::EARLY_MODULE, &[], &[], vec![explicit]),
    ]})
}

fn early_sections() -> Vec<(String, String)> {
    let texts = [
        ("early-pin.stderr", "modtrace: tracing from early boot: 7 probes attached in 812 ms and pinned under /sys/fs/bpf/modtrace/early/8ece491cbe88ea3b; the next modtrace learn takes them over".to_string()),
        ("early-learn.stderr", format!("modtrace: attached 7 programs in 700 ms; learning\nmodtrace: note: the initramfs started another modtrace build's probes ({}): released unread; run update-initramfs -u so the next boot is learned from its start\nmodtrace: note: took over 6 events from the probes the initramfs started (0 of them in the initramfs)", sc::EARLY_FOREIGN)),
        (section::EARLY_PROFILE, early_profile().to_string()),
    ];
    texts.into_iter().map(|(n, t)| (n.to_string(), t)).collect()
}

fn edit_early_trigger(r: &mut Run, module: &str, change: impl FnOnce(&mut Value)) {
    let mut p: Value = serde_json::from_str(r.section(section::EARLY_PROFILE)).unwrap();
    let m = p["modules"].as_array_mut().unwrap().iter_mut().find(|m| m["name"] == module).unwrap();
    change(&mut m["triggers"][0]);
    *r.section(section::EARLY_PROFILE) = p.to_string();
}

// ---- trust: generate, check and allow on the learned profile ----

const TRUST_EXIT_CODES: &str = "\ngenerate 0\ncheck 1\nallow 0\ngenerate-accepted 0";

const TRUST_CHECK: &str = "info: kernel: 6.1.0-57-amd64
warning: request for net-pf-29 (modtrace-guest) is denied by site policy, and keeps failing: install can /bin/false (/etc/modprobe.d/modtrace-test-site.conf)
needed: 9 top-level module(s) (12 with dependencies), 0 built in
needs review: 4 item(s) with no evidence that root wanted them (only untrusted processes asked, or the cause is unknown); not loaded before the lock unless accepted:
  - atm: loaded before learning, cause unknown: ...; to learn its cause, learn from boot (enable modtrace-learn.service and run update-initramfs -u, see docs/lockdown.md), or accept it with modtrace allow; asked: already loaded when learning started, cause unknown; once; accept: modtrace allow atm
  - kcm: asked only by uid 1000 in user unit lightdm.service of uid 1000; asked: modtrace-guest (uid 1000, user unit lightdm.service of uid 1000); accept: modtrace allow kcm
  - minix: asked only in container box (systemd-nspawn), its unit cron.service; asked: mount (container box (systemd-nspawn), its unit cron.service); accept: modtrace allow minix
  - tcp_highspeed: loaded before learning, cause unknown: ...; to learn its cause, learn from boot (enable modtrace-learn.service and run update-initramfs -u, see docs/lockdown.md), or accept it with modtrace allow; asked: already loaded when learning started, cause unknown; once; accept: modtrace allow tcp_highspeed
  - qnx6: root, but in the container keepunit.service (namespaces), its pid and mount namespaces not init's; asked: request for fs-qnx6 by the container keepunit.service (namespaces), its pid and mount namespaces not init's (mount, /bin/busybox, uid 0); once; accept: modtrace allow qnx6
  - befs: root, but in the container keepunit.service (namespaces), its pid and mount namespaces not init's; asked: request for fs-befs by the container keepunit.service (namespaces), its pid and mount namespaces not init's (mount, /bin/busybox, uid 0); once; accept: modtrace allow befs
  - lrw: asked only by uid 1001; asked: modtrace-guest (uid 1001); accept: modtrace allow lrw
  - cast6_generic: asked only by uid 1001; asked: modtrace-guest (uid 1001); accept: modtrace allow cast6_generic
NOT safe to lock: 1 blocker(s):
  - tcp_westwood is loaded now but not in the profile: after a locked boot nothing would load it";

const GENERATED_LIST: &str = "# modtrace\nbinfmt_misc\npppox\nqnx4\n# tcp_bic:\n#   - already loaded when learning started, \
    explained by: /etc/modules-load.d/modtrace-test.conf; once\ntcp_bic\nvfat\n#\n# NEEDS REVIEW, not listed:\n#   atm: ...";

fn trust_sections() -> Vec<(String, String)> {
    let files = "./etc/modules-load.d/modtrace.conf\n./etc/systemd/system/example.service.d/modtrace-modules.conf\n\
                 ./etc/systemd/system/modtrace-lock.service";
    let texts = [
        ("generate.stdout", "wrote /tmp/generated/etc/modules-load.d/modtrace.conf".to_string()),
        ("check.stdout", TRUST_CHECK.to_string()),
        ("allow.stdout", "modtrace: kcm is accepted in /tmp/accepted.json".to_string()),
        ("generate-accepted.stdout", "wrote /tmp/generated-accepted/etc/modules-load.d/modtrace.conf".to_string()),
        (section::GENERATED_FILES, files.to_string()),
        (section::GENERATED_LIST, GENERATED_LIST.to_string()),
        (sc::NETNS_DROP_IN, NETNS_DROP_IN.to_string()),
        (section::ACCEPTED_FILES, files.to_string()),
        (section::ACCEPTED_LIST, "# modtrace\nbinfmt_misc\nkcm\npppox\nvfat".to_string()),
    ];
    texts.into_iter().map(|(n, t)| (n.to_string(), t)).collect()
}

// ---- modtrace guard (tests/guest/guard.sh), shaped after a real 6.1 run ----

const GUARD_EXIT_CODES: &str = "guard-status-before 3\nguard-start-complain 0\nguard-complain-modprobe-outside 0\n\
    guard-complain-outside-loaded 0\nguard-start-enforce 0\nguard-enforce-modprobe-profile 0\n\
    guard-enforce-profile-loaded 0\nguard-enforce-autoload-profile 0\nguard-enforce-autoload-profile-loaded 0\n\
    guard-enforce-modprobe-outside 1\nguard-enforce-autoload-outside 1\nguard-enforce-outside-loaded 1\n\
    guard-enforce-renamed-file 1\nguard-enforce-renamed-loaded 1\nguard-enforce-init-module 1\nguard-status 0\n\
    guard-status-json 0\nguard-trace 0\nguard-cost-allowed 0\nguard-cost-refused 0\nguard-stop 0\n\
    guard-status-after 3\nguard-after-autoload 0\nguard-after-outside-loaded 0\n\
    guard-cost-allowed-unguarded 0\nguard-cost-renamed-unguarded 0\nguard-log 0\nguard-refresh 0\n\
    guard-restart-stop 0\nguard-restart-start 0\nguard-restart-autoload 1\nguard-status-complain 0\n\
    guard-lose-spam 0\nguard-lost-counters 0\nguard-detach-bpftool 255\nguard-status-after-bpftool 0\n\
    guard-status-detached 4\nguard-status-detached-json 4\nguard-detached-renamed-loaded 0\n\
    guard-decoy-init-module 1\nguard-decoy-loaded 1";

fn guard_decision(kind: &str, hook: &str, mode: &str, comm: &str, what: Value) -> Value {
    let mut r = json!({
        "time": "2026-12-01T20:42:18.340Z", "ts_ns": 36022146676u64, "kind": kind, "hook": hook, "mode": mode,
        "alias": null, "module": null, "file": null, "dev": null, "ino": null, "reason": "r", "repeats": 0,
        "process": {"pid": 286, "tgid": 286, "ppid": 1, "uid": 0, "comm": comm, "cgroup_id": 1, "cgroup": "/", "unit": null},
    });
    for (k, v) in what.as_object().unwrap() {
        r[k] = v.clone();
    }
    r
}

fn guard_decisions() -> Vec<Value> {
    let file = |f: &str| json!({"file": f, "dev": "0:2", "ino": 305});
    vec![
        guard_decision("guard_would_deny", "finit_module", "complain", "modprobe", file("tcp_scalable.ko")),
        guard_decision("guard_allowed", "finit_module", "enforce", "modprobe", json!({"module": "vfat", "file": "vfat.ko", "dev": "0:2", "ino": 293})),
        guard_decision("guard_allowed", "request", "enforce", "ip", json!({"alias": "rtnl-link-dummy"})),
        guard_decision("guard_denied", "finit_module", "enforce", "modprobe", file("tcp_scalable.ko")),
        guard_decision("guard_denied", "request", "enforce", "sh", json!({"alias": "tcp_scalable"})),
        guard_decision("guard_denied", "finit_module", "enforce", "insmod", json!({"file": "renamed.ko", "dev": "0:22", "ino": 66})),
        guard_decision("guard_denied", "init_module", "enforce", "modtrace-guest", json!({})),
        guard_decision("guard_denied", "request", "enforce", "sh", json!({"alias": "tcp_hybla"})),
        guard_decision("guard_denied", "init_module", "enforce", "modtrace-guest", json!({"module": "tcp_scalable"})),
    ]
}

/// Refusals of the lost-decisions flood that the trace did read.
fn lost_flood(n: usize) -> Vec<Value> {
    let refusal = |i| guard_decision("guard_denied", "request", "enforce", "modtrace-guest", json!({"alias": format!("fs-mtlost{i}")}));
    (0..n).map(refusal).collect()
}

fn guard_sections() -> Vec<(String, String)> {
    let lines = |v: Vec<Value>| v.iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
    let status_json = json!({"active": true, "attached": true, "detached": [], "lsm_active": true,
        "state": {"mode": "enforce", "profile": sc::PROFILE}, "generation": 2,
        "decisions": {"allowed": 3, "denied": 4, "would_deny": 1, "lost": 0, "skipped": 0}});
    let detached_json = json!({"active": false, "attached": false, "detached": ["guard_read_file"], "lsm_active": true,
        "state": {"mode": "enforce", "profile": sc::PROFILE}, "generation": 3});
    let since = format!("since 2026-12-01T20:42:17Z, profile {} (kernel 6.1.0-57-amd64): 12 modules allowed", sc::PROFILE);
    // Without BTF bpftool dumps bytes; with it, numbers: both are read.
    let counters = json!([{"key": ["0x00", "0x00", "0x00", "0x00"], "values": [{"cpu": 0, "value": ["0x00", "0x00"]}]},
        {"key": 1, "values": [{"cpu": 0, "value": 30}, {"cpu": 1, "value": 12}]}]);
    let texts = [
        ("guard-trace.jsonl", lines(guard_decisions().into_iter().chain(lost_flood(40)).collect())),
        ("guard-log.jsonl", lines(guard_decisions())),
        ("guard-status-before.stdout", "modtrace: the guard is not running".to_string()),
        ("guard-decoy-init-module.stderr", "modtrace-guest: init_module(/tmp/decoy.ko): Operation not permitted (os error 1)".to_string()),
        ("guard-status.stdout", format!("modtrace: guard enforcing: mode enforce, {since} (12 files, 22 request names), init_module not allowed\ndecisions: 3 allowed, 4 denied, 1 would deny; 0 lost (never logged); 0 skipped by the kernel (let through undecided)")),
        ("guard-status-complain.stdout", format!("modtrace: guard complaining: mode complain, {since}")),
        ("guard-status-after-bpftool.stdout", format!("modtrace: guard enforcing: mode enforce, {since}")),
        ("guard-status-detached.stdout", format!("modtrace: guard detached (guard_read_file not attached): mode enforce, {since}")),
        ("guard-status-detached.stderr", "modtrace: warning: the guard was detached behind modtrace's back (its links unpinned or released, not by `modtrace guard stop`): guard_read_file not attached, so it decides only in part; start it again: modtrace guard start --mode enforce".to_string()),
        ("guard-status-detached-json.stdout", detached_json.to_string()),
        ("guard-lose-spam.stdout", "spam-distinct-requests: pid=700 processes=4 attempts=80 failed=80 seconds=2.0".to_string()),
        ("guard-lost-counters.stdout", counters.to_string()),
        ("guard-trace.stderr", "modtrace: 9 events (SIGINT); lost 0 (requests 0); lost loads and requests: 0; repeats folded and not yet reported: 0; guard decisions lost: 42 (undecodable 0)".to_string()),
        ("guard-log.stderr", "modtrace: guard log: 9 decisions logged; lost 0 (its ring was full), undecodable 0".to_string()),
        ("guard-status-json.stdout", status_json.to_string()),
        ("guard-stop.stdout", "modtrace: guard stopped: its programs are detached and /sys/fs/bpf/modtrace/guard is removed".to_string()),
        ("guard-cost-allowed.stdout", "finit-loop: file=/lib/modules/k/kernel/fs/fat/vfat.ko count=1000 errors=17:1000 micros_per_call=5601.2".to_string()),
        ("guard-cost-refused.stdout", "finit-loop: file=/tmp/renamed.ko count=1000 errors=1:1000 micros_per_call=40.0".to_string()),
        ("guard-cost-allowed-unguarded.stdout", "finit-loop: file=/lib/modules/k/kernel/fs/fat/vfat.ko count=1000 errors=17:1000 micros_per_call=5579.4".to_string()),
        ("guard-cost-renamed-unguarded.stdout", "finit-loop: file=/tmp/renamed.ko count=1000 errors=17:1000 micros_per_call=4484.6".to_string()),
    ];
    texts.into_iter().map(|(n, t)| (n.to_string(), t)).collect()
}

struct Run {
    records: Vec<String>,
    stderr: Vec<String>,
    marker: String,
    console: Vec<String>,
    sections: BTreeMap<String, String>,
}

impl Run {
    fn good(compressed: bool) -> Self {
        let records: Vec<String> = good_records(compressed).iter().map(Value::to_string).collect();
        Self {
            stderr: vec![ATTACHED.into(), summary_line(records.len()), HANDED_OVER.into()],
            records,
            marker: "MODTRACE-GUEST-DONE failed_steps=0 tracer_status=0".into(),
            console: vec![format!("guest: kernel {KERNEL}, scenario starting"), "step modprobe_explicit: ok".into()],
            sections: good_sections(),
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

    /// Every record that satisfies `pred` is changed.
    fn edit_all(&mut self, pred: impl Fn(&Value) -> bool, change: impl Fn(&mut Value)) {
        for line in &mut self.records {
            let mut value: Value = serde_json::from_str(line).unwrap();
            if pred(&value) {
                change(&mut value);
                *line = value.to_string();
            }
        }
    }

    fn section(&mut self, name: &str) -> &mut String {
        self.sections.get_mut(name).unwrap_or_else(|| panic!("no section {name}"))
    }

    /// Replaces `from` with `to` in a section, which must contain it.
    fn replace(&mut self, name: &str, from: &str, to: &str) {
        let text = self.section(name);
        assert!(text.contains(from), "{name} has no {from:?}");
        *text = text.replace(from, to);
    }

    fn edit_json(&mut self, name: &str, change: impl FnOnce(&mut Value)) {
        let text = self.section(name);
        let mut value: Value = serde_json::from_str(text).unwrap();
        change(&mut value);
        *text = serde_json::to_string_pretty(&value).unwrap();
    }

    /// Changes the profile's module `name`.
    fn edit_module(&mut self, name: &str, change: impl FnOnce(&mut Value)) {
        self.edit_json(section::PROFILE, |p| {
            let modules = p["modules"].as_array_mut().unwrap();
            change(modules.iter_mut().find(|m| m["name"] == name).unwrap_or_else(|| panic!("no module {name}")))
        })
    }

    fn set_exit_code(&mut self, name: &str, code: i32) {
        let codes = self.section(EXIT_CODES);
        let lines: Vec<String> = codes
            .lines()
            .map(|l| if l.split(' ').next() == Some(name) { format!("{name} {code}") } else { l.to_string() })
            .collect();
        assert_ne!(&lines.join("\n"), codes, "no exit code for {name}");
        *codes = lines.join("\n");
    }

    fn checks(&self, compressed: bool) -> Vec<Check> {
        let mut serial = format!(
            "==== events begin\n{}\n==== events end\n==== trace-err begin\n{}\n==== trace-err end\n",
            self.records.join("\n"),
            self.stderr.join("\n")
        );
        for (name, text) in &self.sections {
            serial.push_str(&format!("==== {name} begin\n{text}\n==== {name} end\n"));
        }
        let mut console = self.console.clone();
        console.push(self.marker.clone());
        check_all(GuestOutput::parse(&console, &serial), compressed)
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
    expect_failure("load_calls_on_fexit", false, |r| {
        r.stderr[2] = "modtrace: note: load calls stay on their exit tracepoint: fexit unavailable here (x)".into()
    });
    expect_failure("tracer_exited_cleanly", false, |r| {
        r.marker = "MODTRACE-GUEST-DONE failed_steps=0 tracer_status=137".into()
    });
    expect_failure("events_parse_as_json", false, |r| r.records.push("{\"kind\": ".into()));
    expect_failure("no_lost_events", false, |r| r.stderr[1] = r.stderr[1].replace("lost 0", "lost 3"));
    // Skipped results excuse only themselves, never a lost load or request.
    expect_failure("no_lost_events", false, |r| {
        r.stderr[1] = r.stderr[1]
            .replace("lost 0 (", "lost 1 (")
            .replace("skipped results 0", "skipped results 1")
            .replace("lost loads and requests: 0", "lost loads and requests: 1")
    });
    expect_failure("no_lost_events", false, |r| {
        r.stderr.remove(1);
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
    expect_failure("chain_top_loaded_by_unit_request", false, |r| {
        r.edit(i(r, "loaded", "pppox"), |v| v["cause"]["requester"]["unit"] = json!(null))
    });
    expect_failure("chain_top_loaded_by_unit_request", false, |r| {
        r.edit(i(r, "loaded", "pppox"), |v| v["process"]["comm"] = json!("modtrace-guest"))
    });
    expect_failure("chain_middle_needed_by_top", false, |r| {
        r.edit(i(r, "loaded", "ppp_generic"), |v| v["cause"]["needed_by"] = json!([]))
    });
    expect_failure("chain_bottom_needed_by_both", false, |r| {
        r.edit(i(r, "loaded", "slhc"), |v| v["cause"]["requester"]["cgroup"] = json!("/"))
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
    // af_alg by a request for another alias is no explicit load either.
    expect_failure("net_pf_38_request_fails", false, |r| {
        r.records.push(requested("af_alg", "net-pf-38-x", process("x", None), &[]).to_string())
    });
    // Folded: no record names loop; or no failure of its own came before it.
    expect_failure("init_failure_after_link_never_folded", false, |r| {
        r.edit(i(r, "load", "loop"), |v| v["module"] = json!(null))
    });
    expect_failure("init_failure_after_link_never_folded", false, |r| {
        let null_load = r.position(|v| text(v, "/syscall") == "finit_module" && text(v, "/error") == "EINVAL");
        r.records.remove(null_load);
    });
    for (alias, site) in [("net-pf-24", "0xffffffff812a01a0"), ("net-pf-38", "__sock_create+0x1a0/0x2e0")] {
        expect_failure("socket_request_call_site_named_by_kernel", false, |r| {
            r.edit(i(r, "request", alias), |v| v["call_site"] = json!(site))
        });
    }
    expect_failure("vfat_unloaded_by_rmmod", false, |r| {
        r.edit(i(r, "unloaded", "vfat"), |v| v["process"]["comm"] = json!("modprobe"))
    });
}

#[test]
fn every_learning_check_can_fail() {
    let f = false;
    expect_failure("learner_saved_on_sigint", f, |r| r.set_exit_code(cap::LEARN, 130));
    expect_failure("learner_saved_on_sigint", f, |r| r.replace("learn.stderr", "(SIGINT)", "(error)"));
    expect_failure("profile_schema_kernel_session", f, |r| {
        r.edit_json(section::PROFILE, |p| p["schema"] = json!("modtrace-profile/1"))
    });
    expect_failure("profile_schema_kernel_session", f, |r| r.console[0] = "guest: kernel 6.12.1, x".into());
    expect_failure("profile_schema_kernel_session", f, |r| {
        r.edit_json(section::PROFILE, |p| p["sessions"][0]["lost_events"] = json!(2))
    });
    expect_failure("profile_schema_kernel_session", f, |r| {
        r.edit_json(section::PROFILE, |p| {
            p["sessions"][0]["lost_events"] = json!(2);
            p["sessions"][0]["drops"]["skipped_results"] = json!(1);
        })
    });
    expect_failure("profile_schema_kernel_session", f, |r| {
        r.edit_json(section::PROFILE, |p| p["sessions"][0]["end"] = json!(null))
    });
    expect_failure("profile_schema_kernel_session", f, |r| {
        r.edit_json(section::PROFILE, |p| p["sessions"].as_array_mut().unwrap().push(session("SIGINT")))
    });
    expect_failure("profile_chain_top_requested_by_unit", f, |r| {
        r.edit_module("pppox", |m| m["triggers"][0]["requester"]["unit"] = json!(null))
    });
    expect_failure("profile_chain_top_requested_by_unit", f, |r| {
        r.edit_module("pppox", |m| m["top_level"] = json!(false))
    });
    expect_failure("profile_chain_top_requested_by_unit", f, |r| {
        r.edit_module("pppox", |m| {
            m["triggers"][0]["requester"]["scope"] = json!({"kind": "user", "uid": 1000, "unit": "example.service"})
        })
    });
    expect_failure("profile_chain_top_requested_by_unit", f, |r| {
        r.edit_module("pppox", |m| m["triggers"][0]["requester"]["uid"] = json!(1000))
    });
    expect_failure("profile_chain_dependencies_needed_by_top", f, |r| {
        r.edit_module("slhc", |m| m["needed_by"] = json!(["ppp_generic"]))
    });
    expect_failure("profile_chain_dependencies_needed_by_top", f, |r| {
        r.edit_module("ppp_generic", |m| m["top_level"] = json!(true))
    });
    expect_failure("profile_binfmt_misc_by_request", f, |r| {
        r.edit_module("binfmt_misc", |m| m["triggers"][0]["alias"] = json!("binfmt_misc"))
    });
    expect_failure("profile_vfat_top_level_fat_not", f, |r| r.edit_module("fat", |m| m["top_level"] = json!(true)));
    expect_failure("profile_vfat_top_level_fat_not", f, |r| {
        r.edit_module("vfat", |m| m["triggers"][0]["kind"] = json!("udev"))
    });
    expect_failure("profile_net_pf_38_without_module", f, |r| {
        r.edit_json(section::PROFILE, |p| p["requests"][0]["resolves_to"] = json!(["af_alg"]))
    });
    expect_failure("profile_net_pf_38_without_module", f, |r| {
        r.edit_json(section::PROFILE, |p| p["requests"] = json!([]))
    });
    expect_failure("profile_failed_eexist", f, |r| {
        r.edit_json(section::PROFILE, |p| p["failed"][0]["syscall"] = json!("finit_module"))
    });
    expect_failure("profile_failed_finit_module", f, |r| {
        r.edit_json(section::PROFILE, |p| p["failed"][1]["syscall"] = json!("init_module"))
    });
    expect_failure("profile_failed_finit_module", f, |r| {
        r.edit_json(section::PROFILE, |p| p["failed"][1]["count"] = json!(1))
    });
    expect_failure("profile_preloaded_by_modules_load_d", f, |r| {
        r.edit_module("tcp_bic", |m| m["triggers"][0]["reason"] = json!("before learning"))
    });
    expect_failure("profile_preloaded_before_learning", f, |r| {
        r.edit_module("tcp_highspeed", |m| m["triggers"][0]["kind"] = json!("explicit"))
    });
    expect_failure("profile_keeps_flood_loads", f, |r| {
        r.edit_json(section::PROFILE, |p| p["modules"].as_array_mut().unwrap().retain(|m| m["name"] != "phonet"))
    });
    expect_failure("profile_keeps_flood_loads", f, |r| {
        r.edit_module("tcp_illinois", |m| m["triggers"][0]["kind"] = json!("unknown"))
    });
    expect_failure("report_table", f, |r| r.replace("report-table.stdout", "request net-pf-24", "request ?"));
    expect_failure("report_table", f, |r| r.set_exit_code(cap::REPORT_TABLE, 1));
    expect_failure("report_markdown", f, |r| r.replace("report-markdown.stdout", "|---|---:|", "| - | -: |"));
    expect_failure("report_json", f, |r| r.replace("report-json.stdout", "{", "["));
    expect_failure("report_json", f, |r| r.replace("report-json.stdout", "modtrace-report/1", "x"));
    expect_failure("report_by_unit", f, |r| r.replace("report-by-unit.stdout", "example.service\n", "\n"));
    expect_failure("diff_exit_codes", f, |r| r.set_exit_code(cap::DIFF_CHANGED, 0));
    expect_failure("diff_exit_codes", f, |r| r.set_exit_code(cap::DIFF_SAME, 1));
    expect_failure("diff_exit_codes", f, |r| r.replace("diff-before-after.stdout", "+ pppox", "+ x"));
    expect_failure("diff_explained_by_profile", f, |r| {
        r.replace("diff-profile.stdout", "(request net-pf-24 by", "(request by")
    });
    expect_failure("diff_explained_by_profile", f, |r| r.set_exit_code(cap::DIFF_EXPLAINED, 2));
    expect_failure("second_learner_refused", f, |r| r.set_exit_code(cap::SECOND_LEARNER, 0));
    expect_failure("second_learner_refused", f, |r| r.replace("learn.pid", LEARNER_PID, "322"));
    expect_failure("killed_learner_keeps_checkpoint", f, |r| r.set_exit_code(cap::KILLED_LEARNER, 0));
    expect_failure("killed_learner_keeps_checkpoint", f, |r| {
        r.replace(section::KILLED_PROFILE, "tcp_scalable", "tcp_vegas")
    });
    expect_failure("killed_learner_keeps_checkpoint", f, |r| {
        r.replace(section::KILLED_PROFILE, "\"checkpoint\"", "\"SIGINT\"")
    });
    expect_failure("killed_learner_keeps_checkpoint", f, |r| {
        r.edit_json(section::KILLED_PROFILE, |p| p["modules"][0]["triggers"][0] = trigger_preloaded("before learning"))
    });
    expect_failure("killed_learner_keeps_checkpoint", f, |r| {
        let text = r.section(section::KILLED_PROFILE);
        text.truncate(text.len() / 2);
    });
    expect_failure("corrupt_profile_refused_and_kept", f, |r| r.set_exit_code(cap::CORRUPT_LEARNER, 0));
    expect_failure("corrupt_profile_refused_and_kept", f, |r| r.replace("learn-corrupt.stderr", ":1:47:", ":"));
    expect_failure("corrupt_profile_refused_and_kept", f, |r| r.set_exit_code(cap::CORRUPT_CMP, 1));
    expect_failure("corrupt_profile_refused_and_kept", f, |r| r.section(section::CORRUPT_AFTER).push(']'));
}

#[test]
fn every_flood_check_can_fail() {
    let f = false;
    let spam_loads = |v: &Value| v["kind"] == "load" && v["process"]["tgid"] == json!(SPAM_LOADS_PID);
    let spam_requests = |v: &Value| v["kind"] == "request" && v["process"]["tgid"] == json!(SPAM_REQUESTS_PID);
    let i = |r: &Run, kind, name| r.find(kind, name);
    expect_failure("flood_autoload_attributed", f, |r| {
        r.edit(i(r, "loaded", "phonet"), |v| v["cause"]["requester"]["comm"] = json!("init"))
    });
    expect_failure("flood_autoload_attributed", f, |r| {
        r.records.remove(i(r, "request", "net-pf-35"));
    });
    expect_failure("flood_explicit_attributed", f, |r| {
        r.records.remove(i(r, "loaded", "tcp_illinois"));
    });
    expect_failure("flood_overlaps_real_loads", f, |r| {
        r.edit(i(r, "loaded", "phonet"), |v| v["ts_ns"] = json!(30 * SECOND))
    });
    expect_failure("flood_overlaps_real_loads", f, |r| {
        r.edit(i(r, "loaded", "tcp_illinois"), |v| v["ts_ns"] = json!(SECOND))
    });
    expect_failure("flood_failed_loads_folded", f, |r| r.edit_all(spam_loads, |v| v["repeats"] = json!(0)));
    expect_failure("flood_failed_loads_folded", f, |r| r.replace("spam-failed-loads.stdout", "=121000", "=125000"));
    expect_failure("flood_failed_loads_folded", f, |r| r.replace("spam-failed-loads.stdout", "=121000", "=100"));
    expect_failure("flood_failed_loads_folded", f, |r| r.set_exit_code(cap::SPAM_FAILED_LOADS, 1));
    expect_failure("flood_failed_loads_folded", f, |r| {
        // Unfolded: a record per attempt.
        let one = r.records[r.position(spam_loads)].clone();
        r.records.extend(std::iter::repeat_n(one, 20));
    });
    expect_failure("flood_failed_loads_folded", f, |r| {
        r.records.retain(|l| !spam_loads(&serde_json::from_str(l).unwrap()))
    });
    let in_turn = |v: &Value| v["kind"] == "load" && v["process"]["tgid"] == json!(IN_TURN_PIDS[1]);
    expect_failure("failed_loads_in_turn_accounted", f, |r| r.edit_all(in_turn, |v| v["repeats"] = json!(0)));
    expect_failure("failed_loads_in_turn_accounted", f, |r| r.replace("alternate-failed-loads.stdout", "511 attempts=4100", "511 attempts=9100"));
    expect_failure("failed_loads_in_turn_accounted", f, |r| r.replace("alternate-failed-loads.stdout", "4100 failed=4100", "4100 failed=4000"));
    expect_failure("failed_loads_in_turn_accounted", f, |r| r.replace("alternate-failed-loads.stdout", "pid=511", "pid=512"));
    expect_failure("failed_loads_in_turn_accounted", f, |r| r.set_exit_code(cap::ALTERNATE_FAILED_LOADS, 1));
    // One's repeats carried on the other's records.
    expect_failure("failed_loads_in_turn_accounted", f, |r| r.edit(r.position(in_turn), |v| v["repeats"] = json!(4200)));
    expect_failure("failed_loads_in_turn_accounted", f, |r| r.records.retain(|l| !in_turn(&serde_json::from_str(l).unwrap())));
    expect_failure("failed_loads_in_turn_accounted", f, |r| {
        let one = r.records[r.position(in_turn)].clone();
        r.records.extend(std::iter::repeat_n(one, 10));
    });
    let evict_err = cap::EVICT_TRACE_ERR;
    let evict_out = &format!("{}.stdout", cap::EVICT_FAILED_LOADS);
    // Repeats lost uncounted, or counted twice.
    expect_failure("fold_evictions_counted", f, |r| r.replace(evict_err, "repeats 3000", "repeats 2990"));
    expect_failure("fold_evictions_counted", f, |r| r.replace(evict_err, "reported: 270", "reported: 280"));
    expect_failure("fold_evictions_counted", f, |r| r.replace(evict_out, "pid=605 attempts=400", "pid=605 attempts=410"));
    // The map never filled: nothing shows the count of what it drops.
    expect_failure("fold_evictions_counted", f, |r| {
        r.replace(evict_err, "repeats 3000", "repeats 0");
        r.replace(evict_err, "reported: 270", "reported: 3270");
    });
    expect_failure("fold_evictions_counted", f, |r| r.replace(evict_out, "pid=609", "pid=619"));
    expect_failure("fold_evictions_counted", f, |r| r.set_exit_code(cap::EVICT_FAILED_LOADS, 1));
    expect_failure("fold_evictions_counted", f, |r| r.set_exit_code(cap::EVICT_TRACE, 130));
    let illinois_call = |v: &Value| v["kind"] == "load" && v["module"] == "tcp_illinois";
    expect_failure("skipped_results_accounted", f, |r| {
        r.records.retain(|l| !illinois_call(&serde_json::from_str(l).unwrap()))
    });
    expect_failure("skipped_results_accounted", f, |r| r.replace("spam-failed-loads.stdout", "=121000", "=121600"));
    expect_failure("flood_requests_folded", f, |r| r.edit_all(spam_requests, |v| v["repeats"] = json!(0)));
    expect_failure("flood_requests_folded", f, |r| r.edit_all(spam_requests, |v| v["repeats"] = json!(400)));
    expect_failure("flood_requests_folded", f, |r| {
        r.edit(r.position(spam_requests), |v| v["alias"] = json!("net-pf-35"))
    });
    expect_failure("trace_summary_adds_up", f, |r| r.stderr[1] = r.stderr[1].replace("lost 0", "lost 1"));
    expect_failure("trace_summary_adds_up", f, |r| r.records.push(r.records[0].clone()));
    expect_failure("trace_summary_adds_up", f, |r| {
        r.stderr.remove(1);
    });
    expect_failure("no_lost_loads", f, |r| r.stderr[1] = r.stderr[1].replace("loads 0", "loads 4"));
    expect_failure("every_new_module_has_loaded_record", f, |r| {
        r.records.remove(i(r, "loaded", "tcp_scalable"));
    });
    expect_failure("every_new_module_has_loaded_record", f, |r| r.section("lsmod").push_str("\nsctp 1 0"));
}

/// A module linked with no call record passes when the kernel says it skipped
/// a load call's exit, and only then.
#[test]
fn a_skipped_load_result_accounts_for_a_missing_call() {
    let accounted = |skipped: u64| {
        let mut r = Run::good(false);
        r.records.retain(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            !(v["kind"] == "load" && v["module"] == "tcp_illinois")
        });
        let events = r.records.len();
        r.stderr[1] = summary_line(events)
            .replace("lost 0", &format!("lost {skipped}"))
            .replace("skipped results 0", &format!("skipped results {skipped}"));
        failures(&r.checks(false))
    };
    assert!(accounted(0).contains(&"skipped_results_accounted"));
    let failed = accounted(1);
    assert!(!failed.contains(&"skipped_results_accounted") && !failed.contains(&"no_lost_events"), "{failed:?}");
}

/// A learning session whose only losses are load results the kernel skipped
/// passes the session check.
#[test]
fn a_session_losing_only_skipped_results_passes() {
    let mut r = Run::good(false);
    r.edit_json(section::PROFILE, |p| {
        p["sessions"][0]["lost_events"] = json!(1);
        p["sessions"][0]["drops"]["skipped_results"] = json!(1);
    });
    let failed = failures(&r.checks(false));
    assert!(!failed.contains(&"profile_schema_kernel_session"), "{failed:?}");
}

/// Attempts no record carries are accounted for by the load exits' runs the
/// kernel said it skipped, and by nothing else it skipped.
#[test]
fn skipped_load_results_account_for_unseen_failed_loads() {
    let folded_check = |skipped: &str| {
        let mut r = Run::good(false);
        r.replace("spam-failed-loads.stdout", "=121000", "=125000");
        r.stderr[1] = r.stderr[1].replace("lost 0", "lost 3500").replace(&format!("{skipped}0"), &format!("{skipped}3500"));
        let failed = failures(&r.checks(false));
        failed.contains(&"flood_failed_loads_folded")
    };
    assert!(!folded_check("skipped results "), "3500 skipped exits did not account for the attempts");
    assert!(folded_check("skipped requests "), "skipped requests accounted for failed loads");
    assert!(folded_check("skipped loads "), "skipped module loads accounted for failed loads");
}

#[test]
fn every_distinct_flood_and_drops_check_can_fail() {
    let f = false;
    let distinct = |v: &Value| v["kind"] == "request" && text(v, "/alias").starts_with("fs-mtflood");
    let i = |r: &Run, kind, name| r.find(kind, name);
    // A request neither seen nor counted as lost.
    expect_failure("distinct_flood_every_request_counted", f, |r| {
        r.records.remove(r.position(distinct));
    });
    // Folded, though every alias was new.
    expect_failure("distinct_flood_every_request_counted", f, |r| {
        r.edit(r.position(distinct), |v| v["repeats"] = json!(1))
    });
    // All from one process: not a new process per batch.
    expect_failure("distinct_flood_every_request_counted", f, |r| {
        r.edit_all(distinct, |v| v["process"]["tgid"] = json!(DISTINCT_PID))
    });
    expect_failure("distinct_flood_every_request_counted", f, |r| {
        r.replace("spam-distinct-requests.stdout", "failed=8", "failed=7")
    });
    expect_failure("distinct_flood_every_request_counted", f, |r| r.set_exit_code(cap::SPAM_DISTINCT_REQUESTS, 1));
    // More attempts than seen: only a counted loss may explain them.
    expect_failure("distinct_flood_every_request_counted", f, |r| {
        r.replace("spam-distinct-requests.stdout", "attempts=8 failed=8", "attempts=9 failed=9")
    });
    expect_failure("distinct_flood_real_loads_keep_their_cause", f, |r| {
        r.edit(i(r, "loaded", "qrtr"), |v| v["cause"]["alias"] = json!("fs-mtflood3"))
    });
    expect_failure("distinct_flood_real_loads_keep_their_cause", f, |r| {
        r.edit(i(r, "loaded", "tcp_vegas"), |v| v["cause"]["kind"] = json!("unknown"))
    });
    expect_failure("distinct_flood_real_loads_keep_their_cause", f, |r| {
        r.edit(i(r, "loaded", "qrtr"), |v| v["ts_ns"] = json!(90 * SECOND))
    });
    expect_failure("profile_session_drops_by_kind", f, |r| {
        r.edit_json(section::PROFILE, |p| p["sessions"][0].as_object_mut().unwrap().remove("drops").map(|_| ()).unwrap())
    });
    expect_failure("profile_session_drops_by_kind", f, |r| {
        r.edit_json(section::PROFILE, |p| p["sessions"][0]["drops"]["ring_failures"] = json!(3))
    });
    expect_failure("profile_session_drops_by_kind", f, |r| {
        r.edit_json(section::PROFILE, |p| p["sessions"][0]["drops"].as_object_mut().unwrap().remove("evicted_requests").map(|_| ()).unwrap())
    });
}

#[test]
fn every_kernel_thread_check_can_fail() {
    let f = false;
    let (template, inner) = (sc::KTHREAD_TEMPLATE, sc::KTHREAD_INNER);
    let edit_request =
        |alias: &'static str, change: fn(&mut Value)| move |r: &mut Run| r.edit(r.find("request", alias), change);
    let edit_loaded =
        |module: &'static str, change: fn(&mut Value)| move |r: &mut Run| r.edit(r.find("loaded", module), change);
    // The thread's request trusted as root's own, or not marked a kernel thread.
    expect_failure("kthread_joined_to_binder", f, edit_request(inner.0, |v| {
        v["kthread"]["requester"]["uid"] = json!(0)
    }));
    expect_failure("kthread_joined_to_binder", f, edit_request(inner.0, |v| {
        v["process"]["kernel_thread"] = json!(false)
    }));
    expect_failure("kthread_joined_to_binder", f, edit_request(template.0, |v| {
        v["process"]["comm"] = json!("kworker/0:1")
    }));
    // The load given to the thread (root, no unit), or not through it.
    expect_failure("kthread_joined_to_binder", f, edit_loaded(inner.1, |v| v["cause"]["requester"]["uid"] = json!(0)));
    expect_failure("kthread_joined_to_binder", f, edit_loaded(template.1, |v| v["cause"]["kthread"] = json!(null)));
    expect_failure("kthread_joined_to_binder", f, edit_loaded(inner.1, |v| v["cause"]["alias"] = json!("crypto-aes")));
    let trigger = |module: &'static str, change: fn(&mut Value)| move |r: &mut Run| r.edit_module(module, change);
    expect_failure("kthread_profile_names_binder", f, trigger(inner.1, |m| {
        m["triggers"][0]["requester"]["uid"] = json!(0)
    }));
    expect_failure("kthread_profile_names_binder", f, trigger(template.1, |m| m["triggers"][0]["via"] = json!(null)));
    expect_failure("kthread_profile_names_binder", f, trigger(inner.1, |m| m["triggers"] = json!([])));
    expect_failure("kthread_profile_names_binder", f, |r| {
        r.edit_json(section::PROFILE, |p| p["modules"].as_array_mut().unwrap().retain(|m| m["name"] != inner.1))
    });
    let listed = |name: &'static str| {
        move |r: &mut Run| r.replace(section::GENERATED_LIST, "pppox", &format!("pppox\n{name}"))
    };
    expect_failure("kthread_needs_review_not_listed", f, listed(inner.1));
    expect_failure("kthread_needs_review_not_listed", f, listed(template.1));
    expect_failure("kthread_needs_review_not_listed", f, |r| r.replace("check.stdout", "  - lrw:", "  - lrw_other:"));
}

#[test]
fn every_who_asked_check_can_fail() {
    let f = false;
    let i = |r: &Run, kind, name| r.find(kind, name);
    let user = sc::WHO_USER_MODULE;
    let container = sc::WHO_CONTAINER_MODULE;
    expect_failure("who_user_unit_requester", f, |r| {
        r.edit(i(r, "request", sc::WHO_USER_ALIAS), |v| v["process"]["uid"] = json!(0))
    });
    expect_failure("who_user_unit_requester", f, |r| {
        r.edit(i(r, "request", sc::WHO_USER_ALIAS), |v| v["process"]["euid"] = json!(0))
    });
    expect_failure("who_user_unit_requester", f, |r| {
        r.edit(i(r, "loaded", user), |v| v["cause"]["requester"]["loginuid"] = json!(sc::AUDIT_UNSET))
    });
    expect_failure("who_user_unit_requester", f, |r| {
        r.edit(i(r, "loaded", user), |v| v["cause"]["requester"]["sessionid"] = json!(sc::AUDIT_UNSET))
    });
    // Only the leaf of the path: the cgroup a kernel cut is not the whole path.
    expect_failure("who_user_unit_requester", f, |r| {
        r.edit(i(r, "loaded", user), |v| v["cause"]["requester"]["cgroup"] = json!("/system.slice/lightdm.service"))
    });
    expect_failure("who_user_unit_requester", f, |r| {
        r.edit(i(r, "loaded", user), |v| v["cause"]["requester"].as_object_mut().unwrap().remove("euid").map(|_| ()).unwrap())
    });
    expect_failure("who_user_unit_requester", f, |r| {
        r.edit(i(r, "loaded", user), |v| v["process"]["loginuid"] = json!(1000))
    });
    expect_failure("who_container_unit_requester", f, |r| {
        r.edit(i(r, "request", sc::WHO_CONTAINER_ALIAS), |v| v["process"]["cgroup"] = json!("/system.slice/cron.service"))
    });
    expect_failure("who_container_unit_requester", f, |r| {
        r.edit(i(r, "loaded", container), |v| v["cause"]["requester"]["comm"] = json!("modprobe"))
    });
    expect_failure("who_container_unit_requester", f, |r| {
        r.records.remove(i(r, "request", sc::WHO_CONTAINER_ALIAS));
    });
    // Named like a host unit: it must not pass for one.
    expect_failure("who_container_unit_requester", f, |r| {
        r.edit(i(r, "loaded", container), |v| {
            v["cause"]["requester"]["scope"] = json!({"kind": "system", "unit": "cron.service"})
        })
    });
    expect_failure("who_user_unit_requester", f, |r| {
        r.edit(i(r, "request", sc::WHO_USER_ALIAS), |v| v["process"]["scope"] = json!({"kind": "system", "unit": "lightdm.service"}))
    });
    expect_failure("who_user_unit_requester", f, |r| {
        r.edit(i(r, "loaded", user), |v| v["cause"]["requester"]["scope"]["uid"] = json!(1001))
    });
}

#[test]
fn reads_the_trace_summary_line() {
    let s = flood::parse_summary(
        "modtrace: 57 events (SIGINT); lost 22 (requests 1, loads 0, failures 4, unreadable aliases 1, \
         unreadable module names 0, results without their call 2, requests evicted 1, \
         untrusted requests evicted 3, undecodable 0, \
         skipped requests 1, skipped loads 2, skipped results 3, repeats 4); \
         lost loads and requests: 6; repeats folded and not yet reported: 77",
    )
    .unwrap();
    let expected = flood::TraceSummary {
        events: 57,
        lost: 22,
        requests: 1,
        failures: 4,
        unreadable_aliases: 1,
        results_without_call: 2,
        evicted_requests: 1,
        evicted_untrusted_requests: 3,
        skipped_requests: 1,
        skipped_loads: 2,
        skipped_results: 3,
        lost_repeats: 4,
        blocking: 6,
        folded_pending: 77,
        ..Default::default()
    };
    assert_eq!(s, expected);
    assert!(flood::parse_summary("modtrace: attached 7 programs in 1899 ms").is_none());
}

#[test]
fn reads_the_spammers_counts() {
    let s = flood::parse_spam("spam-requests: pid=77 attempts=180 failed=179 seconds=5.0").unwrap();
    assert_eq!(s, flood::Spam { pid: 77, attempts: 180, failed: 179 });
    assert!(flood::parse_spam("nothing").is_none());
}

#[test]
fn finds_a_file_position_in_a_message() {
    assert!(learn::names_position("x: /tmp/c.json:1:47: ends early", "/tmp/c.json"));
    assert!(!learn::names_position("x: /tmp/c.json: ends early", "/tmp/c.json"));
    assert!(!learn::names_position("x: /tmp/c.json:1: ends early", "/tmp/c.json"));
    assert!(!learn::names_position("x: /tmp/d.json:1:2: ends early", "/tmp/c.json"));
}

#[test]
fn every_trust_check_can_fail() {
    use section::{ACCEPTED_FILES, ACCEPTED_LIST, GENERATED_FILES, GENERATED_LIST};
    let f = false;
    expect_failure("trust_generate_lists_root_needs_only", f, |r| r.replace(GENERATED_LIST, "pppox", "pppox\nkcm"));
    expect_failure("trust_generate_lists_root_needs_only", f, |r| r.replace(GENERATED_LIST, "pppox", "pppox\nminix"));
    expect_failure("trust_generate_lists_root_needs_only", f, |r| r.replace(GENERATED_LIST, "pppox", "pppox\ncan"));
    expect_failure("trust_generate_lists_root_needs_only", f, |r| r.replace(GENERATED_LIST, "pppox\n", ""));
    expect_failure("trust_generate_lists_root_needs_only", f, |r| r.set_exit_code(cap::GENERATE, 1));
    expect_failure("trust_no_drop_in_for_user_or_container_unit", f, |r| {
        r.replace(GENERATED_FILES, "example.service.d", "lightdm.service.d")
    });
    expect_failure("trust_no_drop_in_for_user_or_container_unit", f, |r| {
        r.section(GENERATED_FILES).push_str("\n./etc/systemd/system/cron.service.d/modtrace-modules.conf")
    });
    expect_failure("trust_check_puts_untrusted_under_review", f, |r| {
        r.replace("check.stdout", "accept: modtrace allow minix", "")
    });
    expect_failure("trust_check_puts_untrusted_under_review", f, |r| r.replace("check.stdout", "needs review:", "review:"));
    expect_failure("trust_check_puts_untrusted_under_review", f, |r| r.set_exit_code(cap::CHECK, 2));
    expect_failure("trust_site_disabled_request_warns_not_blocks", f, |r| {
        r.replace("check.stdout", "denied by site policy", "resolves to can")
    });
    expect_failure("trust_site_disabled_request_warns_not_blocks", f, |r| {
        r.section("check.stdout").push_str("\n  - request for net-pf-29 (modtrace-guest) would fail after the lock")
    });
    expect_failure("trust_allow_lists_the_accepted_module", f, |r| r.replace(ACCEPTED_LIST, "kcm\n", ""));
    expect_failure("trust_allow_lists_the_accepted_module", f, |r| r.replace(ACCEPTED_LIST, "kcm", "kcm\nminix"));
    expect_failure("trust_allow_lists_the_accepted_module", f, |r| r.set_exit_code(cap::ALLOW, 1));
    expect_failure("trust_allow_lists_the_accepted_module", f, |r| {
        r.section(ACCEPTED_FILES).push_str("\n./etc/systemd/system/lightdm.service.d/modtrace-modules.conf")
    });
}

#[test]
fn every_early_check_can_fail() {
    expect_failure("early_probes_pinned_and_taken_over", false, |r| {
        *r.section("exit-codes") = r.section("exit-codes").replace("early-released 0", "early-released 1")
    });
    expect_failure("early_probes_pinned_and_taken_over", false, |r| {
        *r.section("early-learn.stderr") = "modtrace: attached 7 programs in 700 ms; learning".into()
    });
    expect_failure("early_probes_pinned_and_taken_over", false, |r| {
        *r.section("exit-codes") = r.section("exit-codes").replace("early-pin 0", "early-pin 1")
    });
    expect_failure("early_loads_learned_with_causes", false, |r| {
        edit_early_trigger(r, sc::EARLY_MODULE, |t| *t = json!({"kind": "preloaded", "reason": "before learning", "count": 1}))
    });
    // A pid reused by another process must not lend its executable.
    expect_failure("early_loads_learned_with_causes", false, |r| {
        edit_early_trigger(r, sc::EARLY_REQUEST_MODULE, |t| t["requester"]["exe"] = json!("/usr/bin/python3"))
    });
    expect_failure("early_loads_learned_with_causes", false, |r| {
        edit_early_trigger(r, sc::EARLY_REQUEST_MODULE, |t| t["kind"] = json!("unknown"))
    });
    expect_failure("early_loads_learned_with_causes", false, |r| {
        let mut p: Value = serde_json::from_str(r.section(section::EARLY_PROFILE)).unwrap();
        p["sessions"][0].as_object_mut().unwrap().remove("from_initramfs");
        *r.section(section::EARLY_PROFILE) = p.to_string();
    });
}

#[test]
fn every_check_is_exercised_by_a_failure() {
    let source = [include_str!("tests.rs"), include_str!("seal.rs")].concat();
    for (name, _) in CHECKS {
        assert!(source.contains(&format!("expect_failure(\"{name}\"")), "{name} has no failure test");
    }
}

#[test]
fn lost_counts_read_the_number_after_lost() {
    assert_eq!(lost_counts(&summary_line(20)), [0]);
    assert_eq!(lost_counts("modtrace: 5 events (x); lost 2 (requests 2)"), [2]);
    assert!(lost_counts("nothing here 5").is_empty());
}

#[test]
fn every_guard_check_can_fail() {
    let f = false;
    let without = |r: &mut Run, section: &str, kind: &str, key: &str, value: &str| {
        let text = r.section(section);
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                !(v["kind"] == kind && v[key] == value)
            })
            .collect();
        assert_ne!(kept.len(), text.lines().count(), "{section}: nothing to remove");
        *text = kept.join("\n");
    };
    expect_failure("guard_status_before_start", f, |r| r.set_exit_code("guard-status-before", 0));
    expect_failure("guard_complain_lets_outside_load_and_reports_it", f, |r| r.set_exit_code("guard-complain-modprobe-outside", 1));
    expect_failure("guard_complain_lets_outside_load_and_reports_it", f, |r| {
        without(r, "guard-trace.jsonl", "guard_would_deny", "mode", "complain")
    });
    expect_failure("guard_enforce_loads_profile_modules_on_demand", f, |r| r.set_exit_code("guard-enforce-autoload-profile", 2));
    expect_failure("guard_enforce_loads_profile_modules_on_demand", f, |r| {
        without(r, "guard-trace.jsonl", "guard_allowed", "alias", "rtnl-link-dummy")
    });
    expect_failure("guard_enforce_refuses_explicit_load_outside", f, |r| r.set_exit_code("guard-enforce-outside-loaded", 0));
    expect_failure("guard_enforce_refuses_explicit_load_outside", f, |r| {
        r.replace("guard-trace.jsonl", r#""kind":"guard_denied","hook":"finit_module","mode":"enforce""#, r#""kind":"guard_allowed","hook":"finit_module","mode":"enforce""#)
    });
    expect_failure("guard_enforce_refuses_autoload_outside", f, |r| r.set_exit_code("guard-enforce-autoload-outside", 0));
    expect_failure("guard_enforce_refuses_autoload_outside", f, |r| r.replace("guard-trace.jsonl", r#""comm":"sh""#, r#""comm":"kworker/0:1""#));
    expect_failure("guard_enforce_refuses_renamed_module_file", f, |r| r.set_exit_code("guard-enforce-renamed-loaded", 0));
    expect_failure("guard_enforce_refuses_renamed_module_file", f, |r| {
        without(r, "guard-trace.jsonl", "guard_denied", "file", "renamed.ko")
    });
    expect_failure("guard_enforce_refuses_init_module_outside", f, |r| r.set_exit_code("guard-enforce-init-module", 0));
    expect_failure("guard_enforce_refuses_init_module_outside", f, |r| {
        without(r, "guard-trace.jsonl", "guard_denied", "hook", "init_module")
    });
    // The old parse: the decoy name allowed, the module loaded.
    expect_failure("guard_decoy_init_module_named_as_the_kernel_names_it", f, |r| {
        r.set_exit_code("guard-decoy-init-module", 0);
        r.set_exit_code("guard-decoy-loaded", 0)
    });
    expect_failure("guard_decoy_init_module_named_as_the_kernel_names_it", f, |r| r.set_exit_code("guard-decoy-loaded", 0));
    // The kernel refused it, not the guard.
    expect_failure("guard_decoy_init_module_named_as_the_kernel_names_it", f, |r| {
        r.replace("guard-decoy-init-module.stderr", "Operation not permitted", "Exec format error")
    });
    expect_failure("guard_decoy_init_module_named_as_the_kernel_names_it", f, |r| {
        r.replace("guard-trace.jsonl", r#""module":"tcp_scalable""#, r#""module":"vfat""#)
    });
    expect_failure("guard_status_reports_mode_profile_and_counts", f, |r| r.replace("guard-status.stdout", "mode enforce", "mode complain"));
    expect_failure("guard_status_reports_mode_profile_and_counts", f, |r| r.replace("guard-status-json.stdout", r#""lost":0"#, r#""lost":3"#));
    expect_failure("guard_status_reports_mode_profile_and_counts", f, |r| r.replace("guard-status-json.stdout", r#""skipped":0"#, r#""skipped":null"#));
    expect_failure("guard_status_reports_mode_profile_and_counts", f, |r| r.replace("guard-status-json.stdout", r#""skipped":0"#, r#""skipped":2"#));
    expect_failure("guard_status_reports_mode_profile_and_counts", f, |r| r.replace("guard-status-json.stdout", r#""denied":4"#, r#""denied":1"#));
    expect_failure("guard_stop_restores_loading", f, |r| r.set_exit_code("guard-after-autoload", 1));
    expect_failure("guard_stop_restores_loading", f, |r| r.set_exit_code("guard-status-after", 0));
    expect_failure("guard_log_carries_the_refusals", f, |r| without(r, "guard-log.jsonl", "guard_denied", "alias", "tcp_scalable"));
    expect_failure("guard_log_carries_the_refusals", f, |r| r.set_exit_code("guard-log", 1));
    expect_failure("guard_watchers_follow_the_guard", f, |r| without(r, "guard-trace.jsonl", "guard_denied", "alias", "tcp_hybla"));
    expect_failure("guard_watchers_follow_the_guard", f, |r| without(r, "guard-log.jsonl", "guard_denied", "alias", "tcp_hybla"));
    expect_failure("guard_watchers_follow_the_guard", f, |r| r.set_exit_code("guard-restart-start", 1));
    expect_failure("guard_watchers_follow_the_guard", f, |r| r.set_exit_code("guard-restart-autoload", 0));
    expect_failure("guard_cost_of_a_decision_measured", f, |r| r.replace("guard-cost-refused.stdout", "errors=1:1000", "errors=1:999,17:1"));
    expect_failure("guard_cost_of_a_decision_measured", f, |r| r.replace("guard-cost-renamed-unguarded.stdout", "errors=17:1000", "errors=1:1000"));
    expect_failure("guard_cost_of_a_decision_measured", f, |r| r.section("guard-cost-allowed.stdout").clear());
}

#[test]
fn every_guard_liveness_check_can_fail() {
    let f = false;
    expect_failure("guard_status_says_enforcing_when_attached", f, |r| r.replace("guard-status-complain.stdout", "guard complaining:", "guard active,"));
    expect_failure("guard_status_says_enforcing_when_attached", f, |r| r.replace("guard-status.stdout", "guard enforcing:", "guard active,"));
    expect_failure("guard_status_says_enforcing_when_attached", f, |r| r.replace("guard-status-json.stdout", r#""attached":true"#, r#""attached":null"#));
    expect_failure("guard_status_says_enforcing_when_attached", f, |r| r.replace("guard-status-json.stdout", r#""lsm_active":true"#, r#""lsm_active":false"#));
    expect_failure("guard_detached_behind_the_back_is_reported", f, |r| r.set_exit_code("guard-detach-bpftool", 0));
    expect_failure("guard_detached_behind_the_back_is_reported", f, |r| r.set_exit_code("guard-status-detached", 3));
    expect_failure("guard_detached_behind_the_back_is_reported", f, |r| r.replace("guard-status-detached.stdout", "guard detached (guard_read_file not attached)", "the guard is not running"));
    expect_failure("guard_detached_behind_the_back_is_reported", f, |r| r.section("guard-status-detached.stderr").clear());
    expect_failure("guard_detached_behind_the_back_is_reported", f, |r| r.replace("guard-status-detached-json.stdout", r#"["guard_read_file"]"#, "[]"));
    expect_failure("guard_detached_behind_the_back_is_reported", f, |r| r.set_exit_code("guard-detached-renamed-loaded", 1));
    expect_failure("guard_trace_counts_lost_decisions", f, |r| r.replace("guard-trace.stderr", "guard decisions lost: 42", "guard decisions lost: 41"));
    expect_failure("guard_trace_counts_lost_decisions", f, |r| r.replace("guard-lost-counters.stdout", r#""value":30"#, r#""value":0"#));
    expect_failure("guard_trace_counts_lost_decisions", f, |r| r.replace("guard-trace.stderr", "; guard decisions lost: 42 (undecodable 0)", ""));
    expect_failure("guard_trace_counts_lost_decisions", f, |r| r.replace("guard-lose-spam.stdout", "attempts=80", "attempts=90"));
    expect_failure("guard_log_counts_what_it_logged_and_lost", f, |r| r.replace("guard-log.stderr", "9 decisions logged", "8 decisions logged"));
    expect_failure("guard_log_counts_what_it_logged_and_lost", f, |r| r.replace("guard-lost-counters.stdout", r#""value":["0x00","0x00"]"#, r#""value":["0x02","0x00"]"#));
    expect_failure("guard_log_counts_what_it_logged_and_lost", f, |r| r.section("guard-log.stderr").clear());
}

#[test]
fn per_cpu_counters_read_with_or_without_btf() {
    let raw = json!([{"key": ["0x01", "0x00", "0x00", "0x00"], "values": [{"cpu": 0, "value": ["0x2c", "0x01"]}, {"cpu": 1, "value": ["0x01"]}]}]);
    assert_eq!(super::liveness::per_cpu_sum(&raw, 1), Some(301));
    assert_eq!(super::liveness::per_cpu_sum(&raw, 0), None);
    let btf = json!([{"key": 1, "values": [{"cpu": 0, "value": 5}]}]);
    assert_eq!(super::liveness::per_cpu_sum(&btf, 1), Some(5));
}

// ---- loads from before learning (issue 21, part 1) ----

const PRELOAD_EXIT_CODES: &str = "\nlearn-relearn 0\ncheck-relearn 1";

fn relearn_profile() -> Value {
    let mut p = good_profile();
    p["sessions"] = json!([session("SIGINT"), session("duration")]);
    let atm = p["modules"].as_array_mut().unwrap().iter_mut().find(|m| m["name"] == sc::PRELOAD_USER_MODULE).unwrap();
    atm["triggers"][0]["count"] = json!(2);
    p
}

fn preload_sections() -> Vec<(String, String)> {
    let users = |l: &&str| l.starts_with("  - kcm") || l.starts_with("  - minix");
    let check: Vec<&str> = TRUST_CHECK.lines().filter(|l| !users(l)).collect();
    vec![
        (section::RELEARN_PROFILE.to_string(), serde_json::to_string_pretty(&relearn_profile()).unwrap()),
        ("check-relearn.stdout".to_string(), check.join("\n")),
        ("learn-relearn.stderr".to_string(), format!("modtrace: learning ended; profile saved to {}", sc::RELEARN_PROFILE)),
    ]
}

#[test]
fn every_preload_check_can_fail() {
    use section::{GENERATED_LIST, PROFILE, RELEARN_PROFILE};
    let f = false;
    let atm = sc::PRELOAD_USER_MODULE;
    let gone = |p: &mut Value| p["modules"].as_array_mut().unwrap().retain(|m| m["name"] != atm);
    let configured = json!("/etc/modules-load.d/x.conf");
    expect_failure("preload_user_autoload_found_cause_unknown", f, |r| {
        r.edit_module(atm, |m| m["triggers"][0]["reason"] = configured)
    });
    expect_failure("preload_user_autoload_found_cause_unknown", f, |r| {
        r.edit_module(atm, |m| m["triggers"] = json!([trigger_explicit(None)]))
    });
    expect_failure("preload_user_autoload_found_cause_unknown", f, |r| r.edit_json(PROFILE, gone));
    let held = "preload_cause_unknown_held_for_review";
    expect_failure("preload_cause_unknown_held_for_review", f, |r| {
        r.replace(GENERATED_LIST, "pppox\n", "pppox\natm\n")
    });
    expect_failure(held, f, |r| r.replace(GENERATED_LIST, "pppox\n", "pppox\ntcp_highspeed\n"));
    expect_failure(held, f, |r| r.replace("check.stdout", "accept: modtrace allow atm", ""));
    expect_failure(held, f, |r| r.replace("check.stdout", "  - tcp_highspeed:", "  - tcp_highspeed_x:"));
    expect_failure(held, f, |r| r.replace("check.stdout", "(enable modtrace-learn.service and", "(and"));
    let reason = "atm (1 time(s)): loaded before learning, cause unknown";
    expect_failure(held, f, |r| r.replace("report-table.stdout", reason, "atm (1 time(s)): x"));
    expect_failure("preload_configured_module_stays_trusted", f, |r| r.replace(GENERATED_LIST, "\ntcp_bic\n", "\n"));
    expect_failure("preload_configured_module_stays_trusted", f, |r| {
        r.replace(GENERATED_LIST, "explained by: /etc", "explained by: /run")
    });
    expect_failure("preload_configured_module_stays_trusted", f, |r| {
        r.section("check.stdout").push_str("\n  - tcp_bic: loaded before learning, cause unknown")
    });
    let relearn = "preload_relearning_keeps_it_under_review";
    expect_failure(relearn, f, |r| r.set_exit_code(cap::RELEARN, 1));
    expect_failure(relearn, f, |r| r.edit_json(RELEARN_PROFILE, |p| p["sessions"].as_array_mut().unwrap().truncate(1)));
    expect_failure(relearn, f, |r| {
        r.edit_json(RELEARN_PROFILE, |p| {
            let m = p["modules"].as_array_mut().unwrap().iter_mut().find(|m| m["name"] == atm).unwrap();
            m["triggers"][0]["reason"] = json!("udev coldplug: device x at /sys/devices/y");
        })
    });
    expect_failure(relearn, f, |r| r.replace("check-relearn.stdout", "accept: modtrace allow atm", ""));
    expect_failure("preload_relearning_keeps_it_under_review", f, |r| r.set_exit_code(cap::CHECK_RELEARN, 2));
}

#[test]
fn every_untrusted_flood_check_can_fail() {
    let f = false;
    let flood = |v: &Value| v["kind"] == "request" && text(v, "/alias").starts_with("fs-mtuser");
    let entry = |r: &mut Run, change: fn(&mut Value)| {
        r.edit_json(section::PROFILE, |p| change(&mut p["folded_requests"][0]))
    };
    expect_failure("untrusted_flood_folded_in_profile", f, |r| r.set_exit_code(cap::UNTRUSTED_FLOOD, 1));
    // A name never traced, or traced as root's.
    expect_failure("untrusted_flood_folded_in_profile", f, |r| {
        r.records.remove(r.position(flood));
    });
    expect_failure("untrusted_flood_folded_in_profile", f, |r| {
        r.edit(r.position(flood), |v| v["process"]["uid"] = json!(0))
    });
    // Not folded: the names have entries of their own, or the entry is gone.
    expect_failure("untrusted_flood_folded_in_profile", f, |r| {
        r.edit_json(section::PROFILE, |p| {
            p["requests"].as_array_mut().unwrap().push(json!({"alias": "fs-mtuser9", "resolves_to": [], "count": 1}))
        })
    });
    expect_failure("untrusted_flood_folded_in_profile", f, |r| entry(r, |e| e["aliases"] = json!(["fs-other"])));
    // Someone else's, short of the names sent, too many names kept, or too big.
    expect_failure("untrusted_flood_folded_in_profile", f, |r| entry(r, |e| e["requester"]["uid"] = json!(0)));
    expect_failure("untrusted_flood_folded_in_profile", f, |r| {
        entry(r, |e| e["count"] = json!(sc::UNTRUSTED_FLOOD_NAMES - 1))
    });
    expect_failure("untrusted_flood_folded_in_profile", f, |r| {
        entry(r, |e| e["aliases"] = json!((0..9).map(|n| format!("fs-mtuser{n}")).collect::<Vec<_>>()))
    });
    expect_failure("untrusted_flood_folded_in_profile", f, |r| {
        entry(r, |e| e["requester"]["exe"] = json!("x".repeat(sc::UNTRUSTED_FLOOD_MAX_BYTES)))
    });
    // Two entries of the user's names (not folded into one).
    expect_failure("untrusted_flood_folded_in_profile", f, |r| {
        r.edit_json(section::PROFILE, |p| {
            let second = p["folded_requests"][0].clone();
            p["folded_requests"].as_array_mut().unwrap().push(second)
        })
    });
    expect_failure("untrusted_flood_blocks_nothing", f, |r| {
        r.edit_json(section::PROFILE, |p| p["sessions"][0]["drops"]["evicted_requests"] = json!(5))
    });
    expect_failure("untrusted_flood_blocks_nothing", f, |r| {
        r.edit_json(section::PROFILE, |p| {
            p["sessions"][0]["drops"].as_object_mut().unwrap().remove("evicted_untrusted_requests").map(|_| ()).unwrap()
        })
    });
    expect_failure("untrusted_flood_blocks_nothing", f, |r| {
        r.replace(
            "check.stdout",
            "NOT safe to lock: 1 blocker(s):",
            "NOT safe to lock: 2 blocker(s):\n  - 5 module requests or loads were lost while learning: learn again",
        )
    });
    expect_failure("untrusted_flood_blocks_nothing", f, |r| {
        r.stderr[1] = r.stderr[1].replace(", untrusted requests evicted 0", "")
    });
}

// ---- containers by namespace, not by name (checks/netns.rs) ----

const HOST_PID_NS: u64 = 4_026_531_836;
const NETNS_DROP_IN: &str = "# keepunit.service loaded these modules while modtrace learned.\n\n[Unit]\n# qnx4:\n\
                             Wants=modprobe@qnx4.service\nAfter=modprobe@qnx4.service";

fn netns_container() -> Value {
    json!({"kind": "container", "runtime": "namespaces", "name": "keepunit.service", "namespaces": ["pid", "mnt"]})
}

fn netns_system() -> Value {
    json!({"kind": "system", "unit": "keepunit.service"})
}

/// (file system, pid_ns, scope): root's mount in init's namespaces, forked
/// into new ones, and unshared but not forked.
fn netns_mounts() -> [(&'static str, u64, Value); 3] {
    [
        ("qnx4", HOST_PID_NS, netns_system()),
        ("qnx6", 4_026_532_290, netns_container()),
        ("befs", 4_026_532_291, netns_container()),
    ]
}

fn netns_records() -> Vec<Value> {
    let mut out = vec![];
    for (fs, pid_ns, scope) in netns_mounts() {
        let mut p = who(process("mount", None), 0, sc::AUDIT_UNSET, "/system.slice/keepunit.service");
        (p["unit"], p["scope"]) = (json!("keepunit.service"), scope);
        (p["pid_ns"], p["mnt_ns"]) = (json!(pid_ns), json!(pid_ns - 2));
        let alias = format!("fs-{fs}");
        out.push(request(&alias, p.clone(), &[fs]));
        out.push(kernel_helper(requested(fs, &alias, p, &[])));
    }
    out
}

fn with_netns_modules(mut profile: Value) -> Value {
    for (fs, pid_ns, scope) in netns_mounts() {
        let mut t = trigger_request(&format!("fs-{fs}"), "mount", Some("keepunit.service"), None);
        (t["requester"]["scope"], t["requester"]["pid_ns"]) = (scope, json!(pid_ns));
        profile["modules"].as_array_mut().unwrap().push(profile_module(fs, &[], &[], vec![t]));
    }
    profile
}

fn netns_edit(r: &mut Run, kind: &str, name: &str, pointer: &str, value: Value) {
    let i = r.find(kind, name);
    r.edit(i, |v| *v.pointer_mut(pointer).unwrap() = value);
}

#[test]
fn every_netns_check_can_fail() {
    use section::GENERATED_LIST;
    let f = false;
    expect_failure("netns_trace_new_namespaces_are_a_container", f, |r| {
        netns_edit(r, "request", "fs-qnx6", "/process/scope", netns_system())
    });
    expect_failure("netns_trace_new_namespaces_are_a_container", f, |r| {
        netns_edit(r, "loaded", "befs", "/cause/requester/scope/namespaces", json!(["mnt"]))
    });
    expect_failure("netns_trace_new_namespaces_are_a_container", f, |r| {
        netns_edit(r, "request", "fs-befs", "/process/pid_ns", json!(HOST_PID_NS))
    });
    expect_failure("netns_trace_new_namespaces_are_a_container", f, |r| {
        netns_edit(r, "request", "fs-qnx6", "/process/unit", json!("other.service"))
    });
    expect_failure("netns_trace_inits_namespaces_stay_the_system_unit", f, |r| {
        netns_edit(r, "request", "fs-qnx4", "/process/scope", netns_container())
    });
    expect_failure("netns_trace_inits_namespaces_stay_the_system_unit", f, |r| {
        netns_edit(r, "loaded", "qnx4", "/cause/requester/scope", netns_container())
    });
    expect_failure("netns_trace_inits_namespaces_stay_the_system_unit", f, |r| {
        netns_edit(r, "request", "fs-qnx4", "/process/pid_ns", Value::Null)
    });
    expect_failure("netns_profile_scopes_by_namespace", f, |r| {
        r.edit_module("qnx6", |m| m["triggers"][0]["requester"]["scope"] = netns_system())
    });
    expect_failure("netns_profile_scopes_by_namespace", f, |r| {
        r.edit_module("qnx4", |m| m["triggers"][0]["requester"]["scope"] = netns_container())
    });
    expect_failure("netns_profile_scopes_by_namespace", f, |r| {
        r.edit_module("befs", |m| m["triggers"][0]["requester"]["pid_ns"] = json!(HOST_PID_NS))
    });
    expect_failure("netns_container_needs_review_and_gets_nothing", f, |r| {
        r.replace("check.stdout", "  - befs:", "  - other:")
    });
    expect_failure("netns_container_needs_review_and_gets_nothing", f, |r| {
        r.replace("check.stdout", ", its pid and mount namespaces not init's", "")
    });
    expect_failure("netns_container_needs_review_and_gets_nothing", f, |r| {
        r.replace("check.stdout", "allow befs\n", "allow befs\n  - qnx4: asked by root; accept: modtrace allow qnx4\n")
    });
    expect_failure("netns_container_needs_review_and_gets_nothing", f, |r| {
        r.replace(GENERATED_LIST, "qnx4", "qnx4\nqnx6")
    });
    expect_failure("netns_container_needs_review_and_gets_nothing", f, |r| r.replace(GENERATED_LIST, "qnx4\n", ""));
    expect_failure("netns_container_needs_review_and_gets_nothing", f, |r| {
        r.replace(sc::NETNS_DROP_IN, "After=modprobe@qnx4", "Wants=modprobe@befs.service\nAfter=modprobe@qnx4")
    });
    expect_failure("netns_container_needs_review_and_gets_nothing", f, |r| {
        r.replace(sc::NETNS_DROP_IN, "Wants=modprobe@qnx4.service", "")
    });
}
