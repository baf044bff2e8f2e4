//! The lock algebra on a directory store: kinds, writer preference, all-or-nothing, leases,
//! tokens, history, and a corrupt record.

use super::*;
use crate::dir::DirStore;

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!("hale-lock-unit-{}", new_id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn req(id: &str, hosts: &[&str], kind: Kind, ttl: u64) -> Request {
    let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
    Request::new(id, &hosts[0], &hosts, kind, Holder::this_process("unit test"), Duration::from_secs(ttl))
}

const NOW: Duration = Duration::ZERO;

#[test]
fn kinds_exclude_as_documented() {
    let t = TempDir::new();
    let s = DirStore::new(&t.0);
    let a = acquire(&s, &req("a", &["h1"], Kind::Shared, 30), NOW).unwrap();
    let b = acquire(&s, &req("b", &["h1"], Kind::File, 30), NOW).unwrap();
    assert!(b.token > a.token, "tokens grow with every grant");
    let e = acquire(&s, &req("x", &["h1"], Kind::Exclusive, 30), NOW).unwrap_err();
    assert!(matches!(e, LockError::Busy(Blocker::Lock { .. })), "{e}");
    assert!(e.to_string().contains("host h1 is locked shared by"), "{e}");
    // The failed exclusive request left no intent behind.
    assert!(s.state().unwrap().intents.is_empty());
    release(&s, "a").unwrap().unwrap();
    release(&s, "b").unwrap().unwrap();
    let x = acquire(&s, &req("x", &["h1"], Kind::Exclusive, 30), NOW).unwrap();
    assert!(x.token > b.token);
    assert!(acquire(&s, &req("c", &["H1"], Kind::Shared, 30), NOW).is_err(), "host names are case-insensitive");
    // Idempotent for the same id.
    assert_eq!(acquire(&s, &req("x", &["h1"], Kind::Exclusive, 30), NOW).unwrap().token, x.token);
}

#[test]
fn all_or_nothing_over_the_closure() {
    let t = TempDir::new();
    let s = DirStore::new(&t.0);
    acquire(&s, &req("busy", &["c"], Kind::Exclusive, 30), NOW).unwrap();
    let e = acquire(&s, &req("big", &["a", "b", "c"], Kind::Exclusive, 30), NOW).unwrap_err();
    assert!(e.to_string().contains("host c is locked exclusive"), "{e}");
    let st = s.state().unwrap();
    assert_eq!(st.locks.len(), 1, "nothing of a, b was taken: {st:?}");
    assert_eq!(st.locks_on("a").count(), 0);
    release(&s, "busy").unwrap();
    let l = acquire(&s, &req("big", &["c", "a", "b"], Kind::Exclusive, 30), NOW).unwrap();
    assert_eq!(l.hosts, ["a", "b", "c"]);
    assert_eq!(l.target, "c");
}

#[test]
fn writer_preference_blocks_new_shared_locks() {
    let t = TempDir::new();
    let s = DirStore::new(&t.0);
    acquire(&s, &req("r1", &["h"], Kind::Shared, 30), NOW).unwrap();
    // The writer waits a little, leaving its intent while it does.
    let w = req("w", &["h"], Kind::Exclusive, 30);
    let until = Time::now().plus(Duration::from_secs(30));
    // No wait: the wait ends at the same instant as "now" (two clock reads could differ).
    let now = Time::now();
    assert_eq!(w.attempt(&s.state().unwrap(), now, now).0, vec![], "no intent without a wait");
    let st = s.state().unwrap();
    let (changes, verdict) = w.attempt(&st, Time::now(), until);
    assert!(matches!(verdict, Verdict::Blocked(_)));
    assert!(matches!(changes.as_slice(), [Change::SetIntent(_)]));
    s.transact(&mut |st, now| w.attempt(st, now, until)).unwrap();
    let e = acquire(&s, &req("r2", &["h"], Kind::Shared, 30), NOW).unwrap_err();
    assert!(e.to_string().contains("reserved for a waiting exclusive lock"), "{e}");
    // Another host is not affected.
    acquire(&s, &req("r3", &["other"], Kind::Shared, 30), NOW).unwrap();
    release(&s, "r1").unwrap();
    let got = acquire(&s, &w, NOW).unwrap();
    assert_eq!(got.kind, Kind::Exclusive);
    assert!(s.state().unwrap().intent("w").is_none(), "the grant removes the intent");
}

#[test]
fn leases_expire_and_renewal_keeps_them() {
    let t = TempDir::new();
    let s = DirStore::new(&t.0);
    acquire(&s, &req("short", &["h"], Kind::Exclusive, 1), NOW).unwrap();
    acquire(&s, &req("kept", &["k"], Kind::Exclusive, 1), NOW).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    renew(&s, "kept", Some(Duration::from_secs(5))).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert!(held(&s, "short").unwrap().is_none(), "expired");
    assert!(held(&s, "kept").unwrap().is_some(), "renewed");
    assert_eq!(renew(&s, "short", None).unwrap_err(), LockError::NotHeld("short".into()));
    let next = acquire(&s, &req("next", &["h"], Kind::Exclusive, 30), NOW).unwrap();
    let h = s.history(Some("h")).unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].end.as_ref().map(|e| e.how), Some(Ending::Expired));
    assert_eq!(h[1].lock.token, next.token);
    assert!(h[1].end.is_none(), "still held");
    assert_eq!(release(&s, "nope").unwrap(), None);
    release(&s, "next").unwrap();
    let h = s.history(None).unwrap();
    assert_eq!(h.len(), 3);
    assert_eq!(h.iter().filter(|r| r.end.as_ref().is_some_and(|e| e.how == Ending::Released)).count(), 1);
}

