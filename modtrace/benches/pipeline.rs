//! Cost of the userspace stages per event, as ratios against decoding alone,
//! measured in the same run (absolute times on these machines are noise).
//!
//! `cargo bench -p modtrace --bench pipeline`

use std::{hint::black_box, time::Instant};

use modtrace::trace::{
    attribute::Describe,
    correlate::{Correlator, MAX_PENDING},
    decode::{decode, encode},
    event::{Body, Event, Parent, Process, Syscall, Task},
    modindex::StaticIndex,
    output,
};

/// Describes tasks from the event alone, so the bench measures the join, not /proc.
struct Plain;

impl Describe for Plain {
    fn process(&mut self, t: &Task) -> Process {
        Process::from_task(t)
    }
    fn parent(&mut self, t: &Task) -> Option<Parent> {
        t.ppid.map(|pid| Parent { pid, comm: t.parent_comm.clone(), exe: None, unit: None })
    }
    fn wall_time(&mut self, ts: u64) -> String {
        format!("{ts}")
    }
}

fn index() -> StaticIndex {
    StaticIndex::default()
        .alias("net-pf-5", "appletalk")
        .module("appletalk", &["psnap", "llc"])
        .module("psnap", &["llc"])
        .module("llc", &[])
}

fn task(pid: u32, comm: &str, parent: &str) -> Task {
    let kthread = parent.starts_with("kworker");
    let args = kthread.then(|| ["/sbin/modprobe", "-q", "--", "net-pf-5"].map(String::from).to_vec());
    Task {
        pid,
        tgid: pid,
        ppid: Some(2),
        cgroup_id: 1,
        comm: comm.into(),
        parent_comm: Some(parent.into()),
        args,
        parent_is_kthread: Some(kthread),
        is_kthread: Some(false),
        start_time_ns: Some(u64::from(pid)),
        ..Task::default()
    }
}

fn ev(ts_ns: u64, task: Task, body: Body) -> Event {
    Event { ts_ns, task, body }
}

fn load(ret: i64) -> Body {
    Body::Load { syscall: Syscall::FinitModule, fd: Some(3), flags: 0, image_len: 0, params: String::new(), ret, repeats: 0 }
}

/// An autoload (request, three helper loads and results) followed by ten failed
/// attempts, repeated: what a busy machine under a failing-load flood sends.
fn workload(rounds: u32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut ts = 0;
    for i in 0..rounds {
        let app = task(10_000 + i, "app", "bash");
        let helper = task(50_000 + i, "modprobe", "kworker/u4:1");
        let mut push = |t: Task, b: Body| {
            ts += 1000;
            out.push(encode::event(&ev(ts, t, b)));
        };
        push(app, Body::Request { alias: "net-pf-5".into(), wait: true, call_site: 0, call_site_name: String::new(), repeats: 0 });
        for m in ["llc", "psnap", "appletalk"] {
            push(helper.clone(), Body::Loaded { module: m.into(), taints: 0 });
            push(helper.clone(), load(0));
        }
        for _ in 0..10 {
            push(task(90_000, "spam", "bash"), load(-1));
        }
    }
    out
}

fn per_event_ns(events: usize, f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_nanos() as f64 / events as f64
}

fn main() {
    let bytes = workload(20_000);
    let n = bytes.len();
    // Warm up, then measure each stage on the same input.
    for b in bytes.iter().take(1000) {
        black_box(decode(b).ok());
    }
    let decode_ns = per_event_ns(n, || {
        for b in &bytes {
            black_box(decode(b).ok());
        }
    });
    let events: Vec<Event> = bytes.iter().map(|b| decode(b).unwrap()).collect();
    let mut records = Vec::with_capacity(n);
    let correlate_ns = per_event_ns(n, || {
        let mut c = Correlator::new(index());
        for e in events.clone() {
            records.push(c.handle(e, &mut Plain));
        }
    });
    let json_ns = per_event_ns(n, || {
        for r in &records {
            black_box(output::json(r));
        }
    });
    let flood_ns = per_event_ns(MAX_PENDING * 4, || {
        let mut c = Correlator::new(index());
        for i in 0..(MAX_PENDING as u32 * 4) {
            let e = ev(u64::from(i), task(i, "app", "bash"), Body::Request { alias: "net-pf-5".into(), wait: true, call_site: 0, call_site_name: String::new(), repeats: 0 });
            black_box(c.handle(e, &mut Plain));
        }
        println!("request flood: {} requests kept (bound {MAX_PENDING}), {} evicted", c.pending(), c.evicted());
    });
    println!("events: {n}");
    println!("baseline decode:            1.00");
    println!("correlate (join + records): {:.2} x decode", correlate_ns / decode_ns);
    println!("JSON rendering:             {:.2} x decode", json_ns / decode_ns);
    println!("request flood, per request: {:.2} x decode", flood_ns / decode_ns);
}
