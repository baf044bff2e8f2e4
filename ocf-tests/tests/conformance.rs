//! The project's own conformance cases, stricter than ocf-tester, run for every agent table
//! against the installed agent.

use hale_ocf_tests::tables::{Table, TABLES};
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

/// Every table, or only the agents named in `HALE_AGENTS` (comma-separated), to run the
/// cases of one agent while working on it.
fn each(f: impl Fn(&Table)) {
    let only = std::env::var("HALE_AGENTS").ok().filter(|v| !v.is_empty());
    for t in TABLES {
        if only.as_ref().is_none_or(|o| o.split(',').any(|a| a.trim() == t.agent)) {
            f(t);
        }
    }
}

#[test]
fn lifecycle_is_idempotent_and_monitor_tells_the_truth() {
    each(|t| {
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
    });
}

#[test]
fn a_probe_changes_nothing() {
    each(|t| {
        let r = Resource::new(t);
        let c = r.call();
        let dirs = (t.state_dirs)(r.dir.path());
        for running in [false, true] {
            if running {
                assert_eq!(c.run("start").code, 0);
            }
            let files: Vec<_> = dirs.iter().map(|d| snapshot(d)).collect();
            let procs = r.processes();
            let probe = c.run("monitor");
            assert_eq!(probe.code, if running { 0 } else { 7 }, "{}: probe", t.agent);
            let after: Vec<_> = dirs.iter().map(|d| snapshot(d)).collect();
            assert_eq!(files, after, "{}: a probe changed files (running={running})", t.agent);
            assert_eq!(procs, r.processes(), "{}: a probe changed processes (running={running})", t.agent);
        }
    });
}

#[test]
fn bad_parameters_get_the_right_code_and_one_reason_line() {
    each(|t| {
        for case in t.bad {
            let r = Resource::new(t);
            let mut c = Invocation::new(&agent_path(t.agent), &r.instance).params(&t.apply(r.dir.path(), case));
            if let Some(l) = case.level {
                c = c.env("OCF_CHECK_LEVEL", &l.to_string());
            }
            if case.recurring {
                c = c.recurring();
            }
            let out = c.run(case.action);
            assert_eq!(out.code, case.code, "{} / {}: {} → stderr: {}", t.agent, case.what, case.action, out.stderr);
            assert!(out.exit_reason_lines() <= 1, "{}: more than one exit reason: {}", case.what, out.stderr);
            if !case.reason.is_empty() {
                let reason =
                    out.exit_reason().unwrap_or_else(|| panic!("{}: no exit reason: {}", case.what, out.stderr));
                assert!(
                    reason.contains(case.reason),
                    "{} / {}: reason {reason:?} lacks {:?}",
                    t.agent,
                    case.what,
                    case.reason
                );
            }
            if out.code != 0 && out.code != 7 {
                assert!(
                    out.exit_reason().is_some_and(|r| !r.trim().is_empty()),
                    "{}: failure without a reason",
                    case.what
                );
            }
            assert!(r.processes().is_empty(), "{} / {}: left a process behind", t.agent, case.what);
        }
    });
}

#[test]
fn unknown_or_missing_action_is_3_with_usage() {
    each(|t| {
        let c = Invocation::new(&agent_path(t.agent), &unique("usage"));
        for out in [c.run("frobnicate"), c.run("status"), c.run_without_action()] {
            assert_eq!(out.code, 3, "{}", t.agent);
            assert!(out.exit_reason().is_some_and(|r| r.contains("usage:")), "{}: {}", t.agent, out.stderr);
        }
    });
}

#[test]
fn meta_data_as_nobody_validates_for_both_ocf_versions() {
    let xmllint = require("xmllint");
    require("su");
    each(|t| {
        let path = agent_path(t.agent);
        // OCF 1.0, as ocf-tester fetches it: as nobody, then against ra-api-1.dtd.
        let out = Command::new("su")
            .args(["nobody", "-s", "/bin/sh", "-c"])
            .arg(format!("{} meta-data", path.display()))
            .stdin(Stdio::null())
            .output()
            .expect("su");
        assert!(
            out.status.success(),
            "{}: meta-data as nobody failed: {}",
            t.agent,
            String::from_utf8_lossy(&out.stderr)
        );
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
    });
}

#[test]
fn meta_data_and_monitor_do_not_fork() {
    each(|t| {
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
    });
}

#[test]
fn every_action_finishes_inside_its_timeout() {
    each(|t| {
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
    });
}

#[test]
fn start_killed_midway_then_recovers() {
    each(|t| {
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
    });
}

#[test]
fn stray_process_without_record_is_stopped() {
    each(|t| {
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
    });
}
