//! Hosting an agent: the agents this build carries, and the `OCF_*` environment built from a
//! stored configuration, exactly as Pacemaker would pass it.

use crate::config::{self, ResourceConfig};
use hale_ocf::env::ActionEnv;
use hale_ocf::{AnyAgent, Env, Execution};
use std::time::Duration;

/// The agent called `name`, if this build hosts it (the registry's entries marked `wsfc`).
/// `owning`: the services it starts die with this process (the long-lived `service` and `app`
/// modes); otherwise they outlive it (one action per process).
pub fn agent(name: &str, owning: bool) -> Option<Box<dyn AnyAgent>> {
    hale_registry::find(name).filter(|e| e.wsfc).map(|e| (e.make)(processes(owning)))
}

/// The names of the agents this build hosts.
pub fn agents() -> Vec<&'static str> {
    hale_registry::ENTRIES.iter().filter(|e| e.wsfc).map(|e| e.name).collect()
}

#[cfg(windows)]
fn processes(owning: bool) -> Box<dyn hale_backend::Processes> {
    if owning {
        Box::new(hale_backend::windows::WindowsProcesses::owning())
    } else {
        hale_backend::processes()
    }
}

#[cfg(not(windows))]
fn processes(_owning: bool) -> Box<dyn hale_backend::Processes> {
    hale_backend::processes()
}

/// One resource instance: its name, configuration and agent.
pub struct Host {
    pub name: String,
    pub config: ResourceConfig,
    pub agent: Box<dyn AnyAgent>,
}

/// Which monitor: a recurring one of depth 0 or 10 (never a probe: the adapter only monitors
/// what it started).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    Shallow,
    Deep,
}

impl Host {
    /// Load `name`'s configuration and its agent.
    pub fn load(name: &str, owning: bool) -> Result<Host, String> {
        let config = config::load(name)?;
        let agent = agent(&config.agent, owning)
            .ok_or_else(|| format!("resource {name}: agent '{}' is not part of this build", config.agent))?;
        Ok(Host { name: name.to_string(), config, agent })
    }

    /// The environment of one action, as Pacemaker would build it (OCF 1.1).
    pub fn env(&self, action: &str, depth: Option<Depth>) -> Env {
        let c = &self.config;
        let timeout = match action {
            "start" => c.start_timeout,
            "stop" => c.stop_timeout,
            "monitor" => c.monitor_timeout,
            _ => 20,
        };
        let mut b = ActionEnv::new(self.agent.info().name, &self.name).timeout(Duration::from_secs(timeout.into()));
        if let Some(d) = depth {
            let (level, every) = match d {
                Depth::Shallow => (0, c.interval),
                Depth::Deep => (10, c.interval * c.deep_every.max(1)),
            };
            b = b.check_level(level).interval(Duration::from_secs(every.into()));
        }
        for (k, v) in &c.params {
            b = b.param(k, v);
        }
        let mut env = b.build();
        // Log lines go to the resource's log file and to the Event Log (syslog elsewhere).
        env.set("HA_LOGFILE", config::log_path(&self.name).display().to_string());
        env.set("HA_LOGFACILITY", "daemon");
        env
    }

    /// Run one action; `depth` for monitors.
    pub fn run(&self, action: &str, depth: Option<Depth>) -> Execution {
        let exec = self.agent.execute(Some(action), &self.env(action, depth));
        log::debug!("{} {action}: {}", self.name, exec.status.code());
        exec
    }

    pub fn start_budget(&self) -> Duration {
        Duration::from_secs(self.config.start_timeout.into())
    }
    pub fn stop_budget(&self) -> Duration {
        Duration::from_secs(self.config.stop_timeout.into())
    }
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.config.interval.into())
    }
}

/// Install the process-wide logger for the adapter's own lines, to the same places as the
/// agent's (the resource's log file and the Event Log).
pub fn install_logger(host: &Host) {
    let env = host.env("start", None);
    if let Some(dir) = config::log_path(&host.name).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = hale_ocf::logging::Logger::install(&env, host.agent.info().name, hale_backend::syslog());
}

/// Append a line to the resource's log file before any logger exists (the configuration
/// could not be loaded): a service has no console to say it on.
pub fn log_early(name: &str, line: &str) {
    use std::io::Write;
    let path = config::log_path(name);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&path) {
        let _ = writeln!(f, "hale-wsfc[{}]: ERROR: {line}", std::process::id());
    }
}

/// A one-line summary for logs: `7 (not running): reason`.
pub fn summary(e: &Execution) -> String {
    let mut s = format!("{} ({})", e.status.code(), e.status.describe());
    if let Some(r) = &e.reason {
        s.push_str(": ");
        s.push_str(r);
    }
    s
}
