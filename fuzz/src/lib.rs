//! The checks each fuzz target runs on one input: no panic, and where it is
//! cheap a property of the parser (what it decodes encodes back to the same
//! thing; what it parses prints back to the same thing). The same functions
//! replay the seeds and every regression input in `cargo test` on stable.

use std::path::Path;

pub mod kernel_elf;

use modtrace::trace::decode::{decode as decode_record, encode};
use modtrace::profile::store;
use modtrace::needs::sitepolicy::SitePolicy;
use modtrace::trace::snapshot::{parse_proc_modules, Snapshot};

/// A ring-buffer record: whatever decodes encodes to bytes that decode to the
/// same event, for events the encoder can write: every text shorter than its
/// array and an argv that fits its block (the kernel's string reads always end
/// in a NUL; a full unterminated array, which decode keeps whole, is written
/// back cut by one byte, and a replaced invalid byte grows from 1 to 3).
pub fn decode(data: &[u8]) {
    let Ok(event) = decode_record(data) else { return };
    if !encodable(&event) {
        return;
    }
    let again = decode_record(&encode::event(&event)).expect("an encoded event decodes");
    assert_eq!(again, event, "decode(encode(decode(x))) != decode(x)");
}

fn encodable(event: &modtrace::trace::event::Event) -> bool {
    use modtrace::trace::event::Body;
    use modtrace_common::{ARGS_LEN, CGROUP_NAME_LEN, COMM_LEN, NAME_LEN, PARAMS_LEN, SYMBOL_LEN};
    let fits = |text: &str, len: usize| text.len() < len;
    let t = &event.task;
    let body = match &event.body {
        Body::Request { alias, call_site_name, .. } => fits(alias, NAME_LEN) && fits(call_site_name, SYMBOL_LEN),
        Body::Load { params, .. } => fits(params, PARAMS_LEN),
        Body::Loaded { module, .. } | Body::Unloaded { module } => fits(module, NAME_LEN),
    };
    // The argv block: arguments and their NULs; a cut argv (longer than the
    // block) is one whose last, non-empty argument lost its NUL to the block's end.
    let argv = t.args.as_ref().is_none_or(|a| {
        let used: usize = a.iter().map(|a| a.len() + 1).sum();
        match t.args_cut {
            false => used <= ARGS_LEN,
            true => used == ARGS_LEN + 1 && a.last().is_some_and(|l| !l.is_empty()),
        }
    });
    // A path's names: the encoder marks one of CGROUP_NAME_LEN - 1 bytes or
    // more as cut, as the kernel side does.
    let path = t.cgroup_path.as_deref().is_none_or(|p| p.split('/').all(|n| fits(n, CGROUP_NAME_LEN - 1)));
    body && argv
        && path
        && fits(&t.comm, COMM_LEN)
        && t.parent_comm.as_deref().is_none_or(|c| fits(c, COMM_LEN))
        && t.cgroup_name.as_deref().is_none_or(|c| fits(c, CGROUP_NAME_LEN))
}

/// A profile file: what loads, saved and loaded again, is the same profile.
pub fn profile(data: &[u8]) {
    let path = Path::new("/fuzz/profile.json");
    let Ok(profile) = store::parse(path, data.to_vec()) else { return };
    let printed = profile.to_json();
    let again = store::parse(path, printed.clone().into_bytes())
        .unwrap_or_else(|e| panic!("a saved profile does not load: {e}\n{printed}"));
    assert_eq!(again, profile, "parse(print(profile)) != profile");
}

/// /proc/modules, lsmod output and snapshot files: what parses as a snapshot
/// prints as text that parses to the same modules.
pub fn proc_modules(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = parse_proc_modules(text);
    let Ok(snap) = Snapshot::from_text(text) else { return };
    let printed = snap.to_text();
    let again =
        Snapshot::from_text(&printed).unwrap_or_else(|e| panic!("a printed snapshot does not parse: {e}\n{printed}"));
    assert_eq!(again.modules, snap.modules, "from_text(to_text(s)) != s\n{printed}");
}

