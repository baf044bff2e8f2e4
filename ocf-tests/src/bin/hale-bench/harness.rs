//! Running agents with execd's environment, timed, under strace and under GNU time; reaping,
//! the watchdog and the interrupt signals.

use crate::agents::{Agent, Op};
use crate::stats::Sample;
use crate::{Context, Result, INTERRUPTED, OP_TIMEOUT, TIME_FORMAT, WRAPPER_START_FAILED, WRAPPER_STOP_FAILED};
use hale_ocf_tests::strace::{count_calls, split_pid, Counts, STRACE_FILTER};
use hale_ocf_tests::{EXECD_ENV, EXECD_PATH};
use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::signal::{self, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

/// The measuring tools the bench runs agents under.
pub(crate) struct Tools {
    pub(crate) strace: PathBuf,
    pub(crate) time: PathBuf,
}

/// Spawns agents with execd's environment, waits for them and measures them.
pub(crate) struct Harness {
    pub(crate) scratch: PathBuf,
    pub(crate) tools: Tools,
    /// The working directory execd gives agents, if it exists here.
    pub(crate) cwd: PathBuf,
    pub(crate) watchdog: Option<Watchdog>,
}

impl Harness {
    pub(crate) fn new(scratch: PathBuf, tools: Tools) -> Harness {
        let execd_cwd = Path::new("/var/lib/pacemaker/cores");
        Harness { scratch, tools, cwd: if execd_cwd.is_dir() { execd_cwd.into() } else { "/".into() }, watchdog: None }
    }

    /// The environment pacemaker-execd gives every agent: the suite's [`EXECD_ENV`] (the
    /// same as [`hale_ocf_tests::Invocation`]'s), execd's log settings, and the instance.
    pub(crate) fn base_env(&self, agent: &Agent) -> Vec<(String, String)> {
        let logging = [("HA_LOGFACILITY", "daemon"), ("HA_logfacility", "daemon")];
        let mut env: Vec<(String, String)> =
            EXECD_ENV.iter().chain(&logging).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        env.push(("HA_LOGFILE".into(), self.scratch.join("ha.log").to_string_lossy().into()));
        env.push(("OCF_RESOURCE_INSTANCE".into(), agent.instance()));
        env.push(("OCF_RESOURCE_TYPE".into(), agent.kind.into()));
        env.push(("OCF_RESOURCE_PROVIDER".into(), agent.provider.into()));
        env
    }

    /// The full environment of `op` on `agent`.
    pub(crate) fn op_env(&self, agent: &Agent, op: Op) -> Vec<(String, String)> {
        let mut env = self.base_env(agent);
        if op.takes_params() {
            env.extend(agent.params.iter().map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.clone())));
        }
        env.extend(op.meta_env().iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }

    /// A command with exactly `env`, stdin on /dev/null and stdout/stderr in scratch files
    /// named `log` (kept to explain a failure), in a process group of its own so that the
    /// watchdog can kill the whole tree.
    pub(crate) fn command(&self, program: &Path, env: &[(String, String)], log: &str) -> Result<Command> {
        let out = self.scratch.join(format!("{log}.out"));
        let err = self.scratch.join(format!("{log}.err"));
        let stdout = File::create(&out).context(|| format!("creating {}", out.display()))?;
        let stderr = File::create(&err).context(|| format!("creating {}", err.display()))?;
        let mut command = Command::new(program);
        command
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        Ok(command)
    }

    /// Runs `op` once, timed, and checks its exit code.
    pub(crate) fn run_op(&self, agent: &Agent, op: Op) -> Result<Sample> {
        let log = format!("{}.{}", agent.instance(), op.action());
        let mut command = self.command(&agent.path, &self.op_env(agent, op), &log)?;
        command.arg(op.action());
        let what = format!("{} {}", agent.label(), op.action());
        let (rc, sample) = self.spawn_and_wait(command, &what, &log)?;
        self.expect_rc(&what, rc, op.expected_rc(), &log)?;
        Ok(sample)
    }

    /// Runs `op` once under strace and counts its calls.
    pub(crate) fn trace_op(&self, agent: &Agent, op: Op) -> Result<Counts> {
        let log = format!("{}.{}.strace", agent.instance(), op.action());
        let trace = self.scratch.join(format!("{log}.trace"));
        let mut command = self.strace_command(&trace, &self.op_env(agent, op), &log)?;
        command.arg(&agent.path).arg(op.action());
        let what = format!("{} {} (under strace)", agent.label(), op.action());
        let (rc, _) = self.spawn_and_wait(command, &what, &log)?;
        self.expect_rc(&what, rc, op.expected_rc(), &log)?;
        Ok(count_calls(&read_trace(&trace)?, None))
    }

    /// Runs start then stop under one strace. They cannot be traced separately: `strace -f`
    /// follows the service that start leaves behind and only exits once stop has killed it.
    /// A shell runs the two (each with its own CRM_meta_name); its own exec and forks are
    /// not counted (lines of the first pid in the trace).
    pub(crate) fn trace_start_stop(&self, agent: &Agent) -> Result<Counts> {
        let log = format!("{}.start+stop.strace", agent.instance());
        let trace = self.scratch.join(format!("{log}.trace"));
        let script = format!(
            "OCF_RESKEY_CRM_meta_name=start \"$0\" start || exit {WRAPPER_START_FAILED}; \
             OCF_RESKEY_CRM_meta_name=stop \"$0\" stop || exit {WRAPPER_STOP_FAILED}"
        );
        let mut command = self.strace_command(&trace, &self.op_env(agent, Op::Start), &log)?;
        command.arg("/bin/sh").arg("-c").arg(script).arg(&agent.path);
        let what = format!("{} start+stop (under strace)", agent.label());
        let (rc, _) = self.spawn_and_wait(command, &what, &log)?;
        let what = match rc {
            WRAPPER_START_FAILED => format!("{} start (under strace)", agent.label()),
            WRAPPER_STOP_FAILED => format!("{} stop (under strace)", agent.label()),
            _ => what,
        };
        self.expect_rc(&what, rc, 0, &log)?;
        let trace = read_trace(&trace)?;
        let wrapper = trace.lines().next().map(|line| split_pid(line).0);
        Ok(count_calls(&trace, wrapper))
    }

    /// Runs `op` once under GNU time and returns the peak RSS of its process tree, in KiB.
    pub(crate) fn peak_rss(&self, agent: &Agent, op: Op) -> Result<u64> {
        let log = format!("{}.{}.time", agent.instance(), op.action());
        let report = self.scratch.join(format!("{log}.rss"));
        let mut command = self.time_command(&report, &self.op_env(agent, op), &log)?;
        command.arg(&agent.path).arg(op.action());
        let what = format!("{} {} (under time)", agent.label(), op.action());
        let (rc, _) = self.spawn_and_wait(command, &what, &log)?;
        self.expect_rc(&what, rc, op.expected_rc(), &log)?;
        read_peak_rss(&report)
    }

    /// `time -f %M -o REPORT`, ready for the measured program's arguments.
    pub(crate) fn time_command(&self, report: &Path, env: &[(String, String)], log: &str) -> Result<Command> {
        let mut command = self.command(&self.tools.time, env, log)?;
        command.args(["-f", TIME_FORMAT, "-o"]).arg(report);
        Ok(command)
    }

    /// `strace -f -qq -e trace=... -o TRACE --`, ready for the traced program's arguments.
    pub(crate) fn strace_command(&self, trace: &Path, env: &[(String, String)], log: &str) -> Result<Command> {
        let mut command = self.command(&self.tools.strace, env, log)?;
        command.args(["-f", "-qq", "-e", STRACE_FILTER, "-o"]).arg(trace).arg("--");
        Ok(command)
    }

    /// One sample of the harness's own floor: `/bin/true`, started and measured like an agent.
    pub(crate) fn floor_once(&self) -> Result<(Sample, u64)> {
        let (program, log) = ("/bin/true", "true");
        let command = self.command(Path::new(program), &[], log)?;
        let (rc, sample) = self.spawn_and_wait(command, program, log)?;
        self.expect_rc(program, rc, 0, log)?;

        let report = self.scratch.join("true.rss");
        let mut command = self.time_command(&report, &[], log)?;
        command.arg(program);
        let (rc, _) = self.spawn_and_wait(command, program, log)?;
        self.expect_rc(program, rc, 0, log)?;
        Ok((sample, read_peak_rss(&report)?))
    }

    /// Spawns `command` and waits for it. Wall time is an Instant around spawn and wait.
    /// CPU time is the growth of getrusage(RUSAGE_CHILDREN), which holds the user+sys time of
    /// every reaped child and of the descendants they reaped, minus the orphans (services)
    /// reaped meanwhile. Returns the exit code (128+signal if killed by a signal).
    pub(crate) fn spawn_and_wait(&self, mut command: Command, what: &str, log: &str) -> Result<(i32, Sample)> {
        let before = children_cpu()?;
        let start = Instant::now();
        let child = command.spawn().context(|| format!("starting {what}"))?;
        let pid = Pid::from_raw(child.id() as i32);
        if let Some(watchdog) = &self.watchdog {
            watchdog.arm(pid, OP_TIMEOUT);
        }
        let reaped = reap_child(pid);
        let wall = start.elapsed();
        let timed_out = self.watchdog.as_ref().is_some_and(Watchdog::disarm);
        let reaped = reaped.context(|| format!("waiting for {what}"))?;
        if timed_out {
            return Err(format!("{what} did not finish within {OP_TIMEOUT:?}: killed{}", self.output_tail(log)));
        }
        let cpu = (children_cpu()? - before).saturating_sub(reaped.orphans_cpu);
        Ok((exit_code(reaped.status), Sample { wall, cpu }))
    }

    /// Fails with the agent's output if `rc` is not `expected`.
    pub(crate) fn expect_rc(&self, what: &str, rc: i32, expected: i32, log: &str) -> Result<()> {
        if rc == expected {
            return Ok(());
        }
        Err(format!("{what} exited with {rc}, expected {expected}{}", self.output_tail(log)))
    }

    /// The last lines of what the run named `log` wrote, to show with an error.
    pub(crate) fn output_tail(&self, log: &str) -> String {
        let mut tail = String::new();
        for stream in ["err", "out"] {
            let path = self.scratch.join(format!("{log}.{stream}"));
            let text = fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                tail.push_str(&format!("\n  std{stream}:\n    "));
                tail.push_str(&lines[lines.len().saturating_sub(15)..].join("\n    "));
            }
        }
        tail
    }
}

