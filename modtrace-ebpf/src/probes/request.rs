//! module:module_request fires in the requester's own context, before the kernel
//! hands the alias to a modprobe helper: the one place the real requester is seen.

use core::mem::MaybeUninit;

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated::bpf_snprintf},
    macros::{map, tracepoint},
    maps::{LruHashMap, RingBuf},
    programs::TracePointContext,
};
use modtrace_common::{NAME_LEN, RepeatState, RequestEvent, RequestKey, SYMBOL_LEN, drop, kind, ring};

use crate::{
    kernel,
    fold::fold_in_lazily,
    maps::{count_drop, count_refused_repeats},
    mem::{store, zero_at},
    task::{fill_header, now, self_tgid},
};

use modtrace_common::tp::{REQUEST_IP as IP_OFFSET, REQUEST_NAME as NAME_OFFSET, REQUEST_WAIT as WAIT_OFFSET};

/// Requests: anyone can cause them (socket families, mounts), so they get a ring of
/// their own and can never crowd out a load.
#[map]
static REQUESTS: RingBuf = RingBuf::with_byte_size(512 * 1024, 0);

/// Folding of repeated identical requests, keyed by tgid and alias.
#[map]
static REQUEST_REPEATS: LruHashMap<RequestKey, RepeatState> =
    LruHashMap::with_max_entries(4096, 0);

#[tracepoint]
pub fn module_request(ctx: TracePointContext) -> u32 {
    match try_module_request(&ctx) {
        Ok(()) | Err(_) => 0,
    }
}

fn try_module_request(ctx: &TracePointContext) -> Result<(), i32> {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if tgid == self_tgid() {
        return Ok(());
    }
    // In words so that it is 8-aligned, zeroed by zero_at: the compiler's own
    // zeroing of it is a memset call the verifier walks byte by byte.
    let mut words = MaybeUninit::<[u64; NAME_LEN / 8]>::uninit();
    let name = words.as_mut_ptr().cast::<[u8; NAME_LEN]>();
    // SAFETY: `words` is a local of the name's size, 8-aligned as u64s, and
    // zeroed whole before the reference is made.
    let name = unsafe {
        zero_at(name);
        &mut *name
    };
    if let Err(e) = kernel::read_data_loc(ctx, NAME_OFFSET, name) {
        count_drop(drop::REQUEST_NAME_UNREAD);
        return Err(e);
    }
    let Some(repeats) = fold_request(tgid, name) else {
        return Ok(());
    };
    let ts = now();
    let Some(mut entry) = REQUESTS.reserve::<RequestEvent>(0) else {
        count_drop(ring::REQUESTS);
        count_refused_repeats(repeats);
        return Ok(());
    };
    // SAFETY: reserved ring memory, ours until submit or discard; the event is
    // all integers, each written before it is submitted.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    // Before the header, so that the verifier walks it once whatever the count.
    store(&mut ev.repeats, repeats);
    if !fill_header(&mut ev.header, kind::REQUEST, ts) {
        entry.discard(0);
        return Ok(());
    }
    ev.call_site = kernel::record_read::<u64>(ctx, IP_OFFSET).unwrap_or(0);
    name_call_site(ev.call_site, &mut ev.call_site_name);
    ev.wait = kernel::record_read::<u8>(ctx, WAIT_OFFSET).unwrap_or(0) as u32;
    ev.name = *name;
    entry.submit(0);
    Ok(())
}

/// bpf_snprintf's format must lie in a frozen read-only map: aya makes .rodata one.
// SAFETY: unmangled so that it keeps one name; no other symbol has it.
#[unsafe(no_mangle)]
static CALL_SITE_FORMAT: [u8; 4] = *b"%pS\0";

/// The kernel's own name of `addr` (symbol+offset/size [module]), written at
/// the request: userspace never needs all of /proc/kallsyms to name it.
fn name_call_site(addr: u64, out: &mut [u8; SYMBOL_LEN]) {
    let mut args = [addr];
    let format = CALL_SITE_FORMAT.as_ptr() as *const _;
    // SAFETY: the helper writes at most SYMBOL_LEN bytes into `out`, reads the
    // NUL-terminated format and one u64 argument (8 bytes).
    let written = unsafe { bpf_snprintf(out.as_mut_ptr() as *mut _, SYMBOL_LEN as u32, format, args.as_mut_ptr(), 8) };
    if written < 0 {
        out[0] = 0;
    }
}

/// The same alias requested again by the same process within the fold window is
/// counted, not sent: a loop of socket() calls must not fill the ring.
fn fold_request(tgid: u32, name: &[u8; NAME_LEN]) -> Option<u32> {
    let key = RequestKey { tgid, _pad: 0, name_hash: fnv1a(name) };
    fold_in_lazily(&REQUEST_REPEATS, &key)
}

fn fnv1a(name: &[u8; NAME_LEN]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name.iter() {
        if b == 0 {
            break;
        }
        hash = (hash ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
