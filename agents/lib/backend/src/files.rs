//! File primitives every agent and library uses, with what each promises on Linux and on
//! Windows (a local NTFS volume or an SMB share). The agents run as root in directories that
//! other users may write (a service's pidfile directory, a lock store on a share), so nothing
//! here follows a planted symlink or reuses a predictable temporary name.
//!
//! - **atomic replacement** ([`write_atomic`]): a reader sees the old content or the new, never
//!   a part; the temporary is created with `O_EXCL | O_NOFOLLOW` under an unguessable name,
//!   flushed, renamed over the target, and the directory is flushed.
//! - **no-follow opens** ([`open_append_nofollow`], [`read_nofollow`]): a symlink at the path
//!   is refused instead of followed.
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

/// A temporary name next to `path` that nobody can predict: pid, time and a counter. Created
/// with create-new, so even a guessed name only makes the write fail, never follow a link.
fn temp_name(path: &Path) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let base = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let name = format!(".{base}.{}-{nanos:x}-{}.tmp", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
    path.with_file_name(name)
}

/// Create `path` new for writing: fails if anything (a file, a symlink) is already there.
pub fn create_new(path: &Path, mode: u32) -> io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(mode).custom_flags(libc_nofollow());
    }
    #[cfg(not(unix))]
    let _ = mode;
    o.open(path)
}

#[cfg(unix)]
fn libc_nofollow() -> i32 {
    libc::O_NOFOLLOW | libc::O_CLOEXEC
}

/// Replace `path` with `data` atomically and durably: a reader sees the old content or the new,
/// never a part, and after a crash one of the two is on disk. The temporary is created
/// create-new and no-follow under an unguessable name in the same directory, flushed, renamed
/// over `path` (which may be a symlink: the link itself is replaced, never its target), then
/// the directory is flushed. `mode` applies on Unix (the file is created with it, so it is
/// never readable by others even for a moment).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    let tmp = temp_name(path);
    let result = (|| {
        let mut f = create_new(&tmp, mode)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        retry_busy(|| replace(&tmp, path))
    })();
    match result {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                sync_dir(dir);
            }
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Open `path` for appending, creating it with `mode`, refusing a symlink at the path.
pub fn open_append_nofollow(path: &Path, mode: u32) -> io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(mode).custom_flags(libc_nofollow());
    }
    #[cfg(not(unix))]
    let _ = mode;
    o.open(path)
}

/// Read `path` whole, refusing a symlink at the path (on Unix; elsewhere a plain read) and
/// anything that is not a regular file: a FIFO planted where a record belongs is opened
/// without blocking and refused, instead of hanging the reader.
pub fn read_nofollow(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc_nofollow() | libc::O_NONBLOCK);
    }
    let mut f = o.open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{} is not a regular file", path.display())));
    }
    let mut out = Vec::new();
    f.read_to_end(&mut out)?;
    Ok(out)
}

/// A password or token from `path`: its first line, without the line end. Refused, with a
/// reason naming the file and never its content, when `path` is a symlink, not a regular file,
/// larger than 64 KiB, empty, or (Unix) readable or writable by other users than its owner
/// and group: whoever could read it could use the credential, whoever could write it could
/// point an agent that runs as root at another server's account.
pub fn read_secret(path: &Path) -> Result<String, String> {
    let name = path.display();
    let bytes = read_private(path, 64 << 10)?;
    let text = String::from_utf8(bytes).map_err(|_| format!("the secret file {name} is not UTF-8 text"))?;
    let first = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if first.is_empty() {
        return Err(format!("the secret file {name} is empty"));
    }
    Ok(first.to_string())
}

/// A private file whole (a password file, a TLS private key): refused, with a reason naming
/// the file and never its content, when `path` is a symlink, not a regular file, larger than
/// `limit` bytes, or (Unix) open to users other than its owner and group.
pub fn read_private(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let name = path.display();
    let cannot = |e: io::Error| format!("cannot read the secret file {name}: {e}");
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc_nofollow() | libc::O_NONBLOCK);
    }
    let f = o.open(path).map_err(cannot)?;
    let meta = f.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(format!("the secret file {name} is not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o007 != 0 {
            return Err(format!(
                "the secret file {name} is open to every user (mode {:o}): chmod o-rwx it",
                mode & 0o777
            ));
        }
    }
    let mut bytes = Vec::new();
    f.take(limit + 1).read_to_end(&mut bytes).map_err(cannot)?;
    if bytes.len() as u64 > limit {
        return Err(format!("the secret file {name} is larger than {} KiB", limit >> 10));
    }
    Ok(bytes)
}

/// The last `limit` bytes of `path`, refusing a symlink at the path (a log file's tail, read
/// without reading a huge file whole).
pub fn read_tail_nofollow(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc_nofollow() | libc::O_NONBLOCK);
    }
    let mut f = o.open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(limit)))?;
    let mut out = Vec::new();
    f.take(limit).read_to_end(&mut out)?;
    Ok(out)
}

