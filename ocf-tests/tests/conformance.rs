//! The project's own conformance cases, stricter than ocf-tester, run for every agent table
//! against the installed agent. Each case is a function of a [`Table`]; [`conformance!`] makes
//! one test per agent per case (`daemon::a_probe_changes_nothing`), so a failure names its
//! agent and never hides another agent's result. `cargo test --test conformance vip::` runs
//! one agent's cases.

use hale_ocf_tests::tables::{Table, DAEMON, GITSCRIPT, GITSYNC, HOSTLOCK, TABLES, VIP};
use hale_ocf_tests::{agent_path, require, snapshot, unique, wait_for, Invocation, Scratch};
use std::process::{Command, Stdio};
use std::time::Duration;

/// One resource of `table` with its own instance name and scratch directory.
struct Resource<'a> {
    table: &'a Table,
    instance: String,
    dir: Scratch,
}

impl<'a> Resource<'a> {
    fn new(table: &'a Table) -> Resource<'a> {
        Resource { table, instance: unique(&format!("conf-{}", table.agent)), dir: Scratch::new(table.agent) }
    }
    fn call(&self) -> Invocation {
        Invocation::new(&agent_path(self.table.agent), &self.instance).params(&(self.table.valid)(self.dir.path()))
    }
    fn slow(&self) -> Invocation {
        Invocation::new(&agent_path(self.table.agent), &self.instance).params(&(self.table.slow_start)(self.dir.path()))
    }
    /// The files of `dir` that can belong to this resource: all of its own scratch directory,
    /// and in a shared one (`/run/hale`) those named after its instance. The other tests of the
    /// suite run in parallel and write their own files there meanwhile.
    fn snapshot(&self, dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64, Option<std::time::SystemTime>)> {
        let all = snapshot(dir);
        if dir.starts_with(self.dir.path()) {
            return all;
        }
        // `NAME.ext` or `NAME@NAMESPACE.ext`: instance `x-1` must not match the files of `x-12`.
        let (dot, at) = (format!("{}.", self.instance), format!("{}@", self.instance));
        all.into_iter()
            .filter(|(p, _, _)| {
                p.file_name().map(|n| n.to_string_lossy()).is_some_and(|n| n.contains(&dot) || n.contains(&at))
            })
            .collect()
    }
    /// What of this resource is live: process ids, addresses.
    fn processes(&self) -> Vec<String> {
        (self.table.active)(&self.instance, self.dir.path())
    }
}

impl Drop for Resource<'_> {
    fn drop(&mut self) {
        // Never leave a service behind, whatever the test did.
        let _ = self.call().run("stop");
        let _ = self.slow().run("stop");
    }
}

/// One module per agent, one test per case in it, and a check that no table is left out.
macro_rules! conformance {
    ($($agent:ident => $table:ident),* $(,)?) => {
        $(
            mod $agent {
                use super::*;
                conformance!(@cases $table:
                    lifecycle_is_idempotent_and_monitor_tells_the_truth,
                    a_probe_changes_nothing,
                    bad_parameters_get_the_right_code_and_one_reason_line,
                    unknown_or_missing_action_is_3_with_usage,
                    meta_data_as_nobody_validates_for_both_ocf_versions,
                    meta_data_and_monitor_do_not_fork,
                    every_action_finishes_inside_its_timeout,
                    start_killed_midway_then_recovers,
                    stray_process_without_record_is_stopped,
                    works_from_an_empty_run_dir,
                );
            }
        )*

        #[test]
        fn every_table_has_its_tests() {
            let covered = [$(($table.agent, stringify!($agent))),*];
            for t in TABLES {
                assert!(covered.iter().any(|(a, m)| *a == t.agent && *m == t.agent), "{}: no conformance! line", t.agent);
            }
            assert_eq!(covered.len(), TABLES.len(), "a table is listed twice");
        }
    };
    (@cases $table:ident: $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                super::$case(&$table);
            }
        )*
    };
}

conformance! {
    daemon => DAEMON,
    vip => VIP,
    hostlock => HOSTLOCK,
    gitscript => GITSCRIPT,
    gitsync => GITSYNC,
}

