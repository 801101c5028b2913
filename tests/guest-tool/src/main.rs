//! `modtrace-guest`: the system calls of the vm-test scenario that no busybox
//! applet makes: a socket of a given family (module autoload by the kernel),
//! init_module(2) from memory, running a command inside a cgroup or as another
//! user, and floods of failed loads and of requests that must not hide the
//! loads that matter.

use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

mod alg;
mod bench;
mod decoy;
mod seal;
mod untrusted_flood;

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
        /// First fail a finit_module(2) of /dev/null (EINVAL), so that this
        /// process's failures are being folded when init_module runs.
        #[arg(long)]
        after_failed_load: bool,
    },
    /// Writes to OUT a copy of FILE (an uncompressed module named OWN) whose
    /// section 0 is named .gnu.linkonce.this_module and points at a struct
    /// module named DECOY: the kernel ignores section 0 and loads OWN.
    Section0Decoy { file: PathBuf, own: String, decoy: String, out: PathBuf },
    /// Moves itself into the cgroup v2 directory PATH, then runs COMMAND there.
    EnterCgroup {
        path: PathBuf,
        #[arg(required = true, trailing_var_arg = true)]
        command: Vec<OsString>,
    },
    /// Logs in as UID the way pam_loginuid does (writes /proc/self/loginuid, so
    /// the kernel starts an audit session), drops to UID (setgroups(0), setgid,
    /// setuid), then runs COMMAND.
    AsUser {
        uid: u32,
        #[arg(required = true, trailing_var_arg = true)]
        command: Vec<OsString>,
    },
    /// Runs COMMAND in a new user and mount namespace of this uid's own (root
    /// inside mapped to this uid), where it may call mount(2).
    UserNamespace {
        #[arg(required = true, trailing_var_arg = true)]
        command: Vec<OsString>,
    },
    /// For SECONDS at most, or until the file STOP exists, starts PARALLEL new
    /// processes at a time, each asking the kernel for BATCH file system types
    /// no one has ever asked for (mount(2) of PREFIX0, PREFIX1, ...: each a
    /// distinct fs-PREFIXn request, so nothing folds); says `flooding` on
    /// stderr once the first request returned and `round N started` once
    /// each round's processes run, and prints
    /// `pid=P processes=N attempts=A failed=F` at the end.
    SpamDistinctRequests { seconds: u64, batch: u32, parallel: u32, prefix: String, stop: Option<PathBuf> },
    /// One process of spam-distinct-requests: mount(2) of PREFIXn for n in
    /// FIRST..FIRST+COUNT, each of which must fail with ENODEV (also the
    /// scenario's user flood, run in a user-namespace).
    #[command(hide = true)]
    RequestBatch { prefix: String, first: u64, count: u32 },
    /// finit_module(2) on /dev/null (EINVAL: not a regular file) in a loop for
    /// SECONDS, then prints `pid=P attempts=N failed=F`.
    SpamFailedLoads { seconds: u64 },
    /// Two processes (or PROCESSES) pinned to CPU 0 take turns failing loads
    /// for SECONDS: each makes BURST finit_module(2) calls on /dev/null, then
    /// yields the CPU to the next. Each prints `pid=P attempts=N failed=F`.
    AlternateFailedLoads {
        seconds: u64,
        burst: u32,
        #[arg(long, default_value_t = 2)]
        processes: u32,
    },
    /// One of alternate-failed-loads' two processes.
    #[command(hide = true)]
    FailLoadsInTurn { seconds: u64, burst: u32 },
    /// socket(AF_ALG) in a loop for SECONDS: with no module for net-pf-38 each call
    /// makes the kernel request it again; prints `pid=P attempts=N failed=F`.
    SpamRequests { seconds: u64 },
    /// finit_module(2) on FILE COUNT times, with MODULE_INIT_COMPRESSED_FILE for
    /// a .ko.xz (a module already loaded: EEXIST; a refused file: EPERM);
    /// prints `finit-loop: count=N errors=E:N... micros_per_call=U`.
    FinitLoop { file: PathBuf, count: u32 },
    /// bind(2) of an AF_ALG socket to TYPE (skcipher, hash, ...) and NAME
    /// (e.g. lrw(cast6)): a template the kernel lacks makes its crypto
    /// manager's kernel thread request the modules for this task.
    AlgBind { kind: String, name: String },
    /// Every id of KIND (prog, map, link) and whether bpf(*_GET_FD_BY_ID) opens it:
    /// `KIND ID ok` or `KIND ID errno=N`.
    BpfIds { kind: String },
    /// The storms and timers of `cargo xtask bench` (tests/bench/init).
    Bench {
        #[command(subcommand)]
        action: bench::Action,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Action::Socket { family, kind, protocol, expect_errno } => socket(family, kind, protocol, expect_errno),
        Action::Section0Decoy { file, own, decoy, out } => {
            std::fs::read(&file).and_then(|image| decoy::section0_decoy(image, &own, &decoy)).and_then(|d| std::fs::write(&out, d))
        }
        Action::InitModule { file, params, after_failed_load } => {
            if after_failed_load {
                fail_a_load();
            }
            init_module(&file, &params)
        }
        Action::EnterCgroup { path, command } => enter_cgroup(&path, &command),
        Action::SpamFailedLoads { seconds } => spam_failed_loads(Duration::from_secs(seconds)),
        Action::AlternateFailedLoads { seconds, burst, processes } => alternate_failed_loads(seconds, burst, processes),
        Action::FailLoadsInTurn { seconds, burst } => {
            fail_loads("alternate-failed-loads", Duration::from_secs(seconds), burst, Some(burst))
        }
        Action::SpamRequests { seconds } => spam_requests(Duration::from_secs(seconds)),
        Action::AsUser { uid, command } => as_user(uid, &command),
        Action::UserNamespace { command } => untrusted_flood::user_namespace(&command),
        Action::SpamDistinctRequests { seconds, batch, parallel, prefix, stop } => {
            spam_distinct_requests(Duration::from_secs(seconds), batch, parallel, &prefix, stop.as_deref())
        }
        Action::RequestBatch { prefix, first, count } => request_batch(&prefix, first, count),
        Action::FinitLoop { file, count } => finit_loop(&file, count),
        Action::AlgBind { kind, name } => alg::bind(&kind, &name),
        Action::BpfIds { kind } => seal::ids(&kind),
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

/// One finit_module(2) of /dev/null, which fails (EINVAL: not a module file).
fn fail_a_load() {
    if let Ok(null) = std::fs::File::open("/dev/null") {
        // SAFETY: the descriptor is open for the call; params is a valid C string.
        let ret = unsafe { libc::syscall(libc::SYS_finit_module, std::os::fd::AsRawFd::as_raw_fd(&null), c"".as_ptr(), 0) };
        println!("finit_module(/dev/null) = {ret}: {}", io::Error::last_os_error());
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
    tally(what, "", start, attempts, failed)
}

/// Prints `WHAT: pid=P EXTRAattempts=N failed=F seconds=S`; every attempt must
/// have failed.
fn tally(what: &str, extra: &str, start: Instant, attempts: u64, failed: u64) -> io::Result<()> {
    println!(
        "{what}: pid={} {extra}attempts={attempts} failed={failed} seconds={:.1}",
        std::process::id(),
        start.elapsed().as_secs_f64()
    );
    if failed != attempts {
        return Err(io::Error::other(format!("{} of {attempts} calls did not fail as they must", attempts - failed)));
    }
    Ok(())
}

fn spam_failed_loads(length: Duration) -> io::Result<()> {
    // Fast calls: the clock is read once per batch so the calls are the load.
    fail_loads("spam-failed-loads", length, 64, None)
}

/// finit_module(2) on /dev/null (EINVAL) in a loop for `length`, the clock
/// read every `batch` calls, the CPU yielded every `yield_every` calls.
fn fail_loads(what: &str, length: Duration, batch: u32, yield_every: Option<u32>) -> io::Result<()> {
    let null = std::fs::File::open("/dev/null")?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&null);
    let empty = c"";
    let mut calls = 0u32;
    spam(what, length, batch, || {
        calls = calls.wrapping_add(1);
        if yield_every.is_some_and(|n| calls.checked_rem(n) == Some(0)) {
            // SAFETY: no arguments; it only gives up the CPU.
            unsafe { libc::sched_yield() };
        }
        // SAFETY: fd stays open for the whole loop; params is a valid C string.
        unsafe { libc::syscall(libc::SYS_finit_module, fd, empty.as_ptr(), 0) != 0 }
    })
}

/// Pins itself to CPU 0 (the children inherit it), then runs `processes`
/// fail-loads-in-turn processes side by side: their failures interleave on one
/// CPU (modtrace's per-CPU fold cache changes process at every turn), and each
/// process's repeats must stay its own.
fn alternate_failed_loads(seconds: u64, burst: u32, processes: u32) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes inside it.
    let pinned = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) == 0
    };
    if !pinned {
        return Err(io::Error::other(format!("sched_setaffinity(CPU 0): {}", io::Error::last_os_error())));
    }
    let me = std::env::current_exe()?;
    let args = ["fail-loads-in-turn".to_string(), seconds.to_string(), burst.to_string()];
    let children: Vec<_> = (0..processes).map(|_| Command::new(&me).args(&args).spawn()).collect::<io::Result<_>>()?;
    let mut failed = 0;
    for mut child in children {
        failed += u32::from(!child.wait()?.success());
    }
    match failed {
        0 => Ok(()),
        n => Err(io::Error::other(format!("{n} of the {processes} processes failed"))),
    }
}

