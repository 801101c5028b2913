//! Bounds on what untrusted processes add to a profile. Anyone can make the
//! kernel request a name (a socket of an absent family, an AF_ALG algorithm),
//! and a process can change its name at will, so every list that grows per
//! distinct name or process keeps all of root's entries on the host and only
//! the first few of everyone else's; what is folded away is counted. Untrusted
//! is the opposite of Scope::root_on_host, the rule needs/trust.rs applies.

use super::model::{earliest, latest, CountedRequester, Failure, FoldedRequests, Loader, Profile, Requester, Trigger};
use super::observe::{add_failure, add_requester};

/// Aliases kept per folded requester: the first ones it asked for.
pub const FOLDED_NAMES_KEPT: usize = 8;
/// Folded requesters kept; later ones share one entry without a requester.
pub const FOLDED_REQUESTERS_MAX: usize = 32;
/// Untrusted requesters listed per request entry and per trigger.
pub const UNTRUSTED_REQUESTERS_KEPT: usize = 8;
/// Failure entries of untrusted processes kept in `failed`.
pub const UNTRUSTED_FAILURES_KEPT: usize = 32;

impl Requester {
    /// As needs/trust.rs's requester(): a kernel thread, or root outside any
    /// unit not known not to be one, acts for someone else and is not root's own.
    pub fn root_on_host(&self) -> bool {
        self.scope.root_own(self.uid, self.euid, self.kernel_thread)
    }
}

impl Loader {
    pub fn root_on_host(&self) -> bool {
        self.scope.root_on_host(self.uid, self.euid)
    }
}

impl Failure {
    /// Made by an untrusted loader, or for an untrusted requester.
    fn untrusted(&self) -> bool {
        !self.loader.root_on_host() || self.requester.as_ref().is_some_and(|r| !r.root_on_host())
    }
}

/// One request to fold: who, which alias, how many times, when.
pub(crate) struct Asked<'a> {
    pub who: Requester,
    pub alias: &'a str,
    pub count: u64,
    pub time: &'a str,
}

impl Profile {
    /// Folds a request for an alias no module provides, made by an untrusted
    /// process, unless the alias has an entry of its own already. Returns
    /// whether it was folded (else the caller records it in `requests`).
    pub(crate) fn fold_unresolved(&mut self, asked: Asked, resolves: bool) -> bool {
        if resolves
            || asked.who.root_on_host()
            || self.requests.binary_search_by(|r| r.alias.as_str().cmp(asked.alias)).is_ok()
        {
            return false;
        }
        let entry = FoldedRequests {
            requester: Some(asked.who),
            count: asked.count,
            aliases: vec![asked.alias.to_string()],
            first_seen: asked.time.to_string(),
            last_seen: asked.time.to_string(),
            extra: Default::default(),
        };
        add_folded(&mut self.folded_requests, entry);
        true
    }

    /// Adds a failure; an untrusted one beyond UNTRUSTED_FAILURES_KEPT entries
    /// is only counted.
    pub(crate) fn add_failure_bounded(&mut self, new: Failure) {
        let known = self.failed.iter().any(|f| f.same_failure(&new));
        let full = self.failed.iter().filter(|f| f.untrusted()).count() >= UNTRUSTED_FAILURES_KEPT;
        if !known && full && new.untrusted() {
            self.failed_folded += new.count;
        } else {
            add_failure(&mut self.failed, new);
        }
    }
}

/// Merges a folded entry into the list: into the same requester's, else a new
/// one while fewer than FOLDED_REQUESTERS_MAX have a requester, else into the
/// entry without one.
pub(crate) fn add_folded(list: &mut Vec<FoldedRequests>, mut new: FoldedRequests) {
    let named = list.iter().filter(|f| f.requester.is_some()).count();
    let same = |f: &FoldedRequests| match (&f.requester, &new.requester) {
        (Some(a), Some(b)) => a.same_as(b),
        (None, None) => true,
        _ => false,
    };
    let i = match list.iter().position(same) {
        Some(i) => i,
        None if new.requester.is_some() && named >= FOLDED_REQUESTERS_MAX => {
            new.requester = None;
            return add_folded(list, new);
        }
        None => {
            let aliases = std::mem::take(&mut new.aliases);
            list.push(FoldedRequests { count: 0, ..new.clone() });
            new.aliases = aliases;
            list.len() - 1
        }
    };
    let f = &mut list[i];
    f.count += new.count;
    f.first_seen = earliest(&f.first_seen, &new.first_seen);
    f.last_seen = latest(&f.last_seen, &new.last_seen);
    if let (Some(old), Some(newer)) = (&mut f.requester, new.requester) {
        old.pid = newer.pid.or(old.pid);
        old.cgroup = newer.cgroup.or(old.cgroup.take());
    }
    for a in new.aliases {
        if f.aliases.len() < FOLDED_NAMES_KEPT && !f.aliases.contains(&a) {
            f.aliases.push(a);
        }
    }
}

