//! `ocf:hale:daemon` — run and watch any long-running service.
//!
//! It replaces `ocf:heartbeat:anything` and the apache/haproxy recipes, without their
//! traps: the command is an argv (shell-like quoting, never a shell, so no injection and no
//! login-shell banner in the pidfile); the service runs detached in its own session with a
//! clean environment. Like Pacemaker's Dummy, the agent is its parameters and three actions;
//! the supervision itself (the pidfile record that proves a process is ours, liveness from
//! the process table, health checks, stop escalating to SIGKILL inside the timeout, the
//! per-instance lock) is `hale-supervise`, whose crate documentation says what each action
//! answers for a missing, stale or foreign pidfile.
//!
//! Defaults are clone-safe: the pidfile is per resource instance, without the clone suffix,
//! so every node of an anonymous clone has its own.

use hale_backend::Processes;
use hale_ocf::{Action, ActionSpec, Agent, AgentInfo, Context, Failure, OcfResult, OcfStatus, Param, Values};
use hale_supervise::{split_words, LockFor, Spec, Supervisor, HEALTH_PARAMS, PROCESS_PARAMS};

const AGENT: &str = "daemon";

const PARAMS: &[Param] = &[
    Param::new(
        "command",
        "Program and arguments",
        "The service to run in the foreground: a program and its arguments, split with POSIX \
         shell quoting rules (quotes and backslashes) but never run through a shell, so no \
         expansion, redirection or pipes. The program is looked up in the service's PATH. \
         Example: /usr/sbin/haproxy -Ws -f /etc/haproxy/haproxy.cfg",
    )
    .required(),
    PROCESS_PARAMS[0],
    PROCESS_PARAMS[1],
    PROCESS_PARAMS[2],
    PROCESS_PARAMS[3],
    PROCESS_PARAMS[4],
    PROCESS_PARAMS[5],
    PROCESS_PARAMS[6],
    HEALTH_PARAMS[0],
    HEALTH_PARAMS[1],
    HEALTH_PARAMS[2],
    HEALTH_PARAMS[3],
    HEALTH_PARAMS[4],
];

const ACTIONS: &[ActionSpec] = &[
    ActionSpec::new(Action::Start, 60),
    ActionSpec::new(Action::Stop, 60),
    ActionSpec::new(Action::Monitor, 20).interval(10).depth(0),
    ActionSpec::new(Action::Monitor, 30).interval(60).depth(10),
    ActionSpec::new(Action::ValidateAll, 20),
    ActionSpec::new(Action::ReloadAgent, 20),
    ActionSpec::new(Action::MetaData, 5),
];

/// The agent. The process backend is passed in: the OS's in production, a fake in unit tests.
pub struct Daemon {
    sup: Supervisor,
}

impl Daemon {
    pub fn new(procs: Box<dyn Processes>) -> Daemon {
        Daemon { sup: Supervisor::new(procs) }
    }
}

impl Agent for Daemon {
    type Config = Spec;

    const INFO: AgentInfo = AgentInfo {
        name: AGENT,
        shortdesc: "Runs and watches a long-running service",
        longdesc: "Runs any program that stays in the foreground as a cluster resource: \
                   detached from the cluster's processes, as a chosen user, with its own \
                   environment and log file. start returns once the process is alive and, \
                   if a health check is configured, healthy. monitor depth 0 checks the \
                   process (no fork, no network); depth 10 runs the health checks. stop \
                   sends stop_signal, waits, then kills the whole process tree, always \
                   inside the operation timeout.",
        version: env!("CARGO_PKG_VERSION"),
    };
    const PARAMS: &'static [Param] = PARAMS;
    const ACTIONS: &'static [ActionSpec] = ACTIONS;
    const CHECK_LEVELS: &'static [u32] = &[10];

    fn configure(&self, v: &Values, ctx: &Context) -> OcfResult<Spec> {
        let argv = split_words("command", v.str("command").unwrap_or_default())?;
        Ok(Spec { argv, ..hale_supervise::spec_from(AGENT, v, ctx)? })
    }

    fn validate_host(&self, spec: &Spec, _ctx: &Context) -> OcfResult<()> {
        self.sup.validate_host(spec)
    }

    fn start(&self, spec: &Spec, ctx: &Context) -> OcfResult {
        let _lock = self.sup.lock(spec, LockFor::Start, ctx)?;
        self.sup.start(spec, ctx)
    }

    fn stop(&self, spec: &Spec, ctx: &Context) -> OcfResult {
        let _lock = self.sup.lock(spec, LockFor::Stop, ctx)?;
        self.sup.stop(spec, ctx)
    }

    /// The parameters are invalid, but the resource may run (started with an older, valid
    /// configuration): stop what the default pidfile and the instance mark find.
    fn stop_unconfigured(&self, ctx: &Context, _problem: &Failure) -> OcfResult {
        self.stop(&Spec::minimal(AGENT, ctx), ctx)
    }

    fn monitor(&self, spec: &Spec, ctx: &Context) -> OcfResult {
        self.sup.monitor(spec, ctx)
    }

    /// Only the health parameters are reloadable, and monitors read them afresh each time:
    /// nothing to do but accept them (they were validated on the way in).
    fn reload_agent(&self, _spec: &Spec, _ctx: &Context) -> OcfResult {
        log::info!("health check parameters reloaded");
        Ok(OcfStatus::Success)
    }
}

// The unit tests use Unix paths; on Windows the agent is tested against real processes.
#[cfg(all(test, not(windows)))]
mod tests;
#[cfg(all(test, windows))]
mod windows_tests;
