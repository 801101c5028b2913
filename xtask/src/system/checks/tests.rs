//! The checks pass on recordings shaped like a correct pair of boots, and each
//! of them fails when the fact it guards is broken.

use serde_json::json;

use super::*;

const BOOT_MODULES: [&str; 8] =
    ["virtio_blk", "ext4", "virtio_net", "bochs", "evdev", "binfmt_misc", "appletalk", "psnap"];

fn proc_modules(names: &[&str]) -> String {
    names.iter().map(|n| format!("{n} 16384 0 - Live 0x0000000000000000\n")).collect()
}

fn show(unit: &str, active: &str, result: &str, enter: u64, start: u64) -> String {
    format!(
        "Id={unit}\nActiveState={active}\nSubState=exited\nResult={result}\nExecMainStatus=0\n\
         ActiveEnterTimestampMonotonic={enter}\nInactiveExitTimestampMonotonic={start}\n"
    )
}

fn trigger_request(alias: &str, unit: &str) -> Value {
    json!({"kind": "request", "alias": alias, "requester": {"comm": "x", "unit": unit}, "count": 1})
}

fn profile(extra: &[&str]) -> Value {
    let mut modules: Vec<Value> = BOOT_MODULES
        .iter()
        .chain(["llc"].iter())
        .chain(extra)
        .map(|&name| {
            let triggers = match name {
                "appletalk" => vec![trigger_request("net-pf-5", "fake-dm.service")],
                "binfmt_misc" => vec![trigger_request("fs-binfmt_misc", "fake-dm.service")],
                _ => vec![json!({"kind": "explicit", "stage": "initramfs", "count": 1,
                                 "loader": {"comm": "insmod", "uid": 0, "cgroup": "/", "scope": {"kind": "no_unit"}}})],
            };
            json!({"name": name, "top_level": true, "count": 1, "triggers": triggers})
        })
        .collect();
    modules.sort_by_key(|m| m["name"].as_str().unwrap().to_string());
    json!({"schema": "modtrace-profile/1", "kernel": "6.1.0-56-amd64", "host": "t", "modules": modules,
           "sessions": [{"start": "a", "end": "b", "duration_secs": 20, "kernel": "6.1.0-56-amd64",
                         "ended_by": "SIGTERM", "records": 90, "lost_events": 0, "from_initramfs": 21}]})
}

fn common(r: &mut Recorded, modules: &[&str], disabled: &str) {
    r.insert("system-state", "running\n");
    r.insert("failed-units", "");
    r.insert("proc-modules", &proc_modules(modules));
    r.insert("modules-disabled", &format!("{disabled}\n"));
    r.insert("analyze-time", "Startup finished in 3.1s (kernel) + 12.0s (userspace) = 15.1s\n");
    r.insert("unit-multi-user.target.show", &show("multi-user.target", "active", "success", 14_000_000, 1));
    r.insert("unit-fake-dm.service.show", &show("fake-dm.service", "active", "success", 13_000_000, 12_000_000));
}

fn good_boot1() -> Recorded {
    let mut r = Recorded::default();
    let mut modules = BOOT_MODULES.to_vec();
    modules.push("llc");
    common(&mut r, &modules, "0");
    r.insert("unit-modtrace-learn.service.show", &show("modtrace-learn.service", "active", "success", 2_000_000, 1));
    r.insert("unit-modtrace-learn.service.stopped", &show("modtrace-learn.service", "inactive", "success", 0, 0));
    r.insert("learn-stop.status", "0\n");
    r.insert("package-status", "install ok installed 0.1.0\n");
    r.insert("learn.log", "modtrace: learning ended (SIGTERM); profile saved\n");
    r.insert("profile.json", &profile(&[]).to_string());
    r.insert("generate.status", "0\n");
    r.insert("generate.out", "wrote /etc/modules-load.d/modtrace.conf\n");
    r.insert("check.status", "0\n");
    r.insert("check.out", "nothing found that would break\n");
    r.insert("enable.status", "0\n");
    r.insert("disable.status", "0\n");
    r.insert("generated/modtrace.conf", "# modtrace\nappletalk\nbinfmt_misc\n");
    r.insert(
        "generated/modtrace-lock.service",
        "# modtrace\n[Unit]\nX-Modtrace-LockPoint=after-udev\n[Service]\n\
         ExecStart=/bin/sh -c 'echo 1 > /proc/sys/kernel/modules_disabled'\n",
    );
    r.insert(
        "generated/dropin-fake-dm.service.conf",
        "# modtrace\n[Unit]\nWants=modprobe@appletalk.service\nAfter=modprobe@appletalk.service\n",
    );
    r
}

fn process(comm: &str, unit: &str, cmdline: &[&str]) -> Value {
    json!({"pid": 300, "comm": comm, "unit": unit, "cmdline": cmdline})
}

fn denied_load(syscall: &str, by: Value) -> Value {
    json!({"kind": "load", "syscall": syscall, "ret": -1, "error": "EPERM", "module": null, "process": by})
}

fn good_trace() -> Vec<Value> {
    let unit = "modtrace-test-locked.service";
    vec![
        denied_load("finit_module", process("modprobe", unit, &["/sbin/modprobe", "isofs"])),
        denied_load("init_module", process("modtrace-guest", unit, &["modtrace-guest", "init-module", "f.ko"])),
        json!({"kind": "request", "alias": "net-pf-35", "resolves_to": ["phonet"],
               "process": process("modtrace-guest", unit, &["modtrace-guest", "socket", "35"])}),
        denied_load("finit_module", process("modprobe", "", &["/sbin/modprobe", "-q", "--", "net-pf-35"])),
    ]
}

fn set_trace(r: &mut Recorded, records: &[Value]) {
    let lines: Vec<String> = records.iter().map(Value::to_string).collect();
    r.insert("trace.jsonl", &(lines.join("\n") + "\n"));
}

fn good_boot2() -> Recorded {
    let mut r = Recorded::default();
    let mut modules = BOOT_MODULES.to_vec();
    modules.push("llc");
    common(&mut r, &modules, "1");
    r.insert("proc-modules-after", &proc_modules(&modules));
    r.insert(
        "unit-modtrace-lock.service.show",
        &show("modtrace-lock.service", "active", "success", 11_000_000, 9_000_000),
    );
    r.insert("purge.status", "0\n");
    r.insert(
        "after-purge",
        "present /var/lib/modtrace/profile.json\nabsent /var/lib/modtrace/generated\nabsent /usr/sbin/modtrace\n\
         present /etc/systemd/system/modtrace-lock.service\n",
    );
    r.insert("deny-modprobe.status", "1\n");
    r.insert("deny-modprobe.err", "modprobe: ERROR: could not insert 'isofs': Operation not permitted\n");
    r.insert("deny-init-module.status", "1\n");
    r.insert("deny-init-module.err", "modtrace-guest: init_module(f.ko): Operation not permitted (os error 1)\n");
    r.insert("deny-request.status", "1\n");
    r.insert("deny-request.err", "modtrace-guest: socket(35, 2, 0): Address family not supported by protocol\n");
    r.insert("trace.status", "0\n");
    r.insert(
        "trace.err",
        "modtrace: attached 7 programs in 2100 ms\n\
         modtrace: 4 events (duration); lost 0 (requests 0, loads 0, failures 0); repeats folded and not yet reported: 0\n",
    );
    set_trace(&mut r, &good_trace());
    r
}

struct Pair {
    lock_point: LockPoint,
    boot1: Boot,
    boot2: Boot,
    guard: Option<Boot>,
    sealed_guard: bool,
    services: Option<Known>,
    watchdog: bool,
}

impl Pair {
    fn good() -> Self {
        Pair {
            lock_point: LockPoint::AfterUdev,
            boot1: Boot { finished: Ok(()), recorded: Some(good_boot1()) },
            boot2: Boot { finished: Ok(()), recorded: Some(good_boot2()) },
            guard: None,
            sealed_guard: false,
            services: None,
            watchdog: false,
        }
    }

    fn b1(&mut self) -> &mut Recorded {
        self.boot1.recorded.as_mut().unwrap()
    }

    fn b2(&mut self) -> &mut Recorded {
        self.boot2.recorded.as_mut().unwrap()
    }

    fn facts(&self) -> Facts {
        Facts {
            lock_point: self.lock_point,
            boot1: self.boot1.clone(),
            boot2: self.boot2.clone(),
            guard: self.guard.clone(),
            sealed_guard: self.sealed_guard,
            services: self.services.clone(),
            dracut: None,
            watchdog: self.watchdog,
            desktop: false,
        }
    }

    fn failures(&self) -> Vec<&'static str> {
        check_all(&self.facts()).into_iter().filter(|c| c.result.is_err()).map(|c| c.name).collect()
    }
}

