//! What the guest does, as data shared by the initramfs builder (which writes
//! /etc/scenario.env for tests/guest/init) and the host-side assertions.
//!
//! Every step loads a distinct module so each assertion names exactly one load.
//! All of them are modules (not built in) in both bookworm 6.1 and 6.12.

/// `modprobe vfat` (explicit; pulls fat), `rmmod vfat` at the end.
pub const EXPLICIT_MODULE: &str = "vfat";
pub const EXPLICIT_DEPENDENCY: &str = "fat";
/// Loaded by busybox `insmod FILE` (finit_module); has no dependencies.
pub const INSMOD_MODULE: &str = "tcp_westwood";
/// Loaded by `modtrace-guest init-module FILE` (init_module); no dependencies.
pub const INIT_MODULE_MODULE: &str = "tcp_htcp";
/// `modprobe`d explicitly from inside the unit's cgroup.
pub const UNIT_MODULE: &str = "nls_utf8";
/// Autoloaded when `mount -t binfmt_misc` asks for fs-binfmt_misc.
pub const BINFMT_MODULE: &str = "binfmt_misc";
pub const BINFMT_ALIAS: &str = "fs-binfmt_misc";
/// Autoloaded by socket(AF_APPLETALK) from inside the unit; pulls psnap and llc.
pub const APPLETALK_ALIAS: &str = "net-pf-5";
pub const APPLETALK_CHAIN: [&str; 3] = ["appletalk", "psnap", "llc"];
/// Autoloaded by `ip link add mtdummy0 type dummy`.
pub const DUMMY_MODULE: &str = "dummy";
pub const DUMMY_ALIAS: &str = "rtnl-link-dummy";
/// socket(AF_ALG): its module is left out of the initramfs, so the request fails.
pub const MISSING_ALIAS: &str = "net-pf-38";
pub const MISSING_MODULE: &str = "af_alg";

/// Modules whose files (and dependencies) the guest's modprobe can find.
pub const MODPROBE_MODULES: [&str; 5] = [EXPLICIT_MODULE, BINFMT_MODULE, APPLETALK_CHAIN[0], DUMMY_MODULE, UNIT_MODULE];
/// Modules copied uncompressed to /opt/ko for insmod and init_module.
pub const LOOSE_MODULES: [&str; 2] = [INSMOD_MODULE, INIT_MODULE_MODULE];
pub const LOOSE_DIR: &str = "opt/ko";

/// The systemd-like unit the cgroup steps run in.
pub const UNIT: &str = "example.service";
pub const UNIT_CGROUP: &str = "/system.slice/example.service";

/// Process names (comm) the assertions expect.
pub mod comm {
    /// tests/guest/init runs the steps; a script's comm is its file name.
    pub const SHELL: &str = "init";
    pub const MODPROBE: &str = "modprobe";
    pub const INSMOD: &str = "insmod";
    pub const RMMOD: &str = "rmmod";
    pub const MOUNT: &str = "mount";
    pub const IP: &str = "ip";
    pub const GUEST_TOOL: &str = "modtrace-guest";
}

/// Seconds the guest waits for `modtrace: attached` before giving up.
const TRACER_WAIT_SECS: u32 = 150;

/// The guest's /etc/scenario.env, sourced by tests/guest/init.
pub fn env_file() -> String {
    format!(
        "EXPLICIT_MODULE={EXPLICIT_MODULE}\n\
         INSMOD_KO=/{LOOSE_DIR}/{INSMOD_MODULE}.ko\n\
         INIT_MODULE_KO=/{LOOSE_DIR}/{INIT_MODULE_MODULE}.ko\n\
         UNIT_MODULE={UNIT_MODULE}\n\
         UNIT_CGROUP=/sys/fs/cgroup{UNIT_CGROUP}\n\
         TRACER_WAIT={TRACER_WAIT_SECS}\n"
    )
}
