//! The guard in the kernel: checks before loading, the facts read from BTF,
//! loading and pinning the LSM programs and their maps under PIN_DIR, writing
//! a policy generation, reading the counters, and unpinning.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use aya::{
    maps::{HashMap, Map, MapData},
    programs::{links::FdLink, Lsm},
    Ebpf, EbpfLoader,
};
use btf_rs::Type;
use modtrace_common::guard::{decision, lost, AliasKey, FileKey, FileOffsets, FileValue, GuardConfig};
use thiserror::Error;

use super::encode::{Encoded, KernelFacts};
use crate::trace::decode::cstr;
use crate::loader::{btf, pin, preflight, skipped, ProbeError};

/// Where the programs' links and the maps are pinned.
pub use crate::trace::decision::GUARD_PIN_DIR as PIN_DIR;
pub const LSM_LIST: &str = "/sys/kernel/security/lsm";

/// (program, LSM hook).
pub(super) const PROGRAMS: &[(&str, &str)] = &[
    ("guard_request", "kernel_module_request"),
    ("guard_read_file", "kernel_read_file"),
    ("guard_load_data", "kernel_load_data"),
    ("guard_post_load_data", "kernel_post_load_data"),
];
/// Maps pinned so that later commands (start again, status, log, trace) find them.
const PINNED_MAPS: &[&str] = &[
    "GUARD_CONFIG",
    "GUARD_ALIASES",
    "GUARD_MODULES",
    "GUARD_FILES",
    "GUARD_COUNTS",
    "GUARD_LOST",
    "GUARD_LOG",
    "GUARD_TRACE",
];

#[derive(Debug, Error)]
pub enum GuardError {
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("no kernel BTF ({}): BPF LSM programs need it; boot a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian's kernels are)", btf::VMLINUX_BTF)]
    NoBtf,
    #[error("cannot read {LSM_LIST} ({0}); mount securityfs: mount -t securityfs securityfs /sys/kernel/security")]
    NoLsmList(String),
    #[error("the BPF LSM is not active (active LSMs: {0}); add bpf to the lsm= kernel parameter: lsm={0},bpf (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub and reboot)")]
    BpfLsmInactive(String),
    #[error("{0} is not a BPF file system; mount it: mount -t bpf bpf /sys/fs/bpf")]
    NoBpffs(String),
    #[error("kernel BTF: {0}")]
    Btf(String),
    #[error("loading the guard's programs failed: {0}")]
    Load(String),
    #[error("the guard's maps under {PIN_DIR}: {0}")]
    Maps(String),
}

/// Everything that must hold before the guard can load, each with its fix.
pub fn preflight() -> Result<(), GuardError> {
    preflight::check()?;
    if !Path::new(btf::VMLINUX_BTF).exists() {
        return Err(GuardError::NoBtf);
    }
    let lsms = fs::read_to_string(LSM_LIST).map_err(|e| GuardError::NoLsmList(e.to_string()))?;
    check_lsm_list(&lsms)?;
    check_bpffs(Path::new("/sys/fs/bpf"))
}

pub fn check_lsm_list(text: &str) -> Result<(), GuardError> {
    let active = text.trim();
    if active.split(',').any(|l| l == "bpf") {
        Ok(())
    } else {
        Err(GuardError::BpfLsmInactive(active.to_string()))
    }
}

fn check_bpffs(path: &Path) -> Result<(), GuardError> {
    if !preflight::is_bpffs(path) {
        return Err(GuardError::NoBpffs(path.display().to_string()));
    }
    Ok(())
}

