//! One file per load path. Tracepoint field offsets live in modtrace_common::tp,
//! where userspace checks them against the kernel's format files before loading.

mod guard;
mod load;
mod module;
mod request;
mod seal;

use aya_ebpf::{EbpfContext, helpers::bpf_probe_read_kernel_str_bytes, programs::TracePointContext};

/// A fixed field of the tracepoint's record, read straight from it: no helper
/// call, and no failure that would fork the verifier's walk of what follows.
fn record_field<T: Copy>(ctx: &TracePointContext, offset: usize) -> T {
    unsafe { core::ptr::read_volatile((ctx.as_ptr() as *const u8).add(offset) as *const T) }
}

/// Reads a `__data_loc char[]` field (low 16 bits: offset in the record) into `buf`.
fn read_data_loc(ctx: &TracePointContext, field_offset: usize, buf: &mut [u8]) -> Result<(), i32> {
    let loc: u32 = unsafe { ctx.read_at(field_offset)? };
    let start = (loc & 0xffff) as usize;
    unsafe {
        let src = (ctx.as_ptr() as *const u8).add(start);
        bpf_probe_read_kernel_str_bytes(src, buf)?;
    }
    Ok(())
}
