//! task_struct offsets from the running kernel's BTF, handed to the eBPF programs
//! as a global: Rust eBPF has no CO-RE relocations, so userspace does the lookup.

use std::path::Path;

use btf_rs::{Btf, Type};
use modtrace_common::TaskOffsets;

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Reads the offsets of real_parent, tgid, comm and mm in task_struct, and of
/// arg_start and arg_end in mm_struct.
pub fn task_offsets(path: &Path) -> Result<TaskOffsets, String> {
    let btf = Btf::from_file(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let task = find_struct(&btf, "task_struct")?;
    let mm = find_struct(&btf, "mm_struct")?;
    let offset = |s: &btf_rs::Struct, name: &str, field: &str| {
        member_offset(&btf, s, field)?.ok_or_else(|| format!("{name} has no member {field}"))
    };
    Ok(TaskOffsets {
        real_parent: offset(&task, "task_struct", "real_parent")?,
        tgid: offset(&task, "task_struct", "tgid")?,
        comm: offset(&task, "task_struct", "comm")?,
        mm: offset(&task, "task_struct", "mm")?,
        arg_start: offset(&mm, "mm_struct", "arg_start")?,
        arg_end: offset(&mm, "mm_struct", "arg_end")?,
    })
}

fn find_struct(btf: &Btf, name: &str) -> Result<btf_rs::Struct, String> {
    let types = btf.resolve_types_by_name(name).map_err(|e| format!("{name}: {e}"))?;
    types
        .into_iter()
        .find_map(|t| match t {
            Type::Struct(s) => Some(s),
            _ => None,
        })
        .ok_or_else(|| format!("no struct {name} in BTF"))
}

/// Byte offset of `field`, looking through anonymous struct/union members.
fn member_offset(btf: &Btf, s: &btf_rs::Struct, field: &str) -> Result<Option<u32>, String> {
    for m in &s.members {
        let name = btf.resolve_name(m).unwrap_or_default();
        let here = m.bit_offset() / 8;
        if name == field {
            return Ok(Some(here));
        }
        if name.is_empty() {
            let inner = btf.resolve_chained_type(m).map_err(|e| e.to_string())?;
            if let Type::Struct(inner) | Type::Union(inner) = inner {
                if let Some(off) = member_offset(btf, &inner, field)? {
                    return Ok(Some(here + off));
                }
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs against the host's own BTF where it has one (this project's build
    /// machines do): comm is an array after tgid and real_parent in every kernel.
    #[test]
    fn host_task_struct_offsets_are_plausible() {
        let path = Path::new(VMLINUX_BTF);
        assert!(path.exists(), "{VMLINUX_BTF} missing: this test needs a kernel with BTF");
        let off = task_offsets(path).unwrap();
        assert!(off.tgid > 0 && off.real_parent > off.tgid && off.comm > off.real_parent, "{off:?}");
        assert!(off.mm > 0 && off.arg_end == off.arg_start + 8, "{off:?}");
    }
}
