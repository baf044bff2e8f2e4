//! Checking a commit out into its own read-only tree, and the `current` link.
//!
//! The tree is written by walking the commit's git tree (no index, no working copy state),
//! under a temporary name that carries the writer's pid, then renamed to the commit id: a
//! reader sees either no tree or a complete one. Files are 0444 (0555 for git's executable
//! mode) and directories 0555 once complete, so a script cannot rewrite its own code and a
//! tree always matches its commit id.
//!
//! The commit's tree is checked as `git fsck` checks one before anything is written (see
//! [`check_name`] and [`check_mode`]): a tree with two entries of one name, a `.`, `..` or
//! `.git` entry (in any case, and the aliases NTFS and HFS+ resolve to `.git`), a name with
//! `/`, `\` or NUL, an empty name or an unknown mode is refused whole. While writing, nothing
//! is followed: files are created new with `O_NOFOLLOW`, modes are set through the open
//! handle, a directory is sealed only after an `lstat`-style check (see
//! `hale_backend::readonly`), so even a tree that slipped past the checks cannot make root
//! write or chmod outside it. The OS differences (Windows has no mode bits and writes links
//! as files, `current` as a file) are in `hale_backend::readonly`.
//!
//! A checkout is bounded by the deadline it is given: the deadline is checked before every
//! entry and between the chunks of a large file, and a checkout that runs out removes its
//! temporary tree and says so ("checkout of COMMIT did not finish within Xs").

use crate::mirror::short;
use crate::Layout;
use git2::{ObjectType, Oid, Repository, Tree};
use hale_backend::readonly;
use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

const INCOMING: &str = ".incoming-";
const LINK_TMP: &str = ".current-";
/// A tree being removed is first renamed to `.prune-COMMIT-PID`.
const PRUNING: &str = ".prune-";
/// Bytes written between two looks at the deadline.
const CHUNK: usize = 1 << 20;

fn io(what: &Path, e: std::io::Error) -> String {
    format!("{}: {e}", what.display())
}

/// Code points HFS+ ignores when it compares names (git's `is_hfs_dotgit`): `.g\u{200c}it`
/// is `.git` there.
fn hfs_ignored(c: char) -> bool {
    matches!(c, '\u{200c}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{206a}'..='\u{206f}' | '\u{feff}')
}

/// Would a checkout of `name` on some file system be `.git` (git's `verify_path` with
/// `core.protectNTFS` and `core.protectHFS`, both on here whatever the OS: a tree is deployed
/// on Linux and Windows nodes alike)? NTFS drops trailing dots and spaces, resolves the 8.3
/// short name `git~1` and the stream syntax `.git::$INDEX_ALLOCATION`; HFS+ folds case and
/// ignores some code points.
fn is_dotgit(name: &str) -> bool {
    let folded: String = name.chars().filter(|c| !hfs_ignored(*c)).collect::<String>().to_lowercase();
    let base = folded.split(':').next().unwrap_or("");
    let base = base.trim_end_matches(['.', ' ']);
    base == ".git" || base == "git~1"
}

/// Refuse a name `git fsck` refuses (or that could escape or alias the tree somewhere).
pub(crate) fn check_name(name: &[u8]) -> Result<&str, String> {
    let text = std::str::from_utf8(name).map_err(|_| format!("a file name is not UTF-8 ({name:?})"))?;
    if text.is_empty() {
        return Err("an entry has an empty name".into());
    }
    if text.contains(['/', '\\', '\0']) {
        return Err(format!("entry name {text:?} contains '/', '\\' or NUL"));
    }
    if text == "." || text == ".." || text.trim_end_matches(['.', ' ']).is_empty() {
        return Err(format!("entry name {text:?} is '.' or '..'"));
    }
    if is_dotgit(text) {
        return Err(format!("entry name {text:?} is .git (or what NTFS or HFS+ read as .git)"));
    }
    Ok(text)
}

/// The modes git writes (fsck's badFilemode for anything else; 100664 is what old git wrote
/// for 100644 and is read as such).
pub(crate) fn check_mode(mode: i32) -> Result<(), String> {
    match mode {
        0o040000 | 0o100644 | 0o100664 | 0o100755 | 0o120000 | 0o160000 => Ok(()),
        m => Err(format!("bad file mode {m:o}")),
    }
}

