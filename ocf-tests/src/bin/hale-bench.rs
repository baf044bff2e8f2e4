//! `hale-bench`: what one operation of `ocf:hale:daemon` and `ocf:hale:vip` costs next to the
//! stock shell agents.
//!
//! ```text
//! cargo run --release -p hale-ocf-tests --bin hale-bench -- [--runs N] [--agent-dir DIR]
//! ```
//!
//! Run as root. Each agent is run the way pacemaker-execd runs it: a fresh process with the
//! action as its only argument, a cleared environment holding what execd passes, stdin on
//! /dev/null. For every agent and measured action it prints the medians over N runs of wall
//! time, CPU time and peak RSS, plus the execve and fork counts of one extra run under
//! `strace -f`, in two tables: ocf:hale:daemon next to heartbeat:anything and the Dummies, and
//! ocf:hale:vip next to heartbeat:IPaddr2. Every run's exit code is checked: timing a failing
//! agent is worthless, so a wrong code aborts the benchmark. Whatever happens, started services
//! are stopped and the scratch directory and the network namespace are removed.
//!
//! The address agents run in a network namespace of the bench's own (`hale-bench-PID`, a veth
//! pair inside). The bench's main thread enters it (setns) before it runs them and leaves it
//! afterwards, so the agents inherit it: neither gets a `network_namespace` parameter, and no
//! `ip netns exec` is measured.
//!
//! Three details keep the numbers honest:
//! - The bench is a child subreaper, so services orphaned by `start` are reparented to it and
//!   reaped at once. The container's PID 1 reaps lazily, and `kill -0` succeeds on a zombie:
//!   without this, heartbeat:anything's stop would wait on a dead service.
//! - Peak RSS comes from N more runs under GNU `time -f %M`, not from the timed runs. At exec,
//!   Linux keeps in the child's `ru_maxrss` the peak of the memory it had before exec, which a
//!   fork or vfork child of this bench shares or copies: about 2 MiB, more than a shell agent
//!   uses. `time` is a small C program, so its children start near zero.
//! - Both address agents' start leaves a process behind that sends the remaining gratuitous
//!   ARPs (hale: a fork of the agent; IPaddr2: a subshell running send_arp). That is the
//!   operation's work, so the bench waits for it to exit before it goes on, and counts its CPU,
//!   RSS, execs and forks in start+stop, but not its wall time (the cluster does not wait for it).

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
use nix::sched::{self, CloneFlags};
use nix::sys::prctl;
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::signal::{self, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
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
/// GNU time's format for the peak RSS in KiB.
const TIME_FORMAT: &str = "%M";
/// The system calls whose successful calls the strace run counts.
const STRACE_FILTER: &str = "trace=execve,clone,clone3,fork,vfork";
/// The network namespace of the address agents: its name is this prefix and the bench's pid.
const NETNS_PREFIX: &str = "hale-bench-";
/// The veth pair inside it, and the address of the first end: the address agents' subnet.
const VETH: &str = "eth0";
const VETH_PEER: &str = "eth1";
const VETH_ADDRESS: &str = "10.99.0.1/24";
/// The floating address of ocf:hale:vip and heartbeat:IPaddr2 (both get the same parameters).
const VIP: &str = "10.99.0.10";
const VIP_PREFIX: &str = "24";
/// How long a start's background announcements may take before the bench gives up on them.
const BACKGROUND_TIMEOUT: Duration = Duration::from_secs(10);
/// Exit codes of the start+stop wrapper script when start or stop fails.
const WRAPPER_START_FAILED: i32 = 101;
const WRAPPER_STOP_FAILED: i32 = 102;

/// Set by SIGINT/SIGTERM/SIGHUP. The handler has no SA_RESTART, so a blocking waitpid returns
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
        let mut options = Options { runs: DEFAULT_RUNS, agent_dir: PathBuf::from(DEFAULT_AGENT_DIR) };
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

/// The whole benchmark: set up, measure every agent, clean up (whether measuring failed or
/// not), print the table. A panic still cleans up, in [`Lab`]'s Drop.
fn run(options: &Options) -> Result<()> {
    if !unistd::geteuid().is_root() {
        return Err("run as root: agents start services and write pidfiles like under pacemaker".into());
    }
    let tools = Tools {
        strace: find_in_path("strace").ok_or("strace not found in PATH (apt-get install strace)")?,
        time: find_in_path("time").ok_or("GNU time not found in PATH (apt-get install time)")?,
        ip: find_in_path("ip").ok_or("ip not found in PATH (apt-get install iproute2)")?,
    };
    let machine = Machine::describe();
    install_interrupt_handlers()?;
    prctl::set_child_subreaper(true).context(|| "prctl(PR_SET_CHILD_SUBREAPER)".into())?;

    let other_load = OtherLoad::start()?;
    let mut lab = Lab::new(&options.agent_dir, tools)?;
    let outcome = lab.bench_all(options.runs);
    let cleanup_problems = lab.cleanup();
    let figures = outcome.map_err(|e| {
        let mut message = format!("benchmark aborted, no figures: {e}");
        for problem in &cleanup_problems {
            message.push_str(&format!("\ncleanup: {problem}"));
        }
        message
    })?;
    print_report(&machine, &other_load, options.runs, &figures);
    if cleanup_problems.is_empty() {
        Ok(())
    } else {
        Err(format!("cleanup: {}", cleanup_problems.join("\ncleanup: ")))
    }
}

/// The agents under test. The daemon table's make them run `sleep 100000` (or keep a state
/// file) inside the scratch directory; the address agents get the same address on the
/// namespace's veth, every other parameter at its default, as users run them.
fn agents(agent_dir: &Path, scratch: &Path) -> Result<Vec<Agent>> {
    let in_scratch = |name: &str| scratch.join(name).to_string_lossy().into_owned();
    let address = || [("ip", VIP.to_owned()), ("cidr_netmask", VIP_PREFIX.to_owned()), ("nic", VETH.to_owned())];
    let list = vec![
        Agent::new(
            Table::Daemon,
            agent_dir,
            "hale",
            "daemon",
            [("command", format!("{SERVICE_BIN} {SERVICE_ARGS}")), ("pidfile", in_scratch("daemon.pid"))],
        ),
        Agent::new(
            Table::Daemon,
            agent_dir,
            "heartbeat",
            "anything",
            [
                ("binfile", SERVICE_BIN.to_owned()),
                ("cmdline_options", SERVICE_ARGS.to_owned()),
                ("pidfile", in_scratch("anything.pid")),
            ],
        ),
        Agent::new(Table::Daemon, agent_dir, "heartbeat", "Dummy", [("state", in_scratch("heartbeat-Dummy.state"))]),
        Agent::new(Table::Daemon, agent_dir, "pacemaker", "Dummy", [("state", in_scratch("pacemaker-Dummy.state"))]),
        Agent::new(Table::Vip, agent_dir, "hale", "vip", address()),
        Agent::new(Table::Vip, agent_dir, "heartbeat", "IPaddr2", address()),
    ];
    for agent in &list {
        if !agent.path.is_file() {
            return Err(format!("{} is not installed ({} missing)", agent.label(), agent.path.display()));
        }
    }
    Ok(list)
}

/// The two tables of the report, each a comparison of its own.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Table {
    /// ocf:hale:daemon next to heartbeat:anything and both Dummy agents.
    Daemon,
    /// ocf:hale:vip next to heartbeat:IPaddr2, in the bench's network namespace.
    Vip,
}

