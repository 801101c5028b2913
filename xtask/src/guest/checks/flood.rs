//! Checks that a flood of failed loads and of requests (one process each) is
//! folded in the kernel and hides none of the loads that happened meanwhile,
//! and the cross-checks of the tracer's own accounting.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{evidence, expect_explicit_by_modprobe_from_shell, expect_requested, find, loaded, text, Facts};
use crate::guest::scenario::{self as sc, captured as cap, comm, section};

/// modtrace trace's closing line on stderr: `modtrace: N events (HOW); lost L
/// (requests a, loads b, failures c, unreadable aliases d, unreadable module
/// names e, results without their call g, requests evicted h, untrusted
/// requests evicted v, undecodable u,
/// skipped requests i, skipped loads j, skipped results k, repeats r); lost
/// loads and requests: B; repeats folded and not yet reported: F`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TraceSummary {
    pub events: u64,
    pub lost: u64,
    pub requests: u64,
    pub loads: u64,
    pub failures: u64,
    pub unreadable_aliases: u64,
    pub unreadable_module_names: u64,
    pub results_without_call: u64,
    pub evicted_requests: u64,
    /// Untrusted processes' requests evicted: never blocking.
    pub evicted_untrusted_requests: u64,
    pub undecodable: u64,
    /// Runs of the probes the kernel skipped.
    pub skipped_requests: u64,
    pub skipped_loads: u64,
    pub skipped_results: u64,
    /// Repeats whose count was lost (a refused record's, an evicted fold entry's).
    pub lost_repeats: u64,
    /// What the tracer says may hide a module.
    pub blocking: u64,
    pub folded_pending: u64,
}

impl TraceSummary {
    /// Every count of the breakdown.
    fn parts(&self) -> [u64; 13] {
        [
            self.requests,
            self.loads,
            self.failures,
            self.unreadable_aliases,
            self.unreadable_module_names,
            self.results_without_call,
            self.evicted_requests,
            self.evicted_untrusted_requests,
            self.undecodable,
            self.skipped_requests,
            self.skipped_loads,
            self.skipped_results,
            self.lost_repeats,
        ]
    }

    /// Lost requests, however they were lost.
    fn lost_requests(&self) -> u64 {
        self.requests + self.unreadable_aliases + self.evicted_requests + self.skipped_requests
    }

    /// Losses that are no module's: failures and results.
    fn non_blocking(&self) -> u64 {
        self.failures
            + self.results_without_call
            + self.skipped_results
            + self.lost_repeats
            + self.evicted_untrusted_requests
    }
}

/// The number right after `key` in `line`.
fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

pub fn parse_summary(line: &str) -> Option<TraceSummary> {
    let events = line.strip_prefix("modtrace: ")?.split_once(" events ")?.0.parse().ok()?;
    Some(TraceSummary {
        events,
        lost: number_after(line, "; lost ")?,
        requests: number_after(line, "(requests ")?,
        loads: number_after(line, ", loads ")?,
        failures: number_after(line, ", failures ")?,
        unreadable_aliases: number_after(line, ", unreadable aliases ")?,
        unreadable_module_names: number_after(line, ", unreadable module names ")?,
        results_without_call: number_after(line, ", results without their call ")?,
        evicted_requests: number_after(line, ", requests evicted ")?,
        evicted_untrusted_requests: number_after(line, ", untrusted requests evicted ")?,
        undecodable: number_after(line, ", undecodable ")?,
        skipped_requests: number_after(line, ", skipped requests ")?,
        skipped_loads: number_after(line, ", skipped loads ")?,
        skipped_results: number_after(line, ", skipped results ")?,
        lost_repeats: number_after(line, ", repeats ")?,
        blocking: number_after(line, "; lost loads and requests: ")?,
        folded_pending: number_after(line, "not yet reported: ")?,
    })
}

/// The summary line of trace.err, parsed.
pub fn summary(f: &Facts) -> Result<TraceSummary, String> {
    summary_in(&f.output.text("trace-err")?)
}

/// The summary line of a tracer's stderr, parsed.
fn summary_in(err: &str) -> Result<TraceSummary, String> {
    err.lines()
        .find(|l| l.contains("; lost "))
        .ok_or_else(|| format!("modtrace printed no summary line; stderr:\n{err}"))
        .and_then(|l| parse_summary(l).ok_or_else(|| format!("cannot read the summary line: {l}")))
}

