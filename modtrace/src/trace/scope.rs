//! Whose unit a process runs in, read from its whole cgroup v2 path: the host's
//! system manager, a user's own manager, a login session, a container, or no
//! unit at all. The leaf name alone never tells: a container's inner tree has
//! its own /system.slice/NAME.service, and a user may name a unit of theirs like
//! a system display manager. Nor does the path alone: a process whose pid
//! namespace is not init's is in a container whatever its cgroup is called
//! ([`Scope::of_task`]).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a process's cgroup puts it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scope {
    /// A unit of the host's system manager (PID 1): /init.scope,
    /// /system.slice/NAME.service, or a unit in another top-level host slice.
    System { unit: String },
    /// A unit of user UID's own manager (below user@UID.service), or the user's
    /// slice itself.
    User { uid: u32, unit: String },
    /// A login session of UID (session-N.scope).
    Session { uid: u32, unit: String },
    /// A container or machine. `unit` is the unit inside its own tree, if any:
    /// never one of the host's. `namespaces` names those of the task that are
    /// not init's ("pid", "mnt") when they told the container apart; empty when
    /// its cgroup's names did.
    Container {
        runtime: String,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unit: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        namespaces: Vec<String>,
    },
    /// The root cgroup: kernel threads, or a process outside every unit.
    NoUnit,
    /// The cgroup path is not known, or has a shape no manager known here makes.
    #[default]
    Unknown,
}

/// Inode numbers of a task's pid namespace (the one its children get) and its
/// mount namespace, as /proc/PID/ns/pid and mnt name them (pid:[N]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Namespaces {
    pub pid: u32,
    pub mnt: u32,
}

/// The runtime of a container told apart by its namespaces alone.
pub const BY_NAMESPACES: &str = "namespaces";

const UNIT_SUFFIXES: &[&str] = &[
    ".service",
    ".scope",
    ".slice",
    ".socket",
    ".mount",
    ".swap",
    ".timer",
    ".path",
    ".target",
    ".device",
    ".automount",
];

fn has_suffix(name: &str, suffixes: &[&str]) -> bool {
    suffixes.iter().any(|s| name.len() > s.len() && name.ends_with(s))
}

fn components(path: &str) -> Vec<&str> {
    path.split('/').filter(|p| !p.is_empty()).collect()
}

fn deepest_unit(parts: &[&str]) -> Option<String> {
    let deepest = |suffixes: &[&str]| parts.iter().rev().find(|p| has_suffix(p, suffixes)).copied();
    deepest(&[".service", ".scope"]).or_else(|| deepest(UNIT_SUFFIXES)).map(str::to_string)
}

/// The deepest .service or .scope a cgroup path names, else its deepest
/// component that looks like a unit; None for the root. Only the unit's name:
/// [`Scope::of`] says whose unit it is.
pub fn unit_of(cgroup_path: &str) -> Option<String> {
    deepest_unit(&components(cgroup_path))
}

/// The uid in "user-UID.slice" or "user@UID.service".
fn uid_in(part: &str, prefix: &str, suffix: &str) -> Option<u32> {
    part.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok()
}

/// A container marker at `parts[i]`: (runtime, name, index of the first
/// component inside the container).
fn container_at(parts: &[&str], i: usize) -> Option<(String, String, usize)> {
    let part = parts[i];
    let next = |runtime: &str, name: &str| Some((runtime.to_string(), name.to_string(), i + 1));
    let between = |prefix: &str, suffix: &str| part.strip_prefix(prefix).and_then(|r| r.strip_suffix(suffix));
    if let Some(name) = between("systemd-nspawn@", ".service") {
        return next("systemd-nspawn", name);
    }
    if let Some(name) = part.strip_prefix("lxc.payload.").or_else(|| part.strip_prefix("lxc.monitor.")) {
        return next("lxc", name);
    }
    if let Some(id) = part.strip_prefix("libpod-payload-") {
        // podman --cgroups=split and Quadlet: the payload below a host unit's
        // cgroup; the unit names it, as the id changes at every start.
        let unit = i.checked_sub(1).map(|u| parts[u]).filter(|u| has_suffix(u, UNIT_SUFFIXES));
        return next("podman", unit.unwrap_or(id));
    }
    if let Some(id) = between("libpod-conmon-", ".scope").or_else(|| between("libpod-", ".scope")) {
        return next("podman", id);
    }
    for (prefix, runtime) in
        [("docker-", "docker"), ("cri-containerd-", "containerd"), ("crio-", "cri-o"), ("machine-", "machine")]
    {
        if let Some(id) = between(prefix, ".scope") {
            return next(runtime, id);
        }
    }
    // cgroupfs layouts: /docker/ID, /lxc/NAME
    if i == 0 && matches!(part, "docker" | "lxc") {
        return parts.get(1).map(|name| (part.to_string(), name.to_string(), 2));
    }
    None
}

