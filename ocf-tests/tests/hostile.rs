//! `ocf:hale:daemon` and `ocf:hale:gitscript` against a hostile or unusual node: pidfiles that
//! name processes that are not ours, planted symlinks, a run directory that is missing, a file
//! or read-only, secrets in parameters, bytes that are not text, operations that overlap.

use hale_ocf_tests::git::signed_master;
use hale_ocf_tests::{agent_path, require, tagged_processes, unique, wait_for, Invocation, Scratch};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn daemon(instance: &str, params: &[(&str, &str)]) -> Invocation {
    Invocation::new(&agent_path("daemon"), instance).params(params)
}

/// The environment pacemaker-execd gives an agent, as `KEY=VALUE` words for `env -i`.
fn env_words(instance: &str, params: &[(&str, &str)]) -> Vec<String> {
    let mut w = vec![
        "OCF_ROOT=/usr/lib/ocf".to_string(),
        "OCF_RA_VERSION_MAJOR=1".into(),
        "OCF_RA_VERSION_MINOR=1".into(),
        "OCF_RESKEY_CRM_meta_timeout=20000".into(),
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        format!("OCF_RESOURCE_INSTANCE={instance}"),
    ];
    w.extend(params.iter().map(|(k, v)| format!("OCF_RESKEY_{k}={v}")));
    w
}

/// Shell functions that run `agent` with the environment of `instance` and `params`:
/// `agent ACTION`, and `agentv VAR=value ACTION` with one more variable.
fn agent_functions(agent: &str, words: &[String]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{}'", w.replace('\'', "'\\''"))).collect();
    let (env, path) = (quoted.join(" "), agent_path(agent));
    let path = path.display();
    format!("agent() {{ env -i {env} {path} \"$1\"; }}\nagentv() {{ env -i {env} \"$1\" {path} \"$2\"; }}\n")
}

/// Run `script` (sh) in new namespaces made by `unshare` with `flags`, with the daemon
/// agent's functions (see [`agent_functions`]). Returns stdout.
fn in_namespace(flags: &[&str], instance: &str, params: &[(&str, &str)], script: &str) -> String {
    let unshare = require("unshare");
    let prelude = agent_functions("daemon", &env_words(instance, params));
    let out = Command::new(unshare)
        .args(flags)
        .args(["sh", "-c"])
        .arg(format!("{prelude}{script}"))
        .stdin(Stdio::null())
        .output()
        .expect("run unshare");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn pid_1_of_a_namespace_survives_every_action_when_the_pidfile_says_1() {
    let dir = Scratch::new("hostile-pid1");
    let pidfile = dir.join("svc.pid");
    let log = dir.join("pid1.log");
    let instance = unique("pid1");
    let params = [("command", "sleep 100000"), ("pidfile", pidfile.to_str().unwrap())];
    // PID 1 is this shell: it logs any signal it gets; a bystander sleeps in its group.
    let script = format!(
        "trap 'echo TERM >> {log}' TERM; trap 'echo HUP >> {log}' HUP; trap 'echo INT >> {log}' INT
         sleep 100000 & bystander=$!
         echo 1 > {pidfile}
         agent monitor; echo probe=$?
         agent start; echo start=$?
         agentv OCF_RESKEY_CRM_meta_interval=10000 monitor; echo monitor=$?
         agent stop; echo stop=$?
         kill -0 $bystander && echo bystander=alive
         echo pid1=$$ done",
        log = log.display(),
        pidfile = pidfile.display()
    );
    let out = in_namespace(&["--pid", "--fork", "--mount-proc"], &instance, &params, &script);
    for want in ["probe=1", "start=1", "monitor=1", "stop=0", "bystander=alive", "pid1=1 done"] {
        assert!(out.lines().any(|l| l == want), "{want} missing in:\n{out}");
    }
    assert!(!log.exists(), "PID 1 was signalled: {}", std::fs::read_to_string(&log).unwrap_or_default());
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), "1\n", "a file that is not ours is left alone");
}

