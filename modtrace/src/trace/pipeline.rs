//! The live data flow: rings -> decode -> correlate -> a sink of records.

use std::{
    os::fd::{AsRawFd, RawFd},
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{Signal, SignalKind, signal},
};

use super::{
    attribute::SystemDescriber,
    correlate::Correlator,
    decode::decode,
    drops::Drops,
    event::{Event, Record},
    modindex::KmodIndex,
    snapshot::read_proc_modules,
    uevent::UeventSocket,
};
use crate::loader::{Probes, Rings};
// The guard's decisions are traced too (`trace` shows them beside the loads).
use crate::trace::decision::{self as guard_decision, GuardRecord, WatchedRing};

#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Stop after this long; None runs until SIGINT or SIGTERM.
    pub duration: Option<Duration>,
    /// Also call the sink with None this often, records or not (learn's
    /// checkpoints must not wait for the next load). The sink is always called
    /// with None once first, when the probes are attached and before any record.
    pub tick: Option<Duration>,
}

/// What a run saw besides its records.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub records: u64,
    /// Every event lost, by where (undecodable records are a kernel/userspace
    /// mismatch, never expected).
    pub drops: Drops,
    /// Repeats folded in the kernel and not yet carried by a later event.
    pub folded_pending: u64,
    /// Why the run ended: "duration", "SIGINT" or "SIGTERM".
    pub ended_by: &'static str,
    /// Events of the probes the initramfs started, when this run took them over.
    pub from_initramfs: Option<u64>,
    /// The guard's decisions lost while this run read them: its ring was full
    /// (counted by the guard's programs) or a record did not decode.
    pub guard_lost: u64,
    pub guard_undecodable: u64,
}

/// Attached probes plus everything that turns their bytes into records.
pub struct Tracer {
    pub probes: Probes,
    flow: Flow,
    /// What the initramfs's probes saw (`start_taking_early`), handed to the
    /// sink before anything else.
    early: Vec<Record>,
    early_losses: crate::loader::Losses,
    /// Early records that did not decode: loads, failures, requests.
    early_undecodable: [u64; 3],
    /// Whether this build's early probes were taken over.
    took_early: bool,
}

/// The rings and what turns their bytes into records: the event loop's own,
/// apart from the probes, which are handed over meanwhile (loader/handover.rs).
struct Flow {
    rings: Rings,
    correlator: Correlator<KmodIndex>,
    describer: SystemDescriber,
    /// Device announcements, for naming the device of a udev load.
    uevents: Option<UeventSocket>,
    /// The decisions of whichever guard is pinned (`modtrace guard`).
    guard: WatchedRing,
    /// Where guard decisions go; None: they are read and dropped.
    guard_sink: Option<Box<dyn FnMut(&GuardRecord)>>,
    /// Guard records that did not decode.
    guard_undecodable: u64,
    /// Own events before this instant are dropped: the early probes gave them
    /// (both were attached then). 0 when nothing was taken over.
    own_from_ns: u64,
}

impl Tracer {
    /// Checks the system, loads and attaches the probes.
    pub fn start() -> anyhow::Result<Tracer> {
        Self::start_with(false)
    }

    /// As `start`, and takes over what probes pinned by the initramfs saw
    /// (loader/early.rs): the learner's start.
    pub fn start_taking_early() -> anyhow::Result<Tracer> {
        Self::start_with(true)
    }

