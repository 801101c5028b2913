//! What a root process sees of a sealed guard's objects by id: every map,
//! program or link id in the kernel (bpf(*_GET_NEXT_ID)) and whether
//! bpf(*_GET_FD_BY_ID) opens it. The scenario picks the refused ids to try
//! bpftool on them, and the host counts them.

use std::io;

/// enum bpf_cmd (uapi linux/bpf.h): (GET_NEXT_ID, GET_FD_BY_ID) per kind.
fn commands(kind: &str) -> io::Result<(libc::c_long, libc::c_long)> {
    match kind {
        "prog" => Ok((11, 13)),
        "map" => Ok((12, 14)),
        "link" => Ok((31, 30)),
        _ => Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{kind}: not prog, map or link"))),
    }
}

/// union bpf_attr for GET_NEXT_ID and GET_FD_BY_ID: an id, the next id, open flags.
#[repr(C)]
#[derive(Default)]
struct IdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

fn bpf(command: libc::c_long, attr: &mut IdAttr) -> io::Result<i64> {
    // SAFETY: attr is a valid, writable union bpf_attr prefix of the size given.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, command, attr as *mut IdAttr, size_of::<IdAttr>()) };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// Prints `KIND ID ok` or `KIND ID errno=N` for every id of KIND; fails only
/// when the ids cannot be listed.
pub fn ids(kind: &str) -> io::Result<()> {
    let (next, by_id) = commands(kind)?;
    let mut id = 0;
    loop {
        let mut attr = IdAttr { id, ..IdAttr::default() };
        match bpf(next, &mut attr) {
            Ok(_) => id = attr.next_id,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Err(e) => return Err(io::Error::new(e.kind(), format!("bpf(GET_NEXT_ID) after {kind} {id}: {e}"))),
        }
        let mut attr = IdAttr { id, ..IdAttr::default() };
        match bpf(by_id, &mut attr) {
            Ok(fd) => {
                // SAFETY: a descriptor the kernel just gave this process.
                unsafe { libc::close(fd as i32) };
                println!("{kind} {id} ok");
            }
            Err(e) => println!("{kind} {id} errno={}", e.raw_os_error().unwrap_or(0)),
        }
    }
}
