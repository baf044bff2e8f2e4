//! Read-only file trees written by root from untrusted content (a git commit deployed by
//! `hale-gitrepo`), and the small pointer that names the current one. Nothing here follows a
//! symbolic link: files are created new and no-follow, modes are set through the open handle,
//! a directory is sealed only after checking, without following, that it is one.
//!
//! Linux: mode bits (0444/0555), real symlinks, `/proc` for liveness. Windows, which has no
//! mode bits and where a symlink needs a privilege a service account may lack (and Wine and
//! some SMB shares do not provide): a file without write bits gets the read-only attribute,
//! directories keep theirs (the attribute does not protect a directory's contents; the state
//! directory's ACL does), a link in a tree is a small file holding its target (what Git for
//! Windows writes with `core.symlinks=false`), and a pointer is a file holding the name.

use std::fs::{self, File};
use std::io;
use std::path::Path;

/// Create `path` new (never through a link, never over anything) for writing, with `mode`.
/// The final mode is set with [`seal_file`] once the content is written.
pub fn create_file(path: &Path, mode: u32) -> io::Result<File> {
    crate::files::create_new(path, mode)
}

/// Give the open file `f` its final `mode` through its handle (`fchmod`: the umask does not
/// matter and no path is looked up again). Windows: the read-only attribute when `mode` has no
/// write bit.
pub fn seal_file(f: &File, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let mut perm = f.metadata()?.permissions();
        perm.set_readonly(mode & 0o222 == 0);
        f.set_permissions(perm)
    }
}

/// Give the directory `dir` its final `mode`, refusing anything that is not a directory (a
/// symlink in its place is an error, never followed). Windows: checked, left as it is.
pub fn seal_dir(dir: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let d = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(dir)?;
        d.set_permissions(fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        if fs::symlink_metadata(dir)?.is_dir() {
            Ok(())
        } else {
            Err(io::Error::other(format!("{} is not a directory", dir.display())))
        }
    }
}

/// Write a symbolic link `path` → `target` inside a tree (Windows: a read-only file holding
/// `target`). Fails if anything is at `path`.
pub fn create_link(target: &str, path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(target, path)
    }
    #[cfg(not(unix))]
    {
        use std::io::Write;
        let mut f = create_file(path, 0o444)?;
        f.write_all(target.as_bytes())?;
        seal_file(&f, 0o444)
    }
}

/// Make the entry `p` (described by its `symlink_metadata`) removable by its owner: a sealed
/// directory gets its write bit back (Unix), a read-only file loses the attribute (Windows,
/// which refuses to delete it otherwise). Best effort; links are never touched.
pub fn make_removable(p: &Path, meta: &fs::Metadata) {
    #[cfg(unix)]
    if meta.is_dir() {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o755));
    }
    #[cfg(not(unix))]
    if !meta.file_type().is_symlink() {
        let mut perm = meta.permissions();
        if perm.readonly() {
            #[allow(clippy::permissions_set_readonly_false)] // Windows: clears the attribute only
            perm.set_readonly(false);
            let _ = fs::set_permissions(p, perm);
        }
    }
}

/// Is process `pid` alive? (Whether a leftover of a writer may be removed.) Linux: `/proc`;
/// Windows: `OpenProcess`, access denied counting as alive (another user's process).
pub fn pid_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        Path::new(&format!("/proc/{pid}")).exists()
    }
    #[cfg(windows)]
    {
        use windows_sys::Win32::Foundation::{CloseHandle, STILL_ACTIVE};
        use windows_sys::Win32::System::Threading::{
            GetExitCodeProcess, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
        };
        // SAFETY: the handle is checked and closed; GetExitCodeProcess writes one u32.
        unsafe {
            let h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
            if h.is_null() {
                return io::Error::last_os_error().raw_os_error() == Some(5);
            }
            let mut code = 0u32;
            let ok = GetExitCodeProcess(h, &mut code) != 0;
            CloseHandle(h);
            ok && code == STILL_ACTIVE as u32
        }
    }
}

/// For each tree of `dirs`, the processes that run from it (their working directory,
/// executable, an open or mapped file, or an argument is in it), so that it is not removed
/// under them. Linux: one walk of /proc. Windows: none are reported: a process's working
/// directory and open files are held open there, so the rename that starts a removal fails
/// while the tree is in use, and the tree is kept (see `hale-gitrepo`'s pruning).
pub fn tree_users(dirs: &[&Path]) -> Vec<Vec<u32>> {
    #[cfg(target_os = "linux")]
    {
        crate::linux::procfs::users_of(dirs)
    }
    #[cfg(not(target_os = "linux"))]
    {
        vec![Vec::new(); dirs.len()]
    }
}

/// Make `path` name its sibling `target` (a file name), replacing what was there atomically:
/// a reader sees the old pointer or the new. Unix: a relative symlink made under `tmp` and
/// renamed over `path`; Windows: a file holding the name (no symlink privilege needed),
/// written with [`crate::files::write_atomic`]. `tmp` must be a name only this process uses.
pub fn write_pointer(path: &Path, tmp: &Path, target: &str) -> io::Result<()> {
    #[cfg(unix)]
    {
        let _ = fs::remove_file(tmp);
        std::os::unix::fs::symlink(target, tmp)?;
        let r = crate::files::replace(tmp, path);
        if r.is_err() {
            let _ = fs::remove_file(tmp);
        } else if let Some(dir) = path.parent() {
            crate::files::sync_dir(dir);
        }
        r
    }
    #[cfg(not(unix))]
    {
        let _ = tmp;
        crate::files::write_atomic(path, format!("{target}\n").as_bytes(), 0o644)
    }
}

/// The name [`write_pointer`] stored at `path`, if any.
pub fn read_pointer(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        let t = fs::read_link(path).ok()?;
        t.file_name().map(|n| n.to_string_lossy().to_string())
    }
    #[cfg(not(unix))]
    {
        let t = String::from_utf8(crate::files::read_nofollow(path).ok()?).ok()?;
        let t = t.trim();
        (!t.is_empty()).then(|| t.to_string())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn seal_refuses_a_link_and_files_are_never_created_through_one() {
        let d = std::env::temp_dir().join(format!("hale-readonly-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("real")).unwrap();
        fs::write(d.join("victim"), "x").unwrap();
        std::os::unix::fs::symlink(d.join("real"), d.join("dirlink")).unwrap();
        std::os::unix::fs::symlink(d.join("victim"), d.join("filelink")).unwrap();
        assert!(seal_dir(&d.join("dirlink"), 0o555).is_err());
        assert!(create_file(&d.join("filelink"), 0o444).is_err());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(d.join("real")).unwrap().permissions().mode() & 0o777, 0o755);
        assert_eq!(fs::metadata(d.join("victim")).unwrap().permissions().mode() & 0o222, 0o200);
        write_pointer(&d.join("current"), &d.join(".tmp"), "real").unwrap();
        assert_eq!(read_pointer(&d.join("current")).as_deref(), Some("real"));
        let _ = fs::remove_dir_all(&d);
    }
}
