//! The trixie suite's kernel upgrade (issue 22; tests/system/upgrade.sh and
//! upgraded.sh): in the locked boot 2, apt installs the next kernel, whose
//! postinst runs modtrace's hook; boot 3 boots it with the initramfs its
//! package built. The hook's `check --kernel` verdicts are judged from the
//! journal lines boot 2 recorded (tag modtrace), boot 3 as a locked boot.

use super::services::{binfmt_works, fat_works, nftables_works, tun_works, wireguard_works};
use super::{modules_disabled, no_failed_units, reached_multi_user, Boot, Recorded, LOCK_UNIT};
use crate::check::CheckFn;

/// What the upgrade checks look at.
pub struct UpgradeFacts {
    /// The kernel installed (trixie-backports').
    pub kver: String,
    /// The learning boot 1, on the suite's kernel.
    pub boot1: Option<Recorded>,
    /// The locked boot 2, which installed it.
    pub boot2: Option<Recorded>,
    /// Boot 3, on that kernel.
    pub boot3: Boot,
    /// The kernel the profile was learned on (the suite's own).
    pub learned_on: String,
}

impl UpgradeFacts {
    fn b1(&self) -> Result<&Recorded, String> {
        self.boot1.as_ref().ok_or_else(|| "boot 1 recorded nothing".to_string())
    }

    fn b2(&self) -> Result<&Recorded, String> {
        self.boot2.as_ref().ok_or_else(|| "boot 2 recorded nothing".to_string())
    }

    fn b3(&self) -> Result<&Recorded, String> {
        self.boot3.recorded.as_ref().ok_or_else(|| "boot 3 recorded nothing".to_string())
    }
}

pub const UPGRADE_CHECKS: &[(&str, CheckFn<UpgradeFacts>)] = &[
    ("upgrade_kernel_installed_by_apt", installed),
    ("upgrade_hook_refused_a_kernel_without_a_needed_module", refused),
    ("upgrade_check_followed_renames_and_built_ins", followed),
    ("upgrade_hook_locked_the_new_kernel_once_fixed", locked_once_fixed),
    ("boot1_loaded_cirrus_for_the_vga", cirrus_learned),
    ("upgrade_lock_list_follows_cirrus_to_cirrus_qemu", cirrus_followed),
    ("boot3_finished", |f| f.boot3.finished.clone()),
    ("boot3_runs_the_new_kernel", runs_new_kernel),
    ("boot3_reached_multi_user", |f| reached_multi_user(f.b3()?)),
    ("boot3_no_failed_units", |f| no_failed_units(f.b3()?)),
    ("boot3_lock_service_succeeded", lock_succeeded),
    ("boot3_modules_disabled_is_1", |f| modules_disabled(f.b3()?, "1")),
    ("boot3_nftables_ruleset_after_lock", |f| nftables_works(f.b3()?)),
    ("boot3_wireguard_up_after_lock", |f| wireguard_works(f.b3()?)),
    ("boot3_binfmt_registered_after_lock", |f| binfmt_works(f.b3()?)),
    ("boot3_fat_mounted_after_lock", |f| fat_works(f.b3()?)),
    ("boot3_tun_up_after_lock", |f| tun_works(f.b3()?)),
    ("boot3_cirrus_qemu_loaded_under_the_lock", cirrus_qemu_locked),
    ("boot3_modules_load_skips_names_this_kernel_lacks", modules_load_skips),
];

/// `text` holds every one of `want`, or the first it lacks is named.
fn says_all(what: &str, text: &str, want: &[&str]) -> Result<(), String> {
    match want.iter().find(|w| !text.contains(**w)) {
        Some(w) => Err(format!("{what} does not say {w:?}:\n{text}")),
        None => Ok(()),
    }
}

/// apt-get install of the packages succeeded, and the package made an initramfs.
fn installed(f: &UpgradeFacts) -> Result<(), String> {
    let r = f.b2()?;
    if r.status("upgrade-install")? != 0 {
        return Err(format!("apt-get install of {} failed: {}", f.kver, r.said("upgrade-install")));
    }
    says_all("ls /boot", r.text("upgrade-boot-files")?, &[&format!("initrd.img-{}", f.kver)])
}

/// 7.3 has no AppleTalk, which fake-dm.service needs: the hook's check said
/// so, and no list was installed for that kernel.
fn refused(f: &UpgradeFacts) -> Result<(), String> {
    let r = f.b2()?;
    let journal = r.text("upgrade-journal-install")?;
    let verdict = format!("check: NOT safe to reboot into {} locked", f.kver);
    let gone = "appletalk: GONE, nothing in this kernel answers its causes (needed by fake-dm.service)";
    says_all("the hook's journal", journal, &[&verdict, gone, "no module lock is installed for it"])?;
    let lists = r.text("upgrade-lists-install")?;
    match lists.lines().any(|l| l == format!("{}.conf", f.kver)) {
        true => Err(format!("a list for {} was installed although check refused it: {lists:?}", f.kver)),
        false => Ok(()),
    }
}

