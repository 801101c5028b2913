//! The trust policy: a cause is trusted when root on the host caused it outside
//! any container (a system unit, PID 1, udev, the kernel, root outside units
//! and in login sessions), or, for a module already loaded when learning
//! started, when a source recorded at learn time explains it (preload.rs).
//! Anything else (an unprivileged uid, a user's unit, a container by its
//! cgroup's names or by its namespaces, a uid or scope not known, a module
//! merely found loaded) needs an admin's review before it reaches boot-time
//! policy.
//! A kernel thread is root in the root cgroup whoever it works for: its
//! request counts only as the requester it was joined to (trace/kthread.rs).

use crate::profile::{Loader, Requester, Trigger, TriggerKind, BEFORE_LEARNING};
use crate::trace::kthread::UNJOINED;
use crate::trace::scope::Scope;

/// Why a module found loaded when learning started, with no source that
/// explains it, needs review; and what to do. Profiles from modtrace versions
/// that trusted such modules say "before learning" too: they need review now.
pub const CAUSE_UNKNOWN: &str = "loaded before learning, cause unknown: no modules-load.d entry, initramfs \
configuration, trusted module's dependency, PID 1 insertion or present device explains it, and being loaded \
is no evidence of who wanted it (any user can make the kernel autoload a module; earlier modtrace versions \
trusted it all the same); to learn its cause, learn \
from boot (enable modtrace-learn.service and run update-initramfs -u, see docs/lockdown.md), or accept it \
with modtrace allow";

/// Whether a cause may reach the generated files by itself, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    Trusted(String),
    Review(String),
}

impl Trust {
    pub fn trusted(&self) -> bool {
        matches!(self, Trust::Trusted(_))
    }

    pub fn why(&self) -> &str {
        match self {
            Trust::Trusted(w) | Trust::Review(w) => w,
        }
    }
}

/// Root on the host, from what a process record holds: trusted exactly when
/// Scope::root_on_host says so (the rule the profile's bounds share); the rest
/// of this function only says why.
fn root_on_host(uid: Option<u32>, euid: Option<u32>, scope: &Scope) -> Trust {
    if scope.root_on_host(uid, euid) {
        return Trust::Trusted(match scope {
            Scope::System { unit } if unit == "init.scope" => "root: PID 1 (init.scope)".to_string(),
            Scope::NoUnit => "root outside any unit (the root cgroup, not a kernel thread)".to_string(),
            _ => format!("root in the {scope}"),
        });
    }
    let uid = match uid {
        Some(u) => u,
        None => {
            return Trust::Review(
                "its uid is not known (a profile migrated from modtrace-profile/1, or a loader's parent)".to_string(),
            )
        }
    };
    if uid != 0 || euid.is_some_and(|e| e != 0) {
        let euid = euid.filter(|e| *e != uid).map(|e| format!(", euid {e}")).unwrap_or_default();
        return Trust::Review(format!("an unprivileged process (uid {uid}{euid}) {}", scope.locative()));
    }
    match scope {
        Scope::Unknown => Trust::Review("root, but its cgroup is not known, so neither is its scope".to_string()),
        _ => Trust::Review(format!("root, but in the {scope}")),
    }
}

pub fn requester(r: &Requester) -> Trust {
    match (r.kernel_thread, &r.scope) {
        (Some(true), _) => Trust::Review(format!(
            "{UNJOINED}: {} is a kernel thread, root in the root cgroup whoever it works for",
            r.comm
        )),
        (None, Scope::NoUnit) if r.uid == Some(0) => Trust::Review(
            "root outside any unit, and whether it was a kernel thread acting for someone is not recorded \
             (a profile from before modtrace recorded it): learn again"
                .to_string(),
        ),
        _ => root_on_host(r.uid, r.euid, &r.scope),
    }
}

/// A kernel thread's request: trusted when the requester it is joined to is,
/// and, when several waiting processes could have caused it, every one of them.
fn joined(t: &Trigger) -> Trust {
    let Some(r) = &t.requester else {
        return Trust::Review("nobody is recorded as having asked".to_string());
    };
    let first = match (r.kernel_thread, &t.reason) {
        (Some(true), Some(why)) => Trust::Review(format!("{why}: {} is a kernel thread", r.comm)),
        _ => requester(r),
    };
    if t.candidates.is_empty() {
        return first;
    }
    let untrusted: Vec<String> = std::iter::once(r)
        .chain(&t.candidates)
        .filter(|c| !requester(c).trusted())
        .map(|c| format!("{} (uid {})", c.comm, c.uid.map_or("unknown".to_string(), |u| u.to_string())))
        .collect();
    let via = t.via.as_deref().unwrap_or("a kernel thread");
    match untrusted.is_empty() {
        true => Trust::Trusted(format!("{}; so is every other process {via} could have asked for", first.why())),
        false => Trust::Review(format!(
            "{via} asked for one of {} waiting processes, and not all are trusted: {}",
            t.candidates.len() as u64 + t.candidates_folded + 1,
            untrusted.join(", ")
        )),
    }
}

