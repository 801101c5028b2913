//! Checks of the guard sealed until reboot (tests/guest/init's
//! seal_scenario): sealing needs enforce; the pins are root's alone; every
//! way to undo the guard that root has (modtrace itself, rm, mv, umount,
//! bpftool by pin and by id) fails with EPERM; a refresh defers to the next
//! boot; status counts the refusals and the log names who tried; the
//! profile's modules still load on demand and the others are still refused.

use serde_json::Value;

use super::{evidence, text, Facts};
use crate::guest::scenario as sc;

/// The undo attempts: each must fail, refused by the kernel (EPERM) or by
/// modtrace because the kernel refused it.
pub const UNDO: [&str; 19] = [
    "seal-undo-stop",
    "seal-undo-start",
    "seal-undo-rm",
    "seal-undo-mv",
    "seal-undo-mv-parent",
    "seal-undo-umount",
    "seal-undo-umount-lazy",
    "seal-undo-umount-sys",
    "seal-undo-map-update-pinned",
    "seal-undo-map-delete-pinned",
    "seal-undo-counts-update-pinned",
    "seal-undo-link-detach-pinned",
    "seal-undo-prog-show-pinned",
    "seal-undo-map-update-id",
    "seal-undo-map-delete-id",
    "seal-undo-link-detach-id",
    "seal-undo-prog-show-id",
    "seal-undo-map-show",
    "seal-user-ls",
];

/// What each kind of object the sealed guard has at least: its pinned maps,
/// its 4 programs and the seal's 6, and one link each.
const MIN_REFUSED: [(&str, usize); 3] = [("map", 8), ("prog", 10), ("link", 10)];

fn code(f: &Facts, name: &str) -> Result<i32, String> {
    f.output.exit_code(name)
}

fn said(f: &Facts, name: &str) -> String {
    let out = f.output.text(&format!("{name}.stdout")).unwrap_or_default();
    let err = f.output.text(&format!("{name}.stderr")).unwrap_or_default();
    format!("{out}\n{err}")
}

fn ok(f: &Facts, name: &str) -> Result<(), String> {
    match code(f, name)? {
        0 => Ok(()),
        c => Err(format!("{name}: exit {c}, expected 0\n      said: {}", said(f, name).trim())),
    }
}

fn failed(f: &Facts, name: &str) -> Result<(), String> {
    match code(f, name)? {
        0 => Err(format!("{name} succeeded, expected a failure\n      said: {}", said(f, name).trim())),
        _ => Ok(()),
    }
}

pub fn needs_enforce(f: &Facts) -> Result<(), String> {
    failed(f, "seal-complain")?;
    let words = said(f, "seal-complain");
    words.contains("--sealed needs --mode enforce").then_some(()).ok_or(format!("seal-complain said: {words}"))
}

pub fn started_sealed(f: &Facts) -> Result<(), String> {
    ok(f, "seal-start")?;
    let words = said(f, "seal-start");
    words.contains("enforce, sealed until the next boot").then_some(()).ok_or(format!("seal-start said: {words}"))
}

/// The pin directory and its parent are 0700, and a user cannot list them.
pub fn pins_are_roots_alone(f: &Facts) -> Result<(), String> {
    let modes = f.output.text("seal-modes")?;
    let dirs = [sc::SEAL_PIN_DIR, "/sys/fs/bpf/modtrace"];
    if !dirs.iter().all(|d| modes.lines().any(|l| l == format!("700 {d}"))) {
        return Err(format!("the pin directories are not 0700: {modes}"));
    }
    failed(f, "seal-user-ls")
}

/// Every undo attempt failed, and says why: the kernel's EPERM, or
/// modtrace's words for it.
pub fn every_undo_refused(f: &Facts) -> Result<(), String> {
    for name in UNDO {
        failed(f, name)?;
        let words = said(f, name);
        let why = ["Operation not permitted", "Permission denied", "sealed until the next boot"];
        if !why.iter().any(|w| words.contains(w)) {
            return Err(format!("{name} failed, but not because it was refused: {}", words.trim()));
        }
    }
    Ok(())
}

