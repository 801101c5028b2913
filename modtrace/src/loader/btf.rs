//! task_struct offsets from the running kernel's BTF, handed to the eBPF programs
//! as a global: Rust eBPF has no CO-RE relocations, so userspace does the lookup.

use std::{
    os::{
        fd::{AsRawFd, FromRawFd},
        unix::fs::FileExt,
    },
    path::Path,
};

use btf_rs::{Backend, Btf, Type};
use modtrace_common::TaskOffsets;

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Every struct whose members the programs read. btf_rs finds a type by name
/// by reading every type's name (4 ms a lookup in a 6.1 guest under
/// emulation), so they are looked up on two threads at once.
const STRUCTS: [&str; 7] = ["task_struct", "mm_struct", "pt_regs", "css_set", "cgroup", "kernfs_node", "cred"];

/// Reads the offsets of real_parent, tgid, comm and mm in task_struct, and of
/// arg_start and arg_end in mm_struct (required), then those of the cgroup path
/// and of the task's identity (each group optional: absent fields stay unknown).
pub fn task_offsets(path: &Path) -> Result<TaskOffsets, String> {
    offsets_and_regs(&open(path)?).0
}

/// [`task_offsets`] of an opened BTF, and whether the registers saved at
/// syscall entry hold the arguments where the exit probe reads them
/// (modtrace_common::regs; x86-64 only).
pub fn offsets_and_regs(btf: &Btf) -> (Result<TaskOffsets, String>, Result<(), String>) {
    let structs = Structs::find(btf, &STRUCTS);
    (task_offsets_of(btf, &structs), syscall_regs_of(btf, &structs))
}

fn task_offsets_of(btf: &Btf, structs: &Structs) -> Result<TaskOffsets, String> {
    let task = structs.get("task_struct")?;
    let mm = structs.get("mm_struct")?;
    let offset = |s: &btf_rs::Struct, name: &str, field: &str| {
        member_offset(btf, s, field)?.ok_or_else(|| format!("{name} has no member {field}"))
    };
    Ok(TaskOffsets {
        real_parent: offset(task, "task_struct", "real_parent")?,
        tgid: offset(task, "task_struct", "tgid")?,
        comm: offset(task, "task_struct", "comm")?,
        mm: offset(task, "task_struct", "mm")?,
        arg_start: offset(mm, "mm_struct", "arg_start")?,
        arg_end: offset(mm, "mm_struct", "arg_end")?,
        ..optional_offsets(btf, structs, task)
    })
}

fn syscall_regs_of(btf: &Btf, structs: &Structs) -> Result<(), String> {
    if !cfg!(target_arch = "x86_64") {
        return Err("not x86-64".into());
    }
    let regs = structs.get("pt_regs")?;
    for (field, want) in modtrace_common::regs::FIELDS {
        match member_offset(btf, regs, field)? {
            Some(got) if got as usize == *want => {}
            got => return Err(format!("pt_regs.{field} is at {got:?}, not {want}")),
        }
    }
    Ok(())
}

