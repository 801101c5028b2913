//! `modtrace guard`: BPF LSM programs that allow the profile's modules and
//! refuse (enforce) or report (complain) everything else. Userspace pins them,
//! so they keep deciding after the command returns; no userspace process is
//! asked at decision time.
//!
//! The policy is a generation: GUARD_CONFIG's single entry names the
//! generation in force, and the alias and file maps hold entries of that
//! generation (and, while one is being replaced, of the next). Swapping the
//! config entry is one hash-map update, so each decision sees one policy.

use core::mem::MaybeUninit;

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{lsm, map},
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::LsmContext,
};
use modtrace_common::{
    elf,
    guard::{decision, hook, lost, mode, AliasKey, FileKey, FileValue, GuardConfig, GuardEvent},
    kind, RepeatState, RequestKey, NAME_LEN,
};

use crate::{
    fold::fold_in_lazily,
    kernel::{Chars, File, Image, Kptr},
    maps::count,
    mem::{clear, zero, zero_at},
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

/// Module names an init_module image may carry (with --allow-init-module).
#[map]
static GUARD_MODULES: HashMap<AliasKey, u8> = HashMap::with_max_entries(32768, BPF_F_NO_PREALLOC);

/// Allowed module files by (dev, ino), with the module each holds.
#[map]
static GUARD_FILES: HashMap<FileKey, FileValue> = HashMap::with_max_entries(32768, BPF_F_NO_PREALLOC);

/// Decisions so far, by `decision::*`.
#[map]
pub(super) static GUARD_COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(decision::COUNT, 0);

/// Decisions that found their ring full, by `lost::*`.
#[map]
static GUARD_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(lost::COUNT, 0);

/// Decisions for the journal logger (`modtrace guard log`).
#[map]
static GUARD_LOG: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// The same decisions for `modtrace trace`, which reads them while it runs.
#[map]
static GUARD_TRACE: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);

/// Folding of identical decisions by one process (a loop of socket() calls).
#[map]
static GUARD_REPEATS: LruHashMap<RequestKey, RepeatState> = LruHashMap::with_max_entries(4096, 0);

/// The event being built, per CPU (too large for the stack) and per hook: a
/// hook's program can be preempted on a preemptible kernel (Debian's 7.x),
/// and another hook's program on that CPU must not write into its event. The
/// kernel never runs one program twice at once on a CPU.
#[map]
static SCRATCH_REQUEST: PerCpuArray<GuardEvent> = PerCpuArray::with_max_entries(1, 0);
#[map]
static SCRATCH_READ_FILE: PerCpuArray<GuardEvent> = PerCpuArray::with_max_entries(1, 0);
#[map]
static SCRATCH_LOAD_DATA: PerCpuArray<GuardEvent> = PerCpuArray::with_max_entries(1, 0);
#[map]
static SCRATCH_POST_LOAD_DATA: PerCpuArray<GuardEvent> = PerCpuArray::with_max_entries(1, 0);

