//! Learning accumulates: a newer profile (or a session's observations) merges
//! into an existing one. Counts add, first_seen takes the earliest, last_seen the
//! latest, sessions append, boots are the distinct ids of both; fields this
//! modtrace does not know are kept (the newer value wins when both have one).

use serde_json::{Map, Value};

use super::bound::{add_folded, add_requester_bounded};
use super::model::{earliest, latest, time_cmp, AliasRequest, Module, Profile};
use super::observe::{add_trigger, insert_sorted};

fn merge_extra(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (k, v) in from {
        into.insert(k, v);
    }
}

impl Profile {
    /// Merges `newer` into `self`. Kernel and host become the newer ones;
    /// `settle` should follow to recompute dependencies for the current kernel.
    pub fn merge(&mut self, newer: Profile) {
        if !newer.kernel.is_empty() {
            self.kernel = newer.kernel;
        }
        if !newer.host.is_empty() {
            self.host = newer.host;
        }
        if newer.machine_id.is_some() {
            self.machine_id = newer.machine_id;
        }
        self.packages.units.extend(newer.packages.units);
        self.packages.executables.extend(newer.packages.executables);
        for b in newer.boots {
            insert_sorted(&mut self.boots, b);
        }
        self.sessions.extend(newer.sessions);
        merge_extra(&mut self.extra, newer.extra);
        for m in newer.modules {
            self.merge_module(m);
        }
        for r in newer.requests {
            self.merge_request(r);
        }
        for f in newer.failed {
            self.add_failure_bounded(f);
        }
        self.failed_folded += newer.failed_folded;
        for f in newer.folded_requests {
            add_folded(&mut self.folded_requests, f);
        }
        // An admin's decisions outlive relearning: the later of two wins.
        for d in newer.decisions {
            let keep_mine = self.decision(&d.name).is_some_and(|mine| time_cmp(&mine.time, &d.time).is_gt());
            if !keep_mine {
                self.decide(d);
            }
        }
        if self.migrated_from.is_none() {
            self.migrated_from = newer.migrated_from;
        }
    }

    fn merge_module(&mut self, m: Module) {
        let first_seen = m.first_seen.clone();
        let mine = self.module_mut(&m.name, &first_seen);
        mine.count += m.count;
        mine.first_seen = earliest(&mine.first_seen, &m.first_seen);
        mine.last_seen = latest(&mine.last_seen, &m.last_seen);
        if !m.depends_on.is_empty() || mine.depends_on.is_empty() {
            mine.depends_on = m.depends_on;
        }
        // Until `settle` recomputes them from the index, both sides' word counts.
        for n in m.needed_by {
            insert_sorted(&mut mine.needed_by, n);
        }
        mine.top_level = mine.needed_by.is_empty();
        for t in m.taints {
            insert_sorted(&mut mine.taints, t);
        }
        for t in m.triggers {
            add_trigger(&mut mine.triggers, t);
        }
        for h in m.hosts {
            insert_sorted(&mut mine.hosts, h);
        }
        merge_extra(&mut mine.extra, m.extra);
    }

    fn merge_request(&mut self, r: AliasRequest) {
        let mine = self.request_mut(&r.alias, &r.first_seen);
        mine.count += r.count;
        mine.first_seen = earliest(&mine.first_seen, &r.first_seen);
        mine.last_seen = latest(&mine.last_seen, &r.last_seen);
        for m in r.resolves_to {
            insert_sorted(&mut mine.resolves_to, m);
        }
        for who in r.requesters {
            add_requester_bounded(&mut mine.requesters, &mut mine.requesters_folded, who.who, who.count);
        }
        mine.requesters_folded += r.requesters_folded;
        merge_extra(&mut mine.extra, r.extra);
    }
}
