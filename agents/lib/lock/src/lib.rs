//! Leased host locks for safe maintenance: the model, the rules, and one [`Store`] interface
//! with two stores, [`dir::DirStore`] (a local or shared directory) and [`etcd::EtcdStore`]
//! (etcd's v3 API, for locks shared by many hosts).
//!
//! A lock is taken by one *request*: one lock id, one kind, one holder, and the set of hosts
//! it covers (a host and, unless asked otherwise, the hosts that depend on it, see [`deps`]).
//! What this crate guarantees, whatever the store:
//!
//! - **All or nothing.** The whole set is granted in one atomic step of the store (one
//!   directory commit under the store mutex, one etcd transaction), or nothing is. There is
//!   never a half-taken dependency chain to roll back, and no hold-and-wait, so two requests
//!   with overlapping closures cannot deadlock.
//! - **Leases.** Every lock expires `ttl` after its grant or last renewal. A crashed holder's
//!   lock frees itself.
//! - **Writer preference.** An exclusive request that has to wait leaves an *intent* on its
//!   hosts; new shared requests wait behind it, existing shared locks drain, and the exclusive
//!   request gets the hosts within its wait time. The intent is a lease too.
//! - **Fencing tokens.** Every grant gets a number larger than every earlier grant of the same
//!   store, so a resource can reject a holder older than the one it last saw.
//! - **Fail closed.** A store that cannot be read is [`LockError::Unknown`], never "free".
//! - **History.** One record per grant, written in the same step as the grant, and an end
//!   record when the lock is released or found expired.

pub mod config;
pub mod deps;
pub mod dir;
pub mod etcd;
pub mod time;
pub mod tls;

/// This host's name (lower case) and the user this process runs as, from the backend.
pub use hale_backend::system::{node_name, user_name};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{Duration, Instant};
pub use time::Time;

/// What a lock allows others to do on the same host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// One holder per host, excluding every other lock (ResourceLocker's Host lock): the host
    /// is about to become unavailable.
    Exclusive,
    /// Many may coexist (ResourceLocker's Generic lock): "I rely on this host, keep it up".
    Shared,
    /// A shared lock that names the file being worked on (ResourceLocker's File lock).
    File,
}