/// Refuse the tree of `commit` if `git fsck` would (see [`check_name`], [`check_mode`]).
pub(crate) fn check_commit_tree(repo: &Repository, commit: Oid) -> Result<(), String> {
    let tree = repo
        .find_commit(commit)
        .and_then(|c| c.tree())
        .map_err(|e| format!("commit {}: {}", short(commit), e.message()))?;
    check_tree(repo, &tree, "", &Limit { until: None, started: Instant::now(), commit })
}

/// Check `tree` and every tree under it before anything is written.
fn check_tree(repo: &Repository, tree: &Tree, at: &str, deadline: &Limit) -> Result<(), String> {
    let mut seen = HashSet::new();
    for entry in tree.iter() {
        deadline.check()?;
        let name = check_name(entry.name_bytes()).map_err(|e| format!("malformed tree at '{at}': {e}"))?;
        let path = if at.is_empty() { name.to_string() } else { format!("{at}/{name}") };
        if !seen.insert(name.to_string()) {
            return Err(format!("malformed tree: duplicate entry '{path}'"));
        }
        check_mode(entry.filemode_raw()).map_err(|e| format!("malformed tree at '{path}': {e}"))?;
        let kind_ok = match entry.filemode() {
            0o040000 => entry.kind() == Some(ObjectType::Tree),
            0o160000 => true,
            _ => entry.kind() == Some(ObjectType::Blob),
        };
        if !kind_ok {
            return Err(format!("malformed tree at '{path}': mode {:o} does not match the object", entry.filemode()));
        }
        if entry.kind() == Some(ObjectType::Tree) {
            let sub = repo.find_tree(entry.id()).map_err(|e| format!("{path}: {}", e.message()))?;
            check_tree(repo, &sub, &path, deadline)?;
        }
    }
    Ok(())
}

/// The deadline of one checkout, if any.
struct Limit {
    until: Option<Instant>,
    started: Instant,
    commit: Oid,
}

impl Limit {
    fn check(&self) -> Result<(), String> {
        match self.until {
            Some(u) if Instant::now() >= u => Err(format!(
                "checkout of {} did not finish within {:.1}s",
                short(self.commit),
                u.saturating_duration_since(self.started).as_secs_f32()
            )),
            _ => Ok(()),
        }
    }
}

/// Write `data` to the new file `path` with `mode`, looking at the deadline between chunks.
fn write_file(path: &Path, data: &[u8], mode: u32, limit: &Limit) -> Result<(), String> {
    let mut f = readonly::create_file(path, 0o600).map_err(|e| io(path, e))?;
    for chunk in data.chunks(CHUNK) {
        limit.check()?;
        f.write_all(chunk).map_err(|e| io(path, e))?;
    }
    readonly::seal_file(&f, mode).map_err(|e| io(path, e))
}

