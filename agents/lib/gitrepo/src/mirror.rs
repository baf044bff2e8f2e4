//! The bare mirror of one repository: fetch, the fast-forward and signature checks, and the
//! record of what was accepted.

use crate::{deploy, AllowedSigners, Auth, Layout, Source, VerifyMode};
use git2::{AutotagOption, FetchOptions, Oid, RemoteCallbacks, Repository};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why a fetch failed (the master is unreachable, or not a repository).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchError(pub String);

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the master's tip means for this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// The tip is the commit accepted last.
    UpToDate(Oid),
    /// A new tip that fast-forwards and verifies.
    Advance { tip: Oid, from: Option<Oid>, signer: String },
    /// A new tip that must not run: why, for a person.
    Refused { tip: Oid, reason: String },
    /// The master has no such branch or tag (or nothing was fetched yet).
    NoTip(String),
}

/// Does `c` end a path component in a repository URL or path? `/`, `:`, and what this OS
/// separates paths with (Windows: `\` too, so `C:\git\ops.git` → `ops`).
fn url_separator(c: char) -> bool {
    c == ':' || std::path::is_separator(c)
}

/// The short name of a repository from its URL or path: `/srv/git/ops.git` → `ops`.
pub fn name_from_url(url: &str) -> String {
    let last = url.trim_end_matches(|c| c != ':' && url_separator(c)).rsplit(url_separator).next().unwrap_or("");
    let last = last.strip_suffix(".git").unwrap_or(last);
    let name: String =
        last.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '-' }).collect();
    let name = name.trim_start_matches('.').to_string();
    if name.is_empty() {
        "repo".into()
    } else {
        name
    }
}

/// Abbreviated commit id for messages.
pub(crate) fn short(oid: Oid) -> String {
    oid.to_string()[..12].to_string()
}

fn gerr(what: &str, e: git2::Error) -> String {
    format!("{what}: {}", e.message())
}

/// The trust policy of `s`, for messages and for telling two apart.
fn policy(s: &Source) -> String {
    let mut p = format!("verify={}", s.verify.as_str());
    if s.verify == VerifyMode::Signed {
        if let Some(f) = &s.allowed_signers {
            p.push_str(&format!(", allowed_signers={}", f.display()));
        }
        if let Some(f) = &s.keyring {
            p.push_str(&format!(", keyring={}", f.display()));
        }
    }
    p
}

/// One repository's mirror on this node.
pub struct Mirror {
    repo: Repository,
    pub name: String,
    layout: Layout,
}

impl Mirror {
    /// The existing mirror `name`, or None. Writes nothing (probes and monitors use this).
    pub fn open(layout: &Layout, name: &str) -> Result<Option<Mirror>, String> {
        let path = layout.mirror(name);
        if !path.exists() {
            return Ok(None);
        }
        let repo = Repository::open_bare(&path).map_err(|e| gerr(&format!("mirror {}", path.display()), e))?;
        Ok(Some(Mirror { repo, name: name.to_string(), layout: layout.clone() }))
    }