/// A modprobe.d file (and the same bytes as a kernel command line): every rule
/// found is found again under its name, with '-' or '_', on a line the file has.
pub fn modprobe_d(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut policy = SitePolicy::default();
    policy.add_file(Path::new("/etc/modprobe.d/fuzz.conf"), text);
    policy.add_cmdline(Path::new("/proc/cmdline"), text);
    let lines = text.lines().count();
    for (name, rule) in policy.install.iter().chain(&policy.blacklist).chain(&policy.kernel) {
        let by_alias = policy.refusal(name, true);
        assert_eq!(by_alias, policy.refusal(&name.replace('_', "-"), true), "{name}: '-' and '_' differ");
        if rule.refuses(true) {
            assert!(by_alias.is_some(), "{name}: a refusing rule is not found");
        }
        let at = match rule {
            modtrace::needs::sitepolicy::Refusal::Install { at, .. }
            | modtrace::needs::sitepolicy::Refusal::Blacklist { at }
            | modtrace::needs::sitepolicy::Refusal::Kernel { at } => at,
        };
        assert!(at.line <= lines, "{name}: line {} of a {lines}-line file", at.line);
    }
}

/// An init_module image: a name the guard's parse gives is the one the kernel
/// (6.1/6.12 and 6.13+ alike) would load the module under, or the kernel
/// rejects the image; the guard never names an image whose name a relocation
/// changes.
pub fn module_name(data: &[u8]) {
    use kernel_elf::{kernel_name, Era, KernelName};
    use modtrace_common::{elf, NAME_LEN};
    const NAME_OFF: u64 = 24;
    let mut out = [0u8; NAME_LEN];
    if elf::module_name(data, NAME_OFF, &mut out).is_err() {
        return;
    }
    let end = out.iter().position(|&b| b == 0).expect("a NUL-terminated name");
    assert!(out[end..].iter().all(|&b| b == 0), "the name is NUL-padded");
    for era in [Era::FirstAllocated, Era::Unique] {
        match kernel_name(data, era, NAME_OFF) {
            KernelName::Rejected => {}
            KernelName::Named(name) => assert_eq!(name, &out[..end], "{era:?}: the kernel names it otherwise"),
            KernelName::Relocated => panic!("{era:?}: named though a relocation rewrites the name"),
        }
    }
}

/// Records like the kernel's, one of each kind, encoded by modtrace's own
/// encoder so that they follow the wire structs as they are today: the seed
/// corpus of the decode target (written out by the `seeds` program).
pub fn decode_seeds() -> Vec<Vec<u8>> {
    use modtrace::trace::event::Body;
    use modtrace_common::{kind, syscall, LoadEvent, ModuleEvent, RequestEvent};
    use std::mem::{offset_of, size_of};

    let blank = |k: u32, size: usize| {
        let mut bytes = vec![0u8; size];
        bytes[..4].copy_from_slice(&k.to_ne_bytes());
        bytes
    };
    let mut load = blank(kind::LOAD, size_of::<LoadEvent>());
    let at = offset_of!(LoadEvent, syscall);
    load[at..at + 4].copy_from_slice(&syscall::FINIT_MODULE.to_ne_bytes());
    let records = [
        blank(kind::REQUEST, size_of::<RequestEvent>()),
        load,
        blank(kind::LOADED, size_of::<ModuleEvent>()),
        blank(kind::UNLOADED, size_of::<ModuleEvent>()),
    ];
    let mut seeds = Vec::new();
    for bytes in records {
        let mut event = decode_record(&bytes).expect("a blank record of a known kind decodes");
        seeds.push(encode::event(&event));
        let t = &mut event.task;
        (t.pid, t.tgid, t.ppid, t.uid, t.cgroup_id) = (412, 412, Some(388), 0, 7021);
        t.comm = "modprobe".into();
        t.parent_comm = Some("kworker/u4:2".into());
        t.args = Some(["/sbin/modprobe", "-q", "--", "net-pf-5"].map(String::from).to_vec());
        t.cgroup_name = Some("systemd-udevd.service".into());
        match &mut event.body {
            Body::Request { alias, wait, call_site, call_site_name, repeats } => {
                (*alias, *wait, *call_site, *repeats) = ("net-pf-5".into(), true, 0xffff_ffff_8132_4a10, 41);
                *call_site_name = "__sock_create+0x1a0/0x2e0".into();
            }
            Body::Load { fd, params, ret, repeats, .. } => {
                (*fd, *params, *ret, *repeats) = (Some(3), "max_loop=8".into(), -17, 2)
            }
            Body::Loaded { module, taints } => (*module, *taints) = ("appletalk".into(), 0x1000),
            Body::Unloaded { module } => *module = "loop".into(),
        }
        seeds.push(encode::event(&event));
    }
    seeds
}

/// The committed modtrace-profile/1 seed, migrated and saved as the current
/// schema: the profile target's seed in today's format.
pub fn profile_seed() -> String {
    let v1 = include_bytes!("../seeds/profile/v1.json");
    store::parse(Path::new("v1.json"), v1.to_vec()).expect("the /1 seed loads").to_json()
}
