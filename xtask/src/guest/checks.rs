//! The host-side verdict on one guest run: named checks over the JSON lines of
//! `modtrace trace --json` (serde's form of modtrace::trace::event::Record), its
//! stderr, the guest's step results, and the outputs of `modtrace learn`,
//! `report`, `snapshot` and `diff` (checks/learn.rs) and of the flood
//! (checks/flood.rs). Each check fails with the evidence.

use serde_json::Value;

use crate::check::{self, Check, CheckFn};
use crate::guest::scenario::{self as sc, comm};
use crate::harness::guest_output::GuestOutput;

/// Everything a check may look at.
pub struct Facts {
    pub output: GuestOutput,
    pub records: Vec<Value>,
    pub bad_lines: Vec<String>,
    /// The kernel's modules are .ko.xz (kmod then falls back to init_module).
    pub compressed: bool,
}

const CHECKS: &[(&str, CheckFn<Facts>)] = &[
    ("guest_steps_succeeded", guest_steps_succeeded),
    ("tracer_attached", tracer_attached),
    ("load_calls_on_fexit", load_calls_on_fexit),
    ("tracer_exited_cleanly", tracer_exited_cleanly),
    ("events_parse_as_json", events_parse_as_json),
    ("no_lost_events", no_lost_events),
    ("vfat_explicit_by_modprobe", explicit_module_loaded),
    ("fat_explicit_dependency_of_vfat", explicit_dependency_loaded),
    ("vfat_fat_load_syscalls", explicit_load_syscalls),
    ("insmod_finit_module", insmod_finit_module),
    ("init_module_syscall", init_module_syscall),
    ("failed_init_module_reported", failed_init_module),
    ("init_failure_after_link_never_folded", init_failure_after_link),
    ("binfmt_misc_request_by_mount", binfmt_request),
    ("binfmt_misc_loaded_by_request", binfmt_loaded),
    ("chain_top_loaded_by_unit_request", chain_top_loaded),
    ("chain_middle_needed_by_top", chain_middle_loaded),
    ("chain_bottom_needed_by_both", chain_bottom_loaded),
    ("unit_explicit_modprobe", unit_explicit_modprobe),
    ("dummy_loaded_by_ip_request", dummy_loaded),
    ("net_pf_38_request_fails", missing_alias_request),
    ("socket_request_call_site_named_by_kernel", socket_request_call_site),
    ("vfat_unloaded_by_rmmod", explicit_module_unloaded),
    // learning, the profile, report, snapshot, diff
    ("learner_saved_on_sigint", learn::learner_saved_on_sigint),
    ("profile_schema_kernel_session", learn::profile_schema_kernel_session),
    ("profile_chain_top_requested_by_unit", learn::profile_chain_top),
    ("profile_chain_dependencies_needed_by_top", learn::profile_chain_dependencies),
    ("profile_binfmt_misc_by_request", learn::profile_binfmt_misc),
    ("profile_vfat_top_level_fat_not", learn::profile_vfat_fat),
    ("profile_net_pf_38_without_module", learn::profile_request_without_module),
    ("profile_failed_eexist", learn::profile_failed_eexist),
    ("profile_failed_finit_module", learn::profile_failed_finit_module),
    ("profile_preloaded_by_modules_load_d", learn::profile_preloaded_configured),
    ("profile_preloaded_before_learning", learn::profile_preloaded_unconfigured),
    ("profile_keeps_flood_loads", learn::profile_keeps_flood_loads),
    ("report_table", learn::report_table),
    ("report_markdown", learn::report_markdown),
    ("report_json", learn::report_json),
    ("report_by_unit", learn::report_by_unit),
    ("diff_exit_codes", learn::diff_exit_codes),
    ("diff_explained_by_profile", learn::diff_explained_by_profile),
    ("second_learner_refused", learn::second_learner_refused),
    ("killed_learner_keeps_checkpoint", learn::killed_learner_checkpoint),
    ("corrupt_profile_refused_and_kept", learn::corrupt_profile_refused_and_kept),
    // a flood must not hide what matters
    ("flood_autoload_attributed", flood::flood_autoload_attributed),
    ("flood_explicit_attributed", flood::flood_explicit_attributed),
    ("flood_overlaps_real_loads", flood::flood_overlaps_real_loads),
    ("flood_failed_loads_folded", flood::flood_failed_loads_folded),
    ("failed_loads_in_turn_accounted", flood::failed_loads_in_turn_accounted),
    ("fold_evictions_counted", flood::fold_evictions_counted),
    ("flood_requests_folded", flood::flood_requests_folded),
    ("trace_summary_adds_up", flood::trace_summary_adds_up),
    ("no_lost_loads", flood::no_lost_loads),
    ("skipped_results_accounted", flood::skipped_results_accounted),
    ("every_new_module_has_loaded_record", flood::every_new_module_has_loaded_record),
    ("distinct_flood_every_request_counted", flood::distinct_flood_every_request_counted),
    ("distinct_flood_real_loads_keep_their_cause", flood::distinct_flood_real_loads_keep_their_cause),
    ("profile_session_drops_by_kind", learn::profile_session_drops_by_kind),
    ("untrusted_flood_folded_in_profile", untrusted_flood::folded_in_profile),
    ("untrusted_flood_blocks_nothing", untrusted_flood::blocks_nothing),
    // who asked: the kernel's facts about the requester
    ("who_user_unit_requester", who::user_unit_requester),
    ("who_container_unit_requester", who::container_unit_requester),
    ("kthread_joined_to_binder", kthread::joined_to_binder),
    ("kthread_profile_names_binder", kthread::profile_names_binder),
    ("kthread_needs_review_not_listed", kthread::needs_review_not_listed),
    // trust: generate, check and allow on the learned profile
    ("trust_generate_lists_root_needs_only", trust::generate_lists_root_needs_only),
    ("trust_no_drop_in_for_user_or_container_unit", trust::no_drop_in_for_user_or_container_unit),
    ("trust_check_puts_untrusted_under_review", trust::check_puts_untrusted_under_review),
    ("trust_site_disabled_request_warns_not_blocks", trust::site_disabled_request_warns_not_blocks),
    ("trust_allow_lists_the_accepted_module", trust::allow_lists_the_accepted_module),
    // loads from before learning (issue 21, part 1)
    ("preload_user_autoload_found_cause_unknown", preload::user_autoload_found_cause_unknown),
    ("preload_cause_unknown_held_for_review", preload::cause_unknown_held_for_review),
    ("preload_configured_module_stays_trusted", preload::configured_module_stays_trusted),
    ("preload_relearning_keeps_it_under_review", preload::relearning_keeps_it_under_review),
    // containers by namespace, not by name (checks/netns.rs)
    ("netns_trace_new_namespaces_are_a_container", netns::trace_new_namespaces_are_a_container),
    ("netns_trace_inits_namespaces_stay_the_system_unit", netns::trace_inits_namespaces_stay_the_system_unit),
    ("netns_profile_scopes_by_namespace", netns::profile_scopes_by_namespace),
    ("netns_container_needs_review_and_gets_nothing", netns::container_needs_review_and_gets_nothing),
    // modtrace guard (tests/guest/guard.sh)
    ("guard_status_before_start", guard::status_before_start),
    ("guard_complain_lets_outside_load_and_reports_it", guard::complain_lets_outside_load_and_reports_it),
    ("guard_enforce_loads_profile_modules_on_demand", guard::enforce_loads_profile_modules_on_demand),
    ("guard_enforce_refuses_explicit_load_outside", guard::enforce_refuses_explicit_load_outside),
    ("guard_enforce_refuses_autoload_outside", guard::enforce_refuses_autoload_outside),
    ("guard_enforce_refuses_renamed_module_file", guard::enforce_refuses_renamed_module_file),
    ("guard_enforce_refuses_init_module_outside", guard::enforce_refuses_init_module_outside),
    ("guard_decoy_init_module_named_as_the_kernel_names_it", guard::decoy_init_module_named_as_the_kernel_names_it),
    ("guard_status_reports_mode_profile_and_counts", guard::status_reports_mode_profile_and_counts),
    ("guard_stop_restores_loading", guard::stop_restores_loading),
    ("guard_log_carries_the_refusals", guard::log_carries_the_refusals),
    ("guard_watchers_follow_the_guard", guard::watchers_follow_the_guard),
    ("guard_cost_of_a_decision_measured", guard::cost_of_a_decision_measured),
    ("guard_status_says_enforcing_when_attached", liveness::status_says_enforcing_when_attached),
    ("guard_detached_behind_the_back_is_reported", liveness::detached_behind_the_back_is_reported),
    ("guard_trace_counts_lost_decisions", liveness::trace_counts_lost_decisions),
    ("guard_log_counts_what_it_logged_and_lost", liveness::log_counts_what_it_logged_and_lost),
    // learning from early boot (tests/guest/early.sh)
    ("early_probes_pinned_and_taken_over", early::probes_pinned_and_taken_over),
    ("early_loads_learned_with_causes", early::loads_learned_with_causes),
    // the guard sealed until reboot (tests/guest/init's seal_scenario)
    ("seal_needs_enforce", seal::needs_enforce),
    ("seal_started_sealed", seal::started_sealed),
    ("seal_pins_are_roots_alone", seal::pins_are_roots_alone),
    ("seal_every_undo_refused", seal::every_undo_refused),
    ("seal_refresh_defers_to_next_boot", seal::refresh_defers_to_next_boot),
    ("seal_objects_refused_by_id", seal::objects_refused_by_id),
    ("seal_refusals_counted_in_status", seal::refusals_counted_in_status),
    ("seal_refusals_logged_with_who", seal::refusals_logged_with_who),
    ("seal_profile_modules_still_load", seal::profile_modules_still_load),
    ("seal_others_still_refused", seal::others_still_refused),
];

