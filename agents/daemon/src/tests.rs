//! Agent logic against the fake backend: no process is started.

use super::*;
use hale_backend::fake::FakeProcesses;
use hale_backend::{BackendError, CheckOutcome, ProcessState, SpawnSpec, StopSignal};
use hale_ocf::{execute, Env, Execution};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A shared fake so the test can look at it after the agent used it.
struct Shared(Arc<FakeProcesses>);
impl Processes for Shared {
    fn spawn(&self, s: &SpawnSpec) -> Result<hale_backend::ProcessRecord, BackendError> {
        self.0.spawn(s)
    }
    fn state(&self, p: &std::path::Path, t: &str) -> ProcessState {
        self.0.state(p, t)
    }
    fn exit_status(&self, r: hale_backend::ProcessRecord) -> Option<String> {
        self.0.exit_status(r)
    }
    fn stop(
        &self,
        p: &std::path::Path,
        t: &str,
        s: StopSignal,
        g: Duration,
        d: Instant,
    ) -> Result<hale_backend::StopReport, BackendError> {
        self.0.stop(p, t, s, g, d)
    }
    fn run_check(&self, a: &[String], t: Duration) -> Result<CheckOutcome, BackendError> {
        self.0.run_check(a, t)
    }
    fn find_program(&self, p: &str, path: &str) -> Option<PathBuf> {
        self.0.find_program(p, path)
    }
    fn user_exists(&self, u: &str) -> bool {
        self.0.user_exists(u)
    }
}

fn setup() -> (Arc<FakeProcesses>, Daemon) {
    let fake = Arc::new(FakeProcesses::new(&["/usr/bin/sleep", "/usr/bin/check"], &["www"]));
    (fake.clone(), Daemon::new(Box::new(Shared(fake))))
}

fn run(d: &Daemon, action: &str, params: &[(&str, &str)], extra: &[(&str, &str)]) -> Execution {
    let mut env = Env::new();
    env.set("OCF_RESOURCE_INSTANCE", "svc:0").set("OCF_RESKEY_CRM_meta_timeout", "5000");
    for (k, v) in params {
        env.set(format!("OCF_RESKEY_{k}"), *v);
    }
    for (k, v) in extra {
        env.set(*k, *v);
    }
    execute(d, Some(action), &env)
}

const RECURRING: &[(&str, &str)] = &[("OCF_RESKEY_CRM_meta_interval", "10000")];
const DEPTH10: &[(&str, &str)] = &[("OCF_RESKEY_CRM_meta_interval", "60000"), ("OCF_CHECK_LEVEL", "10")];

#[test]
fn lifecycle() {
    let (fake, d) = setup();
    let p = [("command", "sleep 'a b' c"), ("environment", "A=1 'B=two words'"), ("user", "www")];
    assert_eq!(run(&d, "monitor", &p, &[]).status, OcfStatus::NotRunning);
    assert_eq!(run(&d, "start", &p, &[]).status, OcfStatus::Success);
    let spawned = fake.spawned();
    assert_eq!(spawned.len(), 1);
    let s = &spawned[0];
    assert_eq!(s.argv, ["sleep", "a b", "c"]);
    assert_eq!(s.program, PathBuf::from("/usr/bin/sleep"));
    assert_eq!(s.pidfile, PathBuf::from("/run/hale/daemon-svc.pid"), "clone suffix dropped");
    assert!(s.env.contains(&("B".into(), "two words".into())));
    assert_eq!(s.env[0].0, "PATH");
    assert_eq!(s.user.as_deref(), Some("www"));
    assert_eq!(run(&d, "monitor", &p, RECURRING).status, OcfStatus::Success);
    assert_eq!(run(&d, "start", &p, &[]).status, OcfStatus::Success, "start is idempotent");
    assert_eq!(fake.spawned().len(), 1, "no second copy");
    assert_eq!(run(&d, "stop", &p, &[]).status, OcfStatus::Success);
    assert_eq!(fake.alive_count(), 0);
    assert_eq!(run(&d, "stop", &p, &[]).status, OcfStatus::Success, "stop is idempotent");
    assert_eq!(run(&d, "monitor", &p, &[]).status, OcfStatus::NotRunning);
}

#[test]
fn crash_is_seen_by_monitor_with_a_reason() {
    let (fake, d) = setup();
    let p = [("command", "sleep 100")];
    run(&d, "start", &p, &[]);
    fake.crash(&PathBuf::from("/run/hale/daemon-svc.pid"));
    let e = run(&d, "monitor", &p, RECURRING);
    assert_eq!(e.status, OcfStatus::NotRunning);
    assert!(e.reason.unwrap().contains("has exited"));
    assert_eq!(run(&d, "start", &p, &[]).status, OcfStatus::Success, "start after a crash");
    assert_eq!(fake.spawned().len(), 2);
}