pub fn refresh_defers_to_next_boot(f: &Facts) -> Result<(), String> {
    ok(f, "seal-refresh")?;
    let words = said(f, "seal-refresh");
    words.contains("applies from the next boot").then_some(()).ok_or(format!("seal-refresh said: {words}"))
}

/// bpf(*_GET_FD_BY_ID) is refused (EPERM) for the guard's objects, and for
/// no more than the guard's (each id in the guest is one of them).
pub fn objects_refused_by_id(f: &Facts) -> Result<(), String> {
    let ids = f.output.text("seal-ids")?;
    for (kind, min) in MIN_REFUSED {
        let refused = ids.lines().filter(|l| l.starts_with(&format!("{kind} ")) && l.ends_with(" errno=1")).count();
        if refused < min {
            return Err(format!("{refused} {kind} id(s) refused, expected at least {min}:\n{ids}"));
        }
    }
    match ids.lines().find(|l| l.contains("errno=") && !l.ends_with(" errno=1")) {
        Some(l) => Err(format!("an id failed otherwise than with EPERM: {l}")),
        None => Ok(()),
    }
}

/// `guard status` says sealed and counts at least one refusal per attempt
/// that reached the kernel.
pub fn refusals_counted_in_status(f: &Facts) -> Result<(), String> {
    ok(f, "seal-status")?;
    let out = f.output.text("seal-status.stdout")?;
    let says = |words: &str| out.contains(words);
    let refusals = says("attempt(s) to undo the guard refused");
    if !says("guard enforcing: mode enforce, sealed until the next boot") || !refusals {
        return Err(format!("guard status does not say sealed and enforcing:\n{out}"));
    }
    ok(f, "seal-status-json")?;
    let json = f.output.text("seal-status-json.stdout")?;
    let v: Value = serde_json::from_str(json.trim()).map_err(|e| format!("{e}: {json}"))?;
    let refused = v.pointer("/decisions/refused").and_then(Value::as_u64).unwrap_or(0);
    // The user's ls is refused by the directory's mode, not by the seal.
    let floor = UNDO.len() as u64 - 1;
    if v["sealed"] != Value::Bool(true) || refused < floor {
        return Err(evidence(&format!("not sealed, or fewer than {floor} refusals counted"), &v));
    }
    // Its links, which cannot be opened, found by the ids recorded at start.
    if v["attached"] != Value::Bool(true) || v["active"] != Value::Bool(true) {
        return Err(evidence("the sealed guard's links are not all found attached", &v));
    }
    Ok(())
}

/// The log names who tried, for each way in: bpf by id and a pin opened
/// (bpftool), an unpin (rm), a rename (mv) and an umount (umount).
pub fn refusals_logged_with_who(f: &Facts) -> Result<(), String> {
    let (list, _) = super::jsonl_section(f, "seal-log.jsonl")?;
    let refused: Vec<&Value> = list.iter().filter(|r| text(r, "/kind") == "guard_refused").collect();
    let wanted = [("bpftool", "bpf(BPF_"), ("bpftool", "opening the guard's pin"), ("rm", "unpinning")]
        .into_iter()
        .chain([("mv", "renaming"), ("umount", "unmounting")]);
    for (comm, attempt) in wanted {
        let r = refused.iter().find(|r| text(r, "/process/comm") == comm && text(r, "/attempt").starts_with(attempt));
        let Some(r) = r else {
            let seen: Vec<String> = refused.iter().map(|r| r.to_string()).collect();
            return Err(format!("no refusal of {attempt}... by {comm} logged among:\n      {}", seen.join("\n      ")));
        };
        let pid = r.pointer("/process/pid").and_then(Value::as_u64).unwrap_or(0);
        if pid == 0 || r.pointer("/process/uid") != Some(&Value::from(0)) || text(r, "/hook") != "seal" {
            return Err(evidence("the refusal does not name its process (pid, uid 0) and hook seal", r));
        }
    }
    Ok(())
}

pub fn profile_modules_still_load(f: &Facts) -> Result<(), String> {
    ok(f, "seal-modprobe-profile")?;
    ok(f, "seal-profile-loaded")?;
    ok(f, "seal-autoload-profile")
}

