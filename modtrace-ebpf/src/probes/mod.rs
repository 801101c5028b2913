//! One file per load path. Tracepoint field offsets live in modtrace_common::tp,
//! where userspace checks them against the kernel's format files before loading;
//! the record is read through crate::kernel.

mod guard;
mod load;
mod module;
mod request;
mod seal;
