//! What the guest does, as data shared by the initramfs builder (which writes
//! /etc/scenario.env for tests/guest/init) and the host-side checks.
//!
//! Every step loads a distinct module so each assertion names exactly one load.
//! All of them are modules (not built in) in every kernel of the matrix:
//! bookworm's 6.1, trixie's 6.12 and trixie-backports' 7.x.

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
/// init_module of loop with max_part past DISK_MAX_PARTS: loop links, then its
/// init refuses (EINVAL) and the kernel frees it. The guest tool fails a load
/// of /dev/null first, so its fold window is open: a failure after linking
/// must be sent all the same, never folded. No dependencies.
pub const INIT_FAILS_MODULE: &str = "loop";
pub const INIT_FAILS_PARAMS: &str = "max_part=1000";
/// Autoloaded by socket(AF_PPPOX) from inside the unit; pulls ppp_generic and
/// slhc: a dependency chain of three on every kernel (AppleTalk is gone from 7.x).
pub const CHAIN_ALIAS: &str = "net-pf-24";
pub const CHAIN: [&str; 3] = ["pppox", "ppp_generic", "slhc"];
/// The socket: family AF_PPPOX, SOCK_DGRAM, protocol 4. The protocol is past
/// PX_MAX_PROTO, so once the kernel has loaded pppox for the family, pppox
/// refuses it (EPROTOTYPE) before it would request a PPPoE/L2TP/PPTP module.
pub const CHAIN_SOCKET: [i32; 3] = [24, 2, 4];
pub const CHAIN_SOCKET_ERRNO: i32 = libc::EPROTOTYPE;
/// Autoloaded by `ip link add mtdummy0 type dummy`.
pub const DUMMY_MODULE: &str = "dummy";
pub const DUMMY_ALIAS: &str = "rtnl-link-dummy";
/// socket(AF_ALG): its module is left out of the initramfs, so the request fails.
pub const MISSING_ALIAS: &str = "net-pf-38";
pub const MISSING_MODULE: &str = "af_alg";

// ---- learning: `modtrace learn`, the profile, report, snapshot and diff ----

/// Named in MODULES_LOAD_CONF and modprobe'd before learning: preloaded, with
/// that file as the reason. No dependencies.
pub const CONFIGURED_MODULE: &str = "tcp_bic";
pub const MODULES_LOAD_CONF: &str = "/etc/modules-load.d/modtrace-test.conf";
/// modprobe'd before learning with no configuration: preloaded "before learning",
/// cause unknown, so it needs review (nothing says root's modprobe loaded it).
pub const PRELOADED_MODULE: &str = "tcp_highspeed";
/// The learner that runs alongside `modtrace trace` for the whole scenario.
pub const PROFILE: &str = "/var/lib/modtrace/profile.json";
/// Longer than the scenario: the learner is ended by SIGINT.
pub const LEARN_DURATION: &str = "180s";
/// Snapshots before tracing and after learning.
pub const SNAPSHOT_BEFORE: &str = "/tmp/before.json";
pub const SNAPSHOT_AFTER: &str = "/tmp/after.json";
/// A learner checkpointing every second is SIGKILLed after this module loads.
pub const KILLED_PROFILE: &str = "/tmp/killed.json";
pub const KILLED_LEARNER_MODULE: &str = "tcp_scalable";
/// A profile cut short: learn must refuse it and leave it as it is.
pub const CORRUPT_PROFILE: &str = "/tmp/corrupt.json";
/// Written as it is, without a final newline.
pub const CORRUPT_TEXT: &str = r#"{"schema": "modtrace-profile/1", "modules": ["#;

// ---- a flood of failed loads and requests, and real loads in the middle of it ----

