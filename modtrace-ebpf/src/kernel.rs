//! Reads of memory the program does not own: kernel structs reached from the
//! current task or a hook's arguments, the tracepoint's record, a module image
//! and the caller's user memory, each behind a typed accessor. The probes read
//! through these only, so why the reads are sound is said once, here:
//!
//! - Every read of a kernel or user address is a bpf_probe_read_* helper call,
//!   and the helper checks the address itself: a NULL, stale or wild pointer
//!   (an exiting task's NULL nsproxy, an offset this kernel does not have)
//!   makes it fail and zero its destination; it never faults. No address is
//!   dereferenced in Rust.
//! - The helper writes only the destination handed to it with its size: a
//!   local of the type read, or a buffer and its length. What is read into a
//!   local is an integer or an address ([`Plain`]): any bytes are a value.
//! - Addresses start at what the hook gives (the current task, the record, an
//!   LSM hook's or fexit's arguments, the registers saved at syscall entry) and
//!   move by offsets userspace took from the running kernel's BTF. task.rs
//!   skips a read whose offset is 0 (the field is not in this kernel's BTF);
//!   a wrong offset only gives a wrong value or a failed read.
//! - A failed read returns Err with the helper's code: the caller leaves that
//!   field unknown (its KNOWN flag unset) or drops the event.
//!
//! The record's fixed fields are the exception: [`record_field`] loads them
//! directly, which the verifier checks against the record when it loads the
//! program.

use core::{ffi::c_void, marker::PhantomData};

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_probe_read_kernel, bpf_probe_read_kernel_buf, bpf_probe_read_kernel_str_bytes,
        bpf_probe_read_user_str_bytes,
        generated::{
            bpf_get_current_comm, bpf_loop, bpf_get_current_task, bpf_get_current_task_btf, bpf_probe_read_user,
            bpf_task_pt_regs,
        },
    },
    programs::TracePointContext,
};
use modtrace_common::{
    COMM_LEN, TaskOffsets,
    elf::{ImageBytes, Refused},
    guard::FileOffsets,
};

/// What a read returns into a local: integers and addresses, for which any
/// bytes are a valid value. Sealed: implemented here only.
pub trait Plain: Copy + sealed::Sealed {}

mod sealed {
    pub trait Sealed {}
}

macro_rules! plain {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Plain for $t {}
    )*};
}
plain!(u8, u16, u32, u64, i32, i64, *const u8);

/// The address of a kernel struct of kind `S` (a marker below), only ever
/// handed to the read helpers.
pub struct Kptr<S> {
    addr: *const u8,
    kind: PhantomData<S>,
}

impl<S> Clone for Kptr<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for Kptr<S> {}

impl<S> Kptr<S> {
    /// Any address will do: a wrong one only makes the reads fail.
    #[inline(always)]
    pub fn new(addr: *const u8) -> Self {
        Kptr { addr, kind: PhantomData }
    }

    #[inline(always)]
    pub fn is_null(self) -> bool {
        self.addr.is_null()
    }

    /// The field `offset` bytes in.
    #[inline(always)]
    fn field<T: Field>(self, offset: usize) -> Result<T, i32> {
        T::read_at(self.addr.wrapping_add(offset))
    }
}

/// What a field holds: a plain value, or a pointer to another struct.
trait Field: Sized {
    fn read_at(addr: *const u8) -> Result<Self, i32>;
}

impl<T: Plain> Field for T {
    #[inline(always)]
    fn read_at(addr: *const u8) -> Result<T, i32> {
        read(addr)
    }
}

impl<S> Field for Kptr<S> {
    #[inline(always)]
    fn read_at(addr: *const u8) -> Result<Self, i32> {
        read::<*const u8>(addr).map(Kptr::new)
    }
}

/// A `T` at a kernel address.
#[inline(always)]
fn read<T: Plain>(addr: *const u8) -> Result<T, i32> {
    // SAFETY: the module's note; the helper writes only the T it returns.
    unsafe { bpf_probe_read_kernel(addr as *const T) }
}

