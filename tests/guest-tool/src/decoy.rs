//! A module image whose section 0 is named .gnu.linkonce.this_module and
//! points at a copy of the module's struct module that carries another name.
//! The kernel accepts section 0 as it is (type NULL, size and address 0) and
//! never looks at it, so it loads the module under its own name; a parse
//! that took section 0 into account would read the other name.

use std::io;

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn u64_at(image: &[u8], at: usize) -> io::Result<u64> {
    let b = image.get(at..at + 8).ok_or_else(|| bad("image cut short"))?;
    Ok(u64::from_le_bytes(b.try_into().unwrap()))
}

fn u32_at(image: &[u8], at: usize) -> io::Result<u32> {
    let b = image.get(at..at + 4).ok_or_else(|| bad("image cut short"))?;
    Ok(u32::from_le_bytes(b.try_into().unwrap()))
}

/// `image` (an uncompressed module named `own`) with section 0 pointing at
/// a struct module named `decoy`.
pub fn section0_decoy(mut image: Vec<u8>, own: &str, decoy: &str) -> io::Result<Vec<u8>> {
    let shoff = u64_at(&image, 0x28)? as usize;
    let shnum = u16::from_le_bytes([image[0x3c], image[0x3d]]) as usize;
    let shstrndx = u16::from_le_bytes([image[0x3e], image[0x3f]]) as usize;
    let shdr = |i: usize| shoff + i * 64;
    let strtab = u64_at(&image, shdr(shstrndx) + 24)? as usize;
    let named = |i: usize| -> io::Result<bool> {
        let at = strtab + u32_at(&image, shdr(i))? as usize;
        Ok(image.get(at..at + 26) == Some(&b".gnu.linkonce.this_module\0"[..]))
    };
    let index = (1..shnum).find(|&i| named(i).unwrap_or(false)).ok_or_else(|| bad("no this_module section"))?;
    let (offset, size) = (u64_at(&image, shdr(index) + 24)? as usize, u64_at(&image, shdr(index) + 32)? as usize);
    let mut copy = image.get(offset..offset + size).ok_or_else(|| bad("this_module outside the image"))?.to_vec();
    let own = format!("{own}\0");
    let at = copy.windows(own.len()).position(|w| w == own.as_bytes()).ok_or_else(|| bad("own name not found"))?;
    let end = (at + 56).min(copy.len());
    copy[at..end].fill(0);
    copy[at..at + decoy.len()].copy_from_slice(decoy.as_bytes());
    image.resize(image.len().next_multiple_of(64), 0);
    let placed = image.len() as u64;
    image.extend_from_slice(&copy);
    let name = u32_at(&image, shdr(index))?;
    image[shdr(0)..shdr(0) + 4].copy_from_slice(&name.to_le_bytes());
    image[shdr(0) + 24..shdr(0) + 32].copy_from_slice(&placed.to_le_bytes());
    Ok(image)
}

#[cfg(test)]
mod tests {
    use modtrace_common::{elf, NAME_LEN};

    use super::*;

    /// The name the guard's parse gives, or what it refused.
    fn parsed(image: &[u8]) -> Result<String, elf::Refused> {
        let mut out = [0u8; NAME_LEN];
        elf::module_name(image, 24, &mut out)?;
        Ok(String::from_utf8(out[..out.iter().position(|&b| b == 0).unwrap()].to_vec()).unwrap())
    }

    /// The first section named .gnu.linkonce.this_module counting section 0,
    /// as the guard's parse did before it followed the kernel.
    fn naive(image: &[u8]) -> String {
        let shoff = u64_at(image, 0x28).unwrap() as usize;
        let strtab = u64_at(image, shoff + u16::from_le_bytes([image[0x3e], image[0x3f]]) as usize * 64 + 24).unwrap();
        let first = (0..).find(|i| {
            let at = strtab as usize + u32_at(image, shoff + i * 64).unwrap() as usize;
            image[at..].starts_with(b".gnu.linkonce.this_module\0")
        });
        let name_at = u64_at(image, shoff + first.unwrap() * 64 + 24).unwrap() as usize + 24;
        let name = &image[name_at..];
        String::from_utf8(name[..name.iter().position(|&b| b == 0).unwrap()].to_vec()).unwrap()
    }

    /// A real module from MODTRACE_TEST_MODULES: the decoy fools the naive
    /// parse, not the guard's, which names the module as the kernel will.
    #[test]
    fn section0_decoy_fools_only_a_parse_that_reads_section_0() {
        let dir = std::env::var_os("MODTRACE_TEST_MODULES").expect("MODTRACE_TEST_MODULES (see `cargo xtask test`)");
        let file = std::path::Path::new(&dir).join("kernel/net/ipv4/tcp_scalable.ko");
        let image = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!((parsed(&image).as_deref(), naive(&image).as_str()), (Ok("tcp_scalable"), "tcp_scalable"));
        let decoy = section0_decoy(image, "tcp_scalable", "vfat").unwrap();
        assert_eq!(naive(&decoy), "vfat");
        assert_eq!(parsed(&decoy).as_deref(), Ok("tcp_scalable"));
    }
}