/// How long each spammer runs.
pub const FLOOD_SECS: u32 = 5;
/// After the flood, two processes on one CPU take turns failing loads for
/// this long, BURST calls at a time: the probes' per-CPU fold cache changes
/// process at every turn.
pub const ALTERNATE_SECS: u32 = 3;
pub const ALTERNATE_BURST: u32 = 4;
/// Once the tracer stopped, a tracer whose fold maps hold FOLD_EVICT_ENTRIES
/// processes (MODTRACE_TEST_FOLD_ENTRIES) while FOLD_EVICT_PROCESSES take
/// turns failing loads on one CPU: the full map drops entries with their
/// counts, which must be counted as lost repeats.
pub const FOLD_EVICT_ENTRIES: u32 = 4;
pub const FOLD_EVICT_PROCESSES: u32 = 10;
pub const FOLD_EVICT_SECS: u32 = 1;
pub const FOLD_EVICT_BURST: u32 = 16;
/// socket(AF_PHONET) during the flood: autoloads phonet (no dependencies).
pub const FLOOD_SOCKET_FAMILY: u32 = 35;
pub const FLOOD_ALIAS: &str = "net-pf-35";
pub const FLOOD_AUTOLOAD_MODULE: &str = "phonet";
/// modprobe'd during the flood.
pub const FLOOD_EXPLICIT_MODULE: &str = "tcp_illinois";

// ---- who asked: an unprivileged user's unit, a container's unit (issue 7) ----

/// A process of this uid (logged in: loginuid set) in a user unit named like a
/// system display manager (lightdm.service) opens a socket of family
/// WHO_USER_FAMILY (AF_KCM).
pub const WHO_USER_UID: u32 = 1000;
pub const WHO_USER_CGROUP: &str = "/user.slice/user-1000.slice/user@1000.service/app.slice/lightdm.service";
pub const WHO_USER_FAMILY: u32 = 41;
pub const WHO_USER_ALIAS: &str = "net-pf-41";
pub const WHO_USER_MODULE: &str = "kcm";
/// A root process in a container's cgroup tree, in a unit named like a host
/// unit (cron.service), mounts a file system whose module is not loaded.
pub const WHO_CONTAINER_CGROUP: &str = "/machine.slice/systemd-nspawn@box.service/payload/system.slice/cron.service";
pub const WHO_CONTAINER_FS: &str = "minix";
pub const WHO_CONTAINER_ALIAS: &str = "fs-minix";
pub const WHO_CONTAINER_MODULE: &str = "minix";
// ---- containers by namespace, not by name (issue 21, part 5) ----

/// A host system unit's cgroup, where systemd-nspawn --keep-unit and podman
/// --cgroups=split put containers.
pub const NETNS_UNIT: &str = "keepunit.service";
pub const NETNS_CGROUP: &str = "/system.slice/keepunit.service";
/// mount -t FS by root in that cgroup: forked into new pid and mount
/// namespaces (unshare -m -p -f), unshared but not forked (unshare -m -p),
/// and in init's namespaces. Each module is in all three kernels and asked
/// for nowhere else.
pub const NETNS_FORKED_FS: &str = "qnx6";
pub const NETNS_UNFORKED_FS: &str = "befs";
pub const NETNS_HOST_FS: &str = "qnx4";
/// NETNS_UNIT's drop-in from generate (tests/guest/init's netns_outputs).
pub const NETNS_DROP_IN: &str = "netns-drop-in.conf";

/// The kernel's "not set" for loginuid and sessionid.
pub const AUDIT_UNSET: u64 = u32::MAX as u64;

// ---- a flood of distinct requests from many processes, and real loads in it ----

/// Until the real loads in it are done (for this long at most), PARALLEL new
/// processes at a time each request BATCH file system types never requested
/// before (fs-PREFIXn): nothing folds.
pub const DISTINCT_FLOOD_SECS: u32 = 60;
pub const DISTINCT_FLOOD_BATCH: u32 = 10;
pub const DISTINCT_FLOOD_PARALLEL: u32 = 4;
pub const DISTINCT_FLOOD_PREFIX: &str = "mtflood";
/// socket(AF_QIPCRTR) during that flood: autoloads qrtr (no dependencies).
pub const DISTINCT_FLOOD_SOCKET_FAMILY: u32 = 42;
pub const DISTINCT_FLOOD_ALIAS: &str = "net-pf-42";
pub const DISTINCT_FLOOD_AUTOLOAD_MODULE: &str = "qrtr";
/// modprobe'd during that flood.
pub const DISTINCT_FLOOD_EXPLICIT_MODULE: &str = "tcp_vegas";

