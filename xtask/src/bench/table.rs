//! The bench guest's `BENCH figure=F tool=T run=N key=value...` lines turned
//! into the table of medians and ratios (markdown and JSON), and bpftool's
//! per-program run time.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// The counts tests/bench/init runs with (/etc/bench.env).
pub struct Settings {
    pub runs: u32,
    pub fail_calls: u64,
    pub req_calls: u64,
    pub flood_procs: u32,
    pub flood_reqs: u32,
    pub flood_fails: u32,
    pub idle_secs: u32,
    /// Loads (and removals) of the guard's module per storm.
    pub guard_loads: u32,
    /// open(2) calls per storm of the seal's figure.
    pub guard_opens: u64,
    /// Only the guard's figures (`--guard-only`).
    pub guard_only: bool,
}

impl Settings {
    /// The figures: 200k failed loads, 2000 requests, 20 s idle.
    pub fn full(runs: u32) -> Settings {
        Settings {
            runs,
            fail_calls: 200_000,
            req_calls: 2000,
            flood_procs: 200,
            flood_reqs: 5,
            flood_fails: 1000,
            idle_secs: 20,
            guard_loads: 40,
            guard_opens: 50_000,
            guard_only: false,
        }
    }

    pub fn smoke() -> Settings {
        Settings {
            runs: 1,
            fail_calls: 20_000,
            req_calls: 200,
            flood_procs: 20,
            flood_reqs: 5,
            flood_fails: 1000,
            idle_secs: 2,
            guard_loads: 5,
            guard_opens: 5000,
            guard_only: false,
        }
    }

    pub fn env_file(&self, modules: &[&str], guard_module: &str) -> String {
        format!(
            "RUNS={}\nFAIL_CALLS={}\nREQ_CALLS={}\nFLOOD_PROCS={}\nFLOOD_REQS={}\nFLOOD_FAILS={}\nIDLE_SECS={}\nLOAD_MODULES=\"{}\"\n\
             GUARD_MODULE={guard_module}\nGUARD_LOADS={}\nGUARD_OPENS={}\nGUARD_ONLY={}\n",
            self.runs,
            self.fail_calls,
            self.req_calls,
            self.flood_procs,
            self.flood_reqs,
            self.flood_fails,
            self.idle_secs,
            modules.join(" "),
            self.guard_loads,
            self.guard_opens,
            u8::from(self.guard_only)
        )
    }

    pub fn describe(&self) -> String {
        let guard = format!("guard: {} loads and removals, {} opens per storm", self.guard_loads, self.guard_opens);
        if self.guard_only {
            return format!("{} run(s); {guard}", self.runs);
        }
        format!(
            "{} run(s) per figure and tool; {} failed loads, {} requests (two storms of half), flood of {} processes x ({} sockets + {} failed loads), idle {} s; {guard}",
            self.runs,
            self.fail_calls,
            self.req_calls,
            self.flood_procs,
            self.flood_reqs,
            self.flood_fails,
            self.idle_secs
        )
    }
}

pub const TOOLS: [&str; 3] = ["untraced", "bpftrace", "modtrace"];
const FIGURES: [&str; 5] = ["launch", "first-event", "failed-loads", "requests", "flood"];
/// The guard's figures every kernel sends (guard-image-load only where
/// modules are compressed), and the states they are timed in.
const GUARD_FIGURES: [&str; 3] = ["guard-load", "guard-fork-load", "guard-open"];
pub const GUARD_TOOLS: [&str; 3] = ["untraced", "guard", "sealed"];

/// One guest line's values.
type Line = BTreeMap<String, String>;

/// Every BENCH line, by figure and tool.
#[derive(Default)]
pub struct Figures {
    lines: BTreeMap<(String, String), Vec<Line>>,
}

impl Figures {
    pub fn parse(console: &[String]) -> Figures {
        let mut figures = Figures::default();
        for line in console {
            let Some(rest) = line.trim_end().strip_prefix("BENCH ") else { continue };
            let values: Line = rest
                .split_whitespace()
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let (Some(figure), Some(tool)) = (values.get("figure"), values.get("tool")) else { continue };
            figures.lines.entry((figure.clone(), tool.clone())).or_default().push(values);
        }
        figures
    }

