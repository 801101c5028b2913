//! Whether the guard is really in force, asked of the kernel rather than told
//! by its pins: each program's link is a live tracing link (how LSM programs
//! attach) of that program, and `bpf` is among the active LSMs (without it an
//! attached LSM program never runs).

use std::collections::BTreeSet;
use std::path::Path;

use aya::programs::ProgramInfo;

use super::kernel::{self, GuardError, LSM_LIST};
use super::{seal, State};
use crate::loader::pin;

/// One program's link, as the kernel tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// The pinned link's fdinfo: its type, and the program it runs.
    Pinned { tracing: bool, prog_id: Option<u32> },
    /// A sealed guard's link, which cannot be opened: whether the id
    /// recorded at start is still among the kernel's links (a tracing link
    /// cannot be detached, only released, and its pin cannot be removed).
    Listed(bool),
    /// No pin (removed, or never there), or one that does not open.
    Missing,
    /// Cannot be checked: sealed, with no link id recorded.
    Unknown,
}

/// A guard program and its link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub name: &'static str,
    /// The pinned program's id (prog-NAME), when its pin opens.
    pub prog_id: Option<u32>,
    pub link: Link,
}

impl Program {
    /// Whether it is attached; None: unknown.
    pub fn attached(&self) -> Option<bool> {
        match self.link {
            Link::Pinned { tracing, prog_id } => {
                Some(tracing && prog_id.is_some() && self.prog_id.is_none_or(|id| Some(id) == prog_id))
            }
            Link::Listed(listed) => Some(listed),
            Link::Missing => Some(false),
            Link::Unknown => None,
        }
    }
}

/// A pinned link's fdinfo ("link_type:\ttracing", "prog_id:\tN").
pub fn pinned_link(fdinfo: &str) -> Link {
    let tracing = fdinfo.lines().filter_map(|l| l.strip_prefix("link_type:")).any(|t| t.trim() == "tracing");
    Link::Pinned { tracing, prog_id: pin::fdinfo_field(fdinfo, "prog_id:") }
}

/// The names of the programs that are known not to be attached.
pub fn detached(programs: &[Program]) -> Vec<&'static str> {
    programs.iter().filter(|p| p.attached() == Some(false)).map(|p| p.name).collect()
}

/// All attached: Some(true); any known detached: Some(false); else None.
pub fn all_attached(programs: &[Program]) -> Option<bool> {
    if !detached(programs).is_empty() {
        return Some(false);
    }
    programs.iter().all(|p| p.attached() == Some(true)).then_some(true)
}

/// Ok when `bpf` is among the active LSMs; else the guard's own words for it.
pub fn lsm_active() -> Result<(), String> {
    let text = std::fs::read_to_string(LSM_LIST).map_err(|e| GuardError::NoLsmList(e.to_string()).to_string())?;
    kernel::check_lsm_list(&text).map_err(|e| e.to_string())
}

/// The guard's programs as the kernel tells them: by their pins, or once
/// sealed (nothing of it can be opened) by the link ids `state` recorded,
/// the seal's own programs included.
pub fn programs(sealed: bool, state: Option<&State>) -> Vec<Program> {
    if !sealed {
        return kernel::PROGRAMS.iter().map(|(name, _)| pinned(name)).collect();
    }
    let listed = pin::link_ids().ok();
    let names = kernel::PROGRAMS.iter().chain(seal::PROGRAMS).map(|(name, _)| *name);
    names.map(|name| Program { name, prog_id: None, link: listed_link(name, state, listed.as_ref()) }).collect()
}

fn pinned(name: &'static str) -> Program {
    let prog_id = ProgramInfo::from_pin(kernel::program_pin(name)).ok().map(|info| info.id());
    let fdinfo = pin::obj_get(&kernel::link_pin(name), false).and_then(|fd| pin::fdinfo(&fd));
    Program { name, prog_id, link: fdinfo.map_or(Link::Missing, |text| pinned_link(&text)) }
}

