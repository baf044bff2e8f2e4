//! Git mirrors for Hale: the code that decides *which commit may run* on a node.
//!
//! A repository is known on a node by a short name. Its master (a path, a `file://`, `git://`
//! or `https://` URL; https through `https.rs`) is fetched into a bare mirror; the tip of the configured ref is accepted only
//! if it fast-forwards from the last accepted commit (a history rewrite on the master is
//! refused) and, with `verify=signed`, if its SSH signature comes from a key in git's
//! `allowed_signers` file. An accepted commit is checked out into a read-only tree of its own
//! and a `current` link is switched to it atomically. Nothing here runs a `git` process: it is
//! all libgit2, so no shell, no hooks, no config of the user running it.
//!
//! Layout (every directory overridable, so tests and unusual installs use their own):
//!
//! ```text
//! /var/lib/hale/repos/NAME.git          bare mirror ($HALE_STATE_DIR, or state_dir=)
//!     refs/hale/incoming/{heads,tags}/* what the last fetch saw on the master
//!     refs/hale/verified/REF            the last commit of REF accepted (fast-forward, verified)
//! /var/lib/hale/deploy/NAME/COMMIT/     one read-only tree per deployed commit
//! /var/lib/hale/deploy/NAME/current     symlink to the COMMIT deployed last (Windows: a file
//!                                       holding the commit id; see deploy.rs)
//! /etc/hale/repos.d/NAME.conf           `hale repo` settings of NAME ($HALE_CONFIG_DIR)
//! ```
//!
//! A tree is written under `deploy/NAME/.incoming-COMMIT-PID` and renamed into place when
//! complete, so a process killed during checkout leaves no half tree under a commit's name;
//! the leftovers of dead processes are removed by the next deployment.
//!
//! Decisions about trust (the agents run as root):
//!
//! - **One mirror, one repository, one policy.** A mirror records the URL, `verify` and
//!   `allowed_signers` it was created for (`hale.*` in its config); a [`Source`] with another
//!   under the same name is refused with both named ([`Mirror::create`]), rather than keyed
//!   apart: its accepted refs and `current` were produced under the recorded rules, and a
//!   resource with `verify=signed` must never run what a `verify=none` resource (or another
//!   master) accepted. Two such resources need two names.
//! - **Key validity is judged by this node's clock**, when a commit is accepted and again
//!   whenever it is about to be deployed to run ([`sync`]): `valid-before`/`valid-after` are
//!   compared with now, not with the commit's date (which its author sets). A commit whose
//!   signer was removed from `allowed_signers` or expired is not deployed, so nothing starts
//!   it; a status check reports it as refused.
//! - **A malformed tree is refused like a bad signature** (the checks of `git fsck`: duplicate
//!   entries, `.`/`..`/`.git` and its NTFS/HFS+ aliases, `/`, `\` or NUL in a name, bad
//!   modes), and a checkout never follows a symlink (see `deploy.rs`).
//! - **Deadlines**: a fetch is abandoned at its timeout, a checkout at the deadline it is
//!   given, each with a reason naming the step; an abandoned checkout leaves no tree.

mod deploy;
mod https;
mod master;
mod mirror;
mod openpgp;
pub mod params;
mod signers;

pub use deploy::{trees, DeployedTree};
pub use master::create_master;
pub use mirror::{name_from_url, sync, Check, FetchError, Mirror, SyncReport};
pub use signers::AllowedSigners;

use std::path::{Path, PathBuf};

/// Default state directory (mirrors and deployed trees): the backend's, for this OS.
pub use hale_backend::paths::STATE_DIR;

/// The default directory of per-repository settings for `hale repo`: `repos.d` in the
/// backend's configuration directory (`/etc/hale/repos.d`).
pub fn default_config_dir() -> PathBuf {
    Path::new(hale_backend::paths::CONFIG_DIR).join("repos.d")
}

/// Where mirrors, trees and settings live on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub state_dir: PathBuf,
    pub config_dir: PathBuf,
}

impl Default for Layout {
    fn default() -> Layout {
        Layout { state_dir: STATE_DIR.into(), config_dir: default_config_dir() }
    }
}