/// Trees only containers live in, when no runtime's own marker is in the path.
fn container_tree(parts: &[&str]) -> Option<(String, String, usize)> {
    if parts[0].starts_with("kubepods") {
        let name = parts.last().copied().unwrap_or(parts[0]);
        return Some(("kubernetes".to_string(), name.to_string(), parts.len()));
    }
    if parts[0] == "machine.slice" {
        let name = parts.get(1).copied().unwrap_or("machine.slice");
        return Some(("machine".to_string(), name.to_string(), 2));
    }
    None
}

impl Scope {
    /// The scope of a cgroup v2 path below the cgroup root; Unknown when the
    /// path is not known.
    pub fn of(cgroup_path: Option<&str>) -> Scope {
        let Some(path) = cgroup_path else { return Scope::Unknown };
        let parts = components(path);
        if parts.is_empty() {
            return Scope::NoUnit;
        }
        // A container anywhere in the path makes everything below it its own.
        let marker = (0..parts.len()).find_map(|i| container_at(&parts, i)).or_else(|| container_tree(&parts));
        if let Some((runtime, name, inside)) = marker {
            let inner = parts.get(inside..).unwrap_or(&[]);
            return Scope::Container { runtime, name, unit: deepest_unit(inner), namespaces: Vec::new() };
        }
        if parts[0] == "user.slice" {
            if let Some(uid) = parts.get(1).and_then(|p| uid_in(p, "user-", ".slice")) {
                return match parts.get(2) {
                    Some(p) if uid_in(p, "user@", ".service") == Some(uid) => {
                        Scope::User { uid, unit: deepest_unit(&parts[3..]).unwrap_or_else(|| p.to_string()) }
                    }
                    Some(p) if p.starts_with("session-") && p.ends_with(".scope") => {
                        Scope::Session { uid, unit: p.to_string() }
                    }
                    _ => Scope::User { uid, unit: deepest_unit(&parts[1..]).unwrap_or_default() },
                };
            }
        }
        if has_suffix(parts[0], UNIT_SUFFIXES) {
            return match deepest_unit(&parts) {
                Some(unit) => Scope::System { unit },
                None => Scope::Unknown,
            };
        }
        Scope::Unknown
    }

    /// The scope of a task: its cgroup path's ([`Scope::of`]), unless its pid
    /// namespace is not init's: then it is a container whatever its cgroup is
    /// called (podman --cgroups=split, Quadlet and systemd-nspawn --keep-unit
    /// put containers below a host unit). The names stay as the label: a
    /// runtime's marker in the path names the container; else the runtime is
    /// "namespaces" and `label` (the unit, or the cgroup's leaf) its name.
    ///
    /// A mount namespace of its own alone is no container: systemd gives one
    /// to every unit with PrivateMounts=, PrivateTmp= or ProtectSystem=
    /// (systemd-udevd among them). Namespaces not known (no BTF), or init's
    /// not known, leave the path's verdict.
    pub fn of_task(path: Option<&str>, label: Option<&str>, ns: Option<Namespaces>, init: Option<Namespaces>) -> Scope {
        let by_path = Scope::of(path);
        let (Some(ns), Some(init)) = (ns, init) else { return by_path };
        if ns.pid == init.pid {
            return by_path;
        }
        let mut namespaces = vec!["pid".to_string()];
        if ns.mnt != init.mnt {
            namespaces.push("mnt".to_string());
        }
        match by_path {
            Scope::Container { runtime, name, unit, .. } => Scope::Container { runtime, name, unit, namespaces },
            _ => {
                let leaf = path.and_then(|p| components(p).last().map(|l| l.to_string()));
                let name = label.map(str::to_string).or(leaf).unwrap_or_else(|| "unknown".to_string());
                Scope::Container { runtime: BY_NAMESPACES.to_string(), name, unit: None, namespaces }
            }
        }
    }

    /// The unit's name, whatever manager it belongs to.
    pub fn unit(&self) -> Option<&str> {
        match self {
            Scope::System { unit } | Scope::User { unit, .. } | Scope::Session { unit, .. } => Some(unit),
            Scope::Container { unit, .. } => unit.as_deref(),
            Scope::NoUnit | Scope::Unknown => None,
        }
    }

