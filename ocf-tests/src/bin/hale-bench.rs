//! `hale-bench`: what one operation of `ocf:hale:daemon` costs next to the stock shell agents.
//!
//! ```text
//! cargo run --release -p hale-ocf-tests --bin hale-bench -- [--runs N] [--agent-dir DIR]
//! ```
//!
//! Run as root. Each agent is run the way pacemaker-execd runs it: a fresh process with the
//! action as its only argument, a cleared environment holding what execd passes, stdin on
//! /dev/null. For every agent and measured action it prints, in one table, the medians over N
//! runs of wall time, CPU time and peak RSS, plus the execve and fork counts of one extra run
//! under `strace -f`. Every run's exit code is checked: timing a failing agent is worthless, so
//! a wrong code aborts the benchmark. Whatever happens, started services are stopped and the
//! scratch directory is removed.
//!
//! Two details keep the numbers honest:
//! - The bench is a child subreaper, so services orphaned by `start` are reparented to it and
//!   reaped at once. The container's PID 1 reaps lazily, and `kill -0` succeeds on a zombie:
//!   without this, heartbeat:anything's stop would wait on a dead service.
//! - Agents are started with fork(), like execd, not posix_spawn's vfork: at exec, Linux charges
//!   the parent's memory to a vfork child's `ru_maxrss`. A fork child still inherits the bench's
//!   anonymous pages; the header prints that floor (`/bin/true` measured the same way).

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Display;
use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::sys::prctl;
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::signal::{self, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::WaitStatus;
use nix::unistd::{self, Pid};

const DEFAULT_RUNS: usize = 20;
const DEFAULT_AGENT_DIR: &str = "/usr/lib/ocf/resource.d";
/// The PATH pacemaker-execd gives agents.
const AGENT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The operation timeout we announce (OCF_RESKEY_CRM_meta_timeout) and enforce.
const OP_TIMEOUT: Duration = Duration::from_secs(20);
/// The recurring monitor's interval, in ms as Pacemaker passes it.
const MONITOR_INTERVAL_MS: &str = "10000";
/// The long-running service of hale:daemon and heartbeat:anything.
const SERVICE_BIN: &str = "/bin/sleep";
const SERVICE_ARGS: &str = "100000";
/// The system calls whose successful calls the strace run counts.
const STRACE_FILTER: &str = "trace=execve,clone,clone3,fork,vfork";
/// Exit codes of the start+stop wrapper script when start or stop fails.
const WRAPPER_START_FAILED: i32 = 101;
const WRAPPER_STOP_FAILED: i32 = 102;

/// Set by SIGINT/SIGTERM/SIGHUP. The handler has no SA_RESTART, so a blocking wait4 returns
/// EINTR and the bench can stop the agent and clean up instead of dying with services running.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

type Result<T, E = String> = std::result::Result<T, E>;

/// Adds what was being done to an error, so that a failure names its cause.
trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| format!("{}: {e}", what()))
    }
}

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args_os().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hale-bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hale-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: hale-bench [--runs N] [--agent-dir DIR]   (run as root)";

/// Command-line options.
struct Options {
    runs: usize,
    agent_dir: PathBuf,
}

impl Options {
    /// Parses the arguments; `None` means help was printed.
    fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Option<Self>> {
        let mut options = Options {
            runs: DEFAULT_RUNS,
            agent_dir: PathBuf::from(DEFAULT_AGENT_DIR),
        };
        while let Some(arg) = args.next() {
            match arg.to_str() {
                Some("--runs") => {
                    let value = args.next().ok_or("--runs needs a value")?;
                    options.runs = value
                        .to_str()
                        .and_then(|v| v.parse().ok())
                        .filter(|&n| n > 0)
                        .ok_or_else(|| format!("--runs: not a positive number: {value:?}"))?;
                }
                Some("--agent-dir") => {
                    options.agent_dir = args.next().ok_or("--agent-dir needs a value")?.into();
                }
                Some("-h" | "--help") => {
                    println!("{USAGE}");
                    return Ok(None);
                }
                _ => return Err(format!("unknown argument {arg:?}")),
            }
        }
        Ok(Some(options))
    }
}

