//! The etcd lock store behind TLS and etcd's authentication: a real etcd started by the test
//! with certificates from a test CA made by openssl, `--client-cert-auth` and users. With the
//! right settings `hale lock` and `ocf:hale:hostlock` work end to end; a wrong CA, a wrong
//! password, an expired client certificate and missing credentials are each "unknown" (never
//! "free") with a one-line reason naming what was wrong, and no password is ever printed.

use hale_lock::tls::EtcdAuth;
use hale_lock::Store;
use hale_ocf_tests::etcd::{private_file, Etcd, Secure, TOKEN_TTL_SECS};
use hale_ocf_tests::{agent_path, hale_bin, unique, Invocation, Scratch};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The passwords of the test etcd's user: neither may appear in any output.
const SECRETS: [&str; 2] = ["s3cret-etcd-pw", "not-the-password"];

fn no_secret(text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "a password was printed: {text}");
    }
}

/// `hale lock --store etcd --endpoints URL <flags of auth> ARGS`, no configuration file.
fn hale_lock(url: &str, auth: &EtcdAuth, args: &[&str]) -> (i32, String, String) {
    let Output { status, stdout, stderr } = Command::new(hale_bin())
        .arg("lock")
        .args(["--store", "etcd", "--endpoints", url, "--timeout", "5"])
        .args(Secure::flags(auth))
        .args(args)
        .env("HALE_LOCK_CONFIG", "/dev/null")
        .stdin(Stdio::null())
        .output()
        .expect("run hale lock");
    let (out, err) = (String::from_utf8_lossy(&stdout).to_string(), String::from_utf8_lossy(&stderr).to_string());
    no_secret(&out);
    no_secret(&err);
    (status.code().unwrap_or(-1), out, err)
}

fn hostlock(url: &str, auth: &EtcdAuth, instance: &str, host: &str) -> Invocation {
    let mut params =
        vec![("host", host.to_string()), ("store", "etcd".into()), ("endpoints", url.into()), ("ttl", "20".into())];
    params.extend(Secure::params(auth));
    Invocation::new(&agent_path("hostlock"), instance).params(&params).timeout_ms(8000)
}

fn reason(run: &hale_ocf_tests::AgentRun) -> String {
    no_secret(&run.stderr);
    no_secret(&run.stdout);
    run.exit_reason().unwrap_or_default().to_string()
}

#[test]
fn hale_lock_over_tls_with_a_client_certificate_and_a_user() {
    let etcd = Etcd::start_secure();
    let s = etcd.secure.as_ref().unwrap();
    let auth = s.auth();
    let host = unique("tls-host");
    let (code, out, err) =
        hale_lock(&etcd.url, &auth, &["acquire", &host, "--reason", "patch over TLS", "--ttl", "60"]);
    assert_eq!(code, 0, "{out}{err}");
    let id = out.split_whitespace().next().unwrap().to_string();
    let (code, out, _) = hale_lock(&etcd.url, &auth, &["status", &host]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains(&id) && out.contains("locked"), "{out}");
    let (code, out, _) = hale_lock(&etcd.url, &auth, &["history", &host]);
    assert_eq!(code, 0);
    assert!(out.contains(&id) && out.contains("held until"), "{out}");
    assert_eq!(hale_lock(&etcd.url, &auth, &["release", &id]).0, 0);
    let (code, out, _) = hale_lock(&etcd.url, &auth, &["status", &host]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("free"), "{out}");

    // The same settings from lock.conf: `run` renews over TLS with the user's token.
    let conf = etcd.secure.as_ref().unwrap().password_file.with_file_name("lock.conf");
    let text = format!(
        "store = etcd\nendpoints = {}\netcd_ca_file = {}\netcd_cert_file = {}\netcd_key_file = {}\n\
         etcd_user = {}\netcd_password_file = {}\n",
        etcd.url,
        s.ca.cert.display(),
        s.client.cert.display(),
        s.client.key.display(),
        Secure::USER,
        s.password_file.display()
    );
    std::fs::write(&conf, text).unwrap();
    let out = Command::new(hale_bin())
        .args(["lock", "run", &host, "--reason", "from lock.conf", "--ttl", "3", "--", "sleep", "4"])
        .env("HALE_LOCK_CONFIG", &conf)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    no_secret(&err);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let history = etcd.store().history(Some(&host)).unwrap();
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|r| r.end.as_ref().is_some_and(|e| e.how == hale_lock::Ending::Released)));

    // A token etcd forgot (idle past --auth-token-ttl) is traded for a new one.
    let store = etcd.store();
    assert!(store.state().is_ok());
    std::thread::sleep(Duration::from_secs(TOKEN_TTL_SECS + 3));
    let again = store.state();
    assert!(again.is_ok(), "after the token expired: {again:?}");
}

