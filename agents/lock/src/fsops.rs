//! The file primitives the `dir` store is built on, with what each promises on Linux and on
//! Windows (a local NTFS volume or an SMB share).
//!
//! - **create-new** (`O_EXCL` / `CREATE_NEW`): atomic on both, over NFSv3+ and SMB too; std's
//!   `OpenOptions::create_new` is used as is.
//! - **replace** ([`replace`]): a rename over an existing file. POSIX `rename(2)`; on Windows
//!   `MoveFileExW` with `MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH`, so the rename is
//!   on disk (or acknowledged by the SMB server) when it returns.
//! - **directory flush** ([`sync_dir`]): POSIX needs an fsync of the directory for a rename
//!   to survive a crash. Windows cannot open a directory as a file without
//!   `FILE_FLAG_BACKUP_SEMANTICS`, and SMB servers do not all flush a directory handle; the
//!   write-through rename above gives the same guarantee, so this is a no-op there.
//! - **busy files** ([`retry_busy`]): Windows refuses to rename over, remove or open a file
//!   that another handle holds without `FILE_SHARE_DELETE` (a virus scanner, a backup agent,
//!   an indexer, an SMB client's oplock break), and a removed file whose handles are still
//!   open stays "delete pending" for a moment. Those errors are retried for up to
//!   [`BUSY_RETRY`]; on Linux there is no such state and nothing is retried.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a file operation is retried while Windows reports the file busy: far longer than a
/// scanner or another host's read holds a small file, far shorter than the store mutex lease.
pub const BUSY_RETRY: Duration = Duration::from_secs(2);

/// True for the errors Windows gives while another handle is using the file or it is being
/// deleted: ERROR_ACCESS_DENIED (what a delete-pending file answers), ERROR_SHARING_VIOLATION,
/// ERROR_LOCK_VIOLATION, ERROR_DELETE_PENDING. Never true on Linux.
pub fn is_busy(e: &io::Error) -> bool {
    cfg!(windows) && matches!(e.raw_os_error(), Some(5 | 32 | 33 | 303))
}

/// Run `op`, again while it fails with a busy error (see [`is_busy`]), for up to [`BUSY_RETRY`].
pub fn retry_busy<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let until = Instant::now() + BUSY_RETRY;
    let mut pause = Duration::from_millis(1);
    loop {
        match op() {
            Err(e) if is_busy(&e) && Instant::now() < until => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Rename `from` to `to`, replacing `to` atomically if it exists.
#[cfg(not(windows))]
pub fn replace(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)
}

/// Rename `from` to `to`, replacing `to` atomically if it exists, written through to disk.
#[cfg(windows)]
pub fn replace(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::windows::ffi::OsStrExt;
    use windows_sys::Win32::Storage::FileSystem::{MoveFileExW, MOVEFILE_REPLACE_EXISTING, MOVEFILE_WRITE_THROUGH};
    let wide = |p: &Path| p.as_os_str().encode_wide().chain(Some(0)).collect::<Vec<u16>>();
    let (f, t) = (wide(from), wide(to));
    // SAFETY: both strings are NUL-terminated and live across the call.
    if unsafe { MoveFileExW(f.as_ptr(), t.as_ptr(), MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Make the renames done in `dir` durable: fsync of the directory on POSIX (best effort: a
/// failure here cannot undo the rename, and the file contents were already flushed).
#[cfg(unix)]
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Nothing to do on Windows: [`replace`] writes through (see the module documentation).
#[cfg(not(unix))]
pub fn sync_dir(_dir: &Path) {}