    pub(super) fn of(&self, figure: &str, tool: &str) -> &[Line] {
        self.lines.get(&(figure.to_string(), tool.to_string())).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The values of `key` over the runs, where they are numbers.
    pub(super) fn values(&self, figure: &str, tool: &str, key: &str) -> Vec<f64> {
        self.of(figure, tool).iter().filter_map(|l| l.get(key)?.parse().ok()).collect()
    }

    pub(super) fn median(&self, figure: &str, tool: &str, key: &str) -> Option<f64> {
        median(self.values(figure, tool, key))
    }

    /// A traced tool's cost against the baseline measured beside it: each of
    /// its storms' `key` over the mean of the untraced storms of that figure
    /// just before and after it (by `seq`; all of them where it has no
    /// neighbour), and the median of those ratios. The host moves the guest's
    /// speed from minute to minute, so a baseline minutes away says less.
    pub(super) fn paired_ratio(&self, figure: &str, tool: &str, key: &str) -> Option<f64> {
        let number = |l: &Line, k: &str| l.get(k)?.parse::<f64>().ok();
        let untraced: Vec<(f64, f64)> =
            self.of(figure, "untraced").iter().filter_map(|l| Some((number(l, "seq")?, number(l, key)?))).collect();
        let everywhere = self.median(figure, "untraced", key)?;
        let ratios = self.of(figure, tool).iter().filter_map(|l| {
            let value = number(l, key)?;
            let seq = number(l, "seq");
            let nearest = |before: bool| {
                let side = untraced.iter().filter(|(s, _)| seq.is_some_and(|seq| if before { *s < seq } else { *s > seq }));
                let pick = |a: &&(f64, f64), b: &&(f64, f64)| a.0.total_cmp(&b.0);
                if before { side.max_by(pick) } else { side.min_by(pick) }.map(|(_, v)| *v)
            };
            let baseline = match (nearest(true), nearest(false)) {
                (Some(a), Some(b)) => (a + b) / 2.0,
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => everywhere,
            };
            Some(value / baseline)
        });
        median(ratios.collect())
    }

    fn sum(&self, figure: &str, tool: &str, key: &str) -> f64 {
        self.values(figure, tool, key).iter().sum()
    }

    /// Figures with no line from a tool that should have sent one (the
    /// guard's alone with `guard_only`).
    pub fn missing(&self, guard_only: bool) -> Vec<String> {
        let mut out = Vec::new();
        for figure in GUARD_FIGURES {
            for tool in GUARD_TOOLS {
                if self.of(figure, tool).is_empty() {
                    out.push(format!("{figure}/{tool}"));
                }
            }
        }
        if guard_only {
            return out;
        }
        for figure in FIGURES {
            for tool in TOOLS {
                let traced_only = matches!(figure, "launch" | "first-event");
                if !(traced_only && tool == "untraced") && self.of(figure, tool).is_empty() {
                    out.push(format!("{figure}/{tool}"));
                }
            }
        }
        out
    }
}

pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// One row: what each tool measured, and whether modtrace met the goal.
pub struct Row {
    pub figure: &'static str,
    pub cells: [String; 3],
    pub goal: &'static str,
    pub met: Option<bool>,
}

/// The same storm under bpftrace counting the calls by result and doing
/// nothing else: what any program on that tracepoint costs. Context for the
/// failure row, with no goal of its own.
fn floor_row(f: &Figures) -> Row {
    let floor = f.median("failed-loads", FLOOR_TOOL, "ns_per_call");
    let counted = f.median("failed-loads", FLOOR_TOOL, "accounted").unwrap_or(0.0);
    let calls = f.median("failed-loads", FLOOR_TOOL, "calls").unwrap_or(0.0);
    let bpftrace = floor.map(|ns| {
        let r = f.paired_ratio("failed-loads", FLOOR_TOOL, "ns_per_call").map(|r| format!(" ({r:.1}x)")).unwrap_or_default();
        format!("{ns:.0}{r}, {counted:.0}/{calls:.0} counted")
    });
    let modtrace = ratio(f.median("failed-loads", "modtrace", "ns_per_call"), floor).map(|r| format!("{r:.2}x the floor"));
    Row {
        figure: "failed finit_module under bpftrace's count() alone (the floor), ns/call",
        cells: ["-".into(), or_dash(bpftrace), or_dash(modtrace)],
        goal: "-",
        met: None,
    }
}

/// The bench's name for bpftrace running tests/bench/count.bt.
const FLOOR_TOOL: &str = "bpftrace-count";

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?)
}