/// The enum values of kernel_read_file_id / kernel_load_data_id and the
/// offsets the file hook reads, from the running kernel's BTF.
pub fn kernel_facts(path: &Path) -> Result<KernelFacts, GuardError> {
    let b = btf::open(path).map_err(GuardError::Btf)?;
    let read_ids = enum_values(&b, "kernel_read_file_id")?;
    let load_ids = enum_values(&b, "kernel_load_data_id")?;
    let id = |ids: &[(String, u32)], name: &str| ids.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    let need = |ids: &[(String, u32)], e: &str, name: &str| {
        id(ids, name).ok_or_else(|| GuardError::Btf(format!("enum {e} has no {name}")))
    };
    let offset = |s: &str, f: &str| member_offset(&b, s, f);
    Ok(KernelFacts {
        reading_module: need(&read_ids, "kernel_read_file_id", "READING_MODULE")?,
        reading_module_compressed: id(&read_ids, "READING_MODULE_COMPRESSED"),
        loading_module: need(&load_ids, "kernel_load_data_id", "LOADING_MODULE")?,
        module_name: offset("module", "name")?,
        offsets: FileOffsets {
            f_inode: offset("file", "f_inode")?,
            f_dentry: offset("file", "f_path")? + offset("path", "dentry")?,
            d_name: offset("dentry", "d_name")? + offset("qstr", "name")?,
            i_ino: offset("inode", "i_ino")?,
            i_sb: offset("inode", "i_sb")?,
            s_dev: offset("super_block", "s_dev")?,
        },
    })
}

/// offsetof(struct `s`, `f`) in the kernel's BTF.
pub(super) fn member_offset(b: &btf_rs::Btf, s: &str, f: &str) -> Result<u32, GuardError> {
    let st = btf::find_struct(b, s).map_err(GuardError::Btf)?;
    let offset = btf::member_offset(b, &st, f).map_err(GuardError::Btf)?;
    offset.ok_or_else(|| GuardError::Btf(format!("struct {s} has no {f}")))
}

fn enum_values(b: &btf_rs::Btf, name: &str) -> Result<Vec<(String, u32)>, GuardError> {
    let types = b.resolve_types_by_name(name).map_err(|e| GuardError::Btf(format!("{name}: {e}")))?;
    let e = types
        .into_iter()
        .find_map(|t| match t {
            Type::Enum(e) => Some(e),
            _ => None,
        })
        .ok_or_else(|| GuardError::Btf(format!("no enum {name}")))?;
    Ok(e.members.iter().map(|m| (b.resolve_name(m).unwrap_or_default(), m.val())).collect())
}

fn pin_path(name: &str) -> PathBuf {
    Path::new(PIN_DIR).join(name)
}

/// True when a guard is pinned (its config map and every link).
pub fn is_pinned() -> bool {
    pin_path("GUARD_CONFIG").exists() && PROGRAMS.iter().all(|(p, _)| link_pin(p).exists())
}

/// What an install put in force: the policy's generation and each program's
/// link id (what `guard status` asks the kernel about once sealed).
pub struct Installed {
    pub generation: u32,
    pub links: BTreeMap<String, u32>,
}

/// Loads the programs, pins their maps, writes `encoded` as the first
/// generation, then attaches and pins the programs: they enforce from the
/// first instant with a policy in place. On failure nothing stays pinned.
/// With `sealed`, the seal is attached last (guard/seal.rs).
pub fn install(encoded: &dyn Fn(u32) -> (Encoded, GuardConfig), sealed: bool) -> Result<Installed, GuardError> {
    let _ = fs::remove_dir_all(PIN_DIR);
    create_private(Path::new(PIN_DIR)).map_err(|e| GuardError::Maps(e.to_string()))?;
    let result = install_pinned(encoded, sealed);
    if result.is_err() {
        let _ = fs::remove_dir_all(PIN_DIR);
    }
    result
}

/// Creates `dir` and makes it and its parent root's alone (mode 0700): the
/// pins in it are 0600 already, but their names and the directory are
/// nobody else's business either.
fn create_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::create_dir_all(dir)?;
    for d in [dir, dir.parent().expect("PIN_DIR has a parent")] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

