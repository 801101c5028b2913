//! `modtrace-guest bench ...`: the storms `cargo xtask bench` times in the
//! guest, and a launcher that times a tracer's start. Each prints one line of
//! `key=value` figures for tests/bench/init to pass on.

use std::io::{self, BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

#[derive(clap::Subcommand)]
pub enum Action {
    /// COUNT failed finit_module(2) calls on /dev/null (EINVAL); prints ns/call.
    FailedLoads { count: u64 },
    /// COUNT socket(AF_ALG) calls, each a request for net-pf-38 (absent); prints ms/call.
    Requests { count: u64 },
    /// PROCESSES processes, two at a time, each making REQUESTS socket() calls
    /// of distinct inet protocols (each call requests two aliases) and
    /// FAILED_LOADS failed loads: little to fold, by alias or by process.
    Flood { processes: u32, requests: u32, failed_loads: u32 },
    /// Runs COMMAND and times its start: launch to the first line containing
    /// READY, and to the first containing EVENT while a failed load is made
    /// every 10 ms (with --fire-early), or whether one failed load made right
    /// after READY shows up within 3 s; with --idle-seconds, the CPU ticks it
    /// uses once ready, or once a line containing SETTLED shows up and the
    /// tracer is down to one thread (the work a tracer does after its ready
    /// line is not idling). Then stops it with SIGINT and prints its peak RSS.
    Launch {
        #[arg(long)]
        ready: String,
        #[arg(long)]
        settled: Option<String>,
        #[arg(long)]
        event: String,
        #[arg(long)]
        fire_early: bool,
        #[arg(long)]
        idle_seconds: Option<u64>,
        #[arg(required = true, trailing_var_arg = true)]
        command: Vec<String>,
    },
    /// Every eBPF program loaded now: name, translated size and the
    /// instructions the verifier processed (its time goes with them).
    Programs,
    /// COUNT loads of FILE's module and its removal (delete_module), timed
    /// as a whole; prints us/load. With --image, init_module(2) of the
    /// file's bytes (an uncompressed .ko: what Debian 12's kmod does with a
    /// .ko.xz it decompressed); else finit_module(2) of the file, with
    /// MODULE_INIT_COMPRESSED_FILE for a .ko.xz (what newer kmod does).
    Loads {
        count: u32,
        file: std::path::PathBuf,
        /// The module's name, for delete_module.
        module: String,
        #[arg(long)]
        image: bool,
        /// Each load from a new child process, as each modprobe is: the
        /// guard's decisions then never fold, each is sent with its header.
        #[arg(long)]
        fork: bool,
    },
    /// COUNT open(O_RDONLY) and close of the files in DIR, round robin:
    /// every open is a path walk and a read permission check. Prints ns/open.
    Opens { count: u64, dir: std::path::PathBuf },
}

pub fn run(action: Action) -> io::Result<()> {
    match action {
        Action::FailedLoads { count } => failed_loads(count),
        Action::Requests { count } => requests(count),
        Action::Flood { processes, requests, failed_loads } => flood(processes, requests, failed_loads),
        Action::Launch { ready, settled, event, fire_early, idle_seconds, command } => {
            let idle = idle_seconds.map(|seconds| Idle { seconds, after: settled });
            launch(&ready, &event, fire_early, idle, &command)
        }
        Action::Programs => programs(),
        Action::Loads { count, file, module, image, fork } => loads(count, &file, &module, image, fork),
        Action::Opens { count, dir } => opens(count, &dir),
    }
}

/// One line per loaded program: `program name=N xlated=B verified_insns=I`.
fn programs() -> io::Result<()> {
    for info in aya::programs::loaded_programs() {
        let info = info.map_err(io::Error::other)?;
        let count = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
        println!(
            "program name={} xlated={} verified_insns={}",
            info.name_as_str().unwrap_or("?"),
            count(info.size_translated()),
            count(info.verified_instruction_count())
        );
    }
    Ok(())
}

/// finit_module(2) flags (uapi linux/module.h).
const MODULE_INIT_COMPRESSED_FILE: u32 = 4;

/// One way of loading a module: a file descriptor or an image in memory.
enum Load {
    File(std::fs::File, u32),
    Image(Vec<u8>),
}

impl Load {
    fn call(&self) -> io::Result<()> {
        let params = c"";
        let ret = match self {
            // SAFETY: the descriptor is open; params is a valid C string.
            Load::File(f, flags) => unsafe {
                let fd = std::os::fd::AsRawFd::as_raw_fd(f);
                libc::syscall(libc::SYS_finit_module, fd, params.as_ptr(), *flags)
            },
            // SAFETY: the image and params outlive the call; the kernel copies them.
            Load::Image(image) => unsafe {
                libc::syscall(libc::SYS_init_module, image.as_ptr(), image.len(), params.as_ptr())
            },
        };
        if ret != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

fn delete_module(name: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: name is a valid C string; O_NONBLOCK as rmmod passes it.
    if unsafe { libc::syscall(libc::SYS_delete_module, name.as_ptr(), libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `how` in a child process, which exits with the errno (0: loaded).
fn load_in_child(how: &Load) -> io::Result<()> {
    // SAFETY: the child makes one system call and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let code = how.call().err().and_then(|e| e.raw_os_error()).unwrap_or(0);
        // SAFETY: leaves the forked child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: pid is this process's child; status is a valid pointer.
    if unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    match libc::WEXITSTATUS(status) {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Loads and removes the module COUNT times; any failure ends the storm,
/// since a refused or failed load is not the allowed load being timed.
fn loads(count: u32, file: &std::path::Path, module: &str, image: bool, fork: bool) -> io::Result<()> {
    let how = if image {
        Load::Image(std::fs::read(file)?)
    } else {
        let compressed = file.extension().is_some_and(|e| e == "xz" || e == "zst" || e == "gz");
        Load::File(std::fs::File::open(file)?, if compressed { MODULE_INIT_COMPRESSED_FILE } else { 0 })
    };
    let name = std::ffi::CString::new(module).map_err(io::Error::other)?;
    let start = Instant::now();
    for i in 0..count {
        let loaded = if fork { load_in_child(&how) } else { how.call() };
        loaded.map_err(|e| io::Error::new(e.kind(), format!("load {i} of {}: {e}", file.display())))?;
        delete_module(&name).map_err(|e| io::Error::new(e.kind(), format!("removing {module} ({i}): {e}")))?;
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(count.max(1));
    let call = if image { "init_module" } else { "finit_module" };
    let by = if fork { "child" } else { "self" };
    println!("loads pid={} calls={count} call={call} by={by} us_per_load={us:.1}", std::process::id());
    Ok(())
}

fn opens(count: u64, dir: &std::path::Path) -> io::Result<()> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path().into_os_string().into_encoded_bytes();
        paths.push(std::ffi::CString::new(path).map_err(io::Error::other)?);
    }
    if paths.is_empty() {
        return Err(io::Error::other(format!("{} holds no file", dir.display())));
    }
    let start = Instant::now();
    for i in 0..count {
        let path = &paths[i as usize % paths.len()];
        // SAFETY: a valid C string; the descriptor is closed at once.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by open(2) and is owned here.
        unsafe { libc::close(fd) };
    }
    let ns = start.elapsed().as_nanos() as f64 / count.max(1) as f64;
    println!("opens pid={} calls={count} files={} ns_per_open={ns:.0}", std::process::id(), paths.len());
    Ok(())
}

/// finit_module on /dev/null: the kernel refuses it (EINVAL) after the probes ran.
fn failed_load(null: i32) -> bool {
    // SAFETY: null is an open descriptor; params is a valid C string.
    unsafe { libc::syscall(libc::SYS_finit_module, null, c"".as_ptr(), 0) != 0 }
}

fn open_null() -> io::Result<std::fs::File> {
    std::fs::File::open("/dev/null")
}

fn failed_loads(count: u64) -> io::Result<()> {
    let null = open_null()?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&null);
    let start = Instant::now();
    let failed = (0..count).filter(|_| failed_load(fd)).count() as u64;
    let ns = start.elapsed().as_nanos() as f64 / count as f64;
    println!("failed-loads pid={} calls={count} failed={failed} ns_per_call={ns:.0}", std::process::id());
    check_all_failed(count, failed)
}

fn check_all_failed(count: u64, failed: u64) -> io::Result<()> {
    if failed != count {
        return Err(io::Error::other(format!("{} of {count} calls succeeded", count - failed)));
    }
    Ok(())
}

/// socket(); a descriptor it returns is closed. True when it failed.
fn socket(family: i32, kind: i32, protocol: i32) -> bool {
    // SAFETY: socket(2) takes plain integers.
    let fd = unsafe { libc::socket(family, kind, protocol) };
    if fd >= 0 {
        // SAFETY: fd was just returned by socket(2) and is owned here.
        unsafe { libc::close(fd) };
    }
    fd < 0
}

fn requests(count: u64) -> io::Result<()> {
    let start = Instant::now();
    let failed = (0..count).filter(|_| socket(libc::AF_ALG, libc::SOCK_SEQPACKET, 0)).count() as u64;
    let ms = start.elapsed().as_secs_f64() * 1000.0 / count as f64;
    println!("requests pid={} calls={count} failed={failed} ms_per_call={ms:.3}", std::process::id());
    check_all_failed(count, failed)
}

/// Inet protocols with no module in the guest (a datagram socket of each makes
/// the kernel request net-pf-2-proto-P-type-2, then net-pf-2-proto-P).
fn unknown_protocol(i: u32) -> i32 {
    let known = [1, 6, 17, 58, 132, 136];
    let candidates: Vec<i32> = (2..255).filter(|p| !known.contains(p)).collect();
    candidates[i as usize % candidates.len()]
}

fn flood(processes: u32, per_process: u32, fails: u32) -> io::Result<()> {
    let start = Instant::now();
    let mut running = Vec::new();
    for p in 0..processes {
        if running.len() == 2 {
            wait_child(running.remove(0))?;
        }
        // SAFETY: the child only makes system calls and exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            let null = open_null().map(|f| std::os::fd::IntoRawFd::into_raw_fd(f)).unwrap_or(-1);
            for i in 0..per_process {
                socket(libc::AF_INET, libc::SOCK_DGRAM, unknown_protocol(p * per_process + i));
            }
            for _ in 0..fails {
                failed_load(null);
            }
            // SAFETY: leaves the forked child without running the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        running.push(pid);
    }
    for pid in running {
        wait_child(pid)?;
    }
    println!(
        "flood processes={processes} sockets={} failed_loads={} seconds={:.2}",
        processes * per_process,
        processes * fails,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn wait_child(pid: i32) -> io::Result<()> {
    let mut status = 0;
    // SAFETY: pid is a child of this process; status is a valid pointer.
    if unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Lines of a child's stdout and stderr, with the time each arrived.
fn lines_of(pipe: impl Read + Send + 'static, tx: mpsc::Sender<(Instant, String)>) {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
}

/// The idle window: its length, and the line it waits for first.
struct Idle {
    seconds: u64,
    after: Option<String>,
}

fn launch(ready: &str, event: &str, fire_early: bool, idle: Option<Idle>, command: &[String]) -> io::Result<()> {
    let null = open_null()?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&null);
    let start = Instant::now();
    let mut child =
        Command::new(&command[0]).args(&command[1..]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let (tx, rx) = mpsc::channel();
    lines_of(child.stdout.take().expect("piped"), tx.clone());
    lines_of(child.stderr.take().expect("piped"), tx);
    let firing = Arc::new(AtomicBool::new(fire_early));
    let firer = fire_early.then(|| {
        let firing = firing.clone();
        thread::spawn(move || {
            while firing.load(Ordering::Relaxed) {
                failed_load(fd);
                thread::sleep(Duration::from_millis(10));
            }
        })
    });
    let ms = |t: Instant| format!("{:.0}", (t - start).as_secs_f64() * 1000.0);
    eprintln!("bench launch: {} started", command[0]);
    let (mut ready_at, mut event_at, mut fired_after_ready) = (None, None, None);
    let settled_line = idle.as_ref().and_then(|i| i.after.as_deref());
    let mut settled = false;
    let deadline = start + Duration::from_secs(60);
    while Instant::now() < deadline {
        let (at, line) = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(got) => got,
            // The command closed its output: it exited.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if fired_after_ready.is_some_and(|f: Instant| f.elapsed() > Duration::from_secs(3)) {
                    break;
                }
                continue;
            }
        };
        settled |= settled_line.is_some_and(|l| line.contains(l));
        if ready_at.is_none() && line.contains(ready) {
            ready_at = Some(at);
            if !fire_early {
                failed_load(fd);
                fired_after_ready = Some(Instant::now());
            }
        }
        if event_at.is_none() && line.contains(event) && (fire_early || fired_after_ready.is_some()) {
            event_at = Some(at);
        }
        if ready_at.is_some() && event_at.is_some() {
            break;
        }
    }
    eprintln!("bench launch: ready {:?}, event {:?}", ready_at.map(ms), event_at.map(ms));
    firing.store(false, Ordering::Relaxed);
    if let Some(f) = firer {
        let _ = f.join();
    }
    let pid = child.id();
    let idle_ticks = match (idle.as_ref(), ready_at) {
        (Some(idle), Some(_)) => {
            if let (Some(line), false) = (&idle.after, settled) {
                settled = wait_for_line(&rx, line, Duration::from_secs(30));
            }
            if idle.after.is_some() {
                // The thread that did the work has to be gone too: an exiting
                // thread's CPU time lands on its process's count as it exits
                // (46 ticks in one window that had no thread running).
                settled &= wait_single_threaded(pid, Duration::from_secs(10));
            }
            let before = cpu_ticks(pid)?;
            eprintln!("bench launch: idle from, by thread: {}", thread_ticks(pid));
            thread::sleep(Duration::from_secs(idle.seconds));
            eprintln!("bench launch: idle to, by thread: {}", thread_ticks(pid));
            Some(cpu_ticks(pid)? - before)
        }
        _ => None,
    };
    let rss = peak_rss_kib(pid).unwrap_or(0);
    let stopped = stop(&mut child)?;
    let mut out =
        format!("launch ready_ms={} peak_rss_kib={rss} stopped={stopped}", ready_at.map(ms).unwrap_or("none".into()));
    if fire_early {
        out += &format!(" first_event_ms={}", event_at.map(ms).unwrap_or("none".into()));
    } else {
        out += &format!(" seen_after_ready={}", u8::from(event_at.is_some()));
    }
    if let Some(ticks) = idle_ticks {
        out += &format!(" idle_ticks={ticks}");
        if settled_line.is_some() {
            out += &format!(" settled={}", u8::from(settled));
        }
    }
    println!("{out}");
    Ok(())
}

/// Whether the process is down to one thread within `limit`.
fn wait_single_threaded(pid: u32, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0);
        if threads == 1 {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Whether a line containing `wanted` arrives within `limit`.
fn wait_for_line(rx: &mpsc::Receiver<(Instant, String)>, wanted: &str, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok((_, line)) if line.contains(wanted) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

/// SIGINT, then SIGKILL if it has not exited 10 s later; says which ended it.
fn stop(child: &mut std::process::Child) -> io::Result<&'static str> {
    // SAFETY: the pid is this process's child, not yet reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if child.try_wait()?.is_some() {
            return Ok("sigint");
        }
        thread::sleep(Duration::from_millis(50));
    }
    child.kill()?;
    child.wait()?;
    Ok("sigkill")
}

/// Each live thread's `tid comm ticks`, for the console: where idle ticks went.
fn thread_ticks(pid: u32) -> String {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return String::new() };
    let mut out = Vec::new();
    for task in tasks.filter_map(Result::ok) {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let ticks = stat_ticks(&path.join("stat")).unwrap_or(0);
        out.push(format!("{} {} {ticks}", task.file_name().to_string_lossy(), comm.trim()));
    }
    out.join(", ")
}

/// utime + stime of a process, in clock ticks (/proc/PID/stat fields 14 and 15).
fn cpu_ticks(pid: u32) -> io::Result<u64> {
    stat_ticks(std::path::Path::new(&format!("/proc/{pid}/stat")))
}

fn stat_ticks(path: &std::path::Path) -> io::Result<u64> {
    let stat = std::fs::read_to_string(path)?;
    // The command name may hold spaces: count fields after its closing parenthesis.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok(field(14) + field(15))
}

/// VmHWM of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
