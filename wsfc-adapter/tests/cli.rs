//! The adapter binary end to end on Linux, with the real Linux backend and a real process:
//! configure, one-shot actions, `app` mode until the supervised process is killed, and bad
//! input. (On Windows the same paths run under Wine in ocf-tests/windows/cross-test.sh.)
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

struct Root(PathBuf);
impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn root(name: &str) -> Root {
    let d = std::env::temp_dir().join(format!("hale-wsfc-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Root(d)
}

fn wsfc(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hale-wsfc")).args(args).env("HALE_WSFC_ROOT", root).output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pid_alive(pidfile: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(pidfile).ok()?;
    let pid: u32 = text.split_whitespace().next()?.parse().ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

#[test]
fn configure_then_start_monitor_stop() {
    let r = root("actions");
    let pidfile = r.0.join("svc.pid");
    let pf = format!("pidfile={}", pidfile.display());
    let o =
        wsfc(&r.0, &["configure", "web", "--agent", "daemon", "-p", "command=sleep 600", "-p", &pf, "--interval", "1"]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let conf = r.0.join("resources/web.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.contains("agent=daemon") && text.contains("param.command=sleep 600") && text.contains("interval=1"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(conf.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(code(&wsfc(&r.0, &["monitor", "web"])), 7);
    assert_eq!(code(&wsfc(&r.0, &["start", "web"])), 0);
    assert!(pid_alive(&pidfile).is_some());
    assert_eq!(code(&wsfc(&r.0, &["monitor", "web"])), 0);
    assert_eq!(code(&wsfc(&r.0, &["monitor", "web", "--deep"])), 0);
    assert_eq!(code(&wsfc(&r.0, &["stop", "web"])), 0);
    assert!(pid_alive(&pidfile).is_none());
    assert_eq!(code(&wsfc(&r.0, &["stop", "web"])), 0, "stop is idempotent");
    let log = std::fs::read_to_string(r.0.join("logs/web.log")).unwrap();
    assert!(log.contains("started sleep"), "{log}");
}

#[test]
fn parameters_from_standard_input_stay_out_of_argv() {
    use std::io::Write;
    let r = root("stdin");
    let pidfile = r.0.join("svc.pid");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hale-wsfc"))
        .args(["configure", "s1", "--agent", "daemon", "--params-stdin"])
        .env("HALE_WSFC_ROOT", &r.0)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input =
        format!("# a comment\r\ncommand=sleep 600\r\n\nenvironment=TOKEN=s3cret\npidfile={}\n", pidfile.display());
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(r.0.join("resources/s1.conf")).unwrap();
    assert!(text.contains("param.environment=TOKEN=s3cret\n") && text.contains("param.command=sleep 600\n"), "{text}");
}

#[test]
fn app_mode_ends_with_the_ocf_code_when_the_service_dies() {
    let r = root("app");
    let pidfile = r.0.join("svc.pid");
    let pf = format!("pidfile={}", pidfile.display());
    let o = wsfc(
        &r.0,
        &["configure", "app1", "--agent", "daemon", "-p", "command=sleep 600", "-p", &pf, "--interval", "1"],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let mut app = Command::new(env!("CARGO_BIN_EXE_hale-wsfc"))
        .args(["app", "app1"])
        .env("HALE_WSFC_ROOT", &r.0)
        .spawn()
        .unwrap();
    let log = r.0.join("logs/app1.log");
    wait_for("start to finish", || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("is online")));
    let pid = pid_alive(&pidfile).unwrap();
    Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    let status = app.wait().unwrap();
    assert_eq!(status.code(), Some(7), "monitor found it not running: exit 7");
    assert!(!pidfile.exists(), "stop ran after the failure");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("monitor failed: 7"), "{log}");
}

#[test]
fn bad_input_is_refused_and_nothing_is_saved() {
    let r = root("bad");
    let o = wsfc(&r.0, &["configure", "x", "--agent", "nosuch"]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown agent 'nosuch'"));
    let o = wsfc(&r.0, &["configure", "x", "--agent", "daemon", "-p", "nosuch=1", "-p", "command=sleep 1"]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no parameter 'nosuch'"));
    let o = wsfc(&r.0, &["configure", "x", "--agent", "daemon", "-p", "command=sleep 1", "-p", "pidfile=relative.pid"]);
    assert_eq!(code(&o), 6, "validate-all refuses it");
    assert!(String::from_utf8_lossy(&o.stderr).contains("must be an absolute path"));
    let o = wsfc(&r.0, &["configure", "a b", "--agent", "daemon", "-p", "command=sleep 1"]);
    assert_eq!(code(&o), 2);
    assert!(!r.0.join("resources/x.conf").exists());
    // Unconfigured: start says 6 with a reason, stop succeeds (nothing to stop).
    let o = wsfc(&r.0, &["start", "x"]);
    assert_eq!(code(&o), 6);
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not configured"));
    assert_eq!(code(&wsfc(&r.0, &["stop", "x"])), 0);
    // A corrupt file is reported with its line.
    std::fs::create_dir_all(r.0.join("resources")).unwrap();
    std::fs::write(r.0.join("resources/x.conf"), "agent=daemon\ngarbage\n").unwrap();
    let o = wsfc(&r.0, &["monitor", "x"]);
    assert_eq!(code(&o), 6);
    assert!(String::from_utf8_lossy(&o.stderr).contains("corrupt: line 2"));
    // Service commands exist on Windows only.
    assert_eq!(code(&wsfc(&r.0, &["install", "x"])), 3);
}

#[test]
fn script_and_table() {
    let r = root("script");
    let out = r.0.join("x.js");
    assert_eq!(code(&wsfc(&r.0, &["script", "web", "--output", out.to_str().unwrap()])), 0);
    let js = std::fs::read_to_string(&out).unwrap();
    assert!(js.contains("function IsAlive()") && js.contains("var NAME = \"web\";"));
    let t = wsfc(&r.0, &["result-table"]);
    assert!(String::from_utf8_lossy(&t.stdout).contains("| 7 OCF_NOT_RUNNING |"));
    let m = wsfc(&r.0, &["meta-data", "daemon"]);
    assert!(String::from_utf8_lossy(&m.stdout).contains("<resource-agent name=\"daemon\""));
}

/// gitscript hosted by the adapter: a script from a local master (unsigned, verify=none) in
/// periodic mode, whose supervisor is `hale-wsfc gitscript-supervise`; the runs are recorded,
/// monitor sees them, stop ends the supervisor.
#[test]
fn gitscript_periodic_runs_under_the_adapter() {
    let r = root("gitscript");
    let master = r.0.join("ops.git");
    let marker = r.0.join("ran");
    let script = format!("#!/bin/sh\necho run >> '{}'\n", marker.display());
    hale_gitrepo::create_master(&master, "master", "job", &[("bin/job.sh", script.as_bytes(), true)]).unwrap();
    let pidfile = r.0.join("job.pid");
    let params = [
        format!("repository={}", master.display()),
        "verify=none".into(),
        "entry=bin/job.sh".into(),
        "mode=periodic".into(),
        "period=1".into(),
        format!("state_dir={}", r.0.join("state").display()),
        format!("pidfile={}", pidfile.display()),
    ];
    let mut args = vec!["configure", "job", "--agent", "gitscript", "--interval", "1"];
    for p in &params {
        args.extend(["-p", p.as_str()]);
    }
    let o = wsfc(&r.0, &args);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&wsfc(&r.0, &["agents"]).stdout).lines().any(|l| l == "gitscript"));
    let o = wsfc(&r.0, &["start", "job"]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let supervisor = pid_alive(&pidfile).expect("the supervisor runs");
    let cmdline = std::fs::read(format!("/proc/{supervisor}/cmdline")).unwrap();
    assert!(String::from_utf8_lossy(&cmdline).contains("gitscript-supervise"));
    wait_for("two runs", || std::fs::read_to_string(&marker).is_ok_and(|t| t.lines().count() >= 2));
    assert_eq!(code(&wsfc(&r.0, &["monitor", "job"])), 0);
    assert_eq!(code(&wsfc(&r.0, &["stop", "job"])), 0);
    // Gone, or a zombie waiting for whoever inherited it to reap it.
    let running = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
    };
    assert!(pid_alive(&pidfile).is_none() && !running(supervisor), "stop ended the supervisor");
    assert_eq!(code(&wsfc(&r.0, &["monitor", "job"])), 7);
}