pub fn loader(l: &Loader) -> Trust {
    root_on_host(l.uid, l.euid, &l.scope)
}

/// The trust of one recorded cause.
pub fn of_trigger(t: &Trigger) -> Trust {
    through(t, by_kind(t))
}

/// Whether any of those who asked is trusted: one load answered every
/// pending request, so it is trusted when any of them is; a kernel thread's
/// request counts as the requester it was joined to (joined).
fn requested(t: &Trigger) -> Trust {
    let first = joined(t);
    match t.also_requested_by.iter().map(requester).find(|x| x.trusted()) {
        Some(x) if !first.trusted() => x,
        _ => first,
    }
}

/// A load that came through a unit for someone else (onbehalf.rs: `via`),
/// with a word on whom it was for (`reason`): that word leads the review.
fn through(t: &Trigger, trust: Trust) -> Trust {
    let (Some(_), Some(why), Trust::Review(review)) = (&t.via, &t.reason, &trust) else { return trust };
    if !matches!(t.kind, TriggerKind::Request | TriggerKind::Explicit) {
        return trust;
    }
    match t.requester.as_ref().and_then(|r| r.uid) {
        None => Trust::Review(why.clone()),
        // No "; " inside: reasons are joined and told apart by it.
        Some(_) => Trust::Review(format!("{why}, {review}")),
    }
}

