//! Who a task is: its executable and command line (/proc), its cgroup v2 path and
//! systemd unit (the cgroup tree), the kernel call sites it came through (as
//! the kernel named them), and wall-clock time for the kernel's monotonic
//! timestamps.
//!
//! Everything read from /proc is read when the event is handled, not when it
//! happened: a process that is gone, or whose thread name no longer matches the
//! event's, gets None rather than somebody else's facts.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::trace::event::{Parent, Process, Task};
use crate::trace::scope::{Namespaces, Scope};

/// What the correlator needs to know about tasks and times. The real
/// one is `SystemDescriber`; tests use a fake.
pub trait Describe {
    /// The task as a `Process`: kernel facts plus what /proc and the cgroup tree say.
    fn process(&mut self, task: &Task) -> Process;
    /// The task's parent; None when the kernel could not read it.
    fn parent(&mut self, task: &Task) -> Option<Parent>;
    /// RFC 3339 UTC time, with milliseconds, of a CLOCK_MONOTONIC timestamp.
    fn wall_time(&mut self, ts_ns: u64) -> String;
}

// ---------------------------------------------------------------------------
// systemd units from cgroup paths

pub use crate::trace::scope::unit_of;

/// The cgroup v2 path in a /proc/PID/cgroup text (the "0::PATH" line).
pub fn proc_cgroup_path(text: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix("0::")).map(str::to_string)
}

/// Where cgroup2 is mounted, from a /proc/self/mountinfo text.
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let dash = fields.iter().position(|f| *f == "-")?;
        let mount_point = fields.get(4).filter(|_| fields.get(dash + 1) == Some(&"cgroup2"))?;
        Some(PathBuf::from(unescape_octal(mount_point)))
    })
}

/// mountinfo writes space, tab, newline and backslash as \ooo.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes.get(i + 1..i + 4).and_then(|o| std::str::from_utf8(o).ok());
        match code.and_then(|o| u8::from_str_radix(o, 8).ok()) {
            Some(b) if bytes[i] == b'\\' => {
                out.push(b);
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Cgroup paths kept, removed ones included, before a walk starts over.
pub const CGROUPS_KEPT: usize = 16384;

/// cgroup v2 id -> path below the root. The id bpf_get_current_cgroup_id() gives
/// is the inode number of the cgroup's directory (64-bit kernels), so the tree is
/// walked once and walked again when an id is missing, at most every `min_gap`.
#[derive(Debug)]
pub struct CgroupTree {
    root: PathBuf,
    paths: HashMap<u64, String>,
    last_walk: Option<Instant>,
    min_gap: Duration,
}

impl CgroupTree {
    pub fn new(root: PathBuf) -> Self {
        Self::with_min_gap(root, Duration::from_millis(250))
    }

    pub fn with_min_gap(root: PathBuf, min_gap: Duration) -> Self {
        CgroupTree { root, paths: HashMap::new(), last_walk: None, min_gap }
    }

    /// The path of cgroup `id`, e.g. "/system.slice/lightdm.service", or "/".
    pub fn path(&mut self, id: u64) -> Option<String> {
        if !self.paths.contains_key(&id) && self.may_walk() {
            self.walk();
        }
        self.paths.get(&id).cloned()
    }

    fn may_walk(&self) -> bool {
        self.last_walk.is_none_or(|t| t.elapsed() >= self.min_gap)
    }

    /// Adds what is there now; removed cgroups are kept, since events from them
    /// may still be in flight (kernfs does not hand out an id again soon), until
    /// CGROUPS_KEPT are known: a user who makes and removes cgroups in their
    /// own subtree must not grow the map, so it starts over from what exists.
    fn walk(&mut self) {
        if self.paths.len() >= CGROUPS_KEPT {
            self.paths.clear();
        }
        walk_dir(&self.root, "", &mut self.paths);
        self.last_walk = Some(Instant::now());
    }
}

fn walk_dir(dir: &Path, rel: &str, out: &mut HashMap<u64, String>) {
    let Ok(meta) = fs::symlink_metadata(dir) else { return };
    out.insert(meta.ino(), if rel.is_empty() { "/".to_string() } else { rel.to_string() });
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let child = format!("{rel}/{}", entry.file_name().to_string_lossy());
            walk_dir(&entry.path(), &child, out);
        }
    }
}

