//! What came back from the guest: step lines, its kernel and the done marker on
//! the console, and the files it copied to ttyS1 between `==== NAME begin/end`
//! lines (among them `exit-codes`: `NAME STATUS` per command it captured).

use std::collections::BTreeMap;

use crate::harness::qemu::DONE_MARKER;

/// The section of `NAME STATUS` lines, one per command the guest captured
/// (tests/guest/init's `capture`).
pub const EXIT_CODES: &str = "exit-codes";

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
    /// `uname -r` in the guest, from `guest: kernel KVER, scenario starting`.
    pub kernel: Option<String>,
}

impl GuestOutput {
    pub fn parse(console: &[String], serial: &str) -> Self {
        Self {
            sections: sections(serial),
            steps: console.iter().filter_map(|l| step(l)).collect(),
            marker: console.iter().find_map(|l| marker(l)),
            kernel: console.iter().find_map(|l| kernel(l)),
        }
    }

    /// A section's lines, or None when it never started.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.get(name)
    }

    /// A complete section's text (lines joined with `\n`), or why there is none.
    pub fn text(&self, name: &str) -> Result<String, String> {
        match self.section(name) {
            None => Err(format!("section {name} never reached the host")),
            Some(s) if !s.complete => Err(format!("section {name} was cut short (no end marker)")),
            Some(s) => Ok(s.lines.join("\n")),
        }
    }

    /// The exit status the guest recorded for a captured command.
    pub fn exit_code(&self, name: &str) -> Result<i32, String> {
        let codes = self.text(EXIT_CODES)?;
        codes
            .lines()
            .filter_map(|l| l.split_once(' '))
            .find(|(n, _)| *n == name)
            .and_then(|(_, code)| code.trim().parse().ok())
            .ok_or_else(|| format!("no exit status for {name} in exit-codes:\n{codes}"))
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

fn kernel(line: &str) -> Option<String> {
    let rest = line.strip_prefix("guest: kernel ")?;
    Some(rest.split([',', ' ']).next()?.to_string()).filter(|k| !k.is_empty())
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
            "guest: kernel 6.1.0-56-amd64, scenario starting".to_string(),
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
        assert_eq!(out.kernel.as_deref(), Some("6.1.0-56-amd64"));
    }

    #[test]
    fn reads_exit_codes_and_texts() {
        let serial = "==== exit-codes begin\nlearn 0\ndiff-before-after 1\n==== exit-codes end\n\
                      ==== a.stdout begin\nx\ny\n==== a.stdout end\n==== cut begin\nz\n";
        let out = GuestOutput::parse(&[], serial);
        assert_eq!(out.exit_code("learn"), Ok(0));
        assert_eq!(out.exit_code("diff-before-after"), Ok(1));
        assert!(out.exit_code("report").is_err());
        assert_eq!(out.text("a.stdout").as_deref(), Ok("x\ny"));
        assert!(out.text("cut").is_err());
        assert!(out.text("missing").is_err());
    }
}