// ---- issue 21 part 6: a user's flood of names no module provides ----

/// As WHO_USER_UID in WHO_USER_CGROUP, in a user namespace of its own (so that
/// mount(2) is allowed), one process mounts UNTRUSTED_FLOOD_NAMES made-up file
/// system types, fs-PREFIX0 .. : each a distinct request that resolves to no
/// module. The profile must fold them into one entry of at most 8 names
/// (modtrace's FOLDED_NAMES_KEPT) in under UNTRUSTED_FLOOD_MAX_BYTES of JSON
/// (the issue measured 336 KB for 600 names before). 300 keep the guest's
/// time (each is a modprobe run under TCG) inside the learner's window.
pub const UNTRUSTED_FLOOD_PREFIX: &str = "mtuser";
pub const UNTRUSTED_FLOOD_NAMES: u32 = 300;
pub const UNTRUSTED_FLOOD_NAMES_KEPT: usize = 8;
pub const UNTRUSTED_FLOOD_MAX_BYTES: usize = 2048;

// ---- trust: what generate, check and report make of the learned profile ----

/// Disabled by the site's modprobe.d the way Kicksecure's security-misc does
/// (`install can /bin/false`): socket(AF_CAN, SOCK_RAW, CAN_RAW) during learning
/// makes the kernel request net-pf-29, and its modprobe runs /bin/false instead
/// of loading can (the socket then fails with EAFNOSUPPORT).
pub const SITE_DISABLED_MODULE: &str = "can";
pub const SITE_DISABLED_ALIAS: &str = "net-pf-29";
pub const SITE_DISABLED_SOCKET: [i32; 3] = [29, 3, 1];
pub const SITE_DISABLED_ERRNO: i32 = libc::EAFNOSUPPORT;
pub const SITE_MODPROBE_CONF: &str = "/etc/modprobe.d/modtrace-test-site.conf";
/// `generate --out` of the learned profile, and of a copy in which the user
/// unit's module was accepted with `modtrace allow`.
pub const GENERATED_DIR: &str = "/tmp/generated";
pub const ACCEPTED_PROFILE: &str = "/tmp/accepted.json";
pub const ACCEPTED_GENERATED_DIR: &str = "/tmp/generated-accepted";

// ---- loads from before learning (issue 21, part 1; tests/guest/init's preload_*) ----

/// Before any tracer starts, a process of this uid opens a socket of a rare
/// family (AF_ATMPVC, SOCK_DGRAM, protocol 0): the kernel autoloads atm (no
/// dependencies, in 6.1, 6.12 and 7.x), which learn then finds loaded with
/// nothing to explain it: cause unknown, for review, never listed.
pub const PRELOAD_USER_UID: u32 = 1000;
pub const PRELOAD_USER_SOCKET: [i32; 3] = [8, 2, 0];
pub const PRELOAD_USER_MODULE: &str = "atm";
/// A copy of the learned profile, learned into again (1 s) while atm is still
/// loaded: it must stay under review.
pub const RELEARN_PROFILE: &str = "/tmp/relearn.json";

// ---- learning from early boot (tests/guest/early.sh) ----

/// modprobe'd while only the probes `modtrace learn --early` pinned run.
pub const EARLY_MODULE: &str = "tcp_veno";
/// `ip link add ... type ifb` meanwhile: the kernel requests rtnl-link-ifb.
pub const EARLY_ALIAS: &str = "rtnl-link-ifb";
pub const EARLY_REQUEST_MODULE: &str = "ifb";
pub const EARLY_PROFILE: &str = "/tmp/early.json";
/// The pin directory of another build (a stale initramfs): released unread.
pub const EARLY_FOREIGN: &str = "0000000000000000";