// ---------------------------------------------------------------------------
// /proc

/// The target of /proc/TGID/exe; None when the process is gone or has no file.
pub fn exe(proc_root: &Path, tgid: u32) -> Option<String> {
    let link = fs::read_link(proc_root.join(tgid.to_string()).join("exe")).ok()?;
    Some(link.to_string_lossy().into_owned())
}

/// /proc/TGID/cmdline split at NULs; None when gone or empty (kernel threads,
/// zombies).
pub fn cmdline(proc_root: &Path, tgid: u32) -> Option<Vec<String>> {
    let bytes = fs::read(proc_root.join(tgid.to_string()).join("cmdline")).ok()?;
    let args = split_cmdline(&bytes);
    (!args.is_empty()).then_some(args)
}

pub fn split_cmdline(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}

/// Whether /proc still shows the task the kernel saw: a thread whose name differs
/// has exec'd or its pid was reused, so its /proc facts are not the event's.
/// When the thread's name cannot be read the check cannot be made and passes;
/// the reads that follow fail on their own if the process is gone.
fn still_there(proc_root: &Path, tgid: u32, pid: u32, comm: &str) -> bool {
    let path = proc_root.join(tgid.to_string()).join("task").join(pid.to_string()).join("comm");
    match fs::read_to_string(path) {
        Ok(now) => now.trim_end_matches('\n') == comm,
        Err(_) => true,
    }
}

/// Whether /proc's task started at `start_ns` (CLOCK_MONOTONIC), to a clock tick.
/// /proc counts from boot including suspend: used only for events of early boot,
/// before any suspend.
fn started_at(proc_root: &Path, tgid: u32, pid: u32, start_ns: u64) -> bool {
    let path = proc_root.join(tgid.to_string()).join("task").join(pid.to_string()).join("stat");
    let Some(ticks) = fs::read_to_string(path).ok().as_deref().and_then(stat_start_ticks) else { return false };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let tick_ns = 1_000_000_000 / hz;
    (ticks * tick_ns).abs_diff(start_ns) <= tick_ns
}

/// Field 22 (starttime, in clock ticks) of a /proc/PID/stat text; the command
/// name in parentheses may hold spaces and parentheses, so fields count from
/// the last ')'.
fn stat_start_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// PID 1's pid and mount namespaces, from /proc/1/ns: what "on the host"
/// means for a task's namespaces. modtrace runs in init's (a tracer in a
/// container would compare with its own init, and needs the host's BPF anyway).
pub fn init_namespaces(proc_root: &Path) -> Option<Namespaces> {
    let ns = proc_root.join("1").join("ns");
    Some(Namespaces { pid: ns_inode(&ns.join("pid"), "pid")?, mnt: ns_inode(&ns.join("mnt"), "mnt")? })
}

/// The inode number in a /proc/PID/ns/KIND link's target, "KIND:[N]".
fn ns_inode(link: &Path, kind: &str) -> Option<u32> {
    let target = fs::read_link(link).ok()?;
    let target = target.to_str()?.strip_prefix(kind)?.strip_prefix(":[")?.strip_suffix(']')?;
    target.parse().ok()
}

fn proc_unit(proc_root: &Path, tgid: u32) -> Option<String> {
    let text = fs::read_to_string(proc_root.join(tgid.to_string()).join("cgroup")).ok()?;
    unit_of(&proc_cgroup_path(&text)?)
}

/// When the main system's init started (CLOCK_MONOTONIC ns), from systemd's
/// own record: an event before it happened in the initramfs. None without
/// systemd.
pub fn initramfs_end_ns() -> Option<u64> {
    let out = std::process::Command::new("systemctl")
        .args(["show", "--property=UserspaceTimestampMonotonic"])
        .output()
        .ok()?;
    initramfs_end_from_show(&String::from_utf8_lossy(&out.stdout))
}

