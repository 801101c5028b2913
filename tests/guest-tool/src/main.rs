//! `modtrace-guest`: the system calls of the vm-test scenario that no busybox
//! applet makes: a socket of a given family (module autoload by the kernel),
//! init_module(2) from memory, and running a command inside a cgroup.

use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "modtrace-guest", about = "System calls for modtrace's guest scenario")]
struct Cli {
    #[command(subcommand)]
    command: Action,
}

#[derive(Subcommand)]
enum Action {
    /// socket(FAMILY, TYPE, 0); the kernel requests net-pf-FAMILY if no module has it.
    Socket {
        family: i32,
        #[arg(default_value_t = libc::SOCK_DGRAM)]
        kind: i32,
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
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Action::Socket { family, kind } => socket(family, kind),
        Action::InitModule { file, params } => init_module(&file, &params),
        Action::EnterCgroup { path, command } => enter_cgroup(&path, &command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("modtrace-guest: {err}");
            ExitCode::FAILURE
        }
    }
}

fn socket(family: i32, kind: i32) -> io::Result<()> {
    // SAFETY: socket(2) takes plain integers; the descriptor is closed below.
    let fd = unsafe { libc::socket(family, kind, 0) };
    if fd < 0 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(err.kind(), format!("socket({family}, {kind}, 0): {err}")));
    }
    println!("socket({family}, {kind}, 0) = {fd}");
    // SAFETY: fd is a descriptor this function just opened and owns.
    unsafe { libc::close(fd) };
    Ok(())
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
