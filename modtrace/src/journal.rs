//! Structured journal entries through systemd-journal-logger (journald's
//! native protocol): the guard's decisions and learning's evidence.

use systemd_journal_logger::JournalLog;

/// journald's socket: where there is none, nothing is sent.
const SOCKET: &str = "/run/systemd/journal/socket";

/// A connection to journald tagged `tag` (SYSLOG_IDENTIFIER), when one runs.
pub fn connect(tag: &str) -> std::io::Result<Option<JournalLog>> {
    if !std::path::Path::new(SOCKET).exists() {
        return Ok(None);
    }
    Ok(Some(JournalLog::new()?.with_syslog_identifier(tag.to_string())))
}

/// Sends one entry: MESSAGE, PRIORITY from `level`, and `fields` as they are named.
pub fn send(journal: &JournalLog, level: log::Level, target: &str, message: &str, fields: &[(&str, String)]) {
    let kv: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // A lost entry must not stop what sends it: enforcement or learning goes on.
    let _ = journal.journal_send(
        &log::Record::builder()
            .level(level)
            .target(target)
            .args(format_args!("{message}"))
            .key_values(&kv)
            .build(),
    );
}
