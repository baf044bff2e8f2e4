//! ocf:hale:gitscript, ocf:hale:gitsync and `hale repo` with real repositories: commits made
//! and signed by the real git and ssh-keygen, served from paths and by a real `git daemon` on
//! loopback, fetched by the installed agents.

use hale_ocf_tests::git::{signed_master, GitDaemon, Key, Master, SERVICE};
use hale_ocf_tests::{agent_path, hale_bin, tagged_processes, unique, wait_for, AgentRun, Invocation, Scratch};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A signed master, its keys, and a gitscript resource on it, with everything in one scratch
/// directory.
struct Setup {
    dir: Scratch,
    master: Master,
    ops: Key,
    allowed: PathBuf,
    instance: String,
}

impl Setup {
    fn new() -> Setup {
        let dir = Scratch::new("git");
        let (master, allowed) = signed_master(dir.path());
        let ops = Key::new(dir.path(), "ops@example.com");
        Setup { dir, master, ops, allowed, instance: unique("gitscript") }
    }

    fn params(&self) -> Vec<(String, String)> {
        let s = |p: &Path| p.to_string_lossy().to_string();
        vec![
            ("repository".into(), s(&self.master.bare)),
            ("entry".into(), "bin/svc".into()),
            ("allowed_signers".into(), s(&self.allowed)),
            ("state_dir".into(), s(&self.dir.join("state"))),
            ("pidfile".into(), s(&self.dir.join("svc.pid"))),
            ("logfile".into(), s(&self.dir.join("svc.log"))),
        ]
    }

    /// The gitscript resource, with `extra` parameters replacing or adding to the defaults.
    fn script(&self, extra: &[(&str, &str)]) -> Invocation {
        let mut p = self.params();
        for (k, v) in extra {
            p.retain(|(pk, _)| pk != k);
            p.push((k.to_string(), v.to_string()));
        }
        Invocation::new(&agent_path("gitscript"), &self.instance).params(&p)
    }

    fn running_commit(&self) -> String {
        std::fs::read_to_string(self.dir.join("svc.commit")).unwrap_or_default().trim().to_string()
    }

    fn processes(&self) -> Vec<u32> {
        tagged_processes(&format!("gitscript:{}", self.instance))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("svc.log")).unwrap_or_default()
    }

    /// Deployed commit trees (not the `current` link, not temporaries).
    fn trees(&self, state: &str) -> Vec<String> {
        let d = self.dir.join(state).join("deploy/master");
        let mut v: Vec<String> = std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.len() == 40)
            .collect();
        v.sort();
        v
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = self.script(&[]).run("stop");
    }
}

fn depth10(c: &Invocation) -> AgentRun {
    c.clone().depth(10).run("monitor")
}

fn reason(r: &AgentRun) -> String {
    r.exit_reason().unwrap_or("").to_string()
}

#[test]
fn a_signed_commit_runs_and_an_unsigned_one_never_does() {
    let s = Setup::new();
    let c1 = s.master.head();
    let c = s.script(&[]);
    let start = c.run("start");
    assert_eq!(start.code, 0, "{}", start.stderr);
    assert!(start.stderr.contains(&format!("accepted master {c1} signed by ops@example.com")), "{}", start.stderr);
    assert_eq!(s.running_commit(), c1);
    assert!(wait_for(Duration::from_secs(10), || s.log().contains(&format!("service at {c1}"))), "{}", s.log());
    let pid = s.processes();
    assert_eq!(pid.len(), 1);
    assert_eq!(depth10(&c).code, 0);

    // An unsigned commit on the master: reported, never run.
    let c2 = s.master.commit(&[("bin/svc", "#!/bin/sh\necho UNSIGNED RAN\nexec sleep 100000\n", true)], None, "x");
    let m = depth10(&c);
    assert_eq!(m.code, 190, "{}", m.stderr);
    assert!(reason(&m).contains(&format!("commit {} is not signed", &c2[..12])), "{}", reason(&m));
    let reload = c.run("reload-agent");
    assert_eq!(reload.code, 0, "{}", reload.stderr);
    assert!(reload.stderr.contains("not deployed: refused"), "{}", reload.stderr);
    assert_eq!((s.running_commit(), s.processes()), (c1.clone(), pid.clone()), "the unsigned commit must not run");
    assert!(!s.trees("state").contains(&c2), "the unsigned commit was checked out");

    // A signed commit on top of it: the node is behind until reload-agent runs it.
    let c3 = s.master.commit(&[], Some(&s.ops), "signed on top");
    let m = depth10(&c);
    assert_eq!(m.code, 190);
    assert!(reason(&m).contains(&format!("behind: the verified tip of master is {}", &c3[..12])), "{}", reason(&m));
    assert_eq!(c.run("reload-agent").code, 0);
    assert_eq!(s.running_commit(), c3);
    // c3's tree holds c2's script, now vouched for by ops' signature on c3.
    assert!(wait_for(Duration::from_secs(10), || s.log().contains("UNSIGNED RAN")), "{}", s.log());
    assert_ne!(s.processes(), pid);
    assert_eq!(depth10(&c).code, 0);
    assert_eq!(c.run("stop").code, 0);
    assert!(s.processes().is_empty());
    assert!(s.trees("state").contains(&c3), "stop leaves the deployed trees");

    // A node whose master holds only unsigned history runs nothing.
    let lone = Setup::new();
    let unsigned_only = Master::new(&lone.dir.join("unsigned"));
    unsigned_only.commit(&[("bin/svc", SERVICE, true)], None, "unsigned");
    let c_unsigned = lone.script(&[("repository", &unsigned_only.bare.to_string_lossy())]);
    let out = c_unsigned.run("start");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        reason(&out).contains("no verified commit to run") && reason(&out).contains("is not signed"),
        "{}",
        reason(&out)
    );
    assert!(lone.processes().is_empty());
    let lone_trees = lone.dir.join("state/deploy/master");
    assert!(std::fs::read_dir(&lone_trees).map_or(true, |mut d| d.next().is_none()), "nothing checked out");
}

