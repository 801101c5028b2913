//! QEMU for every guest the tests boot: the flags they share, the console
//! reader, and the one retry of a boot that died before its init ran.
//!
//! The initramfs guest (vm-test) is booted by `Boot` here; the disk-image guest
//! (vm-test --system) adds its devices to `command` in system/boot.rs.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// The guest's last console line before it powers off.
pub const DONE_MARKER: &str = "MODTRACE-GUEST-DONE";
/// The first line every guest /init prints (tests/guest/init,
/// tests/system/initramfs-init): the kernel got as far as running it.
pub const INIT_MARKER: &str = "MODTRACE-INIT-STARTED";
const PANIC_MARKER: &str = "Kernel panic";
/// Time QEMU gets to exit after the marker (poweroff -f is immediate).
const EXIT_GRACE: Duration = Duration::from_secs(30);
/// How long the console is still read after a panic line.
const PANIC_TAIL: Duration = Duration::from_secs(2);
/// A kernel reaches init in 2-10 s under TCG; one that has not after this long
/// hung in early boot (seen: an Oops in sched_clock_cpu while code patching).
pub const INIT_DEADLINE: Duration = Duration::from_secs(90);

/// How TCG runs the guest's two vCPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// Both vCPUs on one host thread. Tests use it: modtrace patches kernel
    /// code (static keys, fexit trampolines) after init while the other vCPU
    /// runs it, and multi-threaded TCG then trips over the int3 of the patch
    /// (`Oops: int3` seen on 6.12 in __alloc_skb and
    /// syscall_exit_to_user_mode_prepare, on 7.3 in trace_syscall_exit).
    Single,
    /// One host thread per vCPU: the bench's timed runs, where the storm and
    /// the tracer's reader really run side by side.
    Multi,
}

