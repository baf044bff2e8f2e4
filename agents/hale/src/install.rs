//! `hale install --ocf-root DIR`: install this binary at `DIR/lib/hale/hale` and every agent at
//! `DIR/resource.d/hale/<agent>`, readable and executable by everyone (ocf-tester runs
//! meta-data as `nobody`).
//!
//! Each agent is installed as its own program, `hale-<agent>`, found beside this one (the
//! build makes both forms, as uutils ships `coreutils` and `ls`): an agent run then loads only
//! its own code and libraries (ocf-tests/BENCHMARKS.md has the figures). When that
//! program is missing (a build of the `hale` binary alone), the agent is linked to the
//! multi-call binary instead, which answers to its name in argv[0]; the line printed says
//! which form each agent got.

use hale_registry::names;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

pub fn install(ocf_root: &Path) -> Result<Vec<String>, String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let beside = me.parent().map(Path::to_path_buf).unwrap_or_default();
    let lib = ocf_root.join("lib/hale");
    let provider = ocf_root.join("resource.d/hale");
    let mut done = Vec::new();
    for dir in [&lib, &provider] {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let target = lib.join("hale");
    copy_executable(&me, &target)?;
    done.push(target.display().to_string());
    for name in names() {
        let dest = provider.join(name);
        let own = beside.join(format!("hale-{name}"));
        if own.is_file() {
            copy_executable(&own, &dest)?;
            done.push(format!("{} (its own program, from {})", dest.display(), own.display()));
        } else {
            let _ = fs::remove_file(&dest);
            symlink("../../lib/hale/hale", &dest).map_err(|e| format!("cannot link {}: {e}", dest.display()))?;
            done.push(format!("{} -> ../../lib/hale/hale (no {} was built)", dest.display(), own.display()));
        }
    }
    Ok(done)
}

/// Copy then rename over `to`: a running agent keeps the old file, new runs get the new one,
/// and a symlink at `to` (an earlier install's link) is replaced, never followed.
fn copy_executable(from: &Path, to: &Path) -> Result<(), String> {
    let name = to.file_name().and_then(|n| n.to_str()).unwrap_or("agent");
    let tmp = to.with_file_name(format!(".{name}.new"));
    let _ = fs::remove_file(&tmp);
    fs::copy(from, &tmp).map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(|e| format!("{}: {e}", tmp.display()))?;
    fs::rename(&tmp, to).map_err(|e| format!("cannot install {}: {e}", to.display()))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Each registry entry has its own program (`src/bin/hale-<name>.rs`), and each such program
    /// is an entry: a new agent without one would be installed only as a link to the
    /// multi-call binary, paying for every other agent's code at each run.
    #[test]
    fn every_agent_has_its_own_program_and_every_program_is_an_agent() {
        let bins = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin");
        for name in hale_registry::names() {
            let src = bins.join(format!("hale-{name}.rs"));
            assert!(src.is_file(), "agent {name} has no program of its own ({} is missing)", src.display());
        }
        for entry in std::fs::read_dir(&bins).unwrap() {
            let file = entry.unwrap().file_name().into_string().unwrap();
            let name = file.strip_prefix("hale-").and_then(|f| f.strip_suffix(".rs")).unwrap_or(&file);
            assert!(hale_registry::find(name).is_some(), "src/bin/{file} names no agent of the registry");
        }
    }
}