#[test]
fn a_wrongly_signed_commit_is_refused_and_the_previous_keeps_running() {
    let s = Setup::new();
    let c1 = s.master.head();
    let c = s.script(&[]);
    assert_eq!(c.run("start").code, 0);
    let pid = s.processes();
    let mallory = Key::new(s.dir.path(), "mallory@example.com");
    let bad =
        s.master.commit(&[("bin/svc", "#!/bin/sh\necho MALLORY\nexec sleep 100000\n", true)], Some(&mallory), "evil");
    let m = depth10(&c);
    assert_eq!(m.code, 190);
    assert!(reason(&m).contains("which is not in allowed_signers"), "{}", reason(&m));
    let reload = c.run("reload-agent");
    assert_eq!(reload.code, 0);
    assert!(reload.stderr.contains(&format!("commit {bad} of master not deployed")), "{}", reload.stderr);
    assert_eq!((s.running_commit(), s.processes()), (c1.clone(), pid));
    // A restart (stop, start) still runs the last good commit.
    assert_eq!(c.run("stop").code, 0);
    let start = c.run("start");
    assert_eq!(start.code, 0, "{}", start.stderr);
    assert!(start.stderr.contains(&format!("running the last accepted commit {c1}")), "{}", start.stderr);
    assert_eq!(s.running_commit(), c1);
    assert!(!s.log().contains("MALLORY"));
}

#[test]
fn a_force_push_is_refused_until_the_administrator_accepts_it() {
    let s = Setup::new();
    let c2 = s.master.commit(&[("NOTES", "two\n", false)], Some(&s.ops), "second");
    let c = s.script(&[]);
    assert_eq!(c.run("start").code, 0);
    assert_eq!(s.running_commit(), c2);
    let rewritten = s.master.rewrite(Some(&s.ops));
    let m = depth10(&c);
    assert_eq!(m.code, 190);
    assert!(reason(&m).contains("history rewrite refused"), "{}", reason(&m));
    assert_eq!(c.run("reload-agent").code, 0);
    assert_eq!(s.running_commit(), c2, "a rewritten history must not replace the running commit");

    // The administrator accepts it deliberately with hale repo sync --allow-rewrite.
    let out = Command::new(hale_bin())
        .args(["repo", "sync", "master", "--allow-rewrite"])
        .env("HALE_STATE_DIR", s.dir.join("state"))
        .env("HALE_CONFIG_DIR", s.dir.join("conf"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("deployed {rewritten}")), "{text}");
    assert_eq!(c.run("reload-agent").code, 0);
    assert_eq!(s.running_commit(), rewritten);
    assert_eq!(depth10(&c).code, 0);
}

#[test]
fn an_unreachable_master_degrades_but_never_fails_and_start_needs_it_only_once() {
    let s = Setup::new();
    let mut daemon = GitDaemon::start(s.dir.path());
    let url = daemon.url("master.git");
    let c = s.script(&[("repository", &url)]);
    let start = c.run("start");
    assert_eq!(start.code, 0, "{}", start.stderr);
    assert_eq!(s.running_commit(), s.master.head());
    assert_eq!(depth10(&c).code, 0);

    daemon.stop();
    let m = depth10(&c);
    assert_eq!(m.code, 190, "{}", m.stderr);
    assert!(reason(&m).contains("master unreachable"), "{}", reason(&m));
    assert_eq!(c.clone().recurring().run("monitor").code, 0, "depth 0 does not use the network");
    // Restart with the master down: the last verified commit runs.
    assert_eq!(c.run("stop").code, 0);
    let start = c.run("start");
    assert_eq!(start.code, 0, "{}", start.stderr);
    assert!(start.stderr.contains("cannot fetch"), "{}", start.stderr);
    assert_eq!(s.processes().len(), 1);
    // A node with nothing verified yet cannot start without the master.
    let other = s.script(&[("repository", &url), ("state_dir", &s.dir.join("state2").to_string_lossy())]);
    let other = other.env("OCF_RESOURCE_INSTANCE", &unique("gitscript-other"));
    let out = other.run("start");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        reason(&out).contains("no verified commit to run") && reason(&out).contains("cannot fetch"),
        "{}",
        reason(&out)
    );
}

