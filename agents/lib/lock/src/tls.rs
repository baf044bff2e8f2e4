//! How the etcd store reaches a secured etcd: TLS for `https://` endpoints, a client
//! certificate for etcd's `--client-cert-auth`, and etcd's own user/password authentication.
//!
//! - **Trust**: the server certificate is verified against `etcd_ca_file` (PEM) when given,
//!   else the system's CA bundle (`/etc/ssl/certs/ca-certificates.crt`), else the Mozilla
//!   roots compiled in. Verification is never disabled. rustls, as for gitrepo's https
//!   masters: no OpenSSL.
//! - **Client certificate**: `etcd_cert_file` (PEM, the chain) with `etcd_key_file` (PEM, a
//!   private file: no symlink, not open to every user).
//! - **User**: `etcd_user` with the password read from `etcd_password_file` (first line; a
//!   private file, read as gitrepo reads `https_password_file`). The store trades them for a
//!   token at `/v3/auth/authenticate` and sends the token in the `Authorization` header;
//!   an expired token is traded again once. The password stays in this process's memory: it
//!   is never in argv, a log, a message or an exit reason.
//!
//! Plain `http://` endpoints stay possible (loopback, development) but take none of these
//! settings: a password or a key sent in the clear is a configuration error.
//!
//! etcd 3.4 and 3.5 have one quirk to know: with authentication enabled, the JSON gateway
//! refuses a client certificate that has a Common Name ("CommonName of client sending a
//! request against gateway will be ignored"). Combine a client certificate with a user only
//! when the certificate has no CN (a subject such as `/O=hale`).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use hale_tls::FILE_LIMIT;

/// The TLS and authentication settings of the etcd store. Paths are absolute; the password is
/// only ever named by its file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdAuth {
    /// The CAs that sign etcd's server certificate (PEM); default: the system's CAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// This node's client certificate (PEM), for etcd's `--client-cert-auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// The etcd user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The file holding the etcd user's password (its first line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

/// A problem with one of the files on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileProblem {
    /// The file does not exist here (it may exist on the other nodes).
    Missing(String),
    /// It exists but cannot be used: unreadable, not PEM, open to every user.
    Unusable(String),
}

impl std::fmt::Display for FileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileProblem::Missing(m) | FileProblem::Unusable(m) => f.write_str(m),
        }
    }
}