impl Table {
    /// Report order.
    const ALL: [Table; 2] = [Table::Daemon, Table::Vip];

    /// Its rows, in table order.
    fn measures(self) -> &'static [Measure] {
        match self {
            Table::Daemon => &[Measure::MonitorRunning, Measure::StartStop, Measure::MetaData, Measure::MonitorStopped],
            Table::Vip => &[
                Measure::MonitorRunning,
                Measure::MonitorStopped,
                Measure::StartStop,
                Measure::ValidateAll,
                Measure::MetaData,
            ],
        }
    }

    /// Whether its agents run in the bench's network namespace.
    fn in_netns(self) -> bool {
        self == Table::Vip
    }

    /// Whether start leaves a process behind that does the rest of the operation's work (the
    /// address agents' announcements) and then exits by itself.
    fn works_after_start(self) -> bool {
        self == Table::Vip
    }

    /// The headline ratio: the stock agent's monitor CPU over hale's.
    fn ratio(self) -> (&'static str, &'static str) {
        match self {
            Table::Daemon => ("heartbeat:anything", "hale:daemon"),
            Table::Vip => ("heartbeat:IPaddr2", "hale:vip"),
        }
    }
}

/// One resource agent and the instance parameters we give it.
struct Agent {
    table: Table,
    provider: &'static str,
    kind: &'static str,
    path: PathBuf,
    params: Vec<(&'static str, String)>,
}

impl Agent {
    fn new<const N: usize>(
        table: Table,
        agent_dir: &Path,
        provider: &'static str,
        kind: &'static str,
        params: [(&'static str, String); N],
    ) -> Self {
        Agent { table, provider, kind, path: agent_dir.join(provider).join(kind), params: params.into() }
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
    /// validate-all with the instance parameters, as `crm_resource --validate` runs it.
    ValidateAll,
    MetaData,
}

impl Op {
    /// The action argument.
    fn action(self) -> &'static str {
        match self {
            Op::Start => "start",
            Op::Stop => "stop",
            Op::Monitor | Op::Probe => "monitor",
            Op::ValidateAll => "validate-all",
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
            Op::Monitor => {
                &[("OCF_RESKEY_CRM_meta_name", "monitor"), ("OCF_RESKEY_CRM_meta_interval", MONITOR_INTERVAL_MS)]
            }
            Op::Probe | Op::ValidateAll | Op::MetaData => &[],
        }
    }

    /// Whether execd passes the instance parameters (it fetches meta-data without them).
    fn takes_params(self) -> bool {
        self != Op::MetaData
    }
}

/// A row of a table: what is timed, as one or more operations run back to back. `measure as
/// usize` is its index in an agent's cells.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Measure {
    MonitorRunning,
    StartStop,
    MetaData,
    MonitorStopped,
    ValidateAll,
}

impl Measure {
    /// How many there are: the size of an agent's cells.
    const COUNT: usize = 5;

    fn label(self) -> &'static str {
        match self {
            Measure::MonitorRunning => "monitor",
            Measure::StartStop => "start+stop",
            Measure::MetaData => "meta-data",
            Measure::MonitorStopped => "monitor (stopped)",
            Measure::ValidateAll => "validate-all",
        }
    }

