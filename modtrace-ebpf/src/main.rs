//! The kernel side of modtrace: tracepoints on every module load path.
// Built for bpfel-unknown-none by modtrace's build.rs; on the host (cargo
// test/clippy --workspace) it is an empty program.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// For the atomic add (maps::atomic_add): core offers no atomic read-modify-write on BPF.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

mod fold;
mod kernel;
mod maps;
mod mem;
mod probes;
mod task;

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// SAFETY: the kernel reads the license from this section; no other symbol
// has the name.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(target_arch = "bpf"))]
fn main() {}