// ---- the guard sealed until reboot (tests/guest/init's seal_scenario, issue 23) ----

/// Where the sealed guard is pinned (modtrace's guard::kernel::PIN_DIR).
pub const SEAL_PIN_DIR: &str = "/sys/fs/bpf/modtrace/guard";
/// Outside the profile: refused while sealed, explicitly and by autoload
/// (tests/guest/guard.sh's GUARD_OUTSIDE, autoloaded through GUARD_CC).
pub const SEAL_OUTSIDE: &str = "tcp_scalable";
/// `ip link add` of this dummy link autoloads the profile's dummy while sealed.
pub const SEAL_DUMMY_LINK: &str = "mtseal0";

// ---- kernel threads: the crypto manager's thread acts for a user (trace/kthread.rs) ----

/// An unprivileged uid binds an AF_ALG socket of KTHREAD_ALG_TYPE to
/// KTHREAD_ALG; the kernel's cryptomgr_probe thread then requests crypto-lrw
/// and crypto-cast6 (and, where ecb is a module, crypto-ecb) for it.
pub const KTHREAD_UID: u32 = 1001;
pub const KTHREAD_ALG_TYPE: &str = "skcipher";
pub const KTHREAD_ALG: &str = "lrw(cast6)";
/// Modules in every kernel of the matrix. Only cast6_generic provides
/// crypto-cast6 in the image (the AVX variant is left out).
pub const KTHREAD_TEMPLATE: (&str, &str) = ("crypto-lrw", "lrw");
pub const KTHREAD_INNER: (&str, &str) = ("crypto-cast6", "cast6_generic");
/// lrw instantiates ecb(cast6): a module in 6.1, built in from 6.12.
pub const KTHREAD_IF_MODULE: [&str; 1] = ["ecb"];
pub const KTHREAD_VIA: &str = "cryptomgr_probe (kernel thread)";
/// AF_ALG's modules, uncompressed in KTHREAD_DIR outside /lib/modules (so
/// net-pf-38 stays unresolvable for the missing-alias step), insmod'ed by
/// root before the bind, in this order.
pub const KTHREAD_SOCKET_MODULES: [&str; 2] = ["af_alg", "algif_skcipher"];
pub const KTHREAD_DIR: &str = "opt/kthread";

/// Modules whose files (and dependencies) the guest's modprobe can find.
pub const MODPROBE_MODULES: [&str; 23] = [
    EXPLICIT_MODULE,
    BINFMT_MODULE,
    CHAIN[0],
    DUMMY_MODULE,
    UNIT_MODULE,
    CONFIGURED_MODULE,
    PRELOADED_MODULE,
    KILLED_LEARNER_MODULE,
    FLOOD_AUTOLOAD_MODULE,
    FLOOD_EXPLICIT_MODULE,
    WHO_USER_MODULE,
    WHO_CONTAINER_MODULE,
    SITE_DISABLED_MODULE,
    DISTINCT_FLOOD_AUTOLOAD_MODULE,
    DISTINCT_FLOOD_EXPLICIT_MODULE,
    EARLY_MODULE,
    EARLY_REQUEST_MODULE,
    PRELOAD_USER_MODULE,
    NETNS_FORKED_FS,
    NETNS_UNFORKED_FS,
    NETNS_HOST_FS,
    KTHREAD_TEMPLATE.1,
    KTHREAD_INNER.1,
];
/// Modules copied uncompressed to /opt/ko for insmod and init_module.
pub const LOOSE_MODULES: [&str; 3] = [INSMOD_MODULE, INIT_MODULE_MODULE, INIT_FAILS_MODULE];
pub const LOOSE_DIR: &str = "opt/ko";

/// The systemd-like unit the cgroup steps run in.
pub const UNIT: &str = "example.service";
pub const UNIT_CGROUP: &str = "/system.slice/example.service";