/// qemu-system-x86_64 with what every guest shares: TCG with `threads` (unless
/// MODTRACE_QEMU_ACCEL says otherwise), two CPUs, no default devices or
/// display, no reboot (a panic ends QEMU), the console on stdout.
pub fn command(memory_mib: u32, threads: Threads) -> Command {
    let tcg = match threads {
        Threads::Single => "tcg,thread=single",
        Threads::Multi => "tcg",
    };
    let accel = std::env::var("MODTRACE_QEMU_ACCEL").unwrap_or_else(|_| tcg.into());
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", &accel, "-cpu", "max", "-m", &memory_mib.to_string(), "-smp", "2"])
        .args(["-nodefaults", "-display", "none", "-no-reboot", "-monitor", "none", "-serial", "stdio"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    cmd
}

/// Whether a console shows the guest's init running.
pub fn init_ran(console: &[String]) -> bool {
    console.iter().any(|line| line.contains(INIT_MARKER))
}

/// Runs `attempt(n)` (n = 0, then 1); when the first failed before the guest's
/// init ran (`early_death` says why), runs it once more. A failure after init
/// started is never retried. Returns the result and, after a retry, why.
pub fn retry_early_death<T>(
    label: &str,
    mut attempt: impl FnMut(u32) -> Result<T>,
    early_death: impl Fn(&T) -> Option<String>,
) -> Result<(T, Option<String>)> {
    let first = attempt(0)?;
    let Some(why) = early_death(&first) else { return Ok((first, None)) };
    println!("[{label}] the guest died before its init ran ({why}): booting it once more");
    Ok((attempt(1)?, Some(why)))
}

/// One boot of a kernel with an initramfs (vm-test's guest).
pub struct Boot {
    pub label: String,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// Where the guest's second serial port (ttyS1) is written.
    pub serial_log: PathBuf,
    pub timeout: Duration,
    pub memory_mib: u32,
    pub threads: Threads,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The guest printed the done marker and QEMU exited.
    Done,
    /// QEMU exited without the marker.
    Exited(String),
    Panicked,
    /// No init marker within INIT_DEADLINE; QEMU killed.
    NoInit,
    TimedOut,
}

pub struct BootResult {
    pub outcome: Outcome,
    pub console: Vec<String>,
    pub elapsed: Duration,
    /// Set when a first boot died before init and this is the second.
    pub retried: Option<String>,
}

impl BootResult {
    /// Why this boot counts as an early death (before init ran), if it does.
    pub fn early_death(&self) -> Option<String> {
        if self.outcome == Outcome::Done || init_ran(&self.console) {
            return None;
        }
        // The panic line says why, else an oops, else the last thing the kernel said.
        let first_with = |text: &str| self.console.iter().find(|l| l.contains(text));
        let line = first_with(PANIC_MARKER)
            .or_else(|| first_with("Oops"))
            .or_else(|| self.console.iter().rev().find(|l| !l.trim().is_empty()));
        Some(format!("{:?}: {}", self.outcome, line.map_or("no console output", |l| l.trim())))
    }
}

impl Boot {
    fn command(&self) -> Command {
        let mut cmd = command(self.memory_mib, self.threads);
        cmd.arg("-serial")
            .arg(format!("file:{}", self.serial_log.display()))
            .arg("-kernel")
            .arg(&self.kernel)
            .arg("-initrd")
            .arg(&self.initrd)
            .args(["-append", "console=ttyS0 panic=-1 quiet loglevel=4"]);
        cmd
    }

    pub fn run(&self) -> Result<BootResult> {
        let start = Instant::now();
        let (mut child, lines) = start_qemu(&mut self.command())?;
        let mut console = Vec::new();
        let outcome = match self.watch(&lines, &mut console, start) {
            Seen::Marker => {
                wait_or_kill(&mut child);
                Outcome::Done
            }
            Seen::End => Outcome::Exited(wait_or_kill(&mut child)),
            Seen::Panic => {
                // The lines after the panic line say why; then stop the machine.
                let tail = Instant::now() + PANIC_TAIL;
                while let Ok(line) = lines.recv_timeout(tail.saturating_duration_since(Instant::now())) {
                    self.echo(&line);
                    console.push(line);
                }
                kill(&mut child);
                Outcome::Panicked
            }
            Seen::NoInit => {
                kill(&mut child);
                Outcome::NoInit
            }
            Seen::Deadline => {
                kill(&mut child);
                Outcome::TimedOut
            }
        };
        Ok(BootResult { outcome, console, elapsed: start.elapsed(), retried: None })
    }

    fn echo(&self, line: &str) {
        println!("[{}] {line}", self.label);
    }

    /// Echoes and keeps console lines until the marker, a panic, EOF, the init
    /// deadline (while init has not run) or the timeout.
    fn watch(&self, lines: &Receiver<String>, console: &mut Vec<String>, start: Instant) -> Seen {
        let mut init_seen = false;
        loop {
            let deadline = if init_seen { start + self.timeout } else { start + self.timeout.min(INIT_DEADLINE) };
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match lines.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) if init_seen => return Seen::Deadline,
                Err(RecvTimeoutError::Timeout) => return Seen::NoInit,
                Err(RecvTimeoutError::Disconnected) => return Seen::End,
            };
            self.echo(&line);
            init_seen |= line.contains(INIT_MARKER);
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
    NoInit,
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

pub fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Starts QEMU (saying its command line first), its console read line by line.
pub fn start_qemu(cmd: &mut Command) -> Result<(Child, Receiver<String>)> {
    eprintln!("+ {}", crate::harness::cmd::describe(cmd));
    let mut child = cmd.spawn().context("cannot start qemu-system-x86_64")?;
    let lines = console_lines(&mut child);
    Ok((child, lines))
}

/// QEMU's stdout (the guest console), line by line, from a reader thread.
fn console_lines(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(bytes) = line else { break };
            let text = String::from_utf8_lossy(&bytes).trim_end_matches('\r').to_string();
            if tx.send(text).is_err() {
                break;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(outcome: Outcome, console: &[&str]) -> BootResult {
        BootResult {
            outcome,
            console: console.iter().map(|s| s.to_string()).collect(),
            elapsed: Duration::ZERO,
            retried: None,
        }
    }

    #[test]
    fn only_a_death_before_init_is_early() {
        let panic_early = result(Outcome::Panicked, &["Oops: int3", "Kernel panic - not syncing: Fatal exception"]);
        assert!(panic_early.early_death().unwrap().contains("Kernel panic"));
        assert!(result(Outcome::NoInit, &["Probing EDD"]).early_death().is_some());
        let after_init = result(Outcome::Panicked, &[INIT_MARKER, "Kernel panic - not syncing"]);
        assert_eq!(after_init.early_death(), None);
        assert_eq!(result(Outcome::TimedOut, &[INIT_MARKER]).early_death(), None);
        assert_eq!(result(Outcome::Done, &[]).early_death(), None);
    }

    #[test]
    fn an_early_death_is_retried_once_and_said() {
        let mut attempts = Vec::new();
        let (got, why) = retry_early_death(
            "t",
            |n| {
                attempts.push(n);
                Ok(n)
            },
            |&n| (n == 0).then(|| "panic".to_string()),
        )
        .unwrap();
        assert_eq!((got, why.as_deref(), attempts), (1, Some("panic"), vec![0, 1]));
        // A second early death is the result: no third boot.
        let mut count = 0;
        let (_, why) = retry_early_death(
            "t",
            |_| {
                count += 1;
                Ok(())
            },
            |_| Some("panic".into()),
        )
        .unwrap();
        assert_eq!((count, why.is_some()), (2, true));
        let (_, why) = retry_early_death("t", |_| Ok(()), |_| None).unwrap();
        assert_eq!(why, None);
    }
}