    fn ops(self) -> &'static [Op] {
        match self {
            Measure::MonitorRunning => &[Op::Monitor],
            Measure::StartStop => &[Op::Start, Op::Stop],
            Measure::MetaData => &[Op::MetaData],
            Measure::MonitorStopped => &[Op::Probe],
            Measure::ValidateAll => &[Op::ValidateAll],
        }
    }
}

/// Time taken by one run (or by several runs added up).
#[derive(Clone, Copy, Default)]
struct Sample {
    wall: Duration,
    cpu: Duration,
}

impl Sample {
    /// Two operations run one after the other: their times add up.
    fn then(self, next: Sample) -> Sample {
        Sample { wall: self.wall + next.wall, cpu: self.cpu + next.cpu }
    }
}

/// The medians of N samples.
struct Medians {
    wall_ms: f64,
    cpu_ms: f64,
    max_rss_mib: f64,
}

impl Medians {
    /// From the timed samples and the peak RSS (KiB) of the runs under `time`.
    fn of(samples: &[Sample], rss_kib: &[u64]) -> Medians {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Medians {
            wall_ms: median(samples.iter().map(|s| ms(s.wall)).collect()),
            cpu_ms: median(samples.iter().map(|s| ms(s.cpu)).collect()),
            max_rss_mib: median(rss_kib.iter().map(|&kib| kib as f64 / 1024.0).collect()),
        }
    }
}

/// The samples of one cell of the table.
#[derive(Default)]
struct Cell {
    samples: Vec<Sample>,
    rss_kib: Vec<u64>,
}

impl Cell {
    fn push(&mut self, (sample, rss_kib): (Sample, u64)) {
        self.samples.push(sample);
        self.rss_kib.push(rss_kib);
    }

    fn medians(&self) -> Medians {
        Medians::of(&self.samples, &self.rss_kib)
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
    /// Two runs' counts together.
    fn plus(self, other: Counts) -> Counts {
        Counts {
            execve: self.execve + other.execve,
            forks: self.forks + other.forks,
            threads: self.threads + other.threads,
        }
    }

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
            let tail = resumed.split_once(" resumed>").map_or(resumed, |(_, tail)| tail);
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
        Some((pid, rest)) if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) => (pid, rest.trim_start()),
        _ => ("", line),
    }
}

/// One line of a table.
struct Row {
    table: Table,
    measure: Measure,
    agent: String,
    medians: Medians,
    counts: Counts,
}

/// Everything the report shows.
struct Figures {
    /// `/bin/true`, measured like an agent.
    floor: Medians,
    rows: Vec<Row>,
    /// The agents whose start leaves work behind, with the medians of the time from start's
    /// return to the exit of what it left, and of that work's CPU time (ms).
    background_ms: Vec<(String, f64, f64)>,
    /// The name of the network namespace the address agents ran in.
    netns: String,
}

/// What a start left behind, once it has exited: the work it did after start returned.
#[derive(Clone, Copy, Default)]
struct Background {
    /// From start's return until the last process it left has exited.
    wall: Duration,
    /// user+sys of those processes and of their reaped descendants.
    cpu: Duration,
    /// The largest peak RSS among them, in KiB.
    max_rss_kib: u64,
}

/// The agents, the harness that runs them, the network namespace, and which agents may have a
/// service running or an address up: the state that cleanup needs.
struct Lab {
    harness: Harness,
    agents: Vec<Agent>,
    /// Agents whose service may be up: set before start, cleared after a successful stop.
    maybe_running: Vec<bool>,
    /// The address agents' namespace; None once deleted.
    netns: Option<Netns>,
    /// Per agent: what each timed start left behind.
    background: Vec<Vec<Background>>,
    cleaned_up: bool,
}

impl Lab {
    fn new(agent_dir: &Path, tools: Tools) -> Result<Lab> {
        let scratch = PathBuf::from(format!("/tmp/hale-bench-{}", std::process::id()));
        fs::create_dir(&scratch).context(|| format!("creating {}", scratch.display()))?;
        let ip = tools.ip.clone();
        // From here on, Drop removes the scratch directory whatever happens.
        let mut lab = Lab {
            harness: Harness::new(scratch, tools),
            agents: Vec::new(),
            maybe_running: Vec::new(),
            netns: None,
            background: Vec::new(),
            cleaned_up: false,
        };
        lab.agents = agents(agent_dir, &lab.harness.scratch)?;
        lab.maybe_running = vec![false; lab.agents.len()];
        lab.background = vec![Vec::new(); lab.agents.len()];
        // From here on, Drop also deletes the namespace.
        lab.netns = Some(Netns::create(format!("{NETNS_PREFIX}{}", std::process::id()), ip)?);
        lab.harness.watchdog = Some(Watchdog::start()?);
        Ok(lab)
    }