/// Read at most `limit` bytes of `path`, a record this process wrote: refused (an error of
/// kind `PermissionDenied`, or the no-follow open's own error) when `path` is a symlink, not a
/// regular file or, on Unix, owned by another user than the one we run as. A file anyone else
/// could have written (a pidfile planted in a directory the service user can write, a copy of
/// /etc/passwd) is never taken for ours. Windows: a no-follow read of a regular file.
pub fn read_owned_nofollow(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: a FIFO planted at the path must not block the open.
        o.custom_flags(libc_nofollow() | libc::O_NONBLOCK);
    }
    let f = o.open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, "not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("owned by uid {}, not by uid {me} that writes our records", meta.uid()),
            ));
        }
    }
    let mut out = Vec::new();
    f.take(limit).read_to_end(&mut out)?;
    Ok(out)
}

/// An exclusive advisory lock on a file, held until dropped (the OS releases it when the
/// process dies, so a killed agent never leaves a stale lock).
#[derive(Debug)]
pub struct FileLock {
    _file: std::fs::File,
}

/// Take the exclusive lock of `path` (created with `mode` if missing, never through a
/// symlink), waiting for another holder until `until`. Unix: `flock(2)`; Windows:
/// `LockFileEx` through std. A timeout is an error of kind `WouldBlock`.
pub fn lock_exclusive(path: &Path, mode: u32, until: Instant) -> io::Result<FileLock> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(mode).custom_flags(libc_nofollow());
    }
    #[cfg(not(unix))]
    let _ = mode;
    let file = o.open(path)?;
    loop {
        match try_lock(&file) {
            Ok(true) => return Ok(FileLock { _file: file }),
            Ok(false) if Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(20).min(until.saturating_duration_since(Instant::now())))
            }
            Ok(false) => return Err(io::Error::new(io::ErrorKind::WouldBlock, "held by another process")),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(unix)]
fn try_lock(f: &std::fs::File) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor; flock does not touch memory.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(e)
    }
}

#[cfg(windows)]
fn try_lock(f: &std::fs::File) -> io::Result<bool> {
    match f.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Make `path` (just created by us) belong to `user`, so a service running as that user may
/// write in it. Unix: chown to the user's uid and primary gid, never through a symlink;
/// Windows: nothing (services there run as the cluster's account).
pub fn give_to_user(path: &Path, user: &str) -> io::Result<()> {
    #[cfg(unix)]
    {
        let u = nix::unistd::User::from_name(user)
            .map_err(io::Error::from)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("user '{user}' does not exist")))?;
        std::os::unix::fs::lchown(path, Some(u.uid.as_raw()), Some(u.gid.as_raw()))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, user);
        Ok(())
    }
}

/// Make sure `dir` exists as a real directory (not a symlink, not a file), creating it and its
/// parents with `mode` when missing. A node just booted has an empty /run: every agent calls
/// this before writing its state, in every action that writes.
pub fn ensure_dir(dir: &Path, mode: u32) -> io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(m) if m.file_type().is_symlink() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} is a symbolic link, not a directory", dir.display()),
            ))
        }
        Ok(_) => {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} is not a directory", dir.display())))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    b.create(dir)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn secrets_come_only_from_private_regular_files() {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("hale-secret-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("pw");
        std::fs::write(&f, "s3cret\r\nsecond line\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(read_secret(&f).unwrap(), "s3cret");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_secret(&f).unwrap_err();
        assert!(e.contains("open to every user") && !e.contains("s3cret"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = d.join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(read_secret(&link).unwrap_err().contains("cannot read"));
        let empty = d.join("empty");
        std::fs::write(&empty, "\n").unwrap();
        std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_secret(&empty).unwrap_err().contains("is empty"));
        assert!(read_secret(&d).unwrap_err().contains("not a regular file"));
        assert!(read_secret(&d.join("missing")).unwrap_err().contains("cannot read"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("hale-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn write_atomic_replaces_a_symlink_never_its_target() {
        let d = scratch("atomic");
        let target = d.join("target");
        std::fs::write(&target, "precious").unwrap();
        let link = d.join("state");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_atomic(&link, b"ours", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
        assert!(!std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&link).unwrap(), "ours");
        let left: Vec<_> = std::fs::read_dir(&d).unwrap().collect();
        assert_eq!(left.len(), 2, "no temporary left behind");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn no_follow_opens_refuse_links() {
        let d = scratch("nofollow");
        let target = d.join("target");
        std::fs::write(&target, "secret").unwrap();
        let link = d.join("log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(open_append_nofollow(&link, 0o640).is_err());
        assert!(read_nofollow(&link).is_err());
        assert!(create_new(&link, 0o600).is_err());
        let fifo = d.join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        assert!(read_nofollow(&fifo).is_err(), "a FIFO is refused, not waited on");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "secret");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn ensure_dir_creates_and_refuses_impostors() {
        let d = scratch("ensure");
        ensure_dir(&d.join("a/b"), 0o755).unwrap();
        assert!(d.join("a/b").is_dir());
        std::fs::write(d.join("file"), "").unwrap();
        assert!(ensure_dir(&d.join("file"), 0o755).is_err());
        std::os::unix::fs::symlink(d.join("a"), d.join("link")).unwrap();
        assert!(ensure_dir(&d.join("link"), 0o755).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }
}
