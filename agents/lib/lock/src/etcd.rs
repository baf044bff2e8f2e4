//! The `etcd` store: locks in an etcd v3 cluster (3.4 or later), through etcd's JSON gRPC
//! gateway (`POST /v3/kv/range`, `/v3/kv/txn`, `/v3/lease/grant|keepalive|revoke`), keys and
//! values in base64.
//!
//! Keys:
//!
//! ```text
//! /hale/lock/counter                 the last fencing token
//! /hale/lock/held/<id>               a granted lock (JSON), attached to its own lease
//! /hale/lock/intent/<id>             a waiting exclusive request's claim, on its own lease
//! /hale/history/<token>-<id>         the grant, written in the same transaction
//! /hale/history/<token>-<id>.end     when it ended: released, or the lease's last expiry
//! ```
//!
//! Every change is one transaction guarded by the revision it was decided on: it only
//! applies if nothing under `/hale/lock/` was created or modified since the range read
//! (`mod_revision < read revision + 1` over the whole prefix), otherwise it is decided again
//! on the new state. That makes the all-or-nothing grant of a dependency closure one atomic
//! step, with no lock order to get wrong. Expiry is etcd's: a lease whose holder stops
//! renewing is revoked by the etcd leader, which deletes the lock key; no host clock is
//! trusted, so hosts need not agree on the time.
//!
//! **What the store trusts.** Whoever can write these keys (reach etcd with write access to
//! the `/hale/` prefix) can take, release and forge locks: give only the hosts that take
//! these locks access (etcd's client TLS and roles). Records are still checked before they
//! are used: a key's id and its record's id must agree and pass [`crate::check_id`], hosts
//! must pass [`crate::check_host`], history keys must be `<20 digits>-<id>[.end]`; a record
//! that fails makes the state unknown, with the key named, and nothing is written.
//!
//! Requests have per-phase timeouts and no global one, so no thread is ever started (ureq
//! resolves names on a thread when a global timeout is set); give endpoints as IP addresses
//! so that name resolution cannot stall a monitor.

use crate::tls::{ClientCertInfo, Credentials, EtcdAuth};
use crate::{Change, Decide, End, Ending, Intent, Lock, LockError, Record, State, Store, Time, Verdict};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const LOCKS: &str = "/hale/lock/";
const COUNTER: &str = "/hale/lock/counter";
const HELD: &str = "/hale/lock/held/";
const INTENT: &str = "/hale/lock/intent/";
const HISTORY: &str = "/hale/history/";

/// A lock store in etcd.
pub struct EtcdStore {
    endpoints: Vec<String>,
    agent: ureq::Agent,
    timeout: Duration,
    /// Whom the TLS client trusts, for messages.
    trust: String,
    client: Option<ClientCertInfo>,
    credentials: Option<Credentials>,
    /// The auth token from `/v3/auth/authenticate`: `None` until asked, `Some(None)` when
    /// etcd has authentication disabled.
    token: Mutex<Option<Option<String>>>,
}

/// A failed call: the network or TLS (try the next endpoint), etcd's own answer, or etcd
/// refusing who we are. Each holds a one-line reason.
enum CallError {
    Transport(String),
    Etcd(String),
    Denied(String),
}

impl EtcdStore {
    /// `endpoints`: `http://host:port` URLs of etcd members, tried in order, with neither TLS
    /// settings nor a user (an `https://` endpoint is verified against the built-in Mozilla
    /// roots). `timeout`: the connect and each read/write of one request.
    pub fn new(endpoints: Vec<String>, timeout: Duration) -> EtcdStore {
        let agent = Self::agent(timeout, ureq::tls::TlsConfig::default());
        EtcdStore {
            endpoints,
            agent,
            timeout,
            trust: "the built-in Mozilla roots".into(),
            client: None,
            credentials: None,
            token: Mutex::new(None),
        }
    }

    /// A store on `endpoints` with the TLS and authentication settings of `auth` (see
    /// [`crate::tls`]): its files are read now. Errors name the setting at fault, never a
    /// secret. Only `http://` endpoints and no settings: no file is read at all.
    pub fn secured(endpoints: Vec<String>, timeout: Duration, auth: &EtcdAuth) -> Result<EtcdStore, String> {
        auth.check(&endpoints)?;
        if auth.is_empty() && endpoints.iter().all(|e| e.starts_with("http://")) {
            return Ok(EtcdStore::new(endpoints, timeout));
        }
        let loaded = auth.load()?;
        Ok(EtcdStore {
            endpoints,
            agent: Self::agent(timeout, loaded.tls),
            timeout,
            trust: loaded.trust,
            client: loaded.client,
            credentials: loaded.credentials,
            token: Mutex::new(None),
        })
    }

