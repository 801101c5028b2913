//! The package inspection's parsers and checks on listings, control files,
//! help texts and scripts shaped like the real ones, each fault shown to fail.

use super::*;

const LISTING: &str = "\
drwxr-xr-x 0/0               0 2026-11-27 00:00 ./usr/
-rwxr-xr-x 0/0         4217328 2026-11-27 00:00 ./usr/sbin/modtrace
-rw-r--r-- 0/0            3282 2026-11-27 00:00 ./lib/systemd/system/modtrace-learn.service
-rw-r--r-- 0/0            2500 2026-11-27 00:00 ./lib/systemd/system/modtrace-guard.service
-rwxr-xr-x 0/0            4805 2026-11-27 00:00 ./etc/kernel/postinst.d/modtrace
-rw-r--r-- 0/0            2028 2026-11-27 00:00 ./usr/share/man/man8/modtrace.8.gz
-rw-r--r-- 0/0           14005 2026-11-27 00:00 ./usr/share/bash-completion/completions/modtrace
-rw-r--r-- 0/0           12325 2026-11-27 00:00 ./usr/share/zsh/vendor-completions/_modtrace
-rw-r--r-- 0/0           10483 2026-11-27 00:00 ./usr/share/fish/vendor_completions.d/modtrace.fish
-rw-r--r-- 0/0            6972 2026-11-27 00:00 ./usr/share/doc/modtrace/README.md
-rw-r--r-- 0/0            9401 2026-11-27 00:00 ./usr/share/doc/modtrace/docs/lockdown.md
-rw-r--r-- 0/0           17738 2026-11-27 00:00 ./usr/share/doc/modtrace/docs/profile.md
-rw-r--r-- 0/0             156 2026-11-27 00:00 ./usr/share/doc/modtrace/copyright
-rw-r--r-- 0/0             310 2026-11-27 00:00 ./usr/share/doc/modtrace/changelog.Debian.gz
-rwxr-xr-x 0/0            3100 2026-11-27 00:00 ./lib/systemd/system-generators/modtrace-learn-generator
-rwxr-xr-x 0/0             900 2026-11-27 00:00 ./usr/share/initramfs-tools/hooks/modtrace
-rwxr-xr-x 0/0            1100 2026-11-27 00:00 ./usr/share/initramfs-tools/scripts/init-top/modtrace
-rwxr-xr-x 0/0            2300 2026-11-27 00:00 ./usr/lib/dracut/modules.d/99modtrace/module-setup.sh
-rw-r--r-- 0/0            1400 2026-11-27 00:00 ./usr/lib/dracut/modules.d/99modtrace/modtrace-early.service
-rwxr-xr-x 0/0             900 2026-11-27 00:00 ./usr/lib/dracut/modules.d/99modtrace/modtrace-early.sh
";

#[test]
fn contents_parse_into_absolute_paths() {
    let entries = parse_contents(LISTING).unwrap();
    assert_eq!(entries.len(), 20);
    assert_eq!(entries[0].path, "/usr");
    assert_eq!(
        entries[1],
        Entry {
            mode: "-rwxr-xr-x".into(),
            owner: "0/0".into(),
            size: 4217328,
            path: "/usr/sbin/modtrace".into(),
            link: None
        }
    );
    let link = parse_contents("lrwxrwxrwx root/root 0 2024-01-01 00:00 ./usr/bin/x -> ../sbin/modtrace\n").unwrap();
    assert_eq!((link[0].path.as_str(), link[0].link.as_deref()), ("/usr/bin/x", Some("../sbin/modtrace")));
    assert!(parse_contents("garbage\n").is_err());
}

#[test]
fn the_expected_files_pass_and_each_fault_fails() {
    let entries = parse_contents(LISTING).unwrap();
    check_files(&entries).unwrap();

    let missing: Vec<Entry> = entries.iter().filter(|e| e.path != "/usr/sbin/modtrace").cloned().collect();
    assert!(check_files(&missing).unwrap_err().contains("/usr/sbin/modtrace is missing"));

    let mut wrong_mode = entries.clone();
    wrong_mode.iter_mut().find(|e| e.path == KERNEL_HOOK).unwrap().mode = "-rw-r--r--".into();
    assert!(check_files(&wrong_mode).unwrap_err().contains("has mode -rw-r--r--, not -rwxr-xr-x"));

    let mut enabled = entries.clone();
    enabled.push(Entry {
        mode: "lrwxrwxrwx".into(),
        owner: "0/0".into(),
        size: 0,
        path: "/etc/systemd/system/sysinit.target.wants/modtrace-learn.service".into(),
        link: Some(LEARN_UNIT.into()),
    });
    assert!(check_files(&enabled).unwrap_err().contains("enables a unit"));

    let mut not_root = entries.clone();
    not_root[3].owner = "1000/1000".into();
    assert!(check_files(&not_root).unwrap_err().contains("owned by 1000/1000"));
}

