//! Guard decisions: ring bytes -> `Decision`, and its description as a trace
//! record or a journal entry.

use std::mem::size_of;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use aya::maps::{Map, MapData, MapInfo, PerCpuArray, RingBuf};

use modtrace_common::guard::{decision, hook, lost, mode, GuardEvent};
use modtrace_common::seal::{cmd, op};
use serde::Serialize;

use crate::loader::pin;
use crate::trace::attribute::Describe;
use crate::trace::decode::{cstr, task, DecodeError};
use crate::trace::correlate::is_udev;
use crate::trace::event::{Device, Process, Task};
use crate::trace::modindex::ModuleIndex;
use crate::trace::refused;

/// Where `modtrace guard start` pins its programs and maps. The guard stage
/// writes them; a tracer only reads the decision ring from here.
pub const GUARD_PIN_DIR: &str = "/sys/fs/bpf/modtrace/guard";

/// A pinned decision ring's map id, if a guard is in force (its config map
/// and the ring are pinned).
fn pinned_id(name: &str) -> Option<u32> {
    let dir = Path::new(GUARD_PIN_DIR);
    if !dir.join("GUARD_CONFIG").exists() {
        return None;
    }
    Some(MapInfo::from_pin(dir.join(name)).ok()?.id())
}

/// The pinned ring and its own map id (read from the map opened, so that a
/// guard replaced meanwhile cannot pair one guard's id with another's ring),
/// with that guard's loss counters when they open (read-only: a sealed guard
/// allows no more).
fn open_pinned(name: &str) -> Option<Current> {
    let dir = Path::new(GUARD_PIN_DIR);
    let data = MapData::from_pin(dir.join(name)).ok()?;
    let id = data.info().ok()?.id();
    let ring = RingBuf::try_from(Map::RingBuf(data)).ok()?;
    let lost = pin::counters(&dir.join("GUARD_LOST")).ok();
    // Both of one guard: none replaced it in between.
    (pinned_id(name) == Some(id)).then_some(Current { id, ring, lost })
}

/// The ring a watcher reads now, and its guard's loss counters.
struct Current {
    id: u32,
    ring: RingBuf<MapData>,
    lost: Option<PerCpuArray<MapData, u64>>,
}

/// Decisions lost from the rings a watcher read (the kernel counts them per
/// guard, for every reader of the ring): each ring's count from when the
/// watcher found it, the last value of each ring it left added in.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LostTally {
    done: u64,
    base: u64,
    now: u64,
}

impl LostTally {
    /// The current ring's counter read `now`.
    pub fn read(&mut self, now: u64) {
        self.now = now.max(self.now);
    }

    /// Another ring found, its counter at `base`; the old one's last reading counts.
    pub fn switch(&mut self, base: u64) {
        self.done += self.now - self.base;
        (self.base, self.now) = (base, base);
    }

    pub fn total(&self) -> u64 {
        self.done + self.now - self.base
    }
}

/// The decision ring `name` ("GUARD_TRACE", "GUARD_LOG") of whichever guard
/// is pinned: a watcher started before the guard, or running across a stop
/// and a new start, finds the new guard's ring (`refind`). A policy swap
/// (start over a running guard, refresh) keeps the ring. Decisions the ring
/// could not hold while watched are counted (`lost`).
pub struct WatchedRing {
    name: &'static str,
    /// The ring's slot in the guard's loss counters.
    slot: u32,
    current: Option<Current>,
    lost: LostTally,
    /// Past the first look (`open`).
    watching: bool,
}

impl WatchedRing {
    /// The ring of the guard pinned now, if any.
    pub fn open(name: &'static str) -> WatchedRing {
        let slot = if name == "GUARD_LOG" { lost::LOG } else { lost::TRACE };
        let mut w = WatchedRing { name, slot, current: None, lost: LostTally::default(), watching: false };
        w.refind();
        w.watching = true;
        w
    }

    /// The current ring's descriptor, to wait on. A watch on it must be
    /// dropped before `refind`, which may close it.
    pub fn raw_fd(&self) -> Option<RawFd> {
        self.current.as_ref().map(|c| c.ring.as_raw_fd())
    }

