//! An agent with its configuration type erased, so that one list can hold every agent: the
//! `hale` command, the installer, man pages, the conformance suite and the WSFC adapter all
//! read the same registry of `Box<dyn AnyAgent>`. Every [`Agent`] is one, by the blanket impl.

use crate::agent::{ActionSpec, Agent, AgentInfo};
use crate::env::Env;
use crate::runner::{execute, Execution};
use crate::schema::Param;

/// What a host needs of an agent without knowing its type: the declarations and one call.
pub trait AnyAgent {
    fn info(&self) -> AgentInfo;
    fn params(&self) -> &'static [Param];
    fn actions(&self) -> &'static [ActionSpec];
    /// Check levels beyond 0.
    fn check_levels(&self) -> &'static [u32];
    /// Run one action (`None`: no action given) in `env`, without printing or exiting.
    fn execute(&self, action: Option<&str>, env: &Env) -> Execution;
}

impl<A: Agent> AnyAgent for A {
    fn info(&self) -> AgentInfo {
        A::INFO
    }
    fn params(&self) -> &'static [Param] {
        A::PARAMS
    }
    fn actions(&self) -> &'static [ActionSpec] {
        A::ACTIONS
    }
    fn check_levels(&self) -> &'static [u32] {
        A::CHECK_LEVELS
    }
    fn execute(&self, action: Option<&str>, env: &Env) -> Execution {
        execute(self, action, env)
    }
}
