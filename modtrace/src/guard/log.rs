//! `guard log`: the guard's decisions, described like the tracer's records,
//! sent to the journal (tag modtrace-guard, MODTRACE_* fields) or, without
//! one, to standard output as JSON lines.

use std::io::Write as _;
use std::os::fd::RawFd;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{signal, SignalKind};

use crate::trace::attribute::SystemDescriber;
use crate::trace::decision::{self, WatchedRing};
use crate::trace::modindex::KmodIndex;
use crate::trace::output;
use crate::trace::pipeline::{readable, watch};

/// Reads the decisions of whichever guard is pinned until SIGINT or SIGTERM:
/// started before the guard, it waits for it; across a stop and a new start
/// it follows the new guard (found within 2 s, nothing lost meanwhile: the
/// decisions wait in the new guard's ring). Enforcement never waits for this
/// process: when it is gone, decisions go on and are counted lost.
pub fn follow() -> anyhow::Result<()> {
    // Tagged as documented (journalctl -t modtrace-guard), not after the program.
    let journal = systemd_journal_logger::connected_to_journal()
        .then(systemd_journal_logger::JournalLog::new)
        .transpose()
        .context("connecting to the journal")?
        .map(|j| j.with_syslog_identifier(JOURNAL_TAG.to_string()));
    let ring = WatchedRing::open("GUARD_LOG");
    // Without an index, refused files are logged by their file alone.
    let index = KmodIndex::running()
        .map_err(|e| eprintln!("modtrace: guard log: {e}: refused files name no module"))
        .ok();
    let mut logger = Logger { ring, describer: SystemDescriber::new(), journal, tally: Tally::default(), index };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(logger.run())?;
    eprintln!("{}", logger.tally.closing());
    Ok(())
}

struct Logger {
    ring: WatchedRing,
    describer: SystemDescriber,
    journal: Option<systemd_journal_logger::JournalLog>,
    tally: Tally,
    /// The running kernel's module index: which module a refused file is.
    index: Option<KmodIndex>,
}

/// What the logger wrote and lost, as the tracer counts its own.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    logged: u64,
    /// Decisions its ring could not hold (the guard counts them), and how
    /// many of those were said already.
    lost: u64,
    lost_said: u64,
    undecodable: u64,
}

impl Tally {
    /// A warning when more were lost since the last one.
    fn news(&mut self, lost: u64) -> Option<String> {
        self.lost = lost;
        if lost <= self.lost_said {
            return None;
        }
        let new = lost - std::mem::replace(&mut self.lost_said, lost);
        Some(format!(
            "modtrace: warning: {new} of the guard's decisions were lost before the logger read them (its ring was \
             full), {lost} since it started: the journal misses them, the guard's counts (modtrace guard status) do not"
        ))
    }

    fn closing(&self) -> String {
        format!(
            "modtrace: guard log: {} decisions logged; lost {} (its ring was full), undecodable {}",
            self.logged, self.lost, self.undecodable
        )
    }
}

impl Logger {
    async fn run(&mut self) -> anyhow::Result<()> {
        let (mut sigint, mut sigterm) = (signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?);
        let mut refind = tokio::time::interval(Duration::from_secs(2));
        let mut ready = self.watch()?;
        loop {
            let (mut look, mut stop) = (false, false);
            tokio::select! {
                Some(guard) = readable(ready.as_ref()) => guard?.clear_ready(),
                _ = refind.tick() => look = true,
                _ = sigint.recv() => stop = true,
                _ = sigterm.recv() => stop = true,
            }
            let items = self.ring.drain();
            self.emit_items(&items);
            if look || stop {
                if let Some(warning) = self.tally.news(self.ring.lost()) {
                    eprintln!("{warning}");
                }
                // The watch goes before an old ring's descriptor can close.
                drop(ready.take());
                if let Some(old) = self.ring.refind() {
                    self.emit_items(&old);
                    let items = self.ring.drain();
                    self.emit_items(&items);
                }
                ready = self.watch()?;
            }
            if stop {
                self.tally.news(self.ring.lost());
                return Ok(());
            }
        }
    }

    fn watch(&self) -> std::io::Result<Option<AsyncFd<RawFd>>> {
        self.ring.raw_fd().map(watch).transpose()
    }

