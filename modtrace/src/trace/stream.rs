//! `modtrace trace`'s stream: every event printed as it comes, the guard's
//! decisions among them, and the summary at the end.

use std::io::{self, Write};
use std::time::Duration;

use super::output;
use super::pipeline::{Options, Summary, Tracer};
use crate::said::Said;

/// Streams every event to standard output (JSON lines with `json`) until
/// Ctrl-C, SIGTERM or the end of `duration`, and returns the summary.
pub fn stream(json: bool, duration: Option<Duration>) -> anyhow::Result<Summary> {
    let mut tracer = Tracer::start()?;
    tracer.on_guard_decision(Box::new(move |rec| {
        let line = if json { output::guard_json(rec) } else { output::guard_human(rec) };
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{line}").and_then(|_| out.flush());
    }));
    // Said on the run's first call of the sink, once SIGINT is handled.
    let mut ready = Some(announcement(&tracer));
    let mut out = io::stdout().lock();
    let mut broken_pipe = false;
    let summary = tracer.run(&Options { duration, tick: None }, &mut |rec| {
        let Some(rec) = rec else {
            if let Some(text) = ready.take() {
                eprint!("{text}");
            }
            return;
        };
        if broken_pipe {
            return;
        }
        let line = if json { output::json(rec) } else { output::human(rec) };
        // A closed pipe (`| head`) ends the output, not the run's summary.
        broken_pipe = writeln!(out, "{line}").and_then(|_| out.flush()).is_err();
    })?;
    Ok(summary)
}

fn announcement(tracer: &Tracer) -> String {
    let p = &tracer.probes;
    let phases: Vec<String> = p.phases.iter().map(ToString::to_string).collect();
    let mut text = format!("modtrace: attached {} programs in {} ms ({})\n", p.attached, p.attach_ms, phases.join(", "));
    for note in &p.notes {
        text += &format!("modtrace: note: {note}\n");
    }
    text
}

/// What to say on stderr once tracing ended: the counts and what was lost.
pub fn closing(s: &Summary) -> Said {
    let mut said = Said::default();
    said.err(summary_line(s));
    let d = &s.drops;
    if d.blocking() > 0 {
        said.err(format!(
            "modtrace: warning: {} requests or loads were lost: modules may have loaded unseen, or without their cause",
            d.blocking()
        ));
    }
    if s.guard_lost > 0 {
        said.err(format!(
            "modtrace: warning: {} of the guard's decisions were lost (its ring for modtrace trace was full): \
             the guard counted them all (modtrace guard status), and guard log had its own ring",
            s.guard_lost
        ));
    }
    let undecodable = d.undecodable_requests + d.undecodable_loads + d.undecodable_failures + s.guard_undecodable;
    if undecodable > 0 {
        said.err(format!(
            "modtrace: warning: {undecodable} kernel records could not be decoded (modtrace binary and programs disagree)"
        ));
    }
    said
}

/// `modtrace: N events (HOW); lost L (requests a, loads b, failures c, ...);
/// lost loads and requests: B; repeats folded and not yet reported: F;
/// guard decisions lost: G (undecodable U)`
pub fn summary_line(s: &Summary) -> String {
    let d = &s.drops;
    format!(
        "modtrace: {} events ({}); lost {} ({}); lost loads and requests: {}; repeats folded and not yet reported: {}; \
         guard decisions lost: {} (undecodable {})",
        s.records,
        s.ended_by,
        d.total(),
        d.describe(),
        d.blocking(),
        s.folded_pending,
        s.guard_lost,
        s.guard_undecodable
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::said::Stream;
    use crate::trace::drops::Drops;

    #[test]
    fn the_summary_names_every_kind_of_drop() {
        let drops = Drops {
            ring_failures: 40,
            unreadable_aliases: 1,
            results_without_call: 2,
            evicted_requests: 3,
            evicted_untrusted_requests: 8,
            skipped_loads: 6,
            skipped_results: 7,
            lost_repeats: 4,
            ..Drops::default()
        };
        let s = Summary {
            records: 9,
            drops,
            folded_pending: 5,
            ended_by: "SIGINT",
            from_initramfs: None,
            guard_lost: 12,
            guard_undecodable: 0,
        };
        assert_eq!(
            summary_line(&s),
            "modtrace: 9 events (SIGINT); lost 71 (requests 0, loads 0, failures 40, unreadable aliases 1, \
             unreadable module names 0, results without their call 2, requests evicted 3, \
             untrusted requests evicted 8, undecodable 0, \
             skipped requests 0, skipped loads 6, skipped results 7, repeats 4); \
             lost loads and requests: 10; repeats folded and not yet reported: 5; \
             guard decisions lost: 12 (undecodable 0)"
        );
        let said = closing(&s);
        assert!(said.text(Stream::Err).contains("warning: 12 of the guard's decisions were lost"));
        let none = Summary { guard_lost: 0, ..s };
        assert!(!closing(&none).text(Stream::Err).contains("guard's decisions"));
    }
}
