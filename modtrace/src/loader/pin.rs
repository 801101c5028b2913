//! Pinned BPF objects opened the way a sealed guard still allows (read-only,
//! by pin), what the kernel says of an open object (fdinfo), and which links
//! exist (by id, without opening any).

use std::collections::BTreeSet;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use aya::maps::{Map, MapData, PerCpuArray};

/// uapi linux/bpf.h: enum bpf_cmd, and BPF_F_RDONLY.
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_LINK_GET_NEXT_ID: libc::c_long = 31;
const BPF_F_RDONLY: u32 = 1 << 3;

/// bpf(BPF_OBJ_GET) of a pin, read-only if asked (aya opens pins read-write,
/// which a sealed guard refuses for its counters).
pub fn obj_get(path: &Path, read_only: bool) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct ObjGet {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
    }
    let name = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let file_flags = if read_only { BPF_F_RDONLY } else { 0 };
    let attr = ObjGet { pathname: name.as_ptr() as u64, bpf_fd: 0, file_flags };
    // SAFETY: attr and the name it points to outlive the call; the size is attr's.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_OBJ_GET, &attr as *const ObjGet, size_of::<ObjGet>()) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: BPF_OBJ_GET returned a new descriptor, ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// This process's fdinfo of `fd`: what the kernel says of the object.
pub fn fdinfo(fd: &OwnedFd) -> io::Result<String> {
    std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
}

/// The number after `key` (as "link_id:") in fdinfo text.
pub fn fdinfo_field(text: &str, key: &str) -> Option<u32> {
    text.lines().find_map(|l| l.strip_prefix(key)).and_then(|n| n.trim().parse().ok())
}

/// The ids of every BPF link in the kernel (BPF_LINK_GET_NEXT_ID opens none:
/// a sealed guard's links are listed, not refused).
pub fn link_ids() -> io::Result<BTreeSet<u32>> {
    #[repr(C)]
    struct NextId {
        start_id: u32,
        next_id: u32,
        open_flags: u32,
    }
    let mut ids = BTreeSet::new();
    let mut attr = NextId { start_id: 0, next_id: 0, open_flags: 0 };
    loop {
        let size = size_of::<NextId>();
        // SAFETY: attr is valid for reads and writes of its size during the call.
        let rc = unsafe { libc::syscall(libc::SYS_bpf, BPF_LINK_GET_NEXT_ID, &mut attr as *mut NextId, size) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::ENOENT) { Ok(ids) } else { Err(e) };
        }
        ids.insert(attr.next_id);
        attr.start_id = attr.next_id;
    }
}

/// A pinned per-CPU array of u64 counters, opened read-only.
pub fn counters(path: &Path) -> io::Result<PerCpuArray<MapData, u64>> {
    let map = MapData::from_fd(obj_get(path, true)?).map_err(io::Error::other)?;
    PerCpuArray::try_from(Map::PerCpuArray(map)).map_err(io::Error::other)
}

/// Counter `slot` of `array`, summed over CPUs (0 when it cannot be read).
pub fn counter(array: &PerCpuArray<MapData, u64>, slot: u32) -> u64 {
    array.get(&slot, 0).map(|v| v.iter().sum()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdinfo_fields_are_read_by_key() {
        let text = "pos:\t0\nlink_type:\ttracing\nlink_id:\t12\nprog_tag:\tab\nprog_id:\t40\n";
        assert_eq!((fdinfo_field(text, "link_id:"), fdinfo_field(text, "prog_id:")), (Some(12), Some(40)));
        assert_eq!(fdinfo_field(text, "attach_type:"), None);
    }
}
