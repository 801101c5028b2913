//! `modtrace snapshot`: the loaded modules now, to compare later with `modtrace diff`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::profile::{self, system};
use crate::trace::snapshot::{read_proc_modules, Snapshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SnapshotFormat {
    Json,
    Text,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write the snapshot to FILE (replaced atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = SnapshotFormat::Json)]
    pub format: SnapshotFormat,
    /// Read this file instead of /proc/modules.
    #[arg(long, value_name = "FILE", default_value = "/proc/modules", hide = true)]
    pub proc_modules: PathBuf,
}

/// The snapshot `args` ask for, as text.
pub fn render(args: &Args) -> anyhow::Result<String> {
    let modules = read_proc_modules(&args.proc_modules)?;
    let snap = Snapshot::new(&system::kernel_release(), &system::hostname(), &system::now(), modules);
    Ok(match args.format {
        SnapshotFormat::Json => snap.to_json(),
        SnapshotFormat::Text => snap.to_text(),
    })
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let text = render(&args)?;
    match &args.out {
        Some(path) => {
            profile::atomic_write(path, text.as_bytes())?;
            eprintln!("modtrace: snapshot of {} modules saved to {}", text_count(&text, args.format), path.display());
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn text_count(text: &str, format: SnapshotFormat) -> usize {
    match format {
        SnapshotFormat::Text => text.lines().filter(|l| !l.starts_with('#')).count(),
        SnapshotFormat::Json => serde_json::from_str::<Snapshot>(text).map(|s| s.modules.len()).unwrap_or(0),
    }
}
