//! Service supervision for Hale agents: run one long-running process per resource instance,
//! say whether it runs, stop it inside a deadline, check its health.
//!
//! `ocf:hale:daemon` and `ocf:hale:gitscript` are thin agents over this crate: they share its
//! parameters ([`PROCESS_PARAMS`], [`HEALTH_PARAMS`]), build a [`Spec`] with [`spec_from`] and
//! call a [`Supervisor`]. The supervisor sits over [`hale_backend::Processes`] (the OS layer)
//! and has no OS code of its own.
//!
//! # The record and what is trusted
//!
//! The pidfile holds one line, `PID START_TIME TAG`: the service's process id, its start time
//! as the OS counts it (Linux: clock ticks since boot) and the instance mark (`daemon:web`),
//! which every process of the instance also carries in its environment (`HALE_INSTANCE`). The
//! agents run as root and write it atomically (unguessable temporary, no-follow, rename). A
//! process is **ours** only when the pidfile is such a record, for this instance, in a regular
//! file owned by the agent's user (not a symlink), and the live process with that PID has that
//! start time. Anything else at the pidfile's path is **foreign**: a lone PID (a service's own
//! pidfile, PID 1), another format, another instance's mark, a file someone else owns (a copy
//! of /etc/passwd). A foreign file is reported and left alone; its PID is never signalled.
//!
//! What each action answers:
//!
//! | pidfile                     | probe / monitor        | start                     | stop                         |
//! |-----------------------------|------------------------|---------------------------|------------------------------|
//! | none                        | 7                      | starts                    | stops tagged strays, 0       |
//! | ours, process alive         | 0 (depth 10: health)   | 0, "already running"      | signal, wait, kill tree, 0   |
//! | ours, process gone          | 7 with the reason      | removes it, starts        | removes it, 0                |
//! | foreign or corrupt          | 1, "left alone"        | 1, refuses to replace it  | stops tagged strays, 0, kept |
//!
//! A foreign file makes monitor fail and start refuse on that node, so the cluster stops the
//! resource there (stop succeeds: nothing proven ours runs) and, start failures being fatal
//! by default, moves it away instead of looping through restarts. The operator removes the
//! file or picks another pidfile.
//!
//! Who may write the pidfile's directory can only delete or rename records there, never forge
//! one (the owner check); who may write the log file's directory cannot redirect the service's
//! output into another file (no-follow open, one link, owned by root or the service user).
//!
//! # Concurrency
//!
//! Pacemaker runs one operation per resource at a time, but `crm_resource --force-*` and
//! people do not: start and stop take an exclusive per-instance lock (a file in the run
//! directory) for their whole run, waiting for it inside the operation's deadline.

mod health;

use hale_backend::paths::{run_file, DEFAULT_PATH};
use hale_backend::{BackendError, ProcessState, Processes, SpawnSpec, StopSignal};
use hale_ocf::{Context, Failure, Kind, OcfResult, OcfStatus, Param, Shown, Values};
use regex::Regex;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub use hale_ocf::{redact_environment, redact_url};
pub use health::{parse_host_port, HealthChecks};

/// `workdir`.
pub const WORKDIR: Param =
    Param::new("workdir", "Working directory", "The directory the service starts in. Default: /.");