fn install_pinned(encoded: &dyn Fn(u32) -> (Encoded, GuardConfig), sealed: bool) -> Result<Installed, GuardError> {
    let object = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/modtrace-probes"));
    // The decision events carry the same task fields as the tracer's (parent,
    // argv, cgroup name); without these offsets they stay empty.
    let offsets = btf::task_offsets(Path::new(btf::VMLINUX_BTF)).unwrap_or_default();
    let mut ebpf = EbpfLoader::new()
        .btf(None)
        .override_global("TASK_OFFSETS", &offsets, true)
        .load(object)
        .map_err(|e| GuardError::Load(format!("{e:#}")))?;
    for name in PINNED_MAPS {
        let map = ebpf.map(name).ok_or_else(|| GuardError::Load(format!("map {name} missing")))?;
        map.pin(pin_path(name)).map_err(|e| GuardError::Maps(format!("pinning {name}: {e}")))?;
    }
    let generation = replace_policy(encoded)?;
    let kernel_btf = aya::Btf::from_sys_fs().map_err(|e| GuardError::Btf(e.to_string()))?;
    let mut links = BTreeMap::new();
    for (prog, hook) in PROGRAMS {
        let program = load_lsm(&mut ebpf, prog, hook, &kernel_btf)?;
        // Pinned too, so that status can read the runs the kernel skipped.
        program.pin(program_pin(prog)).map_err(|e| GuardError::Maps(format!("pinning {prog}: {e}")))?;
        links.insert(prog.to_string(), attach_pinned(program, prog, hook)?);
    }
    if sealed {
        links.extend(super::seal::seal(&mut ebpf, &kernel_btf)?);
    }
    Ok(Installed { generation, links })
}

/// Loads the LSM program `prog` of `ebpf` for `hook`.
pub(super) fn load_lsm<'a>(
    ebpf: &'a mut Ebpf,
    prog: &str,
    hook: &str,
    btf: &aya::Btf,
) -> Result<&'a mut Lsm, GuardError> {
    let program: &mut Lsm = ebpf
        .program_mut(prog)
        .ok_or_else(|| GuardError::Load(format!("program {prog} missing")))?
        .try_into()
        .map_err(|e| GuardError::Load(format!("{prog}: {e}")))?;
    program.load(hook, btf).map_err(|e| GuardError::Load(format!("{prog}: {e:#}")))?;
    Ok(program)
}

/// Attaches a loaded program and pins its link as `link-PROG`: the pin is
/// the link's only reference once this process exits. Returns the link's id.
pub(super) fn attach_pinned(program: &mut Lsm, prog: &str, hook: &str) -> Result<u32, GuardError> {
    let id = program.attach().map_err(|e| GuardError::Load(format!("attaching {prog} to {hook}: {e:#}")))?;
    let link = program.take_link(id).map_err(|e| GuardError::Load(format!("{prog}: {e}")))?;
    let link: FdLink = link.into();
    let id = link.info().map_err(|e| GuardError::Load(format!("{prog}'s link: {e}")))?.id();
    link.pin(link_pin(prog)).map_err(|e| GuardError::Maps(format!("pinning {prog}: {e}")))?;
    Ok(id)
}

pub(super) fn program_pin(prog: &str) -> PathBuf {
    pin_path(&format!("prog-{prog}"))
}

pub(super) fn link_pin(prog: &str) -> PathBuf {
    pin_path(&format!("link-{prog}"))
}

/// Hook runs the kernel skipped, each of which let its operation through
/// undecided: a program is never run twice at once on a CPU, and on a
/// preemptible kernel (Debian's 7.x) a run can be preempted. None when a
/// program is not pinned (a guard started by an older modtrace).
fn skipped_runs() -> Option<u64> {
    // A sealed guard's programs cannot be opened (each try is a refusal).
    if super::seal::is_sealed() {
        return None;
    }
    PROGRAMS.iter().map(|(prog, _)| skipped::pinned_misses(&program_pin(prog))).sum()
}