    fn agent(timeout: Duration, tls: ureq::tls::TlsConfig) -> ureq::Agent {
        ureq::Agent::config_builder()
            .tls_config(tls)
            .timeout_connect(Some(timeout))
            .timeout_send_request(Some(timeout))
            .timeout_send_body(Some(timeout))
            .timeout_recv_response(Some(timeout))
            .timeout_recv_body(Some(timeout))
            .proxy(None)
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(concat!("hale-lock/", env!("CARGO_PKG_VERSION")))
            .build()
            .into()
    }

    /// `path` on the first endpoint that answers.
    fn call(&self, path: &str, body: Value) -> Result<Value, CallError> {
        let mut last = String::new();
        for ep in &self.endpoints {
            match self.call_at(ep, path, &body) {
                Err(CallError::Transport(m)) => last = m,
                other => return other,
            }
        }
        Err(CallError::Transport(last))
    }

    /// `path` on `ep`, with a token when a user is configured; a token etcd no longer knows
    /// (expired, or the member restarted) is traded for a new one once.
    fn call_at(&self, ep: &str, path: &str, body: &Value) -> Result<Value, CallError> {
        let mut renewed = false;
        loop {
            let token = self.token(ep, renewed)?;
            match self.post(ep, path, body, token.as_deref()) {
                Err(CallError::Etcd(m)) if self.credentials.is_some() && !renewed && stale_token(&m) => {
                    log::debug!("{ep}: etcd no longer knows our auth token; authenticating again");
                    renewed = true;
                }
                Err(CallError::Etcd(m)) => return Err(self.classify(m)),
                other => return other,
            }
        }
    }

