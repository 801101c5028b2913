//! Ring-buffer bytes -> `Event`. Bytes from the kernel are checked for length and
//! kind and read with `read_unaligned`; nothing is transmuted.

use std::mem::size_of;

use modtrace_common::{
    self as wire, ARGS_LEN, CGROUP_DEPTH, CGROUP_NAME_LEN, Header, LoadEvent, ModuleEvent, RequestEvent, flags, kind,
    syscall,
};
use thiserror::Error;

use crate::trace::event::{Body, Event, Syscall, Task};
use crate::trace::scope::Namespaces;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("event too short: {got} bytes, a {what} needs {need}")]
    Short { what: &'static str, got: usize, need: usize },
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
    #[error("unknown syscall {0} in a load event")]
    UnknownSyscall(u32),
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let header: Header = read(bytes, "header")?;
    let task = task(&header);
    let body = match header.kind {
        kind::REQUEST => request(read(bytes, "request")?),
        kind::LOAD => load(read(bytes, "load")?)?,
        kind::LOADED => {
            let ev: ModuleEvent = read(bytes, "loaded")?;
            Body::Loaded { module: cstr(&ev.name), taints: ev.taints }
        }
        kind::UNLOADED => {
            let ev: ModuleEvent = read(bytes, "unloaded")?;
            Body::Unloaded { module: cstr(&ev.name) }
        }
        other => return Err(DecodeError::UnknownKind(other)),
    };
    Ok(Event { ts_ns: header.ts_ns, task, body })
}

/// Reads a `T` from the front of `bytes` after checking the length.
fn read<T: Copy>(bytes: &[u8], what: &'static str) -> Result<T, DecodeError> {
    let need = size_of::<T>();
    if bytes.len() < need {
        return Err(DecodeError::Short { what, got: bytes.len(), need });
    }
    // SAFETY: length checked above; T is a repr(C) integer-only wire struct, so
    // every bit pattern is a valid value.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const T) })
}

pub fn task(h: &Header) -> Task {
    let has = |flag: u32| h.flags & flag != 0;
    let parent_known = has(flags::PARENT_KNOWN);
    let cgroup_known = has(flags::CGROUP_NAME_KNOWN);
    Task {
        pid: h.task.pid,
        tgid: h.task.tgid,
        ppid: parent_known.then_some(h.task.ppid),
        uid: h.task.uid,
        euid: has(flags::EUID_KNOWN).then_some(h.task.euid),
        loginuid: has(flags::AUDIT_KNOWN).then_some(h.task.loginuid),
        sessionid: has(flags::AUDIT_KNOWN).then_some(h.task.sessionid),
        start_time_ns: has(flags::START_TIME_KNOWN).then_some(h.task.start_time),
        is_kthread: has(flags::KTHREAD_KNOWN).then(|| has(flags::KTHREAD)),
        parent_is_kthread: has(flags::PARENT_KTHREAD_KNOWN).then(|| has(flags::PARENT_KTHREAD)),
        cgroup_id: h.task.cgroup_id,
        comm: cstr(&h.task.comm),
        parent_comm: parent_known.then(|| cstr(&h.task.parent_comm)),
        args: has(flags::ARGS_KNOWN).then(|| args(&h.args, h.args_len)),
        args_cut: has(flags::ARGS_KNOWN) && h.args_len as usize > ARGS_LEN,
        cgroup_name: cgroup_known.then(|| cstr(&h.cgroup[0])),
        cgroup_path: cgroup_known.then(|| cgroup_path(&h.cgroup, h.flags)).flatten(),
        namespaces: has(flags::NS_KNOWN).then_some(Namespaces { pid: h.task.pid_ns, mnt: h.task.mnt_ns }),
    }
}

/// The cgroup path from its names, leaf first, up to the first empty slot; "/"
/// for the root. None when the kernel cut the path or one of its names.
fn cgroup_path(names: &[[u8; CGROUP_NAME_LEN]; CGROUP_DEPTH], flag_bits: u32) -> Option<String> {
    if flag_bits & (flags::CGROUP_PATH_CUT | flags::CGROUP_NAME_CUT) != 0 {
        return None;
    }
    let parts: Vec<String> = names.iter().map(|n| cstr(n)).take_while(|n| !n.is_empty()).collect();
    if parts.iter().any(|p| p.contains('/')) {
        return None; // no kernfs name holds a slash: the record is damaged
    }
    if parts.is_empty() {
        return Some("/".to_string());
    }
    Some(parts.iter().rev().fold(String::new(), |path, p| format!("{path}/{p}")))
}