    /// The mirror of `source`, created if missing; its settings are recorded in the mirror's
    /// git config (`hale.*`) so that `hale repo` finds them for mirrors the agents created.
    ///
    /// A mirror belongs to one repository and one trust policy: its accepted commits were
    /// accepted under them. A `source` with another URL, another `verify` or (signed) another
    /// `allowed_signers` under the same name is refused with both named, so that a resource
    /// with `verify=signed` never takes a commit a `verify=none` resource (or another master)
    /// accepted into a shared mirror.
    pub fn create(layout: &Layout, source: &Source) -> Result<Mirror, String> {
        let path = layout.mirror(&source.name);
        let repo = if path.exists() {
            Repository::open_bare(&path).map_err(|e| gerr(&format!("mirror {}", path.display()), e))?
        } else {
            hale_backend::files::ensure_dir(&layout.mirrors(), 0o755)
                .map_err(|e| format!("cannot create {}: {e}", layout.mirrors().display()))?;
            // Created under a temporary name and renamed: a killed init leaves no broken mirror.
            let tmp = layout.mirrors().join(format!(".{}-{}.git", source.name, std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            Repository::init_bare(&tmp).map_err(|e| gerr(&format!("cannot create {}", tmp.display()), e))?;
            if std::fs::rename(&tmp, &path).is_err() {
                // Another process made it first.
                let _ = std::fs::remove_dir_all(&tmp);
            }
            Repository::open_bare(&path).map_err(|e| gerr(&format!("mirror {}", path.display()), e))?
        };
        let m = Mirror { repo, name: source.name.clone(), layout: layout.clone() };
        m.check_owner(source)?;
        m.record(source)?;
        Ok(m)
    }

    /// Refuse `s` if the mirror records another repository or trust policy.
    fn check_owner(&self, s: &Source) -> Result<(), String> {
        let Some(rec) = self.recorded_source() else { return Ok(()) };
        if rec.url == s.url && policy(&rec) == policy(s) {
            return Ok(());
        }
        Err(format!(
            "mirror {} is of {} ({}), not of {} ({}): resources sharing a mirror must share the \
             repository and its verification; give this one its own name",
            self.repo.path().display(),
            rec.url,
            policy(&rec),
            s.url,
            policy(s)
        ))
    }

    fn record(&self, s: &Source) -> Result<(), String> {
        let mut cfg = self.repo.config().map_err(|e| gerr("mirror config", e))?;
        // Set `k` to `v` (unchanged values are not rewritten); None removes an option no
        // longer given.
        let mut set = |k: &str, v: Option<&str>| -> Result<(), String> {
            let now = cfg.get_string(k).ok();
            match v {
                Some(v) if now.as_deref() != Some(v) => cfg.set_str(k, v).map_err(|e| gerr("mirror config", e)),
                None if now.is_some() => cfg.remove(k).map_err(|e| gerr("mirror config", e)),
                _ => Ok(()),
            }
        };
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.to_string_lossy().to_string());
        set("hale.master", Some(&s.url))?;
        set("hale.ref", Some(&s.reference))?;
        set("hale.verify", Some(s.verify.as_str()))?;
        if let Some(p) = path(&s.allowed_signers) {
            set("hale.allowedSigners", Some(&p))?;
        }
        set("hale.keyring", path(&s.keyring).as_deref())?;
        // How many trees the last sync kept, so that `hale repo status` tells what the agents do.
        set("hale.keepTrees", Some(&s.keep_trees.to_string()))?;
        // Where the credentials are (never what they are), so that `hale repo` can fetch a
        // mirror an agent created.
        set("hale.caFile", path(&s.auth.ca_file).as_deref())?;
        set("hale.user", s.auth.user.as_deref())?;
        set("hale.passwordFile", path(&s.auth.password_file).as_deref())?;
        Ok(())
    }

    /// The settings recorded in the mirror, if complete.
    pub fn recorded_source(&self) -> Option<Source> {
        let cfg = self.repo.config().ok()?;
        let get = |k: &str| cfg.get_string(k).ok();
        Some(Source {
            name: self.name.clone(),
            url: get("hale.master")?,
            reference: get("hale.ref")?,
            verify: VerifyMode::parse(&get("hale.verify")?)?,
            allowed_signers: get("hale.allowedSigners").map(PathBuf::from),
            keyring: get("hale.keyring").map(PathBuf::from),
            keep_trees: get("hale.keepTrees")
                .and_then(|n| n.parse().ok())
                .filter(|n| *n >= 1)
                .unwrap_or(crate::DEFAULT_KEEP_TREES),
            auth: Auth {
                ca_file: get("hale.caFile").map(PathBuf::from),
                user: get("hale.user"),
                password_file: get("hale.passwordFile").map(PathBuf::from),
            },
        })
    }

    pub fn path(&self) -> &Path {
        self.repo.path()
    }

    /// Fetch every branch and tag of `source`'s master into `refs/hale/incoming/`, giving up
    /// after about `timeout`: libgit2's connect and read timeouts (the https transport's
    /// request timeouts) bound each wait on the server, and the transfer is abandoned if it
    /// runs past the deadline. No thread and no process is created, so an agent's monitor that
    /// fetches still forks nothing.
    pub fn fetch(&self, source: &Source, timeout: Duration) -> Result<(), FetchError> {
        let url = source.url.as_str();
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX).max(1);
        // SAFETY: these set libgit2 globals; agents and `hale repo` are single-threaded here.
        unsafe {
            let _ = git2::opts::set_server_connect_timeout_in_milliseconds(ms);
            let _ = git2::opts::set_server_timeout_in_milliseconds(ms);
        }
        let deadline = Instant::now() + timeout;
        let _https = match url.starts_with("https://") {
            true => Some(
                crate::https::prepare(url, &source.auth, deadline)
                    .map_err(|e| FetchError(format!("cannot fetch {url}: {e}")))?,
            ),
            false => None,
        };
        let mut callbacks = RemoteCallbacks::new();
        // Both callbacks abort the fetch once the deadline passes: transfer progress comes
        // with every chunk received (and every object indexed), sideband progress while a
        // pack is being built (for a local master, by libgit2 in this process, which can take
        // longer than the transfer itself).
        callbacks.transfer_progress(move |_| Instant::now() < deadline);
        callbacks.sideband_progress(move |_| Instant::now() < deadline);
        let mut opts = FetchOptions::new();
        opts.download_tags(AutotagOption::None).remote_callbacks(callbacks);
        let result = self.repo.remote_anonymous(url).and_then(|mut remote| {
            remote.fetch(
                &["+refs/heads/*:refs/hale/incoming/heads/*", "+refs/tags/*:refs/hale/incoming/tags/*"],
                Some(&mut opts),
                None,
            )
        });
        match result {
            Ok(()) => Ok(()),
            // A server that answers nothing ends the fetch through libgit2's read timeout,
            // which can fire a hair before `deadline` by this process's clock: the same budget
            // ran out, so it gets the same reason.
            Err(e) if Instant::now() >= deadline || timed_out(&e) => Err(FetchError(format!(
                "cannot fetch {url}: the fetch did not finish within {:.1}s",
                timeout.as_secs_f32()
            ))),
            Err(e) => Err(FetchError(format!("cannot fetch {url}: {}", e.message()))),
        }
    }