pub fn others_still_refused(f: &Facts) -> Result<(), String> {
    failed(f, "seal-modprobe-outside")?;
    failed(f, "seal-autoload-outside")?;
    failed(f, "seal-outside-loaded")
}

/// A sealed run's sections as a real 6.1 run gives them, for the checks'
/// self-tests (here and in tests.rs).
#[cfg(test)]
pub mod fixture {
    use serde_json::json;

    pub fn exit_codes() -> String {
        let mut codes = vec!["seal-complain 1", "seal-start 0", "seal-refresh 0", "seal-status 0"];
        codes.extend(["seal-status-json 0", "seal-modprobe-profile 0", "seal-profile-loaded 0"]);
        codes.extend(["seal-autoload-profile 0", "seal-modprobe-outside 1", "seal-autoload-outside 1"]);
        codes.push("seal-outside-loaded 1");
        let undo = super::UNDO.iter().map(|n| format!("{n} 1"));
        codes.into_iter().map(String::from).chain(undo).collect::<Vec<_>>().join("\n")
    }

    fn refusal(comm: &str, attempt: &str) -> String {
        json!({"time": "2026-12-07T18:00:00Z", "ts_ns": 1, "kind": "guard_refused", "hook": "seal", "mode": "enforce",
               "attempt": attempt, "reason": "the guard is sealed until the next boot", "repeats": 0,
               "process": {"pid": 300, "tgid": 300, "uid": 0, "comm": comm, "exe": null, "unit": null}})
        .to_string()
    }