fn or_dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "-".into())
}

/// The table: start-up, the failure path, requests, the flood, memory and idle CPU.
pub fn rows(f: &Figures) -> Vec<Row> {
    vec![
        startup_row(f, "launch", "launch -> ready line", "ready_ms"),
        startup_row(f, "first-event", "launch -> first event", "first_event_ms"),
        seen_after_ready_row(f),
        failure_row(f),
        floor_row(f),
        request_row(f),
        flood_row(f),
        rss_row(f),
        idle_row(f),
    ]
}

/// Cells for a figure only the traced tools have: `-` for untraced.
fn traced_cells(bpftrace: Option<String>, modtrace: Option<String>) -> [String; 3] {
    ["-".into(), or_dash(bpftrace), or_dash(modtrace)]
}

/// Start-up, modtrace against bpftrace: the median of `key` in seconds.
fn startup_row(f: &Figures, figure: &str, label: &'static str, key: &str) -> Row {
    let secs = |tool| f.median(figure, tool, key).map(|ms| ms / 1000.0);
    let (b, m) = (secs("bpftrace"), secs("modtrace"));
    let r = ratio(m, b);
    let versus = r.map(|r| format!(" ({r:.2}x bpftrace)")).unwrap_or_default();
    Row {
        figure: label,
        cells: traced_cells(b.map(|b| format!("{b:.2} s")), m.map(|m| format!("{m:.2} s{versus}"))),
        goal: "<= 0.2x bpftrace",
        met: r.map(|r| r <= 0.2),
    }
}

/// Whether each tool saw the load made right after it said it was ready.
fn seen_after_ready_row(f: &Figures) -> Row {
    let seen = |tool| {
        let runs = f.of("launch", tool).len();
        format!("{}/{runs}", f.sum("launch", tool, "seen_after_ready"))
    };
    let m_runs = f.of("launch", "modtrace").len();
    Row {
        figure: "event right after ready seen",
        cells: ["-".into(), seen("bpftrace"), seen("modtrace")],
        goal: "all",
        met: (m_runs > 0).then(|| f.sum("launch", "modtrace", "seen_after_ready") as usize == m_runs),
    }
}

/// The failure path: ns per failed finit_module, and whether every attempt is accounted for.
fn failure_row(f: &Figures) -> Row {
    let m_ratio = f.paired_ratio("failed-loads", "modtrace", "ns_per_call");
    let all_accounted = f.of("failed-loads", "modtrace").iter().all(|l| l.get("accounted") == l.get("calls"));
    Row {
        figure: "failed finit_module, ns/call",
        cells: TOOLS.map(|tool| failure_cell(f, tool)),
        goal: "<= 2.0x untraced, all accounted",
        met: m_ratio.map(|r| r <= 2.0 && all_accounted),
    }
}

fn failure_cell(f: &Figures, tool: &str) -> String {
    let ns = f.median("failed-loads", tool, "ns_per_call");
    let mut cell = or_dash(ns.map(|ns| format!("{ns:.0}")));
    if tool == "untraced" {
        return cell;
    }
    if let Some(r) = f.paired_ratio("failed-loads", tool, "ns_per_call") {
        cell += &format!(" ({r:.1}x)");
    }
    let accounted = f.median("failed-loads", tool, "accounted").unwrap_or(0.0);
    let calls = f.median("failed-loads", tool, "calls").unwrap_or(0.0);
    cell += &format!(", {accounted:.0}/{calls:.0} accounted");
    let lost = f.median("failed-loads", tool, "lost").unwrap_or(0.0);
    if lost > 0.0 {
        cell += &format!(", {lost:.0} lost");
    }
    cell
}