impl Kind {
    pub const NAMES: &'static [&'static str] = &["exclusive", "shared", "file"];

    pub fn parse(s: &str) -> Option<Kind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "exclusive" => Some(Kind::Exclusive),
            "shared" => Some(Kind::Shared),
            "file" => Some(Kind::File),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Kind::Exclusive => "exclusive",
            Kind::Shared => "shared",
            Kind::File => "file",
        }
    }
    /// Whether two locks of these kinds can be held on the same host at once.
    pub fn compatible(self, other: Kind) -> bool {
        self != Kind::Exclusive && other != Kind::Exclusive
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who holds a lock: enough for a person to find the holder and ask it, and for an audit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The node (host name, or the cluster's node name for an agent).
    pub node: String,
    /// The process that took the lock.
    pub pid: u32,
    /// The user that process ran as.
    pub user: String,
    /// Why: free text given by the requester.
    pub reason: String,
    /// The cluster resource holding it, when the holder is `ocf:hale:hostlock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

impl Holder {
    /// This process on this host, as the current user.
    pub fn this_process(reason: &str) -> Holder {
        Holder {
            node: node_name(),
            pid: std::process::id(),
            user: user_name(),
            reason: reason.to_string(),
            resource: None,
        }
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (pid {}, user {}", self.node, self.pid, self.user)?;
        if let Some(r) = &self.resource {
            write!(f, ", resource {r}")?;
        }
        write!(f, ": '{}')", self.reason)
    }
}

/// A granted lock: one lock id over one or more hosts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub id: String,
    /// The hosts it covers, lower case, sorted: the requested host and its dependents.
    pub hosts: Vec<String>,
    /// The host that was asked for (the others are its dependents).
    pub target: String,
    pub kind: Kind,
    /// For a file lock: the file being worked on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub holder: Holder,
    /// The fencing token: larger than every earlier grant's in this store.
    pub token: u64,
    /// The lease length the holder renews with.
    pub ttl_secs: u64,
    pub acquired_at: Time,
    pub expires_at: Time,
    /// The etcd lease carrying this lock (etcd store only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<i64>,
}

impl Lock {
    pub fn covers(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h == host)
    }

    /// Whether a lock read from a store is one this crate could have written: its id, target
    /// and hosts pass [`check_id`] and [`check_host`]. Anyone who can write the store can write
    /// any record; ids become file names and keys, so a record that fails is corrupt and is
    /// never acted upon (see [`dir`]).
    pub fn check_record(&self) -> Result<(), String> {
        check_id(&self.id).map_err(|e| e.to_string())?;
        for h in self.hosts.iter().chain([&self.target]) {
            check_host(h).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// A waiting exclusive request's claim on its hosts: new shared requests wait behind it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub id: String,
    pub hosts: Vec<String>,
    pub holder: Holder,
    pub since: Time,
    pub expires_at: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<i64>,
}

impl Intent {
    /// As [`Lock::check_record`].
    pub fn check_record(&self) -> Result<(), String> {
        check_id(&self.id).map_err(|e| e.to_string())?;
        for h in &self.hosts {
            check_host(h).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// How a lock ended, as the history records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ending {
    /// Released by its holder (or by `hale lock release` on its behalf).
    Released,
    /// The lease ran out: the holder stopped renewing (crashed, fenced, cut off).
    Expired,
    /// The granting process died inside the dir store's commit, after the history record and
    /// before the lock file: the lock was never visible to anyone (`at` is its grant time).
    Abandoned,
}

/// The end of a lock in the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    pub how: Ending,
    pub at: Time,
}

/// One history record: the grant as it was made, and how it ended (none while it is held).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    #[serde(flatten)]
    pub lock: Lock,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<End>,
}

/// Everything live in a store, as one consistent view.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub locks: Vec<Lock>,
    pub intents: Vec<Intent>,
    /// The last fencing token handed out.
    pub last_token: u64,
}

impl State {
    pub fn lock(&self, id: &str) -> Option<&Lock> {
        self.locks.iter().find(|l| l.id == id)
    }
    pub fn intent(&self, id: &str) -> Option<&Intent> {
        self.intents.iter().find(|l| l.id == id)
    }
    pub fn locks_on<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a Lock> + 'a {
        self.locks.iter().filter(move |l| l.covers(host))
    }
}

/// One write a decision asks the store to make, all of them in one atomic step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A new lock: the store records it, its history record and the new last token.
    Grant(Lock),
    /// The same lock with a later expiry.
    Renew(Lock),
    /// The lock is gone: remove it and write its end record.
    Release(Lock, End),
    SetIntent(Intent),
    DropIntent(Intent),
}

impl Change {
    /// The lock id it writes, checked again with [`check_id`] just before the write: the id
    /// becomes a file name or a key, and a mistake must never write outside the store.
    pub fn checked_id(&self) -> Result<&str, LockError> {
        let id = match self {
            Change::Grant(l) | Change::Renew(l) | Change::Release(l, _) => &l.id,
            Change::SetIntent(i) | Change::DropIntent(i) => &i.id,
        };
        check_id(id).map_err(|e| LockError::Unknown(format!("refused to write lock {id:?}: {e}")))?;
        Ok(id)
    }
}

/// What stands in a request's way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocker {
    Lock { host: String, lock: Box<Lock> },
    Intent { host: String, intent: Box<Intent> },
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocker::Lock { host, lock } => write!(
                f,
                "host {host} is locked {} by {} until {}, token {}, lock {}",
                lock.kind, lock.holder, lock.expires_at, lock.token, lock.id
            ),
            Blocker::Intent { host, intent } => write!(
                f,
                "host {host} is reserved for a waiting exclusive lock by {}, lock {}",
                intent.holder, intent.id
            ),
        }
    }
}

/// The answer of a decision, returned by [`Store::transact`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Granted(Lock),
    Blocked(Blocker),
    Renewed(Lock),
    Released(Lock),
    /// The lock id holds nothing (released, expired, or never granted).
    NotHeld,
    /// No write was needed.
    Unchanged,
    /// The store cannot grant anything more: its fencing-token counter is at `u64::MAX`, and
    /// a wrapped token would let an old holder look newer than every later one.
    Exhausted,
}