/// The whole benchmark: set up, measure every agent, print the table. Cleanup runs when the
/// [`Lab`] is dropped, on success, error or panic alike.
fn run(options: &Options) -> Result<()> {
    if !unistd::geteuid().is_root() {
        return Err(
            "run as root: agents start services and write pidfiles like under pacemaker".into(),
        );
    }
    let strace =
        find_in_path("strace").ok_or("strace not found in PATH (apt-get install strace)")?;
    let machine = Machine::describe();
    install_interrupt_handlers()?;
    prctl::set_child_subreaper(true).context(|| "prctl(PR_SET_CHILD_SUBREAPER)".into())?;

    let mut lab = Lab::new(&options.agent_dir, strace)?;
    let floor = lab.harness.floor(options.runs)?;
    let mut rows = Vec::new();
    for agent in 0..lab.agents.len() {
        rows.extend(lab.bench_agent(agent, options.runs)?);
    }
    lab.cleanup();
    print_report(&machine, options.runs, &floor, &rows);
    Ok(())
}

/// The four agents under test, with the parameters that make them run `sleep 100000` (or
/// keep a state file) inside the scratch directory.
fn agents(agent_dir: &Path, scratch: &Path) -> Result<Vec<Agent>> {
    let in_scratch = |name: &str| scratch.join(name).to_string_lossy().into_owned();
    let list = vec![
        Agent::new(
            agent_dir,
            "hale",
            "daemon",
            [
                ("command", format!("{SERVICE_BIN} {SERVICE_ARGS}")),
                ("pidfile", in_scratch("daemon.pid")),
            ],
        ),
        Agent::new(
            agent_dir,
            "heartbeat",
            "anything",
            [
                ("binfile", SERVICE_BIN.to_owned()),
                ("cmdline_options", SERVICE_ARGS.to_owned()),
                ("pidfile", in_scratch("anything.pid")),
            ],
        ),
        Agent::new(
            agent_dir,
            "heartbeat",
            "Dummy",
            [("state", in_scratch("heartbeat-Dummy.state"))],
        ),
        Agent::new(
            agent_dir,
            "pacemaker",
            "Dummy",
            [("state", in_scratch("pacemaker-Dummy.state"))],
        ),
    ];
    for agent in &list {
        if !agent.path.is_file() {
            return Err(format!(
                "{} is not installed ({} missing)",
                agent.label(),
                agent.path.display()
            ));
        }
    }
    Ok(list)
}

/// One resource agent and the instance parameters we give it.
struct Agent {
    provider: &'static str,
    kind: &'static str,
    path: PathBuf,
    params: Vec<(&'static str, String)>,
}

impl Agent {
    fn new<const N: usize>(
        agent_dir: &Path,
        provider: &'static str,
        kind: &'static str,
        params: [(&'static str, String); N],
    ) -> Self {
        Agent {
            provider,
            kind,
            path: agent_dir.join(provider).join(kind),
            params: params.into(),
        }
    }

    /// `provider:type`, as in `ocf:provider:type`.
    fn label(&self) -> String {
        format!("{}:{}", self.provider, self.kind)
    }

    /// The resource name Pacemaker would pass (OCF_RESOURCE_INSTANCE).
    fn instance(&self) -> String {
        format!("bench-{}-{}", self.provider, self.kind.to_lowercase())
    }
}

/// One agent invocation, as Pacemaker makes it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Start,
    Stop,
    /// A recurring monitor of depth 0 (no OCF_CHECK_LEVEL, as for a plain `op monitor`).
    Monitor,
    /// A probe: a monitor with no interval and no CRM_meta_name, as execd runs it on a
    /// resource it does not know to be running.
    Probe,
    MetaData,
}

impl Op {
    /// The action argument.
    fn action(self) -> &'static str {
        match self {
            Op::Start => "start",
            Op::Stop => "stop",
            Op::Monitor | Op::Probe => "monitor",
            Op::MetaData => "meta-data",
        }
    }

    /// The only exit code accepted: the probes run on a stopped resource (7, not running).
    fn expected_rc(self) -> i32 {
        match self {
            Op::Probe => 7,
            _ => 0,
        }
    }

    /// The operation's own `CRM_meta` variables.
    fn meta_env(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Op::Start => &[("OCF_RESKEY_CRM_meta_name", "start")],
            Op::Stop => &[("OCF_RESKEY_CRM_meta_name", "stop")],
            Op::Monitor => &[
                ("OCF_RESKEY_CRM_meta_name", "monitor"),
                ("OCF_RESKEY_CRM_meta_interval", MONITOR_INTERVAL_MS),
            ],
            Op::Probe | Op::MetaData => &[],
        }
    }

    /// Whether execd passes the instance parameters (it fetches meta-data without them).
    fn takes_params(self) -> bool {
        self != Op::MetaData
    }
}

/// A row of the table: what is timed, as one or more operations run back to back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Measure {
    MonitorRunning,
    StartStop,
    MetaData,
    MonitorStopped,
}

