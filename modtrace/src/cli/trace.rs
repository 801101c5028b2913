//! `modtrace trace`: stream every module request, load and unload as it happens.

use std::{process::ExitCode, time::Duration};

use crate::trace::stream;

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
    let summary = stream::stream(args.json, args.duration)?;
    stream::closing(&summary).print();
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_the_docs_say() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
        assert!(parse_duration("soon").unwrap_err().contains("examples"));
    }
}