/// `user`.
pub const USER: Param = Param::new(
    "user",
    "Run as user",
    "Run the service as this user, with the user's primary and supplementary groups, and HOME, \
     USER, LOGNAME and SHELL set for it. Default: the user the cluster runs agents as (root).",
);
/// `environment`: its values are never shown in logs or exit reasons.
pub const ENVIRONMENT: Param = Param::new(
    "environment",
    "Environment",
    "Extra environment of the service: KEY=VALUE entries separated by spaces, quoted like shell \
     words (e.g. LANG=C.UTF-8 \"OPTS=-a -b\"). The service gets only these, PATH (default \
     /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin) and the user's \
     HOME/USER/LOGNAME/SHELL, never the cluster's environment. Values are never logged.",
)
.shown(Shown::EnvValues);
/// `pidfile`.
pub const PIDFILE: Param = Param::new(
    "pidfile",
    "Pidfile",
    "Where the agent records the service: one line 'PID START_TIME MARK', written by the agent \
     (root) only. A file there that is not such a record of this resource is left alone: \
     monitor fails and start refuses until it is removed. Default: \
     /run/hale/AGENT-INSTANCE.pid, INSTANCE being the resource name without a clone suffix. \
     Only root should be able to write its directory.",
)
.unique_group("pidfile");
/// `logfile`.
pub const LOGFILE: Param = Param::new(
    "logfile",
    "Log file",
    "Append the service's stdout and stderr to this file (never through a symlink; an existing \
     file must be owned by root or the service user and have one link). Default: discarded.",
);
/// `stop_signal`.
pub const STOP_SIGNAL: Param = Param::new(
    "stop_signal",
    "Stop signal",
    "The signal that asks the service to stop. After stop_timeout, the whole process tree gets SIGKILL.",
)
.kind(Kind::Select(StopSignal::NAMES))
.default("TERM");
/// `stop_timeout`.
pub const STOP_TIMEOUT: Param = Param::new(
    "stop_timeout",
    "Graceful stop timeout",
    "Seconds to wait after stop_signal before SIGKILL. Default: the stop operation's timeout less \
     a margin (a tenth, at least 0.5 s, at most 5 s) and 1 s for the kill. A value larger than \
     that is cut to it, so stop always finishes inside its timeout.",
)
.kind(Kind::Seconds);

/// The parameters of the process itself, in meta-data order.
pub const PROCESS_PARAMS: [Param; 7] = [WORKDIR, USER, ENVIRONMENT, PIDFILE, LOGFILE, STOP_SIGNAL, STOP_TIMEOUT];

/// The health check parameters (all reloadable: monitors read them afresh each time).
pub const HEALTH_PARAMS: [Param; 5] = [
    Param::new(
        "health_url",
        "Health URL",
        "http:// or https:// URL fetched with GET by start and by monitors of depth 10; an answer \
         200-399 is healthy. Redirects are not followed and no proxy is used. Credentials in the \
         URL are never shown in logs or exit reasons.",
    )
    .shown(Shown::Url)
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
        "A program and arguments (quoted like command, no shell) run by start and by monitors of \
         depth 10; exit status 0 means healthy. It runs as the agent's user.",
    )
    .reloadable(),
    Param::new("health_timeout", "Health check timeout", "Seconds each health check may take.")
        .kind(Kind::Seconds)
        .default("5")
        .reloadable(),
];

/// One supervised service.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Program and arguments (empty until the agent knows them: gitscript fills them at start).
    pub argv: Vec<String>,
    pub user: Option<String>,
    /// `environment` entries; PATH defaults to [`DEFAULT_PATH`].
    pub environment: Vec<(String, String)>,
    pub workdir: Option<PathBuf>,
    pub pidfile: PathBuf,
    pub logfile: Option<PathBuf>,
    /// The instance mark, `AGENT:INSTANCE` (see [`SpawnSpec::tag`]).
    pub tag: String,
    /// The per-instance lock of start and stop.
    pub lock: PathBuf,
    pub stop_signal: StopSignal,
    pub stop_timeout: Option<Duration>,
    pub health: HealthChecks,
    pub health_timeout: Duration,
}

impl Spec {
    /// The minimal spec of `agent`'s instance in `ctx`: default pidfile, mark and lock. What
    /// stop uses when the parameters do not parse (an `OCF_RESKEY_pidfile` that is an absolute
    /// path is still honoured, so a service started with it is found).
    pub fn minimal(agent: &str, ctx: &Context) -> Spec {
        let name = ctx.state_name();
        let pidfile = ctx
            .env
            .param("pidfile")
            .filter(|p| Path::new(p).is_absolute())
            .map(PathBuf::from)
            .unwrap_or_else(|| run_file(agent, &name, "pid"));
        Spec {
            argv: Vec::new(),
            user: None,
            environment: Vec::new(),
            workdir: None,
            pidfile,
            logfile: None,
            tag: format!("{agent}:{name}"),
            lock: run_file(agent, &name, "lock"),
            stop_signal: StopSignal::Term,
            stop_timeout: None,
            health: HealthChecks::default(),
            health_timeout: Duration::from_secs(5),
        }
    }

