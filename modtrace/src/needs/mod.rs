//! The needs stage, between the profile and every output: from a profile, the
//! admin's decisions in it, the site's modprobe.d policy and a target kernel to
//! what that kernel must load, who needs it, and whether that may be trusted.
//! report, generate, check and lock all read what [`derive()`] says.
//!
//! Every cause the profile recorded is resolved in the target kernel (a request
//! by its alias, a udev load by its device's modalias, anything else by the
//! module's name), so that a module that was renamed, split or built in since
//! learning is still found; what cannot be resolved is reported, never guessed.
//! Then each resolved module is, in this order: denied (an admin's `deny`),
//! disabled by the site (modprobe.d), listed (a trusted cause, or an admin's
//! `allow`), or left for review (see [`trust`]).

pub mod fleet;
pub mod sitepolicy;
pub mod target;
pub mod trust;


mod derive;
mod names;
mod types;
mod units;
mod wording;

pub use derive::{as_learned, derive, plan, top_of};
pub use names::{unusable, validate};
pub use trust::Trust;
pub use types::{Cited, Held, Plan, Reason, Unresolved};
pub use units::{drop_in_refusal, units_of};
pub use wording::{describe_trigger, loader_who, profile_warnings, who};
