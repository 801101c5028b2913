//! Events lost between the kernel and the profile, by where they were lost, and
//! which of them may hide a module.

use serde::{Deserialize, Serialize};

/// Counts of lost events. A lost request or load may hide a module the machine
/// needs, so it blocks a lock; a lost failure or load result hides none.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Drops {
    /// Ring buffers that were full: requests, loads (with module events) and
    /// failed load attempts.
    pub ring_requests: u64,
    pub ring_loads: u64,
    pub ring_failures: u64,
    /// module_request events whose alias the kernel side could not read.
    pub unreadable_aliases: u64,
    /// module_load/module_free events whose module name could not be read.
    pub unreadable_module_names: u64,
    /// Load results whose call was not kept (its entry map was full, or tracing
    /// began during the call): the module_load event still names the module.
    pub results_without_call: u64,
    /// Requests of root on the host given up unserved because too many were
    /// waiting.
    pub evicted_requests: u64,
    /// Requests of untrusted processes given up unserved (their share of the
    /// pending table was full, or root's needed the room): what they would
    /// have loaded needs review anyway, so they never block.
    pub evicted_untrusted_requests: u64,
    /// Ring records that did not decode, by ring.
    pub undecodable_requests: u64,
    pub undecodable_loads: u64,
    pub undecodable_failures: u64,
    /// Runs of the probes the kernel skipped (loader/skipped.rs): of
    /// module_request, of module_load/module_free, and of the load calls'
    /// exits (the result of a call).
    pub skipped_requests: u64,
    pub skipped_loads: u64,
    pub skipped_results: u64,
    /// Repeats of a failed load or a request (the same process, the same
    /// call, within a second) whose count was lost: on a record its ring
    /// refused, in a fold entry the kernel's full map dropped (more processes
    /// repeating at once than it holds), or left in the early probes.
    pub lost_repeats: u64,
}

impl Drops {
    pub fn total(&self) -> u64 {
        self.blocking() + self.reported()
    }

    /// Lost requests and loads: the profile may miss a module.
    pub fn blocking(&self) -> u64 {
        self.ring_requests
            + self.ring_loads
            + self.unreadable_aliases
            + self.unreadable_module_names
            + self.evicted_requests
            + self.undecodable_requests
            + self.undecodable_loads
            + self.skipped_requests
            + self.skipped_loads
    }

    /// Lost failures and load results: shown, but no module is missing for them.
    pub fn reported(&self) -> u64 {
        self.ring_failures
            + self.results_without_call
            + self.undecodable_failures
            + self.skipped_results
            + self.lost_repeats
            + self.evicted_untrusted_requests
    }

    /// "requests 0, loads 0, failures 12, ...": every count, for people.
    pub fn describe(&self) -> String {
        format!(
            "requests {}, loads {}, failures {}, unreadable aliases {}, unreadable module names {}, \
             results without their call {}, requests evicted {}, untrusted requests evicted {}, undecodable {}, \
             skipped requests {}, skipped loads {}, skipped results {}, repeats {}",
            self.ring_requests,
            self.ring_loads,
            self.ring_failures,
            self.unreadable_aliases,
            self.unreadable_module_names,
            self.results_without_call,
            self.evicted_requests,
            self.evicted_untrusted_requests,
            self.undecodable_requests + self.undecodable_loads + self.undecodable_failures,
            self.skipped_requests,
            self.skipped_loads,
            self.skipped_results,
            self.lost_repeats
        )
    }
}

/// What a lock may rest on, over every learning session: sessions that counted
/// their drops by kind, and older ones that only counted them all.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Lost requests and loads.
    pub blocking: u64,
    /// Lost failures and load results.
    pub reported: u64,
    /// Lost events of a session that did not say what they were.
    pub unknown_kind: u64,
}

impl Verdict {
    /// `sessions`: each one's total (lost_events) and its breakdown, if any.
    pub fn of<'a>(sessions: impl IntoIterator<Item = (u64, Option<&'a Drops>)>) -> Verdict {
        let mut v = Verdict::default();
        for (total, drops) in sessions {
            match drops {
                Some(d) => {
                    v.blocking += d.blocking();
                    v.reported += d.reported();
                }
                None => v.unknown_kind += total,
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lost_requests_and_loads_block() {
        let failures = Drops {
            ring_failures: 500,
            results_without_call: 2,
            undecodable_failures: 1,
            skipped_results: 4,
            lost_repeats: 9,
            evicted_untrusted_requests: 600,
            ..Drops::default()
        };
        assert_eq!((failures.blocking(), failures.reported(), failures.total()), (0, 1116, 1116));
        for lost in [
            Drops { ring_requests: 1, ..Drops::default() },
            Drops { ring_loads: 1, ..Drops::default() },
            Drops { unreadable_aliases: 1, ..Drops::default() },
            Drops { unreadable_module_names: 1, ..Drops::default() },
            Drops { evicted_requests: 1, ..Drops::default() },
            Drops { undecodable_requests: 1, ..Drops::default() },
            Drops { undecodable_loads: 1, ..Drops::default() },
            Drops { skipped_requests: 1, ..Drops::default() },
            Drops { skipped_loads: 1, ..Drops::default() },
        ] {
            assert_eq!(lost.blocking(), 1, "{lost:?}");
        }
    }

    #[test]
    fn a_session_without_a_breakdown_is_of_unknown_kind() {
        let d = Drops { ring_failures: 7, ring_loads: 1, ..Drops::default() };
        let v = Verdict::of([(8, Some(&d)), (3, None), (0, None)]);
        assert_eq!(v, Verdict { blocking: 1, reported: 7, unknown_kind: 3 });
    }

    #[test]
    fn missing_fields_read_as_zero() {
        let d: Drops = serde_json::from_str(r#"{"ring_failures": 4}"#).unwrap();
        assert_eq!(d, Drops { ring_failures: 4, ..Drops::default() });
    }
}
