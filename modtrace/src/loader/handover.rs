//! Handing the load calls over from their exit tracepoint to fexit on the
//! syscalls' functions, once tracing runs. While any syscall tracepoint is
//! attached every task's syscalls take the kernel's slow tracing path, and a
//! failed finit_module costs about 2.1x an untraced one with the tracepoint
//! against 1.8x with fexit (docs/performance.md). But loading and attaching
//! fexit takes longer than the tracepoint (trampolines), so the tracepoint
//! comes first and tracing starts without waiting for this.
//!
//! No call is reported twice or lost in between (modtrace-ebpf's load.rs):
//! fexit runs before the exit tracepoint in the same call; in
//! `load_probe::BOTH` it marks the calls it reports and the tracepoint skips
//! those, so a call that returned before fexit was attached is still the
//! tracepoint's. The tracepoint is detached a grace period later: a call
//! between its function's return and its exit tracepoint for longer than that
//! would be the one missed.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use aya::{
    maps::Array,
    programs::{FExit, TracePoint, trace_point::TracePointLinkId},
};
use btf_rs::{Btf, Type};
use modtrace_common::load_probe;

use super::{Probes, timed};

/// The fexit programs and the functions they attach to.
const FEXITS: [(&str, &str); 2] =
    [("fexit_finit_module", "__x64_sys_finit_module"), ("fexit_init_module", "__x64_sys_init_module")];

/// The functions' BTF type ids, in FEXITS' order, looked up with the rest of
/// the kernel's BTF at start: reading it again later would cost the memory
/// again.
pub type FunctionIds = Result<[u32; 2], String>;

pub fn function_ids(kernel: &Btf) -> FunctionIds {
    let [finit, init] = FEXITS.map(|(_, func)| function_id(kernel, func));
    Ok([finit?, init?])
}

/// How long both probes stay attached.
const GRACE: Duration = Duration::from_millis(1000);

/// Keeps the load calls on their exit tracepoint when set to `tracepoint`.
pub const ENV: &str = "MODTRACE_LOAD_PROBE";

/// Whether this run may hand over (ENV).
pub fn wanted() -> bool {
    std::env::var(ENV).map_or(true, |v| v != "tracepoint")
}

impl Probes {
    /// Hands the load calls over to fexit where that is possible, and says
    /// what happened, in a line for the user. None: nothing to do, or `stop`
    /// was set first (tracing ends; whatever was attached reports on).
    pub fn hand_over(&mut self, stop: &AtomicBool) -> Option<String> {
        let ids = self.fexit_ids.take()?;
        let started = Instant::now();
        Some(match ids.and_then(|ids| self.try_hand_over(ids, stop)) {
            Ok(None) => return None,
            Ok(Some((verify_ms, attach_ms))) => format!(
                "load calls handed over to fexit on {} in {} ms (verify {verify_ms} ms, attach {attach_ms} ms, both attached {} ms); their exit tracepoints detached",
                FEXITS.map(|(_, f)| f).join(" and "),
                started.elapsed().as_millis(),
                GRACE.as_millis(),
            ),
            Err(e) => format!("load calls stay on their exit tracepoint: fexit unavailable here ({e}); a failed load costs more"),
        })
    }

    /// The milliseconds verifying and attaching took; None when stopped.
    fn try_hand_over(&mut self, ids: [u32; 2], stop: &AtomicBool) -> Result<Option<(u128, u128)>, String> {
        let (loaded, verify_ms) = timed(|| self.load_fexits(ids));
        loaded?;
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        self.set_load_probe(load_probe::BOTH)?;
        let (attached, attach_ms) = timed(|| self.attach_fexits());
        // Left in BOTH on failure: the tracepoint reports what no fexit marked.
        attached?;
        if !sleep_unless(GRACE, stop) {
            return Ok(None);
        }
        self.detach_exit_tracepoints()?;
        self.set_load_probe(load_probe::FEXIT)?;
        Ok(Some((verify_ms, attach_ms)))
    }

    fn load_fexits(&mut self, ids: [u32; 2]) -> Result<(), String> {
        for ((prog, _), id) in FEXITS.iter().zip(ids) {
            self.fexit(prog)?.load_by_btf_id(id).map_err(|e| format!("{prog}: {e:#}"))?;
        }
        Ok(())
    }

    /// Attaches both or neither.
    fn attach_fexits(&mut self) -> Result<(), String> {
        for (prog, func) in FEXITS {
            match self.fexit(prog)?.attach() {
                Ok(link) => self.fexit_links.push((prog, link)),
                Err(e) => {
                    self.detach_fexits();
                    return Err(format!("attaching to {func}: {e:#}"));
                }
            }
        }
        Ok(())
    }

    pub(super) fn detach_fexits(&mut self) {
        for (prog, link) in std::mem::take(&mut self.fexit_links) {
            let _ = self.fexit(prog).map(|p| p.detach(link));
        }
    }

    fn detach_exit_tracepoints(&mut self) -> Result<(), String> {
        let (exits, others): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.links).into_iter().partition(|(prog, _)| *prog == "exit_load_regs");
        self.links = others;
        for (prog, link) in exits {
            self.detach_tracepoint(prog, link)?;
        }
        Ok(())
    }

    pub(super) fn detach_tracepoint(&mut self, prog: &str, link: TracePointLinkId) -> Result<(), String> {
        let program: &mut TracePoint = self.program(prog)?.try_into().map_err(|e| format!("{prog}: {e}"))?;
        program.detach(link).map_err(|e| format!("detaching {prog}: {e:#}"))
    }

    fn set_load_probe(&mut self, value: u32) -> Result<(), String> {
        let map = self.ebpf.map_mut("LOAD_PROBE").ok_or("map LOAD_PROBE missing")?;
        let mut array = Array::<_, u32>::try_from(map).map_err(|e| format!("LOAD_PROBE: {e}"))?;
        array.set(0, value, 0).map_err(|e| format!("setting LOAD_PROBE: {e}"))
    }

    fn fexit(&mut self, prog: &str) -> Result<&mut FExit, String> {
        self.program(prog)?.try_into().map_err(|e| format!("{prog}: {e}"))
    }

    fn program(&mut self, prog: &str) -> Result<&mut aya::programs::Program, String> {
        self.ebpf.program_mut(prog).ok_or_else(|| format!("program {prog} missing"))
    }
}

/// The BTF type id of the kernel function `name`.
fn function_id(kernel: &Btf, name: &str) -> Result<u32, String> {
    let ids = kernel.resolve_ids_by_name(name).map_err(|e| format!("{name}: {e}"))?;
    ids.into_iter()
        .find(|id| matches!(kernel.resolve_type_by_id(*id), Ok(Type::Func(_))))
        .ok_or_else(|| format!("no function {name} in the kernel's BTF"))
}

/// Sleeps for `length`, or less if `stop` is set meanwhile; whether it slept it all.
fn sleep_unless(length: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + length;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20).min(until.saturating_duration_since(Instant::now())));
    }
    !stop.load(Ordering::Relaxed)
}
