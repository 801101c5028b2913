//! Loading and attaching the eBPF programs: the kernel end of the data flow.

pub mod btf;
pub mod early;
pub mod folds;
pub mod handover;
pub mod pin;
pub mod preflight;
pub mod skipped;
pub mod tracefs;

use std::{collections::BTreeMap, path::Path, time::Instant};

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, RingBuf},
    programs::{Program, TracePoint, trace_point::TracePointLinkId},
};
use modtrace_common::{TaskOffsets, drop, ring};
use thiserror::Error;

pub use preflight::System;
pub use skipped::Skipped;

#[derive(Debug, Error)]
pub enum ProbeError {
    #[error(
        "permission denied: loading eBPF programs needs root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN); run it with sudo"
    )]
    NotPrivileged,
    #[error(
        "this kernel was built without loadable module support (CONFIG_MODULES is off: no /proc/modules, no module tracepoints): no module can ever be loaded here, so there is nothing to trace, learn or lock (to see modtrace at work anyway, run `cargo xtask demo` in its source tree: it boots a Debian guest)"
    )]
    NoModules,
    #[error(
        "kernel lockdown is in confidentiality mode, which forbids eBPF programs from reading kernel memory, so module names cannot be traced; `modtrace snapshot` (from /proc/modules) still works"
    )]
    Lockdown,
    #[error("{0}; mount it with `mount -t tracefs tracefs /sys/kernel/tracing` and try again")]
    NoTracefs(String),
    #[error("{0}")]
    Layout(String),
    #[error("loading the eBPF programs failed: {0}")]
    Load(String),
    #[error("attaching to {0} failed: {1}")]
    Attach(String, String),
}

/// Programs and the tracepoints they attach to: (program, group, event).
type Attachments = &'static [(&'static str, &'static str, &'static str)];

/// The module events, attached before the load calls' exits: a call whose exit
/// is traced and whose module links is then known to have linked it.
const MODULE_EVENTS: Attachments = &[
    ("module_request", "module", "module_request"),
    ("module_load", "module", "module_load"),
    ("module_free", "module", "module_free"),
];

/// The load calls, where the exit probe reads the arguments from the saved
/// registers: one program per call.
const LOAD_EXITS: Attachments = &[
    ("exit_load_regs", "syscalls", "sys_exit_finit_module"),
    ("exit_load_regs", "syscalls", "sys_exit_init_module"),
];

/// The load calls elsewhere: entry probes keep the arguments for the exit.
const LOAD_ENTRIES_AND_EXITS: Attachments = &[
    ("enter_finit_module", "syscalls", "sys_enter_finit_module"),
    ("enter_init_module", "syscalls", "sys_enter_init_module"),
    ("exit_load", "syscalls", "sys_exit_finit_module"),
    ("exit_load", "syscalls", "sys_exit_init_module"),
];

/// Attached probes. Dropping it detaches them.
pub struct Probes {
    ebpf: Ebpf,
    /// Each attachment's program and link (early.rs pins them).
    links: Vec<(&'static str, TracePointLinkId)>,
    pub system: System,
    pub attached: usize,
    pub attach_ms: u128,
    /// Where the attach time went, phase by phase.
    pub phases: Vec<Phase>,
    /// Plain-language notes on what is degraded here (no BTF, ...).
    pub notes: Vec<String>,
    /// The functions `hand_over` attaches fexit to; None: it has nothing to do
    /// (the load calls have entry probes, or it was done).
    fexit_ids: Option<handover::FunctionIds>,
    /// The fexit programs' links, once handed over.
    fexit_links: Vec<(&'static str, aya::programs::fexit::FExitLinkId)>,
}

/// The three rings, in the order they must be drained (see `pipeline`).
pub struct Rings {
    pub loads: RingBuf<MapData>,
    pub failures: RingBuf<MapData>,
    pub requests: RingBuf<MapData>,
}

/// Events lost or folded in the kernel.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Losses {
    /// Rings that were full.
    pub requests: u64,
    pub loads: u64,
    pub failures: u64,
    /// Names the probes could not read (the event was not sent).
    pub request_names: u64,
    pub module_names: u64,
    /// Syscall exits with no entry kept for them.
    pub exits_without_entry: u64,
    /// Repeats folded into a count but not yet carried by a later event.
    pub folded_pending: u64,
    /// Repeats no record will carry: on a record a ring refused, or in a
    /// fold entry the full map dropped (folds.rs).
    pub repeats_lost: u64,
    /// Runs of the probes the kernel skipped.
    pub skipped: Skipped,
}

impl Probes {
    pub fn attach() -> Result<Probes, ProbeError> {
        let started = Instant::now();
        let mut clock = Phases::new();
        let system = preflight::check()?;
        clock.done("checks");
        // Reading the kernel's BTF is the longest step before loading (0.1 s in
        // a 6.1 guest, which must copy it first): the rest is done beside it.
        let ((kernel, btf_ms), (checked, checks_ms)) = std::thread::scope(|scope| {
            let kernel = scope.spawn(|| timed(|| KernelBtf::read(&system)));
            let checked = timed(checks_beside_btf);
            (joined(kernel), checked)
        });
        checked?;
        clock.done_at_once("btf", vec![("BTF", btf_ms), ("tracefs and aya's feature probes", checks_ms)]);
        let KernelBtf { offsets, regs, fexit_ids, mut notes } = kernel;
        let mut ebpf = load(offsets)?;
        clock.done("load");
        let (load_calls, verified) = verify(&mut ebpf, regs, &mut notes)?;
        clock.done_at_once("verify", verified);
        let mut links = attach_all(&mut ebpf, MODULE_EVENTS)?;
        links.extend(attach_all(&mut ebpf, load_calls)?);
        let attached = links.len();
        clock.done("attach");
        notes.extend(skipped::uncounted_note());
        if system.modules_disabled {
            notes.push("kernel.modules_disabled is 1: no module can load until reboot; denied attempts still show".into());
        }
        let attach_ms = started.elapsed().as_millis();
        let fexit_ids = (load_calls == LOAD_EXITS && handover::wanted()).then_some(fexit_ids);
        Ok(Probes {
            ebpf,
            links,
            system,
            attached,
            attach_ms,
            phases: clock.phases,
            notes,
            fexit_ids,
            fexit_links: Vec::new(),
        })
    }

