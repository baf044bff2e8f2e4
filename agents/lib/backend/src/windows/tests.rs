//! The Windows backend against real processes (run under Wine in CI). The test executable
//! plays the service: `helper_role` does what `HALE_TEST_ROLE` says when it is set.

use super::eventlog::{self, EventKind};
use super::files;
use super::*;
use std::collections::HashSet;

const ROLE: &str = "HALE_TEST_ROLE";

/// Not a test when run normally; the body of the processes the other tests start.
#[test]
fn helper_role() {
    // Only a helper started with helper_args() plays a role: the whole test run's process may
    // see ROLE too, while checks_report_status_last_line_and_timeout sets it for its child.
    if !std::env::args().any(|a| a == "--exact") {
        return;
    }
    match std::env::var(ROLE).as_deref() {
        Ok("sleep") => loop {
            sleep(Duration::from_secs(60));
        },
        Ok("exit3") => std::process::exit(3),
        Ok("exit0") => {
            println!("all good");
            std::process::exit(0)
        }
        Ok("say-fail") => {
            println!("first line\nthe last words");
            std::process::exit(2)
        }
        Ok("parent") => {
            // Start a grandchild, record its pid, then wait like a service.
            let me = std::env::current_exe().unwrap();
            let mut child = std::process::Command::new(me).args(helper_args()).env(ROLE, "sleep").spawn().unwrap();
            let file = std::env::var("HALE_TEST_CHILD_FILE").unwrap();
            std::fs::write(file, child.id().to_string()).unwrap();
            // Like a service waiting on its worker.
            let _ = child.wait();
            loop {
                sleep(Duration::from_secs(60));
            }
        }
        _ => {}
    }
}

