//! What a modprobe command line asks for.

/// The module names (or aliases) a `modprobe` command line asks to load; empty
/// for other programs and for removals. Without -a only the first name is a
/// module: the rest are its parameters.
pub fn modprobe_names(cmdline: &[String]) -> Vec<String> {
    let Some((prog, args)) = cmdline.split_first() else { return Vec::new() };
    if prog.rsplit('/').next() != Some("modprobe") {
        return Vec::new();
    }
    let (mut all, mut remove, mut options_done) = (false, false, false);
    let mut names = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg.is_empty() {
            continue;
        }
        if options_done || !arg.starts_with('-') || arg == "-" {
            names.push(arg.clone());
        } else if arg == "--" {
            options_done = true;
        } else if let Some(long) = arg.strip_prefix("--") {
            match long {
                "all" => all = true,
                "remove" => remove = true,
                "config" | "dirname" | "set-version" => {
                    args.next();
                }
                _ => {}
            }
        } else {
            let flags = &arg[1..];
            // -C, -d and -S take a value, attached or as the next argument.
            if let Some(at) = flags.find(['C', 'd', 'S']) {
                if at + 1 == flags.len() {
                    args.next();
                }
            }
            let flags = flags.split(['C', 'd', 'S']).next().unwrap_or("");
            all |= flags.contains('a');
            remove |= flags.contains('r');
        }
    }
    if remove {
        return Vec::new();
    }
    if !all {
        names.truncate(1);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modprobe_command_lines() {
        let names = |args: &[&str]| modprobe_names(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(names(&["modprobe", "-q", "--", "net-pf-5"]), ["net-pf-5"]);
        assert_eq!(names(&["/sbin/modprobe", "-v", "vfat", "debug=1"]), ["vfat"]);
        assert_eq!(names(&["modprobe", "-C", "/etc/x.conf", "-a", "fat", "vfat"]), ["fat", "vfat"]);
        assert_eq!(names(&["modprobe", "-qa", "--dirname", "/x", "fat", "vfat"]), ["fat", "vfat"]);
        assert_eq!(names(&["modprobe", "-S6.1.0", "vfat"]), ["vfat"]);
        assert!(names(&["modprobe", "-r", "vfat"]).is_empty());
        assert!(names(&["insmod", "vfat.ko"]).is_empty());
        assert!(names(&[]).is_empty());
    }
}