    pub fn sections() -> Vec<(String, String)> {
        let log = [
            refusal("bpftool", "bpf(BPF_MAP_GET_FD_BY_ID) of the guard's map id 12"),
            refusal("bpftool", "opening the guard's pin (inode 5071) for writing"),
            refusal("rm", "unpinning GUARD_CONFIG (unlink in the guard's pin directory)"),
            refusal("mv", "renaming guard (in, out of or above the guard's pin directory)"),
            refusal("umount", "unmounting mount 30: the BPF file system or a mount above it"),
        ];
        let ids = (1..=12).map(|i| format!("map {i} errno=1")).chain((1..=10).map(|i| format!("prog {i} errno=1")));
        let ids: Vec<String> = ids.chain((1..=10).map(|i| format!("link {i} errno=1"))).collect();
        let status = json!({"active": true, "attached": true, "sealed": true, "generation": 1,
                            "decisions": {"allowed": 2, "denied": 2, "would_deny": 0, "lost": 0, "refused": 41}});
        let texts = vec![
            ("seal-complain.stderr", "modtrace: error: --sealed needs --mode enforce: a guard that ...".to_string()),
            ("seal-start.stdout", "modtrace: guard started (enforce, sealed until the next boot) on kernel 6.1".into()),
            ("seal-modes", "700 /sys/fs/bpf/modtrace/guard\n700 /sys/fs/bpf/modtrace".into()),
            ("seal-refresh.stdout", "modtrace: the guard is sealed: the new policy applies from the next boot".into()),
            ("seal-ids", ids.join("\n")),
            ("seal-status.stdout", "modtrace: guard enforcing: mode enforce, sealed until the next boot, since x\n\
              sealed: 41 attempt(s) to undo the guard refused (journalctl -t modtrace-guard)".into()),
            ("seal-status-json.stdout", status.to_string()),
            ("seal-log.jsonl", log.join("\n")),
        ];
        let mut texts: Vec<(String, String)> = texts.into_iter().map(|(n, t)| (n.to_string(), t)).collect();
        texts.extend(super::UNDO.iter().map(|n| (format!("{n}.stderr"), "Error: Operation not permitted".to_string())));
        texts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::guest_output::GuestOutput;

    type Check = fn(&Facts) -> Result<(), String>;

    /// Runs `check` on the fixture after `change`, a (section, text) edit.
    fn run(check: Check, change: impl FnOnce(&mut Vec<(String, String)>)) -> Result<(), String> {
        let mut sections = fixture::sections();
        sections.push(("exit-codes".into(), fixture::exit_codes()));
        change(&mut sections);
        let serial: String = sections.iter().map(|(n, t)| format!("==== {n} begin\n{t}\n==== {n} end\n")).collect();
        let output = GuestOutput::parse(&[], &serial);
        check(&Facts { output, records: Vec::new(), bad_lines: Vec::new(), compressed: false })
    }

    fn set(name: &str, text: &str) -> impl FnOnce(&mut Vec<(String, String)>) {
        let (name, text) = (name.to_string(), text.to_string());
        move |s| s.iter_mut().filter(|(n, _)| *n == name).for_each(|(_, t)| *t = text.clone())
    }

    fn exit(name: &str, code: i32) -> impl FnOnce(&mut Vec<(String, String)>) {
        let name = name.to_string();
        move |s| {
            let codes = &mut s.iter_mut().find(|(n, _)| n == "exit-codes").unwrap().1;
            let prefix = format!("{name} ");
            assert!(codes.lines().any(|l| l.starts_with(&prefix)), "no exit code for {name}");
            *codes = codes.lines().map(|l| if l.starts_with(&prefix) { format!("{name} {code}") } else { l.into() })
                .collect::<Vec<_>>().join("\n");
        }
    }

    /// Expects the check registered as `name` to fail after `change`.
    fn expect_failure(name: &str, change: impl FnOnce(&mut Vec<(String, String)>)) {
        let (_, check) = super::super::CHECKS.iter().find(|(n, _)| *n == name).expect("a registered check");
        assert!(run(*check, change).is_err(), "{name} did not fail");
    }

    #[test]
    fn a_sealed_run_passes_every_check() {
        for (name, check) in super::super::CHECKS.iter().filter(|(n, _)| n.starts_with("seal_")) {
            if let Err(e) = run(*check, |_| {}) {
                panic!("{name}: {e}");
            }
        }
    }

    #[test]
    fn every_check_can_fail() {
        expect_failure("seal_needs_enforce", exit("seal-complain", 0));
        expect_failure("seal_started_sealed", set("seal-start.stdout", "modtrace: guard started (enforce)"));
        expect_failure("seal_pins_are_roots_alone", set("seal-modes", "755 /sys/fs/bpf/modtrace/guard"));
        expect_failure("seal_pins_are_roots_alone", exit("seal-user-ls", 0));
        for name in UNDO {
            expect_failure("seal_every_undo_refused", exit(name, 0));
        }
        let busy = set("seal-undo-umount-sys.stderr", "umount: can't unmount /sys: Device or resource busy");
        expect_failure("seal_every_undo_refused", busy);
        expect_failure("seal_refresh_defers_to_next_boot", set("seal-refresh.stdout", "guard policy replaced"));
        let few = set("seal-ids", "map 1 errno=1\nprog 2 errno=1\nlink 3 errno=1");
        expect_failure("seal_objects_refused_by_id", few);
        expect_failure("seal_objects_refused_by_id", |s| {
            s.iter_mut().filter(|(n, _)| n == "seal-ids").for_each(|(_, t)| t.push_str("\nmap 99 errno=13"))
        });
        let unsealed = r#"{"active": true, "sealed": false, "decisions": {"refused": 41}}"#;
        expect_failure("seal_refusals_counted_in_status", set("seal-status-json.stdout", unsealed));
        let uncounted = r#"{"active": true, "attached": true, "sealed": true, "decisions": {"refused": 3}}"#;
        expect_failure("seal_refusals_counted_in_status", set("seal-status-json.stdout", uncounted));
        let unknown = r#"{"active": false, "attached": null, "sealed": true, "decisions": {"refused": 41}}"#;
        expect_failure("seal_refusals_counted_in_status", set("seal-status-json.stdout", unknown));
        expect_failure("seal_refusals_logged_with_who", |s| {
            let log = &mut s.iter_mut().find(|(n, _)| n == "seal-log.jsonl").unwrap().1;
            *log = log.lines().filter(|l| !l.contains("\"umount\"")).collect::<Vec<_>>().join("\n");
        });
        expect_failure("seal_profile_modules_still_load", exit("seal-autoload-profile", 1));
        expect_failure("seal_others_still_refused", exit("seal-outside-loaded", 0));
    }
}