/// The argv block cut at the area's real length; a final argument cut by the
/// block's size is kept as far as it goes.
fn args(block: &[u8; ARGS_LEN], len: u32) -> Vec<String> {
    let used = &block[..(len as usize).min(ARGS_LEN)];
    let used = used.strip_suffix(&[0]).unwrap_or(used);
    used.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}

fn request(ev: RequestEvent) -> Body {
    Body::Request {
        alias: cstr(&ev.name),
        wait: ev.wait != 0,
        call_site: ev.call_site,
        call_site_name: cstr(&ev.call_site_name),
        repeats: ev.repeats,
    }
}

fn load(ev: LoadEvent) -> Result<Body, DecodeError> {
    let (sys, fd) = match ev.syscall {
        syscall::FINIT_MODULE => (Syscall::FinitModule, Some(ev.fd)),
        syscall::INIT_MODULE => (Syscall::InitModule, None),
        other => return Err(DecodeError::UnknownSyscall(other)),
    };
    Ok(Body::Load {
        syscall: sys,
        fd,
        flags: ev.flags,
        image_len: ev.image_len,
        params: cstr(&ev.params),
        ret: ev.ret,
        repeats: ev.repeats,
    })
}

/// A NUL-terminated (or full) byte array as text; invalid UTF-8 is replaced, not
/// trusted.
pub fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Encodes events the way the kernel does; for tests and recorded sequences.
pub mod encode {
    use super::*;

    fn as_bytes<T: Copy>(v: &T) -> Vec<u8> {
        // SAFETY: repr(C) integer-only struct with explicit padding: no uninit bytes.
        unsafe { std::slice::from_raw_parts(v as *const T as *const u8, size_of::<T>()) }.to_vec()
    }

    fn fill<const N: usize>(s: &str) -> [u8; N] {
        let mut out = [0u8; N];
        let n = s.len().min(N - 1);
        out[..n].copy_from_slice(&s.as_bytes()[..n]);
        out
    }