#[test]
fn a_correct_pair_of_boots_passes_every_check() {
    let pairs =
        [Pair::good(), Pair::with_services(), Pair::with_guard(), Pair::with_sealed_guard(), Pair::with_watchdog()];
    for pair in pairs {
        let results = check_all(&pair.facts());
        let failed: Vec<String> =
            results.iter().filter_map(|c| c.result.clone().err().map(|e| format!("{}: {e}", c.name))).collect();
        assert!(failed.is_empty(), "{failed:#?}");
        let want = CHECKS.len()
            + FAKE_DM_CHECKS.len()
            + if pair.services.is_some() { SERVICE_TABLES.iter().map(|t| t.len()).sum() } else { 0 }
            + match (&pair.guard, pair.sealed_guard) {
                (None, _) => 0,
                (Some(_), false) => guard::GUARD_CHECKS.len() + guard::REFRESH_CHECKS.len(),
                (Some(_), true) => guard::GUARD_CHECKS.len() + sealed::SEALED_CHECKS.len(),
            }
            + if pair.watchdog { refused_device::REFUSED_DEVICE_CHECKS.len() } else { 0 };
        assert_eq!(results.len(), want);
    }
}

/// Applies `break_it` to a correct pair and expects `check` among the failures.
fn expect_failure(check: &str, break_it: impl FnOnce(&mut Pair)) {
    expect_failure_of(Pair::good(), check, break_it)
}

fn expect_failure_of(mut pair: Pair, check: &str, break_it: impl FnOnce(&mut Pair)) {
    break_it(&mut pair);
    let failed = pair.failures();
    assert!(failed.contains(&check), "{check} did not fail; failures: {failed:?}");
}

/// Changes boot 1's profile.
fn edit_profile(p: &mut Pair, edit: impl FnOnce(&mut Value)) {
    let mut profile: Value = serde_json::from_str(p.b1().text("profile.json").unwrap()).unwrap();
    edit(&mut profile);
    p.b1().insert("profile.json", &profile.to_string());
}

#[test]
fn every_check_can_fail() {
    expect_failure("boot1_finished", |p| p.boot1.finished = Err("timed out".into()));
    expect_failure("boot1_reached_multi_user", |p| {
        p.b1().insert("unit-multi-user.target.show", &show("multi-user.target", "inactive", "success", 0, 0))
    });
    expect_failure("boot1_no_failed_units", |p| {
        p.b1().insert("system-state", "degraded\n");
        p.b1().insert("failed-units", "systemd-modules-load.service loaded failed failed Load Kernel Modules\n");
    });
    expect_failure("boot1_unlocked", |p| p.b1().insert("modules-disabled", "1\n"));
    expect_failure("package_installed_from_deb", |p| {
        p.b1().insert("package-status", "dpkg-query: no packages found\n")
    });
    expect_failure("purge_keeps_profile_and_lock", |p| p.b2().insert("purge.status", "100\n"));
    expect_failure("purge_keeps_profile_and_lock", |p| {
        let after = p
            .b2()
            .text("after-purge")
            .unwrap()
            .replace("present /var/lib/modtrace/profile.json", "absent /var/lib/modtrace/profile.json");
        p.b2().insert("after-purge", &after);
    });
    expect_failure("purge_keeps_profile_and_lock", |p| {
        let after =
            p.b2().text("after-purge").unwrap().replace("absent /usr/sbin/modtrace", "present /usr/sbin/modtrace");
        p.b2().insert("after-purge", &after);
    });
    expect_failure("learn_service_learned_and_saved", |p| {
        p.b1().insert("unit-modtrace-learn.service.stopped", &show("modtrace-learn.service", "failed", "signal", 0, 0))
    });
    expect_failure("learn_service_learned_and_saved", |p| {
        let mut profile = profile(&[]);
        profile["sessions"][0]["lost_events"] = json!(4);
        p.b1().insert("profile.json", &profile.to_string());
    });
    expect_failure("profile_has_fake_dm_requests", |p| {
        let mut profile = profile(&[]);
        profile["modules"].as_array_mut().unwrap().iter_mut().filter(|m| m["name"] == "appletalk").for_each(|m| {
            m["triggers"][0]["requester"]["unit"] = json!("init.scope");
        });
        p.b1().insert("profile.json", &profile.to_string());
    });
    expect_failure("generate_installed_lock_down", |p| p.b1().insert("generate.status", "2\n"));
    expect_failure("generate_installed_lock_down", |p| p.b1().remove("generated/dropin-fake-dm.service.conf"));
    expect_failure("generate_installed_lock_down", |p| p.lock_point = LockPoint::Early);
    expect_failure("check_found_no_blockers", |p| p.b1().insert("check.status", "1\n"));
    expect_failure("boot2_units_enabled", |p| p.b1().insert("enable.status", "1\n"));
    expect_failure("boot2_finished", |p| p.boot2 = Boot::not_run("boot 1 did not finish"));
    expect_failure("boot2_reached_multi_user", |p| p.b2().remove("unit-multi-user.target.show"));
    expect_failure("boot2_no_failed_units", |p| p.b2().insert("failed-units", "x.service loaded failed failed X\n"));
    expect_failure("lock_service_succeeded", |p| {
        p.b2().insert("unit-modtrace-lock.service.show", &show("modtrace-lock.service", "failed", "exit-code", 0, 9))
    });
    expect_failure("modules_disabled_is_1", |p| p.b2().insert("modules-disabled", "0\n"));
    expect_failure("fake_dm_succeeded_after_lock", |p| {
        p.b2().insert("unit-fake-dm.service.show", &show("fake-dm.service", "failed", "exit-code", 0, 12_000_000))
    });
    expect_failure("fake_dm_succeeded_after_lock", |p| {
        p.b2().insert("unit-fake-dm.service.show", &show("fake-dm.service", "active", "success", 8_000_000, 7_000_000))
    });
    expect_failure("fake_dm_modules_loaded", |p| {
        p.b2().insert(
            "proc-modules",
            &proc_modules(&["virtio_blk", "ext4", "virtio_net", "bochs", "evdev", "binfmt_misc"]),
        )
    });
    // The lock-point measurement: a boot that "succeeded" with modules missing.
    expect_failure("boot1_modules_kept_in_boot2", |p| {
        p.b2()
            .insert("proc-modules", &proc_modules(&["virtio_blk", "ext4", "binfmt_misc", "appletalk", "psnap", "llc"]))
    });
    expect_failure("profile_covers_boot1_modules", |p| {
        let mut modules = BOOT_MODULES.to_vec();
        modules.extend(["llc", "i2c_i801"]);
        p.b1().insert("proc-modules", &proc_modules(&modules));
    });
    expect_failure("profile_modules_were_loaded_in_boot1", |p| {
        p.b1().insert("profile.json", &profile(&["acpi_cpufreq"]).to_string())
    });
    expect_failure("nothing_before_learning", |p| {
        edit_profile(p, |profile| {
            profile["sessions"][0].as_object_mut().unwrap().remove("from_initramfs");
        })
    });
    for reason in [json!("before learning"), Value::Null] {
        expect_failure("nothing_before_learning", |p| {
            let mut t = json!({"kind": "preloaded", "count": 1});
            if !reason.is_null() {
                t["reason"] = reason.clone();
            }
            edit_profile(p, |profile| profile["modules"][0]["triggers"] = json!([t]))
        });
    }
    expect_failure("denied_modprobe_eperm", |p| p.b2().insert("deny-modprobe.status", "0\n"));
    expect_failure("denied_modprobe_eperm", |p| {
        p.b2().insert("deny-modprobe.err", "modprobe: FATAL: Module isofs not found\n")
    });
    expect_failure("denied_modprobe_eperm", |p| p.b1().insert("profile.json", &profile(&["isofs"]).to_string()));
    expect_failure("denied_init_module_eperm", |p| {
        let mut after = BOOT_MODULES.to_vec();
        after.extend(["llc", "nls_utf8"]);
        p.b2().insert("proc-modules-after", &proc_modules(&after));
    });
    expect_failure("denied_request_eperm", |p| p.b2().insert("deny-request.status", "0\n"));
    expect_failure("tracer_ran_cleanly", |p| p.b2().insert("trace.err", "modtrace: error: cannot attach\n"));
    expect_failure("tracer_ran_cleanly", |p| p.b2().insert("trace.status", "1\n"));
    expect_failure("traced_denied_modprobe", |p| {
        let mut trace = good_trace();
        trace[0]["error"] = json!(null);
        set_trace(p.b2(), &trace);
    });
    expect_failure("traced_denied_modprobe", |p| {
        let mut trace = good_trace();
        trace[0]["process"]["unit"] = json!(null);
        set_trace(p.b2(), &trace);
    });
    expect_failure("traced_denied_init_module", |p| {
        let mut trace = good_trace();
        trace[1]["process"]["comm"] = json!("insmod");
        set_trace(p.b2(), &trace);
    });
    expect_failure("traced_denied_request", |p| {
        let mut trace = good_trace();
        trace[2]["process"]["comm"] = json!("kworker/0:1");
        set_trace(p.b2(), &trace);
    });
    expect_failure("traced_denied_request", |p| {
        let mut trace = good_trace();
        trace.pop();
        set_trace(p.b2(), &trace);
    });
}