#[test]
fn hostlock_over_tls_with_a_client_certificate_and_a_user() {
    let etcd = Etcd::start_secure();
    let s = etcd.secure.as_ref().unwrap();
    let auth = s.auth();
    let host = unique("tls-hl");
    let instance = unique("hl-tls");
    let c = hostlock(&etcd.url, &auth, &instance, &host);
    let meta = c.run("meta-data");
    for p in EtcdAuth::KEYS {
        assert!(meta.stdout.contains(&format!("name=\"{p}\"")), "meta-data lacks {p}");
    }
    assert_eq!(c.run("validate-all").code, 0);
    let start = c.run("start");
    assert_eq!(start.code, 0, "{}", start.stderr);
    no_secret(&start.stderr);
    let probe = c.syscalls("monitor");
    assert_eq!((probe.code, probe.forks), (0, 0), "a TLS probe neither forks nor starts threads:\n{}", probe.trace);
    let m = c.clone().recurring().syscalls("monitor");
    assert_eq!((m.code, m.forks), (0, 0), "a TLS monitor neither forks nor starts threads:\n{}", m.trace);
    let (code, out, _) = hale_lock(&etcd.url, &auth, &["status", &host]);
    assert_eq!(code, 3, "{out}");

    // The password changed under a running resource: the monitor fails, with the reason.
    let wrong = EtcdAuth { password_file: Some(s.wrong_password_file.clone()), ..auth.clone() };
    let w = hostlock(&etcd.url, &wrong, &instance, &host);
    let m = w.clone().recurring().run("monitor");
    assert_eq!(m.code, 1, "{}", m.stderr);
    let r = reason(&m);
    assert!(r.contains("lock state unknown: etcd refused user 'hale' with the password in etcd_password_file"), "{r}");

    let stop = c.run("stop");
    assert_eq!(stop.code, 0, "{}", stop.stderr);
    assert_eq!(c.run("monitor").code, 7);
    assert_eq!(hale_lock(&etcd.url, &auth, &["status", &host]).0, 0);
}

#[test]
fn wrong_ca_password_expired_certificate_and_missing_credentials_are_unknown() {
    let etcd = Etcd::start_secure();
    let s = etcd.secure.as_ref().unwrap();
    let good = s.auth();
    let host = unique("tls-bad");
    // A lock is held: none of the wrong clients may say "free" (nor "locked").
    let (code, out, err) = hale_lock(&etcd.url, &good, &["acquire", &host, "--reason", "held", "--ttl", "120"]);
    assert_eq!(code, 0, "{out}{err}");
    let plain = etcd.url.replace("https://", "http://");
    let none = EtcdAuth::default();
    let cases: Vec<(&str, String, EtcdAuth, String)> = vec![
        (
            "wrong CA",
            etcd.url.clone(),
            EtcdAuth { ca_file: Some(s.other_ca.cert.clone()), ..good.clone() },
            format!("not signed by a CA in etcd_ca_file {}", s.other_ca.cert.display()),
        ),
        (
            "system CAs",
            etcd.url.clone(),
            EtcdAuth { ca_file: None, ..good.clone() },
            "not signed by a CA in the system CAs".into(),
        ),
        (
            "wrong password",
            etcd.url.clone(),
            EtcdAuth { password_file: Some(s.wrong_password_file.clone()), ..good.clone() },
            "etcd refused user 'hale' with the password in etcd_password_file".into(),
        ),
        (
            "expired client certificate",
            etcd.url.clone(),
            EtcdAuth { cert_file: Some(s.expired.cert.clone()), key_file: Some(s.expired.key.clone()), ..good.clone() },
            format!("client certificate: etcd_cert_file {} expired on", s.expired.cert.display()),
        ),
        (
            "no client certificate",
            etcd.url.clone(),
            EtcdAuth { cert_file: None, key_file: None, ..good.clone() },
            // Read as an alert, or as a connection closed before it: the same advice.
            "client certificate".into(),
        ),
        (
            "no user",
            etcd.url.clone(),
            EtcdAuth { user: None, password_file: None, ..good.clone() },
            "etcd demands authentication: set etcd_user and etcd_password_file".into(),
        ),
        ("plain http to a TLS etcd", plain, none, "does it demand TLS? use https://".into()),
    ];
    for (what, url, auth, expect) in &cases {
        let (code, out, err) = hale_lock(url, auth, &["status", &host]);
        eprintln!("{what}: {}", err.trim());
        assert_eq!(code, 4, "{what}: status must be unknown: {out}{err}");
        assert!(err.contains("lock state unknown") && err.contains(expect.as_str()), "{what}: {err}");
        if *what == "no client certificate" {
            assert!(err.contains("set etcd_cert_file and etcd_key_file"), "{what}: {err}");
        }
        assert_eq!(err.trim().lines().count(), 1, "{what}: one line: {err}");
        assert!(!out.contains("free") && !out.contains("locked"), "{what}: {out}");
        let (code, out, _) = hale_lock(url, auth, &["status", &host, "--json"]);
        assert_eq!(code, 4, "{what}");
        assert!(out.contains("\"state\":\"unknown\"") && !out.contains("free"), "{what}: {out}");
        assert_eq!(hale_lock(url, auth, &["acquire", &unique("x"), "--reason", "x"]).0, 4, "{what}");

        let c = hostlock(url, auth, &unique("hl-bad"), &host);
        let start = c.run("start");
        assert_eq!(start.code, 1, "{what}: start: {}", start.stderr);
        let r = reason(&start);
        assert!(r.contains("lock state unknown") && r.contains(expect.as_str()), "{what}: start: {r}");
        let probe = c.run("monitor");
        assert_eq!(probe.code, 1, "{what}: a probe that cannot see the store must not say stopped");
        assert!(reason(&probe).contains(expect.as_str()), "{what}: probe: {}", reason(&probe));
        let m = c.clone().recurring().run("monitor");
        assert_eq!(m.code, 1, "{what}: monitor");
        assert_eq!(c.run("stop").code, 0, "{what}: stop succeeds: the lease lapses by itself");
    }
    // The lock is still there for the right client.
    assert_eq!(hale_lock(&etcd.url, &good, &["status", &host]).0, 3);
}

