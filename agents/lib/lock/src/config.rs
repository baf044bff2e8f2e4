//! Defaults for `hale lock`, from a data-only file (ResourceLocker ran a `Config.ps1`):
//! `/etc/hale/lock.conf`, or the file in `$HALE_LOCK_CONFIG`, or `--config FILE`.
//!
//! ```text
//! # /etc/hale/lock.conf
//! store = etcd                       # dir or etcd
//! path = /srv/hale-locks             # the dir store's directory
//! endpoints = http://10.0.0.5:2379, http://10.0.0.6:2379
//! ttl = 3600                         # lease, seconds (or 30s, 10m, 2h)
//! wait = 60                          # how long acquire waits for a held lock
//! dependencies_file = /etc/hale/lock-deps.json
//! # an etcd with TLS and users (see crate::tls)
//! etcd_ca_file = /etc/hale/etcd-ca.pem
//! etcd_cert_file = /etc/hale/etcd-client.pem
//! etcd_key_file = /etc/hale/etcd-client.key
//! etcd_user = hale
//! etcd_password_file = /etc/hale/etcd.password
//! ```
//!
//! One `key = value` per line, `#` starts a comment, values may be quoted. An unknown key or
//! a bad value is an error naming the file and line: a typo must not silently fall back to a
//! default. A missing default file is fine (built-in defaults apply); a file named with
//! `--config` or `$HALE_LOCK_CONFIG` must exist.

use crate::dir::DirStore;
use crate::etcd::EtcdStore;
use crate::tls::EtcdAuth;
use crate::{LockError, Store};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the defaults live unless told otherwise.
pub const DEFAULT_FILE: &str = "/etc/hale/lock.conf";
/// The dir store's default directory: `locks` under the backend's state directory
/// (`/var/lib/hale/locks`, `%ProgramData%\Hale\locks` on Windows).
pub const DEFAULT_DIR: &str = hale_backend::paths::LOCK_DIR;
/// The etcd store's default endpoint.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:2379";

/// Which store, and where: a directory, or etcd's endpoints with its TLS and authentication
/// settings (checked: see [`EtcdAuth::check`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSpec {
    Dir(PathBuf),
    Etcd(Vec<String>, EtcdAuth),
}

impl StoreSpec {
    /// Open the store. `timeout` bounds each network request (etcd) and the wait for the store
    /// mutex (dir). Fails ([`LockError::Invalid`]) when etcd's CA, certificate, key or
    /// password file cannot be used, naming the setting, never a secret.
    pub fn open(&self, timeout: Duration) -> Result<Box<dyn Store>, LockError> {
        Ok(match self {
            StoreSpec::Dir(p) => Box::new(DirStore::new(p).with_timeout(timeout)),
            StoreSpec::Etcd(e, auth) => {
                Box::new(EtcdStore::secured(e.clone(), timeout, auth).map_err(LockError::Invalid)?)
            }
        })
    }

    /// An etcd store on `endpoints` (comma-separated) with `auth`, checked.
    pub fn etcd(endpoints: &str, auth: EtcdAuth) -> Result<StoreSpec, String> {
        let eps = parse_endpoints(endpoints)?;
        auth.check(&eps)?;
        Ok(StoreSpec::Etcd(eps, auth))
    }

    /// Build from a store name and its location (a directory, or comma-separated endpoints).
    pub fn from_parts(store: &str, path: Option<&str>, endpoints: Option<&str>) -> Result<StoreSpec, String> {
        match store {
            "dir" => {
                let p = path.unwrap_or(DEFAULT_DIR);
                if !Path::new(p).is_absolute() {
                    return Err(format!("path='{p}' must be an absolute directory"));
                }
                Ok(StoreSpec::Dir(PathBuf::from(p)))
            }
            "etcd" => StoreSpec::etcd(endpoints.unwrap_or(DEFAULT_ENDPOINT), EtcdAuth::default()),
            other => Err(format!("store='{other}' is not one of: dir, etcd")),
        }
    }
}

/// `http://host:port` URLs, separated by commas or spaces.
pub fn parse_endpoints(list: &str) -> Result<Vec<String>, String> {
    let eps: Vec<String> = list
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('/').to_string())
        .collect();
    if eps.is_empty() {
        return Err("endpoints is empty".into());
    }
    for e in &eps {
        let rest = e.strip_prefix("http://").or_else(|| e.strip_prefix("https://"));
        if rest.is_none_or(|r| r.is_empty() || r.contains('/')) {
            return Err(format!("endpoint '{e}' is not an http://host:port or https://host:port URL"));
        }
    }
    Ok(eps)
}

