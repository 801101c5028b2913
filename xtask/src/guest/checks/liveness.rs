//! Checks of the guard's liveness and losses (tests/guest/guard.sh): status
//! says complaining or enforcing once its programs are attached; bpftool
//! cannot detach its links, but a link pin removed behind modtrace's back
//! detaches that program, which status names (exit 4) and which the kernel
//! shows (what it refused loads); a trace stopped while the guard refuses a
//! flood counts exactly what its ring lost, as the guard's counter says, and
//! the logger says what it logged and lost.

use serde_json::Value;

use super::{evidence, Facts};

/// The guard's loss counter slots (modtrace_common::guard::lost).
const LOST_LOG: u64 = 0;
const LOST_TRACE: u64 = 1;

fn exit(f: &Facts, name: &str, want: i32) -> Result<(), String> {
    let code = f.output.exit_code(name)?;
    if code == want {
        return Ok(());
    }
    let out = f.output.text(&format!("{name}.stdout")).unwrap_or_default();
    let err = f.output.text(&format!("{name}.stderr")).unwrap_or_default();
    Err(format!("{name}: exit {code}, expected {want}\n      stdout: {out}\n      stderr: {err}"))
}

fn starts(f: &Facts, name: &str, prefix: &str) -> Result<(), String> {
    let out = f.output.text(name)?;
    out.starts_with(prefix).then_some(()).ok_or_else(|| format!("{name} does not start with {prefix:?}:\n{out}"))
}

fn json(f: &Facts, name: &str) -> Result<Value, String> {
    let text = f.output.text(name)?;
    serde_json::from_str(text.trim()).map_err(|e| format!("{name}: {e}: {text}"))
}

/// Complaining, then enforcing: each time every program attached and the BPF
/// LSM active, in words and in JSON.
pub fn status_says_enforcing_when_attached(f: &Facts) -> Result<(), String> {
    exit(f, "guard-status-complain", 0)?;
    starts(f, "guard-status-complain.stdout", "modtrace: guard complaining: mode complain")?;
    exit(f, "guard-status", 0)?;
    starts(f, "guard-status.stdout", "modtrace: guard enforcing: mode enforce")?;
    let v = json(f, "guard-status-json.stdout")?;
    let want = [("/active", true), ("/attached", true), ("/lsm_active", true)];
    if want.iter().any(|(p, b)| v.pointer(p) != Some(&Value::Bool(*b))) || v["detached"] != serde_json::json!([]) {
        return Err(evidence("status --json is not active, attached, with the BPF LSM active, nothing detached", &v));
    }
    Ok(())
}

/// bpftool's detach is refused (a tracing link has none) and changes
/// nothing; the link pin removed detaches guard_read_file, which status
/// names with exit 4, and the renamed copy it refused now loads.
pub fn detached_behind_the_back_is_reported(f: &Facts) -> Result<(), String> {
    if f.output.exit_code("guard-detach-bpftool")? == 0 {
        return Err("bpftool link detach of the guard's LSM link succeeded: status must then say detached".into());
    }
    exit(f, "guard-status-after-bpftool", 0)?;
    starts(f, "guard-status-after-bpftool.stdout", "modtrace: guard enforcing:")?;
    exit(f, "guard-status-detached", 4)?;
    starts(f, "guard-status-detached.stdout", "modtrace: guard detached (guard_read_file not attached): mode enforce")?;
    let err = f.output.text("guard-status-detached.stderr")?;
    if !err.contains("detached behind modtrace's back") {
        return Err(format!("guard status does not say it was detached behind modtrace's back:\n{err}"));
    }
    let v = json(f, "guard-status-detached-json.stdout")?;
    if v["detached"] != serde_json::json!(["guard_read_file"]) || v["attached"] != false || v["active"] != false {
        return Err(evidence("status --json does not name guard_read_file alone as detached", &v));
    }
    exit(f, "guard-detached-renamed-loaded", 0)
}