#[test]
fn the_late_lock_point_does_not_ask_fake_dm_to_start_after_the_lock() {
    let mut pair = Pair::good();
    pair.lock_point = LockPoint::Late;
    pair.b1().insert(
        "generated/modtrace-lock.service",
        "[Unit]\nX-Modtrace-LockPoint=late\n[Service]\nExecStart=/bin/sh -c 'echo 1 > /proc/sys/kernel/modules_disabled'\n",
    );
    pair.b2().insert("unit-fake-dm.service.show", &show("fake-dm.service", "active", "success", 8_000_000, 7_000_000));
    assert!(pair.failures().is_empty(), "{:?}", pair.failures());
}

#[test]
fn every_check_is_tested_for_failure() {
    let source = include_str!("tests.rs");
    for (name, _) in CHECKS {
        assert!(source.contains(&format!("expect_failure(\"{name}\"")), "no failure test for {name}");
    }
    for (name, _) in SERVICE_TABLES.iter().copied().flatten() {
        assert!(source.contains(&format!("expect_service_failure(\"{name}\"")), "no failure test for {name}");
    }
    for (name, _) in [guard::GUARD_CHECKS, guard::REFRESH_CHECKS, sealed::SEALED_CHECKS].into_iter().flatten() {
        // expect_guard_failure("NAME", ...) or a row ("NAME", ...) of a table of them.
        assert!(source.contains(&format!("(\"{name}\", ")), "no failure test for {name}");
    }
}

// ---- the real services (services.rs) ----

/// The tables of checks a suite with the real services adds.
const SERVICE_TABLES: [&[(&str, CheckFn<Facts>)]; 3] =
    [services::SERVICE_CHECKS, &deputy::DEPUTY_CHECKS, &evidence::EVIDENCE_CHECKS];

/// Modules of the services pair: the base boot's, and the services' own.
const SERVICE_MODULES: [&str; 16] = [
    "nf_tables", "nft_ct", "nft_chain_nat", "nft_masq", "wireguard", "vfat", "fat", "tun", "loop", "nls_ascii",
    // root's fstab mount, and the user's mount through udisks2 (deputy.rs).
    "minix", "squashfs",
    // PID 1's own, before any unit.
    "autofs4", "ip_tables", "virtio_rng", "qemu_fw_cfg",
];
/// What the pair's initramfs loaded.
const INITRAMFS_MODULES: [&str; 4] = ["virtio_blk", "ext4", "psnap", "llc"];

/// An explicit load by `comm` in the root cgroup; `stage` "initramfs" or none.
fn root_load(comm: &str, stage: Option<&str>) -> Value {
    let mut t = json!({"kind": "explicit", "count": 1,
                       "loader": {"comm": comm, "uid": 0, "cgroup": "/", "scope": {"kind": "no_unit"}}});
    if let Some(stage) = stage {
        t["stage"] = json!(stage);
    }
    t
}

fn trigger(kind: &str, who: &str, unit: &str) -> Value {
    json!({"kind": kind, "count": 1, who: {"comm": "x", "unit": unit, "scope": {"kind": "system", "unit": unit}}})
}

fn services_profile() -> Value {
    let mut p = profile(&SERVICE_MODULES);
    for m in p["modules"].as_array_mut().unwrap() {
        let name = m["name"].as_str().unwrap().to_string();
        let t = match name.as_str() {
            "nf_tables" | "nft_ct" | "nft_chain_nat" | "nft_masq" => trigger("request", "requester", "nftables.service"),
            "wireguard" => trigger("request", "requester", "wg-quick@mtwg0.service"),
            "vfat" | "fat" | "nls_ascii" => trigger("request", "requester", "mnt-fat.mount"),
            "tun" => trigger("request", "requester", "modtrace-test-tun.service"),
            "minix" => trigger("request", "requester", "mnt-minix.mount"),
            "squashfs" => json!({"kind": "request", "alias": "fs-squashfs", "count": 1, "via": "udisks2.service",
                                 "reason": "udisks2.service acted on behalf of uid 1000 (its journal)",
                                 "requester": {"comm": "unknown", "uid": 1000, "scope": {"kind": "unknown"}}}),
            "loop" => {
                let mut t = trigger("explicit", "requester", "mnt-fat.mount");
                t["via"] = json!("modprobe@loop.service");
                t
            }
            "binfmt_misc" => {
                let mut t = trigger("request", "requester", "systemd-binfmt.service");
                t["alias"] = json!("fs-binfmt_misc");
                t["via"] = json!("proc-sys-fs-binfmt_misc.mount");
                t
            }
            "evdev" | "bochs" | "virtio_net" => trigger("udev", "loader", "systemd-udevd.service"),
            "autofs4" | "ip_tables" | "virtio_rng" | "qemu_fw_cfg" => root_load("systemd", None),
            n if INITRAMFS_MODULES.contains(&n) => root_load("insmod", Some("initramfs")),
            _ => continue,
        };
        m["triggers"] = json!([t]);
    }
    p
}

fn all_modules() -> Vec<&'static str> {
    BOOT_MODULES.iter().chain(["llc"].iter()).chain(SERVICE_MODULES.iter()).copied().collect()
}

fn works_after_lock(r: &mut Recorded) {
    for unit in ["nftables.service", "wg-quick@mtwg0.service", "systemd-binfmt.service", "mnt-fat.mount", "modtrace-test-tun.service", "mnt-minix.mount"] {
        r.insert(&format!("unit-{unit}.show"), &show(unit, "active", "success", 5_000_000, 4_000_000));
    }
    let said = [
        ("nft-ruleset", "table inet modtrace_filter {\n\tct state established,related accept\n}\ntable ip modtrace_nat {\n\toifname \"mtwg0\" masquerade\n}\n"),
        ("wg-link", "5: mtwg0: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420\n    link/none  promiscuity 0\n    wireguard\n"),
        ("binfmt-entry", "enabled\ninterpreter /bin/true\nflags: \noffset 0\nmagic 4d5454\n"),
        ("fat-mount", "vfat ro,relatime,fmask=0022\n"),
        ("tun-link", "6: mttun0: <NO-CARRIER,POINTOPOINT,MULTICAST,NOARP,UP> mtu 1500 state DOWN\n"),
        ("minix-mount", "minix ro,relatime\n"),
    ];
    for (step, out) in said {
        r.insert(&format!("{step}.status"), "0\n");
        r.insert(&format!("{step}.out"), out);
    }
}

impl Pair {
    fn with_services() -> Self {
        let mut pair = Pair::good();
        let initramfs = INITRAMFS_MODULES.map(String::from).into_iter().collect();
        pair.services = Some(Known { initramfs });
        let modules = all_modules();
        pair.b1().insert("proc-modules", &proc_modules(&modules));
        pair.b1().insert("profile.json", &services_profile().to_string());
        pair.b1().insert(
            "generator-dropins",
            "/run/systemd/generator/nftables.service.d/50-modtrace-learn.conf\n\
             /run/systemd/generator/systemd-binfmt.service.d/50-modtrace-learn.conf\n",
        );
        // The user's squashfs is held for review: the locked boot lacks it.
        let locked: Vec<&str> = modules.iter().copied().filter(|m| *m != "squashfs").collect();
        pair.b2().insert("proc-modules", &proc_modules(&locked));
        pair.b2().insert("proc-modules-after", &proc_modules(&locked));
        works_after_lock(pair.b2());
        deputy_boot1(pair.b1());
        evidence_boot1(pair.b1());
        pair
    }
}

/// learn's entries for every module of boot 1's profile, and the packages it
/// names (checks/evidence.rs).
fn evidence_boot1(r: &mut Recorded) {
    let mut profile: Value = serde_json::from_str(r.text("profile.json").unwrap()).unwrap();
    profile["packages"] = json!({
        "units": {"nftables.service": "nftables", "systemd-binfmt.service": "systemd",
                  "wg-quick@mtwg0.service": "wireguard-tools"},
        "executables": {"/usr/sbin/nft": "nftables"},
    });
    let entries: Vec<String> = profile["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let mut e = json!({"MESSAGE_ID": "a0494ea2749d4e5189d4ce8ce09fa450", "MODTRACE_MODULE": m["name"],
                               "MODTRACE_CAUSE": "request", "MODTRACE_TRUST": "trusted"});
            if m["name"] == "nf_tables" {
                e["MODTRACE_UNIT"] = json!("nftables.service");
                e["MODTRACE_PACKAGE"] = json!("nftables");
                (e["MODTRACE_UID"], e["MODTRACE_SCOPE"]) = (json!("0"), json!("system"));
            }
            e.to_string()
        })
        .collect();
    r.insert("learn-evidence.json", &entries.join("\n"));
    r.insert("profile.json", &profile.to_string());
}