    fn emit_items(&mut self, items: &[Vec<u8>]) {
        for item in items {
            let Ok(d) = decision::decode(item) else {
                self.tally.undecodable += 1;
                continue;
            };
            let mut rec = decision::record(&d, &mut self.describer);
            if let Some(index) = &self.index {
                decision::identify_refused(&mut rec, &d, index, Path::new("/sys"));
            }
            emit(self.journal.as_ref(), &rec);
            self.tally.logged += 1;
        }
    }
}

/// The SYSLOG_IDENTIFIER of the guard's journal entries.
pub const JOURNAL_TAG: &str = "modtrace-guard";

fn emit(journal: Option<&systemd_journal_logger::JournalLog>, rec: &decision::GuardRecord) {
    let Some(journal) = journal else {
        println!("{}", serde_json::to_string(rec).expect("records serialize"));
        let _ = std::io::stdout().flush();
        return;
    };
    let level = if rec.kind == "guard_allowed" { log::Level::Info } else { log::Level::Warn };
    crate::journal::send(journal, level, "modtrace-guard", &output::guard_human(rec), &journal_fields(rec));
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
        // The device a refused udev load was for (decision::identify_refused).
        ("MODTRACE_DEVICE", rec.device.as_ref().map(|d| d.devpath.clone())),
        ("MODTRACE_MODALIAS", rec.device.as_ref().map(|d| d.modalias.clone())),
        ("MODTRACE_SUBSYSTEM", rec.device.as_ref().and_then(|d| d.subsystem.clone())),
        ("MODTRACE_DEVICE_IDS", rec.device.as_ref().and_then(|d| d.ids.clone())),
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
    use crate::trace::event::Device;

    #[test]
    fn the_logger_warns_once_per_new_loss_and_sums_up() {
        let mut t = Tally::default();
        assert_eq!(t.news(0), None);
        let w = t.news(3).unwrap();
        assert!(w.starts_with("modtrace: warning: 3 of the guard's decisions were lost"), "{w}");
        assert!(w.contains(", 3 since it started"), "{w}");
        assert_eq!(t.news(3), None, "said already");
        assert!(t.news(5).unwrap().contains("warning: 2 of the guard's decisions were lost"));
        (t.logged, t.undecodable) = (40, 1);
        assert_eq!(t.closing(), "modtrace: guard log: 40 decisions logged; lost 5 (its ring was full), undecodable 1");
    }

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
            device: None,
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
            (get("MODTRACE_FILE"), get("MODTRACE_MODULE"), get("MODTRACE_DEVICE")),
            (None, None, None),
            "unknown fields are left out, not empty"
        );
    }

    #[test]
    fn a_refused_udev_load_journals_its_module_and_device() {
        let wdt = "pci:v00008086d000025ABsv00001AF4sd00001100bc08sc80i00";
        let rec = decision::GuardRecord {
            time: "2026-12-01T20:42:18.360Z".into(),
            ts_ns: 1,
            kind: "guard_denied".into(),
            hook: "finit_module",
            mode: "enforce",
            alias: None,
            module: Some("i6300esb".into()),
            file: Some("i6300esb.ko".into()),
            dev: Some("254:0".into()),
            ino: Some(5120),
            attempt: None,
            device: Some(Device::new(wdt.into(), "/devices/pci0000:00/0000:00:03.0".into(), Some("pci".into()))),
            reason: "the file is no allowed module's file in the kernel's module tree".into(),
            repeats: 0,
            process: in_cgroup(300, "(udev-worker)", None, 0, "/system.slice/systemd-udevd.service"),
        };
        let fields = journal_fields(&rec);
        let get = |k: &str| fields.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!((get("MODTRACE_MODULE"), get("MODTRACE_UNIT")), (Some("i6300esb"), Some("systemd-udevd.service")));
        assert_eq!(
            (get("MODTRACE_DEVICE"), get("MODTRACE_MODALIAS"), get("MODTRACE_SUBSYSTEM"), get("MODTRACE_DEVICE_IDS")),
            (Some("/devices/pci0000:00/0000:00:03.0"), Some(wdt), Some("pci"), Some("8086:25ab"))
        );
    }
}