    /// The harness floor and every agent's rows. The runs are interleaved: each round takes
    /// one sample of every cell of both tables, so that a disturbance (another process, the
    /// host) spoils one sample of many cells, which the median drops, not a whole cell: a
    /// cell's 20 runs of a 1 ms monitor would otherwise all fall within the same 50 ms.
    fn bench_all(&mut self, runs: usize) -> Result<Figures> {
        let counts = self.trace_all()?;
        let mut floor = Cell::default();
        let mut cells: Vec<[Cell; Measure::COUNT]> = self.agents.iter().map(|_| Default::default()).collect();
        for _ in 0..runs {
            check_interrupted()?;
            self.place(None)?;
            floor.push(self.harness.floor_once()?);
            for (agent, cells) in cells.iter_mut().enumerate() {
                self.each_measure(agent, |lab, measure| {
                    cells[measure as usize].push(lab.sample(agent, measure)?);
                    Ok(())
                })?;
            }
        }
        self.place(None)?;
        let mut rows = Vec::new();
        for table in Table::ALL {
            for &measure in table.measures() {
                for (agent, cells) in cells.iter().enumerate().filter(|(agent, _)| self.agents[*agent].table == table) {
                    rows.push(Row {
                        table,
                        measure,
                        agent: self.agents[agent].label(),
                        medians: cells[measure as usize].medians(),
                        counts: counts[agent][measure as usize],
                    });
                }
            }
        }
        let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
        let background_ms = (self.agents.iter().zip(&self.background))
            .filter(|(agent, _)| agent.table.works_after_start())
            .map(|(agent, work)| {
                let (wall, cpu) = (work.iter().map(|w| ms(&w.wall)), work.iter().map(|w| ms(&w.cpu)));
                (agent.label(), median(wall.collect()), median(cpu.collect()))
            })
            .collect();
        let netns = self.netns.as_ref().map_or_else(String::new, |netns| netns.name.clone());
        Ok(Figures { floor: floor.medians(), rows, background_ms, netns })
    }

    /// The strace counts of every agent and measure: one run each, which also warms the caches.
    fn trace_all(&mut self) -> Result<Vec<[Counts; Measure::COUNT]>> {
        let mut all = Vec::new();
        for agent in 0..self.agents.len() {
            let mut counts = [Counts::default(); Measure::COUNT];
            self.each_measure(agent, |lab, measure| {
                counts[measure as usize] = lab.traced(agent, measure)?;
                Ok(())
            })?;
            all.push(counts);
        }
        Ok(all)
    }

    /// Puts the bench's main thread, and so every process it starts, in the network namespace
    /// `agent` runs in: the bench's own for the address agents, the original one otherwise
    /// (`None`: the original one). Entering it also reaps what earlier agents left to us, so
    /// that waiting for a start's background processes waits for nothing else.
    fn place(&mut self, agent: Option<usize>) -> Result<()> {
        let inside = agent.is_some_and(|agent| self.agents[agent].table.in_netns());
        match &mut self.netns {
            Some(netns) => netns.set_inside(inside)?,
            None if inside => return Err("the network namespace is gone".into()),
            None => {}
        }
        if agent.is_some_and(|agent| self.agents[agent].table.works_after_start()) {
            reap_exited();
        }
        Ok(())
    }

    /// Calls `f` for every measure of `agent`'s table, each in the state it needs: the
    /// stopped-state measures first, then the running monitor between an untimed start and
    /// stop.
    fn each_measure(&mut self, agent: usize, mut f: impl FnMut(&mut Lab, Measure) -> Result<()>) -> Result<()> {
        self.place(Some(agent))?;
        let measures = self.agents[agent].table.measures();
        for measure in [Measure::MonitorStopped, Measure::ValidateAll, Measure::MetaData, Measure::StartStop] {
            if measures.contains(&measure) {
                check_interrupted()?;
                f(self, measure)?;
            }
        }
        self.op(agent, Op::Start, Harness::run_op)?;
        self.after(agent, Op::Start)?;
        f(self, Measure::MonitorRunning)?;
        self.op(agent, Op::Stop, Harness::run_op)?;
        Ok(())
    }

    /// One sample of `measure`: its operations timed, then run again under `time` for the
    /// peak RSS (the larger of the two for start+stop). What a start leaves behind is waited
    /// for before stop: its CPU and RSS count, its wall time does not (see [`Lab::after`]).
    fn sample(&mut self, agent: usize, measure: Measure) -> Result<(Sample, u64)> {
        let mut sample = Sample::default();
        for &op in measure.ops() {
            sample = sample.then(self.op(agent, op, Harness::run_op)?);
            if let Some(background) = self.after(agent, op)? {
                sample.cpu += background.cpu;
                self.background[agent].push(background);
            }
        }
        let mut peak = 0;
        for &op in measure.ops() {
            peak = peak.max(self.op(agent, op, Harness::peak_rss)?);
            if let Some(background) = self.after(agent, op)? {
                peak = peak.max(background.max_rss_kib);
            }
        }
        Ok((sample, peak))
    }

    /// Runs one operation with `run` (timed, or under `time`) and keeps track of whether its
    /// service may be running.
    fn op<T>(&mut self, agent: usize, op: Op, run: fn(&Harness, &Agent, Op) -> Result<T>) -> Result<T> {
        if op == Op::Start {
            self.maybe_running[agent] = true;
        }
        let result = run(&self.harness, &self.agents[agent], op)?;
        if op == Op::Stop {
            self.maybe_running[agent] = false;
        }
        Ok(result)
    }

    /// After a start of an agent that leaves work behind (the address agents' announcer):
    /// waits until that has exited and returns what it cost. The announcements go on for about
    /// a second, and a cluster does not stop an address that soon: stopping at once would cut
    /// them short, in a way that differs between the agents.
    fn after(&mut self, agent: usize, op: Op) -> Result<Option<Background>> {
        if op != Op::Start || !self.agents[agent].table.works_after_start() {
            return Ok(None);
        }
        await_background().map(Some).context(|| format!("{} start", self.agents[agent].label()))
    }

