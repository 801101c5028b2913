//! The seal of `modtrace guard start --sealed`: LSM programs that keep the
//! guard in force until the next boot. They refuse (EPERM), root included,
//! what would end it or change its policy: an fd to its maps, programs or
//! links by id (the `bpf` hook) or by pin (`inode_permission` on its pins:
//! BPF_OBJ_GET checks the pin's permission, and links have no hook of their
//! own), unpinning, removing or renaming its pin directory, and unmounting
//! the BPF file system or a mount above it. Without an fd, nothing can update
//! its maps or detach its links. Userspace fills the maps, then sets
//! `SealConfig::sealed` last; every refusal is counted and reported on the
//! guard's decision rings.


use aya_ebpf::{
    helpers::{bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes},
    macros::{lsm, map},
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
    programs::LsmContext,
    EbpfContext as _,
};
use modtrace_common::{
    guard::{decision, hook, mode, GuardEvent},
    seal::{access, cmd, object, op, SealConfig, SealObject},
    RepeatState, RequestKey, NAME_LEN,
};

use super::guard::{send, GUARD_COUNTS};
use crate::{
    fold::fold_in,
    maps::count,
    mem::{clear, zero},
    task::now,
};

const EPERM: i32 = 1;
/// include/linux/fs.h
const MAY_WRITE: u32 = 2;
const MAY_READ: u32 = 4;

/// Index 0: the seal. An array, so that the hot inode hook's lookup is inlined.
#[map]
static SEAL_CONFIG: Array<SealConfig> = Array::with_max_entries(1, 0);

/// The guard's maps, programs and links (the seal's own included), by id.
#[map]
static SEAL_OBJECTS: HashMap<SealObject, u8> = HashMap::with_max_entries(64, 0);

/// The guard's pins on the sealed BPF file system, by inode: `access::*`.
#[map]
static SEAL_INODES: HashMap<u64, u32> = HashMap::with_max_entries(64, 0);

/// Mount ids of the BPF file system's mount and of every mount above it: a
/// lazy umount of /sys or / would take the pins with it.
#[map]
static SEAL_MOUNTS: HashMap<u32, u8> = HashMap::with_max_entries(16, 0);

/// Folding of identical refusals by one process (a loop of attempts).
#[map]
static SEAL_REPEATS: LruHashMap<RequestKey, RepeatState> = LruHashMap::with_max_entries(1024, 0);

/// The refusal being built, per CPU and per program (see guard.rs's scratch:
/// a program can be preempted, another must not write into its event).
#[map]
static SEAL_SCRATCH: PerCpuArray<GuardEvent> = PerCpuArray::with_max_entries(scratch::COUNT, 0);

mod scratch {
    pub const BPF: u32 = 0;
    pub const PERMISSION: u32 = 1;
    pub const UNLINK: u32 = 2;
    pub const RMDIR: u32 = 3;
    pub const RENAME: u32 = 4;
    pub const UMOUNT: u32 = 5;
    pub const COUNT: u32 = 6;
}

/// What was refused, for the report.
struct Attempt {
    op: u32,
    /// The bpf command, permission mask or umount flags.
    detail: u32,
    /// The object id, inode or mount id.
    target: u64,
    /// The dentry whose name the report carries, or null.
    dentry: *const u8,
}

fn sealed() -> Option<&'static SealConfig> {
    SEAL_CONFIG.get(0).filter(|c| c.sealed != 0)
}

/// bpf(2): *_GET_FD_BY_ID of the guard's objects. `attr` is the kernel's
/// copy of the caller's union bpf_attr; each of these commands has the id
/// in its first word.
#[lsm(hook = "bpf")]
pub fn seal_bpf(ctx: LsmContext) -> i32 {
    let Some(cfg) = sealed() else { return 0 };
    let command: u32 = ctx.arg(0);
    let kind = match command {
        cmd::MAP_GET_FD_BY_ID => object::MAP,
        cmd::PROG_GET_FD_BY_ID => object::PROG,
        cmd::LINK_GET_FD_BY_ID => object::LINK,
        _ => return 0,
    };
    let attr: *const u32 = ctx.arg(1);
    // SAFETY: the helper checks the address; the kernel's attr is at least 4 bytes.
    let Ok(id) = (unsafe { bpf_probe_read_kernel(attr) }) else { return 0 };
    if unsafe { SEAL_OBJECTS.get(SealObject { kind, id }) }.is_none() {
        return 0;
    }
    let attempt = Attempt { op: op::BPF_BY_ID, detail: command, target: u64::from(id), dentry: core::ptr::null() };
    refuse(scratch::BPF, cfg, attempt)
}

