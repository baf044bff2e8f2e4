//! Creating a new master repository (for `hale repo init`).

use git2::{Oid, Repository, Signature};
use std::path::Path;

fn e(x: git2::Error) -> String {
    x.message().to_string()
}

/// Write a tree of `files` (path inside the repository, content, executable).
fn tree(repo: &Repository, files: &[(&str, &[u8], bool)]) -> Result<Oid, String> {
    let mut tb = repo.treebuilder(None).map_err(e)?;
    let mut dirs: Vec<&str> = Vec::new();
    for (path, data, exec) in files {
        match path.split_once('/') {
            Some((dir, _)) => {
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
            None => {
                let blob = repo.blob(data).map_err(e)?;
                tb.insert(path, blob, if *exec { 0o100755 } else { 0o100644 }).map_err(e)?;
            }
        }
    }
    for dir in dirs {
        let inner: Vec<(&str, &[u8], bool)> = files
            .iter()
            .filter_map(|(p, d, x)| p.split_once('/').filter(|(top, _)| *top == dir).map(|(_, rest)| (rest, *d, *x)))
            .collect();
        let sub = tree(repo, &inner)?;
        tb.insert(dir, sub, 0o040000).map_err(e)?;
    }
    tb.write().map_err(e)
}

/// Create a bare repository at `path` whose `reference` branch has one commit of `files`.
/// Returns the commit id. `path` must not exist or be an empty directory.
pub fn create_master(
    path: &Path,
    reference: &str,
    message: &str,
    files: &[(&str, &[u8], bool)],
) -> Result<String, String> {
    if path.exists() && std::fs::read_dir(path).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(format!("{} exists and is not empty: the master must be new", path.display()));
    }
    let repo = Repository::init_bare(path).map_err(|x| format!("cannot create {}: {}", path.display(), x.message()))?;
    let t = repo.find_tree(tree(&repo, files)?).map_err(e)?;
    let sig = Signature::now("hale repo init", "hale@localhost").map_err(e)?;
    let refname = format!("refs/heads/{reference}");
    let commit = repo.commit(Some(&refname), &sig, &sig, message, &t, &[]).map_err(e)?;
    repo.set_head(&refname).map_err(e)?;
    Ok(commit.to_string())
}
