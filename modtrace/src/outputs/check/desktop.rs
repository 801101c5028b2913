//! A desktop's lock point (docs/lockdown.md, "A desktop: which lock point").
//! When the profile shows a display manager (its unit caused or loaded a
//! module, or a requester runs one), `check` says what the lock point in use
//! means for the greeter, the session and hotplug, and what keeps a desktop
//! whole: the freeze before the display manager with the session's loads
//! accepted, or the sealed guard instead of the freeze for hotplug.

use serde::Serialize;

use crate::outputs::generate::LockPoint;
use crate::profile::{Profile, Requester};
use crate::trace::scope::Scope;

/// Display managers' units; display-manager.service is the alias Debian's
/// packages link to the one in use.
const UNITS: [&str; 12] = [
    "display-manager.service",
    "lightdm.service",
    "gdm.service",
    "gdm3.service",
    "sddm.service",
    "lxdm.service",
    "xdm.service",
    "slim.service",
    "nodm.service",
    "greetd.service",
    "ly.service",
    "wdm.service",
];

/// What `check` advises on a desktop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Desktop {
    /// The display manager, as the profile shows it: its unit, or "process NAME".
    pub display_manager: String,
    pub lock_point: &'static str,
    pub advice: String,
}

/// The advice for `profile` at `point`; None when it shows no display manager.
pub fn advise(profile: &Profile, point: LockPoint) -> Option<Desktop> {
    let dm = display_manager(profile)?;
    let advice = advice(&dm, point);
    Some(Desktop { display_manager: dm, lock_point: point.as_str(), advice })
}

/// The first display manager the profile's causes name (units before
/// process names, each in sorted order, so the answer does not depend on
/// the order things were learned).
pub fn display_manager(profile: &Profile) -> Option<String> {
    let mut units = Vec::new();
    let mut comms = Vec::new();
    // Only the host's own unit counts: a user's or a container's unit of
    // that name is not this machine's display manager.
    let mut note = |scope: &Scope, comm: &str| {
        if let Scope::System { unit } = scope {
            units.extend(UNITS.contains(&unit.as_str()).then(|| unit.clone()));
        }
        if UNITS.contains(&format!("{comm}.service").as_str()) {
            comms.push(format!("process {comm}"));
        }
    };
    for t in profile.modules.iter().flat_map(|m| &m.triggers) {
        let requesters = t.requester.iter().chain(&t.also_requested_by);
        requesters.for_each(|r: &Requester| note(&r.scope, &r.comm));
        if let Some(l) = &t.loader {
            note(&l.scope, &l.comm);
        }
    }
    for r in profile.requests.iter().flat_map(|r| &r.requesters) {
        note(&r.who.scope, &r.who.comm);
    }
    units.sort();
    comms.sort();
    units.into_iter().chain(comms).next()
}

fn advice(dm: &str, point: LockPoint) -> String {
    let dm = crate::escape::text(dm);
    let what = match point {
        LockPoint::Early => format!(
            "the lock comes before sysinit.target, long before {dm}: the greeter, the session and any device \
             plugged in later get only the modules its list loaded first"
        ),
        LockPoint::AfterUdev => format!(
            "the lock comes before {dm} starts (Before=display-manager.service): the greeter and the session get \
             only the modules its list loaded first, so accept what their processes loaded while learning (modtrace \
             review); a device plugged in later gets only a driver the list loaded"
        ),
        LockPoint::Late => format!(
            "the lock is ordered after multi-user.target, not after {dm} or the session (graphical.target pulls \
             {dm} in): it races what the greeter and the session load, and after it a device plugged in later \
             gets only a driver already loaded; prefer after-udev, which is ordered before {dm}"
        ),
    };
    format!(
        "{what}. For hotplug on a desktop, run the sealed guard instead of the lock (modtrace-guard.service with \
         MODTRACE_GUARD_SEAL=yes): it allows the profile's modules whenever they are asked for, at login or when \
         a learned device is plugged in, and refuses the rest (docs/lockdown.md, \"A desktop\")"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::example_profile;

    /// The example profile with one trigger's requester in `unit`, run by `comm`.
    fn with_requester(unit: &str, comm: &str) -> Profile {
        let mut p = example_profile();
        let t = p.modules.iter_mut().flat_map(|m| &mut m.triggers).find(|t| t.requester.is_some()).unwrap();
        let r = t.requester.as_mut().unwrap();
        (r.unit, r.comm) = (Some(unit.into()), comm.into());
        r.scope = Scope::System { unit: unit.into() };
        p
    }

    #[test]
    fn a_display_manager_is_found_by_unit_or_by_process() {
        assert_eq!(display_manager(&example_profile()), None);
        assert_eq!(display_manager(&with_requester("lightdm.service", "Xorg")).as_deref(), Some("lightdm.service"));
        assert_eq!(display_manager(&with_requester("session-2.scope", "gdm3")).as_deref(), Some("process gdm3"));
        assert_eq!(display_manager(&with_requester("example.service", "lightdmx")), None);
        let mut users = with_requester("lightdm.service", "python3");
        let r = users.modules.iter_mut().flat_map(|m| &mut m.triggers).find_map(|t| t.requester.as_mut()).unwrap();
        r.scope = Scope::of(Some("/user.slice/user-1000.slice/user@1000.service/app.slice/lightdm.service"));
        assert_eq!(display_manager(&users), None, "a user's unit named lightdm.service is not the display manager");
    }

    #[test]
    fn the_advice_names_the_display_manager_the_lock_point_and_the_guard() {
        let p = with_requester("sddm.service", "sddm");
        assert_eq!(advise(&example_profile(), LockPoint::AfterUdev), None);
        for point in [LockPoint::Early, LockPoint::AfterUdev, LockPoint::Late] {
            let d = advise(&p, point).unwrap();
            assert_eq!((d.display_manager.as_str(), d.lock_point), ("sddm.service", point.as_str()));
            assert!(d.advice.contains("sddm.service") && d.advice.contains("sealed guard instead of the lock"), "{d:?}");
        }
        assert!(advise(&p, LockPoint::Late).unwrap().advice.contains("races"));
        assert!(advise(&p, LockPoint::AfterUdev).unwrap().advice.contains("modtrace review"));
    }
}
