//! `modtrace trace`: stream every module request, load and unload as it happens.

use std::{
    io::{self, Write},
    process::ExitCode,
    time::Duration,
};

use crate::{
    output,
    pipeline::{Options, Summary, Tracer},
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// One JSON object per line instead of human-readable lines.
    #[arg(long)]
    pub json: bool,
    /// Stop after this long (30s, 10m, 2h, 1d); default: until Ctrl-C or SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 30s, 10m, 2h, 1d)"))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut tracer = Tracer::start()?;
    let json = args.json;
    tracer.guard_sink = Some(Box::new(move |rec| {
        let line = if json { output::guard_json(rec) } else { output::guard_human(rec) };
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{line}").and_then(|_| out.flush());
    }));
    announce(&tracer);
    let mut out = io::stdout().lock();
    let mut broken_pipe = false;
    let summary = tracer.run(&Options { duration: args.duration, tick: None }, &mut |rec| {
        let Some(rec) = rec else { return };
        if broken_pipe {
            return;
        }
        let line = if args.json { output::json(rec) } else { output::human(rec) };
        // A closed pipe (`| head`) ends the output, not the run's summary.
        broken_pipe = writeln!(out, "{line}").and_then(|_| out.flush()).is_err();
    })?;
    report(&summary);
    Ok(ExitCode::SUCCESS)
}

fn announce(tracer: &Tracer) {
    let p = &tracer.probes;
    let phases: Vec<String> = p.phases.iter().map(|(name, ms)| format!("{name} {ms} ms")).collect();
    eprintln!("modtrace: attached {} programs in {} ms ({})", p.attached, p.attach_ms, phases.join(", "));
    for note in &p.notes {
        eprintln!("modtrace: note: {note}");
    }
}

fn report(s: &Summary) {
    let l = &s.losses;
    eprintln!(
        "modtrace: {} events ({}); lost {} (requests {}, loads {}, failures {}); repeats folded and not yet reported: {}",
        s.records,
        s.ended_by,
        l.dropped(),
        l.requests,
        l.loads,
        l.failures,
        l.folded_pending
    );
    if s.evicted_requests > 0 {
        eprintln!("modtrace: warning: {} requests were dropped unserved: too many were waiting at once", s.evicted_requests);
    }
    if s.undecodable > 0 {
        eprintln!("modtrace: warning: {} kernel records could not be decoded (modtrace binary and programs disagree)", s.undecodable);
    }
}