    /// The strace counts of one run of `measure`.
    fn traced(&mut self, agent: usize, measure: Measure) -> Result<Counts> {
        if measure == Measure::StartStop {
            self.maybe_running[agent] = true;
            let counts = if self.agents[agent].table.works_after_start() {
                // Each alone: strace -f follows what start leaves behind until it exits by itself.
                let start = self.harness.trace_op(&self.agents[agent], Op::Start)?;
                self.after(agent, Op::Start)?;
                start.plus(self.harness.trace_op(&self.agents[agent], Op::Stop)?)
            } else {
                self.harness.trace_start_stop(&self.agents[agent])?
            };
            self.maybe_running[agent] = false;
            Ok(counts)
        } else {
            let [op] = measure.ops() else { unreachable!("only start+stop has two operations") };
            self.harness.trace_op(&self.agents[agent], *op)
        }
    }

    /// Stops every service and address that may be up (each agent in its namespace), kills
    /// what survives, deletes the network namespace and removes the scratch directory. Best
    /// effort: it goes on past a problem, and returns what went wrong.
    fn cleanup(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.cleaned_up {
            return problems;
        }
        self.cleaned_up = true;
        for agent in 0..self.agents.len() {
            if self.maybe_running[agent] {
                let stopped = self.place(Some(agent)).and_then(|()| self.harness.run_op(&self.agents[agent], Op::Stop));
                match stopped {
                    Ok(_) => self.maybe_running[agent] = false,
                    Err(e) => problems.push(e),
                }
            }
        }
        // Twice: killing a background subshell orphans the send_arp it waits for.
        for _ in 0..2 {
            problems.extend(kill_orphans());
        }
        if let Some(mut netns) = self.netns.take() {
            problems.extend(netns.delete());
        }
        let scratch = &self.harness.scratch;
        if let Err(e) = fs::remove_dir_all(scratch) {
            problems.push(format!("removing {}: {e}", scratch.display()));
        }
        problems
    }
}

/// The network namespace the address agents run in: made with `ip netns add`, with a veth
/// pair inside (`VETH` holding `VETH_ADDRESS`, both ends and lo up). The bench's main thread
/// enters it with setns while it runs those agents, so that they inherit it.
struct Netns {
    name: String,
    ip: PathBuf,
    /// The main thread's own namespace, to come back to.
    home: File,
    /// `/run/netns/NAME`, open.
    ns: Option<File>,
    inside: bool,
}

impl Netns {
    /// Makes the namespace and its veth pair; on failure, deletes it again.
    fn create(name: String, ip: PathBuf) -> Result<Netns> {
        let home = File::open("/proc/thread-self/ns/net").context(|| "opening /proc/thread-self/ns/net".into())?;
        let mut netns = Netns { name, ip, home, ns: None, inside: false };
        netns.ip(&["netns", "add", &netns.name])?;
        let set_up = || -> Result<File> {
            let name = netns.name.as_str();
            netns.ip(&["-n", name, "link", "add", VETH, "type", "veth", "peer", "name", VETH_PEER])?;
            netns.ip(&["-n", name, "address", "add", VETH_ADDRESS, "dev", VETH])?;
            for link in [VETH, VETH_PEER, "lo"] {
                netns.ip(&["-n", name, "link", "set", link, "up"])?;
            }
            let path = format!("/run/netns/{name}");
            File::open(&path).context(|| format!("opening {path}"))
        };
        match set_up() {
            Ok(ns) => {
                netns.ns = Some(ns);
                Ok(netns)
            }
            Err(e) => {
                let _ = netns.ip(&["netns", "delete", &netns.name]);
                Err(e)
            }
        }
    }

    /// Enters the namespace (true) or goes back to the original one (false).
    fn set_inside(&mut self, inside: bool) -> Result<()> {
        if self.inside == inside {
            return Ok(());
        }
        let target = if inside { self.ns.as_ref().ok_or("the network namespace is gone")? } else { &self.home };
        sched::setns(target, CloneFlags::CLONE_NEWNET).context(|| {
            format!("setns: {} network namespace {}", if inside { "entering" } else { "leaving" }, self.name)
        })?;
        self.inside = inside;
        Ok(())
    }

    /// Leaves the namespace and deletes it. The veth pair goes first: that removes every
    /// address on it (the agents' included) even if a leftover process still held the
    /// namespace. Returns what went wrong.
    fn delete(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = self.set_inside(false) {
            problems.push(e);
        }
        self.ns = None;
        let name = self.name.clone();
        for args in [&["-n", &name, "link", "delete", VETH][..], &["netns", "delete", &name]] {
            if let Err(e) = self.ip(args) {
                problems.push(e);
            }
        }
        problems
    }