impl Layout {
    /// The layout from `HALE_STATE_DIR` and `HALE_CONFIG_DIR`, else the defaults.
    pub fn from_env() -> Layout {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        Layout {
            state_dir: var("HALE_STATE_DIR").unwrap_or_else(|| STATE_DIR.into()),
            config_dir: var("HALE_CONFIG_DIR").unwrap_or_else(default_config_dir),
        }
    }
    pub fn with_state_dir(state_dir: &Path) -> Layout {
        Layout { state_dir: state_dir.to_path_buf(), ..Layout::default() }
    }
    pub fn mirrors(&self) -> PathBuf {
        self.state_dir.join("repos")
    }
    pub fn mirror(&self, name: &str) -> PathBuf {
        self.mirrors().join(format!("{name}.git"))
    }
    pub fn deploy_dir(&self, name: &str) -> PathBuf {
        self.state_dir.join("deploy").join(name)
    }
    pub fn tree(&self, name: &str, commit: &str) -> PathBuf {
        self.deploy_dir(name).join(commit)
    }
    pub fn current(&self, name: &str) -> PathBuf {
        self.deploy_dir(name).join("current")
    }
    pub fn config_file(&self, name: &str) -> PathBuf {
        self.config_dir.join(format!("{name}.conf"))
    }
}

/// Whether deployed commits must be signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyMode {
    /// Any commit that fast-forwards is accepted (history rewrites are still refused).
    None,
    /// The tip must carry an SSH signature by a key in `allowed_signers` or an OpenPGP
    /// signature by a key in `keyring`.
    Signed,
}

impl VerifyMode {
    pub fn parse(s: &str) -> Option<VerifyMode> {
        match s {
            "none" => Some(VerifyMode::None),
            "signed" => Some(VerifyMode::Signed),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyMode::None => "none",
            VerifyMode::Signed => "signed",
        }
    }
}

/// How to reach an `https://` master: whom to trust, and who we are. Paths only: the password
/// is read from its file at each fetch and kept nowhere else (see `https.rs`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Auth {
    /// The CAs that sign the server's certificate (PEM); default: the system's CAs.
    pub ca_file: Option<PathBuf>,
    /// The HTTP user name (GitLab: `oauth2`, GitHub: `x-access-token` with a token).
    pub user: Option<String>,
    /// The file holding the password or access token.
    pub password_file: Option<PathBuf>,
}

impl Auth {
    fn check(&self, url: &str) -> Result<(), String> {
        let https = url.starts_with("https://");
        let set: Vec<&str> = [
            ("https_ca_file", self.ca_file.is_some()),
            ("https_user", self.user.is_some()),
            ("https_password_file", self.password_file.is_some()),
        ]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(k, _)| *k)
        .collect();
        if !https && !set.is_empty() {
            return Err(format!("{} apply only to https:// repositories", set.join(", ")));
        }
        if self.user.is_some() != self.password_file.is_some() {
            return Err(
                "https_user and https_password_file go together (the password or token is read from the file)".into()
            );
        }
        if let Some(u) = &self.user {
            if u.is_empty() || u.contains(':') || u.chars().any(char::is_control) {
                return Err(format!("https_user '{u}' must be a non-empty name without ':'"));
            }
        }
        for (k, p) in [("https_ca_file", &self.ca_file), ("https_password_file", &self.password_file)] {
            if let Some(p) = p {
                if !p.is_absolute() {
                    return Err(format!("{k} '{}' must be an absolute path", p.display()));
                }
            }
        }
        Ok(())
    }
}

/// Is `url` a well-formed `https://host[:port]/path` with no credentials in it?
fn check_https(url: &str) -> Result<(), String> {
    let rest = &url["https://".len()..];
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.contains('@') {
        return Err("repository URL must not hold credentials: give https_user and https_password_file".into());
    }
    if authority.is_empty() || path.is_empty() || authority.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("repository '{url}' is not an https://host[:port]/path URL"));
    }
    if url.contains(['?', '#']) {
        return Err(format!("repository '{url}' must not have a query or fragment"));
    }
    Ok(())
}

/// What to mirror, and the rules a commit must pass to be deployed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The mirror's name on this node (file names: letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// The master: a path, a `file://`, `git://` or `https://` URL.
    pub url: String,
    /// Branch or tag.
    pub reference: String,
    pub verify: VerifyMode,
    pub allowed_signers: Option<PathBuf>,
    /// OpenPGP public keys (as `gpg --export` writes them) trusted beside allowed_signers.
    pub keyring: Option<PathBuf>,
    /// For `https://` masters.
    pub auth: Auth,
    /// How many of the newest deployed trees to keep, beside `current` and every tree a
    /// process runs from (see [`prune`]).
    pub keep_trees: u32,
}

/// The default of `keep_trees`: the running commit and two to go back to.
pub const DEFAULT_KEEP_TREES: u32 = 3;

