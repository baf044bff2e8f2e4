//! The lab: every agent, the harness, the network namespace, and what cleanup needs.

use crate::agents::{agents, Agent, Measure, Op, Table};
use crate::harness::{check_interrupted, kill_orphans, Harness, Tools, Watchdog};
use crate::netns::Netns;
use crate::stats::{median, Cell, Medians, Sample};
use crate::{Context, Result, BACKGROUND_TIMEOUT, NETNS_PREFIX};
use hale_ocf_tests::strace::Counts;
use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::sys::wait::{waitpid, WaitStatus};

/// One line of a table.
pub(crate) struct Row {
    pub(crate) table: Table,
    pub(crate) measure: Measure,
    pub(crate) agent: String,
    pub(crate) medians: Medians,
    pub(crate) counts: Counts,
}

/// Everything the report shows.
pub(crate) struct Figures {
    /// `/bin/true`, measured like an agent.
    pub(crate) floor: Medians,
    pub(crate) rows: Vec<Row>,
    /// The agents whose start leaves work behind, with the medians of the time from start's
    /// return to the exit of what it left, and of that work's CPU time (ms).
    pub(crate) background_ms: Vec<(String, f64, f64)>,
    /// The name of the network namespace the address agents ran in.
    pub(crate) netns: String,
}

/// What a start left behind, once it has exited: the work it did after start returned.
#[derive(Clone, Copy, Default)]
pub(crate) struct Background {
    /// From start's return until the last process it left has exited.
    pub(crate) wall: Duration,
    /// user+sys of those processes and of their reaped descendants.
    pub(crate) cpu: Duration,
    /// The largest peak RSS among them, in KiB.
    pub(crate) max_rss_kib: u64,
}

/// The agents, the harness that runs them, the network namespace, and which agents may have a
/// service running or an address up: the state that cleanup needs.
pub(crate) struct Lab {
    pub(crate) harness: Harness,
    pub(crate) agents: Vec<Agent>,
    /// Agents whose service may be up: set before start, cleared after a successful stop.
    pub(crate) maybe_running: Vec<bool>,
    /// The address agents' namespace; None once deleted.
    pub(crate) netns: Option<Netns>,
    /// Per agent: what each timed start left behind.
    pub(crate) background: Vec<Vec<Background>>,
    pub(crate) cleaned_up: bool,
}

impl Lab {
    pub(crate) fn new(agent_dir: &Path, tools: Tools) -> Result<Lab> {
        let scratch = PathBuf::from(format!("/tmp/hale-bench-{}", std::process::id()));
        fs::create_dir(&scratch).context(|| format!("creating {}", scratch.display()))?;
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
        lab.netns = Some(Netns::create(format!("{NETNS_PREFIX}{}", std::process::id()))?);
        lab.harness.watchdog = Some(Watchdog::start()?);
        Ok(lab)
    }

    /// The harness floor and every agent's rows. The runs are interleaved: each round takes
    /// one sample of every cell of both tables, so that a disturbance (another process, the
    /// host) spoils one sample of many cells, which the median drops, not a whole cell: a
    /// cell's 20 runs of a 1 ms monitor would otherwise all fall within the same 50 ms.
    pub(crate) fn bench_all(&mut self, runs: usize) -> Result<Figures> {
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
    pub(crate) fn trace_all(&mut self) -> Result<Vec<[Counts; Measure::COUNT]>> {
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
    pub(crate) fn place(&mut self, agent: Option<usize>) -> Result<()> {
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
    pub(crate) fn each_measure(
        &mut self,
        agent: usize,
        mut f: impl FnMut(&mut Lab, Measure) -> Result<()>,
    ) -> Result<()> {
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
    pub(crate) fn sample(&mut self, agent: usize, measure: Measure) -> Result<(Sample, u64)> {
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
    pub(crate) fn op<T>(&mut self, agent: usize, op: Op, run: fn(&Harness, &Agent, Op) -> Result<T>) -> Result<T> {
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
    pub(crate) fn after(&mut self, agent: usize, op: Op) -> Result<Option<Background>> {
        if op != Op::Start || !self.agents[agent].table.works_after_start() {
            return Ok(None);
        }
        await_background().map(Some).context(|| format!("{} start", self.agents[agent].label()))
    }

    /// The strace counts of one run of `measure`.
    pub(crate) fn traced(&mut self, agent: usize, measure: Measure) -> Result<Counts> {
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
    pub(crate) fn cleanup(&mut self) -> Vec<String> {
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

/// Waits until every process left to us has exited (the bench is a subreaper: what a start
/// leaves behind is reparented to it), and sums what they cost. Polls every 2 ms, not counted
/// anywhere; gives up after [`BACKGROUND_TIMEOUT`] (cleanup then kills them).
pub(crate) fn await_background() -> Result<Background> {
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
pub(crate) fn reap_exited() {
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
