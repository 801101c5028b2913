//! `guard status`: whether a guard is pinned, what it enforces, and what it
//! decided so far.

use super::kernel::{self, Counts};
use super::State;
use crate::said::Said;

/// A pinned guard as `guard status` shows it.
#[derive(Debug)]
pub struct Status {
    pub counts: Counts,
    pub generation: Option<u32>,
    /// None: the state file is gone (mode and profile unknown).
    pub state: Option<State>,
    /// Sealed until the next boot (told by its pins, not by the state file).
    pub sealed: bool,
}

/// The guard's status, or None when none is pinned.
pub fn read() -> anyhow::Result<Option<Status>> {
    if !kernel::is_pinned() {
        return Ok(None);
    }
    let counts = kernel::counts()?;
    let state = super::read_state();
    // A sealed guard's config cannot be opened: its state file says.
    let sealed = super::seal::is_sealed();
    let generation = match sealed {
        true => state.as_ref().map(|s| s.generation),
        false => kernel::current_config()?.map(|c| c.generation),
    };
    Ok(Some(Status { counts, generation, state, sealed }))
}

/// One JSON object: `{"active": false}` when no guard is pinned.
pub fn json(status: Option<&Status>) -> String {
    match status {
        None => serde_json::json!({ "active": false }).to_string(),
        Some(s) => serde_json::json!({
            "active": true, "sealed": s.sealed, "state": s.state, "generation": s.generation, "decisions": s.counts
        })
        .to_string(),
    }
}

/// The status in words.
pub fn text(status: Option<&Status>) -> Said {
    let mut said = Said::default();
    let Some(status) = status else {
        said.out("modtrace: the guard is not running");
        return said;
    };
    let sealed = if status.sealed { ", sealed until the next boot" } else { "" };
    said.out(match &status.state {
        Some(s) => format!(
            "modtrace: guard active, mode {}{sealed}, since {}, profile {} (kernel {}): {} modules allowed ({} files, {} request names), init_module {}",
            s.mode.as_str(),
            s.since,
            s.profile.display(),
            s.kernel,
            s.modules,
            s.files,
            s.aliases,
            if s.allow_init_module { "allowed" } else { "not allowed" }
        ),
        None => format!("modtrace: guard active{sealed} ({} missing: mode and profile unknown)", super::STATE_FILE),
    });
    let c = &status.counts;
    said.out(format!(
        "decisions: {} allowed, {} denied, {} would deny; {} lost (never logged); {}",
        c.allowed,
        c.denied,
        c.would_deny,
        c.lost,
        skipped_words(c.skipped, status.sealed)
    ));
    if status.sealed {
        said.out(format!("sealed: {} attempt(s) to undo the guard refused (journalctl -t modtrace-guard)", c.refused));
    }
    if let Some(skipped) = c.skipped.filter(|n| *n > 0) {
        said.err(format!(
            "modtrace: warning: the kernel skipped the guard's hook {skipped} time(s) (its program was already \
             running on that CPU, preempted): those operations went through undecided"
        ));
    }
    said
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
    use crate::said::Stream;

    fn running(skipped: Option<u64>) -> Status {
        let counts = Counts { allowed: 5, denied: 2, would_deny: 0, lost: 1, skipped, refused: 0 };
        Status { counts, generation: Some(3), state: None, sealed: false }
    }

    #[test]
    fn no_guard_says_so_in_words_and_in_json() {
        assert_eq!(text(None).text(Stream::Out), "modtrace: the guard is not running\n");
        assert_eq!(json(None), r#"{"active":false}"#);
    }

    #[test]
    fn a_running_guard_shows_its_counts_and_warns_of_skipped_hooks() {
        let said = text(Some(&running(Some(4))));
        let out = said.text(Stream::Out);
        assert!(out.contains("mode and profile unknown"), "{out}");
        assert!(out.contains("5 allowed, 2 denied, 0 would deny; 1 lost (never logged); 4 skipped"), "{out}");
        assert!(said.text(Stream::Err).contains("skipped the guard's hook 4 time(s)"));
        assert!(text(Some(&running(Some(0)))).text(Stream::Err).is_empty());
        let v: serde_json::Value = serde_json::from_str(&json(Some(&running(None)))).unwrap();
        assert_eq!((v["active"].as_bool(), v["generation"].as_u64()), (Some(true), Some(3)));
        assert!(v["decisions"]["skipped"].is_null());
    }

    #[test]
    fn a_sealed_guard_says_so_with_its_refusals() {
        let mut status = running(None);
        status.sealed = true;
        status.counts.refused = 7;
        let out = text(Some(&status)).text(Stream::Out);
        assert!(out.contains("guard active, sealed until the next boot"), "{out}");
        assert!(out.contains("sealed: 7 attempt(s) to undo the guard refused"), "{out}");
        assert!(out.contains("a sealed guard's programs cannot be opened"), "{out}");
        let v: serde_json::Value = serde_json::from_str(&json(Some(&status))).unwrap();
        assert_eq!((v["sealed"].as_bool(), v["decisions"]["refused"].as_u64()), (Some(true), Some(7)));
        assert!(!text(Some(&running(Some(0)))).text(Stream::Out).contains("sealed"));
    }
}
