//! The Linux process backend against real processes.
#![cfg(target_os = "linux")]

use hale_backend::linux::{procfs, LinuxProcesses};
use hale_backend::{ProcessRecord, ProcessState, Processes, SpawnSpec, StopSignal};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A scratch directory, removed when the test ends (also when it fails).
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("hale-backend-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

fn spec(dir: &std::path::Path, argv: &[&str], tag: &str) -> SpawnSpec {
    let p = LinuxProcesses::new();
    SpawnSpec {
        program: p.find_program(argv[0], "/usr/bin:/bin").expect("program"),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        workdir: Some(dir.to_path_buf()),
        user: None,
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        logfile: Some(dir.join("out.log")),
        pidfile: dir.join("run/svc.pid"),
        tag: tag.into(),
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

#[test]
fn spawn_state_stop() {
    let dir = scratch("basic");
    let p = LinuxProcesses::new();
    let s = spec(&dir, &["sleep", "300"], "t-basic");
    let rec = p.spawn(&s).unwrap();
    assert_eq!(p.state(&s.pidfile, &s.tag), ProcessState::Running(rec));
    let st = procfs::stat(rec.pid).unwrap();
    assert_eq!(st.pgrp, rec.pid, "the service leads its own process group");
    assert!(procfs::has_env(rec.pid, "HALE_INSTANCE", "t-basic"));
    assert!(!procfs::has_env(rec.pid, "HOME", "/root"), "the agent's environment must not leak");
    let report = p.stop(&s.pidfile, &s.tag, StopSignal::Term, Duration::from_secs(5), soon()).unwrap();
    assert_eq!((report.found, report.forced), (1, false));
    assert_eq!(p.state(&s.pidfile, &s.tag), ProcessState::NoRecord);
    // stop again: nothing to do, still success
    let again = p.stop(&s.pidfile, &s.tag, StopSignal::Term, Duration::from_secs(5), soon()).unwrap();
    assert_eq!(again.found, 0);
}

#[test]
fn stubborn_tree_is_killed() {
    let dir = scratch("stubborn");
    let p = LinuxProcesses::new();
    // A shell that ignores TERM and has a child that ignores it too.
    let s = spec(&dir, &["sh", "-c", "trap '' TERM; sleep 300 & wait"], "t-stubborn");
    let rec = p.spawn(&s).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let report = p.stop(&s.pidfile, &s.tag, StopSignal::Term, Duration::from_millis(300), soon()).unwrap();
    assert!(report.forced);
    assert!(report.found >= 2, "found {}", report.found);
    assert!(procfs::stat(rec.pid).is_none_or(|s| !s.is_alive()));
}

#[test]
fn stray_without_pidfile_is_found_by_tag() {
    let dir = scratch("stray");
    let p = LinuxProcesses::new();
    let s = spec(&dir, &["sleep", "300"], "t-stray");
    let rec = p.spawn(&s).unwrap();
    std::fs::remove_file(&s.pidfile).unwrap(); // as if the agent died before writing it
    assert_eq!(p.state(&s.pidfile, &s.tag), ProcessState::NoRecord);
    let report = p.stop(&s.pidfile, &s.tag, StopSignal::Term, Duration::from_secs(5), soon()).unwrap();
    assert_eq!(report.found, 1);
    assert!(procfs::stat(rec.pid).is_none_or(|s| !s.is_alive()));
}

#[test]
fn pid_reuse_and_corruption_are_detected() {
    let dir = scratch("reuse");
    let p = LinuxProcesses::new();
    let pidfile = dir.join("x.pid");
    // Our own pid with a wrong start time: a reused pid, not our service.
    let me = procfs::stat(std::process::id()).unwrap();
    let fake = ProcessRecord { pid: me.pid, start_time: me.start_time + 1 };
    std::fs::write(&pidfile, fake.to_file_text("t-none")).unwrap();
    assert_eq!(p.state(&pidfile, "t-none"), ProcessState::Gone(fake));
    std::fs::write(&pidfile, "12ab\n").unwrap();
    assert!(matches!(p.state(&pidfile, "t-none"), ProcessState::Corrupt(m) if m.contains("corrupt")));
    // stop with a corrupt pidfile: nothing of ours runs, so it succeeds, and the file that is
    // not ours stays.
    p.stop(&pidfile, "t-none", StopSignal::Term, Duration::from_secs(1), soon()).unwrap();
    assert!(pidfile.exists());
}

#[test]
fn a_pid_without_proof_is_never_ours() {
    let dir = scratch("proof");
    let p = LinuxProcesses::new();
    let pidfile = dir.join("x.pid");
    let mut victim = std::process::Command::new("sleep").arg("300").spawn().unwrap();
    let st = procfs::stat(victim.id()).unwrap();
    let exact = ProcessRecord { pid: victim.id(), start_time: st.start_time };
    // A lone PID, PID and start time without a mark, another instance's mark, and our exact
    // record in a file someone else owns: none of them is ours.
    let owned_by_nobody = |text: &str| {
        std::fs::write(&pidfile, text).unwrap();
        std::os::unix::fs::chown(&pidfile, Some(65534), Some(65534)).unwrap();
    };
    for (text, nobody) in [
        (format!("{}\n", victim.id()), false),
        (format!("{} {}\n", victim.id(), st.start_time), false),
        (exact.to_file_text("t-other"), false),
        (exact.to_file_text("t-proof"), true),
    ] {
        let _ = std::fs::remove_file(&pidfile);
        if nobody {
            owned_by_nobody(&text);
        } else {
            std::fs::write(&pidfile, &text).unwrap();
        }
        assert!(matches!(p.state(&pidfile, "t-proof"), ProcessState::Corrupt(_)), "{text}");
        p.stop(&pidfile, "t-proof", StopSignal::Kill, Duration::ZERO, soon()).unwrap();
        assert!(procfs::stat(victim.id()).is_some_and(|s| s.is_alive()), "{text}: the victim was signalled");
        assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), text, "a file not ours is left alone");
    }
    let _ = std::fs::remove_file(&pidfile);
    std::os::unix::fs::symlink(dir.join("elsewhere"), &pidfile).unwrap();
    std::fs::write(dir.join("elsewhere"), exact.to_file_text("t-proof")).unwrap();
    assert!(matches!(p.state(&pidfile, "t-proof"), ProcessState::Corrupt(_)), "a symlinked record");
    victim.kill().unwrap();
    victim.wait().unwrap();
}

#[test]
fn a_planted_logfile_link_is_refused_and_the_temporary_is_not_followed() {
    let dir = scratch("plant");
    let p = LinuxProcesses::new();
    let secret = dir.join("secret");
    std::fs::write(&secret, "root only").unwrap();
    let mut s = spec(&dir, &["sleep", "300"], "t-plant");
    std::os::unix::fs::symlink(&secret, dir.join("out.log")).unwrap();
    assert!(p.spawn(&s).is_err(), "a symlink at the log path");
    std::fs::remove_file(dir.join("out.log")).unwrap();
    std::fs::hard_link(&secret, dir.join("out.log")).unwrap();
    assert!(matches!(p.spawn(&s), Err(hale_backend::BackendError::Permission(_))), "a second link");
    s.logfile = None;
    // The old temporary name next to the pidfile, planted as a link: never followed.
    std::fs::create_dir_all(dir.join("run")).unwrap();
    std::os::unix::fs::symlink(&secret, dir.join(format!("run/svc.tmp{}", std::process::id()))).unwrap();
    let rec = p.spawn(&s).unwrap();
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "root only");
    assert_eq!(p.state(&s.pidfile, &s.tag), ProcessState::Running(rec));
    p.stop(&s.pidfile, &s.tag, StopSignal::Kill, Duration::ZERO, soon()).unwrap();
}