    /// Runs `ip ARGS`. The main thread is in the original namespace whenever this runs; `-n`
    /// names ours.
    fn ip(&self, args: &[&str]) -> Result<()> {
        let what = || format!("ip {}", args.join(" "));
        let out = Command::new(&self.ip)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context(|| format!("running {}", what()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{}: {}: {}", what(), out.status, String::from_utf8_lossy(&out.stderr).trim()))
        }
    }
}

/// Waits until every process left to us has exited (the bench is a subreaper: what a start
/// leaves behind is reparented to it), and sums what they cost. Polls every 2 ms, not counted
/// anywhere; gives up after [`BACKGROUND_TIMEOUT`] (cleanup then kills them).
fn await_background() -> Result<Background> {
    let start = Instant::now();
    let mut background = Background::default();
    loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value of this plain C struct.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 with valid pointers to a status and a rusage.
        let pid = unsafe { libc::wait4(-1, &mut status, libc::WNOHANG, &mut usage) };
        if pid > 0 {
            let time = |tv: libc::timeval| Duration::from_micros(tv.tv_sec as u64 * 1_000_000 + tv.tv_usec as u64);
            background.cpu += time(usage.ru_utime) + time(usage.ru_stime);
            background.max_rss_kib = background.max_rss_kib.max(usage.ru_maxrss as u64);
            continue;
        }
        if pid < 0 {
            match Errno::last() {
                Errno::ECHILD => break,
                Errno::EINTR => {}
                e => return Err(format!("wait4: {e}")),
            }
        }
        check_interrupted()?;
        if start.elapsed() > BACKGROUND_TIMEOUT {
            return Err(format!("its background processes were still running after {BACKGROUND_TIMEOUT:?}"));
        }
        thread::sleep(Duration::from_millis(2));
    }
    background.wall = start.elapsed();
    Ok(background)
}