/// Reads a trace written by strace.
pub(crate) fn read_trace(path: &Path) -> Result<String> {
    fs::read_to_string(path).context(|| format!("reading strace output {}", path.display()))
}

/// Reads the peak RSS (KiB) that `time -f %M -o FILE` wrote: the last line, after a
/// "Command exited with non-zero status" line if the agent returned non-zero.
pub(crate) fn read_peak_rss(path: &Path) -> Result<u64> {
    let text = fs::read_to_string(path).context(|| format!("reading {}", path.display()))?;
    let last = text.lines().last().unwrap_or_default().trim();
    last.parse().context(|| format!("{}: not a size in KiB: {last:?}", path.display()))
}

/// What reaping an agent yielded.
pub(crate) struct Reaped {
    pub(crate) status: WaitStatus,
    /// CPU time of orphaned services reaped while waiting (not the agent's work).
    pub(crate) orphans_cpu: Duration,
}

/// Waits until `pid` is reaped, reaping orphans reparented to us (we are a subreaper) on the
/// way, so that they never linger as zombies; what each orphan adds to RUSAGE_CHILDREN is
/// noted. On SIGINT/SIGTERM/SIGHUP, kills the agent's process group first, so that cleanup
/// can begin.
pub(crate) fn reap_child(pid: Pid) -> Result<Reaped> {
    let mut orphans_cpu = Duration::ZERO;
    loop {
        let before = children_cpu()?;
        match waitpid(None, None) {
            Ok(status) if status.pid() == Some(pid) => return Ok(Reaped { status, orphans_cpu }),
            Ok(_) => orphans_cpu += children_cpu()? - before,
            Err(Errno::EINTR) if INTERRUPTED.load(Ordering::SeqCst) => {
                let _ = signal::killpg(pid, Signal::SIGKILL);
                let _ = waitpid(pid, None);
                return Err("interrupted".into());
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("waitpid: {e}")),
        }
    }
}