/// The boundary from `systemctl show` output (microseconds). With systemd in
/// the initramfs too (dracut), UserspaceTimestamp is still the main system's
/// start: the initramfs's systemd hands its own start over as InitRDTimestamp.
pub fn initramfs_end_from_show(text: &str) -> Option<u64> {
    let value = |key: &str| -> Option<u64> {
        text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('=')?.trim().parse().ok())
    };
    value("UserspaceTimestampMonotonic").filter(|&us| us > 0).map(|us| us * 1000)
}

// ---------------------------------------------------------------------------
// call sites

/// A request's call site as `symbol+0xoff [module]`, from the kernel's own name
/// of it (%pS: `symbol+0xoff/0xsize [module]`, the function's size dropped), or
/// the hex address when the kernel gave no name.
pub fn call_site(kernel_name: &str, addr: u64) -> String {
    let (symbol, module) = match kernel_name.split_once(' ') {
        Some((symbol, module)) => (symbol, Some(module)),
        None => (kernel_name, None),
    };
    let symbol = symbol.split_once('/').map_or(symbol, |(at, _size)| at);
    match (symbol, module) {
        ("", _) => format!("{addr:#x}"),
        (symbol, Some(module)) => format!("{symbol} {module}"),
        (symbol, None) => symbol.to_string(),
    }
}

// ---------------------------------------------------------------------------
// time

/// The wall-clock time of monotonic `ts_ns`, given monotonic and real "now".
pub fn wall_time_at(ts_ns: u64, mono_now_ns: u64, real_now: SystemTime) -> String {
    let time = if ts_ns <= mono_now_ns {
        real_now.checked_sub(Duration::from_nanos(mono_now_ns - ts_ns))
    } else {
        real_now.checked_add(Duration::from_nanos(ts_ns - mono_now_ns))
    };
    humantime::format_rfc3339_millis(time.unwrap_or(UNIX_EPOCH)).to_string()
}

/// CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns().
fn monotonic_now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec to write into; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

// ---------------------------------------------------------------------------
// the real describer

/// Describes tasks from this machine's /proc and cgroup tree.
#[derive(Debug)]
pub struct SystemDescriber {
    proc_root: PathBuf,
    cgroups: Option<CgroupTree>,
    /// Events handled long after they happened (the initramfs's, taken over by
    /// the learner): /proc describes a process only when its start time is the
    /// kernel's, since by now its pid may be another process of the same name.
    replaying: bool,
    /// init's namespaces, read once: a task in another pid namespace is a container.
    init_ns: Option<Namespaces>,
}

impl SystemDescriber {
    /// /proc, and cgroup2 wherever /proc/self/mountinfo says it is mounted.
    pub fn new() -> Self {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        Self::with_roots(PathBuf::from("/proc"), cgroup2_mount(&mountinfo))
    }

    /// For tests and other roots: `cgroup_root` None means no cgroup2 is mounted.
    pub fn with_roots(proc_root: PathBuf, cgroup_root: Option<PathBuf>) -> Self {
        let init_ns = init_namespaces(&proc_root);
        SystemDescriber { proc_root, cgroups: cgroup_root.map(CgroupTree::new), replaying: false, init_ns }
    }

    /// For events from the past (see `replaying`).
    pub fn replaying(self) -> Self {
        SystemDescriber { replaying: true, ..self }
    }

    /// Whether /proc's TGID/PID is the task of the event.
    fn alive(&self, task: &Task) -> bool {
        still_there(&self.proc_root, task.tgid, task.pid, &task.comm)
            && (!self.replaying || task.start_time_ns.is_some_and(|t| started_at(&self.proc_root, task.tgid, task.pid, t)))
    }

    fn cgroup_path(&mut self, task: &Task, alive: bool) -> Option<String> {
        if task.cgroup_id != 0 {
            return self.cgroups.as_mut()?.path(task.cgroup_id);
        }
        // No id from the kernel (no cgroup v2 hierarchy): /proc is all there is.
        let text = fs::read_to_string(self.proc_root.join(task.tgid.to_string()).join("cgroup"));
        alive.then(|| proc_cgroup_path(&text.ok()?)).flatten()
    }
}