/// Structs found by name, each lookup's result kept.
struct Structs(Vec<(&'static str, Result<btf_rs::Struct, String>)>);

impl Structs {
    /// Looks up the first half of `names` on another thread.
    fn find(btf: &Btf, names: &[&'static str]) -> Structs {
        let find_all = |names: &[&'static str]| -> Vec<_> { names.iter().map(|n| (*n, find_struct(btf, n))).collect() };
        let (first, rest) = names.split_at(names.len() / 2);
        std::thread::scope(|scope| {
            let first = scope.spawn(|| find_all(first));
            let rest = find_all(rest);
            Structs(super::joined(first).into_iter().chain(rest).collect())
        })
    }

    fn get(&self, name: &str) -> Result<&btf_rs::Struct, String> {
        match self.0.iter().find(|(n, _)| *n == name) {
            Some((_, found)) => found.as_ref().map_err(Clone::clone),
            None => Err(format!("{name} was not looked up")),
        }
    }
}

/// The groups of offsets a kernel may lack or rename; each group is all or nothing.
fn optional_offsets(btf: &Btf, structs: &Structs, task: &btf_rs::Struct) -> TaskOffsets {
    let cgroup = cgroup_offsets(btf, structs, task).unwrap_or_default();
    let cred = cred_offsets(btf, structs, task).unwrap_or_default();
    let audit = audit_offsets(btf, task).unwrap_or_default();
    let start = start_offsets(btf, task).unwrap_or_default();
    let ns = namespace_offsets(btf, task).unwrap_or_default();
    TaskOffsets {
        cgroups: cgroup.cgroups,
        dfl_cgrp: cgroup.dfl_cgrp,
        cgroup_kn: cgroup.cgroup_kn,
        kn_name: cgroup.kn_name,
        kn_parent: cgroup.kn_parent,
        cred: cred.cred,
        cred_euid: cred.cred_euid,
        loginuid: audit.loginuid,
        sessionid: audit.sessionid,
        group_leader: start.group_leader,
        start_time: start.start_time,
        task_flags: member_offset(btf, task, "flags").ok().flatten().unwrap_or(0),
        nsproxy: ns.nsproxy,
        ns_pid: ns.ns_pid,
        ns_mnt: ns.ns_mnt,
        pid_ns_inum: ns.pid_ns_inum,
        mnt_ns_inum: ns.mnt_ns_inum,
        ..TaskOffsets::default()
    }
}

/// task->nsproxy->{pid_ns_for_children, mnt_ns}->ns.inum. Each struct is
/// reached through the member's own type, not looked up by name (that costs
/// 4 ms a name under emulation); ns_common's layout changed in 7.x, so inum is
/// found wherever it is, anonymous members included.
fn namespace_offsets(btf: &Btf, task: &btf_rs::Struct) -> Option<TaskOffsets> {
    let (nsproxy, proxy) = member_struct(btf, task, "nsproxy")?;
    let (ns_pid, pid_ns) = member_struct(btf, &proxy, "pid_ns_for_children")?;
    let (ns_mnt, mnt_ns) = member_struct(btf, &proxy, "mnt_ns")?;
    let inum = |ns: &btf_rs::Struct| {
        let (at, common) = member_struct(btf, ns, "ns")?;
        Some(at + member_offset(btf, &common, "inum").ok()??)
    };
    let offsets = TaskOffsets {
        nsproxy,
        ns_pid,
        ns_mnt,
        pid_ns_inum: inum(&pid_ns)?,
        mnt_ns_inum: inum(&mnt_ns)?,
        ..TaskOffsets::default()
    };
    // The probes take a zero nsproxy offset for "unknown".
    (nsproxy != 0).then_some(offsets)
}

/// The offset of `field` and the struct it is or points to (through
/// typedefs, qualifiers and one pointer).
fn member_struct(btf: &Btf, s: &btf_rs::Struct, field: &str) -> Option<(u32, btf_rs::Struct)> {
    let (offset, member) = find_member(btf, s, field).ok()??;
    let mut t = btf.resolve_chained_type(&member).ok()?;
    let mut pointers = 0;
    loop {
        match t {
            Type::Struct(found) => return Some((offset, found)),
            Type::Ptr(_) if pointers == 0 => pointers += 1,
            Type::Typedef(_) | Type::Const(_) | Type::Volatile(_) | Type::Restrict(_) | Type::TypeTag(_) => {}
            _ => return None,
        }
        t = btf.resolve_chained_type(t.as_btf_type()?).ok()?;
    }
}

/// task->cred->euid (kuid_t: a struct holding one u32).
fn cred_offsets(btf: &Btf, structs: &Structs, task: &btf_rs::Struct) -> Option<TaskOffsets> {
    let cred = structs.get("cred").ok()?;
    Some(TaskOffsets {
        cred: member_offset(btf, task, "cred").ok()??,
        cred_euid: member_offset(btf, cred, "euid").ok()??,
        ..TaskOffsets::default()
    })
}

/// task->loginuid and task->sessionid exist only with CONFIG_AUDIT.
fn audit_offsets(btf: &Btf, task: &btf_rs::Struct) -> Option<TaskOffsets> {
    Some(TaskOffsets {
        loginuid: member_offset(btf, task, "loginuid").ok()??,
        sessionid: member_offset(btf, task, "sessionid").ok()??,
        ..TaskOffsets::default()
    })
}

/// task->group_leader->start_time: when the process started.
fn start_offsets(btf: &Btf, task: &btf_rs::Struct) -> Option<TaskOffsets> {
    Some(TaskOffsets {
        group_leader: member_offset(btf, task, "group_leader").ok()??,
        start_time: member_offset(btf, task, "start_time").ok()??,
        ..TaskOffsets::default()
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
/// The kernel hands out sysfs files a page per read, so two threads copy a
/// half each, with a descriptor each (35 ms instead of 50 ms in a 6.1 guest
/// under emulation). Copied in pieces, not through a buffer of the file's
/// size: that would double the memory it takes while it is read.
fn memory_copy(path: &Path) -> std::io::Result<std::fs::File> {
    let len = std::fs::metadata(path)?.len();
    // SAFETY: a static NUL-terminated name; the result is checked.
    let fd = unsafe { libc::memfd_create(c"modtrace-btf".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let copy = unsafe { std::fs::File::from_raw_fd(fd) };
    let half = (len / 2).next_multiple_of(4096).min(len);
    std::thread::scope(|scope| {
        let first = scope.spawn(|| copy_range(path, &copy, 0, Some(half)));
        copy_range(path, &copy, half, None)?;
        super::joined(first)
    })?;
    Ok(copy)
}

/// Copies `path` from byte `from` to the same place in `copy`: up to `to`
/// (the file must reach it), or to its end.
fn copy_range(path: &Path, copy: &std::fs::File, from: u64, to: Option<u64>) -> std::io::Result<()> {
    let source = std::fs::File::open(path)?;
    let mut piece = vec![0; 64 * 1024];
    let mut at = from;
    while to.is_none_or(|to| at < to) {
        let want = to.map_or(piece.len(), |to| piece.len().min((to - at) as usize));
        let n = source.read_at(&mut piece[..want], at)?;
        if n == 0 {
            return match to {
                Some(to) => Err(std::io::Error::other(format!("it ends at byte {at}, before its size ({to})"))),
                None => Ok(()),
            };
        }
        copy.write_all_at(&piece[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// The chain to the task's cgroup directory and up its ancestors. Optional:
/// kernels rename these fields now and then (kernfs_node.name and parent became
/// __name and __parent in 6.15), and only the cgroup path depends on them.
fn cgroup_offsets(btf: &Btf, structs: &Structs, task: &btf_rs::Struct) -> Option<TaskOffsets> {
    let field = |s: &btf_rs::Struct, f: &str| member_offset(btf, s, f).ok().flatten();
    let either = |s: &btf_rs::Struct, a: &str, b: &str| field(s, a).or_else(|| field(s, b));
    let css_set = structs.get("css_set").ok()?;
    let cgroup = structs.get("cgroup").ok()?;
    let kn = structs.get("kernfs_node").ok()?;
    Some(TaskOffsets {
        cgroups: field(task, "cgroups")?,
        dfl_cgrp: field(css_set, "dfl_cgrp")?,
        cgroup_kn: field(cgroup, "kn")?,
        kn_name: either(kn, "name", "__name")?,
        kn_parent: either(kn, "parent", "__parent")?,
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
    Ok(find_member(btf, s, field)?.map(|(offset, _)| offset))
}

/// `field`'s byte offset and the member itself, looking through anonymous
/// struct/union members.
fn find_member(btf: &Btf, s: &btf_rs::Struct, field: &str) -> Result<Option<(u32, btf_rs::Member)>, String> {
    for m in &s.members {
        let name = btf.resolve_name(m).unwrap_or_default();
        let here = m.bit_offset() / 8;
        if name == field {
            return Ok(Some((here, m.clone())));
        }
        if name.is_empty() {
            let inner = btf.resolve_chained_type(m).map_err(|e| e.to_string())?;
            if let Type::Struct(inner) | Type::Union(inner) = inner {
                if let Some((off, found)) = find_member(btf, &inner, field)? {
                    return Ok(Some((here + off, found)));
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

    fn copied(path: &Path) -> Vec<u8> {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut memory_copy(path).unwrap(), &mut bytes).unwrap();
        bytes
    }

    /// Both halves land where they belong, whatever the size; a file whose
    /// size is not told (/proc) is copied whole by the second reader.
    #[test]
    fn a_copy_in_memory_has_the_files_bytes() {
        let dir = crate::testutil::TempDir::new("btf-copy");
        for len in [0, 1, 4095, 4096, 4097, 8192, 200_001] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            std::fs::write(dir.join("f"), &bytes).unwrap();
            assert_eq!(copied(&dir.join("f")), bytes, "{len} bytes");
        }
        assert_eq!(std::fs::metadata("/proc/version").unwrap().len(), 0);
        assert_eq!(copied(Path::new("/proc/version")), std::fs::read("/proc/version").unwrap());
        assert_eq!(copied(Path::new(VMLINUX_BTF)), std::fs::read(VMLINUX_BTF).unwrap());
    }

    #[test]
    fn host_saved_registers_hold_the_arguments_where_the_exit_probe_reads_them() {
        let btf = open(Path::new(VMLINUX_BTF)).unwrap();
        assert_eq!(offsets_and_regs(&btf).1, Ok(()));
        let regs = find_struct(&btf, "pt_regs").unwrap();
        assert_eq!(member_offset(&btf, &regs, "orig_ax").unwrap(), Some(120), "the uapi layout");
    }

    #[test]
    fn host_task_struct_offsets_are_plausible() {
        let path = Path::new(VMLINUX_BTF);
        assert!(path.exists(), "{VMLINUX_BTF} missing: this test needs a kernel with BTF");
        let off = task_offsets(path).unwrap();
        assert!(off.tgid > 0 && off.real_parent > off.tgid && off.comm > off.real_parent, "{off:?}");
        assert!(off.mm > 0 && off.arg_end == off.arg_start + 8, "{off:?}");
        // Every kernel has these; the host's was built with CONFIG_AUDIT too.
        assert!(off.kn_parent > 0 && off.kn_name > 0 && off.kn_parent != off.kn_name, "{off:?}");
        assert!(off.cred > off.real_parent && off.cred_euid > 0, "{off:?}");
        assert!(off.group_leader > 0 && off.start_time > 0 && off.task_flags > 0, "{off:?}");
        assert!(off.loginuid > 0 && off.sessionid == off.loginuid + 4, "{off:?}");
        // nsproxy starts with its refcount; inum follows ns_common's pointers.
        assert!(off.nsproxy > 0 && off.ns_pid > 0 && off.ns_mnt > 0 && off.ns_pid != off.ns_mnt, "{off:?}");
        assert!(off.pid_ns_inum > 0 && off.mnt_ns_inum > 0, "{off:?}");
    }
}