/// request_module through the helper (/bin/true).
fn request_row(f: &Figures) -> Row {
    let cell = |tool| {
        let ms = f.median("requests", tool, "ms_per_call");
        let mut cell = or_dash(ms.map(|ms| format!("{ms:.2}")));
        if tool != "untraced" {
            if let Some(r) = f.paired_ratio("requests", tool, "ms_per_call") {
                cell += &format!(" ({r:.2}x)");
            }
        }
        cell
    };
    Row {
        figure: "request_module (modprobe=/bin/true), ms/call",
        cells: TOOLS.map(cell),
        goal: "<= 1.05x",
        met: f.paired_ratio("requests", "modtrace", "ms_per_call").map(|r| r <= 1.05),
    }
}

/// The flood: events lost, real loads seen, its time against untraced.
fn flood_row(f: &Figures) -> Row {
    let m_flood = f.of("flood", "modtrace");
    let clean = |l: &Line| {
        l.get("lost").map(String::as_str) == Some("0") && l.get("loads_seen").map(String::as_str) == Some("3")
    };
    Row {
        figure: "flood defeating folding during 3 real loads",
        cells: TOOLS.map(|tool| flood_cell(f, tool)),
        goal: "0 lost loads/requests",
        met: (!m_flood.is_empty()).then(|| m_flood.iter().all(clean)),
    }
}

fn flood_cell(f: &Figures, tool: &str) -> String {
    if f.of("flood", tool).is_empty() {
        return "-".to_string();
    }
    let s = f.median("flood", tool, "seconds");
    let seen = f.values("flood", tool, "loads_seen");
    let loads = format!("loads seen {}", seen.iter().map(|v| format!("{v:.0}/3")).collect::<Vec<_>>().join(" "));
    let time = or_dash(s.map(|s| match f.paired_ratio("flood", tool, "seconds") {
        Some(r) if tool != "untraced" => format!("{s:.2} s ({r:.2}x)"),
        _ => format!("{s:.2} s"),
    }));
    if tool == "untraced" {
        format!("{time}, {loads}")
    } else {
        format!("{time}, {}, {loads}", lost_range(&f.values("flood", tool, "lost")))
    }
}

/// `N lost`, or `A-B lost` over runs that differ.
fn lost_range(lost: &[f64]) -> String {
    match (lost.iter().cloned().reduce(f64::min), lost.iter().cloned().reduce(f64::max)) {
        (Some(a), Some(b)) if a == b => format!("{a:.0} lost"),
        (Some(a), Some(b)) => format!("{a:.0}-{b:.0} lost"),
        _ => "lost ?".into(),
    }
}

/// Memory: the peak RSS during the flood.
fn rss_row(f: &Figures) -> Row {
    let rss = |tool| f.median("flood", tool, "peak_rss_kib").map(|k| k / 1024.0);
    let mb = |tool| rss(tool).map(|m| format!("{m:.1} MB"));
    Row {
        figure: "peak RSS (during the flood)",
        cells: traced_cells(mb("bpftrace"), mb("modtrace")),
        goal: "<= 12 MB",
        met: rss("modtrace").map(|m| m <= 12.0),
    }
}

/// Idle CPU once ready.
fn idle_row(f: &Figures) -> Row {
    let idle = |tool| f.median("launch", tool, "idle_ticks");
    let ticks = |tool| idle(tool).map(|t| format!("{t:.0}"));
    Row {
        figure: "idle CPU once ready, ticks",
        cells: traced_cells(ticks("bpftrace"), ticks("modtrace")),
        goal: "0",
        met: idle("modtrace").map(|t| t == 0.0),
    }
}

/// Per eBPF program: runs, total and mean run time (kernel.bpf_stats_enabled).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProgramTime {
    pub name: String,
    pub kind: String,
    pub run_cnt: u64,
    pub run_time_ns: u64,
    pub xlated: Option<u64>,
    /// Instructions the verifier processed (`modtrace-guest bench programs`).
    pub verified_insns: Option<u64>,
}