impl Source {
    /// Check what no node could accept (the configuration itself is wrong).
    pub fn check(&self) -> Result<(), String> {
        if self.name.is_empty()
            || self.name.starts_with('.')
            || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!("repository name '{}' must be letters, digits, '-', '_' or '.'", self.name));
        }
        if self.url.is_empty() {
            return Err("the repository URL is empty".into());
        }
        if let Some((scheme, _)) = self.url.split_once("://") {
            match scheme {
                "file" | "git" => {}
                "https" => check_https(&self.url)?,
                "http" => {
                    return Err(format!(
                        "repository '{}': plain http:// is refused (anyone on the path could change \
                         what runs as root); use https://",
                        self.url
                    ))
                }
                _ => {
                    return Err(format!(
                        "repository '{}': only paths, file://, git:// and https:// URLs are supported",
                        self.url
                    ))
                }
            }
        } else if !Path::new(&self.url).is_absolute() {
            return Err(format!(
                "repository '{}' must be an absolute path or a file://, git:// or https:// URL",
                self.url
            ));
        }
        self.auth.check(&self.url)?;
        if self.reference.is_empty()
            || self.reference.starts_with('-')
            || self.reference.contains("..")
            || self.reference.chars().any(|c| c.is_whitespace() || "~^:?*[\\".contains(c))
        {
            return Err(format!("ref '{}' is not a valid branch or tag name", self.reference));
        }
        for (k, p) in [("allowed_signers", &self.allowed_signers), ("keyring", &self.keyring)] {
            if let Some(p) = p.as_ref().filter(|p| !p.is_absolute()) {
                return Err(format!("{k} '{}' must be an absolute path", p.display()));
            }
        }
        match (self.verify, &self.allowed_signers, &self.keyring) {
            (VerifyMode::Signed, None, None) => Err("verify=signed needs allowed_signers or keyring".into()),
            _ => Ok(()),
        }
    }

    /// The trusted keys, when signatures are required.
    pub fn signers(&self) -> Result<Option<AllowedSigners>, String> {
        if self.verify == VerifyMode::None {
            return Ok(None);
        }
        let mut s = AllowedSigners::default();
        if let Some(p) = &self.allowed_signers {
            s = AllowedSigners::load(p)?;
            if s.is_empty() && self.keyring.is_none() {
                return Err(format!("{} lists no usable key", p.display()));
            }
        }
        if let Some(p) = &self.keyring {
            let k = openpgp::Keyring::load(p)?;
            if k.is_empty() {
                return Err(format!("keyring {} holds no key", p.display()));
            }
            s = s.with_keyring(k);
        }
        if s.is_empty() {
            return Err("verify=signed needs allowed_signers or keyring".into());
        }
        Ok(Some(s))
    }

    /// The settings file text (`key = value` lines) that `hale repo` reads back.
    pub fn to_config(&self) -> String {
        let mut s = format!(
            "# Hale repository {} (see `hale repo status`)\nmaster = {}\nref = {}\nverify = {}\n",
            self.name,
            self.url,
            self.reference,
            self.verify.as_str()
        );
        if let Some(p) = &self.allowed_signers {
            s.push_str(&format!("allowed_signers = {}\n", p.display()));
        }
        if let Some(p) = &self.keyring {
            s.push_str(&format!("keyring = {}\n", p.display()));
        }
        if self.keep_trees != DEFAULT_KEEP_TREES {
            s.push_str(&format!("keep_trees = {}\n", self.keep_trees));
        }
        if let Some(p) = &self.auth.ca_file {
            s.push_str(&format!("https_ca_file = {}\n", p.display()));
        }
        if let Some(u) = &self.auth.user {
            s.push_str(&format!("https_user = {u}\n"));
        }
        if let Some(p) = &self.auth.password_file {
            s.push_str(&format!("https_password_file = {}\n", p.display()));
        }
        s
    }

    /// Parse a settings file of repository `name`.
    pub fn from_config(name: &str, text: &str) -> Result<Source, String> {
        let mut src = Source {
            name: name.to_string(),
            url: String::new(),
            reference: "master".into(),
            verify: VerifyMode::Signed,
            allowed_signers: None,
            keyring: None,
            keep_trees: DEFAULT_KEEP_TREES,
            auth: Auth::default(),
        };
        for (no, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once('=').ok_or_else(|| format!("line {}: expected key = value", no + 1))?;
            let v = v.trim().to_string();
            match k.trim() {
                "master" => src.url = v,
                "ref" => src.reference = v,
                "verify" => {
                    src.verify = VerifyMode::parse(&v)
                        .ok_or_else(|| format!("line {}: verify must be none or signed", no + 1))?
                }
                "allowed_signers" => src.allowed_signers = Some(v.into()),
                "keyring" => src.keyring = Some(v.into()),
                "keep_trees" => {
                    src.keep_trees = v
                        .parse()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| format!("line {}: keep_trees must be a whole number, at least 1", no + 1))?
                }
                "https_ca_file" => src.auth.ca_file = Some(v.into()),
                "https_user" => src.auth.user = Some(v),
                "https_password_file" => src.auth.password_file = Some(v.into()),
                other => return Err(format!("line {}: unknown key '{other}'", no + 1)),
            }
        }
        src.check()?;
        Ok(src)
    }
}

