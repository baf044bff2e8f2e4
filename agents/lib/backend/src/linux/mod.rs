//! The Linux backend: processes with nix and /proc; syslog through /dev/log.

pub mod net;
pub mod procfs;
pub mod syslog;

use crate::process::{
    remove_our_record, BackendError, CheckOutcome, CommandOutput, ProcessRecord, ProcessState, Processes, SpawnSpec,
    StopReport, StopSignal, TAG_VARIABLE,
};
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{Gid, Pid, Uid, User};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How often waits look at the process table. Short: a stop or a failed start should end as
/// soon as the process has gone, and a /proc read costs microseconds.
const POLL: Duration = Duration::from_millis(20);

/// Processes on Linux.
#[derive(Debug, Default)]
pub struct LinuxProcesses;

impl LinuxProcesses {
    pub fn new() -> LinuxProcesses {
        LinuxProcesses
    }
}

/// An unlinked temporary file for a command's output. A file, not a pipe: a grandchild holding
/// a pipe open could make us wait past the deadline.
fn unlinked_temp() -> Result<fs::File, BackendError> {
    let path = std::env::temp_dir().join(format!(
        "hale-check-{}-{}",
        std::process::id(),
        CHECK_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| BackendError::Failed(format!("cannot create {}: {e}", path.display())))?;
    let _ = fs::remove_file(&path);
    Ok(f)
}

fn last_line(text: &str) -> Option<String> {
    text.lines().rev().map(str::trim).find(|l| !l.is_empty()).map(str::to_string)
}

/// Run `argv` (no shell, null stdin) with its output into `stdout`/`stderr`, in its own
/// process group killed at `timeout`. Returns (success, how it ended).
fn run_bounded(
    argv: &[String],
    timeout: Duration,
    stdout: &fs::File,
    stderr: &fs::File,
) -> Result<(bool, String), BackendError> {
    let program = argv.first().ok_or_else(|| BackendError::Failed("empty check command".into()))?;
    let dup = |f: &fs::File| f.try_clone().map_err(|e| BackendError::Failed(e.to_string()));
    let mut child = Command::new(program);
    child.args(&argv[1..]).stdin(Stdio::null()).stdout(dup(stdout)?).stderr(dup(stderr)?).process_group(0);
    for (name, _) in std::env::vars_os().filter(|(k, _)| crate::process::is_resource_parameter(k)) {
        child.env_remove(name);
    }
    // Its own group so a timeout kills its children too; and it dies with the agent, so
    // a check never outlives an agent that Pacemaker killed at its timeout.
    // SAFETY: prctl is async-signal-safe and the closure allocates nothing.
    unsafe {
        child.pre_exec(|| Ok(nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?));
    }
    let mut child = child.spawn().map_err(|e| match e.kind() {
        ErrorKind::NotFound => BackendError::NotFound(format!("cannot run {program}: {e}")),
        _ => BackendError::Failed(format!("cannot run {program}: {e}")),
    })?;
    let until = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= until => break None,
            Ok(None) => sleep(POLL),
            Err(e) => return Err(BackendError::Failed(format!("waiting for {program}: {e}"))),
        }
    };
    let text = match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            _ => "ended".to_string(),
        },
        None => {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
            format!("timed out after {}s", timeout.as_secs_f32())
        }
    };
    Ok((status.is_some_and(|s| s.success()), text))
}

fn signal_of(s: StopSignal) -> Signal {
    match s {
        StopSignal::Term => Signal::SIGTERM,
        StopSignal::Int => Signal::SIGINT,
        StopSignal::Quit => Signal::SIGQUIT,
        StopSignal::Hup => Signal::SIGHUP,
        StopSignal::Usr1 => Signal::SIGUSR1,
        StopSignal::Usr2 => Signal::SIGUSR2,
        StopSignal::Kill => Signal::SIGKILL,
    }
}

/// Open the service's log file for appending, as root but with the service user's rights in
/// mind: never through a symlink at the path (O_NOFOLLOW), never a FIFO or device, never a
/// file with other hard links, and only a file owned by us or by the service user. So a user
/// who can write the log directory cannot have a root-only file handed to the service.
fn open_log(path: &Path, who: Option<&Identity>) -> Result<fs::File, BackendError> {
    use std::os::unix::fs::MetadataExt;
    let f = crate::files::open_append_nofollow(path, 0o640)
        .map_err(|e| BackendError::Failed(format!("cannot open log file {}: {e}", path.display())))?;
    let m = f.metadata().map_err(|e| BackendError::Failed(format!("log file {}: {e}", path.display())))?;
    let owner_ok = m.uid() == Uid::effective().as_raw() || who.is_some_and(|w| m.uid() == w.uid.as_raw());
    if !m.is_file() || m.nlink() != 1 || !owner_ok {
        return Err(BackendError::Permission(format!(
            "log file {} is not a plain file of ours or of the service user (owner uid {}, {} link(s)); refusing it",
            path.display(),
            m.uid(),
            m.nlink()
        )));
    }
    Ok(f)
}

