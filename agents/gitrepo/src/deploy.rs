//! Checking a commit out into its own read-only tree, and the `current` link.
//!
//! The tree is written by walking the commit's git tree (no index, no working copy state),
//! under a temporary name that carries the writer's pid, then renamed to the commit id: a
//! reader sees either no tree or a complete one. Files are 0444 (0555 for git's executable
//! mode) and directories 0555 once complete, so a script cannot rewrite its own code and a
//! tree always matches its commit id.

use crate::mirror::short;
use crate::Layout;
use git2::{ObjectType, Oid, Repository, Tree};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

const INCOMING: &str = ".incoming-";
const LINK_TMP: &str = ".current-";

fn io(what: &Path, e: std::io::Error) -> String {
    format!("{}: {e}", what.display())
}

fn set_mode(p: &Path, mode: u32) -> Result<(), String> {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).map_err(|e| io(p, e))
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
                    symlink(target, &path).map_err(|e| io(&path, e))?;
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
            if meta.is_dir() {
                let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o755));
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
    pid.parse::<u32>().is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists())
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

/// Switch `current` to `commit`: a new link under a temporary name, renamed over the old one.
pub(crate) fn set_current(layout: &Layout, name: &str, commit: Oid) -> Result<(), String> {
    let dir = layout.deploy_dir(name);
    let tmp = dir.join(format!("{LINK_TMP}{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    symlink(commit.to_string(), &tmp).map_err(|e| io(&tmp, e))?;
    fs::rename(&tmp, layout.current(name)).map_err(|e| io(&layout.current(name), e))
}

/// The commit id `current` points at.
pub(crate) fn current(layout: &Layout, name: &str) -> Option<String> {
    let t = fs::read_link(layout.current(name)).ok()?;
    t.file_name().map(|n| n.to_string_lossy().to_string())
}
