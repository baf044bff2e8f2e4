//! Test certificate authorities made by the real `openssl` command: a CA and the server
//! certificates it signs, for the tests that speak TLS (an https git master, etcd with client certificates).

use crate::require;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn openssl<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(args: I) {
    let mut c = Command::new(require("openssl"));
    c.args(args).stdin(Stdio::null());
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(out.status.success(), "{c:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// `openssl req` options for a new P-256 key without a passphrase.
const NEW_KEY: [&str; 6] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-batch"];

/// A certificate and its private key (PEM files).
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A CA in `dir`: `NAME-ca.pem` and its key.
pub struct TestCa {
    pub cert: PathBuf,
    key: PathBuf,
    dir: PathBuf,
    name: String,
}

impl TestCa {
    /// A new P-256 CA named `name`, valid 30 days.
    pub fn new(dir: &Path, name: &str) -> TestCa {
        let cert = dir.join(format!("{name}-ca.pem"));
        let key = dir.join(format!("{name}-ca.key"));
        let subject = format!("/CN={name} test CA");
        let mut args: Vec<&OsStr> = vec!["req".as_ref(), "-x509".as_ref()];
        args.extend(NEW_KEY.iter().map(OsStr::new));
        args.extend(["-days", "30", "-subj", subject.as_str(), "-keyout"].map(OsStr::new));
        args.push(key.as_os_str());
        args.push("-out".as_ref());
        args.push(cert.as_os_str());
        openssl(args);
        TestCa { cert, key, dir: dir.to_path_buf(), name: name.to_string() }
    }

    /// A certificate for `cn` signed by this CA, for a server at 127.0.0.1 or localhost
    /// (subjectAltName), valid 30 days.
    pub fn issue(&self, cn: &str) -> Issued {
        self.issue_as(cn, &format!("/CN={cn}"), 30)
    }

    /// A client certificate with the subject `/O=org` and no Common Name (etcd's gateway
    /// refuses a client certificate with a CN once authentication is enabled), valid `days`
    /// days from now; a negative `days` makes one that expired yesterday.
    pub fn issue_client(&self, org: &str, days: i32) -> Issued {
        self.issue_as(org, &format!("/O={org}"), days)
    }

    /// A certificate named `name` in the CA's directory with `subject`, valid `days` days
    /// (`openssl x509 -days -1`: it expired a day before it was made). Usable by a server at
    /// 127.0.0.1 or localhost and as a client certificate (no extended key usage).
    fn issue_as(&self, name: &str, subject: &str, days: i32) -> Issued {
        let base = self.dir.join(format!("{}-{name}", self.name));
        let file = |ext: &str| base.with_extension(ext);
        let (cert, key, csr, ext) = (file("pem"), file("key"), file("csr"), file("ext"));
        std::fs::write(&ext, "subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\n")
            .expect("write the extensions file");
        let mut args: Vec<&OsStr> = vec!["req".as_ref(), "-new".as_ref()];
        args.extend(NEW_KEY.iter().map(OsStr::new));
        args.extend(["-subj", subject, "-keyout"].map(OsStr::new));
        args.extend([key.as_os_str(), "-out".as_ref(), csr.as_os_str()]);
        openssl(args);
        let days = days.to_string();
        let mut args: Vec<&OsStr> = vec!["x509".as_ref(), "-req".as_ref(), "-in".as_ref(), csr.as_os_str()];
        args.extend(["-CA".as_ref(), self.cert.as_os_str(), "-CAkey".as_ref(), self.key.as_os_str()]);
        args.extend(["-CAcreateserial", "-days", days.as_str(), "-extfile"].map(OsStr::new));
        args.extend([ext.as_os_str(), "-out".as_ref(), cert.as_os_str()]);
        openssl(args);
        Issued { cert, key }
    }
}
