//! Checking a commit out into its own read-only tree, and the `current` link.
//!
//! The tree is written by walking the commit's git tree (no index, no working copy state),
//! under a temporary name that carries the writer's pid, then renamed to the commit id: a
//! reader sees either no tree or a complete one. Files are 0444 (0555 for git's executable
//! mode) and directories 0555 once complete, so a script cannot rewrite its own code and a
//! tree always matches its commit id.
//!
//! On Windows, which has no mode bits and where a symlink needs a privilege a service account
//! may lack (and Wine and some SMB shares do not provide): files get the read-only attribute
//! (directories keep theirs: the attribute does not protect a directory on Windows; the state
//! directory's ACL does), a symlink inside a tree is written as a small file holding its
//! target (what Git for Windows does with `core.symlinks=false`), and `current` is a file
//! holding the commit id, written under a temporary name and renamed over the old one, so it
//! is switched just as atomically. The differences are all in the `os` module below.

use crate::mirror::short;
use crate::Layout;
use git2::{ObjectType, Oid, Repository, Tree};
use std::fs;
use std::path::{Path, PathBuf};

const INCOMING: &str = ".incoming-";
const LINK_TMP: &str = ".current-";

fn io(what: &Path, e: std::io::Error) -> String {
    format!("{}: {e}", what.display())
}

fn set_mode(p: &Path, mode: u32) -> Result<(), String> {
    os::set_mode(p, mode).map_err(|e| io(p, e))
}

/// Linux: mode bits, symlinks, /proc.
#[cfg(unix)]
mod os {
    use std::fs;
    use std::io;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::path::Path;

    pub fn set_mode(p: &Path, mode: u32) -> io::Result<()> {
        fs::set_permissions(p, fs::Permissions::from_mode(mode))
    }
    /// Make `p` removable by its owner: a directory needs its write bit back.
    pub fn make_removable(p: &Path, meta: &fs::Metadata) {
        if meta.is_dir() {
            let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o755));
        }
    }
    pub fn link_in_tree(target: &str, path: &Path) -> io::Result<()> {
        symlink(target, path)
    }
    pub fn alive(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }
    /// `current` is a symlink to the commit's directory (relative: the commit id).
    pub fn write_pointer(path: &Path, commit: &str) -> io::Result<()> {
        symlink(commit, path)
    }
    pub fn read_pointer(path: &Path) -> Option<String> {
        let t = fs::read_link(path).ok()?;
        t.file_name().map(|n| n.to_string_lossy().to_string())
    }
}

/// Windows: the read-only attribute, symlinks as files, `current` as a file, OpenProcess.
#[cfg(windows)]
mod os {
    use std::fs;
    use std::io::{self, Write};
    use std::path::Path;

    /// Files without a write bit get the read-only attribute; directories are left as they
    /// are (the attribute means nothing for a directory's contents on Windows).
    pub fn set_mode(p: &Path, mode: u32) -> io::Result<()> {
        let meta = fs::metadata(p)?;
        if meta.is_dir() {
            return Ok(());
        }
        let mut perm = meta.permissions();
        perm.set_readonly(mode & 0o222 == 0);
        fs::set_permissions(p, perm)
    }
    /// Make `p` removable: Windows refuses to delete a read-only file.
    pub fn make_removable(p: &Path, meta: &fs::Metadata) {
        let mut perm = meta.permissions();
        if perm.readonly() {
            #[allow(clippy::permissions_set_readonly_false)] // Windows: clears the attribute only
            perm.set_readonly(false);
            let _ = fs::set_permissions(p, perm);
        }
    }
    /// A symlink in the tree becomes a file holding its target, as Git for Windows writes it
    /// with `core.symlinks=false`.
    pub fn link_in_tree(target: &str, path: &Path) -> io::Result<()> {
        fs::write(path, target)?;
        set_mode(path, 0o444)
    }
    pub fn alive(pid: u32) -> bool {
        use windows_sys::Win32::Foundation::{CloseHandle, STILL_ACTIVE};
        use windows_sys::Win32::System::Threading::{
            GetExitCodeProcess, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
        };
        // SAFETY: the handle is checked and closed; GetExitCodeProcess writes one u32.
        unsafe {
            let h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
            if h.is_null() {
                // Access denied means it exists (another user's process); gone otherwise.
                return io::Error::last_os_error().raw_os_error() == Some(5);
            }
            let mut code = 0u32;
            let ok = GetExitCodeProcess(h, &mut code) != 0;
            CloseHandle(h);
            ok && code == STILL_ACTIVE as u32
        }
    }
    /// `current` is a file holding the commit id (no symlink privilege needed), flushed
    /// before it is renamed into place.
    pub fn write_pointer(path: &Path, commit: &str) -> io::Result<()> {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).open(path)?;
        f.write_all(format!("{commit}\n").as_bytes())?;
        f.sync_all()
    }
    pub fn read_pointer(path: &Path) -> Option<String> {
        let t = fs::read_to_string(path).ok()?;
        let c = t.trim();
        (c.len() >= 40 && c.chars().all(|x| x.is_ascii_hexdigit())).then(|| c.to_string())
    }
}