    fn commit_of(&self, refname: &str) -> Option<Oid> {
        let r = self.repo.find_reference(refname).ok()?;
        r.peel_to_commit().ok().map(|c| c.id())
    }

    /// The master's tip of `reference` (branch first, then tag) as last fetched.
    pub fn incoming(&self, reference: &str) -> Option<Oid> {
        let r = reference.strip_prefix("refs/").unwrap_or(reference);
        let r = r.strip_prefix("heads/").or_else(|| r.strip_prefix("tags/")).unwrap_or(r);
        self.commit_of(&format!("refs/hale/incoming/heads/{r}"))
            .or_else(|| self.commit_of(&format!("refs/hale/incoming/tags/{r}")))
    }

    fn verified_ref(reference: &str) -> String {
        format!("refs/hale/verified/{}", reference.strip_prefix("refs/").unwrap_or(reference))
    }

    /// The last commit of `reference` accepted on this node.
    pub fn verified(&self, reference: &str) -> Option<Oid> {
        self.commit_of(&Mirror::verified_ref(reference))
    }

    /// Check the signature of `commit`. Returns who signed it.
    pub fn verify_commit(&self, commit: Oid, signers: Option<&AllowedSigners>) -> Result<String, String> {
        let Some(signers) = signers else {
            return Ok("nobody (verify=none)".into());
        };
        let (sig, data) = match self.repo.extract_signature(&commit, None) {
            Ok(x) => x,
            Err(e) if e.code() == git2::ErrorCode::NotFound => {
                return Err(format!("commit {} is not signed", short(commit)))
            }
            Err(e) => return Err(gerr(&format!("commit {}", short(commit)), e)),
        };
        // Key validity is judged now, by this node's clock: the commit's own date is whatever
        // its author wrote (GIT_COMMITTER_DATE), so a revoked or expired key could backdate.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let sig = std::str::from_utf8(&sig).map_err(|_| format!("commit {}: signature is not text", short(commit)))?;
        signers.verify(sig, &data, now).map_err(|e| format!("commit {}: {e}", short(commit)))
    }