    fn start_with(take_early: bool) -> anyhow::Result<Tracer> {
        // Named as every command names it, before the index says "no modules.dep.bin".
        crate::loader::preflight::require_modules()?;
        // Read first: nothing may fail once the early probes are taken over.
        let index = KmodIndex::running().context("reading the running kernel's module index")?;
        let mut probes = Probes::attach()?;
        let rings = probes.take_rings()?;
        // Every probe of ours is attached from here on: the early ones' events
        // before this instant are theirs to give, later ones are ours.
        let cut_ns = monotonic_ns();
        let taken = if take_early { crate::loader::early::take() } else { None };
        let uevents = UeventSocket::open()
            .map_err(|e| probes.notes.push(format!("no uevent socket ({e}): udev loads will not name their device")))
            .ok();
        let mut correlator = Correlator::new(index).with_helper_program(&helper_program());
        let took_early = taken.as_ref().is_some_and(|t| t.own);
        let (events, undecodable) = taken.as_ref().map_or((Vec::new(), [0; 3]), |t| decode_early(&t.records, cut_ns));
        let (early, early_losses) = match taken {
            Some(t) => replay_early(t, events, &mut correlator, &mut probes.notes),
            None => (Vec::new(), Default::default()),
        };
        // Read after attaching: a module loaded meanwhile is both here and in a
        // ring, and a request for it is satisfied, not left pending.
        match read_proc_modules(Path::new("/proc/modules")) {
            Ok(loaded) => correlator.seed_present(loaded.into_iter().map(|m| m.name), monotonic_ns()),
            Err(e) => probes.notes.push(format!("cannot read /proc/modules ({e}): requests for modules loaded before tracing wait for a helper until they expire")),
        }
        let guard = WatchedRing::open("GUARD_TRACE");
        let mut flow = Flow {
            rings,
            correlator,
            describer: SystemDescriber::new(),
            uevents,
            guard,
            guard_sink: None,
            guard_undecodable: 0,
            own_from_ns: if took_early { cut_ns } else { 0 },
        };
        // Decisions taken before this trace began are not its to show.
        flow.guard.drain();
        Ok(Tracer { probes, flow, early, early_losses, early_undecodable: undecodable, took_early })
    }

    /// Where the running guard's decisions go (they are read and dropped otherwise).
    pub fn on_guard_decision(&mut self, sink: Box<dyn FnMut(&GuardRecord)>) {
        self.flow.guard_sink = Some(sink);
    }

    /// Feeds every record to `sink` until the duration ends or a signal arrives;
    /// None is a tick (`Options::tick`).
    pub fn run(mut self, opts: &Options, sink: &mut dyn FnMut(Option<&Record>)) -> anyhow::Result<Summary> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        // Installed before the first call of the sink, which may announce that
        // tracing runs: a shell starts a background job with SIGINT ignored, so
        // an interrupt sent on that word would otherwise be lost.
        let signals = {
            let _in_runtime = runtime.enter();
            (signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?)
        };
        sink(None);
        let early = std::mem::take(&mut self.early);
        for record in &early {
            sink(Some(record));
        }
        // The probes are handed over to fexit beside the loop (loader/handover.rs).
        let Tracer { probes, flow, .. } = &mut self;
        let stop = AtomicBool::new(false);
        let mut summary = std::thread::scope(|scope| {
            scope.spawn(|| {
                if let Some(line) = probes.hand_over(&stop) {
                    eprintln!("modtrace: note: {line}");
                }
            });
            let summary = runtime.block_on(flow.event_loop(opts, sink, signals));
            stop.store(true, Ordering::Relaxed);
            summary
        })?;
        // Detached, then drained once more: what was sent before detaching is
        // read, and the counts below are final.
        self.probes.detach();
        self.flow.drain(&mut summary, sink);
        summary.records += early.len() as u64;
        summary.from_initramfs = self.took_early.then_some(early.len() as u64);
        let [loads, failures, requests] = self.early_undecodable;
        summary.drops.undecodable_loads += loads;
        summary.drops.undecodable_failures += failures;
        summary.drops.undecodable_requests += requests;
        let (kernel, before) = (self.probes.losses(), self.early_losses);
        let d = &mut summary.drops;
        d.ring_requests = kernel.requests + before.requests;
        d.ring_loads = kernel.loads + before.loads;
        d.ring_failures = kernel.failures + before.failures;
        d.unreadable_aliases = kernel.request_names + before.request_names;
        d.unreadable_module_names = kernel.module_names + before.module_names;
        d.results_without_call = kernel.exits_without_entry + before.exits_without_entry;
        d.evicted_requests = self.flow.correlator.evicted();
        d.evicted_untrusted_requests = self.flow.correlator.evicted_untrusted();
        d.skipped_requests = kernel.skipped.requests + before.skipped.requests;
        d.skipped_loads = kernel.skipped.loads + before.skipped.loads;
        d.skipped_results = kernel.skipped.results + before.skipped.results;
        d.lost_repeats = kernel.repeats_lost + before.repeats_lost;
        summary.folded_pending = kernel.folded_pending;
        summary.guard_lost = self.flow.guard.lost();
        summary.guard_undecodable = self.flow.guard_undecodable;
        Ok(summary)
    }

}

