//! Every change the store makes to its files goes through these few functions, so that
//! tests can make them fail the way a full or read-only file system does (`faults`,
//! test builds only): a write that runs out of space stops part-way, as `write(2)` does.
//! Reads are not routed here: a file that cannot be read is handled where it is read.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// `path` with `suffix` appended to its file name.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

pub fn create(path: &Path) -> io::Result<File> {
    faults::check(path, 0)?;
    File::create(path)
}

pub fn open_append(path: &Path) -> io::Result<File> {
    faults::check(path, 0)?;
    OpenOptions::new().append(true).open(path)
}

/// `path` names the file for the fault hook.
pub fn write_all(mut file: &File, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let allowed = faults::check(path, bytes.len())?;
    if allowed < bytes.len() {
        file.write_all(bytes.get(..allowed).unwrap_or_default())?;
        return Err(io::Error::from_raw_os_error(faults::ENOSPC));
    }
    file.write_all(bytes)
}

pub fn sync_data(file: &File, path: &Path) -> io::Result<()> {
    faults::check(path, 0)?;
    file.sync_data()
}

pub fn sync_all(file: &File, path: &Path) -> io::Result<()> {
    faults::check(path, 0)?;
    file.sync_all()
}

pub fn set_len(file: &File, path: &Path, len: u64) -> io::Result<()> {
    faults::check(path, 0)?;
    file.set_len(len)
}

pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    faults::check(to, 0)?;
    fs::rename(from, to)
}

/// Removes `path`; a file that is not there is no error.
pub fn remove(path: &Path) -> io::Result<()> {
    faults::check(path, 0)?;
    match fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Syncs the directory holding `path`, so a rename or a new file in it is durable.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    faults::check(path, 0)?;
    File::open(dir)?.sync_all()
}

/// Writes `parts` to `path` durably and atomically: a temporary file next to it, synced,
/// renamed over `path`, the directory synced. The temporary file is removed if any step
/// fails (a full disk must not keep a partial copy). Needs `parts`' size free.
pub fn replace(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let tmp = with_suffix(path, TMP_SUFFIX);
    let result = (|| {
        let f = create(&tmp)?;
        for part in parts {
            write_all(&f, &tmp, part)?;
        }
        sync_all(&f, &tmp)?;
        drop(f);
        rename(&tmp, path)?;
        sync_dir(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

pub const TMP_SUFFIX: &str = ".tmp";

#[cfg(test)]
pub mod faults {
    //! Per-directory faults for tests: a read-only file system, or one with this many
    //! bytes left. Tests run in parallel, each in a directory of its own.
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    pub const ENOSPC: i32 = 28;
    pub const EROFS: i32 = 30;

    #[derive(Debug, Clone, Copy)]
    pub enum Fault {
        ReadOnly,
        /// Bytes that can still be written.
        Space(usize),
    }

    static FAULTS: Mutex<Vec<(PathBuf, Fault)>> = Mutex::new(Vec::new());

    pub fn set(dir: &Path, fault: Fault) {
        let mut f = FAULTS.lock().unwrap_or_else(|e| e.into_inner());
        f.retain(|(d, _)| d != dir);
        f.push((dir.to_path_buf(), fault));
    }

    pub fn clear(dir: &Path) {
        let mut f = FAULTS.lock().unwrap_or_else(|e| e.into_inner());
        f.retain(|(d, _)| d != dir);
    }

    /// How many of `len` bytes may be written to `path`; an error for a file system
    /// that takes none.
    pub fn check(path: &Path, len: usize) -> io::Result<usize> {
        let mut f = FAULTS.lock().unwrap_or_else(|e| e.into_inner());
        let Some((_, fault)) = f.iter_mut().find(|(d, _)| path.starts_with(d)) else {
            return Ok(len);
        };
        match fault {
            Fault::ReadOnly => Err(io::Error::from_raw_os_error(EROFS)),
            Fault::Space(left) => {
                let allowed = len.min(*left);
                *left -= allowed;
                if len > 0 && allowed == 0 {
                    return Err(io::Error::from_raw_os_error(ENOSPC));
                }
                Ok(allowed)
            }
        }
    }
}

#[cfg(not(test))]
mod faults {
    pub const ENOSPC: i32 = 28;

    #[inline(always)]
    pub fn check(_: &std::path::Path, len: usize) -> std::io::Result<usize> {
        Ok(len)
    }
}