    /// A unit of the host's system manager, the only kind a drop-in in
    /// /etc/systemd/system applies to.
    pub fn system_unit(&self) -> Option<&str> {
        match self {
            Scope::System { unit } => Some(unit),
            _ => None,
        }
    }

    /// Outside every container and every user's manager: the host's system
    /// units, login sessions, and the root cgroup.
    pub fn on_host(&self) -> bool {
        matches!(self, Scope::System { .. } | Scope::Session { .. } | Scope::NoUnit)
    }

    /// Root on the host: uid and effective uid 0 (both known or the effective
    /// one absent), in a host scope. The one rule for who is trusted
    /// (needs/trust.rs) and whose evidence is kept in full (the profile's and
    /// the correlator's bounds); everyone else is untrusted.
    pub fn root_on_host(&self, uid: Option<u32>, euid: Option<u32>) -> bool {
        uid == Some(0) && euid.is_none_or(|e| e == 0) && self.on_host()
    }

    /// Root on the host asking for itself: a kernel thread is root in the root
    /// cgroup whoever it works for, and outside any unit a task not known not
    /// to be one counts as one (needs/trust.rs's requester rule).
    pub fn root_own(&self, uid: Option<u32>, euid: Option<u32>, kernel_thread: Option<bool>) -> bool {
        let kthread = kernel_thread.unwrap_or(*self == Scope::NoUnit);
        !kthread && self.root_on_host(uid, euid)
    }

    /// The short word for tables: system, user, session, container, none, unknown.
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::System { .. } => "system",
            Scope::User { .. } => "user",
            Scope::Session { .. } => "session",
            Scope::Container { .. } => "container",
            Scope::NoUnit => "none",
            Scope::Unknown => "unknown",
        }
    }
}

impl Scope {
    /// Where a process ran, after a verb: "in the system unit X.service",
    /// "outside any unit (the root cgroup)", ...
    pub fn locative(&self) -> String {
        match self {
            Scope::NoUnit => "outside any unit (the root cgroup)".to_string(),
            Scope::Unknown => "in a scope not known (its cgroup is not known)".to_string(),
            other => format!("in the {other}"),
        }
    }
}