impl Flow {
    async fn event_loop(
        &mut self,
        opts: &Options,
        sink: &mut dyn FnMut(Option<&Record>),
        (mut sigint, mut sigterm): (Signal, Signal),
    ) -> anyhow::Result<Summary> {
        let deadline = sleep_or_forever(opts.duration);
        tokio::pin!(deadline);
        let mut ticks = opts.tick.map(tokio::time::interval);
        let loads = watch(self.rings.loads.as_raw_fd())?;
        let failures = watch(self.rings.failures.as_raw_fd())?;
        let requests = watch(self.rings.requests.as_raw_fd())?;
        let devices = self.uevents.as_ref().map(|s| watch(s.as_raw_fd())).transpose()?;
        let mut guard = self.watch_guard()?;
        // A guard started (again) after this trace began is found within this.
        let mut refind = tokio::time::interval(GUARD_REFIND);
        let mut summary = Summary::default();
        loop {
            let mut new_guard = false;
            tokio::select! {
                guard = loads.readable() => guard?.clear_ready(),
                guard = failures.readable() => guard?.clear_ready(),
                guard = requests.readable() => guard?.clear_ready(),
                Some(guard) = readable(devices.as_ref()) => guard?.clear_ready(),
                Some(ready) = readable(guard.as_ref()) => ready?.clear_ready(),
                _ = sigint.recv() => { summary.ended_by = "SIGINT"; break }
                _ = sigterm.recv() => { summary.ended_by = "SIGTERM"; break }
                _ = &mut deadline => { summary.ended_by = "duration"; break }
                _ = tick(ticks.as_mut()) => sink(None),
                _ = refind.tick() => new_guard = true,
            }
            self.drain(&mut summary, sink);
            if new_guard {
                // The old watch goes before the old ring's descriptor can close.
                drop(guard.take());
                self.refind_guard();
                guard = self.watch_guard()?;
            }
        }
        // A guard started anew since the last look: its decisions so far count.
        drop(guard);
        self.refind_guard();
        self.drain(&mut summary, sink);
        Ok(summary)
    }

    /// Empties the rings and handles the batch in time order. Loads and failures
    /// are read before requests: a helper's load is committed after the request
    /// that started it, so the request is then always in this batch or an earlier one.
    fn drain(&mut self, summary: &mut Summary, sink: &mut dyn FnMut(Option<&Record>)) {
        let mut batch = Vec::new();
        let d = &mut summary.drops;
        drain_ring(&mut self.rings.loads, &mut batch, &mut d.undecodable_loads);
        drain_ring(&mut self.rings.failures, &mut batch, &mut d.undecodable_failures);
        drain_ring(&mut self.rings.requests, &mut batch, &mut d.undecodable_requests);
        // A device's uevent went out before udevd loaded its driver: read after
        // the rings, it is known before any load in this batch is handled.
        self.read_uevents();
        self.drain_guard();
        batch.retain(|ev| ev.ts_ns >= self.own_from_ns);
        batch.sort_by_key(|ev| ev.ts_ns);
        for ev in batch {
            let record = self.correlator.handle(ev, &mut self.describer);
            summary.records += 1;
            sink(Some(&record));
        }
    }

    fn watch_guard(&mut self) -> std::io::Result<Option<AsyncFd<RawFd>>> {
        self.guard.raw_fd().map(watch).transpose()
    }

    /// Switches to a newer guard's ring, after showing what the old one held.
    fn refind_guard(&mut self) {
        if let Some(old) = self.guard.refind() {
            self.show_decisions(&old);
        }
    }

    fn drain_guard(&mut self) {
        let items = self.guard.drain();
        self.show_decisions(&items);
    }

    fn show_decisions(&mut self, items: &[Vec<u8>]) {
        for item in items {
            let Ok(d) = guard_decision::decode(item) else {
                self.guard_undecodable += 1;
                continue;
            };
            if let Some(sink) = self.guard_sink.as_mut() {
                let mut rec = guard_decision::record(&d, &mut self.describer);
                guard_decision::identify_refused(&mut rec, &d, self.correlator.index(), Path::new("/sys"));
                sink(&rec);
            }
        }
    }

