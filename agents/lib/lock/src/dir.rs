//! The `dir` store: locks as files in a local or shared directory (NFS, SMB).
//!
//! Layout under the store directory (which must exist: it is never created, so that an
//! unmounted share is an error instead of a private local directory nobody else sees):
//!
//! ```text
//! held/<id>.json                   one file per granted lock (all its hosts), JSON
//! intents/<id>.json                a waiting exclusive request's claim (writer preference)
//! history/<token>-<id>.json        the grant, written once with the grant
//! history/<token>-<id>.end.json    how it ended: released or expired
//! counter                          the last fencing token
//! .mutex                           the store mutex (see below)
//! ```
//!
//! Every write goes to a fresh temporary file (created with create-new, i.e. `O_EXCL`),
//! is flushed with fsync, and is renamed into place: a reader sees the old file or the new
//! one, never half of one, and a crash leaves at most a dot-file that readers ignore.
//! The primitives and how they behave on Windows and SMB are in [`hale_backend::files`].
//!
//! **What the store trusts.** Everyone who may write the directory can take, release and
//! forge locks, so only the hosts (and users) that take these locks may write it. What such a
//! writer cannot do is make another host's transaction touch anything outside the store:
//! every file name and every record is checked before it is used (ids and host names as
//! [`crate::check_id`] and [`crate::check_host`] allow them, each record's id equal to its
//! file name's, history names `<20 digits>-<id>`); a record that fails makes the state
//! unknown, with the file named, and is left alone. The subdirectories must be real
//! directories, and no file in the store is opened through a symbolic link or as a FIFO:
//! reads refuse them, writes replace the link itself (see [`hale_backend::files`]).
//!
//! Changes happen under a store-wide mutex: the file `.mutex`, created with create-new
//! (atomic on local file systems, NFSv3+ and SMB), holding an owner nonce and its own short
//! lease ([`MUTEX_LEASE`]). No `flock`/`fcntl` locks, which NFS and SMB do not all honour. A
//! process killed while it holds the mutex delays others by at most the lease: the next one
//! moves the stale mutex aside with an atomic rename, checks that what it moved is the stale
//! one it saw (and puts back a live one it took by mistake), and carries on; the owner checks
//! it still owns the mutex just before writing.
//!
//! Expiry compares lease times written in the files with this host's clock: hosts sharing a
//! directory must keep their clocks in sync (NTP), as Kerberos and most shared storage
//! already require. Use the etcd store where that cannot be promised.