impl Default for SystemDescriber {
    fn default() -> Self {
        Self::new()
    }
}

impl Describe for SystemDescriber {
    fn process(&mut self, task: &Task) -> Process {
        let alive = self.alive(task);
        // A short-lived unit's cgroup may be gone before the walk finds its id:
        // the kernel's copy of the whole path, read at event time, stands in.
        let cgroup = self.cgroup_path(task, alive).or_else(|| task.cgroup_path.clone());
        let unit = cgroup.as_deref().or(task.cgroup_name.as_deref()).and_then(unit_of);
        Process {
            exe: alive.then(|| exe(&self.proc_root, task.tgid)).flatten(),
            // The kernel's copy is from event time; /proc only while the process lives.
            cmdline: task.args.clone().or_else(|| alive.then(|| cmdline(&self.proc_root, task.tgid)).flatten()),
            // Without any path (the kernel's was cut, or its layout is unknown),
            // the leaf name still names the unit, but not whose unit it is: the
            // scope stays unknown, unless the namespaces make it a container.
            scope: Scope::of_task(cgroup.as_deref(), unit.as_deref(), task.namespaces, self.init_ns),
            unit,
            cgroup,
            ..Process::from_task(task)
        }
    }

    fn parent(&mut self, task: &Task) -> Option<Parent> {
        // PID 1's parent is the kernel's idle task (pid 0): nobody that asked.
        let ppid = task.ppid.filter(|&p| p != 0)?;
        // The kernel gives the parent's tgid; its main thread stands for it.
        // The kernel gives no start time of the parent: a replayed one is gone.
        let alive = !self.replaying
            && task.parent_comm.as_deref().is_none_or(|c| still_there(&self.proc_root, ppid, ppid, c));
        Some(Parent {
            pid: ppid,
            comm: task.parent_comm.clone(),
            exe: alive.then(|| exe(&self.proc_root, ppid)).flatten(),
            unit: alive.then(|| proc_unit(&self.proc_root, ppid)).flatten(),
        })
    }

