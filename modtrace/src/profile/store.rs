//! Reading and writing profile files: clear errors that name the file and the
//! position, atomic replacement, a writability check and the learner's lock.
//!
//! A file that cannot be read as a profile is never overwritten: loading fails,
//! and learning refuses to start.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::Value;
use thiserror::Error;

use super::model::{Profile, SCHEMA, SCHEMA_V1};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// Not JSON, truncated, or JSON of the wrong shape.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse { path: PathBuf, line: usize, column: usize, message: String },
    #[error("{}: {message}", path.display())]
    Schema { path: PathBuf, message: String },
    #[error("cannot write in {}: {source} (needed to save {})", dir.display(), path.display())]
    NotWritable { dir: PathBuf, path: PathBuf, source: io::Error },
    #[error("{}", locked_message(lock, profile, *pid))]
    Locked { lock: PathBuf, profile: PathBuf, pid: Option<u32> },
    /// Nothing at the path: every command that reads a profile says so alike.
    #[error("{}", no_profile_message(.0))]
    NoProfile(PathBuf),
}

fn no_profile_message(path: &Path) -> String {
    let out = match path.as_os_str() == super::DEFAULT_PATH {
        true => String::new(),
        false => format!(" --out {}", path.display()),
    };
    format!("{}: no profile there yet; learn one first: sudo modtrace learn --duration 10m{out}", path.display())
}

fn locked_message(lock: &Path, profile: &Path, pid: Option<u32>) -> String {
    let holder = match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".to_string(),
    };
    format!(
        "another modtrace learn ({holder}) is already learning into {} (it holds {}); wait for it to finish or stop it",
        profile.display(),
        lock.display()
    )
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// Reads a JSON document whose `schema` is one of `accepted` (the first is
/// the current one, named in messages); returns the text and its schema.
pub fn read_json_schemas(path: &Path, accepted: &[&str], what: &str) -> Result<(String, String), StoreError> {
    let mut bytes = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(io_err(path))?;
    json_schemas(path, bytes, accepted, what)
}

/// [`read_json_schemas`] for bytes already read from `path`.
pub fn json_schemas(path: &Path, bytes: Vec<u8>, accepted: &[&str], what: &str) -> Result<(String, String), StoreError> {
    let expected = accepted[0];
    let text = String::from_utf8(bytes).map_err(|e| StoreError::Parse {
        path: path.to_path_buf(),
        line: 1 + e.as_bytes()[..e.utf8_error().valid_up_to()].iter().filter(|b| **b == b'\n').count(),
        column: 0,
        message: format!("not a modtrace {what}: the file is not UTF-8 text"),
    })?;
    if text.trim().is_empty() {
        return Err(StoreError::Parse {
            path: path.to_path_buf(),
            line: 1,
            column: 0,
            message: format!("the file is empty, not a modtrace {what}"),
        });
    }
    let value: Value = serde_json::from_str(&text).map_err(|e| parse_error(path, &e, what))?;
    let Some(object) = value.as_object() else {
        return Err(StoreError::Schema {
            path: path.to_path_buf(),
            message: format!("not a modtrace {what}: the top level is not a JSON object"),
        });
    };
    match object.get("schema") {
        Some(Value::String(s)) if accepted.contains(&s.as_str()) => {
            let schema = s.clone();
            Ok((text, schema))
        }
        Some(Value::String(s)) => Err(StoreError::Schema {
            path: path.to_path_buf(),
            message: format!(
                "unknown schema \"{s}\": this modtrace reads {expected} only (was the file written by another version of modtrace, or is it not a {what}?)"
            ),
        }),
        Some(other) => Err(StoreError::Schema {
            path: path.to_path_buf(),
            message: format!("the \"schema\" field is {other}, not \"{expected}\""),
        }),
        None => Err(StoreError::Schema {
            path: path.to_path_buf(),
            message: format!("no \"schema\" field: not a modtrace {what} (expected \"schema\": \"{expected}\")"),
        }),
    }
}

pub(crate) fn parse_error(path: &Path, e: &serde_json::Error, what: &str) -> StoreError {
    use serde_json::error::Category;
    // serde_json's text ends with " at line L column C"; the position goes in front.
    let full = e.to_string();
    let detail = match full.rfind(" at line ") {
        Some(i) if e.line() > 0 => &full[..i],
        _ => full.as_str(),
    };
    let message = match e.classify() {
        Category::Eof => format!("the file ends early, a truncated modtrace {what}? ({detail})"),
        Category::Syntax => format!("not valid JSON, so not a modtrace {what}: {detail}"),
        Category::Data => format!("not a valid modtrace {what}: {detail}"),
        Category::Io => detail.to_string(),
    };
    StoreError::Parse { path: path.to_path_buf(), line: e.line(), column: e.column(), message }
}

