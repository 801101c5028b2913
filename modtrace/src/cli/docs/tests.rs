use std::collections::BTreeSet;

use clap::error::ErrorKind;

use super::*;
use crate::cli::{try_parse_from, Command};
use crate::testutil::TempDir;

/// The subcommands a user can call, by name.
fn visible_subcommands() -> Vec<String> {
    let mut root = crate::cli::command();
    root.build();
    root.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .map(|s| s.get_name().to_string())
        .collect()
}

/// The roff source with its escapes undone where they matter for a search:
/// `\-` is a hyphen, `\*(Aq` an apostrophe, font changes go.
fn plain(roff: &str) -> String {
    let mut text = roff.replace("\\-", "-").replace("\\*(Aq", "'");
    for font in ["\\fB", "\\fI", "\\fR", "\\fP"] {
        text = text.replace(font, "");
    }
    text
}

/// Whether a completion script offers the long option `name`.
fn offers(script_name: &str, script: &str, name: &str) -> bool {
    if script_name.ends_with(".fish") {
        script.contains(&format!("-l {name} ")) || script.contains(&format!("-l {name}\n"))
    } else {
        script.contains(&format!("--{name}"))
    }
}

fn pages() -> Vec<ManPage> {
    man_pages("").unwrap()
}

#[test]
fn every_command_has_a_page_and_every_page_a_command() {
    let commands: BTreeSet<String> = visible_subcommands().into_iter().collect();
    let paged: BTreeSet<String> =
        PAGES.iter().filter(|p| !p.command.is_empty()).map(|p| p.command.to_string()).collect();
    assert_eq!(commands, paged);
    assert!(page("").is_some(), "no page for modtrace itself");
    assert_eq!(PAGES.len(), commands.len() + 1, "a command has two pages");
    for name in ["trace", "learn", "report", "snapshot", "diff", "generate", "check", "lock"] {
        assert!(commands.contains(name), "{name} is missing");
    }
}

#[test]
fn one_man_page_per_command_and_none_for_hidden_ones() {
    let names: Vec<String> = pages().into_iter().map(|p| p.file_name).collect();
    let mut expected = vec!["modtrace.8".to_string()];
    expected.extend(visible_subcommands().iter().map(|s| format!("modtrace-{s}.8")));
    assert_eq!(names, expected);
    assert!(!names.iter().any(|n| n.contains("generate-docs") || n.contains("help")), "{names:?}");
}

#[test]
fn every_page_mentions_every_option_and_argument() {
    let commands = documented_commands();
    let pages = pages();
    assert_eq!(commands.len(), pages.len());
    for (cmd, page) in commands.iter().zip(&pages) {
        let text = plain(&page.roff);
        let mut seen = 0;
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                assert!(text.contains(&format!("--{long}")), "{}: --{long} missing", page.name);
            }
            if let Some(short) = arg.get_short() {
                assert!(text.contains(&format!("-{short}")), "{}: -{short} missing", page.name);
            }
            if arg.is_positional() {
                let name = arg.get_value_names().and_then(|v| v.first()).map(|v| v.to_string());
                let name = name.unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
                assert!(text.contains(&format!("<{name}>")), "{}: argument {name} missing", page.name);
            }
            if let Some(help) = arg.get_long_help().or_else(|| arg.get_help()) {
                let first_words: String = help.to_string().split_whitespace().take(3).collect::<Vec<_>>().join(" ");
                assert!(text.contains(&first_words), "{}: the help of {:?} missing", page.name, arg.get_id());
            }
            seen += 1;
        }
        assert!(seen >= 1, "{}: no option at all (not even --help)", page.name);
    }
    let diff = pages.iter().find(|p| p.name == "modtrace-diff").unwrap();
    for needle in ["<A>", "<B>", "--profile"] {
        assert!(plain(&diff.roff).contains(needle), "modtrace-diff: {needle} missing");
    }
}

#[test]
fn hidden_options_and_commands_stay_out_of_the_pages() {
    let commands = documented_commands();
    let pages = pages();
    let mut hidden = 0;
    for (cmd, page) in commands.iter().zip(&pages) {
        for arg in cmd.get_arguments().filter(|a| a.is_hide_set()) {
            let long = arg.get_long().expect("hidden options are long options");
            assert!(!plain(&page.roff).contains(&format!("--{long}")), "{}: hidden --{long} shown", page.name);
            hidden += 1;
        }
    }
    assert!(hidden >= 2, "the test options (--proc-modules, --root) are expected to be hidden");
    let top = plain(&pages[0].roff);
    assert!(!top.contains("generate-docs"));
    assert!(!top.contains("modtrace-help"));
}