    /// The PATH the service gets: `environment`'s, else [`DEFAULT_PATH`].
    pub fn path_var(&self) -> &str {
        self.environment.iter().rev().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str()).unwrap_or(DEFAULT_PATH)
    }

    /// The program's name for messages.
    fn name(&self) -> &str {
        self.argv.first().map(String::as_str).unwrap_or("the service")
    }
}

/// Split a command line with shell quoting rules (never run through a shell).
pub fn split_words(name: &str, value: &str) -> OcfResult<Vec<String>> {
    let words = shlex::split(value)
        .ok_or_else(|| Failure::configured(format!("parameter {name}: unbalanced quotes in '{value}'")))?;
    if words.is_empty() {
        return Err(Failure::configured(format!("parameter {name} is empty")));
    }
    Ok(words)
}

fn absolute(name: &str, value: Option<&str>) -> OcfResult<Option<PathBuf>> {
    match value {
        Some(v) if !Path::new(v).is_absolute() => {
            Err(Failure::configured(format!("parameter {name}='{v}' must be an absolute path")))
        }
        v => Ok(v.map(PathBuf::from)),
    }
}

/// Parse `environment` without ever echoing a value: a malformed entry may be a secret.
fn environment(value: Option<&str>) -> OcfResult<Vec<(String, String)>> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let words = shlex::split(value)
        .ok_or_else(|| Failure::configured("parameter environment: unbalanced quotes (value not shown)"))?;
    let mut out = Vec::new();
    for (i, entry) in words.into_iter().enumerate() {
        match entry.split_once('=') {
            Some((k, v)) if !k.is_empty() && !k.contains(char::is_whitespace) => {
                out.push((k.to_string(), v.to_string()))
            }
            _ => {
                return Err(Failure::configured(format!(
                    "parameter environment: entry {} is not KEY=VALUE (value not shown)",
                    i + 1
                )))
            }
        }
    }
    Ok(out)
}

fn health_checks(v: &Values) -> OcfResult<HealthChecks> {
    let url = v.str("health_url").map(str::to_string);
    if let Some(u) = &url {
        let host = u.strip_prefix("http://").or_else(|| u.strip_prefix("https://"));
        if host.is_none_or(|h| h.is_empty() || h.starts_with('/')) {
            return Err(Failure::configured(format!(
                "parameter health_url='{}' must be an http:// or https:// URL",
                redact_url(u)
            )));
        }
    }
    let regex = match v.str("health_regex") {
        None => None,
        Some(_) if url.is_none() => return Err(Failure::configured("parameter health_regex needs health_url")),
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
    Ok(HealthChecks { url, regex, tcp, command })
}

/// Build the spec of `agent`'s instance from the shared parameters ([`PROCESS_PARAMS`] and
/// [`HEALTH_PARAMS`]). `argv` is left empty for the agent to fill.
pub fn spec_from(agent: &str, v: &Values, ctx: &Context) -> OcfResult<Spec> {
    let minimal = Spec::minimal(agent, ctx);
    Ok(Spec {
        workdir: absolute("workdir", v.str("workdir"))?,
        user: v.str("user").map(str::to_string),
        environment: environment(v.str("environment"))?,
        pidfile: absolute("pidfile", v.str("pidfile"))?.unwrap_or(minimal.pidfile.clone()),
        logfile: absolute("logfile", v.str("logfile"))?,
        stop_signal: StopSignal::parse(v.text("stop_signal")).unwrap_or(StopSignal::Term),
        stop_timeout: v.duration("stop_timeout"),
        health: health_checks(v)?,
        health_timeout: v.seconds("health_timeout"),
        ..minimal
    })
}

fn backend_failure(e: BackendError) -> Failure {
    match e {
        BackendError::NotFound(m) => Failure::not_installed(m),
        BackendError::Permission(m) => Failure::perm(m),
        BackendError::Failed(m) => Failure::generic(m),
    }
}

/// The lock of one instance's start or stop, held until dropped.
#[derive(Debug)]
pub struct InstanceLock {
    _lock: Option<hale_backend::files::FileLock>,
}

/// Which action takes the lock: they differ in what they do when they cannot have it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockFor {
    /// Start (and what restarts): fails when another operation holds the lock to the end.
    Start,
    /// Stop: waits at most half its time, then stops anyway (stop must end, and succeed).
    Stop,
}

