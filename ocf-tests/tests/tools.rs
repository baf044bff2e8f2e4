//! The tools administrators already trust, on the installed agents: ocf-tester,
//! crm_resource and pcs (offline, against a CIB file).

use hale_ocf_tests::tables::TABLES;
use hale_ocf_tests::{agent_path, free_port, require, tagged_processes, unique, wait_for, Scratch};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn run(cmd: &mut Command) -> (i32, String) {
    let Output { status, stdout, stderr } = cmd.stdin(Stdio::null()).output().expect("run tool");
    let text = format!("{}{}", String::from_utf8_lossy(&stdout), String::from_utf8_lossy(&stderr));
    (status.code().unwrap_or(-1), text)
}

fn ocf_tester(name: &str, agent: &str, params: &[(String, String)]) -> (i32, String) {
    let mut cmd = Command::new(require("ocf-tester"));
    cmd.arg("-n").arg(name);
    for (k, v) in params {
        cmd.arg("-o").arg(format!("{k}={v}"));
    }
    cmd.arg(agent_path(agent));
    run(&mut cmd)
}

#[test]
fn ocf_tester_passes_every_agent() {
    for t in TABLES {
        let dir = Scratch::new("tester");
        let name = unique("tester");
        let (code, out) = ocf_tester(&name, t.agent, &(t.valid)(dir.path()));
        assert!(code == 0 && out.contains("passed all tests"), "ocf-tester on {}:\n{out}", t.agent);
        assert!((t.active)(&name, dir.path()).is_empty(), "ocf-tester left {} running", t.agent);
    }
}

/// A real HTTP server as the service, health_url checked by start and depth-10 monitors.
#[test]
fn ocf_tester_daemon_with_a_web_server_and_health_url() {
    let python = require("python3");
    let dir = Scratch::new("web");
    std::fs::write(dir.join("index.html"), "<html>hale ok</html>").unwrap();
    let port = free_port();
    let name = unique("web");
    let params: Vec<(String, String)> = [
        (
            "command",
            format!("{} -m http.server {port} --bind 127.0.0.1 --directory {}", python.display(), dir.path().display()),
        ),
        ("health_url", format!("http://127.0.0.1:{port}/")),
        ("health_regex", "hale ok".to_string()),
        ("pidfile", dir.join("web.pid").display().to_string()),
        ("logfile", dir.join("web.log").display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let (code, out) = ocf_tester(&name, "daemon", &params);
    assert!(code == 0 && out.contains("passed all tests"), "ocf-tester:\n{out}");
    assert!(tagged_processes(&format!("daemon:{name}")).is_empty());
}

fn crm_resource(action: &str, options: &[(&str, String)]) -> (i32, String) {
    let mut cmd = Command::new(require("crm_resource"));
    cmd.arg(action).args(["--class", "ocf", "--provider", "hale", "--agent", "daemon"]);
    for (k, v) in options {
        cmd.arg("--option").arg(format!("{k}={v}"));
    }
    run(&mut cmd)
}

#[test]
fn crm_resource_validate_and_force_actions() {
    let dir = Scratch::new("crm");
    let pidfile = dir.join("svc.pid").display().to_string();
    let good = [("command", "sleep 100000".to_string()), ("pidfile", pidfile.clone())];
    let (code, out) = crm_resource("--validate", &good);
    assert_eq!(code, 0, "{out}");
    let (code, out) = crm_resource("--validate", &[("command", "sleep 'oops".to_string())]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("unbalanced quotes"), "the exit reason must reach the user:\n{out}");

    let (code, out) = crm_resource("--force-check", &good);
    assert_eq!(code, 7, "stopped: {out}");
    let (code, out) = crm_resource("--force-start", &good);
    assert_eq!(code, 0, "{out}");
    let (code, out) = crm_resource("--force-check", &good);
    assert_eq!(code, 0, "running: {out}");
    // crm_resource runs the agent as instance "test" without a clone suffix.
    assert_eq!(tagged_processes("daemon:test").len(), 1);
    let (code, out) = crm_resource("--force-stop", &good);
    assert_eq!(code, 0, "{out}");
    assert!(wait_for(Duration::from_secs(2), || tagged_processes("daemon:test").is_empty()));
    let (code, _) = crm_resource("--force-check", &good);
    assert_eq!(code, 7);
}

fn pcs(cib: &std::path::Path, args: &[&str]) -> (i32, String) {
    run(Command::new(require("pcs")).arg("-f").arg(cib).args(args))
}

#[test]
fn pcs_creates_validates_and_describes() {
    let dir = Scratch::new("pcs");
    let cib = dir.join("cib.xml");
    let (code, out) = run(Command::new(require("cibadmin")).arg("--empty").stdout(Stdio::piped()));
    assert_eq!(code, 0);
    std::fs::write(&cib, out).unwrap();

    let (code, out) = pcs(&cib, &["resource", "create", "web", "ocf:hale:daemon", "command=sleep 100"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) =
        pcs(&cib, &["resource", "create", "web2", "ocf:hale:daemon", "command=sleep 100", "--agent-validation"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) =
        pcs(&cib, &["resource", "create", "bad1", "ocf:hale:daemon", "command=sleep 'x", "--agent-validation"]);
    assert_ne!(code, 0);
    assert!(out.contains("ocf-exit-reason:parameter command: unbalanced quotes"), "{out}");
    let (code, out) = pcs(
        &cib,
        &[
            "resource",
            "create",
            "bad2",
            "ocf:hale:daemon",
            "command=sleep 1",
            "health_url=ftp://x/",
            "--agent-validation",
        ],
    );
    assert_ne!(code, 0);
    assert!(out.contains("must be an http:// or https:// URL"), "{out}");
    let (code, out) = pcs(&cib, &["resource", "create", "bad3", "ocf:hale:daemon"]);
    assert_ne!(code, 0);
    assert!(out.contains("'command' is missing"), "{out}");
    let (code, out) = pcs(&cib, &["resource", "create", "bad4", "ocf:hale:daemon", "command=x", "colour=blue"]);
    assert_ne!(code, 0);
    assert!(out.contains("invalid resource option 'colour'"), "{out}");

    // The default operations come from our meta-data: both monitor depths.
    let (code, out) = pcs(&cib, &["resource", "config", "web"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("interval=10s") && out.contains("interval=60s") && out.contains("OCF_CHECK_LEVEL=10"),
        "{out}"
    );

    let (code, out) = run(Command::new(require("pcs")).args(["resource", "describe", "ocf:hale:daemon"]));
    assert_eq!(code, 0, "{out}");
    let agent = hale_ocf_tests::hale_bin();
    let (_, names) = run(Command::new(agent).args(["meta-data", "daemon"]));
    for name in names.lines().filter_map(|l| l.strip_prefix("<parameter name=\"")).map(|l| l.split('"').next().unwrap())
    {
        assert!(out.contains(name), "pcs describe lacks parameter {name}:\n{out}");
    }
}
