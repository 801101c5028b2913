//! Sealing the guard until the next boot (`guard start --sealed`): the
//! seal's LSM programs (modtrace-ebpf's probes/seal.rs) are attached beside
//! the guard's, told which objects, pins and mounts are the guard's, and
//! then switched on. From then on no process, root included, can get a
//! writable handle on the guard, unpin it or unmount it; the refusals are
//! counted in the guard's counters and reported on its decision rings.

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use aya::{
    maps::{Array, HashMap, MapData},
    Ebpf,
};
use modtrace_common::seal::{access, object, SealConfig, SealObject, SealOffsets};

use super::kernel::{self, GuardError, PIN_DIR};
use super::policy::kernel_dev;
use crate::loader::pin::{self, obj_get};
use crate::loader::btf;

/// (program, LSM hook).
pub(super) const PROGRAMS: &[(&str, &str)] = &[
    ("seal_bpf", "bpf"),
    ("seal_inode_permission", "inode_permission"),
    ("seal_inode_unlink", "inode_unlink"),
    ("seal_inode_rmdir", "inode_rmdir"),
    ("seal_inode_rename", "inode_rename"),
    ("seal_sb_umount", "sb_umount"),
];

/// The pin whose presence says that the guard is sealed: it cannot be
/// removed once it is.
fn marker() -> PathBuf {
    Path::new(PIN_DIR).join(format!("link-{}", PROGRAMS[0].0))
}

/// True when the guard pinned under PIN_DIR is sealed (until the next boot).
pub fn is_sealed() -> bool {
    marker().exists()
}

/// How a pin of a sealed guard may still be opened: the counters for
/// reading (`guard status`), the decision rings by their readers (`guard
/// log`, `trace`), nothing else.
pub fn access_of(pin: &str) -> u32 {
    match pin {
        "GUARD_COUNTS" | "GUARD_LOST" => access::READ,
        "GUARD_LOG" | "GUARD_TRACE" => access::ANY,
        _ => access::NONE,
    }
}

/// Attaches the seal's programs to the loaded guard `ebpf` (its programs
/// attached and pinned already), fills the seal's maps, then seals. Returns
/// each seal program's link id.
pub fn seal(ebpf: &mut Ebpf, kernel_btf: &aya::Btf) -> Result<Vec<(String, u32)>, GuardError> {
    let mut links = Vec::new();
    for (prog, hook) in PROGRAMS {
        let program = kernel::load_lsm(ebpf, prog, hook, kernel_btf)?;
        links.push((prog.to_string(), kernel::attach_pinned(program, prog, hook)?));
    }
    let objects = objects(ebpf)?;
    let inodes = pin_inodes()?;
    let mounts = mount_chain(&fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(), Path::new(PIN_DIR));
    if mounts.is_empty() {
        return Err(GuardError::Maps(format!("no mount of {PIN_DIR} in /proc/self/mountinfo")));
    }
    let config = config(offsets(Path::new(btf::VMLINUX_BTF))?)?;
    write(ebpf, &objects, &inodes, &mounts, config)?;
    Ok(links)
}