#[test]
fn control_fields_with_continuations() {
    let control = parse_control(
        "Package: modtrace\nVersion: 0.1.0-1\nDepends: kmod, libc6 (>= 2.34)\nDescription: short\n long line\n .\n more\n",
    );
    assert_eq!(control["Package"], "modtrace");
    assert_eq!(control["Depends"], "kmod, libc6 (>= 2.34)");
    assert_eq!(control["Description"], "short\nlong line\n.\nmore");
}

const TOP_HELP: &str = "\
Which kernel modules this machine needs, and who needs them

Usage: modtrace <COMMAND>

Commands:
  trace     Stream every module request, load and unload, with who caused it
  diff      Compare two snapshots or profiles; exit 0 same, 1 different, 2 trouble
  help      Print this message or the help of the given subcommand(s)

Options:
  -h, --help     Print help (see more with '--help')
  -V, --version  Print version
";

const DIFF_HELP: &str = "\
Compare two snapshots or profiles; exit 0 same, 1 different, 2 trouble

Usage: modtrace diff [OPTIONS] <A> <B>

Arguments:
  <A>  Before: a snapshot (JSON, text, /proc/modules or lsmod output) or a profile
  <B>  After: a snapshot or a profile

Options:
      --profile <PATH>  A profile to explain the differences with
  -q, --quiet           No progress display
  -h, --help            Print help (see more with '--help')
";

#[test]
fn commands_and_options_come_from_help() {
    assert_eq!(help_commands(TOP_HELP), ["trace", "diff"]);
    assert_eq!(help_options(TOP_HELP), ["-h", "--help", "-V", "--version"]);
    assert_eq!(help_options(DIFF_HELP), ["<A>", "<B>", "--profile", "-q", "--quiet", "-h", "--help"]);
    assert!(help_commands("no commands here\n").is_empty());
}

#[test]
fn roff_escapes_are_undone_for_searching() {
    assert_eq!(unroff(r"\fB\-\-lock\-point\fR \fI<LOCK_POINT>\fR"), "--lock-point <LOCK_POINT>");
    assert_eq!(unroff(r"<\fIA\fR> see \*(Aq\-h\*(Aq"), "<A> see '-h'");
}

#[test]
fn enabling_a_unit_is_found_in_scripts_and_comments_are_not() {
    let bad = "#!/bin/sh\nset -e\nif true; then\n    systemctl enable modtrace-learn.service\nfi\n\
               deb-systemd-helper enable modtrace-learn.service >/dev/null\n\
               ln -s /lib/systemd/system/modtrace-learn.service /etc/systemd/system/sysinit.target.wants/\n\
               /bin/systemctl --now disable x\n\
               systemctl start modtrace-learn.service\n";
    assert_eq!(enabling_lines(bad).len(), 5, "{:?}", enabling_lines(bad));
    let good = "#!/bin/sh\n# nothing here enables or starts a unit: systemctl enable is the admin's\n\
                systemctl daemon-reload >/dev/null 2>&1 || true\n\
                systemctl stop modtrace-learn.service || true\n\
                systemctl is-active --quiet modtrace-learn.service\n\
                echo \"to stop that: systemctl disable modtrace-lock.service\" >&2\n";
    assert!(enabling_lines(good).is_empty(), "{:?}", enabling_lines(good));
}

/// The real maintainer scripts of packaging/debian enable nothing.
#[test]
fn the_packaged_maintainer_scripts_enable_nothing() {
    let dir = paths::workspace().join("packaging/debian");
    for name in ["postinst", "prerm", "postrm"] {
        let script = fs::read_to_string(dir.join(name)).unwrap();
        assert!(enabling_lines(&script).is_empty(), "{name}: {:?}", enabling_lines(&script));
        assert!(script.starts_with("#!/bin/sh\n"), "{name} is not a sh script");
    }
}

#[test]
fn lintian_errors_and_warnings_count_information_does_not() {
    let out = "E: modtrace: no-changelog usr/share/doc/modtrace/changelog.Debian.gz\n\
               W: modtrace: copyright-without-copyright-notice\n\
               I: modtrace: hardening-no-fortify-functions [usr/sbin/modtrace]\n";
    assert_eq!(
        lintian_problems(out),
        ["E: modtrace: no-changelog usr/share/doc/modtrace/changelog.Debian.gz", "W: modtrace: copyright-without-copyright-notice"]
    );
    assert!(lintian_problems("I: modtrace: no-md5sums-control-file\n").is_empty());
}

#[test]
fn a_failed_guard_start_fails_the_shipped_unit() {
    let unit = include_str!("../../../packaging/systemd/modtrace-guard.service");
    guard_start_failure_fails_the_unit(unit).unwrap();
    let ignored = unit.replace("ExecStartPre=/usr/sbin", "ExecStartPre=-/usr/sbin");
    assert!(guard_start_failure_fails_the_unit(&ignored).unwrap_err().contains("would not fail the unit"));
    let no_logger = unit.replace("ExecStart=/usr/sbin/modtrace guard log", "ExecStart=/bin/true");
    assert!(guard_start_failure_fails_the_unit(&no_logger).is_err());
    assert!(guard_start_failure_fails_the_unit("[Service]\nExecStart=/usr/sbin/modtrace guard log\n").is_err());
}
