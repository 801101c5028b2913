//! `guard log`: the guard's decisions, described like the tracer's records,
//! sent to the journal (tag modtrace-guard, MODTRACE_* fields) or, without
//! one, to standard output as JSON lines.

use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::time::Duration;

use anyhow::{bail, Context as _};

use super::kernel;
use crate::trace::attribute::SystemDescriber;
use crate::trace::decision;
use crate::trace::output;

/// Reads the log ring until the guard is stopped. Enforcement never waits
/// for this process: when it is gone, decisions go on and are counted lost.
pub fn follow() -> anyhow::Result<()> {
    if !kernel::is_pinned() {
        bail!("the guard is not running: start it first (modtrace guard start)");
    }
    let mut ring = kernel::ring("GUARD_LOG")?;
    // Tagged as documented (journalctl -t modtrace-guard), not after the program.
    let journal = systemd_journal_logger::connected_to_journal()
        .then(systemd_journal_logger::JournalLog::new)
        .transpose()
        .context("connecting to the journal")?
        .map(|j| j.with_syslog_identifier(JOURNAL_TAG.to_string()));
    let mut describer = SystemDescriber::new();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let fd = ring.as_raw_fd();
        // SAFETY: the ring outlives this loop.
        let ready = unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?;
        let mut check = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                guard = ready.readable() => guard?.clear_ready(),
                _ = check.tick() => if !kernel::is_pinned() { break },
            }
            while let Some(item) = ring.next() {
                let Ok(d) = decision::decode(&item) else { continue };
                let rec = decision::record(&d, &mut describer);
                emit(journal.as_ref(), &rec);
            }
        }
        anyhow::Ok(())
    })
}

/// The SYSLOG_IDENTIFIER of the guard's journal entries.
pub const JOURNAL_TAG: &str = "modtrace-guard";

fn emit(journal: Option<&systemd_journal_logger::JournalLog>, rec: &decision::GuardRecord) {
    let Some(journal) = journal else {
        println!("{}", serde_json::to_string(rec).expect("records serialize"));
        let _ = std::io::stdout().flush();
        return;
    };
    let fields = journal_fields(rec);
    let kv: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let level = if rec.kind == "guard_allowed" { log::Level::Info } else { log::Level::Warn };
    let message = output::guard_human(rec);
    let _ = journal.journal_send(
        &log::Record::builder()
            .level(level)
            .target("modtrace-guard")
            .args(format_args!("{message}"))
            .key_values(&kv)
            .build(),
    );
}

/// The structured fields of a decision's journal entry (MODTRACE_*).
pub fn journal_fields(rec: &decision::GuardRecord) -> Vec<(&'static str, String)> {
    let p = &rec.process;
    let mut f = vec![
        ("MODTRACE_DECISION", rec.kind.trim_start_matches("guard_").to_string()),
        ("MODTRACE_HOOK", rec.hook.to_string()),
        ("MODTRACE_MODE", rec.mode.to_string()),
        ("MODTRACE_REASON", rec.reason.clone()),
        ("MODTRACE_PID", p.tgid.to_string()),
        ("MODTRACE_UID", p.uid.to_string()),
        ("MODTRACE_COMM", p.comm.clone()),
        // "system", "user", "session", "container", "none" or "unknown", and in words.
        ("MODTRACE_SCOPE", p.scope.kind().to_string()),
        ("MODTRACE_SCOPE_TEXT", p.scope.to_string()),
        ("MODTRACE_REPEATS", rec.repeats.to_string()),
    ];
    let optional = [
        ("MODTRACE_ALIAS", rec.alias.clone()),
        ("MODTRACE_MODULE", rec.module.clone()),
        ("MODTRACE_FILE", rec.file.clone()),
        ("MODTRACE_DEV", rec.dev.clone()),
        ("MODTRACE_INO", rec.ino.map(|i| i.to_string())),
        ("MODTRACE_ATTEMPT", rec.attempt.clone()),
        ("MODTRACE_EXE", p.exe.clone()),
        ("MODTRACE_UNIT", p.unit.clone()),
        ("MODTRACE_CGROUP", p.cgroup.clone()),
    ];
    f.extend(optional.into_iter().filter_map(|(k, v)| Some((k, v?))));
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::in_cgroup;

    #[test]
    fn journal_entries_carry_the_decision_and_the_requester_as_fields() {
        let rec = decision::GuardRecord {
            time: "2026-12-01T20:42:18.360Z".into(),
            ts_ns: 1,
            kind: "guard_denied".into(),
            hook: "request",
            mode: "enforce",
            alias: Some("net-pf-38".into()),
            module: None,
            file: None,
            dev: None,
            ino: None,
            attempt: None,
            reason: "net-pf-38 resolves to no module of the profile".into(),
            repeats: 2,
            process: in_cgroup(9, "python3", Some("/usr/bin/python3.11"), 1000, "/user.slice/user-1000.slice/session-2.scope"),
        };
        let fields = journal_fields(&rec);
        let get = |k: &str| fields.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("MODTRACE_DECISION"), Some("denied"));
        assert_eq!((get("MODTRACE_HOOK"), get("MODTRACE_MODE")), (Some("request"), Some("enforce")));
        assert_eq!(
            (get("MODTRACE_ALIAS"), get("MODTRACE_UID"), get("MODTRACE_PID")),
            (Some("net-pf-38"), Some("1000"), Some("9"))
        );
        assert_eq!((get("MODTRACE_EXE"), get("MODTRACE_UNIT")), (Some("/usr/bin/python3.11"), Some("session-2.scope")));
        assert_eq!(get("MODTRACE_REPEATS"), Some("2"));
        assert_eq!(get("MODTRACE_SCOPE"), Some("session"));
        assert_eq!(get("MODTRACE_SCOPE_TEXT"), Some("login session session-2.scope of uid 1000"));
        assert_eq!(
            (get("MODTRACE_FILE"), get("MODTRACE_MODULE")),
            (None, None),
            "unknown fields are left out, not empty"
        );
    }
}