    fn read_uevents(&mut self) {
        let Some(socket) = &self.uevents else { return };
        let mut buf = vec![0u8; 8192];
        // ENOBUFS (the socket overflowed) is not fatal: later uevents still come.
        while let Ok(Some(ev)) = socket.recv(&mut buf) {
            self.correlator.device_event(monotonic_ns(), ev);
        }
    }
}

/// The early probes' events from before `cut_ns`, when our own probes were all
/// attached (later ones we see ourselves), in time order; and the records that
/// did not decode, per ring.
fn decode_early(records: &[Vec<Vec<u8>>; 3], cut_ns: u64) -> (Vec<Event>, [u64; 3]) {
    let mut events = Vec::new();
    let mut undecodable = [0; 3];
    for (i, ring) in records.iter().enumerate() {
        for item in ring {
            match decode(item) {
                Ok(ev) if ev.ts_ns < cut_ns => events.push(ev),
                Ok(_) => {}
                Err(_) => undecodable[i] += 1,
            }
        }
    }
    events.sort_by_key(|e| e.ts_ns);
    (events, undecodable)
}

/// The early probes' events as records, in time order: described from the
/// kernel's facts (their processes are long gone or replaced), those before
/// the main system's init marked as the initramfs's.
fn replay_early(
    taken: crate::loader::early::Taken,
    events: Vec<Event>,
    correlator: &mut Correlator<KmodIndex>,
    notes: &mut Vec<String>,
) -> (Vec<Record>, crate::loader::Losses) {
    if !taken.foreign.is_empty() {
        notes.push(format!(
            "the initramfs started another modtrace build's probes ({}): released unread; run update-initramfs -u so the next boot is learned from its start",
            taken.foreign.join(", ")
        ));
    }
    let end = crate::trace::attribute::initramfs_end_ns();
    let mut describer = SystemDescriber::new().replaying();
    let records: Vec<Record> = events
        .into_iter()
        .map(|ev| {
            let stage = crate::trace::event::stage_at(ev.ts_ns, end);
            Record { stage, ..correlator.handle(ev, &mut describer) }
        })
        .collect();
    if !records.is_empty() {
        notes.push(format!(
            "took over {} events from the probes the initramfs started ({} of them in the initramfs)",
            records.len(),
            records.iter().filter(|r| r.stage.is_some()).count(),
        ));
    }
    (records, taken.losses)
}

/// How often a tracer looks for a guard started after it, or anew.
const GUARD_REFIND: Duration = Duration::from_secs(2);

/// kernel.modprobe: the program the kernel's helper runs.
fn helper_program() -> String {
    let text = std::fs::read_to_string("/proc/sys/kernel/modprobe").unwrap_or_default();
    match text.trim() {
        "" => "/sbin/modprobe".to_string(),
        path => path.to_string(),
    }
}

/// CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns().
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Readiness of an optional fd; never ready when there is none.
pub(crate) async fn readable(
    fd: Option<&AsyncFd<RawFd>>,
) -> Option<std::io::Result<tokio::io::unix::AsyncFdReadyGuard<'_, RawFd>>> {
    match fd {
        Some(fd) => Some(fd.readable().await),
        None => std::future::pending().await,
    }
}

fn drain_ring(ring: &mut RingBuf<MapData>, batch: &mut Vec<Event>, undecodable: &mut u64) {
    while let Some(item) = ring.next() {
        match decode(&item) {
            Ok(ev) => batch.push(ev),
            Err(_) => *undecodable += 1,
        }
    }
}

/// Readiness of a ring's fd. The caller keeps the ring open while it holds
/// the watch (the tracer's rings outlive its event loop; a guard ring's watch
/// is dropped before the ring).
pub(crate) fn watch(fd: RawFd) -> std::io::Result<AsyncFd<RawFd>> {
    // SAFETY: `fd` belongs to a ring kept open for the whole event loop.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(|e| e.into())
}

/// The next tick of `ticks`; never when there is none.
async fn tick(ticks: Option<&mut tokio::time::Interval>) {
    match ticks {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_or_forever(duration: Option<Duration>) {
    match duration {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