/// Runs services through the OS backend.
pub struct Supervisor {
    procs: Box<dyn Processes>,
}

impl Supervisor {
    pub fn new(procs: Box<dyn Processes>) -> Supervisor {
        Supervisor { procs }
    }

    /// The process backend (agents look programs up with it).
    pub fn processes(&self) -> &dyn Processes {
        self.procs.as_ref()
    }

    /// What the pidfile says, checked against the process table. No fork, no write.
    pub fn state(&self, spec: &Spec) -> ProcessState {
        self.procs.state(&spec.pidfile, &spec.tag)
    }

    /// Is the service running (our record, our process)?
    pub fn is_running(&self, spec: &Spec) -> bool {
        matches!(self.state(spec), ProcessState::Running(_))
    }

    /// Take the instance's lock for `purpose`, waiting inside `ctx`'s deadline. A run
    /// directory that cannot hold the lock (a file in its place, read-only) means no other
    /// start can take it either: stop goes on without it, start reports it.
    pub fn lock(&self, spec: &Spec, purpose: LockFor, ctx: &Context) -> OcfResult<InstanceLock> {
        let left = ctx.deadline.remaining_with_margin(ctx.deadline.margin());
        let wait = match purpose {
            LockFor::Start => left.saturating_sub(Duration::from_secs(1)),
            LockFor::Stop => left / 2,
        };
        let unusable = |e: std::io::Error| -> OcfResult<InstanceLock> {
            match purpose {
                LockFor::Stop => {
                    log::warn!("cannot lock {} ({e}); stopping without the lock", spec.lock.display());
                    Ok(InstanceLock { _lock: None })
                }
                LockFor::Start => {
                    Err(Failure::generic(format!("cannot take the instance lock {}: {e}", spec.lock.display())))
                }
            }
        };
        if let Some(dir) = spec.lock.parent() {
            if let Err(e) = hale_backend::files::ensure_dir(dir, 0o755) {
                return unusable(e);
            }
        }
        match hale_backend::files::lock_exclusive(&spec.lock, 0o600, Instant::now() + wait) {
            Ok(l) => Ok(InstanceLock { _lock: Some(l) }),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => match purpose {
                LockFor::Stop => {
                    log::warn!("another operation on this instance holds its lock; stopping anyway");
                    Ok(InstanceLock { _lock: None })
                }
                LockFor::Start => Err(Failure::generic(format!(
                    "another start or stop of this instance was still running when the timeout ({:.0}s) ran out",
                    ctx.deadline.budget().as_secs_f32()
                ))),
            },
            Err(e) => unusable(e),
        }
    }

