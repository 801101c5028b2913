//! What the running system allows, checked before anything is loaded, so that each
//! refusal names its cause instead of surfacing as an opaque bpf() error.

use std::{fs, path::Path};

use super::ProbeError;

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Facts about the system that change what modtrace can report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct System {
    pub modules_disabled: bool,
    pub lockdown: Option<String>,
    pub btf: bool,
}

pub fn check() -> Result<System, ProbeError> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    check_capabilities(&status)?;
    require_modules()?;
    let lockdown = fs::read_to_string("/sys/kernel/security/lockdown").ok().and_then(|s| active_lockdown(&s));
    if lockdown.as_deref() == Some("confidentiality") {
        return Err(ProbeError::Lockdown);
    }
    Ok(System {
        modules_disabled: read_trimmed("/proc/sys/kernel/modules_disabled").as_deref() == Some("1"),
        lockdown,
        btf: Path::new(super::btf::VMLINUX_BTF).exists(),
    })
}

/// Every command that reads the running kernel's modules starts here, so a
/// kernel without module support is named the same way by all of them.
pub fn require_modules() -> Result<(), ProbeError> {
    if Path::new("/proc/modules").exists() {
        Ok(())
    } else {
        Err(ProbeError::NoModules)
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// Loading tracepoint programs needs CAP_BPF with CAP_PERFMON, or CAP_SYS_ADMIN.
pub fn check_capabilities(proc_status: &str) -> Result<(), ProbeError> {
    let caps = proc_status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    let has = |cap: u32| caps & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        Ok(())
    } else {
        Err(ProbeError::NotPrivileged)
    }
}

/// The bracketed mode of /sys/kernel/security/lockdown ("none integrity [x]").
pub fn active_lockdown(text: &str) -> Option<String> {
    let start = text.find('[')? + 1;
    let end = start + text[start..].find(']')?;
    let mode = &text[start..end];
    (mode != "none").then(|| mode.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_bpf_perfmon_pass_an_ordinary_user_does_not() {
        assert!(check_capabilities("Name:\tx\nCapEff:\t000001ffffffffff\n").is_ok());
        let bpf_perfmon = (1u64 << CAP_BPF) | (1u64 << CAP_PERFMON);
        assert!(check_capabilities(&format!("CapEff:\t{bpf_perfmon:016x}\n")).is_ok());
        let bpf_only = 1u64 << CAP_BPF;
        assert!(matches!(
            check_capabilities(&format!("CapEff:\t{bpf_only:016x}\n")),
            Err(ProbeError::NotPrivileged)
        ));
        assert!(matches!(check_capabilities("CapEff:\t0000000000000000\n"), Err(ProbeError::NotPrivileged)));
        assert!(matches!(check_capabilities(""), Err(ProbeError::NotPrivileged)));
    }

    #[test]
    fn lockdown_mode_is_the_bracketed_one() {
        assert_eq!(active_lockdown("[none] integrity confidentiality\n"), None);
        assert_eq!(active_lockdown("none [integrity] confidentiality\n"), Some("integrity".into()));
        assert_eq!(active_lockdown("none integrity [confidentiality]\n"), Some("confidentiality".into()));
        assert_eq!(active_lockdown("garbage"), None);
    }
}

/// Whether `path` is a mounted BPF file system (where pins live).
pub fn is_bpffs(path: &Path) -> bool {
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else { return false };
    // SAFETY: a valid C string and a zeroed statfs to fill.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
}