pub fn check_all(output: GuestOutput, compressed: bool) -> Vec<Check> {
    let lines = output.section("events").map(|s| s.lines.as_slice()).unwrap_or_default();
    let (records, bad_lines) = parse_jsonl(lines);
    check::run(CHECKS, &Facts { output, records, bad_lines, compressed })
}

/// A section of `--json` lines sent as a file (the guard's, the fold-eviction
/// tracer's), parsed as `parse_jsonl` does.
fn jsonl_section(f: &Facts, name: &str) -> Result<(Vec<Value>, Vec<String>), String> {
    let lines: Vec<String> = f.output.text(name)?.lines().map(String::from).collect();
    Ok(parse_jsonl(&lines))
}

/// A tracer's `--json` lines: the records, and the lines that are not one.
fn parse_jsonl<S: AsRef<str>>(lines: &[S]) -> (Vec<Value>, Vec<String>) {
    let mut records = Vec::new();
    let mut bad = Vec::new();
    for line in lines.iter().map(AsRef::as_ref).filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(line) {
            Ok(value) if value.is_object() => records.push(value),
            Ok(_) => bad.push(format!("not an object: {line}")),
            Err(err) => bad.push(format!("{err}: {line}")),
        }
    }
    (records, bad)
}

/// `modtrace: attached N programs in X ms`, if the tracer printed it.
pub fn attach_line(output: &GuestOutput) -> Option<&str> {
    let err = output.section("trace-err")?;
    err.lines.iter().map(String::as_str).find(|l| l.starts_with("modtrace: attached"))
}