fn lifecycle_is_idempotent_and_monitor_tells_the_truth(t: &Table) {
    let r = Resource::new(t);
    let c = r.call();
    assert_eq!(c.clone().recurring().run("monitor").code, 7, "{}: monitor when stopped", t.agent);
    assert_eq!(c.run("monitor").code, 7, "{}: probe when stopped", t.agent);
    let s = c.run("start");
    assert_eq!(s.code, 0, "{}: start: {}", t.agent, s.stderr);
    assert_eq!(c.run("start").code, 0, "{}: second start", t.agent);
    assert_eq!(r.processes().len(), 1, "{}: exactly one service after two starts", t.agent);
    assert_eq!(c.clone().recurring().run("monitor").code, 0, "{}: monitor when running", t.agent);
    assert_eq!(c.run("monitor").code, 0, "{}: probe when running", t.agent);
    assert_eq!(c.clone().depth(10).run("monitor").code, 0, "{}: monitor depth 10", t.agent);
    assert_eq!(c.clone().depth(20).run("monitor").code, 0, "{}: depth 20 falls back", t.agent);
    assert_eq!(c.run("stop").code, 0, "{}: stop", t.agent);
    assert!(r.processes().is_empty(), "{}: nothing left after stop", t.agent);
    assert_eq!(c.run("stop").code, 0, "{}: second stop", t.agent);
    assert_eq!(c.clone().recurring().run("monitor").code, 7, "{}: monitor after stop", t.agent);
}

fn a_probe_changes_nothing(t: &Table) {
    let r = Resource::new(t);
    let c = r.call();
    let dirs = (t.state_dirs)(r.dir.path());
    for running in [false, true] {
        if running {
            assert_eq!(c.run("start").code, 0);
        }
        let files: Vec<_> = dirs.iter().map(|d| r.snapshot(d)).collect();
        let procs = r.processes();
        let probe = c.run("monitor");
        assert_eq!(probe.code, if running { 0 } else { 7 }, "{}: probe", t.agent);
        let after: Vec<_> = dirs.iter().map(|d| r.snapshot(d)).collect();
        assert_eq!(files, after, "{}: a probe changed files (running={running})", t.agent);
        assert_eq!(procs, r.processes(), "{}: a probe changed processes (running={running})", t.agent);
    }
}

/// Every bad case runs; the failures are reported together, so one wrong answer does not
/// hide the next.
fn bad_parameters_get_the_right_code_and_one_reason_line(t: &Table) {
    let mut wrong = Vec::new();
    for case in t.bad_cases() {
        let r = Resource::new(t);
        let mut c = Invocation::new(&agent_path(t.agent), &r.instance).params(&t.apply(r.dir.path(), case));
        if let Some(l) = case.level {
            c = c.env("OCF_CHECK_LEVEL", &l.to_string());
        }
        if case.recurring {
            c = c.recurring();
        }
        let out = c.run(case.action);
        let what = format!("{} / {}: {}", t.agent, case.what, case.action);
        if out.code != case.code {
            wrong.push(format!("{what} → {} (want {}), stderr: {}", out.code, case.code, out.stderr));
        }
        if out.exit_reason_lines() > 1 {
            wrong.push(format!("{what}: more than one exit reason: {}", out.stderr));
        }
        match out.exit_reason() {
            Some(reason) if !reason.contains(case.reason) => {
                wrong.push(format!("{what}: reason {reason:?} lacks {:?}", case.reason))
            }
            None if !case.reason.is_empty() => wrong.push(format!("{what}: no exit reason: {}", out.stderr)),
            _ => {}
        }
        if out.code != 0 && out.code != 7 && out.exit_reason().is_none_or(|r| r.trim().is_empty()) {
            wrong.push(format!("{what}: failure without a reason"));
        }
        if !r.processes().is_empty() {
            wrong.push(format!("{what}: left a process behind"));
        }
    }
    assert!(wrong.is_empty(), "{} wrong answers:\n{}", wrong.len(), wrong.join("\n"));
}

fn unknown_or_missing_action_is_3_with_usage(t: &Table) {
    let c = Invocation::new(&agent_path(t.agent), &unique("usage"));
    for out in [c.run("frobnicate"), c.run("status"), c.run_without_action()] {
        assert_eq!(out.code, 3, "{}", t.agent);
        assert!(out.exit_reason().is_some_and(|r| r.contains("usage:")), "{}: {}", t.agent, out.stderr);
    }
}

