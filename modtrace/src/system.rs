//! Facts about the running system that profiles and snapshots record.

use std::time::SystemTime;

fn proc_text(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// uname -r.
pub fn kernel_release() -> String {
    proc_text("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".to_string())
}

pub fn hostname() -> String {
    proc_text("/proc/sys/kernel/hostname").unwrap_or_else(|| "unknown".to_string())
}

/// /etc/machine-id, when set: what tells this host from another of the same name.
pub fn machine_id() -> Option<String> {
    proc_text("/etc/machine-id").filter(|id| id != "uninitialized")
}

pub fn boot_id() -> Option<String> {
    proc_text("/proc/sys/kernel/random/boot_id")
}

/// RFC 3339 UTC, to the second.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

pub fn now() -> String {
    rfc3339(SystemTime::now())
}