// ---- the run itself ----

fn guest_steps_succeeded(f: &Facts) -> Result<(), String> {
    let marker = f.output.marker.as_ref().ok_or("the guest's done marker never arrived")?;
    let failed: Vec<&str> = f.output.steps.iter().filter(|s| !s.ok).map(|s| s.name.as_str()).collect();
    if marker.failed_steps != Some(0) || !failed.is_empty() {
        let count = marker.failed_steps.map_or("an unknown number of".into(), |n| n.to_string());
        return Err(format!("the guest reports {count} failed steps: {failed:?}"));
    }
    if f.output.steps.is_empty() {
        return Err("no step ran".into());
    }
    Ok(())
}

fn tracer_attached(f: &Facts) -> Result<(), String> {
    attach_line(&f.output).map(|_| ()).ok_or_else(|| {
        let err = f.output.section("trace-err").map(|s| s.lines.join("\n")).unwrap_or_default();
        format!("no `modtrace: attached` line on stderr; stderr was:\n{err}")
    })
}

/// Every kernel of the matrix is x86-64 with BTF and fexit: the tracer hands
/// the load calls over (the steps wait for it; loader/handover.rs).
fn load_calls_on_fexit(f: &Facts) -> Result<(), String> {
    let err = f.output.section("trace-err").map(|s| s.lines.as_slice()).unwrap_or_default();
    let line = err.iter().find(|l| l.starts_with("modtrace: note: load calls "));
    match line {
        Some(l) if l.contains("handed over to fexit") && l.contains("exit tracepoints detached") => Ok(()),
        Some(l) => Err(format!("the load calls were not handed over to fexit: {l}")),
        None => Err("no `modtrace: note: load calls` line on the tracer's stderr".into()),
    }
}