/// Write the (checked) `tree` into the new, empty directory `dir`.
fn write_tree(repo: &Repository, tree: &Tree, dir: &Path, limit: &Limit) -> Result<(), String> {
    for entry in tree.iter() {
        limit.check()?;
        let name = check_name(entry.name_bytes())?;
        let path = dir.join(name);
        match entry.kind() {
            Some(ObjectType::Tree) => {
                let sub = repo.find_tree(entry.id()).map_err(|e| e.message().to_string())?;
                // mkdir fails on anything already there, a link included.
                fs::create_dir(&path).map_err(|e| io(&path, e))?;
                write_tree(repo, &sub, &path, limit)?;
                readonly::seal_dir(&path, 0o555).map_err(|e| io(&path, e))?;
            }
            Some(ObjectType::Blob) => {
                let blob = repo.find_blob(entry.id()).map_err(|e| e.message().to_string())?;
                if entry.filemode() == 0o120000 {
                    let target = std::str::from_utf8(blob.content())
                        .map_err(|_| format!("symlink {} has a non-UTF-8 target", path.display()))?;
                    readonly::create_link(target, &path).map_err(|e| io(&path, e))?;
                } else {
                    let mode = if entry.filemode() & 0o111 != 0 { 0o555 } else { 0o444 };
                    write_file(&path, blob.content(), mode, limit)?;
                }
            }
            // A submodule (a commit in the tree): not fetched; leave an empty directory.
            Some(ObjectType::Commit) => {
                log::warn!("submodule {} is not deployed (submodules are not supported)", path.display());
                fs::create_dir(&path).map_err(|e| io(&path, e))?;
                readonly::seal_dir(&path, 0o555).map_err(|e| io(&path, e))?;
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
            readonly::make_removable(p, &meta);
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
    pid.parse::<u32>().is_ok_and(readonly::pid_alive)
}

/// Remove the temporary trees and links that dead writers left behind.
fn clean_leftovers(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let pid = if let Some(rest) = name.strip_prefix(INCOMING).or_else(|| name.strip_prefix(PRUNING)) {
            rest.rsplit('-').next().unwrap_or("")
        } else if let Some(rest) = name.strip_prefix(LINK_TMP) {
            rest
        } else {
            continue;
        };
        if !alive(pid) {
            log::info!("removing {}, left by an interrupted deployment", e.path().display());
            let _ = if name.starts_with(LINK_TMP) { fs::remove_file(e.path()) } else { remove_tree(&e.path()) };
        }
    }
}

/// Deploy `commit` to `deploy/NAME/COMMIT` unless it is there already; returns the tree. A
/// malformed tree is refused before anything is written; `until` bounds the checkout.
pub(crate) fn deploy(
    repo: &Repository,
    layout: &Layout,
    name: &str,
    commit: Oid,
    until: Option<Instant>,
) -> Result<PathBuf, String> {
    let dir = layout.deploy_dir(name);
    let target = dir.join(commit.to_string());
    if fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
        return Ok(target);
    }
    let limit = Limit { until, started: Instant::now(), commit };
    let tree = repo
        .find_commit(commit)
        .and_then(|c| c.tree())
        .map_err(|e| format!("commit {}: {}", short(commit), e.message()))?;
    check_tree(repo, &tree, "", &limit).map_err(|e| format!("commit {} not deployed: {e}", short(commit)))?;
    hale_backend::files::ensure_dir(&dir, 0o755).map_err(|e| io(&dir, e))?;
    clean_leftovers(&dir);
    let tmp = dir.join(format!("{INCOMING}{commit}-{}", std::process::id()));
    if fs::symlink_metadata(&tmp).is_ok() {
        remove_tree(&tmp).map_err(|e| io(&tmp, e))?;
    }
    fs::create_dir(&tmp).map_err(|e| io(&tmp, e))?;
    if let Err(e) = write_tree(repo, &tree, &tmp, &limit) {
        let _ = remove_tree(&tmp);
        return Err(if e.starts_with("checkout of") {
            e
        } else {
            format!("checkout of {} failed: {e}", short(commit))
        });
    }
    // Renaming a directory needs write permission on it (its `..` entry): read-only after.
    match fs::rename(&tmp, &target) {
        Ok(()) => {}
        Err(_) if target.is_dir() => {
            let _ = remove_tree(&tmp);
        }
        Err(e) => return Err(io(&target, e)),
    }
    readonly::seal_dir(&target, 0o555).map_err(|e| io(&target, e))?;
    Ok(target)
}

/// A deployed tree, and why it is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployedTree {
    pub commit: String,
    /// `current` points at it.
    pub current: bool,
    /// Among the newest `keep_trees` deployed.
    pub newest: bool,
    /// Processes that run from it (see `hale_backend::readonly::tree_users`).
    pub users: Vec<u32>,
}

impl DeployedTree {
    pub fn kept(&self) -> bool {
        self.current || self.newest || !self.users.is_empty()
    }

    /// Why it is kept, for `hale repo status` and the log: "current, newest 3, used by pid 42".
    pub fn why(&self, keep: u32) -> String {
        let mut why = Vec::new();
        if self.current {
            why.push("current".to_string());
        }
        if self.newest {
            why.push(format!("newest {keep}"));
        }
        if !self.users.is_empty() {
            let pids: Vec<String> = self.users.iter().map(u32::to_string).collect();
            why.push(format!("used by pid {}", pids.join(", ")));
        }
        why.join(", ")
    }
}