    /// The token to send, authenticating at `ep` when there is none yet or `fresh` asks for a
    /// new one.
    fn token(&self, ep: &str, fresh: bool) -> Result<Option<String>, CallError> {
        let Some(c) = &self.credentials else { return Ok(None) };
        let mut slot = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(t), false) = (slot.as_ref(), fresh) {
            return Ok(t.clone());
        }
        let body = json!({"name": c.user, "password": c.password});
        let token = match self.post(ep, "/v3/auth/authenticate", &body, None) {
            Ok(v) => match v["token"].as_str() {
                Some(t) if !t.is_empty() => Some(t.to_string()),
                _ => {
                    return Err(CallError::Denied(format!(
                        "{ep}: etcd authenticated user '{}' but gave no token",
                        c.user
                    )))
                }
            },
            Err(CallError::Etcd(m)) if m.contains("authentication is not enabled") => None,
            Err(CallError::Etcd(m)) if m.contains("authentication failed") => {
                return Err(CallError::Denied(format!(
                    "etcd refused user '{}' with the password in etcd_password_file ({ep})",
                    c.user
                )))
            }
            Err(CallError::Etcd(m)) => return Err(self.classify(m)),
            Err(e) => return Err(e),
        };
        *slot = Some(token.clone());
        Ok(token)
    }

    /// etcd's refusals of who we are, in words that say what to set.
    fn classify(&self, m: String) -> CallError {
        let user = self.credentials.as_ref().map(|c| c.user.as_str());
        if m.contains("CommonName of client") {
            let file = self.client.as_ref().map(|c| c.path.display().to_string()).unwrap_or_default();
            CallError::Denied(format!(
                "etcd's gateway refuses a client certificate with a Common Name while authentication is \
                 enabled: use one without CN in etcd_cert_file {file}"
            ))
        } else if m.contains("user name is empty") || (user.is_none() && stale_token(&m)) {
            CallError::Denied("etcd demands authentication: set etcd_user and etcd_password_file".into())
        } else if stale_token(&m) {
            CallError::Denied(format!("etcd refused a fresh auth token of user '{}' ({m})", user.unwrap_or("")))
        } else if m.contains("permission denied") {
            let who = user.map(|u| format!("user '{u}'")).unwrap_or_else(|| "this client".into());
            CallError::Denied(format!("etcd denied {who} (permission denied): it needs readwrite on /hale/"))
        } else {
            CallError::Etcd(m)
        }
    }

    /// One request, no retry.
    fn post(&self, ep: &str, path: &str, body: &Value, token: Option<&str>) -> Result<Value, CallError> {
        let url = format!("{ep}{path}");
        let mut req = self.agent.post(&url).header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", t);
        }
        match req.send(body.to_string()) {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let text = resp.body_mut().read_to_string().map_err(|e| self.transport(ep, &e))?;
                let v: Value = serde_json::from_str(&text).map_err(|_| {
                    let first = text.lines().next().unwrap_or("").trim();
                    if first.starts_with("CommonName of client") {
                        CallError::Etcd(format!("{url}: HTTP {status}: {first}"))
                    } else {
                        CallError::Transport(format!("etcd unreachable ({url}: not an etcd answer (HTTP {status}))"))
                    }
                })?;
                if status != 200 || v.get("error").is_some() {
                    let msg = v.get("message").or(v.get("error")).and_then(Value::as_str).unwrap_or("error");
                    return Err(CallError::Etcd(format!("{url}: HTTP {status}: {msg}")));
                }
                Ok(v)
            }
            Err(e) => Err(self.transport(ep, &e)),
        }
    }

    /// A failed exchange with the endpoint `url`: a TLS problem named, else the network.
    fn transport(&self, url: &str, e: &ureq::Error) -> CallError {
        let text = e.to_string();
        let https = url.starts_with("https://");
        match crate::tls::tls_reason(&text, &self.trust, self.client.as_ref(), https && closed(&text)) {
            Some(r) => CallError::Transport(format!("etcd {url}: {r}")),
            None if url.starts_with("http://") && closed(&text) => CallError::Transport(format!(
                "etcd unreachable ({url}: the connection closed without an answer; does it demand TLS? use https://)"
            )),
            None => CallError::Transport(format!("etcd unreachable ({url}: {text})")),
        }
    }

    fn call_known(&self, path: &str, body: Value) -> Result<Value, LockError> {
        self.call(path, body).map_err(|e| match e {
            CallError::Transport(m) | CallError::Denied(m) => LockError::Unknown(m),
            CallError::Etcd(m) => LockError::Unknown(format!("etcd refused the request ({m})")),
        })
    }

    fn range(&self, prefix: &str) -> Result<(Vec<Value>, i64), LockError> {
        let v = self.call_known("/v3/kv/range", json!({"key": b64(prefix), "range_end": b64(&prefix_end(prefix))}))?;
        let rev = int(&v["header"]["revision"]);
        Ok((v["kvs"].as_array().cloned().unwrap_or_default(), rev))
    }

    /// The live state, the read revision, and each held key's create revision.
    fn read(&self) -> Result<(State, i64, BTreeMap<String, i64>), LockError> {
        let (kvs, rev) = self.range(LOCKS)?;
        let mut state = State::default();
        let mut created = BTreeMap::new();
        for kv in kvs {
            let key = unb64(&kv["key"]).unwrap_or_default();
            let value = unb64(&kv["value"]).unwrap_or_default();
            let lease = int(&kv["lease"]);
            let corrupt = |e: &dyn std::fmt::Display| {
                LockError::Unknown(format!("corrupt lock record at etcd key {key:?}: {e}; nothing was changed"))
            };
            if key == COUNTER {
                state.last_token = value.trim().parse().map_err(|_| {
                    LockError::Unknown(format!("corrupt token counter at etcd key {key}: '{}'", value.trim()))
                })?;
            } else if let Some(id) = key.strip_prefix(HELD) {
                let mut l: Lock = serde_json::from_str(&value).map_err(|e| corrupt(&e))?;
                l.check_record().and_then(|_| same_id(id, &l.id)).map_err(|e| corrupt(&e))?;
                l.lease = (lease != 0).then_some(lease);
                created.insert(id.to_string(), int(&kv["create_revision"]));
                state.locks.push(l);
            } else if let Some(id) = key.strip_prefix(INTENT) {
                let mut i: Intent = serde_json::from_str(&value).map_err(|e| corrupt(&e))?;
                i.check_record().and_then(|_| same_id(id, &i.id)).map_err(|e| corrupt(&e))?;
                i.lease = (lease != 0).then_some(lease);
                state.intents.push(i);
            }
        }
        Ok((state, rev, created))
    }

    fn grant_lease(&self, ttl: Duration) -> Result<i64, LockError> {
        let secs = ttl.as_secs_f64().ceil().max(1.0) as i64;
        let v = self.call_known("/v3/lease/grant", json!({"TTL": secs.to_string()}))?;
        match int(&v["ID"]) {
            0 => Err(LockError::Unknown("etcd granted no lease".into())),
            id => Ok(id),
        }
    }

    /// Renew a lease; false if it is gone.
    fn keepalive(&self, lease: i64) -> Result<bool, LockError> {
        let v = self.call_known("/v3/lease/keepalive", json!({"ID": lease.to_string()}))?;
        Ok(int(&v["result"]["TTL"]) > 0)
    }

    fn revoke(&self, lease: i64) {
        // Best effort: a lease nobody renews lapses by itself.
        let _ = self.call("/v3/lease/revoke", json!({"ID": lease.to_string()}));
    }
}

