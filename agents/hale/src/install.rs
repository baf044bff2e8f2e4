//! `hale install --ocf-root DIR`: put this binary at `DIR/lib/hale/hale` and link every
//! agent at `DIR/resource.d/hale/<agent>` to it, readable and executable by everyone
//! (ocf-tester runs meta-data as `nobody`).

use hale_registry::names;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

pub fn install(ocf_root: &Path) -> Result<Vec<String>, String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let lib = ocf_root.join("lib/hale");
    let provider = ocf_root.join("resource.d/hale");
    let mut done = Vec::new();
    for dir in [&lib, &provider] {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    // Copy then rename: running agents keep the old file, new runs get the new one.
    let target = lib.join("hale");
    let tmp = lib.join(".hale.new");
    fs::copy(&me, &tmp).map_err(|e| format!("cannot copy {} to {}: {e}", me.display(), tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(|e| format!("{}: {e}", tmp.display()))?;
    fs::rename(&tmp, &target).map_err(|e| format!("cannot install {}: {e}", target.display()))?;
    done.push(target.display().to_string());
    for name in names() {
        let link = provider.join(name);
        let _ = fs::remove_file(&link);
        symlink("../../lib/hale/hale", &link).map_err(|e| format!("cannot link {}: {e}", link.display()))?;
        done.push(format!("{} -> ../../lib/hale/hale", link.display()));
    }
    Ok(done)
}