#[cfg(test)]
mod sync_tests;

#[cfg(test)]
mod tests {
    use super::*;

    /// An absolute path on this platform (`/srv/...` is only rooted on the current drive on
    /// Windows).
    fn abs(p: &str) -> String {
        if cfg!(windows) {
            format!("C:{}", p.replace('/', "\\"))
        } else {
            p.to_string()
        }
    }

    fn src() -> Source {
        Source {
            name: "ops".into(),
            url: abs("/srv/git/ops.git"),
            reference: "master".into(),
            verify: VerifyMode::Signed,
            allowed_signers: Some(abs("/etc/hale/allowed_signers").into()),
            keyring: None,
            keep_trees: DEFAULT_KEEP_TREES,
            auth: Auth::default(),
        }
    }

    #[test]
    fn config_round_trip() {
        let s = src();
        assert_eq!(Source::from_config("ops", &s.to_config()).unwrap(), s);
        let auth = Auth {
            ca_file: Some(abs("/etc/hale/ca.pem").into()),
            user: Some("oauth2".into()),
            password_file: Some(abs("/etc/hale/token").into()),
        };
        let h = Source { url: "https://git.example.com/ops.git".into(), auth, ..src() };
        assert_eq!(Source::from_config("ops", &h.to_config()).unwrap(), h);
        assert!(Source::from_config("ops", "master = /x\nfoo = 1\n").unwrap_err().contains("unknown key"));
    }

    #[test]
    fn checks() {
        assert!(src().check().is_ok());
        assert!(Source { url: "https://h/x".into(), ..src() }.check().is_ok());
        assert!(Source { url: "http://h/x".into(), ..src() }.check().unwrap_err().contains("use https://"));
        assert!(Source { url: "ssh://h/x".into(), ..src() }.check().unwrap_err().contains("only paths"));
        let e = Source { url: "https://me:pw@h/x".into(), ..src() }.check().unwrap_err();
        assert!(e.contains("must not hold credentials") && !e.contains("pw"), "{e}");
        assert!(Source { url: "https://h".into(), ..src() }.check().is_err());
        let auth = |user: Option<&str>, pw: Option<&str>| Auth {
            ca_file: None,
            user: user.map(str::to_string),
            password_file: pw.map(|p| PathBuf::from(abs(p))),
        };
        let https = |a: Auth| Source { url: "https://h/x.git".into(), auth: a, ..src() };
        assert!(https(auth(Some("oauth2"), Some("/etc/hale/token"))).check().is_ok());
        assert!(https(auth(Some("oauth2"), None)).check().unwrap_err().contains("go together"));
        assert!(https(auth(None, Some("/etc/hale/token"))).check().unwrap_err().contains("go together"));
        assert!(https(auth(Some("a:b"), Some("/etc/hale/token"))).check().unwrap_err().contains("without ':'"));
        let rel = Auth { password_file: Some("token".into()), ..auth(Some("u"), None) };
        assert!(https(rel).check().unwrap_err().contains("absolute"));
        let git = Source { url: "git://h/x".into(), auth: auth(Some("u"), Some("/t")), ..src() };
        assert!(git.check().unwrap_err().contains("only to https://"));
        assert!(Source { url: "rel/x".into(), ..src() }.check().unwrap_err().contains("absolute"));
        assert!(Source { reference: "a..b".into(), ..src() }.check().is_err());
        assert!(Source { allowed_signers: None, ..src() }
            .check()
            .unwrap_err()
            .contains("needs allowed_signers or keyring"));
        let pgp = Source { allowed_signers: None, keyring: Some(abs("/etc/hale/git-keys.asc").into()), ..src() };
        assert!(pgp.check().is_ok());
        assert_eq!(Source::from_config("ops", &pgp.to_config()).unwrap(), pgp);
        let rel = Source { keyring: Some("keys.asc".into()), ..src() };
        assert!(rel.check().unwrap_err().contains("keyring 'keys.asc' must be an absolute path"));
        assert!(Source { name: "../x".into(), ..src() }.check().is_err());
        assert!(Source { url: "git://127.0.0.1:9/x".into(), verify: VerifyMode::None, ..src() }.check().is_ok());
    }

    #[test]
    fn layout() {
        let l = Layout::with_state_dir(Path::new("/s"));
        assert_eq!(l.mirror("ops"), Path::new("/s/repos/ops.git"));
        assert_eq!(l.current("ops"), Path::new("/s/deploy/ops/current"));
    }
}
