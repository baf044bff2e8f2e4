//! `ocf:hale:hostlock` — hold a leased host lock while a cluster resource runs.
//!
//! It replaces the lock/unlock calls a maintenance script made around its work (ResourceLocker)
//! with a resource the cluster manages: start takes the lock on `host` and every host that
//! depends on it, all or nothing, waiting inside the start timeout while others hold it;
//! the recurring monitor renews the lease and fails, with the holder in the reason, if the
//! lease was lost; stop releases it into the history. Order and colocate the maintenance
//! resource after it. If the node dies or is fenced, nobody renews, and the lease frees the
//! host `ttl` seconds later.
//!
//! The lock id is `pcmk.<node>.<resource>`: the same on every run of this resource on this
//! node, so a start that was killed midway, or a node that restarted, finds and releases its
//! own lock or intent (shortened with a hash of the whole when it would pass the 128 characters
//! a lock id may have); it is also recorded, with the token, in `hostlock-<resource>.json` under
//! the backend's run directory (`/run/hale`, created when missing: a node just booted has an
//! empty /run) so that a stop with unusable parameters can still release it. The record is
//! written atomically and never read through a symbolic link, and its id is checked like any
//! id read from a store before stop uses it.
//!
//! A probe only reads the store. Monitor and probe never fork; with the etcd store they talk
//! HTTP to etcd, bounded by the operation's timeout. An unreachable store fails start and
//! monitor ("unknown" is never "free"), and never fails stop: the lease lapses by itself.
//!
//! etcd behind TLS and users: `https://` endpoints are verified against `etcd_ca_file` (else
//! the system CAs), `etcd_cert_file`/`etcd_key_file` give this node a client certificate, and
//! `etcd_user` authenticates with the password in `etcd_password_file` (see
//! [`hale_lock::tls`]). A wrong CA, a refused password or certificate, or an etcd that wants
//! credentials none were given for is "unknown" too, with the setting at fault named.

use hale_backend::{files, paths};
use hale_lock::config::StoreSpec;
use hale_lock::deps::DepMap;
use hale_lock::tls::{EtcdAuth, FileProblem};
use hale_lock::{check_host, Blocker, Holder, Kind, Lock, LockError, Request, Store, MAX_TTL};
use hale_ocf::{Action, ActionSpec, Agent, AgentInfo, Context, Failure, OcfResult, OcfStatus, Param, Values};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The shortest lease: a monitor must be able to renew it.
const MIN_TTL: Duration = Duration::from_secs(2);