/// Loads a profile; a modtrace-profile/1 file is migrated (see
/// [`Profile::migrate_v1`]), and a hand-edited one with unsorted or duplicate
/// entries is normalised or refused (see [`Profile::normalize`]). Errors name
/// the file and, for bad contents, the line and column or the entry.
pub fn load(path: &Path) -> Result<Profile, StoreError> {
    let mut bytes = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(io_err(path))?;
    parse(path, bytes)
}

/// [`load`] for the bytes of a file read from `path` (named in errors).
pub fn parse(path: &Path, bytes: Vec<u8>) -> Result<Profile, StoreError> {
    let (text, schema) = json_schemas(path, bytes, &[SCHEMA, SCHEMA_V1], "profile")?;
    let mut profile: Profile = serde_json::from_str(&text).map_err(|e| parse_error(path, &e, "profile"))?;
    if schema == SCHEMA_V1 {
        profile.migrate_v1();
    }
    profile.normalize().map_err(|message| StoreError::Schema { path: path.to_path_buf(), message })?;
    Ok(profile)
}

/// Loads a profile, or None when there is no file at `path`.
pub fn load_if_exists(path: &Path) -> Result<Option<Profile>, StoreError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::Io { path: path.to_path_buf(), source: e }),
        Ok(_) => load(path).map(Some),
    }
}

/// The profile at `path`; NoProfile when there is none.
pub fn load_existing(path: &Path) -> Result<Profile, StoreError> {
    load_if_exists(path)?.ok_or_else(|| StoreError::NoProfile(path.to_path_buf()))
}

/// Writes the profile atomically (see [`atomic_write`]).
pub fn save(path: &Path, profile: &Profile) -> Result<(), StoreError> {
    atomic_write(path, profile.to_json().as_bytes())
}

fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The temporary file `atomic_write` uses for `path`: in the same directory, so
/// the rename cannot cross file systems.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dir_of(path).join(format!(".{name}.{}.tmp", std::process::id()))
}

/// Replaces `path` with `bytes` so that a reader sees the old or the new file,
/// never a mix, even after a crash: temp file in the same directory, write,
/// fsync, rename over, fsync the directory. On failure the old file is intact.
/// An existing file's permissions are kept; a new one is 0644.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = dir_of(path);
    let tmp = temp_path(path);
    let mode = fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644);
    let mut created = false;
    let result = (|| -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        created = true;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        created = false;
        File::open(&dir)?.sync_all()
    })();
    result.map_err(|source| {
        if created {
            let _ = fs::remove_file(&tmp);
        }
        StoreError::Io { path: path.to_path_buf(), source }
    })
}

/// Fails unless a file can be created next to `path` (and `path` is not a
/// directory): called before learning starts, so that hours of learning are not
/// lost to a read-only or missing directory at the end.
pub fn check_writable(path: &Path) -> Result<(), StoreError> {
    let dir = dir_of(path);
    if path.is_dir() {
        return Err(StoreError::NotWritable {
            dir,
            path: path.to_path_buf(),
            source: io::Error::other(format!("{} is a directory", path.display())),
        });
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let probe = dir.join(format!(".{name}.{}.check", std::process::id()));
    let not_writable = |source| StoreError::NotWritable { dir: dir.clone(), path: path.to_path_buf(), source };
    OpenOptions::new().write(true).create_new(true).mode(0o600).open(&probe).map_err(not_writable)?;
    fs::remove_file(&probe).map_err(not_writable)
}

/// The lock a learner holds for as long as it runs: flock on `<profile>.lock`,
/// which holds the holder's pid. Released when dropped (or when the process dies).
#[derive(Debug)]
pub struct LearnLock {
    _file: File,
    pub path: PathBuf,
}

pub fn lock_path(profile: &Path) -> PathBuf {
    let mut name = profile.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    dir_of(profile).join(name)
}

/// Takes the learner's lock for `profile`, or fails naming the holder's pid.
pub fn lock(profile: &Path) -> Result<LearnLock, StoreError> {
    let path = lock_path(profile);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(io_err(&path))?;
    // SAFETY: flock on a file descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(StoreError::Locked {
                lock: path,
                profile: profile.to_path_buf(),
                pid: text.trim().parse().ok(),
            });
        }
        return Err(StoreError::Io { path, source: err });
    }
    let write_pid = |f: &mut File| -> io::Result<()> {
        f.set_len(0)?;
        f.write_all(format!("{}\n", std::process::id()).as_bytes())?;
        f.sync_all()
    };
    write_pid(&mut file).map_err(io_err(&path))?;
    Ok(LearnLock { _file: file, path })
}