impl Measure {
    /// Table order.
    const ALL: [Measure; 4] = [
        Measure::MonitorRunning,
        Measure::StartStop,
        Measure::MetaData,
        Measure::MonitorStopped,
    ];

    fn label(self) -> &'static str {
        match self {
            Measure::MonitorRunning => "monitor",
            Measure::StartStop => "start+stop",
            Measure::MetaData => "meta-data",
            Measure::MonitorStopped => "monitor (stopped)",
        }
    }

    fn ops(self) -> &'static [Op] {
        match self {
            Measure::MonitorRunning => &[Op::Monitor],
            Measure::StartStop => &[Op::Start, Op::Stop],
            Measure::MetaData => &[Op::MetaData],
            Measure::MonitorStopped => &[Op::Probe],
        }
    }
}

/// Cost of one run (or of several runs added up).
#[derive(Clone, Copy, Default)]
struct Sample {
    wall: Duration,
    cpu: Duration,
    max_rss_kib: i64,
}

impl Sample {
    /// Two operations run one after the other: times add up, the peak is the larger one.
    fn then(self, next: Sample) -> Sample {
        Sample {
            wall: self.wall + next.wall,
            cpu: self.cpu + next.cpu,
            max_rss_kib: self.max_rss_kib.max(next.max_rss_kib),
        }
    }
}

/// The medians of N samples.
struct Medians {
    wall_ms: f64,
    cpu_ms: f64,
    max_rss_mib: f64,
}