/// add_requester, keeping UNTRUSTED_REQUESTERS_KEPT untrusted requesters; the
/// requests of the others are counted in `folded`.
pub(crate) fn add_requester_bounded(list: &mut Vec<CountedRequester>, folded: &mut u64, who: Requester, count: u64) {
    let known = list.iter().any(|r| r.who.same_as(&who));
    if !known && !who.root_on_host() && untrusted_count(list.iter().map(|r| &r.who)) >= UNTRUSTED_REQUESTERS_KEPT {
        *folded += count;
    } else {
        add_requester(list, who, count);
    }
}

/// Adds one more requester a load answered to a trigger, keeping
/// UNTRUSTED_REQUESTERS_KEPT untrusted ones and counting the rest.
pub(crate) fn add_also_requested(t: &mut Trigger, who: Requester) {
    add_kept(&mut t.also_requested_by, &mut t.also_requested_folded, who);
}

/// A kernel thread's other possible requester (trace/kthread.rs), bounded as
/// `also_requested_by`: the untrusted ones kept are enough to hold it for review.
pub(crate) fn add_candidate(t: &mut Trigger, who: Requester) {
    add_kept(&mut t.candidates, &mut t.candidates_folded, who);
}

/// Adds `who` unless the same process is there: every trusted one, at most
/// UNTRUSTED_REQUESTERS_KEPT untrusted ones; the rest are counted in `folded`.
fn add_kept(list: &mut Vec<Requester>, folded: &mut u64, who: Requester) {
    if list.iter().any(|o| o.same_as(&who)) {
        return;
    }
    if !who.root_on_host() && untrusted_count(list.iter()) >= UNTRUSTED_REQUESTERS_KEPT {
        *folded += 1;
    } else {
        list.push(who);
    }
}

