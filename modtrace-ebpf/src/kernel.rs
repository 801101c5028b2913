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
//!   move by offsets userspace took from the running kernel's BTF. Where BTF
//!   lacks a field its offset is 0, and callers test that before reading.
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
            bpf_get_current_comm, bpf_get_current_task, bpf_get_current_task_btf, bpf_probe_read_user,
            bpf_task_pt_regs,
        },
    },
    programs::TracePointContext,
};
use modtrace_common::{COMM_LEN, TaskOffsets, guard::FileOffsets};

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

    /// The `T` `offset` bytes in.
    #[inline(always)]
    fn field<T: Plain>(self, offset: usize) -> Result<T, i32> {
        read(self.addr.wrapping_add(offset))
    }

    /// The pointer `offset` bytes in, to a struct of kind `F`.
    #[inline(always)]
    fn ptr<F>(self, offset: u32) -> Result<Kptr<F>, i32> {
        self.field::<*const u8>(offset as usize).map(Kptr::new)
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

impl Kptr<Task> {
    /// The task the program runs for.
    #[inline(always)]
    pub fn current() -> Self {
        // SAFETY: no arguments; it returns an address, which is only read through.
        Kptr::new(unsafe { bpf_get_current_task() } as *const u8)
    }

    #[inline(always)]
    pub fn real_parent(self, off: &TaskOffsets) -> Result<Kptr<Task>, i32> {
        self.ptr(off.real_parent)
    }

    #[inline(always)]
    pub fn group_leader(self, off: &TaskOffsets) -> Result<Kptr<Task>, i32> {
        self.ptr(off.group_leader)
    }

    #[inline(always)]
    pub fn tgid(self, off: &TaskOffsets) -> Result<u32, i32> {
        self.field(off.tgid as usize)
    }

    #[inline(always)]
    pub fn comm(self, off: &TaskOffsets, out: &mut [u8; COMM_LEN]) -> Result<(), i32> {
        read_bytes(self.addr.wrapping_add(off.comm as usize), out)
    }

    /// task_struct.flags (PF_*).
    #[inline(always)]
    pub fn flags(self, off: &TaskOffsets) -> Result<u32, i32> {
        self.field(off.task_flags as usize)
    }

    #[inline(always)]
    pub fn start_time(self, off: &TaskOffsets) -> Result<u64, i32> {
        self.field(off.start_time as usize)
    }

    #[inline(always)]
    pub fn loginuid(self, off: &TaskOffsets) -> Result<u32, i32> {
        self.field(off.loginuid as usize)
    }

    #[inline(always)]
    pub fn sessionid(self, off: &TaskOffsets) -> Result<u32, i32> {
        self.field(off.sessionid as usize)
    }

    #[inline(always)]
    pub fn cred(self, off: &TaskOffsets) -> Result<Kptr<Cred>, i32> {
        self.ptr(off.cred)
    }

    /// NULL for a kernel thread.
    #[inline(always)]
    pub fn mm(self, off: &TaskOffsets) -> Result<Kptr<Mm>, i32> {
        self.ptr(off.mm)
    }

    #[inline(always)]
    pub fn cgroups(self, off: &TaskOffsets) -> Result<Kptr<CssSet>, i32> {
        self.ptr(off.cgroups)
    }

    /// NULL once the task is exiting.
    #[inline(always)]
    pub fn nsproxy(self, off: &TaskOffsets) -> Result<Kptr<Nsproxy>, i32> {
        self.ptr(off.nsproxy)
    }
}

/// The current task's comm, written into `out` (zero-padded, or cleared).
#[inline(always)]
pub fn current_comm(out: &mut [u8; COMM_LEN]) {
    // SAFETY: the helper writes at most COMM_LEN bytes, the size given.
    unsafe { bpf_get_current_comm(out.as_mut_ptr() as *mut c_void, COMM_LEN as u32) };
}

impl Kptr<Nsproxy> {
    /// nsproxy.pid_ns_for_children.
    #[inline(always)]
    pub fn pid_ns(self, off: &TaskOffsets) -> Result<Kptr<PidNamespace>, i32> {
        self.ptr(off.ns_pid)
    }

    #[inline(always)]
    pub fn mnt_ns(self, off: &TaskOffsets) -> Result<Kptr<MntNamespace>, i32> {
        self.ptr(off.ns_mnt)
    }
}

impl Kptr<PidNamespace> {
    #[inline(always)]
    pub fn inum(self, off: &TaskOffsets) -> Result<u32, i32> {
        self.field(off.pid_ns_inum as usize)
    }
}

impl Kptr<MntNamespace> {
    #[inline(always)]
    pub fn inum(self, off: &TaskOffsets) -> Result<u32, i32> {
        self.field(off.mnt_ns_inum as usize)
    }
}

impl Kptr<CssSet> {
    /// The task's cgroup v2 cgroup.
    #[inline(always)]
    pub fn dfl_cgrp(self, off: &TaskOffsets) -> Result<Kptr<Cgroup>, i32> {
        self.ptr(off.dfl_cgrp)
    }
}

impl Kptr<Cgroup> {
    #[inline(always)]
    pub fn kn(self, off: &TaskOffsets) -> Result<Kptr<KernfsNode>, i32> {
        self.ptr(off.cgroup_kn)
    }
}

impl Kptr<KernfsNode> {
    /// NULL for the root.
    #[inline(always)]
    pub fn parent(self, off: &TaskOffsets) -> Result<Kptr<KernfsNode>, i32> {
        self.ptr(off.kn_parent)
    }

    #[inline(always)]
    pub fn name(self, off: &TaskOffsets) -> Result<Kptr<Chars>, i32> {
        self.ptr(off.kn_name)
    }
}

impl Kptr<Cred> {
    #[inline(always)]
    pub fn euid(self, off: &TaskOffsets) -> Result<u32, i32> {
        self.field(off.cred_euid as usize)
    }
}

impl Kptr<Mm> {
    /// Where the argv area starts, in the task's user memory.
    #[inline(always)]
    pub fn arg_start(self, off: &TaskOffsets) -> Result<u64, i32> {
        self.field(off.arg_start as usize)
    }

    #[inline(always)]
    pub fn arg_end(self, off: &TaskOffsets) -> Result<u64, i32> {
        self.field(off.arg_end as usize)
    }
}

impl Kptr<File> {
    #[inline(always)]
    pub fn inode(self, off: &FileOffsets) -> Result<Kptr<Inode>, i32> {
        self.ptr(off.f_inode)
    }

    /// file.f_path.dentry
    #[inline(always)]
    pub fn dentry(self, off: &FileOffsets) -> Result<Kptr<Dentry>, i32> {
        self.ptr(off.f_dentry)
    }
}

impl Kptr<Inode> {
    #[inline(always)]
    pub fn ino(self, off: &FileOffsets) -> Result<u64, i32> {
        self.field(off.i_ino as usize)
    }

    #[inline(always)]
    pub fn sb(self, off: &FileOffsets) -> Result<Kptr<SuperBlock>, i32> {
        self.ptr(off.i_sb)
    }
}

impl Kptr<SuperBlock> {
    #[inline(always)]
    pub fn dev(self, off: &FileOffsets) -> Result<u32, i32> {
        self.field(off.s_dev as usize)
    }
}

impl Kptr<Dentry> {
    /// dentry.d_name.name
    #[inline(always)]
    pub fn name(self, off: &FileOffsets) -> Result<Kptr<Chars>, i32> {
        self.ptr(off.d_name)
    }
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
    fn at(&self, off: u64, len: u64) -> Result<*const u8, i32> {
        if off > self.size || len > self.size - off { Err(0) } else { Ok(self.start.wrapping_add(off as usize)) }
    }

    /// The `T` at `off`.
    #[inline(always)]
    pub fn read<T: Plain>(&self, off: u64) -> Result<T, i32> {
        read(self.at(off, size_of::<T>() as u64)?)
    }

    /// `out.len()` bytes at `off`.
    #[inline(always)]
    pub fn bytes(&self, off: u64, out: &mut [u8]) -> Result<(), i32> {
        read_bytes(self.at(off, out.len() as u64)?, out)
    }

    /// The string at `off`, where `out.len()` bytes must lie inside.
    #[inline(always)]
    pub fn str(&self, off: u64, out: &mut [u8]) -> Result<(), i32> {
        Kptr::<Chars>::new(self.at(off, out.len() as u64)?).copy_to(out)?;
        Ok(())
    }
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
