//! What came back from the guest: step lines and the done marker on the console,
//! and the files it copied to ttyS1 between `==== NAME begin/end` lines.

use std::collections::BTreeMap;

use crate::qemu::DONE_MARKER;

#[derive(Debug, Default)]
pub struct Section {
    pub lines: Vec<String>,
    /// The end line arrived (the copy was not cut short).
    pub complete: bool,
}

#[derive(Debug)]
pub struct Step {
    pub name: String,
    pub ok: bool,
}

/// `MODTRACE-GUEST-DONE failed_steps=N tracer_status=S`.
#[derive(Debug, Default)]
pub struct Marker {
    pub failed_steps: Option<u32>,
    pub tracer_status: Option<String>,
}

#[derive(Debug, Default)]
pub struct GuestOutput {
    pub sections: BTreeMap<String, Section>,
    pub steps: Vec<Step>,
    pub marker: Option<Marker>,
}

impl GuestOutput {
    pub fn parse(console: &[String], serial: &str) -> Self {
        Self {
            sections: sections(serial),
            steps: console.iter().filter_map(|l| step(l)).collect(),
            marker: console.iter().find_map(|l| marker(l)),
        }
    }

    /// A section's lines, or None when it never started.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.get(name)
    }
}

fn sections(serial: &str) -> BTreeMap<String, Section> {
    let mut found = BTreeMap::new();
    let mut current: Option<(String, Section)> = None;
    for line in serial.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(name) = line.strip_prefix("==== ").and_then(|l| l.strip_suffix(" begin")) {
            if let Some((open, section)) = current.take() {
                found.insert(open, section);
            }
            current = Some((name.to_string(), Section::default()));
        } else if let Some(name) = line.strip_prefix("==== ").and_then(|l| l.strip_suffix(" end")) {
            if let Some((open, mut section)) = current.take() {
                section.complete = open == name;
                found.insert(open, section);
            }
        } else if let Some((_, section)) = current.as_mut() {
            section.lines.push(line.to_string());
        }
    }
    if let Some((open, section)) = current {
        found.insert(open, section);
    }
    found
}

/// `step NAME: ok...` or `step NAME: FAILED...`.
fn step(line: &str) -> Option<Step> {
    let (name, result) = line.strip_prefix("step ")?.split_once(": ")?;
    Some(Step { name: name.to_string(), ok: result.starts_with("ok") })
}

fn marker(line: &str) -> Option<Marker> {
    let rest = line.strip_prefix(DONE_MARKER)?;
    let mut marker = Marker::default();
    for (key, value) in rest.split_whitespace().filter_map(|w| w.split_once('=')) {
        match key {
            "failed_steps" => marker.failed_steps = value.parse().ok(),
            "tracer_status" => marker.tracer_status = Some(value.to_string()),
            _ => {}
        }
    }
    Some(marker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_steps_and_marker() {
        let serial = "junk\r\n==== events begin\r\n{\"a\":1}\r\n==== events end\r\n==== err begin\r\nx\r\n";
        let console = vec![
            "step insmod: ok".to_string(),
            "step mount: FAILED (exit 1)".to_string(),
            "MODTRACE-GUEST-DONE failed_steps=1 tracer_status=0".to_string(),
        ];
        let out = GuestOutput::parse(&console, serial);
        let events = out.section("events").unwrap();
        assert!(events.complete);
        assert_eq!(events.lines, ["{\"a\":1}"]);
        assert!(!out.section("err").unwrap().complete);
        assert_eq!(out.steps.len(), 2);
        assert!(out.steps[0].ok && !out.steps[1].ok);
        let marker = out.marker.unwrap();
        assert_eq!(marker.failed_steps, Some(1));
        assert_eq!(marker.tracer_status.as_deref(), Some("0"));
    }
}