#[test]
fn parameters_wrong_everywhere_are_6() {
    let (_, d) = setup();
    for (params, want) in [
        (vec![], "required parameter command"),
        (vec![("command", "sleep 'unbalanced")], "unbalanced quotes"),
        (vec![("command", "   ")], "command is empty"),
        (vec![("command", "sleep 1"), ("environment", "NOEQUALS")], "not KEY=VALUE"),
        (vec![("command", "sleep 1"), ("stop_signal", "TERMINATE")], "stop_signal='TERMINATE' is not one of"),
        (vec![("command", "sleep 1"), ("stop_timeout", "soon")], "stop_timeout='soon'"),
        (vec![("command", "sleep 1"), ("health_url", "ftp://x/")], "http:// or https://"),
        (vec![("command", "sleep 1"), ("health_regex", "a")], "needs health_url"),
        (vec![("command", "sleep 1"), ("health_url", "http://h/"), ("health_regex", "(")], "not a valid regex"),
        (vec![("command", "sleep 1"), ("health_tcp", "nohost")], "health_tcp='nohost'"),
        (vec![("command", "sleep 1"), ("pidfile", "relative.pid")], "absolute path"),
    ] {
        let e = run(&d, "validate-all", &params, &[]);
        assert_eq!(e.status, OcfStatus::ErrConfigured, "{params:?}");
        assert!(e.reason.as_ref().unwrap().contains(want), "{:?} lacks {want}", e.reason);
    }
}

#[test]
fn node_problems_are_5_or_2_and_only_at_level_10() {
    let (_, d) = setup();
    let missing = [("command", "/opt/none/bin/x")];
    assert_eq!(run(&d, "validate-all", &missing, &[]).status, OcfStatus::Success, "level 0 does not look at the host");
    assert_eq!(run(&d, "validate-all", &missing, &[("OCF_CHECK_LEVEL", "10")]).status, OcfStatus::NotInstalled);
    assert_eq!(run(&d, "start", &missing, &[]).status, OcfStatus::NotInstalled);
    let nouser = [("command", "sleep 1"), ("user", "ghost")];
    let e = run(&d, "start", &nouser, &[]);
    assert_eq!(e.status, OcfStatus::ErrArgs);
    assert!(e.reason.unwrap().contains("user 'ghost' does not exist on this node"));
    let nodir = [("command", "sleep 1"), ("workdir", "/nonexistent/dir")];
    assert_eq!(run(&d, "start", &nodir, &[]).status, OcfStatus::ErrArgs);
}

#[test]
fn health_command_at_depth_10_only() {
    let (fake, d) = setup();
    let p = [("command", "sleep 100"), ("health_command", "check --deep")];
    assert_eq!(run(&d, "start", &p, &[]).status, OcfStatus::Success);
    assert_eq!(fake.checks().len(), 1, "start waits for health");
    fake.set_check_result(CheckOutcome {
        success: false,
        status: "exit status 2".into(),
        last_line: Some("db down".into()),
    });
    assert_eq!(run(&d, "monitor", &p, RECURRING).status, OcfStatus::Success, "depth 0 runs no check");
    assert_eq!(fake.checks().len(), 1);
    let e = run(&d, "monitor", &p, DEPTH10);
    assert_eq!(e.status, OcfStatus::ErrGeneric);
    assert_eq!(e.reason.unwrap(), "health_command check failed (exit status 2): db down");
}

#[test]
fn unhealthy_start_fails_and_leaves_nothing() {
    let (fake, d) = setup();
    fake.set_check_result(CheckOutcome { success: false, status: "exit status 1".into(), last_line: None });
    let p = [("command", "sleep 100"), ("health_command", "check")];
    let e = run(&d, "start", &p, &[("OCF_RESKEY_CRM_meta_timeout", "2000")]);
    assert_eq!(e.status, OcfStatus::ErrGeneric);
    let reason = e.reason.unwrap();
    assert!(reason.contains("not healthy before the start timeout (2s"), "{reason}");
    assert_eq!(fake.alive_count(), 0);
    assert!(!fake.has_pidfile(&PathBuf::from("/run/hale/daemon-svc.pid")));
}

#[test]
fn invalid_parameters_still_stop_the_service() {
    let (fake, d) = setup();
    run(&d, "start", &[("command", "sleep 100")], &[]);
    assert_eq!(fake.alive_count(), 1);
    let e = run(&d, "stop", &[("command", "sleep 'broken")], &[]);
    assert_eq!(e.status, OcfStatus::Success);
    assert_eq!(fake.alive_count(), 0, "stop found the service by its default pidfile and tag");
    assert_eq!(run(&d, "monitor", &[("command", "sleep 'broken")], &[]).status, OcfStatus::NotRunning, "probe");
    assert_eq!(run(&d, "monitor", &[("command", "sleep 'broken")], RECURRING).status, OcfStatus::ErrGeneric);
}

#[test]
fn reload_agent_and_unsupported_actions() {
    let (_, d) = setup();
    let p = [("command", "sleep 1")];
    assert_eq!(run(&d, "reload-agent", &p, &[]).status, OcfStatus::Success);
    for a in ["promote", "demote", "notify", "reload", "migrate_to", "bogus"] {
        assert_eq!(run(&d, a, &p, &[]).status, OcfStatus::Unimplemented, "{a}");
    }
}