fn by_kind(t: &Trigger) -> Trust {
    match t.kind {
        TriggerKind::Preloaded => match t.reason.as_deref() {
            None | Some(BEFORE_LEARNING) => Trust::Review(CAUSE_UNKNOWN.to_string()),
            Some(source) => Trust::Trusted(format!("loaded before learning, explained by: {source}")),
        },
        TriggerKind::Request => requested(t),
        TriggerKind::Explicit => match (&t.loader, &t.via) {
            (Some(l), None) => loader(l),
            // For the units that want modprobe@NAME.service, or a deputy's
            // client: whom it was for must be trusted too.
            (Some(l), Some(_)) => match (loader(l), requested(t)) {
                (Trust::Trusted(why), Trust::Trusted(_)) => Trust::Trusted(why),
                (Trust::Trusted(_), review) | (review, _) => review,
            },
            (None, _) => Trust::Review("no loader recorded".to_string()),
        },
        TriggerKind::Udev => match &t.loader {
            Some(l) => match loader(l) {
                Trust::Trusted(why) => Trust::Trusted(format!("udev for a device; {why}")),
                review => review,
            },
            None => Trust::Review("no loader recorded".to_string()),
        },
        TriggerKind::Unknown => {
            Trust::Review("no request explains this load, so nobody can be trusted for it".to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Trigger;

    #[test]
    fn folded_candidates_count_among_the_waiting_processes() {
        use crate::profile::bound::add_candidate;
        let mut t = Trigger::new(crate::profile::TriggerKind::Request);
        let root = req(Some(0), "/system.slice/example.service");
        add_candidate(&mut t, root.clone());
        for i in 0..600 {
            let user = req(Some(1000), "/user.slice/user-1000.slice/session-2.scope");
            add_candidate(&mut t, Requester { comm: format!("bind{i}"), ..user });
        }
        add_candidate(&mut t, root);
        let review = of_trigger(&Trigger { requester: Some(t.candidates[0].clone()), ..t });
        assert!(!review.trusted() && review.why().contains("one of 602 waiting processes"), "{review:?}");
    }

    fn req(uid: Option<u32>, cgroup: &str) -> Requester {
        let scope = Scope::of(Some(cgroup));
        Requester {
            comm: "x".into(),
            exe: None,
            pid: None,
            uid,
            euid: None,
            loginuid: None,
            kernel_thread: Some(false),
            unit: scope.unit().map(Into::into),
            scope,
            cgroup: Some(cgroup.into()),
            pid_ns: None,
            mnt_ns: None,
            extra: Default::default(),
        }
    }

    fn request_by(r: Requester) -> Trigger {
        Trigger { requester: Some(r), alias: Some("net-pf-5".into()), count: 1, ..Trigger::new(TriggerKind::Request) }
    }

    #[test]
    fn root_on_the_host_is_trusted_and_everything_else_needs_review() {
        let trusted = [
            (Some(0), "/system.slice/example.service"),
            (Some(0), "/init.scope"),
            (Some(0), "/"),
            (Some(0), "/user.slice/user-1000.slice/session-2.scope"),
        ];
        for (uid, cg) in trusted {
            assert!(of_trigger(&request_by(req(uid, cg))).trusted(), "{cg}");
        }
        let review = [
            (Some(1000), "/system.slice/example.service"),
            (Some(1000), "/user.slice/user-1000.slice/session-2.scope"),
            (Some(1000), "/user.slice/user-1000.slice/user@1000.service/app.slice/lightdm.service"),
            (Some(0), "/user.slice/user-0.slice/user@0.service/app.slice/x.service"),
            (Some(0), "/machine.slice/systemd-nspawn@web.service/payload/system.slice/fake-dm.service"),
            (Some(0), "/lxc.payload.box/system.slice/cron.service"),
            (Some(0), "/odd/place"),
            (None, "/system.slice/example.service"),
        ];
        for (uid, cg) in review {
            let t = of_trigger(&request_by(req(uid, cg)));
            assert!(!t.trusted(), "{cg}: {t:?}");
        }
        let t = of_trigger(&request_by(req(
            Some(1000),
            "/user.slice/user-1000.slice/user@1000.service/app.slice/lightdm.service",
        )));
        assert_eq!(t.why(), "an unprivileged process (uid 1000) in the user unit lightdm.service of uid 1000");
        let mut old = req(Some(0), "/");
        old.kernel_thread = None;
        assert!(!requester(&old).trusted(), "root cgroup, kernel thread or not unknown");
        old.kernel_thread = Some(true);
        assert!(requester(&old).why().starts_with(UNJOINED), "{:?}", requester(&old));
        let mut setuid = req(Some(1000), "/system.slice/example.service");
        setuid.euid = Some(0);
        assert!(!requester(&setuid).trusted(), "a setuid program's real uid is the user's");
    }

    /// A root process in a host unit's cgroup but another pid namespace
    /// (systemd-nspawn --keep-unit, podman --cgroups=split) needs review, and
    /// the reason says its namespaces are not init's.
    #[test]
    fn root_in_a_host_units_cgroup_but_other_namespaces_needs_review() {
        use crate::trace::scope::Namespaces;
        let (host, inner) = (Namespaces { pid: 1, mnt: 2 }, Namespaces { pid: 3, mnt: 4 });
        let mut r = req(Some(0), "/system.slice/keepunit.service");
        r.scope = Scope::of_task(r.cgroup.as_deref(), r.unit.as_deref(), Some(inner), Some(host));
        let t = of_trigger(&request_by(r.clone()));
        assert_eq!(
            t,
            Trust::Review(
                "root, but in the container keepunit.service (namespaces), its pid and mount namespaces not init's"
                    .into()
            )
        );
        r.scope = Scope::of_task(r.cgroup.as_deref(), r.unit.as_deref(), Some(host), Some(host));
        assert!(of_trigger(&request_by(r)).trusted());
    }

    #[test]
    fn one_trusted_requester_of_a_shared_load_is_enough() {
        let mut t = request_by(req(Some(1000), "/user.slice/user-1000.slice/session-3.scope"));
        assert!(!of_trigger(&t).trusted());
        t.also_requested_by.push(req(Some(0), "/system.slice/example.service"));
        assert!(of_trigger(&t).trusted());
    }

    #[test]
    fn preloaded_trusted_only_when_explained_unknown_not() {
        let mut p = Trigger::new(TriggerKind::Preloaded);
        p.reason = Some("/etc/modules-load.d/x.conf".into());
        let why = "loaded before learning, explained by: /etc/modules-load.d/x.conf";
        assert_eq!(of_trigger(&p), Trust::Trusted(why.into()));
        // Found loaded and nothing explains it, as old profiles recorded every
        // such module: review, with how to learn it or accept it.
        for reason in [Some(BEFORE_LEARNING.to_string()), None] {
            p.reason = reason;
            let t = of_trigger(&p);
            assert!(!t.trusted(), "{t:?}");
            assert!(t.why().contains("cause unknown") && t.why().contains("modtrace-learn.service"), "{t:?}");
            assert!(t.why().contains("modtrace allow"), "{t:?}");
        }
        assert!(!of_trigger(&Trigger::new(TriggerKind::Unknown)).trusted());
        assert!(!of_trigger(&Trigger::new(TriggerKind::Udev)).trusted(), "no loader recorded");
    }
}

#[cfg(test)]
mod stage_tests {
    use crate::profile::{Loader, Trigger, TriggerKind};
    use crate::trace::scope::Scope;

    #[test]
    fn a_load_in_the_initramfs_is_roots_and_says_where() {
        let mut t = Trigger::new(TriggerKind::Explicit);
        t.loader = Some(Loader {
            comm: "insmod".into(),
            exe: None,
            uid: Some(0),
            euid: Some(0),
            loginuid: None,
            unit: None,
            scope: Scope::NoUnit,
            cgroup: Some("/".into()),
            pid_ns: None,
            mnt_ns: None,
            extra: Default::default(),
        });
        t.stage = Some("initramfs".into());
        t.count = 1;
        assert!(super::of_trigger(&t).trusted());
        let text = crate::needs::describe_trigger(&t);
        assert!(text.starts_with("loaded by insmod") && text.contains(", in the initramfs;"), "{text}");
    }
}