/// Process names (comm) the checks expect.
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

/// Seconds the guest waits for a tracer to attach before giving up.
const TRACER_WAIT_SECS: u32 = 150;

/// The guest's /etc/scenario.env, sourced by tests/guest/init.
pub fn env_file() -> String {
    let chain_socket = CHAIN_SOCKET.map(|n| n.to_string()).join(" ");
    let site_socket = SITE_DISABLED_SOCKET.map(|n| n.to_string()).join(" ");
    let preload_socket = PRELOAD_USER_SOCKET.map(|n| n.to_string()).join(" ");
    format!(
        "EXPLICIT_MODULE={EXPLICIT_MODULE}\n\
         INSMOD_KO=/{LOOSE_DIR}/{INSMOD_MODULE}.ko\n\
         INIT_MODULE_KO=/{LOOSE_DIR}/{INIT_MODULE_MODULE}.ko\n\
         INIT_FAILS_KO=/{LOOSE_DIR}/{INIT_FAILS_MODULE}.ko\n\
         INIT_FAILS_PARAMS={INIT_FAILS_PARAMS}\n\
         UNIT_MODULE={UNIT_MODULE}\n\
         UNIT_CGROUP=/sys/fs/cgroup{UNIT_CGROUP}\n\
         CHAIN_SOCKET='{chain_socket}'\n\
         CHAIN_SOCKET_ERRNO={CHAIN_SOCKET_ERRNO}\n\
         TRACER_WAIT={TRACER_WAIT_SECS}\n\
         CONFIGURED_MODULE={CONFIGURED_MODULE}\n\
         MODULES_LOAD_CONF={MODULES_LOAD_CONF}\n\
         PRELOADED_MODULE={PRELOADED_MODULE}\n\
         PROFILE={PROFILE}\n\
         LEARN_DURATION={LEARN_DURATION}\n\
         SNAPSHOT_BEFORE={SNAPSHOT_BEFORE}\n\
         SNAPSHOT_AFTER={SNAPSHOT_AFTER}\n\
         KILLED_PROFILE={KILLED_PROFILE}\n\
         KILLED_LEARNER_MODULE={KILLED_LEARNER_MODULE}\n\
         CORRUPT_PROFILE={CORRUPT_PROFILE}\n\
         CORRUPT_TEXT='{CORRUPT_TEXT}'\n\
         FLOOD_SECS={FLOOD_SECS}\n\
         ALTERNATE_SECS={ALTERNATE_SECS}\n\
         ALTERNATE_BURST={ALTERNATE_BURST}\n\
         FOLD_EVICT_ENTRIES={FOLD_EVICT_ENTRIES}\n\
         FOLD_EVICT_PROCESSES={FOLD_EVICT_PROCESSES}\n\
         FOLD_EVICT_SECS={FOLD_EVICT_SECS}\n\
         FOLD_EVICT_BURST={FOLD_EVICT_BURST}\n\
         FLOOD_SOCKET_FAMILY={FLOOD_SOCKET_FAMILY}\n\
         FLOOD_EXPLICIT_MODULE={FLOOD_EXPLICIT_MODULE}\n\
         SITE_DISABLED_MODULE={SITE_DISABLED_MODULE}\n\
         SITE_DISABLED_SOCKET='{site_socket}'\n\
         SITE_DISABLED_ERRNO={SITE_DISABLED_ERRNO}\n\
         SITE_MODPROBE_CONF={SITE_MODPROBE_CONF}\n\
         GENERATED_DIR={GENERATED_DIR}\n\
         ACCEPTED_PROFILE={ACCEPTED_PROFILE}\n\
         ACCEPTED_GENERATED_DIR={ACCEPTED_GENERATED_DIR}\n\
         WHO_USER_MODULE={WHO_USER_MODULE}\n\
         WHO_USER_UID={WHO_USER_UID}\n\
         WHO_USER_CGROUP=/sys/fs/cgroup{WHO_USER_CGROUP}\n\
         WHO_USER_FAMILY={WHO_USER_FAMILY}\n\
         WHO_CONTAINER_CGROUP=/sys/fs/cgroup{WHO_CONTAINER_CGROUP}\n\
         WHO_CONTAINER_FS={WHO_CONTAINER_FS}\n\
         DISTINCT_FLOOD_SECS={DISTINCT_FLOOD_SECS}\n\
         DISTINCT_FLOOD_BATCH={DISTINCT_FLOOD_BATCH}\n\
         DISTINCT_FLOOD_PARALLEL={DISTINCT_FLOOD_PARALLEL}\n\
         DISTINCT_FLOOD_PREFIX={DISTINCT_FLOOD_PREFIX}\n\
         DISTINCT_FLOOD_SOCKET_FAMILY={DISTINCT_FLOOD_SOCKET_FAMILY}\n\
         DISTINCT_FLOOD_EXPLICIT_MODULE={DISTINCT_FLOOD_EXPLICIT_MODULE}\n\
         UNTRUSTED_FLOOD_PREFIX={UNTRUSTED_FLOOD_PREFIX}\n\
         UNTRUSTED_FLOOD_NAMES={UNTRUSTED_FLOOD_NAMES}\n\
         EARLY_MODULE={EARLY_MODULE}\n\
         EARLY_REQUEST_MODULE={EARLY_REQUEST_MODULE}\n\
         EARLY_PROFILE={EARLY_PROFILE}\n\
         EARLY_FOREIGN={EARLY_FOREIGN}\n\
         PRELOAD_USER_UID={PRELOAD_USER_UID}\n\
         PRELOAD_USER_SOCKET='{preload_socket}'\n\
         RELEARN_PROFILE={RELEARN_PROFILE}\n\
         NETNS_UNIT={NETNS_UNIT}\n\
         NETNS_CGROUP=/sys/fs/cgroup{NETNS_CGROUP}\n\
         NETNS_FORKED_FS={NETNS_FORKED_FS}\n\
         NETNS_UNFORKED_FS={NETNS_UNFORKED_FS}\n\
         NETNS_HOST_FS={NETNS_HOST_FS}\n\
         KTHREAD_UID={KTHREAD_UID}\n\
         KTHREAD_ALG_TYPE={KTHREAD_ALG_TYPE}\n\
         KTHREAD_ALG='{KTHREAD_ALG}'\n\
         KTHREAD_DIR=/{KTHREAD_DIR}\n\
         SEAL_PIN_DIR={SEAL_PIN_DIR}\n\
         SEAL_OUTSIDE={SEAL_OUTSIDE}\n\
         SEAL_DUMMY_LINK={SEAL_DUMMY_LINK}\n"
    )
}