/// user+sys time of all reaped children so far.
pub(crate) fn children_cpu() -> Result<Duration> {
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).context(|| "getrusage".into())?;
    Ok(timeval(usage.user_time()) + timeval(usage.system_time()))
}

pub(crate) fn timeval(tv: nix::sys::time::TimeVal) -> Duration {
    Duration::from_micros(tv.tv_sec() as u64 * 1_000_000 + tv.tv_usec() as u64)
}

/// The shell's convention: the exit code, or 128+signal.
pub(crate) fn exit_code(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, signal, _) => 128 + signal as i32,
        _ => -1,
    }
}

/// Last resort of cleanup: SIGKILL every process still reparented to us (a service that stop
/// did not end), by pid, then reap them. Returns what it killed.
pub(crate) fn kill_orphans() -> Vec<String> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return vec!["cannot read /proc to look for leftover processes".into()];
    };
    let me = std::process::id();
    let mut killed = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else {
            continue;
        };
        let stat = fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses, so split at the last ")".
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let (state, ppid) = (fields.next(), fields.next().and_then(|p| p.parse::<u32>().ok()));
        if ppid == Some(me) {
            let _ = signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            let comm = head.split_once('(').map_or("?", |(_, comm)| comm);
            if state != Some("Z") {
                killed.push(format!("killed leftover process {pid} ({comm})"));
            }
            let _ = waitpid(Pid::from_raw(pid), None);
        }
    }
    killed
}