    /// The node-local checks: the program (when `argv` is set), the health command, the user,
    /// the working directory and the log file's directory exist here.
    pub fn validate_host(&self, spec: &Spec) -> OcfResult<()> {
        if let Some(program) = spec.argv.first() {
            if self.procs.find_program(program, spec.path_var()).is_none() {
                // Pacemaker keeps about 128 characters of an exit reason: the PATH goes to the log.
                log::info!("looked for '{program}' with PATH={}", spec.path_var());
                let where_ = if program.contains('/') { "" } else { " in PATH" };
                return Err(Failure::not_installed(format!(
                    "command '{program}' not found{where_} or not executable on this node"
                )));
            }
        }
        if let Some(h) = &spec.health.command {
            if self.procs.find_program(&h[0], DEFAULT_PATH).is_none() {
                return Err(Failure::not_installed(format!(
                    "health_command '{}' not found or not executable on this node",
                    h[0]
                )));
            }
        }
        if let Some(u) = &spec.user {
            if !self.procs.user_exists(u) {
                return Err(Failure::args(format!("user '{u}' does not exist on this node")));
            }
        }
        if let Some(w) = &spec.workdir {
            if !w.is_dir() {
                return Err(Failure::args(format!("workdir {} is not a directory on this node", w.display())));
            }
        }
        if let Some(dir) = spec.logfile.as_ref().and_then(|l| l.parent()) {
            if !dir.is_dir() {
                return Err(Failure::args(format!(
                    "the directory of logfile, {}, does not exist on this node",
                    dir.display()
                )));
            }
        }
        Ok(())
    }

    /// Stop everything of the instance, keeping inside the action's deadline: `wanted` is the
    /// graceful wait asked for, cut to what the deadline allows.
    fn stop_all(&self, spec: &Spec, signal: StopSignal, wanted: Option<Duration>, ctx: &Context) -> OcfResult {
        let deadline = ctx.deadline.at() - ctx.deadline.margin();
        let most = ctx.deadline.remaining_with_margin(ctx.deadline.margin() + Duration::from_secs(1));
        let grace = wanted.map_or(most, |w| w.min(most));
        if let ProcessState::Corrupt(m) = self.state(spec) {
            log::warn!("{m}; left alone, stopping only processes carrying this instance's mark");
        }
        let report = self.procs.stop(&spec.pidfile, &spec.tag, signal, grace, deadline).map_err(backend_failure)?;
        if report.forced {
            log::warn!("stopped {} process(es); SIGKILL was needed after {:.1}s", report.found, grace.as_secs_f32());
        } else if report.found > 0 {
            log::info!("stopped {} process(es)", report.found);
        }
        Ok(OcfStatus::Success)
    }

    /// Stop the service (the caller holds the lock, see [`Supervisor::lock`]).
    pub fn stop(&self, spec: &Spec, ctx: &Context) -> OcfResult {
        self.stop_all(spec, spec.stop_signal, spec.stop_timeout, ctx)
    }

