//! A writer of newc ("070701") cpio archives, the format the kernel unpacks as
//! an initramfs. Entries carry uid/gid 0 and mtime 0 so images are reproducible.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

pub struct Archive<W: Write> {
    out: W,
    next_ino: u32,
    written: u64,
}

impl<W: Write> Archive<W> {
    pub fn new(out: W) -> Self {
        Self { out, next_ino: 1, written: 0 }
    }

    /// Adds everything below `root` (not `root` itself), parents before children.
    pub fn add_tree(&mut self, root: &Path) -> Result<()> {
        self.add_dir_contents(root, root)
    }

    /// Adds a character device node, e.g. dev/console (5, 1).
    pub fn add_char_device(&mut self, name: &str, major: u32, minor: u32) -> Result<()> {
        self.entry(name, S_IFCHR | 0o600, (major, minor), &[])?;
        Ok(())
    }

    /// Writes the trailer and returns the underlying writer.
    pub fn finish(mut self) -> Result<W> {
        self.entry("TRAILER!!!", 0, (0, 0), &[])?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn add_dir_contents(&mut self, root: &Path, dir: &Path) -> Result<()> {
        let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let name = path.strip_prefix(root)?.to_string_lossy().into_owned();
            self.add_path(&name, &path).with_context(|| format!("adding {}", path.display()))?;
            if entry.file_type()?.is_dir() {
                self.add_dir_contents(root, &path)?;
            }
        }
        Ok(())
    }

    fn add_path(&mut self, name: &str, path: &Path) -> Result<()> {
        let meta = fs::symlink_metadata(path)?;
        let perm = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(path)?;
            self.entry(name, S_IFLNK | 0o777, (0, 0), target.as_os_str().as_encoded_bytes())
        } else if meta.is_dir() {
            self.entry(name, S_IFDIR | perm, (0, 0), &[])
        } else {
            self.entry(name, S_IFREG | perm, (0, 0), &fs::read(path)?)
        }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) -> Result<()> {
        let ino = self.next_ino;
        self.next_ino += 1;
        let nlink = if mode & S_IFDIR == S_IFDIR { 2 } else { 1 };
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            u32::try_from(data.len()).context("file too large for cpio")?,
            0, // dev major
            0, // dev minor
            rdev.0,
            rdev.1,
            u32::try_from(name.len() + 1)?,
            0, // check
        ];
        let mut header = String::from("070701");
        for field in fields {
            header += &format!("{field:08x}");
        }
        self.write_padded(&[header.as_bytes(), name.as_bytes(), b"\0"].concat())?;
        self.write_padded(data)
    }

    /// Writes `bytes`, then zeros up to the next multiple of four.
    fn write_padded(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        let pad = (4 - (self.written % 4) as usize) % 4;
        self.out.write_all(&[0u8; 3][..pad])?;
        self.written += pad as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_aligned_and_end_with_trailer() {
        let mut archive = Archive::new(Vec::new());
        archive.entry("init", S_IFREG | 0o755, (0, 0), b"#!/bin/sh\n").unwrap();
        archive.add_char_device("dev/console", 5, 1).unwrap();
        let bytes = archive.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        assert!(bytes.starts_with(b"070701"));
        // header (110) + "init\0" (5) = 115, padded to 116; then 10 bytes of data, padded to 12.
        assert_eq!(&bytes[116..126], b"#!/bin/sh\n");
        assert_eq!(&bytes[128..134], b"070701");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("TRAILER!!!"));
        assert!(text.contains("dev/console"));
    }
}
