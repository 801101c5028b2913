//! `modtrace snapshot`: the loaded modules now, to compare later with `modtrace diff`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use super::docs::{Page, ERROR, USAGE};

use crate::profile;
use crate::trace::snapshot::{self, Format};

/// `--help`'s long text, and the man page's description.
pub const ABOUT: &str = "\
Writes the list of loaded modules (/proc/modules) with the kernel release, host name \
and time, as JSON or as text, to compare later with modtrace diff (instead of lsmod \
| sort > before).";

/// The man page's exit status, files, examples and references.
pub const PAGE: Page = Page {
    command: "snapshot",
    exit_status: &[("0", "The snapshot was written."), ERROR, USAGE],
    files: &[("/proc/modules", "The modules loaded now.")],
    examples: &[
        ("modtrace snapshot --out before.json", "Record what is loaded before a change."),
        (
            "modtrace snapshot --out after.json && modtrace diff before.json after.json",
            "After the change (an upgrade, a reboot): what changed.",
        ),
    ],
    see_also: &["modtrace(8)", "modtrace-diff(8)", "lsmod(8)"],
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write the snapshot to FILE (replaced atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// Read this file instead of /proc/modules.
    #[arg(long, value_name = "FILE", default_value = "/proc/modules", hide = true)]
    pub proc_modules: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let text = snapshot::render(&args.proc_modules, args.format)?;
    match &args.out {
        Some(path) => {
            profile::atomic_write(path, text.as_bytes())?;
            let n = snapshot::count(&text, args.format);
            eprintln!("modtrace: snapshot of {n} modules saved to {}", path.display());
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