/// `bpftool prog show` text: `ID: TYPE  name NAME  tag ... run_time_ns N run_cnt M`
/// with `xlated NB` on a following line, then the guest tool's
/// `program name=NAME xlated=B verified_insns=I` lines. Every program, run or not.
pub fn parse_bpftool(lines: &[String]) -> Vec<ProgramTime> {
    let mut out: Vec<ProgramTime> = Vec::new();
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |key: &str| words.iter().position(|w| *w == key).and_then(|i| words.get(i + 1)).copied();
        if words.first().is_some_and(|w| w.ends_with(':') && w[..w.len() - 1].parse::<u64>().is_ok()) {
            out.push(ProgramTime {
                name: after("name").unwrap_or("?").to_string(),
                kind: words.get(1).unwrap_or(&"?").to_string(),
                run_cnt: after("run_cnt").and_then(|v| v.parse().ok()).unwrap_or(0),
                run_time_ns: after("run_time_ns").and_then(|v| v.parse().ok()).unwrap_or(0),
                xlated: None,
                verified_insns: None,
            });
        } else if words.first() == Some(&"program") {
            let value = |key: &str| words.iter().find_map(|w| w.strip_prefix(key)?.strip_prefix('='));
            // The kernel keeps 15 characters of a name; bpftool shows BTF's whole name.
            let name = value("name").unwrap_or("?");
            let same = |p: &ProgramTime| p.name.starts_with(name) || name.starts_with(p.name.as_str());
            if let Some(p) = out.iter_mut().find(|p| same(p)) {
                p.verified_insns = value("verified_insns").and_then(|v| v.parse().ok());
            }
        } else if let (Some(last), Some(x)) = (out.last_mut(), after("xlated")) {
            last.xlated = x.trim_end_matches('B').parse().ok();
        }
    }
    out
}

/// Instructions the 6.1 verifier may process per program before start-up is
/// slow again: 4316 at most since the probes zero by words (mem.rs), 16811
/// and 18979 before (module_request, exit_load_regs). The count is the same
/// on every run of one kernel, so unlike a time it can be asserted.
pub const VERIFIER_BUDGET: u64 = 8000;

/// The programs whose verification took more than VERIFIER_BUDGET, described.
pub fn over_verifier_budget(profile: &[ProgramTime]) -> Vec<String> {
    profile
        .iter()
        .filter_map(|p| Some((p, p.verified_insns.filter(|&n| n > VERIFIER_BUDGET)?)))
        .map(|(p, n)| format!("{} ({n} instructions verified)", p.name))
        .collect()
}

pub fn markdown(f: &Figures, profile: &[ProgramTime], machine: &str, date: &str) -> String {
    let mut s = format!(
        "Measured {date} with `cargo xtask bench`: {machine}; medians, and each ratio the median of a traced storm's against the nearest untraced storms of its figure before and after it.\n\n"
    );
    s += "| figure | untraced | bpftrace | modtrace | goal | met |\n|---|---|---|---|---|---|\n";
    for row in rows(f) {
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "no",
            None if row.goal == "-" => "-",
            None => "?",
        };
        s += &format!(
            "| {} | {} | {} | {} | {} | {met} |\n",
            row.figure, row.cells[0], row.cells[1], row.cells[2], row.goal
        );
    }
    let ran: Vec<&ProgramTime> = profile.iter().filter(|p| p.run_cnt > 0).collect();
    if !ran.is_empty() {
        s += "\nThe probes under modtrace (one failure storm, then a tenth of the request storm; kernel.bpf_stats_enabled=1, `bpftool prog show`):\n\n";
        s += "| program | type | runs | ns/run | xlated bytes |\n|---|---|---|---|---|\n";
        for p in ran {
            s += &format!(
                "| {} | {} | {} | {:.0} | {} |\n",
                p.name,
                p.kind,
                p.run_cnt,
                p.run_time_ns as f64 / p.run_cnt as f64,
                p.xlated.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
            );
        }
    }
    if profile.iter().any(|p| p.verified_insns.is_some()) {
        s += "\nWhat the verifier did for each program loaded (start-up's longest phase goes with it):\n\n";
        s += "| program | type | xlated bytes | instructions verified |\n|---|---|---|---|\n";
        for p in profile {
            let show = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
            s += &format!("| {} | {} | {} | {} |\n", p.name, p.kind, show(p.xlated), show(p.verified_insns));
        }
    }
    s
}

