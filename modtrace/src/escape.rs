//! Text a user controls (aliases, process names, executable paths, command
//! lines, cgroup and unit names, module parameters), made safe to show on a
//! terminal or in a text report: every character that could move the cursor,
//! recolour, erase or rewrite a line, or reorder what is shown becomes a
//! visible escape. Applied where output is rendered, never to stored data.
//! (Comments in generated files use validate::comment, which is stricter.)
//!
//! The backslash itself is kept, so that escaping twice changes nothing: a
//! renderer may escape a line built from parts that were escaped already.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Characters shown as an escape: C0 controls (newline, CR, tab, ESC, ...),
/// DEL, C1 controls, bidirectional marks, embeddings, overrides and isolates,
/// zero-width and other invisible formatting characters, line and paragraph
/// separators.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

fn push_escape(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

fn escaped(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| hidden(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hidden(c) && !keep(c) {
            push_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One value, for one line: newlines escaped too ("a\nb" shows as `a\nb`).
pub fn text(value: &str) -> Cow<'_, str> {
    escaped(value, |_| false)
}

/// A whole rendered text whose lines are its own: everything but the newline
/// escaped. The last pass of a renderer, after each value went through `text`.
pub fn lines(rendered: &str) -> Cow<'_, str> {
    escaped(rendered, |c| c == '\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_is_kept_as_it_is() {
        for s in ["modtrace-guest", "/usr/bin/python3", "fs-ext4", "é ü 日本", "a\\nb", "net-pf-5 %n $x ;"] {
            assert!(matches!(text(s), Cow::Borrowed(_)), "{s}");
        }
    }

    #[test]
    fn what_could_rewrite_a_terminal_is_escaped() {
        assert_eq!(text("a\nb\rc\td"), "a\\nb\\rc\\td");
        assert_eq!(text("\u{1b}[31mred\u{1b}[0m"), "\\x1b[31mred\\x1b[0m");
        assert_eq!(text("x\u{7f}\u{0}\u{85}\u{9b}"), "x\\x7f\\x00\\u{85}\\u{9b}");
        assert_eq!(text("abc\u{202e}fdp.exe"), "abc\\u{202e}fdp.exe");
        assert_eq!(text("\u{2066}\u{2069}\u{200b}\u{feff}\u{2028}"), "\\u{2066}\\u{2069}\\u{200b}\\u{feff}\\u{2028}");
    }

    #[test]
    fn escaping_twice_changes_nothing() {
        let once = text("a\n\u{1b}[2Jb\u{202e}").into_owned();
        assert_eq!(text(&once), once);
        assert_eq!(lines(&once), once);
    }

    #[test]
    fn lines_keeps_the_renderers_newlines_only() {
        assert_eq!(lines("one\ntwo\r\u{1b}]0;title\u{7}\n"), "one\ntwo\\r\\x1b]0;title\\x07\n");
    }
}
