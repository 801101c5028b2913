//! The name an init_module(2) image gives its module, found as the kernel's
//! loader finds it (kernel/module/main.c, 6.1 to 7.x). One parse, generic over
//! how bytes are read: the guard's probe reads the image in kernel memory
//! through the helper (`modtrace-ebpf`'s kernel.rs), host tests and the fuzz
//! target read a slice.
//!
//! The name the kernel registers, lists in /proc/modules and reports at
//! module_load is `struct module`'s `name`, in the section
//! .gnu.linkonce.this_module: that section is copied to become the module.
//! The .modinfo `name=` only feeds the kernel's blacklist check and its
//! messages, so it is not what the guard reads. The kernel finds the section
//! among sections 1.. (section 0 must be empty): on 6.1 and 6.12 the first
//! SHF_ALLOC one by that name (find_sec), from 6.13 the only one by that name
//! (find_any_unique_sec). The parse accepts only an image where both find the
//! same section: exactly one by that name, allocated, with contents. It
//! refuses, rather than guesses, whatever could make its name differ from the
//! kernel's: a name with no NUL in MODULE_NAME_LEN bytes (the kernel would
//! read on into the struct), and a relocation that writes into the name (the
//! kernel relocates the struct after it checked the name for duplicates, and
//! before it is listed). The rest of the kernel's checks (other sections'
//! bounds, symbols, vermagic, the signature) cannot change the name: an image
//! that fails them is refused by the kernel itself.

use crate::NAME_LEN;

/// struct module's name array on 64-bit kernels (64 - sizeof(unsigned long)).
pub const MODULE_NAME_LEN: usize = 56;
/// Section headers looked at; Debian's 6.1, 6.12 and 7.3 modules have 93 at most.
pub const MAX_SECTIONS: u32 = 128;
/// Relocations of .gnu.linkonce.this_module looked at; Debian's have 2 (init, exit).
pub const MAX_MODULE_RELOCS: u32 = 16;
/// The section the kernel copies into its struct module.
pub const THIS_MODULE: &[u8; 26] = b".gnu.linkonce.this_module\0";

const ELF_MAGIC: u32 = u32::from_le_bytes(*b"\x7fELF");
const ET_REL: u16 = 1;
const EHDR_SIZE: u64 = 64;
const SHDR_SIZE: u64 = 64;
const SHT_NULL: u32 = 0;
const SHT_RELA: u32 = 4;
const SHT_NOBITS: u32 = 8;
const SHT_REL: u32 = 9;
const SHF_ALLOC: u64 = 2;
/// Relocations the kernel applies as Elf_Rela whatever the section's type.
const SHF_RELA_LIVEPATCH: u64 = 0x0010_0000;
/// The widest relocation writes 8 bytes.
const RELOC_WIDTH: u64 = 8;

/// Why an image gives no name the guard can trust.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// A read outside the image, or one the helper failed.
    Unreadable,
    NotElf,
    /// Not a relocatable ELF64 with 64-byte section headers.
    Header,
    /// The section header table does not lie inside the image.
    SectionTable,
    TooManySections,
    /// Section 0 is not the empty section the kernel requires.
    SectionZero,
    /// The section-name table is missing, outside the image, empty or not
    /// NUL-terminated, or a section's name lies outside it.
    SectionNames,
    NoModule,
    /// Two sections named .gnu.linkonce.this_module.
    TwoModules,
    /// The module section is not allocated, has no contents, lies outside
    /// the image or is too small to hold the name.
    ModuleSection,
    /// Relocations that cannot be checked (two sections of them, or too many).
    ModuleRelocations,
    /// A relocation writes into the name.
    NameRelocated,
    NameEmpty,
    /// No NUL in the name's MODULE_NAME_LEN bytes.
    NameUnterminated,
}

/// Reads of an image of `size()` bytes; each fails unless all its bytes lie inside.
pub trait ImageBytes {
    fn size(&self) -> u64;
    fn u16_at(&self, off: u64) -> Result<u16, Refused>;
    fn u32_at(&self, off: u64) -> Result<u32, Refused>;
    fn u64_at(&self, off: u64) -> Result<u64, Refused>;
    /// `out.len()` bytes at `off`.
    fn bytes_at(&self, off: u64, out: &mut [u8]) -> Result<(), Refused>;
    /// The string at `off` cut to `out.len() - 1` bytes, NUL-terminated in
    /// `out`; the bytes written, NUL included (bpf_probe_read_kernel_str's
    /// contract). All `out.len()` bytes must lie inside.
    fn str_at(&self, off: u64, out: &mut [u8]) -> Result<usize, Refused>;
    /// Calls `step(i)` for each i in `from..to`, in order, until it returns
    /// false. The probe's is bpf_loop: the verifier then checks `step` once,
    /// where an unrolled loop is one walk per section for every path before it.
    fn each<F: FnMut(u32) -> bool>(&self, from: u32, to: u32, mut step: F) {
        for i in from..to {
            if !step(i) {
                break;
            }
        }
    }
}

