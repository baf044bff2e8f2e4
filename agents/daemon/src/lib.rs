//! `ocf:hale:daemon` — run and watch any long-running service.
//!
//! It replaces `ocf:heartbeat:anything` and the apache/haproxy recipes, without their
//! traps: the command is an argv (shell-like quoting, never a shell, so no injection and no
//! login-shell banner in the pidfile); the service runs detached in its own session with a
//! clean environment; the pidfile records the process start time so a reused PID is never
//! taken for ours; liveness comes from /proc (a zombie is dead); start returns only once the
//! service is alive and, with a health check, healthy; stop escalates to SIGKILL of the whole
//! tree inside the operation's timeout, and also finds processes of this resource that an
//! agent killed mid-start never recorded.
//!
//! Defaults are clone-safe: the pidfile is per resource instance, without the clone suffix,
//! so every node of an anonymous clone has its own.

mod health;

use hale_backend::{BackendError, ProcessState, Processes, SpawnSpec, StopSignal};
use hale_ocf::{Action, ActionSpec, Agent, AgentInfo, Context, Failure, Kind, OcfResult, OcfStatus, Param, Values};
use health::HealthChecks;
use regex::Regex;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

pub use health::parse_host_port;

/// The PATH a service gets unless `environment` sets one (what systemd gives services).
#[cfg(not(windows))]
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// On Windows: the system directories and Windows PowerShell, as a LocalSystem service sees them.
#[cfg(windows)]
pub const DEFAULT_PATH: &str = r"C:\Windows\system32;C:\Windows;C:\Windows\System32\WindowsPowerShell\v1.0";
/// Where default pidfiles live: tmpfs, so a reboot leaves no stale record.
#[cfg(not(windows))]
pub const RUN_DIR: &str = "/run/hale";
/// On Windows there is no tmpfs: the pidfile's start time tells a stale record from a live one.
#[cfg(windows)]
pub const RUN_DIR: &str = r"C:\ProgramData\Hale\run";

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
    Param::new("workdir", "Working directory", "The directory the service starts in. Default: /."),
    Param::new(
        "user",
        "Run as user",
        "Run the service as this user, with the user's primary and supplementary groups, and \
         HOME, USER, LOGNAME and SHELL set for it. Default: the user the cluster runs agents as (root).",
    ),
    Param::new(
        "environment",
        "Environment",
        "Extra environment of the service: KEY=VALUE entries separated by spaces, quoted like \
         shell words (e.g. LANG=C.UTF-8 \"OPTS=-a -b\"). The service gets only these, PATH \
         (default /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin) and the user's \
         HOME/USER/LOGNAME/SHELL, never the cluster's environment.",
    ),
    Param::new(
        "pidfile",
        "Pidfile",
        "Where the agent records the service's process id and start time. Default: \
         /run/hale/daemon-INSTANCE.pid, INSTANCE being the resource name without a clone suffix.",
    )
    .unique_group("pidfile"),
    Param::new("logfile", "Log file", "Append the service's stdout and stderr to this file. Default: discarded."),
    Param::new(
        "stop_signal",
        "Stop signal",
        "The signal that asks the service to stop. After stop_timeout, the whole process tree \
         gets SIGKILL.",
    )
    .kind(Kind::Select(StopSignal::NAMES))
    .default("TERM"),
    Param::new(
        "stop_timeout",
        "Graceful stop timeout",
        "Seconds to wait after stop_signal before SIGKILL. Default: the stop operation's \
         timeout less a margin (a tenth, at least 0.5 s, at most 5 s) and 1 s for the kill. A \
         value larger than that is cut to it, so stop always finishes inside its timeout.",
    )
    .kind(Kind::Seconds),
    Param::new(
        "health_url",
        "Health URL",
        "http:// or https:// URL fetched with GET by start and by monitors of depth 10; an \
         answer 200-399 is healthy. Redirects are not followed and no proxy is used.",
    )
    .reloadable(),
    Param::new(
        "health_regex",
        "Health body regex",
        "A regular expression (Rust regex syntax) the health_url response body must match.",
    )
    .reloadable(),
    Param::new(
        "health_tcp",
        "Health TCP address",
        "host:port (or [ipv6]:port) that must accept a TCP connection, checked by start and by \
         monitors of depth 10.",
    )
    .reloadable(),
    Param::new(
        "health_command",
        "Health command",
        "A program and arguments (quoted like command, no shell) run by start and by monitors \
         of depth 10; exit status 0 means healthy. It runs as the agent's user.",
    )
    .reloadable(),
    Param::new("health_timeout", "Health check timeout", "Seconds each health check may take.")
        .kind(Kind::Seconds)
        .default("5")
        .reloadable(),
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

