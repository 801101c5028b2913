//! The journal as evidence: who wrote a record is told only by the fields
//! journald sets itself (`_PID`, `_COMM`, `_SYSTEMD_UNIT`, `_TRANSPORT`), never
//! by what the writer says of itself (`SYSLOG_IDENTIFIER`, `SYSLOG_PID`, any
//! `MESSAGE`), which `logger --journald` lets any user set.
//!
//! PID 1's lines from before journald ran come from /dev/kmsg: journald
//! imports them with `_TRANSPORT=kernel` and takes `SYSLOG_IDENTIFIER` and
//! `SYSLOG_PID` from the text. Only root can write /dev/kmsg (mode 0644), and
//! the kernel's own lines are identified as "kernel", so such a line naming
//! systemd[1] was written by root: trusted as PID 1's.
//!
//! journalctl is asked with a deadline: a journal that has not answered in
//! time gives nothing, and the callers then say "unknown".

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// How long journalctl may take before its answer counts as missing.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// journalctl matches for PID 1's records (groups joined by "+" are ORed).
pub const PID1: [&str; 5] = ["_PID=1", "+", "_TRANSPORT=kernel", "SYSLOG_IDENTIFIER=systemd", "SYSLOG_PID=1"];

/// One record, with the fields the callers judge by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    pub message: String,
    /// CLOCK_MONOTONIC of this boot, µs (the kernel events' clock).
    pub monotonic_us: u64,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub unit: Option<String>,
    pub transport: Option<String>,
    /// What the writer says: trusted only with `_TRANSPORT=kernel`.
    pub syslog_identifier: Option<String>,
    pub syslog_pid: Option<String>,
    /// PID 1's own `UNIT=` field (the unit a message is about).
    pub about_unit: Option<String>,
}

impl Entry {
    /// Written by PID 1: journald saw its pid, or root wrote it to /dev/kmsg
    /// as systemd[1] before journald ran.
    pub fn from_pid1(&self) -> bool {
        self.pid == Some(1)
            || (self.transport.as_deref() == Some("kernel")
                && self.syslog_identifier.as_deref() == Some("systemd")
                && self.syslog_pid.as_deref() == Some("1"))
    }

    /// Written by process `pid`, whose comm journald read as `comm`, in the
    /// host's system unit `unit`.
    pub fn from_process(&self, unit: &str, comm: &str, pid: u32) -> bool {
        self.pid == Some(pid) && self.comm.as_deref() == Some(comm) && self.unit.as_deref() == Some(unit)
    }
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "MESSAGE")]
    message: Option<serde_json::Value>,
    #[serde(rename = "__MONOTONIC_TIMESTAMP")]
    monotonic: Option<String>,
    #[serde(rename = "_PID")]
    pid: Option<String>,
    #[serde(rename = "_COMM")]
    comm: Option<String>,
    #[serde(rename = "_SYSTEMD_UNIT")]
    unit: Option<String>,
    #[serde(rename = "_TRANSPORT")]
    transport: Option<String>,
    #[serde(rename = "SYSLOG_IDENTIFIER")]
    syslog_identifier: Option<String>,
    #[serde(rename = "SYSLOG_PID")]
    syslog_pid: Option<String>,
    #[serde(rename = "UNIT")]
    about_unit: Option<String>,
}

/// journalctl -o json lines to entries. A field journald had to give as an
/// array of bytes (not UTF-8) or that appears twice is not read: such a
/// message is skipped, and a trusted field that is not a string is absent.
pub fn parse(json_lines: &str) -> Vec<Entry> {
    json_lines
        .lines()
        .filter_map(|line| {
            let r: Raw = serde_json::from_str(line).ok()?;
            Some(Entry {
                message: r.message?.as_str()?.to_string(),
                monotonic_us: r.monotonic?.parse().ok()?,
                pid: r.pid.and_then(|p| p.parse().ok()),
                comm: r.comm,
                unit: r.unit,
                transport: r.transport,
                syslog_identifier: r.syslog_identifier,
                syslog_pid: r.syslog_pid,
                about_unit: r.about_unit,
            })
        })
        .collect()
}