impl Medians {
    fn of(samples: &[Sample]) -> Medians {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Medians {
            wall_ms: median(samples.iter().map(|s| ms(s.wall)).collect()),
            cpu_ms: median(samples.iter().map(|s| ms(s.cpu)).collect()),
            max_rss_mib: median(
                samples
                    .iter()
                    .map(|s| s.max_rss_kib as f64 / 1024.0)
                    .collect(),
            ),
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Successful process-creating calls seen by strace in one run.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
struct Counts {
    /// execve/execveat that returned 0, the agent's own exec included.
    execve: u32,
    /// fork, vfork, and clone/clone3 without CLONE_THREAD.
    forks: u32,
    /// clone/clone3 with CLONE_THREAD: threads, not processes.
    threads: u32,
}

impl Counts {
    /// Counts `call` (a complete strace line without its pid) if it is a successful one.
    fn add(&mut self, call: &str) {
        let name = call.split('(').next().unwrap_or_default();
        let result = call
            .rsplit_once(" = ")
            .and_then(|(_, result)| result.split_whitespace().next())
            .and_then(|value| value.parse::<i64>().ok());
        if result.is_none_or(|value| value < 0) {
            return;
        }
        match name {
            "execve" | "execveat" => self.execve += 1,
            "fork" | "vfork" => self.forks += 1,
            "clone" | "clone3" if call.contains("CLONE_THREAD") => self.threads += 1,
            "clone" | "clone3" => self.forks += 1,
            _ => {}
        }
    }
}

/// Counts the calls in an `strace -f -o FILE` trace, skipping the lines of `skip_pid` (a
/// wrapper shell). A call interrupted by another process's output is printed as
/// `... <unfinished ...>` then `<... name resumed> ...`; the halves are joined again.
fn count_calls(trace: &str, skip_pid: Option<&str>) -> Counts {
    let mut counts = Counts::default();
    let mut unfinished: HashMap<&str, &str> = HashMap::new();
    for line in trace.lines() {
        let (pid, call) = split_pid(line);
        if skip_pid == Some(pid) {
            continue;
        }
        if let Some(head) = call.strip_suffix("<unfinished ...>") {
            unfinished.insert(pid, head);
        } else if let Some(resumed) = call.strip_prefix("<... ") {
            let tail = resumed
                .split_once(" resumed>")
                .map_or(resumed, |(_, tail)| tail);
            let head = unfinished.remove(pid).unwrap_or_default();
            counts.add(&format!("{head}{tail}"));
        } else {
            counts.add(call);
        }
    }
    counts
}

/// Splits strace's `PID ` prefix off a line (absent when only one process was traced).
fn split_pid(line: &str) -> (&str, &str) {
    match line.split_once(' ') {
        Some((pid, rest)) if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) => {
            (pid, rest.trim_start())
        }
        _ => ("", line),
    }
}

/// One line of the table.
struct Row {
    measure: Measure,
    agent: String,
    medians: Medians,
    counts: Counts,
}

/// The agents, the harness that runs them, and which ones may have a service running: the
/// state that cleanup needs.
struct Lab {
    harness: Harness,
    agents: Vec<Agent>,
    /// Agents whose service may be up: set before start, cleared after a successful stop.
    maybe_running: Vec<bool>,
    cleaned_up: bool,
}

impl Lab {
    fn new(agent_dir: &Path, strace: PathBuf) -> Result<Lab> {
        let scratch = PathBuf::from(format!("/tmp/hale-bench-{}", std::process::id()));
        fs::create_dir(&scratch).context(|| format!("creating {}", scratch.display()))?;
        // From here on, Drop removes the scratch directory whatever happens.
        let mut lab = Lab {
            harness: Harness::new(scratch, strace),
            agents: Vec::new(),
            maybe_running: Vec::new(),
            cleaned_up: false,
        };
        lab.agents = agents(agent_dir, &lab.harness.scratch)?;
        lab.maybe_running = vec![false; lab.agents.len()];
        lab.harness.watchdog = Some(Watchdog::start()?);
        Ok(lab)
    }

    /// All rows of one agent. Stopped-state measures come first; then the service is started
    /// once (untimed) for the running monitor, and stopped again.
    fn bench_agent(&mut self, agent: usize, runs: usize) -> Result<Vec<Row>> {
        let mut rows = Vec::new();
        for measure in [
            Measure::MonitorStopped,
            Measure::MetaData,
            Measure::StartStop,
        ] {
            rows.push(self.measure(agent, measure, runs)?);
        }
        self.op(agent, Op::Start)?;
        rows.push(self.measure(agent, Measure::MonitorRunning, runs)?);
        self.op(agent, Op::Stop)?;
        Ok(rows)
    }

    /// One row: a traced run first (it also warms the caches), then `runs` timed runs.
    fn measure(&mut self, agent: usize, measure: Measure, runs: usize) -> Result<Row> {
        let counts = self.traced(agent, measure)?;
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            check_interrupted()?;
            let mut sample = Sample::default();
            for &op in measure.ops() {
                sample = sample.then(self.op(agent, op)?);
            }
            samples.push(sample);
        }
        Ok(Row {
            measure,
            agent: self.agents[agent].label(),
            medians: Medians::of(&samples),
            counts,
        })
    }

    /// Runs one operation and keeps track of whether its service may be running.
    fn op(&mut self, agent: usize, op: Op) -> Result<Sample> {
        if op == Op::Start {
            self.maybe_running[agent] = true;
        }
        let sample = self.harness.run_op(&self.agents[agent], op)?;
        if op == Op::Stop {
            self.maybe_running[agent] = false;
        }
        Ok(sample)
    }

    /// The strace counts of one run of `measure`.
    fn traced(&mut self, agent: usize, measure: Measure) -> Result<Counts> {
        if measure == Measure::StartStop {
            self.maybe_running[agent] = true;
            let counts = self.harness.trace_start_stop(&self.agents[agent])?;
            self.maybe_running[agent] = false;
            Ok(counts)
        } else {
            let [op] = measure.ops() else {
                unreachable!("only start+stop has two operations")
            };
            self.harness.trace_op(&self.agents[agent], *op)
        }
    }

    /// Stops every service that may be running, kills what survives, removes the scratch
    /// directory. Best effort: problems are reported, not returned, so that cleanup goes on.
    fn cleanup(&mut self) {
        if self.cleaned_up {
            return;
        }
        self.cleaned_up = true;
        for (agent, running) in self.agents.iter().zip(&mut self.maybe_running) {
            if *running {
                match self.harness.run_op(agent, Op::Stop) {
                    Ok(_) => *running = false,
                    Err(e) => eprintln!("hale-bench: cleanup: {e}"),
                }
            }
        }
        kill_orphans();
        let scratch = &self.harness.scratch;
        if let Err(e) = fs::remove_dir_all(scratch) {
            eprintln!("hale-bench: cleanup: removing {}: {e}", scratch.display());
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Spawns agents with execd's environment, waits for them and measures them.
struct Harness {
    scratch: PathBuf,
    strace: PathBuf,
    /// The working directory execd gives agents, if it exists here.
    cwd: PathBuf,
    watchdog: Option<Watchdog>,
}

impl Harness {
    fn new(scratch: PathBuf, strace: PathBuf) -> Harness {
        let execd_cwd = Path::new("/var/lib/pacemaker/cores");
        Harness {
            scratch,
            strace,
            cwd: if execd_cwd.is_dir() {
                execd_cwd.into()
            } else {
                "/".into()
            },
            watchdog: None,
        }
    }

    /// The environment pacemaker-execd gives every agent (research: pacemaker-lab.md §4).
    fn base_env(&self, agent: &Agent) -> Vec<(String, String)> {
        let fixed = [
            ("OCF_ROOT", "/usr/lib/ocf"),
            ("OCF_RA_VERSION_MAJOR", "1"),
            ("OCF_RA_VERSION_MINOR", "1"),
            ("OCF_RESKEY_CRM_meta_timeout", "20000"),
            ("OCF_EXIT_REASON_PREFIX", "ocf-exit-reason:"),
            ("LC_ALL", "C"),
            ("PATH", AGENT_PATH),
            ("HA_LOGFACILITY", "daemon"),
            ("HA_logfacility", "daemon"),
        ];
        let mut env: Vec<(String, String)> = fixed
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push((
            "HA_LOGFILE".into(),
            self.scratch.join("ha.log").to_string_lossy().into(),
        ));
        env.push(("OCF_RESOURCE_INSTANCE".into(), agent.instance()));
        env.push(("OCF_RESOURCE_TYPE".into(), agent.kind.into()));
        env.push(("OCF_RESOURCE_PROVIDER".into(), agent.provider.into()));
        env
    }

    /// The full environment of `op` on `agent`.
    fn op_env(&self, agent: &Agent, op: Op) -> Vec<(String, String)> {
        let mut env = self.base_env(agent);
        if op.takes_params() {
            env.extend(
                agent
                    .params
                    .iter()
                    .map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.clone())),
            );
        }
        env.extend(
            op.meta_env()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        env
    }

    /// A command with exactly `env`, stdin on /dev/null and stdout/stderr in scratch files
    /// named `log` (kept to explain a failure). It is started with fork() (see the module
    /// doc) in a process group of its own, so the watchdog can kill the whole tree.
    fn command(&self, program: &Path, env: &[(String, String)], log: &str) -> Result<Command> {
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
            .stderr(stderr);
        // SAFETY: the hook makes one async-signal-safe system call and allocates nothing.
        // Having a pre_exec hook makes std use fork() rather than posix_spawn (vfork).
        if std::env::var_os("HB_VFORK").is_some() { command.process_group(0); } else {
        unsafe {
            command.pre_exec(|| Ok(unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?));
        }}
        Ok(command)
    }

    /// Runs `op` once, timed, and checks its exit code.
    fn run_op(&self, agent: &Agent, op: Op) -> Result<Sample> {
        let log = format!("{}.{}", agent.instance(), op.action());
        let mut command = self.command(&agent.path, &self.op_env(agent, op), &log)?;
        command.arg(op.action());
        let what = format!("{} {}", agent.label(), op.action());
        let (rc, sample) = self.spawn_and_wait(command, &what)?;
        self.expect_rc(&what, rc, op.expected_rc(), &log)?;
        Ok(sample)
    }

    /// Runs `op` once under strace and counts its calls.
    fn trace_op(&self, agent: &Agent, op: Op) -> Result<Counts> {
        let log = format!("{}.{}.strace", agent.instance(), op.action());
        let trace = self.scratch.join(format!("{log}.trace"));
        let mut command = self.strace_command(&trace, &self.op_env(agent, op), &log)?;
        command.arg(&agent.path).arg(op.action());
        let what = format!("{} {} (under strace)", agent.label(), op.action());
        let (rc, _) = self.spawn_and_wait(command, &what)?;
        self.expect_rc(&what, rc, op.expected_rc(), &log)?;
        Ok(count_calls(&read_trace(&trace)?, None))
    }

    /// Runs start then stop under one strace. They cannot be traced separately: `strace -f`
    /// follows the service that start leaves behind and only exits once stop has killed it.
    /// A shell runs the two (each with its own CRM_meta_name); its own exec and forks are
    /// not counted (lines of the first pid in the trace).
    fn trace_start_stop(&self, agent: &Agent) -> Result<Counts> {
        let log = format!("{}.start+stop.strace", agent.instance());
        let trace = self.scratch.join(format!("{log}.trace"));
        let script = format!(
            "OCF_RESKEY_CRM_meta_name=start \"$0\" start || exit {WRAPPER_START_FAILED}; \
             OCF_RESKEY_CRM_meta_name=stop \"$0\" stop || exit {WRAPPER_STOP_FAILED}"
        );
        let mut command = self.strace_command(&trace, &self.op_env(agent, Op::Start), &log)?;
        command
            .arg("/bin/sh")
            .arg("-c")
            .arg(script)
            .arg(&agent.path);
        let what = format!("{} start+stop (under strace)", agent.label());
        let (rc, _) = self.spawn_and_wait(command, &what)?;
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

    /// `strace -f -qq -e trace=... -o TRACE --`, ready for the traced program's arguments.
    fn strace_command(&self, trace: &Path, env: &[(String, String)], log: &str) -> Result<Command> {
        let mut command = self.command(&self.strace, env, log)?;
        command
            .args(["-f", "-qq", "-e", STRACE_FILTER, "-o"])
            .arg(trace)
            .arg("--");
        Ok(command)
    }

    /// The harness's own floor: `/bin/true`, started and measured like an agent.
    fn floor(&self, runs: usize) -> Result<Medians> {
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let command = self.command(Path::new("/bin/true"), &[], "true")?;
            let (rc, sample) = self.spawn_and_wait(command, "/bin/true")?;
            self.expect_rc("/bin/true", rc, 0, "true")?;
            samples.push(sample);
        }
        Ok(Medians::of(&samples))
    }

    /// Spawns `command` and waits for it. Wall time is an Instant around spawn and wait.
    /// CPU time is the growth of getrusage(RUSAGE_CHILDREN), which holds the user+sys time of
    /// every reaped child and of the descendants they reaped, minus the orphans (services)
    /// reaped meanwhile. Peak RSS is the child's own wait4 rusage: RUSAGE_CHILDREN's maxrss is
    /// a maximum over the bench's whole life, so deltas of it mean nothing.
    /// Returns the exit code (128+signal if killed by a signal).
    fn spawn_and_wait(&self, mut command: Command, what: &str) -> Result<(i32, Sample)> {
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
            return Err(format!(
                "{what} did not finish within {OP_TIMEOUT:?}: killed"
            ));
        }
        let cpu = (children_cpu()? - before).saturating_sub(reaped.orphans_cpu);
        let sample = Sample {
            wall,
            cpu,
            max_rss_kib: reaped.usage.ru_maxrss,
        };
        Ok((exit_code(reaped.status), sample))
    }

    /// Fails with the agent's output if `rc` is not `expected`.
    fn expect_rc(&self, what: &str, rc: i32, expected: i32, log: &str) -> Result<()> {
        if rc == expected {
            return Ok(());
        }
        let tail = |ext: &str| {
            let path = self.scratch.join(format!("{log}.{ext}"));
            let text = fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(15)..].join("\n    ")
        };
        Err(format!(
            "{what} exited with {rc}, expected {expected}: refusing to time a failing agent\n  \
             stderr:\n    {}\n  stdout:\n    {}",
            tail("err"),
            tail("out")
        ))
    }
}

/// Reads a trace written by strace.
fn read_trace(path: &Path) -> Result<String> {
    fs::read_to_string(path).context(|| format!("reading strace output {}", path.display()))
}

/// What reaping an agent yielded.
struct Reaped {
    status: WaitStatus,
    /// The agent's rusage: its own and that of the descendants it waited for.
    usage: libc::rusage,
    /// CPU time of orphaned services reaped while waiting (not the agent's work).
    orphans_cpu: Duration,
}

/// Waits until `pid` is reaped, reaping orphans reparented to us (we are a subreaper) on the
/// way, so that they never linger as zombies. On SIGINT/SIGTERM/SIGHUP, kills the agent's
/// process group first, so that cleanup can begin.
fn reap_child(pid: Pid) -> Result<Reaped> {
    let mut orphans_cpu = Duration::ZERO;
    loop {
        match wait4_any() {
            Ok((reaped, status, usage)) if reaped == pid => {
                let status = WaitStatus::from_raw(pid, status).context(|| "wait status".into())?;
                return Ok(Reaped {
                    status,
                    usage,
                    orphans_cpu,
                });
            }
            Ok((_, _, usage)) => orphans_cpu += cpu_of(&usage),
            Err(Errno::EINTR) if INTERRUPTED.load(Ordering::SeqCst) => {
                let _ = signal::killpg(pid, Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(pid, None);
                return Err("interrupted".into());
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("wait4: {e}")),
        }
    }
}

/// Reaps any one child with wait4(2): nix has no wrapper that returns the rusage.
fn wait4_any() -> Result<(Pid, i32, libc::rusage), Errno> {
    let mut status = 0;
    // SAFETY: rusage is plain data, for which all zero bytes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to live, writable locals of the right types.
    let pid = unsafe { libc::wait4(-1, &mut status, 0, &mut usage) };
    Errno::result(pid).map(|pid| (Pid::from_raw(pid), status, usage))
}

/// user+sys time of an rusage.
fn cpu_of(usage: &libc::rusage) -> Duration {
    let micros = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000 + tv.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// user+sys time of all reaped children so far.
fn children_cpu() -> Result<Duration> {
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).context(|| "getrusage".into())?;
    let micros = |tv: nix::sys::time::TimeVal| tv.tv_sec() as u64 * 1_000_000 + tv.tv_usec() as u64;
    Ok(Duration::from_micros(
        micros(usage.user_time()) + micros(usage.system_time()),
    ))
}

/// The shell's convention: the exit code, or 128+signal.
fn exit_code(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, signal, _) => 128 + signal as i32,
        _ => -1,
    }
}