fn edit_evidence(p: &mut Pair, module: &str, edit: impl FnOnce(&mut Value)) {
    let text = p.b1().text("learn-evidence.json").unwrap().to_string();
    let mut lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    edit(lines.iter_mut().find(|e| e["MODTRACE_MODULE"] == module).unwrap());
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    p.b1().insert("learn-evidence.json", &text.join("\n"));
}

#[test]
fn evidence_checks_can_fail() {
    expect_service_failure("learn_journal_has_every_module", |p| {
        edit_evidence(p, "wireguard", |e| e["MODTRACE_MODULE"] = json!("x"))
    });
    expect_service_failure("learn_journal_has_every_module", |p| {
        edit_evidence(p, "tun", |e| e["MESSAGE_ID"] = json!("0"))
    });
    expect_service_failure("learn_journal_has_every_module", |p| p.b1().remove("learn-evidence.json"));
    expect_service_failure("learn_journal_names_unit_and_package", |p| {
        edit_evidence(p, "nf_tables", |e| e.as_object_mut().unwrap().remove("MODTRACE_PACKAGE").map(drop).unwrap())
    });
    expect_service_failure("learn_journal_names_unit_and_package", |p| {
        edit_evidence(p, "nf_tables", |e| e["MODTRACE_TRUST"] = json!("review"))
    });
    expect_service_failure("profile_names_service_packages", |p| {
        edit_profile(p, |prof| prof["packages"]["units"]["systemd-binfmt.service"] = json!("udev"))
    });
    expect_service_failure("profile_names_service_packages", |p| {
        edit_profile(p, |prof| prof.as_object_mut().unwrap().remove("packages").map(drop).unwrap())
    });
}

/// What deputy_mount and generate leave in boot 1 (checks/deputy.rs).
fn deputy_boot1(r: &mut Recorded) {
    for step in ["deputy-useradd", "deputy-loop", "deputy-mount"] {
        r.insert(&format!("{step}.status"), "0\n");
    }
    r.insert("deputy-findmnt.out", "squashfs /dev/loop1 /media/modtrace-user/disk\n");
    r.insert(
        "check.out",
        "needs review: 1 item(s) only untrusted processes asked for; not loaded before the lock unless accepted:\n  \
         - squashfs: udisks2.service acted on behalf of uid 1000 (its journal), an unprivileged process (uid 1000) \
         in a scope not known; asked: request for fs-squashfs; accept: modtrace allow squashfs\n",
    );
    r.insert("generated/modtrace.conf", "# modtrace\nappletalk\nbinfmt_misc\nminix\n");
    r.insert("generated/dropin-mnt-minix.mount.conf", "[Unit]\nWants=modprobe@minix.service\nAfter=modprobe@minix.service\n");
}

fn edit_module(p: &mut Pair, name: &str, edit: impl FnOnce(&mut Value)) {
    edit_profile(p, |profile| edit(profile["modules"].as_array_mut().unwrap().iter_mut().find(|m| m["name"] == name).unwrap()))
}

/// A module only a user's process asked for (the desktop's PipeWire and
/// snd-seq) is held for review: the locked boot need not load it; the same
/// module asked for by root must be loaded.
#[test]
fn modules_only_users_asked_for_need_not_load_when_locked() {
    let by = |uid: u64| {
        let mut pair = Pair::good();
        let mut modules = BOOT_MODULES.to_vec();
        modules.extend(["llc", "snd_seq"]);
        pair.b1().insert("proc-modules", &proc_modules(&modules));
        let requester = json!({"comm": "pipewire", "uid": uid, "unit": "pipewire.service"});
        let mut profile = profile(&["snd_seq"]);
        let snd_seq = profile["modules"].as_array_mut().unwrap().iter_mut().find(|m| m["name"] == "snd_seq").unwrap();
        snd_seq["triggers"] = json!([{"kind": "request", "alias": "snd-seq", "requester": requester, "count": 1}]);
        pair.b1().insert("profile.json", &profile.to_string());
        pair.failures()
    };
    assert_eq!(by(1000), Vec::<&str>::new());
    assert_eq!(by(0), ["boot1_modules_kept_in_boot2"]);
}

fn expect_service_failure(check: &str, break_it: impl FnOnce(&mut Pair)) {
    expect_failure_of(Pair::with_services(), check, break_it)
}

#[test]
fn every_service_check_can_fail() {
    expect_service_failure("generator_ordered_early_units", |p| {
        p.b1().insert("generator-dropins", "/run/systemd/generator/systemd-binfmt.service.d/50-modtrace-learn.conf\n")
    });
    // The race the generator closes: nf_tables found loaded when learning began.
    expect_service_failure("profile_names_nftables", |p| {
        edit_module(p, "nf_tables", |m| m["triggers"] = json!([{"kind": "preloaded", "reason": "before learning", "count": 1}]))
    });
    expect_service_failure("profile_explains_every_module", |p| {
        edit_module(p, "nf_tables", |m| m["triggers"] = json!([{"kind": "preloaded", "reason": "before learning", "count": 1}]))
    });
    expect_service_failure("profile_explains_every_module", |p| {
        edit_module(p, "evdev", |m| m["triggers"] = json!([{"kind": "unknown", "reason": "no request", "count": 1}]))
    });
    let before_learning = json!([{"kind": "preloaded", "reason": "before learning", "count": 1}]);
    expect_service_failure("profile_explains_every_module", |p| {
        edit_module(p, "ext4", |m| m["triggers"] = before_learning.clone())
    });
    expect_service_failure("initramfs_loads_traced", |p| edit_module(p, "ext4", |m| m["triggers"] = before_learning.clone()));
    // Traced, but after the initramfs: not what it loaded.
    expect_service_failure("initramfs_loads_traced", |p| {
        edit_module(p, "virtio_blk", |m| m["triggers"][0].as_object_mut().unwrap().remove("stage").map(|_| ()).unwrap())
    });
    expect_service_failure("pid1_loads_traced", |p| edit_module(p, "ip_tables", |m| m["triggers"] = before_learning.clone()));
    expect_service_failure("pid1_loads_traced", |p| {
        edit_module(p, "qemu_fw_cfg", |m| m["triggers"][0]["loader"]["comm"] = json!("modprobe"))
    });
    expect_service_failure("pid1_loads_traced", |p| {
        edit_profile(p, |profile| profile["modules"].as_array_mut().unwrap().retain(|m| m["name"] != "autofs4"))
    });
    expect_service_failure("profile_names_wireguard", |p| {
        edit_module(p, "wireguard", |m| m["triggers"][0]["requester"]["unit"] = json!("init.scope"))
    });
    // The automount's mount unit as requester is what modtrace said before following it.
    expect_service_failure("profile_names_binfmt_trigger", |p| {
        edit_module(p, "binfmt_misc", |m| m["triggers"][0] = trigger("request", "requester", "proc-sys-fs-binfmt_misc.mount"))
    });
    expect_service_failure("profile_names_binfmt_trigger", |p| {
        edit_module(p, "binfmt_misc", |m| m["triggers"][0].as_object_mut().unwrap().remove("via").map(|_| ()).unwrap())
    });
    expect_service_failure("profile_names_fat_mount", |p| {
        edit_profile(p, |profile| profile["modules"].as_array_mut().unwrap().retain(|m| m["name"] != "vfat"))
    });
    expect_service_failure("profile_names_tun_user", |p| {
        edit_module(p, "tun", |m| m["triggers"][0]["kind"] = json!("unknown"))
    });
    expect_service_failure("nftables_ruleset_after_lock", |p| p.b2().insert("nft-ruleset.out", "table inet modtrace_filter {\n}\n"));
    expect_service_failure("nftables_ruleset_after_lock", |p| {
        p.b2().insert("unit-nftables.service.show", &show("nftables.service", "failed", "exit-code", 0, 1))
    });
    expect_service_failure("wireguard_up_after_lock", |p| {
        p.b2().insert("wg-link.status", "1\n");
        p.b2().insert("wg-link.err", "Device \"mtwg0\" does not exist.\n");
    });
    expect_service_failure("binfmt_registered_after_lock", |p| p.b2().insert("binfmt-entry.out", "disabled\n"));
    expect_service_failure("fat_mounted_after_lock", |p| p.b2().insert("fat-mount.out", ""));
    deputy_checks_can_fail();
    expect_service_failure("tun_up_after_lock", |p| {
        p.b2().insert("tun-link.out", "6: mttun0: <POINTOPOINT,MULTICAST,NOARP> mtu 1500 state DOWN\n")
    });
}