const PARAMS: &[Param] = &[
    Param::new(
        "host",
        "Host to lock",
        "The host this resource locks, together with the hosts that depend on it (see \
         dependencies_file). Default: the node the resource runs on.",
    ),
    Param::new(
        "kind",
        "Lock kind",
        "exclusive: the host is about to become unavailable, nobody else may hold it; a \
         waiting exclusive lock goes before new shared ones. shared: the work relies on the \
         host staying up; many may share. file: shared, for work on one file of the host \
         (say which in reason).",
    )
    .kind(hale_ocf::Kind::Select(Kind::NAMES))
    .default("exclusive"),
    Param::new(
        "reason",
        "Reason",
        "Why the lock is held, recorded with it and in the history. Default: cluster resource \
         NAME.",
    ),
    Param::new(
        "store",
        "Lock store",
        "dir: a directory (local, or shared over NFS/SMB by every host that takes these locks; \
         hosts need synchronised clocks). etcd: an etcd v3 cluster, for locks shared by many \
         hosts and clusters.",
    )
    .kind(hale_ocf::Kind::Select(&["dir", "etcd"]))
    .default("dir"),
    Param::new(
        "path",
        "Lock directory",
        "The dir store's directory. It must exist (it is never created, so an unmounted share \
         is an error rather than a private empty directory).",
    )
    .default(hale_lock::config::DEFAULT_DIR),
    Param::new(
        "endpoints",
        "etcd endpoints",
        "The etcd store's members, comma-separated http://IP:PORT or https://IP:PORT URLs, \
         tried in order. Use addresses, not names, so that a DNS outage cannot stall a monitor \
         (an https:// certificate must then name the address in its subjectAltName). The etcd_* \
         settings below need https:// endpoints; plain http:// is for loopback and tests.",
    )
    .default("http://127.0.0.1:2379"),
    Param::new(
        "etcd_ca_file",
        "etcd CA file",
        "PEM file of the CAs that sign etcd's server certificate (https:// endpoints). \
         Default: the system's CAs (/etc/ssl/certs/ca-certificates.crt). The certificate is \
         always verified. Absolute path; it must exist on every node.",
    ),
    Param::new(
        "etcd_cert_file",
        "etcd client certificate",
        "PEM client certificate (with its chain) for an etcd started with --client-cert-auth, \
         with etcd_key_file. Absolute path. With etcd_user as well, the certificate must have \
         no Common Name (etcd's gateway refuses one when authentication is enabled).",
    ),
    Param::new(
        "etcd_key_file",
        "etcd client key",
        "PEM private key of etcd_cert_file: a regular file, not a symlink, not readable by \
         every user (mode 0600 or 0640). Absolute path.",
    ),
    Param::new(
        "etcd_user",
        "etcd user",
        "etcd user name (etcd's authentication), with etcd_password_file. The user needs \
         readwrite on the /hale/ prefix. Tokens are requested at /v3/auth/authenticate and \
         renewed when etcd no longer knows them.",
    ),
    Param::new(
        "etcd_password_file",
        "etcd password file",
        "Absolute path of a file holding etcd_user's password (first line), readable by root \
         and not by every user (mode 0600 or 0640), no symlink. Its content never appears in \
         the CIB, argv, logs or messages.",
    ),
    Param::new(
        "ttl",
        "Lease time",
        "Seconds the lock lives without renewal. The recurring monitor renews it, so keep ttl \
         at least three times the monitor interval; after a node failure the host is free \
         again ttl seconds later. From 2 seconds to one year (31536000).",
    )
    .kind(hale_ocf::Kind::Seconds)
    .default("60"),
    Param::new(
        "dependencies_file",
        "Dependencies file",
        "JSON map of host to the hosts that depend on it ({\"dc01\": [\"dc02\"], \"dc02\": \
         [\"dc01\"]}); locking a host also locks its dependents, transitively, cycles \
         allowed. It must exist on every node when set. Default: no dependencies.",
    ),
];

const ACTIONS: &[ActionSpec] = &[
    ActionSpec::new(Action::Start, 60),
    ActionSpec::new(Action::Stop, 30),
    ActionSpec::new(Action::Monitor, 20).interval(10),
    ActionSpec::new(Action::ValidateAll, 20),
    ActionSpec::new(Action::MetaData, 5),
];

/// The parsed parameters.
#[derive(Debug)]
pub struct Config {
    pub host: String,
    pub kind: Kind,
    pub reason: String,
    pub store: StoreSpec,
    pub ttl: Duration,
    pub dependencies_file: Option<PathBuf>,
    /// `pcmk.<node>.<resource>`.
    pub id: String,
    pub holder: Holder,
    pub state_file: PathBuf,
}

/// What the agent records about the lock it holds.
#[derive(Debug, Serialize, Deserialize)]
struct Recorded {
    id: String,
    store: String,
    location: String,
    token: u64,
    hosts: Vec<String>,
    /// etcd's TLS and authentication settings (file names and user, never a secret).
    #[serde(default, skip_serializing_if = "EtcdAuth::is_empty")]
    etcd: EtcdAuth,
}

impl Recorded {
    fn spec(&self) -> Option<StoreSpec> {
        match self.store.as_str() {
            "dir" => StoreSpec::from_parts("dir", Some(&self.location), None).ok(),
            _ => StoreSpec::etcd(&self.location, self.etcd.clone()).ok(),
        }
    }
}

/// The agent.
#[derive(Default)]
pub struct HostLock;

fn state_file(ctx: &Context) -> PathBuf {
    paths::run_file("hostlock", &ctx.state_name(), "json")
}

fn node(ctx: &Context) -> String {
    ctx.on_node.as_deref().map(hale_lock::normalize_host).unwrap_or_else(hale_lock::node_name)
}

/// Lock ids allow letters, digits and `. _ - @`, at most 128 of them: a longer node and
/// resource name is shortened with a hash of the whole (so two long names still differ).
fn lock_id(node: &str, ctx: &Context) -> String {
    let raw = format!("pcmk.{node}.{}", ctx.state_name());
    let safe: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@') { c } else { '_' })
        .collect();
    paths::shorten(&safe, 128)
}

