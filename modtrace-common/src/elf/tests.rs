//! The name parse against crafted images: each case is a module image as the
//! kernel's build makes it (sections 0, names, this_module, its relocations),
//! changed in one way, and what the kernel would name it or why the guard refuses.

extern crate std;

use std::vec::Vec;

use super::*;

/// offsetof(struct module, name) on Debian's 6.1, 6.12 and 7.3.
const NAME_OFF: u64 = 24;
/// sizeof(struct module) on Debian's 6.1.
const MODULE_SIZE: usize = 0x380;

struct Section {
    name: &'static [u8],
    kind: u32,
    flags: u64,
    info: u32,
    data: Vec<u8>,
}

fn section(name: &'static [u8], kind: u32, flags: u64, data: Vec<u8>) -> Section {
    Section { name, kind, flags, info: 0, data }
}

/// struct module's bytes with `name` at NAME_OFF.
fn module_struct(name: &[u8]) -> Vec<u8> {
    let mut data = std::vec![0u8; MODULE_SIZE];
    data[NAME_OFF as usize..NAME_OFF as usize + name.len()].copy_from_slice(name);
    data
}

/// Elf64_Rela entries at these offsets (symbol and addend 0).
fn relas(offsets: &[u64]) -> Vec<u8> {
    offsets.iter().flat_map(|o| [o.to_le_bytes(), 1u64.to_le_bytes(), 0u64.to_le_bytes()]).flatten().collect()
}

/// A module named `name` as modpost and ld make it: .gnu.linkonce.this_module
/// at index 2, its relocations (init at 0x138, exit at 0x350) at index 3.
fn sections(name: &[u8]) -> Vec<Section> {
    let mut rela = section(b".rela.gnu.linkonce.this_module", SHT_RELA, 0x40, relas(&[0x138, 0x350]));
    rela.info = 2;
    std::vec![
        section(b".text", 1, 6, std::vec![0xc3; 16]),
        section(b".gnu.linkonce.this_module", 1, 3, module_struct(name)),
        rela,
        section(b".modinfo", 1, 2, b"license=GPL\0name=loop\0".to_vec()),
    ]
}

