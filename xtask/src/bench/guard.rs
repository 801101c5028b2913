//! The guard's rows: the same allowed loads untraced, under `guard start
//! --mode enforce` and sealed (tests/bench/init's guard storms), and the
//! seal's inode_permission hook on a storm of opens; with the guard
//! programs' run time from bpftool.

use super::table::{Figures, ProgramTime, GUARD_TOOLS};

/// The bound on an allowed load under the guard.
pub const LOAD_GOAL: f64 = 1.1;

/// One row: a figure's cell per state (untraced, guard, sealed).
pub struct GuardRow {
    pub figure: String,
    pub cells: [String; 3],
    pub goal: &'static str,
    pub met: Option<bool>,
}

/// The rows for the figures the guest sent (no image row on 6.1, whose
/// modules are not compressed).
pub fn rows(f: &Figures, module: &str) -> Vec<GuardRow> {
    let mut rows = vec![load_row(
        f,
        "guard-load",
        format!("allowed load: finit_module + delete_module of {module}, us/load"),
    )];
    let label =
        format!("allowed load by a new process each (fork, finit_module, exit) + delete_module of {module}, us/load");
    rows.push(load_row(f, "guard-fork-load", label));
    if !f.of("guard-image-load", "untraced").is_empty() {
        let label =
            format!("allowed load from memory: init_module (--allow-init-module) + delete_module of {module}, us/load");
        rows.push(load_row(f, "guard-image-load", label));
    }
    rows.push(open_row(f));
    rows
}

fn cell(f: &Figures, figure: &str, tool: &str, key: &str) -> (String, Option<f64>) {
    let Some(value) = f.median(figure, tool, key) else { return ("-".into(), None) };
    if tool == "untraced" {
        return (format!("{value:.0}"), None);
    }
    let ratio = f.paired_ratio(figure, tool, key);
    let shown = ratio.map(|r| format!(" ({r:.2}x)")).unwrap_or_default();
    (format!("{value:.0}{shown}"), ratio)
}

fn load_row(f: &Figures, figure: &str, label: String) -> GuardRow {
    let cells = GUARD_TOOLS.map(|tool| cell(f, figure, tool, "us_per_load"));
    let ratios: Vec<f64> = cells[1..].iter().filter_map(|c| c.1).collect();
    GuardRow {
        figure: label,
        met: (!ratios.is_empty()).then(|| ratios.iter().all(|r| *r <= LOAD_GOAL)),
        cells: cells.map(|c| c.0),
        goal: "<= 1.1x untraced",
    }
}

/// The seal's hook runs on every permission check: its cost on opens.
fn open_row(f: &Figures) -> GuardRow {
    let files = f.median("guard-open", "untraced", "files").unwrap_or(0.0);
    GuardRow {
        figure: format!("open + close of {files:.0} files round robin (inode_permission), ns/open"),
        cells: GUARD_TOOLS.map(|tool| cell(f, "guard-open", tool, "ns_per_open").0),
        goal: "-",
        met: None,
    }
}

pub fn markdown(f: &Figures, profile: &[ProgramTime], module: &str) -> String {
    let mut s = "\nThe guard: the same storms untraced, under `guard start --mode enforce` (each between two untraced \
                 storms) and under `--sealed` (last: only a reboot ends it; against the untraced storms before it):\n\n"
        .to_string();
    s += "| figure | untraced | guard | sealed | goal | met |\n|---|---|---|---|---|---|\n";
    for row in rows(f, module) {
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "no",
            None if row.goal == "-" => "-",
            None => "?",
        };
        let [untraced, guarded, sealed] = &row.cells;
        s += &format!("| {} | {untraced} | {guarded} | {sealed} | {} | {met} |\n", row.figure, row.goal);
    }
    let ran: Vec<&ProgramTime> = profile.iter().filter(|p| p.run_cnt > 0 && p.name.starts_with("guard_")).collect();
    if !ran.is_empty() {
        s += "\nThe guard's programs over one load storm (and an image storm) and one open storm \
              (kernel.bpf_stats_enabled=1, `bpftool prog show`):\n\n";
        s += "| program | runs | ns/run |\n|---|---|---|\n";
        for p in ran {
            s += &format!("| {} | {} | {:.0} |\n", p.name, p.run_cnt, p.run_time_ns as f64 / p.run_cnt as f64);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(lines: &[&str]) -> Figures {
        Figures::parse(&lines.iter().map(|l| l.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn guarded_and_sealed_loads_are_paired_with_the_untraced_storms_beside_them() {
        let f = figures(&[
            "BENCH figure=guard-load tool=untraced run=1 seq=1 us_per_load=1000",
            "BENCH figure=guard-open tool=untraced run=1 seq=2 files=200 ns_per_open=5000",
            "BENCH figure=guard-load tool=guard run=1 seq=3 us_per_load=1300",
            "BENCH figure=guard-open tool=guard run=1 seq=4 files=200 ns_per_open=5000",
            "BENCH figure=guard-load tool=untraced run=1 seq=5 us_per_load=1600",
            "BENCH figure=guard-open tool=untraced run=1 seq=6 files=200 ns_per_open=5000",
            // Sealed last: only the untraced storms before it are there.
            "BENCH figure=guard-load tool=sealed run=1 seq=7 us_per_load=1700",
            "BENCH figure=guard-open tool=sealed run=1 seq=8 files=200 ns_per_open=6000",
        ]);
        let rows = rows(&f, "nls_ascii");
        assert_eq!(rows.len(), 3, "no image storm, no image row");
        // 1300 against (1000 + 1600) / 2; 1700 against 1600.
        assert_eq!(rows[0].cells, ["1300", "1300 (1.00x)", "1700 (1.06x)"].map(String::from));
        assert_eq!(rows[0].met, Some(true));
        assert_eq!(rows[1].cells, ["-", "-", "-"].map(String::from), "no fork storm: dashes");
        assert_eq!(rows[2].cells[2], "6000 (1.20x)");
        assert!(rows[2].figure.contains("200 files"));
        assert_eq!(f.missing(true), ["guard-fork-load/untraced", "guard-fork-load/guard", "guard-fork-load/sealed"]);
        assert!(f.missing(false).contains(&"flood/modtrace".to_string()));
    }

    #[test]
    fn a_load_over_the_bound_misses_the_goal_and_a_missing_state_is_named() {
        let f = figures(&[
            "BENCH figure=guard-load tool=untraced run=1 seq=1 us_per_load=100",
            "BENCH figure=guard-image-load tool=untraced run=1 seq=2 us_per_load=100",
            "BENCH figure=guard-load tool=guard run=1 seq=3 us_per_load=100",
            "BENCH figure=guard-image-load tool=guard run=1 seq=4 us_per_load=130",
            "BENCH figure=guard-load tool=untraced run=1 seq=5 us_per_load=100",
            "BENCH figure=guard-image-load tool=untraced run=1 seq=6 us_per_load=100",
        ]);
        let rows = rows(&f, "nls_ascii");
        assert_eq!(rows[0].met, Some(true));
        assert_eq!(rows[2].met, Some(false), "1.3x the untraced image loads");
        let missing = f.missing(true);
        assert!(missing.contains(&"guard-load/sealed".to_string()));
        assert!(missing.contains(&"guard-open/untraced".to_string()));
    }
}
