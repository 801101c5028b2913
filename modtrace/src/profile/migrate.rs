//! Reading older and hand-edited profiles: a modtrace-profile/1 file gets the
//! scopes its cgroup paths prove, and nothing more; lists that must be sorted
//! and unique are sorted, and duplicates are refused with their positions.

use super::model::{Loader, Profile, Requester, SCHEMA, SCHEMA_V1};
use crate::trace::scope::Scope;

fn scope_requester(r: &mut Requester) {
    r.scope = Scope::of(r.cgroup.as_deref());
}

fn scope_loader(l: &mut Loader) {
    l.scope = Scope::of(l.cgroup.as_deref());
}

impl Profile {
    /// Migrates a modtrace-profile/1 profile to the current schema. /1 kept no
    /// uid and no loader cgroup: uids stay unknown, and a scope is derived
    /// only from a recorded cgroup path (else unknown). So a migrated request
    /// or explicit load is not trusted by itself; `modtrace review` or a new
    /// learning session decides (docs/profile.md).
    pub fn migrate_v1(&mut self) {
        self.schema = SCHEMA.to_string();
        self.migrated_from = Some(SCHEMA_V1.to_string());
        for m in &mut self.modules {
            for t in &mut m.triggers {
                t.requester.iter_mut().chain(t.also_requested_by.iter_mut()).for_each(scope_requester);
                t.loader.iter_mut().for_each(scope_loader);
            }
        }
        for r in &mut self.requests {
            r.requesters.iter_mut().for_each(|c| scope_requester(&mut c.who));
        }
        for f in &mut self.failed {
            scope_loader(&mut f.loader);
            f.requester.iter_mut().for_each(scope_requester);
        }
    }

    /// Sorts the lists looked up by key (modules, requests, decisions, boots);
    /// refuses two entries with the same key, naming both positions.
    pub fn normalize(&mut self) -> Result<(), String> {
        fn unique<T>(list: &mut [T], what: &str, key: impl Fn(&T) -> &str) -> Result<(), String> {
            let mut order: Vec<usize> = (0..list.len()).collect();
            order.sort_by(|a, b| key(&list[*a]).cmp(key(&list[*b])).then(a.cmp(b)));
            for pair in order.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                if key(&list[a]) == key(&list[b]) {
                    return Err(format!(
                        "{what}[{a}] and {what}[{b}] are both {:?}: a hand edit? keep one entry (add up their counts) and retry",
                        key(&list[a])
                    ));
                }
            }
            list.sort_by(|x, y| key(x).cmp(key(y)));
            Ok(())
        }
        for m in &mut self.modules {
            m.name = crate::trace::modindex::normalize(&m.name);
        }
        unique(&mut self.modules, "modules", |m| m.name.as_str())?;
        unique(&mut self.requests, "requests", |r| r.alias.as_str())?;
        unique(&mut self.decisions, "decisions", |d| d.name.as_str())?;
        self.boots.sort();
        self.boots.dedup();
        Ok(())
    }
}