fn listed_link(name: &str, state: Option<&State>, listed: Option<&BTreeSet<u32>>) -> Link {
    match (state.and_then(|s| s.links.get(name)), listed) {
        (Some(id), Some(ids)) => Link::Listed(ids.contains(id)),
        _ => Link::Unknown,
    }
}

/// Whether anything of a guard is there: a pin of it, or the state of a
/// start that no `guard stop` undid.
pub fn present(pin_dir: &Path, state: Option<&State>) -> bool {
    let pinned = std::fs::read_dir(pin_dir).is_ok_and(|mut entries| entries.next().is_some());
    pinned || state.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FDINFO_6_1: &str = "pos:\t0\nflags:\t02000000\nmnt_id:\t15\nino:\t3094\nlink_type:\ttracing\n\
                              link_id:\t7\nprog_tag:\t3b185187f1855c4c\nprog_id:\t41\nattach_type:\t27\n\
                              target_obj_id:\t1\ntarget_btf_id:\t118220\n";

    fn program(prog_id: Option<u32>, link: Link) -> Program {
        Program { name: "guard_request", prog_id, link }
    }

    #[test]
    fn a_pinned_tracing_link_of_the_guards_program_is_attached() {
        assert_eq!(pinned_link(FDINFO_6_1), Link::Pinned { tracing: true, prog_id: Some(41) });
        assert_eq!(program(Some(41), pinned_link(FDINFO_6_1)).attached(), Some(true));
        // The program's pin removed too: the link still runs it.
        assert_eq!(program(None, pinned_link(FDINFO_6_1)).attached(), Some(true));
    }

    #[test]
    fn a_link_of_another_program_or_kind_or_none_is_detached() {
        assert_eq!(program(Some(42), pinned_link(FDINFO_6_1)).attached(), Some(false), "another program's link");
        let cgroup = FDINFO_6_1.replace("tracing", "cgroup");
        assert_eq!(program(Some(41), pinned_link(&cgroup)).attached(), Some(false), "not an LSM link");
        let no_prog = FDINFO_6_1.replace("prog_id:\t41\n", "");
        assert_eq!(program(Some(41), pinned_link(&no_prog)).attached(), Some(false));
        assert_eq!(program(Some(41), Link::Missing).attached(), Some(false), "its pin removed");
        assert_eq!(program(None, Link::Listed(false)).attached(), Some(false), "its id gone from the kernel");
    }

    #[test]
    fn a_sealed_guard_is_checked_by_the_link_ids_recorded_at_start() {
        let mut state: State = serde_json::from_str(
            r#"{"mode":"enforce","allow_init_module":false,"sealed":true,"since":"x","profile":"/p",
                "kernel":"6.1","generation":1,"modules":1,"aliases":1,"files":1}"#,
        )
        .unwrap();
        let ids: BTreeSet<u32> = [3, 5].into();
        assert_eq!(listed_link("guard_request", Some(&state), Some(&ids)), Link::Unknown, "no ids recorded");
        state.links.insert("guard_request".into(), 5);
        state.links.insert("seal_bpf".into(), 6);
        assert_eq!(listed_link("guard_request", Some(&state), Some(&ids)), Link::Listed(true));
        assert_eq!(listed_link("seal_bpf", Some(&state), Some(&ids)), Link::Listed(false));
        assert_eq!(listed_link("guard_request", None, Some(&ids)), Link::Unknown, "no state file");
        assert_eq!(listed_link("guard_request", Some(&state), None), Link::Unknown, "the ids cannot be listed");
    }

    #[test]
    fn all_attached_is_known_only_when_each_one_is() {
        let up = program(Some(41), pinned_link(FDINFO_6_1));
        let down = Program { name: "guard_read_file", prog_id: Some(43), link: Link::Missing };
        let unknown = Program { name: "seal_bpf", prog_id: None, link: Link::Unknown };
        assert_eq!(all_attached(&[up.clone(), up.clone()]), Some(true));
        assert_eq!(all_attached(&[up.clone(), down.clone(), unknown.clone()]), Some(false));
        assert_eq!(detached(&[up.clone(), down, unknown.clone()]), ["guard_read_file"]);
        assert_eq!(all_attached(&[up, unknown]), None);
    }
}