#[test]
fn pages_have_title_sections_and_the_closing_sections() {
    for page in pages() {
        let title = format!(
            ".TH \"{}\" 8 \"\" \"modtrace {}\" \"System Manager's Manual\"\n",
            page.name.to_uppercase(),
            env!("CARGO_PKG_VERSION")
        );
        assert!(plain(&page.roff).contains(&title), "{}: no title line like {title}", page.name);
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "FILES", "EXAMPLES", "SEE ALSO"] {
            let heading = if section.contains(' ') { format!(".SH \"{section}\"") } else { format!(".SH {section}") };
            assert!(page.roff.contains(&heading), "{}: no {section} section", page.name);
        }
        assert!(!page.roff.contains(".SH EXTRA"), "{}: the closing text is rendered twice", page.name);
        // The string definitions of the preamble are there once.
        assert_eq!(page.roff.matches(".ds Aq").count(), 2, "{}: preamble repeated", page.name);
    }
}

#[test]
fn the_top_page_lists_the_commands_and_the_files() {
    let top = plain(&pages()[0].roff);
    for sub in visible_subcommands() {
        assert!(top.contains(&format!("modtrace-{sub}(8)")), "modtrace(8) does not list modtrace-{sub}(8)");
    }
    for needle in
        ["/var/lib/modtrace/profile.json", "modtrace-learn.service", "/etc/kernel/postinst.d/modtrace", ".SH COMMANDS"]
    {
        assert!(top.contains(needle), "modtrace(8): {needle} missing");
    }
}

#[test]
fn references_to_modtrace_pages_name_existing_pages() {
    let names: BTreeSet<String> = pages().into_iter().map(|p| p.name).collect();
    for page in PAGES {
        for reference in page.see_also.iter().filter(|r| r.starts_with("modtrace")) {
            let name = reference.strip_suffix("(8)").unwrap_or_else(|| panic!("{reference}: not a section 8 page"));
            assert!(names.contains(name), "{:?} refers to {reference}, which has no page", page.command);
        }
    }
}

#[test]
fn no_text_line_is_taken_for_a_request() {
    let requests = [".TH", ".SH", ".TP", ".PP", ".IP", ".RS", ".RE", ".ie", ".el", ".br", ".B", ".I", ".sp"];
    for page in pages() {
        for line in page.roff.lines().filter(|l| l.starts_with('.') || l.starts_with('\'')) {
            assert!(
                requests.iter().any(|r| line == *r || line.starts_with(&format!("{r} "))),
                "{}: unexpected request line {line:?}",
                page.name
            );
        }
    }
}

#[test]
fn description_lists_become_tagged_paragraphs() {
    let mut roff = Roff::new();
    description_roff(
        &mut roff,
        "First line\nof a paragraph.\n\n  term  what it is\n  other term  more\n  a bullet\n\n.dot starts this",
    );
    let text = roff.to_roff();
    assert_eq!(
        text,
        "First line of a paragraph.\n.TP\n\\fBterm\\fR\nwhat it is\n.TP\n\\fBother term\\fR\nmore\n\
         .IP \\(bu 2\na bullet\n.PP\n\\&.dot starts this\n"
    );
}

#[test]
fn sections_render_every_item() {
    let page = page("diff").unwrap();
    let text = plain(&sections_roff(page));
    for (code, _) in page.exit_status {
        assert!(text.contains(&format!(".TP\n{code}\n")), "exit status {code} missing: {text}");
    }
    assert!(text.contains("modtrace-snapshot(8)"), "{text}");
    assert!(sections_roff(page).contains("\\fBmodtrace\\-snapshot\\fR(8)"), "references are not bold");
}

#[test]
fn long_help_closes_with_the_page_and_short_help_does_not() {
    let err = try_parse_from(["modtrace", "diff", "--help"]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DisplayHelp);
    let text = err.to_string();
    assert!(text.contains("Exit status:\n  0   The same modules."), "{text}");
    assert!(text.contains("See also: modtrace(8), modtrace-snapshot(8)"), "{text}");
    assert!(text.contains("Compares two lists of modules"), "the long description is missing: {text}");

    let short = try_parse_from(["modtrace", "diff", "-h"]).unwrap_err().to_string();
    assert!(!short.contains("Exit status"), "{short}");

    let top = try_parse_from(["modtrace", "--help"]).unwrap_err().to_string();
    assert!(top.contains("/var/lib/modtrace/profile.json"), "{top}");
    assert!(!top.contains("generate-docs"), "{top}");
}

