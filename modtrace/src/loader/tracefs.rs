//! tracefs: find or mount it, and check that each tracepoint the probes read has
//! the field layout they were built for.

use std::{
    fs,
    path::{Path, PathBuf},
};

use modtrace_common::tp;

use super::ProbeError;

const CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Returns the tracefs root, mounting it at /sys/kernel/tracing when it is not.
pub fn ensure_mounted() -> Result<PathBuf, ProbeError> {
    if let Some(root) = CANDIDATES.iter().map(Path::new).find(|p| p.join("events").is_dir()) {
        return Ok(root.to_path_buf());
    }
    mount_tracefs(Path::new(CANDIDATES[0]))?;
    Ok(PathBuf::from(CANDIDATES[0]))
}

fn mount_tracefs(at: &Path) -> Result<(), ProbeError> {
    let target = std::ffi::CString::new(at.as_os_str().as_encoded_bytes()).expect("no NUL");
    let fstype = c"tracefs";
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe { libc::mount(fstype.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        return Err(ProbeError::NoTracefs(format!("tracefs is not mounted and mounting it at {} failed: {err}", at.display())));
    }
    Ok(())
}

/// Checks every (event, field, offset) in `tp::FIELDS` against the format files.
pub fn check_formats(root: &Path) -> Result<(), ProbeError> {
    for (group, event, field, want) in tp::FIELDS {
        let path = root.join("events").join(group).join(event).join("format");
        let text = fs::read_to_string(&path).map_err(|e| missing_event(group, event, &path, e))?;
        match field_offset(&text, field) {
            Some(got) if got == *want => {}
            got => {
                return Err(ProbeError::Layout(format!(
                    "{group}:{event} field {field} is at offset {got:?} in {}, modtrace reads it at {want}; \
                     this kernel's layout is not supported",
                    path.display()
                )));
            }
        }
    }
    Ok(())
}

fn missing_event(group: &str, event: &str, path: &Path, e: std::io::Error) -> ProbeError {
    if group == "module" {
        ProbeError::NoModules
    } else {
        ProbeError::Layout(format!("tracepoint {group}:{event} is missing ({}: {e})", path.display()))
    }
}

/// Offset of `field` in a tracepoint format file, e.g.
/// `field:__data_loc char[] name;	offset:20;	size:4;	signed:0;`.
pub fn field_offset(format: &str, field: &str) -> Option<usize> {
    format.lines().find_map(|line| {
        let line = line.trim();
        let decl = line.strip_prefix("field:")?.split(';').next()?;
        let name = decl.rsplit([' ', '*']).next()?.split('[').next()?;
        if name != field {
            return None;
        }
        let offset = line.split("offset:").nth(1)?.split(';').next()?;
        offset.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODULE_REQUEST: &str = "name: module_request
ID: 500
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
	field:int common_pid;	offset:4;	size:4;	signed:1;

	field:unsigned long ip;	offset:8;	size:8;	signed:0;
	field:bool wait;	offset:16;	size:1;	signed:0;
	field:__data_loc char[] name;	offset:20;	size:4;	signed:0;
";

    const SYS_ENTER_FINIT: &str = "format:
	field:int __syscall_nr;	offset:8;	size:4;	signed:1;
	field:int fd;	offset:16;	size:8;	signed:0;
	field:const char * uargs;	offset:24;	size:8;	signed:0;
	field:int flags;	offset:32;	size:8;	signed:0;
";

    #[test]
    fn finds_offsets_of_plain_pointer_and_data_loc_fields() {
        assert_eq!(field_offset(MODULE_REQUEST, "ip"), Some(8));
        assert_eq!(field_offset(MODULE_REQUEST, "wait"), Some(16));
        assert_eq!(field_offset(MODULE_REQUEST, "name"), Some(20));
        assert_eq!(field_offset(SYS_ENTER_FINIT, "uargs"), Some(24));
        assert_eq!(field_offset(SYS_ENTER_FINIT, "flags"), Some(32));
        assert_eq!(field_offset(MODULE_REQUEST, "taints"), None);
    }

    #[test]
    fn a_moved_field_is_refused() {
        let dir = std::env::temp_dir().join(format!("modtrace-tracefs-{}", std::process::id()));
        let ev = dir.join("events/module/module_request");
        fs::create_dir_all(&ev).unwrap();
        fs::write(ev.join("format"), MODULE_REQUEST.replace("offset:20", "offset:24")).unwrap();
        let err = check_formats(&dir).unwrap_err();
        assert!(err.to_string().contains("module:module_request field name"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_kernel_without_module_events_says_so() {
        let dir = std::env::temp_dir().join(format!("modtrace-tracefs-none-{}", std::process::id()));
        fs::create_dir_all(dir.join("events")).unwrap();
        assert!(matches!(check_formats(&dir), Err(ProbeError::NoModules)));
        fs::remove_dir_all(&dir).unwrap();
    }
}
