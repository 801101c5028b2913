//! A named check and its verdict, one type for every suite: the guest's
//! (guest/checks.rs), the system test's (system/checks.rs) and the package's
//! (package/). Each suite has its own facts and a table of named check
//! functions over them; this runs a table and prints the verdicts.

/// One check's name and verdict; the error carries the evidence.
pub struct Check {
    pub name: &'static str,
    pub result: Result<(), String>,
}

/// A check over a suite's facts `F`.
pub type CheckFn<F> = fn(&F) -> Result<(), String>;

/// Runs every check of `table` on `facts`, in the table's order.
pub fn run<F>(table: &[(&'static str, CheckFn<F>)], facts: &F) -> Vec<Check> {
    table.iter().map(|&(name, check)| Check { name, result: check(facts) }).collect()
}

/// How many of `checks` failed.
pub fn failed(checks: &[Check]) -> usize {
    checks.iter().filter(|c| c.result.is_err()).count()
}

/// One indented `PASS name` or `FAIL name: why` line per check.
pub fn print(checks: &[Check]) {
    for check in checks {
        match &check.result {
            Ok(()) => println!("   PASS {}", check.name),
            Err(why) => println!("   FAIL {}: {why}", check.name),
        }
    }
}
