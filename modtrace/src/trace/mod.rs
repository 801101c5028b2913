//! The trace stage: from the probes' ring-buffer records to attributed
//! records, each load with its cause; and what was loaded before tracing
//! began (`snapshot`, from /proc/modules).

pub mod attribute;
pub mod correlate;
pub mod decision;
pub mod decode;
pub mod deputies;
pub mod drops;
pub mod event;
pub mod journal;
pub mod kthread;
pub mod modindex;
pub mod output;
pub mod pipeline;
pub mod refused;
pub mod scope;
pub mod snapshot;
pub mod stream;
pub mod uevent;
