//! The JSON format: the view model as it is, for scripts.

use super::Report;

pub(super) fn json(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(report).expect("a report always serializes");
    s.push('\n');
    s
}