#[test]
fn sigkill_during_checkout_leaves_no_half_tree() {
    let dir = Scratch::new("git-kill");
    let (m, allowed) = signed_master(dir.path());
    let ops = Key::new(dir.path(), "ops@example.com");
    // Enough files that the checkout takes a while.
    let files: Vec<(String, String)> =
        (0..4000).map(|i| (format!("data/{:02}/f{i}.txt", i % 40), format!("file {i}\n").repeat(50))).collect();
    let refs: Vec<(&str, &str, bool)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str(), false)).collect();
    let tip = m.commit(&refs, Some(&ops), "many files");
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("big.conf"),
        format!("master = {}\nverify = signed\nallowed_signers = {}\n", m.bare.display(), allowed.display()),
    )
    .unwrap();
    let sync = |state: &Path| {
        let mut c = Command::new(hale_bin());
        c.args(["repo", "sync", "big"])
            .env("HALE_STATE_DIR", state)
            .env("HALE_CONFIG_DIR", &conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let mut killed_midway = 0;
    let mut last_state = PathBuf::new();
    for attempt in 0..20 {
        let state = dir.join(&format!("state{attempt}"));
        let deploy = state.join("deploy/big");
        let mut child = sync(&state).spawn().unwrap();
        let mut seen = false;
        while child.try_wait().unwrap().is_none() {
            let partial = std::fs::read_dir(&deploy)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(".incoming-"));
            if partial {
                let _ = child.kill();
                seen = true;
                break;
            }
        }
        let _ = child.wait();
        if seen {
            killed_midway += 1;
            assert!(!deploy.join(&tip).exists(), "a killed checkout left a tree under the commit's name");
            assert!(!deploy.join("current").exists(), "current points at a half tree");
            last_state = state;
            if killed_midway >= 2 {
                break;
            }
        }
    }
    assert!(killed_midway > 0, "never caught the checkout midway");
    // The next sync removes the leftover and deploys the whole tree.
    assert!(sync(&last_state).status().unwrap().success());
    let deploy = last_state.join("deploy/big");
    let names: Vec<String> =
        std::fs::read_dir(&deploy).unwrap().flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect();
    assert!(!names.iter().any(|n| n.starts_with('.')), "leftovers: {names:?}");
    assert_eq!(std::fs::read_link(deploy.join("current")).unwrap(), Path::new(&tip));
    let count = walk(&deploy.join(&tip));
    assert_eq!(count, 4000 + 1, "every file of the commit (and bin/svc) is deployed");
    assert_eq!(std::fs::read_to_string(deploy.join(&tip).join("data/07/f7.txt")).unwrap(), "file 7\n".repeat(50));
}

fn walk(p: &Path) -> usize {
    std::fs::read_dir(p)
        .unwrap()
        .flatten()
        .map(|e| if e.file_type().unwrap().is_dir() { walk(&e.path()) } else { 1 })
        .sum()
}

#[test]
fn a_periodic_script_that_keeps_failing_fails_the_monitor() {
    let s = Setup::new();
    s.master.commit(
        &[("bin/ok", "#!/bin/sh\necho ok run\n", true), ("bin/fail", "echo failing >&2\nexit 3\n", false)],
        Some(&s.ops),
        "periodic jobs",
    );
    // A job that fails, run by an interpreter: monitor fails after max_failures in a row.
    let c = s.script(&[
        ("entry", "bin/fail"),
        ("interpreter", "/bin/sh"),
        ("mode", "periodic"),
        ("period", "1"),
        ("max_failures", "2"),
    ]);
    assert_eq!(c.run("start").code, 0);
    let failed = wait_for(Duration::from_secs(60), || c.clone().recurring().run("monitor").code == 1);
    assert!(failed, "monitor never failed");
    let m = c.clone().recurring().run("monitor");
    assert!(
        reason(&m).contains("bin/fail failed") && reason(&m).contains("in a row (last: exit status 3)"),
        "{}",
        reason(&m)
    );
    assert!(s.log().contains("failing"), "the job's output goes to the logfile");
    assert_eq!(c.run("stop").code, 0);
    assert!(s.processes().is_empty(), "stop ends the supervisor");
    assert!(!s.dir.join("svc.runs").exists());

    // A job that succeeds keeps the monitor happy, run after run.
    let c = s.script(&[("entry", "bin/ok"), ("mode", "periodic"), ("period", "1"), ("max_failures", "1")]);
    assert_eq!(c.run("start").code, 0);
    let runs = || std::fs::read_to_string(s.dir.join("svc.runs/state")).unwrap_or_default();
    assert!(wait_for(Duration::from_secs(60), || runs().contains("runs=3")), "{}", runs());
    assert!(runs().contains("consecutive_failures=0"));
    assert_eq!(c.clone().recurring().run("monitor").code, 0);
    assert_eq!(c.run("stop").code, 0);
}