/// etcd's answer to a token it does not know (expired, or issued before a restart).
fn stale_token(m: &str) -> bool {
    m.contains("invalid auth token") || m.contains("HTTP 401")
}

/// A connection that ended without an answer (a TLS server closing a plain HTTP request).
fn closed(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    ["eof", "reset", "closed", "broken pipe", "disconnected"].iter().any(|w| t.contains(w))
}

/// Revoke the lease kept for a retry, if any.
fn drop_spare_now(store: &EtcdStore, spare: &mut Option<(u64, i64, Time)>) {
    if let Some((_, l, _)) = spare.take() {
        store.revoke(l);
    }
}

fn b64(s: &str) -> String {
    B64.encode(s.as_bytes())
}

fn unb64(v: &Value) -> Option<String> {
    v.as_str().and_then(|s| B64.decode(s).ok()).and_then(|b| String::from_utf8(b).ok())
}

/// etcd's gateway writes int64 as strings.
fn int(v: &Value) -> i64 {
    v.as_str().and_then(|s| s.parse().ok()).or_else(|| v.as_i64()).unwrap_or(0)
}

/// The key just past every key starting with `prefix`.
fn prefix_end(prefix: &str) -> String {
    let mut b = prefix.as_bytes().to_vec();
    if let Some(last) = b.last_mut() {
        *last += 1;
    }
    String::from_utf8(b).unwrap_or_default()
}

fn put(key: &str, value: &str, lease: Option<i64>) -> Value {
    let mut p = json!({"key": b64(key), "value": b64(value)});
    if let Some(l) = lease {
        p["lease"] = json!(l.to_string());
    }
    json!({"request_put": p})
}

fn delete(key: &str) -> Value {
    json!({"request_delete_range": {"key": b64(key)}})
}

/// A held or intent key must carry the id of the record it holds.
fn same_id(key_id: &str, id: &str) -> Result<(), String> {
    if key_id == id {
        Ok(())
    } else {
        Err(format!("the record is of lock {id:?}, not the key's"))
    }
}

/// The token and id of a history key after its prefix: `<20 digits>-<id>` or the same `.end`.
fn history_name(name: &str) -> Result<(u64, &str), String> {
    let bad = || format!("'{name}' is not a history key (<20 digits>-<lock id>[.end])");
    let stem = name.strip_suffix(".end").unwrap_or(name);
    let (token, id) = stem.split_once('-').ok_or_else(bad)?;
    if token.len() != 20 || !token.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    crate::check_id(id).map_err(|e| e.to_string())?;
    Ok((token.parse().map_err(|_| bad())?, id))
}