    /// What the master's tip of `reference` means: nothing new, a commit that may run, or a
    /// commit that must not (history rewrite, missing or bad signature, malformed tree).
    pub fn check(&self, reference: &str, signers: Option<&AllowedSigners>) -> Check {
        let Some(tip) = self.incoming(reference) else {
            return Check::NoTip(format!("the master has no branch or tag '{reference}'"));
        };
        let from = self.verified(reference);
        if from == Some(tip) {
            // Checked again: a key removed from allowed_signers must make the node
            // non-compliant even if the master has not moved.
            return match self.verify_commit(tip, signers) {
                Ok(_) => Check::UpToDate(tip),
                Err(reason) => {
                    Check::Refused { tip, reason: format!("the accepted commit no longer verifies: {reason}") }
                }
            };
        }
        if let Some(v) = from {
            if !self.repo.graph_descendant_of(tip, v).unwrap_or(false) {
                return Check::Refused {
                    tip,
                    reason: format!(
                        "history rewrite refused: {reference} moved to {}, which does not descend from the accepted {}",
                        short(tip),
                        short(v)
                    ),
                };
            }
        }
        // A tree git fsck refuses (duplicate entries, `.git`, `..`, ...) never becomes the
        // accepted commit, signed or not: the last accepted one keeps running.
        match self.verify_commit(tip, signers).and_then(|s| deploy::check_commit_tree(&self.repo, tip).map(|_| s)) {
            Ok(signer) => Check::Advance { tip, from, signer },
            Err(reason) => Check::Refused { tip, reason: format!("refused: {reason}") },
        }
    }

    /// Record `commit` as the accepted tip of `reference`.
    pub fn accept(&self, reference: &str, commit: Oid) -> Result<(), String> {
        self.repo
            .reference(&Mirror::verified_ref(reference), commit, true, "hale: accepted")
            .map(|_| ())
            .map_err(|e| gerr("cannot record the accepted commit", e))
    }

    /// Forget the accepted commit of `reference`, so that the next sync takes the master's tip
    /// even if it is not a fast-forward (after a deliberate history rewrite).
    pub fn forget(&self, reference: &str) -> Result<(), String> {
        match self.repo.find_reference(&Mirror::verified_ref(reference)) {
            Ok(mut r) => r.delete().map_err(|e| gerr("cannot forget the accepted commit", e)),
            Err(_) => Ok(()),
        }
    }

    /// Does `path` exist in the tree of `commit`?
    pub fn has_path(&self, commit: Oid, path: &str) -> bool {
        self.repo.find_commit(commit).and_then(|c| c.tree()).and_then(|t| t.get_path(Path::new(path))).is_ok()
    }

    /// The tree of `commit`, checked out read-only (idempotent), by `until` if given. A
    /// malformed tree (what `git fsck` refuses) is never written.
    pub fn deploy(&self, commit: Oid, until: Option<Instant>) -> Result<PathBuf, String> {
        deploy::deploy(&self.repo, &self.layout, &self.name, commit, until)
    }

    /// Point `current` at the deployed `commit`, atomically.
    pub fn set_current(&self, commit: Oid) -> Result<(), String> {
        deploy::set_current(&self.layout, &self.name, commit)
    }

    /// The commit `current` points at.
    pub fn current(&self) -> Option<String> {
        deploy::current(&self.layout, &self.name)
    }
}

/// What [`sync`] did.
#[derive(Clone, Debug)]
pub struct SyncReport {
    /// The fetch failure, if the master could not be reached.
    pub fetch_error: Option<String>,
    /// The check of the master's tip (after a failed fetch: of the last fetched tip).
    pub check: Check,
    /// The accepted commit now deployed (None: nothing verified yet).
    pub deployed: Option<Oid>,
    /// Who signed the deployed commit, when it was accepted in this sync.
    pub signer: Option<String>,
}

