//! What the numbers were measured on, and the printed report.

use crate::agents::{Measure, Table};
use crate::harness::{children_cpu, timeval};
use crate::lab::{Figures, Row};
use crate::stats::Medians;
use crate::{
    Context, Result, MONITOR_INTERVAL_MS, SERVICE_ARGS, SERVICE_BIN, VETH, VETH_ADDRESS, VETH_PEER, VIP, VIP_PREFIX,
};
use std::fs;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::resource::{getrusage, UsageWho};

/// What the numbers were measured on.
pub(crate) struct Machine {
    pub(crate) cpus: String,
    pub(crate) cpu_model: String,
    pub(crate) kernel: String,
    pub(crate) date: String,
    pub(crate) versions: String,
}

impl Machine {
    pub(crate) fn describe() -> Machine {
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
pub(crate) struct OtherLoad {
    pub(crate) start: Instant,
    pub(crate) busy: Duration,
    pub(crate) own: Duration,
}

impl OtherLoad {
    pub(crate) fn start() -> Result<OtherLoad> {
        Ok(OtherLoad { start: Instant::now(), busy: machine_busy()?, own: own_cpu()? })
    }

    /// The others' share of all CPUs since `start`, in percent.
    pub(crate) fn percent(&self) -> Result<f64> {
        let wall = self.start.elapsed().as_secs_f64();
        let cpus = thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let busy = (machine_busy()? - self.busy).as_secs_f64();
        let own = (own_cpu()? - self.own).as_secs_f64();
        Ok(((busy - own) / (wall * cpus) * 100.0).max(0.0))
    }
}

/// Busy time of all CPUs since boot: /proc/stat's first line, in USER_HZ ticks (100 per second
/// in Linux's ABI), without idle and iowait.
pub(crate) fn machine_busy() -> Result<Duration> {
    let stat = fs::read_to_string("/proc/stat").context(|| "reading /proc/stat".into())?;
    let line = stat.lines().next().unwrap_or_default();
    let ticks: Vec<u64> = line.split_whitespace().skip(1).map_while(|t| t.parse().ok()).collect();
    let [user, nice, system, _idle, _iowait, irq, softirq, steal, ..] = ticks[..] else {
        return Err(format!("/proc/stat: unexpected first line {line:?}"));
    };
    Ok(Duration::from_millis((user + nice + system + irq + softirq + steal) * 10))
}

/// user+sys time of the bench and of all its reaped children.
pub(crate) fn own_cpu() -> Result<Duration> {
    let usage = getrusage(UsageWho::RUSAGE_SELF).context(|| "getrusage".into())?;
    Ok(children_cpu()? + timeval(usage.user_time()) + timeval(usage.system_time()))
}

/// A command's trimmed stdout, or a placeholder: the header must not stop the benchmark.
pub(crate) fn output_of(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).stderr(Stdio::null()).output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Ok(out) => format!("({program} failed: {})", out.status),
        Err(e) => format!("({program}: {e})"),
    }
}

pub(crate) fn print_report(machine: &Machine, other_load: &OtherLoad, runs: usize, figures: &Figures) {
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

    println!();
    println!();
    print_floor_summary(&figures.rows, floor, runs);
}

/// Every hale agent's monitor and meta-data (from all three tables of this run) next to the
/// `/bin/true` floor: what is left of an agent's cost once starting a process is paid for.
fn print_floor_summary(rows: &[Row], floor: &Medians, runs: usize) {
    println!("hale-bench: every hale agent's monitor and meta-data next to /bin/true (same run, same rounds)");
    println!("method:  as above, medians of {runs} runs; hostlock on a dir store, gitscript and gitsync on a");
    println!("         local signed master (gitsync's monitor fetches and verifies it; no cluster, so it");
    println!("         publishes nothing), all in the scratch directory; vip in the bench's namespace");
    println!(
        "floor:   /bin/true: wall {:.2} ms, cpu {:.2} ms, RSS {:.1} MiB",
        floor.wall_ms, floor.cpu_ms, floor.max_rss_mib
    );
    println!();
    let rule = "-".repeat(86);
    println!(
        "{:<18} {:<19} {:>8} {:>7} {:>12} {:>7} {:>6} {:>6}",
        "action", "agent", "wall ms", "cpu ms", "cpu - floor", "RSS MiB", "execve", "forks"
    );
    println!("{rule}");
    for measure in [Measure::MonitorRunning, Measure::MetaData] {
        for row in rows.iter().filter(|r| r.measure == measure && r.agent.starts_with("hale:")) {
            let (m, c) = (&row.medians, &row.counts);
            println!(
                "{:<18} {:<19} {:>8.2} {:>7.2} {:>12.2} {:>7.1} {:>6} {:>6}",
                measure.label(),
                row.agent,
                m.wall_ms,
                m.cpu_ms,
                m.cpu_ms - floor.cpu_ms,
                m.max_rss_mib,
                c.execve,
                c.forks + c.threads
            );
        }
    }
    println!("{rule}");
    println!("cpu - floor: the agent's median CPU minus /bin/true's. forks: processes and threads.");
}

/// What the columns mean.
pub(crate) const NOTES: [&str; 7] = [
    "wall:    Instant around spawn + wait.",
    "cpu:     user+sys of the agent and all its descendants (RUSAGE_CHILDREN delta),",
    "         not counting the service process itself.",
    "RSS:     peak RSS of the largest process of the agent's tree (GNU time %M, N more runs).",
    "execve, forks, threads: successful calls in one extra run under strace -f. execve INCLUDES",
    "         the agent's own exec (1 = no other program). start+stop: both agents' and the",
    "         service's. forks: fork, vfork, clone/clone3 without CLONE_THREAD.",
];

/// What differs in the address agents' table.
pub(crate) const VIP_NOTES: [&str; 5] = [
    "columns: as above. start+stop also counts the process start left behind: its user+sys and",
    "         peak RSS come from wait4 when the bench reaps it; its calls are counted because start",
    "         is traced alone and strace -f follows it until it exits (then stop is traced alone).",
    "         execve INCLUDES each agent's own exec: 1 for one action and 2 for start+stop mean",
    "         that no other program ran.",
];

pub(crate) fn print_table(rows: &[Row], table: Table) {
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
pub(crate) fn print_ratio(rows: &[Row], table: Table) {
    let Some((stock_agent, hale_agent)) = table.ratio() else { return };
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