#[test]
fn an_unrelated_process_or_file_in_the_pidfile_is_never_touched() {
    let dir = Scratch::new("hostile-foreign");
    let pidfile = dir.join("svc.pid");
    let mut victim = Command::new("sleep").arg("100000").spawn().unwrap();
    let pid = victim.id();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let start = stat.rsplit_once(')').unwrap().1.split_whitespace().nth(19).unwrap().to_string();
    let instance = unique("foreign");
    let call = daemon(&instance, &[("command", "sleep 100000"), ("pidfile", pidfile.to_str().unwrap())]);
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let cases = [
        (format!("{pid}\n"), false),
        (format!("{pid} {start}\n"), false),
        (format!("{pid} {start} daemon:someone-else\n"), false),
        // Our exact record, but in a file the service user could have written.
        (format!("{pid} {start} daemon:{instance}\n"), true),
        (passwd, false),
    ];
    for (text, nobodys) in cases {
        std::fs::write(&pidfile, &text).unwrap();
        if nobodys {
            std::os::unix::fs::chown(&pidfile, Some(65534), Some(65534)).unwrap();
        }
        assert_eq!(call.run("monitor").code, 1, "probe: {text}");
        assert_eq!(call.clone().recurring().run("monitor").code, 1, "monitor: {text}");
        let start = call.run("start");
        assert_eq!(start.code, 1, "start over a foreign pidfile: {text}");
        assert!(tagged_processes(&format!("daemon:{instance}")).is_empty(), "nothing started");
        assert_eq!(call.run("stop").code, 0, "stop: {text}");
        assert!(victim.try_wait().unwrap().is_none(), "{text}: the unrelated process was killed");
        assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), text, "the file was replaced or removed");
        std::fs::remove_file(&pidfile).unwrap();
    }
    victim.kill().unwrap();
    victim.wait().unwrap();
}

#[test]
fn a_logfile_symlink_never_hands_a_root_file_to_the_service() {
    let dir = Scratch::new("hostile-log");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "root only\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    // What `nobody` could do in a directory it may write: point the log path at a root file.
    std::os::unix::fs::symlink(&secret, dir.join("svc.log")).unwrap();
    let instance = unique("log");
    let call = daemon(
        &instance,
        &[
            ("command", "sh -c 'echo overwritten; exec sleep 100000'"),
            ("user", "nobody"),
            ("pidfile", dir.join("svc.pid").to_str().unwrap()),
            ("logfile", dir.join("svc.log").to_str().unwrap()),
        ],
    );
    let start = call.run("start");
    assert_ne!(start.code, 0, "{}", start.stderr);
    assert!(tagged_processes(&format!("daemon:{instance}")).is_empty());
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "root only\n");
    assert_eq!(call.run("stop").code, 0);
}

#[test]
fn a_planted_temporary_pidfile_link_truncates_nothing() {
    let dir = Scratch::new("hostile-tmp");
    let target = dir.join("precious");
    std::fs::write(&target, "precious\n").unwrap();
    // The pids the agent will get are the next ones: plant the old temporary names for them.
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid").unwrap().trim().parse().unwrap();
    for pid in last + 1..last + 400 {
        let _ = std::os::unix::fs::symlink(&target, dir.join(&format!("svc.tmp{pid}")));
    }
    let instance = unique("tmp");
    let call = daemon(&instance, &[("command", "sleep 100000"), ("pidfile", dir.join("svc.pid").to_str().unwrap())]);
    assert_eq!(call.run("start").code, 0);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    assert_eq!(call.clone().recurring().run("monitor").code, 0);
    assert_eq!(call.run("stop").code, 0);
}

#[test]
fn every_action_works_from_an_empty_run_and_stop_when_it_is_unusable() {
    let long = format!("long-{}", "x".repeat(295));
    let script = "
        mount -t tmpfs tmpfs /run || exit 9
        agent monitor; echo empty-probe=$?
        agent stop; echo empty-stop=$?
        agent start; echo empty-start=$?
        agentv OCF_RESKEY_CRM_meta_interval=10000 monitor; echo empty-monitor=$?
        agent stop; echo empty-stop2=$?
        agentv OCF_RESOURCE_INSTANCE=$LONG monitor; echo long-probe=$?
        agentv OCF_RESOURCE_INSTANCE=$LONG start; echo long-start=$?
        agentv OCF_RESOURCE_INSTANCE=$LONG stop; echo long-stop=$?
        rm -rf /run/hale; echo > /run/hale
        agent monitor; echo file-probe=$?
        agent stop; echo file-stop=$?
        rm -f /run/hale; mkdir /run/hale; mount -t tmpfs -o ro tmpfs /run/hale
        agent monitor; echo ro-probe=$?
        agent stop; echo ro-stop=$?
    ";
    let instance = unique("emptyrun");
    let out = in_namespace(
        &["--mount", "--propagation", "private"],
        &instance,
        &[("command", "sleep 100000")],
        &format!("LONG={long}\n{script}"),
    );
    for want in [
        "empty-probe=7",
        "empty-stop=0",
        "empty-start=0",
        "empty-monitor=0",
        "empty-stop2=0",
        "long-probe=7",
        "long-start=0",
        "long-stop=0",
        "file-probe=7",
        "file-stop=0",
        "ro-probe=7",
        "ro-stop=0",
    ] {
        assert!(out.lines().any(|l| l == want), "{want} missing in:\n{out}");
    }
    assert!(tagged_processes(&format!("daemon:{instance}")).is_empty());
    assert!(tagged_processes(&format!("daemon:{long}")).is_empty());
}