impl SyncReport {
    /// A refusal or fetch problem, for a reason line.
    pub fn problem(&self) -> Option<String> {
        match (&self.check, &self.fetch_error) {
            (Check::Refused { reason, .. }, _) => Some(reason.clone()),
            (_, Some(e)) => Some(e.clone()),
            (Check::NoTip(r), None) => Some(r.clone()),
            _ => None,
        }
    }
}

/// Bring the mirror of `source` up to date: fetch (within `fetch_timeout`), accept the
/// master's tip if it fast-forwards and verifies, deploy the accepted commit (by `until`, if
/// given) and switch `current` to it. Events are logged with the commit id and signer. A
/// refused tip leaves the last accepted commit deployed, if that commit still verifies against
/// the keys trusted now: a commit whose signer was removed from allowed_signers (or whose key
/// is no longer valid) is not deployed and `deployed` is None, so nothing starts it.
pub fn sync(
    layout: &Layout,
    source: &Source,
    fetch_timeout: Duration,
    until: Option<Instant>,
) -> Result<SyncReport, String> {
    let signers = source.signers()?;
    let m = Mirror::create(layout, source)?;
    let fetch_error = m.fetch(source, fetch_timeout).err().map(|e| e.0);
    if let Some(e) = &fetch_error {
        log::warn!("{}: {e}", source.name);
    }
    let mut check = m.check(&source.reference, signers.as_ref());
    let mut signer = None;
    match &check {
        Check::Advance { tip, from, signer: who } => {
            m.accept(&source.reference, *tip)?;
            let from = from.map(|f| format!(" (was {})", short(f))).unwrap_or_default();
            log::info!("{}: accepted {} {} signed by {who}{from}", source.name, source.reference, tip);
            signer = Some(who.clone());
        }
        Check::Refused { tip, reason } => {
            log::error!("{}: commit {tip} of {} not deployed: {reason}", source.name, source.reference);
        }
        Check::NoTip(r) if fetch_error.is_none() => log::warn!("{}: {r}", source.name),
        _ => {}
    }
    let accepted = m.verified(&source.reference);
    // The accepted commit runs only if the keys trusted now still vouch for it (the check
    // above did that already when it is the tip or was just accepted).
    let accepted = match accepted {
        // The accepted commit is the tip, and was just refused for that.
        Some(c) if matches!(&check, Check::Refused { tip, .. } if *tip == c) => None,
        Some(c) if !matches!(check, Check::Advance { .. } | Check::UpToDate(_)) => {
            match m.verify_commit(c, signers.as_ref()) {
                Ok(_) => Some(c),
                Err(reason) => {
                    let reason = format!("the accepted commit no longer verifies: {reason}");
                    log::error!("{}: {reason}", source.name);
                    check = Check::Refused { tip: c, reason };
                    None
                }
            }
        }
        other => other,
    };
    let deployed = match accepted {
        Some(c) => {
            let fresh = !m.layout.tree(&m.name, &c.to_string()).is_dir();
            m.deploy(c, until)?;
            if m.current().as_deref() != Some(c.to_string().as_str()) {
                m.set_current(c)?;
            }
            if fresh {
                log::info!("{}: deployed {c} to {}", source.name, layout.tree(&m.name, &c.to_string()).display());
                deploy::prune(layout, &m.name, source.keep_trees);
            }
            Some(c)
        }
        None => None,
    };
    Ok(SyncReport { fetch_error, check, deployed, signer })
}

/// libgit2's connect or read timeout: GIT_TIMEOUT in newer releases, a network error that
/// says "timed out" in the one vendored by git2 0.21.
fn timed_out(e: &git2::Error) -> bool {
    e.code() == git2::ErrorCode::Timeout || (e.class() == git2::ErrorClass::Net && e.message().ends_with("timed out"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(name_from_url("/srv/git/ops.git"), "ops");
        assert_eq!(name_from_url("git://127.0.0.1:9418/team/scripts.git/"), "scripts");
        assert_eq!(name_from_url("file:///x/my repo"), "my-repo");
        assert_eq!(name_from_url("/"), "repo");
        if cfg!(windows) {
            assert_eq!(name_from_url(r"C:\git\team\ops.git\"), "ops");
            assert_eq!(name_from_url(r"\\server\share\scripts.git"), "scripts");
        }
    }
}