fn meta_data_as_nobody_validates_for_both_ocf_versions(t: &Table) {
    let xmllint = require("xmllint");
    require("su");
    let path = agent_path(t.agent);
    // OCF 1.0, as ocf-tester fetches it: as nobody, then against ra-api-1.dtd.
    let out = Command::new("su")
        .args(["nobody", "-s", "/bin/sh", "-c"])
        .arg(format!("{} meta-data", path.display()))
        .stdin(Stdio::null())
        .output()
        .expect("su");
    assert!(out.status.success(), "{}: meta-data as nobody failed: {}", t.agent, String::from_utf8_lossy(&out.stderr));
    let v10 = String::from_utf8(out.stdout).unwrap();
    assert!(v10.contains("<!DOCTYPE resource-agent SYSTEM \"ra-api-1.dtd\">"));
    let dtd = Command::new(&xmllint)
        .args(["--noout", "--valid", "-"])
        .current_dir("/usr/share/resource-agents")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(v10.as_bytes())?;
            c.wait_with_output()
        })
        .expect("xmllint");
    assert!(
        dtd.status.success(),
        "{}: 1.0 meta-data fails ra-api-1.dtd: {}",
        t.agent,
        String::from_utf8_lossy(&dtd.stderr)
    );
    // OCF 1.1, as Pacemaker asks: against the RNG pcs uses.
    let v11 = Invocation::new(&path, "md").run("meta-data");
    assert_eq!(v11.code, 0);
    assert!(v11.stdout.contains("<version>1.1</version>"));
    let file = std::env::temp_dir().join(unique("md11")).with_extension("xml");
    std::fs::write(&file, &v11.stdout).unwrap();
    let rng = Command::new(&xmllint)
        .args(["--noout", "--relaxng", "/usr/share/pcs/data/ocf-1.1.rng"])
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        rng.status.success(),
        "{}: 1.1 meta-data fails pcs's ocf-1.1.rng: {}",
        t.agent,
        String::from_utf8_lossy(&rng.stderr)
    );
}

fn meta_data_and_monitor_do_not_fork(t: &Table) {
    let r = Resource::new(t);
    let c = r.call();
    let md = c.syscalls("meta-data");
    assert_eq!(md.code, 0);
    assert_eq!((md.execve, md.forks), (1, 0), "{}: meta-data created processes:\n{}", t.agent, md.trace);
    assert_eq!(c.run("start").code, 0);
    for (what, call) in [("monitor", c.clone().recurring()), ("probe", c.clone())] {
        let m = call.syscalls("monitor");
        assert_eq!(m.code, 0, "{}: {what}", t.agent);
        assert_eq!((m.execve, m.forks), (1, 0), "{}: {what} created processes:\n{}", t.agent, m.trace);
    }
    let stopped = c.run("stop");
    assert_eq!(stopped.code, 0);
    let m = c.clone().recurring().syscalls("monitor");
    assert_eq!((m.code, m.execve, m.forks), (7, 1, 0), "{}: monitor when stopped:\n{}", t.agent, m.trace);
}

fn every_action_finishes_inside_its_timeout(t: &Table) {
    let r = Resource::new(t);
    // A start that can never succeed must give up by itself before Pacemaker's kill, and
    // clean up.
    let out = r.slow().timeout_ms(4000).run("start");
    assert!(!out.timed_out, "{}: start was still running at its timeout", t.agent);
    assert_eq!(out.code, 1, "{}: {}", t.agent, out.stderr);
    assert!(out.exit_reason().is_some_and(|x| x.contains(t.slow_reason)), "{}: {}", t.agent, out.stderr);
    assert!(r.processes().is_empty(), "{}: a failed start left a process", t.agent);
    // The ordinary actions with a short timeout.
    let c = r.call().timeout_ms(3000);
    for action in ["start", "monitor", "validate-all", "meta-data", "stop"] {
        let out = c.run(action);
        assert!(!out.timed_out, "{}: {action} ran into its timeout", t.agent);
        assert!(matches!(out.code, 0 | 7), "{}: {action} → {}: {}", t.agent, out.code, out.stderr);
    }
}