use crate::{check_id, Change, Decide, End, Ending, Intent, Lock, LockError, Record, State, Store, Time, Verdict};
use hale_backend::files::{self, retry_busy};
use serde::de::DeserializeOwned;
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the store mutex stays valid without its owner: longer than any commit (a few
/// small files), short enough that a killed owner does not stall others for long.
pub const MUTEX_LEASE: Duration = Duration::from_secs(5);

/// A lock store in a directory.
#[derive(Clone, Debug)]
pub struct DirStore {
    root: PathBuf,
    /// The longest wait for the store mutex.
    timeout: Duration,
}

impl DirStore {
    pub fn new(root: &Path) -> DirStore {
        DirStore { root: root.to_path_buf(), timeout: Duration::from_secs(10) }
    }
    pub fn with_timeout(mut self, timeout: Duration) -> DirStore {
        self.timeout = timeout;
        self
    }
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn check_root(&self) -> Result<(), LockError> {
        match fs::metadata(&self.root) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(LockError::Unknown(format!("lock directory {} is not a directory", self.root.display()))),
            Err(e) => Err(LockError::Unknown(format!("lock directory {}: {e} (not mounted?)", self.root.display()))),
        }
    }

    fn unknown(&self, what: &str, path: &Path, e: impl std::fmt::Display) -> LockError {
        LockError::Unknown(format!("{what} {}: {e}", path.display()))
    }

    /// `sub` as a real directory: `Ok(false)` if it does not exist yet, an error if something
    /// else (a symbolic link, a file) is in its place.
    fn check_sub(&self, sub: &str) -> Result<bool, LockError> {
        let dir = self.root.join(sub);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => Ok(true),
            Ok(_) => Err(self.unknown("refused", &dir, "not a directory (a symbolic link?); nothing was changed")),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.unknown("cannot examine", &dir, e)),
        }
    }

    /// Every `*.json` in `sub` (none if `sub` does not exist yet), parsed strictly and checked
    /// with `check` (given the file name): a file that does not parse or pass makes the state
    /// unknown, and is left in place for a person to look at.
    fn read_all<T: DeserializeOwned>(
        &self,
        sub: &str,
        keep: impl Fn(&str) -> bool,
        check: impl Fn(&str, &T) -> Result<(), String>,
    ) -> Result<Vec<(String, T)>, LockError> {
        let dir = self.root.join(sub);
        if !self.check_sub(sub)? {
            return Ok(vec![]);
        }
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(self.unknown("cannot list", &dir, e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(|e| self.unknown("cannot list", &dir, e))?;
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || !name.ends_with(".json") || !keep(&name) {
                continue;
            }
            let path = e.path();
            let text = match retry_busy(|| files::read_nofollow(&path)) {
                Ok(t) => t,
                // Released between the listing and the read.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(self.unknown("cannot read (not a plain file?)", &path, e)),
            };
            let corrupt = |e: &dyn std::fmt::Display| {
                self.unknown("corrupt lock record", &path, format!("{e}; left in place, nothing was changed"))
            };
            let value: T = serde_json::from_slice(&text).map_err(|e| corrupt(&e))?;
            check(&name, &value).map_err(|e| corrupt(&e))?;
            out.push((name, value));
        }
        Ok(out)
    }

    fn read_counter(&self) -> Result<u64, LockError> {
        let path = self.root.join("counter");
        match retry_busy(|| files::read_nofollow(&path)) {
            Ok(b) => {
                let t = String::from_utf8_lossy(&b);
                t.trim().parse().map_err(|_| self.unknown("corrupt token counter", &path, format!("'{}'", t.trim())))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(0),
            Err(e) => Err(self.unknown("cannot read", &path, e)),
        }
    }

    /// Everything in the store, expired entries included.
    fn read_everything(&self) -> Result<State, LockError> {
        self.check_root()?;
        let locks = self
            .read_all::<Lock>(
                "held",
                |_| true,
                |name, l| {
                    l.check_record()?;
                    same_id(name, &l.id)
                },
            )?
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        let intents = self
            .read_all::<Intent>(
                "intents",
                |_| true,
                |name, i| {
                    i.check_record()?;
                    same_id(name, &i.id)
                },
            )?
            .into_iter()
            .map(|(_, i)| i)
            .collect();
        Ok(State { locks, intents, last_token: self.read_counter()? })
    }

    /// Write `bytes` to `path` atomically: temporary file (create-new, no-follow), fsync,
    /// rename over (a symbolic link at `path` is replaced, never written through).
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), LockError> {
        files::write_atomic(path, bytes, 0o644).map_err(|e| self.unknown("cannot write", path, e))
    }

    fn write_json<T: serde::Serialize>(&self, path: &Path, value: &T) -> Result<(), LockError> {
        let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| self.unknown("cannot encode", path, e))?;
        bytes.push(b'\n');
        self.write_atomic(path, &bytes)
    }

    fn remove(&self, path: &Path) -> Result<(), LockError> {
        match retry_busy(|| fs::remove_file(path)) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(self.unknown("cannot remove", path, e)),
            _ => Ok(()),
        }
    }

    fn held_path(&self, id: &str) -> PathBuf {
        self.root.join("held").join(format!("{id}.json"))
    }
    fn intent_path(&self, id: &str) -> PathBuf {
        self.root.join("intents").join(format!("{id}.json"))
    }
    fn history_path(&self, token: u64, id: &str, end: bool) -> PathBuf {
        let suffix = if end { ".end.json" } else { ".json" };
        self.root.join("history").join(format!("{token:020}-{id}{suffix}"))
    }

    fn apply(&self, change: &Change) -> Result<(), LockError> {
        change.checked_id()?;
        match change {
            Change::Grant(lock) => {
                // The history record first: a grant is never visible without its record.
                let record = self.history_path(lock.token, &lock.id, false);
                self.write_json(&record, &Record { lock: lock.clone(), end: None })?;
                let granted = self
                    .write_atomic(&self.root.join("counter"), format!("{}\n", lock.token).as_bytes())
                    .and_then(|_| self.write_json(&self.held_path(&lock.id), lock));
                if granted.is_err() {
                    let _ = fs::remove_file(&record);
                }
                granted
            }
            Change::Renew(lock) => self.write_json(&self.held_path(&lock.id), lock),
            Change::Release(lock, end) => {
                self.write_json(&self.history_path(lock.token, &lock.id, true), end)?;
                self.remove(&self.held_path(&lock.id))
            }
            Change::SetIntent(i) => self.write_json(&self.intent_path(&i.id), i),
            Change::DropIntent(i) => self.remove(&self.intent_path(&i.id)),
        }
    }

    /// The directories a change removes a file from. Every file it writes goes through
    /// `files::write_atomic`, which already flushes that file's directory after its rename;
    /// a removal is durable only once its directory is flushed too. (A renewal flushed the
    /// held directory twice.)
    fn touched(change: &Change) -> &'static [&'static str] {
        match change {
            Change::Grant(_) | Change::Renew(_) | Change::SetIntent(_) => &[],
            Change::Release(..) => &["held"],
            Change::DropIntent(_) => &["intents"],
        }
    }

    fn sync_dirs(&self, dirs: &[&str]) {
        // The renames are durable once their directories are flushed (a no-op on Windows,
        // whose renames write through: see hale_backend::files).
        for sub in dirs {
            files::sync_dir(&self.root.join(sub));
        }
    }

    fn lock_mutex(&self) -> Result<MutexGuard<'_>, LockError> {
        let path = self.root.join(".mutex");
        let nonce = format!("{:016x}", crate::random_u64());
        let until = Instant::now() + self.timeout;
        let mut pause = Duration::from_micros(200);
        let mut busy = None;
        loop {
            let content = format!("{nonce} {}\n", Time::now().plus(MUTEX_LEASE).micros());
            match files::create_new(&path, 0o644) {
                Ok(mut f) => {
                    // No fsync: after a machine crash a stale mutex is broken after its lease.
                    let written = f.write_all(content.as_bytes());
                    if let Err(e) = written {
                        let _ = fs::remove_file(&path);
                        return Err(self.unknown("cannot write the store mutex", &path, e));
                    }
                    return Ok(MutexGuard { store: self, path, nonce });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => self.break_if_stale(&path),
                // Windows: the previous owner's mutex is still being deleted (delete pending)
                // or another handle holds it; it is gone in a moment.
                Err(e) if files::is_busy(&e) => busy = Some(e),
                Err(e) => return Err(self.unknown("cannot create the store mutex", &path, e)),
            }
            if Instant::now() >= until {
                if let Some(e) = busy.filter(|_| !path.exists()) {
                    return Err(self.unknown("cannot create the store mutex", &path, e));
                }
                let holder = read_text(&path).unwrap_or_default();
                return Err(LockError::Unknown(format!(
                    "the store mutex {} stayed taken for {:.0}s ({})",
                    path.display(),
                    self.timeout.as_secs_f64(),
                    holder.trim()
                )));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(2));
        }
    }

    /// Move a mutex whose lease has run out out of the way (its owner died).
    fn break_if_stale(&self, path: &Path) {
        let Ok(seen) = read_text(path) else { return };
        let expiry = seen.split_whitespace().nth(1).and_then(|e| e.parse::<u64>().ok());
        let stale = match expiry {
            Some(e) => Time::from_micros(e) < Time::now(),
            // Being written right now, or torn by a crash: judge by its age.
            None => fs::symlink_metadata(path)
                .and_then(|m| m.modified())
                .map(|m| m.elapsed().unwrap_or_default() > MUTEX_LEASE)
                .unwrap_or(false),
        };
        if !stale {
            return;
        }
        let aside = self.root.join(format!(".mutex.stale-{:016x}", crate::random_u64()));
        if fs::rename(path, &aside).is_err() {
            return; // someone else moved it first
        }
        if read_text(&aside).map(|c| c != seen).unwrap_or(false) {
            // We took a fresh mutex that replaced the stale one meanwhile: give it back
            // (link fails if yet another one exists, which then stands).
            let _ = fs::hard_link(&aside, path);
        } else {
            log::warn!("removed a stale lock-store mutex {} ({})", path.display(), seen.trim());
        }
        let _ = fs::remove_file(&aside);
    }
}