/// The ids of the guard's programs, of every map they use, and of the links
/// pinned under PIN_DIR.
fn objects(ebpf: &Ebpf) -> Result<Vec<SealObject>, GuardError> {
    let mut out = Vec::new();
    for (name, program) in ebpf.programs() {
        let Ok(info) = program.info() else { continue }; // not loaded: the tracer's
        out.push(SealObject { kind: object::PROG, id: info.id() });
        let maps = info.map_ids().map_err(|e| GuardError::Load(format!("{name}: {e}")))?.unwrap_or_default();
        out.extend(maps.into_iter().map(|id| SealObject { kind: object::MAP, id }));
    }
    for entry in fs::read_dir(PIN_DIR).map_err(|e| GuardError::Maps(e.to_string()))? {
        let path = entry.map_err(|e| GuardError::Maps(e.to_string()))?.path();
        if path.file_name().is_some_and(|n| n.as_bytes().starts_with(b"link-")) {
            let fd = obj_get(&path, false).map_err(|e| GuardError::Maps(format!("{}: {e}", path.display())))?;
            let id = fdinfo_id(&fd, "link_id:");
            let id = id.ok_or_else(|| GuardError::Maps(format!("{}: no link id", path.display())))?;
            out.push(SealObject { kind: object::LINK, id });
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Each pin's inode and what it may still be opened for.
fn pin_inodes() -> Result<Vec<(u64, u32)>, GuardError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(PIN_DIR).map_err(|e| GuardError::Maps(e.to_string()))? {
        let entry = entry.map_err(|e| GuardError::Maps(e.to_string()))?;
        let meta = entry.metadata().map_err(|e| GuardError::Maps(e.to_string()))?;
        out.push((meta.ino(), access_of(&entry.file_name().to_string_lossy())));
    }
    Ok(out)
}

fn config(offsets: SealOffsets) -> Result<SealConfig, GuardError> {
    let stat = |p: &Path| fs::metadata(p).map_err(|e| GuardError::Maps(format!("{}: {e}", p.display())));
    let dir = stat(Path::new(PIN_DIR))?;
    let parent = stat(Path::new(PIN_DIR).parent().expect("PIN_DIR has a parent"))?;
    Ok(SealConfig { sealed: 1, dev: kernel_dev(dir.dev()), pin_dir: dir.ino(), pin_parent: parent.ino(), offsets })
}

/// The offsets the seal's hooks read, from the running kernel's BTF.
pub fn offsets(path: &Path) -> Result<SealOffsets, GuardError> {
    let b = btf::open(path).map_err(GuardError::Btf)?;
    let offset = |s: &str, f: &str| kernel::member_offset(&b, s, f);
    Ok(SealOffsets {
        i_ino: offset("inode", "i_ino")?,
        i_sb: offset("inode", "i_sb")?,
        s_dev: offset("super_block", "s_dev")?,
        d_inode: offset("dentry", "d_inode")?,
        d_name: offset("dentry", "d_name")? + offset("qstr", "name")?,
        mount_mnt: offset("mount", "mnt")?,
        mnt_id: offset("mount", "mnt_id")?,
        _pad: 0,
    })
}

/// Fills the seal's maps, then writes its config: sealed from that update on.
fn write(
    ebpf: &mut Ebpf,
    objects: &[SealObject],
    inodes: &[(u64, u32)],
    mounts: &[u32],
    config: SealConfig,
) -> Result<(), GuardError> {
    fn map<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::maps::Map, GuardError> {
        ebpf.map_mut(name).ok_or_else(|| GuardError::Load(format!("map {name} missing")))
    }
    let failed = |name: &'static str| move |e: aya::maps::MapError| GuardError::Maps(format!("{name}: {e}"));
    let mut ids: HashMap<&mut MapData, SealObject, u8> =
        HashMap::try_from(map(ebpf, "SEAL_OBJECTS")?).map_err(failed("SEAL_OBJECTS"))?;
    for o in objects {
        ids.insert(o, 1, 0).map_err(failed("SEAL_OBJECTS"))?;
    }
    let mut pins: HashMap<&mut MapData, u64, u32> =
        HashMap::try_from(map(ebpf, "SEAL_INODES")?).map_err(failed("SEAL_INODES"))?;
    for (ino, allowed) in inodes {
        pins.insert(ino, allowed, 0).map_err(failed("SEAL_INODES"))?;
    }
    let mut mount_ids: HashMap<&mut MapData, u32, u8> =
        HashMap::try_from(map(ebpf, "SEAL_MOUNTS")?).map_err(failed("SEAL_MOUNTS"))?;
    for id in mounts {
        mount_ids.insert(id, 1, 0).map_err(failed("SEAL_MOUNTS"))?;
    }
    let mut cfg: Array<&mut MapData, SealConfig> =
        Array::try_from(map(ebpf, "SEAL_CONFIG")?).map_err(failed("SEAL_CONFIG"))?;
    cfg.set(0, config, 0).map_err(failed("SEAL_CONFIG"))
}

/// The mount ids, from mountinfo's text, of the mount `path` is on and of
/// every mount above it: umounting any of them (lazily, for those above)
/// would release the pins.
pub fn mount_chain(mountinfo: &str, path: &Path) -> Vec<u32> {
    // Fields: id, parent id, major:minor, root, mount point, ...
    let mounts: Vec<(u32, u32, &str)> = mountinfo
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((f.first()?.parse().ok()?, f.get(1)?.parse().ok()?, *f.get(4)?))
        })
        .collect();
    let under = |point: &str| path.starts_with(point);
    // Of the mounts on the deepest mount point, the last listed is on top.
    let deepest = mounts.iter().filter(|m| under(m.2)).max_by_key(|m| Path::new(m.2).components().count());
    let Some(mut at) = deepest.copied() else { return Vec::new() };
    let mut chain = vec![at.0];
    while let Some(parent) = mounts.iter().find(|m| m.0 == at.1 && !chain.contains(&m.0)) {
        chain.push(parent.0);
        at = *parent;
    }
    chain
}

/// A `key` line's number in this process's fdinfo of `fd`.
fn fdinfo_id(fd: &OwnedFd, key: &str) -> Option<u32> {
    pin::fdinfo_field(&pin::fdinfo(fd).ok()?, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 0:21 / / rw,relatime - rootfs rootfs rw
23 22 0:22 / /proc rw - proc proc rw
24 22 0:23 / /sys rw - sysfs sysfs rw
30 24 0:29 / /sys/fs/bpf rw - bpf bpf rw
31 24 0:30 / /sys/kernel/tracing rw - tracefs tracefs rw
40 30 0:40 / /sys/fs/bpf rw - bpf bpf rw,mode=700
";

    #[test]
    fn the_mount_chain_runs_from_the_top_bpffs_mount_to_the_root() {
        assert_eq!(mount_chain(MOUNTINFO, Path::new("/sys/fs/bpf/modtrace/guard")), [40, 30, 24, 22]);
        assert_eq!(mount_chain(MOUNTINFO, Path::new("/proc/1")), [23, 22]);
        assert!(mount_chain("", Path::new("/sys/fs/bpf")).is_empty());
    }

    #[test]
    fn only_counters_and_rings_stay_readable() {
        assert_eq!(access_of("GUARD_COUNTS"), access::READ);
        assert_eq!(access_of("GUARD_TRACE"), access::ANY);
        for pin in ["GUARD_CONFIG", "GUARD_ALIASES", "GUARD_FILES", "link-guard_request", "prog-guard_request"] {
            assert_eq!(access_of(pin), access::NONE, "{pin}");
        }
    }

    /// Runs against the host's own BTF (this project's build machines have it).
    #[test]
    fn host_btf_names_the_seal_offsets() {
        let o = offsets(Path::new(btf::VMLINUX_BTF)).unwrap();
        assert!(o.i_sb > 0 && o.d_inode > 0 && o.mnt_id > 0, "{o:?}");
        assert_eq!(o.d_name % 8, 0, "a pointer inside struct qstr: {o:?}");
    }
}
