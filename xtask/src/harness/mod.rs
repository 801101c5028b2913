//! The machinery every guest shares: Debian kernels and packages, the programs
//! built for the guest, initramfs images, QEMU and what the guest sends back.

pub mod apt;
pub mod artifacts;
pub mod cmd;
pub mod cpio;
pub mod files;
pub mod guest_output;
pub mod initramfs;
pub mod kernels;
pub mod paths;
pub mod qemu;