/// Where the section headers and their names are.
#[derive(Clone, Copy)]
struct Table {
    shoff: u64,
    shnum: u32,
    strtab: u64,
    strsize: u64,
}

/// The module section: its index and where its contents start.
#[derive(Clone, Copy)]
struct ModuleSection {
    index: u32,
    offset: u64,
}

/// The module's name, NUL-padded into `out` (which must come zeroed), with
/// `name_off` = offsetof(struct module, name) of the running kernel (BTF).
#[inline(always)]
pub fn module_name<I: ImageBytes + ?Sized>(img: &I, name_off: u64, out: &mut [u8; NAME_LEN]) -> Result<(), Refused> {
    let table = section_table(img)?;
    let module = module_section(img, &table, name_off)?;
    check_relocations(img, &table, module.index, name_off)?;
    read_name(img, module.offset + name_off, out)
}

/// Field `field` of section header `i`.
#[inline(always)]
fn shdr_u32<I: ImageBytes + ?Sized>(img: &I, t: &Table, i: u32, field: u64) -> Result<u32, Refused> {
    img.u32_at(t.shoff + u64::from(i) * SHDR_SIZE + field)
}

#[inline(always)]
fn shdr_u64<I: ImageBytes + ?Sized>(img: &I, t: &Table, i: u32, field: u64) -> Result<u64, Refused> {
    img.u64_at(t.shoff + u64::from(i) * SHDR_SIZE + field)
}

const SH_NAME: u64 = 0;
const SH_TYPE: u64 = 4;
const SH_FLAGS: u64 = 8;
const SH_ADDR: u64 = 16;
const SH_OFFSET: u64 = 24;
const SH_SIZE: u64 = 32;
const SH_INFO: u64 = 44;

/// The ELF header's checks and the section-name table (elf_validity_check,
/// elf_validity_cache_sechdrs and _secstrings in the kernel).
#[inline(always)]
fn section_table<I: ImageBytes + ?Sized>(img: &I) -> Result<Table, Refused> {
    let size = img.size();
    if size < EHDR_SIZE || img.u32_at(0)? != ELF_MAGIC {
        return Err(Refused::NotElf);
    }
    if img.u16_at(0x10)? != ET_REL || u64::from(img.u16_at(0x3a)?) != SHDR_SIZE {
        return Err(Refused::Header);
    }
    let shoff = img.u64_at(0x28)?;
    let shnum = u32::from(img.u16_at(0x3c)?);
    let shstrndx = u32::from(img.u16_at(0x3e)?);
    if shoff >= size || u64::from(shnum) * SHDR_SIZE > size - shoff {
        return Err(Refused::SectionTable);
    }
    if shnum > MAX_SECTIONS {
        return Err(Refused::TooManySections);
    }
    if shstrndx == 0 || shstrndx >= shnum {
        return Err(Refused::SectionNames);
    }
    let t = Table { shoff, shnum, strtab: 0, strsize: 0 };
    let zero = shdr_u32(img, &t, 0, SH_TYPE)? == SHT_NULL
        && shdr_u64(img, &t, 0, SH_SIZE)? == 0
        && shdr_u64(img, &t, 0, SH_ADDR)? == 0;
    if !zero {
        return Err(Refused::SectionZero);
    }
    let strtab = shdr_u64(img, &t, shstrndx, SH_OFFSET)?;
    let strsize = shdr_u64(img, &t, shstrndx, SH_SIZE)?;
    let end = strtab.checked_add(strsize).ok_or(Refused::SectionNames)?;
    if strsize == 0 || end > size {
        return Err(Refused::SectionNames);
    }
    let mut last = [0u8; 1];
    img.bytes_at(end - 1, &mut last)?;
    if last[0] != 0 {
        return Err(Refused::SectionNames);
    }
    Ok(Table { strtab, strsize, ..t })
}

/// THIS_MODULE zero-padded into words: a name is compared with four word
/// comparisons (a byte loop is one the verifier walks byte by byte).
const THIS_MODULE_WORDS: [u64; 4] = {
    let mut words = [0u64; 4];
    let mut i = 0;
    while i < THIS_MODULE.len() {
        words[i / 8] |= (THIS_MODULE[i] as u64) << (8 * (i % 8));
        i += 1;
    }
    words
};