/// Last resort of cleanup: SIGKILL every process still reparented to us (a service that stop
/// did not end), by pid, then reap them.
fn kill_orphans() {
    let me = std::process::id().to_string();
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let stat = fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // Fields after the ")" that ends the command name: state, ppid, ...
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1));
        if ppid == Some(me.as_str()) {
            eprintln!("hale-bench: cleanup: killing leftover process {pid}");
            let _ = signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            killed += 1;
        }
    }
    for _ in 0..killed {
        let _ = nix::sys::wait::waitpid(None, None);
    }
}

/// Kills the agent's process group when it overruns the operation timeout, as execd does, so
/// that a hung agent aborts the bench instead of blocking it forever. A thread that wakes
/// every 100 ms: arming costs only a mutex, nothing is signalled on the timed path.
struct Watchdog {
    state: Arc<Mutex<WatchState>>,
}

#[derive(Default)]
struct WatchState {
    target: Option<(Pid, Instant)>,
    fired: bool,
}

impl Watchdog {
    /// Starts the thread with the interrupt signals blocked, so that they reach the main
    /// thread and interrupt its wait4.
    fn start() -> Result<Watchdog> {
        let state = Arc::new(Mutex::new(WatchState::default()));
        let signals = interrupt_signals();
        let mut old = SigSet::empty();
        signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&signals), Some(&mut old))
            .context(|| "blocking signals".into())?;
        let shared = Arc::clone(&state);
        let spawned = thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || Watchdog::watch(&shared));
        signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None)
            .context(|| "restoring the signal mask".into())?;
        spawned.context(|| "starting the watchdog thread".into())?;
        Ok(Watchdog { state })
    }

    fn watch(state: &Mutex<WatchState>) {
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

    fn arm(&self, pgid: Pid, timeout: Duration) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *state = WatchState {
            target: Some((pgid, Instant::now() + timeout)),
            fired: false,
        };
    }

    /// Disarms; true if the timeout had fired.
    fn disarm(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *state).fired
    }
}