#[test]
fn a_corrupt_record_makes_the_state_unknown_and_is_kept() {
    let t = TempDir::new();
    let s = DirStore::new(&t.0);
    acquire(&s, &req("a", &["h"], Kind::Shared, 30), NOW).unwrap();
    let bad = t.0.join("held/zz.json");
    std::fs::write(&bad, "{not json").unwrap();
    let e = s.state().unwrap_err();
    assert!(matches!(&e, LockError::Unknown(m) if m.contains("corrupt lock record")), "{e}");
    assert!(matches!(acquire(&s, &req("b", &["h"], Kind::Shared, 30), NOW), Err(LockError::Unknown(_))));
    assert!(bad.exists(), "the corrupt file is left for a person to inspect");
    std::fs::remove_file(&bad).unwrap();
    assert_eq!(s.state().unwrap().locks.len(), 1, "nothing was lost");
}

#[test]
fn a_missing_directory_is_unknown_never_free() {
    let s = DirStore::new(std::path::Path::new("/nonexistent/hale-locks"));
    assert!(matches!(s.state(), Err(LockError::Unknown(m)) if m.contains("not mounted")));
    assert!(matches!(acquire(&s, &req("a", &["h"], Kind::Shared, 30), NOW), Err(LockError::Unknown(_))));
    assert!(!std::path::Path::new("/nonexistent").exists(), "the store directory is never created");
}

#[test]
fn a_stale_mutex_is_broken_after_its_lease() {
    let t = TempDir::new();
    let s = DirStore::new(&t.0);
    // A holder that died while holding the mutex.
    let expired = Time::now().micros() - 1;
    std::fs::write(t.0.join(".mutex"), format!("deadbeef {expired}\n")).unwrap();
    acquire(&s, &req("a", &["h"], Kind::Exclusive, 30), NOW).unwrap();
    // A live one is respected until the wait ends.
    let live = Time::now().plus(Duration::from_secs(60)).micros();
    std::fs::write(t.0.join(".mutex"), format!("cafe {live}\n")).unwrap();
    let s2 = DirStore::new(&t.0).with_timeout(Duration::from_millis(300));
    assert!(matches!(release(&s2, "a"), Err(LockError::Unknown(m)) if m.contains("mutex")));
    std::fs::remove_file(t.0.join(".mutex")).unwrap();
    assert!(release(&s2, "a").unwrap().is_some());
}