#[test]
fn parsing_is_unchanged_by_the_move() {
    let cli = try_parse_from(["modtrace", "diff", "a.json", "b.json", "--profile", "p.json"]).unwrap();
    let Command::Diff(args) = cli.command else { panic!("not diff: {cli:?}") };
    assert_eq!((args.a.to_str(), args.b.to_str()), (Some("a.json"), Some("b.json")));
    assert_eq!(args.profile.as_deref().and_then(|p| p.to_str()), Some("p.json"));

    let cli = try_parse_from(["modtrace", "generate"]).unwrap();
    let Command::Generate(args) = cli.command else { panic!("not generate") };
    assert_eq!(args.profile.to_str(), Some(crate::profile::DEFAULT_PATH));

    let err = try_parse_from(["modtrace", "frobnicate"]).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let err = try_parse_from(["modtrace"]).unwrap_err();
    assert_eq!(err.exit_code(), 2, "a subcommand is required");
    let err = try_parse_from(["modtrace", "generate-docs"]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument, "generate-docs needs --man or --completions");
    assert!(try_parse_from(["modtrace", "generate-docs", "--man", "x", "--date", "2025-13"]).is_err());
    let err = try_parse_from(["modtrace", "--version"]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DisplayVersion);
}

#[test]
fn completions_offer_the_visible_commands_only() {
    let scripts = completions().unwrap();
    assert_eq!(scripts.iter().map(|(n, _)| *n).collect::<Vec<_>>(), ["modtrace.bash", "_modtrace", "modtrace.fish"]);
    let mut root = crate::cli::command();
    root.build();
    let hidden: Vec<String> = root
        .get_subcommands()
        .flat_map(|s| s.get_arguments())
        .filter(|a| a.is_hide_set())
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    assert!(!hidden.is_empty());
    for (name, script) in &scripts {
        for sub in visible_subcommands() {
            assert!(script.contains(&sub), "{name}: {sub} missing");
        }
        for option in ["lock-point", "allow-unresolved", "json", "fresh", "profile"] {
            assert!(offers(name, script, option), "{name}: --{option} missing");
        }
        assert!(!script.contains("generate-docs"), "{name} offers the hidden command");
        for option in &hidden {
            assert!(!offers(name, script, option), "{name} offers the hidden --{option}");
        }
    }
    let bash = &scripts[0].1;
    assert!(bash.contains("complete -F _modtrace"), "not a bash completion");
    assert!(scripts[1].1.starts_with("#compdef modtrace"), "not a zsh completion");
    assert!(scripts[2].1.contains("complete -c modtrace"), "not a fish completion");
}

#[test]
fn generate_docs_writes_every_file() {
    let dir = TempDir::new("docs");
    let args = Args {
        man: Some(dir.join("man")),
        completions: Some(dir.join("completions")),
        date: Some("2025-01-02".into()),
    };
    assert_eq!(run(args).unwrap(), ExitCode::SUCCESS);
    let mut man: Vec<String> =
        fs::read_dir(dir.join("man")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    man.sort();
    let mut expected: Vec<String> = pages().into_iter().map(|p| p.file_name).collect();
    expected.sort();
    assert_eq!(man, expected);
    let top = fs::read_to_string(dir.join("man/modtrace.8")).unwrap();
    assert!(plain(&top).contains("\"2025-01-02\""), "the date is not in the title line");
    for (_, name) in SHELLS {
        assert!(dir.join("completions").join(name).is_file(), "{name} missing");
    }
}

/// modtrace-guard.service passes /etc/default/modtrace's MODTRACE_GUARD_SEAL through the
/// environment; only this test sets it.
#[test]
fn guard_start_reads_the_seal_from_the_environment() {
    let sealed = |value: Option<&str>, argv: &[&str]| {
        match value {
            Some(v) => std::env::set_var("MODTRACE_GUARD_SEAL", v),
            None => std::env::remove_var("MODTRACE_GUARD_SEAL"),
        }
        let parsed = try_parse_from(argv.iter().copied());
        std::env::remove_var("MODTRACE_GUARD_SEAL");
        let Command::Guard(crate::cli::guard::Args { command: crate::cli::guard::Sub::Start(a) }) =
            parsed.map_err(|e| e.to_string())?.command
        else {
            panic!("not guard start")
        };
        Ok::<bool, String>(a.sealed)
    };
    let start = ["modtrace", "guard", "start", "--mode", "enforce"];
    assert_eq!(sealed(None, &start), Ok(false));
    assert_eq!(sealed(Some("no"), &start), Ok(false));
    assert_eq!(sealed(Some(""), &start), Ok(false), "the unit's default is an empty or no value");
    assert_eq!(sealed(Some("yes"), &start), Ok(true));
    assert_eq!(sealed(None, &["modtrace", "guard", "start", "--mode", "enforce", "--sealed"]), Ok(true));
    let wrong = sealed(Some("maybe"), &start).unwrap_err();
    assert!(wrong.contains("MODTRACE_GUARD_SEAL") || wrong.contains("maybe"), "{wrong}");
}