fn tracer_exited_cleanly(f: &Facts) -> Result<(), String> {
    let status = f.output.marker.as_ref().and_then(|m| m.tracer_status.as_deref());
    match status {
        Some("0") => Ok(()),
        other => Err(format!("modtrace's exit status after SIGINT was {other:?}, expected 0")),
    }
}

fn events_parse_as_json(f: &Facts) -> Result<(), String> {
    let section = f.output.section("events").ok_or("the events file never reached the host")?;
    if !section.complete {
        return Err("the events file was cut short (no end marker)".into());
    }
    if !f.bad_lines.is_empty() {
        return Err(format!("{} bad lines, first: {}", f.bad_lines.len(), f.bad_lines[0]));
    }
    if f.records.is_empty() {
        return Err("no events at all".into());
    }
    let kinds = ["request", "load", "loaded", "unloaded"];
    match f.records.iter().find(|r| !kinds.contains(&text(r, "/kind"))) {
        Some(r) => Err(evidence("unknown kind", r)),
        None => Ok(()),
    }
}

/// modtrace's closing summary says `lost N (...)`; N must be 0 but for the load
/// results the kernel skipped (skipped_results_accounted holds those to what is
/// missing), and no record may have been undecodable. The flood runs while
/// tracing: the kernel folds a process's repeated failures and requests, so no
/// ring may overflow even then (no_lost_loads keeps the loads ring's own
/// promise in sight).
fn no_lost_events(f: &Facts) -> Result<(), String> {
    let section = f.output.section("trace-err").ok_or("modtrace's stderr never reached the host")?;
    let mut counts = Vec::new();
    for line in &section.lines {
        if line.contains("could not be decoded") {
            return Err(format!("modtrace could not decode records: {line}"));
        }
        // The closing summary: its total less the skipped results, and its lost loads and requests.
        let lost = match flood::parse_summary(line) {
            Some(s) => vec![s.lost.saturating_sub(s.skipped_results), s.blocking],
            None => lost_counts(line),
        };
        counts.extend(lost.into_iter().map(|n| (n, line)));
    }
    match counts.iter().find(|(n, _)| *n > 0) {
        Some((_, line)) => Err(format!("modtrace reports lost events: {line}")),
        None if counts.is_empty() => Err("modtrace printed no `lost N` summary".into()),
        None => Ok(()),
    }
}

/// The numbers that follow the word `lost` in `line`.
fn lost_counts(line: &str) -> Vec<u64> {
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0].eq_ignore_ascii_case("lost"))
        .filter_map(|w| w[1].trim_end_matches([',', ';', ')']).parse().ok())
        .collect()
}

// ---- explicit loads ----

fn explicit_module_loaded(f: &Facts) -> Result<(), String> {
    let r = loaded(f, sc::EXPLICIT_MODULE)?;
    expect_explicit_by_modprobe_from_shell(r)
}

/// fat is loaded for vfat. modtrace can only name vfat in needed_by when it read
/// modprobe's command line from /proc before modprobe exited (a race it may lose),
/// so needed_by is checked when the loader's cmdline is there.
fn explicit_dependency_loaded(f: &Facts) -> Result<(), String> {
    let r = loaded(f, sc::EXPLICIT_DEPENDENCY)?;
    expect_explicit_by_modprobe_from_shell(r)?;
    // modprobe is often gone before userspace looks: the kernel's argv copy
    // must still name what it was asked for, so fat knows vfat needed it.
    expect_contains(r, "/cause/loader/cmdline", &[sc::EXPLICIT_MODULE])?;
    expect_contains(r, "/cause/needed_by", &[sc::EXPLICIT_MODULE])
}