fn gitsync(s: &Setup, extra: &[(&str, &str)]) -> Invocation {
    let st = |p: PathBuf| p.to_string_lossy().to_string();
    let mut p = vec![
        ("repository".to_string(), st(s.master.bare.clone())),
        ("allowed_signers".to_string(), st(s.allowed.clone())),
        ("state_dir".to_string(), st(s.dir.join("sync-state"))),
        ("state_file".to_string(), st(s.dir.join("gitsync.state"))),
    ];
    for (k, v) in extra {
        p.retain(|(pk, _)| pk != k);
        p.push((k.to_string(), v.to_string()));
    }
    Invocation::new(&agent_path("gitsync"), &unique("gitsync")).params(&p)
}

#[test]
fn gitsync_health_is_green_red_on_a_refused_commit_and_yellow_then_red_when_unreachable() {
    let s = Setup::new();
    let health = || {
        let t = std::fs::read_to_string(s.dir.join("gitsync.state")).unwrap_or_default();
        t.lines().find_map(|l| l.strip_prefix("health=")).unwrap_or("").to_string()
    };
    let c = gitsync(&s, &[("red_after", "2")]);
    assert_eq!(c.run("start").code, 0);
    assert_eq!(health(), "green");
    let mon = || c.clone().recurring().run("monitor");

    s.master.commit(&[], None, "unsigned");
    let m = mon();
    assert_eq!(m.code, 0, "gitsync reports through the attribute, not by failing");
    assert_eq!(health(), "red");
    assert!(m.stderr.contains("node health red") && m.stderr.contains("is not signed"), "{}", m.stderr);
    let c3 = s.master.commit(&[], Some(&s.ops), "signed again");
    assert_eq!(mon().code, 0);
    assert_eq!(health(), "green");
    assert_eq!(
        std::fs::read_link(s.dir.join("sync-state/deploy/master/current")).unwrap(),
        Path::new(&c3),
        "gitsync deploys what it accepts"
    );

    // The master goes away: yellow (behind), then red after red_after failures in a row.
    let moved = s.dir.join("moved.git");
    std::fs::rename(&s.master.bare, &moved).unwrap();
    assert_eq!(mon().code, 0);
    assert_eq!(health(), "yellow");
    assert_eq!(mon().code, 0);
    assert_eq!(health(), "red");
    std::fs::rename(&moved, &s.master.bare).unwrap();
    assert_eq!(mon().code, 0);
    assert_eq!(health(), "green");
    assert_eq!(c.run("stop").code, 0);
    assert_eq!(c.clone().recurring().run("monitor").code, 7);
}