/// The user's ids and supplementary groups, looked up before fork (NSS is not fork-safe).
struct Identity {
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
    home: PathBuf,
    shell: PathBuf,
}

fn identity(name: &str) -> Result<Identity, BackendError> {
    let user = User::from_name(name)
        .map_err(|e| BackendError::Failed(format!("cannot look up user '{name}': {e}")))?
        .ok_or_else(|| BackendError::NotFound(format!("user '{name}' does not exist on this node")))?;
    let cname = CString::new(name).map_err(|_| BackendError::NotFound(format!("invalid user name '{name}'")))?;
    let groups = nix::unistd::getgrouplist(&cname, user.gid).unwrap_or_else(|_| vec![user.gid]);
    Ok(Identity { uid: user.uid, gid: user.gid, groups, home: user.dir, shell: user.shell })
}

/// Everything that belongs to the service: the recorded process, its process group, its
/// descendants, and every process carrying the tag in our network and mount namespaces
/// (the same mark in another namespace belongs to another node or container). Keyed by pid, with the start time so a
/// reused pid is never signalled by mistake.
fn collect(record: Option<ProcessRecord>, tag: &str) -> BTreeMap<u32, u64> {
    let table = procfs::all();
    let mut found: BTreeMap<u32, u64> = BTreeMap::new();
    let me = std::process::id();
    if let Some(r) = record {
        for s in table.iter().filter(|s| s.pid == r.pid || s.pgrp == r.pid) {
            found.insert(s.pid, s.start_time);
        }
    }
    for s in &table {
        if s.pid != me && s.is_alive() && procfs::has_env(s.pid, TAG_VARIABLE, tag) && procfs::same_namespaces(s.pid) {
            found.insert(s.pid, s.start_time);
        }
    }
    // Descendants, to a fixed point (children that left the group with setsid are still ours).
    loop {
        let before = found.len();
        for s in &table {
            if found.contains_key(&s.ppid) && s.pid != me {
                found.insert(s.pid, s.start_time);
            }
        }
        if found.len() == before {
            break;
        }
    }
    found.retain(|pid, _| *pid != me);
    found
}

/// The processes of `targets` that are still alive (same start time, not a zombie).
/// Zombies that are our own children are reaped on the way.
fn survivors(targets: &BTreeMap<u32, u64>) -> Vec<u32> {
    targets
        .iter()
        .filter(|(pid, start)| {
            let _ = waitpid(Pid::from_raw(**pid as i32), Some(WaitPidFlag::WNOHANG));
            procfs::stat(**pid).is_some_and(|s| s.is_alive() && s.start_time == **start)
        })
        .map(|(pid, _)| *pid)
        .collect()
}

fn signal_all(record: Option<ProcessRecord>, targets: &BTreeMap<u32, u64>, sig: Signal) {
    if let Some(r) = record {
        let _ = killpg(Pid::from_raw(r.pid as i32), sig);
    }
    for pid in targets.keys() {
        let _ = kill(Pid::from_raw(*pid as i32), sig);
    }
}