#[test]
fn bad_requests_are_invalid() {
    let t = TempDir::new();
    let s = DirStore::new(&t.0);
    assert!(matches!(acquire(&s, &req("../x", &["h"], Kind::Shared, 30), NOW), Err(LockError::Invalid(_))));
    assert!(matches!(acquire(&s, &req("a", &["h h"], Kind::Shared, 30), NOW), Err(LockError::Invalid(_))));
    assert!(matches!(acquire(&s, &req("a", &["h"], Kind::Shared, 0), NOW), Err(LockError::Invalid(_))));
}

#[test]
fn a_grant_cut_short_inside_its_commit_reads_as_abandoned() {
    let t = TempDir::new();
    let s = DirStore::new(&t.0);
    let l = acquire(&s, &req("cut", &["h"], Kind::Exclusive, 30), NOW).unwrap();
    // As if the process died after the history record and before the lock file.
    std::fs::remove_file(t.0.join("held/cut.json")).unwrap();
    let mut rec: Record =
        serde_json::from_slice(&std::fs::read(t.0.join(format!("history/{:020}-cut.json", l.token))).unwrap()).unwrap();
    rec.lock.acquired_at = Time::from_micros(rec.lock.acquired_at.micros() - 10_000_000);
    std::fs::write(t.0.join(format!("history/{:020}-cut.json", l.token)), serde_json::to_vec(&rec).unwrap()).unwrap();
    let h = s.history(None).unwrap();
    assert_eq!(h[0].end, Some(End { how: Ending::Abandoned, at: rec.lock.acquired_at }));
    assert!(acquire(&s, &req("next", &["h"], Kind::Exclusive, 30), NOW).is_ok(), "nothing blocks the host");
}

/// Several contenders, each with its own store handle on one directory, take and release an
/// exclusive lock on one host over and over: never two holders at once, every grant a new
/// token, and every grant in the history ended by its release. This is the file-level
/// contention a shared directory sees (create-new of the mutex, rename over files other
/// handles are reading, removal of files others have open); the Windows cross-test runs it
/// under Wine, where those primitives follow Windows' sharing rules.
#[test]
fn contenders_on_one_directory_never_overlap() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const THREADS: usize = 4;
    const ROUNDS: usize = 15;
    let t = TempDir::new();
    let inside = AtomicUsize::new(0);
    let tokens = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for n in 0..THREADS {
            let (dir, inside, tokens) = (&t.0, &inside, &tokens);
            scope.spawn(move || {
                let s = DirStore::new(dir).with_timeout(Duration::from_secs(60));
                for r in 0..ROUNDS {
                    let id = format!("c{n}-{r}");
                    let l = acquire(&s, &req(&id, &["h"], Kind::Exclusive, 60), Duration::from_secs(120))
                        .unwrap_or_else(|e| panic!("{id}: {e}"));
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "{id} got the lock while another held it");
                    let st = s.state().unwrap_or_else(|e| panic!("{id}: {e}"));
                    assert_eq!(st.locks.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
                    tokens.lock().unwrap().push(l.token);
                    inside.fetch_sub(1, Ordering::SeqCst);
                    assert!(release(&s, &id).unwrap_or_else(|e| panic!("{id}: {e}")).is_some(), "{id}");
                }
            });
        }
    });
    let mut tokens = tokens.into_inner().unwrap();
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), THREADS * ROUNDS, "every grant has its own token");
    let s = DirStore::new(&t.0);
    let h = s.history(Some("h")).unwrap();
    assert_eq!(h.len(), THREADS * ROUNDS);
    assert!(h.iter().all(|r| r.end.as_ref().is_some_and(|e| e.how == Ending::Released)), "{h:?}");
    assert!(s.state().unwrap().locks.is_empty() && s.state().unwrap().intents.is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(&t.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "no mutex or temporary file left behind: {leftovers:?}");
}