    fn wall_time(&mut self, ts_ns: u64) -> String {
        wall_time_at(ts_ns, monotonic_now_ns(), SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initramfs_ends_when_the_main_systems_systemd_started() {
        let show = "InitRDTimestampMonotonic=0\nUserspaceTimestampMonotonic=2113445\n";
        assert_eq!(initramfs_end_from_show(show), Some(2_113_445_000));
        // systemd in the initramfs (dracut): the main system's start is still the end.
        let dracut = "InitRDTimestampMonotonic=912000\nUserspaceTimestampMonotonic=3207101\n";
        assert_eq!(initramfs_end_from_show(dracut), Some(3_207_101_000));
        // A load of the initramfs's udev, 1.5 s in, and one of the main system's, 3.5 s in.
        let end = initramfs_end_from_show(dracut);
        assert_eq!(crate::trace::event::stage_at(1_500_000_000, end), Some("initramfs"));
        assert_eq!(crate::trace::event::stage_at(3_500_000_000, end), None);
        assert_eq!(crate::trace::event::stage_at(1_500_000_000, None), None);
        assert_eq!(initramfs_end_from_show("UserspaceTimestampMonotonic=0\n"), None);
        assert_eq!(initramfs_end_from_show(""), None);
    }

    #[test]
    fn pid_1_has_no_parent_that_asked() {
        let pid1 = Task { pid: 1, tgid: 1, ppid: Some(0), parent_comm: Some("swapper/0".into()), comm: "systemd".into(), ..Task::default() };
        let mut d = SystemDescriber::with_roots(PathBuf::from("/nonexistent"), None);
        assert_eq!(d.parent(&pid1), None);
        let child = Task { ppid: Some(1), parent_comm: Some("systemd".into()), ..pid1 };
        assert_eq!(d.parent(&child).map(|p| p.pid), Some(1));
    }

    #[test]
    fn the_start_time_is_read_after_the_last_parenthesis() {
        let stat = "412 (a) b (c)) S 1 412 412 0 -1 4194560 95 0 0 0 0 0 0 0 20 0 1 0 151 2428928 218 18446744073709551615";
        assert_eq!(stat_start_ticks(stat), Some(151));
        assert_eq!(stat_start_ticks("412 (cut"), None);
    }

    #[test]
    fn a_replayed_event_trusts_proc_only_for_the_same_process() {
        let dir = TempDir::new("attr");
        let task_dir = dir.join("7/task/7");
        std::fs::create_dir_all(&task_dir).unwrap();
        std::fs::write(task_dir.join("comm"), "modprobe\n").unwrap();
        std::fs::write(task_dir.join("stat"), "7 (modprobe) S 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 250 0 0").unwrap();
        symlink("/usr/bin/kmod", dir.join("7/exe")).unwrap();
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        let at = |ns: Option<u64>| Task { pid: 7, tgid: 7, comm: "modprobe".into(), start_time_ns: ns, ..Task::default() };
        let start = 250 * (1_000_000_000 / hz);
        let live = || SystemDescriber::with_roots(dir.path().to_path_buf(), None);
        assert_eq!(live().replaying().process(&at(Some(start))).exe.as_deref(), Some("/usr/bin/kmod"));
        // Same pid and name, started later: another process.
        assert_eq!(live().replaying().process(&at(Some(start + 5_000_000_000))).exe, None);
        assert_eq!(live().replaying().process(&at(None)).exe, None);
        // Live events keep the name check alone.
        assert_eq!(live().process(&at(Some(start + 5_000_000_000))).exe.as_deref(), Some("/usr/bin/kmod"));
    }
    use std::os::unix::fs::symlink;
    use crate::testutil::TempDir;

    fn ino(p: &Path) -> u64 {
        fs::metadata(p).unwrap().ino()
    }

    #[test]
    fn cgroup2_mount_is_found_and_unescaped() {
        let info = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/uni\\040fied rw,relatime shared:9 - cgroup2 cgroup2 rw
";
        assert_eq!(cgroup2_mount(info), Some(PathBuf::from("/sys/fs/cgroup/uni fied")));
        assert_eq!(cgroup2_mount("22 1 0:20 / /proc rw - proc proc rw\n"), None);
    }

    #[test]
    fn proc_cgroup_takes_the_v2_line() {
        assert_eq!(
            proc_cgroup_path("1:cpu:/\n0::/system.slice/a.service\n").as_deref(),
            Some("/system.slice/a.service")
        );
        assert_eq!(proc_cgroup_path("1:cpu:/\n"), None);
    }

    #[test]
    fn cgroup_tree_maps_inodes_and_rewalks_on_a_miss() {
        let root = TempDir::new("attr");
        let svc = root.join("system.slice/lightdm.service");
        fs::create_dir_all(&svc).unwrap();
        let mut tree = CgroupTree::with_min_gap(root.path().to_path_buf(), Duration::ZERO);
        assert_eq!(tree.path(ino(root.path())).as_deref(), Some("/"));
        assert_eq!(tree.path(ino(&svc)).as_deref(), Some("/system.slice/lightdm.service"));

        let late = root.join("user.slice/user-1000.slice/session-2.scope");
        fs::create_dir_all(&late).unwrap();
        assert_eq!(tree.path(ino(&late)).as_deref(), Some("/user.slice/user-1000.slice/session-2.scope"));
        assert_eq!(tree.path(u64::MAX), None);
    }

    #[test]
    fn removed_cgroups_are_forgotten_once_too_many_are_kept() {
        let root = TempDir::new("attr");
        let mut tree = CgroupTree::with_min_gap(root.path().to_path_buf(), Duration::ZERO);
        tree.paths.extend((0..CGROUPS_KEPT as u64).map(|i| (u64::MAX - i, format!("/gone-{i}"))));
        let late = root.join("late.service");
        fs::create_dir(&late).unwrap();
        assert_eq!(tree.path(ino(&late)).as_deref(), Some("/late.service"));
        assert_eq!(tree.paths.len(), 2, "the root and late.service: the removed ones went");
    }

    #[test]
    fn cgroup_tree_walks_again_only_after_the_gap() {
        let root = TempDir::new("attr");
        let mut tree = CgroupTree::with_min_gap(root.path().to_path_buf(), Duration::from_secs(3600));
        assert_eq!(tree.path(ino(root.path())).as_deref(), Some("/"));
        let late = root.join("late.service");
        fs::create_dir(&late).unwrap();
        assert_eq!(tree.path(ino(&late)), None);
    }

    fn fake_proc() -> TempDir {
        let root = TempDir::new("attr");
        let p = root.join("100");
        fs::create_dir_all(p.join("task/101")).unwrap();
        symlink("/usr/bin/python3", p.join("exe")).unwrap();
        fs::write(p.join("cmdline"), b"python3\0-c\0import socket\0").unwrap();
        fs::write(p.join("task/101/comm"), "python3\n").unwrap();
        fs::write(p.join("cgroup"), "0::/system.slice/example.service\n").unwrap();
        let parent = root.join("50");
        fs::create_dir_all(parent.join("task/50")).unwrap();
        symlink("/usr/bin/bash", parent.join("exe")).unwrap();
        fs::write(parent.join("task/50/comm"), "bash\n").unwrap();
        fs::write(parent.join("cgroup"), "0::/user.slice/user-1000.slice/session-2.scope\n").unwrap();
        root
    }

    fn task(pid: u32, tgid: u32, comm: &str) -> Task {
        Task { pid, tgid, ppid: Some(50), uid: 1000, cgroup_id: 0, comm: comm.into(), parent_comm: Some("bash".into()), args: None, cgroup_name: None, ..Task::default() }
    }

    #[test]
    fn exe_and_cmdline_come_from_proc_and_vanish_with_the_process() {
        let root = fake_proc();
        assert_eq!(exe(root.path(), 100).as_deref(), Some("/usr/bin/python3"));
        assert_eq!(cmdline(root.path(), 100).unwrap(), ["python3", "-c", "import socket"]);
        assert_eq!(exe(root.path(), 999), None);
        assert_eq!(cmdline(root.path(), 999), None);
        assert_eq!(split_cmdline(b""), Vec::<String>::new());
        assert_eq!(split_cmdline(b"a\0\0b"), ["a", "", "b"]);
    }

    #[test]
    fn system_describer_reads_process_and_parent() {
        let root = fake_proc();
        let mut d = SystemDescriber::with_roots(root.path().to_path_buf(), None);
        let p = d.process(&task(101, 100, "python3"));
        assert_eq!(p.exe.as_deref(), Some("/usr/bin/python3"));
        assert_eq!(p.cmdline.as_ref().unwrap()[0], "python3");
        // No cgroup id from the kernel: /proc/TGID/cgroup stands in.
        assert_eq!(p.cgroup.as_deref(), Some("/system.slice/example.service"));
        assert_eq!(p.unit.as_deref(), Some("example.service"));
        assert_eq!(p.scope, Scope::System { unit: "example.service".into() });

        let parent = d.parent(&task(101, 100, "python3")).unwrap();
        assert_eq!(parent.pid, 50);
        assert_eq!(parent.exe.as_deref(), Some("/usr/bin/bash"));
        assert_eq!(parent.unit.as_deref(), Some("session-2.scope"));
    }

    #[test]
    fn a_task_whose_name_changed_gets_no_proc_facts() {
        let root = fake_proc();
        let mut d = SystemDescriber::with_roots(root.path().to_path_buf(), None);
        let p = d.process(&task(101, 100, "modprobe"));
        assert_eq!((p.exe, p.cmdline, p.unit), (None, None, None));

        let mut orphan = task(101, 100, "python3");
        orphan.parent_comm = Some("zsh".into());
        let parent = d.parent(&orphan).unwrap();
        assert_eq!((parent.exe, parent.unit), (None, None));

        orphan.ppid = None;
        orphan.parent_comm = None;
        assert_eq!(d.parent(&orphan), None);
    }

    #[test]
    fn system_describer_maps_cgroup_ids_through_the_tree() {
        let proc_root = fake_proc();
        let cg = TempDir::new("attr");
        let svc = cg.join("system.slice/lightdm.service");
        fs::create_dir_all(&svc).unwrap();
        let inner = cg.join("machine.slice/systemd-nspawn@web.service/payload/system.slice/lightdm.service");
        fs::create_dir_all(&inner).unwrap();
        let mut d = SystemDescriber::with_roots(proc_root.path().to_path_buf(), Some(cg.path().to_path_buf()));
        let mut t = task(7, 7, "Xorg");
        t.cgroup_id = ino(&svc);
        let p = d.process(&t);
        assert_eq!(p.cgroup.as_deref(), Some("/system.slice/lightdm.service"));
        assert_eq!(p.unit.as_deref(), Some("lightdm.service"));
        assert_eq!(p.scope, Scope::System { unit: "lightdm.service".into() });
        assert_eq!((p.exe, p.cmdline), (None, None));

        // The same unit name inside a container's tree is the container's.
        t.cgroup_id = ino(&inner);
        let p = d.process(&t);
        assert_eq!(p.unit.as_deref(), Some("lightdm.service"));
        assert_eq!(
            p.scope,
            Scope::Container {
                runtime: "systemd-nspawn".into(),
                name: "web".into(),
                unit: Some("lightdm.service".into()),
                namespaces: Vec::new(),
            }
        );
    }

    /// /proc/1/ns/{pid,mnt} as the kernel shows them: links to "KIND:[N]".
    fn init_ns_links(proc_root: &Path, pid: &str, mnt: &str) {
        let ns = proc_root.join("1/ns");
        fs::create_dir_all(&ns).unwrap();
        symlink(pid, ns.join("pid")).unwrap();
        symlink(mnt, ns.join("mnt")).unwrap();
    }

    #[test]
    fn inits_namespaces_are_read_from_its_links_and_a_bad_one_is_none() {
        let good = TempDir::new("attr");
        init_ns_links(good.path(), "pid:[4026531836]", "mnt:[4026531841]");
        assert_eq!(init_namespaces(good.path()), Some(Namespaces { pid: 4_026_531_836, mnt: 4_026_531_841 }));
        let swapped = TempDir::new("attr");
        init_ns_links(swapped.path(), "mnt:[4026531841]", "pid:[4026531836]");
        assert_eq!(init_namespaces(swapped.path()), None);
        let odd = TempDir::new("attr");
        init_ns_links(odd.path(), "pid:[x]", "mnt:[4026531841]");
        assert_eq!(init_namespaces(odd.path()), None);
        assert_eq!(init_namespaces(Path::new("/nonexistent")), None);
    }

    /// A requester or loader in a host unit's cgroup (systemd-nspawn
    /// --keep-unit) is a container once its pid namespace is not init's.
    #[test]
    fn a_host_units_cgroup_in_other_namespaces_is_a_container() {
        let proc_root = fake_proc();
        init_ns_links(proc_root.path(), "pid:[4026531836]", "mnt:[4026531841]");
        let cg = TempDir::new("attr");
        let svc = cg.join("system.slice/keepunit.service");
        fs::create_dir_all(&svc).unwrap();
        let mut d = SystemDescriber::with_roots(proc_root.path().to_path_buf(), Some(cg.path().to_path_buf()));
        let mut t = task(9, 9, "mount");
        t.cgroup_id = ino(&svc);
        t.namespaces = Some(Namespaces { pid: 4_026_531_836, mnt: 4_026_531_841 });
        assert_eq!(d.process(&t).scope, Scope::System { unit: "keepunit.service".into() });
        t.namespaces = Some(Namespaces { pid: 4_026_532_290, mnt: 4_026_532_288 });
        let p = d.process(&t);
        assert_eq!(p.unit.as_deref(), Some("keepunit.service"));
        assert_eq!((p.pid_ns, p.mnt_ns), (Some(4_026_532_290), Some(4_026_532_288)));
        let expected = Scope::Container {
            runtime: "namespaces".into(),
            name: "keepunit.service".into(),
            unit: None,
            namespaces: vec!["pid".into(), "mnt".into()],
        };
        assert_eq!(p.scope, expected);
        // Without init's namespaces the names decide, as before.
        let mut blind = SystemDescriber::with_roots(PathBuf::from("/nonexistent"), Some(cg.path().to_path_buf()));
        assert_eq!(blind.process(&t).scope, Scope::System { unit: "keepunit.service".into() });
    }

    #[test]
    fn a_vanished_unit_cgroup_is_named_by_the_kernels_copy_of_its_name() {
        let proc_root = fake_proc();
        let cg = TempDir::new("attr");
        let mut d = SystemDescriber::with_roots(proc_root.path().to_path_buf(), Some(cg.path().to_path_buf()));
        let mut t = task(8, 8, "modtrace-guest");
        t.cgroup_id = 987_654; // no directory has this inode any more
        assert_eq!(d.process(&t).unit, None);
        t.cgroup_name = Some("fake-dm.service".into());
        let p = d.process(&t);
        assert_eq!((p.cgroup, p.unit.as_deref()), (None, Some("fake-dm.service")));
        // The leaf name alone does not say whose unit it is.
        assert_eq!(p.scope, Scope::Unknown);
        t.cgroup_name = Some("user-1000.slice".into());
        assert_eq!(d.process(&t).unit.as_deref(), Some("user-1000.slice"));
        // The kernel's copy of the whole path scopes it, gone or not.
        let path = "/user.slice/user-1000.slice/user@1000.service/app.slice/lightdm.service";
        t.cgroup_name = Some("lightdm.service".into());
        t.cgroup_path = Some(path.into());
        let p = d.process(&t);
        assert_eq!((p.cgroup.as_deref(), p.unit.as_deref()), (Some(path), Some("lightdm.service")));
        assert_eq!(p.scope, Scope::User { uid: 1000, unit: "lightdm.service".into() });
    }

    #[test]
    fn describes_this_test_process_from_the_real_proc_and_cgroup_tree() {
        let tgid = std::process::id();
        // SAFETY: gettid has no preconditions.
        let pid = unsafe { libc::gettid() } as u32;
        let comm = fs::read_to_string(format!("/proc/self/task/{pid}/comm")).unwrap();
        let mut d = SystemDescriber::new();
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let own = proc_cgroup_path(&fs::read_to_string("/proc/self/cgroup").unwrap());
        let cgroup_id = match (cgroup2_mount(&mountinfo), &own) {
            (Some(root), Some(path)) => ino(&root.join(path.trim_start_matches('/'))),
            _ => 0,
        };
        let t = Task { pid, tgid, ppid: None, uid: 0, cgroup_id, comm: comm.trim_end().into(), parent_comm: None, args: None, cgroup_name: None, ..Task::default() };
        let p = d.process(&t);
        let me = std::env::current_exe().unwrap();
        assert_eq!(p.exe.as_deref(), Some(me.to_str().unwrap()));
        assert_eq!(p.cmdline.unwrap()[0], std::env::args().next().unwrap());
        assert_eq!(p.cgroup, own);
    }

    #[test]
    fn call_sites_keep_the_kernels_name_without_the_function_size() {
        assert_eq!(call_site("__sock_create+0x1a0/0x2e0", 0xffffffff812a01a0), "__sock_create+0x1a0");
        assert_eq!(call_site("nft_expr_type_request_module+0x2c/0x60 [nf_tables]", 1), "nft_expr_type_request_module+0x2c [nf_tables]");
        // The kernel prints an address it cannot name as hex: kept as it is.
        assert_eq!(call_site("0xffffffffc0a00300", 0xffffffffc0a00300), "0xffffffffc0a00300");
        // No name at all (the helper failed, or a name cut to nothing).
        assert_eq!(call_site("", 0xffffffff812a0123), "0xffffffff812a0123");
    }

    #[test]
    fn wall_time_counts_back_from_now() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(wall_time_at(10_000_000_000, 12_500_000_000, now), "2023-11-14T22:13:17.500Z");
        assert_eq!(wall_time_at(13_000_000_000, 12_000_000_000, now), "2023-11-14T22:13:21.000Z");
    }
}