/// Files the guest copies to /tmp/out for the host, by section name.
pub mod section {
    /// /proc/modules once `modtrace trace` has attached.
    pub const MODULES_AT_START: &str = "modules-at-start";
    pub const PROFILE: &str = "profile.json";
    pub const KILLED_PROFILE: &str = "killed.json";
    /// The corrupt profile after learn refused it.
    pub const CORRUPT_AFTER: &str = "corrupt.json";
    /// `find -type f` of generate's output, and its modules-load.d list; the
    /// same after `modtrace allow` of the user unit's module.
    pub const GENERATED_FILES: &str = "generated-files";
    pub const GENERATED_LIST: &str = "generated-modules-load.conf";
    pub const ACCEPTED_FILES: &str = "accepted-files";
    pub const ACCEPTED_LIST: &str = "accepted-modules-load.conf";
    /// The profile of the learner that took the early probes over.
    pub const EARLY_PROFILE: &str = "early.json";
    /// The copy of the profile after a second session (RELEARN_PROFILE).
    pub const RELEARN_PROFILE: &str = "relearn.json";
}

/// Names of the commands tests/guest/init captures: `NAME.stdout`,
/// `NAME.stderr` sections and a line in exit-codes.
pub mod captured {
    /// The main learner (stderr only: it prints where it saved the profile).
    pub const LEARN: &str = "learn";
    pub const SECOND_LEARNER: &str = "learn-second";
    pub const KILLED_LEARNER: &str = "learn-killed";
    pub const CORRUPT_LEARNER: &str = "learn-corrupt";
    /// cmp of the corrupt profile with a copy taken before learn ran.
    pub const CORRUPT_CMP: &str = "corrupt-cmp";
    pub const DIFF_CHANGED: &str = "diff-before-after";
    pub const DIFF_SAME: &str = "diff-before-before";
    pub const DIFF_EXPLAINED: &str = "diff-profile";
    pub const REPORT_TABLE: &str = "report-table";
    pub const REPORT_MARKDOWN: &str = "report-markdown";
    pub const REPORT_JSON: &str = "report-json";
    pub const REPORT_BY_UNIT: &str = "report-by-unit";
    /// generate, check and allow on the learned profile (trust outputs).
    pub const GENERATE: &str = "generate";
    pub const CHECK: &str = "check";
    pub const ALLOW: &str = "allow";
    pub const GENERATE_ACCEPTED: &str = "generate-accepted";
    pub const SPAM_FAILED_LOADS: &str = "spam-failed-loads";
    pub const SPAM_REQUESTS: &str = "spam-requests";
    pub const ALTERNATE_FAILED_LOADS: &str = "alternate-failed-loads";
    /// The fold-eviction tracer (its events and stderr, as files) and the
    /// processes failing loads under it.
    pub const EVICT_TRACE: &str = "evict-trace";
    pub const EVICT_EVENTS: &str = "evict-events.jsonl";
    pub const EVICT_TRACE_ERR: &str = "evict-trace.err";
    pub const EVICT_FAILED_LOADS: &str = "evict-failed-loads";
    pub const SPAM_DISTINCT_REQUESTS: &str = "spam-distinct-requests";
    /// The user's flood of made-up names (issue 21 part 6).
    pub const UNTRUSTED_FLOOD: &str = "untrusted-flood";
    /// tests/guest/early.sh: `learn --early`, the learner that takes its probes
    /// over, and whether /sys/fs/bpf/modtrace/early was gone afterwards (0).
    pub const EARLY_PIN: &str = "early-pin";
    pub const EARLY_LEARN: &str = "early-learn";
    pub const EARLY_RELEASED: &str = "early-released";
    /// The second session on a copy of the profile, and check on it.
    pub const RELEARN: &str = "learn-relearn";
    pub const CHECK_RELEARN: &str = "check-relearn";
}

