//! Requests kernel threads make for someone else, joined to who that is.
//!
//! A kernel thread is uid 0 in the root cgroup whoever it works for, so its
//! request is evidence of nothing until it is joined to a requester.
//!
//! The crypto manager (crypto/api.c, crypto/algboss.c, crypto/algapi.c): a
//! task that asks for an algorithm the kernel lacks (an AF_ALG bind, dm-crypt,
//! ...) requests crypto-NAME and crypto-NAME-all itself (crypto_larval_lookup).
//! When NAME is a template instance, `tmpl(inner,...)`, the task then starts
//! the kernel thread cryptomgr_probe (cryptomgr_schedule_probe) and waits on
//! the larval, up to 60 s (crypto_larval_wait). The thread requests crypto-TMPL
//! (crypto_lookup_template) and, for each inner algorithm, crypto-INNER and
//! crypto-INNER-all; an inner template starts another such thread. So a
//! cryptomgr_probe request for a name is joined to the waiting tasks whose
//! algorithm name contains it; the thread's later requests follow its first
//! (one thread, one larval), and a template it asks for itself (lrw asks for
//! ecb(cast6)) waits for the same requesters. Several different waiters: the
//! first is the requester and the others are candidates, all of whom must be
//! trusted.
//!
//! Any other kernel thread's request is joined to nobody, and says so.

use std::collections::VecDeque;

use crate::trace::event::{KthreadJoin, Process};

/// How long a task waits on a larval (crypto_larval_wait's timeout): a
/// waiter is kept this long after its latest request.
pub const WAIT_NS: u64 = 60 * 1_000_000_000;

/// At most this many waiters are kept. Anyone can add one (an AF_ALG bind);
/// once one is dropped, no join is trusted until the window it could have
/// matched in has passed.
pub const MAX_WAITERS: usize = 1024;

/// The crypto manager's thread that instantiates templates.
pub const CRYPTO_PROBE: &str = "cryptomgr_probe";

/// The reason given when a kernel thread's request is joined to nobody.
pub const UNJOINED: &str = "unknown: a kernel thread asked and no requester is joined";

#[derive(Debug, Clone)]
struct Waiter {
    ts_ns: u64,
    /// The algorithm name and every name inside it.
    names: Vec<String>,
    requester: Process,
}

/// A probe thread and for whom it works.
#[derive(Debug, Clone)]
struct Thread {
    tgid: u32,
    ts_ns: u64,
    join: KthreadJoin,
}

/// Recent requests for template instances, waiting for the crypto manager,
/// and the probe threads working for them.
#[derive(Debug, Default)]
pub struct CryptoWaiters {
    waiters: VecDeque<Waiter>,
    threads: VecDeque<Thread>,
    /// A waiter was dropped for room: joins before this time may miss it.
    dropped_until: Option<u64>,
    dropped: u64,
}

impl CryptoWaiters {
    /// Waiters dropped for room since tracing began.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The join of one request: None when the task is not a kernel thread.
    /// A request for a template instance by anyone but the probe thread is
    /// kept as a waiter, another kernel thread's too (cifsd, a kworker): as a
    /// candidate it keeps a join from being trusted.
    pub fn request(&mut self, ts_ns: u64, alias: &str, process: &Process) -> Option<KthreadJoin> {
        self.expire(ts_ns);
        let kthread = process.kernel_thread == Some(true);
        if !kthread || process.comm != CRYPTO_PROBE {
            self.wait(ts_ns, alias, process);
            let why = format!("{UNJOINED} ({} is not a thread modtrace can join)", process.comm);
            return kthread.then(|| unjoined(via(process), why));
        }
        // One probe thread instantiates one larval: its first request tells
        // for whom, and the rest follow.
        let join = match self.threads.iter_mut().find(|t| t.tgid == process.tgid) {
            Some(t) => {
                t.ts_ns = ts_ns;
                t.join.clone()
            }
            None => {
                let join = self.join(ts_ns, alias, process);
                self.bind_thread(ts_ns, process.tgid, join.clone());
                join
            }
        };
        // A template it asks for (lrw asks for ecb(cast6)) starts a thread of
        // its own, which acts for the same requesters.
        for who in join.requester.iter().chain(&join.candidates) {
            self.wait(ts_ns, alias, who);
        }
        Some(join)
    }