/// Whether the name at `name` in the section-name table is THIS_MODULE. The
/// table ends in a NUL, so a match lies whole inside it.
#[inline(always)]
fn is_this_module<I: ImageBytes + ?Sized>(img: &I, t: &Table, name: u64) -> Result<bool, Refused> {
    if t.strsize - name < THIS_MODULE.len() as u64 {
        return Ok(false);
    }
    let mut words = [0u64; 4];
    // SAFETY: the 32 bytes of a local [u64; 4]; `words` is read only after
    // this borrow's last use.
    let bytes = unsafe { &mut *(words.as_mut_ptr() as *mut [u8; 32]) };
    img.bytes_at(t.strtab + name, &mut bytes[..THIS_MODULE.len()])?;
    Ok((0..4).all(|i| words[i] == THIS_MODULE_WORDS[i]))
}

/// What a walk over the section headers found so far; `err` ends it.
#[derive(Clone, Copy)]
struct Walk {
    matches: u32,
    found: u32,
    offset: u64,
    size: u64,
    stride: u32,
    err: Option<Refused>,
}

impl Walk {
    const NEW: Walk = Walk { matches: 0, found: 0, offset: 0, size: 0, stride: 0, err: None };

    /// Keeps walking after `step`, or records its error and stops.
    #[inline(always)]
    fn go_on(&mut self, step: Result<(), Refused>) -> bool {
        match step {
            Ok(()) => true,
            Err(e) => {
                self.err = Some(e);
                false
            }
        }
    }
}

/// The one section named THIS_MODULE among sections 1.., which must be
/// allocated, hold contents inside the image and the whole name. Every named
/// section's name must lie in the table (the 6.13+ kernel's rule; 6.1 asks
/// it of allocated sections only).
#[inline(always)]
fn module_section<I: ImageBytes + ?Sized>(img: &I, t: &Table, name_off: u64) -> Result<ModuleSection, Refused> {
    let mut walk = Walk::NEW;
    img.each(1, t.shnum, |i| {
        let step = is_module_section(img, t, i).and_then(|named| match named {
            false => Ok(()),
            true if walk.matches != 0 => Err(Refused::TwoModules),
            true => {
                (walk.matches, walk.found) = (1, i);
                Ok(())
            }
        });
        walk.go_on(step)
    });
    if let Some(e) = walk.err {
        return Err(e);
    }
    if walk.matches == 0 {
        return Err(Refused::NoModule);
    }
    let found = walk.found;
    let kind = shdr_u32(img, t, found, SH_TYPE)?;
    let flags = shdr_u64(img, t, found, SH_FLAGS)?;
    let offset = shdr_u64(img, t, found, SH_OFFSET)?;
    let size = shdr_u64(img, t, found, SH_SIZE)?;
    let inside = offset.checked_add(size).is_some_and(|end| end <= img.size());
    let holds_name = name_off.checked_add(MODULE_NAME_LEN as u64).is_some_and(|end| end <= size);
    if kind == SHT_NULL || kind == SHT_NOBITS || flags & SHF_ALLOC == 0 || !inside || !holds_name {
        return Err(Refused::ModuleSection);
    }
    Ok(ModuleSection { index: found, offset })
}

/// Whether section `i` is named THIS_MODULE; a section whose name lies
/// outside the table must be the null kind.
#[inline(always)]
fn is_module_section<I: ImageBytes + ?Sized>(img: &I, t: &Table, i: u32) -> Result<bool, Refused> {
    let name = u64::from(shdr_u32(img, t, i, SH_NAME)?);
    if name >= t.strsize {
        return match shdr_u32(img, t, i, SH_TYPE)? {
            SHT_NULL => Ok(false),
            _ => Err(Refused::SectionNames),
        };
    }
    is_this_module(img, t, name)
}

/// No relocation writes into the name: the kernel applies those of every
/// section whose sh_info is the module section (apply_relocations).
#[inline(always)]
fn check_relocations<I: ImageBytes + ?Sized>(img: &I, t: &Table, module: u32, name_off: u64) -> Result<(), Refused> {
    let mut walk = Walk::NEW;
    img.each(1, t.shnum, |i| {
        let step = relocation_section(img, t, i, module, &mut walk);
        walk.go_on(step)
    });
    if let Some(e) = walk.err {
        return Err(e);
    }
    if walk.stride == 0 {
        return Ok(());
    }
    let count = walk.size / u64::from(walk.stride);
    if count > u64::from(MAX_MODULE_RELOCS) {
        return Err(Refused::ModuleRelocations);
    }
    // The same Walk again: the probe's stack is 512 bytes for every frame.
    let (offset, stride) = (walk.offset, u64::from(walk.stride));
    img.each(0, count as u32, |j| {
        let step = relocation_misses_name(img, offset, stride, j, name_off);
        walk.go_on(step)
    });
    walk.err.map_or(Ok(()), Err)
}

