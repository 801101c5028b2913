//! Folding of repeats: the per-process state the probes count a repeated
//! failure or request in, the per-CPU cache in front of it, the window, and
//! the ledger of what was added to and taken from the fold maps.

/// Events of one kind from one process within this window are folded into a count.
pub const FOLD_WINDOW_NS: u64 = 1_000_000_000;

/// The longest a jiffy lasts: Linux's HZ is at least 100 (kernel/Kconfig.hz).
pub const MAX_JIFFY_NS: u64 = 10_000_000;

/// Per-process state for folding repeated failures or requests, keyed by tgid
/// (failures) or by tgid and alias hash (requests).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RepeatState {
    /// When the last event of this key was sent.
    pub last_sent_ns: u64,
    /// Until this jiffies value the window surely lasts, so a repeat before it
    /// is folded without reading the clock (which costs microseconds where the
    /// clocksource is an emulated HPET). Derived from a clock reading with
    /// MAX_JIFFY_NS, so it holds for every HZ.
    pub sure_until_jiffies: u64,
    /// Events folded since then; carried on the next one sent. 64 bits so the
    /// probes can add to it and take it with one atomic instruction each:
    /// threads of one process on several CPUs, and FoldCache flushes, share it.
    pub folded: u64,
}

/// One CPU's cached fold state of one load-call program (FAIL_CACHE): the
/// process whose failures it last folded, so repeats of that process on this
/// CPU are counted here, with a plain add and no FAIL_REPEATS lookup, while
/// its window surely lasts.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoldCache {
    /// The process (tgid) whose FAIL_REPEATS entry this caches; 0: none.
    pub tgid: u32,
    pub _pad: u32,
    /// Copied from that entry when cached: its window surely lasts until then.
    pub sure_until_jiffies: u64,
    /// Repeats counted here and not yet added to the entry's `folded`.
    pub folded: u64,
}

/// FOLD_LEDGER's slots: repeats added to the fold maps' entries, and taken out
/// of them to be carried by a record. The maps are LRU: a full map drops an
/// entry with its count, unseen; once the probes are detached, what was added
/// and neither taken nor still held went with such an entry.
pub mod ledger {
    pub const ADDED: u32 = 0;
    pub const TAKEN: u32 = 1;
    /// Number of slots.
    pub const COUNT: u32 = 2;
}