    pub fn take_rings(&mut self) -> Result<Rings, ProbeError> {
        Ok(Rings { loads: self.ring("LOADS")?, failures: self.ring("FAILURES")?, requests: self.ring("REQUESTS")? })
    }

    fn ring(&mut self, name: &str) -> Result<RingBuf<MapData>, ProbeError> {
        let map = self.ebpf.take_map(name).ok_or_else(|| ProbeError::Load(format!("map {name} missing")))?;
        RingBuf::try_from(map).map_err(|e| ProbeError::Load(format!("{name}: {e}")))
    }

    /// Reads the drop counters, the repeats still held in the fold maps and
    /// the runs the kernel skipped. Exact once detached (`detach`).
    pub fn losses(&self) -> Losses {
        let drops = self.ebpf.map("DROPS").and_then(|m| PerCpuArray::<_, u64>::try_from(m).ok());
        let mut skipped = Skipped::default();
        for (prog, program) in self.ebpf.programs() {
            skipped.add(prog, program.fd().ok().and_then(skipped::misses));
        }
        let folds = folds::FoldCounts::read(&self.ebpf);
        let counted = drops.map(|d| Losses::counted(&d)).unwrap_or_default();
        Losses {
            folded_pending: folds.pending(),
            repeats_lost: counted.repeats_lost + folds.evicted(),
            skipped,
            ..counted
        }
    }

    /// Detaches every probe, leaving the programs and maps to be read: after
    /// it nothing more is counted or sent.
    pub fn detach(&mut self) {
        for (prog, link) in std::mem::take(&mut self.links) {
            // Nothing to do about a failure here: the process is ending.
            let _ = self.detach_tracepoint(prog, link);
        }
        self.detach_fexits();
    }
}

impl Losses {
    /// The counts of a DROPS map (the fold maps are not in it).
    fn counted<T: std::borrow::Borrow<MapData>>(drops: &PerCpuArray<T, u64>) -> Losses {
        let drops = |slot: u32| -> u64 { drops.get(&slot, 0).map(|per_cpu| per_cpu.iter().sum()).unwrap_or(0) };
        Losses {
            requests: drops(ring::REQUESTS),
            loads: drops(ring::LOADS),
            failures: drops(ring::FAILURES),
            request_names: drops(drop::REQUEST_NAME_UNREAD),
            module_names: drops(drop::MODULE_NAME_UNREAD),
            exits_without_entry: drops(drop::EXIT_WITHOUT_ENTRY),
            folded_pending: 0,
            repeats_lost: drops(drop::REPEATS_REFUSED),
            skipped: Skipped::default(),
        }
    }
}

/// One step of attaching: its wall time, and the work its threads did at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    pub name: &'static str,
    pub ms: u128,
    pub at_once: AtOnce,
}

/// The work a phase's threads did side by side, each with its milliseconds.
pub type AtOnce = Vec<(&'static str, u128)>;

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ms", self.name, self.ms)?;
        if !self.at_once.is_empty() {
            let parts: Vec<String> = self.at_once.iter().map(|(name, ms)| format!("{name} {ms} ms")).collect();
            write!(f, " ({} at once)", parts.join(", "))?;
        }
        Ok(())
    }
}

