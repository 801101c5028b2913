//! `alg-bind TYPE NAME`: bind(2) of an AF_ALG socket to an algorithm, as a
//! user's program does to use the kernel's crypto. A template instance the
//! kernel lacks (e.g. lrw(cast6)) makes the crypto manager's kernel thread
//! request the template's and the inner algorithm's modules while this task
//! waits.

use std::io;

/// struct sockaddr_alg (uapi linux/if_alg.h): family, type[14], feat, mask, name[64].
#[repr(C)]
struct SockaddrAlg {
    family: u16,
    kind: [u8; 14],
    feat: u32,
    mask: u32,
    name: [u8; 64],
}

/// Binds an AF_ALG socket to `kind` (skcipher, hash, ...) and `name`; prints
/// the result. The bind's own error is the kernel's answer, reported as is.
pub fn bind(kind: &str, name: &str) -> io::Result<()> {
    let mut addr = SockaddrAlg { family: libc::AF_ALG as u16, kind: [0; 14], feat: 0, mask: 0, name: [0; 64] };
    copy_nul_terminated(&mut addr.kind, kind)?;
    copy_nul_terminated(&mut addr.name, name)?;
    // SAFETY: socket(2) takes plain integers.
    let fd = unsafe { libc::socket(libc::AF_ALG, libc::SOCK_SEQPACKET, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let len = std::mem::size_of::<SockaddrAlg>() as libc::socklen_t;
    // SAFETY: addr is a valid sockaddr_alg of `len` bytes; fd is ours.
    let ret = unsafe { libc::bind(fd, (&addr as *const SockaddrAlg).cast(), len) };
    let result = if ret == 0 { Ok(()) } else { Err(io::Error::last_os_error()) };
    // SAFETY: fd was returned by socket(2) above and is closed once.
    unsafe { libc::close(fd) };
    match &result {
        Ok(()) => println!("alg-bind {kind} {name}: bound"),
        Err(e) => println!("alg-bind {kind} {name}: {e}"),
    }
    result
}

fn copy_nul_terminated(dest: &mut [u8], s: &str) -> io::Result<()> {
    if s.len() >= dest.len() || s.contains('\0') {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{s:?} does not fit sockaddr_alg")));
    }
    dest[..s.len()].copy_from_slice(s.as_bytes());
    Ok(())
}