/// The parsed parameters.
#[derive(Debug)]
pub struct Config {
    pub argv: Vec<String>,
    pub workdir: Option<PathBuf>,
    pub user: Option<String>,
    pub environment: Vec<(String, String)>,
    pub pidfile: PathBuf,
    pub logfile: Option<PathBuf>,
    pub stop_signal: StopSignal,
    pub stop_timeout: Option<Duration>,
    pub health: HealthChecks,
    pub health_timeout: Duration,
    /// Marks every process of this resource instance (see [`SpawnSpec::tag`]).
    pub tag: String,
}

impl Config {
    /// The PATH the service gets: `environment`'s, else [`DEFAULT_PATH`].
    pub fn path_var(&self) -> &str {
        self.environment.iter().rev().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str()).unwrap_or(DEFAULT_PATH)
    }
}

/// The agent. The process backend is passed in: Linux in production, a fake in unit tests.
pub struct Daemon {
    procs: Box<dyn Processes>,
}

impl Daemon {
    pub fn new(procs: Box<dyn Processes>) -> Daemon {
        Daemon { procs }
    }
    /// The process backend (agents built on this one look programs up with it).
    pub fn processes(&self) -> &dyn Processes {
        self.procs.as_ref()
    }
}

fn default_pidfile(ctx: &Context) -> PathBuf {
    PathBuf::from(RUN_DIR).join(format!("daemon-{}.pid", ctx.state_name()))
}

fn tag(ctx: &Context) -> String {
    format!("daemon:{}", ctx.state_name())
}

fn split_words(name: &str, value: &str) -> OcfResult<Vec<String>> {
    let words = shlex::split(value)
        .ok_or_else(|| Failure::configured(format!("parameter {name}: unbalanced quotes in '{value}'")))?;
    if words.is_empty() {
        return Err(Failure::configured(format!("parameter {name} is empty")));
    }
    Ok(words)
}

fn absolute(name: &str, value: Option<&str>) -> OcfResult<Option<PathBuf>> {
    match value {
        Some(v) if !std::path::Path::new(v).is_absolute() => {
            Err(Failure::configured(format!("parameter {name}='{v}' must be an absolute path")))
        }
        v => Ok(v.map(PathBuf::from)),
    }
}

fn backend_failure(e: BackendError) -> Failure {
    match e {
        BackendError::NotFound(m) => Failure::not_installed(m),
        BackendError::Permission(m) => Failure::perm(m),
        BackendError::Failed(m) => Failure::generic(m),
    }
}

impl Daemon {
    /// Stop everything of this instance, keeping inside the action's deadline.
    fn stop_all(
        &self,
        pidfile: &std::path::Path,
        tag: &str,
        signal: StopSignal,
        wanted: Option<Duration>,
        ctx: &Context,
    ) -> OcfResult {
        let deadline = ctx.deadline.at() - ctx.deadline.margin();
        let most = ctx.deadline.remaining_with_margin(ctx.deadline.margin() + Duration::from_secs(1));
        let grace = wanted.map_or(most, |w| w.min(most));
        let report = self.procs.stop(pidfile, tag, signal, grace, deadline).map_err(backend_failure)?;
        if report.forced {
            log::warn!("stopped {} process(es); SIGKILL was needed after {:.1}s", report.found, grace.as_secs_f32());
        } else if report.found > 0 {
            log::info!("stopped {} process(es)", report.found);
        }
        Ok(OcfStatus::Success)
    }

    /// The last line the service wrote to its log, to say why it died.
    fn last_log_line(c: &Config) -> String {
        let Some(path) = &c.logfile else {
            return String::new();
        };
        let Ok(text) = std::fs::read_to_string(path) else {
            return String::new();
        };
        match text.lines().rev().map(str::trim).find(|l| !l.is_empty()) {
            Some(l) => format!("; last output: {}", l.chars().take(200).collect::<String>()),
            None => String::new(),
        }
    }
}

impl Agent for Daemon {
    type Config = Config;