    /// Start the service and return once it is alive and, with health checks, healthy; every
    /// wait comes out of `ctx.deadline`, keeping time to stop it again when it never gets
    /// ready. Idempotent: a running service is only checked. The caller holds the lock.
    pub fn start(&self, spec: &Spec, ctx: &Context) -> OcfResult {
        match self.state(spec) {
            ProcessState::Running(r) => log::info!("already running as pid {}", r.pid),
            ProcessState::Corrupt(m) => {
                return Err(Failure::generic(format!(
                    "{m}; start does not replace it: remove it or set another pidfile"
                )))
            }
            other => {
                if let ProcessState::Gone(r) = &other {
                    log::info!("removing the record of pid {}, which has exited", r.pid);
                }
                // Also catches a service left by an agent killed before it wrote the pidfile.
                self.stop_all(spec, spec.stop_signal, Some(Duration::from_secs(2)), ctx)?;
                let mut env = vec![("PATH".to_string(), DEFAULT_PATH.to_string())];
                env.extend(spec.environment.iter().cloned());
                let program = spec.argv.first().ok_or_else(|| Failure::generic("nothing to run"))?;
                let launch = SpawnSpec {
                    program: self.procs.find_program(program, spec.path_var()).unwrap_or_else(|| program.into()),
                    argv: spec.argv.clone(),
                    workdir: Some(spec.workdir.clone().unwrap_or_else(|| "/".into())),
                    user: spec.user.clone(),
                    env,
                    logfile: spec.logfile.clone(),
                    pidfile: spec.pidfile.clone(),
                    tag: spec.tag.clone(),
                };
                let r = self.procs.spawn(&launch).map_err(backend_failure)?;
                log::info!("started {program} as pid {}", r.pid);
            }
        }
        // Keep time to clean up if the service never becomes ready.
        let cleanup = ctx.deadline.margin() + (ctx.deadline.budget() / 5).min(Duration::from_secs(5));
        let wait_until = ctx.deadline.at().checked_sub(cleanup).unwrap_or_else(Instant::now);
        // Without a health check, "alive" means it survived a short settle time: catches a
        // service that exits at once on a bad option or a port in use.
        let settle = (Instant::now() + Duration::from_millis(100)).min(wait_until.max(Instant::now()));
        let mut last_problem = String::from("no health check has completed");
        loop {
            match self.state(spec) {
                ProcessState::Running(_) => {
                    if spec.health.is_empty() {
                        if Instant::now() >= settle {
                            return Ok(OcfStatus::Success);
                        }
                    } else {
                        match spec.health.run(self.procs.as_ref(), spec.health_timeout, wait_until) {
                            Ok(()) => return Ok(OcfStatus::Success),
                            Err(e) => last_problem = e,
                        }
                    }
                }
                ProcessState::Gone(r) => {
                    let how = self.procs.exit_status(r).unwrap_or_else(|| "exited".into());
                    let said = last_log_line(spec);
                    self.stop_all(spec, StopSignal::Kill, Some(Duration::ZERO), ctx)?;
                    return Err(Failure::generic(format!("{} {how} during start{said}", spec.name())));
                }
                ProcessState::NoRecord | ProcessState::Corrupt(_) => {
                    self.stop_all(spec, StopSignal::Kill, Some(Duration::ZERO), ctx)?;
                    return Err(Failure::generic(format!(
                        "pidfile {} vanished or was replaced during start",
                        spec.pidfile.display()
                    )));
                }
            }
            if Instant::now() >= wait_until {
                self.stop_all(spec, spec.stop_signal, Some(Duration::from_secs(2)), ctx)?;
                return Err(Failure::generic(format!(
                    "not healthy before the start timeout ({:.0}s, {:.1}s of it kept to stop again) ran out; \
                     stopped again: {last_problem}",
                    ctx.deadline.budget().as_secs_f32(),
                    cleanup.as_secs_f32()
                )));
            }
            sleep(Duration::from_millis(100).min(wait_until.saturating_duration_since(Instant::now())));
        }
    }

    /// monitor: depth 0 looks at the record and the process table only (no fork, no write);
    /// depth 10 also runs the health checks.
    pub fn monitor(&self, spec: &Spec, ctx: &Context) -> OcfResult {
        match self.state(spec) {
            ProcessState::NoRecord => Ok(OcfStatus::NotRunning),
            ProcessState::Gone(r) => {
                Err(Failure::not_running(format!("{} (pid {}) has exited{}", spec.name(), r.pid, last_log_line(spec))))
            }
            ProcessState::Corrupt(m) => Err(Failure::generic(format!("{m}; state unknown, the file is left alone"))),
            ProcessState::Running(_) if ctx.check_level >= 10 && !spec.health.is_empty() => {
                let until = ctx.deadline.at() - ctx.deadline.margin();
                spec.health.run(self.procs.as_ref(), spec.health_timeout, until).map_err(Failure::generic)?;
                Ok(OcfStatus::Success)
            }
            ProcessState::Running(_) => Ok(OcfStatus::Success),
        }
    }
}

/// The last line the service wrote to its log, to say why it died: the file's last 64 KiB,
/// read without following a symlink.
fn last_log_line(spec: &Spec) -> String {
    let Some(path) = &spec.logfile else {
        return String::new();
    };
    let Ok(bytes) = hale_backend::files::read_tail_nofollow(path, 64 * 1024) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    match text.lines().rev().map(str::trim).find(|l| !l.is_empty()) {
        Some(l) => format!("; last output: {}", l.chars().take(200).collect::<String>()),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests;
