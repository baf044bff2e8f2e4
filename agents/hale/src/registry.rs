//! The list of agents this build ships. Adding an agent = one line in [`agents`].

use hale_ocf::logging::Logger;
use hale_ocf::runner::run_and_report;
use hale_ocf::{ActionSpec, Agent, AgentInfo, Env, Execution, Param};

/// An agent with its configuration type erased, so the CLI can hold a list of them.
pub trait AnyAgent {
    fn info(&self) -> AgentInfo;
    fn params(&self) -> &'static [Param];
    fn actions(&self) -> &'static [ActionSpec];
    /// Run one action in `env` and return the result, without printing or exiting.
    fn execute(&self, action: &str, env: &Env) -> Execution;
    /// Run as the agent binary would: print meta-data / exit reason, return the exit code.
    fn run_and_report(&self, action: Option<&str>, env: &Env) -> i32;
}

impl<A: Agent> AnyAgent for A {
    fn info(&self) -> AgentInfo {
        Agent::info(self)
    }
    fn params(&self) -> &'static [Param] {
        Agent::params(self)
    }
    fn actions(&self) -> &'static [ActionSpec] {
        Agent::actions(self)
    }
    fn execute(&self, action: &str, env: &Env) -> Execution {
        if action != "meta-data" {
            let _ = Logger::install(env, Agent::info(self).name, hale_backend::syslog());
        }
        hale_ocf::execute(self, Some(action), env)
    }
    fn run_and_report(&self, action: Option<&str>, env: &Env) -> i32 {
        run_and_report(self, action, env, hale_backend::syslog())
    }
}

/// The names of every agent, cheap (no construction).
pub const NAMES: &[&str] = &["daemon", "vip", "gitscript", "gitsync", "hostlock"];

/// The agent called `name`, with this machine's backends.
pub fn agent(name: &str) -> Option<Box<dyn AnyAgent>> {
    match name {
        "daemon" => Some(Box::new(hale_daemon::Daemon::new(hale_backend::processes()))),
        "vip" => Some(Box::new(hale_vip::Vip::new(hale_backend::network()))),
        "gitscript" => Some(Box::new(hale_gitscript::GitScript::new(hale_backend::processes()))),
        "gitsync" => Some(Box::new(hale_gitsync::GitSync::new(hale_backend::processes()))),
        "hostlock" => Some(Box::new(hale_hostlock::HostLock)),
        _ => None,
    }
}

/// Every agent.
pub fn agents() -> Vec<Box<dyn AnyAgent>> {
    NAMES.iter().filter_map(|n| agent(n)).collect()
}