fn history_key(token: u64, id: &str) -> String {
    format!("{HISTORY}{token:020}-{id}")
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

impl Store for EtcdStore {
    fn describe(&self) -> String {
        format!("etcd {}", self.endpoints.join(","))
    }

    fn state(&self) -> Result<State, LockError> {
        Ok(self.read()?.0)
    }

    fn transact(&self, decide: &mut Decide<'_>) -> Result<Verdict, LockError> {
        let until = Instant::now() + self.timeout * 3;
        // A lease granted for a lock whose transaction lost a race is kept for the next try.
        // (ttl, lease, a time before the lease was granted).
        let mut spare: Option<(u64, i64, Time)> = None;
        let mut pause = Duration::from_millis(1);
        let mut jitter = crate::random_u64();
        loop {
            let (state, rev, created) = self.read()?;
            let (changes, mut verdict) = decide(&state, Time::now());
            if changes.is_empty() {
                if let Some((_, l, _)) = spare.take() {
                    self.revoke(l);
                }
                return Ok(verdict);
            }
            // Nothing under the lock prefix created or changed since the read.
            let mut compare = vec![json!({
                "target": "MOD", "key": b64(LOCKS), "range_end": b64(&prefix_end(LOCKS)),
                "result": "LESS", "mod_revision": (rev + 1).to_string()
            })];
            let same_key = |id: &str| {
                json!({"target": "CREATE", "key": b64(&format!("{HELD}{id}")), "result": "EQUAL",
                       "create_revision": created.get(id).copied().unwrap_or(0).to_string()})
            };
            let (mut ops, mut fresh, mut revoke_after) = (vec![], vec![], vec![]);
            let mut lost = false;
            if let Some(e) = changes.iter().find_map(|c| c.checked_id().err()) {
                drop_spare_now(self, &mut spare);
                return Err(e);
            }
            for change in changes {
                match change {
                    Change::Grant(mut lock) => {
                        let (lease, since) = match spare.take() {
                            Some((ttl, l, since)) if ttl == lock.ttl_secs => (l, since),
                            other => {
                                if let Some((_, l, _)) = other {
                                    self.revoke(l);
                                }
                                let since = Time::now();
                                match self.grant_lease(Duration::from_secs(lock.ttl_secs)) {
                                    Ok(l) => (l, since),
                                    Err(e) => {
                                        fresh.iter().for_each(|l| self.revoke(*l));
                                        return Err(e);
                                    }
                                }
                            }
                        };
                        // Not in `fresh`: kept for a retry, revoked if the retry does not use it.
                        spare = Some((lock.ttl_secs, lease, since));
                        // The lease runs from its grant: never promise more than etcd keeps.
                        lock.expires_at = lock.expires_at.min(since.plus(Duration::from_secs(lock.ttl_secs)));
                        lock.lease = Some(lease);
                        if let Verdict::Granted(l) = &mut verdict {
                            l.lease = Some(lease);
                            l.expires_at = lock.expires_at;
                        }
                        ops.push(put(&format!("{HELD}{}", lock.id), &to_json(&lock), Some(lease)));
                        ops.push(put(COUNTER, &lock.token.to_string(), None));
                        ops.push(put(&history_key(lock.token, &lock.id), &to_json(&Record { lock, end: None }), None));
                    }
                    Change::Renew(mut lock) => {
                        let old = state.lock(&lock.id);
                        let mut lease = old.and_then(|o| o.lease).unwrap_or(0);
                        if old.is_some_and(|o| o.ttl_secs == lock.ttl_secs) {
                            if !self.keepalive(lease)? {
                                lost = true;
                                break;
                            }
                        } else {
                            // A new lease length: a new lease, the old one revoked after.
                            revoke_after.push(lease);
                            lease = self.grant_lease(Duration::from_secs(lock.ttl_secs))?;
                            fresh.push(lease);
                        }
                        lock.lease = Some(lease);
                        if let Verdict::Renewed(l) = &mut verdict {
                            l.lease = Some(lease);
                        }
                        compare.push(same_key(&lock.id));
                        let end = End { how: Ending::Expired, at: lock.expires_at };
                        ops.push(put(&format!("{}.end", history_key(lock.token, &lock.id)), &to_json(&end), None));
                        ops.push(put(&format!("{HELD}{}", lock.id), &to_json(&lock), Some(lease)));
                    }
                    Change::Release(lock, end) => {
                        compare.push(same_key(&lock.id));
                        ops.push(delete(&format!("{HELD}{}", lock.id)));
                        ops.push(put(&format!("{}.end", history_key(lock.token, &lock.id)), &to_json(&end), None));
                        revoke_after.extend(lock.lease);
                    }
                    Change::SetIntent(mut intent) => {
                        let lease = self.grant_lease(Time::now().until(intent.expires_at))?;
                        fresh.push(lease);
                        if let Some(old) = state.intent(&intent.id) {
                            revoke_after.extend(old.lease);
                        }
                        intent.lease = Some(lease);
                        ops.push(put(&format!("{INTENT}{}", intent.id), &to_json(&intent), Some(lease)));
                    }
                    Change::DropIntent(intent) => {
                        ops.push(delete(&format!("{INTENT}{}", intent.id)));
                        revoke_after.extend(intent.lease);
                    }
                }
            }
            let granted = matches!(verdict, Verdict::Granted(_)) && spare.is_some();
            let drop_spare = |spare: &mut Option<(u64, i64, Time)>| {
                if let Some((_, l, _)) = spare.take() {
                    self.revoke(l);
                }
            };
            if lost {
                fresh.iter().for_each(|l| self.revoke(*l));
                drop_spare(&mut spare);
                return Ok(Verdict::NotHeld);
            }
            let txn = self.call("/v3/kv/txn", json!({"compare": compare, "success": ops}));
            match txn {
                Ok(v) if v["succeeded"].as_bool() == Some(true) => {
                    revoke_after.iter().for_each(|l| self.revoke(*l));
                    if !granted {
                        drop_spare(&mut spare);
                    }
                    return Ok(verdict);
                }
                Ok(_) => fresh.iter().for_each(|l| self.revoke(*l)),
                // A lease that lapsed between the read and the write: decide again.
                Err(CallError::Etcd(m)) if m.contains("lease not found") => {
                    fresh.iter().for_each(|l| self.revoke(*l));
                    drop_spare(&mut spare);
                }
                Err(CallError::Etcd(m)) => {
                    fresh.iter().for_each(|l| self.revoke(*l));
                    drop_spare(&mut spare);
                    return Err(LockError::Unknown(format!("etcd refused the transaction ({m})")));
                }
                Err(CallError::Transport(m) | CallError::Denied(m)) => {
                    // The outcome is unknown; a grant that did apply lapses with its lease.
                    fresh.iter().for_each(|l| self.revoke(*l));
                    drop_spare(&mut spare);
                    return Err(LockError::Unknown(format!("{m} (during a transaction)")));
                }
            }
            if Instant::now() >= until {
                drop_spare(&mut spare);
                return Err(LockError::Unknown(format!(
                    "etcd: the lock state kept changing for {:.0}s; try again",
                    (self.timeout * 3).as_secs_f64()
                )));
            }
            // Lost a race with another client: back off a little, spread, before deciding again.
            jitter ^= jitter << 13;
            jitter ^= jitter >> 7;
            jitter ^= jitter << 17;
            std::thread::sleep(pause.mul_f64(0.5 + (jitter % 1000) as f64 / 1000.0));
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    fn history(&self, host: Option<&str>) -> Result<Vec<Record>, LockError> {
        let (kvs, _) = self.range(HISTORY)?;
        let state = self.state()?;
        let now = Time::now();
        let mut records = Vec::new();
        let mut ends = BTreeMap::new();
        for kv in kvs {
            let key = unb64(&kv["key"]).unwrap_or_default();
            let value = unb64(&kv["value"]).unwrap_or_default();
            let corrupt = |e: &dyn std::fmt::Display| {
                LockError::Unknown(format!("corrupt history record at etcd key {key:?}: {e}"))
            };
            let name = key.strip_prefix(HISTORY).unwrap_or(&key);
            let (token, id) = history_name(name).map_err(|e| corrupt(&e))?;
            if let Some(k) = key.strip_suffix(".end") {
                ends.insert(k.to_string(), serde_json::from_str::<End>(&value).map_err(|e| corrupt(&e))?);
            } else {
                let rec = serde_json::from_str::<Record>(&value).map_err(|e| corrupt(&e))?;
                rec.lock.check_record().map_err(|e| corrupt(&e))?;
                if rec.lock.token != token || rec.lock.id != id {
                    let e = format!("the record is of token {} lock {}, not the key's", rec.lock.token, rec.lock.id);
                    return Err(corrupt(&e));
                }
                records.push((key.clone(), rec));
            }
        }
        let host = host.map(crate::normalize_host);
        let mut out = Vec::new();
        for (key, mut rec) in records {
            if host.as_ref().is_some_and(|h| !rec.lock.covers(h)) {
                continue;
            }
            let held = state.locks.iter().any(|l| l.id == rec.lock.id && l.token == rec.lock.token);
            rec.end = match ends.remove(&key) {
                Some(e) if e.how == Ending::Released => Some(e),
                _ if held => None,
                // The lease's last known expiry; earlier if it was revoked.
                Some(e) => Some(End { how: Ending::Expired, at: e.at.min(now) }),
                None => Some(End { how: Ending::Expired, at: rec.lock.expires_at.min(now) }),
            };
            out.push(rec);
        }
        out.sort_by_key(|r| r.lock.token);
        Ok(out)
    }
}