/// A file of the store as text, never through a symbolic link.
fn read_text(path: &Path) -> std::io::Result<String> {
    files::read_nofollow(path).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// A `held/` or `intents/` file must be named after the id of the record it holds.
fn same_id(name: &str, id: &str) -> Result<(), String> {
    match name.strip_suffix(".json") {
        Some(n) if n == id => Ok(()),
        _ => Err(format!("the record is of lock {id:?}, not the file's")),
    }
}

/// The token and lock id of a history file name, `<20 digits>-<id>.json` or `.end.json`.
fn history_name(name: &str) -> Result<(u64, &str), String> {
    let bad = || format!("'{name}' is not a history file name (<20 digits>-<lock id>.json)");
    let stem = name.strip_suffix(".end.json").or_else(|| name.strip_suffix(".json")).ok_or_else(bad)?;
    let (token, id) = stem.split_once('-').ok_or_else(bad)?;
    if token.len() != 20 || !token.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    check_id(id).map_err(|e| e.to_string())?;
    Ok((token.parse().map_err(|_| bad())?, id))
}

/// The store mutex, released when dropped.
struct MutexGuard<'a> {
    store: &'a DirStore,
    path: PathBuf,
    nonce: String,
}

impl MutexGuard<'_> {
    fn owned(&self) -> bool {
        retry_busy(|| read_text(&self.path)).is_ok_and(|c| c.split_whitespace().next() == Some(&self.nonce))
    }
    fn verify(&self) -> Result<(), LockError> {
        if self.owned() {
            Ok(())
        } else {
            Err(LockError::Unknown(format!(
                "lost the store mutex {} (this process stalled longer than {}s); nothing was written",
                self.path.display(),
                MUTEX_LEASE.as_secs()
            )))
        }
    }
}