/// The deployed trees of `name`, newest first (by when they were written), each with what
/// keeps it. Only real directories named by a full commit id count: leftovers, `current` and
/// anything else in the directory are not trees.
pub fn trees(layout: &Layout, name: &str, keep: u32) -> Vec<DeployedTree> {
    let dir = layout.deploy_dir(name);
    let current = current(layout, name);
    let Ok(rd) = fs::read_dir(&dir) else { return Vec::new() };
    let found: Vec<(std::time::SystemTime, String)> = rd
        .flatten()
        .filter_map(|e| {
            let commit = e.file_name().to_str()?.to_string();
            let meta = fs::symlink_metadata(e.path()).ok()?;
            let id = commit.len() >= 40 && commit.chars().all(|c| c.is_ascii_hexdigit());
            (id && meta.is_dir()).then(|| (meta.modified().unwrap_or(std::time::UNIX_EPOCH), commit))
        })
        .collect();
    // Trees written within one tick of the file system's clock tie; the commit with the longer
    // history is then the newer (accepted commits fast-forward).
    let ties = {
        let mut times: Vec<_> = found.iter().map(|f| f.0).collect();
        times.sort();
        times.windows(2).any(|w| w[0] == w[1])
    };
    let depth = |commit: &str| -> usize {
        let walk = || -> Result<usize, git2::Error> {
            let repo = Repository::open_bare(layout.mirror(name))?;
            let mut w = repo.revwalk()?;
            w.push(Oid::from_str(commit)?)?;
            Ok(w.count())
        };
        if ties {
            walk().unwrap_or(0)
        } else {
            0
        }
    };
    let mut found: Vec<_> = found.into_iter().map(|(t, c)| (t, depth(&c), c)).collect();
    found.sort_by(|a, b| b.cmp(a));
    let paths: Vec<PathBuf> = found.iter().map(|(_, _, c)| dir.join(c)).collect();
    let users = readonly::tree_users(&paths.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    found
        .into_iter()
        .zip(users)
        .enumerate()
        .map(|(i, ((_, _, commit), users))| DeployedTree {
            current: current.as_deref() == Some(commit.as_str()),
            newest: i < keep as usize,
            users,
            commit,
        })
        .collect()
}

/// Remove the deployed trees of `name` that nothing keeps (see [`trees`]); returns the commits
/// removed. A tree is renamed to `.prune-COMMIT-PID` first, so that it leaves its name at once
/// and a removal cut short is finished by the next deployment; where a tree in use cannot be
/// renamed (Windows holds a running process's directory and files open) it stays. Failures are
/// logged, never returned: pruning must not fail a sync that deployed what it should.
pub(crate) fn prune(layout: &Layout, name: &str, keep: u32) -> Vec<String> {
    let dir = layout.deploy_dir(name);
    let mut removed = Vec::new();
    for t in trees(layout, name, keep).into_iter().filter(|t| !t.kept()) {
        let from = dir.join(&t.commit);
        let to = dir.join(format!("{PRUNING}{}-{}", t.commit, std::process::id()));
        if let Err(e) = fs::rename(&from, &to) {
            log::info!("{name}: kept deployed tree {}: it cannot be moved aside ({e}), so something uses it", t.commit);
            continue;
        }
        match remove_tree(&to) {
            Ok(()) => {
                log::info!(
                    "{name}: removed deployed tree {} (older than the newest {keep}, no process runs from it)",
                    t.commit
                );
                removed.push(t.commit);
            }
            Err(e) => log::warn!("{name}: cannot remove {}: {e} (the next deployment tries again)", to.display()),
        }
    }
    removed
}

/// Switch `current` to `commit` atomically (see `hale_backend::readonly::write_pointer`).
pub(crate) fn set_current(layout: &Layout, name: &str, commit: Oid) -> Result<(), String> {
    let dir = layout.deploy_dir(name);
    let tmp = dir.join(format!("{LINK_TMP}{}", std::process::id()));
    let current = layout.current(name);
    readonly::write_pointer(&current, &tmp, &commit.to_string()).map_err(|e| io(&current, e))
}

/// The commit id `current` points at.
pub(crate) fn current(layout: &Layout, name: &str) -> Option<String> {
    let c = readonly::read_pointer(&layout.current(name))?;
    (c.len() >= 40 && c.chars().all(|x| x.is_ascii_hexdigit())).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_git_fsck_refuses_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            ".git",
            ".GIT",
            ".Git",
            ".git.",
            ".git ",
            ".git. .",
            "git~1",
            "GIT~1",
            ".git::$INDEX_ALLOCATION",
            ".g\u{200c}it",
            "\u{feff}.git",
            "a/b",
            "a\\b",
            "a\0b",
            "...",
            " ",
        ] {
            assert!(check_name(bad.as_bytes()).is_err(), "{bad:?} accepted");
        }
        for good in ["a", ".gitignore", ".gitmodules", "git", ".github", "x.git", "..a", "git~2"] {
            assert_eq!(check_name(good.as_bytes()), Ok(good));
        }
        assert!(check_name(b"\xff").is_err());
        for m in [0o040000, 0o100644, 0o100755, 0o120000, 0o160000] {
            assert!(check_mode(m).is_ok());
        }
        for m in [0o100777, 0o100600, 0o000000, 0o140000] {
            assert!(check_mode(m).is_err(), "{m:o}");
        }
    }
}
