//! A real etcd server (Debian's etcd-server) for the lock tests: one member on loopback, on
//! free ports, with its own data directory, stopped and removed when dropped. Plain HTTP, or
//! ([`Etcd::start_secure`]) TLS with client certificates from a test CA and etcd's
//! authentication enabled.

use crate::tls::{Issued, TestCa};
use crate::{free_port, require, wait_for, Scratch};
use hale_lock::etcd::EtcdStore;
use hale_lock::tls::EtcdAuth;
use hale_lock::Store;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Etcd {
    child: Option<Child>,
    /// The client URL, `http://127.0.0.1:PORT` (`https://` when secure).
    pub url: String,
    peer: String,
    data: Scratch,
    /// The TLS and authentication material of a secure server.
    pub secure: Option<Box<Secure>>,
}

/// How long an auth token lives on a secure server: short, so tests see tokens expire.
pub const TOKEN_TTL_SECS: u64 = 2;

/// A secure server's certificates and users: TLS with `--client-cert-auth` against `ca`,
/// authentication enabled, user [`Secure::USER`] with readwrite on `/hale/`.
pub struct Secure {
    pub ca: TestCa,
    pub server: Issued,
    /// A valid client certificate (no CN).
    pub client: Issued,
    /// A client certificate of the same CA that expired yesterday.
    pub expired: Issued,
    /// Another CA, which signed nothing of this server's.
    pub other_ca: TestCa,
    /// The user's password file (mode 0600).
    pub password_file: PathBuf,
    /// A password file with a wrong password (mode 0600).
    pub wrong_password_file: PathBuf,
}

impl Secure {
    pub const USER: &'static str = "hale";

    /// Everything a client needs: CA, client certificate, user and password file.
    pub fn auth(&self) -> EtcdAuth {
        EtcdAuth {
            ca_file: Some(self.ca.cert.clone()),
            cert_file: Some(self.client.cert.clone()),
            key_file: Some(self.client.key.clone()),
            user: Some(Secure::USER.into()),
            password_file: Some(self.password_file.clone()),
        }
    }

    /// `--etcd-*` flags of `hale lock` for `auth`.
    pub fn flags(auth: &EtcdAuth) -> Vec<String> {
        let mut f = Vec::new();
        let mut add = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                f.extend([format!("--{k}"), v]);
            }
        };
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        add("etcd-ca-file", path(&auth.ca_file));
        add("etcd-cert-file", path(&auth.cert_file));
        add("etcd-key-file", path(&auth.key_file));
        add("etcd-user", auth.user.clone());
        add("etcd-password-file", path(&auth.password_file));
        f
    }

    /// hostlock's parameters for `auth`.
    pub fn params(auth: &EtcdAuth) -> Vec<(&'static str, String)> {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        [
            ("etcd_ca_file", path(&auth.ca_file)),
            ("etcd_cert_file", path(&auth.cert_file)),
            ("etcd_key_file", path(&auth.key_file)),
            ("etcd_user", auth.user.clone()),
            ("etcd_password_file", path(&auth.password_file)),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }
}