fn interrupt_signals() -> SigSet {
    let mut set = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(signal);
    }
    set
}

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Catches SIGINT/SIGTERM/SIGHUP without SA_RESTART (see [`INTERRUPTED`]).
fn install_interrupt_handlers() -> Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(on_interrupt),
        signal::SaFlags::empty(),
        SigSet::empty(),
    );
    for signal in interrupt_signals().iter() {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { signal::sigaction(signal, &action) }.context(|| format!("sigaction {signal}"))?;
    }
    Ok(())
}

fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

/// `program` in the agents' PATH.
fn find_in_path(program: &str) -> Option<PathBuf> {
    AGENT_PATH
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.is_file())
}

/// What the numbers were measured on.
struct Machine {
    cpus: String,
    cpu_model: String,
    kernel: String,
    date: String,
    versions: String,
}

impl Machine {
    fn describe() -> Machine {
        let cpu_model = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines().find_map(|l| {
                    l.strip_prefix("model name")
                        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
                })
            })
            .unwrap_or_else(|| "unknown CPU".into());
        Machine {
            cpus: thread::available_parallelism().map_or("?".into(), |n| n.to_string()),
            cpu_model,
            kernel: output_of("uname", &["-srvm"]),
            date: output_of("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            versions: output_of(
                "dpkg-query",
                &[
                    "-W",
                    "-f",
                    "${Package} ${Version}, ",
                    "pacemaker",
                    "resource-agents",
                    "strace",
                ],
            )
            .trim_end_matches([',', ' '])
            .to_owned(),
        }
    }
}

