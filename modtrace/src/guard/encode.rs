//! Policy -> the keys and values of the guard's maps, in one generation.

use modtrace_common::{
    guard::{mode, AliasKey, FileKey, FileOffsets, FileValue, GuardConfig, NO_ID},
    NAME_LEN,
};

use super::policy::Policy;

/// The enum values and struct offsets of the running kernel (from BTF).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelFacts {
    pub reading_module: u32,
    /// None before kernels with in-kernel decompression of finit_module files.
    pub reading_module_compressed: Option<u32>,
    pub loading_module: u32,
    /// offsetof(struct module, name).
    pub module_name: u32,
    pub offsets: FileOffsets,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Allow everything; report what enforce would refuse.
    Complain,
    /// Refuse (EPERM) what the profile does not allow.
    Enforce,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Complain => "complain",
            Mode::Enforce => "enforce",
        }
    }

    pub fn wire(self) -> u32 {
        match self {
            Mode::Complain => mode::COMPLAIN,
            Mode::Enforce => mode::ENFORCE,
        }
    }
}

/// Everything one generation writes.
#[derive(Debug, Clone, Default)]
pub struct Encoded {
    pub aliases: Vec<AliasKey>,
    /// Module names an init_module image may carry (with --allow-init-module).
    pub modules: Vec<AliasKey>,
    pub files: Vec<(FileKey, FileValue)>,
    /// Names too long for the kernel's buffers: left out, said so.
    pub skipped: Vec<String>,
}

/// `text` NUL-padded, or None when it does not fit with its NUL (or holds one).
pub fn name_bytes(text: &str) -> Option<[u8; NAME_LEN]> {
    let bytes = text.as_bytes();
    if bytes.len() >= NAME_LEN || bytes.contains(&0) {
        return None;
    }
    let mut out = [0u8; NAME_LEN];
    out[..bytes.len()].copy_from_slice(bytes);
    Some(out)
}

pub fn encode(policy: &Policy, generation: u32) -> Encoded {
    let mut out = Encoded::default();
    for alias in &policy.aliases {
        match name_bytes(alias) {
            Some(name) => out.aliases.push(AliasKey { generation, _pad: 0, name }),
            None => out.skipped.push(alias.clone()),
        }
    }
    for m in &policy.modules {
        match name_bytes(m) {
            Some(name) => out.modules.push(AliasKey { generation, _pad: 0, name }),
            None => out.skipped.push(m.clone()),
        }
    }
    for f in &policy.files {
        match name_bytes(&f.module) {
            Some(module) => out.files.push((FileKey { generation, dev: f.dev, ino: f.ino }, FileValue { module })),
            None => out.skipped.push(f.module.clone()),
        }
    }
    out
}

pub fn config(generation: u32, mode: Mode, allow_init_module: bool, facts: &KernelFacts) -> GuardConfig {
    GuardConfig {
        generation,
        mode: mode.wire(),
        allow_init_module: allow_init_module as u32,
        reading_module: facts.reading_module,
        reading_module_compressed: facts.reading_module_compressed.unwrap_or(NO_ID),
        loading_module: facts.loading_module,
        module_name: facts.module_name,
        _pad: 0,
        offsets: facts.offsets,
    }
}

/// The generation after `current` (none yet: 1); never 0, which marks "none".
pub fn next_generation(current: Option<u32>) -> u32 {
    match current.unwrap_or(0).wrapping_add(1) {
        0 => 1,
        g => g,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::policy::AllowedFile;

    #[test]
    fn aliases_and_files_are_nul_padded_in_their_generation() {
        let policy = Policy {
            aliases: ["net-pf-5".to_string(), "x".repeat(NAME_LEN)].into(),
            modules: ["vfat".to_string()].into(),
            files: vec![AllowedFile {
                module: "vfat".into(),
                path: "/lib/modules/k/vfat.ko".into(),
                dev: (8 << 20) | 1,
                ino: 42,
            }],
            ..Policy::default()
        };
        let enc = encode(&policy, 7);
        assert_eq!(enc.aliases.len(), 1);
        let key = enc.aliases[0];
        assert_eq!((key.generation, key._pad), (7, 0));
        assert_eq!(&key.name[..9], b"net-pf-5\0");
        assert!(key.name[8..].iter().all(|&b| b == 0), "the kernel compares all {NAME_LEN} bytes");
        assert_eq!(enc.skipped, ["x".repeat(NAME_LEN)], "a name without room for its NUL is left out, said so");
        assert_eq!((enc.modules.len(), enc.modules[0].generation, &enc.modules[0].name[..5]), (1, 7, &b"vfat\0"[..]));
        let (fk, fv) = enc.files[0];
        assert_eq!((fk.generation, fk.dev, fk.ino), (7, (8 << 20) | 1, 42));
        assert_eq!(&fv.module[..5], b"vfat\0");
    }

    #[test]
    fn the_config_carries_mode_flags_and_the_kernels_ids() {
        let facts = KernelFacts {
            reading_module: 2,
            reading_module_compressed: None,
            loading_module: 3,
            module_name: 24,
            offsets: FileOffsets::default(),
        };
        let c = config(4, Mode::Enforce, true, &facts);
        assert_eq!((c.generation, c.mode, c.allow_init_module), (4, mode::ENFORCE, 1));
        assert_eq!((c.reading_module, c.reading_module_compressed, c.loading_module, c.module_name), (2, NO_ID, 3, 24));
        let c = config(5, Mode::Complain, false, &KernelFacts { reading_module_compressed: Some(3), ..facts });
        assert_eq!((c.mode, c.allow_init_module, c.reading_module_compressed), (mode::COMPLAIN, 0, 3));
    }

    #[test]
    fn generations_count_up_and_skip_zero() {
        assert_eq!(next_generation(None), 1);
        assert_eq!(next_generation(Some(1)), 2);
        assert_eq!(next_generation(Some(u32::MAX)), 1);
    }

    #[test]
    fn names_with_nul_or_too_long_do_not_encode() {
        assert!(name_bytes("a\0b").is_none());
        assert!(name_bytes(&"y".repeat(NAME_LEN - 1)).is_some());
        assert!(name_bytes(&"y".repeat(NAME_LEN)).is_none());
    }
}