/// Milliseconds spent in each named phase.
struct Phases {
    last: Instant,
    phases: Vec<Phase>,
}

impl Phases {
    fn new() -> Phases {
        Phases { last: Instant::now(), phases: Vec::new() }
    }

    fn done(&mut self, name: &'static str) {
        self.done_at_once(name, Vec::new());
    }

    fn done_at_once(&mut self, name: &'static str, at_once: AtOnce) {
        let now = Instant::now();
        self.phases.push(Phase { name, ms: now.duration_since(self.last).as_millis(), at_once });
        self.last = now;
    }
}

fn timed<T>(work: impl FnOnce() -> T) -> (T, u128) {
    let start = Instant::now();
    let result = work();
    (result, start.elapsed().as_millis())
}

/// A scoped thread's result; its panic goes on in the caller.
fn joined<T>(thread: std::thread::ScopedJoinHandle<'_, T>) -> T {
    thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// What is done while the BTF is read: tracefs mounted, with the events'
/// formats the programs were built for; then aya's probes of the kernel's
/// features, which `load` would run otherwise.
fn checks_beside_btf() -> Result<(), ProbeError> {
    let tracefs = tracefs::ensure_mounted()?;
    tracefs::check_formats(&tracefs)?;
    let _ = aya::features();
    Ok(())
}

/// What the programs take from the kernel's BTF, and notes on what is missing.
struct KernelBtf {
    offsets: TaskOffsets,
    /// Whether the load calls' exit probe can read the saved registers.
    regs: Result<(), String>,
    fexit_ids: handover::FunctionIds,
    notes: Vec<String>,
}

impl KernelBtf {
    fn read(system: &System) -> KernelBtf {
        let mut notes = Vec::new();
        let Some(kernel_btf) = open_btf(system, &mut notes) else {
            let (regs, fexit_ids) = (Err("no BTF".into()), Err("no BTF".into()));
            return KernelBtf { offsets: TaskOffsets::default(), regs, fexit_ids, notes };
        };
        // The functions are looked up beside the structs (each lookup reads every type's name).
        let ((offsets, regs), fexit_ids) = std::thread::scope(|scope| {
            let ids = scope.spawn(|| handover::function_ids(&kernel_btf));
            (btf::offsets_and_regs(&kernel_btf), joined(ids))
        });
        let offsets = offsets.unwrap_or_else(|e| {
            notes.push(format!("kernel BTF unusable ({e}): {NO_BTF_EFFECT}"));
            TaskOffsets::default()
        });
        KernelBtf { offsets, regs, fexit_ids, notes }
    }
}

/// What tracing without BTF loses (the offsets into task_struct come from it).
const NO_BTF_EFFECT: &str = "the kernel side cannot read a task's parent, argv, euid, audit login uid or cgroup path \
     (/proc fills in what it still can), and a modprobe cannot be told from the kernel's helper: its loads are reported \
     with cause unknown";

fn open_btf(system: &System, notes: &mut Vec<String>) -> Option<btf_rs::Btf> {
    if !system.btf {
        notes.push(format!("no kernel BTF (/sys/kernel/btf/vmlinux): {NO_BTF_EFFECT}"));
        return None;
    }
    btf::open(Path::new(btf::VMLINUX_BTF)).map_err(|e| notes.push(format!("kernel BTF unusable ({e}): {NO_BTF_EFFECT}"))).ok()
}

/// The eBPF object built from modtrace-ebpf.
fn object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/modtrace-probes"))
}

fn load(offsets: TaskOffsets) -> Result<Ebpf, ProbeError> {
    let object = object();
    let self_tgid = std::process::id();
    // The programs use no CO-RE relocations (offsets come from `btf`), so aya
    // need not parse the kernel's BTF a second time (vendor/README.md).
    let mut loader = EbpfLoader::without_kernel_btf();
    loader
        .override_global("SELF_TGID", &self_tgid, true)
        .override_global("TASK_OFFSETS", &offsets, true)
        .override_global("FINIT_MODULE_NR", &(libc::SYS_finit_module as i32), true);
    if let Some(entries) = fold_entries() {
        for map in ["FAIL_REPEATS", "REQUEST_REPEATS"] {
            loader.map_max_entries(map, entries);
        }
    }
    loader.load(object).map_err(|e| ProbeError::Load(format!("{e:#}")))
}

/// Sizes the fold maps for a test (their default is 4096 processes): a guest
/// cannot run thousands of processes at once, and a test of what a full map
/// drops needs one that fills.
pub const FOLD_ENTRIES_ENV: &str = "MODTRACE_TEST_FOLD_ENTRIES";