    const INFO: AgentInfo = AgentInfo {
        name: "daemon",
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

    fn configure(&self, v: &Values, ctx: &Context) -> OcfResult<Config> {
        let argv = split_words("command", v.str("command").unwrap_or_default())?;
        let mut environment = Vec::new();
        if let Some(env) = v.str("environment") {
            for entry in split_words("environment", env)? {
                match entry.split_once('=') {
                    Some((k, val)) if !k.is_empty() && !k.contains(char::is_whitespace) => {
                        environment.push((k.to_string(), val.to_string()))
                    }
                    _ => return Err(Failure::configured(format!("parameter environment: '{entry}' is not KEY=VALUE"))),
                }
            }
        }
        let url = v.str("health_url").map(str::to_string);
        if let Some(u) = &url {
            let host = u.strip_prefix("http://").or_else(|| u.strip_prefix("https://"));
            if host.is_none_or(|h| h.is_empty() || h.starts_with('/')) {
                return Err(Failure::configured(format!(
                    "parameter health_url='{u}' must be an http:// or https:// URL"
                )));
            }
        }
        let regex = match v.str("health_regex") {
            None => None,
            Some(_) if url.is_none() => {
                return Err(Failure::configured("parameter health_regex needs health_url"));
            }
            Some(r) => Some(Regex::new(r).map_err(|e| {
                Failure::configured(format!(
                    "parameter health_regex='{r}' is not a valid regex: {}",
                    e.to_string().replace('\n', " ")
                ))
            })?),
        };
        let tcp = v.str("health_tcp").map(str::to_string);
        if let Some(t) = &tcp {
            parse_host_port(t).map_err(|e| Failure::configured(format!("parameter health_tcp='{t}': {e}")))?;
        }
        let command = v.str("health_command").map(|c| split_words("health_command", c)).transpose()?;
        let stop_signal = v.str("stop_signal").and_then(StopSignal::parse).unwrap_or(StopSignal::Term);
        Ok(Config {
            argv,
            workdir: absolute("workdir", v.str("workdir"))?,
            user: v.str("user").map(str::to_string),
            environment,
            pidfile: absolute("pidfile", v.str("pidfile"))?.unwrap_or_else(|| default_pidfile(ctx)),
            logfile: absolute("logfile", v.str("logfile"))?,
            stop_signal,
            stop_timeout: v.duration("stop_timeout"),
            health: HealthChecks { url, regex, tcp, command },
            health_timeout: v.duration("health_timeout").unwrap_or(Duration::from_secs(5)),
            tag: tag(ctx),
        })
    }

    fn validate_host(&self, c: &Config, _ctx: &Context) -> OcfResult<()> {
        // Pacemaker keeps about 128 characters of an exit reason: the PATH goes to the log.
        if self.procs.find_program(&c.argv[0], c.path_var()).is_none() {
            log::info!("looked for '{}' with PATH={}", c.argv[0], c.path_var());
            let where_ = if c.argv[0].contains('/') { "" } else { " in PATH" };
            return Err(Failure::not_installed(format!(
                "command '{}' not found{where_} or not executable on this node",
                c.argv[0]
            )));
        }
        if let Some(h) = &c.health.command {
            if self.procs.find_program(&h[0], DEFAULT_PATH).is_none() {
                return Err(Failure::not_installed(format!(
                    "health_command '{}' not found or not executable on this node",
                    h[0]
                )));
            }
        }
        if let Some(u) = &c.user {
            if !self.procs.user_exists(u) {
                return Err(Failure::args(format!("user '{u}' does not exist on this node")));
            }
        }
        if let Some(w) = &c.workdir {
            if !w.is_dir() {
                return Err(Failure::args(format!("workdir {} is not a directory on this node", w.display())));
            }
        }
        if let Some(dir) = c.logfile.as_ref().and_then(|l| l.parent()) {
            if !dir.is_dir() {
                return Err(Failure::args(format!(
                    "the directory of logfile, {}, does not exist on this node",
                    dir.display()
                )));
            }
        }
        Ok(())
    }

    fn start(&self, c: &Config, ctx: &Context) -> OcfResult {
        match self.procs.state(&c.pidfile) {
            ProcessState::Running(r) => log::info!("already running as pid {}", r.pid),
            other => {
                if let ProcessState::Gone(r) = &other {
                    log::info!("removing the record of pid {}, which has exited", r.pid);
                } else if let ProcessState::Corrupt(m) = &other {
                    log::warn!("{m}; stopping any process of this resource before starting");
                }
                // Also catches a service left by an agent killed before it wrote the pidfile.
                self.stop_all(&c.pidfile, &c.tag, c.stop_signal, Some(Duration::from_secs(2)), ctx)?;
                let mut env = vec![("PATH".to_string(), DEFAULT_PATH.to_string())];
                env.extend(c.environment.iter().cloned());
                let spec = SpawnSpec {
                    program: self
                        .procs
                        .find_program(&c.argv[0], c.path_var())
                        .unwrap_or_else(|| c.argv[0].clone().into()),
                    argv: c.argv.clone(),
                    workdir: Some(c.workdir.clone().unwrap_or_else(|| "/".into())),
                    user: c.user.clone(),
                    env,
                    logfile: c.logfile.clone(),
                    pidfile: c.pidfile.clone(),
                    tag: c.tag.clone(),
                };
                let r = self.procs.spawn(&spec).map_err(backend_failure)?;
                log::info!("started {} as pid {}", c.argv[0], r.pid);
            }
        }
        // Keep time to clean up if the service never becomes ready.
        let cleanup = ctx.deadline.margin() + (ctx.deadline.budget() / 5).min(Duration::from_secs(5));
        let wait_until = Instant::now() + ctx.deadline.remaining_with_margin(cleanup);
        // Without a health check, "alive" means it survived a short settle time: catches a
        // service that exits at once on a bad option or a port in use.
        let settle = Instant::now() + Duration::from_millis(100);
        let mut last_problem = String::from("no health check has completed");
        loop {
            match self.procs.state(&c.pidfile) {
                ProcessState::Running(_) => {
                    if c.health.is_empty() {
                        if Instant::now() >= settle {
                            return Ok(OcfStatus::Success);
                        }
                    } else {
                        let budget = c.health_timeout.min(wait_until.saturating_duration_since(Instant::now()));
                        match c.health.run(self.procs.as_ref(), budget) {
                            Ok(()) => return Ok(OcfStatus::Success),
                            Err(e) => last_problem = e,
                        }
                    }
                }
                ProcessState::Gone(r) => {
                    let how = self.procs.exit_status(r).unwrap_or_else(|| "exited".into());
                    let said = Daemon::last_log_line(c);
                    self.stop_all(&c.pidfile, &c.tag, StopSignal::Kill, Some(Duration::ZERO), ctx)?;
                    return Err(Failure::generic(format!("{} {how} during start{said}", c.argv[0])));
                }
                ProcessState::NoRecord | ProcessState::Corrupt(_) => {
                    self.stop_all(&c.pidfile, &c.tag, StopSignal::Kill, Some(Duration::ZERO), ctx)?;
                    return Err(Failure::generic(format!("pidfile {} vanished during start", c.pidfile.display())));
                }
            }
            if Instant::now() >= wait_until {
                self.stop_all(&c.pidfile, &c.tag, c.stop_signal, Some(Duration::from_secs(2)), ctx)?;
                return Err(Failure::generic(format!(
                    "not healthy within {:.0}s, stopped again: {last_problem}",
                    ctx.deadline.budget().saturating_sub(cleanup).as_secs_f32()
                )));
            }
            sleep(Duration::from_millis(100));
        }
    }

    fn stop(&self, c: &Config, ctx: &Context) -> OcfResult {
        self.stop_all(&c.pidfile, &c.tag, c.stop_signal, c.stop_timeout, ctx)
    }

    /// The parameters are invalid, but the resource may run (started with an older, valid
    /// configuration): stop what the default pidfile and the instance tag find.
    fn stop_unconfigured(&self, ctx: &Context, _problem: &Failure) -> OcfResult {
        let pidfile = ctx
            .env
            .param("pidfile")
            .filter(|p| std::path::Path::new(p).is_absolute())
            .map(PathBuf::from)
            .unwrap_or_else(|| default_pidfile(ctx));
        self.stop_all(&pidfile, &tag(ctx), StopSignal::Term, None, ctx)
    }

    fn monitor(&self, c: &Config, ctx: &Context) -> OcfResult {
        match self.procs.state(&c.pidfile) {
            ProcessState::NoRecord => Ok(OcfStatus::NotRunning),
            ProcessState::Gone(r) => Err(Failure::not_running(format!(
                "{} (pid {}) has exited{}",
                c.argv[0],
                r.pid,
                Daemon::last_log_line(c)
            ))),
            ProcessState::Corrupt(m) => Err(Failure::generic(format!("{m}; state unknown, stop will clean up"))),
            ProcessState::Running(_) if ctx.check_level >= 10 && !c.health.is_empty() => {
                let budget = c.health_timeout.min(ctx.deadline.remaining_with_margin(ctx.deadline.margin()));
                c.health.run(self.procs.as_ref(), budget).map_err(Failure::generic)?;
                Ok(OcfStatus::Success)
            }
            ProcessState::Running(_) => Ok(OcfStatus::Success),
        }
    }

    /// Only the health parameters are reloadable, and monitors read them afresh each time:
    /// nothing to do but accept them (they were validated on the way in).
    fn reload_agent(&self, _c: &Config, _ctx: &Context) -> OcfResult {
        log::info!("health check parameters reloaded");
        Ok(OcfStatus::Success)
    }
}

// The unit tests use Unix paths; on Windows the agent is tested against real processes.
#[cfg(all(test, not(windows)))]
mod tests;
#[cfg(all(test, windows))]
mod windows_tests;
