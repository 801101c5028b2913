//! `guard status`: whether a guard is in force (its programs attached, asked
//! of the kernel, and the BPF LSM active), what it enforces, and what it
//! decided so far; a guard detached behind modtrace's back says so.

use std::path::Path;

use super::kernel::{self, Counts};
use super::liveness::{self, Program};
use super::{Mode, State};
use crate::said::Said;

/// Exit status of `guard status`: the guard's programs are not all attached
/// (the man page documents it).
pub const EXIT_DETACHED: u8 = 4;
/// Exit status of `guard status`: no guard.
pub const EXIT_NOT_RUNNING: u8 = 3;

/// What `guard status` reports.
#[derive(Debug)]
pub struct Report {
    /// Ok when `bpf` is among the active LSMs; else why not, in the words
    /// `guard start` refuses with.
    pub lsm: Result<(), String>,
    /// None: no guard (nothing pinned, and no start left undone).
    pub guard: Option<Status>,
}

/// A guard as `guard status` shows it.
#[derive(Debug)]
pub struct Status {
    /// None when its counters are gone (unpinned).
    pub counts: Option<Counts>,
    pub generation: Option<u32>,
    /// None: the state file is gone (mode and profile unknown).
    pub state: Option<State>,
    /// Sealed until the next boot (told by its pins, not by the state file).
    pub sealed: bool,
    /// Its programs and their links, as the kernel tells them.
    pub programs: Vec<Program>,
}

impl Report {
    /// 0 in force; 1 the BPF LSM is not active; 3 no guard; 4 detached.
    pub fn exit_code(&self) -> u8 {
        match &self.guard {
            _ if self.lsm.is_err() => 1,
            None => EXIT_NOT_RUNNING,
            Some(s) if !liveness::detached(&s.programs).is_empty() => EXIT_DETACHED,
            Some(_) => 0,
        }
    }
}

/// The guard's status, asked of the kernel.
pub fn read() -> anyhow::Result<Report> {
    let lsm = liveness::lsm_active();
    let state = super::read_state();
    if !liveness::present(Path::new(kernel::PIN_DIR), state.as_ref()) {
        return Ok(Report { lsm, guard: None });
    }
    // A sealed guard's config cannot be opened: its state file says.
    let sealed = super::seal::is_sealed();
    let generation = match sealed {
        true => None,
        false => kernel::current_config().ok().flatten().map(|c| c.generation),
    };
    let guard = Status {
        counts: kernel::counts().ok(),
        generation: generation.or(state.as_ref().map(|s| s.generation)),
        programs: liveness::programs(sealed, state.as_ref()),
        state,
        sealed,
    };
    Ok(Report { lsm, guard: Some(guard) })
}

/// One JSON object: `active` only when the guard's programs are all attached
/// and the BPF LSM is active; `attached` null when that cannot be checked.
pub fn json(report: &Report) -> String {
    let lsm_active = report.lsm.is_ok();
    match &report.guard {
        None => serde_json::json!({ "active": false, "lsm_active": lsm_active }).to_string(),
        Some(s) => {
            let attached = liveness::all_attached(&s.programs);
            serde_json::json!({
                "active": lsm_active && attached == Some(true), "attached": attached,
                "detached": liveness::detached(&s.programs), "lsm_active": lsm_active, "sealed": s.sealed,
                "state": s.state, "generation": s.generation, "decisions": s.counts
            })
            .to_string()
        }
    }
}

/// The status in words.
pub fn text(report: &Report) -> Said {
    let mut said = Said::default();
    if let Err(why) = &report.lsm {
        said.err(format!("modtrace: {why}"));
    }
    let Some(status) = &report.guard else {
        said.out("modtrace: the guard is not running");
        return said;
    };
    said.out(format!("modtrace: guard {}", headline(status, report.lsm.is_ok())));
    let detached = liveness::detached(&status.programs);
    if !detached.is_empty() {
        said.err(format!(
            "modtrace: warning: the guard was detached behind modtrace's back (its links unpinned or released, not by \
             `modtrace guard stop`): {} not attached, so {}; start it again: {}",
            detached.join(", "),
            if detached.len() == kernel::PROGRAMS.len() { "it decides nothing" } else { "it decides only in part" },
            super::refresh::start_command(status.state.as_ref(), None)
        ));
    }
    if let Some(c) = &status.counts {
        counts(&mut said, c, status.sealed);
    }
    said
}

