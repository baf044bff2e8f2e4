//! `hale lock`: host locks for maintenance scripts, on the same stores and with the same rules
//! as `ocf:hale:hostlock`.
//!
//! Exit codes (the same for every subcommand, so scripts can branch on them):
//! 0 done (status: free), 1 error (bad configuration, dependencies file, command failed to
//! start, the store refuses to grant: its token counter is exhausted), 2 usage (a --ttl out
//! of range included), 3 held by someone else (acquire gave up after --wait; status: locked),
//! 4 unknown: the store cannot be read (unreachable, unmounted, corrupt), never reported as
//! free, 5 not held: the lock id holds nothing (released, or its lease expired). An etcd
//! whose certificate does not verify, or that refuses the password or the client certificate,
//! is unknown (4) as well; an etcd CA, certificate, key or password file that cannot be read
//! is a configuration error (1). `run` ended
//! by SIGTERM, SIGINT or SIGHUP passes the signal to its command, waits for it (at most
//! [`GRACE`], then kills it), releases the lock and exits 128 + the signal number.

use clap::{Args, Subcommand};
use hale_backend::signals;
use hale_lock::config::{hale_seconds, Config};
use hale_lock::deps::DepMap;
use hale_lock::tls::EtcdAuth;
use hale_lock::{Holder, Kind, Lock, LockError, Record, Request, State, Store};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const EXIT_OK: i32 = 0;
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_HELD: i32 = 3;
pub const EXIT_UNKNOWN: i32 = 4;
pub const EXIT_NOT_HELD: i32 = 5;

/// Built-in defaults when neither flags nor the configuration file say otherwise.
const DEFAULT_TTL: Duration = Duration::from_secs(3600);
const DEFAULT_WAIT: Duration = Duration::ZERO;

/// How long `run` waits for its command after passing on a termination signal, before it
/// kills it: the lock is released only once the command is gone.
const GRACE: Duration = Duration::from_secs(10);