/// The summary adds up: lost is the sum of every kind of loss, the blocking
/// ones are the lost requests and loads, and every record it counted is a line
/// of events.jsonl.
pub fn trace_summary_adds_up(f: &Facts) -> Result<(), String> {
    let s = summary(f)?;
    if s.lost != s.parts().iter().sum::<u64>() {
        return Err(format!("lost {} is not the sum of its kinds: {s:?}", s.lost));
    }
    if s.blocking > s.lost - s.non_blocking() {
        return Err(format!("more lost loads and requests than losses other than failures: {s:?}"));
    }
    let lines = f.records.len() + f.bad_lines.len();
    if s.events != lines as u64 {
        return Err(format!("the summary counts {} events, events.jsonl has {lines} lines", s.events));
    }
    Ok(())
}

/// Loads must never be lost, whatever floods the other rings.
pub fn no_lost_loads(f: &Facts) -> Result<(), String> {
    let s = summary(f)?;
    match s.loads {
        0 => Ok(()),
        n => Err(format!("the loads ring lost {n} events: {s:?}")),
    }
}

/// The load results the kernel said it skipped cover every one that is missing:
/// a module a process linked with no `load` record from that process, and a
/// failed load of the spammer's that no record or fold holds. A preemptible
/// kernel (7.x) runs the load calls' exit probe preemptibly, and skips it on a
/// CPU where another task was preempted inside it.
pub fn skipped_results_accounted(f: &Facts) -> Result<(), String> {
    let s = summary(f)?;
    let calls: BTreeSet<(u64, &str)> =
        f.records.iter().filter(|r| text(r, "/kind") == "load").map(|r| (pid(r), text(r, "/module"))).collect();
    let without_call: Vec<&str> = f
        .records
        .iter()
        .filter(|r| text(r, "/kind") == "loaded" && !calls.contains(&(pid(r), text(r, "/module"))))
        .map(|r| text(r, "/module"))
        .collect();
    let spam = spam(f, cap::SPAM_FAILED_LOADS)?;
    let sent = carried(&spam_records(f, &spam, "load"));
    let unseen = spam.attempts.saturating_sub(sent + s.folded_pending);
    let missing = without_call.len() as u64 + unseen;
    if missing > s.skipped_results {
        return Err(format!(
            "{missing} load results are missing, the kernel skipped {}: modules linked with no call record \
             {without_call:?}, {unseen} of the spammer's failed loads in no record",
            s.skipped_results
        ));
    }
    Ok(())
}

fn pid(r: &Value) -> u64 {
    r.pointer("/process/pid").and_then(Value::as_u64).unwrap_or(0)
}

/// Every module that is loaded at the end and was not when tracing started has
/// a `loaded` record.
pub fn every_new_module_has_loaded_record(f: &Facts) -> Result<(), String> {
    let start = module_names(&f.output.text(section::MODULES_AT_START)?);
    let end = module_names(&f.output.text("lsmod")?);
    if end.is_empty() {
        return Err("lsmod lists no module".into());
    }
    let recorded: BTreeSet<&str> =
        f.records.iter().filter(|r| text(r, "/kind") == "loaded").map(|r| text(r, "/module")).collect();
    let missing: Vec<&String> = end.difference(&start).filter(|m| !recorded.contains(m.as_str())).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("loaded while tracing but no `loaded` record: {missing:?}"))
    }
}

/// First words of /proc/modules or lsmod lines, without lsmod's header.
fn module_names(text: &str) -> BTreeSet<String> {
    text.lines().filter_map(|l| l.split_whitespace().next()).filter(|w| *w != "Module").map(String::from).collect()
}

// ---- the flood ----

/// `NAME: pid=P attempts=N failed=F seconds=S`, as the guest tool prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spam {
    pub pid: u64,
    pub attempts: u64,
    pub failed: u64,
}

pub fn parse_spam(text: &str) -> Option<Spam> {
    let line = text.lines().find(|l| l.contains("pid="))?;
    let value = |key: &str| number_after(line, &format!("{key}="));
    Some(Spam { pid: value("pid")?, attempts: value("attempts")?, failed: value("failed")? })
}

fn spam(f: &Facts, name: &str) -> Result<Spam, String> {
    let out = f.output.text(&format!("{name}.stdout"))?;
    match f.output.exit_code(name)? {
        0 => parse_spam(&out).ok_or_else(|| format!("cannot read {name}'s counts: {out}")),
        s => Err(format!("{name} exited {s}: {out}")),
    }
}

/// The first record whose load call did not fail.
fn first_success<'a>(records: &[&'a Value]) -> Option<&'a Value> {
    records.iter().copied().find(|r| r.pointer("/ret").and_then(Value::as_i64).unwrap_or(0) >= 0)
}