#[test]
fn secrets_never_reach_exit_reasons_or_logs() {
    let dir = Scratch::new("hostile-secret");
    let log = dir.join("ha.log");
    let instance = unique("secret");
    let port = hale_ocf_tests::free_port();
    let call = daemon(
        &instance,
        &[
            ("command", "sleep 100000"),
            ("pidfile", dir.join("svc.pid").to_str().unwrap()),
            ("health_url", &format!("http://admin:S3CRETPW@127.0.0.1:{port}/")),
            ("environment", "DB_PASSWORD=hunter2 LANG=C"),
        ],
    )
    .env("HA_debug", "1")
    .env("HA_LOGFILE", log.to_str().unwrap());
    let start = call.clone().timeout_ms(3000).run("start");
    assert_eq!(start.code, 1, "{}", start.stderr);
    let reason = start.exit_reason().unwrap_or_default().to_string();
    assert!(reason.contains("http://***@127.0.0.1"), "{reason}");
    let logged = std::fs::read_to_string(&log).unwrap();
    for text in [&reason, &start.stderr, &logged] {
        assert!(!text.contains("S3CRETPW") && !text.contains("admin:") && !text.contains("hunter2"), "{text}");
    }
    assert!(logged.contains("DB_PASSWORD=***"), "the keys stay readable: {logged}");
    let bad = call.clone().env("OCF_RESKEY_environment", "DB_PASSWORD=hunter2 hunter3").run("validate-all");
    assert_eq!(bad.code, 6);
    assert!(!bad.stderr.contains("hunter"), "{}", bad.stderr);
    let unbalanced = call.env("OCF_RESKEY_environment", "'DB_PASSWORD=hunter2").run("validate-all");
    assert_eq!(unbalanced.code, 6);
    assert!(!unbalanced.stderr.contains("hunter"), "{}", unbalanced.stderr);
}

#[test]
fn a_parameter_that_is_not_text_is_refused_not_taken_for_unset() {
    let instance = unique("bytes");
    let mut cmd = Command::new(agent_path("daemon"));
    cmd.arg("start").env_clear();
    for w in env_words(&instance, &[("command", "sleep 100000")]) {
        let (k, v) = w.split_once('=').unwrap();
        cmd.env(k, v);
    }
    cmd.env("OCF_RESKEY_user", std::ffi::OsStr::from_bytes(b"nobody\xff"));
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("parameter user is not valid UTF-8"), "{stderr}");
    assert!(tagged_processes(&format!("daemon:{instance}")).is_empty(), "it did not run as root");
}

#[test]
fn simultaneous_starts_run_one_service_and_a_start_waits_for_a_slow_stop() {
    let dir = Scratch::new("hostile-race");
    for round in 0..6 {
        let instance = unique("race");
        let call = daemon(
            &instance,
            &[("command", "sleep 100000"), ("pidfile", dir.join(&format!("r{round}.pid")).to_str().unwrap())],
        );
        let (a, b) = (call.clone(), call.clone());
        let ta = std::thread::spawn(move || a.run("start").code);
        let tb = std::thread::spawn(move || b.run("start").code);
        assert_eq!((ta.join().unwrap(), tb.join().unwrap()), (0, 0));
        assert_eq!(tagged_processes(&format!("daemon:{instance}")).len(), 1, "round {round}: two services");
        assert_eq!(call.run("stop").code, 0);
    }
    // A service that takes its time to stop; a start arrives meanwhile.
    let instance = unique("slowstop");
    let marker = dir.join("stopping");
    let command =
        format!("sh -c 'trap \"touch {}; sleep 2; exit 0\" TERM; while :; do sleep 0.1; done'", marker.display());
    let call = daemon(&instance, &[("command", &command), ("pidfile", dir.join("slow.pid").to_str().unwrap())]);
    assert_eq!(call.run("start").code, 0);
    let stopper = call.clone();
    let stop = std::thread::spawn(move || stopper.run("stop").code);
    assert!(wait_for(Duration::from_secs(10), || marker.exists()), "the stop began");
    let start = call.run("start");
    assert_eq!(stop.join().unwrap(), 0);
    assert_eq!(start.code, 0, "{}", start.stderr);
    assert_eq!(call.clone().recurring().run("monitor").code, 0, "the start that returned 0 left a running service");
    assert_eq!(call.run("stop").code, 0);
}

