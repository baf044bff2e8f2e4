//! git's smart HTTP protocol over TLS, for masters on GitLab, Gitea, GitHub or any
//! `git http-backend`: a libgit2 smart subtransport for `https://` whose requests go through
//! ureq and rustls.
//!
//! Why not libgit2's own HTTPS: it needs OpenSSL on Linux (one more large library mapped by
//! every git agent's monitor, and a second TLS stack beside the lock store's rustls) and
//! WinHTTP on Windows (another behaviour per platform). rustls is already in the workspace and
//! reads the same PEM files on both.
//!
//! - **Trust**: the server certificate is checked against `https_ca_file` when given, else against
//!   the system's CA bundle (`/etc/ssl/certs/ca-certificates.crt`, what
//!   `update-ca-certificates` maintains, internal CAs included), else against the Mozilla
//!   roots compiled in (Windows). Verification is never disabled.
//! - **Credentials**: HTTP basic authentication with `https_user` and the password (or access
//!   token) read from `https_password_file` at each fetch: a regular file, not a symlink, not readable by
//!   other users. GitLab takes `https_user=oauth2` with a token, GitHub `x-access-token`, Gitea the
//!   account name. Credentials in the URL (`https://user:pw@host`) are refused by
//!   [`crate::Source::check`], so a password is never in the CIB, argv, a log or a message.
//!   Credentials are sent only over TLS, and never after a redirect.
//! - **Time**: every request is bounded by the fetch's deadline (per-phase timeouts, so no
//!   resolver thread is started), on top of the progress callbacks' deadline check.
//!
//! The transport is registered once per process for the `https` scheme. The settings of a
//! fetch are keyed by the remote's URL for the time of the fetch ([`Prepared`]), so two
//! fetches of different masters in one process (tests, `hale repo sync`) do not mix.

use crate::Auth;
use git2::transport::{Service, SmartSubtransport, SmartSubtransportStream, Transport};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

/// One fetch's connection settings.
struct Settings {
    agent: ureq::Agent,
    /// `Basic ...`, when credentials are configured.
    authorization: Option<String>,
    /// For messages: who we are and whom we trust.
    user: Option<String>,
    trust: String,
    deadline: Instant,
}

type Registry = Mutex<BTreeMap<String, Arc<Settings>>>;

fn registry() -> &'static Registry {
    static R: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    R.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// The settings of one `https://` fetch, in force while this lives.
pub struct Prepared {
    url: String,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if let Ok(mut r) = registry().lock() {
            r.remove(&self.url);
        }
    }
}

/// Make `url` fetchable with `auth` until `deadline`: load the trusted CAs and the password,
/// build the client. Errors are one line naming the file at fault (never its content).
pub fn prepare(url: &str, auth: &Auth, deadline: Instant) -> Result<Prepared, String> {
    register();
    let (roots, trust) = hale_tls::roots(auth.ca_file.as_deref(), "https_ca_file")?;
    let authorization = match (&auth.user, &auth.password_file) {
        (Some(user), Some(file)) => {
            let password = hale_backend::files::read_secret(file)?;
            Some(basic(user, &password))
        }
        (None, None) => None,
        // Source::check refuses these; a settings file edited by hand gets the same reason.
        (Some(_), None) => return Err("https_user is set without https_password_file".into()),
        (None, Some(_)) => return Err("https_password_file is set without https_user".into()),
    };
    let tls = ureq::tls::TlsConfig::builder().root_certs(roots).build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .https_only(true)
        .proxy(None)
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent(concat!("git/2.0 (hale-gitrepo/", env!("CARGO_PKG_VERSION"), ")"))
        .build()
        .into();
    let settings = Settings { agent, authorization, user: auth.user.clone(), trust, deadline };
    registry()
        .lock()
        .map_err(|_| "https transport state poisoned".to_string())?
        .insert(url.to_string(), settings.into());
    Ok(Prepared { url: url.to_string() })
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registration happens once, before this process's first https fetch, and
        // the agents and `hale repo` fetch from one thread.
        let r = unsafe {
            git2::transport::register("https", |remote| {
                let url = remote.url().unwrap_or_default().to_string();
                let settings = registry().lock().ok().and_then(|r| r.get(&url).cloned());
                Transport::smart(remote, true, Https { settings })
            })
        };
        if let Err(e) = r {
            log::error!("cannot register the https transport: {}", e.message());
        }
    });
}

/// The subtransport of one remote.
struct Https {
    settings: Option<Arc<Settings>>,
}