fn deputy_checks_can_fail() {
    expect_service_failure("deputy_user_mounted_through_udisks", |p| p.b1().insert("deputy-mount.status", "1\n"));
    expect_service_failure("deputy_user_mounted_through_udisks", |p| p.b1().insert("deputy-findmnt.out", ""));
    // What modtrace said before following the deputy: udisksd, root, in its unit.
    expect_service_failure("deputy_load_is_the_users_via_udisks2", |p| {
        edit_module(p, "squashfs", |m| m["triggers"][0] = trigger("request", "requester", "udisks2.service"))
    });
    expect_service_failure("deputy_load_is_the_users_via_udisks2", |p| {
        edit_module(p, "squashfs", |m| m["triggers"][0]["requester"]["uid"] = json!(0))
    });
    expect_service_failure("deputy_load_held_for_review", |p| p.b1().insert("check.out", "nothing found that would break\n"));
    expect_service_failure("deputy_load_held_for_review", |p| {
        p.b1().insert("generated/dropin-udisks2.service.conf", "[Unit]\nWants=modprobe@squashfs.service\n")
    });
    expect_service_failure("deputy_load_held_for_review", |p| {
        p.b1().insert("generated/modtrace.conf", "# modtrace\nappletalk\nminix\nsquashfs\n")
    });
    // Listed, and the locked boot loads it: no longer only the client's.
    expect_service_failure("boot1_modules_kept_in_boot2", |p| {
        edit_module(p, "squashfs", |m| m["triggers"][0] = trigger("request", "requester", "udisks2.service"))
    });
    expect_service_failure("root_fstab_mount_trusted", |p| {
        edit_module(p, "minix", |m| m["triggers"][0]["via"] = json!("udisks2.service"))
    });
    expect_service_failure("root_fstab_mount_trusted", |p| p.b1().insert("generated/modtrace.conf", "appletalk\n"));
    expect_service_failure("root_fstab_mount_trusted", |p| p.b1().remove("generated/dropin-mnt-minix.mount.conf"));
    expect_service_failure("root_fstab_mount_works_after_lock", |p| p.b2().insert("minix-mount.out", ""));
}

// ---- the guard boot (guard.rs) ----

const GUARDED: &str = "modtrace-test-guarded.service";

/// One journalctl -o json line of a decision the logger of modtrace-guard.service wrote.
fn journal_entry(hook: &str, comm: &str, extra: &[(&str, &str)]) -> String {
    let mut e = json!({
        "_SYSTEMD_UNIT": "modtrace-guard.service", "SYSLOG_IDENTIFIER": "modtrace-guard",
        "MESSAGE": "guard denied", "PRIORITY": "4",
        "MODTRACE_DECISION": "denied", "MODTRACE_HOOK": hook, "MODTRACE_MODE": "enforce",
        "MODTRACE_REASON": "not in the profile", "MODTRACE_PID": "412", "MODTRACE_UID": "0",
        "MODTRACE_COMM": comm, "MODTRACE_SCOPE": "system", "MODTRACE_UNIT": GUARDED,
    });
    for (k, v) in extra {
        e[*k] = json!(v);
    }
    e.to_string()
}

fn guard_journal() -> Vec<String> {
    vec![
        json!({"_SYSTEMD_UNIT": "modtrace-guard.service", "MESSAGE": "modtrace: guard started (enforce)"}).to_string(),
        journal_entry("finit_module", "modprobe", &[("MODTRACE_FILE", "cdrom.ko"), ("MODTRACE_INO", "5120")]),
        journal_entry("init_module", "modtrace-guest", &[]),
        journal_entry("request", "modtrace-guest", &[("MODTRACE_ALIAS", "net-pf-35")]),
    ]
}

fn guard_status(generation: u64) -> String {
    json!({"active": true, "generation": generation,
           "state": {"mode": "enforce", "profile": "/var/lib/modtrace/profile.json"},
           "decisions": {"allowed": 40, "denied": 3, "would_deny": 0, "lost": 0, "skipped": 0}})
    .to_string()
}

fn good_guard_boot() -> Recorded {
    let mut r = Recorded::default();
    let mut modules = BOOT_MODULES.to_vec();
    modules.push("llc");
    common(&mut r, &modules, "0");
    r.insert("proc-modules-after", &proc_modules(&modules));
    r.insert("proc-modules-replaced", &proc_modules(&modules));
    let mut guard = show("modtrace-guard.service", "active", "success", 1_500_000, 1_000_000);
    guard = guard.replace("SubState=exited", "SubState=running");
    r.insert("unit-modtrace-guard.service.show", &guard);
    r.insert("unit-systemd-udevd.service.show", &show("systemd-udevd.service", "active", "success", 2_000_000, 1_900_000));
    r.insert(
        "unit-systemd-modules-load.service.show",
        &show("systemd-modules-load.service", "active", "success", 2_000_000, 1_600_000),
    );
    r.insert("guard-status.status", "0\n");
    r.insert("guard-status.out", &guard_status(1));
    r.insert("guard-status-after.status", "0\n");
    r.insert("guard-status-after.out", &guard_status(2));
    r.insert("journal-boot-denied.json", "");
    r.insert("guard-journal.json", &(guard_journal().join("\n") + "\n"));
    r.insert("deny-modprobe.status", "1\n");
    r.insert("deny-modprobe.err", "modprobe: ERROR: could not insert 'isofs': Operation not permitted\n");
    r.insert("deny-init-module.status", "1\n");
    r.insert("deny-init-module.err", "modtrace-guest: init_module(f.ko): Operation not permitted (os error 1)\n");
    r.insert("deny-request.status", "1\n");
    r.insert("deny-request.err", "modtrace-guest: socket(35, 2, 0): Address family not supported by protocol\n");
    r.insert("replace-rmmod.status", "0\n");
    r.insert("replace-stale.status", "1\n");
    r.insert("replace-stale.err", "modprobe: ERROR: could not insert 'appletalk': Operation not permitted\n");
    r.insert("replace-hook.status", "0\n");
    r.insert("replace-hook.err", "modtrace (kernel 6.1.0-56-amd64): modtrace: guard policy replaced (enforce)\n");
    r.insert("replace-modprobe.status", "0\n");
    r.insert("enable.status", "0\n");
    r.insert("disable.status", "0\n");
    r.insert("generate-unchanged.status", "0\n");
    r.insert("generate-unchanged.out", "wrote /var/tmp/g/etc/modules-load.d/modtrace.conf\nmodtrace: guard policy unchanged (68 modules allowed)\n");
    r.insert("guard-start-copy.status", "0\n");
    r.insert("guard-start-copy.out", "modtrace: guard policy replaced (enforce) on kernel 6.1.0-57-amd64\n");
    r.insert("generate-other-profile.status", "0\n");
    r.insert(
        "generate-other-profile.err",
        "modtrace: note: the guard is left as it is: the running guard enforces /var/tmp/guard-profile.json, \
         not /var/lib/modtrace/profile.json; run: modtrace guard start --mode enforce\n",
    );
    r.insert("deny-copy.status", "0\n");
    r.insert("generate-changed.status", "0\n");
    r.insert(
        "generate-changed.out",
        "modtrace: guard policy replaced (enforce) on kernel 6.1.0-57-amd64\n  1 module(s) no longer allowed: appletalk\n",
    );
    r.insert("generate-refused.status", "1\n");
    r.insert("generate-refused.err", "modprobe: ERROR: could not insert 'appletalk': Operation not permitted\n");
    r
}

impl Pair {
    fn with_guard() -> Self {
        let mut pair = Pair::good();
        pair.guard = Some(Boot { finished: Ok(()), recorded: Some(good_guard_boot()) });
        pair
    }

    fn g(&mut self) -> &mut Recorded {
        self.guard.as_mut().unwrap().recorded.as_mut().unwrap()
    }

    /// The guard journal with `edit` applied to the entry of `hook`.
    fn edit_journal(&mut self, hook: &str, edit: impl Fn(&mut Value)) {
        let lines: Vec<String> = guard_journal()
            .into_iter()
            .map(|l| {
                let mut v: Value = serde_json::from_str(&l).unwrap();
                if v["MODTRACE_HOOK"] == hook {
                    edit(&mut v);
                }
                v.to_string()
            })
            .collect();
        self.g().insert("guard-journal.json", &(lines.join("\n") + "\n"));
    }
}

fn expect_guard_failure(check: &str, break_it: impl FnOnce(&mut Pair)) {
    expect_failure_of(Pair::with_guard(), check, break_it)
}