impl Drop for MutexGuard<'_> {
    fn drop(&mut self) {
        if self.owned() {
            let _ = retry_busy(|| fs::remove_file(&self.path));
        }
        let _ = self.store;
    }
}

impl Store for DirStore {
    fn describe(&self) -> String {
        format!("dir {}", self.root.display())
    }

    fn state(&self) -> Result<State, LockError> {
        let mut s = self.read_everything()?;
        let now = Time::now();
        s.locks.retain(|l| l.expires_at > now);
        s.intents.retain(|i| i.expires_at > now);
        Ok(s)
    }

    fn transact(&self, decide: &mut Decide<'_>) -> Result<Verdict, LockError> {
        self.check_root()?;
        for sub in ["held", "intents", "history"] {
            let d = self.root.join(sub);
            // Refuses a symbolic link or a file in the directory's place.
            files::ensure_dir(&d, 0o777).map_err(|e| self.unknown("cannot create", &d, e))?;
        }
        let guard = self.lock_mutex()?;
        let mut state = self.read_everything()?;
        let now = Time::now();
        let (live, expired): (Vec<Lock>, Vec<Lock>) = state.locks.into_iter().partition(|l| l.expires_at > now);
        state.locks = live;
        let mut sweep: Vec<Change> = expired
            .into_iter()
            .map(|l| Change::Release(l.clone(), End { how: Ending::Expired, at: l.expires_at }))
            .collect();
        let (live, expired): (Vec<Intent>, Vec<Intent>) = state.intents.into_iter().partition(|i| i.expires_at > now);
        state.intents = live;
        sweep.extend(expired.into_iter().map(Change::DropIntent));
        let (changes, verdict) = decide(&state, now);
        if !changes.is_empty() || !sweep.is_empty() {
            guard.verify()?;
            let mut dirs: Vec<&str> = Vec::new();
            for c in sweep.iter().chain(&changes) {
                self.apply(c)?;
                dirs.extend(Self::touched(c));
            }
            dirs.sort();
            dirs.dedup();
            self.sync_dirs(&dirs);
        }
        drop(guard);
        Ok(verdict)
    }

    fn history(&self, host: Option<&str>) -> Result<Vec<Record>, LockError> {
        self.check_root()?;
        let ends: std::collections::BTreeMap<String, End> = self
            .read_all::<End>("history", |n| n.ends_with(".end.json"), |n, _| history_name(n).map(|_| ()))?
            .into_iter()
            .map(|(n, e)| (n.trim_end_matches(".end.json").to_string(), e))
            .collect();
        let held = self.read_everything()?.locks;
        let now = Time::now();
        let mut out: Vec<Record> = Vec::new();
        let check = |n: &str, r: &Record| {
            r.lock.check_record()?;
            match history_name(n)? {
                (token, id) if token == r.lock.token && id == r.lock.id => Ok(()),
                _ => Err(format!("the record is of token {} lock {}, not the file's", r.lock.token, r.lock.id)),
            }
        };
        for (name, mut rec) in self.read_all::<Record>("history", |n| !n.ends_with(".end.json"), check)? {
            if host.is_some_and(|h| !rec.lock.covers(&crate::normalize_host(h))) {
                continue;
            }
            let key = name.trim_end_matches(".json");
            rec.end = ends.get(key).cloned().or_else(|| {
                // Not ended on record: held, or expired and not yet swept.
                match held.iter().find(|l| l.id == rec.lock.id && l.token == rec.lock.token) {
                    Some(l) => (l.expires_at <= now).then_some(End { how: Ending::Expired, at: l.expires_at }),
                    // No lock file and no end record: the granter died between the two writes
                    // of its commit (a release writes its end record before removing the file).
                    // A commit still running is younger than the mutex lease.
                    None if rec.lock.acquired_at.plus(MUTEX_LEASE) < now => {
                        Some(End { how: Ending::Abandoned, at: rec.lock.acquired_at })
                    }
                    None => None,
                }
            });
            out.push(rec);
        }
        out.sort_by_key(|r| r.lock.token);
        Ok(out)
    }
}
