//! An admin's decisions (modtrace allow, deny, review): what a name means in a
//! profile, and writing a decision into the profile file under the learner's
//! lock, atomically, so that no learning run and no other decision is lost.

use std::path::Path;

use thiserror::Error;

use super::model::{Decision, DecisionTarget, Profile, Verdict};
use super::store::{self, StoreError};
use crate::validate::check_module;
use crate::trace::modindex::normalize;

#[derive(Debug, Error)]
pub enum DecideError {
    #[error("{0:?}: names starting with '-' are options, not modules or aliases")]
    Dash(String),
    #[error("{name:?} is not a module name or an alias: {rule}")]
    Invalid { name: String, rule: &'static str },
    #[error("{0}: the profile neither has a module nor a request by that name; nothing asked for it, so there is nothing to accept (modtrace report lists what is there)")]
    Unknown(String),
    #[error("the profile cannot be used:\n{}", .0.join("\n"))]
    Unusable(Vec<String>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Decision {
    /// "module" or "alias".
    pub fn target_word(&self) -> &'static str {
        match self.target {
            DecisionTarget::Module => "module",
            DecisionTarget::Alias => "alias",
        }
    }
}

/// What `name` names in `profile`: an alias the kernel requested (kept as
/// requested), else a module (normalised). A name the profile does not know
/// may be denied as a module, never allowed.
pub fn target_of(profile: &Profile, name: &str, verdict: Verdict) -> Result<(String, DecisionTarget), DecideError> {
    if name.starts_with('-') {
        return Err(DecideError::Dash(name.to_string()));
    }
    let is_alias = profile.requests.iter().any(|r| r.alias == name)
        || profile.modules.iter().flat_map(|m| &m.triggers).any(|t| t.alias.as_deref() == Some(name))
        || profile.folded_requests.iter().any(|f| f.aliases.iter().any(|a| a == name));
    if is_alias {
        return Ok((name.to_string(), DecisionTarget::Alias));
    }
    let module = normalize(name);
    check_module(&module).map_err(|rule| DecideError::Invalid { name: name.to_string(), rule })?;
    if profile.module(&module).is_none() && verdict == Verdict::Allow {
        return Err(DecideError::Unknown(name.to_string()));
    }
    Ok((module, DecisionTarget::Module))
}

/// Records `verdict` on `name` in `profile`, at `time`.
pub fn decide(profile: &mut Profile, name: &str, verdict: Verdict, time: &str) -> Result<Decision, DecideError> {
    let (name, target) = target_of(profile, name, verdict)?;
    let d = Decision { name, target, verdict, time: time.to_string(), extra: Default::default() };
    profile.decide(d.clone());
    Ok(d)
}

/// Loads the profile at `path` under the learner's lock, lets `change` decide,
/// and saves it atomically when `change` succeeds. An unreadable profile is
/// never written.
pub fn update<T>(path: &Path, change: impl FnOnce(&mut Profile) -> Result<T, DecideError>) -> Result<T, DecideError> {
    // Before the lock, whose file would need the profile's directory.
    store::load_existing(path)?;
    let _lock = store::lock(path)?;
    let mut profile = store::load_existing(path)?;
    let out = change(&mut profile)?;
    store::save(path, &profile)?;
    Ok(out)
}

/// `modtrace allow|deny NAME`: records the verdict in the profile at `path`
/// (under the learner's lock) and says what it means.
pub fn record(path: &Path, name: &str, verdict: Verdict) -> Result<String, DecideError> {
    let d = update(path, |p| decide(p, name, verdict, &crate::system::now()))?;
    let what = match verdict {
        Verdict::Allow => "accepted: modtrace generate lists it",
        Verdict::Deny => "denied: never listed; generate --deny refuses it",
    };
    Ok(format!("{} {}: {what} (recorded in {})", d.target_word(), d.name, path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{example_profile, TempDir};

    #[test]
    fn names_are_aliases_or_modules_and_options_are_refused() {
        let p = example_profile();
        assert_eq!(target_of(&p, "net-pf-5", Verdict::Allow).unwrap(), ("net-pf-5".into(), DecisionTarget::Alias));
        assert_eq!(
            target_of(&p, "snd-hda-intel", Verdict::Allow).unwrap(),
            ("snd_hda_intel".into(), DecisionTarget::Module)
        );
        assert!(matches!(target_of(&p, "-r", Verdict::Deny), Err(DecideError::Dash(_))));
        assert!(matches!(target_of(&p, "--force", Verdict::Allow), Err(DecideError::Dash(_))));
        assert!(matches!(target_of(&p, "nope", Verdict::Allow), Err(DecideError::Unknown(_))));
        assert_eq!(target_of(&p, "cramfs", Verdict::Deny).unwrap(), ("cramfs".into(), DecisionTarget::Module));
        assert!(matches!(target_of(&p, "a b", Verdict::Deny), Err(DecideError::Invalid { .. })));
    }

    #[test]
    fn decisions_are_saved_survive_relearning_and_the_later_one_wins() {
        let dir = TempDir::new("decide");
        let path = dir.join("profile.json");
        store::save(&path, &example_profile()).unwrap();
        update(&path, |p| decide(p, "net-pf-5", Verdict::Deny, "2024-03-02T00:00:00Z")).unwrap();
        update(&path, |p| decide(p, "snd_hda_intel", Verdict::Allow, "2024-03-02T00:00:01Z")).unwrap();
        let mut p = store::load(&path).unwrap();
        assert_eq!(p.decisions.len(), 2);
        assert_eq!(p.decision("net-pf-5").unwrap().verdict, Verdict::Deny);

        // Relearning: a session (no decisions) merges in and keeps them.
        let mut session = example_profile();
        session.decisions.clear();
        p.merge(session);
        assert_eq!(p.decisions.len(), 2);
        // Merging a profile with an older decision keeps the newer one; a later one wins.
        let mut other = example_profile();
        decide(&mut other, "net-pf-5", Verdict::Allow, "2024-03-01T00:00:00Z").unwrap();
        p.merge(other);
        assert_eq!(p.decision("net-pf-5").unwrap().verdict, Verdict::Deny);
        let mut other = example_profile();
        decide(&mut other, "net-pf-5", Verdict::Allow, "2024-03-03T00:00:00Z").unwrap();
        p.merge(other);
        assert_eq!(p.decision("net-pf-5").unwrap().verdict, Verdict::Allow);

        // An unreadable profile is refused and left as it is.
        std::fs::write(&path, "{").unwrap();
        assert!(update(&path, |p| decide(p, "net-pf-5", Verdict::Deny, "x")).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{");
    }
}
