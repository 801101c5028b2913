//! A user's own namespaces: the way an unprivileged process gets to call
//! mount(2), and with it to make the kernel request any file system type name
//! (get_fs_type runs before the user namespace's refusal of most types).

use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// unshare(CLONE_NEWUSER | CLONE_NEWNS), maps root in the new namespace to the
/// caller's uid and gid, then runs COMMAND: still the same uid to the kernel
/// outside (what module_request's uid is), but allowed to mount.
pub fn user_namespace(command: &[OsString]) -> io::Result<()> {
    // SAFETY: plain system calls on this process; results checked.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // SAFETY: unshare takes flags only.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) } != 0 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(err.kind(), format!("unshare(CLONE_NEWUSER|CLONE_NEWNS): {err}")));
    }
    let write = |file: &str, text: String| {
        std::fs::write(format!("/proc/self/{file}"), &text)
            .map_err(|e| io::Error::new(e.kind(), format!("writing {text:?} to /proc/self/{file}: {e}")))
    };
    write("setgroups", "deny".to_string())?;
    write("uid_map", format!("0 {uid} 1"))?;
    write("gid_map", format!("0 {gid} 1"))?;
    Err(Command::new(&command[0]).args(&command[1..]).exec())
}