#[test]
fn zombie_is_not_alive() {
    let dir = scratch("zombie");
    let p = LinuxProcesses::new();
    let s = spec(&dir, &["true"], "t-zombie");
    let rec = p.spawn(&s).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // `true` has exited and, unreaped, is a zombie child of this test process.
    assert_eq!(p.state(&s.pidfile, &s.tag), ProcessState::Gone(rec));
    assert_eq!(p.exit_status(rec).as_deref(), Some("exited with status 0"));
}

#[test]
fn checks_report_status_and_output() {
    let p = LinuxProcesses::new();
    let argv = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let ok = p.run_check(&argv(&["sh", "-c", "echo fine"]), Duration::from_secs(5)).unwrap();
    assert!(ok.success);
    assert_eq!(ok.last_line.as_deref(), Some("fine"));
    let bad = p.run_check(&argv(&["sh", "-c", "echo broken >&2; exit 3"]), Duration::from_secs(5)).unwrap();
    assert_eq!((bad.success, bad.status.as_str(), bad.last_line.as_deref()), (false, "exit status 3", Some("broken")));
    let slow = p.run_check(&argv(&["sleep", "30"]), Duration::from_millis(200)).unwrap();
    assert!(!slow.success && slow.status.starts_with("timed out"));
    assert!(p.run_check(&argv(&["/nonexistent/x"]), Duration::from_secs(1)).is_err());
}

#[test]
fn command_output_is_read_apart_from_its_errors_and_bounded() {
    let p = LinuxProcesses::new();
    let argv = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let o =
        p.run_output(&argv(&["sh", "-c", "echo '<a/>'; echo warn >&2; exit 2"]), Duration::from_secs(5), 1024).unwrap();
    assert_eq!(o.stdout, "<a/>\n");
    assert_eq!((o.outcome.success, o.outcome.status.as_str()), (false, "exit status 2"));
    assert_eq!(o.outcome.last_line.as_deref(), Some("warn"));
    let big = p.run_output(&argv(&["sh", "-c", "printf %0100d 0"]), Duration::from_secs(5), 10).unwrap();
    assert_eq!(big.stdout.len(), 10);
    let slow = p.run_output(&argv(&["sleep", "30"]), Duration::from_millis(200), 10).unwrap();
    assert!(slow.outcome.status.starts_with("timed out"));
}

#[test]
fn user_and_program_lookup() {
    let p = LinuxProcesses::new();
    assert!(p.user_exists("root"));
    assert!(!p.user_exists("no-such-user-hale"));
    assert!(p.find_program("sh", "/nonexistent:/bin:/usr/bin").is_some());
    assert!(p.find_program("no-such-program-hale", "/bin:/usr/bin").is_none());
    assert!(p.find_program("/etc/passwd", "").is_none(), "not executable");
}

#[test]
fn runs_as_another_user() {
    let dir = scratch("user");
    let p = LinuxProcesses::new();
    let mut s = spec(&dir, &["sleep", "300"], "t-user");
    s.user = Some("nobody".into());
    let rec = p.spawn(&s).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", rec.pid)).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid_line.split_whitespace().nth(1).unwrap() == "65534", "{uid_line}");
    p.stop(&s.pidfile, &s.tag, StopSignal::Term, Duration::from_secs(5), soon()).unwrap();
}
