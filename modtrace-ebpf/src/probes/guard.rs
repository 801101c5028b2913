//! `modtrace guard`: BPF LSM programs that allow the profile's modules and
//! refuse (enforce) or report (complain) everything else. Userspace pins them,
//! so they keep deciding after the command returns; no userspace process is
//! asked at decision time.
//!
//! The policy is a generation: GUARD_CONFIG's single entry names the
//! generation in force, and the alias and file maps hold entries of that
//! generation (and, while one is being replaced, of the next). Swapping the
//! config entry is one hash-map update, so each decision sees one policy.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes},
    macros::{lsm, map},
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::LsmContext,
};
use modtrace_common::{
    NAME_LEN, RepeatState, RequestKey,
    guard::{AliasKey, FileKey, FileValue, GuardConfig, GuardEvent, decision, hook, lost, mode},
    kind,
};

use crate::{
    maps::fold_in,
    task::{fill_header, now},
};

const EPERM: i32 = 1;
const BPF_F_NO_PREALLOC: u32 = 1;

/// Key 0: the policy in force. No entry: no policy, everything is allowed.
#[map]
static GUARD_CONFIG: HashMap<u32, GuardConfig> = HashMap::with_max_entries(1, 0);

/// Allowed request_module strings. Room for two generations during a swap.
#[map]
static GUARD_ALIASES: HashMap<AliasKey, u8> = HashMap::with_max_entries(65536, BPF_F_NO_PREALLOC);

/// Allowed module files by (dev, ino), with the module each holds.
#[map]
static GUARD_FILES: HashMap<FileKey, FileValue> = HashMap::with_max_entries(32768, BPF_F_NO_PREALLOC);

/// Decisions so far, by `decision::*`.
#[map]
static GUARD_COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(decision::COUNT, 0);

/// Decisions that found their ring full, by `lost::*`.
#[map]
static GUARD_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(lost::COUNT, 0);

/// Decisions for the journal logger (`modtrace guard log`).
#[map]
static GUARD_LOG: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// The same decisions for `modtrace trace`, which reads them while it runs.
#[map]
static GUARD_TRACE: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);

/// Folding of identical refusals by one process (a loop of socket() calls).
#[map]
static GUARD_REPEATS: LruHashMap<RequestKey, RepeatState> = LruHashMap::with_max_entries(4096, 0);

/// The event being built, per CPU (too large for the stack).
#[map]
static GUARD_SCRATCH: PerCpuArray<GuardEvent> = PerCpuArray::with_max_entries(1, 0);

#[lsm(hook = "kernel_module_request")]
pub fn guard_request(ctx: LsmContext) -> i32 {
    let earlier: i32 = ctx.arg(1);
    if earlier != 0 {
        return earlier;
    }
    let Some(cfg) = config() else { return 0 };
    let name_ptr: *const u8 = ctx.arg(0);
    let mut key = AliasKey { generation: cfg.generation, _pad: 0, name: [0; NAME_LEN] };
    if unsafe { bpf_probe_read_kernel_str_bytes(name_ptr, &mut key.name) }.is_err() {
        return 0;
    }
    let allowed = unsafe { GUARD_ALIASES.get(&key) }.is_some();
    let (verdict, ret) = decide(&cfg, allowed);
    report(&cfg, verdict, |ev| {
        ev.hook = hook::REQUEST;
        ev.name = key.name;
    });
    ret
}

#[lsm(hook = "kernel_read_file")]
pub fn guard_read_file(ctx: LsmContext) -> i32 {
    let earlier: i32 = ctx.arg(3);
    if earlier != 0 {
        return earlier;
    }
    let Some(cfg) = config() else { return 0 };
    let id: u32 = ctx.arg(1);
    if id != cfg.reading_module && id != cfg.reading_module_compressed {
        return 0;
    }
    let file: *const u8 = ctx.arg(0);
    let (dev, ino) = file_identity(&cfg, file).unwrap_or((0, 0));
    let key = FileKey { generation: cfg.generation, dev, ino };
    let module = unsafe { GUARD_FILES.get(&key) }.map(|v| v.module);
    let (verdict, ret) = decide(&cfg, module.is_some());
    report(&cfg, verdict, |ev| {
        ev.hook = hook::READ_FILE;
        ev.id = id;
        ev.dev = dev;
        ev.ino = ino;
        ev.name = module.unwrap_or([0; NAME_LEN]);
        let _ = file_name(&cfg, file, &mut ev.file);
    });
    ret
}

