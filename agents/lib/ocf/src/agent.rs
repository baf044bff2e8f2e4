//! What an agent is: its description, its parameters, the actions it supports, and one method
//! per action. The runner ([`crate::runner`]) owns everything that is the same for all agents.

use crate::action::Action;
use crate::env::{strip_clone_suffix, CloneInfo, Env, NotifyInfo};
use crate::schema::{Param, Values};
use crate::status::{Failure, OcfResult, OcfStatus};
use std::time::{Duration, Instant};

/// The description of an agent for meta-data and `hale describe`.
#[derive(Clone, Copy, Debug)]
pub struct AgentInfo {
    /// The agent's name, as in `ocf:hale:<name>`.
    pub name: &'static str,
    pub shortdesc: &'static str,
    pub longdesc: &'static str,
    /// The agent's own version (not the OCF version): `resource-agent version=`.
    pub version: &'static str,
}

/// One advertised action, as meta-data lists it. An action may be listed several times (a
/// monitor per depth or per role).
#[derive(Clone, Copy, Debug)]
pub struct ActionSpec {
    pub action: Action,
    /// Advised timeout, in seconds. Also the deadline when `CRM_meta_timeout` is absent.
    pub timeout: u32,
    /// Advised interval, in seconds (monitors).
    pub interval: Option<u32>,
    /// `OCF_CHECK_LEVEL` for this monitor.
    pub depth: Option<u32>,
    /// `Promoted` or `Unpromoted` for role-specific monitors.
    pub role: Option<&'static str>,
}

impl ActionSpec {
    pub const fn new(action: Action, timeout: u32) -> ActionSpec {
        ActionSpec { action, timeout, interval: None, depth: None, role: None }
    }
    pub const fn interval(mut self, seconds: u32) -> ActionSpec {
        self.interval = Some(seconds);
        self
    }
    pub const fn depth(mut self, level: u32) -> ActionSpec {
        self.depth = Some(level);
        self
    }
    pub const fn role(mut self, role: &'static str) -> ActionSpec {
        self.role = Some(role);
        self
    }
}

/// The time an action has, from `CRM_meta_timeout`. Pacemaker SIGKILLs the agent's process
/// group when it runs out, so every wait in an action is bounded by this.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    started: Instant,
    budget: Duration,
}

impl Deadline {
    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Deadline {
        Deadline { started: Instant::now(), budget }
    }
    /// The whole budget the manager gave.
    pub fn budget(&self) -> Duration {
        self.budget
    }
    /// The instant at which the manager kills us.
    pub fn at(&self) -> Instant {
        self.started + self.budget
    }
    /// Time left before the manager kills us.
    pub fn remaining(&self) -> Duration {
        self.at().saturating_duration_since(Instant::now())
    }
    /// Time left, keeping `margin` in hand for finishing up (reporting, cleaning).
    pub fn remaining_with_margin(&self, margin: Duration) -> Duration {
        self.remaining().saturating_sub(margin)
    }
    /// The margin an action should keep for itself: a tenth of the budget, between 0.5 s and
    /// 5 s. Enough to report and clean up; small enough not to waste a short timeout.
    pub fn margin(&self) -> Duration {
        (self.budget / 10).clamp(Duration::from_millis(500), Duration::from_secs(5))
    }
}

/// Everything about one invocation except the parameters.
#[derive(Clone, Debug)]
pub struct Context {
    pub action: Action,
    /// `OCF_RESOURCE_INSTANCE` as given (with any clone suffix).
    pub instance: String,
    /// The check level after fallback to the agent's supported levels.
    pub check_level: u32,
    /// A monitor with no interval or interval 0: must have no side effect.
    pub probe: bool,
    /// `CRM_meta_interval` of a recurring monitor.
    pub interval: Option<Duration>,
    pub deadline: Deadline,
    /// `CRM_meta_on_node`: the node name as the cluster knows it.
    pub on_node: Option<String>,
    pub clone: CloneInfo,
    pub notify: Option<NotifyInfo>,
    /// The raw environment, for what the context does not model.
    pub env: Env,
}

impl Context {
    /// Build the context of `action` from `env`. `levels` are the check levels the agent
    /// implements (always including 0); `default_timeout` applies when the manager gives none.
    pub fn new(action: Action, env: &Env, levels: &[u32], default_timeout: Duration) -> Context {
        let instance = env.non_empty("OCF_RESOURCE_INSTANCE").unwrap_or("default").to_string();
        let interval = env.meta_ms("interval").filter(|d| !d.is_zero());
        let requested = env
            .non_empty("OCF_CHECK_LEVEL")
            .or_else(|| env.param("OCF_CHECK_LEVEL"))
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(0);
        let timeout = env.meta_ms("timeout").filter(|d| !d.is_zero()).unwrap_or(default_timeout);
        Context {
            action,
            clone: CloneInfo::from_env(env, &instance),
            notify: NotifyInfo::from_env(env),
            instance,
            check_level: effective_level(requested, levels),
            probe: action == Action::Monitor && interval.is_none(),
            interval,
            deadline: Deadline::after(timeout),
            on_node: env.meta("on_node").map(str::to_string),
            env: env.clone(),
        }
    }

    /// The instance name that identifies this resource's state on this node: the clone suffix
    /// is dropped for anonymous clones (one instance per node, as Pacemaker's Dummy does) and
    /// kept for globally-unique ones (several per node). `:` becomes `-` so it fits file names.
    pub fn state_name(&self) -> String {
        let name = if self.clone.globally_unique { self.instance.as_str() } else { strip_clone_suffix(&self.instance) };
        name.replace([':', '/'], "-")
    }
}