/// "system unit example.service", "user unit X.service of uid 1000", ...
impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::System { unit } => write!(f, "system unit {unit}"),
            Scope::User { uid, unit } => write!(f, "user unit {unit} of uid {uid}"),
            Scope::Session { uid, unit } => write!(f, "login session {unit} of uid {uid}"),
            Scope::Container { runtime, name, unit, namespaces } => {
                write!(f, "container {name} ({runtime})")?;
                if let Some(u) = unit {
                    write!(f, ", its unit {u}")?;
                }
                match namespaces.iter().map(|n| if n == "mnt" { "mount" } else { n }).collect::<Vec<_>>()[..] {
                    [] => Ok(()),
                    [one] => write!(f, ", its {one} namespace not init's"),
                    [ref first @ .., last] => write!(f, ", its {} and {last} namespaces not init's", first.join(", ")),
                }
            }
            Scope::NoUnit => write!(f, "no unit (root cgroup)"),
            Scope::Unknown => write!(f, "unknown scope (cgroup not known)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sys(u: &str) -> Scope {
        Scope::System { unit: u.into() }
    }

    fn container(runtime: &str, name: &str, unit: Option<&str>) -> Scope {
        let (runtime, name, unit) = (runtime.into(), name.into(), unit.map(Into::into));
        Scope::Container { runtime, name, unit, namespaces: Vec::new() }
    }

    #[test]
    fn every_path_shape_has_its_scope() {
        let cases = [
            ("/system.slice/lightdm.service", sys("lightdm.service")),
            ("/system.slice/docker.service", sys("docker.service")),
            ("/init.scope", sys("init.scope")),
            ("/system.slice", sys("system.slice")),
            ("/background.slice/backup.service", sys("backup.service")),
            ("/system.slice/system-getty.slice/getty@tty1.service", sys("getty@tty1.service")),
            (
                "/user.slice/user-1000.slice/user@1000.service/app.slice/lightdm.service",
                Scope::User { uid: 1000, unit: "lightdm.service".into() },
            ),
            (
                "/user.slice/user-1000.slice/user@1000.service/init.scope",
                Scope::User { uid: 1000, unit: "init.scope".into() },
            ),
            (
                "/user.slice/user-1000.slice/user@1000.service",
                Scope::User { uid: 1000, unit: "user@1000.service".into() },
            ),
            (
                "/user.slice/user-1000.slice/session-2.scope",
                Scope::Session { uid: 1000, unit: "session-2.scope".into() },
            ),
            ("/user.slice/user-0.slice/session-c1.scope", Scope::Session { uid: 0, unit: "session-c1.scope".into() }),
            ("/user.slice/user-1000.slice", Scope::User { uid: 1000, unit: "user-1000.slice".into() }),
            (
                "/machine.slice/systemd-nspawn@web.service/payload/system.slice/fake-dm.service",
                container("systemd-nspawn", "web", Some("fake-dm.service")),
            ),
            ("/machine.slice/systemd-nspawn@web.service/payload", container("systemd-nspawn", "web", None)),
            ("/machine.slice/machine-vm1.scope", container("machine", "vm1", None)),
            ("/machine.slice/libpod-0a1b2c.scope/container", container("podman", "0a1b2c", None)),
            (
                "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-77aa.scope",
                container("podman", "77aa", None),
            ),
            ("/system.slice/docker-3f4e.scope", container("docker", "3f4e", None)),
            // podman --cgroups=split, Quadlet: the unit names the container.
            ("/system.slice/web.service/libpod-payload-9c0ffee", container("podman", "web.service", None)),
            (
                "/system.slice/web.service/libpod-payload-9c0ffee/system.slice/cron.service",
                container("podman", "web.service", Some("cron.service")),
            ),
            ("/libpod-payload-9c0ffee", container("podman", "9c0ffee", None)),
            ("/docker/3f4e", container("docker", "3f4e", None)),
            ("/lxc.payload.box/system.slice/cron.service", container("lxc", "box", Some("cron.service"))),
            ("/lxc/box", container("lxc", "box", None)),
            ("/kubepods.slice/kubepods-besteffort.slice/cri-containerd-9.scope", container("containerd", "9", None)),
            ("/machine.slice/odd-thing", container("machine", "odd-thing", None)),
            ("/", Scope::NoUnit),
            ("", Scope::NoUnit),
            ("/not-a-unit/x.service", Scope::Unknown),
        ];
        for (path, scope) in cases {
            assert_eq!(Scope::of(Some(path)), scope, "{path}");
        }
        assert_eq!(Scope::of(None), Scope::Unknown);
    }

    #[test]
    fn a_containers_or_users_unit_is_never_a_system_unit() {
        for path in [
            "/machine.slice/systemd-nspawn@web.service/payload/system.slice/lightdm.service",
            "/user.slice/user-1000.slice/user@1000.service/app.slice/lightdm.service",
        ] {
            let s = Scope::of(Some(path));
            assert_eq!(s.unit(), Some("lightdm.service"), "{path}");
            assert_eq!(s.system_unit(), None, "{path}");
            assert!(!s.on_host(), "{path}");
        }
        assert_eq!(sys("lightdm.service").system_unit(), Some("lightdm.service"));
    }

    #[test]
    fn only_root_in_a_host_scope_is_root_on_the_host() {
        let host = sys("example.service");
        assert!(host.root_on_host(Some(0), None) && host.root_on_host(Some(0), Some(0)));
        assert!(Scope::NoUnit.root_on_host(Some(0), Some(0)));
        assert!(!host.root_on_host(Some(1000), None));
        assert!(!host.root_on_host(Some(1000), Some(0)), "a setuid program's real uid is the user's");
        assert!(!host.root_on_host(Some(0), Some(1000)));
        assert!(!host.root_on_host(None, None));
        let user = Scope::User { uid: 0, unit: "x.service".into() };
        for s in [user, container("docker", "x", None), Scope::Unknown] {
            assert!(!s.root_on_host(Some(0), Some(0)), "{s}");
        }
    }

    #[test]
    fn a_kernel_thread_or_an_unknown_task_outside_units_is_not_roots_own() {
        let host = sys("example.service");
        assert!(host.root_own(Some(0), Some(0), None), "a unit's task is no kernel thread");
        assert!(!host.root_own(Some(0), Some(0), Some(true)));
        assert!(Scope::NoUnit.root_own(Some(0), Some(0), Some(false)));
        assert!(!Scope::NoUnit.root_own(Some(0), Some(0), None), "outside units, not known not to be one");
        assert!(!Scope::NoUnit.root_own(Some(0), Some(0), Some(true)));
        assert!(!host.root_own(Some(1000), None, Some(false)));
    }

    #[test]
    fn unit_is_the_deepest_service_or_scope() {
        let cases = [
            ("/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service", Some("foo.service")),
            ("/user.slice/user-1000.slice/user@1000.service/app.slice", Some("user@1000.service")),
            ("/system.slice/docker.service/payload", Some("docker.service")),
            ("/machine.slice/x.mount", Some("x.mount")),
            ("/", None),
            ("/not-a-unit/.service", None),
        ];
        for (path, unit) in cases {
            assert_eq!(unit_of(path).as_deref(), unit, "{path}");
        }
    }

    const HOST: Namespaces = Namespaces { pid: 4_026_531_836, mnt: 4_026_531_841 };

    fn keep_unit(ns: Option<Namespaces>, init: Option<Namespaces>) -> Scope {
        Scope::of_task(Some("/system.slice/keepunit.service"), Some("keepunit.service"), ns, init)
    }

    fn by_namespaces(name: &str, namespaces: &[&str]) -> Scope {
        Scope::Container {
            runtime: BY_NAMESPACES.into(),
            name: name.into(),
            unit: None,
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
        }
    }

    #[test]
    fn a_pid_namespace_not_inits_is_a_container_whatever_the_cgroup() {
        let both = Namespaces { pid: 4_026_532_290, mnt: 4_026_532_288 };
        assert_eq!(keep_unit(Some(both), Some(HOST)), by_namespaces("keepunit.service", &["pid", "mnt"]));
        let pid_only = Namespaces { pid: 4_026_532_290, ..HOST };
        assert_eq!(keep_unit(Some(pid_only), Some(HOST)), by_namespaces("keepunit.service", &["pid"]));
        assert!(!keep_unit(Some(pid_only), Some(HOST)).on_host());
        // Same namespaces: the path decides.
        assert_eq!(keep_unit(Some(HOST), Some(HOST)), sys("keepunit.service"));
        // A mount namespace alone is systemd's sandboxing (PrivateMounts=...).
        let mnt_only = Namespaces { mnt: 4_026_532_288, ..HOST };
        assert_eq!(keep_unit(Some(mnt_only), Some(HOST)), sys("keepunit.service"));
        // Unknown on either side: the path decides, as before.
        assert_eq!(keep_unit(None, Some(HOST)), sys("keepunit.service"));
        assert_eq!(keep_unit(Some(both), None), sys("keepunit.service"));
    }

    #[test]
    fn a_container_by_namespaces_keeps_its_names_as_label() {
        let ns = Some(Namespaces { pid: 1, mnt: 2 });
        let nspawn = "/machine.slice/systemd-nspawn@web.service/payload/system.slice/cron.service";
        let mut named = container("systemd-nspawn", "web", Some("cron.service"));
        if let Scope::Container { namespaces, .. } = &mut named {
            *namespaces = vec!["pid".into(), "mnt".into()];
        }
        assert_eq!(Scope::of_task(Some(nspawn), Some("cron.service"), ns, Some(HOST)), named);
        let session_path = Some("/user.slice/user-0.slice/session-2.scope");
        let session = Scope::of_task(session_path, Some("session-2.scope"), ns, Some(HOST));
        assert_eq!(session, by_namespaces("session-2.scope", &["pid", "mnt"]));
        assert_eq!(Scope::of_task(Some("/odd/leaf"), None, ns, Some(HOST)), by_namespaces("leaf", &["pid", "mnt"]));
        assert_eq!(Scope::of_task(None, None, ns, Some(HOST)), by_namespaces("unknown", &["pid", "mnt"]));
        let shown = keep_unit(ns, Some(HOST)).to_string();
        assert_eq!(shown, "container keepunit.service (namespaces), its pid and mount namespaces not init's");
        let json = serde_json::to_value(keep_unit(ns, Some(HOST))).unwrap();
        assert_eq!(json["namespaces"], serde_json::json!(["pid", "mnt"]));
        assert_eq!(serde_json::to_value(container("podman", "x", None)).unwrap().get("namespaces"), None);
    }

    #[test]
    fn scopes_serialize_with_their_kind() {
        let s = Scope::Session { uid: 1000, unit: "session-2.scope".into() };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"kind":"session","uid":1000,"unit":"session-2.scope"}"#);
        assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), s);
        assert_eq!(serde_json::to_string(&Scope::Unknown).unwrap(), r#"{"kind":"unknown"}"#);
        assert_eq!(s.to_string(), "login session session-2.scope of uid 1000");
    }
}
