//! Folding of repeated events: the first of a key is sent, repeats within the
//! window are counted and carried by the next one sent.

use aya_ebpf::{helpers::generated::bpf_jiffies64, maps::LruHashMap};
use modtrace_common::{FOLD_WINDOW_NS, MAX_JIFFY_NS, RepeatState, ledger};

use crate::{
    maps::{FOLD_LEDGER, atomic_add, atomic_take, count_n},
    task::now,
};

/// Adds `n` repeats to an entry's count, and to the ledger.
pub fn add_folded(folded: &mut u64, n: u64) {
    // SAFETY: a reference is valid for writes and aligned.
    unsafe { atomic_add(folded, n) };
    count_n(&FOLD_LEDGER, ledger::ADDED, n);
}

/// Decides whether the event for `key` is sent now or folded into a count: the
/// first of a key is sent, repeats within FOLD_WINDOW_NS are counted, and the next
/// one sent after the window carries that count. None means: fold this one.
/// `now` is the event's time, read already.
pub fn fold_in<K>(map: &LruHashMap<K, RepeatState>, key: &K, now: u64) -> Option<u32> {
    fold_with_clock(map, key, || now)
}

/// [`fold_in`] for a path that has not read the clock: it reads it only when the
/// jiffies counter cannot tell that the window still lasts, so a storm of
/// repeats is folded with none.
pub fn fold_in_lazily<K>(map: &LruHashMap<K, RepeatState>, key: &K) -> Option<u32> {
    fold_with_clock(map, key, now)
}

fn fold_with_clock<K>(map: &LruHashMap<K, RepeatState>, key: &K, clock: impl Fn() -> u64) -> Option<u32> {
    // Inlined by the verifier: a load of the jiffies counter.
    // SAFETY: no arguments, no memory touched.
    let jiffies = unsafe { bpf_jiffies64() };
    fold_at(map, key, jiffies, clock).0
}

/// Folds one event of `key` at `jiffies`; also says until when its window
/// now surely lasts.
pub fn fold_at<K>(map: &LruHashMap<K, RepeatState>, key: &K, jiffies: u64, clock: impl Fn() -> u64) -> (Option<u32>, u64) {
    match map.get_ptr_mut(key) {
        // SAFETY: a valid map value; other CPUs change its count only
        // atomically, as fold does.
        Some(state) => fold(unsafe { &mut *state }, jiffies, clock),
        None => {
            let sure_until_jiffies = jiffies + SURE_WINDOW;
            let fresh = RepeatState { last_sent_ns: clock(), sure_until_jiffies, folded: 0 };
            let _ = map.insert(key, &fresh, 0);
            (Some(0), sure_until_jiffies)
        }
    }
}

/// Jiffies that surely fit in a whole window.
const SURE_WINDOW: u64 = FOLD_WINDOW_NS / MAX_JIFFY_NS;

/// The count is changed only atomically: threads of one process fold into it
/// on several CPUs at once (a plain add there loses repeats).
fn fold(state: &mut RepeatState, jiffies: u64, clock: impl Fn() -> u64) -> (Option<u32>, u64) {
    if jiffies < state.sure_until_jiffies {
        add_folded(&mut state.folded, 1);
        return (None, state.sure_until_jiffies);
    }
    let now = clock();
    let elapsed = now.wrapping_sub(state.last_sent_ns);
    if elapsed < FOLD_WINDOW_NS {
        // Fewer jiffies than this can pass only in less time than is left.
        state.sure_until_jiffies = jiffies + (FOLD_WINDOW_NS - elapsed) / MAX_JIFFY_NS;
        add_folded(&mut state.folded, 1);
        return (None, state.sure_until_jiffies);
    }
    state.last_sent_ns = now;
    state.sure_until_jiffies = jiffies + SURE_WINDOW;
    // SAFETY: a reference is valid for writes and aligned.
    let carried = unsafe { atomic_take(&mut state.folded) }.min(u32::MAX as u64);
    if carried > 0 {
        // Only what the record carries: a count past u32 shows as lost.
        count_n(&FOLD_LEDGER, ledger::TAKEN, carried);
    }
    (Some(carried as u32), state.sure_until_jiffies)
}