fn repeats(r: &Value) -> u64 {
    r.pointer("/repeats").and_then(Value::as_u64).unwrap_or(0)
}

/// The attempts `records` stand for: each record, and the repeats it carries.
fn carried(records: &[&Value]) -> u64 {
    records.iter().map(|r| 1 + repeats(r)).sum()
}

fn ts(r: &Value) -> u64 {
    r.pointer("/ts_ns").and_then(Value::as_u64).unwrap_or(0)
}

/// The spammer's records of `kind` (and `alias`, for requests).
fn spam_records<'a>(f: &'a Facts, spam: &Spam, kind: &str) -> Vec<&'a Value> {
    let pid = Value::from(spam.pid);
    f.records.iter().filter(|r| text(r, "/kind") == kind && r.pointer("/process/tgid") == Some(&pid)).collect()
}

/// At least this many failed loads must have been folded for the flood to count.
const MIN_FAILED_LOADS: u64 = 1000;

/// What the spammer did is accounted for: the records sent plus the repeats
/// they carry, plus what the kernel had folded and not yet sent when tracing
/// stopped, plus the runs the kernel said it skipped (`skipped` picks which of
/// them could be the spammer's), cover every attempt; and folding kept the
/// records few (about one a second), with repeats on them.
fn folded(
    f: &Facts,
    spam: &Spam,
    records: &[&Value],
    what: &str,
    skipped: fn(&TraceSummary) -> u64,
) -> Result<(), String> {
    if records.is_empty() {
        return Err(format!("no {what} record from the spammer (pid {})", spam.pid));
    }
    let sent = carried(records);
    let s = summary(f)?;
    let (pending, skipped) = (s.folded_pending, skipped(&s));
    let each: Vec<String> = records.iter().map(|r| format!("{} at {} ns", repeats(r), ts(r))).collect();
    let figures = format!(
        "{} attempts, {} records carrying {} repeats ({}), {pending} folded and not yet reported, {skipped} runs \
         skipped by the kernel",
        spam.attempts,
        records.len(),
        sent - records.len() as u64,
        each.join(", ")
    );
    if spam.failed != spam.attempts {
        return Err(format!("some of the spammer's calls succeeded: {spam:?}"));
    }
    if !records.iter().any(|r| repeats(r) > 0) {
        return Err(format!("no {what} record carries repeats: {figures}"));
    }
    if sent > spam.attempts || spam.attempts > sent + pending + skipped {
        return Err(format!("the {what} records do not account for the attempts: {figures}"));
    }
    let most = u64::from(sc::FLOOD_SECS) + 2;
    if records.len() as u64 > most {
        return Err(format!("more than {most} {what} records: folding did not hold them back: {figures}"));
    }
    Ok(())
}

/// The failed-load flood: thousands of attempts, a few records, repeats folded.
pub fn flood_failed_loads_folded(f: &Facts) -> Result<(), String> {
    let spam = spam(f, cap::SPAM_FAILED_LOADS)?;
    if spam.attempts < MIN_FAILED_LOADS {
        return Err(format!("only {} failed loads: not a flood", spam.attempts));
    }
    let records = spam_records(f, &spam, "load");
    if let Some(r) = first_success(&records) {
        return Err(evidence("a spammer's load did not fail", r));
    }
    folded(f, &spam, &records, "failed load", |s| s.skipped_results)
}

/// The two processes that took turns on one CPU: each has its records, all
/// failures, few, with repeats on them, and never more than its own attempts
/// (one's repeats are never carried by the other's records). With the flood's
/// spammer, every failed load is accounted for.
pub fn failed_loads_in_turn_accounted(f: &Facts) -> Result<(), String> {
    let name = cap::ALTERNATE_FAILED_LOADS;
    let out = f.output.text(&format!("{name}.stdout"))?;
    if f.output.exit_code(name)? != 0 {
        return Err(format!("{name} failed: {out}"));
    }
    let pair: Vec<Spam> = out.lines().filter_map(parse_spam).collect();
    if pair.len() != 2 || pair.iter().any(|p| p.failed != p.attempts) {
        return Err(format!("{name} did not report two processes whose every call failed: {out}"));
    }
    let main = spam(f, cap::SPAM_FAILED_LOADS)?;
    let mut sent = carried(&spam_records(f, &main, "load"));
    for p in &pair {
        let records = spam_records(f, p, "load");
        let most = u64::from(sc::ALTERNATE_SECS) + 2;
        if records.is_empty() || records.len() as u64 > most {
            return Err(format!("{} load records of pid {}, 1 to {most} expected: {out}", records.len(), p.pid));
        }
        if let Some(r) = first_success(&records) {
            return Err(evidence("a load of the processes in turn did not fail", r));
        }
        let own = carried(&records);
        if own > p.attempts || !records.iter().any(|r| repeats(r) > 0) {
            return Err(format!("pid {}'s records stand for {own} attempts, with repeats, of its {}", p.pid, p.attempts));
        }
        sent += own;
    }
    let s = summary(f)?;
    let attempts = main.attempts + pair.iter().map(|p| p.attempts).sum::<u64>();
    if sent > attempts || attempts > sent + s.folded_pending + s.skipped_results {
        return Err(format!(
            "{attempts} failed loads (the flood's and the two in turn), {sent} in records and their repeats, \
             {} folded and not yet reported, {} results skipped by the kernel",
            s.folded_pending, s.skipped_results
        ));
    }
    Ok(())
}

