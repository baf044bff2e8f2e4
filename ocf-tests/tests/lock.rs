//! Host locks against both real stores: a directory, and a real etcd server started by the
//! test. Contention is between real `hale lock` processes; the invariants are checked from
//! the history the store keeps. Then `ocf:hale:hostlock` as the cluster runs it.

use hale_lock::{Ending, Kind, Record, Store};
use hale_ocf_tests::etcd::Etcd;
use hale_ocf_tests::{agent_path, hale_bin, require, unique, wait_for, Invocation, Scratch};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// One store under test, with the `hale lock` flags that select it.
enum Under {
    Dir(Scratch),
    Etcd(Etcd),
}

impl Under {
    fn dir() -> Under {
        Under::Dir(Scratch::new("locks"))
    }
    fn etcd() -> Under {
        Under::Etcd(Etcd::start())
    }
    fn flags(&self) -> Vec<String> {
        match self {
            Under::Dir(d) => vec!["--store".into(), "dir".into(), "--dir".into(), d.path().display().to_string()],
            Under::Etcd(e) => vec!["--store".into(), "etcd".into(), "--endpoints".into(), e.url.clone()],
        }
    }
    fn store(&self) -> Box<dyn Store> {
        match self {
            Under::Dir(d) => Box::new(hale_lock::dir::DirStore::new(d.path())),
            Under::Etcd(e) => Box::new(e.store()),
        }
    }
    fn name(&self) -> &'static str {
        match self {
            Under::Dir(_) => "dir",
            Under::Etcd(_) => "etcd",
        }
    }
    /// `hale lock <store flags> <args>`, not yet run; never reads a configuration file.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(hale_bin());
        c.arg("lock").args(self.flags()).args(args).env("HALE_LOCK_CONFIG", "/dev/null");
        c.stdin(Stdio::null());
        c
    }
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let Output { status, stdout, stderr } = self.cmd(args).output().expect("run hale lock");
        (status.code().unwrap_or(-1), String::from_utf8_lossy(&stdout).into(), String::from_utf8_lossy(&stderr).into())
    }
    fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn hale lock")
    }
    fn history(&self, host: &str) -> Vec<Record> {
        self.store().history(Some(host)).expect("read the history")
    }
}

/// Exclusive intervals overlap nothing else on the host, tokens are unique and grow with the
/// grant order. `intervals` are from the history: grant time to release or expiry.
fn check_invariants(records: &[Record]) {
    let mut tokens: Vec<u64> = records.iter().map(|r| r.lock.token).collect();
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), records.len(), "fencing tokens are unique");
    let mut by_time: Vec<&Record> = records.iter().collect();
    by_time.sort_by_key(|r| r.lock.acquired_at);
    assert!(by_time.windows(2).all(|w| w[0].lock.token < w[1].lock.token), "tokens grow with every grant");
    for a in records.iter().filter(|r| r.lock.kind == Kind::Exclusive) {
        let a_end = a.end.as_ref().expect("ended").at;
        for b in records.iter().filter(|b| b.lock.id != a.lock.id) {
            let b_end = b.end.as_ref().expect("ended").at;
            let overlap = a.lock.acquired_at < b_end && b.lock.acquired_at < a_end;
            assert!(
                !overlap,
                "exclusive lock {} [{} .. {}] overlaps {} {} [{} .. {}]",
                a.lock.id, a.lock.acquired_at, a_end, b.lock.kind, b.lock.id, b.lock.acquired_at, b_end
            );
        }
    }
}