/// The cost of one load decision: COUNT finit_module calls on one file, a
/// .ko.xz with MODULE_INIT_COMPRESSED_FILE (4), as kmod passes it: without
/// it the kernel refuses the file as no module (ENOEXEC) right after reading
/// it, which is no load to compare with.
fn finit_loop(file: &Path, count: u32) -> io::Result<()> {
    let f = std::fs::File::open(file)?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
    let flags = if file.extension().is_some_and(|e| e == "xz") { 4 } else { 0 };
    let empty = c"";
    let mut errors = std::collections::BTreeMap::new();
    let start = Instant::now();
    for _ in 0..count {
        // SAFETY: fd stays open for the loop; params is a valid C string.
        let ret = unsafe { libc::syscall(libc::SYS_finit_module, fd, empty.as_ptr(), flags) };
        let errno = if ret == 0 { 0 } else { io::Error::last_os_error().raw_os_error().unwrap_or(-1) };
        *errors.entry(errno).or_insert(0u32) += 1;
    }
    let micros = start.elapsed().as_secs_f64() * 1e6 / f64::from(count.max(1));
    let errors: Vec<String> = errors.iter().map(|(e, n)| format!("{e}:{n}")).collect();
    println!("finit-loop: file={} count={count} errors={} micros_per_call={micros:.1}", file.display(), errors.join(","));
    Ok(())
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

fn as_user(uid: u32, command: &[OsString]) -> io::Result<()> {
    std::fs::write("/proc/self/loginuid", uid.to_string())
        .map_err(|e| io::Error::new(e.kind(), format!("writing /proc/self/loginuid: {e}")))?;
    // SAFETY: plain system calls on this process's credentials; each result is checked.
    let dropped = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0 && libc::setgid(uid) == 0 && libc::setuid(uid) == 0
    };
    if !dropped {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(err.kind(), format!("dropping to uid {uid}: {err}")));
    }
    Err(Command::new(&command[0]).args(&command[1..]).exec())
}

