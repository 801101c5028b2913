//! What the kernel's module loader would name an image (kernel/module/main.c),
//! written out plainly for the fuzz target to compare the guard's parse with:
//! 6.1/6.12 (find_sec: the first allocated section by that name, among 1..)
//! and 6.13+ (find_any_unique_sec: the only one by that name). Only the steps
//! that can reject an image before it is named, or change its name, are here.

use modtrace_common::elf::{MODULE_NAME_LEN, THIS_MODULE};

#[derive(Clone, Copy, Debug)]
pub enum Era {
    FirstAllocated,
    Unique,
}

#[derive(Debug, PartialEq, Eq)]
pub enum KernelName {
    Rejected,
    Named(Vec<u8>),
    /// A relocation writes into the name: what it becomes is not in the image.
    Relocated,
}

struct Shdr {
    name: u64,
    kind: u32,
    flags: u64,
    addr: u64,
    offset: u64,
    size: u64,
    info: u32,
}

fn get<const N: usize>(img: &[u8], at: u64) -> Option<[u8; N]> {
    img.get(usize::try_from(at).ok()?..usize::try_from(at).ok()?.checked_add(N)?)?.try_into().ok()
}

fn shdr(img: &[u8], at: u64) -> Option<Shdr> {
    let u32_at = |f: u64| get::<4>(img, at + f).map(u32::from_le_bytes);
    let u64_at = |f: u64| get::<8>(img, at + f).map(u64::from_le_bytes);
    Some(Shdr {
        name: u64::from(u32_at(0)?),
        kind: u32_at(4)?,
        flags: u64_at(8)?,
        addr: u64_at(16)?,
        offset: u64_at(24)?,
        size: u64_at(32)?,
        info: u32_at(44)?,
    })
}

fn inside(s: &Shdr, len: u64) -> bool {
    s.offset.checked_add(s.size).is_some_and(|end| end <= len)
}

/// The kernel's name for `img`, with `name_off` = offsetof(struct module, name).
pub fn kernel_name(img: &[u8], era: Era, name_off: u64) -> KernelName {
    named(img, era, name_off).unwrap_or(KernelName::Rejected)
}

fn named(img: &[u8], era: Era, name_off: u64) -> Option<KernelName> {
    let len = img.len() as u64;
    let u16_at = |at: u64| get::<2>(img, at).map(u16::from_le_bytes);
    if len < 64 || img[..4] != *b"\x7fELF" || u16_at(0x10)? != 1 || u16_at(0x3a)? != 64 {
        return None;
    }
    let shoff = u64::from_le_bytes(get(img, 0x28)?);
    let (shnum, shstrndx) = (u64::from(u16_at(0x3c)?), u64::from(u16_at(0x3e)?));
    if shoff >= len || shnum * 64 > len - shoff || shstrndx == 0 || shstrndx >= shnum {
        return None;
    }
    let secs: Vec<Shdr> = (0..shnum).map(|i| shdr(img, shoff + i * 64)).collect::<Option<_>>()?;
    let strhdr = &secs[shstrndx as usize];
    if !inside(strhdr, len) || strhdr.size == 0 || img[(strhdr.offset + strhdr.size - 1) as usize] != 0 {
        return None;
    }
    let zero = &secs[0];
    if zero.kind != 0 || zero.size != 0 || zero.addr != 0 {
        return None;
    }
    for (i, s) in secs.iter().enumerate() {
        let contents = s.kind != 0 && s.kind != 8;
        if i > 0 && contents && !inside(s, len) {
            return None;
        }
        let name_checked = match era {
            Era::FirstAllocated => i > 0 && contents && s.flags & 2 != 0,
            Era::Unique => s.kind != 0,
        };
        if name_checked && s.name >= strhdr.size {
            return None;
        }
    }
    let strings = &img[strhdr.offset as usize..(strhdr.offset + strhdr.size) as usize];
    let is_module = |s: &Shdr| strings.get(s.name as usize..).is_some_and(|n| n.starts_with(THIS_MODULE));
    let index = match era {
        Era::FirstAllocated => (1..secs.len()).find(|&i| secs[i].flags & 2 != 0 && is_module(&secs[i]))?,
        Era::Unique => {
            let found: Vec<usize> = (1..secs.len()).filter(|&i| is_module(&secs[i])).collect();
            let [i] = found[..] else { return None };
            if secs[i].kind == 8 || secs[i].flags & 2 == 0 {
                return None;
            }
            i
        }
    };
    let module = &secs[index];
    if module.kind == 0 || module.kind == 8 {
        // Contents never checked or copied: not an image this model reads.
        return None;
    }
    if relocated(img, &secs, index as u32, name_off) {
        return Some(KernelName::Relocated);
    }
    let contents = &img[module.offset as usize..(module.offset + module.size) as usize];
    let name = contents.get(name_off as usize..)?;
    // strlen: past the array too, if its MODULE_NAME_LEN bytes hold no NUL.
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Some(KernelName::Named(name[..end].to_vec()))
}

/// Whether a relocation the kernel applies to section `module` writes into the name.
fn relocated(img: &[u8], secs: &[Shdr], module: u32, name_off: u64) -> bool {
    secs.iter().skip(1).filter(|s| s.info == module).any(|s| {
        let stride = match s.kind {
            _ if s.flags & 0x0010_0000 != 0 => 24,
            4 => 24,
            9 => 16,
            _ => return false,
        };
        (0..s.size / stride).any(|j| {
            get::<8>(img, s.offset + j * stride).map(u64::from_le_bytes).is_some_and(|at| {
                at < name_off + MODULE_NAME_LEN as u64 && at.saturating_add(8) > name_off
            })
        })
    })
}