    /// The records the current ring holds now.
    pub fn drain(&mut self) -> Vec<Vec<u8>> {
        self.current.as_mut().map(|c| read_all(&mut c.ring)).unwrap_or_default()
    }

    /// Decisions lost from the rings read so far, since each was found.
    pub fn lost(&mut self) -> u64 {
        if let Some(now) = self.lost_now() {
            self.lost.read(now);
        }
        self.lost.total()
    }

    fn lost_now(&self) -> Option<u64> {
        let counters = self.current.as_ref()?.lost.as_ref()?;
        Some(pin::counter(counters, self.slot))
    }

    /// Looks for a newer guard's ring. When one is found it becomes current,
    /// and what the old ring still held is returned, in order before anything
    /// the new one holds. While no guard is pinned the old ring is kept:
    /// nothing more comes in.
    pub fn refind(&mut self) -> Option<Vec<Vec<u8>>> {
        let id = pinned_id(self.name)?;
        if self.current.as_ref().is_some_and(|c| c.id == id) {
            return None;
        }
        let opened = open_pinned(self.name)?;
        // The old ring's last reading.
        self.lost();
        // A guard there before the watcher: its losses until now are not the
        // watcher's. One started while it watched: all of them are.
        let base = match self.watching {
            true => 0,
            false => opened.lost.as_ref().map_or(0, |c| pin::counter(c, self.slot)),
        };
        self.lost.switch(base);
        let old = self.current.replace(opened).map(|mut old| read_all(&mut old.ring));
        Some(old.unwrap_or_default())
    }
}

/// What a ring holds now, copied out.
fn read_all(ring: &mut RingBuf<MapData>) -> Vec<Vec<u8>> {
    let mut items = Vec::new();
    while let Some(item) = ring.next() {
        items.push(item.to_vec());
    }
    items
}

/// One decision as the kernel took it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub ts_ns: u64,
    pub task: Task,
    pub hook: &'static str,
    pub verdict: &'static str,
    pub mode: &'static str,
    pub repeats: u32,
    /// The requested alias (request) or the module an allowed file holds.
    pub name: Option<String>,
    /// finit_module: the file's own name and its (device, inode).
    pub file: Option<String>,
    pub dev: Option<String>,
    pub ino: Option<u64>,
    /// A sealed guard's refusal: what was tried.
    pub attempt: Option<String>,
}

pub fn decode(bytes: &[u8]) -> Result<Decision, DecodeError> {
    let need = size_of::<GuardEvent>();
    if bytes.len() < need {
        return Err(DecodeError::Short { what: "guard decision", got: bytes.len(), need });
    }
    // SAFETY: length checked; GuardEvent is repr(C) with integer fields only.
    let ev: GuardEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const GuardEvent) };
    if ev.header.kind != modtrace_common::kind::GUARD {
        return Err(DecodeError::UnknownKind(ev.header.kind));
    }
    let hook = match ev.hook {
        hook::REQUEST => "request",
        hook::READ_FILE => "finit_module",
        hook::LOAD_DATA => "init_module",
        hook::SEAL => "seal",
        other => return Err(DecodeError::UnknownKind(other)),
    };
    let verdict = match ev.decision {
        decision::ALLOWED => "allowed",
        decision::DENIED => "denied",
        decision::WOULD_DENY => "would_deny",
        decision::REFUSED => "refused",
        other => return Err(DecodeError::UnknownKind(other)),
    };
    let attempt = match ev.hook {
        hook::SEAL => Some(attempt(&ev).ok_or(DecodeError::UnknownKind(ev.id))?),
        _ => None,
    };
    let text = |b: &[u8]| Some(cstr(b)).filter(|s| !s.is_empty());
    let is_file = ev.hook == hook::READ_FILE;
    Ok(Decision {
        ts_ns: ev.header.ts_ns,
        task: task(&ev.header),
        hook,
        verdict,
        mode: if ev.mode == mode::ENFORCE { "enforce" } else { "complain" },
        repeats: ev.repeats,
        name: text(&ev.name),
        file: text(&ev.file),
        dev: is_file.then(|| format!("{}:{}", ev.dev >> 20, ev.dev & 0xf_ffff)),
        ino: is_file.then_some(ev.ino),
        attempt,
    })
}