/// Lays the image out: header, section contents, names (the last section),
/// then the section headers; section 0 is the empty one.
fn build(mut secs: Vec<Section>) -> Vec<u8> {
    let mut names = std::vec![0u8];
    let mut name_offs = Vec::new();
    for s in secs.iter().chain([&section(b".shstrtab", 3, 0, Vec::new())]) {
        name_offs.push(names.len() as u32);
        names.extend_from_slice(s.name);
        names.push(0);
    }
    secs.push(section(b".shstrtab", 3, 0, names));
    let mut image = std::vec![0u8; 64];
    let mut offsets = Vec::new();
    for s in &secs {
        offsets.push(image.len() as u64);
        image.extend_from_slice(&s.data);
        image.resize(image.len().next_multiple_of(8), 0);
    }
    let shoff = image.len() as u64;
    image.extend_from_slice(&[0u8; 64]);
    for (i, s) in secs.iter().enumerate() {
        let mut h = [0u8; 64];
        h[0..4].copy_from_slice(&name_offs[i].to_le_bytes());
        h[4..8].copy_from_slice(&s.kind.to_le_bytes());
        h[8..16].copy_from_slice(&s.flags.to_le_bytes());
        h[24..32].copy_from_slice(&offsets[i].to_le_bytes());
        h[32..40].copy_from_slice(&(s.data.len() as u64).to_le_bytes());
        h[44..48].copy_from_slice(&s.info.to_le_bytes());
        image.extend_from_slice(&h);
    }
    image[..4].copy_from_slice(b"\x7fELF");
    image[4] = 2;
    image[5] = 1;
    image[0x10..0x12].copy_from_slice(&1u16.to_le_bytes());
    image[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
    image[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
    image[0x3c..0x3e].copy_from_slice(&(secs.len() as u16 + 1).to_le_bytes());
    image[0x3e..0x40].copy_from_slice(&(secs.len() as u16).to_le_bytes());
    image
}

fn shoff(image: &[u8]) -> usize {
    u64::from_le_bytes(image[0x28..0x30].try_into().unwrap()) as usize
}

/// Section header `i`'s field at `field`, `len` bytes wide.
fn field(image: &[u8], i: usize, field: usize, len: usize) -> u64 {
    let at = shoff(image) + i * 64 + field;
    let mut b = [0u8; 8];
    b[..len].copy_from_slice(&image[at..at + len]);
    u64::from_le_bytes(b)
}

fn set(image: &mut [u8], i: usize, field: usize, len: usize, value: u64) {
    let at = shoff(image) + i * 64 + field;
    image[at..at + len].copy_from_slice(&value.to_le_bytes()[..len]);
}

fn name_of(image: &[u8]) -> Result<std::string::String, Refused> {
    let mut out = [0u8; NAME_LEN];
    module_name(image, NAME_OFF, &mut out)?;
    let len = out.iter().position(|&b| b == 0).unwrap();
    assert!(out[len..].iter().all(|&b| b == 0), "the name is NUL-padded");
    Ok(std::string::String::from_utf8(out[..len].to_vec()).unwrap())
}

#[test]
fn a_module_as_built_is_named_by_its_struct_module() {
    assert_eq!(name_of(&build(sections(b"loop"))), Ok("loop".into()));
}

#[test]
fn what_follows_the_names_nul_is_not_part_of_it() {
    assert_eq!(name_of(&build(sections(b"loop\0junk"))), Ok("loop".into()));
}

#[test]
fn a_name_that_fills_the_array_with_its_nul_last_is_whole() {
    let name = [b'a'; MODULE_NAME_LEN - 1];
    assert_eq!(name_of(&build(sections(&name))), Ok(std::string::String::from_utf8(name.to_vec()).unwrap()));
}

#[test]
fn a_name_without_nul_in_the_array_is_refused() {
    assert_eq!(name_of(&build(sections(&[b'a'; MODULE_NAME_LEN]))), Err(Refused::NameUnterminated));
}

#[test]
fn an_empty_name_is_refused() {
    assert_eq!(name_of(&build(sections(b""))), Err(Refused::NameEmpty));
}

/// Section 0 named .gnu.linkonce.this_module, pointing at another name: the
/// kernel accepts it (type NULL, size and address 0) and never looks at it.
#[test]
fn section_0_named_this_module_is_skipped_as_the_kernel_skips_it() {
    let mut image = build(sections(b"evil"));
    let decoy = image.len() as u64;
    image.extend_from_slice(&module_struct(b"loop"));
    let name = field(&image, 2, 0, 4);
    set(&mut image, 0, 0, 4, name);
    set(&mut image, 0, 24, 8, decoy);
    assert_eq!(name_of(&image), Ok("evil".into()));
}

#[test]
fn section_0_with_contents_is_refused() {
    let mut image = build(sections(b"loop"));
    set(&mut image, 0, 32, 8, 8);
    assert_eq!(name_of(&image), Err(Refused::SectionZero));
    let mut image = build(sections(b"loop"));
    set(&mut image, 0, 4, 4, 1);
    assert_eq!(name_of(&image), Err(Refused::SectionZero));
}

/// A second section by that name: 6.1 would take the first allocated one,
/// 6.13+ refuses the image; the guard refuses it too, whichever comes first.
#[test]
fn two_this_module_sections_are_refused() {
    for alloc in [0, 3] {
        let mut secs = sections(b"evil");
        secs.insert(0, section(b".gnu.linkonce.this_module", 1, alloc, module_struct(b"loop")));
        assert_eq!(name_of(&build(secs)), Err(Refused::TwoModules), "decoy flags {alloc}");
    }
}

#[test]
fn a_missing_this_module_section_is_refused() {
    let secs = sections(b"loop").into_iter().filter(|s| s.kind != 1 || s.flags != 3).collect();
    assert_eq!(name_of(&build(secs)), Err(Refused::NoModule));
}

#[test]
fn a_this_module_section_the_kernel_would_not_copy_is_refused() {
    for (f, len, value) in [(8, 8, 0), (4, 4, u64::from(SHT_NOBITS)), (4, 4, 0), (32, 8, 0x40)] {
        let mut image = build(sections(b"loop"));
        set(&mut image, 2, f, len, value);
        assert_eq!(name_of(&image), Err(Refused::ModuleSection), "field {f} = {value}");
    }
}

#[test]
fn section_contents_outside_the_image_are_refused() {
    let mut image = build(sections(b"loop"));
    let len = image.len() as u64;
    set(&mut image, 2, 24, 8, len - 0x100);
    assert_eq!(name_of(&image), Err(Refused::ModuleSection));
    set(&mut image, 2, 24, 8, u64::MAX - 8);
    assert_eq!(name_of(&image), Err(Refused::ModuleSection));
}

/// The section header table read as the module section's contents (they
/// overlap): the name is whatever bytes the kernel would read there.
#[test]
fn overlapping_contents_are_read_as_the_kernel_reads_them() {
    let mut image = build(sections(b"loop"));
    let table = shoff(&image) as u64;
    image.extend_from_slice(&[0u8; MODULE_SIZE]);
    set(&mut image, 2, 24, 8, table);
    // Header 0 is all zeroes where the name would start: empty.
    assert_eq!(name_of(&image), Err(Refused::NameEmpty));
    set(&mut image, 2, 24, 8, table + 64 - NAME_OFF);
    // Header 1 (.text) starts with its name offset, 1: "\x01", then a NUL.
    assert_eq!(name_of(&image), Ok("\u{1}".into()));
}

#[test]
fn a_section_table_outside_the_image_is_refused() {
    let image = build(sections(b"loop"));
    let mut past = image.clone();
    past[0x28..0x30].copy_from_slice(&(image.len() as u64).to_le_bytes());
    assert_eq!(name_of(&past), Err(Refused::SectionTable));
    let mut cut = image.clone();
    cut.truncate(image.len() - 1);
    assert_eq!(name_of(&cut), Err(Refused::SectionTable));
}

#[test]
fn a_huge_section_count_is_refused() {
    let mut image = build(sections(b"loop"));
    image[0x3c..0x3e].copy_from_slice(&u16::MAX.to_le_bytes());
    assert_eq!(name_of(&image), Err(Refused::SectionTable));
    // Inside the image, but more than the parse looks at.
    image.resize(shoff(&image) + 64 * 200, 0);
    image[0x3c..0x3e].copy_from_slice(&200u16.to_le_bytes());
    assert_eq!(name_of(&image), Err(Refused::TooManySections));
}

#[test]
fn a_bad_section_name_table_is_refused() {
    let image = build(sections(b"loop"));
    let names = 5;
    let end = field(&image, names, 24, 8) + field(&image, names, 32, 8);
    let mut unterminated = image.clone();
    unterminated[end as usize - 1] = b'x';
    assert_eq!(name_of(&unterminated), Err(Refused::SectionNames));
    for (f, value) in [(32, 0), (32, image.len() as u64)] {
        let mut bad = image.clone();
        set(&mut bad, names, f, 8, value);
        assert_eq!(name_of(&bad), Err(Refused::SectionNames), "field {f} = {value}");
    }
    for index in [0u16, 6] {
        let mut bad = image.clone();
        bad[0x3e..0x40].copy_from_slice(&index.to_le_bytes());
        assert_eq!(name_of(&bad), Err(Refused::SectionNames), "e_shstrndx {index}");
    }
}

#[test]
fn a_section_name_outside_the_table_is_refused() {
    let mut image = build(sections(b"loop"));
    set(&mut image, 1, 0, 4, 0xffff);
    assert_eq!(name_of(&image), Err(Refused::SectionNames));
}

/// The kernel relocates struct module after it checked the name for
/// duplicates: a relocation into the NUL or the padding would make the
/// name it lists longer ("loop" + what the relocation writes).
#[test]
fn a_relocation_into_the_name_is_refused() {
    for at in [NAME_OFF - 7, NAME_OFF + 4, NAME_OFF + MODULE_NAME_LEN as u64 - 1] {
        let mut secs = sections(b"loop");
        secs[2].data = relas(&[0x138, at, 0x350]);
        assert_eq!(name_of(&build(secs)), Err(Refused::NameRelocated), "r_offset {at}");
    }
    for at in [NAME_OFF - 8, NAME_OFF + MODULE_NAME_LEN as u64] {
        let mut secs = sections(b"loop");
        secs[2].data = relas(&[at]);
        assert_eq!(name_of(&build(secs)), Ok("loop".into()), "r_offset {at}");
    }
}

#[test]
fn relocations_the_parse_cannot_check_are_refused() {
    let mut secs = sections(b"loop");
    let mut second = section(b".rela.other", SHT_RELA, 0, relas(&[0x138]));
    second.info = 2;
    secs.push(second);
    assert_eq!(name_of(&build(secs)), Err(Refused::ModuleRelocations));
    let mut secs = sections(b"loop");
    secs[2].data = relas(&[0x138; MAX_MODULE_RELOCS as usize + 1]);
    assert_eq!(name_of(&build(secs)), Err(Refused::ModuleRelocations));
}

#[test]
fn not_a_module_image_is_refused() {
    assert_eq!(name_of(b"\x7fELF"), Err(Refused::NotElf));
    assert_eq!(name_of(&[0u8; 128]), Err(Refused::NotElf));
    let mut image = build(sections(b"loop"));
    image[0x10] = 2;
    assert_eq!(name_of(&image), Err(Refused::Header));
}

#[test]
fn a_header_cut_short_is_refused() {
    let image = build(sections(b"loop"));
    for len in [4, 0x30, 63] {
        assert_eq!(name_of(&image[..len]), Err(Refused::NotElf), "{len} bytes");
    }
}

/// The relocation walk reads inside the image only, as every other read.
#[test]
fn relocations_outside_the_image_are_refused() {
    let mut image = build(sections(b"loop"));
    let len = image.len() as u64;
    set(&mut image, 3, 24, 8, len - 24);
    assert_eq!(name_of(&image), Err(Refused::Unreadable));
    set(&mut image, 3, 24, 8, u64::MAX - 8);
    assert_eq!(name_of(&image), Err(Refused::Unreadable));
}