/// 8 exclusive and 8 shared `hale lock run` processes on one host at once: every one gets
/// the lock in turn, exclusive holders never overlap anyone, and the history holds exactly
/// one record per lock taken.
fn contention(under: &Under) {
    let host = unique("contended");
    let kinds = ["exclusive", "shared", "file", "exclusive", "shared", "exclusive", "shared", "exclusive"];
    let children: Vec<(usize, Child)> = (0..16)
        .map(|i| {
            let kind = kinds[i % kinds.len()];
            let reason = format!("contender {i}");
            let mut args = vec!["run", &host, "--kind", kind, "--reason", &reason, "--ttl", "30", "--wait", "120"];
            if kind == "file" {
                args.extend(["--path", "/srv/share/file"]);
            }
            args.extend(["--", "sleep", "0.05"]);
            (i, under.spawn(&args))
        })
        .collect();
    let mut granted = 0;
    for (i, c) in children {
        let out = c.wait_with_output().expect("wait");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: contender {i}: {}",
            under.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        granted += 1;
    }
    let h = under.history(&host);
    assert_eq!(h.len(), granted, "{}: one history record per lock taken", under.name());
    assert!(h.iter().all(|r| r.end.as_ref().is_some_and(|e| e.how == Ending::Released)));
    assert_eq!(h.iter().filter(|r| r.lock.kind == Kind::Exclusive).count(), 8);
    assert!(h.iter().filter(|r| r.lock.kind == Kind::File).all(|r| r.lock.path.as_deref() == Some("/srv/share/file")));
    check_invariants(&h);
}

#[test]
fn contention_dir_exactly_one_exclusive_holder_and_one_record_per_grant() {
    contention(&Under::dir());
}

#[test]
fn contention_etcd_exactly_one_exclusive_holder_and_one_record_per_grant() {
    contention(&Under::etcd());
}