/// A store whose requests fit in what is left of the action, keeping its margin. An etcd
/// CA, certificate, key or password file that cannot be used (changed since validation) is a
/// failure: the lock state is unknown.
fn open(spec: &StoreSpec, ctx: &Context) -> Result<Box<dyn Store>, LockError> {
    let left = ctx.deadline.remaining_with_margin(ctx.deadline.margin());
    spec.open((left / 3).clamp(Duration::from_millis(200), Duration::from_secs(5)))
        .map_err(|e| LockError::Unknown(e.to_string()))
}

fn unknown(e: &LockError) -> Failure {
    Failure::generic(format!("{e}"))
}

/// Pacemaker keeps about 128 characters of a reason: the holder in short, the rest in the log.
fn busy_reason(b: &Blocker) -> String {
    match b {
        Blocker::Lock { host, lock } => {
            format!(
                "host {host} is locked {} by {} (token {}, lock {})",
                lock.kind, lock.holder.node, lock.token, lock.id
            )
        }
        Blocker::Intent { host, intent } => {
            format!("host {host} is reserved for an exclusive lock of {} ({})", intent.holder.node, intent.id)
        }
    }
}

fn record(c: &Config, lock: &Lock) {
    let (store, location, etcd) = match &c.store {
        StoreSpec::Dir(p) => ("dir", p.display().to_string(), EtcdAuth::default()),
        StoreSpec::Etcd(e, auth) => ("etcd", e.join(","), auth.clone()),
    };
    let r = Recorded {
        id: lock.id.clone(),
        store: store.into(),
        location,
        token: lock.token,
        hosts: lock.hosts.clone(),
        etcd,
    };
    let write = paths::ensure_run_dir()
        .and_then(|_| files::write_atomic(&c.state_file, &serde_json::to_vec(&r).unwrap_or_default(), 0o644));
    if let Err(e) = write {
        // The id is derived from the node and resource, so stop still finds the lock.
        log::warn!("cannot record the lock in {}: {e}", c.state_file.display());
    }
}

fn forget(path: &Path) {
    let _ = std::fs::remove_file(path);
}

impl Agent for HostLock {
    type Config = Config;

    const INFO: AgentInfo = AgentInfo {
        name: "hostlock",
        shortdesc: "Holds a leased lock on a host (and its dependents) for maintenance",
        longdesc: "Takes a lock on a host before maintenance makes it unavailable, so that \
                   two jobs never take down the same host, or all the hosts a service \
                   depends on. start locks the host and its dependents (dependencies_file) \
                   all or nothing, waiting within the start timeout while others hold them. \
                   The recurring monitor renews the lease and fails if it was lost; a probe \
                   only reads. stop releases the lock into the history. Locks live in a \
                   directory or in etcd (over https:// with a CA, a client certificate and \
                   an etcd user: the etcd_* parameters); see `hale lock` for the same locks \
                   from scripts.",
        version: env!("CARGO_PKG_VERSION"),
    };
    const PARAMS: &'static [Param] = PARAMS;
    const ACTIONS: &'static [ActionSpec] = ACTIONS;
    const CHECK_LEVELS: &'static [u32] = &[10];