/// A seal refusal in words (modtrace_common::seal says what each field holds).
fn attempt(ev: &GuardEvent) -> Option<String> {
    let name = cstr(&ev.file);
    let (target, detail) = (ev.ino, ev.dev);
    Some(match ev.id {
        op::BPF_BY_ID => {
            let (command, object) = match detail {
                cmd::MAP_GET_FD_BY_ID => ("BPF_MAP_GET_FD_BY_ID", "map"),
                cmd::PROG_GET_FD_BY_ID => ("BPF_PROG_GET_FD_BY_ID", "program"),
                cmd::LINK_GET_FD_BY_ID => ("BPF_LINK_GET_FD_BY_ID", "link"),
                _ => return None,
            };
            format!("bpf({command}) of the guard's {object} id {target}")
        }
        // MAY_WRITE is 2 (include/linux/fs.h).
        op::PIN_OPEN => {
            let how = if detail & 2 != 0 { "for writing" } else { "for reading" };
            format!("opening the guard's pin (inode {target}) {how}")
        }
        op::UNLINK => format!("unpinning {name} (unlink in the guard's pin directory)"),
        op::RMDIR => format!("removing the directory {name} (rmdir)"),
        op::RENAME => format!("renaming {name} (in, out of or above the guard's pin directory)"),
        // MNT_DETACH is 2 (uapi linux/mount.h).
        op::UMOUNT => {
            let lazy = if detail & 2 != 0 { " (lazy)" } else { "" };
            format!("unmounting mount {target}{lazy}: the BPF file system or a mount above it")
        }
        _ => return None,
    })
}

/// A decision with its process described: one line of `trace --json`
/// (kind guard_allowed, guard_denied or guard_would_deny) and one journal entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardRecord {
    pub time: String,
    pub ts_ns: u64,
    pub kind: String,
    /// request (request_module), finit_module (a file) or init_module (memory).
    pub hook: &'static str,
    pub mode: &'static str,
    pub alias: Option<String>,
    pub module: Option<String>,
    pub file: Option<String>,
    pub dev: Option<String>,
    pub ino: Option<u64>,
    /// A sealed guard's refusal: what was tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<String>,
    /// A refused file load by udev: the device waiting for the refused module
    /// (`identify_refused`); None when no device is tied to it by evidence.
    pub device: Option<Device>,
    /// Why: what the policy allowed or did not.
    pub reason: String,
    pub repeats: u32,
    pub process: Process,
}

pub fn record(d: &Decision, describer: &mut dyn Describe) -> GuardRecord {
    let (alias, module) = if d.hook == "request" { (d.name.clone(), None) } else { (None, d.name.clone()) };
    GuardRecord {
        time: describer.wall_time(d.ts_ns),
        ts_ns: d.ts_ns,
        kind: format!("guard_{}", d.verdict),
        hook: d.hook,
        mode: d.mode,
        reason: reason(d),
        alias,
        module,
        file: d.file.clone(),
        dev: d.dev.clone(),
        ino: d.ino,
        attempt: d.attempt.clone(),
        device: None,
        repeats: d.repeats,
        process: describer.process(&d.task),
    }
}

/// A refused (or would-be refused) file load: names its module when the file
/// is the module tree's own file of that name, and, when udev attempted it,
/// the one device under `sys` whose driver that module is and that has none.
pub fn identify_refused(rec: &mut GuardRecord, d: &Decision, index: &dyn ModuleIndex, sys: &Path) {
    if d.hook != "finit_module" || d.verdict == "allowed" || rec.module.is_some() {
        return;
    }
    let (Some(file), Some(dev), Some(ino)) = (&d.file, &d.dev, d.ino) else { return };
    rec.module = refused::module_of_file(index, file, dev, ino);
    if let Some(m) = rec.module.as_deref().filter(|_| is_udev(&d.task)) {
        rec.device = refused::unbound_device(sys, index, m);
    }
}