fn open_map(name: &str) -> Result<MapData, GuardError> {
    MapData::from_pin(pin_path(name)).map_err(|e| GuardError::Maps(format!("{name}: {e}")))
}

fn hash<K: aya::Pod, V: aya::Pod>(name: &str) -> Result<HashMap<MapData, K, V>, GuardError> {
    HashMap::try_from(Map::HashMap(open_map(name)?)).map_err(|e| GuardError::Maps(format!("{name}: {e}")))
}

/// The config in force, if any.
pub fn current_config() -> Result<Option<GuardConfig>, GuardError> {
    let config: HashMap<MapData, u32, GuardConfig> = hash("GUARD_CONFIG")?;
    Ok(config.get(&0, 0).ok())
}

/// Writes the next generation beside the one in force, then swaps the config
/// entry (one hash-map update: each decision sees the old policy or the new
/// one, whole), then deletes the old generation. If writing fails, the new
/// entries are removed and the old policy stays.
pub fn replace_policy(encoded: &dyn Fn(u32) -> (Encoded, GuardConfig)) -> Result<u32, GuardError> {
    let mut config: HashMap<MapData, u32, GuardConfig> = hash("GUARD_CONFIG")?;
    let mut maps =
        PolicyMaps { aliases: hash("GUARD_ALIASES")?, modules: hash("GUARD_MODULES")?, files: hash("GUARD_FILES")? };
    let generation = super::encode::next_generation(config.get(&0, 0).ok().map(|c| c.generation));
    let (enc, cfg) = encoded(generation);
    if let Err(e) = maps.write(&enc) {
        maps.remove_generations(|g| g == generation);
        return Err(e);
    }
    config.insert(0, cfg, 0).map_err(|e| GuardError::Maps(format!("GUARD_CONFIG: {e}")))?;
    maps.remove_generations(|g| g != generation);
    Ok(generation)
}

struct PolicyMaps {
    aliases: HashMap<MapData, AliasKey, u8>,
    modules: HashMap<MapData, AliasKey, u8>,
    files: HashMap<MapData, FileKey, FileValue>,
}

impl PolicyMaps {
    fn write(&mut self, enc: &Encoded) -> Result<(), GuardError> {
        fn full(name: &'static str) -> impl Fn(aya::maps::MapError) -> GuardError {
            move |e| GuardError::Maps(format!("{name}: {e}"))
        }
        for key in &enc.aliases {
            self.aliases.insert(key, 1, 0).map_err(full("GUARD_ALIASES"))?;
        }
        for key in &enc.modules {
            self.modules.insert(key, 1, 0).map_err(full("GUARD_MODULES"))?;
        }
        for (key, value) in &enc.files {
            self.files.insert(key, value, 0).map_err(full("GUARD_FILES"))?;
        }
        Ok(())
    }

    fn remove_generations(&mut self, doomed: impl Fn(u32) -> bool) {
        for names in [&mut self.aliases, &mut self.modules] {
            let old: Vec<AliasKey> = names.keys().filter_map(Result::ok).filter(|k| doomed(k.generation)).collect();
            for k in old {
                let _ = names.remove(&k);
            }
        }
        let old: Vec<FileKey> = self.files.keys().filter_map(Result::ok).filter(|k| doomed(k.generation)).collect();
        for k in old {
            let _ = self.files.remove(&k);
        }
    }
}

/// What the generation in force allows, read back from the pinned maps.
pub fn enforced() -> Result<Option<super::refresh::Enforced>, GuardError> {
    let Some(config) = current_config()? else { return Ok(None) };
    let g = config.generation;
    let names = |name: &str| -> Result<BTreeSet<String>, GuardError> {
        let map: HashMap<MapData, AliasKey, u8> = hash(name)?;
        Ok(map.keys().filter_map(Result::ok).filter(|k| k.generation == g).map(|k| cstr(&k.name)).collect())
    };
    let files: HashMap<MapData, FileKey, FileValue> = hash("GUARD_FILES")?;
    let files = files
        .iter()
        .filter_map(Result::ok)
        .filter(|(k, _)| k.generation == g)
        .map(|(k, v)| (k.dev, k.ino, cstr(&v.module)))
        .collect();
    Ok(Some(super::refresh::Enforced { aliases: names("GUARD_ALIASES")?, modules: names("GUARD_MODULES")?, files }))
}