fn expect_explicit_by_modprobe_from_shell(r: &Value) -> Result<(), String> {
    expect_kmod(r)?;
    expect(r, "/cause/kind", "explicit")?;
    expect(r, "/cause/loader/comm", comm::MODPROBE)?;
    expect(r, "/cause/invoked_by/comm", comm::SHELL)?;
    expect(r, "/process/comm", comm::MODPROBE)
}

/// modprobe's successful call for vfat and fat: finit_module for plain .ko files;
/// bookworm's kmod (30) decompresses .ko.xz itself and calls init_module.
fn explicit_load_syscalls(f: &Facts) -> Result<(), String> {
    let syscall = if f.compressed { "init_module" } else { "finit_module" };
    for module in [sc::EXPLICIT_DEPENDENCY, sc::EXPLICIT_MODULE] {
        let r = successful_load(f, module)?;
        expect(r, "/syscall", syscall)?;
        expect(r, "/process/comm", comm::MODPROBE)?;
    }
    Ok(())
}

/// The second init_module of an already loaded module fails with EEXIST, and
/// the failed call is reported.
fn failed_init_module(f: &Facts) -> Result<(), String> {
    let r = find(f, "failed init_module `load` record", |r| {
        text(r, "/kind") == "load"
            && text(r, "/syscall") == "init_module"
            && r.pointer("/ret").and_then(Value::as_i64).is_some_and(|ret| ret < 0)
    })?;
    expect(r, "/process/comm", comm::GUEST_TOOL)?;
    expect(r, "/error", "EEXIST")
}

/// loop linked, then its init refused max_part: the call's record names loop
/// and EINVAL, although the same process had just failed a load (its
/// failures were being folded).
fn init_failure_after_link(f: &Facts) -> Result<(), String> {
    let failed_load = |r: &Value, syscall: &str| {
        text(r, "/kind") == "load" && text(r, "/syscall") == syscall && text(r, "/error") == "EINVAL"
    };
    let r = find(f, &format!("failed init_module `load` record of {}", sc::INIT_FAILS_MODULE), |r| {
        failed_load(r, "init_module") && text(r, "/module") == sc::INIT_FAILS_MODULE
    })?;
    expect(r, "/process/comm", comm::GUEST_TOOL)?;
    let pid = r.pointer("/process/pid");
    find(f, "the same process's failed finit_module of /dev/null", |r| {
        failed_load(r, "finit_module") && r.pointer("/process/pid") == pid
    })?;
    Ok(())
}

fn insmod_finit_module(f: &Facts) -> Result<(), String> {
    let r = successful_load(f, sc::INSMOD_MODULE)?;
    expect(r, "/syscall", "finit_module")?;
    expect(r, "/process/comm", comm::INSMOD)?;
    let r = loaded(f, sc::INSMOD_MODULE)?;
    expect(r, "/cause/kind", "explicit")?;
    expect(r, "/cause/loader/comm", comm::INSMOD)
}

fn init_module_syscall(f: &Facts) -> Result<(), String> {
    let r = successful_load(f, sc::INIT_MODULE_MODULE)?;
    expect(r, "/syscall", "init_module")?;
    expect(r, "/process/comm", comm::GUEST_TOOL)?;
    let r = loaded(f, sc::INIT_MODULE_MODULE)?;
    expect(r, "/cause/kind", "explicit")?;
    expect(r, "/cause/loader/comm", comm::GUEST_TOOL)
}

fn unit_explicit_modprobe(f: &Facts) -> Result<(), String> {
    let r = loaded(f, sc::UNIT_MODULE)?;
    expect(r, "/cause/kind", "explicit")?;
    expect(r, "/process/comm", comm::MODPROBE)?;
    expect(r, "/process/unit", sc::UNIT)?;
    expect_suffix(r, "/process/cgroup", sc::UNIT_CGROUP)?;
    expect(r, "/cause/loader/unit", sc::UNIT)
}

