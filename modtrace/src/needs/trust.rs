//! The trust policy: a cause is trusted when root on the host caused it outside
//! any container (a system unit, PID 1, udev, the kernel, a preloaded
//! configuration, or root outside units and in login sessions). Anything else
//! (an unprivileged uid, a user's unit, a container, a uid or scope not known)
//! needs an admin's review before it reaches boot-time policy. A kernel
//! thread is root in the root cgroup whoever it works for: its request counts
//! only as the requester it was joined to (trace/kthread.rs).

use crate::profile::{Loader, Requester, Trigger, TriggerKind, BEFORE_LEARNING};
use crate::trace::kthread::UNJOINED;
use crate::trace::scope::Scope;

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

/// Root on the host, from what a process record holds.
fn root_on_host(uid: Option<u32>, euid: Option<u32>, scope: &Scope) -> Trust {
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
        Scope::System { unit } if unit == "init.scope" => Trust::Trusted("root: PID 1 (init.scope)".to_string()),
        Scope::System { .. } => Trust::Trusted(format!("root in the {scope}")),
        Scope::Session { .. } => Trust::Trusted(format!("root in the {scope}")),
        Scope::NoUnit => Trust::Trusted("root outside any unit (the root cgroup, not a kernel thread)".to_string()),
        Scope::User { .. } | Scope::Container { .. } => Trust::Review(format!("root, but in the {scope}")),
        Scope::Unknown => Trust::Review("root, but its cgroup is not known, so neither is its scope".to_string()),
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
            t.candidates.len() + 1,
            untrusted.join(", ")
        )),
    }
}

pub fn loader(l: &Loader) -> Trust {
    root_on_host(l.uid, l.euid, &l.scope)
}

/// The trust of one recorded cause.
pub fn of_trigger(t: &Trigger) -> Trust {
    match t.kind {
        TriggerKind::Preloaded => Trust::Trusted(match t.reason.as_deref() {
            None | Some(BEFORE_LEARNING) => "already loaded when learning started (boot, initramfs)".to_string(),
            Some(conf) => format!("configured in {conf}"),
        }),
        TriggerKind::Request => {
            // One load answered every pending request: it is trusted when any
            // of those who asked is.
            let first = joined(t);
            match t.also_requested_by.iter().map(requester).find(|x| x.trusted()) {
                Some(x) if !first.trusted() => x,
                _ => first,
            }
        }
        TriggerKind::Explicit => match &t.loader {
            Some(l) => loader(l),
            None => Trust::Review("no loader recorded".to_string()),
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

    #[test]
    fn one_trusted_requester_of_a_shared_load_is_enough() {
        let mut t = request_by(req(Some(1000), "/user.slice/user-1000.slice/session-3.scope"));
        assert!(!of_trigger(&t).trusted());
        t.also_requested_by.push(req(Some(0), "/system.slice/example.service"));
        assert!(of_trigger(&t).trusted());
    }

    #[test]
    fn preloaded_trusted_unknown_not() {
        let mut p = Trigger::new(TriggerKind::Preloaded);
        p.reason = Some("/etc/modules-load.d/x.conf".into());
        assert_eq!(of_trigger(&p), Trust::Trusted("configured in /etc/modules-load.d/x.conf".into()));
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
            extra: Default::default(),
        });
        t.stage = Some("initramfs".into());
        t.count = 1;
        assert!(super::of_trigger(&t).trusted());
        let text = crate::needs::describe_trigger(&t);
        assert!(text.starts_with("loaded by insmod") && text.contains(", in the initramfs;"), "{text}");
    }
}