#[lsm(hook = "kernel_load_data")]
pub fn guard_load_data(ctx: LsmContext) -> i32 {
    let earlier: i32 = ctx.arg(2);
    if earlier != 0 {
        return earlier;
    }
    let Some(cfg) = config() else { return 0 };
    let id: u32 = ctx.arg(0);
    if id != cfg.loading_module {
        return 0;
    }
    let (verdict, ret) = decide(&cfg, cfg.allow_init_module != 0);
    report(&cfg, verdict, |ev| {
        ev.hook = hook::LOAD_DATA;
        ev.id = id;
    });
    ret
}

fn config() -> Option<GuardConfig> {
    unsafe { GUARD_CONFIG.get(&0) }.copied()
}

/// The verdict and the hook's return value.
fn decide(cfg: &GuardConfig, allowed: bool) -> (u32, i32) {
    if allowed {
        (decision::ALLOWED, 0)
    } else if cfg.mode == mode::ENFORCE {
        (decision::DENIED, -EPERM)
    } else {
        (decision::WOULD_DENY, 0)
    }
}

/// The kernel's own (s_dev, i_ino) of `file`: not a path a process chose.
fn file_identity(cfg: &GuardConfig, file: *const u8) -> Result<(u32, u64), i32> {
    let off = &cfg.offsets;
    unsafe {
        let inode: *const u8 = bpf_probe_read_kernel(file.add(off.f_inode as usize) as *const *const u8)?;
        let ino: u64 = bpf_probe_read_kernel(inode.add(off.i_ino as usize) as *const u64)?;
        let sb: *const u8 = bpf_probe_read_kernel(inode.add(off.i_sb as usize) as *const *const u8)?;
        let dev: u32 = bpf_probe_read_kernel(sb.add(off.s_dev as usize) as *const u32)?;
        Ok((dev, ino))
    }
}

/// The file's dentry name, for the report only (never for the decision).
fn file_name(cfg: &GuardConfig, file: *const u8, out: &mut [u8; NAME_LEN]) -> Result<(), i32> {
    let off = &cfg.offsets;
    unsafe {
        let dentry: *const u8 = bpf_probe_read_kernel(file.add(off.f_dentry as usize) as *const *const u8)?;
        let name: *const u8 = bpf_probe_read_kernel(dentry.add(off.d_name as usize) as *const *const u8)?;
        bpf_probe_read_kernel_str_bytes(name, out)?;
    }
    Ok(())
}

/// Counts the decision and sends it to both rings. Refusals repeated by the
/// same process within the fold window are counted, not sent.
fn report(cfg: &GuardConfig, verdict: u32, fill: impl FnOnce(&mut GuardEvent)) {
    add(&GUARD_COUNTS, verdict);
    let Some(ev) = GUARD_SCRATCH.get_ptr_mut(0) else { return };
    let ev = unsafe { &mut *ev };
    let ts = now();
    if !fill_header(&mut ev.header, kind::GUARD, ts) {
        return;
    }
    ev.decision = verdict;
    ev.mode = cfg.mode;
    ev.repeats = 0;
    ev.dev = 0;
    ev.id = 0;
    ev.ino = 0;
    ev.name = [0; NAME_LEN];
    ev.file = [0; NAME_LEN];
    fill(ev);
    if verdict != decision::ALLOWED {
        match fold(ev) {
            Some(folded) => ev.repeats = folded,
            None => return,
        }
    }
    if GUARD_LOG.output::<GuardEvent>(&*ev, 0).is_err() {
        add(&GUARD_LOST, lost::LOG);
    }
    if GUARD_TRACE.output::<GuardEvent>(&*ev, 0).is_err() {
        add(&GUARD_LOST, lost::TRACE);
    }
}

fn fold(ev: &GuardEvent) -> Option<u32> {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ ev.hook as u64 ^ ev.ino;
    for &b in ev.name.iter().chain(ev.file.iter()) {
        hash = (hash ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    fold_in(&GUARD_REPEATS, &RequestKey { tgid, _pad: 0, name_hash: hash }, ev.header.ts_ns)
}

fn add(counters: &PerCpuArray<u64>, slot: u32) {
    if let Some(c) = counters.get_ptr_mut(slot) {
        unsafe { *c += 1 };
    }
}