/// Fall back to the highest supported level not above the requested one (`ocf_check_level`).
pub fn effective_level(requested: u32, levels: &[u32]) -> u32 {
    levels.iter().copied().filter(|l| *l <= requested).max().unwrap_or(0)
}

/// An OCF resource agent. Declare the description, the parameters and the actions as
/// constants and implement the actions; the runner does the rest. Methods for actions the
/// agent does not list in [`Agent::ACTIONS`] are never called.
///
/// The declarations are constants, not methods, because they are the agent's contract: the
/// same for every instance, readable without constructing the agent (meta-data, man pages,
/// the registry), and impossible to compute differently per call.
pub trait Agent {
    /// The agent's parameters after parsing: a typed struct, built from checked [`Values`].
    type Config;

    /// Name, descriptions and version, for meta-data and `hale describe`.
    const INFO: AgentInfo;
    /// The parameter schema: meta-data, parsing, defaults and secrecy all come from it.
    const PARAMS: &'static [Param];
    /// The advertised actions with their advised timeouts and intervals.
    const ACTIONS: &'static [ActionSpec];
    /// Check levels the monitor and validate-all implement beyond 0 (which is always implied).
    const CHECK_LEVELS: &'static [u32] = &[];

    /// Build the typed configuration. This is validate-all level 0: look only at the values,
    /// never at this host, and fail with [`Failure::configured`] (6) only for what no node could
    /// accept.
    fn configure(&self, values: &Values, ctx: &Context) -> OcfResult<Self::Config>;

    /// validate-all level 10: does this host fit the configuration (binaries, users,
    /// directories)? Failures are 5 or 2, never 6. Also run before start.
    fn validate_host(&self, _config: &Self::Config, _ctx: &Context) -> OcfResult<()> {
        Ok(())
    }

    fn start(&self, config: &Self::Config, ctx: &Context) -> OcfResult;
    fn stop(&self, config: &Self::Config, ctx: &Context) -> OcfResult;
    fn monitor(&self, config: &Self::Config, ctx: &Context) -> OcfResult;

    /// stop when the parameters do not parse. Stop must still succeed and must still stop
    /// what it can find: override this when the agent can locate its resource without them.
    fn stop_unconfigured(&self, _ctx: &Context, _problem: &Failure) -> OcfResult {
        Ok(OcfStatus::Success)
    }

    fn promote(&self, _config: &Self::Config, _ctx: &Context) -> OcfResult {
        Err(Failure::unimplemented("promote is not supported"))
    }
    fn demote(&self, _config: &Self::Config, _ctx: &Context) -> OcfResult {
        Err(Failure::unimplemented("demote is not supported"))
    }
    fn notify(&self, _config: &Self::Config, _ctx: &Context) -> OcfResult {
        Err(Failure::unimplemented("notify is not supported"))
    }
    fn reload(&self, _config: &Self::Config, _ctx: &Context) -> OcfResult {
        Err(Failure::unimplemented("reload is not supported"))
    }
    /// Apply changed `reloadable` parameters without a restart.
    fn reload_agent(&self, _config: &Self::Config, _ctx: &Context) -> OcfResult {
        Err(Failure::unimplemented("reload-agent is not supported"))
    }
    fn migrate_to(&self, _config: &Self::Config, _ctx: &Context) -> OcfResult {
        Err(Failure::unimplemented("migrate_to is not supported"))
    }
    fn migrate_from(&self, _config: &Self::Config, _ctx: &Context) -> OcfResult {
        Err(Failure::unimplemented("migrate_from is not supported"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_fallback() {
        assert_eq!(effective_level(0, &[0, 10]), 0);
        assert_eq!(effective_level(5, &[0, 10]), 0);
        assert_eq!(effective_level(10, &[0, 10]), 10);
        assert_eq!(effective_level(20, &[0, 10]), 10);
        assert_eq!(effective_level(20, &[]), 0);
    }

    #[test]
    fn probe_and_deadline() {
        let mut env = Env::new();
        env.set("OCF_RESOURCE_INSTANCE", "web:1").set("OCF_RESKEY_CRM_meta_timeout", "20000");
        let c = Context::new(Action::Monitor, &env, &[0, 10], Duration::from_secs(5));
        assert!(c.probe);
        assert_eq!(c.deadline.budget(), Duration::from_secs(20));
        assert_eq!(c.state_name(), "web");
        env.set("OCF_RESKEY_CRM_meta_interval", "0");
        assert!(Context::new(Action::Monitor, &env, &[0], Duration::from_secs(5)).probe);
        env.set("OCF_RESKEY_CRM_meta_interval", "10000").set("OCF_RESKEY_CRM_meta_globally_unique", "true");
        let c = Context::new(Action::Monitor, &env, &[0], Duration::from_secs(5));
        assert!(!c.probe);
        assert_eq!(c.state_name(), "web-1");
        assert!(!Context::new(Action::Start, &env, &[0], Duration::from_secs(5)).probe);
    }

    #[test]
    fn default_timeout_applies() {
        let c = Context::new(Action::Start, &Env::new(), &[0], Duration::from_secs(7));
        assert_eq!(c.deadline.budget(), Duration::from_secs(7));
        assert_eq!(c.instance, "default");
        assert_eq!(c.deadline.margin(), Duration::from_millis(700));
    }
}