    /// The header's cgroup names, leaf first, and the flags saying what was cut.
    fn cgroup_field(t: &Task) -> ([[u8; CGROUP_NAME_LEN]; CGROUP_DEPTH], u32) {
        let mut cgroup = [[0u8; CGROUP_NAME_LEN]; CGROUP_DEPTH];
        let mut bits = 0;
        match t.cgroup_path.as_deref() {
            Some(path) => {
                let names: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).rev().collect();
                if names.len() > CGROUP_DEPTH {
                    bits |= flags::CGROUP_PATH_CUT;
                }
                for (slot, name) in cgroup.iter_mut().zip(&names) {
                    if name.len() >= CGROUP_NAME_LEN - 1 {
                        bits |= flags::CGROUP_NAME_CUT;
                    }
                    *slot = fill(name);
                }
            }
            // Only the leaf's name is known: the path above it is cut.
            None if t.cgroup_name.is_some() => {
                cgroup[0] = fill(t.cgroup_name.as_deref().unwrap_or(""));
                bits |= flags::CGROUP_PATH_CUT;
            }
            None => {}
        }
        (cgroup, bits)
    }

    pub fn header(kind: u32, ts_ns: u64, t: &Task) -> Header {
        let mut args = [0u8; ARGS_LEN];
        let mut args_len = 0;
        if let Some(argv) = &t.args {
            let joined: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
            let n = joined.len().min(ARGS_LEN);
            args[..n].copy_from_slice(&joined[..n]);
            args_len = joined.len() as u32;
        }
        let flag = |known: bool, bit: u32| if known { bit } else { 0 };
        let mut bits = flag(t.ppid.is_some(), flags::PARENT_KNOWN)
            | flag(t.args.is_some(), flags::ARGS_KNOWN)
            | flag(t.cgroup_name.is_some() || t.cgroup_path.is_some(), flags::CGROUP_NAME_KNOWN)
            | flag(t.euid.is_some(), flags::EUID_KNOWN)
            | flag(t.loginuid.is_some() && t.sessionid.is_some(), flags::AUDIT_KNOWN)
            | flag(t.start_time_ns.is_some(), flags::START_TIME_KNOWN)
            | flag(t.is_kthread.is_some(), flags::KTHREAD_KNOWN)
            | flag(t.is_kthread == Some(true), flags::KTHREAD)
            | flag(t.parent_is_kthread.is_some(), flags::PARENT_KTHREAD_KNOWN)
            | flag(t.parent_is_kthread == Some(true), flags::PARENT_KTHREAD)
            | flag(t.namespaces.is_some(), flags::NS_KNOWN);
        let (cgroup, cut) = cgroup_field(t);
        bits |= cut;
        Header {
            kind,
            flags: bits,
            cgroup,
            ts_ns,
            args_len,
            _pad: 0,
            args,
            task: wire::Task {
                pid: t.pid,
                tgid: t.tgid,
                ppid: t.ppid.unwrap_or(0),
                uid: t.uid,
                cgroup_id: t.cgroup_id,
                comm: fill(&t.comm),
                parent_comm: fill(t.parent_comm.as_deref().unwrap_or("")),
                euid: t.euid.unwrap_or(0),
                loginuid: t.loginuid.unwrap_or(0),
                sessionid: t.sessionid.unwrap_or(0),
                _pad: 0,
                start_time: t.start_time_ns.unwrap_or(0),
                pid_ns: t.namespaces.map_or(0, |n| n.pid),
                mnt_ns: t.namespaces.map_or(0, |n| n.mnt),
            },
        }
    }

    pub fn event(ev: &Event) -> Vec<u8> {
        match &ev.body {
            Body::Request { alias, wait, call_site, call_site_name, repeats } => as_bytes(&RequestEvent {
                header: header(kind::REQUEST, ev.ts_ns, &ev.task),
                call_site: *call_site,
                wait: *wait as u32,
                repeats: *repeats,
                name: fill(alias),
                call_site_name: fill(call_site_name),
            }),
            Body::Load { syscall: sys, fd, flags, image_len, params, ret, repeats } => as_bytes(&LoadEvent {
                header: header(kind::LOAD, ev.ts_ns, &ev.task),
                syscall: match sys {
                    Syscall::FinitModule => syscall::FINIT_MODULE,
                    Syscall::InitModule => syscall::INIT_MODULE,
                },
                fd: fd.unwrap_or(-1),
                flags: *flags,
                repeats: *repeats,
                image_len: *image_len,
                ret: *ret,
                params: fill(params),
            }),
            Body::Loaded { module, taints } => module_event(kind::LOADED, ev, module, *taints),
            Body::Unloaded { module } => module_event(kind::UNLOADED, ev, module, 0),
        }
    }

    fn module_event(k: u32, ev: &Event, name: &str, taints: u32) -> Vec<u8> {
        as_bytes(&ModuleEvent {
            header: header(k, ev.ts_ns, &ev.task),
            taints,
            _pad: 0,
            name: fill(name),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Task {
        Task {
            pid: 42,
            tgid: 41,
            ppid: Some(7),
            uid: 0,
            cgroup_id: 1234,
            comm: "modprobe".into(),
            parent_comm: Some("kworker/u4:1".into()),
            args: Some(vec!["/sbin/modprobe".into(), "-q".into(), "--".into(), "net-pf-5".into()]),
            args_cut: false,
            cgroup_name: Some("example.service".into()),
            cgroup_path: Some("/system.slice/example.service".into()),
            euid: Some(0),
            loginuid: Some(u32::MAX),
            sessionid: Some(u32::MAX),
            start_time_ns: Some(1_234_567),
            is_kthread: Some(false),
            parent_is_kthread: Some(true),
            namespaces: Some(Namespaces { pid: 4_026_531_836, mnt: 4_026_531_841 }),
        }
    }

    fn samples() -> Vec<Event> {
        let t = task();
        vec![
            Event {
                ts_ns: 1,
                task: t.clone(),
                body: Body::Request {
                    alias: "net-pf-5".into(),
                    wait: true,
                    call_site: 0xffff_ffff_8100_0000,
                    call_site_name: "__sock_create+0x1a0/0x2e0".into(),
                    repeats: 3,
                },
            },
            Event {
                ts_ns: 2,
                task: t.clone(),
                body: Body::Load {
                    syscall: Syscall::FinitModule,
                    fd: Some(3),
                    flags: 4,
                    image_len: 0,
                    params: "debug=1".into(),
                    ret: -1,
                    repeats: 0,
                },
            },
            Event { ts_ns: 3, task: t.clone(), body: Body::Loaded { module: "appletalk".into(), taints: 0 } },
            Event { ts_ns: 4, task: t, body: Body::Unloaded { module: "loop".into() } },
        ]
    }

    #[test]
    fn every_kind_round_trips() {
        for ev in samples() {
            assert_eq!(decode(&encode::event(&ev)).unwrap(), ev);
        }
    }

    #[test]
    fn init_module_has_no_fd_and_unknown_parent_stays_unknown() {
        let mut ev = samples().remove(1);
        ev.task.ppid = None;
        ev.task.parent_comm = None;
        ev.task.args = None;
        ev.task.cgroup_name = None;
        ev.task.cgroup_path = None;
        ev.task.euid = None;
        ev.task.loginuid = None;
        ev.task.sessionid = None;
        ev.task.start_time_ns = None;
        ev.task.is_kthread = None;
        ev.task.parent_is_kthread = None;
        ev.task.namespaces = None;
        if let Body::Load { syscall, fd, .. } = &mut ev.body {
            *syscall = Syscall::InitModule;
            *fd = None;
        }
        let back = decode(&encode::event(&ev)).unwrap();
        assert_eq!(back.task.ppid, None);
        assert_eq!(back.task.parent_comm, None);
        assert_eq!(back, ev);
    }

    #[test]
    fn argv_is_cut_at_its_length_and_a_long_one_at_the_block() {
        let mut t = task();
        t.args = None;
        let ev = Event { ts_ns: 1, task: t.clone(), body: Body::Unloaded { module: "x".into() } };
        assert_eq!(decode(&encode::event(&ev)).unwrap().task.args, None);

        let long: Vec<String> = (0..40).map(|i| format!("arg{i:02}")).collect();
        t.args = Some(long.clone());
        let ev = Event { ts_ns: 1, task: t, body: Body::Unloaded { module: "x".into() } };
        let back = decode(&encode::event(&ev)).unwrap().task.args.unwrap();
        // 6 bytes an argument: 21 whole ones fit in 128 bytes, then "ar" of the 22nd.
        assert_eq!(back[..21], long[..21]);
        assert_eq!(back[21], "ar");
        assert_eq!(back.len(), 22);
    }

    fn through_the_wire(t: Task) -> Task {
        decode(&encode::event(&Event { ts_ns: 1, task: t, body: Body::Unloaded { module: "x".into() } })).unwrap().task
    }

    #[test]
    fn a_long_argv_is_flagged_cut_and_a_short_one_is_not() {
        let mut t = task();
        assert!(!through_the_wire(t.clone()).args_cut);
        // 116 bytes of argv: the block holds it whole.
        t.args = Some(vec!["modprobe".into(), "-q".into(), "--".into(), "a".repeat(100)]);
        assert!(!through_the_wire(t.clone()).args_cut);
        t.args = Some(vec!["modprobe".into(), "-q".into(), "--".into(), "a".repeat(120)]);
        let back = through_the_wire(t);
        assert!(back.args_cut);
        assert_eq!(back.args.unwrap()[3].len(), ARGS_LEN - 15);
    }

    #[test]
    fn identity_fields_are_kept_and_each_unknown_stays_unknown() {
        let t = Task { uid: 1000, euid: Some(0), loginuid: Some(1000), sessionid: Some(3), ..task() };
        let back = through_the_wire(t.clone());
        assert_eq!((back.uid, back.euid, back.loginuid, back.sessionid), (1000, Some(0), Some(1000), Some(3)));
        assert_eq!((back.start_time_ns, back.is_kthread, back.parent_is_kthread), (Some(1_234_567), Some(false), Some(true)));
        let mut bytes = encode::event(&Event { ts_ns: 1, task: t, body: Body::Unloaded { module: "x".into() } });
        // The same values with their KNOWN flags cleared read as unknown.
        let known = flags::EUID_KNOWN | flags::AUDIT_KNOWN | flags::START_TIME_KNOWN | flags::PARENT_KTHREAD_KNOWN;
        let bits = u32::from_ne_bytes(bytes[4..8].try_into().unwrap()) & !known;
        bytes[4..8].copy_from_slice(&bits.to_ne_bytes());
        let back = decode(&bytes).unwrap().task;
        assert_eq!((back.euid, back.loginuid, back.sessionid, back.start_time_ns), (None, None, None, None));
        assert_eq!((back.is_kthread, back.parent_is_kthread), (Some(false), None));
    }

    /// The namespaces' inode numbers sit at the end of the task, the last
    /// bytes a short record would lose; without NS_KNOWN they are unknown.
    #[test]
    fn namespaces_are_read_with_their_flag_and_never_from_a_short_record() {
        let ns = Namespaces { pid: 4_026_532_290, mnt: 4_026_532_288 };
        let with_ns = Task { namespaces: Some(ns), ..task() };
        let ev = Event { ts_ns: 1, task: with_ns, body: Body::Unloaded { module: "x".into() } };
        let mut bytes = encode::event(&ev);
        assert_eq!(decode(&bytes).unwrap().task.namespaces, Some(ns));
        let end = core::mem::offset_of!(Header, task) + core::mem::offset_of!(wire::Task, mnt_ns) + 4;
        assert!(matches!(decode(&bytes[..end - 1]), Err(DecodeError::Short { what: "header", .. })));
        let bits = u32::from_ne_bytes(bytes[4..8].try_into().unwrap()) & !flags::NS_KNOWN;
        bytes[4..8].copy_from_slice(&bits.to_ne_bytes());
        assert_eq!(decode(&bytes).unwrap().task.namespaces, None);
        assert_eq!(through_the_wire(Task { namespaces: None, ..task() }).namespaces, None);
    }

    #[test]
    fn the_cgroup_path_is_rebuilt_from_its_names_and_a_cut_one_is_none() {
        let user = "/user.slice/user-1000.slice/user@1000.service/app.slice/lightdm.service";
        let back = through_the_wire(Task { cgroup_path: Some(user.into()), cgroup_name: None, ..task() });
        assert_eq!(back.cgroup_path.as_deref(), Some(user));
        assert_eq!(back.cgroup_name.as_deref(), Some("lightdm.service"));
        let root = through_the_wire(Task { cgroup_path: Some("/".into()), cgroup_name: None, ..task() });
        assert_eq!(root.cgroup_path.as_deref(), Some("/"));

        // Seven levels: the kernel keeps six, the top is missing.
        let deep = "/machine.slice/systemd-nspawn@box.service/payload/a.slice/b.slice/system.slice/y.service";
        let back = through_the_wire(Task { cgroup_path: Some(deep.into()), cgroup_name: None, ..task() });
        assert_eq!(back.cgroup_path, None);
        assert_eq!(back.cgroup_name.as_deref(), Some("y.service"));
        // A name that filled its slot may be cut: the path is not trusted either.
        let long = format!("/system.slice/{}.service", "d".repeat(CGROUP_NAME_LEN));
        assert_eq!(through_the_wire(Task { cgroup_path: Some(long), ..task() }).cgroup_path, None);
        // Only a leaf name known (no path): the name stays, the path is unknown.
        let leaf = through_the_wire(Task { cgroup_path: None, ..task() });
        assert_eq!((leaf.cgroup_name.as_deref(), leaf.cgroup_path), (Some("example.service"), None));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        for ev in samples() {
            let bytes = encode::event(&ev);
            for len in 0..bytes.len() {
                assert!(decode(&bytes[..len]).is_err(), "decoded {len} of {} bytes", bytes.len());
            }
        }
    }

    #[test]
    fn unknown_kind_and_syscall_are_named() {
        let mut bytes = encode::event(&samples()[0]);
        bytes[0..4].copy_from_slice(&99u32.to_ne_bytes());
        assert_eq!(decode(&bytes), Err(DecodeError::UnknownKind(99)));

        let mut bytes = encode::event(&samples()[1]);
        let off = size_of::<Header>();
        bytes[off..off + 4].copy_from_slice(&7u32.to_ne_bytes());
        assert_eq!(decode(&bytes), Err(DecodeError::UnknownSyscall(7)));
    }

    #[test]
    fn garbage_never_panics() {
        // A deterministic pseudo-random stream, so a failure can be replayed.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..2000 {
            let len = (round % 300) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn names_without_terminator_and_invalid_utf8_are_kept_safely() {
        assert_eq!(cstr(b"abc"), "abc");
        assert_eq!(cstr(b"ab\0cd"), "ab");
        assert_eq!(cstr(&[0x66, 0xff, 0]), "f\u{fffd}");
    }
}