impl SmartSubtransport for Https {
    fn action(&self, url: &str, action: Service) -> Result<Box<dyn SmartSubtransportStream>, git2::Error> {
        let settings = self
            .settings
            .clone()
            .ok_or_else(|| git2::Error::from_str("https fetch without its settings (internal error)"))?;
        let base = url.trim_end_matches('/');
        let (method, url, accept) = match action {
            Service::UploadPackLs => (
                "GET",
                format!("{base}/info/refs?service=git-upload-pack"),
                "application/x-git-upload-pack-advertisement",
            ),
            Service::UploadPack => ("POST", format!("{base}/git-upload-pack"), "application/x-git-upload-pack-result"),
            Service::ReceivePackLs | Service::ReceivePack => {
                return Err(git2::Error::from_str("pushing is not supported: mirrors only fetch"))
            }
        };
        Ok(Box::new(Exchange { settings, method, url, accept, request: Vec::new(), response: None }))
    }

    fn close(&self) -> Result<(), git2::Error> {
        Ok(())
    }
}

/// One HTTP request and its response: what libgit2 writes is the request body, sent on the
/// first read (stateless RPC, as git's smart HTTP is).
struct Exchange {
    settings: Arc<Settings>,
    method: &'static str,
    url: String,
    accept: &'static str,
    request: Vec<u8>,
    response: Option<ureq::BodyReader<'static>>,
}

impl Exchange {
    fn send(&mut self) -> io::Result<ureq::BodyReader<'static>> {
        let s = &self.settings;
        let left = s.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        }
        let left = Some(left.max(Duration::from_millis(1)));
        let result = if self.method == "GET" {
            let mut r = s.agent.get(&self.url).header("accept", self.accept);
            if let Some(a) = &s.authorization {
                r = r.header("authorization", a);
            }
            let r = r
                .config()
                .timeout_connect(left)
                .timeout_send_request(left)
                .timeout_recv_response(left)
                .timeout_recv_body(left)
                .build();
            r.call()
        } else {
            let mut r = s
                .agent
                .post(&self.url)
                .header("accept", self.accept)
                .header("content-type", "application/x-git-upload-pack-request");
            if let Some(a) = &s.authorization {
                r = r.header("authorization", a);
            }
            let r = r
                .config()
                .timeout_connect(left)
                .timeout_send_request(left)
                .timeout_send_body(left)
                .timeout_recv_response(left)
                .timeout_recv_body(left)
                .build();
            r.send(&self.request[..])
        };
        let resp = result.map_err(|e| io::Error::other(self.transport_error(&e)))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(io::Error::other(self.status_error(status)));
        }
        let kind = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        if !kind.starts_with(self.accept) {
            let kind = if kind.is_empty() { "none".into() } else { kind };
            return Err(io::Error::other(format!(
                "not a git smart HTTP server (content type {kind}); is the URL the repository's clone URL?"
            )));
        }
        Ok(resp.into_body().into_reader())
    }

    /// A one-line reason for a failed request.
    fn transport_error(&self, e: &ureq::Error) -> String {
        let text = e.to_string();
        let trust = &self.settings.trust;
        if text.contains("UnknownIssuer") || text.contains("BadSignature") {
            format!("TLS: the server's certificate is not signed by a CA in {trust}")
        } else if text.contains("NotValidForName") {
            "TLS: the server's certificate is not valid for this host name".into()
        } else if text.contains("Expired") {
            "TLS: the server's certificate has expired (or this node's clock is wrong)".into()
        } else if text.contains("NotValidYet") {
            "TLS: the server's certificate is not valid yet (or this node's clock is wrong)".into()
        } else if matches!(e, ureq::Error::Timeout(_)) {
            "timed out".into()
        } else {
            text
        }
    }

    fn status_error(&self, status: u16) -> String {
        let who = self.settings.user.as_deref();
        match (status, who) {
            (401, None) => "HTTP 401: the server wants credentials (set https_user and https_password_file)".into(),
            (401, Some(u)) => {
                format!("HTTP 401: the server refused user '{u}' with the password in https_password_file")
            }
            (403, None) => "HTTP 403: access denied without credentials".into(),
            (403, Some(u)) => format!("HTTP 403: user '{u}' may not read this repository"),
            (404, _) => "HTTP 404: no repository at this URL".into(),
            (s, _) => format!("HTTP {s} from the server"),
        }
    }
}

impl Read for Exchange {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.response.is_none() {
            self.response = Some(self.send()?);
        }
        self.response.as_mut().map_or(Ok(0), |r| r.read(buf))
    }
}

impl Write for Exchange {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.response.is_some() {
            return Err(io::Error::other("request written after its response was read"));
        }
        self.request.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