fn spam_distinct_requests(length: Duration, batch: u32, parallel: u32, prefix: &str, stop: Option<&Path>) -> io::Result<()> {
    let start = Instant::now();
    let me = std::env::current_exe()?;
    let (mut processes, mut attempts, mut failed, mut next) = (0u64, 0u64, 0u64, 0u64);
    let mut batches = 0u64;
    while start.elapsed() < length && !stop.is_some_and(Path::exists) {
        let mut children = Vec::new();
        for _ in 0..parallel {
            let child = Command::new(&me)
                .args(["request-batch", prefix, &next.to_string(), &batch.to_string()])
                .spawn()?;
            children.push(child);
            next += u64::from(batch);
        }
        // Every request of this round comes after this line.
        batches += 1;
        eprintln!("spam-distinct-requests: round {batches} started");
        for mut child in children {
            let ok = child.wait()?.success();
            processes += 1;
            attempts += u64::from(batch);
            // A batch that did not fail every call says so on its stderr.
            failed += if ok { u64::from(batch) } else { 0 };
        }
    }
    tally("spam-distinct-requests", &format!("processes={processes} "), start, attempts, failed)
}

fn request_batch(prefix: &str, first: u64, count: u32) -> io::Result<()> {
    let target = c"/mnt";
    let source = c"none";
    for n in first..first + u64::from(count) {
        let fstype = CString::new(format!("{prefix}{n}")).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: valid C strings that outlive the call; no data argument.
        let ret = unsafe { libc::mount(source.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
        let err = io::Error::last_os_error();
        if ret == 0 || err.raw_os_error() != Some(libc::ENODEV) {
            return Err(io::Error::other(format!("mount -t {prefix}{n}: {ret} ({err}), ENODEV expected")));
        }
        if n == 0 {
            // The flood's first request has been made: what comes next is inside it.
            eprintln!("spam-distinct-requests: flooding");
        }
    }
    Ok(())
}