fn hale(args: &[&str], state: &Path, conf: &Path) -> (bool, String) {
    let out =
        Command::new(hale_bin()).args(args).env("HALE_STATE_DIR", state).env("HALE_CONFIG_DIR", conf).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn hale_repo_init_sync_and_status() {
    let dir = Scratch::new("git-repo");
    let (state, conf) = (dir.join("state"), dir.join("conf"));
    let ops = Key::new(dir.path(), "ops@example.com");
    let allowed = Key::allowed_signers(&dir.join("allowed_signers"), &[&ops]);
    let master = dir.join("scripts.git");
    let (ok, out) = hale(&["repo", "init", "scripts", "--master", &master.to_string_lossy()], &state, &conf);
    assert!(!ok && out.contains("--allowed-signers"), "signed without keys must be refused: {out}");
    let (ok, out) = hale(
        &[
            "repo",
            "init",
            "scripts",
            "--master",
            &master.to_string_lossy(),
            "--allowed-signers",
            &allowed.to_string_lossy(),
        ],
        &state,
        &conf,
    );
    assert!(ok, "{out}");
    let settings = std::fs::read_to_string(conf.join("scripts.conf")).unwrap();
    assert!(settings.contains(&format!("master = {}", master.display())) && settings.contains("verify = signed"));

    // The template: an entry script that shows where the code goes and how to log, a README.
    let work = dir.join("work");
    let st = hale_ocf_tests::git::git(dir.path()).args(["clone", "-q"]).arg(&master).arg(&work).status().unwrap();
    assert!(st.success());
    let script = std::fs::read_to_string(work.join("bin/run.sh")).unwrap();
    assert!(script.contains("your code goes here") && script.contains("log()"), "{script}");
    assert!(std::fs::read_to_string(work.join("README.md")).unwrap().contains("git commit -S"));

    // The template commit is unsigned: sync refuses it, status says red.
    let (ok, out) = hale(&["repo", "sync"], &state, &conf);
    assert!(!ok && out.contains("is not signed"), "{out}");
    let (_, json) = hale(&["repo", "status", "--json"], &state, &conf);
    assert!(json.contains("\"health\": \"red\"") && json.contains("\"deployed\": null"), "{json}");

    // A signed commit on top: synced, deployed, green.
    let m = Master { bare: master.clone(), work: work.clone() };
    let tip = m.commit(&[], Some(&ops), "first signed");
    let (ok, out) = hale(&["repo", "sync", "scripts"], &state, &conf);
    assert!(ok && out.contains(&format!("deployed {tip}, new, signed by ops@example.com")), "{out}");
    let (ok, json) = hale(&["repo", "status", "--json"], &state, &conf);
    assert!(ok);
    for want in ["\"health\": \"green\"", &format!("\"deployed\": \"{tip}\""), &format!("\"master_tip\": \"{tip}\"")] {
        assert!(json.contains(want), "{want} not in {json}");
    }
    let (_, text) = hale(&["repo", "status"], &state, &conf);
    assert!(
        text.starts_with("scripts") && text.contains("green") && text.contains("signed by ops@example.com"),
        "{text}"
    );
    let tree = state.join("deploy/scripts").join(&tip);
    let mode = std::fs::metadata(tree.join("bin/run.sh")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o777, 0o555, "deployed trees are read-only");
}

#[test]
fn verify_none_runs_unsigned_commits_but_still_refuses_a_history_rewrite() {
    let s = Setup::new();
    let plain = Master::new(&s.dir.join("plain"));
    plain.commit(&[("bin/svc", SERVICE, true)], None, "one");
    let two = plain.commit(&[("NOTES", "two\n", false)], None, "two");
    let repo = plain.bare.to_string_lossy().to_string();
    let c = s.script(&[("repository", &repo), ("verify", "none")]).unset("OCF_RESKEY_allowed_signers");
    let start = c.run("start");
    assert_eq!(start.code, 0, "{}", start.stderr);
    assert!(start.stderr.contains("signed by nobody (verify=none)"), "{}", start.stderr);
    assert_eq!(s.running_commit(), two);
    plain.rewrite(None);
    let m = depth10(&c);
    assert_eq!(m.code, 190);
    assert!(reason(&m).contains("history rewrite refused"), "{}", reason(&m));
    assert_eq!(c.run("reload-agent").code, 0);
    assert_eq!(s.running_commit(), two);
    assert_eq!(c.run("stop").code, 0);
}

#[test]
fn a_signed_tree_with_a_duplicate_entry_never_writes_outside_its_tree() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::new();
    let c1 = s.master.head();
    let c = s.script(&[]);
    assert_eq!(c.run("start").code, 0);
    let pid = s.processes();
    // `x`: a symlink to a file outside, then a file `x` (git fsck: duplicateEntries).
    let victim = s.dir.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = s.master.object("blob", victim.to_string_lossy().as_bytes());
    let evil = s.master.object("blob", b"pwned\n");
    let svc = s.master.object("blob", SERVICE.as_bytes());
    let bin = s.master.raw_tree(&[("100755", "svc", &svc)]);
    let tree = s.master.raw_tree(&[("40000", "bin", &bin), ("120000", "x", &link), ("100644", "x", &evil)]);
    let bad = s.master.commit_tree(&tree, Some(&s.ops), "hostile");

    let m = depth10(&c);
    assert_eq!(m.code, 190, "{}", m.stderr);
    assert!(reason(&m).contains("malformed tree: duplicate entry 'x'"), "{}", reason(&m));
    let reload = c.run("reload-agent");
    assert_eq!(reload.code, 0, "{}", reload.stderr);
    assert_eq!((s.running_commit(), s.processes()), (c1.clone(), pid), "the hostile commit must not run");
    assert!(!s.trees("state").contains(&bad), "the hostile tree was checked out");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n", "root wrote through the link");
    assert_eq!(std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777, 0o644, "chmod through the link");
    // A node that never accepted anything refuses it as well, and runs nothing.
    let fresh = s
        .script(&[("state_dir", &s.dir.join("state2").to_string_lossy())])
        .env("OCF_RESOURCE_INSTANCE", &unique("gitscript-fresh"));
    let out = fresh.run("start");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(reason(&out).contains("duplicate entry 'x'"), "{}", reason(&out));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    // gitsync turns red on it.
    let g = gitsync(&s, &[]);
    assert_eq!(g.run("start").code, 0);
    let state = std::fs::read_to_string(s.dir.join("gitsync.state")).unwrap();
    assert!(state.contains("health=red") && state.contains("duplicate entry"), "{state}");
    assert_eq!(g.run("stop").code, 0);
}

#[test]
fn resources_sharing_a_mirror_name_with_other_trust_rules_are_refused() {
    let s = Setup::new();
    // Both repositories are named "ops" by default: .../dev/ops.git (verify=none) and
    // .../ops.git (signed), in one state directory.
    let dev = Master::new(&s.dir.join("dev"));
    dev.commit(&[("bin/svc", "#!/bin/sh\necho UNSIGNED RAN\nexec sleep 100000\n", true)], None, "dev");
    let dev_ops = s.dir.join("dev/ops.git");
    std::fs::rename(&dev.bare, &dev_ops).unwrap();
    let prod_ops = s.dir.join("ops.git");
    std::fs::rename(&s.master.bare, &prod_ops).unwrap();
    let (dev_url, prod_url) = (dev_ops.to_string_lossy().to_string(), prod_ops.to_string_lossy().to_string());
    let unsigned = s
        .script(&[
            ("repository", &dev_url),
            ("verify", "none"),
            ("pidfile", &s.dir.join("dev.pid").to_string_lossy()),
            ("logfile", &s.dir.join("dev.log").to_string_lossy()),
        ])
        .unset("OCF_RESKEY_allowed_signers")
        .env("OCF_RESOURCE_INSTANCE", &unique("gitscript-dev"));
    let out = unsigned.run("start");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let signed = s.script(&[("repository", &prod_url)]);
    let out = signed.run("start");
    assert_eq!(out.code, 1, "{}", out.stderr);
    let why = reason(&out);
    assert!(why.contains(&dev_url) && why.contains(&prod_url) && why.contains("verify=none"), "{why}");
    assert!(s.processes().is_empty() && s.running_commit().is_empty(), "the signed resource ran nothing");
    // Keyed apart with name=, the signed resource runs its own signed commit.
    let own = s.script(&[("repository", &prod_url), ("name", "ops-prod")]);
    let out = own.run("start");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(wait_for(Duration::from_secs(10), || s.log().contains("service at")), "{}", s.log());
    assert!(!s.log().contains("UNSIGNED RAN"));
    assert_eq!(own.run("stop").code, 0);
    assert_eq!(unsigned.run("stop").code, 0);
}