fn explicit_module_unloaded(f: &Facts) -> Result<(), String> {
    let r = find(f, "`unloaded` record for vfat", |r| {
        text(r, "/kind") == "unloaded" && text(r, "/module") == sc::EXPLICIT_MODULE
    })?;
    expect_kmod(r)?;
    expect(r, "/process/comm", comm::RMMOD)
}

/// The acting process is kmod's tool (not a busybox applet of the same name),
/// as far as modtrace could still read its executable.
fn expect_kmod(r: &Value) -> Result<(), String> {
    match r.pointer("/process/exe") {
        Some(Value::String(exe)) if !exe.ends_with("/kmod") => {
            Err(evidence(&format!("the process is {exe}, expected kmod"), r))
        }
        _ => Ok(()),
    }
}

// ---- automatic loads (request_module) ----

fn binfmt_request(f: &Facts) -> Result<(), String> {
    let r = request(f, sc::BINFMT_ALIAS)?;
    expect(r, "/process/comm", comm::MOUNT)?;
    expect_contains(r, "/resolves_to", &[sc::BINFMT_MODULE])
}

fn binfmt_loaded(f: &Facts) -> Result<(), String> {
    let r = loaded(f, sc::BINFMT_MODULE)?;
    expect_requested(r, sc::BINFMT_ALIAS, comm::MOUNT)?;
    expect_empty(r, "/cause/needed_by")
}

/// A load by the kernel's modprobe helper for `alias`, requested by `requester`.
fn expect_requested(r: &Value, alias: &str, requester: &str) -> Result<(), String> {
    expect(r, "/cause/kind", "request")?;
    expect(r, "/cause/alias", alias)?;
    expect(r, "/cause/requester/comm", requester)?;
    expect(r, "/process/comm", comm::MODPROBE)
}

/// Requested from inside example.service by the guest tool's socket(AF_PPPOX).
fn expect_requested_by_unit(r: &Value) -> Result<(), String> {
    expect_requested(r, sc::CHAIN_ALIAS, comm::GUEST_TOOL)?;
    // The kernel's helper is `modprobe -q -- ALIAS`: its argv is read in the kernel.
    expect_contains(r, "/process/cmdline", &[sc::CHAIN_ALIAS])?;
    expect(r, "/cause/requester/unit", sc::UNIT)?;
    expect_suffix(r, "/cause/requester/cgroup", sc::UNIT_CGROUP)
}

fn chain_top_loaded(f: &Facts) -> Result<(), String> {
    let [top, _, _] = sc::CHAIN;
    let r = loaded(f, top)?;
    expect_requested_by_unit(r)?;
    expect_empty(r, "/cause/needed_by")
}

fn chain_middle_loaded(f: &Facts) -> Result<(), String> {
    let [top, middle, _] = sc::CHAIN;
    let r = loaded(f, middle)?;
    expect_requested_by_unit(r)?;
    expect_contains(r, "/cause/needed_by", &[top])
}

fn chain_bottom_loaded(f: &Facts) -> Result<(), String> {
    let [top, middle, bottom] = sc::CHAIN;
    let r = loaded(f, bottom)?;
    expect_requested_by_unit(r)?;
    expect_contains(r, "/cause/needed_by", &[middle, top])
}

fn dummy_loaded(f: &Facts) -> Result<(), String> {
    let r = loaded(f, sc::DUMMY_MODULE)?;
    expect_requested(r, sc::DUMMY_ALIAS, comm::IP)
}

fn missing_alias_request(f: &Facts) -> Result<(), String> {
    let r = request(f, sc::MISSING_ALIAS)?;
    expect(r, "/process/comm", comm::GUEST_TOOL)?;
    expect_empty(r, "/resolves_to")?;
    // The kernel-thread step insmods af_alg later (checks/kthread.rs):
    // only a module linked by no explicit load can be for the request.
    let satisfied = f.records.iter().find(|r| match text(r, "/kind") {
        "load" => text(r, "/cause/alias") == sc::MISSING_ALIAS,
        "loaded" => {
            text(r, "/cause/alias") == sc::MISSING_ALIAS
                || (text(r, "/module") == sc::MISSING_MODULE && text(r, "/cause/kind") != "explicit")
        }
        _ => false,
    });
    match satisfied {
        Some(r) => Err(evidence("a module was loaded for the request that must fail", r)),
        None => Ok(()),
    }
}