/// "enforcing: mode enforce, since ..." and what it allows.
fn headline(status: &Status, lsm_ok: bool) -> String {
    let sealed = if status.sealed { ", sealed until the next boot" } else { "" };
    let detached = liveness::detached(&status.programs);
    let verdict = match (liveness::all_attached(&status.programs), lsm_ok, status.state.as_ref().map(|s| s.mode)) {
        (Some(false), _, _) => format!("detached ({} not attached)", detached.join(", ")),
        (_, false, _) => "not in force (the BPF LSM is not active)".to_string(),
        (None, true, _) => format!(
            "attachment unknown (a sealed guard's links cannot be opened, and {} lists no link ids)",
            super::STATE_FILE
        ),
        (Some(true), true, Some(Mode::Enforce)) => "enforcing".to_string(),
        (Some(true), true, Some(Mode::Complain)) => "complaining".to_string(),
        (Some(true), true, None) => "attached".to_string(),
    };
    match &status.state {
        Some(s) => format!(
            "{verdict}: mode {}{sealed}, since {}, profile {} (kernel {}): {} modules allowed ({} files, {} request names), init_module {}",
            s.mode.as_str(),
            s.since,
            s.profile.display(),
            s.kernel,
            s.modules,
            s.files,
            s.aliases,
            if s.allow_init_module { "allowed" } else { "not allowed" }
        ),
        None => format!("{verdict}{sealed} ({} missing: mode and profile unknown)", super::STATE_FILE),
    }
}

fn counts(said: &mut Said, c: &Counts, sealed: bool) {
    said.out(format!(
        "decisions: {} allowed, {} denied, {} would deny; {} lost (never logged); {}",
        c.allowed,
        c.denied,
        c.would_deny,
        c.lost,
        skipped_words(c.skipped, sealed)
    ));
    if sealed {
        said.out(format!("sealed: {} attempt(s) to undo the guard refused (journalctl -t modtrace-guard)", c.refused));
    }
    if let Some(skipped) = c.skipped.filter(|n| *n > 0) {
        said.err(format!(
            "modtrace: warning: the kernel skipped the guard's hook {skipped} time(s) (its program was already \
             running on that CPU, preempted): those operations went through undecided"
        ));
    }
}

