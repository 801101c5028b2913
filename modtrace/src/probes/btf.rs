//! task_struct offsets from the running kernel's BTF, handed to the eBPF programs
//! as a global: Rust eBPF has no CO-RE relocations, so userspace does the lookup.

use std::{
    io::Write,
    os::fd::{AsRawFd, FromRawFd},
    path::Path,
};

use btf_rs::{Backend, Btf, Type};
use modtrace_common::TaskOffsets;

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Reads the offsets of real_parent, tgid, comm and mm in task_struct, and of
/// arg_start and arg_end in mm_struct.
pub fn task_offsets(path: &Path) -> Result<TaskOffsets, String> {
    let btf = open(path)?;
    let task = find_struct(&btf, "task_struct")?;
    let mm = find_struct(&btf, "mm_struct")?;
    let offset = |s: &btf_rs::Struct, name: &str, field: &str| {
        member_offset(&btf, s, field)?.ok_or_else(|| format!("{name} has no member {field}"))
    };
    Ok(TaskOffsets {
        real_parent: offset(&task, "task_struct", "real_parent")?,
        tgid: offset(&task, "task_struct", "tgid")?,
        comm: offset(&task, "task_struct", "comm")?,
        mm: offset(&task, "task_struct", "mm")?,
        arg_start: offset(&mm, "mm_struct", "arg_start")?,
        arg_end: offset(&mm, "mm_struct", "arg_end")?,
        ..cgroup_offsets(&btf, &task).unwrap_or_default()
    })
}

/// Mapping the file and decoding only the types asked for is ~30 times faster than
/// parsing all of vmlinux's BTF (6 ms against 190 ms here). Kernels before 6.x
/// cannot mmap the sysfs file: then a copy in memory (memfd) is mapped instead.
pub(crate) fn open(path: &Path) -> Result<Btf, String> {
    let err = |e: &dyn std::fmt::Display| format!("cannot read {}: {e}", path.display());
    if let Ok(btf) = Btf::from_file_with_backend(path, Backend::Mmap) {
        return Ok(btf);
    }
    let copy = memory_copy(path).map_err(|e| err(&e))?;
    let fd_path = format!("/proc/self/fd/{}", copy.as_raw_fd());
    Btf::from_file_with_backend(&fd_path, Backend::Mmap).or_else(|_| Btf::from_file(path)).map_err(|e| err(&e))
}

/// The file's bytes in an anonymous memory file, which can always be mapped.
fn memory_copy(path: &Path) -> std::io::Result<std::fs::File> {
    let bytes = std::fs::read(path)?;
    // SAFETY: a static NUL-terminated name; the result is checked.
    let fd = unsafe { libc::memfd_create(c"modtrace-btf".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.write_all(&bytes)?;
    Ok(file)
}

/// The chain to the task's cgroup directory name. Optional: kernels rename these
/// fields now and then (kernfs_node.name became __name), and only the cgroup name
/// depends on them.
fn cgroup_offsets(btf: &Btf, task: &btf_rs::Struct) -> Option<TaskOffsets> {
    let field = |s: &btf_rs::Struct, f: &str| member_offset(btf, s, f).ok().flatten();
    let css_set = find_struct(btf, "css_set").ok()?;
    let cgroup = find_struct(btf, "cgroup").ok()?;
    let kn = find_struct(btf, "kernfs_node").ok()?;
    Some(TaskOffsets {
        cgroups: field(task, "cgroups")?,
        dfl_cgrp: field(&css_set, "dfl_cgrp")?,
        cgroup_kn: field(&cgroup, "kn")?,
        kn_name: field(&kn, "name")?,
        ..TaskOffsets::default()
    })
}

pub(crate) fn find_struct(btf: &Btf, name: &str) -> Result<btf_rs::Struct, String> {
    let types = btf.resolve_types_by_name(name).map_err(|e| format!("{name}: {e}"))?;
    types
        .into_iter()
        .find_map(|t| match t {
            Type::Struct(s) => Some(s),
            _ => None,
        })
        .ok_or_else(|| format!("no struct {name} in BTF"))
}

/// Byte offset of `field`, looking through anonymous struct/union members.
pub(crate) fn member_offset(btf: &Btf, s: &btf_rs::Struct, field: &str) -> Result<Option<u32>, String> {
    for m in &s.members {
        let name = btf.resolve_name(m).unwrap_or_default();
        let here = m.bit_offset() / 8;
        if name == field {
            return Ok(Some(here));
        }
        if name.is_empty() {
            let inner = btf.resolve_chained_type(m).map_err(|e| e.to_string())?;
            if let Type::Struct(inner) | Type::Union(inner) = inner {
                if let Some(off) = member_offset(btf, &inner, field)? {
                    return Ok(Some(here + off));
                }
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs against the host's own BTF where it has one (this project's build
    /// machines do): comm is an array after tgid and real_parent in every kernel.
    #[test]
    fn a_copy_in_memory_gives_the_same_offsets() {
        let path = Path::new(VMLINUX_BTF);
        let copy = memory_copy(path).unwrap();
        let via_copy = task_offsets(Path::new(&format!("/proc/self/fd/{}", copy.as_raw_fd()))).unwrap();
        assert_eq!(via_copy, task_offsets(path).unwrap());
    }

    #[test]
    fn host_task_struct_offsets_are_plausible() {
        let path = Path::new(VMLINUX_BTF);
        assert!(path.exists(), "{VMLINUX_BTF} missing: this test needs a kernel with BTF");
        let off = task_offsets(path).unwrap();
        assert!(off.tgid > 0 && off.real_parent > off.tgid && off.comm > off.real_parent, "{off:?}");
        assert!(off.mm > 0 && off.arg_end == off.arg_start + 8, "{off:?}");
    }
}