/// Sum over CPUs of `slot` in `bpftool -j map dump` of a per-CPU array,
/// with BTF (`"values": [{"cpu": 0, "value": 5}]`) or without (`"value":
/// ["0x05", "0x00", ...]`, little-endian bytes).
pub fn per_cpu_sum(dump: &Value, slot: u64) -> Option<u64> {
    let key = |e: &Value| match &e["key"] {
        Value::Array(bytes) => bytes_le(bytes),
        k => k.as_u64(),
    };
    let entry = dump.as_array()?.iter().find(|e| key(e) == Some(slot))?;
    let values = entry["values"].as_array()?;
    values.iter().map(|v| v["value"].as_u64().or_else(|| bytes_le(v["value"].as_array()?))).sum()
}

fn bytes_le(bytes: &[Value]) -> Option<u64> {
    let mut n = 0u64;
    for (i, b) in bytes.iter().enumerate().take(8) {
        n |= u64::from_str_radix(b.as_str()?.trim_start_matches("0x"), 16).ok()? << (8 * i);
    }
    Some(n)
}

/// The number after `key` in `line`.
fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
}

/// The trace, stopped while the guard refused a flood of distinct requests,
/// says it lost decisions, exactly as many as the guard's counter for its
/// ring; what it traced of the flood and what it lost cover every request.
pub fn trace_counts_lost_decisions(f: &Facts) -> Result<(), String> {
    exit(f, "guard-lose-spam", 0)?;
    exit(f, "guard-lost-counters", 0)?;
    let dump = json(f, "guard-lost-counters.stdout")?;
    let counted = per_cpu_sum(&dump, LOST_TRACE).ok_or_else(|| format!("no trace slot in the counters: {dump}"))?;
    let err = f.output.text("guard-trace.stderr")?;
    let line = err.lines().find(|l| l.contains("guard decisions lost: ")).ok_or("the trace's summary has no guard losses")?;
    let said = number_after(line, "guard decisions lost: ").ok_or_else(|| format!("unreadable: {line}"))?;
    if said == 0 || said != counted || number_after(line, "(undecodable ") != Some(0) {
        return Err(format!("the trace says {line:?}; the guard counted {counted} lost from its ring"));
    }
    let spam = f.output.text("guard-lose-spam.stdout")?;
    let attempts = number_after(&spam, "attempts=").ok_or_else(|| format!("no attempts: {spam}"))?;
    let (records, _) = super::jsonl_section(f, "guard-trace.jsonl")?;
    let refused = |r: &&Value| super::text(r, "/kind") == "guard_denied" && super::text(r, "/alias").starts_with("fs-mtlost");
    let traced = records.iter().filter(refused).count() as u64;
    if traced + said < attempts {
        return Err(format!("{attempts} requests refused, {traced} traced and {said} counted lost"));
    }
    Ok(())
}

/// The logger's closing line: every record it wrote, and at least what the
/// guard's last ring counted lost for it (an earlier guard's count included).
pub fn log_counts_what_it_logged_and_lost(f: &Facts) -> Result<(), String> {
    let err = f.output.text("guard-log.stderr")?;
    let line = err.lines().find(|l| l.starts_with("modtrace: guard log: ")).ok_or("guard log said nothing at its end")?;
    let (records, _) = super::jsonl_section(f, "guard-log.jsonl")?;
    let logged = number_after(line, "guard log: ");
    let lost = number_after(line, "; lost ");
    let counted = per_cpu_sum(&json(f, "guard-lost-counters.stdout")?, LOST_LOG);
    match (logged, lost, counted) {
        (Some(n), Some(l), Some(c)) if n == records.len() as u64 && l >= c && line.ends_with("undecodable 0") => Ok(()),
        _ => Err(format!("guard log says {line:?}: {} records logged, {counted:?} counted lost", records.len())),
    }
}