/// Why a lock operation did not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockError {
    /// The store cannot be read or written: unreachable, not mounted, no permission, corrupt.
    /// The lock state is unknown, which is never taken to mean "free".
    Unknown(String),
    /// Held by someone else for the whole wait.
    Busy(Blocker),
    /// The lock id holds nothing: released, or its lease expired.
    NotHeld(String),
    /// A request no store could accept (bad id, bad host name, a ttl out of range).
    Invalid(String),
    /// The store refuses to grant, for the reason given (its token counter is exhausted).
    Refused(String),
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Unknown(m) => write!(f, "lock state unknown: {m}"),
            LockError::Busy(b) => write!(f, "{b}"),
            LockError::NotHeld(id) => write!(f, "lock {id} is not held (released, or its lease expired)"),
            LockError::Invalid(m) | LockError::Refused(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for LockError {}

/// The decision function a store runs inside its atomic step: it sees one consistent [`State`]
/// (live entries only) and the time, and says what to write and what to answer.
pub type Decide<'a> = dyn FnMut(&State, Time) -> (Vec<Change>, Verdict) + 'a;

/// A place locks live. Implementations make [`Store::transact`] atomic: the state the decision
/// saw is still the state when its changes are written, and either all changes are written or
/// none. Every error is [`LockError::Unknown`]: the caller cannot tell what the store holds.
pub trait Store {
    /// A one-line description for messages: `dir /srv/locks`, `etcd http://10.0.0.5:2379`.
    fn describe(&self) -> String;
    /// The live locks and intents, read only: no write, no clean-up (probes use this).
    fn state(&self) -> Result<State, LockError>;
    /// Run `decide` on the current state and apply its changes atomically, retrying on a
    /// concurrent change. Expired entries are cleaned up (and their end recorded) here.
    fn transact(&self, decide: &mut Decide<'_>) -> Result<Verdict, LockError>;
    /// The history, oldest grant first, with `host` among its hosts when given.
    fn history(&self, host: Option<&str>) -> Result<Vec<Record>, LockError>;
}

/// How long a waiting exclusive request's intent lasts unless the waiter refreshes it (it does,
/// on every attempt once half of it has passed): a waiter that dies stops blocking new shared
/// locks this soon.
pub const INTENT_LEASE: Duration = Duration::from_secs(3);

/// The longest lease a lock may have: one year. Far more than any maintenance takes, far less
/// than what overflows a time in microseconds or etcd's largest lease.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 86400);

/// Check a lease length: at least 1 second, at most [`MAX_TTL`].
pub fn check_ttl(ttl: Duration) -> Result<(), LockError> {
    if ttl.as_secs() < 1 || ttl > MAX_TTL {
        return Err(LockError::Invalid(format!(
            "the lease time (ttl) {}s is out of range (1 to {} seconds)",
            ttl.as_secs(),
            MAX_TTL.as_secs()
        )));
    }
    Ok(())
}

/// The message of [`LockError::Refused`] for an exhausted token counter.
fn exhausted(store: &str) -> LockError {
    LockError::Refused(format!(
        "{store}: the fencing-token counter is at its maximum ({}); no larger token can be granted, \
         so nothing is (a person must reset the store)",
        u64::MAX
    ))
}

/// One request for a lock.
#[derive(Clone, Debug)]
pub struct Request {
    pub id: String,
    /// The host asked for (lower case).
    pub target: String,
    /// The hosts to take, the target included: its dependency closure unless asked otherwise.
    pub hosts: Vec<String>,
    pub kind: Kind,
    pub path: Option<String>,
    pub holder: Holder,
    pub ttl: Duration,
}

impl Request {
    /// A request for `hosts` (normalised: lower case, sorted, deduplicated).
    pub fn new(id: &str, target: &str, hosts: &[String], kind: Kind, holder: Holder, ttl: Duration) -> Request {
        let target = normalize_host(target);
        let mut hosts: Vec<String> = hosts.iter().map(|h| normalize_host(h)).collect();
        hosts.push(target.clone());
        hosts.sort();
        hosts.dedup();
        Request { id: id.to_string(), target, hosts, kind, path: None, holder, ttl }
    }

    /// Check what no store could accept.
    pub fn check(&self) -> Result<(), LockError> {
        check_id(&self.id)?;
        for h in &self.hosts {
            check_host(h)?;
        }
        check_ttl(self.ttl)
    }

    /// The first thing in `state` that keeps this request from being granted now.
    pub fn blocker(&self, state: &State) -> Option<Blocker> {
        for lock in state.locks.iter().filter(|l| l.id != self.id) {
            if let Some(h) = self.hosts.iter().find(|h| lock.covers(h)) {
                if !self.kind.compatible(lock.kind) {
                    return Some(Blocker::Lock { host: h.clone(), lock: Box::new(lock.clone()) });
                }
            }
        }
        if self.kind != Kind::Exclusive {
            // Writer preference: a waiting exclusive request goes first.
            for intent in state.intents.iter().filter(|i| i.id != self.id) {
                if let Some(h) = self.hosts.iter().find(|h| intent.hosts.contains(h)) {
                    return Some(Blocker::Intent { host: h.clone(), intent: Box::new(intent.clone()) });
                }
            }
        }
        None
    }

    /// One attempt: grant if nothing blocks; otherwise, for an exclusive request that will
    /// keep waiting until `wait_end`, make sure its intent stands for another
    /// [`INTENT_LEASE`] (never past `wait_end`), refreshing it once half of that has passed.
    pub fn attempt(&self, state: &State, now: Time, wait_end: Time) -> (Vec<Change>, Verdict) {
        let intent_until = now.plus(INTENT_LEASE).min(wait_end);
        let stale = |i: &Intent| i.expires_at < now.plus(INTENT_LEASE / 2) && i.expires_at < intent_until;
        if let Some(held) = state.lock(&self.id) {
            // Idempotent: this id already holds its lock (a retried start).
            return (vec![], Verdict::Granted(held.clone()));
        }
        let own_intent = state.intent(&self.id);
        match self.blocker(state) {
            None if state.last_token == u64::MAX => (vec![], Verdict::Exhausted),
            None => {
                let ttl = self.ttl.as_secs();
                let lock = Lock {
                    id: self.id.clone(),
                    hosts: self.hosts.clone(),
                    target: self.target.clone(),
                    kind: self.kind,
                    path: self.path.clone(),
                    holder: self.holder.clone(),
                    token: state.last_token + 1,
                    ttl_secs: ttl,
                    acquired_at: now,
                    expires_at: now.plus(self.ttl),
                    lease: None,
                };
                let mut changes = vec![Change::Grant(lock.clone())];
                if let Some(i) = own_intent {
                    changes.push(Change::DropIntent(i.clone()));
                }
                (changes, Verdict::Granted(lock))
            }
            Some(b) if self.kind == Kind::Exclusive && intent_until > now && own_intent.is_none_or(stale) => {
                let intent = Intent {
                    id: self.id.clone(),
                    hosts: self.hosts.clone(),
                    holder: self.holder.clone(),
                    since: own_intent.map_or(now, |i| i.since),
                    expires_at: intent_until,
                    lease: None,
                };
                (vec![Change::SetIntent(intent)], Verdict::Blocked(b))
            }
            Some(b) => (vec![], Verdict::Blocked(b)),
        }
    }
}

/// Take the lock of `req`, waiting up to `wait` while it is held by others. An exclusive
/// request that waits leaves an intent so that new shared locks queue behind it; the intent
/// is withdrawn if the wait ends without the lock. Store errors are retried within the wait
/// too (a store restarting), and returned as [`LockError::Unknown`] at its end.
pub fn acquire(store: &dyn Store, req: &Request, wait: Duration) -> Result<Lock, LockError> {
    req.check()?;
    let until = Instant::now() + wait;
    let wait_end = Time::now().plus(wait);
    let mut pause = Duration::from_millis(5);
    let mut jitter = Jitter::new();
    loop {
        let result = store.transact(&mut |state, now| req.attempt(state, now, wait_end));
        let last_error = match result {
            Ok(Verdict::Granted(lock)) => return Ok(lock),
            Ok(Verdict::Blocked(b)) => LockError::Busy(b),
            Ok(Verdict::Exhausted) => {
                withdraw_intent(store, &req.id);
                return Err(exhausted(&store.describe()));
            }
            Ok(other) => LockError::Unknown(format!("unexpected answer from the store: {other:?}")),
            Err(e @ (LockError::Invalid(_) | LockError::Refused(_))) => return Err(e),
            Err(e) => e,
        };
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            withdraw_intent(store, &req.id);
            return Err(last_error);
        }
        std::thread::sleep(jitter.spread(pause).min(left));
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Remove a waiting request's intent (best effort: it is a lease and lapses anyway).
fn withdraw_intent(store: &dyn Store, id: &str) {
    let _ = store.transact(&mut |state, _| match state.intent(id) {
        Some(i) => (vec![Change::DropIntent(i.clone())], Verdict::Unchanged),
        None => (vec![], Verdict::Unchanged),
    });
}

/// Extend the lease of lock `id` by `ttl` from now (its own ttl when `None`).
pub fn renew(store: &dyn Store, id: &str, ttl: Option<Duration>) -> Result<Lock, LockError> {
    check_id(id)?;
    if let Some(t) = ttl {
        check_ttl(t)?;
    }
    let verdict = store.transact(&mut |state, now| match state.lock(id) {
        Some(l) => {
            let mut lock = l.clone();
            if let Some(t) = ttl {
                lock.ttl_secs = t.as_secs();
            }
            lock.expires_at = now.plus(Duration::from_secs(lock.ttl_secs));
            (vec![Change::Renew(lock.clone())], Verdict::Renewed(lock))
        }
        None => (vec![], Verdict::NotHeld),
    })?;
    match verdict {
        Verdict::Renewed(l) => Ok(l),
        _ => Err(LockError::NotHeld(id.to_string())),
    }
}

/// Release lock `id` into the history, and withdraw its intent if it was still waiting.
/// `Ok(None)`: it held nothing (released before, or expired).
pub fn release(store: &dyn Store, id: &str) -> Result<Option<Lock>, LockError> {
    check_id(id)?;
    let verdict = store.transact(&mut |state, now| {
        let mut changes = vec![];
        if let Some(i) = state.intent(id) {
            changes.push(Change::DropIntent(i.clone()));
        }
        match state.lock(id) {
            Some(l) => {
                changes.push(Change::Release(l.clone(), End { how: Ending::Released, at: now }));
                (changes, Verdict::Released(l.clone()))
            }
            None => (changes, Verdict::NotHeld),
        }
    })?;
    Ok(match verdict {
        Verdict::Released(l) => Some(l),
        _ => None,
    })
}

/// Whether lock `id` is held now, read only (for probes).
pub fn held(store: &dyn Store, id: &str) -> Result<Option<Lock>, LockError> {
    Ok(store.state()?.lock(id).cloned())
}

/// Lock ids are file names and etcd keys: letters, digits, `.`, `_`, `-`, `@`, at most 128.
pub fn check_id(id: &str) -> Result<(), LockError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(LockError::Invalid(format!("'{id}' is not a lock id (letters, digits, . _ - @; at most 128)")))
    }
}

/// Host names as DNS allows them (plus `_`), compared case-insensitively.
pub fn check_host(host: &str) -> Result<(), LockError> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && !host.starts_with(['.', '-'])
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(LockError::Invalid(format!("'{host}' is not a host name")))
    }
}

/// Host names are compared case-insensitively, as DNS does.
pub fn normalize_host(host: &str) -> String {
    host.trim().to_ascii_lowercase()
}

/// A new random lock id: 16 hex digits.
pub fn new_id() -> String {
    format!("{:016x}", random_u64())
}

/// 64 random bits without a dependency: std's hasher is keyed randomly per process; the time
/// and the process id make two processes with equal keys differ anyway.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Time::now().micros() as u128 ^ (std::process::id() as u128) << 64);
    h.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// Spread retries so that waiting clients do not retry in lock step.
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        Jitter(random_u64() | 1)
    }
    fn spread(&mut self, d: Duration) -> Duration {
        // xorshift64
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        d / 2 + d.mul_f64((self.0 % 1000) as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests;
