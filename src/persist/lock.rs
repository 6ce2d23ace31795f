//! One broker per persistence directory: an exclusive `flock` on the directory itself,
//! held as long as the store is open. A lock on the directory (not on a lock file)
//! works on a read-only or full file system too, and vanishes with the process, so a
//! crash leaves nothing stale behind. Two brokers on one directory would each append
//! their own sessions to the same journal and compact over each other's snapshots.

use std::fs::{self, File, TryLockError};
use std::path::Path;

/// Locks `dir`. `Ok(None)`: the lock could not be taken for a reason other than another
/// holder (the directory cannot be opened, or the file system has no `flock`); the
/// caller goes on without it and says so.
pub fn lock_dir(dir: &Path) -> Result<Option<File>, String> {
    let file = match File::open(dir) {
        Ok(f) => f,
        Err(e) => {
            log::warn!(
                "Cannot lock the persistence directory {}: {e}. Make sure no other broker uses it.",
                dir.display()
            );
            return Ok(None);
        }
    };
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Err(format!(
            "the persistence directory {} is in use by another broker{}. Two brokers on one directory would mix their sessions and overwrite each other's files: stop the other one, or give this one its own persistence_location.",
            dir.display(),
            holder(dir).map_or_else(String::new, |h| format!(" ({h})"))
        )),
        Err(TryLockError::Error(e)) => {
            log::warn!(
                "Cannot lock the persistence directory {}: {e}. Make sure no other broker uses it.",
                dir.display()
            );
            Ok(None)
        }
    }
}

/// "process 1234, culex" for the holder of the `flock` on `dir`, from `/proc/locks`
/// (Linux; `None` where that cannot be read).
fn holder(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(dir).ok()?;
    let dev = meta.dev();
    // glibc's encoding of dev_t; /proc/locks prints "major:minor:inode", the device
    // numbers in hex.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let id = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let locks = fs::read_to_string("/proc/locks").ok()?;
    let pid = locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
        let at = fields.iter().position(|f| *f == "FLOCK")?;
        (fields.get(at + 4) == Some(&id.as_str()))
            .then(|| fields.get(at + 3).map(|p| p.to_string()))
            .flatten()
    })?;
    let name = fs::read_to_string(format!("/proc/{pid}/comm")).ok();
    Some(match name {
        Some(n) => format!("process {pid}, {}", n.trim()),
        None => format!("process {pid}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [issue #25, case 9] A second lock on a locked directory fails and names the
    /// directory and the holder (this process); it succeeds once the first is dropped.
    #[test]
    fn a_locked_directory_is_refused_with_its_holder() {
        let dir = std::env::temp_dir().join(format!("culex-lock-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let first = lock_dir(&dir).unwrap().expect("the lock is taken");
        let err = lock_dir(&dir).expect_err("the second lock is refused");
        assert!(err.contains(&dir.display().to_string()), "{err}");
        assert!(err.contains("in use by another broker"), "{err}");
        if Path::new("/proc/locks").exists() {
            assert!(
                err.contains(&format!("process {}", std::process::id())),
                "{err}"
            );
        }
        drop(first);
        assert!(lock_dir(&dir).unwrap().is_some(), "free again");
        let _ = fs::remove_dir_all(&dir);
    }
}