/// The same verdict said what 7.3 renamed or built in.
fn followed(f: &UpgradeFacts) -> Result<(), String> {
    let journal = f.b2()?.text("upgrade-journal-install")?;
    let want = [
        "check:   crc32c_generic: merged into crc32c_cryptoapi",
        "check:   crc32c_intel: merged into crc32c_cryptoapi",
        "check:   nfnetlink: now built into the kernel, as netfilter",
    ];
    says_all("the hook's journal", journal, &want)
}

/// After `modtrace deny appletalk` (fake-dm retired) the hook said safe and
/// installed the new kernel's list beside the old kernel's.
fn locked_once_fixed(f: &UpgradeFacts) -> Result<(), String> {
    let r = f.b2()?;
    let journal = r.text("upgrade-journal-hook")?;
    let verdict = format!("check: safe to reboot into {}", f.kver);
    says_all("the hook's journal", journal, &[&verdict, "module lock regenerated"])?;
    every_entry_loads(journal, &f.kver)?;
    let lists: Vec<&str> = r.text("upgrade-lists")?.lines().collect();
    let want = [format!("{}.conf", f.learned_on), format!("{}.conf", f.kver)];
    match want.iter().all(|w| lists.contains(&w.as_str())) {
        true => Ok(()),
        false => Err(format!("/etc/modtrace/lock holds {lists:?}, expected both {want:?}")),
    }
}

/// check's count of the lock list's entries that load on `kver`: all of them.
fn every_entry_loads(journal: &str, kver: &str) -> Result<(), String> {
    let prefix = format!("check:   lock list for {kver}: ");
    let line = journal.lines().find_map(|l| l.split_once(&prefix).map(|(_, rest)| rest));
    let counts = line.and_then(|l| l.strip_suffix(" load there")).and_then(|l| l.split_once(" entries, "));
    match counts {
        Some((n, m)) if n == m && n.parse::<u32>().is_ok_and(|n| n > 0) => Ok(()),
        _ => Err(format!("the hook's check did not say every entry of {kver}'s lock list loads there:\n{journal}")),
    }
}

fn runs_new_kernel(f: &UpgradeFacts) -> Result<(), String> {
    match f.b3()?.text("kernel")?.trim() {
        k if k == f.kver => Ok(()),
        k => Err(format!("boot 3 ran kernel {k:?}, not {}", f.kver)),
    }
}

fn lock_succeeded(f: &UpgradeFacts) -> Result<(), String> {
    let lock = f.b3()?.unit(LOCK_UNIT)?;
    lock.expect("ActiveState", "active")?;
    lock.expect("Result", "success")
}

/// QEMU's Cirrus VGA (boot.rs, `-vga cirrus`) had 6.12's driver, `cirrus`.
fn cirrus_learned(f: &UpgradeFacts) -> Result<(), String> {
    match f.b1()?.modules("proc-modules")?.contains("cirrus") {
        true => Ok(()),
        false => Err("boot 1 (6.12) did not load cirrus for QEMU's Cirrus VGA".to_string()),
    }
}

/// The modules a lock list's variable lines (MODTRACE_NEEDED, MODTRACE_DEVICES) name.
fn listed(list: &str) -> Vec<&str> {
    let values = list.lines().filter(|l| l.starts_with("MODTRACE_")).filter_map(|l| l.split_once('='));
    values.flat_map(|(_, v)| v.trim_matches('"').split_whitespace()).collect()
}

/// The new kernel's list names 7.x's driver for the same device, not the
/// old name, and the hook's check said it was renamed.
fn cirrus_followed(f: &UpgradeFacts) -> Result<(), String> {
    let r = f.b2()?;
    let list = r.text("upgrade-list-new")?;
    let names = listed(list);
    if !names.contains(&"cirrus_qemu") || names.contains(&"cirrus") {
        return Err(format!("the lock list for {} should name cirrus_qemu and not cirrus:\n{list}", f.kver));
    }
    says_all("the hook's journal", r.text("upgrade-journal-hook")?, &["check:   cirrus: renamed to cirrus_qemu"])
}

/// Boot 3 has the renamed driver, loaded before the lock (nothing loads after it).
fn cirrus_qemu_locked(f: &UpgradeFacts) -> Result<(), String> {
    let r = f.b3()?;
    modules_disabled(r, "1")?;
    match r.modules("proc-modules")?.contains("cirrus_qemu") {
        true => Ok(()),
        false => Err("boot 3 (7.x) is locked without cirrus_qemu, the Cirrus VGA's driver".to_string()),
    }
}

/// modules-load.d is one file for every kernel: handed the learned kernel's
/// names this kernel lacks (cirrus among them), systemd-modules-load skips
/// them and succeeds.
fn modules_load_skips(f: &UpgradeFacts) -> Result<(), String> {
    let r = f.b3()?;
    let gone = r.text("modules-load-gone")?;
    if !gone.lines().any(|l| l == "cirrus") {
        return Err(format!("the learned kernel's modules-load.d names no module 7.x lacks (cirrus): {gone:?}"));
    }
    match r.status("modules-load-gone")? {
        0 => Ok(()),
        s => Err(format!("systemd-modules-load exited {s} on names this kernel lacks: {}", r.said("modules-load-gone"))),
    }
}