/// Reaps, without waiting, whatever child has already exited: services that earlier agents
/// stopped (zombies the agents need not wait for).
fn reap_exited() {
    while let Ok(status) = waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// The safety net for a panic: the normal paths call [`Lab::cleanup`] themselves.
impl Drop for Lab {
    fn drop(&mut self) {
        for problem in self.cleanup() {
            eprintln!("hale-bench: cleanup: {problem}");
        }
    }
}

/// The measuring tools the bench runs agents under.
struct Tools {
    strace: PathBuf,
    time: PathBuf,
    ip: PathBuf,
}

/// Spawns agents with execd's environment, waits for them and measures them.
struct Harness {
    scratch: PathBuf,
    tools: Tools,
    /// The working directory execd gives agents, if it exists here.
    cwd: PathBuf,
    watchdog: Option<Watchdog>,
}

impl Harness {
    fn new(scratch: PathBuf, tools: Tools) -> Harness {
        let execd_cwd = Path::new("/var/lib/pacemaker/cores");
        Harness { scratch, tools, cwd: if execd_cwd.is_dir() { execd_cwd.into() } else { "/".into() }, watchdog: None }
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
        let mut env: Vec<(String, String)> = fixed.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        env.push(("HA_LOGFILE".into(), self.scratch.join("ha.log").to_string_lossy().into()));
        env.push(("OCF_RESOURCE_INSTANCE".into(), agent.instance()));
        env.push(("OCF_RESOURCE_TYPE".into(), agent.kind.into()));
        env.push(("OCF_RESOURCE_PROVIDER".into(), agent.provider.into()));
        env
    }

    /// The full environment of `op` on `agent`.
    fn op_env(&self, agent: &Agent, op: Op) -> Vec<(String, String)> {
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
            .stderr(stderr)
            .process_group(0);
        Ok(command)
    }

    /// Runs `op` once, timed, and checks its exit code.
    fn run_op(&self, agent: &Agent, op: Op) -> Result<Sample> {
        let log = format!("{}.{}", agent.instance(), op.action());
        let mut command = self.command(&agent.path, &self.op_env(agent, op), &log)?;
        command.arg(op.action());
        let what = format!("{} {}", agent.label(), op.action());
        let (rc, sample) = self.spawn_and_wait(command, &what, &log)?;
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
        let (rc, _) = self.spawn_and_wait(command, &what, &log)?;
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
    fn peak_rss(&self, agent: &Agent, op: Op) -> Result<u64> {
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
    fn time_command(&self, report: &Path, env: &[(String, String)], log: &str) -> Result<Command> {
        let mut command = self.command(&self.tools.time, env, log)?;
        command.args(["-f", TIME_FORMAT, "-o"]).arg(report);
        Ok(command)
    }

    /// `strace -f -qq -e trace=... -o TRACE --`, ready for the traced program's arguments.
    fn strace_command(&self, trace: &Path, env: &[(String, String)], log: &str) -> Result<Command> {
        let mut command = self.command(&self.tools.strace, env, log)?;
        command.args(["-f", "-qq", "-e", STRACE_FILTER, "-o"]).arg(trace).arg("--");
        Ok(command)
    }

    /// One sample of the harness's own floor: `/bin/true`, started and measured like an agent.
    fn floor_once(&self) -> Result<(Sample, u64)> {
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
    fn spawn_and_wait(&self, mut command: Command, what: &str, log: &str) -> Result<(i32, Sample)> {
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
    fn expect_rc(&self, what: &str, rc: i32, expected: i32, log: &str) -> Result<()> {
        if rc == expected {
            return Ok(());
        }
        Err(format!("{what} exited with {rc}, expected {expected}{}", self.output_tail(log)))
    }

    /// The last lines of what the run named `log` wrote, to show with an error.
    fn output_tail(&self, log: &str) -> String {
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
fn read_trace(path: &Path) -> Result<String> {
    fs::read_to_string(path).context(|| format!("reading strace output {}", path.display()))
}

/// Reads the peak RSS (KiB) that `time -f %M -o FILE` wrote: the last line, after a
/// "Command exited with non-zero status" line if the agent returned non-zero.
fn read_peak_rss(path: &Path) -> Result<u64> {
    let text = fs::read_to_string(path).context(|| format!("reading {}", path.display()))?;
    let last = text.lines().last().unwrap_or_default().trim();
    last.parse().context(|| format!("{}: not a size in KiB: {last:?}", path.display()))
}

/// What reaping an agent yielded.
struct Reaped {
    status: WaitStatus,
    /// CPU time of orphaned services reaped while waiting (not the agent's work).
    orphans_cpu: Duration,
}

/// Waits until `pid` is reaped, reaping orphans reparented to us (we are a subreaper) on the
/// way, so that they never linger as zombies; what each orphan adds to RUSAGE_CHILDREN is
/// noted. On SIGINT/SIGTERM/SIGHUP, kills the agent's process group first, so that cleanup
/// can begin.
fn reap_child(pid: Pid) -> Result<Reaped> {
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
fn children_cpu() -> Result<Duration> {
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).context(|| "getrusage".into())?;
    Ok(timeval(usage.user_time()) + timeval(usage.system_time()))
}

fn timeval(tv: nix::sys::time::TimeVal) -> Duration {
    Duration::from_micros(tv.tv_sec() as u64 * 1_000_000 + tv.tv_usec() as u64)
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
/// did not end), by pid, then reap them. Returns what it killed.
fn kill_orphans() -> Vec<String> {
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
    /// thread and interrupt its waitpid.
    fn start() -> Result<Watchdog> {
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
        *state = WatchState { target: Some((pgid, Instant::now() + timeout)), fired: false };
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

extern "C" fn on_interrupt(_: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Catches SIGINT/SIGTERM/SIGHUP without SA_RESTART (see [`INTERRUPTED`]).
fn install_interrupt_handlers() -> Result<()> {
    let action = SigAction::new(SigHandler::Handler(on_interrupt), signal::SaFlags::empty(), SigSet::empty());
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
    AGENT_PATH.split(':').map(|dir| Path::new(dir).join(program)).find(|path| path.is_file())
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
                    l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
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
                &["-W", "-f", "${Package} ${Version}, ", "pacemaker", "resource-agents", "strace"],
            )
            .trim_end_matches([',', ' '])
            .to_owned(),
        }
    }
}

/// How busy the machine was with work other than the bench's: other processes skew the
/// figures (wall time most), and the load average cannot tell, as it also counts tasks that
/// sleep uninterruptibly. Busy time from /proc/stat, minus the bench's own and its children's.
struct OtherLoad {
    start: Instant,
    busy: Duration,
    own: Duration,
}

impl OtherLoad {
    fn start() -> Result<OtherLoad> {
        Ok(OtherLoad { start: Instant::now(), busy: machine_busy()?, own: own_cpu()? })
    }

    /// The others' share of all CPUs since `start`, in percent.
    fn percent(&self) -> Result<f64> {
        let wall = self.start.elapsed().as_secs_f64();
        let cpus = thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let busy = (machine_busy()? - self.busy).as_secs_f64();
        let own = (own_cpu()? - self.own).as_secs_f64();
        Ok(((busy - own) / (wall * cpus) * 100.0).max(0.0))
    }
}

/// Busy time of all CPUs since boot: /proc/stat's first line, in USER_HZ ticks (100 per second
/// in Linux's ABI), without idle and iowait.
fn machine_busy() -> Result<Duration> {
    let stat = fs::read_to_string("/proc/stat").context(|| "reading /proc/stat".into())?;
    let line = stat.lines().next().unwrap_or_default();
    let ticks: Vec<u64> = line.split_whitespace().skip(1).map_while(|t| t.parse().ok()).collect();
    let [user, nice, system, _idle, _iowait, irq, softirq, steal, ..] = ticks[..] else {
        return Err(format!("/proc/stat: unexpected first line {line:?}"));
    };
    Ok(Duration::from_millis((user + nice + system + irq + softirq + steal) * 10))
}

/// user+sys time of the bench and of all its reaped children.
fn own_cpu() -> Result<Duration> {
    let usage = getrusage(UsageWho::RUSAGE_SELF).context(|| "getrusage".into())?;
    Ok(children_cpu()? + timeval(usage.user_time()) + timeval(usage.system_time()))
}

/// A command's trimmed stdout, or a placeholder: the header must not stop the benchmark.
fn output_of(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).stderr(Stdio::null()).output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Ok(out) => format!("({program} failed: {})", out.status),
        Err(e) => format!("({program}: {e})"),
    }
}

fn print_report(machine: &Machine, other_load: &OtherLoad, runs: usize, figures: &Figures) {
    let floor = &figures.floor;
    println!("hale-bench: one operation of ocf:hale:daemon next to the stock shell agents");
    println!("machine: {} CPUs ({}), {}", machine.cpus, machine.cpu_model, machine.kernel);
    println!("date:    {}", machine.date);
    match other_load.percent() {
        Ok(percent) => println!("others:  {percent:.0}% of all CPUs was used by other processes during the run"),
        Err(e) => println!("others:  unknown ({e})"),
    }
    println!("stock:   {}", machine.versions);
    println!("method:  medians of {runs} runs; each run a fresh process with execd's environment");
    println!("         (OCF_*, CRM_meta_timeout=20000, LC_ALL=C, PATH, HA_LOGFACILITY=daemon, ...).");
    println!("         service of daemon and anything: {SERVICE_BIN} {SERVICE_ARGS}");
    println!("         monitor: recurring (interval {MONITOR_INTERVAL_MS} ms), depth 0, running, rc 0");
    println!("         monitor (stopped): the probe (no interval), rc 7");
    println!("         start+stop: start then stop, from stopped, their times added");
    println!("         meta-data: without instance parameters, as execd fetches it");
    println!("         interleaved: each of the {runs} rounds takes one sample of every cell");
    println!(
        "floor:   /bin/true measured the same way: wall {:.2} ms, cpu {:.2} ms, RSS {:.1} MiB",
        floor.wall_ms, floor.cpu_ms, floor.max_rss_mib
    );
    println!();
    print_table(&figures.rows, Table::Daemon);
    println!();
    for note in NOTES {
        println!("{note}");
    }
    print_ratio(&figures.rows, Table::Daemon);

    println!();
    println!();
    println!("hale-bench: one operation of ocf:hale:vip next to ocf:heartbeat:IPaddr2 (same run, same rounds)");
    println!("network: namespace {}, made by the bench and entered by it (setns) to run both agents:", figures.netns);
    println!("         veth {VETH} ({VETH_ADDRESS}) - {VETH_PEER}, both up, lo up; no network_namespace parameter");
    println!("params:  ip={VIP} cidr_netmask={VIP_PREFIX} nic={VETH} for both, the rest at their defaults");
    println!("         (arp_count 5, arp_interval 200 ms, the announcements after the first in the background)");
    println!("method:  as above: execd's environment, medians of {runs} runs, in the same rounds");
    println!("         validate-all: with the instance parameters, no OCF_CHECK_LEVEL, rc 0");
    println!("         start+stop: start; the bench waits until the process start left behind (hale:vip: a");
    println!("         fork of the agent; IPaddr2: a subshell that runs send_arp, then logs) has sent its");
    println!("         announcements and exited; then stop. wall = start + stop, what the cluster waits for;");
    println!("         cpu, RSS, execve, forks include the background process.");
    println!("background: that process, medians: how long it lived after start returned, its cpu");
    for (agent, wall_ms, cpu_ms) in &figures.background_ms {
        println!("         {agent:<19} {wall_ms:>5.0} ms, cpu {cpu_ms:.2} ms");
    }
    println!();
    print_table(&figures.rows, Table::Vip);
    println!();
    for note in VIP_NOTES {
        println!("{note}");
    }
    print_ratio(&figures.rows, Table::Vip);
}

/// What the columns mean.
const NOTES: [&str; 7] = [
    "wall:    Instant around spawn + wait.",
    "cpu:     user+sys of the agent and all its descendants (RUSAGE_CHILDREN delta),",
    "         not counting the service process itself.",
    "RSS:     peak RSS of the largest process of the agent's tree (GNU time %M, N more runs).",
    "execve, forks, threads: successful calls in one extra run under strace -f. execve INCLUDES",
    "         the agent's own exec (1 = no other program). start+stop: both agents' and the",
    "         service's. forks: fork, vfork, clone/clone3 without CLONE_THREAD.",
];

/// What differs in the address agents' table.
const VIP_NOTES: [&str; 5] = [
    "columns: as above. start+stop also counts the process start left behind: its user+sys and",
    "         peak RSS come from wait4 when the bench reaps it; its calls are counted because start",
    "         is traced alone and strace -f follows it until it exits (then stop is traced alone).",
    "         execve INCLUDES each agent's own exec: 1 for one action and 2 for start+stop mean",
    "         that no other program ran.",
];

fn print_table(rows: &[Row], table: Table) {
    let rule = "-".repeat(86);
    println!(
        "{:<18} {:<19} {:>8} {:>7} {:>7} {:>6} {:>6} {:>7}",
        "action", "agent", "wall ms", "cpu ms", "RSS MiB", "execve", "forks", "threads"
    );
    println!("{rule}");
    for &measure in table.measures() {
        for row in rows.iter().filter(|r| r.table == table && r.measure == measure) {
            let (m, c) = (&row.medians, &row.counts);
            println!(
                "{:<18} {:<19} {:>8.2} {:>7.2} {:>7.1} {:>6} {:>6} {:>7}",
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
    println!("{rule}");
}

/// The headline: how many times more CPU the stock agent's monitor costs than hale's.
fn print_ratio(rows: &[Row], table: Table) {
    let (stock_agent, hale_agent) = table.ratio();
    let cpu = |agent: &str| {
        rows.iter()
            .find(|r| r.table == table && r.measure == Measure::MonitorRunning && r.agent == agent)
            .map(|r| r.medians.cpu_ms)
    };
    let (Some(stock), Some(hale)) = (cpu(stock_agent), cpu(hale_agent)) else {
        return;
    };
    if hale > 0.0 {
        println!("monitor cpu, {stock_agent} / {hale_agent} = {stock:.2} / {hale:.2} ms = {:.1}x", stock / hale);
    } else {
        println!("monitor cpu: {stock_agent} {stock:.2} ms, {hale_agent} not measurable");
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
        assert_eq!(all, Counts { execve: 2, forks: 2, threads: 1 });
        let without_100 = count_calls(trace, Some("100"));
        assert_eq!(without_100, Counts { execve: 1, forks: 1, threads: 1 });
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
