//! The agents under test, the two tables of the report, and the operations and rows measured.

use crate::{Result, MONITOR_INTERVAL_MS, SERVICE_ARGS, SERVICE_BIN, VETH, VIP, VIP_PREFIX};
use std::path::{Path, PathBuf};

/// The agents under test. The daemon table's make them run `sleep 100000` (or keep a state
/// file) inside the scratch directory; the address agents get the same address on the
/// namespace's veth, every other parameter at its default, as users run them. The other hale
/// agents keep everything in the scratch directory too: hostlock a dir store, gitscript and
/// gitsync a local signed master made with the suite's own helper (git and ssh-keygen).
pub(crate) fn agents(agent_dir: &Path, scratch: &Path) -> Result<Vec<Agent>> {
    let in_scratch = |name: &str| scratch.join(name).to_string_lossy().into_owned();
    let locks = scratch.join("locks");
    std::fs::create_dir(&locks).map_err(|e| format!("creating {}: {e}", locks.display()))?;
    let git = scratch.join("git");
    std::fs::create_dir(&git).map_err(|e| format!("creating {}: {e}", git.display()))?;
    let (master, allowed) = hale_ocf_tests::git::signed_master(&git);
    let (repository, allowed) = (master.bare.to_string_lossy().into_owned(), allowed.to_string_lossy().into_owned());
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
        Agent::new(
            Table::Hale,
            agent_dir,
            "hale",
            "hostlock",
            [
                ("host", "bench-host".to_owned()),
                ("kind", "shared".to_owned()),
                ("path", locks.to_string_lossy().into_owned()),
                ("ttl", "60".to_owned()),
            ],
        ),
        Agent::new(
            Table::Hale,
            agent_dir,
            "hale",
            "gitscript",
            [
                ("repository", repository.clone()),
                ("entry", "bin/svc".to_owned()),
                ("allowed_signers", allowed.clone()),
                ("state_dir", in_scratch("gitscript-state")),
                ("pidfile", in_scratch("gitscript.pid")),
                ("logfile", in_scratch("gitscript.log")),
            ],
        ),
        Agent::new(
            Table::Hale,
            agent_dir,
            "hale",
            "gitsync",
            [
                ("repository", repository),
                ("allowed_signers", allowed),
                ("state_dir", in_scratch("gitsync-state")),
                ("state_file", in_scratch("gitsync.state")),
            ],
        ),
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
pub(crate) enum Table {
    /// ocf:hale:daemon next to heartbeat:anything and both Dummy agents.
    Daemon,
    /// ocf:hale:vip next to heartbeat:IPaddr2, in the bench's network namespace.
    Vip,
    /// The other hale agents (hostlock, gitscript, gitsync): monitor and meta-data only, for
    /// the summary of every hale agent next to the /bin/true floor.
    Hale,
}

impl Table {
    /// Report order.
    pub(crate) const ALL: [Table; 3] = [Table::Daemon, Table::Vip, Table::Hale];

    /// Its rows, in table order.
    pub(crate) fn measures(self) -> &'static [Measure] {
        match self {
            Table::Daemon => &[Measure::MonitorRunning, Measure::StartStop, Measure::MetaData, Measure::MonitorStopped],
            Table::Vip => &[
                Measure::MonitorRunning,
                Measure::MonitorStopped,
                Measure::StartStop,
                Measure::ValidateAll,
                Measure::MetaData,
            ],
            Table::Hale => &[Measure::MonitorRunning, Measure::MetaData],
        }
    }

    /// Whether its agents run in the bench's network namespace.
    pub(crate) fn in_netns(self) -> bool {
        self == Table::Vip
    }

    /// Whether start leaves a process behind that does the rest of the operation's work (the
    /// address agents' announcements) and then exits by itself.
    pub(crate) fn works_after_start(self) -> bool {
        self == Table::Vip
    }

    /// The headline ratio: the stock agent's monitor CPU over hale's (none for the table of
    /// hale agents alone).
    pub(crate) fn ratio(self) -> Option<(&'static str, &'static str)> {
        match self {
            Table::Daemon => Some(("heartbeat:anything", "hale:daemon")),
            Table::Vip => Some(("heartbeat:IPaddr2", "hale:vip")),
            Table::Hale => None,
        }
    }
}

/// One resource agent and the instance parameters we give it.
pub(crate) struct Agent {
    pub(crate) table: Table,
    pub(crate) provider: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) path: PathBuf,
    pub(crate) params: Vec<(&'static str, String)>,
}

impl Agent {
    pub(crate) fn new<const N: usize>(
        table: Table,
        agent_dir: &Path,
        provider: &'static str,
        kind: &'static str,
        params: [(&'static str, String); N],
    ) -> Self {
        Agent { table, provider, kind, path: agent_dir.join(provider).join(kind), params: params.into() }
    }

    /// `provider:type`, as in `ocf:provider:type`.
    pub(crate) fn label(&self) -> String {
        format!("{}:{}", self.provider, self.kind)
    }

    /// The resource name Pacemaker would pass (OCF_RESOURCE_INSTANCE).
    pub(crate) fn instance(&self) -> String {
        format!("bench-{}-{}", self.provider, self.kind.to_lowercase())
    }
}

/// One agent invocation, as Pacemaker makes it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Op {
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
    pub(crate) fn action(self) -> &'static str {
        match self {
            Op::Start => "start",
            Op::Stop => "stop",
            Op::Monitor | Op::Probe => "monitor",
            Op::ValidateAll => "validate-all",
            Op::MetaData => "meta-data",
        }
    }

    /// The only exit code accepted: the probes run on a stopped resource (7, not running).
    pub(crate) fn expected_rc(self) -> i32 {
        match self {
            Op::Probe => 7,
            _ => 0,
        }
    }

    /// The operation's own `CRM_meta` variables.
    pub(crate) fn meta_env(self) -> &'static [(&'static str, &'static str)] {
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
    pub(crate) fn takes_params(self) -> bool {
        self != Op::MetaData
    }
}

/// A row of a table: what is timed, as one or more operations run back to back. `measure as
/// usize` is its index in an agent's cells.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Measure {
    MonitorRunning,
    StartStop,
    MetaData,
    MonitorStopped,
    ValidateAll,
}

impl Measure {
    /// How many there are: the size of an agent's cells.
    pub(crate) const COUNT: usize = 5;

    pub(crate) fn label(self) -> &'static str {
        match self {
            Measure::MonitorRunning => "monitor",
            Measure::StartStop => "start+stop",
            Measure::MetaData => "meta-data",
            Measure::MonitorStopped => "monitor (stopped)",
            Measure::ValidateAll => "validate-all",
        }
    }

    pub(crate) fn ops(self) -> &'static [Op] {
        match self {
            Measure::MonitorRunning => &[Op::Monitor],
            Measure::StartStop => &[Op::Start, Op::Stop],
            Measure::MetaData => &[Op::MetaData],
            Measure::MonitorStopped => &[Op::Probe],
            Measure::ValidateAll => &[Op::ValidateAll],
        }
    }
}