fn untrusted_count<'a>(who: impl Iterator<Item = &'a Requester>) -> usize {
    who.filter(|r| !r.root_on_host()).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::observe::{loader_of, requester_of};
    use crate::testutil::{in_cgroup, process, request};
    use crate::trace::event::Process;

    const T: &str = "2024-03-01T10:00:00Z";
    const USER_CG: &str = "/user.slice/user-1000.slice/session-2.scope";

    fn user(pid: u32, comm: &str) -> Process {
        in_cgroup(pid, comm, Some("/usr/bin/python3"), 1000, USER_CG)
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("net-pf-99-proto-{i}")).collect()
    }

    #[test]
    fn a_users_unresolvable_names_are_one_small_entry() {
        let mut p = Profile::new("6.1.0", "h");
        for a in names(600) {
            assert!(p.observe(&request(T, user(7, "flood"), &a, &[])));
        }
        assert!(p.requests.is_empty(), "{} request entries", p.requests.len());
        assert_eq!(p.folded_requests.len(), 1);
        let f = &p.folded_requests[0];
        assert_eq!(f.count, 600);
        assert_eq!(f.aliases, names(FOLDED_NAMES_KEPT), "the first names, in order");
        assert_eq!(f.requester.as_ref().map(|r| r.uid), Some(Some(1000)));
        assert!(p.to_json().len() < 4096, "{} bytes", p.to_json().len());
    }

    #[test]
    fn a_kernel_threads_candidates_keep_the_trusted_and_a_few_untrusted() {
        let mut t = Trigger::new(crate::profile::TriggerKind::Request);
        let root = requester_of(&process(5, "cryptsetup", None, Some("example.service")));
        add_candidate(&mut t, root.clone());
        for i in 0..600 {
            add_candidate(&mut t, requester_of(&user(100 + i, &format!("bind{i}"))));
        }
        add_candidate(&mut t, root);
        assert_eq!(t.candidates.len(), 1 + UNTRUSTED_REQUESTERS_KEPT, "root's and the first untrusted ones");
        assert_eq!(t.candidates_folded, 600 - UNTRUSTED_REQUESTERS_KEPT as u64);
    }

    #[test]
    fn roots_unresolvable_names_are_all_kept() {
        let mut p = Profile::new("6.1.0", "h");
        for a in names(600) {
            p.observe(&request(T, process(7, "root-tool", None, Some("example.service")), &a, &[]));
        }
        assert_eq!(p.requests.len(), 600);
        assert!(p.folded_requests.is_empty());
    }

    #[test]
    fn a_name_with_an_entry_or_a_module_is_not_folded() {
        let mut p = Profile::new("6.1.0", "h");
        p.observe(&request(T, process(7, "root-tool", None, Some("example.service")), "net-pf-38", &[]));
        p.observe(&request(T, user(8, "x"), "net-pf-38", &[]));
        p.observe(&request(T, user(8, "x"), "net-pf-5", &["appletalk"]));
        assert_eq!(p.requests.iter().map(|r| r.alias.as_str()).collect::<Vec<_>>(), ["net-pf-38", "net-pf-5"]);
        assert_eq!(p.requests[0].requesters.len(), 2);
        assert!(p.folded_requests.is_empty());
    }

    #[test]
    fn many_user_processes_share_bounded_entries() {
        let mut p = Profile::new("6.1.0", "h");
        for i in 0..200u32 {
            p.observe(&request(T, user(100 + i, &format!("p{i}")), &format!("bogus-{i}"), &[]));
            // The same alias, from every process: one entry, eight listed.
            p.observe(&request(T, user(100 + i, &format!("p{i}")), "net-pf-38", &[]));
        }
        assert_eq!(p.folded_requests.len(), FOLDED_REQUESTERS_MAX + 1);
        let rest = p.folded_requests.iter().find(|f| f.requester.is_none()).unwrap();
        assert_eq!(rest.count, 2 * 200 - 2 * FOLDED_REQUESTERS_MAX as u64);
        assert_eq!(rest.aliases.len(), FOLDED_NAMES_KEPT);
        assert_eq!(
            p.folded_requests.iter().map(|f| f.count).sum::<u64>() + p.requests.iter().map(|r| r.count).sum::<u64>(),
            400
        );
        // net-pf-38 was folded for each requester, since no entry of its own exists.
        assert!(p.requests.is_empty());
    }

    #[test]
    fn an_alias_entrys_untrusted_requesters_are_bounded_and_counted() {
        let mut p = Profile::new("6.1.0", "h");
        p.observe(&request(T, process(7, "root-tool", None, Some("example.service")), "net-pf-38", &[]));
        for i in 0..50u32 {
            p.observe(&request(T, user(100 + i, &format!("p{i}")), "net-pf-38", &[]));
        }
        p.observe(&request(T, process(9, "other-root", None, Some("other.service")), "net-pf-38", &[]));
        let r = &p.requests[0];
        assert_eq!(r.count, 52);
        assert_eq!(r.requesters.len(), 2 + UNTRUSTED_REQUESTERS_KEPT, "both of root's and eight users'");
        assert_eq!(r.requesters_folded, 50 - UNTRUSTED_REQUESTERS_KEPT as u64);
    }

    fn failure(module: &str, loader: Loader) -> Failure {
        Failure {
            module: Some(module.to_string()),
            alias: None,
            syscall: "finit_module".into(),
            ret: -1,
            error: Some("EPERM".into()),
            loader,
            requester: None,
            count: 1,
            first_seen: T.into(),
            last_seen: T.into(),
            extra: Default::default(),
        }
    }

    #[test]
    fn an_untrusted_loaders_failures_are_bounded_and_counted() {
        let mut p = Profile::new("6.1.0", "h");
        for i in 0..100 {
            p.add_failure_bounded(failure(&format!("m{i}"), loader_of(&user(300, "insmod"))));
        }
        p.add_failure_bounded(failure("m0", loader_of(&user(300, "insmod"))));
        for i in 0..40 {
            p.add_failure_bounded(failure(&format!("m{i}"), loader_of(&process(9, "modprobe", None, None))));
        }
        assert_eq!(p.failed.len(), UNTRUSTED_FAILURES_KEPT + 40, "root's failures all stay");
        assert_eq!(p.failed[0].count, 2, "a kept entry still counts");
        assert_eq!(p.failed_folded, 100 - UNTRUSTED_FAILURES_KEPT as u64);
    }

    #[test]
    fn a_loads_untrusted_also_requesters_are_bounded() {
        let mut t = Trigger::new(crate::profile::TriggerKind::Request);
        for i in 0..20u32 {
            add_also_requested(&mut t, requester_of(&user(i, &format!("p{i}"))));
        }
        add_also_requested(&mut t, requester_of(&process(1, "root", None, Some("a.service"))));
        assert_eq!(t.also_requested_by.len(), UNTRUSTED_REQUESTERS_KEPT + 1);
        assert_eq!(t.also_requested_folded, 20 - UNTRUSTED_REQUESTERS_KEPT as u64);
    }

    #[test]
    fn folded_entries_merge_within_the_bounds() {
        let mut a = Profile::new("6.1.0", "h");
        let mut b = Profile::new("6.1.0", "h");
        for n in names(6) {
            a.observe(&request(T, user(7, "flood"), &n, &[]));
        }
        for n in names(12) {
            b.observe(&request(T, user(7, "flood"), &n, &[]));
        }
        a.merge(b);
        assert_eq!(a.folded_requests.len(), 1);
        assert_eq!(a.folded_requests[0].count, 18);
        assert_eq!(a.folded_requests[0].aliases, names(FOLDED_NAMES_KEPT));
    }
}