#[test]
fn settings_wrong_everywhere_or_missing_here() {
    let etcd = Etcd::start_secure();
    let s = etcd.secure.as_ref().unwrap();
    let good = s.auth();
    let d = Scratch::new("tls-settings");
    let open = d.join("open-password");
    private_file(&open, "s3cret-etcd-pw\n");
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let link = d.join("link-password");
    std::os::unix::fs::symlink(&s.password_file, &link).unwrap();
    let cases: Vec<(&str, String, EtcdAuth, i32, i32, &str)> = vec![
        (
            "relative CA file",
            etcd.url.clone(),
            EtcdAuth { ca_file: Some("ca.pem".into()), ..good.clone() },
            1,
            6,
            "etcd_ca_file='ca.pem' must be an absolute path",
        ),
        (
            "user without a password file",
            etcd.url.clone(),
            EtcdAuth { password_file: None, ..good.clone() },
            1,
            6,
            "etcd_user and etcd_password_file go together",
        ),
        (
            "TLS settings with http://",
            etcd.url.replace("https://", "http://"),
            good.clone(),
            1,
            6,
            "need https:// endpoints",
        ),
        (
            "missing CA file",
            etcd.url.clone(),
            EtcdAuth { ca_file: Some(d.join("nope.pem")), ..good.clone() },
            1,
            5,
            "does not exist",
        ),
        (
            "password file open to every user",
            etcd.url.clone(),
            EtcdAuth { password_file: Some(open.clone()), ..good.clone() },
            1,
            2,
            "open to every user",
        ),
        (
            "password file through a symlink",
            etcd.url.clone(),
            EtcdAuth { password_file: Some(link.clone()), ..good.clone() },
            1,
            2,
            "etcd_password_file: cannot read the secret file",
        ),
    ];
    for (what, url, auth, cli, agent, expect) in cases {
        let (code, out, err) = hale_lock(&url, &auth, &["status", "h"]);
        assert_eq!(code, cli, "{what}: {out}{err}");
        assert!(err.contains(expect), "{what}: {err}");
        let c = hostlock(&url, &auth, &unique("hl-set"), "h");
        let v = c.clone().env("OCF_CHECK_LEVEL", "10").run("validate-all");
        assert_eq!(v.code, agent, "{what}: validate-all: {}", v.stderr);
        assert!(reason(&v).contains(expect), "{what}: {}", reason(&v));
        assert_eq!(c.run("stop").code, 0, "{what}: stop");
    }
}
