//! `ocf:hale:daemon` with real services: what its table cannot express.

use hale_ocf_tests::{agent_path, free_port, require, tagged_processes, unique, wait_for, Invocation, Scratch};
use std::time::Duration;

struct Svc {
    instance: String,
    dir: Scratch,
    params: Vec<(String, String)>,
}

impl Svc {
    fn new(command: &str, extra: &[(&str, &str)]) -> Svc {
        let dir = Scratch::new("daemon");
        let mut params = vec![
            ("command".to_string(), command.replace("{dir}", &dir.path().display().to_string())),
            ("pidfile".to_string(), dir.join("svc.pid").display().to_string()),
            ("logfile".to_string(), dir.join("svc.log").display().to_string()),
        ];
        for (k, v) in extra {
            params.push((k.to_string(), v.replace("{dir}", &dir.path().display().to_string())));
        }
        Svc { instance: unique("daemon"), dir, params }
    }
    fn call(&self) -> Invocation {
        Invocation::new(&agent_path("daemon"), &self.instance).params(&self.params)
    }
    fn pids(&self) -> Vec<u32> {
        tagged_processes(&format!("daemon:{}", self.instance))
    }
}

impl Drop for Svc {
    fn drop(&mut self) {
        let _ = self.call().run("stop");
    }
}

#[test]
fn killed_service_is_reported_not_running_with_a_reason() {
    let s = Svc::new("sh -c 'echo serving; exec sleep 100000'", &[]);
    assert_eq!(s.call().run("start").code, 0);
    let pid = s.pids()[0];
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    assert!(wait_for(Duration::from_secs(5), || s.pids().is_empty()));
    let m = s.call().recurring().run("monitor");
    assert_eq!(m.code, 7);
    let reason = m.exit_reason().expect("a reason for the crash");
    assert!(reason.contains("has exited") && reason.contains("last output: serving"), "{reason}");
    assert_eq!(s.call().run("start").code, 0, "start after the crash");
    assert_eq!(s.pids().len(), 1);
}

#[test]
fn corrupt_pidfile_is_an_error_that_stop_leaves_alone() {
    let s = Svc::new("sleep 100000", &[]);
    std::fs::write(s.dir.join("svc.pid"), "not a pid\n").unwrap();
    let m = s.call().recurring().run("monitor");
    assert_eq!(m.code, 1, "state unknown is a failure, not 'stopped'");
    assert!(m.exit_reason().is_some_and(|r| r.contains("corrupt")), "{}", m.stderr);
    assert_eq!(s.call().run("stop").code, 0);
    assert_eq!(std::fs::read_to_string(s.dir.join("svc.pid")).unwrap(), "not a pid\n", "not ours: left alone");
    let refused = s.call().run("start");
    assert_eq!(refused.code, 1, "start does not replace a file that is not ours");
    assert!(refused.exit_reason().is_some_and(|r| r.contains("does not replace it")), "{}", refused.stderr);
    assert!(s.pids().is_empty());
    std::fs::remove_file(s.dir.join("svc.pid")).unwrap();
    assert_eq!(s.call().run("start").code, 0);
    std::fs::write(s.dir.join("svc.pid"), "garbage").unwrap();
    // stop with a corrupt record still finds the running service by its mark.
    assert_eq!(s.call().run("stop").code, 0);
    assert!(s.pids().is_empty());
}

#[test]
fn a_service_that_ignores_its_stop_signal_is_killed_inside_the_timeout() {
    let s = Svc::new("sh -c 'trap \"\" TERM INT; sleep 100000 & wait; wait'", &[("stop_timeout", "1")]);
    assert_eq!(s.call().run("start").code, 0);
    assert!(wait_for(Duration::from_secs(5), || s.pids().len() == 2), "shell and its child");
    let stop = s.call().timeout_ms(10_000).run("stop");
    assert!(!stop.timed_out);
    assert_eq!(stop.code, 0, "{}", stop.stderr);
    assert!(s.pids().is_empty(), "the whole tree is gone");
    // With no stop_timeout, stop still ends before the operation's timeout.
    let s = Svc::new("sh -c 'trap \"\" TERM; exec sleep 100000'", &[]);
    assert_eq!(s.call().run("start").code, 0);
    let stop = s.call().timeout_ms(3000).run("stop");
    assert!(!stop.timed_out, "stop ran into its timeout");
    assert_eq!(stop.code, 0);
    assert!(s.pids().is_empty());
}

#[test]
fn start_returns_only_when_the_port_accepts() {
    let python = require("python3");
    let port = free_port();
    let script = format!(
        "import socket,time; time.sleep(1.5); s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1',{port})); s.listen(); time.sleep(100000)"
    );
    let s = Svc::new(&format!("{} -c \"{script}\"", python.display()), &[("health_tcp", &format!("127.0.0.1:{port}"))]);
    let start = s.call().run("start");
    assert_eq!(start.code, 0, "{}", start.stderr);
    // The moment start returned, the service must already accept.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
}