fn skipped_words(skipped: Option<u64>, sealed: bool) -> String {
    match skipped {
        Some(n) => format!("{n} skipped by the kernel (let through undecided)"),
        None if sealed => "skipped by the kernel: unknown (a sealed guard's programs cannot be opened)".into(),
        None => "skipped by the kernel: unknown (the guard was started by an older modtrace; restart it)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::liveness::Link;
    use crate::said::Stream;

    const INACTIVE: &str = "the BPF LSM is not active (active LSMs: lockdown,capability,yama,apparmor); add bpf";

    fn attached() -> Vec<Program> {
        let link = Link::Pinned { tracing: true, prog_id: Some(40) };
        kernel::PROGRAMS.iter().map(|(name, _)| Program { name, prog_id: Some(40), link }).collect()
    }

    fn state(mode: Mode) -> State {
        let mut s: State = serde_json::from_str(
            r#"{"mode":"complain","allow_init_module":false,"since":"2026-12-07T20:00:00Z","profile":"/p.json",
                "kernel":"6.12","generation":2,"modules":14,"aliases":90,"files":13}"#,
        )
        .unwrap();
        s.mode = mode;
        s
    }

    fn running(skipped: Option<u64>) -> Status {
        let counts = Counts { allowed: 5, denied: 2, would_deny: 0, lost: 1, skipped, refused: 0 };
        Status { counts: Some(counts), generation: Some(3), state: None, sealed: false, programs: attached() }
    }

    fn report(guard: Option<Status>) -> Report {
        Report { lsm: Ok(()), guard }
    }

    #[test]
    fn no_guard_says_so_in_words_and_in_json() {
        let none = report(None);
        assert_eq!(text(&none).text(Stream::Out), "modtrace: the guard is not running\n");
        assert_eq!(json(&none), r#"{"active":false,"lsm_active":true}"#);
        assert_eq!(none.exit_code(), EXIT_NOT_RUNNING);
    }

    #[test]
    fn a_running_guard_shows_its_counts_and_warns_of_skipped_hooks() {
        let said = text(&report(Some(running(Some(4)))));
        let out = said.text(Stream::Out);
        assert!(out.contains("guard attached (/run/modtrace/guard.json missing: mode and profile unknown)"), "{out}");
        assert!(out.contains("5 allowed, 2 denied, 0 would deny; 1 lost (never logged); 4 skipped"), "{out}");
        assert!(said.text(Stream::Err).contains("skipped the guard's hook 4 time(s)"));
        assert!(text(&report(Some(running(Some(0))))).text(Stream::Err).is_empty());
        let r = report(Some(running(None)));
        let v: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!((v["active"].as_bool(), v["generation"].as_u64()), (Some(true), Some(3)));
        assert_eq!((v["attached"].as_bool(), v["lsm_active"].as_bool()), (Some(true), Some(true)));
        assert!(v["decisions"]["skipped"].is_null());
        assert_eq!(r.exit_code(), 0);
    }

    #[test]
    fn enforcing_or_complaining_only_when_attached_with_the_bpf_lsm_active() {
        for (mode, word) in [(Mode::Enforce, "enforcing: mode enforce"), (Mode::Complain, "complaining: mode complain")] {
            let mut status = running(Some(0));
            status.state = Some(state(mode));
            let out = text(&report(Some(status))).text(Stream::Out);
            assert!(out.starts_with(&format!("modtrace: guard {word}, since 2026-12-07T20:00:00Z, profile /p.json")), "{out}");
        }
        let mut status = running(Some(0));
        status.state = Some(state(Mode::Enforce));
        let r = Report { lsm: Err(INACTIVE.into()), guard: Some(status) };
        let said = text(&r);
        assert!(said.text(Stream::Out).starts_with("modtrace: guard not in force (the BPF LSM is not active)"));
        assert!(!said.text(Stream::Out).contains("enforcing"));
        assert_eq!(said.text(Stream::Err), format!("modtrace: {INACTIVE}\n"));
        let v: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!((v["active"].as_bool(), v["attached"].as_bool(), v["lsm_active"].as_bool()), (Some(false), Some(true), Some(false)));
        assert_eq!(r.exit_code(), 1);
        // No guard at all: the LSM is still named, and the exit is an error's.
        let r = Report { lsm: Err(INACTIVE.into()), guard: None };
        assert_eq!((r.exit_code(), text(&r).text(Stream::Err)), (1, format!("modtrace: {INACTIVE}\n")));
    }

    #[test]
    fn a_guard_detached_behind_the_back_says_which_programs() {
        let mut status = running(Some(0));
        status.state = Some(state(Mode::Enforce));
        status.programs[1].link = Link::Missing;
        status.programs[2].link = Link::Pinned { tracing: true, prog_id: Some(99) };
        let r = report(Some(status));
        let said = text(&r);
        let out = said.text(Stream::Out);
        assert!(out.starts_with("modtrace: guard detached (guard_read_file, guard_load_data not attached): mode enforce"), "{out}");
        assert!(!out.contains("enforcing"), "{out}");
        let err = said.text(Stream::Err);
        assert!(err.contains("detached behind modtrace's back") && err.contains("decides only in part"), "{err}");
        assert!(err.contains("modtrace guard start --profile /p.json --mode enforce"), "{err}");
        let v: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!((v["active"].as_bool(), v["attached"].as_bool()), (Some(false), Some(false)));
        assert_eq!(v["detached"], serde_json::json!(["guard_read_file", "guard_load_data"]));
        assert_eq!(r.exit_code(), EXIT_DETACHED);
        // Every pin removed, the state left: all of it detached, no counters.
        let gone = Status {
            counts: None,
            generation: Some(2),
            state: Some(state(Mode::Enforce)),
            sealed: false,
            programs: kernel::PROGRAMS.iter().map(|(name, _)| Program { name, prog_id: None, link: Link::Missing }).collect(),
        };
        let r = report(Some(gone));
        assert!(text(&r).text(Stream::Err).contains("so it decides nothing"));
        assert!(!text(&r).text(Stream::Out).contains("decisions:"));
        assert_eq!(r.exit_code(), EXIT_DETACHED);
    }

    #[test]
    fn a_sealed_guard_says_so_with_its_refusals() {
        let mut status = running(None);
        status.sealed = true;
        status.state = Some(state(Mode::Enforce));
        status.counts.as_mut().unwrap().refused = 7;
        let out = text(&report(Some(status))).text(Stream::Out);
        assert!(out.contains("guard enforcing: mode enforce, sealed until the next boot"), "{out}");
        assert!(out.contains("sealed: 7 attempt(s) to undo the guard refused"), "{out}");
        assert!(out.contains("a sealed guard's programs cannot be opened"), "{out}");
        let mut status = running(None);
        status.sealed = true;
        status.counts.as_mut().unwrap().refused = 7;
        status.programs[0].link = Link::Unknown;
        let r = report(Some(status));
        let v: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!((v["sealed"].as_bool(), v["decisions"]["refused"].as_u64()), (Some(true), Some(7)));
        assert!(v["attached"].is_null() && v["active"] == false, "{v}");
        assert!(text(&r).text(Stream::Out).contains("attachment unknown"));
        assert_eq!(r.exit_code(), 0);
        assert!(!text(&report(Some(running(Some(0))))).text(Stream::Out).contains("sealed"));
    }
}