    /// A probe thread's first request: joined to the waiters whose algorithm
    /// name contains the name it asked for.
    fn join(&self, ts_ns: u64, alias: &str, process: &Process) -> KthreadJoin {
        let Some(name) = algorithm(alias) else {
            return unjoined(via(process), format!("{UNJOINED} ({alias} is not a crypto algorithm)"));
        };
        if self.dropped_until.is_some_and(|until| ts_ns <= until) {
            let why = format!("{UNJOINED} (more than {MAX_WAITERS} requests waited at once)");
            return unjoined(via(process), why);
        }
        let mut found: Vec<Process> = Vec::new();
        let wanted = [name, name.strip_suffix("-all").unwrap_or(name)];
        for w in &self.waiters {
            let contains = w.names.iter().any(|n| wanted.contains(&n.as_str()));
            if contains && !found.iter().any(|p| same_process(p, &w.requester)) {
                found.push(w.requester.clone());
            }
        }
        if found.is_empty() {
            let why = format!("{UNJOINED} (no task was waiting for an algorithm that contains {name})");
            return unjoined(via(process), why);
        }
        let requester = found.remove(0);
        KthreadJoin { via: via(process), requester: Some(requester), candidates: found, unjoined: None }
    }

    fn bind_thread(&mut self, ts_ns: u64, tgid: u32, join: KthreadJoin) {
        if self.threads.len() >= MAX_WAITERS {
            if let Some(old) = self.threads.pop_front() {
                self.note_dropped(old.ts_ns.max(ts_ns));
            }
        }
        self.threads.push_back(Thread { tgid, ts_ns, join });
    }

    fn note_dropped(&mut self, ts_ns: u64) {
        self.dropped += 1;
        let until = ts_ns.saturating_add(WAIT_NS);
        self.dropped_until = Some(self.dropped_until.map_or(until, |u| u.max(until)));
    }

    /// Keeps a request for a template instance (only those start the thread);
    /// the same task asking again (NAME-all) refreshes its entry.
    fn wait(&mut self, ts_ns: u64, alias: &str, process: &Process) {
        let Some(name) = algorithm(alias).map(|n| n.strip_suffix("-all").unwrap_or(n)) else { return };
        if !name.contains('(') {
            return;
        }
        let names = components(name);
        if let Some(w) = self.waiters.iter_mut().find(|w| same_process(&w.requester, process) && w.names == names) {
            w.ts_ns = ts_ns;
            return;
        }
        if self.waiters.len() >= MAX_WAITERS {
            if let Some(old) = self.waiters.pop_front() {
                self.note_dropped(old.ts_ns.max(ts_ns));
            }
        }
        self.waiters.push_back(Waiter { ts_ns, names, requester: process.clone() });
    }

    fn expire(&mut self, now_ns: u64) {
        self.waiters.retain(|w| w.ts_ns.saturating_add(WAIT_NS) >= now_ns);
        self.threads.retain(|t| t.ts_ns.saturating_add(WAIT_NS) >= now_ns);
        if self.dropped_until.is_some_and(|until| until < now_ns) {
            self.dropped_until = None;
        }
    }
}

fn via(thread: &Process) -> String {
    format!("{} (kernel thread)", thread.comm)
}

fn unjoined(via: String, why: String) -> KthreadJoin {
    KthreadJoin { via, requester: None, candidates: Vec::new(), unjoined: Some(why) }
}

/// One process across pid reuse.
fn same_process(a: &Process, b: &Process) -> bool {
    a.tgid == b.tgid && a.uid == b.uid && a.comm == b.comm
}

/// "crypto-cbc(aes)" -> "cbc(aes)"; None for other aliases.
fn algorithm(alias: &str) -> Option<&str> {
    alias.strip_prefix("crypto-").filter(|n| !n.is_empty())
}

/// An algorithm name and every name inside it, as cryptomgr_schedule_probe
/// splits it: "authenc(hmac(sha256),cbc(aes))" gives itself, authenc,
/// hmac(sha256), hmac, sha256, cbc(aes), cbc and aes.
pub fn components(name: &str) -> Vec<String> {
    let mut out = vec![name.to_string()];
    let Some(open) = name.find('(') else { return out };
    let Some(inner) = name[open + 1..].strip_suffix(')') else { return out };
    out.push(name[..open].to_string());
    for arg in split_args(inner) {
        for n in components(arg) {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// Splits "a(b,c),d" at the commas outside parentheses.
fn split_args(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0i32, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

#[cfg(test)]
mod tests;
