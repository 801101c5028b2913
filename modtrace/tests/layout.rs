//! The crate's layout rule: data flows one way, and no stage's code imports a
//! later stage (tests, which may check a verdict end to end, are not counted).

use std::path::Path;

/// The stages in data-flow order (lib.rs says why).
const ORDER: [&str; 8] = ["system", "loader", "trace", "profile", "needs", "learn", "guard", "outputs"];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && path.file_name().is_some_and(|n| n != "tests.rs") {
            out.push(path);
        }
    }
}

/// The code of a file, without its `#[cfg(test)]` items: a `mod x;` line, or
/// an inline module, which runs to the end of the file by this crate's custom.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "#[cfg(test)]" {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        match lines.next() {
            Some(item) if item.trim_end().ends_with(';') => {}
            _ => break,
        }
    }
    out
}

fn later_imports(stage: &str, text: &str) -> Vec<String> {
    let pos = ORDER.iter().position(|s| *s == stage).unwrap();
    let code = code(text);
    let mut found = Vec::new();
    for later in &ORDER[pos + 1..] {
        for other in [format!("crate::{later}::"), format!("crate::{later};"), format!("crate::{later}}}")] {
            if code.contains(&other) {
                found.push(later.to_string());
            }
        }
    }
    found.dedup();
    found
}

#[test]
fn no_stage_imports_a_later_one() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut bad = Vec::new();
    for stage in ORDER {
        let mut files = Vec::new();
        let dir = src.join(stage);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        } else {
            files.push(src.join(format!("{stage}.rs")));
        }
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for later in later_imports(stage, &text) {
                bad.push(format!("{} imports {later}", f.strip_prefix(&src).unwrap().display()));
            }
        }
    }
    assert!(bad.is_empty(), "stages import later ones: {bad:#?}");
}

#[test]
fn the_check_sees_a_later_import() {
    assert_eq!(later_imports("trace", "use crate::profile::Profile;\n"), ["profile"]);
    assert_eq!(later_imports("trace", "use crate::loader::Probes;\n"), Vec::<String>::new());
    assert_eq!(later_imports("needs", "fn f() {}\n#[cfg(test)]\nmod tests { use crate::outputs::x; }\n"), Vec::<String>::new());
    let after_test_decl = "#[cfg(test)]\nmod tests;\nuse crate::guard::x;\n";
    assert_eq!(later_imports("needs", after_test_decl), ["guard"], "code after `mod tests;` still counts");
}