/// Notes section `i` in `walk` if it holds relocations of section `module`;
/// a second such section is refused.
#[inline(always)]
fn relocation_section<I: ImageBytes + ?Sized>(
    img: &I,
    t: &Table,
    i: u32,
    module: u32,
    walk: &mut Walk,
) -> Result<(), Refused> {
    if shdr_u32(img, t, i, SH_INFO)? != module {
        return Ok(());
    }
    let kind = shdr_u32(img, t, i, SH_TYPE)?;
    let livepatch = shdr_u64(img, t, i, SH_FLAGS)? & SHF_RELA_LIVEPATCH != 0;
    let stride = match kind {
        _ if livepatch => 24,
        SHT_RELA => 24,
        SHT_REL => 16,
        _ => return Ok(()),
    };
    if walk.stride != 0 {
        return Err(Refused::ModuleRelocations);
    }
    (walk.offset, walk.size, walk.stride) = (shdr_u64(img, t, i, SH_OFFSET)?, shdr_u64(img, t, i, SH_SIZE)?, stride);
    Ok(())
}

/// Relocation `j` of the table at `offset` does not write into the name.
#[inline(always)]
fn relocation_misses_name<I: ImageBytes + ?Sized>(
    img: &I,
    offset: u64,
    stride: u64,
    j: u32,
    name_off: u64,
) -> Result<(), Refused> {
    // r_offset, the first field of Elf64_Rel and Elf64_Rela.
    let entry = offset.checked_add(u64::from(j) * stride).ok_or(Refused::Unreadable)?;
    let at = img.u64_at(entry)?;
    let name_end = name_off.saturating_add(MODULE_NAME_LEN as u64);
    if at < name_end && at.saturating_add(RELOC_WIDTH) > name_off {
        return Err(Refused::NameRelocated);
    }
    Ok(())
}

/// The name at `at`: not empty, and ended by a NUL in its MODULE_NAME_LEN bytes.
#[inline(always)]
fn read_name<I: ImageBytes + ?Sized>(img: &I, at: u64, out: &mut [u8; NAME_LEN]) -> Result<(), Refused> {
    let written = img.str_at(at, &mut out[..MODULE_NAME_LEN])?;
    if written <= 1 {
        return Err(Refused::NameEmpty);
    }
    if written == MODULE_NAME_LEN {
        // The copy was cut or the name fills the array: its last byte says which.
        let mut last = [0u8; 1];
        img.bytes_at(at + MODULE_NAME_LEN as u64 - 1, &mut last)?;
        if last[0] != 0 {
            return Err(Refused::NameUnterminated);
        }
    }
    Ok(())
}

/// A slice as an image: what host tests and the fuzz target read.
impl ImageBytes for [u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn u16_at(&self, off: u64) -> Result<u16, Refused> {
        let mut b = [0u8; 2];
        self.bytes_at(off, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    fn u32_at(&self, off: u64) -> Result<u32, Refused> {
        let mut b = [0u8; 4];
        self.bytes_at(off, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64_at(&self, off: u64) -> Result<u64, Refused> {
        let mut b = [0u8; 8];
        self.bytes_at(off, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn bytes_at(&self, off: u64, out: &mut [u8]) -> Result<(), Refused> {
        out.copy_from_slice(slice_at(self, off, out.len())?);
        Ok(())
    }

    fn str_at(&self, off: u64, out: &mut [u8]) -> Result<usize, Refused> {
        let src = slice_at(self, off, out.len())?;
        let Some(room) = out.len().checked_sub(1) else { return Err(Refused::Unreadable) };
        let len = src[..room].iter().position(|&b| b == 0).unwrap_or(room);
        out[..len].copy_from_slice(&src[..len]);
        out[len] = 0;
        Ok(len + 1)
    }
}

fn slice_at(image: &[u8], off: u64, len: usize) -> Result<&[u8], Refused> {
    let start = usize::try_from(off).map_err(|_| Refused::Unreadable)?;
    let end = start.checked_add(len).ok_or(Refused::Unreadable)?;
    image.get(start..end).ok_or(Refused::Unreadable)
}

#[cfg(test)]
mod tests;