/// The socket() requests (net-pf-24 and net-pf-38) come from __sock_create:
/// named by the kernel at the request as `symbol+0xoff`, the function's size
/// dropped, not a bare address.
fn socket_request_call_site(f: &Facts) -> Result<(), String> {
    for alias in [sc::CHAIN_ALIAS, sc::MISSING_ALIAS] {
        let r = request(f, alias)?;
        let site = text(r, "/call_site");
        let offset = site.strip_prefix(SOCKET_CALL_SITE).and_then(|s| s.strip_prefix("+0x"));
        if !offset.is_some_and(|o| !o.is_empty() && o.chars().all(|c| c.is_ascii_hexdigit())) {
            return Err(evidence(&format!("call_site is {site:?}, expected {SOCKET_CALL_SITE}+0xOFFSET"), r));
        }
    }
    Ok(())
}

/// Where socket() asks for a protocol family's module (net/socket.c).
const SOCKET_CALL_SITE: &str = "__sock_create";

// ---- finding records ----

fn find<'a>(f: &'a Facts, what: &str, pred: impl Fn(&Value) -> bool) -> Result<&'a Value, String> {
    f.records.iter().find(|r| pred(r)).ok_or_else(|| format!("no {what} among {} records", f.records.len()))
}

fn loaded<'a>(f: &'a Facts, module: &str) -> Result<&'a Value, String> {
    find(f, &format!("`loaded` record for {module}"), |r| text(r, "/kind") == "loaded" && text(r, "/module") == module)
}

fn request<'a>(f: &'a Facts, alias: &str) -> Result<&'a Value, String> {
    find(f, &format!("`request` record for {alias}"), |r| text(r, "/kind") == "request" && text(r, "/alias") == alias)
}

fn successful_load<'a>(f: &'a Facts, module: &str) -> Result<&'a Value, String> {
    find(f, &format!("`load` record with ret 0 for {module}"), |r| {
        text(r, "/kind") == "load" && text(r, "/module") == module && r.pointer("/ret") == Some(&Value::from(0))
    })
}

// ---- field expectations ----

/// The string at `pointer`, or "" when absent or not a string.
fn text<'a>(r: &'a Value, pointer: &str) -> &'a str {
    r.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn evidence(message: &str, r: &Value) -> String {
    format!("{message}\n      record: {r}")
}

fn expect(r: &Value, pointer: &str, expected: &str) -> Result<(), String> {
    match r.pointer(pointer) {
        Some(Value::String(s)) if s == expected => Ok(()),
        found => Err(evidence(&format!("{pointer} is {found:?}, expected {expected:?}"), r)),
    }
}

fn expect_suffix(r: &Value, pointer: &str, suffix: &str) -> Result<(), String> {
    match r.pointer(pointer) {
        Some(Value::String(s)) if s.ends_with(suffix) => Ok(()),
        found => Err(evidence(&format!("{pointer} is {found:?}, expected …{suffix}"), r)),
    }
}

/// The list at `pointer` contains at least one of `any_of`.
fn expect_contains(r: &Value, pointer: &str, any_of: &[&str]) -> Result<(), String> {
    let list = r.pointer(pointer).and_then(Value::as_array);
    let found = list.is_some_and(|l| l.iter().any(|v| any_of.contains(&v.as_str().unwrap_or(""))));
    if found {
        Ok(())
    } else {
        Err(evidence(&format!("{pointer} is {list:?}, expected it to contain one of {any_of:?}"), r))
    }
}

fn expect_empty(r: &Value, pointer: &str) -> Result<(), String> {
    match r.pointer(pointer).and_then(Value::as_array) {
        Some(list) if list.is_empty() => Ok(()),
        found => Err(evidence(&format!("{pointer} is {found:?}, expected an empty list"), r)),
    }
}

mod early;
mod flood;
mod guard;
mod kthread;
mod learn;
mod liveness;
mod preload;
mod netns;
mod seal;
mod trust;
mod untrusted_flood;
mod who;

#[cfg(test)]
mod tests;