/// A command's trimmed stdout, or a placeholder: the header must not stop the benchmark.
fn output_of(program: &str, args: &[&str]) -> String {
    match Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Ok(out) => format!("({program} failed: {})", out.status),
        Err(e) => format!("({program}: {e})"),
    }
}

fn print_report(machine: &Machine, runs: usize, floor: &Medians, rows: &[Row]) {
    println!("hale-bench: one operation of ocf:hale:daemon next to the stock shell agents");
    println!(
        "machine: {} CPUs ({}), {}",
        machine.cpus, machine.cpu_model, machine.kernel
    );
    println!("date:    {}", machine.date);
    println!("stock:   {}", machine.versions);
    println!(
        "method:  median of {runs} runs per cell; each run a fresh process with execd's environment\n         \
         (OCF_*, CRM_meta_timeout=20000, LC_ALL=C, PATH, HA_LOGFACILITY/HA_logfacility=daemon, HA_LOGFILE)"
    );
    println!("         service of daemon and anything: {SERVICE_BIN} {SERVICE_ARGS}; monitor = recurring, interval {MONITOR_INTERVAL_MS} ms, depth 0;");
    println!("         monitor (stopped) = probe (no interval), rc 7; start+stop = start then stop from stopped, times added");
    println!(
        "floor:   /bin/true run the same way: wall {:.2} ms, cpu {:.2} ms, max RSS {:.1} MiB",
        floor.wall_ms, floor.cpu_ms, floor.max_rss_mib
    );
    println!();
    println!(
        "{:<18} {:<20} {:>8} {:>8} {:>8} {:>6} {:>6} {:>7}",
        "action", "agent", "wall ms", "cpu ms", "RSS MiB", "execve", "forks", "threads"
    );
    println!("{}", "-".repeat(88));
    for measure in Measure::ALL {
        for row in rows.iter().filter(|r| r.measure == measure) {
            let m = &row.medians;
            let c = &row.counts;
            println!(
                "{:<18} {:<20} {:>8.2} {:>8.2} {:>8.1} {:>6} {:>6} {:>7}",
                measure.label(),
                row.agent,
                m.wall_ms,
                m.cpu_ms,
                m.max_rss_mib,
                c.execve,
                c.forks,
                c.threads
            );
        }
    }
    println!("{}", "-".repeat(88));
    println!("wall: Instant around spawn+wait. cpu: user+sys of the agent and all its descendants");
    println!(
        "  (RUSAGE_CHILDREN delta; the service process itself is not counted). RSS: ru_maxrss of"
    );
    println!("  the agent's process tree (largest process), includes the floor above.");
    println!(
        "execve/forks/threads: successful calls in one extra run under strace -f, the agent's OWN"
    );
    println!(
        "  execve INCLUDED (so 1 = no other program run). start+stop counts both agents' execs and"
    );
    println!("  the service's fork+exec. forks = fork/vfork/clone without CLONE_THREAD.");
    print_ratio(rows);
}