/// Decisions so far and decisions lost, summed over CPUs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub allowed: u64,
    pub denied: u64,
    pub would_deny: u64,
    /// Decisions the journal logger never got (its ring was full).
    pub lost: u64,
    /// Hook runs the kernel skipped: let through undecided. None: unknown.
    pub skipped: Option<u64>,
    /// Attempts to undo a sealed guard, refused.
    pub refused: u64,
}

/// Read-only: a sealed guard lets its counters be opened for nothing else.
pub fn counts() -> Result<Counts, GuardError> {
    let open = |name: &str| pin::counters(&pin_path(name)).map_err(|e| GuardError::Maps(format!("{name}: {e}")));
    let (decisions, lost_map) = (open("GUARD_COUNTS")?, open("GUARD_LOST")?);
    Ok(Counts {
        allowed: pin::counter(&decisions, decision::ALLOWED),
        denied: pin::counter(&decisions, decision::DENIED),
        would_deny: pin::counter(&decisions, decision::WOULD_DENY),
        lost: pin::counter(&lost_map, lost::LOG),
        skipped: skipped_runs(),
        refused: pin::counter(&decisions, decision::REFUSED),
    })
}

/// A pinned ring of decisions: "GUARD_LOG" or "GUARD_TRACE".
pub fn ring(name: &str) -> Result<aya::maps::RingBuf<MapData>, GuardError> {
    aya::maps::RingBuf::try_from(Map::RingBuf(open_map(name)?)).map_err(|e| GuardError::Maps(format!("{name}: {e}")))
}

/// Removes the policy, then unpins everything: the links go with their last
/// reference, which detaches the programs. The kernel may release a link a
/// moment after its pin is gone; without a config entry the programs allow
/// everything meanwhile. Returns whether a guard was there.
pub fn uninstall() -> Result<bool, GuardError> {
    if !Path::new(PIN_DIR).exists() {
        return Ok(false);
    }
    if let Ok(mut config) = hash::<u32, GuardConfig>("GUARD_CONFIG") {
        let _ = config.remove(&0);
    }
    fs::remove_dir_all(PIN_DIR).map_err(|e| GuardError::Maps(format!("removing {PIN_DIR}: {e}")))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lsm_list_must_name_bpf_and_the_fix_says_how() {
        assert!(check_lsm_list("lockdown,capability,landlock,yama,apparmor,bpf\n").is_ok());
        let err = check_lsm_list("lockdown,capability,yama,apparmor\n").unwrap_err().to_string();
        assert!(err.contains("lsm=lockdown,capability,yama,apparmor,bpf"), "{err}");
        assert!(check_lsm_list("bpfx,apparmor").is_err());
    }

    /// Runs against the host's own BTF (this project's build machines have it).
    #[test]
    fn host_btf_names_the_module_ids_and_file_offsets() {
        let facts = kernel_facts(Path::new(btf::VMLINUX_BTF)).unwrap();
        // include/linux/kernel_read_file.h: UNKNOWN, FIRMWARE, then MODULE, in both enums.
        assert_eq!((facts.reading_module, facts.loading_module), (2, 2), "{facts:?}");
        let o = facts.offsets;
        assert!(o.f_inode > 0 && o.f_dentry > 0 && o.i_sb > 0 && o.s_dev > 0, "{o:?}");
        assert_eq!(o.d_name % 8, 0, "a pointer inside struct qstr: {o:?}");
    }
}
