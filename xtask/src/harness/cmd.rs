//! Running external programs: echo what runs, fail with the command line on error.

use std::ffi::OsStr;
use std::process::{Command, Stdio};

use anyhow::{ensure, Context, Result};

/// The command line as a shell user would type it, for logs and errors.
pub fn describe(cmd: &Command) -> String {
    let mut words = vec![cmd.get_program().to_string_lossy().into_owned()];
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

/// Runs `cmd` with inherited stdio, after printing it.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {}", describe(cmd));
    let status = cmd.status().with_context(|| format!("cannot start {}", describe(cmd)))?;
    ensure!(status.success(), "`{}` failed: {status}", describe(cmd));
    Ok(())
}

/// Runs `cmd` quietly and returns its stdout; stderr is shown on failure only.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("cannot start {}", describe(cmd)))?;
    ensure!(
        out.status.success(),
        "`{}` failed: {}\n{}",
        describe(cmd),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Like `output`, for a program and its arguments.
pub fn output_of<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Result<String> {
    output(Command::new(program).args(args))
}
