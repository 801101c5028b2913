//! module:module_load and module:module_free, in the loader's (or remover's) context.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use modtrace_common::{ModuleEvent, drop, kind, ring};

use crate::{
    kernel,
    maps::{LOADS, count_drop},
    mem::zero,
    task::{fill_header, now},
};

use modtrace_common::tp::{FREE_NAME as FREE_NAME_OFFSET, LOAD_NAME as LOAD_NAME_OFFSET, LOAD_TAINTS as LOAD_TAINTS_OFFSET};

#[tracepoint]
pub fn module_load(ctx: TracePointContext) -> u32 {
    super::load::mark_linked();
    // A read that can fail would fork the verifier's walk of all that follows.
    let taints: u32 = kernel::record_field(&ctx, LOAD_TAINTS_OFFSET);
    match send(&ctx, kind::LOADED, taints, LOAD_NAME_OFFSET) {
        Ok(()) | Err(_) => 0,
    }
}

#[tracepoint]
pub fn module_free(ctx: TracePointContext) -> u32 {
    match send(&ctx, kind::UNLOADED, 0, FREE_NAME_OFFSET) {
        Ok(()) | Err(_) => 0,
    }
}

fn send(ctx: &TracePointContext, event_kind: u32, taints: u32, name_offset: usize) -> Result<(), i32> {
    let Some(mut entry) = LOADS.reserve::<ModuleEvent>(0) else {
        count_drop(ring::LOADS);
        return Ok(());
    };
    // SAFETY: reserved ring memory, ours until submit or discard; the event is
    // all integers, each written before it is submitted.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    if !fill_header(&mut ev.header, event_kind, now()) {
        entry.discard(0);
        return Ok(());
    }
    ev.taints = taints;
    ev._pad = 0;
    zero(&mut ev.name);
    if let Err(e) = kernel::read_data_loc(ctx, name_offset, &mut ev.name) {
        entry.discard(0);
        count_drop(drop::MODULE_NAME_UNREAD);
        return Err(e);
    }
    entry.submit(0);
    Ok(())
}
