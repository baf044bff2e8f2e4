//! The `hale` command.

use hale_ocf_tests::{hale_bin, tagged_processes, unique, Scratch};
use std::process::{Command, Stdio};

fn hale(args: &[&str]) -> (i32, String) {
    let out = Command::new(hale_bin()).args(args).stdin(Stdio::null()).output().expect("run hale");
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn list_describe_and_meta_data() {
    let (code, out) = hale(&["list"]);
    assert_eq!(code, 0);
    assert!(out.contains("ocf:hale:daemon"));
    let (code, out) = hale(&["describe", "daemon"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("command (string, required)")
            && out.contains("stop_signal (TERM|INT|QUIT|HUP|USR1|USR2|KILL, default: TERM)"),
        "{out}"
    );
    assert!(out.contains("monitor        timeout=30s interval=60s depth=10"), "{out}");
    let (_, v10) = hale(&["meta-data", "daemon", "--ocf", "1.0"]);
    assert!(v10.contains("ra-api-1.dtd") && v10.contains("<version>1.0</version>"));
    let (_, v11) = hale(&["meta-data", "daemon"]);
    assert!(
        v11.contains("<version>1.1</version>") && v11.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION")))
    );
    let (code, out) = hale(&["describe", "nosuch"]);
    assert_eq!(code, 2);
    assert!(out.contains("no agent 'nosuch'; known agents: daemon"));
}

#[test]
fn run_explains_results() {
    let dir = Scratch::new("cli");
    let inst = unique("cli");
    let pid = format!("pidfile={}", dir.join("p.pid").display());
    let base = ["run", "daemon", "", "-p", "command=sleep 100000", "-p", &pid, "--instance", &inst];
    let with = |action: &str, extra: &[&str]| {
        let mut v: Vec<&str> = base.to_vec();
        v[2] = action;
        v.extend_from_slice(extra);
        v.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let call = |args: Vec<String>| hale(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (code, out) = call(with("monitor", &["--probe"]));
    assert_eq!(code, 7);
    assert!(out.contains("daemon monitor (probe): not running (7) [OCF_NOT_RUNNING]"), "{out}");
    let (code, out) = call(with("start", &[]));
    assert_eq!(code, 0, "{out}");
    assert_eq!(tagged_processes(&format!("daemon:{inst}")).len(), 1);
    let (code, out) = call(with("monitor", &["--depth", "10"]));
    assert_eq!(code, 0, "{out}");
    let (code, out) = call(with("stop", &[]));
    assert_eq!(code, 0, "{out}");
    assert!(tagged_processes(&format!("daemon:{inst}")).is_empty());
    let (code, out) = call(with("validate-all", &["-p", "health_tcp=nowhere"]));
    assert_eq!(code, 6);
    assert!(out.contains("[OCF_ERR_CONFIGURED]") && out.contains("reason: parameter health_tcp='nowhere'"), "{out}");
}

/// `hale install` puts each agent's own program at `resource.d/hale/<agent>` when the build
/// made it (beside `hale`), and otherwise a link to the multi-call binary, which answers as
/// that agent: both forms give the same meta-data.
#[test]
fn install_gives_each_agent_its_own_program_or_a_link() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Scratch::new("install");
    let meta = |agent: &std::path::Path| {
        let out = Command::new(agent).arg("meta-data").env_clear().env("OCF_ROOT", "/usr/lib/ocf").output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{} meta-data", agent.display());
        String::from_utf8(out.stdout).unwrap()
    };

    let own = dir.path().join("own");
    let (code, out) = hale(&["install", "--ocf-root", own.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let alone = dir.path().join("alone");
    std::fs::create_dir(&alone).unwrap();
    std::fs::copy(hale_bin(), alone.join("hale")).unwrap();
    let linked = dir.path().join("linked");
    let out =
        Command::new(alone.join("hale")).args(["install", "--ocf-root", linked.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no "), "the fallback is not said");

    for name in hale_registry::names() {
        let a = own.join("resource.d/hale").join(name);
        let m = std::fs::symlink_metadata(&a).unwrap();
        assert!(m.file_type().is_file(), "{} is not a program of its own", a.display());
        assert_eq!(m.permissions().mode() & 0o777, 0o755);
        let l = linked.join("resource.d/hale").join(name);
        assert_eq!(std::fs::read_link(&l).unwrap(), std::path::Path::new("../../lib/hale/hale"));
        let (mine, multi) = (meta(&a), meta(&l));
        assert!(mine.contains(&format!("<resource-agent name=\"{name}\"")), "{mine}");
        assert_eq!(mine, multi, "{name}: its own program and the multi-call binary disagree");
    }
}