/// The headline: how many times more CPU anything's monitor costs than daemon's.
fn print_ratio(rows: &[Row]) {
    let cpu = |agent: &str| {
        rows.iter()
            .find(|r| r.measure == Measure::MonitorRunning && r.agent == agent)
            .map(|r| r.medians.cpu_ms)
    };
    if let (Some(anything), Some(daemon)) = (cpu("heartbeat:anything"), cpu("hale:daemon")) {
        if daemon > 0.0 {
            println!(
                "monitor CPU, heartbeat:anything / hale:daemon: {anything:.2} / {daemon:.2} ms = {:.1}x",
                anything / daemon
            );
        } else {
            println!("monitor CPU: heartbeat:anything {anything:.2} ms, hale:daemon below the clock's resolution");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_successful_calls_and_joins_resumed_halves() {
        let trace = "\
100 execve(\"/usr/lib/ocf/resource.d/heartbeat/anything\", [\"x\", \"monitor\"], 0x1 /* 14 vars */) = 0
100 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD <unfinished ...>
101 execve(\"/usr/local/sbin/grep\", [\"grep\"], 0x2 /* 14 vars */) = -1 ENOENT (No such file or directory)
100 <... clone resumed>, child_tidptr=0x7f) = 101
101 execve(\"/usr/bin/grep\", [\"grep\", \"a = 1\"], 0x2 /* 14 vars */) = 0
101 clone3({flags=CLONE_VM|CLONE_THREAD|CLONE_SIGHAND, exit_signal=0}, 88) = 102
101 vfork() = 103
100 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=101} ---
";
        let all = count_calls(trace, None);
        assert_eq!(
            all,
            Counts {
                execve: 2,
                forks: 2,
                threads: 1
            }
        );
        let without_100 = count_calls(trace, Some("100"));
        assert_eq!(
            without_100,
            Counts {
                execve: 1,
                forks: 1,
                threads: 1
            }
        );
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