impl EtcdAuth {
    /// The setting names, as parameters, configuration keys and (with `-`) flags.
    pub const KEYS: [&'static str; 5] =
        ["etcd_ca_file", "etcd_cert_file", "etcd_key_file", "etcd_user", "etcd_password_file"];

    /// No TLS option and no user.
    pub fn is_empty(&self) -> bool {
        self == &EtcdAuth::default()
    }

    fn paths(&self) -> [(&'static str, Option<&Path>); 4] {
        [
            ("etcd_ca_file", self.ca_file.as_deref()),
            ("etcd_cert_file", self.cert_file.as_deref()),
            ("etcd_key_file", self.key_file.as_deref()),
            ("etcd_password_file", self.password_file.as_deref()),
        ]
    }

    /// The checks that do not depend on the node (wrong everywhere): absolute paths, a
    /// certificate with its key, a user with its password file, and every one of these
    /// settings only with `https://` endpoints.
    pub fn check(&self, endpoints: &[String]) -> Result<(), String> {
        for (k, p) in self.paths() {
            if let Some(p) = p {
                if !p.is_absolute() {
                    return Err(format!("{k}='{}' must be an absolute path", p.display()));
                }
            }
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err("etcd_cert_file and etcd_key_file go together (a client certificate and its key)".into());
        }
        if self.user.is_some() != self.password_file.is_some() {
            return Err("etcd_user and etcd_password_file go together (the password is read from the file)".into());
        }
        if let Some(u) = &self.user {
            if u.is_empty() || u.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(format!("etcd_user '{u}' must be a non-empty name without spaces"));
            }
        }
        if !self.is_empty() {
            if let Some(e) = endpoints.iter().find(|e| !e.starts_with("https://")) {
                let set: Vec<&str> = Self::KEYS
                    .iter()
                    .zip([
                        self.ca_file.is_some(),
                        self.cert_file.is_some(),
                        self.key_file.is_some(),
                        self.user.is_some(),
                        self.password_file.is_some(),
                    ])
                    .filter(|(_, on)| *on)
                    .map(|(k, _)| *k)
                    .collect();
                return Err(format!(
                    "{} need https:// endpoints, and endpoint {e} is plain http (keys and passwords are never sent in the clear)",
                    set.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// The node-local checks: every file named exists here ([`FileProblem::Missing`]) and can
    /// be used ([`FileProblem::Unusable`]): the CA file holds certificates, the key is a
    /// private PEM key, the password file is private and not empty.
    pub fn check_files(&self) -> Result<(), FileProblem> {
        for (k, p) in self.paths() {
            if let Some(p) = p {
                if std::fs::symlink_metadata(p).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
                    return Err(FileProblem::Missing(format!("{k} {} does not exist on this node", p.display())));
                }
            }
        }
        self.load().map(|_| ()).map_err(FileProblem::Unusable)
    }

    /// Read the files and build the client's TLS settings and credentials.
    pub(crate) fn load(&self) -> Result<Loaded, String> {
        let (roots, trust) = hale_tls::roots(self.ca_file.as_deref(), "etcd_ca_file")?;
        let mut tls = ureq::tls::TlsConfig::builder().root_certs(roots);
        let mut client = None;
        if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
            let chain = hale_tls::load_certs(cert).map_err(|e| format!("etcd_cert_file: {e}"))?;
            let pem = hale_backend::files::read_private(key, FILE_LIMIT).map_err(|e| format!("etcd_key_file: {e}"))?;
            let key_der = ureq::tls::PrivateKey::from_pem(&pem)
                .map_err(|_| format!("etcd_key_file {} holds no PEM private key", key.display()))?;
            client = Some(ClientCertInfo { path: cert.clone(), validity: hale_tls::validity(chain[0].der()) });
            tls = tls.client_cert(Some(ureq::tls::ClientCert::new_with_certs(&chain, key_der)));
        }
        let credentials = match (&self.user, &self.password_file) {
            (Some(user), Some(file)) => Some(Credentials {
                user: user.clone(),
                password: hale_backend::files::read_secret(file).map_err(|e| format!("etcd_password_file: {e}"))?,
            }),
            _ => None,
        };
        Ok(Loaded { tls: tls.build(), trust, client, credentials })
    }
}

/// etcd user and password: never printed (no Debug, no Display).
pub(crate) struct Credentials {
    pub user: String,
    pub password: String,
}

/// The client certificate's file and validity (Unix seconds), for a reason when etcd refuses it.
pub(crate) struct ClientCertInfo {
    pub path: PathBuf,
    pub validity: Option<(i64, i64)>,
}

/// What [`EtcdAuth::load`] read.
pub(crate) struct Loaded {
    pub tls: ureq::tls::TlsConfig,
    /// Whom we trust, for messages.
    pub trust: String,
    pub client: Option<ClientCertInfo>,
    pub credentials: Option<Credentials>,
}

/// A one-line reason for a TLS failure, from rustls's error text: whom we trust and which
/// file is at fault, never a secret. `closed`: the server closed the connection without an
/// answer (with TLS 1.3 a server that refuses the client's certificate may close before its
/// alert is read).
pub(crate) fn tls_reason(text: &str, trust: &str, client: Option<&ClientCertInfo>, closed: bool) -> Option<String> {
    let ours = |why: &str| match client {
        Some(c) => {
            let now = now();
            let file = c.path.display();
            match c.validity {
                Some((_, after)) if now > after => format!(
                    "etcd refused this node's client certificate: etcd_cert_file {file} expired on {}",
                    crate::Time::from_micros(after.max(0) as u64 * 1_000_000)
                ),
                Some((before, _)) if now < before => format!(
                    "etcd refused this node's client certificate: etcd_cert_file {file} is not valid before {}",
                    crate::Time::from_micros(before.max(0) as u64 * 1_000_000)
                ),
                _ => format!("etcd refused this node's client certificate (etcd_cert_file {file}): {why}"),
            }
        }
        None if closed => "etcd closed the connection: does it demand a client certificate? set etcd_cert_file \
                           and etcd_key_file"
            .to_string(),
        None => "etcd demands a client certificate: set etcd_cert_file and etcd_key_file".to_string(),
    };
    Some(if text.contains("UnknownIssuer") || text.contains("BadSignature") {
        format!("TLS: etcd's certificate is not signed by a CA in {trust}")
    } else if text.contains("NotValidForName") {
        "TLS: etcd's certificate is not valid for this address (give endpoints as in its subjectAltName)".into()
    } else if text.contains("invalid peer certificate: Expired") {
        "TLS: etcd's certificate has expired (or this node's clock is wrong)".into()
    } else if text.contains("invalid peer certificate: NotValidYet") {
        "TLS: etcd's certificate is not valid yet (or this node's clock is wrong)".into()
    } else if text.contains("CertificateRequired") || text.contains("HandshakeFailure") && client.is_none() {
        format!("TLS: {}", ours("refused"))
    } else if text.contains("BadCertificate")
        || text.contains("CertificateExpired")
        || text.contains("UnknownCA")
        || text.contains("CertificateUnknown")
        || text.contains("UnsupportedCertificate")
    {
        format!("TLS: {}", ours("not signed by a CA etcd trusts, or expired"))
    } else if text.contains("InvalidContentType") || text.contains("CorruptMessage") {
        "TLS: the endpoint does not speak TLS (use http:// for a plain etcd)".into()
    } else if closed {
        // Expired or not yet valid by this node's clock: say so; else only a question.
        match client {
            Some(c) if c.validity.is_some_and(|(before, after)| !(before..=after).contains(&now())) => {
                format!("TLS: {}", ours(""))
            }
            Some(c) => format!(
                "TLS: etcd closed the connection; did it refuse this node's client certificate (etcd_cert_file {})?",
                c.path.display()
            ),
            None => format!("TLS: {}", ours("")),
        }
    } else {
        return None;
    })
}

/// This node's clock, Unix seconds.
fn now() -> i64 {
    (crate::Time::now().micros() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn settings_wrong_everywhere_are_refused() {
        let https = eps(&["https://10.0.0.5:2379"]);
        let abs = |p: &str| Some(PathBuf::from(if cfg!(windows) { format!("C:{p}") } else { p.to_string() }));
        let ok = EtcdAuth {
            ca_file: abs("/etc/hale/etcd-ca.pem"),
            user: Some("hale".into()),
            password_file: abs("/etc/hale/etcd.pw"),
            ..EtcdAuth::default()
        };
        assert_eq!(ok.check(&https), Ok(()));
        let e = ok.check(&eps(&["https://10.0.0.5:2379", "http://10.0.0.6:2379"])).unwrap_err();
        assert!(e.contains("etcd_ca_file, etcd_user, etcd_password_file need https://"), "{e}");
        assert!(e.contains("http://10.0.0.6:2379"), "{e}");
        let e = EtcdAuth { password_file: None, ..ok.clone() }.check(&https).unwrap_err();
        assert!(e.contains("etcd_user and etcd_password_file go together"), "{e}");
        let e = EtcdAuth { ca_file: Some("ca.pem".into()), ..ok.clone() }.check(&https).unwrap_err();
        assert!(e.contains("etcd_ca_file='ca.pem' must be an absolute path"), "{e}");
        let e = EtcdAuth { cert_file: abs("/c.pem"), ..ok.clone() }.check(&https).unwrap_err();
        assert!(e.contains("etcd_cert_file and etcd_key_file go together"), "{e}");
        assert!(EtcdAuth { user: Some("a b".into()), ..ok }.check(&https).is_err());
        assert_eq!(EtcdAuth::default().check(&eps(&["http://127.0.0.1:2379"])), Ok(()));
    }
}