/// Write a private (0600) file.
pub fn private_file(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write a private file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

impl Etcd {
    /// Start etcd and wait until it answers. Panics (the test fails) if etcd is missing.
    pub fn start() -> Etcd {
        let data = Scratch::new("etcd");
        let url = format!("http://127.0.0.1:{}", free_port());
        let peer = format!("http://127.0.0.1:{}", free_port());
        let mut e = Etcd { child: None, url, peer, data, secure: None };
        e.launch();
        e
    }

    /// Start an etcd that demands TLS and a client certificate signed by a test CA, and has
    /// authentication enabled (users `root` and [`Secure::USER`], the latter with readwrite on
    /// `/hale/`); auth tokens live [`TOKEN_TTL_SECS`].
    pub fn start_secure() -> Etcd {
        let data = Scratch::new("etcd-tls");
        let pki = data.join("pki");
        std::fs::create_dir(&pki).expect("pki dir");
        let ca = TestCa::new(&pki, "etcd");
        let secure = Secure {
            server: ca.issue("etcd-server"),
            client: ca.issue_client("hale-client", 30),
            expired: ca.issue_client("hale-expired", -1),
            other_ca: TestCa::new(&pki, "other"),
            password_file: pki.join("password"),
            wrong_password_file: pki.join("wrong-password"),
            ca,
        };
        private_file(&secure.password_file, "s3cret-etcd-pw\n");
        private_file(&secure.wrong_password_file, "not-the-password\n");
        let url = format!("https://127.0.0.1:{}", free_port());
        let peer = format!("http://127.0.0.1:{}", free_port());
        let mut e = Etcd { child: None, url, peer, data, secure: Some(Box::new(secure)) };
        e.launch();
        e.enable_auth();
        e
    }

    /// Users, a role on `/hale/`, then authentication on, through the JSON gateway with curl
    /// (request bodies, passwords included, from files: never in argv).
    fn enable_auth(&self) {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        let s = self.secure.as_ref().expect("a secure etcd");
        let perm = format!(
            r#"{{"name":"locks","perm":{{"permType":"READWRITE","key":"{}","range_end":"{}"}}}}"#,
            b64("/hale/"),
            b64("/hale0")
        );
        for (path, body) in [
            ("/v3/auth/user/add", r#"{"name":"root","password":"root-pw"}"#.to_string()),
            ("/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#.into()),
            ("/v3/auth/user/add", format!(r#"{{"name":"{}","password":"s3cret-etcd-pw"}}"#, Secure::USER)),
            ("/v3/auth/role/add", r#"{"name":"locks"}"#.into()),
            ("/v3/auth/role/grant", perm),
            ("/v3/auth/user/grant", format!(r#"{{"user":"{}","role":"locks"}}"#, Secure::USER)),
            ("/v3/auth/enable", "{}".into()),
        ] {
            let file = self.data.join("request.json");
            private_file(&file, &body);
            let out = Command::new(require("curl"))
                .args(["-sS", "--fail", "-X", "POST", "--cacert"])
                .arg(&s.ca.cert)
                .arg("--cert")
                .arg(&s.client.cert)
                .arg("--key")
                .arg(&s.client.key)
                .arg("--data-binary")
                .arg(format!("@{}", file.display()))
                .arg(format!("{}{path}", self.url))
                .output()
                .expect("run curl");
            let _ = std::fs::remove_file(&file);
            assert!(out.status.success(), "{path}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let store = self.store();
        assert!(store.state().is_ok(), "the user cannot read the store once authentication is on");
    }

    fn launch(&mut self) {
        let etcd = require("etcd");
        let log = std::fs::File::create(self.data.join("etcd.log")).expect("etcd log");
        let mut cmd = Command::new(etcd);
        if let Some(s) = &self.secure {
            cmd.arg(format!("--cert-file={}", s.server.cert.display()))
                .arg(format!("--key-file={}", s.server.key.display()))
                .arg("--client-cert-auth")
                .arg(format!("--trusted-ca-file={}", s.ca.cert.display()))
                .arg(format!("--auth-token-ttl={TOKEN_TTL_SECS}"));
        }
        let child = cmd
            .arg("--name=hale-test")
            .arg(format!("--data-dir={}", self.data.join("data").display()))
            .arg(format!("--listen-client-urls={}", self.url))
            .arg(format!("--advertise-client-urls={}", self.url))
            .arg(format!("--listen-peer-urls={}", self.peer))
            .arg(format!("--initial-advertise-peer-urls={}", self.peer))
            .arg(format!("--initial-cluster=hale-test={}", self.peer))
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
        let store = self.store();
        let up = wait_for(Duration::from_secs(30), || store.state().is_ok());
        let log = std::fs::read_to_string(self.data.join("etcd.log")).unwrap_or_default();
        assert!(up, "etcd did not answer on {} within 30 s; its log:\n{log}", self.url);
    }

    /// A store client for this server (with every credential, when secure).
    pub fn store(&self) -> EtcdStore {
        match &self.secure {
            Some(s) => self.store_with(&s.auth()).expect("a secure store client"),
            None => EtcdStore::new(vec![self.url.clone()], Duration::from_secs(5)),
        }
    }

    /// A store client for this server with `auth`.
    pub fn store_with(&self, auth: &EtcdAuth) -> Result<EtcdStore, String> {
        EtcdStore::secured(vec![self.url.clone()], Duration::from_secs(5), auth)
    }

    /// Write `value` at `key` directly, as anyone with write access to etcd could (crafted
    /// records), through the v3 JSON gateway with curl.
    pub fn put(&self, key: &str, value: &str) {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        let body = format!(r#"{{"key":"{}","value":"{}"}}"#, b64(key), b64(value));
        let out = Command::new(require("curl"))
            .args(["-sS", "--fail", "-X", "POST", "--data-binary", &body])
            .arg(format!("{}/v3/kv/put", self.url))
            .output()
            .expect("run curl");
        assert!(out.status.success(), "put {key}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Stop the server (SIGKILL: as abrupt as a crash or a cut cable); its data stays.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}