pub fn json(f: &Figures, profile: &[ProgramTime], machine: &str) -> String {
    let mut raw = serde_json::Map::new();
    for ((figure, tool), lines) in &f.lines {
        raw.insert(format!("{figure}/{tool}"), json!(lines));
    }
    let rows: Vec<Value> = rows(f)
        .iter()
        .map(|r| json!({"figure": r.figure, "untraced": r.cells[0], "bpftrace": r.cells[1], "modtrace": r.cells[2], "goal": r.goal, "met": r.met}))
        .collect();
    let programs: Vec<Value> = profile
        .iter()
        .map(|p| json!({"name": p.name, "type": p.kind, "run_cnt": p.run_cnt, "run_time_ns": p.run_time_ns, "xlated": p.xlated, "verified_insns": p.verified_insns}))
        .collect();
    serde_json::to_string_pretty(&json!({"machine": machine, "table": rows, "runs": raw, "failure_path": programs}))
        .expect("plain values serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    /// The row whose figure starts with `figure`.
    fn row_of(f: &Figures, figure: &str) -> Row {
        rows(f).into_iter().find(|r| r.figure.starts_with(figure)).unwrap()
    }

    #[test]
    fn medians_and_ratios_come_from_the_guest_lines() {
        let f = Figures::parse(&console(&[
            "noise",
            "BENCH figure=failed-loads tool=untraced run=1 failed-loads pid=5 calls=100 failed=100 ns_per_call=600 accounted=100 lost=0",
            "BENCH figure=failed-loads tool=untraced run=2 failed-loads pid=6 calls=100 failed=100 ns_per_call=700 accounted=100 lost=0",
            "BENCH figure=failed-loads tool=untraced run=3 failed-loads pid=7 calls=100 failed=100 ns_per_call=650 accounted=100 lost=0",
            "BENCH figure=failed-loads tool=modtrace run=1 failed-loads pid=8 calls=100 failed=100 ns_per_call=1300 accounted=100 lost=0",
            "BENCH figure=failed-loads tool=bpftrace run=1 failed-loads pid=9 calls=100 failed=100 ns_per_call=2600 accounted=20 lost=80",
        ]));
        let row = row_of(&f, "failed finit_module, ns/call");
        assert_eq!(row.cells[0], "650");
        assert_eq!(row.cells[1], "2600 (4.0x), 20/100 accounted, 80 lost");
        assert_eq!(row.cells[2], "1300 (2.0x), 100/100 accounted");
        assert_eq!(row.met, Some(true));
        assert!(f.missing(false).contains(&"flood/modtrace".to_string()));
        let floor = row_of(&f, "failed finit_module under bpftrace");
        assert_eq!(floor.cells, ["-", "-", "-"].map(String::from), "no floor run: nothing to show");
    }

    #[test]
    fn each_traced_storm_is_measured_against_the_untraced_ones_beside_it() {
        let f = Figures::parse(&console(&[
            "BENCH figure=failed-loads tool=untraced run=1 seq=1 calls=100 ns_per_call=600",
            "BENCH figure=failed-loads tool=modtrace run=1 seq=2 calls=100 ns_per_call=1200 accounted=100 lost=0",
            "BENCH figure=failed-loads tool=untraced run=1 seq=3 calls=100 ns_per_call=600",
            "BENCH figure=failed-loads tool=modtrace run=2 seq=4 calls=100 ns_per_call=1140 accounted=100 lost=0",
            "BENCH figure=failed-loads tool=untraced run=2 seq=5 calls=100 ns_per_call=600",
            // The host slows the guest down: the baseline beside the storm moves with it.
            "BENCH figure=failed-loads tool=untraced run=3 seq=6 calls=100 ns_per_call=2000",
            "BENCH figure=failed-loads tool=modtrace run=3 seq=7 calls=100 ns_per_call=3600 accounted=100 lost=0",
            "BENCH figure=failed-loads tool=untraced run=3 seq=8 calls=100 ns_per_call=2000",
        ]));
        // 2.0x, 1.9x (600 before it, 600 after), 1.8x: the median of the pairs,
        // where the medians alone (1200 / 600) would say 2.0x.
        let row = row_of(&f, "failed finit_module, ns/call");
        assert_eq!(row.cells[0], "600");
        assert_eq!(row.cells[2], "1200 (1.9x), 100/100 accounted");
        assert_eq!(row.met, Some(true));
        // Between 4 and 10: 5 / 7; a storm with none after it takes the one before.
        let f = Figures::parse(&console(&[
            "BENCH figure=requests tool=untraced run=1 seq=1 ms_per_call=4",
            "BENCH figure=requests tool=modtrace run=1 seq=2 ms_per_call=5",
            "BENCH figure=requests tool=untraced run=2 seq=3 ms_per_call=10",
            "BENCH figure=requests tool=bpftrace run=2 seq=4 ms_per_call=11",
        ]));
        assert_eq!(row_of(&f, "request_module").cells[2], "5.00 (0.71x)");
        assert_eq!(row_of(&f, "request_module").cells[1], "11.00 (1.10x)");
        assert_eq!(row_of(&f, "request_module").met, Some(true));
    }

    #[test]
    fn the_floor_is_bpftraces_count_alone_in_the_same_run() {
        let f = Figures::parse(&console(&[
            "BENCH figure=failed-loads tool=untraced run=1 calls=100 ns_per_call=600",
            "BENCH figure=failed-loads tool=modtrace run=1 calls=100 ns_per_call=1200 accounted=100 lost=0",
            "BENCH figure=failed-loads tool=bpftrace-count run=1 calls=100 ns_per_call=1260 accounted=100 lost=0",
        ]));
        let floor = row_of(&f, "failed finit_module under bpftrace");
        assert_eq!(floor.cells[1], "1260 (2.1x), 100/100 counted");
        assert_eq!(floor.cells[2], "0.95x the floor");
        assert!(markdown(&f, &[], "m", "d").contains("| 0.95x the floor | - | - |"));
    }

    #[test]
    fn a_storm_not_all_accounted_misses_the_goal() {
        let f = Figures::parse(&console(&[
            "BENCH figure=failed-loads tool=untraced run=1 calls=100 ns_per_call=600",
            "BENCH figure=failed-loads tool=modtrace run=1 calls=100 ns_per_call=700 accounted=99 lost=1",
        ]));
        let row = row_of(&f, "failed finit_module, ns/call");
        assert_eq!(row.met, Some(false));
    }

    #[test]
    fn bpftool_lines_give_time_per_run() {
        let lines = console(&[
            "failed-loads pid=80 calls=10 failed=10 ns_per_call=900",
            "12: tracepoint  name load_enter  tag 0123456789abcdef  gpl run_time_ns 30000 run_cnt 10",
            "\tloaded_at 2026-12-01T21:00:00+0000  uid 0",
            "\txlated 2456B  jited 1400B  memlock 4096B  map_ids 3,4",
            "13: tracing  name fexit_finit_module  tag 0123456789abcdef  gpl",
            "\txlated 100B  jited 80B  memlock 4096B",
            "program name=load_enter xlated=2456 verified_insns=5000",
            "program name=fexit_finit_mod xlated=100 verified_insns=-",
            "program name=other xlated=1 verified_insns=7",
        ]);
        let p = parse_bpftool(&lines);
        assert_eq!(
            p,
            [
                ProgramTime {
                    name: "load_enter".into(),
                    kind: "tracepoint".into(),
                    run_cnt: 10,
                    run_time_ns: 30000,
                    xlated: Some(2456),
                    verified_insns: Some(5000),
                },
                ProgramTime {
                    name: "fexit_finit_module".into(),
                    kind: "tracing".into(),
                    run_cnt: 0,
                    run_time_ns: 0,
                    xlated: Some(100),
                    verified_insns: None,
                }
            ]
        );
        let table = markdown(&Figures::default(), &p, "m", "d");
        assert!(table.contains("| load_enter | tracepoint | 10 | 3000 | 2456 |"));
        assert!(!table.contains("| fexit_finit_module | tracing | 0 |"), "a program that never ran has no run time");
        assert!(table.contains("| load_enter | tracepoint | 2456 | 5000 |"));
        assert!(table.contains("| fexit_finit_module | tracing | 100 | - |"));
        assert!(over_verifier_budget(&p).is_empty());
        let mut heavy = p.clone();
        heavy[0].verified_insns = Some(VERIFIER_BUDGET + 1);
        assert_eq!(over_verifier_budget(&heavy), ["load_enter (8001 instructions verified)"]);
    }

    #[test]
    fn even_counts_take_the_middle_mean() {
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }
}
