//! A real etcd server (Debian's etcd-server) for the lock tests: one member on loopback, on
//! free ports, with its own data directory, stopped and removed when dropped.

use crate::{free_port, require, wait_for, Scratch};
use hale_lock::etcd::EtcdStore;
use hale_lock::Store;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Etcd {
    child: Option<Child>,
    /// The client URL, `http://127.0.0.1:PORT`.
    pub url: String,
    peer: String,
    data: Scratch,
}

impl Etcd {
    /// Start etcd and wait until it answers. Panics (the test fails) if etcd is missing.
    pub fn start() -> Etcd {
        let data = Scratch::new("etcd");
        let url = format!("http://127.0.0.1:{}", free_port());
        let peer = format!("http://127.0.0.1:{}", free_port());
        let mut e = Etcd { child: None, url, peer, data };
        e.launch();
        e
    }

    fn launch(&mut self) {
        let etcd = require("etcd");
        let log = std::fs::File::create(self.data.join("etcd.log")).expect("etcd log");
        let child = Command::new(etcd)
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

    /// A store client for this server.
    pub fn store(&self) -> EtcdStore {
        EtcdStore::new(vec![self.url.clone()], Duration::from_secs(5))
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