fn fold_entries() -> Option<u32> {
    std::env::var(FOLD_ENTRIES_ENV).ok()?.parse().ok().filter(|n| *n > 0)
}

/// The module event verified on the load calls' thread.
const BESIDE_LOAD_CALLS: &str = "module_free";

/// Verifies and loads the programs to attach, on two threads. The verifier's
/// time goes with a program's size, and the four are of a size (8-10 KB
/// translated), so module_free goes beside the load calls' exit probe: with
/// the three module events on one thread, that thread took 240-400 ms in a
/// 6.1 guest under emulation and the other 135-245 ms. Returns the load calls'
/// attachments (`choose_load_calls`) and each thread's time.
fn verify(
    ebpf: &mut Ebpf,
    regs: Result<(), String>,
    notes: &mut Vec<String>,
) -> Result<(Attachments, AtOnce), ProbeError> {
    let mut programs: BTreeMap<&str, &mut Program> = ebpf.programs_mut().collect();
    let mut events = Vec::new();
    for (prog, _, _) in MODULE_EVENTS.iter().filter(|(prog, _, _)| *prog != BESIDE_LOAD_CALLS) {
        let program = programs.remove(prog).ok_or_else(|| missing(prog))?;
        events.push((*prog, program));
    }
    let ((events, events_ms), (calls, calls_ms)) = std::thread::scope(|scope| {
        let events = scope.spawn(move || timed(|| events.into_iter().try_for_each(|(prog, p)| load_program(prog, p))));
        let calls = timed(|| {
            let calls = choose_load_calls(&mut programs, regs, notes)?;
            let beside = programs.get_mut(BESIDE_LOAD_CALLS).ok_or_else(|| missing(BESIDE_LOAD_CALLS))?;
            load_program(BESIDE_LOAD_CALLS, beside)?;
            Ok(calls)
        });
        (joined(events), calls)
    });
    events?;
    Ok((calls?, vec![("load calls and module_free", calls_ms), ("module_request and module_load", events_ms)]))
}

/// The load calls' probes: the exit alone where it can read the saved registers
/// (`regs`: the kernel's BTF agrees with modtrace_common::regs, and this
/// kernel's verifier accepts the program), else entry and exit probes.
fn choose_load_calls(
    programs: &mut BTreeMap<&str, &mut Program>,
    regs: Result<(), String>,
    notes: &mut Vec<String>,
) -> Result<Attachments, ProbeError> {
    let mut load = |prog: &str| load_program(prog, programs.get_mut(prog).ok_or_else(|| missing(prog))?);
    let why_not = match regs.and_then(|()| load("exit_load_regs").map_err(|e| e.to_string())) {
        Ok(()) => return Ok(LOAD_EXITS),
        Err(e) => e,
    };
    notes.push(format!(
        "the load calls' exit probe cannot read their arguments here ({why_not}): entry probes keep them, which costs every failed load more"
    ));
    for (prog, _, _) in LOAD_ENTRIES_AND_EXITS {
        load(prog)?;
    }
    Ok(LOAD_ENTRIES_AND_EXITS)
}

fn missing(prog: &str) -> ProbeError {
    ProbeError::Load(format!("program {prog} missing"))
}

fn tracepoint<'a>(prog: &str, program: &'a mut Program) -> Result<&'a mut TracePoint, ProbeError> {
    program.try_into().map_err(|e| ProbeError::Load(format!("{prog}: {e}")))
}

/// Verifies and loads `prog` unless it is loaded already.
fn load_program(prog: &str, program: &mut Program) -> Result<(), ProbeError> {
    let program = tracepoint(prog, program)?;
    if program.fd().is_ok() {
        return Ok(());
    }
    program.load().map_err(|e| ProbeError::Load(format!("{prog}: {e:#}")))
}

/// Attaches loaded programs; returns each attachment's link, by program.
fn attach_all(ebpf: &mut Ebpf, attachments: Attachments) -> Result<Vec<(&'static str, TracePointLinkId)>, ProbeError> {
    let mut links = Vec::new();
    for (prog, group, event) in attachments {
        let program = tracepoint(prog, ebpf.program_mut(prog).ok_or_else(|| missing(prog))?)?;
        let id = program.attach(group, event).map_err(|e| ProbeError::Attach(format!("{group}:{event}"), format!("{e:#}")))?;
        links.push((*prog, id));
    }
    Ok(links)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_names_the_work_its_threads_did_at_once() {
        let alone = Phase { name: "load", ms: 52, at_once: Vec::new() };
        assert_eq!(alone.to_string(), "load 52 ms");
        let verify = Phase { name: "verify", ms: 360, at_once: vec![("load calls", 355), ("module_load", 140)] };
        assert_eq!(verify.to_string(), "verify 360 ms (load calls 355 ms, module_load 140 ms at once)");
    }
}