fn start_killed_midway_then_recovers(t: &Table) {
    let r = Resource::new(t);
    // Pacemaker SIGKILLs the agent (its process group) at the timeout while start waits.
    let seen = r.slow().kill_midway("start", || !r.processes().is_empty());
    assert!(seen, "{}: the service never appeared", t.agent);
    assert_eq!(r.processes().len(), 1, "{}: the service must survive the agent's kill (own session)", t.agent);
    // What the cluster does next: stop (recovery), then start again.
    assert_eq!(r.slow().run("stop").code, 0, "{}: stop after a killed start", t.agent);
    assert!(r.processes().is_empty(), "{}: stop left the half-started service", t.agent);
    assert_eq!(r.call().run("start").code, 0);
    assert_eq!(r.call().run("stop").code, 0);
    assert!(wait_for(Duration::from_secs(1), || r.processes().is_empty()));
}

fn stray_process_without_record_is_stopped(t: &Table) {
    if !t.runs_processes {
        return;
    }
    let r = Resource::new(t);
    assert_eq!(r.call().run("start").code, 0);
    // As if the agent had been killed between starting the service and recording it.
    for d in (t.state_dirs)(r.dir.path()) {
        for (p, _, _) in snapshot(&d) {
            if p.extension().is_some_and(|e| e == "pid") && p.starts_with(r.dir.path()) {
                std::fs::remove_file(&p).unwrap();
            }
        }
    }
    assert_eq!(r.processes().len(), 1);
    assert_eq!(r.call().run("stop").code, 0);
    assert!(r.processes().is_empty(), "{}: stop missed a service it had not recorded", t.agent);
}

/// A node just booted has an empty /run. In a mount namespace of its own (this thread's
/// only) with a fresh tmpfs on /run, the valid resource, with its /run/hale files at their
/// defaults ([`Table::run_defaults`]), goes through probe, start, monitor and stop with no
/// /run/hale beforehand. Network namespaces stay visible (vip's cases run in one): /run/netns
/// is carried over onto the new tmpfs.
fn works_from_an_empty_run_dir(t: &Table) {
    use nix::mount::{mount, MsFlags};
    let r = Resource::new(t);
    // Parameters first, in the shared namespace: building them may create a network
    // namespace or a repository that the rest of the suite shares.
    let params: Vec<_> =
        (t.valid)(r.dir.path()).into_iter().filter(|(k, _)| !t.run_defaults.contains(&k.as_str())).collect();
    let c = Invocation::new(&agent_path(t.agent), &r.instance).params(&params);
    let stage = Scratch::new("run-netns");
    let answers = std::thread::scope(|s| {
        s.spawn(|| {
            let none: Option<&str> = None;
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare the mount namespace");
            mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).expect("make / private");
            let netns = std::path::Path::new("/run/netns");
            let kept = netns.is_dir()
                && mount(Some(netns), stage.path(), none, MsFlags::MS_BIND | MsFlags::MS_REC, none).is_ok();
            mount(Some("tmpfs"), "/run", Some("tmpfs"), MsFlags::empty(), Some("mode=755")).expect("tmpfs on /run");
            if kept {
                std::fs::create_dir(netns).expect("mkdir /run/netns");
                mount(Some(stage.path()), netns, none, MsFlags::MS_MOVE, none).expect("carry /run/netns over");
            }
            assert!(!std::path::Path::new("/run/hale").exists(), "the fresh /run has a /run/hale");
            let mut answers = Vec::new();
            for (what, call, action) in [
                ("probe", c.clone(), "monitor"),
                ("start", c.clone(), "start"),
                ("monitor", c.clone().recurring(), "monitor"),
                ("probe when running", c.clone(), "monitor"),
                ("stop", c.clone(), "stop"),
                ("probe after stop", c.clone(), "monitor"),
            ] {
                let out = call.run(action);
                answers.push((what, out.code, out.stderr));
            }
            answers.push(("left running", r.processes().len() as i32, String::new()));
            // Whatever failed, nothing of this resource outlives the namespace.
            let _ = c.run("stop");
            answers
        })
        .join()
        .expect("the empty-/run thread")
    });
    let want = [7, 0, 0, 0, 0, 7, 0];
    let got: Vec<i32> = answers.iter().map(|a| a.1).collect();
    assert_eq!(
        got,
        want,
        "{}: from an empty /run (probe, start, monitor, probe, stop, probe, processes left):\n{}",
        t.agent,
        answers.iter().map(|(w, c, e)| format!("{w} → {c}: {}", e.trim())).collect::<Vec<_>>().join("\n")
    );
}