#[lsm(hook = "kernel_module_request")]
pub fn guard_request(ctx: LsmContext) -> i32 {
    let earlier: i32 = ctx.arg(1);
    if earlier != 0 {
        return earlier;
    }
    let Some(cfg) = config() else { return 0 };
    let name = Kptr::<Chars>::new(ctx.arg(0));
    let mut slot = MaybeUninit::uninit();
    let key = empty_key(&mut slot, cfg.generation);
    if name.copy_to(&mut key.name).is_err() {
        return 0;
    }
    // SAFETY: only whether the entry exists is used, not the value.
    let allowed = unsafe { GUARD_ALIASES.get(&*key) }.is_some();
    let (verdict, ret) = decide(&cfg, allowed);
    report(&SCRATCH_REQUEST, &cfg, verdict, |ev| {
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
    let file = Kptr::<File>::new(ctx.arg(0));
    let (dev, ino) = file_identity(&cfg, file).unwrap_or((0, 0));
    let key = FileKey { generation: cfg.generation, dev, ino };
    // SAFETY: the value is copied out at once; userspace writes a generation's
    // entries before the config names it.
    let module = unsafe { GUARD_FILES.get(&key) }.map(|v| v.module);
    let (verdict, ret) = decide(&cfg, module.is_some());
    report(&SCRATCH_READ_FILE, &cfg, verdict, |ev| {
        ev.hook = hook::READ_FILE;
        ev.id = id;
        ev.dev = dev;
        ev.ino = ino;
        if let Some(module) = module {
            ev.name = module;
        }
        let _ = file_name(&cfg, file, &mut ev.file);
    });
    ret
}

/// init_module: before the image is copied in. Without --allow-init-module
/// it is refused (enforce) here; with it, the name is checked after the copy.
#[lsm(hook = "kernel_load_data")]
pub fn guard_load_data(ctx: LsmContext) -> i32 {
    let earlier: i32 = ctx.arg(2);
    if earlier != 0 {
        return earlier;
    }
    let Some(cfg) = config() else { return 0 };
    let id: u32 = ctx.arg(0);
    if id != cfg.loading_module || cfg.allow_init_module != 0 {
        return 0;
    }
    let (verdict, ret) = decide(&cfg, false);
    report(&SCRATCH_LOAD_DATA, &cfg, verdict, |ev| {
        ev.hook = hook::LOAD_DATA;
        ev.id = id;
    });
    ret
}

/// init_module with --allow-init-module: the image is in kernel memory now,
/// before the kernel checks it. Its module's name, found as the kernel finds
/// it (modtrace_common::elf), must be an allowed module's; an image that gives
/// no name the kernel is sure to use is refused.
#[lsm(hook = "kernel_post_load_data")]
pub fn guard_post_load_data(ctx: LsmContext) -> i32 {
    let earlier: i32 = ctx.arg(4);
    if earlier != 0 {
        return earlier;
    }
    let Some(cfg) = config() else { return 0 };
    let id: u32 = ctx.arg(2);
    if id != cfg.loading_module || cfg.allow_init_module == 0 {
        return 0;
    }
    let image = Image::new(ctx.arg(0), ctx.arg(1));
    let mut slot = MaybeUninit::uninit();
    let key = empty_key(&mut slot, cfg.generation);
    let named = image_name(&image, u64::from(cfg.module_name), &mut key.name);
    // SAFETY: only whether the entry exists is used, not the value.
    let allowed = named && unsafe { GUARD_MODULES.get(&*key) }.is_some();
    let (verdict, ret) = decide(&cfg, allowed);
    report(&SCRATCH_POST_LOAD_DATA, &cfg, verdict, |ev| {
        ev.hook = hook::LOAD_DATA;
        ev.id = id;
        ev.name = key.name;
    });
    ret
}

/// The module's name in `image` into `out` (zeroed): modtrace_common::elf's
/// parse, in a frame of its own. Inlined, its locals made the hook's frame
/// 328 bytes, and with fill_header's below it (report) the call chain's
/// stack passed the verifier's 512.
#[inline(never)]
fn image_name(image: &Image, name_off: u64, out: &mut [u8; NAME_LEN]) -> bool {
    elf::module_name(image, name_off, out).is_ok()
}

/// A key of `generation` with an empty name, built in `slot` with volatile
/// stores: zeroes the compiler sees are a memset call, a loop the verifier
/// walks byte by byte.
fn empty_key(slot: &mut MaybeUninit<AliasKey>, generation: u32) -> &mut AliasKey {
    let key = slot.as_mut_ptr();
    // SAFETY: `slot` is ours; every field is written before assume_init.
    unsafe {
        (&raw mut (*key).generation).write_volatile(generation);
        (&raw mut (*key)._pad).write_volatile(0);
        zero_at(&raw mut (*key).name);
        slot.assume_init_mut()
    }
}

fn config() -> Option<GuardConfig> {
    // SAFETY: copied out at once; userspace replaces the entry whole.
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
fn file_identity(cfg: &GuardConfig, file: Kptr<File>) -> Result<(u32, u64), i32> {
    let off = &cfg.offsets;
    let inode = file.inode(off)?;
    let ino = inode.ino(off)?;
    let dev = inode.sb(off)?.dev(off)?;
    Ok((dev, ino))
}

/// The file's dentry name, for the report only (never for the decision).
fn file_name(cfg: &GuardConfig, file: Kptr<File>, out: &mut [u8; NAME_LEN]) -> Result<(), i32> {
    let off = &cfg.offsets;
    file.dentry(off)?.name(off)?.copy_to(out)?;
    Ok(())
}

/// Counts the decision and sends it to both rings. The same decision on the
/// same thing by the same process within the fold window is counted, not
/// sent: a loop cannot flood the journal.
fn report(scratch: &PerCpuArray<GuardEvent>, cfg: &GuardConfig, verdict: u32, fill: impl FnOnce(&mut GuardEvent)) {
    count(&GUARD_COUNTS, verdict);
    let Some(ev) = scratch.get_ptr_mut(0) else { return };
    // SAFETY: a valid map value; each hook has its own scratch map, and the
    // kernel never runs one program twice at once on a CPU.
    let ev = unsafe { &mut *ev };
    ev.decision = verdict;
    ev.mode = cfg.mode;
    clear(&mut ev.repeats);
    clear(&mut ev.dev);
    clear(&mut ev.id);
    clear(&mut ev.ino);
    zero(&mut ev.name);
    zero(&mut ev.file);
    fill(ev);
    match fold(ev) {
        Some(folded) => ev.repeats = folded,
        None => return,
    }
    // The clock only for a decision that is sent: a folded one is told
    // apart by jiffies (fold_in_lazily), and a clock read is a device read
    // where the clocksource is the HPET.
    send(ev, now());
}

/// Fills the header and sends the decision to both rings (the seal's
/// refusals too); only for a decision that is sent: the header is the costly part.
#[inline(always)]
pub(super) fn send(ev: &mut GuardEvent, ts: u64) {
    if !fill_header(&mut ev.header, kind::GUARD, ts) {
        return;
    }
    if GUARD_LOG.output::<GuardEvent>(&*ev, 0).is_err() {
        count(&GUARD_LOST, lost::LOG);
    }
    if GUARD_TRACE.output::<GuardEvent>(&*ev, 0).is_err() {
        count(&GUARD_LOST, lost::TRACE);
    }
}

fn fold(ev: &GuardEvent) -> Option<u32> {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ ((ev.hook as u64) << 8 | ev.decision as u64) ^ ev.ino;
    // Indexed loops with a constant bound: the verifier follows these.
    for i in 0..NAME_LEN {
        hash = (hash ^ ev.name[i] as u64).wrapping_mul(0x0100_0000_01b3);
    }
    for i in 0..NAME_LEN {
        hash = (hash ^ ev.file[i] as u64).wrapping_mul(0x0100_0000_01b3);
    }
    fold_in_lazily(&GUARD_REPEATS, &RequestKey { tgid, _pad: 0, name_hash: hash })
}