/// Under a tracer whose fold maps hold fewer processes than took turns failing
/// loads (scenario FOLD_EVICT_*), the full maps dropped entries with repeats
/// in them: every attempt is in a record and its repeats, the repeats still
/// folded, a record the ring refused, or the repeats the tracer counted lost,
/// and the test did make it lose some.
pub fn fold_evictions_counted(f: &Facts) -> Result<(), String> {
    let name = cap::EVICT_FAILED_LOADS;
    let out = f.output.text(&format!("{name}.stdout"))?;
    let processes: Vec<Spam> = out.lines().filter_map(parse_spam).collect();
    if f.output.exit_code(name)? != 0
        || processes.len() != sc::FOLD_EVICT_PROCESSES as usize
        || processes.iter().any(|p| p.failed != p.attempts)
    {
        return Err(format!("{name} did not report {} processes whose every call failed: {out}", sc::FOLD_EVICT_PROCESSES));
    }
    let err = f.output.text(cap::EVICT_TRACE_ERR)?;
    if f.output.exit_code(cap::EVICT_TRACE)? != 0 {
        return Err(format!("the tracer with small fold maps did not exit cleanly: {err}"));
    }
    let (records, bad) = super::jsonl_section(f, cap::EVICT_EVENTS)?;
    if let Some(line) = bad.first() {
        return Err(format!("{} lines of {} are not records, first: {line}", bad.len(), cap::EVICT_EVENTS));
    }
    let pids: BTreeSet<u64> = processes.iter().map(|p| p.pid).collect();
    let theirs: Vec<&Value> = records
        .iter()
        .filter(|r| text(r, "/kind") == "load" && r.pointer("/process/tgid").and_then(Value::as_u64).is_some_and(|t| pids.contains(&t)))
        .collect();
    let s = summary_in(&err)?;
    let attempts: u64 = processes.iter().map(|p| p.attempts).sum();
    let told = carried(&theirs) + s.folded_pending + s.failures + s.lost_repeats;
    let figures = format!(
        "{attempts} attempts; {} records standing for {}, {} folded and not yet reported, {} records refused, \
         {} repeats lost, {} results skipped by the kernel",
        theirs.len(),
        carried(&theirs),
        s.folded_pending,
        s.failures,
        s.lost_repeats,
        s.skipped_results
    );
    if told > attempts || attempts > told + s.skipped_results {
        return Err(format!("the counts do not account for the attempts: {figures}"));
    }
    if s.lost_repeats == 0 {
        return Err(format!("no repeats lost: the fold maps never dropped an entry with a count, nothing was tested: {figures}"));
    }
    Ok(())
}

/// The request flood: every socket(AF_ALG) asked for net-pf-38 again.
pub fn flood_requests_folded(f: &Facts) -> Result<(), String> {
    let spam = spam(f, cap::SPAM_REQUESTS)?;
    let records = spam_records(f, &spam, "request");
    if let Some(r) = records.iter().find(|r| text(r, "/alias") != sc::MISSING_ALIAS) {
        return Err(evidence(&format!("a spammer's request is not for {}", sc::MISSING_ALIAS), r));
    }
    folded(f, &spam, &records, "request", |s| s.skipped_requests)
}

/// The autoload in the middle of the flood: its request and its load, attributed.
pub fn flood_autoload_attributed(f: &Facts) -> Result<(), String> {
    let r = find(f, &format!("`request` record for {}", sc::FLOOD_ALIAS), |r| {
        text(r, "/kind") == "request" && text(r, "/alias") == sc::FLOOD_ALIAS
    })?;
    super::expect(r, "/process/comm", comm::GUEST_TOOL)?;
    super::expect_contains(r, "/resolves_to", &[sc::FLOOD_AUTOLOAD_MODULE])?;
    let r = loaded(f, sc::FLOOD_AUTOLOAD_MODULE)?;
    expect_requested(r, sc::FLOOD_ALIAS, comm::GUEST_TOOL)?;
    super::expect_empty(r, "/cause/needed_by")
}

