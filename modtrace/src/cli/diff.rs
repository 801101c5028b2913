//! `modtrace diff A B`: compare two snapshots, two profiles, or one of each.
//! Exits 0 when they are the same, 1 when they differ, 2 on trouble, like diff(1).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::outputs::diff::{compare, load_input, render};
use crate::profile;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Before: a snapshot (JSON, text, /proc/modules or lsmod output) or a profile.
    pub a: PathBuf,
    /// After: a snapshot or a profile.
    pub b: PathBuf,
    /// A profile to explain the differences with (besides A or B when they are profiles).
    #[arg(long, value_name = "PATH")]
    pub profile: Option<PathBuf>,
}

/// Writes the comparison to `out` and returns diff(1)'s status: 0 same, 1 different.
pub fn diff_files(a: &Path, b: &Path, explain: Option<&Path>, out: &mut dyn Write) -> anyhow::Result<u8> {
    let a = load_input(a)?;
    let b = load_input(b)?;
    let extra = explain.map(profile::load).transpose()?;
    let d = compare(&a, &b, extra.as_ref());
    out.write_all(render(&a, &b, &d).as_bytes())?;
    Ok(if d.is_empty() { 0 } else { 1 })
}

/// Like [`diff_files`], with errors printed to stderr and status 2.
pub fn status(args: &Args, out: &mut dyn Write) -> u8 {
    match diff_files(&args.a, &args.b, args.profile.as_deref(), out).and_then(|s| {
        out.flush()?;
        Ok(s)
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("modtrace diff: {e:#}");
            2
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    Ok(ExitCode::from(status(&args, &mut std::io::stdout().lock())))
}