fn reason(d: &Decision) -> String {
    if d.hook == "seal" {
        return "the guard is sealed until the next boot".to_string();
    }
    let allowed = d.verdict == "allowed";
    match (d.hook, allowed) {
        ("request", true) => format!("{} leads to a module of the profile", d.name.as_deref().unwrap_or("?")),
        ("request", false) => format!("{} resolves to no module of the profile", d.name.as_deref().unwrap_or("?")),
        ("finit_module", true) => {
            format!("the file is {}'s in the kernel's module tree", d.name.as_deref().unwrap_or("?"))
        }
        ("finit_module", false) => "the file is no allowed module's file in the kernel's module tree".to_string(),
        (_, true) => "init_module allowed by --allow-init-module".to_string(),
        (_, false) => "init_module (an image from memory: no file to check)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::decode::encode;
    use modtrace_common::{kind, NAME_LEN};

    fn event(hook_: u32, verdict: u32, name: &str, file: &str) -> Vec<u8> {
        let t = Task {
            pid: 9,
            tgid: 9,
            ppid: Some(1),
            uid: 1000,
            cgroup_id: 5,
            comm: "evil".into(),
            parent_comm: Some("sh".into()),
            args: None,
            cgroup_name: Some("session-2.scope".into()),
            ..Task::default()
        };
        let mut n = [0u8; NAME_LEN];
        n[..name.len()].copy_from_slice(name.as_bytes());
        let mut f = [0u8; NAME_LEN];
        f[..file.len()].copy_from_slice(file.as_bytes());
        let ev = GuardEvent {
            header: encode::header(kind::GUARD, 77, &t),
            hook: hook_,
            decision: verdict,
            mode: mode::ENFORCE,
            repeats: 3,
            dev: (8 << 20) | 1,
            id: 2,
            ino: 1234,
            name: n,
            file: f,
        };
        // SAFETY: repr(C), integers only, explicit padding.
        unsafe { std::slice::from_raw_parts(&ev as *const GuardEvent as *const u8, size_of::<GuardEvent>()) }.to_vec()
    }

    #[test]
    fn losses_count_from_when_each_ring_was_found() {
        let mut t = LostTally::default();
        t.switch(10);
        assert_eq!(t.total(), 0, "lost before the watcher came: not its own");
        t.read(15);
        assert_eq!(t.total(), 5);
        // A stop and a new start: the old ring's last reading stays counted.
        t.read(17);
        t.switch(0);
        assert_eq!(t.total(), 7);
        t.read(3);
        assert_eq!(t.total(), 10);
        t.read(2);
        assert_eq!(t.total(), 10, "a counter never goes back");
    }

    #[test]
    fn a_refused_request_decodes_with_its_requester() {
        let d = decode(&event(hook::REQUEST, decision::DENIED, "net-pf-38", "")).unwrap();
        assert_eq!((d.hook, d.verdict, d.mode, d.repeats), ("request", "denied", "enforce", 3));
        assert_eq!(
            (d.name.as_deref(), d.file.as_deref(), d.dev.as_deref(), d.ino),
            (Some("net-pf-38"), None, None, None)
        );
        assert_eq!(
            (d.task.comm.as_str(), d.task.uid, d.task.cgroup_name.as_deref()),
            ("evil", 1000, Some("session-2.scope"))
        );
    }

    #[test]
    fn a_refused_file_names_the_file_its_device_and_inode() {
        let d = decode(&event(hook::READ_FILE, decision::WOULD_DENY, "", "evil.ko")).unwrap();
        assert_eq!((d.hook, d.verdict), ("finit_module", "would_deny"));
        assert_eq!(
            (d.name.as_deref(), d.file.as_deref(), d.dev.as_deref(), d.ino),
            (None, Some("evil.ko"), Some("8:1"), Some(1234))
        );
        assert!(reason(&d).contains("no allowed module's file"));
    }

    /// The kernel's facts alone.
    struct Plain;

    impl Describe for Plain {
        fn process(&mut self, t: &Task) -> Process {
            Process::from_task(t)
        }

        fn parent(&mut self, _: &Task) -> Option<crate::trace::event::Parent> {
            None
        }

        fn wall_time(&mut self, _: u64) -> String {
            "t".into()
        }
    }

    #[test]
    fn a_refused_udev_file_names_its_module_and_device() {
        use crate::trace::modindex::StaticIndex;
        use crate::trace::refused::tests::{sysfs, WDT};
        use std::os::unix::fs::MetadataExt;
        let tree = tempfile::tempdir().unwrap();
        let file = tree.path().join("i6300esb.ko");
        std::fs::write(&file, b"\x7fELF").unwrap();
        let meta = std::fs::metadata(&file).unwrap();
        let index = StaticIndex::default().alias(WDT, "i6300esb").file("i6300esb", &file);
        let sys = sysfs(&[("0000:00:03.0", WDT, false)]);
        let mut d = decode(&event(hook::READ_FILE, decision::DENIED, "", "i6300esb.ko")).unwrap();
        (d.dev, d.ino) = (Some(format!("{}:{}", libc::major(meta.dev()), libc::minor(meta.dev()))), Some(meta.ino()));
        let identified = |d: &Decision| {
            let mut rec = record(d, &mut Plain);
            identify_refused(&mut rec, d, &index, sys.path());
            (rec.module, rec.device.map(|dev| (dev.devpath, dev.ids)))
        };
        // Not udev ("evil"): the module, but no device.
        assert_eq!(identified(&d), (Some("i6300esb".to_string()), None));
        d.task.comm = "(udev-worker)".into();
        let device = Some(("/devices/pci0000:00/0000:00:03.0".to_string(), Some("8086:25ab".to_string())));
        assert_eq!(identified(&d), (Some("i6300esb".to_string()), device));
        d.ino = Some(meta.ino() + 1);
        assert_eq!(identified(&d), (None, None), "another file of that name names nothing");
    }

    #[test]
    fn a_seal_refusal_decodes_with_what_was_tried() {
        let mut bytes = event(hook::SEAL, decision::REFUSED, "", "GUARD_CONFIG");
        let field = |name: usize| size_of::<modtrace_common::Header>() + name;
        // id (the op) at +20, dev (the detail) at +16, ino (the target) at +24.
        bytes[field(20)..field(24)].copy_from_slice(&op::UNLINK.to_ne_bytes());
        let d = decode(&bytes).unwrap();
        assert_eq!((d.hook, d.verdict), ("seal", "refused"));
        assert_eq!(d.attempt.as_deref(), Some("unpinning GUARD_CONFIG (unlink in the guard's pin directory)"));
        assert_eq!(reason(&d), "the guard is sealed until the next boot");
        bytes[field(20)..field(24)].copy_from_slice(&op::BPF_BY_ID.to_ne_bytes());
        bytes[field(16)..field(20)].copy_from_slice(&cmd::MAP_GET_FD_BY_ID.to_ne_bytes());
        let d = decode(&bytes).unwrap();
        assert_eq!(d.attempt.as_deref(), Some("bpf(BPF_MAP_GET_FD_BY_ID) of the guard's map id 1234"));
        bytes[field(20)..field(24)].copy_from_slice(&99u32.to_ne_bytes());
        assert!(decode(&bytes).is_err(), "an unknown operation");
    }

    #[test]
    fn short_or_foreign_bytes_are_refused() {
        let bytes = event(hook::LOAD_DATA, decision::ALLOWED, "", "");
        for len in [0, 10, bytes.len() - 1] {
            assert!(decode(&bytes[..len]).is_err());
        }
        let mut bad = bytes.clone();
        bad[0..4].copy_from_slice(&kind::REQUEST.to_ne_bytes());
        assert_eq!(decode(&bad), Err(DecodeError::UnknownKind(kind::REQUEST)));
        let mut bad_verdict = bytes;
        let off = size_of::<modtrace_common::Header>() + 4;
        bad_verdict[off..off + 4].copy_from_slice(&9u32.to_ne_bytes());
        assert!(decode(&bad_verdict).is_err());
    }
}