/// The explicit modprobe in the middle of the flood.
pub fn flood_explicit_attributed(f: &Facts) -> Result<(), String> {
    expect_explicit_by_modprobe_from_shell(loaded(f, sc::FLOOD_EXPLICIT_MODULE)?)
}

/// The real loads happened while both spammers were still sending records.
pub fn flood_overlaps_real_loads(f: &Facts) -> Result<(), String> {
    let (mut from, mut to) = (0, u64::MAX);
    for (name, kind) in [(cap::SPAM_FAILED_LOADS, "load"), (cap::SPAM_REQUESTS, "request")] {
        let spam = spam(f, name)?;
        let times: Vec<u64> = spam_records(f, &spam, kind).iter().map(|r| ts(r)).collect();
        let (Some(first), Some(last)) = (times.iter().min(), times.iter().max()) else {
            return Err(format!("no records from {name}"));
        };
        from = from.max(*first);
        to = to.min(*last);
    }
    for module in [sc::FLOOD_AUTOLOAD_MODULE, sc::FLOOD_EXPLICIT_MODULE] {
        let r = loaded(f, module)?;
        if !(from..=to).contains(&ts(r)) {
            let why = format!("{module} loaded outside the flood (both spammers sent records from {from} to {to} ns)");
            return Err(evidence(&why, r));
        }
    }
    Ok(())
}

// ---- a flood of distinct requests from many processes ----

/// Requests of the distinct flood: fs-PREFIXn.
fn distinct_requests(f: &Facts) -> Vec<&Value> {
    let prefix = format!("fs-{}", sc::DISTINCT_FLOOD_PREFIX);
    f.records.iter().filter(|r| text(r, "/kind") == "request" && text(r, "/alias").starts_with(&prefix)).collect()
}

/// Each process asked for aliases nobody asked for before, so nothing folds:
/// every request made is a record, or is counted as lost. And they came from
/// new processes, one per batch.
pub fn distinct_flood_every_request_counted(f: &Facts) -> Result<(), String> {
    let spam = spam(f, cap::SPAM_DISTINCT_REQUESTS)?;
    let processes = number_after(&f.output.text(&format!("{}.stdout", cap::SPAM_DISTINCT_REQUESTS))?, "processes=")
        .ok_or("the distinct flood printed no process count")?;
    let records = distinct_requests(f);
    let seen = carried(&records);
    let lost = summary(f)?.lost_requests();
    let figures = format!("{} attempts by {processes} processes, {seen} seen, {lost} requests lost", spam.attempts);
    if let Some(r) = records.iter().find(|r| repeats(r) > 0) {
        return Err(evidence(&format!("distinct aliases were folded: {figures}"), r));
    }
    if spam.failed != spam.attempts || processes < 2 {
        return Err(format!("not a flood of several processes, or a mount did not fail as it must: {figures}"));
    }
    if seen > spam.attempts || spam.attempts > seen + lost {
        return Err(format!("the request records and the losses do not account for the attempts: {figures}"));
    }
    let senders: BTreeSet<u64> = records.iter().filter_map(|r| r.pointer("/process/tgid")?.as_u64()).collect();
    if lost == 0 && senders.len() as u64 != processes {
        return Err(format!("{} processes sent requests, the flood started {processes}: {figures}", senders.len()));
    }
    Ok(())
}

/// The autoload and the modprobe in the middle of the distinct flood keep
/// their causes, and happened while the flood's requests were coming.
pub fn distinct_flood_real_loads_keep_their_cause(f: &Facts) -> Result<(), String> {
    let r = loaded(f, sc::DISTINCT_FLOOD_AUTOLOAD_MODULE)?;
    expect_requested(r, sc::DISTINCT_FLOOD_ALIAS, comm::GUEST_TOOL)?;
    let top = loaded(f, sc::DISTINCT_FLOOD_EXPLICIT_MODULE)?;
    expect_explicit_by_modprobe_from_shell(top)?;
    let times: Vec<u64> = distinct_requests(f).iter().map(|r| ts(r)).collect();
    let (Some(first), Some(last)) = (times.iter().min(), times.iter().max()) else {
        return Err("no request of the distinct flood was seen".into());
    };
    for r in [r, top] {
        if !(*first..=*last).contains(&ts(r)) {
            return Err(evidence(&format!("loaded outside the distinct flood ({first}..{last} ns)"), r));
        }
    }
    Ok(())
}