/// `out.len()` bytes at a kernel address.
#[inline(always)]
fn read_bytes(addr: *const u8, out: &mut [u8]) -> Result<(), i32> {
    // SAFETY: the module's note; the helper writes at most `out.len()` bytes.
    unsafe { bpf_probe_read_kernel_buf(addr, out) }
}

/// `struct task_struct`
pub enum Task {}
/// `struct nsproxy`
pub enum Nsproxy {}
/// `struct pid_namespace`
pub enum PidNamespace {}
/// `struct mnt_namespace`
pub enum MntNamespace {}
/// `struct css_set`
pub enum CssSet {}
/// `struct cgroup`
pub enum Cgroup {}
/// `struct kernfs_node`
pub enum KernfsNode {}
/// `struct cred`
pub enum Cred {}
/// `struct mm_struct`
pub enum Mm {}
/// `struct file`
pub enum File {}
/// `struct inode`
pub enum Inode {}
/// `struct super_block`
pub enum SuperBlock {}
/// `struct dentry`
pub enum Dentry {}
/// `struct pt_regs`
pub enum PtRegs {}
/// A NUL-terminated string.
pub enum Chars {}


/// Declares the fields read in struct `$kind`, each `name: Type` or
/// `name = offset_name: Type`, with its offset in `$offsets` (from BTF).
macro_rules! fields {
    ($kind:ty, $offsets:ty { $($(#[$doc:meta])* $name:ident $(= $field:ident)?: $ret:ty,)* }) => {
        impl Kptr<$kind> {$(
            $(#[$doc])*
            #[inline(always)]
            pub fn $name(self, off: &$offsets) -> Result<$ret, i32> {
                self.field(fields!(@offset off, $name $($field)?) as usize)
            }
        )*}
    };
    (@offset $off:ident, $name:ident) => { $off.$name };
    (@offset $off:ident, $name:ident $field:ident) => { $off.$field };
}

fields!(Task, TaskOffsets {
    real_parent: Kptr<Task>,
    group_leader: Kptr<Task>,
    tgid: u32,
    /// task_struct.flags (PF_*).
    flags = task_flags: u32,
    start_time: u64,
    loginuid: u32,
    sessionid: u32,
    cred: Kptr<Cred>,
    /// NULL for a kernel thread.
    mm: Kptr<Mm>,
    cgroups: Kptr<CssSet>,
    /// NULL once the task is exiting.
    nsproxy: Kptr<Nsproxy>,
});

fields!(Nsproxy, TaskOffsets {
    /// nsproxy.pid_ns_for_children.
    pid_ns = ns_pid: Kptr<PidNamespace>,
    mnt_ns = ns_mnt: Kptr<MntNamespace>,
});

fields!(PidNamespace, TaskOffsets { inum = pid_ns_inum: u32, });
fields!(MntNamespace, TaskOffsets { inum = mnt_ns_inum: u32, });

fields!(CssSet, TaskOffsets {
    /// The task's cgroup v2 cgroup.
    dfl_cgrp: Kptr<Cgroup>,
});

fields!(Cgroup, TaskOffsets { kn = cgroup_kn: Kptr<KernfsNode>, });

fields!(KernfsNode, TaskOffsets {
    /// NULL for the root.
    parent = kn_parent: Kptr<KernfsNode>,
    name = kn_name: Kptr<Chars>,
});

fields!(Cred, TaskOffsets { euid = cred_euid: u32, });

fields!(Mm, TaskOffsets {
    /// Where the argv area starts, in the task's user memory.
    arg_start: u64,
    arg_end: u64,
});

fields!(File, FileOffsets {
    inode = f_inode: Kptr<Inode>,
    /// file.f_path.dentry
    dentry = f_dentry: Kptr<Dentry>,
});

fields!(Inode, FileOffsets {
    ino = i_ino: u64,
    sb = i_sb: Kptr<SuperBlock>,
});

fields!(SuperBlock, FileOffsets { dev = s_dev: u32, });

fields!(Dentry, FileOffsets {
    /// dentry.d_name.name
    name = d_name: Kptr<Chars>,
});

impl Kptr<Task> {
    /// The task the program runs for.
    #[inline(always)]
    pub fn current() -> Self {
        // SAFETY: no arguments; it returns an address, which is only read through.
        Kptr::new(unsafe { bpf_get_current_task() } as *const u8)
    }

    #[inline(always)]
    pub fn comm(self, off: &TaskOffsets, out: &mut [u8; COMM_LEN]) -> Result<(), i32> {
        read_bytes(self.addr.wrapping_add(off.comm as usize), out)
    }
}


/// The current task's comm, written into `out` (zero-padded, or cleared).
#[inline(always)]
pub fn current_comm(out: &mut [u8; COMM_LEN]) {
    // SAFETY: the helper writes at most COMM_LEN bytes, the size given.
    unsafe { bpf_get_current_comm(out.as_mut_ptr() as *mut c_void, COMM_LEN as u32) };
}

impl Kptr<PtRegs> {
    /// The registers the current task's syscall saved at entry (a BTF task).
    #[inline(always)]
    pub fn saved() -> Self {
        // SAFETY: bpf_task_pt_regs takes the BTF task pointer that
        // bpf_get_current_task_btf returns; the verifier checks that pairing.
        Kptr::new(unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) } as *const u8)
    }

    /// The register `offset` bytes in (modtrace_common::regs).
    #[inline(always)]
    pub fn reg(self, offset: usize) -> Result<u64, i32> {
        self.field(offset)
    }
}

impl Kptr<Chars> {
    /// Copies the string into `out`, cut to fit and NUL-terminated; returns it
    /// without the NUL.
    #[inline(always)]
    pub fn copy_to(self, out: &mut [u8]) -> Result<&[u8], i32> {
        // SAFETY: the module's note; the helper writes at most `out.len()` bytes.
        unsafe { bpf_probe_read_kernel_str_bytes(self.addr, out) }
    }
}

/// `size` bytes of kernel memory a hook was given (a module image): every read
/// is checked to lie inside them first.
pub struct Image {
    start: *const u8,
    size: u64,
}

impl Image {
    pub fn new(start: *const u8, size: u64) -> Self {
        Image { start, size }
    }

    /// The address of `len` bytes at `off`, if they lie inside.
    #[inline(always)]
    fn at(&self, off: u64, len: u64) -> Result<*const u8, Refused> {
        if off > self.size || len > self.size - off {
            Err(Refused::Unreadable)
        } else {
            Ok(self.start.wrapping_add(off as usize))
        }
    }

    #[inline(always)]
    fn read<T: Plain>(&self, off: u64) -> Result<T, Refused> {
        read(self.at(off, size_of::<T>() as u64)?).map_err(|_| Refused::Unreadable)
    }
}

/// The image as modtrace_common::elf parses it: the same parse as on the host,
/// over reads that stay inside the image.
impl ImageBytes for Image {
    #[inline(always)]
    fn size(&self) -> u64 {
        self.size
    }

    #[inline(always)]
    fn u16_at(&self, off: u64) -> Result<u16, Refused> {
        self.read(off)
    }

    #[inline(always)]
    fn u32_at(&self, off: u64) -> Result<u32, Refused> {
        self.read(off)
    }

    #[inline(always)]
    fn u64_at(&self, off: u64) -> Result<u64, Refused> {
        self.read(off)
    }

    #[inline(always)]
    fn bytes_at(&self, off: u64, out: &mut [u8]) -> Result<(), Refused> {
        read_bytes(self.at(off, out.len() as u64)?, out).map_err(|_| Refused::Unreadable)
    }

    #[inline(always)]
    fn str_at(&self, off: u64, out: &mut [u8]) -> Result<usize, Refused> {
        let chars = Kptr::<Chars>::new(self.at(off, out.len() as u64)?);
        // The helper's count includes the NUL; copy_to returns the bytes before it.
        chars.copy_to(out).map(|s| s.len() + 1).map_err(|_| Refused::Unreadable)
    }

    /// bpf_loop (5.17+): the kernel runs `step`, which the verifier checked
    /// once, for each index.
    #[inline(always)]
    fn each<F: FnMut(u32) -> bool>(&self, from: u32, to: u32, step: F) {
        if to <= from {
            return;
        }
        let mut walk = Walk { from, step };
        let ctx = &mut walk as *mut Walk<F> as *mut c_void;
        // SAFETY: `loop_step::<F>` is given `ctx`, a Walk<F> that outlives the
        // call; the helper calls it at most `to - from` times, on this thread.
        unsafe { bpf_loop(to - from, loop_step::<F> as *mut c_void, ctx, 0) };
    }
}

/// An `each` in progress: where the indexes start, and the step.
struct Walk<F> {
    from: u32,
    step: F,
}

/// bpf_loop's callback: 0 goes on, 1 stops.
extern "C" fn loop_step<F: FnMut(u32) -> bool>(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the Walk<F> that `each` handed to bpf_loop with this
    // function, alive and not otherwise borrowed while the helper runs.
    let walk = unsafe { &mut *(ctx as *mut Walk<F>) };
    if (walk.step)(walk.from + index as u32) { 0 } else { 1 }
}

/// A fixed field of the tracepoint's record, read straight from it: no helper
/// call, and no failure that would fork the verifier's walk of what follows.
pub fn record_field<T: Plain>(ctx: &TracePointContext, offset: usize) -> T {
    // SAFETY: a plain load from the record. The verifier refuses the program at
    // load time if `offset` plus T's size runs past the record; the offsets
    // (modtrace_common::tp) are checked against the kernel's format files
    // before loading.
    unsafe { core::ptr::read_volatile((ctx.as_ptr() as *const u8).add(offset) as *const T) }
}

/// A field of the record, read with the helper (which may fail).
#[inline(always)]
pub fn record_read<T: Plain>(ctx: &TracePointContext, offset: usize) -> Result<T, i32> {
    // SAFETY: the module's note: a helper read at the record's address.
    unsafe { ctx.read_at(offset) }
}

/// Reads a `__data_loc char[]` field (low 16 bits: offset in the record) into `buf`.
pub fn read_data_loc(ctx: &TracePointContext, field_offset: usize, buf: &mut [u8]) -> Result<(), i32> {
    let loc: u32 = record_read(ctx, field_offset)?;
    let start = (loc & 0xffff) as usize;
    Kptr::<Chars>::new((ctx.as_ptr() as *const u8).wrapping_add(start)).copy_to(buf)?;
    Ok(())
}

/// The NUL-terminated string at user address `addr`, cut to fit `out`.
#[inline(always)]
pub fn user_str(addr: u64, out: &mut [u8]) -> Result<&[u8], i32> {
    // SAFETY: the module's note; the helper checks the user address and writes
    // at most `out.len()` bytes.
    unsafe { bpf_probe_read_user_str_bytes(addr as *const u8, out) }
}

/// The first `len` bytes at user address `addr`, at most N of them.
#[inline(always)]
pub fn user_bytes<const N: usize>(addr: u64, len: u64, out: &mut [u8; N]) -> Result<(), i32> {
    // The comparison gives the verifier its bound on the size.
    let size = if len > N as u64 { N as u32 } else { len as u32 };
    // SAFETY: the module's note; the helper writes `size` <= N bytes.
    let rc = unsafe { bpf_probe_read_user(out.as_mut_ptr() as *mut c_void, size, addr as *const c_void) };
    if rc != 0 {
        return Err(rc as i32);
    }
    Ok(())
}