/// Opening a pin: BPF_OBJ_GET asks for the pin's read/write permission. Runs
/// on every permission check of the system, so it returns at the first test
/// that fails: no read or write asked, another file system, another inode.
#[lsm(hook = "inode_permission")]
pub fn seal_inode_permission(ctx: LsmContext) -> i32 {
    let mask: u32 = ctx.arg(1);
    if mask & (MAY_READ | MAY_WRITE) == 0 {
        return 0;
    }
    let Some(cfg) = sealed() else { return 0 };
    let inode: *const u8 = ctx.arg(0);
    let Ok((dev, ino)) = inode_identity(cfg, inode) else { return 0 };
    if dev != cfg.dev {
        return 0;
    }
    let Some(allowed) = (unsafe { SEAL_INODES.get(ino) }).copied() else { return 0 };
    let refused = match allowed {
        access::ANY => false,
        access::READ => mask & MAY_WRITE != 0,
        _ => true,
    };
    if !refused {
        return 0;
    }
    let attempt = Attempt { op: op::PIN_OPEN, detail: mask, target: ino, dentry: core::ptr::null() };
    refuse(scratch::PERMISSION, cfg, attempt)
}

/// unlink(2) of anything in the pin directory: unpinning.
#[lsm(hook = "inode_unlink")]
pub fn seal_inode_unlink(ctx: LsmContext) -> i32 {
    let Some(cfg) = sealed() else { return 0 };
    let (dir, dentry): (*const u8, *const u8) = (ctx.arg(0), ctx.arg(1));
    if !is_pin_dir(cfg, dir) {
        return 0;
    }
    let ino = dentry_ino(cfg, dentry).unwrap_or(0);
    refuse(scratch::UNLINK, cfg, Attempt { op: op::UNLINK, detail: 0, target: ino, dentry })
}

/// rmdir(2) of the pin directory (or of anything in it).
#[lsm(hook = "inode_rmdir")]
pub fn seal_inode_rmdir(ctx: LsmContext) -> i32 {
    let Some(cfg) = sealed() else { return 0 };
    let (dir, dentry): (*const u8, *const u8) = (ctx.arg(0), ctx.arg(1));
    let ino = dentry_ino(cfg, dentry).unwrap_or(0);
    let on_bpffs = inode_identity(cfg, dir).is_ok_and(|(dev, _)| dev == cfg.dev);
    if !(is_pin_dir(cfg, dir) || (on_bpffs && ino == cfg.pin_dir)) {
        return 0;
    }
    refuse(scratch::RMDIR, cfg, Attempt { op: op::RMDIR, detail: 0, target: ino, dentry })
}

/// rename(2) out of or into the pin directory, or of the directory or its
/// parent (the guard would live on under a path modtrace does not know).
#[lsm(hook = "inode_rename")]
pub fn seal_inode_rename(ctx: LsmContext) -> i32 {
    let Some(cfg) = sealed() else { return 0 };
    let (old_dir, old_dentry, new_dir): (*const u8, *const u8, *const u8) = (ctx.arg(0), ctx.arg(1), ctx.arg(2));
    let Ok((dev, _)) = inode_identity(cfg, old_dir) else { return 0 };
    let ino = dentry_ino(cfg, old_dentry).unwrap_or(0);
    let moved = dev == cfg.dev && (ino == cfg.pin_dir || ino == cfg.pin_parent);
    if !moved && !is_pin_dir(cfg, old_dir) && !is_pin_dir(cfg, new_dir) {
        return 0;
    }
    refuse(scratch::RENAME, cfg, Attempt { op: op::RENAME, detail: 0, target: ino, dentry: old_dentry })
}