/// Kills the agent's process group when it overruns the operation timeout, as execd does, so
/// that a hung agent aborts the bench instead of blocking it forever. A thread that wakes
/// every 100 ms: arming costs only a mutex, nothing is signalled on the timed path.
pub(crate) struct Watchdog {
    pub(crate) state: Arc<Mutex<WatchState>>,
}

#[derive(Default)]
pub(crate) struct WatchState {
    pub(crate) target: Option<(Pid, Instant)>,
    pub(crate) fired: bool,
}

impl Watchdog {
    /// Starts the thread with the interrupt signals blocked, so that they reach the main
    /// thread and interrupt its waitpid.
    pub(crate) fn start() -> Result<Watchdog> {
        let state = Arc::new(Mutex::new(WatchState::default()));
        let signals = interrupt_signals();
        let mut old = SigSet::empty();
        signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&signals), Some(&mut old))
            .context(|| "blocking signals".into())?;
        let shared = Arc::clone(&state);
        let spawned = thread::Builder::new().name("watchdog".into()).spawn(move || Watchdog::watch(&shared));
        signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None)
            .context(|| "restoring the signal mask".into())?;
        spawned.context(|| "starting the watchdog thread".into())?;
        Ok(Watchdog { state })
    }

    pub(crate) fn watch(state: &Mutex<WatchState>) {
        loop {
            thread::sleep(Duration::from_millis(100));
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((pgid, deadline)) = state.target {
                if Instant::now() >= deadline {
                    let _ = signal::killpg(pgid, Signal::SIGKILL);
                    state.target = None;
                    state.fired = true;
                }
            }
        }
    }

    pub(crate) fn arm(&self, pgid: Pid, timeout: Duration) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *state = WatchState { target: Some((pgid, Instant::now() + timeout)), fired: false };
    }

    /// Disarms; true if the timeout had fired.
    pub(crate) fn disarm(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *state).fired
    }
}

pub(crate) fn interrupt_signals() -> SigSet {
    let mut set = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(signal);
    }
    set
}

extern "C" fn on_interrupt(_: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Catches SIGINT/SIGTERM/SIGHUP without SA_RESTART (see [`INTERRUPTED`]).
pub(crate) fn install_interrupt_handlers() -> Result<()> {
    let action = SigAction::new(SigHandler::Handler(on_interrupt), signal::SaFlags::empty(), SigSet::empty());
    for signal in interrupt_signals().iter() {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { signal::sigaction(signal, &action) }.context(|| format!("sigaction {signal}"))?;
    }
    Ok(())
}

pub(crate) fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

/// `program` in the agents' PATH.
pub(crate) fn find_in_path(program: &str) -> Option<PathBuf> {
    EXECD_PATH.split(':').map(|dir| Path::new(dir).join(program)).find(|path| path.is_file())
}
