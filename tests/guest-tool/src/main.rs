//! `modtrace-guest`: the system calls of the vm-test scenario that no busybox
//! applet makes: a socket of a given family (module autoload by the kernel),
//! init_module(2) from memory, running a command inside a cgroup, and floods of
//! failed loads and of requests that must not hide the loads that matter.

use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

mod bench;

#[derive(Parser)]
#[command(name = "modtrace-guest", about = "System calls for modtrace's guest scenario")]
struct Cli {
    #[command(subcommand)]
    command: Action,
}

#[derive(Subcommand)]
enum Action {
    /// socket(FAMILY, TYPE, PROTOCOL); the kernel requests net-pf-FAMILY if no module has it.
    Socket {
        family: i32,
        #[arg(default_value_t = libc::SOCK_DGRAM)]
        kind: i32,
        #[arg(default_value_t = 0)]
        protocol: i32,
        /// Succeed only when socket() fails with this errno (the family's module
        /// loads, then the module refuses the protocol).
        #[arg(long)]
        expect_errno: Option<i32>,
    },
    /// init_module(2) with the bytes of an uncompressed .ko file.
    InitModule {
        file: PathBuf,
        #[arg(default_value = "")]
        params: String,
    },
    /// Moves itself into the cgroup v2 directory PATH, then runs COMMAND there.
    EnterCgroup {
        path: PathBuf,
        #[arg(required = true, trailing_var_arg = true)]
        command: Vec<OsString>,
    },
    /// finit_module(2) on /dev/null (EINVAL: not a regular file) in a loop for
    /// SECONDS, then prints `pid=P attempts=N failed=F`.
    SpamFailedLoads { seconds: u64 },
    /// socket(AF_ALG) in a loop for SECONDS: with no module for net-pf-38 each call
    /// makes the kernel request it again; prints `pid=P attempts=N failed=F`.
    SpamRequests { seconds: u64 },
    /// The storms and timers of `cargo xtask bench` (tests/bench/init).
    Bench {
        #[command(subcommand)]
        action: bench::Action,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Action::Socket { family, kind, protocol, expect_errno } => socket(family, kind, protocol, expect_errno),
        Action::InitModule { file, params } => init_module(&file, &params),
        Action::EnterCgroup { path, command } => enter_cgroup(&path, &command),
        Action::SpamFailedLoads { seconds } => spam_failed_loads(Duration::from_secs(seconds)),
        Action::SpamRequests { seconds } => spam_requests(Duration::from_secs(seconds)),
        Action::Bench { action } => bench::run(action),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("modtrace-guest: {err}");
            ExitCode::FAILURE
        }
    }
}

fn socket(family: i32, kind: i32, protocol: i32, expect_errno: Option<i32>) -> io::Result<()> {
    let call = format!("socket({family}, {kind}, {protocol})");
    // SAFETY: socket(2) takes plain integers; the descriptor is closed below.
    let fd = unsafe { libc::socket(family, kind, protocol) };
    if fd >= 0 {
        // SAFETY: fd is a descriptor this function just opened and owns.
        unsafe { libc::close(fd) };
        println!("{call} = {fd}");
        return match expect_errno {
            None => Ok(()),
            Some(errno) => Err(io::Error::other(format!("{call} succeeded; errno {errno} was expected"))),
        };
    }
    let err = io::Error::last_os_error();
    match expect_errno {
        Some(errno) if err.raw_os_error() == Some(errno) => {
            println!("{call} failed as expected: {err}");
            Ok(())
        }
        _ => Err(io::Error::new(err.kind(), format!("{call}: {err}"))),
    }
}

fn init_module(file: &Path, params: &str) -> io::Result<()> {
    let image = std::fs::read(file)?;
    let params = CString::new(params).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: image and params stay alive across the call; the kernel copies them.
    let ret = unsafe { libc::syscall(libc::SYS_init_module, image.as_ptr(), image.len(), params.as_ptr()) };
    if ret != 0 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(err.kind(), format!("init_module({}): {err}", file.display())));
    }
    println!("init_module({}) = 0", file.display());
    Ok(())
}

fn enter_cgroup(path: &Path, command: &[OsString]) -> io::Result<()> {
    std::fs::write(path.join("cgroup.procs"), std::process::id().to_string())?;
    // exec only returns on failure.
    Err(Command::new(&command[0]).args(&command[1..]).exec())
}

/// Calls `attempt` until `length` has passed, reading the clock every `batch`
/// calls; prints and checks the counts. `attempt` returns true when the call
/// failed, as it must.
fn spam(what: &str, length: Duration, batch: u32, mut attempt: impl FnMut() -> bool) -> io::Result<()> {
    let start = Instant::now();
    let (mut attempts, mut failed) = (0u64, 0u64);
    while start.elapsed() < length {
        for _ in 0..batch {
            attempts += 1;
            failed += u64::from(attempt());
        }
    }
    println!(
        "{what}: pid={} attempts={attempts} failed={failed} seconds={:.1}",
        std::process::id(),
        start.elapsed().as_secs_f64()
    );
    if failed != attempts {
        return Err(io::Error::other(format!("{} of {attempts} calls succeeded", attempts - failed)));
    }
    Ok(())
}

fn spam_failed_loads(length: Duration) -> io::Result<()> {
    let null = std::fs::File::open("/dev/null")?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&null);
    let empty = c"";
    // Fast calls: the clock is read once per batch so the calls are the load.
    spam("spam-failed-loads", length, 64, || {
        // SAFETY: fd stays open for the whole loop; params is a valid C string.
        unsafe { libc::syscall(libc::SYS_finit_module, fd, empty.as_ptr(), 0) != 0 }
    })
}

fn spam_requests(length: Duration) -> io::Result<()> {
    // Each call waits for the kernel's modprobe helper: slow enough to time each.
    spam("spam-requests", length, 1, || {
        // SAFETY: socket(2) takes plain integers; a descriptor it returns is closed.
        let fd = unsafe { libc::socket(libc::AF_ALG, libc::SOCK_SEQPACKET, 0) };
        if fd >= 0 {
            // SAFETY: fd was just returned by socket(2) and is owned here.
            unsafe { libc::close(fd) };
        }
        fd < 0
    })
}