fn helper_args() -> Vec<String> {
    ["windows::tests::helper_role", "--exact", "--test-threads=1", "--nocapture", "--quiet"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hale-wintest-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn spec(dir: &Path, role: &str, tag: &str) -> SpawnSpec {
    let exe = std::env::current_exe().unwrap();
    let mut argv = vec![exe.to_string_lossy().into_owned()];
    argv.extend(helper_args());
    SpawnSpec {
        program: exe,
        argv,
        workdir: Some(dir.to_path_buf()),
        user: None,
        env: vec![(ROLE.into(), role.into()), ("HALE_TEST_CHILD_FILE".into(), dir.join("child").display().to_string())],
        logfile: Some(dir.join("out.log")),
        pidfile: dir.join("svc.pid"),
        tag: format!("test:{tag}:{}", std::process::id()),
    }
}

fn alive(pid: u32) -> bool {
    match open_process(pid, PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_SYNCHRONIZE) {
        Some(h) => is_running(raw(&h)),
        None => false,
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        sleep(Duration::from_millis(50));
    }
}

#[test]
fn quoting_follows_the_msvcrt_rules() {
    let cases: &[(&[&str], &str)] = &[
        (&["a", "b"], "a b"),
        (&["with space"], "\"with space\""),
        (&[""], "\"\""),
        (&["say \"hi\""], "\"say \\\"hi\\\"\""),
        (&["C:\\dir\\"], "C:\\dir\\"),
        (&["C:\\my dir\\"], "\"C:\\my dir\\\\\""),
        (&["a\\\\\"b"], "\"a\\\\\\\\\\\"b\""),
        (&["%PATH%", "&", "|"], "%PATH% & |"),
    ];
    for (argv, want) in cases {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        assert_eq!(command_line(&argv), *want, "{argv:?}");
    }
}

#[test]
fn job_names_are_valid_kernel_names() {
    assert_eq!(job_name("daemon:web"), "Local\\hale-daemon_web");
    assert_eq!(job_name("a\\b/c d"), "Local\\hale-a_b_c_d");
}

#[test]
fn spawn_state_and_stop_within_the_deadline() {
    let dir = scratch("spawn");
    let p = WindowsProcesses::new();
    let s = spec(&dir, "sleep", "spawn");
    let r = p.spawn(&s).unwrap();
    assert_ne!(r.start_time, 0, "the record carries the creation time");
    assert_eq!(fs::read_to_string(&s.pidfile).unwrap(), r.to_file_text(&s.tag));
    assert_eq!(p.state(&s.pidfile, &s.tag), ProcessState::Running(r));
    // A record with another creation time is not ours (pid reuse).
    fs::write(dir.join("other.pid"), ProcessRecord { pid: r.pid, start_time: r.start_time + 1 }.to_file_text(&s.tag))
        .unwrap();
    assert_eq!(
        p.state(&dir.join("other.pid"), &s.tag),
        ProcessState::Gone(ProcessRecord { pid: r.pid, start_time: r.start_time + 1 })
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let report = p.stop(&s.pidfile, &s.tag, StopSignal::Term, Duration::from_secs(2), deadline).unwrap();
    assert!(report.found >= 1, "{report:?}");
    assert!(!alive(r.pid));
    assert_eq!(p.state(&s.pidfile, &s.tag), ProcessState::NoRecord);
    // Stop again: nothing to do, still a success.
    let again = p.stop(&s.pidfile, &s.tag, StopSignal::Term, Duration::from_secs(1), deadline).unwrap();
    assert_eq!(again.found, 0);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn stop_kills_the_whole_tree_even_from_another_backend() {
    let dir = scratch("tree");
    let s = spec(&dir, "parent", "tree");
    let r = WindowsProcesses::new().spawn(&s).unwrap();
    let child_file = dir.join("child");
    wait_for("the grandchild", || fs::read_to_string(&child_file).is_ok_and(|t| !t.is_empty()));
    let child: u32 = fs::read_to_string(&child_file).unwrap().trim().parse().unwrap();
    assert!(alive(child));
    // A fresh backend, as a later agent process would have: it finds the job by name.
    let report = WindowsProcesses::new()
        .stop(&s.pidfile, &s.tag, StopSignal::Kill, Duration::ZERO, Instant::now() + Duration::from_secs(20))
        .unwrap();
    assert!(report.found >= 1 && report.forced, "{report:?}");
    wait_for("the tree to go", || !alive(r.pid) && !alive(child));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn stop_finds_an_unrecorded_service_by_its_job() {
    let dir = scratch("stray");
    let s = spec(&dir, "sleep", "stray");
    let r = WindowsProcesses::new().spawn(&s).unwrap();
    // The agent that started it was killed before the pidfile could be trusted.
    fs::remove_file(&s.pidfile).unwrap();
    WindowsProcesses::new()
        .stop(
            &s.pidfile,
            &s.tag,
            StopSignal::Term,
            Duration::from_millis(200),
            Instant::now() + Duration::from_secs(20),
        )
        .unwrap();
    wait_for("the stray to go", || !alive(r.pid));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn an_owning_backend_takes_its_services_with_it() {
    let dir = scratch("owning");
    let s = spec(&dir, "sleep", "owning");
    let p = WindowsProcesses::owning();
    let r = p.spawn(&s).unwrap();
    assert!(alive(r.pid));
    drop(p);
    wait_for("kill-on-close", || !alive(r.pid));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn exit_status_of_a_service_that_died() {
    let dir = scratch("exit");
    let p = WindowsProcesses::new();
    let s = spec(&dir, "exit3", "exit");
    let r = p.spawn(&s).unwrap();
    wait_for("the exit", || p.state(&s.pidfile, &s.tag) == ProcessState::Gone(r));
    assert_eq!(p.exit_status(r).as_deref(), Some("exited with status 3"));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn output_goes_to_the_logfile() {
    let dir = scratch("log");
    let p = WindowsProcesses::new();
    let s = spec(&dir, "exit0", "log");
    let r = p.spawn(&s).unwrap();
    wait_for("the exit", || p.state(&s.pidfile, &s.tag) == ProcessState::Gone(r));
    assert!(fs::read_to_string(dir.join("out.log")).unwrap().contains("all good"));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn corrupt_and_missing_records() {
    let dir = scratch("corrupt");
    let p = WindowsProcesses::new();
    fs::write(dir.join("bad.pid"), "not a pid\n").unwrap();
    assert!(matches!(p.state(&dir.join("bad.pid"), "t"), ProcessState::Corrupt(m) if m.contains("corrupt")));
    assert_eq!(p.state(&dir.join("none.pid"), "t"), ProcessState::NoRecord);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn spawn_errors_are_clear() {
    let dir = scratch("errors");
    let p = WindowsProcesses::new();
    let mut s = spec(&dir, "sleep", "errors");
    s.user = Some("someone".into());
    let e = p.spawn(&s).unwrap_err().to_string();
    assert!(e.contains("not supported on Windows"), "{e}");
    s.user = None;
    s.program = dir.join("missing.exe");
    assert!(matches!(p.spawn(&s), Err(BackendError::NotFound(_))));
    assert!(!s.pidfile.exists());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn checks_report_status_last_line_and_timeout() {
    let p = WindowsProcesses::new();
    let exe = std::env::current_exe().unwrap().to_string_lossy().into_owned();
    let mut argv = vec![exe];
    argv.extend(helper_args());
    // run_check inherits the agent's environment; the role goes through it.
    std::env::set_var(ROLE, "say-fail");
    let out = p.run_check(&argv, Duration::from_secs(30)).unwrap();
    std::env::remove_var(ROLE);
    assert!(!out.success);
    assert_eq!(out.status, "exit status 2");
    assert!(out.last_line.as_deref().unwrap_or_default().contains("the last words") || out.last_line.is_some());
    let ok = p.run_check(&argv, Duration::from_secs(30)).unwrap();
    assert!(ok.success, "{ok:?}");
    let e = p.run_check(&["no-such-program-here".into()], Duration::from_secs(5)).unwrap_err();
    assert!(matches!(e, BackendError::NotFound(_)));
}

#[test]
fn programs_are_found_on_path_and_batch_files_refused() {
    let dir = scratch("find");
    fs::write(dir.join("tool.exe"), b"MZ").unwrap();
    fs::write(dir.join("script.bat"), b"@echo off").unwrap();
    let p = WindowsProcesses::new();
    let path = format!("C:\\nowhere;{}", dir.display());
    assert_eq!(p.find_program("tool", &path), Some(dir.join("tool.exe")));
    assert_eq!(p.find_program("tool.exe", &path), Some(dir.join("tool.exe")));
    assert_eq!(p.find_program(&dir.join("tool").display().to_string(), ""), Some(dir.join("tool.exe")));
    assert_eq!(p.find_program("script.bat", &path), None);
    assert_eq!(p.find_program("script", &path), None);
    assert_eq!(p.find_program("", &path), None);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn powershell_scripts_run_with_file_not_command() {
    let p = WindowsProcesses::new();
    let argv = powershell_argv(&p, "C:\\nowhere", Path::new("C:\\s\\deploy.ps1"), &["-Name".into(), "a b".into()]);
    assert_eq!(argv[0], "powershell.exe");
    assert_eq!(
        &argv[1..7],
        ["-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-File", "C:\\s\\deploy.ps1"]
    );
    assert_eq!(&argv[7..], ["-Name", "a b"]);
}

#[test]
fn event_kinds_have_stable_unique_ids_and_are_written() {
    let ids: HashSet<u32> = EventKind::ALL.iter().map(|k| k.id()).collect();
    assert_eq!(ids.len(), EventKind::ALL.len());
    assert_eq!(EventKind::MonitorFailed.id(), 2003);
    assert_eq!(EventKind::of_severity(3), EventKind::AgentError);
    assert_eq!(EventKind::of_severity(4), EventKind::AgentWarning);
    assert_eq!(EventKind::of_severity(6), EventKind::AgentInfo);
    assert_eq!(EventKind::of_severity(7), EventKind::AgentDebug);
    assert!(eventlog::report(EventKind::AgentInfo, "hale backend test event"));
    use hale_ocf::SyslogSink;
    eventlog::EventLog.send(3, 3, "daemon(web)[1]", "a test error line");
}

/// Wine keeps no file security (it derives a descriptor from the Unix mode bits), so what can
/// be checked here is that the calls succeed and that Windows parses our descriptors as
/// protected, SYSTEM and Administrators only; reading the DACL back is for real Windows
/// (`hale-wsfc show` prints it).
#[test]
fn private_directories_get_a_protected_dacl() {
    let dir = scratch("acl");
    let private = dir.join("resources");
    files::make_private_dir(&private).unwrap();
    fs::write(private.join("x.conf"), "secret=1\n").unwrap();
    files::make_private_file(&private.join("x.conf")).unwrap();
    assert!(files::dacl_sddl(&private).unwrap().starts_with("D:"));
    assert_eq!(files::normalize_sddl(files::PRIVATE_DIR_SDDL).unwrap(), "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)");
    assert_eq!(files::normalize_sddl(files::PRIVATE_FILE_SDDL).unwrap(), "D:P(A;;FA;;;SY)(A;;FA;;;BA)");
    assert!(files::normalize_sddl("D:(A;;FA;;;WD)").is_err(), "an unprotected DACL is refused");
    let _ = fs::remove_dir_all(&dir);
}