/// umount(2) of the BPF file system's mount or of one above it, lazy or not.
#[lsm(hook = "sb_umount")]
pub fn seal_sb_umount(ctx: LsmContext) -> i32 {
    let Some(cfg) = sealed() else { return 0 };
    let flags: u32 = ctx.arg(1);
    // The vfsmount read through the helper, as a number: the verifier forbids
    // subtracting from the typed pointer ctx.arg gives.
    // SAFETY: the context holds the hook's arguments, 8 bytes each.
    let Ok(mnt) = (unsafe { bpf_probe_read_kernel(ctx.as_ptr() as *const u64) }) else { return 0 };
    let off = &cfg.offsets;
    // The vfsmount is embedded in a struct mount at mount_mnt (BTF).
    let id_at = mnt.wrapping_sub(u64::from(off.mount_mnt)).wrapping_add(u64::from(off.mnt_id));
    // SAFETY: the helper checks the address it reads.
    let Ok(id) = (unsafe { bpf_probe_read_kernel(id_at as *const u32) }) else { return 0 };
    if unsafe { SEAL_MOUNTS.get(id) }.is_none() {
        return 0;
    }
    let attempt = Attempt { op: op::UMOUNT, detail: flags, target: u64::from(id), dentry: core::ptr::null() };
    refuse(scratch::UMOUNT, cfg, attempt)
}

fn is_pin_dir(cfg: &SealConfig, dir: *const u8) -> bool {
    inode_identity(cfg, dir).is_ok_and(|(dev, ino)| dev == cfg.dev && ino == cfg.pin_dir)
}

/// The kernel's (s_dev, i_ino) of an inode.
fn inode_identity(cfg: &SealConfig, inode: *const u8) -> Result<(u32, u64), i32> {
    let off = &cfg.offsets;
    // SAFETY: offsets from BTF; bpf_probe_read_kernel checks every address.
    unsafe {
        let ino: u64 = bpf_probe_read_kernel(inode.add(off.i_ino as usize) as *const u64)?;
        let sb: *const u8 = bpf_probe_read_kernel(inode.add(off.i_sb as usize) as *const *const u8)?;
        let dev: u32 = bpf_probe_read_kernel(sb.add(off.s_dev as usize) as *const u32)?;
        Ok((dev, ino))
    }
}

/// The inode number of a dentry's inode (0 for a negative dentry).
fn dentry_ino(cfg: &SealConfig, dentry: *const u8) -> Result<u64, i32> {
    let off = &cfg.offsets;
    // SAFETY: as inode_identity; a negative dentry's null inode fails the read.
    unsafe {
        let inode: *const u8 = bpf_probe_read_kernel(dentry.add(off.d_inode as usize) as *const *const u8)?;
        bpf_probe_read_kernel(inode.add(off.i_ino as usize) as *const u64)
    }
}

/// Counts the refusal, reports it (folded like the guard's decisions) and
/// returns -EPERM.
fn refuse(slot: u32, cfg: &SealConfig, attempt: Attempt) -> i32 {
    count(&GUARD_COUNTS, decision::REFUSED);
    if let Some(ev) = SEAL_SCRATCH.get_ptr_mut(slot) {
        // SAFETY: this program's own slot on this CPU (see SEAL_SCRATCH).
        report(unsafe { &mut *ev }, cfg, &attempt);
    }
    -EPERM
}

fn report(ev: &mut GuardEvent, cfg: &SealConfig, attempt: &Attempt) {
    let ts = now();
    ev.hook = hook::SEAL;
    ev.decision = decision::REFUSED;
    ev.mode = mode::ENFORCE;
    clear(&mut ev.repeats);
    ev.id = attempt.op;
    ev.dev = attempt.detail;
    ev.ino = attempt.target;
    zero(&mut ev.name);
    zero(&mut ev.file);
    if !attempt.dentry.is_null() {
        let _ = dentry_name(cfg, attempt.dentry, &mut ev.file);
    }
    match fold(ev, ts) {
        Some(folded) => ev.repeats = folded,
        None => return,
    }
    send(ev, ts);
}

fn dentry_name(cfg: &SealConfig, dentry: *const u8, out: &mut [u8; NAME_LEN]) -> Result<(), i32> {
    // SAFETY: offsets from BTF; the helpers check every address.
    unsafe {
        let name: *const u8 = bpf_probe_read_kernel(dentry.add(cfg.offsets.d_name as usize) as *const *const u8)?;
        bpf_probe_read_kernel_str_bytes(name, out)?;
    }
    Ok(())
}

fn fold(ev: &GuardEvent, ts: u64) -> Option<u32> {
    let tgid = (aya_ebpf::helpers::bpf_get_current_pid_tgid() >> 32) as u32;
    let hash = 0xcbf2_9ce4_8422_2325u64 ^ (u64::from(ev.id) << 40) ^ (u64::from(ev.dev) << 8) ^ ev.ino;
    fold_in(&SEAL_REPEATS, &RequestKey { tgid, _pad: 0, name_hash: hash.wrapping_mul(0x0100_0000_01b3) }, ts)
}
