//! `hale-bench`: what one operation of `ocf:hale:daemon` and `ocf:hale:vip` costs next to the
//! stock shell agents.
//!
//! ```text
//! cargo run --release -p hale-ocf-tests --bin hale-bench -- [--runs N] [--agent-dir DIR]
//! ```
//!
//! The modules: `agents` (what is measured), `harness` (running an agent with execd's
//! environment, from the suite's [`hale_ocf_tests::EXECD_ENV`], timed, under strace, counted
//! with the suite's [`hale_ocf_tests::strace`], and under GNU time), `lab` (the rounds and
//! cleanup), `netns` (the address agents' namespace, made with the suite's
//! [`hale_ocf_tests::netns::try_ip`]), `stats` and `report`.
//!
//! Run as root. Each agent is run the way pacemaker-execd runs it: a fresh process with the
//! action as its only argument, a cleared environment holding what execd passes, stdin on
//! /dev/null. For every agent and measured action it prints the medians over N runs of wall
//! time, CPU time and peak RSS, plus the execve and fork counts of one extra run under
//! `strace -f`, in two tables: ocf:hale:daemon next to heartbeat:anything and the Dummies, and
//! ocf:hale:vip next to heartbeat:IPaddr2; then a summary of every hale agent's monitor and
//! meta-data (hostlock, gitscript and gitsync included) next to the `/bin/true` floor, to check
//! what an agent costs beyond starting a process. Every run's exit code is checked: timing a failing
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

mod agents;
mod harness;
mod lab;
mod netns;
mod report;
mod stats;

use std::ffi::OsString;
use std::fmt::Display;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use nix::sys::prctl;
use nix::unistd;

use harness::{find_in_path, install_interrupt_handlers, Tools};
use lab::Lab;
use report::{print_report, Machine, OtherLoad};

const DEFAULT_RUNS: usize = 20;
const DEFAULT_AGENT_DIR: &str = "/usr/lib/ocf/resource.d";
/// The operation timeout we announce (OCF_RESKEY_CRM_meta_timeout) and enforce.
const OP_TIMEOUT: Duration = Duration::from_secs(20);
/// The recurring monitor's interval, in ms as Pacemaker passes it.
const MONITOR_INTERVAL_MS: &str = "10000";
/// The long-running service of hale:daemon and heartbeat:anything.
const SERVICE_BIN: &str = "/bin/sleep";
const SERVICE_ARGS: &str = "100000";
/// GNU time's format for the peak RSS in KiB.
const TIME_FORMAT: &str = "%M";
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
