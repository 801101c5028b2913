//! Tracing from the initramfs on: `modtrace learn --early` (run by the
//! initramfs, before its first module load) attaches the probes and pins their
//! links and rings under EARLY_DIR, then exits. The kernel keeps tracing into
//! the rings across switch_root (the initramfs moves /sys, bpffs included, into
//! the new root). The main system's learner then attaches its own probes, takes
//! the early rings over (`take`), detaches the early probes, and handles
//! what they saw before its own events: nothing loads unseen between the
//! initramfs and the learner.
//!
//! Only the same build's pins are taken over: the ring records' layout is this
//! build's. A stale initramfs (an older modtrace) is released unread and said so.

use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use aya::maps::{Map, MapData, PerCpuArray, RingBuf};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::TracePoint;

use super::{Losses, ProbeError, Probes, Skipped, folds};

/// Where the early probes are pinned, one directory per build.
pub const EARLY_DIR: &str = "/sys/fs/bpf/modtrace/early";
/// The pinned maps: the three rings, the drop counters, and what the learner
/// needs to count the repeats the early probes folded and no record carried.
const MAPS: [&str; 6] = ["LOADS", "FAILURES", "REQUESTS", "DROPS", "FOLD_LEDGER", "FAIL_CACHE"];
/// Each pinned program's name: this and the program's.
const PROGRAM_PIN: &str = "prog-";

/// This build's probes, as a directory name: a hash of the eBPF object.
pub fn build_id() -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    super::object().hash(&mut h);
    format!("{:016x}", h.finish())
}

fn pin_error(what: &str, e: impl std::fmt::Display) -> ProbeError {
    ProbeError::Load(format!("pinning {what} under {EARLY_DIR}: {e}"))
}

/// Pins the attached probes' links and maps, so that they outlive this process.
/// An earlier early tracer of this boot is replaced.
pub fn pin(probes: &mut Probes) -> Result<PathBuf, ProbeError> {
    bpffs_mounted()?;
    let dir = Path::new(EARLY_DIR).join(build_id());
    release_all();
    fs::create_dir_all(&dir).map_err(|e| pin_error("the directory", e))?;
    pin_into(probes, &dir).inspect_err(|_| release_all())?;
    Ok(dir)
}

fn pin_into(probes: &mut Probes, dir: &Path) -> Result<(), ProbeError> {
    for name in MAPS {
        let map = probes.ebpf.map(name).ok_or_else(|| pin_error(name, "no such map"))?;
        map.pin(dir.join(name)).map_err(|e| pin_error(name, e))?;
    }
    for (i, (prog, id)) in std::mem::take(&mut probes.links).into_iter().enumerate() {
        let program: &mut TracePoint = probes
            .ebpf
            .program_mut(prog)
            .ok_or_else(|| pin_error(prog, "no such program"))?
            .try_into()
            .map_err(|e| pin_error(prog, e))?;
        // Pinned too, so the learner can read the runs the kernel skipped.
        let program_pin = dir.join(format!("{PROGRAM_PIN}{prog}"));
        if !program_pin.exists() {
            program.pin(&program_pin).map_err(|e| pin_error(prog, e))?;
        }
        let link = program.take_link(id).map_err(|e| pin_error(prog, e))?;
        let link = FdLink::try_from(link).map_err(|e| pin_error(prog, format!("{e} (the kernel has no BPF perf links)")))?;
        link.pin(dir.join(format!("link-{i}"))).map_err(|e| pin_error(prog, e))?;
    }
    Ok(())
}

fn bpffs_mounted() -> Result<(), ProbeError> {
    if super::preflight::is_bpffs(Path::new("/sys/fs/bpf")) {
        Ok(())
    } else {
        Err(ProbeError::Load("/sys/fs/bpf is not a BPF file system; mount it: mount -t bpf bpf /sys/fs/bpf".into()))
    }
}

/// Removes every early pin: their probes detach once nothing holds them.
pub fn release_all() {
    let _ = fs::remove_dir_all(EARLY_DIR);
}

/// What the early probes left for the learner.
#[derive(Debug, Default)]
pub struct Taken {
    /// The records the early probes kept, undecoded (the trace stage decodes
    /// them), per ring: loads, failures, requests.
    pub records: [Vec<Vec<u8>>; 3],
    pub losses: Losses,
    /// Pins of another build, released unread (a stale initramfs).
    pub foreign: Vec<String>,
    /// This build's pins were there and taken over.
    pub own: bool,
}

/// Takes over the early probes' rings: detaches them, and reads everything
/// they kept. None when no early probes are pinned.
pub fn take() -> Option<Taken> {
    let entries = fs::read_dir(EARLY_DIR).ok()?;
    let own = build_id();
    let mut taken = Taken::default();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == own {
            taken.own = true;
            take_dir(&entry.path(), &mut taken);
        } else {
            taken.foreign.push(name);
        }
    }
    release_all();
    (taken.own || !taken.foreign.is_empty()).then_some(taken)
}

fn take_dir(dir: &Path, taken: &mut Taken) {
    let open = |name: &str| MapData::from_pin(dir.join(name)).ok();
    let rings: Vec<Option<RingBuf<MapData>>> =
        MAPS[..3].iter().map(|n| open(n).and_then(|m| RingBuf::try_from(Map::RingBuf(m)).ok())).collect();
    let drops = open("DROPS").and_then(|m| PerCpuArray::<_, u64>::try_from(Map::PerCpuArray(m)).ok());
    // Detach first: after this nothing more is written, so draining empties them.
    detach_links(dir);
    for (i, ring) in rings.into_iter().enumerate() {
        let Some(mut ring) = ring else { continue };
        while let Some(item) = ring.next() {
            taken.records[i].push(item.to_vec());
        }
    }
    if let Some(d) = drops {
        taken.losses = Losses::counted(&d);
    }
    let (added, taken_out) = open("FOLD_LEDGER").map(|m| folds::ledger_of(&Map::PerCpuArray(m))).unwrap_or_default();
    let in_caches = open("FAIL_CACHE").map(|m| folds::in_caches(&Map::PerCpuArray(m))).unwrap_or(0);
    let folds = folds::FoldCounts { added, taken: taken_out, in_maps: 0, in_caches };
    taken.losses.repeats_lost += folds.left_behind();
    taken.losses.skipped = skipped_runs(dir);
}

/// The runs the kernel skipped of the pinned programs.
fn skipped_runs(dir: &Path) -> Skipped {
    let mut skipped = Skipped::default();
    let Ok(entries) = fs::read_dir(dir) else { return skipped };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(prog) = name.strip_prefix(PROGRAM_PIN) else { continue };
        skipped.add(prog, super::skipped::pinned_misses(&entry.path()));
    }
    skipped
}

fn detach_links(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with("link-") {
            if let Ok(link) = PinnedLink::from_pin(entry.path()) {
                // Unpinned and dropped: the last reference goes, the probe detaches.
                drop(link.unpin());
            }
        }
    }
}