/// Windows: a lock file held open without `FILE_SHARE_DELETE` (a scanner, a backup agent)
/// cannot be renamed over. The store waits for it to be let go instead of failing, and when
/// it stays busy past the retry, fails with an error naming the file and loses nothing.
#[cfg(windows)]
#[test]
fn a_busy_lock_file_is_waited_for_on_windows() {
    use std::os::windows::fs::OpenOptionsExt;
    let t = TempDir::new();
    let s = DirStore::new(&t.0);
    acquire(&s, &req("a", &["h"], Kind::Exclusive, 30), NOW).unwrap();
    let file = t.0.join("held").join("a.json");
    // FILE_SHARE_READ only: others may read, not rename over or delete.
    let hold = || std::fs::OpenOptions::new().read(true).share_mode(1).open(&file).unwrap();
    let h = hold();
    std::fs::write(t.0.join("other"), "x").unwrap();
    let e = std::fs::rename(t.0.join("other"), &file).unwrap_err();
    assert!(hale_backend::files::is_busy(&e), "a plain rename over a busy file fails: {e}");
    let letgo = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(h);
    });
    renew(&s, "a", Some(Duration::from_secs(60))).unwrap();
    letgo.join().unwrap();
    let h = hold();
    let e = renew(&s, "a", Some(Duration::from_secs(90))).unwrap_err();
    assert!(matches!(&e, LockError::Unknown(m) if m.contains("a.json")), "{e}");
    drop(h);
    let l = held(&s, "a").unwrap().expect("still held");
    assert!(l.expires_at > Time::now().plus(Duration::from_secs(30)), "the first renewal stands");
    assert!(release(&s, "a").unwrap().is_some());
}

/// A lock record as someone with write access to the store could plant it.
fn planted_lock(id: &str, host: &str, expires_at: Time) -> Lock {
    Lock {
        id: id.into(),
        hosts: vec![host.into()],
        target: host.into(),
        kind: Kind::Exclusive,
        path: None,
        holder: Holder::this_process("planted"),
        token: 1,
        ttl_secs: 30,
        acquired_at: Time::from_micros(expires_at.micros().saturating_sub(30_000_000)),
        expires_at,
        lease: None,
    }
}

/// An expired intent whose id climbs out of the store: the sweep of the next transaction, on
/// any host, used to remove `intents/<id>.json`, a file outside the store. Now the record is
/// corrupt, named in the error, and nothing is removed or written.
#[test]
fn a_crafted_id_in_the_store_is_corrupt_and_never_acted_upon() {
    let t = TempDir::new();
    let root = t.0.join("store");
    let victim = t.0.join("victim");
    std::fs::create_dir_all(root.join("intents")).unwrap();
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("x.json"), "precious").unwrap();
    let past = Time::from_micros(Time::now().micros() - 60_000_000);
    let intent = Intent {
        id: "../../victim/x".into(),
        hosts: vec!["h".into()],
        holder: Holder::this_process("planted"),
        since: past,
        expires_at: past,
        lease: None,
    };
    std::fs::write(root.join("intents/evil.json"), serde_json::to_vec(&intent).unwrap()).unwrap();
    let s = DirStore::new(&root);
    let e = acquire(&s, &req("a", &["h"], Kind::Exclusive, 30), NOW).unwrap_err();
    assert!(matches!(&e, LockError::Unknown(m) if m.contains("corrupt lock record") && m.contains("evil.json")), "{e}");
    assert_eq!(std::fs::read_to_string(victim.join("x.json")).unwrap(), "precious", "nothing outside the store");
    assert!(s.state().is_err(), "a probe sees the corrupt record too");
    std::fs::remove_file(root.join("intents/evil.json")).unwrap();

    // A well-formed id in a file of another name, and hosts that are no host names.
    let future = Time::now().plus(Duration::from_secs(60));
    std::fs::create_dir_all(root.join("held")).unwrap();
    std::fs::write(root.join("held/other.json"), serde_json::to_vec(&planted_lock("b", "h", future)).unwrap()).unwrap();
    let e = s.state().unwrap_err();
    assert!(e.to_string().contains("other.json") && e.to_string().contains("not the file's"), "{e}");
    std::fs::write(root.join("held/b.json"), serde_json::to_vec(&planted_lock("b", "../h", future)).unwrap()).unwrap();
    std::fs::remove_file(root.join("held/other.json")).unwrap();
    assert!(s.state().unwrap_err().to_string().contains("not a host name"));
    std::fs::remove_file(root.join("held/b.json")).unwrap();

    // A history file whose name and record disagree.
    let l = acquire(&s, &req("c", &["h"], Kind::Exclusive, 30), NOW).unwrap();
    std::fs::rename(
        root.join(format!("history/{:020}-c.json", l.token)),
        root.join(format!("history/{:020}-d.json", l.token)),
    )
    .unwrap();
    assert!(s.history(None).unwrap_err().to_string().contains("not the file's"));
    std::fs::write(root.join("history/1-c.json"), "{}").unwrap();
    assert!(s.history(None).is_err());
}

