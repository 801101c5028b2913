//! Boots a kernel and initramfs under QEMU, streams the console, and stops on
//! the guest's done marker, a kernel panic, or a timeout.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// The guest's last console line before it powers off.
pub const DONE_MARKER: &str = "MODTRACE-GUEST-DONE";
const PANIC_MARKER: &str = "Kernel panic";
/// Time QEMU gets to exit after the marker (poweroff -f is immediate).
const EXIT_GRACE: Duration = Duration::from_secs(30);
/// How long the console is still read after a panic line.
const PANIC_TAIL: Duration = Duration::from_secs(2);

pub struct Boot {
    pub label: String,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// Where the guest's second serial port (ttyS1) is written.
    pub serial_log: PathBuf,
    pub timeout: Duration,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The guest printed the done marker and QEMU exited.
    Done,
    /// QEMU exited without the marker.
    Exited(String),
    Panicked,
    TimedOut,
}

pub struct BootResult {
    pub outcome: Outcome,
    pub console: Vec<String>,
    pub elapsed: Duration,
}

impl Boot {
    fn command(&self) -> Command {
        let accel = std::env::var("MODTRACE_QEMU_ACCEL").unwrap_or_else(|_| "tcg".into());
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-accel", &accel, "-cpu", "max", "-m", "1024", "-smp", "2"])
            .args(["-nodefaults", "-display", "none", "-no-reboot", "-monitor", "none"])
            .args(["-serial", "stdio", "-serial"])
            .arg(format!("file:{}", self.serial_log.display()))
            .arg("-kernel")
            .arg(&self.kernel)
            .arg("-initrd")
            .arg(&self.initrd)
            .args(["-append", "console=ttyS0 panic=-1 quiet loglevel=4"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        cmd
    }

    pub fn run(&self) -> Result<BootResult> {
        let mut cmd = self.command();
        eprintln!("+ {}", crate::cmd::describe(&cmd));
        let start = Instant::now();
        let mut child = cmd.spawn().context("cannot start qemu-system-x86_64")?;
        let lines = console_lines(&mut child);
        let mut console = Vec::new();
        let outcome = match self.watch(&lines, &mut console, start + self.timeout) {
            Seen::Marker => {
                wait_or_kill(&mut child);
                Outcome::Done
            }
            Seen::End => Outcome::Exited(wait_or_kill(&mut child)),
            Seen::Panic => {
                // The lines after the panic line say why; then stop the machine.
                self.watch(&lines, &mut console, Instant::now() + PANIC_TAIL);
                kill(&mut child);
                Outcome::Panicked
            }
            Seen::Deadline => {
                kill(&mut child);
                Outcome::TimedOut
            }
        };
        Ok(BootResult { outcome, console, elapsed: start.elapsed() })
    }

    /// Echoes and keeps console lines until the marker, a panic, EOF or `deadline`.
    fn watch(&self, lines: &Receiver<String>, console: &mut Vec<String>, deadline: Instant) -> Seen {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match lines.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => return Seen::Deadline,
                Err(RecvTimeoutError::Disconnected) => return Seen::End,
            };
            println!("[{}] {line}", self.label);
            let seen = if line.starts_with(DONE_MARKER) {
                Some(Seen::Marker)
            } else if line.contains(PANIC_MARKER) {
                Some(Seen::Panic)
            } else {
                None
            };
            console.push(line);
            if let Some(seen) = seen {
                return seen;
            }
        }
    }
}

/// Why watching the console stopped.
enum Seen {
    Marker,
    Panic,
    /// QEMU closed its stdout (it exited).
    End,
    Deadline,
}

/// Waits (bounded) for QEMU to exit by itself, kills it otherwise; says how it ended.
fn wait_or_kill(child: &mut Child) -> String {
    let deadline = Instant::now() + EXIT_GRACE;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) => return format!("QEMU exited: {status}"),
            Ok(None) => thread::sleep(Duration::from_millis(100)),
            Err(err) => return format!("cannot wait for QEMU: {err}"),
        }
    }
    kill(child);
    "QEMU did not exit; killed".into()
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// QEMU's stdout (the guest console), line by line, from a reader thread.
fn console_lines(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let reader = BufReader::new(stdout);
        for line in reader.split(b'\n') {
            let Ok(bytes) = line else { break };
            let text = String::from_utf8_lossy(&bytes).trim_end_matches('\r').to_string();
            if tx.send(text).is_err() {
                break;
            }
        }
    });
    rx
}