#[test]
fn depth_10_checks_health_and_depth_0_does_not() {
    let python = require("python3");
    let port = free_port();
    let s = Svc::new(
        &format!("{} -m http.server {port} --bind 127.0.0.1 --directory {{dir}}", python.display()),
        &[("health_url", &format!("http://127.0.0.1:{port}/index.html")), ("health_regex", "all good")],
    );
    std::fs::write(s.dir.join("index.html"), "<p>all good</p>").unwrap();
    assert_eq!(s.call().run("start").code, 0);
    assert_eq!(s.call().depth(10).run("monitor").code, 0);
    std::fs::write(s.dir.join("index.html"), "<p>degraded</p>").unwrap();
    let m = s.call().depth(10).run("monitor");
    assert_eq!(m.code, 1);
    assert!(m.exit_reason().is_some_and(|r| r.contains("does not match health_regex")), "{}", m.stderr);
    assert_eq!(s.call().recurring().run("monitor").code, 0, "depth 0 only looks at the process");
    std::fs::remove_file(s.dir.join("index.html")).unwrap();
    let m = s.call().depth(10).run("monitor");
    assert!(m.exit_reason().is_some_and(|r| r.contains("HTTP 404")), "{}", m.stderr);
}

#[test]
fn runs_as_user_with_clean_environment_and_logfile() {
    let s = Svc::new(
        "sh -c 'echo started as $(id -un); env > {dir}/env.txt; exec sleep 100000'",
        &[("user", "nobody"), ("environment", "GREETING='hello world' PATH=/usr/bin:/bin"), ("workdir", "/tmp")],
    );
    // nobody writes env.txt into the scratch directory.
    std::fs::set_permissions(s.dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let start = s.call().env("OCF_RESKEY_secret_token", "hunter2").run("start");
    assert_eq!(start.code, 0, "{}", start.stderr);
    assert!(wait_for(Duration::from_secs(5), || s.dir.join("env.txt").exists()));
    std::thread::sleep(Duration::from_millis(100));
    let env = std::fs::read_to_string(s.dir.join("env.txt")).unwrap();
    assert!(env.contains("GREETING=hello world"), "{env}");
    assert!(env.contains("PATH=/usr/bin:/bin"));
    assert!(env.contains("USER=nobody") && env.contains("HOME="));
    assert!(!env.contains("OCF_") && !env.contains("hunter2"), "the cluster's environment leaked:\n{env}");
    let log = std::fs::read_to_string(s.dir.join("svc.log")).unwrap();
    assert!(log.contains("started as nobody"), "{log}");
}

#[test]
fn clone_instances_share_the_default_pidfile_name() {
    let base = unique("clone");
    let call = |inst: &str| Invocation::new(&agent_path("daemon"), inst).params(&[("command", "sleep 100000")]);
    assert_eq!(call(&format!("{base}:0")).run("start").code, 0);
    let pidfile = format!("/run/hale/daemon-{base}.pid");
    assert!(std::path::Path::new(&pidfile).exists(), "clone suffix dropped from {pidfile}");
    // The same resource seen as another anonymous instance on this node is the same service.
    assert_eq!(call(&format!("{base}:1")).recurring().run("monitor").code, 0);
    assert_eq!(call(&format!("{base}:0")).run("stop").code, 0);
    assert!(!std::path::Path::new(&pidfile).exists());
}

#[test]
fn logs_go_to_ha_logfile_without_forking_logger() {
    let s = Svc::new("sleep 100000", &[]);
    let log = s.dir.join("ha.log");
    let c = s.call().env("HA_LOGFILE", &log.display().to_string()).env("HA_LOGTAG", "hale-test");
    assert_eq!(c.run("start").code, 0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().any(|l| l.starts_with("hale-test:\t") && l.contains("INFO: started sleep as pid")), "{text}");
    let bad = c.clone().env("OCF_RESKEY_stop_signal", "NOPE").run("validate-all");
    assert_eq!(bad.code, 6);
    assert!(bad.stderr.lines().filter(|l| !l.is_empty()).all(|l| l.starts_with("ocf-exit-reason:")), "{}", bad.stderr);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("ERROR: validate-all failed: parameter stop_signal='NOPE'"), "{text}");
}

#[test]
fn reload_agent_accepts_new_health_parameters() {
    let s = Svc::new("sleep 100000", &[]);
    assert_eq!(s.call().run("start").code, 0);
    let r = s.call().env("OCF_RESKEY_health_command", "true").run("reload-agent");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(s.call().env("OCF_RESKEY_health_command", "true").depth(10).run("monitor").code, 0);
    let m = s.call().env("OCF_RESKEY_health_command", "false").depth(10).run("monitor");
    assert_eq!(m.code, 1);
    assert_eq!(s.pids().len(), 1, "reload never restarts the service");
}

#[test]
fn a_health_command_gets_none_of_the_resource_parameters() {
    let s = Svc::new(
        "sleep 100000",
        &[("environment", "API_TOKEN=s3cret-value"), ("health_command", "sh -c 'env > {dir}/health.env'")],
    );
    assert_eq!(s.call().run("start").code, 0);
    let seen = std::fs::read_to_string(s.dir.join("health.env")).expect("the health command ran at start");
    assert!(!seen.contains("OCF_RESKEY_"), "the resource's parameters reached the health command:\n{seen}");
    assert!(!seen.contains("s3cret-value"), "a secret reached the health command");
    assert!(seen.contains("OCF_RESOURCE_INSTANCE="), "the rest of the agent's environment stays:\n{seen}");
    assert_eq!(s.call().run("stop").code, 0);
}