#[test]
fn a_commit_whose_signer_is_no_longer_trusted_does_not_start() {
    let s = Setup::new();
    let c = s.script(&[]);
    assert_eq!(c.run("start").code, 0);
    assert_eq!(c.run("stop").code, 0);
    let mallory = Key::new(s.dir.path(), "mallory@example.com");
    Key::allowed_signers(&s.allowed, &[&mallory]);
    let out = c.run("start");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(reason(&out).contains("no longer verifies"), "{}", reason(&out));
    assert!(s.processes().is_empty());
}

/// Start `c` with a 1 s timeout: it must end inside it, fail with a reason that says which step
/// ran out of time, and leave no tree (whole or half) of `commit` behind.
fn start_runs_out_of_time(s: &Setup, c: &Invocation, commit: &str) -> String {
    let started = std::time::Instant::now();
    let out = c.clone().timeout_ms(1000).run("start");
    assert!(!out.timed_out, "start overran its 1 s timeout: {}", out.stderr);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.exit_reason_lines(), 1, "{}", out.stderr);
    let why = reason(&out);
    eprintln!("start with a 1 s timeout ended after {:?}: {why}", started.elapsed());
    let deploy = s.dir.join("state/deploy/master");
    let names: Vec<String> = std::fs::read_dir(&deploy)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(!names.iter().any(|n| n == commit || n.starts_with(".incoming-")), "a half tree is left: {names:?}");
    assert!(s.processes().is_empty());
    why
}

#[test]
fn start_of_a_large_repository_ends_inside_its_timeout_with_a_true_reason() {
    let s = Setup::new();
    let big = s.master.commit_many(30000, 512, Some(&s.ops));
    let c = s.script(&[]);
    // Nothing fetched yet: the fetch or the checkout runs out of time, and says which.
    let why = start_runs_out_of_time(&s, &c, &big);
    assert!(
        why.contains(&format!("checkout of {} did not finish within", &big[..12]))
            || why.contains("fetch did not finish within"),
        "{why}"
    );
    // With time enough, the whole tree deploys and runs.
    let out = c.clone().timeout_ms(120_000).run("start");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(s.running_commit(), big);
    let deploy = s.dir.join("state/deploy/master");
    assert_eq!(walk(&deploy.join(&big)), 30000 + 1);
    assert_eq!(c.run("stop").code, 0);
    // The mirror is up to date and the tree gone: the checkout alone runs out of time.
    std::fs::remove_dir_all(deploy.join(&big)).unwrap();
    let why = start_runs_out_of_time(&s, &c, &big);
    assert!(why.contains(&format!("checkout of {} did not finish within", &big[..12])), "{why}");
}

/// A private file holding `text` (what an administrator would write with mode 0600).
fn secret_file(path: &Path, text: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_string_lossy().to_string()
}