/// Write `tree` into the existing directory `dir`.
fn write_tree(repo: &Repository, tree: &Tree, dir: &Path) -> Result<(), String> {
    for entry in tree.iter() {
        let name = entry.name().map_err(|_| format!("a file name in {} is not UTF-8", dir.display()))?;
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(format!("unsafe file name '{name}' in the tree"));
        }
        let path = dir.join(name);
        match entry.kind() {
            Some(ObjectType::Tree) => {
                let sub = repo.find_tree(entry.id()).map_err(|e| e.message().to_string())?;
                fs::create_dir(&path).map_err(|e| io(&path, e))?;
                write_tree(repo, &sub, &path)?;
                set_mode(&path, 0o555)?;
            }
            Some(ObjectType::Blob) => {
                let blob = repo.find_blob(entry.id()).map_err(|e| e.message().to_string())?;
                if entry.filemode() == 0o120000 {
                    let target = std::str::from_utf8(blob.content())
                        .map_err(|_| format!("symlink {} has a non-UTF-8 target", path.display()))?;
                    os::link_in_tree(target, &path).map_err(|e| io(&path, e))?;
                } else {
                    fs::write(&path, blob.content()).map_err(|e| io(&path, e))?;
                    set_mode(&path, if entry.filemode() & 0o111 != 0 { 0o555 } else { 0o444 })?;
                }
            }
            // A submodule (a commit in the tree): not fetched; leave an empty directory.
            Some(ObjectType::Commit) => {
                log::warn!("submodule {} is not deployed (submodules are not supported)", path.display());
                fs::create_dir(&path).map_err(|e| io(&path, e))?;
                set_mode(&path, 0o555)?;
            }
            _ => return Err(format!("unexpected object at {}", path.display())),
        }
    }
    Ok(())
}

/// Remove a tree even though it is read-only (the owner may chmod it back).
pub(crate) fn remove_tree(path: &Path) -> std::io::Result<()> {
    fn writable(p: &Path) {
        if let Ok(meta) = fs::symlink_metadata(p) {
            os::make_removable(p, &meta);
            if meta.is_dir() {
                if let Ok(rd) = fs::read_dir(p) {
                    for e in rd.flatten() {
                        writable(&e.path());
                    }
                }
            }
        }
    }
    writable(path);
    fs::remove_dir_all(path)
}

/// Is this pid alive? (A leftover of a live writer must not be removed under it.)
fn alive(pid: &str) -> bool {
    pid.parse::<u32>().is_ok_and(os::alive)
}

/// Remove the temporary trees and links that dead writers left behind.
fn clean_leftovers(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let pid = if let Some(rest) = name.strip_prefix(INCOMING) {
            rest.rsplit('-').next().unwrap_or("")
        } else if let Some(rest) = name.strip_prefix(LINK_TMP) {
            rest
        } else {
            continue;
        };
        if !alive(pid) {
            log::info!("removing {}, left by an interrupted deployment", e.path().display());
            let _ = if name.starts_with(INCOMING) { remove_tree(&e.path()) } else { fs::remove_file(e.path()) };
        }
    }
}

/// Deploy `commit` to `deploy/NAME/COMMIT` unless it is there already; returns the tree.
pub(crate) fn deploy(repo: &Repository, layout: &Layout, name: &str, commit: Oid) -> Result<PathBuf, String> {
    let dir = layout.deploy_dir(name);
    let target = dir.join(commit.to_string());
    if target.is_dir() {
        return Ok(target);
    }
    fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    clean_leftovers(&dir);
    let tmp = dir.join(format!("{INCOMING}{commit}-{}", std::process::id()));
    if tmp.exists() {
        remove_tree(&tmp).map_err(|e| io(&tmp, e))?;
    }
    let tree = repo
        .find_commit(commit)
        .and_then(|c| c.tree())
        .map_err(|e| format!("commit {}: {}", short(commit), e.message()))?;
    fs::create_dir(&tmp).map_err(|e| io(&tmp, e))?;
    if let Err(e) = write_tree(repo, &tree, &tmp) {
        let _ = remove_tree(&tmp);
        return Err(format!("checkout of {} failed: {e}", short(commit)));
    }
    // Renaming a directory needs write permission on it (its `..` entry): read-only after.
    match fs::rename(&tmp, &target) {
        Ok(()) => {}
        Err(_) if target.is_dir() => {
            let _ = remove_tree(&tmp);
        }
        Err(e) => return Err(io(&target, e)),
    }
    set_mode(&target, 0o555)?;
    Ok(target)
}

/// Switch `current` to `commit`: a new link (Windows: pointer file) under a temporary name,
/// renamed over the old one.
pub(crate) fn set_current(layout: &Layout, name: &str, commit: Oid) -> Result<(), String> {
    let dir = layout.deploy_dir(name);
    let tmp = dir.join(format!("{LINK_TMP}{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    os::write_pointer(&tmp, &commit.to_string()).map_err(|e| io(&tmp, e))?;
    fs::rename(&tmp, layout.current(name)).map_err(|e| io(&layout.current(name), e))
}

/// The commit id `current` points at.
pub(crate) fn current(layout: &Layout, name: &str) -> Option<String> {
    os::read_pointer(&layout.current(name))
}