/// A lock file planted as a symbolic link to a record outside the store, or a FIFO, is
/// refused instead of read; a subdirectory replaced by a link is refused instead of written.
#[cfg(unix)]
#[test]
fn links_and_fifos_planted_in_the_store_are_refused() {
    let t = TempDir::new();
    let root = t.0.join("store");
    let outside = t.0.join("outside");
    std::fs::create_dir_all(root.join("held")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let future = Time::now().plus(Duration::from_secs(60));
    std::fs::write(outside.join("a.json"), serde_json::to_vec(&planted_lock("a", "h", future)).unwrap()).unwrap();
    std::os::unix::fs::symlink(outside.join("a.json"), root.join("held/a.json")).unwrap();
    let s = DirStore::new(&root);
    let e = s.state().unwrap_err();
    assert!(e.to_string().contains("a.json"), "{e}");
    std::fs::remove_file(root.join("held/a.json")).unwrap();

    assert!(std::process::Command::new("mkfifo").arg(root.join("held/f.json")).status().unwrap().success());
    assert!(s.state().unwrap_err().to_string().contains("f.json"), "a FIFO is refused, not waited on");
    std::fs::remove_file(root.join("held/f.json")).unwrap();

    std::fs::remove_dir(root.join("held")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("held")).unwrap();
    std::fs::remove_file(outside.join("a.json")).unwrap();
    let e = acquire(&s, &req("b", &["h"], Kind::Exclusive, 30), NOW).unwrap_err();
    assert!(matches!(&e, LockError::Unknown(_)), "{e}");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "nothing written through the link");
}

/// A counter at u64::MAX would wrap the next token to 0, older than every holder: refused.
#[test]
fn a_token_counter_at_its_maximum_refuses_to_grant() {
    let t = TempDir::new();
    std::fs::write(t.0.join("counter"), format!("{}\n", u64::MAX)).unwrap();
    let s = DirStore::new(&t.0);
    let e = acquire(&s, &req("a", &["h"], Kind::Exclusive, 30), Duration::from_millis(50)).unwrap_err();
    assert!(matches!(&e, LockError::Refused(m) if m.contains("maximum")), "{e}");
    let st = s.state().unwrap();
    assert!(st.locks.is_empty() && st.intents.is_empty(), "{st:?}");
    assert_eq!(st.last_token, u64::MAX);
}

/// A ttl whose microseconds overflow once made a lease of 0.45 s: out of range now.
#[test]
fn a_ttl_out_of_range_is_invalid() {
    let t = TempDir::new();
    let s = DirStore::new(&t.0);
    let e = acquire(&s, &req("a", &["h"], Kind::Exclusive, 18_446_744_073_710), NOW).unwrap_err();
    assert!(matches!(&e, LockError::Invalid(m) if m.contains("out of range (1 to 31536000 seconds)")), "{e}");
    acquire(&s, &req("a", &["h"], Kind::Exclusive, MAX_TTL.as_secs()), NOW).unwrap();
    let e = renew(&s, "a", Some(MAX_TTL + Duration::from_secs(1))).unwrap_err();
    assert!(matches!(e, LockError::Invalid(_)), "{e}");
}