#[derive(Args)]
pub struct LockArgs {
    #[command(subcommand)]
    command: LockCommand,
    /// Configuration file [default: $HALE_LOCK_CONFIG, else /etc/hale/lock.conf if it exists].
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where locks live: dir (a local or shared directory) or etcd [default: from the
    /// configuration, else dir].
    #[arg(long, global = true, value_parser = ["dir", "etcd"])]
    store: Option<String>,
    /// The dir store's directory [default: from the configuration, else /var/lib/hale/locks].
    #[arg(long, global = true, value_name = "DIR")]
    dir: Option<String>,
    /// etcd endpoints, comma-separated http://host:port or https://host:port [default: from
    /// the configuration, else http://127.0.0.1:2379].
    #[arg(long, global = true, value_name = "URLS")]
    endpoints: Option<String>,
    /// PEM file of the CAs that sign etcd's certificate (https:// endpoints) [default: from
    /// the configuration, else the system's CAs].
    #[arg(long, global = true, value_name = "FILE")]
    etcd_ca_file: Option<PathBuf>,
    /// PEM client certificate for etcd's --client-cert-auth, with --etcd-key-file.
    #[arg(long, global = true, value_name = "FILE")]
    etcd_cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate (not readable by every user).
    #[arg(long, global = true, value_name = "FILE")]
    etcd_key_file: Option<PathBuf>,
    /// etcd user, with --etcd-password-file.
    #[arg(long, global = true, value_name = "NAME")]
    etcd_user: Option<String>,
    /// File holding the etcd user's password (first line; not readable by every user). The
    /// password is never given on the command line.
    #[arg(long, global = true, value_name = "FILE")]
    etcd_password_file: Option<PathBuf>,
    /// Longest wait for one store request (seconds).
    #[arg(long, global = true, value_name = "S", default_value = "10", value_parser = seconds)]
    timeout: Duration,
}

fn seconds(v: &str) -> Result<Duration, String> {
    hale_seconds(v).ok_or_else(|| format!("'{v}' is not a duration (30, 30s, 10m, 2h, 0.5)"))
}

/// A lease length: a duration within [`hale_lock::check_ttl`]'s range.
fn ttl_seconds(v: &str) -> Result<Duration, String> {
    match hale_seconds(v) {
        Some(d) => hale_lock::check_ttl(d).map(|_| d).map_err(|e| e.to_string()),
        None => Err(format!(
            "'{v}' is not a lease time: a duration out of range (1 to {} seconds) or malformed (30, 30s, 10m, 2h)",
            hale_lock::MAX_TTL.as_secs()
        )),
    }
}

#[derive(Args)]
struct Take {
    /// The host to lock; its dependents are locked with it (see `hale lock deps`).
    host: String,
    /// exclusive: the host goes down, nobody else may hold it; shared: keep it up, others
    /// may share; file: shared, naming the file worked on [default: exclusive, or file with
    /// --path].
    #[arg(long, value_parser = ["exclusive", "shared", "file"])]
    kind: Option<String>,
    /// The file being worked on (a file lock).
    #[arg(long, value_name = "P")]
    path: Option<String>,
    /// Why (recorded with the lock and in the history).
    #[arg(long, short = 'r')]
    reason: String,
    /// Lease length: the lock expires unless renewed within it; 1 s to one year [default:
    /// from the configuration, else 3600].
    #[arg(long, value_name = "S", value_parser = ttl_seconds)]
    ttl: Option<Duration>,
    /// Wait up to this long while the host is held by others [default: from the
    /// configuration, else 0].
    #[arg(long, value_name = "S", value_parser = seconds)]
    wait: Option<Duration>,
    /// Lock only HOST, not the hosts that depend on it.
    #[arg(long)]
    no_deps: bool,
    /// Dependencies file (JSON: host → hosts that depend on it) [default: from the configuration].
    #[arg(long, value_name = "FILE")]
    deps: Option<PathBuf>,
    /// Use this lock id instead of a new random one (letters, digits, . _ - @).
    #[arg(long)]
    id: Option<String>,
}

#[derive(Subcommand)]
enum LockCommand {
    /// Lock HOST and its dependents, all or nothing; prints the lock id and the fencing token.
    Acquire {
        #[command(flatten)]
        take: Take,
        /// Print the lock as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Extend a lock's lease by its ttl (or --ttl) from now.
    Renew {
        id: String,
        #[arg(long, value_name = "S", value_parser = ttl_seconds)]
        ttl: Option<Duration>,
    },
    /// Release a lock into the history.
    Release { id: String },
    /// Locks on HOST (or all): exit 0 free, 3 locked, 4 unknown.
    Status {
        host: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The hosts locking HOST takes (its dependency closure), and the cycles met.
    Deps {
        host: String,
        #[arg(long, value_name = "FILE")]
        deps: Option<PathBuf>,
    },
    /// Every lock taken (on HOST), oldest first, with holder, reason, times and how it ended.
    History {
        host: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Lock HOST, run COMMAND (no shell) while renewing the lease, release when it ends; exit
    /// with COMMAND's status, or 5 if the lease was lost meanwhile. SIGTERM, SIGINT or SIGHUP
    /// is passed on to COMMAND, which gets 10 s to end before it is killed; then the lock is
    /// released and the exit status is 128 + the signal number.
    Run {
        #[command(flatten)]
        take: Take,
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
}

/// Run `hale lock ...`; returns the exit code.
pub fn run(args: LockArgs) -> i32 {
    match execute(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hale lock: {e}");
            exit_code(&e)
        }
    }
}

fn exit_code(e: &LockError) -> i32 {
    match e {
        LockError::Unknown(_) => EXIT_UNKNOWN,
        LockError::Busy(_) => EXIT_HELD,
        LockError::NotHeld(_) => EXIT_NOT_HELD,
        LockError::Invalid(_) | LockError::Refused(_) => EXIT_ERROR,
    }
}

fn execute(args: LockArgs) -> Result<i32, LockError> {
    let config = Config::load(args.config.as_deref()).map_err(LockError::Invalid)?;
    let etcd = EtcdAuth {
        ca_file: args.etcd_ca_file.clone(),
        cert_file: args.etcd_cert_file.clone(),
        key_file: args.etcd_key_file.clone(),
        user: args.etcd_user.clone(),
        password_file: args.etcd_password_file.clone(),
    };
    let spec = config
        .store_spec(args.store.as_deref(), args.dir.as_deref(), args.endpoints.as_deref(), &etcd)
        .map_err(LockError::Invalid)?;
    let store = spec.open(args.timeout)?;
    let store = store.as_ref();
    match args.command {
        LockCommand::Acquire { take, json } => {
            let req = request(&take, &config)?;
            let lock = hale_lock::acquire(store, &req, take.wait.or(config.wait).unwrap_or(DEFAULT_WAIT))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&lock).unwrap_or_default());
            } else {
                println!("{} {}", lock.id, lock.token);
            }
            eprintln!(
                "locked {} ({}) until {}: lock {}, token {}",
                lock.hosts.join(", "),
                lock.kind,
                lock.expires_at,
                lock.id,
                lock.token
            );
            Ok(EXIT_OK)
        }
        LockCommand::Renew { id, ttl } => {
            let lock = hale_lock::renew(store, &id, ttl)?;
            eprintln!("renewed {id} until {}", lock.expires_at);
            Ok(EXIT_OK)
        }
        LockCommand::Release { id } => match hale_lock::release(store, &id)? {
            Some(lock) => {
                eprintln!("released {id} ({}), token {}", lock.hosts.join(", "), lock.token);
                Ok(EXIT_OK)
            }
            None => Err(LockError::NotHeld(id)),
        },
        LockCommand::Status { host, json } => status(store, host.as_deref(), json),
        LockCommand::Deps { host, deps } => {
            let map = dep_map(deps.as_deref(), &config)?;
            let c = map.closure(&host);
            for h in &c.hosts {
                println!("{h}");
            }
            for (from, to) in &c.back_edges {
                println!("cycle: {from} -> {to} (already locked)");
            }
            Ok(EXIT_OK)
        }
        LockCommand::History { host, json } => {
            let records = store.history(host.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&records).unwrap_or_default());
            } else {
                for r in &records {
                    println!("{}", history_line(r));
                }
            }
            Ok(EXIT_OK)
        }
        LockCommand::Run { take, command } => {
            let req = request(&take, &config)?;
            let lock = hale_lock::acquire(store, &req, take.wait.or(config.wait).unwrap_or(DEFAULT_WAIT))?;
            eprintln!("locked {} ({}): lock {}, token {}", lock.hosts.join(", "), lock.kind, lock.id, lock.token);
            hold_while(store, &lock, &command)
        }
    }
}