    fn configure(&self, v: &Values, ctx: &Context) -> OcfResult<Config> {
        let node = node(ctx);
        let host = v.str("host").map(hale_lock::normalize_host).unwrap_or_else(|| node.clone());
        check_host(&host).map_err(|e| Failure::configured(format!("parameter host: {e}")))?;
        let kind = Kind::parse(v.text("kind")).unwrap_or(Kind::Exclusive);
        let store = match v.text("store") {
            "etcd" => {
                let auth = EtcdAuth {
                    ca_file: v.str("etcd_ca_file").map(PathBuf::from),
                    cert_file: v.str("etcd_cert_file").map(PathBuf::from),
                    key_file: v.str("etcd_key_file").map(PathBuf::from),
                    user: v.str("etcd_user").map(str::to_string),
                    password_file: v.str("etcd_password_file").map(PathBuf::from),
                };
                StoreSpec::etcd(v.str("endpoints").unwrap_or_default(), auth)
                    .map_err(|e| Failure::configured(format!("parameter {e}")))?
            }
            _ => StoreSpec::from_parts("dir", v.str("path"), None)
                .map_err(|e| Failure::configured(format!("parameter {e}")))?,
        };
        let ttl = v.seconds("ttl");
        if ttl < MIN_TTL || ttl > MAX_TTL {
            return Err(Failure::configured(format!(
                "parameter ttl={}s is too {}: out of range ({} to {} seconds)",
                ttl.as_secs(),
                if ttl < MIN_TTL { "short" } else { "long" },
                MIN_TTL.as_secs(),
                MAX_TTL.as_secs()
            )));
        }
        let dependencies_file = v.str("dependencies_file").map(PathBuf::from);
        if let Some(p) = dependencies_file.as_ref().filter(|p| !p.is_absolute()) {
            return Err(Failure::configured(format!("parameter dependencies_file='{}' must be absolute", p.display())));
        }
        let reason =
            v.str("reason").map(str::to_string).unwrap_or_else(|| format!("cluster resource {}", ctx.state_name()));
        let mut holder = Holder::this_process(&reason);
        holder.node = node.clone();
        holder.resource = Some(ctx.state_name());
        Ok(Config {
            host,
            kind,
            reason,
            store,
            ttl,
            dependencies_file,
            id: lock_id(&node, ctx),
            holder,
            state_file: state_file(ctx),
        })
    }

    fn validate_host(&self, c: &Config, _ctx: &Context) -> OcfResult<()> {
        match &c.store {
            StoreSpec::Dir(p) if !p.is_dir() => {
                return Err(Failure::not_installed(format!(
                    "lock directory {} does not exist on this node (not mounted?)",
                    p.display()
                )));
            }
            StoreSpec::Etcd(_, auth) => match auth.check_files() {
                Err(FileProblem::Missing(m)) => return Err(Failure::not_installed(m)),
                Err(FileProblem::Unusable(m)) => return Err(Failure::args(m)),
                Ok(()) => {}
            },
            _ => {}
        }
        if let Some(f) = &c.dependencies_file {
            if !f.exists() {
                return Err(Failure::not_installed(format!("dependencies_file {} does not exist", f.display())));
            }
            DepMap::load(f).map_err(|e| Failure::args(e.to_string()))?;
        }
        Ok(())
    }

    fn start(&self, c: &Config, ctx: &Context) -> OcfResult {
        let hosts = match &c.dependencies_file {
            Some(f) => DepMap::load(f).map_err(|e| Failure::args(e.to_string()))?.closure(&c.host).hosts,
            None => vec![],
        };
        let store = open(&c.store, ctx).map_err(|e| unknown(&e))?;
        let req = Request::new(&c.id, &c.host, &hosts, c.kind, c.holder.clone(), c.ttl);
        // Keep time to report, and for one store request after the wait.
        let wait = ctx.deadline.remaining_with_margin(ctx.deadline.margin() * 2);
        match hale_lock::acquire(store.as_ref(), &req, wait) {
            Ok(lock) => {
                record(c, &lock);
                log::info!(
                    "locked {} ({}) in {}: token {}, lock {}, until {}",
                    lock.hosts.join(", "),
                    lock.kind,
                    store.describe(),
                    lock.token,
                    lock.id,
                    lock.expires_at
                );
                Ok(OcfStatus::Success)
            }
            Err(LockError::Busy(b)) => {
                log::warn!("gave up waiting for the lock: {b}");
                Err(Failure::generic(busy_reason(&b)))
            }
            Err(e @ LockError::Invalid(_)) => Err(Failure::configured(e.to_string())),
            Err(e) => Err(unknown(&e)),
        }
    }

    fn stop(&self, c: &Config, ctx: &Context) -> OcfResult {
        release(&c.store, &c.id, &c.state_file, ctx);
        Ok(OcfStatus::Success)
    }

    fn stop_unconfigured(&self, ctx: &Context, _problem: &Failure) -> OcfResult {
        // Parameters unusable: release what the record says we hold.
        let path = state_file(ctx);
        // Never through a planted link; a recorded id is checked by release like any other.
        let recorded = files::read_nofollow(&path).ok().and_then(|b| serde_json::from_slice::<Recorded>(&b).ok());
        if let Some(spec) = recorded.as_ref().and_then(Recorded::spec) {
            release(&spec, &recorded.as_ref().map(|r| r.id.clone()).unwrap_or_default(), &path, ctx);
        }
        Ok(OcfStatus::Success)
    }

