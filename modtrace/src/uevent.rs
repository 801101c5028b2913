//! Kernel uevents (NETLINK_KOBJECT_UEVENT): which device a udev worker was
//! handling when it loaded a module. udevd loads drivers for a device's MODALIAS;
//! the kernel broadcast that device's uevent before udevd saw it, so it is always
//! waiting in this socket by the time the load reaches userspace.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
};

/// One kernel uevent, the fields modtrace keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    pub action: String,
    pub devpath: String,
    pub subsystem: Option<String>,
    pub modalias: Option<String>,
}

/// Parses `ACTION@DEVPATH\0KEY=VALUE\0...`. Messages from udevd itself (which
/// start with "libudev") and malformed ones give None.
pub fn parse(buf: &[u8]) -> Option<Uevent> {
    let mut fields = buf.split(|&b| b == 0).filter(|f| !f.is_empty());
    let head = std::str::from_utf8(fields.next()?).ok()?;
    let (_, path) = head.split_once('@')?;
    let mut ev = Uevent { action: String::new(), devpath: path.to_string(), subsystem: None, modalias: None };
    for field in fields {
        let Ok(text) = std::str::from_utf8(field) else { continue };
        let Some((key, value)) = text.split_once('=') else { continue };
        match key {
            "ACTION" => ev.action = value.to_string(),
            "DEVPATH" => ev.devpath = value.to_string(),
            "SUBSYSTEM" => ev.subsystem = Some(value.to_string()),
            "MODALIAS" => ev.modalias = Some(value.to_string()),
            _ => {}
        }
    }
    (!ev.action.is_empty()).then_some(ev)
}

/// A non-blocking socket on the kernel's uevent multicast group.
pub struct UeventSocket {
    fd: OwnedFd,
}

const KERNEL_GROUP: u32 = 1;
/// Room for a coldplug burst (thousands of events) while the loop is busy.
const RECEIVE_BUFFER: libc::c_int = 8 * 1024 * 1024;

impl UeventSocket {
    pub fn open() -> io::Result<UeventSocket> {
        let flags = libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
        // SAFETY: plain socket(2); the result is checked before use.
        let raw = unsafe { libc::socket(libc::AF_NETLINK, flags, libc::NETLINK_KOBJECT_UEVENT) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        set_receive_buffer(&fd);
        bind_kernel_group(&fd)?;
        Ok(UeventSocket { fd })
    }

    /// The next queued uevent; Ok(None) when the queue is empty.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Uevent>> {
        loop {
            // SAFETY: `buf` is valid for `buf.len()` bytes.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let err = io::Error::last_os_error();
                return match err.kind() {
                    io::ErrorKind::WouldBlock => Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(err),
                };
            }
            if let Some(ev) = parse(&buf[..n as usize]) {
                return Ok(Some(ev));
            }
        }
    }
}

impl AsRawFd for UeventSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn set_receive_buffer(fd: &OwnedFd) {
    let size = RECEIVE_BUFFER;
    // SO_RCVBUFFORCE passes the rmem_max limit (root); a smaller buffer still works.
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: `size` outlives the call and its length is given.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

fn bind_kernel_group(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_nl.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr.nl_groups = KERNEL_GROUP;
    // SAFETY: `addr` is a sockaddr_nl of the length given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_add_event_with_modalias() {
        let msg = b"add@/devices/pci0000:00/0000:00:03.0\0ACTION=add\0DEVPATH=/devices/pci0000:00/0000:00:03.0\0SUBSYSTEM=pci\0MODALIAS=pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00\0SEQNUM=1234\0";
        let ev = parse(msg).unwrap();
        assert_eq!(ev.action, "add");
        assert_eq!(ev.devpath, "/devices/pci0000:00/0000:00:03.0");
        assert_eq!(ev.subsystem.as_deref(), Some("pci"));
        assert_eq!(ev.modalias.as_deref(), Some("pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"));
    }

    #[test]
    fn udevd_rebroadcasts_and_garbage_are_ignored() {
        assert_eq!(parse(b"libudev\0\xfe\xed\xca\xfe"), None);
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"no-at-sign\0ACTION=add\0"), None);
        assert_eq!(parse(b"add@/x\0"), None, "no ACTION field");
        let ev = parse(b"remove@/devices/virtual/net/lo\0ACTION=remove\0\xff\xfe=bad\0").unwrap();
        assert_eq!((ev.action.as_str(), ev.modalias), ("remove", None));
    }
}
