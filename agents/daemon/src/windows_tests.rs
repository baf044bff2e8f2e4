//! The daemon agent on Windows, with the real Windows backend (run under Wine in CI). The test
//! executable plays the service: `helper_role` sleeps when `HALE_TEST_ROLE=sleep`.

use super::*;
use hale_backend::paths::RUN_DIR;
use hale_backend::windows::WindowsProcesses;
use hale_ocf::{execute, Env, Execution};
use std::thread::sleep;
use std::time::Duration;

#[test]
fn helper_role() {
    if std::env::var("HALE_TEST_ROLE").as_deref() == Ok("sleep") {
        loop {
            sleep(Duration::from_secs(60));
        }
    }
}

/// The command parameter: shell-like quoting, so Windows paths go in single quotes.
fn command() -> String {
    let exe = std::env::current_exe().unwrap();
    format!("'{}' windows_tests::helper_role --exact --test-threads=1 --quiet", exe.display())
}

fn run(d: &Daemon, action: &str, instance: &str, params: &[(&str, &str)], extra: &[(&str, &str)]) -> Execution {
    let mut env = Env::new();
    env.set("OCF_RESOURCE_INSTANCE", instance).set("OCF_RESKEY_CRM_meta_timeout", "20000");
    for (k, v) in params {
        env.set(format!("OCF_RESKEY_{k}"), *v);
    }
    for (k, v) in extra {
        env.set(*k, *v);
    }
    execute(d, Some(action), &env)
}

#[test]
fn windows_paths_and_defaults() {
    assert!(Path::new(RUN_DIR).is_absolute());
    let d = Daemon::new(Box::new(WindowsProcesses::new()));
    let e = run(&d, "validate-all", "w", &[("command", "x.exe"), ("pidfile", "relative\\x.pid")], &[]);
    assert_eq!(e.status, OcfStatus::ErrConfigured);
    assert!(e.reason.unwrap().contains("must be an absolute path"));
    let e = run(&d, "validate-all", "w", &[("command", "x.exe"), ("pidfile", "C:\\ProgramData\\x.pid")], &[]);
    assert_eq!(e.status, OcfStatus::Success);
    let e = run(&d, "start", "w", &[("command", "'C:\\nowhere\\missing.exe'")], &[]);
    assert_eq!(e.status, OcfStatus::NotInstalled, "{:?}", e.reason);
}

use std::path::Path;

#[test]
fn start_monitor_stop_a_real_service() {
    let dir = std::env::temp_dir().join(format!("hale-daemon-wintest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = dir.join("svc.pid");
    let pidfile_s = pidfile.display().to_string();
    let cmd = command();
    let params = [
        ("command", cmd.as_str()),
        ("pidfile", pidfile_s.as_str()),
        ("environment", "HALE_TEST_ROLE=sleep"),
        ("stop_timeout", "1"),
    ];
    let d = Daemon::new(Box::new(WindowsProcesses::new()));
    let probe = [("OCF_RESKEY_CRM_meta_interval", "0")];
    assert_eq!(run(&d, "monitor", "svc", &params, &probe).status, OcfStatus::NotRunning);
    let e = run(&d, "start", "svc", &params, &[]);
    assert_eq!(e.status, OcfStatus::Success, "{:?}", e.reason);
    assert!(pidfile.exists());
    assert_eq!(run(&d, "monitor", "svc", &params, &probe).status, OcfStatus::Success);
    assert_eq!(run(&d, "start", "svc", &params, &[]).status, OcfStatus::Success, "start is idempotent");
    // A later agent process (a new backend) stops it.
    let d2 = Daemon::new(Box::new(WindowsProcesses::new()));
    assert_eq!(run(&d2, "stop", "svc", &params, &[]).status, OcfStatus::Success);
    assert!(!pidfile.exists());
    assert_eq!(run(&d2, "monitor", "svc", &params, &probe).status, OcfStatus::NotRunning);
    assert_eq!(run(&d2, "stop", "svc", &params, &[]).status, OcfStatus::Success, "stop is idempotent");
    let _ = std::fs::remove_dir_all(&dir);
}
