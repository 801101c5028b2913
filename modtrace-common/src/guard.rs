//! Wire types of `modtrace guard`: the policy maps userspace fills, and the
//! decision events the LSM programs send. Same rules as the tracer's types:
//! fixed size, repr(C), integers only, explicit padding.

use crate::{Header, NAME_LEN};

/// `GuardConfig::mode` and `GuardEvent::mode`.
pub mod mode {
    /// Allow everything, report what enforce would refuse.
    pub const COMPLAIN: u32 = 1;
    /// Refuse (-EPERM) what the policy does not allow.
    pub const ENFORCE: u32 = 2;
}

/// `GuardEvent::hook`: where the decision was taken.
pub mod hook {
    /// kernel_module_request: request_module(alias), in the requester's context.
    pub const REQUEST: u32 = 1;
    /// kernel_read_file (READING_MODULE[_COMPRESSED]): finit_module's file.
    pub const READ_FILE: u32 = 2;
    /// kernel_load_data (LOADING_MODULE): init_module's image in memory.
    pub const LOAD_DATA: u32 = 3;
    /// The seal's hooks (`crate::seal`): an attempt to undo a sealed guard.
    pub const SEAL: u32 = 4;
}

/// `GuardEvent::decision`, and the slots of the decision counters.
pub mod decision {
    pub const ALLOWED: u32 = 0;
    pub const DENIED: u32 = 1;
    pub const WOULD_DENY: u32 = 2;
    /// An attempt to undo a sealed guard, refused (hook::SEAL).
    pub const REFUSED: u32 = 3;
    /// Number of counter slots.
    pub const COUNT: u32 = 4;
}

/// Slots of the guard's drop counter: decisions that found their ring full.
pub mod lost {
    /// The log ring (journal): these decisions are lost for good.
    pub const LOG: u32 = 0;
    /// The trace ring: only matters while `modtrace trace` runs.
    pub const TRACE: u32 = 1;
    pub const COUNT: u32 = 2;
}

/// Value for `GuardConfig::reading_module_compressed` on kernels whose
/// `enum kernel_read_file_id` has no READING_MODULE_COMPRESSED.
pub const NO_ID: u32 = u32::MAX;

/// Offsets, from the kernel's BTF, of what the file hook reads: the inode
/// number and device of the file, and the name of its dentry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileOffsets {
    /// file.f_inode
    pub f_inode: u32,
    /// file.f_path + path.dentry
    pub f_dentry: u32,
    /// dentry.d_name + qstr.name
    pub d_name: u32,
    /// inode.i_ino
    pub i_ino: u32,
    /// inode.i_sb
    pub i_sb: u32,
    /// super_block.s_dev
    pub s_dev: u32,
}

/// The one policy entry (key 0 of the config hash map). Replacing it is one
/// hash-map update, which readers see whole: the generation, the mode and the
/// flags change together.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuardConfig {
    /// Which entries of the alias and file maps are in force.
    pub generation: u32,
    pub mode: u32,
    /// 1: init_module(2) is allowed in enforce mode (no file to check).
    pub allow_init_module: u32,
    /// enum kernel_read_file_id READING_MODULE, from BTF.
    pub reading_module: u32,
    /// READING_MODULE_COMPRESSED, or NO_ID.
    pub reading_module_compressed: u32,
    /// enum kernel_load_data_id LOADING_MODULE, from BTF.
    pub loading_module: u32,
    /// offsetof(struct module, name): where an init_module image's
    /// .gnu.linkonce.this_module section holds the module's name.
    pub module_name: u32,
    pub _pad: u32,
    pub offsets: FileOffsets,
}

/// An allowed alias (or module name) for request_module, or an allowed
/// module name for init_module (another map), in one generation.
/// 8-aligned (its size is the same) so the probes can zero the name by words.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AliasKey {
    pub generation: u32,
    pub _pad: u32,
    /// NUL-padded: the kernel zeroes the rest before it looks up.
    pub name: [u8; NAME_LEN],
}

/// An allowed module file, by the kernel's device number (MKDEV: major << 20 |
/// minor) and inode number, in one generation.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileKey {
    pub generation: u32,
    pub dev: u32,
    pub ino: u64,
}

/// The module an allowed file holds.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileValue {
    pub module: [u8; NAME_LEN],
}

/// One decision, with the task that caused it (`Header::kind` is kind::GUARD).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuardEvent {
    pub header: Header,
    pub hook: u32,
    pub decision: u32,
    pub mode: u32,
    /// Identical decisions by the same process folded into this one.
    pub repeats: u32,
    /// The file's device and inode (READ_FILE), else 0.
    pub dev: u32,
    /// enum kernel_read_file_id / kernel_load_data_id as the kernel passed it.
    pub id: u32,
    pub ino: u64,
    /// REQUEST: the alias; READ_FILE: the module an allowed file holds;
    /// LOAD_DATA: the name in the image (with --allow-init-module).
    pub name: [u8; NAME_LEN],
    /// READ_FILE: the file's own name (its dentry), whatever module it holds.
    pub file: [u8; NAME_LEN],
}

// The probes zero these a word at a time (modtrace-ebpf's mem::zero).
const _: () = {
    use core::mem::{align_of, offset_of};
    assert!(align_of::<GuardEvent>() == 8 && align_of::<AliasKey>() == 8 && offset_of!(AliasKey, name) == 8);
    assert!(offset_of!(GuardEvent, name).is_multiple_of(8) && offset_of!(GuardEvent, file).is_multiple_of(8));
};

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: plain-old-data: repr(C), integer fields only, explicit padding.
    unsafe impl aya::Pod for GuardConfig {}
    unsafe impl aya::Pod for AliasKey {}
    unsafe impl aya::Pod for FileKey {}
    unsafe impl aya::Pod for FileValue {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn sizes_have_no_hidden_padding() {
        assert_eq!(size_of::<FileOffsets>(), 24);
        assert_eq!(size_of::<GuardConfig>(), 32 + 24);
        assert_eq!(size_of::<AliasKey>(), 8 + NAME_LEN);
        assert_eq!(size_of::<FileKey>(), 16);
        assert_eq!(size_of::<FileValue>(), NAME_LEN);
        assert_eq!(size_of::<GuardEvent>(), size_of::<Header>() + 32 + 2 * NAME_LEN);
    }
}