/// The settings of the configuration file, each optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub store: Option<String>,
    pub path: Option<String>,
    pub endpoints: Option<String>,
    pub ttl: Option<Duration>,
    pub wait: Option<Duration>,
    pub dependencies_file: Option<PathBuf>,
    /// etcd's TLS and authentication settings (`etcd_ca_file`, `etcd_cert_file`,
    /// `etcd_key_file`, `etcd_user`, `etcd_password_file`).
    pub etcd: EtcdAuth,
    /// Where it was read from (for messages).
    pub source: Option<PathBuf>,
}

impl Config {
    /// Read `explicit`, or `$HALE_LOCK_CONFIG`, or the default file if it exists.
    pub fn load(explicit: Option<&Path>) -> Result<Config, String> {
        let env = std::env::var_os("HALE_LOCK_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from);
        let (path, must_exist) = match explicit.map(Path::to_path_buf).or(env) {
            Some(p) => (p, true),
            None => (PathBuf::from(DEFAULT_FILE), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Config::parse(&text).map(|mut c| {
                c.source = Some(path.clone());
                c
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => Ok(Config::default()),
            Err(e) => Err(format!("configuration file {}: {e}", path.display())),
        }
        .map_err(|e| if e.starts_with("configuration file") { e } else { format!("{}: {e}", path.display()) })
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let mut c = Config::default();
        for (n, line) in text.lines().enumerate() {
            let line = strip_comment(line).trim();
            if line.is_empty() {
                continue;
            }
            let (k, v) = line.split_once('=').ok_or_else(|| format!("line {}: expected key = value", n + 1))?;
            let (k, v) = (k.trim(), unquote(v.trim()));
            let secs = |v: &str| {
                hale_seconds(v)
                    .ok_or_else(|| format!("line {}: {k} = '{v}' is not a duration (30, 30s, 10m, 2h)", n + 1))
            };
            match k {
                "store" => c.store = Some(v.to_string()),
                "path" => c.path = Some(v.to_string()),
                "endpoints" => c.endpoints = Some(v.to_string()),
                "ttl" => c.ttl = Some(secs(v)?),
                "wait" => c.wait = Some(secs(v)?),
                "dependencies_file" => c.dependencies_file = Some(PathBuf::from(v)),
                "etcd_ca_file" => c.etcd.ca_file = Some(PathBuf::from(v)),
                "etcd_cert_file" => c.etcd.cert_file = Some(PathBuf::from(v)),
                "etcd_key_file" => c.etcd.key_file = Some(PathBuf::from(v)),
                "etcd_user" => c.etcd.user = Some(v.to_string()),
                "etcd_password_file" => c.etcd.password_file = Some(PathBuf::from(v)),
                _ => {
                    return Err(format!(
                        "line {}: unknown key '{k}' (known: store, path, endpoints, ttl, wait, dependencies_file, {})",
                        n + 1,
                        EtcdAuth::KEYS.join(", ")
                    ))
                }
            }
        }
        Ok(c)
    }

    /// The store: flags first (`etcd`: each setting given overrides the file's), then the
    /// file, then `dir` at [`DEFAULT_DIR`].
    pub fn store_spec(
        &self,
        store: Option<&str>,
        path: Option<&str>,
        endpoints: Option<&str>,
        etcd: &EtcdAuth,
    ) -> Result<StoreSpec, String> {
        let store = store.or(self.store.as_deref()).unwrap_or("dir");
        if store != "etcd" {
            return StoreSpec::from_parts(
                store,
                path.or(self.path.as_deref()),
                endpoints.or(self.endpoints.as_deref()),
            );
        }
        let auth = EtcdAuth {
            ca_file: etcd.ca_file.clone().or_else(|| self.etcd.ca_file.clone()),
            cert_file: etcd.cert_file.clone().or_else(|| self.etcd.cert_file.clone()),
            key_file: etcd.key_file.clone().or_else(|| self.etcd.key_file.clone()),
            user: etcd.user.clone().or_else(|| self.etcd.user.clone()),
            password_file: etcd.password_file.clone().or_else(|| self.etcd.password_file.clone()),
        };
        let endpoints = endpoints.or(self.endpoints.as_deref()).unwrap_or(DEFAULT_ENDPOINT);
        StoreSpec::etcd(endpoints, auth).map_err(|e| match &self.source {
            Some(f) if !self.etcd.is_empty() => format!("{e} (settings from the command line and {})", f.display()),
            _ => e,
        })
    }
}

fn strip_comment(line: &str) -> &str {
    // A `#` outside quotes starts a comment.
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            ('#', None) => return &line[..i],
            _ => {}
        }
    }
    line
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

/// `N`, `Ns`, `Nm`, `Nh`, or a decimal number of seconds (`0.5`).
pub fn hale_seconds(v: &str) -> Option<Duration> {
    let v = v.trim();
    let (num, mult) = match v.char_indices().last() {
        Some((i, 's')) => (&v[..i], 1.0),
        Some((i, 'm')) => (&v[..i], 60.0),
        Some((i, 'h')) => (&v[..i], 3600.0),
        _ => (v, 1.0),
    };
    let n: f64 = num.parse().ok()?;
    (n.is_finite() && (0.0..1e9).contains(&n)).then(|| Duration::from_secs_f64(n * mult))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_file() {
        let c = Config::parse(
            "# defaults\nstore = etcd\nendpoints = \"http://10.0.0.5:2379, http://10.0.0.6:2379\" # two\n\
             ttl = 1h\nwait=60\ndependencies_file = /etc/hale/lock-deps.json\n",
        )
        .unwrap();
        assert_eq!(c.store.as_deref(), Some("etcd"));
        assert_eq!(c.ttl, Some(Duration::from_secs(3600)));
        assert_eq!(c.wait, Some(Duration::from_secs(60)));
        assert_eq!(
            c.store_spec(None, None, None, &EtcdAuth::default()).unwrap(),
            StoreSpec::Etcd(vec!["http://10.0.0.5:2379".into(), "http://10.0.0.6:2379".into()], EtcdAuth::default())
        );
        // An absolute path on this platform (`/x` is only rooted on the current drive on Windows).
        let abs = if cfg!(windows) { r"C:\x" } else { "/x" };
        assert_eq!(
            c.store_spec(Some("dir"), Some(abs), None, &EtcdAuth::default()).unwrap(),
            StoreSpec::Dir(abs.into())
        );
    }

    #[test]
    fn etcd_tls_and_user_settings() {
        let abs = |p: &str| if cfg!(windows) { format!("C:{p}") } else { p.to_string() };
        let text = format!(
            "store = etcd\nendpoints = https://10.0.0.5:2379\netcd_ca_file = {}\netcd_user = hale\n\
             etcd_password_file = {}\n",
            abs("/etc/hale/ca.pem"),
            abs("/etc/hale/etcd.pw")
        );
        let c = Config::parse(&text).unwrap();
        let StoreSpec::Etcd(eps, auth) = c.store_spec(None, None, None, &EtcdAuth::default()).unwrap() else {
            panic!("not etcd")
        };
        assert_eq!(eps, ["https://10.0.0.5:2379"]);
        assert_eq!(auth.user.as_deref(), Some("hale"));
        // A flag overrides the file's setting.
        let flags = EtcdAuth { user: Some("other".into()), ..EtcdAuth::default() };
        let StoreSpec::Etcd(_, auth) = c.store_spec(None, None, None, &flags).unwrap() else { panic!("not etcd") };
        assert_eq!(auth.user.as_deref(), Some("other"));
        assert_eq!(auth.ca_file, Some(abs("/etc/hale/ca.pem").into()));
        // TLS settings with a plain http:// endpoint are a configuration error.
        let e = c.store_spec(None, None, Some("http://10.0.0.5:2379"), &EtcdAuth::default()).unwrap_err();
        assert!(e.contains("need https:// endpoints"), "{e}");
        let e = Config::parse("etcd_user = hale\n").unwrap().store_spec(
            Some("etcd"),
            None,
            Some("https://h:1"),
            &EtcdAuth::default(),
        );
        assert!(e.unwrap_err().contains("etcd_user and etcd_password_file go together"));
    }

    #[test]
    fn mistakes_name_the_line() {
        assert!(Config::parse("stor = dir").unwrap_err().contains("line 1: unknown key 'stor'"));
        assert!(Config::parse("\nttl = forever").unwrap_err().contains("line 2: ttl = 'forever'"));
        assert!(Config::parse("just words").unwrap_err().contains("expected key = value"));
        assert!(StoreSpec::from_parts("dir", Some("rel"), None).is_err());
        assert!(StoreSpec::from_parts("nfs", None, None).is_err());
        assert!(parse_endpoints("127.0.0.1:2379").is_err());
        assert_eq!(hale_seconds("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(hale_seconds("2m"), Some(Duration::from_secs(120)));
    }
}