fn dep_map(explicit: Option<&Path>, config: &Config) -> Result<DepMap, LockError> {
    match explicit.or(config.dependencies_file.as_deref()) {
        Some(p) => DepMap::load(p),
        None => Ok(DepMap::default()),
    }
}

fn request(take: &Take, config: &Config) -> Result<Request, LockError> {
    let kind = match (&take.kind, &take.path) {
        (Some(k), _) => Kind::parse(k).unwrap_or(Kind::Exclusive),
        (None, Some(_)) => Kind::File,
        (None, None) => Kind::Exclusive,
    };
    let hosts = if take.no_deps { vec![] } else { dep_map(take.deps.as_deref(), config)?.closure(&take.host).hosts };
    let id = take.id.clone().unwrap_or_else(hale_lock::new_id);
    let ttl = take.ttl.or(config.ttl).unwrap_or(DEFAULT_TTL);
    let mut req = Request::new(&id, &take.host, &hosts, kind, Holder::this_process(&take.reason), ttl);
    req.path = take.path.clone();
    Ok(req)
}

fn status(store: &dyn Store, host: Option<&str>, json: bool) -> Result<i32, LockError> {
    let state = match store.state() {
        Ok(s) => s,
        Err(e) if json => {
            println!("{}", serde_json::json!({"state": "unknown", "store": store.describe(), "error": e.to_string()}));
            return Ok(EXIT_UNKNOWN);
        }
        Err(e) => return Err(e),
    };
    let host = host.map(hale_lock::normalize_host);
    let State { locks, intents, .. } = state;
    let locks: Vec<Lock> = locks.into_iter().filter(|l| host.as_ref().is_none_or(|h| l.covers(h))).collect();
    let intents: Vec<_> = intents.into_iter().filter(|i| host.as_ref().is_none_or(|h| i.hosts.contains(h))).collect();
    let word = if locks.is_empty() { "free" } else { "locked" };
    if json {
        let v = serde_json::json!({"state": word, "host": host, "store": store.describe(), "locks": locks, "waiting": intents});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!("{}: {word}", host.as_deref().unwrap_or("all hosts"));
        for l in &locks {
            println!(
                "  {} {} token {} lock {} by {} since {} until {}",
                l.hosts.join(","),
                l.kind,
                l.token,
                l.id,
                l.holder,
                l.acquired_at,
                l.expires_at
            );
        }
        for i in &intents {
            println!("  {} waiting exclusive lock {} by {} since {}", i.hosts.join(","), i.id, i.holder, i.since);
        }
    }
    Ok(if locks.is_empty() { EXIT_OK } else { EXIT_HELD })
}