/// Random kinds, random SIGKILLs of holders and waiters, and (etcd) the store stopped and
/// restarted mid-run: whatever happened, the history shows no exclusive lock overlapping
/// another lock on the host, and every lock ended (released, expired or abandoned).
fn contention_with_kills(under: &mut Under) {
    let host = unique("chaos");
    let mut rng = hale_lock::random_u64() | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let kinds = ["exclusive", "shared", "file"];
    let mut children: Vec<Option<Child>> = (0..14)
        .map(|i| {
            let kind = kinds[(next() % 3) as usize];
            let reason = format!("chaos {i}");
            let mut args = vec!["run", &host, "--kind", kind, "--reason", &reason, "--ttl", "2", "--wait", "120"];
            if kind == "file" {
                args.extend(["--path", "/srv/f"]);
            }
            args.extend(["--", "sleep", "0.1"]);
            Some(under.spawn(&args))
        })
        .collect();
    let mut killed = 0;
    for round in 0..6 {
        std::thread::sleep(Duration::from_millis(50 + next() % 300));
        let victim = (next() % children.len() as u64) as usize;
        if let Some(mut c) = children[victim].take() {
            let _ = c.kill();
            let _ = c.wait();
            killed += 1;
        }
        if round == 2 {
            if let Under::Etcd(e) = under {
                e.stop();
                std::thread::sleep(Duration::from_millis(500));
                e.restart();
            }
        }
    }
    for c in children.iter_mut().filter_map(Option::take) {
        let out = c.wait_with_output().expect("wait");
        // 0, or 5 when the holder could not renew through the outage; never a double grant.
        assert!(matches!(out.status.code(), Some(0 | 5 | 4)), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // Let the killed holders' leases run out.
    let store = under.store();
    assert!(wait_for(Duration::from_secs(60), || store.state().is_ok_and(|s| s.locks.is_empty())));
    let h = under.history(&host);
    assert!(h.len() >= 14 - killed, "{}: {} records for {} survivors", under.name(), h.len(), 14 - killed);
    check_invariants(&h);
}

#[test]
fn contention_with_random_kills_dir() {
    contention_with_kills(&mut Under::dir());
}

#[test]
fn contention_with_random_kills_and_an_etcd_restart() {
    contention_with_kills(&mut Under::etcd());
}

fn shared_and_writer_preference(under: &Under) {
    let host = unique("pref");
    let n = under.name();
    // Shared locks coexist.
    let mut ids = Vec::new();
    for i in 0..3 {
        let (code, out, err) = under.run(&["acquire", &host, "--kind", "shared", "--reason", &format!("reader {i}")]);
        assert_eq!(code, 0, "{n}: {err}");
        let mut f = out.split_whitespace();
        ids.push(f.next().unwrap().to_string());
        assert!(f.next().unwrap().parse::<u64>().is_ok(), "{n}: acquire prints the id and the token: {out}");
    }
    let (code, out, _) = under.run(&["status", &host]);
    assert_eq!(code, 3, "{n}: status of a locked host exits 3: {out}");
    assert_eq!(out.lines().filter(|l| l.contains(" shared token ")).count(), 3, "{n}: {out}");
    // An exclusive request waits for them, and its intent stops new shared locks.
    let writer = under.spawn(&["acquire", &host, "--reason", "reboot", "--wait", "60"]);
    let store = under.store();
    assert!(
        wait_for(Duration::from_secs(20), || store.state().is_ok_and(|s| !s.intents.is_empty())),
        "{n}: the waiting writer's intent never appeared"
    );
    let (code, _, err) = under.run(&["acquire", &host, "--kind", "shared", "--reason", "late reader"]);
    assert_eq!(code, 3, "{n}: a new shared lock must wait behind the writer: {err}");
    assert!(err.contains("reserved for a waiting exclusive lock"), "{n}: {err}");
    for id in &ids {
        assert_eq!(under.run(&["release", id]).0, 0);
    }
    let out = writer.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{n}: the writer gets the host: {}", String::from_utf8_lossy(&out.stderr));
    let wid = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string();
    let (code, _, err) = under.run(&["acquire", &host, "--kind", "shared", "--reason", "late reader"]);
    assert_eq!(code, 3, "{n}: {err}");
    assert!(err.contains("is locked exclusive by"), "{n}: {err}");
    assert_eq!(under.run(&["release", &wid]).0, 0);
    assert_eq!(under.run(&["release", &wid]).0, 5, "{n}: releasing twice says not held");
    assert_eq!(under.run(&["status", &host]).0, 0, "{n}: free at the end");
    check_invariants(&under.history(&host));
}

#[test]
fn shared_locks_coexist_and_a_waiting_writer_goes_first_dir() {
    shared_and_writer_preference(&Under::dir());
}

#[test]
fn shared_locks_coexist_and_a_waiting_writer_goes_first_etcd() {
    shared_and_writer_preference(&Under::etcd());
}

fn dependencies(under: &Under) {
    let n = under.name();
    let files = Scratch::new("deps");
    let deps = files.join("deps.json");
    let (dc01, dc02, app) = (unique("dc01"), unique("dc02"), unique("app"));
    std::fs::write(&deps, format!(r#"{{"{dc01}": ["{dc02}", "{app}"], "{dc02}": ["{dc01}"]}}"#)).unwrap();
    let deps_s = deps.display().to_string();
    let (code, out, _) = under.run(&["deps", &dc02, "--deps", &deps_s]);
    assert_eq!(code, 0);
    let mut want = vec![dc01.clone(), dc02.clone(), app.clone()];
    want.sort();
    assert_eq!(out.lines().filter(|l| !l.starts_with("cycle")).collect::<Vec<_>>(), want, "{out}");
    assert!(out.contains(&format!("cycle: {dc01} -> {dc02}")), "the cycle is shown: {out}");

    // Partial failure: app is held by someone else, so locking dc02 takes nothing at all.
    let (code, out, _) = under.run(&["acquire", &app, "--reason", "app patch"]);
    assert_eq!(code, 0);
    let app_id = out.split_whitespace().next().unwrap().to_string();
    let (code, _, err) = under.run(&["acquire", &dc02, "--reason", "dc reboot", "--deps", &deps_s]);
    assert_eq!(code, 3, "{n}: {err}");
    assert!(err.contains(&format!("host {app} is locked exclusive")), "{n}: {err}");
    for h in [&dc01, &dc02] {
        assert_eq!(under.run(&["status", h]).0, 0, "{n}: {h} must not stay locked after the failed closure");
        assert!(under.history(h).is_empty(), "{n}: nothing was granted on {h}");
    }
    // --no-deps takes only the host.
    let (code, out, _) = under.run(&["acquire", &dc02, "--reason", "dc reboot", "--deps", &deps_s, "--no-deps"]);
    assert_eq!(code, 0);
    let solo = out.split_whitespace().next().unwrap().to_string();
    assert_eq!(under.run(&["status", &dc01]).0, 0);
    assert_eq!(under.run(&["release", &solo]).0, 0);
    // Once app is free, the whole closure is taken under one lock id.
    assert_eq!(under.run(&["release", &app_id]).0, 0);
    let (code, out, err) = under.run(&["acquire", &dc02, "--reason", "dc reboot", "--deps", &deps_s]);
    assert_eq!(code, 0, "{err}");
    let id = out.split_whitespace().next().unwrap().to_string();
    for h in [&dc01, &dc02, &app] {
        let (code, out, _) = under.run(&["status", h]);
        assert_eq!(code, 3, "{n}: {h} is in the closure");
        assert!(out.contains(&id), "{n}: the same lock id on every host: {out}");
    }
    assert_eq!(under.run(&["release", &id]).0, 0);
    for h in [&dc01, &dc02, &app] {
        assert_eq!(under.run(&["status", h]).0, 0);
    }
}

#[test]
fn dependency_closure_cycles_and_all_or_nothing_dir() {
    dependencies(&Under::dir());
}

#[test]
fn dependency_closure_cycles_and_all_or_nothing_etcd() {
    dependencies(&Under::etcd());
}

fn killed_holder(under: &Under) {
    let n = under.name();
    let host = unique("crash");
    let mut holder = under.spawn(&["run", &host, "--reason", "dies", "--ttl", "3", "--", "sleep", "1000"]);
    assert!(wait_for(Duration::from_secs(20), || under.run(&["status", &host]).0 == 3), "{n}: never locked");
    let pid = holder.id();
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    // SIGKILL: no release, no clean-up. Then its orphaned command.
    holder.kill().unwrap();
    holder.wait().unwrap();
    for child in children.split_whitespace() {
        let _ = Command::new("kill").args(["-KILL", child]).status();
    }
    assert_eq!(under.run(&["status", &host]).0, 3, "{n}: still held right after the kill (the lease runs)");
    assert!(wait_for(Duration::from_secs(30), || under.run(&["status", &host]).0 == 0), "{n}: the lease never expired");
    let (code, _, err) = under.run(&["acquire", &host, "--reason", "next"]);
    assert_eq!(code, 0, "{n}: {err}");
    let h = under.history(&host);
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].end.as_ref().map(|e| e.how), Some(Ending::Expired), "{n}: {h:?}");
    assert!(h[1].end.is_none());
}

#[test]
fn killed_holder_lease_expires_dir() {
    killed_holder(&Under::dir());
}

#[test]
fn killed_holder_lease_expires_etcd() {
    killed_holder(&Under::etcd());
}

#[test]
fn unreachable_store_is_unknown_never_free() {
    let mut under = Under::etcd();
    let host = unique("outage");
    let (code, out, _) = under.run(&["acquire", &host, "--reason", "before the outage", "--ttl", "600"]);
    assert_eq!(code, 0);
    let id = out.split_whitespace().next().unwrap().to_string();
    let Under::Etcd(etcd) = &mut under else { unreachable!() };
    etcd.stop();
    let (code, out, err) = under.run(&["status", &host, "--timeout", "2"]);
    assert_eq!(code, 4, "unknown has its own exit code: {out}{err}");
    assert!(err.contains("lock state unknown: etcd unreachable"), "{err}");
    let (code, out, _) = under.run(&["status", &host, "--json", "--timeout", "2"]);
    assert_eq!(code, 4);
    assert!(out.contains("\"state\":\"unknown\""), "{out}");
    assert!(!out.contains("free"), "{out}");
    assert_eq!(under.run(&["acquire", &host, "--reason", "x", "--timeout", "2"]).0, 4);
    assert_eq!(under.run(&["renew", &id, "--timeout", "2"]).0, 4);
    assert_eq!(under.run(&["release", &id, "--timeout", "2"]).0, 4);
    assert_eq!(under.run(&["history", "--timeout", "2"]).0, 4);
    let Under::Etcd(etcd) = &mut under else { unreachable!() };
    etcd.restart();
    let (code, out, _) = under.run(&["status", &host]);
    assert_eq!(code, 3, "the lock survived the outage: {out}");
    assert_eq!(under.run(&["release", &id]).0, 0);

    let missing = ["--store", "dir", "--dir", "/nonexistent/hale-locks"];
    let out = Command::new(hale_bin()).arg("lock").args(missing).args(["status", "h"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "an unmounted directory is unknown");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not mounted?"));
}

#[test]
fn configuration_file_supplies_defaults_and_rejects_typos() {
    let d = Scratch::new("lockconf");
    let store = Scratch::new("lockconf-store");
    let conf = d.join("lock.conf");
    std::fs::write(&conf, format!("store = dir\npath = {}\nttl = 90\n", store.path().display())).unwrap();
    let out = Command::new(hale_bin())
        .args(["lock", "acquire", "confhost", "--reason", "r", "--json"])
        .env("HALE_LOCK_CONFIG", &conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"ttl_secs\": 90"));
    assert!(store.join("held").read_dir().unwrap().count() == 1);
    std::fs::write(&conf, "store = dir\nttl = 90\nwait_time = 5\n").unwrap();
    let out = Command::new(hale_bin()).args(["lock", "status"]).env("HALE_LOCK_CONFIG", &conf).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 3: unknown key 'wait_time'"));
}

// ---- ocf:hale:hostlock ----

fn hostlock(instance: &str, params: &[(&str, String)]) -> Invocation {
    Invocation::new(&agent_path("hostlock"), instance).params(params)
}

#[test]
fn hostlock_lost_lease_fails_the_monitor_with_a_reason() {
    let d = Scratch::new("hl-lost");
    let params = [("host", "hl-lost".to_string()), ("path", d.path().display().to_string()), ("ttl", "2".to_string())];
    let c = hostlock(&unique("lost"), &params);
    assert_eq!(c.run("start").code, 0);
    assert_eq!(c.clone().recurring().run("monitor").code, 0);
    // The monitor did not run in time (node hung, cut off): the lease lapses, someone else
    // takes the host.
    let store = hale_lock::dir::DirStore::new(d.path());
    assert!(wait_for(Duration::from_secs(20), || store.state().is_ok_and(|s| s.locks.is_empty())));
    let other = Command::new(hale_bin())
        .args(["lock", "--dir", &d.path().display().to_string(), "acquire", "hl-lost", "--reason", "took over"])
        .env("HALE_LOCK_CONFIG", "/dev/null")
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(0));
    let m = c.clone().recurring().run("monitor");
    assert_eq!(m.code, 1, "{}", m.stderr);
    let reason = m.exit_reason().unwrap_or_default();
    assert!(reason.contains("was lost (lease expired); now locked exclusive by"), "{reason}");
    assert_eq!(c.run("stop").code, 0);
    assert_eq!(c.clone().recurring().run("monitor").code, 7);
}

#[test]
fn hostlock_on_etcd_passes_ocf_tester_and_fails_closed_when_etcd_is_down() {
    let mut etcd = Etcd::start();
    let name = unique("hl-etcd");
    let params = [
        ("host", "etcd-host".to_string()),
        ("store", "etcd".to_string()),
        ("endpoints", etcd.url.clone()),
        ("ttl", "20".to_string()),
    ];
    let mut cmd = Command::new(require("ocf-tester"));
    cmd.arg("-n").arg(&name);
    for (k, v) in &params {
        cmd.arg("-o").arg(format!("{k}={v}"));
    }
    let out = cmd.arg(agent_path("hostlock")).stdin(Stdio::null()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("passed all tests"), "ocf-tester:\n{text}");
    assert!(etcd.store().state().unwrap().locks.is_empty(), "ocf-tester left a lock");

    let c = hostlock(&unique("hl-etcd"), &params).timeout_ms(8000);
    assert_eq!(c.run("start").code, 0);
    let probe = c.syscalls("monitor");
    assert_eq!((probe.code, probe.forks), (0, 0), "an etcd probe neither forks nor starts threads:\n{}", probe.trace);
    let m = c.clone().recurring().syscalls("monitor");
    assert_eq!((m.code, m.forks), (0, 0), "an etcd monitor neither forks nor starts threads:\n{}", m.trace);
    etcd.stop();
    let m = c.clone().recurring().run("monitor");
    assert_eq!(m.code, 1);
    assert!(m.exit_reason().unwrap_or_default().contains("lock state unknown"), "{}", m.stderr);
    assert!(!m.timed_out);
    let probe = c.run("monitor");
    assert_eq!(probe.code, 1, "a probe that cannot see the store must not say stopped: {}", probe.stderr);
    let stop = c.run("stop");
    assert_eq!(stop.code, 0, "stop succeeds without the store: the lease lapses: {}", stop.stderr);
    assert!(!stop.timed_out);
}

#[test]
fn hostlock_takes_the_dependency_closure_and_waits_for_it() {
    let d = Scratch::new("hl-deps");
    let deps = d.join("deps.json");
    std::fs::write(&deps, r#"{"san01": ["hv01", "hv02"], "hv01": ["san01"]}"#).unwrap();
    let store_dir = Scratch::new("hl-deps-store");
    let base = |host: &str| {
        vec![
            ("host", host.to_string()),
            ("path", store_dir.path().display().to_string()),
            ("dependencies_file", deps.display().to_string()),
        ]
    };
    let san = hostlock(&unique("san"), &base("san01"));
    assert_eq!(san.run("start").code, 0);
    let store = hale_lock::dir::DirStore::new(store_dir.path());
    let s = store.state().unwrap();
    assert_eq!(s.locks.len(), 1);
    assert_eq!(s.locks[0].hosts, ["hv01", "hv02", "san01"]);
    // Maintenance of hv02 waits within its start timeout, then fails naming the holder.
    let hv02 = hostlock(&unique("hv02"), &base("hv02")).timeout_ms(3000);
    let r = hv02.run("start");
    assert_eq!(r.code, 1);
    assert!(!r.timed_out);
    assert!(r.exit_reason().unwrap_or_default().contains("host hv02 is locked exclusive by"), "{}", r.stderr);
    assert_eq!(store.state().unwrap().locks.len(), 1, "the failed start left nothing");
    // Released while it waits: it gets the host.
    let waiting = hostlock(&unique("hv02"), &base("hv02")).timeout_ms(30000);
    let t = std::thread::spawn(move || waiting.run("start"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(san.run("stop").code, 0);
    let r = t.join().unwrap();
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn hostlock_passes_ocf_tester_on_a_directory() {
    let d = Scratch::new("hl-tester");
    let name = unique("hl-tester");
    let out = Command::new(require("ocf-tester"))
        .args(["-n", &name, "-o", "host=tester-host", "-o"])
        .arg(format!("path={}", d.path().display()))
        .arg(agent_path("hostlock"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("passed all tests"), "ocf-tester:\n{text}");
    let h = hale_lock::dir::DirStore::new(d.path()).history(None).unwrap();
    assert!(!h.is_empty() && h.iter().all(|r| r.end.as_ref().is_some_and(|e| e.how == Ending::Released)), "{h:?}");
}

// ---- crafted records, signals, ranges ----

/// A lock record as it would be planted by someone with write access to the store.
fn planted(id: &str, expired: bool) -> String {
    let (acquired, expires) = if expired {
        ("2020-01-01T00:00:00Z", "2020-01-01T00:01:00Z")
    } else {
        ("2020-01-01T00:00:00Z", "2999-01-01T00:00:00Z")
    };
    format!(
        r#"{{"id":"{id}","hosts":["h"],"holder":{{"node":"n","pid":1,"user":"u","reason":"r"}},"since":"{acquired}","expires_at":"{expires}"}}"#
    )
}

/// An intent whose id climbs out of the directory store: the next transaction of any host
/// used to sweep it, removing a `*.json` outside the store. Now it is corrupt: unknown (4),
/// the file named, nothing outside touched. A token counter at its maximum refuses (1).
#[test]
fn crafted_records_are_corrupt_and_never_acted_upon_dir() {
    let under = Under::dir();
    let Under::Dir(d) = &under else { unreachable!() };
    let victim = Scratch::new("victim");
    std::fs::write(victim.join("x.json"), "precious").unwrap();
    let up = "../".repeat(d.path().components().count() + 1);
    let id = format!("{up}{}", victim.join("x").display().to_string().trim_start_matches('/'));
    std::fs::create_dir_all(d.join("intents")).unwrap();
    std::fs::write(d.join("intents/evil.json"), planted(&id, true)).unwrap();
    for args in [&["acquire", "h", "--reason", "r"][..], &["status", "h"], &["release", "abc"]] {
        let (code, _, err) = under.run(args);
        assert_eq!(code, 4, "{args:?}: {err}");
        assert!(err.contains("corrupt lock record") && err.contains("evil.json"), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read_to_string(victim.join("x.json")).unwrap(), "precious");
    std::fs::remove_file(d.join("intents/evil.json")).unwrap();

    std::fs::write(d.join("counter"), format!("{}\n", u64::MAX)).unwrap();
    let (code, _, err) = under.run(&["acquire", "h", "--reason", "r"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("fencing-token counter is at its maximum"), "{err}");
    assert_eq!(under.run(&["status", "h"]).0, 0, "nothing was granted");
}

/// The same on etcd: keys and records are checked before use; a crafted one makes the state
/// unknown, naming the key; a counter at its maximum refuses to grant.
#[test]
fn crafted_records_are_corrupt_and_never_acted_upon_etcd() {
    let under = Under::etcd();
    let Under::Etcd(etcd) = &under else { unreachable!() };
    etcd.put("/hale/lock/intent/evil", &planted("../../../../tmp/x", false));
    let (code, _, err) = under.run(&["status", "h"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("/hale/lock/intent/evil"), "{err}");
    assert_eq!(under.run(&["acquire", "h", "--reason", "r"]).0, 4);
    etcd.put("/hale/lock/intent/evil", &planted("evil", false).replace(r#"["h"]"#, r#"["h/../x"]"#));
    let (code, _, err) = under.run(&["status"]);
    assert!(code == 4 && err.contains("not a host name"), "{err}");
    etcd.put("/hale/lock/intent/evil", &planted("other", false));
    let (code, _, err) = under.run(&["status"]);
    assert!(code == 4 && err.contains("not the key's"), "{err}");
    // What a valid writer would leave: the store works again.
    etcd.put("/hale/lock/intent/evil", &planted("evil", true));
    etcd.put("/hale/lock/counter", &u64::MAX.to_string());
    let (code, _, err) = under.run(&["acquire", "free-host", "--reason", "r"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("fencing-token counter is at its maximum"), "{err}");
    assert_eq!(under.run(&["status", "free-host"]).0, 0, "nothing was granted");
}

/// `hale lock run` ended by SIGTERM: the command gets the signal, is waited for, the lock is
/// released (not held for its whole ttl), and the exit status is 128 + 15.
fn sigterm_is_passed_on(under: &Under) {
    let n = under.name();
    let host = unique("term");
    let d = Scratch::new("term");
    let (pidfile, got) = (d.join("child.pid"), d.join("got"));
    let script = format!(
        "echo $$ > {p}.tmp && mv {p}.tmp {p}; trap 'echo TERM > {g}; exit 0' TERM; while :; do sleep 0.1; done",
        p = pidfile.display(),
        g = got.display()
    );
    let holder = under.spawn(&["run", &host, "--reason", "term", "--ttl", "600", "--", "sh", "-c", &script]);
    assert!(
        wait_for(Duration::from_secs(20), || pidfile.exists() && under.run(&["status", &host]).0 == 3),
        "{n}: never locked and running"
    );
    let child: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(holder.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = holder.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{n}: the conventional status of SIGTERM: {err}");
    assert_eq!(std::fs::read_to_string(&got).unwrap_or_default().trim(), "TERM", "{n}: the command got it: {err}");
    assert!(!std::path::Path::new(&format!("/proc/{child}")).exists(), "{n}: the command was waited for");
    assert_eq!(under.run(&["status", &host]).0, 0, "{n}: released at once, not after the ttl");
    let h = under.history(&host);
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].end.as_ref().map(|e| e.how), Some(Ending::Released), "{n}: {h:?}");
}

#[test]
fn run_ended_by_sigterm_passes_it_on_and_releases_dir() {
    sigterm_is_passed_on(&Under::dir());
}

#[test]
fn run_ended_by_sigterm_passes_it_on_and_releases_etcd() {
    sigterm_is_passed_on(&Under::etcd());
}

/// 18446744073710 s once overflowed to a 0.45 s lease (and, on etcd, a start failing with
/// rc 1 after 16 s): out of range now, refused by the agent (6, naming the range) and by
/// `hale lock` (usage, 2).
#[test]
fn a_ttl_out_of_range_is_refused() {
    let etcd = Etcd::start();
    let d = Scratch::new("hl-ttl");
    let huge = "18446744073710".to_string();
    let stores = [
        vec![("path", d.path().display().to_string())],
        vec![("store", "etcd".to_string()), ("endpoints", etcd.url.clone())],
    ];
    for store in stores {
        let mut params = store.clone();
        params.extend([("host", "ttl-host".to_string()), ("ttl", huge.clone())]);
        let c = hostlock(&unique("ttl"), &params);
        for action in ["validate-all", "start"] {
            let r = c.run(action);
            assert_eq!(r.code, 6, "{action}: {}", r.stderr);
            let reason = r.exit_reason().unwrap_or_default();
            assert!(reason.contains("out of range (2 to 31536000 seconds)"), "{action}: {reason}");
        }
        assert_eq!(c.run("stop").code, 0);
    }
    assert!(etcd.store().state().unwrap().locks.is_empty());
    let under = Under::Dir(d);
    for args in [&["acquire", "h", "--reason", "r", "--ttl", &huge][..], &["renew", "abc", "--ttl", &huge]] {
        let (code, _, err) = under.run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("out of range (1 to 31536000 seconds)"), "{err}");
    }
}

/// Run `hostlock ACTION` as on a node just booted: a fresh, empty /run (its own mount
/// namespace with a tmpfs there), with a 300-character resource name.
#[test]
fn hostlock_works_from_an_empty_run_with_a_long_name() {
    require("unshare");
    let d = Scratch::new("hl-boot");
    let wrap = Scratch::new("hl-boot-wrap");
    // Named like the agent: the runner takes the agent's name from argv[0]'s file name.
    let wrapper = wrap.join("hostlock");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec unshare -m --propagation private sh -c 'mount -t tmpfs tmpfs /run && exec \"$0\" \"$1\"' {} \"$1\"\n",
            agent_path("hostlock").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let name = format!("{}{}", unique("boot"), "b".repeat(300));
    let params = [("host", "boot-host".to_string()), ("path", d.path().display().to_string())];
    let store = hale_lock::dir::DirStore::new(d.path());

    // With the real /run: the record is written, under a shortened name.
    let c = hostlock(&name, &params);
    let r = c.run("start");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let held = store.state().unwrap().locks;
    assert_eq!(held.len(), 1);
    assert!(held[0].id.len() <= 128 && held[0].id.starts_with("pcmk."), "{}", held[0].id);
    let recorded: Vec<_> = std::fs::read_dir("/run/hale")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("hostlock-{}", &name[..40])))
        .collect();
    assert_eq!(recorded.len(), 1, "the lock is recorded in /run/hale");
    assert_eq!(c.clone().recurring().run("monitor").code, 0);
    assert_eq!(c.run("stop").code, 0);
    assert!(store.state().unwrap().locks.is_empty());

    // Every action from an empty /run.
    let c = Invocation::new(&wrapper, &name).params(&params);
    for (action, want) in
        [("validate-all", 0), ("monitor", 7), ("start", 0), ("monitor", 0), ("stop", 0), ("monitor", 7)]
    {
        let r = c.run(action);
        assert_eq!(r.code, want, "{action}: {}", r.stderr);
    }
    let r = c.clone().recurring().run("monitor");
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(store.state().unwrap().locks.is_empty());
}