#[test]
fn an_https_master_with_a_token_deploys_and_each_trust_or_credential_problem_has_its_reason() {
    use hale_ocf_tests::git::HttpsGitServer;
    use hale_ocf_tests::tls::TestCa;
    let s = Setup::new();
    let d = s.dir.path();
    let ca = TestCa::new(d, "git");
    let token = "glpat-Secret-Token-1234";
    let password_file = secret_file(&d.join("token"), &format!("{token}\n"));
    let mut server = HttpsGitServer::start(d, &ca.issue("git-server"), "oauth2", Path::new(&password_file));
    let url = server.url("master.git");
    let ca_file = ca.cert.to_string_lossy().to_string();
    let https = [
        ("repository", url.as_str()),
        ("https_ca_file", &ca_file),
        ("https_user", "oauth2"),
        ("https_password_file", &password_file),
    ];
    let c = s.script(&https);
    let v = c.clone().depth(10).run("validate-all");
    assert_eq!(v.code, 0, "{}", v.stderr);
    let start = c.run("start");
    assert_eq!(start.code, 0, "{}", start.stderr);
    assert_eq!(s.running_commit(), s.master.head());
    assert_eq!(depth10(&c).code, 0);
    // A new signed commit arrives over https at the next deep monitor (which says the
    // running service is behind it).
    let next = s.master.commit(&[("bin/svc", SERVICE, true), ("v2", "2\n", false)], Some(&s.ops), "v2");
    let m = depth10(&c);
    assert_eq!(m.code, 190, "{}", m.stderr);
    assert!(reason(&m).contains(&format!("verified tip of master is {}", &next[..12])), "{}", reason(&m));
    assert!(!format!("{}{}", m.stdout, m.stderr).contains(token));
    assert_eq!(c.run("stop").code, 0);
    assert_eq!(c.run("start").code, 0);
    assert_eq!(s.running_commit(), next);

    let problem = |extra: &[(&str, &str)]| {
        let mut p: Vec<(&str, &str)> = https.to_vec();
        for (k, v) in extra {
            p.retain(|(pk, _)| pk != k);
            p.push((k, v));
        }
        let m = depth10(&s.script(&p));
        assert!(!format!("{}{}", m.stdout, m.stderr).contains(token), "the token is in the output");
        (m.code, reason(&m))
    };
    // A wrong token: the server's 401, the user named, the token not.
    let wrong = secret_file(&d.join("wrong-token"), "not-the-token\n");
    let (code, why) = problem(&[("https_password_file", &wrong)]);
    assert_eq!(code, 190, "{why}");
    assert!(why.contains("master unreachable") && why.contains("HTTP 401") && why.contains("'oauth2'"), "{why}");
    assert!(!why.contains("not-the-token"), "{why}");
    // A CA that did not sign the server's certificate.
    let other = TestCa::new(d, "other");
    let (code, why) = problem(&[("https_ca_file", &other.cert.to_string_lossy())]);
    assert_eq!(code, 190, "{why}");
    assert!(why.contains("not signed by a CA in https_ca_file"), "{why}");
    // No ca_file: the system CAs do not know the test CA either.
    let system: Vec<(&str, &str)> = https.iter().copied().filter(|(k, _)| *k != "https_ca_file").collect();
    let m = depth10(
        &Invocation::new(&agent_path("gitscript"), &s.instance).params(
            &s.params()
                .into_iter()
                .filter(|(k, _)| k != "repository")
                .chain(system.iter().map(|(k, v)| (k.to_string(), v.to_string())))
                .collect::<Vec<_>>(),
        ),
    );
    assert!(reason(&m).contains("not signed by a CA in the system CAs"), "{}", reason(&m));
    // A password file every user can read is refused before anything is sent.
    let open = d.join("open-token");
    std::fs::write(&open, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let open = open.to_string_lossy().to_string();
    let v =
        s.script(&[https.as_slice(), &[("https_password_file", open.as_str())]].concat()).depth(10).run("validate-all");
    assert_eq!(v.code, 2, "{}", v.stderr);
    assert!(v.exit_reason().unwrap_or("").contains("open to every user"), "{}", v.stderr);
    // Credentials in the URL are a configuration error, and are not repeated.
    let in_url = url.replace("https://", &format!("https://oauth2:{token}@"));
    let v = s.script(&[("repository", in_url.as_str())]).run("validate-all");
    assert_eq!(v.code, 6, "{}", v.stderr);
    assert!(v.exit_reason().unwrap_or("").contains("must not hold credentials"), "{}", v.stderr);
    assert!(!format!("{}{}", v.stdout, v.stderr).contains(token));
    // The server gone: degraded, the last verified commit keeps running.
    server.stop();
    let (code, why) = problem(&[]);
    assert_eq!(code, 190, "{why}");
    assert!(why.contains("master unreachable") && why.contains(&url), "{why}");
    assert_eq!(s.processes().len(), 1);
}

#[test]
fn openpgp_signed_commits_run_and_unknown_revoked_or_expired_keys_are_refused() {
    use hale_ocf_tests::git::Gpg;
    let s = Setup::new();
    let d = s.dir.path();
    // The team's key: a certify-only primary with a signing subkey (what careful teams make),
    // and a plain signing key (gpg's quick default); another person's key, not trusted.
    let team = Gpg::new(d, "team", None);
    let ops = team.key("Ops <ops@example.com>", "ed25519", "cert", "1y");
    team.subkey(&ops, "ed25519", "sign", "1y");
    let dev = team.key("Dev <dev@example.com>", "ed25519", "sign", "1y");
    let stranger = Gpg::new(d, "stranger", None);
    let eve = stranger.key("Eve <eve@example.com>", "ed25519", "sign", "1y");
    // A key made and used in 2020 that expired the next day.
    let old = Gpg::new(d, "old", Some("20200101T000000"));
    let past = old.key("Old <old@example.com>", "ed25519", "sign", "1d");
    let keyring = d.join("git-keys.asc");
    let with = |keys: &[(&Gpg, &str)]| {
        let parts: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, (g, k))| {
                let f = d.join(format!("part-{i}.asc"));
                g.export(&[k], &f);
                std::fs::read_to_string(&f).unwrap()
            })
            .collect();
        std::fs::write(&keyring, parts.concat()).unwrap();
    };
    with(&[(&team, &ops), (&team, &dev), (&old, &past)]);
    let kr = keyring.to_string_lossy().to_string();
    let c = s.script(&[("keyring", kr.as_str())]).unset("OCF_RESKEY_allowed_signers");

    let by_subkey = s.master.commit_gpg(&[("bin/svc", SERVICE, true)], &team, &ops, "ops, by its signing subkey");
    let start = c.run("start");
    assert_eq!(start.code, 0, "{}", start.stderr);
    assert_eq!(s.running_commit(), by_subkey);
    assert!(s.log().contains(&by_subkey) || start.stderr.contains("Ops <ops@example.com>"), "{}", start.stderr);
    assert_eq!(depth10(&c).code, 0);

    let by_dev = s.master.commit_gpg(&[("v2", "2\n", false)], &team, &dev, "dev");
    assert_eq!(c.run("stop").code, 0);
    let start = c.run("start");
    assert_eq!(start.code, 0, "{}", start.stderr);
    assert_eq!(s.running_commit(), by_dev, "a primary key that signs is accepted too: {}", start.stderr);

    // Unknown, expired: refused, the accepted commit keeps running.
    for (gpg, key, files, why) in [
        (&stranger, &eve, ("v3", "eve\n"), "which is not in the keyring"),
        (&old, &past, ("v3", "old\n"), "expired on 2020-01-02"),
    ] {
        s.master.commit_gpg(&[(files.0, files.1, false)], gpg, key, "refused");
        let m = depth10(&c);
        assert_eq!(m.code, 190, "{}", m.stderr);
        assert!(reason(&m).contains(why), "{why}: {}", reason(&m));
        assert_eq!(s.running_commit(), by_dev);
        // Back to a commit the team signs, so the next case starts from a good tip.
        s.master.commit_gpg(&[(files.0, "fixed\n", false)], &team, &dev, "fixed");
        assert_eq!(depth10(&c).code, 190, "behind the new verified tip");
    }
    let tip = s.master.head();
    assert_eq!(c.run("stop").code, 0);
    assert_eq!(c.run("start").code, 0);
    assert_eq!(s.running_commit(), tip);

    // dev's key revoked by its owner and the keyring re-exported: what it signed no longer runs.
    team.revoke(&dev);
    with(&[(&team, &ops), (&team, &dev)]);
    let m = depth10(&c);
    assert_eq!(m.code, 190, "{}", m.stderr);
    assert!(reason(&m).contains("Dev <dev@example.com>") && reason(&m).contains("is revoked"), "{}", reason(&m));
    assert_eq!(c.run("stop").code, 0);
    let start = c.run("start");
    assert_ne!(start.code, 0, "a commit signed by a revoked key must not start");
    assert!(reason(&start).contains("is revoked"), "{}", reason(&start));
    assert!(s.processes().is_empty());
}

