//! Supervision logic against the fake backend: no process is started.

use super::*;
use hale_backend::fake::FakeProcesses;
use hale_ocf::{Action, Env};
use std::sync::Arc;

/// A shared fake so the test can look at it after the supervisor used it.
struct Shared(Arc<FakeProcesses>);
impl Processes for Shared {
    fn spawn(&self, s: &SpawnSpec) -> Result<hale_backend::ProcessRecord, BackendError> {
        self.0.spawn(s)
    }
    fn state(&self, p: &Path, t: &str) -> ProcessState {
        self.0.state(p, t)
    }
    fn exit_status(&self, r: hale_backend::ProcessRecord) -> Option<String> {
        self.0.exit_status(r)
    }
    fn stop(
        &self,
        p: &Path,
        t: &str,
        s: StopSignal,
        g: Duration,
        d: Instant,
    ) -> Result<hale_backend::StopReport, BackendError> {
        self.0.stop(p, t, s, g, d)
    }
    fn run_check(&self, a: &[String], t: Duration) -> Result<hale_backend::CheckOutcome, BackendError> {
        self.0.run_check(a, t)
    }
    fn find_program(&self, p: &str, path: &str) -> Option<PathBuf> {
        self.0.find_program(p, path)
    }
    fn user_exists(&self, u: &str) -> bool {
        self.0.user_exists(u)
    }
}

fn ctx(action: Action, params: &[(&str, &str)]) -> Context {
    let mut env = Env::new();
    env.set("OCF_RESOURCE_INSTANCE", "web:1").set("OCF_RESKEY_CRM_meta_timeout", "3000");
    for (k, v) in params {
        env.set(format!("OCF_RESKEY_{k}"), *v);
    }
    Context::new(action, &env, &[0, 10], Duration::from_secs(20))
}

fn spec(params: &[(&str, &str)]) -> OcfResult<Spec> {
    let c = ctx(Action::Start, params);
    let schema: Vec<Param> = PROCESS_PARAMS.iter().chain(HEALTH_PARAMS.iter()).copied().collect();
    let v = Values::parse(&schema, &c.env)?;
    spec_from("daemon", &v, &c)
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hale-supervise-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn defaults_are_per_instance_without_clone_suffix() {
    let s = spec(&[]).unwrap();
    assert_eq!(s.pidfile, run_file("daemon", "web", "pid"));
    assert_eq!(s.lock, run_file("daemon", "web", "lock"));
    assert_eq!(s.tag, "daemon:web");
    let long = "x".repeat(300);
    let mut env = Env::new();
    env.set("OCF_RESOURCE_INSTANCE", long.as_str());
    let c = Context::new(Action::Stop, &env, &[0], Duration::from_secs(20));
    let m = Spec::minimal("daemon", &c);
    assert!(m.pidfile.file_name().unwrap().len() < 200, "a 300-character name fits a file name");
}

#[test]
fn environment_errors_never_echo_values() {
    for bad in ["DB_PASSWORD=hunter2 hunter3", "'DB_PASSWORD=hunter2", "=hunter2"] {
        let e = spec(&[("environment", bad)]).unwrap_err();
        assert_eq!(e.status, OcfStatus::ErrConfigured);
        assert!(!e.reason.contains("hunter"), "{}", e.reason);
    }
    let e = spec(&[("health_url", "ftp://admin:PASSWORD@h/")]).unwrap_err();
    assert!(!e.reason.contains("PASSWORD") && e.reason.contains("http:// or https://"), "{}", e.reason);
    let s = spec(&[("environment", "A=1 'B=two words' PATH=/opt/bin")]).unwrap();
    assert_eq!(s.environment[1], ("B".into(), "two words".into()));
    assert_eq!(s.path_var(), "/opt/bin");
}

#[test]
fn a_foreign_pidfile_is_reported_and_left_alone() {
    let fake = Arc::new(FakeProcesses::new(&["/usr/bin/sleep"], &[]));
    let sup = Supervisor::new(Box::new(Shared(fake.clone())));
    let mut s = spec(&[]).unwrap();
    s.argv = vec!["sleep".into(), "100".into()];
    fake.plant_foreign(&s.pidfile);
    let c = ctx(Action::Monitor, &[]);
    let m = sup.monitor(&s, &c).unwrap_err();
    assert_eq!(m.status, OcfStatus::ErrGeneric);
    assert!(m.reason.contains("left alone"), "{}", m.reason);
    let e = sup.start(&s, &ctx(Action::Start, &[])).unwrap_err();
    assert!(e.reason.contains("does not replace it"), "{}", e.reason);
    assert!(fake.spawned().is_empty(), "nothing started over a foreign record");
    assert_eq!(sup.stop(&s, &ctx(Action::Stop, &[])), Ok(OcfStatus::Success));
    assert!(fake.has_pidfile(&s.pidfile), "stop leaves a file that is not ours");
}

#[test]
fn start_and_stop_exclude_each_other() {
    let dir = scratch("lock");
    let sup = Supervisor::new(Box::new(FakeProcesses::new(&[], &[])));
    let mut s = spec(&[]).unwrap();
    s.lock = dir.join("i.lock");
    let held = sup.lock(&s, LockFor::Start, &ctx(Action::Start, &[])).unwrap();
    let e = sup.lock(&s, LockFor::Start, &ctx(Action::Start, &[])).unwrap_err();
    assert!(e.reason.contains("another start or stop"), "{}", e.reason);
    // Stop never fails on the lock: it stops anyway.
    assert!(sup.lock(&s, LockFor::Stop, &ctx(Action::Stop, &[])).is_ok());
    drop(held);
    assert!(sup.lock(&s, LockFor::Start, &ctx(Action::Start, &[])).is_ok());
    // A run directory that cannot hold the lock: stop goes on, start says why.
    std::fs::write(dir.join("file"), "").unwrap();
    s.lock = dir.join("file/i.lock");
    assert!(sup.lock(&s, LockFor::Stop, &ctx(Action::Stop, &[])).is_ok());
    assert!(sup.lock(&s, LockFor::Start, &ctx(Action::Start, &[])).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