fn history_line(r: &Record) -> String {
    let l = &r.lock;
    let end = match &r.end {
        Some(e) => format!("{} {}", format!("{:?}", e.how).to_lowercase(), e.at),
        None => format!("held until {}", l.expires_at),
    };
    let path = l.path.as_deref().map(|p| format!(" file {p}")).unwrap_or_default();
    format!(
        "token {} lock {} {} {}{path} by {} acquired {} {end}",
        l.token,
        l.id,
        l.kind,
        l.hosts.join(","),
        l.holder,
        l.acquired_at
    )
}

/// Run `command` while holding `lock`, renewing it a third of the way through each lease. A
/// termination signal is passed on to the command, which is waited for (at most [`GRACE`],
/// then killed) before the lock is released: the lock never outlives its holder's work, and
/// the work never runs on without its lock.
fn hold_while(store: &dyn Store, lock: &Lock, command: &[String]) -> Result<i32, LockError> {
    // Caught from here on (not during acquire's wait, which a signal may simply end).
    if let Err(e) = signals::catch_termination() {
        let _ = hale_lock::release(store, &lock.id);
        return Err(LockError::Invalid(format!("cannot catch termination signals: {e}")));
    }
    let mut child = match Command::new(&command[0]).args(&command[1..]).spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = hale_lock::release(store, &lock.id);
            return Err(LockError::Invalid(format!("cannot run {}: {e}", command[0])));
        }
    };
    let every = Duration::from_secs(lock.ttl_secs).div_f64(3.0);
    let mut next = Instant::now() + every;
    let mut expires = Instant::now() + Duration::from_secs(lock.ttl_secs);
    let mut lost = false;
    // The signal passed on, when, and whether the command was killed after the grace.
    let mut ending: Option<(i32, Instant, bool)> = None;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => return Err(LockError::Invalid(format!("waiting for {}: {e}", command[0]))),
        }
        match (&mut ending, signals::caught()) {
            (None, Some(sig)) => {
                eprintln!(
                    "hale lock: signal {sig}: passing it to {}, waiting up to {}s before releasing {}",
                    command[0],
                    GRACE.as_secs(),
                    lock.id
                );
                if let Err(e) = signals::forward(&child, sig) {
                    eprintln!("hale lock: cannot pass signal {sig} to {}: {e}", command[0]);
                }
                ending = Some((sig, Instant::now(), false));
            }
            (Some((_, since, killed @ false)), _) if since.elapsed() >= GRACE => {
                eprintln!("hale lock: {} still runs {}s after the signal; killing it", command[0], GRACE.as_secs());
                let _ = child.kill();
                *killed = true;
            }
            _ => {}
        }
        if !lost && Instant::now() >= next {
            next = Instant::now() + every;
            match hale_lock::renew(store, &lock.id, None) {
                Ok(_) => expires = Instant::now() + Duration::from_secs(lock.ttl_secs),
                Err(LockError::Unknown(e)) if Instant::now() < expires => {
                    eprintln!("hale lock: cannot renew {} yet ({e}); retrying", lock.id);
                    next = Instant::now() + Duration::from_secs(1).min(every);
                }
                Err(e) => {
                    eprintln!("hale lock: LOST lock {} while {} runs: {e}", lock.id, command[0]);
                    lost = true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    match hale_lock::release(store, &lock.id) {
        Ok(Some(_)) => {}
        Ok(None) => lost = true,
        Err(e) => eprintln!("hale lock: cannot release {} ({e}); its lease expires by itself", lock.id),
    }
    if let Some((sig, ..)) = ending {
        return Ok(signals::exit_status(sig));
    }
    if lost {
        return Ok(EXIT_NOT_HELD);
    }
    Ok(signals::status_code(&status).unwrap_or(EXIT_ERROR))
}