#[test]
fn old_trees_are_pruned_except_the_newest_and_the_one_a_running_script_uses() {
    let s = Setup::new();
    let c = s.script(&[("keep_trees", "1")]);
    assert_eq!(c.run("start").code, 0);
    let c1 = s.running_commit();
    let tree_of = |commit: &str| s.dir.join("state/deploy/master").join(commit);
    // gitsync shares the mirror and deploys each new commit while the script keeps running c1.
    let state = s.dir.join("state").to_string_lossy().to_string();
    let sync = gitsync(&s, &[("state_dir", state.as_str()), ("keep_trees", "1")]);
    assert_eq!(sync.run("start").code, 0);
    let mon = || assert_eq!(sync.clone().recurring().run("monitor").code, 0);
    let c2 = s.master.commit(&[("v", "2\n", false)], Some(&s.ops), "two");
    mon();
    let c3 = s.master.commit(&[("v", "3\n", false)], Some(&s.ops), "three");
    mon();
    assert_eq!(s.trees("state"), {
        let mut v = vec![c1.clone(), c3.clone()];
        v.sort();
        v
    });
    assert!(!tree_of(&c2).exists(), "c2: not the newest, nothing runs from it");
    assert_eq!(s.running_commit(), c1, "the running script's tree stays");
    let pid = s.processes()[0];
    let (ok, json) = hale(&["repo", "status", "--json", "--offline"], &s.dir.join("state"), &s.dir.join("conf"));
    assert!(ok, "{json}");
    assert!(json.contains(&format!("\"commit\": \"{c1}\"")) && json.contains("used by pid"), "{json}");
    assert!(json.contains("\"why\": \"current, newest 1\""), "{json}");
    let (_, text) = hale(&["repo", "status", "--offline"], &s.dir.join("state"), &s.dir.join("conf"));
    assert!(text.contains(&format!("tree {} kept (", &c1[..12])) && text.contains("used by pid"), "{text}");
    assert!(s.processes().contains(&pid), "status changed nothing");

    // The script restarts on the newest commit; the next deployment removes c1's tree.
    assert_eq!(c.run("stop").code, 0);
    assert_eq!(c.run("start").code, 0);
    assert_eq!(s.running_commit(), c3);
    let c4 = s.master.commit(&[("v", "4\n", false)], Some(&s.ops), "four");
    mon();
    assert!(!tree_of(&c1).exists(), "nothing runs from c1 any more");
    assert!(tree_of(&c3).is_dir() && tree_of(&c4).is_dir(), "c3 runs, c4 is the newest");
    assert_eq!(depth10(&c).code, 190, "the script runs c3 while c4 is the tip");
    assert_eq!(sync.run("stop").code, 0);
}