#[cfg(test)]
mod script_tests {
    use std::process::Command;

    /// Every shell script a guest or a package runs parses: a broken one
    /// (an unclosed function after a merge) kills every guest at its first line.
    #[test]
    fn every_shell_script_parses() {
        let root = crate::harness::paths::workspace();
        let scripts = [
            "tests/guest/init",
            "tests/guest/early.sh",
            "tests/guest/guard.sh",
            "tests/system/common.sh",
            "tests/system/learned.sh",
            "tests/system/guarded.sh",
            "tests/system/locked.sh",
            "tests/system/initramfs-init",
            "tests/demo/demo.sh",
            "packaging/initramfs-tools/hooks/modtrace",
            "packaging/initramfs-tools/scripts/init-top/modtrace",
            "packaging/kernel/postinst.d/modtrace",
        ];
        for script in scripts {
            let out = Command::new("sh").arg("-n").arg(root.join(script)).output().expect("run sh -n");
            assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let broken = std::env::temp_dir().join(format!("modtrace-broken-{}.sh", std::process::id()));
        std::fs::write(&broken, "f() {\n    echo x\n").unwrap();
        let out = Command::new("sh").arg("-n").arg(&broken).output().unwrap();
        std::fs::remove_file(&broken).unwrap();
        assert!(!out.status.success(), "sh -n must refuse an unclosed function");
    }
}