/// The messages PID 1 wrote, one a line; a message of several lines is left
/// out, so that no line of it can pass for a message of its own.
pub fn pid1_lines(entries: &[Entry]) -> String {
    let lines: Vec<&str> =
        entries.iter().filter(|e| e.from_pid1() && !e.message.contains('\n')).map(|e| e.message.as_str()).collect();
    lines.join("\n")
}

/// This boot's records matching `matches` (journalctl's syntax), or None when
/// journalctl failed or did not answer within `deadline`.
pub fn query(matches: &[String], deadline: Duration) -> Option<Vec<Entry>> {
    let mut child = Command::new("journalctl")
        .args(["--boot", "--output=json", "--no-pager", "--quiet", "--"])
        .args(matches)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).ok().map(|_| text)
    });
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(None) if start.elapsed() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            _ => return None,
        }
    }
    reader.join().ok()?.map(|text| parse(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(fields: &[(&str, &str)]) -> String {
        let map: serde_json::Map<String, serde_json::Value> =
            fields.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))).collect();
        serde_json::Value::Object(map).to_string()
    }

    #[test]
    fn pid_1_is_told_by_journald_s_fields_only() {
        let text = [
            line(&[("MESSAGE", "a"), ("__MONOTONIC_TIMESTAMP", "1"), ("_PID", "1"), ("_TRANSPORT", "journal")]),
            // `logger --journald` by a user: SYSLOG_* say systemd[1], journald says otherwise.
            line(&[
                ("MESSAGE", "b"),
                ("__MONOTONIC_TIMESTAMP", "2"),
                ("_PID", "4242"),
                ("_UID", "1000"),
                ("_TRANSPORT", "journal"),
                ("SYSLOG_IDENTIFIER", "systemd"),
                ("SYSLOG_PID", "1"),
            ]),
            // PID 1 before journald: imported from /dev/kmsg.
            line(&[
                ("MESSAGE", "c"),
                ("__MONOTONIC_TIMESTAMP", "3"),
                ("_TRANSPORT", "kernel"),
                ("SYSLOG_IDENTIFIER", "systemd"),
                ("SYSLOG_PID", "1"),
            ]),
            // The same words through syslog(3): the writer's say-so.
            line(&[
                ("MESSAGE", "d"),
                ("__MONOTONIC_TIMESTAMP", "4"),
                ("_TRANSPORT", "syslog"),
                ("SYSLOG_IDENTIFIER", "systemd"),
                ("SYSLOG_PID", "1"),
            ]),
        ]
        .join("\n");
        let from_pid1: Vec<String> = parse(&text).into_iter().filter(Entry::from_pid1).map(|e| e.message).collect();
        assert_eq!(from_pid1, ["a", "c"]);
        assert_eq!(pid1_lines(&parse(&text)), "a\nc");
    }

    #[test]
    fn a_message_of_several_lines_gives_no_line() {
        let forged = line(&[
            ("MESSAGE", "Started x.\nInserted module 'appletalk'"),
            ("__MONOTONIC_TIMESTAMP", "1"),
            ("_PID", "1"),
        ]);
        let real = line(&[("MESSAGE", "Inserted module 'autofs4'"), ("__MONOTONIC_TIMESTAMP", "2"), ("_PID", "1")]);
        assert_eq!(pid1_lines(&parse(&format!("{forged}\n{real}"))), "Inserted module 'autofs4'");
    }

    #[test]
    fn a_process_is_its_pid_comm_and_unit_together() {
        let e = parse(&line(&[
            ("MESSAGE", "m"),
            ("__MONOTONIC_TIMESTAMP", "9"),
            ("_PID", "700"),
            ("_COMM", "udisksd"),
            ("_SYSTEMD_UNIT", "udisks2.service"),
        ]))
        .remove(0);
        assert!(e.from_process("udisks2.service", "udisksd", 700));
        assert!(!e.from_process("udisks2.service", "udisksd", 701));
        assert!(!e.from_process("udisks2.service", "other", 700));
        assert!(!e.from_process("other.service", "udisksd", 700));
    }

    #[test]
    fn odd_lines_are_skipped() {
        let text = "not json\n{\"MESSAGE\":[1,2],\"__MONOTONIC_TIMESTAMP\":\"1\"}\n{\"MESSAGE\":\"x\"}\n";
        assert!(parse(text).is_empty());
    }
}
