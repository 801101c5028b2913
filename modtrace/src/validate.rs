//! What may be written into a generated file: module names, unit names and kernel
//! releases are checked against strict rules, and everything else (reasons,
//! process names, paths, aliases) only ever appears in comments, escaped, so that
//! nothing read from a profile can add a line, a key or a specifier to a unit or
//! a configuration file.

use std::fmt;

/// The kernel's MODULE_NAME_LEN (64 - sizeof(unsigned long)) less the final NUL.
pub const MODULE_NAME_MAX: usize = 55;
/// systemd's UNIT_NAME_MAX.
pub const UNIT_NAME_MAX: usize = 255;

/// Unit types systemd knows (unit_type_table).
const UNIT_TYPES: &[&str] =
    &["service", "mount", "swap", "socket", "target", "device", "automount", "timer", "path", "slice", "scope"];

/// Something from a profile that cannot be written into a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// "module name", "unit name", "kernel release".
    pub what: &'static str,
    /// The value as read, shown with Rust's escapes (a newline shows as `\n`).
    pub value: String,
    /// Where the profile has it, e.g. "modules[3].triggers[0].requester.unit".
    pub place: String,
    pub rule: &'static str,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {} {:?} at {}: {}", self.what, self.value, self.place, self.rule)
    }
}

/// `[A-Za-z0-9_-]+`, at most 55 characters: what the kernel calls a module.
pub fn check_module(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("a module name cannot be empty");
    }
    if name.len() > MODULE_NAME_MAX {
        return Err("longer than the kernel's 55-character limit for module names");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err("module names may only hold A-Z, a-z, 0-9, '_' and '-'");
    }
    if name.starts_with('-') {
        return Err("a module name cannot start with '-' (modprobe would read it as an option)");
    }
    Ok(())
}

/// A unit name as systemd's unit_name_is_valid() accepts it: NAME.TYPE or
/// NAME@INSTANCE.TYPE (or a template NAME@.TYPE), NAME and INSTANCE made of
/// `A-Za-z0-9:_.\-`, one '@' at most, a known TYPE, 255 characters at most.
pub fn check_unit(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("a unit name cannot be empty");
    }
    if name.len() > UNIT_NAME_MAX {
        return Err("longer than systemd's 255-character limit for unit names");
    }
    let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'.' | b'\\' | b'-' | b'@');
    if !name.bytes().all(valid) {
        return Err("unit names may only hold A-Z, a-z, 0-9 and ':', '_', '.', '\\', '-', '@' (no spaces, newlines, '%', '$' or ';')");
    }
    let Some(dot) = name.rfind('.') else {
        return Err("a unit name ends with its type, e.g. .service");
    };
    if !UNIT_TYPES.contains(&&name[dot + 1..]) {
        return Err("unknown unit type (the part after the last '.')");
    }
    let stem = &name[..dot];
    if stem.is_empty() {
        return Err("nothing before the unit type");
    }
    if let Some(at) = stem.find('@') {
        if at == 0 {
            return Err("nothing before the '@'");
        }
        if stem[at + 1..].contains('@') {
            return Err("more than one '@'");
        }
    }
    Ok(())
}

/// A kernel release (uname -r) as it is used in a path and in
/// ConditionKernelVersion=: `A-Za-z0-9._+~-`, not "." or "..", no leading '-'.
pub fn check_release(release: &str) -> Result<(), &'static str> {
    if release.is_empty() || release == "." || release == ".." || release.starts_with('-') {
        return Err("not a kernel release");
    }
    if release.len() > 64 {
        return Err("longer than a kernel release can be (64 characters)");
    }
    if !release.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'~' | b'-')) {
        return Err("kernel releases may only hold A-Z, a-z, 0-9 and '.', '_', '+', '~', '-'");
    }
    Ok(())
}

/// Text for a `#` comment: printable ASCII stays, anything else (newlines,
/// control characters, non-ASCII bytes, and a final backslash, so that no line
/// can end in a continuation) becomes `\xNN`. A backslash inside stays, so that
/// what escape::text showed (`\n`, `\x1b`) reads the same in a comment.
pub fn comment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let last = text.chars().count().saturating_sub(1);
    for (i, c) in text.chars().enumerate() {
        if (' '..='~').contains(&c) && (c != '\\' || i != last) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names() {
        assert!(check_module("snd_hda_intel").is_ok());
        assert!(check_module("snd-hda-intel").is_ok());
        assert!(check_module("-v").is_err(), "an option, not a module");
        for bad in ["", "x\nExecStart=/bin/sh", "a b", "a;b", "$x", "%n", "a/b", "ä", &"x".repeat(56)] {
            assert!(check_module(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn unit_names() {
        for good in [
            "example.service",
            "getty@tty1.service",
            "proc-sys-fs-binfmt_misc.mount",
            "dev-disk-by\\x2duuid-1.swap",
            "a@.service",
            "session-2.scope",
        ] {
            assert!(check_unit(good).is_ok(), "{good:?} refused");
        }
        for bad in [
            "a b.service",
            "a.service\nExecStart=/bin/sh",
            "%n.service",
            "a$b.service",
            "a;b.service",
            "example",
            "a.exe",
            ".service",
            "@a.service",
            "a@b@c.service",
            "x.service ",
            &format!("{}.service", "a".repeat(250)),
        ] {
            assert!(check_unit(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn releases() {
        assert!(check_release("6.1.0-56-amd64").is_ok());
        assert!(check_release("6.12.9+bpo-amd64").is_ok());
        for bad in ["", ".", "..", "../../etc", "6.1 x", "6.1*", "-rf", "a\nb"] {
            assert!(check_release(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn comments_cannot_break_out() {
        assert_eq!(comment("plain /usr/bin/python3 %n $x ;"), "plain /usr/bin/python3 %n $x ;");
        let c = comment("x\nExecStart=/bin/sh\\");
        assert!(!c.contains('\n') && !c.ends_with('\\'), "{c}");
        assert_eq!(c, "x\\x0aExecStart=/bin/sh\\x5c");
        assert_eq!(comment("é"), "\\xc3\\xa9");
        assert_eq!(comment("a\\nb\\"), "a\\nb\\x5c", "only a final backslash could continue the line");
    }
}
