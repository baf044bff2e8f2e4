//! The OCF parameters that name a repository and its trust rules, shared by
//! `ocf:hale:gitscript` and `ocf:hale:gitsync` (so they mean exactly the same thing in both),
//! and the time budgets an action gives a sync.

use crate::{Auth, Layout, Source, VerifyMode, STATE_DIR};
use hale_ocf::{Context, Failure, Kind, OcfResult, Param, Values};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How many parameters [`SOURCE_PARAMS`] has.
pub const SOURCE_COUNT: usize = 11;

/// repository, ref, name, verify, allowed_signers, keyring, https_ca_file, https_user, https_password_file, state_dir,
/// keep_trees.
pub const SOURCE_PARAMS: [Param; SOURCE_COUNT] = [
    Param::new(
        "repository",
        "Master repository",
        "The master git repository: an absolute path, a file://, git:// or https:// URL (a \
         clone URL of GitLab, Gitea, GitHub or git http-backend). Fetched in-process (libgit2, \
         https through rustls): no git process. Never put credentials in the URL: use https_user and \
         https_password_file.",
    )
    .required(),
    Param::new("ref", "Branch or tag", "The branch or tag to deploy.").default("master"),
    Param::new(
        "name",
        "Mirror name",
        "The repository's name on this node: its mirror is STATE_DIR/repos/NAME.git and its trees \
         STATE_DIR/deploy/NAME/COMMIT. Default: the last part of repository, without .git. \
         Resources with the same name share the mirror, which records its repository and \
         verification: a resource with another repository, verify or allowed_signers under the \
         same name is refused (give it its own name).",
    ),
    Param::new(
        "verify",
        "Verification",
        "signed: the deployed commit must carry an SSH signature (git's gpg.format=ssh) by a key \
         in allowed_signers or an OpenPGP signature (git commit -S with a gpg key) by a key in \
         keyring, valid now by this node's clock (not expired, not revoked), else it never runs \
         (checked again at every start). none: any commit that fast-forwards runs.",
    )
    .kind(Kind::Select(&["signed", "none"]))
    .default("signed"),
    Param::new(
        "allowed_signers",
        "Allowed SSH signers",
        "The trusted SSH keys, in git's allowed_signers format (principals [options] keytype \
         key). verify=signed needs this or keyring. Absolute path; whoever may write it decides \
         what runs as root.",
    ),
    Param::new(
        "keyring",
        "Trusted OpenPGP keys",
        "The trusted OpenPGP public keys, as gpg --export [--armor] KEYID... writes them. \
         Checked in-process (no gpg): the signing key or subkey must be in this file, bound by \
         valid self-signatures, not revoked and not expired now. Absolute path; whoever may \
         write it decides what runs as root.",
    ),
    Param::new(
        "https_ca_file",
        "Trusted CAs (https)",
        "PEM file of the CAs that sign the https:// master's certificate. Default: the system's \
         CAs (/etc/ssl/certs/ca-certificates.crt). The certificate is always verified.",
    ),
    Param::new(
        "https_user",
        "HTTP user (https)",
        "User name for HTTP basic authentication to the https:// master, with https_password_file. \
         A token works as the password: GitLab https_user=oauth2, GitHub https_user=x-access-token, Gitea \
         the account name.",
    ),
    Param::new(
        "https_password_file",
        "Password file (https)",
        "Absolute path of a file holding the password or access token (first line), readable \
         by root and not by other users (mode 0600 or 0640). Read at each fetch; its content \
         never appears in the CIB, argv, logs or messages.",
    ),
    Param::new("state_dir", "State directory", "Where mirrors and deployed trees live on this node.")
        .default(STATE_DIR),
    Param::new(
        "keep_trees",
        "Deployed trees kept",
        "After a new commit is deployed, older trees of this repository are removed except the \
         newest keep_trees, the one current points at, and any tree a process runs from (its \
         working directory, program, an open file or an argument is in it): a running script \
         never loses its code.",
    )
    .kind(Kind::Integer)
    .default("3"),
];

/// Build the repository settings from the shared parameters.
pub fn source_from(v: &Values) -> OcfResult<(Source, Layout)> {
    let url = v.str("repository").unwrap_or_default().to_string();
    let source = Source {
        name: v.str("name").map(str::to_string).unwrap_or_else(|| crate::name_from_url(&url)),
        url,
        reference: v.text("ref").to_string(),
        verify: VerifyMode::parse(v.text("verify")).unwrap_or(VerifyMode::Signed),
        allowed_signers: v.str("allowed_signers").map(PathBuf::from),
        keyring: v.str("keyring").map(PathBuf::from),
        keep_trees: u32::try_from(v.integer("keep_trees")).ok().filter(|n| *n >= 1).ok_or_else(|| {
            Failure::configured(format!("parameter keep_trees={} must be at least 1", v.integer("keep_trees")))
        })?,
        auth: Auth {
            ca_file: v.str("https_ca_file").map(PathBuf::from),
            user: v.str("https_user").map(str::to_string),
            password_file: v.str("https_password_file").map(PathBuf::from),
        },
    };
    source.check().map_err(|e| Failure::configured(format!("parameter {e}").replace("parameter repository ", "")))?;
    let state = v.text("state_dir");
    if !Path::new(state).is_absolute() {
        return Err(Failure::configured(format!("parameter state_dir='{state}' must be an absolute path")));
    }
    Ok((source, Layout::with_state_dir(Path::new(state))))
}

/// The node-local checks of the shared parameters: the trusted keys, the CA file and the
/// password file must be readable here (the files may be missing on one node only: 5).
pub fn validate_source(source: &Source) -> OcfResult<()> {
    source.signers().map_err(|e| Failure::args(format!("trusted keys: {e}")))?;
    if let Some(p) = &source.auth.ca_file {
        hale_tls::load_certs(p).map_err(|e| Failure::args(format!("https_ca_file: {e}")))?;
    }
    if let Some(p) = &source.auth.password_file {
        hale_backend::files::read_secret(p).map_err(|e| Failure::args(format!("https_password_file: {e}")))?;
    }
    Ok(())
}

/// How long a fetch may take inside this action: a third of what is left, at most 30 s.
pub fn fetch_budget(ctx: &Context) -> Duration {
    (ctx.deadline.remaining_with_margin(ctx.deadline.margin()) / 3)
        .clamp(Duration::from_millis(200), Duration::from_secs(30))
}

/// When a sync (fetch and checkout) inside this action must be done: two thirds of what is
/// left, so the action keeps time to start what it deployed and to report.
pub fn sync_deadline(ctx: &Context) -> Instant {
    Instant::now() + ctx.deadline.remaining_with_margin(ctx.deadline.margin()) * 2 / 3
}