#[test]
fn every_guard_check_can_fail() {
    expect_guard_failure("guard_boot_finished", |p| p.guard.as_mut().unwrap().finished = Err("timed out".into()));
    expect_guard_failure("guard_boot_reached_multi_user", |p| {
        p.g().insert("unit-multi-user.target.show", &show("multi-user.target", "inactive", "success", 0, 0))
    });
    expect_guard_failure("guard_boot_no_failed_units", |p| {
        p.g().insert("failed-units", "modtrace-guard.service loaded failed failed\n")
    });
    expect_guard_failure("guard_boot_unlocked", |p| p.g().insert("modules-disabled", "1\n"));
    expect_guard_failure("guard_service_before_module_loaders", |p| {
        p.g().insert("unit-systemd-udevd.service.show", &show("systemd-udevd.service", "active", "success", 2, 1_200_000))
    });
    expect_guard_failure("guard_service_before_module_loaders", |p| {
        p.g().remove("unit-systemd-modules-load.service.show")
    });
    expect_guard_failure("guard_service_before_module_loaders", |p| {
        p.g().insert("unit-modtrace-guard.service.show", &show("modtrace-guard.service", "failed", "exit-code", 0, 1))
    });
    expect_guard_failure("guard_status_enforce_from_profile", |p| {
        p.g().insert("guard-status.out", &guard_status(1).replace("enforce", "complain"))
    });
    expect_guard_failure("guard_status_enforce_from_profile", |p| {
        p.g().insert("guard-status.out", &guard_status(1).replace("\"lost\":0", "\"lost\":4"))
    });
    expect_guard_failure("guard_status_enforce_from_profile", |p| {
        p.g().insert("guard-status.out", &guard_status(1).replace("\"skipped\":0", "\"skipped\":null"))
    });
    expect_guard_failure("guard_boot_kept_learned_modules", |p| {
        p.g().insert("proc-modules", &proc_modules(&["virtio_blk", "ext4"]))
    });
    expect_guard_failure("guard_boot_refused_nothing_learned", |p| {
        p.g().insert(
            "journal-boot-denied.json",
            &journal_entry("finit_module", "(udev-worker)", &[("MODTRACE_FILE", "evdev.ko")]),
        )
    });
    expect_guard_failure("guard_denied_modprobe_eperm", |p| p.g().insert("deny-modprobe.status", "0\n"));
    expect_guard_failure("guard_denied_modprobe_eperm", |p| {
        p.g().insert("proc-modules-after", &proc_modules(&["ext4", "isofs", "cdrom"]))
    });
    expect_guard_failure("guard_denied_init_module_eperm", |p| {
        p.g().insert("deny-init-module.err", "modtrace-guest: init_module: File exists\n")
    });
    expect_guard_failure("guard_denied_request", |p| p.g().insert("deny-request.status", "0\n"));
    // (check, the entry's hook, a field set wrong).
    let journal_breaks = [
        ("guard_journal_denied_modprobe", "finit_module", "MODTRACE_FILE", "evdev.ko"),
        ("guard_journal_denied_modprobe", "finit_module", "MODTRACE_UNIT", "session-1.scope"),
        ("guard_journal_denied_init_module", "init_module", "MODTRACE_DECISION", "would_deny"),
        ("guard_journal_denied_init_module", "init_module", "_SYSTEMD_UNIT", "other.service"),
        ("guard_journal_denied_init_module", "init_module", "SYSLOG_IDENTIFIER", "modtrace"),
        ("guard_journal_denied_request", "request", "MODTRACE_ALIAS", "net-pf-5"),
    ];
    for (check, hook, name, value) in journal_breaks {
        expect_guard_failure(check, |p| p.edit_journal(hook, |e| e[name] = json!(value)));
    }
    expect_guard_failure("guard_journal_denied_request", |p| {
        p.edit_journal("request", |e| {
            e.as_object_mut().unwrap().remove("MODTRACE_PID");
        })
    });
    expect_guard_failure("guard_journal_denied_request", |p| p.g().insert("guard-journal.json", ""));
    expect_guard_failure("guard_refused_replaced_file", |p| p.g().insert("replace-stale.status", "0\n"));
    expect_guard_failure("guard_refused_replaced_file", |p| p.g().insert("replace-rmmod.status", "1\n"));
    expect_guard_failure("guard_hook_refreshed_replaced_file", |p| p.g().insert("replace-hook.err", ""));
    expect_guard_failure("guard_hook_refreshed_replaced_file", |p| p.g().insert("replace-modprobe.status", "1\n"));
    expect_guard_failure("guard_hook_refreshed_replaced_file", |p| p.g().insert("guard-status-after.out", &guard_status(1)));
    expect_guard_failure("guard_hook_refreshed_replaced_file", |p| {
        p.g().insert("guard-status-after.out", &guard_status(2).replace("enforce", "complain"))
    });
    expect_guard_failure("guard_boot_switched_to_lock", |p| p.g().insert("enable.status", "1\n"));
    expect_guard_failure("guard_generate_left_an_unchanged_guard", |p| p.g().insert("generate-unchanged.out", "wrote x\n"));
    expect_guard_failure("guard_generate_left_an_unchanged_guard", |p| p.g().insert("generate-unchanged.status", "1\n"));
    expect_guard_failure("guard_generate_names_the_guards_other_profile", |p| p.g().insert("generate-other-profile.err", ""));
    expect_guard_failure("guard_generate_names_the_guards_other_profile", |p| p.g().insert("guard-start-copy.status", "1\n"));
    expect_guard_failure("guard_generate_refreshed_a_changed_set", |p| {
        p.g().insert("generate-changed.out", "modtrace: guard policy unchanged (68 modules allowed)\n")
    });
    expect_guard_failure("guard_generate_refreshed_a_changed_set", |p| p.g().insert("generate-refused.status", "0\n"));
    expect_guard_failure("guard_generate_refreshed_a_changed_set", |p| p.g().insert("deny-copy.status", "1\n"));
}

// ---- the guard boot sealed at boot (sealed.rs) ----

/// A seal refusal as the logger of modtrace-guard.service wrote it.
fn seal_entry(comm: &str, attempt: &str) -> String {
    json!({
        "_SYSTEMD_UNIT": "modtrace-guard.service", "SYSLOG_IDENTIFIER": "modtrace-guard",
        "MESSAGE": "guard refused", "MODTRACE_DECISION": "refused", "MODTRACE_HOOK": "seal",
        "MODTRACE_MODE": "enforce", "MODTRACE_REASON": "the guard is sealed until the next boot",
        "MODTRACE_PID": "530", "MODTRACE_UID": "0", "MODTRACE_COMM": comm, "MODTRACE_UNIT": GUARDED,
        "MODTRACE_ATTEMPT": attempt,
    })
    .to_string()
}

fn sealed_status(refused: u64) -> String {
    json!({"active": true, "sealed": true, "generation": 1,
           "state": {"mode": "enforce", "profile": "/var/lib/modtrace/profile.json"},
           "decisions": {"allowed": 41, "denied": 3, "would_deny": 0, "refused": refused, "lost": 0, "skipped": null}})
    .to_string()
}

/// What guarded.sh's `sealed` records, as a bookworm guard boot gives it.
fn good_sealed_guard_boot() -> Recorded {
    let mut r = good_guard_boot();
    let sealed = "modtrace: error: the guard is sealed until the next boot: nothing can stop it\n";
    r.insert("guard-status.out", &sealed_status(0));
    r.insert("sealed-stop.status", "1\n");
    r.insert("sealed-stop.err", sealed);
    r.insert("sealed-start-complain.status", "1\n");
    r.insert("sealed-start-complain.err", sealed);
    r.insert("sealed-rm.status", "1\n");
    r.insert("sealed-rm.err", "rm: cannot remove '/sys/fs/bpf/modtrace/guard/GUARD_CONFIG': Operation not permitted\n");
    r.insert("sealed-umount.status", "32\n");
    r.insert("sealed-umount.err", "umount: /sys/fs/bpf: must be superuser to unmount.\n");
    let deferred = "modtrace: note: the guard is sealed until the next boot, so its policy stays as it is: the new \
                    policy applies from the next boot (modtrace-guard.service computes it then)\n";
    r.insert("sealed-hook.status", "0\n");
    r.insert("sealed-hook.out", &format!("modtrace (kernel 6.1.0-57-amd64): {deferred}"));
    r.insert("sealed-generate.status", "0\n");
    r.insert("sealed-generate.err", deferred);
    r.insert("sealed-rmmod.status", "0\n");
    r.insert("sealed-modprobe.status", "0\n");
    let mut modules = BOOT_MODULES.to_vec();
    modules.push("llc");
    r.insert("proc-modules-sealed", &proc_modules(&modules));
    r.insert("guard-status-sealed.status", "0\n");
    r.insert("guard-status-sealed.out", &sealed_status(9));
    let entries = [seal_entry("rm", "unpinning GUARD_CONFIG"), seal_entry("umount", "unmounting the BPF file system")];
    r.insert("journal-sealed.json", &(entries.join("\n") + "\n"));
    r
}

impl Pair {
    fn with_sealed_guard() -> Self {
        let mut pair = Pair::good();
        pair.guard = Some(Boot { finished: Ok(()), recorded: Some(good_sealed_guard_boot()) });
        pair.sealed_guard = true;
        pair
    }
}