    fn monitor(&self, c: &Config, ctx: &Context) -> OcfResult {
        let store = open(&c.store, ctx).map_err(|e| unknown(&e))?;
        if ctx.probe {
            // Read only: no renewal, no clean-up.
            return match hale_lock::held(store.as_ref(), &c.id) {
                Ok(Some(_)) => Ok(OcfStatus::Success),
                Ok(None) => Ok(OcfStatus::NotRunning),
                Err(e) => Err(unknown(&e)),
            };
        }
        match hale_lock::renew(store.as_ref(), &c.id, Some(c.ttl)) {
            Ok(lock) => {
                log::debug!("renewed {} until {}", lock.id, lock.expires_at);
                Ok(OcfStatus::Success)
            }
            Err(LockError::NotHeld(_)) if c.state_file.exists() => {
                // We held it and it is gone: say who has the host now, if anyone.
                let now = store.state().ok().and_then(|s| s.locks_on(&c.host).next().cloned());
                let who = now.map(|l| format!("; now locked {} by {}", l.kind, l.holder.node)).unwrap_or_default();
                Err(Failure::generic(format!("lock {} on {} was lost (lease expired){who}", c.id, c.host)))
            }
            Err(LockError::NotHeld(_)) => Ok(OcfStatus::NotRunning),
            Err(e) => Err(unknown(&e)),
        }
    }
}

fn release(spec: &StoreSpec, id: &str, state_file: &Path, ctx: &Context) {
    if !id.is_empty() {
        match open(spec, ctx).and_then(|store| hale_lock::release(store.as_ref(), id)) {
            Ok(Some(l)) => log::info!("released {} ({}), token {}", l.id, l.hosts.join(", "), l.token),
            Ok(None) => {}
            // Stop must succeed: nobody renews the lease any more, so it lapses by itself.
            Err(e) => log::warn!("could not release {id}, its lease will lapse by itself: {e}"),
        }
    }
    forget(state_file);
}

#[cfg(test)]
mod tests {
    use super::*;
    use hale_ocf::Env;

    fn ctx(action: Action) -> Context {
        let mut env = Env::new();
        env.set("OCF_RESOURCE_INSTANCE", "maint:2").set("OCF_RESKEY_CRM_meta_on_node", "Node-1");
        Context::new(action, &env, &[0, 10], Duration::from_secs(20))
    }

    #[test]
    fn ids_are_per_node_and_resource() {
        assert_eq!(lock_id("node-1", &ctx(Action::Start)), "pcmk.node-1.maint");
        assert_eq!(node(&ctx(Action::Start)), "node-1");
    }

    #[test]
    fn long_resource_names_give_valid_distinct_ids() {
        let mut env = Env::new();
        let long = "m".repeat(300);
        env.set("OCF_RESOURCE_INSTANCE", &long).set("OCF_RESKEY_CRM_meta_on_node", "node-1");
        let a = lock_id("node-1", &Context::new(Action::Start, &env, &[0, 10], Duration::from_secs(20)));
        env.set("OCF_RESOURCE_INSTANCE", format!("{long}n"));
        let b = lock_id("node-1", &Context::new(Action::Start, &env, &[0, 10], Duration::from_secs(20)));
        assert!(hale_lock::check_id(&a).is_ok(), "{a}");
        assert!(a.starts_with("pcmk.node-1.mmm"), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn reasons_fit_pacemakers_limit() {
        let lock = Lock {
            id: "pcmk.node-2.maint".into(),
            hosts: vec!["hv01".into()],
            target: "hv01".into(),
            kind: Kind::Exclusive,
            path: None,
            holder: Holder::this_process("a very long reason that goes on and on about patching"),
            token: 123456,
            ttl_secs: 60,
            acquired_at: hale_lock::Time::now(),
            expires_at: hale_lock::Time::now(),
            lease: None,
        };
        let r = busy_reason(&Blocker::Lock { host: "hv01".into(), lock: Box::new(lock) });
        assert!(r.len() < 128, "{r}");
        assert!(r.starts_with("host hv01 is locked exclusive by "), "{r}");
    }
}