/// The default pidfile of gitscript instance `instance` (short names only).
fn hale_backend_run_file(instance: &str) -> std::path::PathBuf {
    Path::new("/run/hale").join(format!("gitscript-{instance}.pid"))
}

/// A gitscript resource on a signed master in `dir`.
fn gitscript(dir: &Path, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let (m, allowed) = signed_master(dir);
    let s = |p: &Path| p.to_string_lossy().to_string();
    let mut p = vec![
        ("repository".to_string(), s(&m.bare)),
        ("entry".into(), "bin/svc".into()),
        ("allowed_signers".into(), s(&allowed)),
        ("state_dir".into(), s(&dir.join("state"))),
    ];
    for (k, v) in extra {
        p.retain(|(pk, _)| pk != k);
        p.push((k.to_string(), v.to_string()));
    }
    p
}

#[test]
fn gitscript_starts_on_a_node_just_booted() {
    let dir = Scratch::new("hostile-gitrun");
    let instance = unique("gitboot");
    let params = gitscript(dir.path(), &[]);
    let words = {
        let mut w = env_words(&instance, &[]);
        w.extend(params.iter().map(|(k, v)| format!("OCF_RESKEY_{k}={v}")));
        w
    };
    let script = format!(
        "{}mount -t tmpfs tmpfs /run || exit 9
         agent monitor; echo probe=$?
         agent start; echo start=$?
         agentv OCF_RESKEY_CRM_meta_interval=10000 monitor; echo monitor=$?
         agent stop; echo stop=$?",
        agent_functions("gitscript", &words)
    );
    let out = Command::new(require("unshare"))
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    for want in ["probe=7", "start=0", "monitor=0", "stop=0"] {
        assert!(out.lines().any(|l| l == want), "{want} missing in:\n{out}");
    }
    assert!(tagged_processes(&format!("gitscript:{instance}")).is_empty());
}

#[test]
fn gitscript_periodic_runs_as_its_user() {
    let dir = Scratch::new("hostile-gituser");
    let instance = unique("gituser");
    let params = gitscript(
        dir.path(),
        &[
            ("mode", "periodic"),
            ("period", "1"),
            ("user", "nobody"),
            ("logfile", &dir.join("svc.log").to_string_lossy()),
            ("entry", "bin/svc"),
            ("interpreter", "/bin/true"),
        ],
    );
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let call = Invocation::new(&agent_path("gitscript"), &instance).params(&params);
    let start = call.run("start");
    assert_eq!(start.code, 0, "{}", start.stderr);
    // The default pidfile: in /run/hale, which only root may write.
    let state = hale_backend_run_file(&instance).with_extension("runs").join("state");
    assert!(wait_for(Duration::from_secs(30), || std::fs::read_to_string(&state).is_ok_and(|s| s.contains("runs=2"))));
    let m = call.clone().recurring().run("monitor");
    assert_eq!(m.code, 0, "{}", m.stderr);
    // The user may replace its state by a link: the monitor never follows it.
    std::fs::remove_file(&state).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", &state).unwrap();
    let m = call.clone().recurring().run("monitor");
    assert!(!m.stderr.contains("root:"), "{}", m.stderr);
    assert_eq!(call.run("stop").code, 0);
    assert!(tagged_processes(&format!("gitscript:{instance}")).is_empty());
    assert!(Path::new("/etc/shadow").exists(), "stop removed the link, not its target");
}

#[test]
fn gitscript_start_keeps_to_its_timeout_and_says_what_ran_out() {
    let dir = Scratch::new("hostile-gitdeadline");
    let instance = unique("gitdeadline");
    let port = hale_ocf_tests::free_port();
    let params = gitscript(
        dir.path(),
        &[("pidfile", &dir.join("svc.pid").to_string_lossy()), ("health_tcp", &format!("127.0.0.1:{port}"))],
    );
    let call = Invocation::new(&agent_path("gitscript"), &instance).params(&params);
    let start = call.clone().timeout_ms(2000).run("start");
    assert!(!start.timed_out, "start ran past its 2 s timeout");
    assert_eq!(start.code, 1, "{}", start.stderr);
    let reason = start.exit_reason().unwrap_or_default();
    assert!(reason.contains("start timeout (2s"), "{reason}");
    assert!(tagged_processes(&format!("gitscript:{instance}")).is_empty(), "stopped again");
    assert_eq!(call.run("stop").code, 0);
}