fn expect_sealed_failure(check: &str, break_it: impl FnOnce(&mut Pair)) {
    expect_failure_of(Pair::with_sealed_guard(), check, break_it)
}

#[test]
fn every_sealed_guard_check_can_fail() {
    let unsealed = || guard_status(1);
    expect_sealed_failure("guard_sealed_at_boot", |p| p.g().insert("guard-status.out", &unsealed()));
    // A number skipped is still checked when sealed; null is allowed only then.
    expect_sealed_failure("guard_status_enforce_from_profile", |p| {
        p.g().insert("guard-status.out", &sealed_status(0).replace("\"skipped\":null", "\"skipped\":2"))
    });
    expect_guard_failure("guard_status_enforce_from_profile", |p| {
        p.g().insert("guard-status.out", &guard_status(1).replace("\"skipped\":0", "\"skipped\":null"))
    });
    expect_sealed_failure("guard_sealed_undo_refused", |p| p.g().insert("sealed-stop.status", "0\n"));
    expect_sealed_failure("guard_sealed_undo_refused", |p| {
        p.g().insert("sealed-umount.err", "umount: /sys/fs/bpf: target is busy.\n")
    });
    expect_sealed_failure("guard_sealed_refusals_counted", |p| p.g().insert("guard-status-sealed.out", &sealed_status(3)));
    expect_sealed_failure("guard_sealed_refusals_counted", |p| p.g().insert("guard-status-sealed.out", &unsealed()));
    expect_sealed_failure("guard_sealed_refusals_logged_with_who", |p| {
        p.g().insert("journal-sealed.json", &seal_entry("rm", "unpinning GUARD_CONFIG"))
    });
    expect_sealed_failure("guard_sealed_refusals_logged_with_who", |p| {
        let other_unit = seal_entry("umount", "unmounting").replace(GUARDED, "session-1.scope");
        p.g().insert("journal-sealed.json", &format!("{}\n{other_unit}\n", seal_entry("rm", "unpinning")))
    });
    expect_sealed_failure("guard_sealed_hook_defers_to_next_boot", |p| {
        p.g().insert("sealed-hook.out", "modtrace: guard policy replaced (enforce)\n")
    });
    expect_sealed_failure("guard_sealed_generate_defers_to_next_boot", |p| p.g().insert("sealed-generate.status", "1\n"));
    expect_sealed_failure("guard_sealed_profile_module_loads", |p| p.g().insert("sealed-modprobe.status", "1\n"));
    expect_sealed_failure("guard_sealed_profile_module_loads", |p| {
        let without: Vec<&str> = BOOT_MODULES.iter().copied().filter(|m| *m != "appletalk").collect();
        p.g().insert("proc-modules-sealed", &proc_modules(&without))
    });
}

// ---- the trixie suite's kernel upgrade (upgrade.rs) ----

const OLD: &str = "6.12.118+deb13-amd64";
const NEW: &str = "7.3.4+deb13-amd64";

/// What a correct upgrade left: boot 2's install and hook runs, boot 3 locked on the new kernel.
fn good_upgrade() -> upgrade::UpgradeFacts {
    let mut b2 = good_boot2();
    b2.insert("upgrade-install.status", "0\n");
    b2.insert("upgrade-boot-files", &format!("config-{NEW}\ninitrd.img-{NEW}\nvmlinuz-{NEW}\n"));
    b2.insert(
        "upgrade-journal-install",
        &format!(
            "kernel {NEW}: check: modtrace: the profile (learned on {OLD}) on kernel {NEW}:\n\
             kernel {NEW}: check:   appletalk: GONE, nothing in this kernel answers its causes (needed by fake-dm.service)\n\
             kernel {NEW}: check:   crc32c_generic: merged into crc32c_cryptoapi\n\
             kernel {NEW}: check:   crc32c_intel: merged into crc32c_cryptoapi\n\
             kernel {NEW}: check:   nfnetlink: now built into the kernel, as netfilter\n\
             kernel {NEW}: check: NOT safe to reboot into {NEW} locked: see above\n\
             kernel {NEW}: the lock would fail on this kernel (see above): no module lock is installed for it, so it boots unlocked\n"
        ),
    );
    b2.insert("upgrade-lists-install", &format!("{OLD}.conf\n"));
    b2.insert(
        "upgrade-journal-hook",
        &format!(
            "kernel {NEW}: check:   cirrus: renamed to cirrus_qemu\n\
             kernel {NEW}: check:   lock list for {NEW}: 12 entries, 12 load there\n\
             kernel {NEW}: check: safe to reboot into {NEW}\n\
             kernel {NEW}: module lock regenerated (lock point after-udev)\n"
        ),
    );
    b2.insert("upgrade-lists", &format!("{NEW}.conf\n{OLD}.conf\n"));
    b2.insert("upgrade-list-new", "# Generated by modtrace\nMODTRACE_NEEDED=\"wireguard\"\nMODTRACE_DEVICES=\"cirrus_qemu\"\n");
    let mut b1 = good_boot1();
    let with_cirrus: Vec<&str> = BOOT_MODULES.iter().copied().chain(["llc", "cirrus"]).collect();
    b1.insert("proc-modules", &proc_modules(&with_cirrus));
    let mut b3 = Recorded::default();
    let with_cirrus_qemu: Vec<&str> = all_modules().into_iter().chain(["cirrus_qemu"]).collect();
    common(&mut b3, &with_cirrus_qemu, "1");
    b3.insert("modules-load-gone", "crc32c_generic\ncirrus\n");
    b3.insert("modules-load-gone.status", "0\n");
    b3.insert("modules-load-gone.err", "Failed to find module 'crc32c_generic'\nFailed to find module 'cirrus'\n");
    b3.insert("kernel", &format!("{NEW}\n"));
    b3.insert(&format!("unit-{LOCK_UNIT}.show"), &show(LOCK_UNIT, "active", "success", 9_000_000, 8_000_000));
    works_after_lock(&mut b3);
    upgrade::UpgradeFacts {
        kver: NEW.into(),
        boot1: Some(b1),
        boot2: Some(b2),
        boot3: Boot { finished: Ok(()), recorded: Some(b3) },
        learned_on: OLD.into(),
    }
}

fn upgrade_failures(f: &upgrade::UpgradeFacts) -> Vec<&'static str> {
    check::run(upgrade::UPGRADE_CHECKS, f).into_iter().filter(|c| c.result.is_err()).map(|c| c.name).collect()
}

fn expect_upgrade_failure(check: &str, break_it: impl FnOnce(&mut Recorded, &mut Recorded)) {
    let mut f = good_upgrade();
    break_it(f.boot2.as_mut().unwrap(), f.boot3.recorded.as_mut().unwrap());
    assert!(upgrade_failures(&f).contains(&check), "{check} did not fail: {:?}", upgrade_failures(&f));
}

