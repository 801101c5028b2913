//! Wire types of the sealed guard (`modtrace guard start --sealed`): what the
//! seal's LSM programs protect, and how they say what they refused. A refusal
//! goes out as a [`crate::guard::GuardEvent`] with hook `guard::hook::SEAL`
//! and decision `guard::decision::REFUSED`; its `id` is an `op::*`, `dev` the
//! bpf command, permission mask or umount flags, `ino` the object id, inode or
//! mount id, and `name` the entry's name (pin directory operations).

/// `GuardEvent::id` of a refusal: what was tried.
pub mod op {
    /// bpf(*_GET_FD_BY_ID) of one of the guard's maps, programs or links.
    pub const BPF_BY_ID: u32 = 1;
    /// Opening one of the guard's pins (bpf(BPF_OBJ_GET), bpftool ... pinned).
    pub const PIN_OPEN: u32 = 2;
    /// unlink(2) in the pin directory: unpinning.
    pub const UNLINK: u32 = 3;
    /// rmdir(2) of the pin directory.
    pub const RMDIR: u32 = 4;
    /// rename(2) of, into or out of the pin directory (or of its parent).
    pub const RENAME: u32 = 5;
    /// umount(2) of the BPF file system, or of a mount above it.
    pub const UMOUNT: u32 = 6;
}

/// `SealObject::kind`: the kernel's id spaces.
pub mod object {
    pub const MAP: u32 = 1;
    pub const PROG: u32 = 2;
    pub const LINK: u32 = 3;
}

/// Values of the inode map: how a pin of the guard may still be opened.
pub mod access {
    /// Not at all: the policy maps, the programs, the links.
    pub const NONE: u32 = 0;
    /// Read only (BPF_F_RDONLY): the counters `guard status` reads.
    pub const READ: u32 = 1;
    /// Read and write: the decision rings, whose readers move the consumer
    /// position (they have no entries to update or delete).
    pub const ANY: u32 = 2;
}

/// bpf(2) commands the seal looks at (uapi linux/bpf.h, enum bpf_cmd).
pub mod cmd {
    pub const PROG_GET_FD_BY_ID: u32 = 13;
    pub const MAP_GET_FD_BY_ID: u32 = 14;
    pub const LINK_GET_FD_BY_ID: u32 = 30;
}

/// Offsets, from the kernel's BTF, of what the seal's hooks read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SealOffsets {
    /// inode.i_ino
    pub i_ino: u32,
    /// inode.i_sb
    pub i_sb: u32,
    /// super_block.s_dev
    pub s_dev: u32,
    /// dentry.d_inode
    pub d_inode: u32,
    /// dentry.d_name + qstr.name
    pub d_name: u32,
    /// offsetof(struct mount, mnt): the vfsmount the umount hook is given.
    pub mount_mnt: u32,
    /// offsetof(struct mount, mnt_id): the id /proc/self/mountinfo shows.
    pub mnt_id: u32,
    pub _pad: u32,
}

/// Key 0 of the seal's config array. Written last: until `sealed` is 1 the
/// seal's programs let everything through.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SealConfig {
    pub sealed: u32,
    /// The kernel's dev_t of the BPF file system the pins are in.
    pub dev: u32,
    /// Inode of the pin directory, and of its parent.
    pub pin_dir: u64,
    pub pin_parent: u64,
    pub offsets: SealOffsets,
}

/// One of the guard's objects, in its id space.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SealObject {
    pub kind: u32,
    pub id: u32,
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: plain-old-data: repr(C), integer fields only, explicit padding.
    unsafe impl aya::Pod for SealConfig {}
    unsafe impl aya::Pod for SealObject {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn sizes_have_no_hidden_padding() {
        assert_eq!(size_of::<SealOffsets>(), 32);
        assert_eq!(size_of::<SealConfig>(), 24 + 32);
        assert_eq!(size_of::<SealObject>(), 8);
    }
}