/// Wait until nothing of `targets` is alive or `until` passes; true when all are gone.
fn wait_gone(targets: &BTreeMap<u32, u64>, until: Instant) -> bool {
    loop {
        if survivors(targets).is_empty() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        sleep(POLL.min(until.saturating_duration_since(Instant::now())));
    }
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

static CHECK_SEQ: AtomicU32 = AtomicU32::new(0);

impl Processes for LinuxProcesses {
    fn spawn(&self, spec: &SpawnSpec) -> Result<ProcessRecord, BackendError> {
        let who = spec.user.as_deref().map(identity).transpose()?;
        if let Some(dir) = spec.pidfile.parent() {
            crate::files::ensure_dir(dir, 0o755)
                .map_err(|e| BackendError::Failed(format!("cannot create {}: {e}", dir.display())))?;
        }
        let (out, err) = match &spec.logfile {
            Some(path) => {
                let f = open_log(path, who.as_ref())?;
                let dup = f.try_clone().map_err(|e| BackendError::Failed(format!("log file: {e}")))?;
                (Stdio::from(f), Stdio::from(dup))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let mut cmd = Command::new(&spec.program);
        cmd.arg0(spec.argv.first().map(String::as_str).unwrap_or_default())
            .args(spec.argv.iter().skip(1))
            .env_clear()
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if let Some(w) = &who {
            let name = spec.user.as_deref().unwrap_or_default();
            cmd.env("HOME", &w.home).env("USER", name).env("LOGNAME", name).env("SHELL", &w.shell);
        }
        cmd.envs(spec.env.iter().map(|(k, v)| (k, v))).env(TAG_VARIABLE, &spec.tag);
        if let Some(dir) = &spec.workdir {
            cmd.current_dir(dir);
        }
        let ids = who.map(|w| (w.uid, w.gid, w.groups));
        // SAFETY: the closure only makes async-signal-safe system calls (setsid, setgroups,
        // setgid, setuid) on data prepared before fork; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::setsid()?;
                if let Some((uid, gid, groups)) = &ids {
                    nix::unistd::setgroups(groups)?;
                    nix::unistd::setgid(*gid)?;
                    nix::unistd::setuid(*uid)?;
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| {
            let what = format!("cannot start {}: {e}", spec.program.display());
            match e.kind() {
                ErrorKind::NotFound => BackendError::NotFound(what),
                ErrorKind::PermissionDenied => BackendError::Permission(what),
                _ => BackendError::Failed(what),
            }
        })?;
        let pid = child.id();
        let record = ProcessRecord { pid, start_time: procfs::stat(pid).map(|s| s.start_time).unwrap_or(0) };
        if let Err(e) = crate::files::write_atomic(&spec.pidfile, record.to_file_text(&spec.tag).as_bytes(), 0o644) {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid as i32), None);
            return Err(BackendError::Failed(format!("cannot write pidfile {}: {e}", spec.pidfile.display())));
        }
        Ok(record)
    }

    fn state(&self, pidfile: &Path, tag: &str) -> ProcessState {
        let record = match ProcessRecord::read(pidfile, tag) {
            Ok(r) => r,
            Err(state) => return state,
        };
        // The start time is the proof: a reused PID (or a record whose start time could not
        // be read) is never ours.
        match procfs::stat(record.pid) {
            Some(s) if s.is_alive() && record.start_time != 0 && s.start_time == record.start_time => {
                ProcessState::Running(record)
            }
            _ => ProcessState::Gone(record),
        }
    }

    fn exit_status(&self, record: ProcessRecord) -> Option<String> {
        match waitpid(Pid::from_raw(record.pid as i32), Some(WaitPidFlag::WNOHANG)).ok()? {
            WaitStatus::Exited(_, code) => Some(format!("exited with status {code}")),
            WaitStatus::Signaled(_, sig, _) => Some(format!("was killed by {sig}")),
            _ => None,
        }
    }

    fn stop(
        &self,
        pidfile: &Path,
        tag: &str,
        signal: StopSignal,
        grace: Duration,
        deadline: Instant,
    ) -> Result<StopReport, BackendError> {
        let state = self.state(pidfile, tag);
        let record = match state {
            ProcessState::Running(r) => Some(r),
            _ => None,
        };
        let targets = collect(record, tag);
        let mut report = StopReport { found: targets.len(), forced: false };
        if !targets.is_empty() {
            // Keep a moment after the graceful wait for SIGKILL and the final wait.
            let kill_reserve = Duration::from_millis(500);
            let graceful_until = (Instant::now() + grace).min(deadline.checked_sub(kill_reserve).unwrap_or(deadline));
            signal_all(record, &targets, signal_of(signal));
            if !wait_gone(&targets, graceful_until) {
                report.forced = true;
                // The tree may have grown while it was shutting down: look again.
                let mut all = targets.clone();
                all.extend(collect(record, tag));
                let left = survivors(&all);
                log::warn!("{} process(es) still running after {signal:?}; sending SIGKILL", left.len());
                signal_all(record, &all, Signal::SIGKILL);
                if !wait_gone(&all, deadline) {
                    let left = survivors(&all);
                    return Err(BackendError::Failed(format!(
                        "process(es) {left:?} still present after SIGKILL (uninterruptible sleep?)"
                    )));
                }
            }
        }
        remove_our_record(pidfile, &state)?;
        Ok(report)
    }

    fn run_check(&self, argv: &[String], timeout: Duration) -> Result<CheckOutcome, BackendError> {
        let mut out = unlinked_temp()?;
        let status = run_bounded(argv, timeout, &out, &out)?;
        let mut text = String::new();
        let _ = out.seek(SeekFrom::Start(0));
        let _ = out.take(64 * 1024).read_to_string(&mut text);
        Ok(CheckOutcome { success: status.0, status: status.1, last_line: last_line(&text) })
    }

    fn run_output(&self, argv: &[String], timeout: Duration, limit: usize) -> Result<CommandOutput, BackendError> {
        let (mut out, mut err) = (unlinked_temp()?, unlinked_temp()?);
        let status = run_bounded(argv, timeout, &out, &err)?;
        let mut bytes = Vec::new();
        let _ = out.seek(SeekFrom::Start(0));
        let _ = out.take(limit as u64).read_to_end(&mut bytes);
        let mut text = String::new();
        let _ = err.seek(SeekFrom::Start(0));
        let _ = err.take(64 * 1024).read_to_string(&mut text);
        Ok(CommandOutput {
            outcome: CheckOutcome { success: status.0, status: status.1, last_line: last_line(&text) },
            stdout: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    fn find_program(&self, program: &str, path: &str) -> Option<PathBuf> {
        if program.is_empty() {
            return None;
        }
        if program.contains('/') {
            let p = PathBuf::from(program);
            return is_executable(&p).then_some(p);
        }
        path.split(':').filter(|d| !d.is_empty()).map(|d| Path::new(d).join(program)).find(|p| is_executable(p))
    }

    fn user_exists(&self, user: &str) -> bool {
        User::from_name(user).ok().flatten().is_some()
    }
}