#[test]
fn a_correct_upgrade_passes_and_every_upgrade_check_can_fail() {
    let good = good_upgrade();
    assert!(upgrade_failures(&good).is_empty(), "{:?}", upgrade_failures(&good));
    let drop_line = |r: &mut Recorded, file: &str, word: &str| {
        let text: String = r.text(file).unwrap().lines().filter(|l| !l.contains(word)).map(|l| format!("{l}\n")).collect();
        r.insert(file, &text);
    };
    type Break = Box<dyn FnOnce(&mut Recorded, &mut Recorded)>;
    let table: [(&str, Break); 19] = [
        ("upgrade_kernel_installed_by_apt", Box::new(|b2, _| b2.insert("upgrade-install.status", "100\n"))),
        ("upgrade_hook_refused_a_kernel_without_a_needed_module", Box::new(move |b2, _| drop_line(b2, "upgrade-journal-install", "NOT safe"))),
        ("upgrade_check_followed_renames_and_built_ins", Box::new(move |b2, _| drop_line(b2, "upgrade-journal-install", "nfnetlink"))),
        ("upgrade_hook_locked_the_new_kernel_once_fixed", Box::new(|b2, _| b2.insert("upgrade-lists", &format!("{NEW}.conf\n")))),
        ("boot3_finished", Box::new(|_, _| {})),
        ("boot3_runs_the_new_kernel", Box::new(|_, b3| b3.insert("kernel", &format!("{OLD}\n")))),
        ("boot3_reached_multi_user", Box::new(|_, b3| b3.remove("unit-multi-user.target.show"))),
        ("boot3_no_failed_units", Box::new(|_, b3| b3.insert("failed-units", "modtrace-lock.service loaded failed failed\n"))),
        ("boot3_lock_service_succeeded", Box::new(|_, b3| b3.insert(&format!("unit-{LOCK_UNIT}.show"), &show(LOCK_UNIT, "failed", "exit-code", 0, 1)))),
        ("boot3_modules_disabled_is_1", Box::new(|_, b3| b3.insert("modules-disabled", "0\n"))),
        ("boot3_nftables_ruleset_after_lock", Box::new(|_, b3| b3.insert("nft-ruleset.status", "1\n"))),
        ("boot3_wireguard_up_after_lock", Box::new(|_, b3| b3.insert("wg-link.out", ""))),
        ("boot3_binfmt_registered_after_lock", Box::new(|_, b3| b3.insert("binfmt-entry.out", "disabled\n"))),
        ("boot3_fat_mounted_after_lock", Box::new(|_, b3| b3.insert("fat-mount.out", ""))),
        ("boot3_tun_up_after_lock", Box::new(|_, b3| b3.insert("tun-link.out", "6: mttun0: <NOARP> mtu 1500\n"))),
        ("boot1_loaded_cirrus_for_the_vga", Box::new(|_, _| {})),
        ("upgrade_lock_list_follows_cirrus_to_cirrus_qemu", Box::new(|b2, _| b2.insert("upgrade-list-new", "MODTRACE_DEVICES=\"cirrus\"\n"))),
        ("boot3_cirrus_qemu_loaded_under_the_lock", Box::new(|_, b3| b3.insert("proc-modules", &proc_modules(&all_modules())))),
        ("boot3_modules_load_skips_names_this_kernel_lacks", Box::new(|_, b3| b3.insert("modules-load-gone.status", "1\n"))),
    ];
    assert_eq!(table.len(), upgrade::UPGRADE_CHECKS.len());
    for (name, break_it) in table {
        if name == "boot3_finished" {
            let mut f = good_upgrade();
            f.boot3.finished = Err("timed out".into());
            assert!(upgrade_failures(&f).contains(&name));
            continue;
        }
        if name == "boot1_loaded_cirrus_for_the_vga" {
            let mut f = good_upgrade();
            f.boot1 = Some(good_boot1());
            assert!(upgrade_failures(&f).contains(&name), "{:?}", upgrade_failures(&f));
            continue;
        }
        expect_upgrade_failure(name, break_it);
    }
    // check must have counted the list's entries, all loading.
    expect_upgrade_failure("upgrade_hook_locked_the_new_kernel_once_fixed", |b2, _| {
        let journal = b2.text("upgrade-journal-hook").unwrap().replace("12 load there", "11 load there");
        b2.insert("upgrade-journal-hook", &journal)
    });
    // The rename must be said, and what modules-load.d was handed must hold the old name.
    expect_upgrade_failure("upgrade_lock_list_follows_cirrus_to_cirrus_qemu", |b2, _| {
        let journal = b2.text("upgrade-journal-hook").unwrap().replace("cirrus: renamed to cirrus_qemu\n", "");
        b2.insert("upgrade-journal-hook", &journal)
    });
    expect_upgrade_failure("boot3_modules_load_skips_names_this_kernel_lacks", |_, b3| {
        b3.insert("modules-load-gone", "crc32c_generic\n")
    });
    // The refusal also fails when a list was installed for the new kernel anyway.
    expect_upgrade_failure("upgrade_hook_refused_a_kernel_without_a_needed_module", |b2, _| {
        b2.insert("upgrade-lists-install", &format!("{NEW}.conf\n{OLD}.conf\n"))
    });
}

// ---- the refused driver load (refused_device.rs) ----

const WATCHDOG_PATH: &str = "/devices/pci0000:00/0000:00:03.0";
const WATCHDOG_SYSFS: &str = "pci:v00008086d000025ABsv00001AF4sd00001100bc08sc80i00\n0x8086\n0x25ab\n";

/// The watchdog's refusal as the guard's logger journals it.
fn watchdog_entry() -> String {
    let mut e: Value = serde_json::from_str(&journal_entry(
        "finit_module",
        "(udev-worker)",
        &[
            ("MODTRACE_FILE", "i6300esb.ko"),
            ("MODTRACE_MODULE", "i6300esb"),
            ("MODTRACE_DEVICE", WATCHDOG_PATH),
            ("MODTRACE_MODALIAS", "pci:v00008086d000025ABsv00001AF4sd00001100bc08sc80i00"),
            ("MODTRACE_SUBSYSTEM", "pci"),
            ("MODTRACE_DEVICE_IDS", "8086:25ab"),
        ],
    ))
    .unwrap();
    e["MODTRACE_UNIT"] = json!("systemd-udevd.service");
    e.to_string()
}

/// udev's refused load of the watchdog's driver as `trace --json` gives it.
fn watchdog_record() -> Value {
    let worker = process("(udev-worker)", "systemd-udevd.service", &["/usr/lib/systemd/systemd-udevd"]);
    let mut rec = denied_load("finit_module", worker);
    rec["module"] = json!("i6300esb");
    rec["linked"] = json!(false);
    rec["cause"] = json!({"kind": "udev", "device": {"devpath": WATCHDOG_PATH, "subsystem": "pci", "ids": "8086:25ab",
        "modalias": "pci:v00008086d000025ABsv00001AF4sd00001100bc08sc80i00"}});
    rec
}

fn watchdog_files(r: &mut Recorded) {
    r.insert("watchdog-device", &format!("{WATCHDOG_PATH}\n"));
    r.insert("watchdog-sysfs", WATCHDOG_SYSFS);
    r.insert("watchdog-driver", "none\n");
    r.insert("watchdog-trigger.status", "0\n");
}

impl Pair {
    fn with_watchdog() -> Self {
        let mut pair = Pair::with_sealed_guard();
        pair.watchdog = true;
        let mut journal = guard_journal();
        journal.push(watchdog_entry());
        pair.g().insert("guard-journal.json", &(journal.join("\n") + "\n"));
        watchdog_files(pair.g());
        let mut trace = good_trace();
        trace.push(watchdog_record());
        set_trace(pair.b2(), &trace);
        watchdog_files(pair.b2());
        pair
    }

    /// The trace with `edit` applied to the watchdog's record.
    fn edit_watchdog_record(&mut self, edit: impl Fn(&mut Value)) {
        let mut rec = watchdog_record();
        edit(&mut rec);
        let mut trace = good_trace();
        trace.push(rec);
        set_trace(self.b2(), &trace);
    }

    /// The guard's journal with `edit` applied to the watchdog's entry.
    fn edit_watchdog_entry(&mut self, edit: impl Fn(&mut Value)) {
        let mut e: Value = serde_json::from_str(&watchdog_entry()).unwrap();
        edit(&mut e);
        let mut journal = guard_journal();
        journal.push(e.to_string());
        self.g().insert("guard-journal.json", &(journal.join("\n") + "\n"));
    }
}

fn expect_watchdog_failure(check: &str, break_it: impl FnOnce(&mut Pair)) {
    expect_failure_of(Pair::with_watchdog(), check, break_it)
}

#[test]
fn every_refused_device_check_can_fail() {
    expect_watchdog_failure("guard_watchdog_retriggered_unbound", |p| p.g().insert("watchdog-driver", "bound\n"));
    expect_watchdog_failure("guard_watchdog_retriggered_unbound", |p| p.g().remove("watchdog-sysfs"));
    expect_watchdog_failure("boot2_watchdog_retriggered_unbound", |p| p.b2().insert("watchdog-trigger.status", "1\n"));
    expect_watchdog_failure("guard_refused_driver_names_its_device", |p| {
        p.g().insert("guard-journal.json", &guard_journal().join("\n"))
    });
    for field in ["MODTRACE_MODULE", "MODTRACE_DEVICE", "MODTRACE_DEVICE_IDS", "MODTRACE_MODALIAS", "MODTRACE_COMM"] {
        expect_watchdog_failure("guard_refused_driver_names_its_device", |p| {
            p.edit_watchdog_entry(|e| e.as_object_mut().unwrap().remove(field).map(|_| ()).unwrap())
        });
    }
    expect_watchdog_failure("guard_refused_driver_names_its_device", |p| {
        p.edit_watchdog_entry(|e| e["MODTRACE_UNIT"] = json!("modtrace-test-guarded.service"))
    });
    expect_watchdog_failure("traced_refused_driver_names_its_device", |p| set_trace(p.b2(), &good_trace()));
    for pointer in ["/module", "/cause/device", "/linked", "/cause/device/ids"] {
        expect_watchdog_failure("traced_refused_driver_names_its_device", |p| {
            p.edit_watchdog_record(|r| *r.pointer_mut(pointer).unwrap() = Value::Null)
        });
    }
    expect_watchdog_failure("traced_refused_driver_names_its_device", |p| {
        p.edit_watchdog_record(|r| r["cause"]["device"]["devpath"] = json!("/devices/pci0000:00/0000:00:04.0"))
    });
    expect_watchdog_failure("traced_refused_driver_names_its_device", |p| p.b2().insert("modules-disabled", "0\n"));
}
