//! Runs of the probes the kernel skipped. The kernel never runs one program
//! twice at once on a CPU: on a preemptible kernel (Debian's 7.x) the load
//! calls' exit probe (a syscall tracepoint, run preemptibly there) and the
//! guard's LSM programs can be preempted mid-run, and another task's run of
//! the same program on that CPU is skipped. A tracepoint's programs are also
//! skipped on a CPU where another BPF program runs or a bpf() map call has
//! instrumentation disabled. Each skip is counted as a miss of the program,
//! shown in its fdinfo as `recursion_misses` (for tracepoint programs from 6.7
//! on).

use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use aya::{programs::ProgramInfo, util::KernelVersion};

/// Skipped runs, by what the run would have seen.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// module_request: a request lost.
    pub requests: u64,
    /// module_load, module_free: a load (or unload) lost.
    pub loads: u64,
    /// A load call's exit: its result lost (module_load still names a module
    /// that linked).
    pub results: u64,
}

impl Skipped {
    /// Adds `misses`, the kernel's count for `prog`.
    pub fn add(&mut self, prog: &str, misses: Option<u64>) {
        if let Some(slot) = self.slot(prog) {
            *slot += misses.unwrap_or(0);
        }
    }

    /// The entry probes have none: a skipped entry shows as an exit without
    /// its call, counted already.
    fn slot(&mut self, prog: &str) -> Option<&mut u64> {
        match prog {
            "module_request" => Some(&mut self.requests),
            "module_load" | "module_free" => Some(&mut self.loads),
            "exit_load_regs" | "exit_load" | "fexit_finit_module" | "fexit_init_module" => Some(&mut self.results),
            _ => None,
        }
    }
}

/// The miss count of the program pinned at `path` (the guard's, the early
/// probes').
pub fn pinned_misses(path: &Path) -> Option<u64> {
    misses(ProgramInfo::from_pin(path).and_then(|info| info.fd()).ok()?)
}

/// A program's miss count, from this process's fdinfo of its fd.
pub fn misses(fd: impl AsFd) -> Option<u64> {
    let fd = fd.as_fd().as_raw_fd();
    parse_misses(&std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?)
}

fn parse_misses(fdinfo: &str) -> Option<u64> {
    fdinfo.lines().find_map(|l| l.strip_prefix("recursion_misses:")).and_then(|n| n.trim().parse().ok())
}

/// Kernels before 6.7 skip runs without counting them.
const COUNTED_FROM: (u8, u8) = (6, 7);

/// A note for kernels that skip runs unseen; None where they are counted.
pub fn uncounted_note() -> Option<String> {
    let version = KernelVersion::current().ok()?;
    let code = version.code();
    (version < KernelVersion::new(COUNTED_FROM.0, COUNTED_FROM.1, 0)).then(|| {
        format!(
            "this kernel ({}.{}) does not count the runs of the probes it skips while another BPF program or a bpf() \
             map call holds the CPU (kernels count them from {}.{} on): such a loss would go unseen here",
            code >> 16,
            (code >> 8) & 0xff,
            COUNTED_FROM.0,
            COUNTED_FROM.1
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FDINFO: &str = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1057\nprog_type:\t5\nprog_jited:\t1\n\
        prog_tag:\t3b185187f1855c4c\nmemlock:\t4096\nprog_id:\t12\nrun_time_ns:\t0\nrun_cnt:\t0\n\
        recursion_misses:\t743\nverified_insns:\t6739\n";

    #[test]
    fn misses_are_read_from_fdinfo() {
        assert_eq!(parse_misses(FDINFO), Some(743));
        assert_eq!(parse_misses("prog_id:\t12\n"), None);
    }

    #[test]
    fn a_skip_counts_as_what_the_run_would_have_seen() {
        let mut s = Skipped::default();
        for (prog, n) in
            [("module_request", 1), ("module_load", 2), ("module_free", 4), ("exit_load_regs", 8), ("exit_load", 16)]
        {
            *s.slot(prog).unwrap() += n;
        }
        for prog in ["fexit_finit_module", "fexit_init_module"] {
            s.add(prog, Some(32));
        }
        assert_eq!(s, Skipped { requests: 1, loads: 6, results: 88 });
        assert!(s.slot("enter_finit_module").is_none());
    }
}
