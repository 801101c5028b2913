//! One boot of the Debian system image under QEMU: streams the console, notes
//! when the guest's done marker comes, and waits for the guest to power off.

use std::path::Path;
use std::process::{Child, Command};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::harness::qemu::{self, kill, INIT_DEADLINE, INIT_MARKER};

/// Printed by tests/system/common.sh just before `systemctl poweroff`.
pub const DONE_MARKER: &str = "MODTRACE-SYSTEM-DONE";
/// What initramfs-tools' init prints first (the upgrade's boot 3 boots the
/// initramfs the kernel package built, not the test's own).
const INITRAMFS_TOOLS_MARKER: &str = "Loading, please wait";
/// Lines after which the boot cannot go on: stop at once.
const FAILURE_LINES: [&str; 5] = [
    "Gave up waiting for root file system device",
    "Kernel panic",
    "MODTRACE-SYSTEM-INITRAMFS-FAILED",
    "You are in emergency mode",
    "Give root password for maintenance",
];
/// How long a powering-off guest may take once the marker is out.
const POWEROFF_GRACE: Duration = Duration::from_secs(90);
/// Console lines still read after a failure line (they say why).
const FAILURE_TAIL: Duration = Duration::from_secs(3);
const CMDLINE: &str = "console=ttyS0,115200 root=/dev/vda rw panic=-1 loglevel=4";

pub struct Machine<'a> {
    pub label: &'a str,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub image: &'a Path,
    pub timeout: Duration,
    /// QEMU arguments of the suite's own devices (the desktop's: desktop.rs).
    pub devices: &'a [&'a str],
    /// When set, only console lines holding this prefix are shown (what follows
    /// it); all lines are kept either way.
    pub only: Option<&'a str>,
    pub extra: Extra,
}

/// What one boot adds: QEMU arguments, kernel command-line words.
#[derive(Debug, Default, Clone)]
pub struct Extra {
    pub qemu: Vec<&'static str>,
    pub append: Vec<String>,
    /// QEMU's `-vga` card instead of `std` (bochs's): `cirrus` where the suite
    /// needs a driver renamed between its kernels (upgrade::vga).
    pub vga: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The marker came and QEMU exited (the guest powered off).
    PoweredOff,
    /// The marker came but the guest did not power off in time.
    Hung,
    /// QEMU exited without the marker.
    NoMarker(String),
    /// A panic, emergency mode, or the initramfs could not mount the root.
    Failed(String),
    /// The initramfs's init did not start within INIT_DEADLINE; QEMU killed.
    NoInit,
    TimedOut,
}

pub struct Run {
    pub outcome: Outcome,
    pub console: Vec<String>,
    /// From QEMU's start to the done marker.
    pub to_marker: Option<Duration>,
    /// From QEMU's start to its exit (or kill).
    pub elapsed: Duration,
}

impl Run {
    /// Why this boot died before the initramfs's init ran, if it did: such a
    /// boot changed nothing on the disk and may be tried again.
    pub fn early_death(&self) -> Option<String> {
        if self.outcome == Outcome::PoweredOff || qemu::init_ran(&self.console) {
            return None;
        }
        Some(format!("{:?}", self.outcome))
    }

    /// Ok when the guest did all it had to and powered off.
    pub fn verdict(&self) -> Result<(), String> {
        match &self.outcome {
            Outcome::PoweredOff => Ok(()),
            Outcome::Hung => {
                Err(format!("the done marker came but the guest had not powered off {POWEROFF_GRACE:?} later"))
            }
            Outcome::NoMarker(how) => Err(format!("the guest stopped without its done marker ({how})")),
            Outcome::Failed(line) => Err(format!("the boot failed: {line}")),
            Outcome::NoInit => Err(format!("the initramfs's init did not start within {INIT_DEADLINE:?}")),
            Outcome::TimedOut => Err(format!("timed out after {:.0?}; QEMU killed", self.elapsed)),
        }
    }
}

impl Machine<'_> {
    fn command(&self) -> Command {
        let mut cmd = qemu::command(2048, qemu::Threads::Single);
        // q35 boots quicker than pc (no floppy, no ata_piix). A VGA card, a
        // virtio NIC and a virtio RNG give udev's coldplug some drivers to load.
        cmd.args(["-machine", "q35"])
            .args(["-vga", self.extra.vga.unwrap_or("std"), "-nic", "user,model=virtio-net-pci", "-device", "virtio-rng-pci"])
            .args(self.devices)
            .arg("-drive")
            .arg(format!("file={},format=raw,if=virtio", self.image.display()))
            .arg("-kernel")
            .arg(self.kernel)
            .arg("-initrd")
            .arg(self.initrd)
            .args(&self.extra.qemu)
            .arg("-append")
            .arg([CMDLINE.to_string()].iter().chain(&self.extra.append).cloned().collect::<Vec<_>>().join(" "));
        cmd
    }

    pub fn run(&self) -> Result<Run> {
        let start = Instant::now();
        let (mut child, lines) = qemu::start_qemu(&mut self.command())?;
        let mut console = Vec::new();
        let mut to_marker = None;
        let mut init_seen = false;
        let mut deadline = start + self.timeout;
        let outcome = loop {
            let until = if init_seen { deadline } else { deadline.min(start + INIT_DEADLINE) };
            let line = match lines.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    kill(&mut child);
                    break match (to_marker, init_seen) {
                        (Some(_), _) => Outcome::Hung,
                        (None, false) => Outcome::NoInit,
                        (None, true) => Outcome::TimedOut,
                    };
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = wait(&mut child);
                    break if to_marker.is_some() { Outcome::PoweredOff } else { Outcome::NoMarker(status) };
                }
            };
            self.echo(&line);
            init_seen |= line.contains(INIT_MARKER) || line.contains(INITRAMFS_TOOLS_MARKER);
            if to_marker.is_none() && line.contains(DONE_MARKER) {
                to_marker = Some(start.elapsed());
                deadline = Instant::now() + POWEROFF_GRACE;
            } else if let Some(failure) = FAILURE_LINES.iter().find(|f| line.contains(*f)) {
                let failure = format!("{failure}: {line}");
                console.push(line);
                let tail_end = Instant::now() + FAILURE_TAIL;
                while let Ok(more) = lines.recv_timeout(tail_end.saturating_duration_since(Instant::now())) {
                    self.echo(&more);
                    console.push(more);
                }
                kill(&mut child);
                break Outcome::Failed(failure);
            }
            console.push(line);
        };
        Ok(Run { outcome, console, to_marker, elapsed: start.elapsed() })
    }
}

impl Machine<'_> {
    fn echo(&self, line: &str) {
        match self.only {
            None => println!("[{}] {line}", self.label),
            Some(prefix) => {
                if let Some((_, shown)) = line.split_once(prefix) {
                    println!("{shown}");
                }
            }
        }
    }
}

fn wait(child: &mut Child) -> String {
    match child.wait() {
        Ok(status) => format!("QEMU exited: {status}"),
        Err(err) => format!("cannot wait for QEMU: {err}"),
    }
}
