//! `ocf:hale:gitscript` — run a script from a verified commit of a git repository.
//!
//! It replaces PSSCluster's scheduled PowerShell scripts without their weaknesses: the script
//! is supervised (a crash is a monitor failure, so the cluster recovers or fails over); a
//! failed fetch or a refused commit is reported (exit reason, log, `190` from the depth-10
//! monitor), never silently ignored; with `verify=signed` (the default) only commits signed by
//! a key in `allowed_signers` run; a history rewrite on the master is refused.
//!
//! start syncs the node's mirror (see `hale-gitrepo`), deploys the accepted commit into its own
//! read-only tree and runs the entry from that tree with the daemon agent's process handling
//! (detached, tagged, pidfile with start time, graceful stop escalating to SIGKILL inside the
//! timeout). A reachable master is needed only when nothing verified is deployed yet: a node
//! that lost the master still starts the last good commit. In `periodic` mode the service is a
//! small supervisor that runs the entry every `period` (see [`periodic`]).
//!
//! The commit a running instance uses is recorded next to its pidfile (`.commit`), so monitor
//! depth 10 can compare it with the master's verified tip; the runs of periodic mode are kept
//! in `.runs`. Both go with the pidfile at stop; the deployed trees stay for the next start.

pub mod periodic;

use hale_daemon::{Config as Process, Daemon};
use hale_gitrepo::params::{fetch_budget, source_from, sync_deadline, validate_source, SOURCE_COUNT, SOURCE_PARAMS};
use hale_gitrepo::{Check, Layout, Mirror, Source};
use hale_ocf::{Action, ActionSpec, Agent, AgentInfo, Context, Failure, Kind, OcfResult, OcfStatus, Param, Values};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where default pidfiles live: the daemon agent's (Linux: tmpfs, a reboot leaves no stale
/// record; Windows: under ProgramData).
pub const RUN_DIR: &str = hale_daemon::RUN_DIR;
/// The hidden `hale` subcommand that runs periodic mode's supervisor.
pub const SUPERVISE_COMMAND: &str = "gitscript-supervise";

const SOURCE: [Param; SOURCE_COUNT] = SOURCE_PARAMS;

const PARAMS: &[Param] = &[
    SOURCE[0],
    SOURCE[1],
    SOURCE[2],
    SOURCE[3],
    SOURCE[4],
    SOURCE[5],
    Param::new(
        "entry",
        "Entry script",
        "The script to run, as a path inside the repository (e.g. bin/job.sh). Without \
         interpreter it must be executable in git (mode 755).",
    )
    .required(),
    Param::new(
        "interpreter",
        "Interpreter",
        "A program and arguments put before the entry's path (e.g. /bin/sh, python3 -u, pwsh \
         -File), split with shell quoting rules but never run through a shell.",
    ),
    Param::new(
        "mode",
        "Mode",
        "daemon: the entry runs until stopped and is supervised like ocf:hale:daemon. periodic: a \
         supervisor runs the entry every period seconds and logs each exit status.",
    )
    .kind(Kind::Select(&["daemon", "periodic"]))
    .default("daemon"),
    Param::new("period", "Period", "periodic mode: seconds from one run's start to the next.")
        .kind(Kind::Seconds)
        .default("60"),
    Param::new(
        "max_failures",
        "Failures in a row",
        "periodic mode: monitor fails once this many runs in a row have failed.",
    )
    .kind(Kind::Integer)
    .default("3")
    .reloadable(),
    Param::new("workdir", "Working directory", "The directory the script starts in. Default: its deployed tree."),
    Param::new("user", "Run as user", "Run the script as this user (with its groups, HOME, USER, LOGNAME, SHELL)."),
    Param::new(
        "environment",
        "Environment",
        "Extra environment: KEY=VALUE entries separated by spaces, quoted like shell words. The \
         script also gets PATH, HALE_COMMIT (the deployed commit id) and HALE_REPOSITORY (the \
         mirror name), never the cluster's environment.",
    ),
    Param::new(
        "pidfile",
        "Pidfile",
        "Where the agent records the script's (or supervisor's) process. The deployed commit \
         (.commit) and periodic runs (.runs) are kept beside it. Default: \
         /run/hale/gitscript-INSTANCE.pid.",
    )
    .unique_group("pidfile"),
    Param::new("logfile", "Log file", "Append the script's stdout and stderr to this file. Default: discarded."),
    Param::new(
        "stop_signal",
        "Stop signal",
        "The signal that asks the script to stop; after stop_timeout the whole tree gets SIGKILL.",
    )
    .kind(Kind::Select(hale_backend::StopSignal::NAMES))
    .default("TERM"),
    Param::new(
        "stop_timeout",
        "Graceful stop timeout",
        "Seconds to wait after stop_signal before SIGKILL. Default and maximum: what the stop \
         operation's timeout allows.",
    )
    .kind(Kind::Seconds),
    Param::new(
        "health_url",
        "Health URL",
        "As for ocf:hale:daemon: an http(s) URL start waits for and monitors of depth 10 check.",
    )
    .reloadable(),
    Param::new("health_regex", "Health body regex", "As for ocf:hale:daemon: a regex the health_url body must match.")
        .reloadable(),
    Param::new("health_tcp", "Health TCP address", "As for ocf:hale:daemon: host:port that must accept a connection.")
        .reloadable(),
    Param::new(
        "health_command",
        "Health command",
        "As for ocf:hale:daemon: a program and arguments (no shell) whose exit status 0 means healthy.",
    )
    .reloadable(),
    Param::new("health_timeout", "Health check timeout", "Seconds each health check may take.")
        .kind(Kind::Seconds)
        .default("5")
        .reloadable(),
];

const ACTIONS: &[ActionSpec] = &[
    ActionSpec::new(Action::Start, 120),
    ActionSpec::new(Action::Stop, 60),
    ActionSpec::new(Action::Monitor, 20).interval(10).depth(0),
    ActionSpec::new(Action::Monitor, 60).interval(300).depth(10),
    ActionSpec::new(Action::ValidateAll, 20),
    ActionSpec::new(Action::ReloadAgent, 120),
    ActionSpec::new(Action::MetaData, 5),
];

/// periodic or daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Daemon,
    Periodic,
}

/// The parsed parameters.
#[derive(Debug)]
pub struct Config {
    pub source: Source,
    pub layout: Layout,
    pub entry: String,
    pub interpreter: Vec<String>,
    pub mode: Mode,
    pub period: Duration,
    pub max_failures: u64,
    /// The daemon agent's settings; `argv` and `workdir` are filled in by start from the tree.
    pub process: Process,
}

impl Config {
    fn commit_file(&self) -> PathBuf {
        self.process.pidfile.with_extension("commit")
    }
    fn runs_file(&self) -> PathBuf {
        self.process.pidfile.with_extension("runs")
    }
}

fn short(c: &str) -> &str {
    &c[..c.len().min(12)]
}

/// The agent. Processes are handled by an inner `ocf:hale:daemon`.
pub struct GitScript {
    daemon: Daemon,
}

impl GitScript {
    pub fn new(procs: Box<dyn hale_backend::Processes>) -> GitScript {
        GitScript { daemon: Daemon::new(procs) }
    }

    /// Sync, deploy and return the accepted commit to run, with its tree.
    fn deploy(&self, c: &Config, ctx: &Context) -> OcfResult<(String, PathBuf)> {
        let report = hale_gitrepo::sync(&c.layout, &c.source, fetch_budget(ctx), Some(sync_deadline(ctx)))
            .map_err(Failure::generic)?;
        let Some(commit) = report.deployed else {
            let why = report.problem().unwrap_or_else(|| "nothing fetched".into());
            return Err(Failure::generic(format!("no verified commit to run: {why}")));
        };
        if let Some(p) = report.problem() {
            log::warn!("running the last accepted commit {commit}: {p}");
        }
        let m = Mirror::open(&c.layout, &c.source.name).map_err(Failure::generic)?;
        if !m.is_some_and(|m| m.has_path(commit, &c.entry)) {
            return Err(Failure::generic(format!("entry {} is not in commit {}", c.entry, &commit.to_string()[..12])));
        }
        Ok((commit.to_string(), c.layout.tree(&c.source.name, &commit.to_string())))
    }

    /// The argv that runs the entry in `tree`: interpreter + path. On Windows an entry ending
    /// in `.ps1` with no interpreter runs with `pwsh` or Windows PowerShell (`-NoProfile
    /// -NonInteractive -ExecutionPolicy Bypass -File`), found on the service's PATH.
    fn entry_argv(&self, c: &Config, tree: &Path) -> Vec<String> {
        let script = entry_path(tree, &c.entry);
        #[cfg(windows)]
        if c.interpreter.is_empty() && is_powershell(&c.entry) {
            return hale_backend::windows::powershell_argv(self.daemon.processes(), c.process.path_var(), &script, &[]);
        }
        let mut argv = c.interpreter.clone();
        argv.push(script.to_string_lossy().to_string());
        argv
    }

    /// The daemon settings that run `commit` from `tree`.
    fn process_for(&self, c: &Config, commit: &str, tree: &Path) -> OcfResult<Process> {
        let mut argv = self.entry_argv(c, tree);
        if c.mode == Mode::Periodic {
            let exe = std::env::current_exe()
                .map_err(|e| Failure::not_installed(format!("cannot find the hale binary for the supervisor: {e}")))?;
            let mut sup = vec![
                exe.to_string_lossy().to_string(),
                SUPERVISE_COMMAND.to_string(),
                "--state".into(),
                c.runs_file().to_string_lossy().to_string(),
                "--period".into(),
                format!("{}", c.period.as_secs_f64()),
                "--".into(),
            ];
            sup.extend(argv);
            argv = sup;
        }
        let mut environment = c.process.environment.clone();
        environment.push(("HALE_COMMIT".into(), commit.to_string()));
        environment.push(("HALE_REPOSITORY".into(), c.source.name.clone()));
        Ok(Process {
            argv,
            workdir: Some(c.process.workdir.clone().unwrap_or_else(|| tree.to_path_buf())),
            user: c.process.user.clone(),
            environment,
            pidfile: c.process.pidfile.clone(),
            logfile: c.process.logfile.clone(),
            stop_signal: c.process.stop_signal,
            stop_timeout: c.process.stop_timeout,
            health: c.process.health.clone(),
            health_timeout: c.process.health_timeout,
            tag: c.process.tag.clone(),
        })
    }

    fn running_commit(c: &Config) -> Option<String> {
        std::fs::read_to_string(c.commit_file()).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }

    /// Launch `commit` (the process is known not to run).
    fn launch(&self, c: &Config, commit: &str, tree: &Path, ctx: &Context) -> OcfResult {
        let p = self.process_for(c, commit, tree)?;
        if c.interpreter.is_empty() && c.mode == Mode::Daemon {
            let script = entry_path(tree, &c.entry);
            if !is_executable(&script) {
                return Err(Failure::generic(format!(
                    "entry {} is not executable in commit {} ({NOT_EXECUTABLE_HINT})",
                    c.entry,
                    short(commit)
                )));
            }
        }
        self.daemon.validate_host(&p, ctx)?;
        let _ = std::fs::remove_file(c.runs_file());
        std::fs::write(c.commit_file(), format!("{commit}\n"))
            .map_err(|e| Failure::generic(format!("cannot write {}: {e}", c.commit_file().display())))?;
        self.daemon.start(&p, ctx)?;
        let mode = if c.mode == Mode::Periodic { "periodic" } else { "daemon" };
        log::info!("started {} of {} at commit {commit} ({mode} mode)", c.entry, c.source.name);
        Ok(OcfStatus::Success)
    }

    fn forget(c: &Config) {
        let _ = std::fs::remove_file(c.commit_file());
        let _ = std::fs::remove_file(c.runs_file());
    }
}

/// The entry's file in `tree` (`entry` uses `/`, as git does).
#[cfg(not(windows))]
fn entry_path(tree: &Path, entry: &str) -> PathBuf {
    tree.join(entry)
}
/// Joined part by part on Windows, so the path has native separators throughout.
#[cfg(windows)]
fn entry_path(tree: &Path, entry: &str) -> PathBuf {
    entry.split('/').filter(|p| !p.is_empty()).fold(tree.to_path_buf(), |p, part| p.join(part))
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
#[cfg(unix)]
const NOT_EXECUTABLE_HINT: &str = "chmod +x in git, or set interpreter";

/// Windows has no execute bit: a program (`.exe`, `.com`) or a PowerShell script runs without
/// an interpreter. Batch files do not: `CreateProcessW` would run them through `cmd.exe`.
#[cfg(windows)]
fn is_executable(p: &Path) -> bool {
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
    p.is_file() && ["exe", "com", "ps1"].iter().any(|x| ext.eq_ignore_ascii_case(x))
}
#[cfg(windows)]
const NOT_EXECUTABLE_HINT: &str = "on Windows only .exe, .com and .ps1 entries run without interpreter";

/// A PowerShell script, by its extension (any case).
#[cfg(windows)]
fn is_powershell(entry: &str) -> bool {
    entry.rsplit_once('.').is_some_and(|(_, ext)| ext.eq_ignore_ascii_case("ps1"))
}

/// A program that exists on every node, standing in for the entry in validate-all.
#[cfg(not(windows))]
const ANY_PROGRAM: &str = "/bin/true";
#[cfg(windows)]
const ANY_PROGRAM: &str = r"C:\Windows\System32\cmd.exe";

fn runs_with_powershell(c: &Config) -> bool {
    #[cfg(windows)]
    return c.interpreter.is_empty() && is_powershell(&c.entry);
    #[cfg(not(windows))]
    {
        let _ = c;
        false
    }
}

fn default_pidfile(ctx: &Context) -> PathBuf {
    PathBuf::from(RUN_DIR).join(format!("gitscript-{}.pid", ctx.state_name()))
}

fn tag(ctx: &Context) -> String {
    format!("gitscript:{}", ctx.state_name())
}

/// Parse the daemon agent's process parameters through the daemon agent itself, so they mean
/// exactly the same thing; `command` is a placeholder replaced at start.
fn process_params(v: &Values, ctx: &Context) -> OcfResult<Process> {
    let mut env = hale_ocf::Env::new();
    env.set("OCF_RESKEY_command", "placeholder");
    for k in [
        "workdir",
        "user",
        "environment",
        "logfile",
        "stop_signal",
        "health_url",
        "health_regex",
        "health_tcp",
        "health_command",
    ] {
        if let Some(x) = v.str(k) {
            env.set(format!("OCF_RESKEY_{k}"), x);
        }
    }
    for k in ["stop_timeout", "health_timeout"] {
        if let Some(d) = v.duration(k) {
            env.set(format!("OCF_RESKEY_{k}"), format!("{}", d.as_secs_f64()));
        }
    }
    let daemon = Daemon::new(Box::new(hale_backend::fake::FakeProcesses::new(&[], &[])));
    let values = Values::parse(<Daemon as Agent>::PARAMS, &env)?;
    let mut p = daemon.configure(&values, ctx)?;
    p.pidfile = match v.str("pidfile") {
        Some(f) if !Path::new(f).is_absolute() => {
            return Err(Failure::configured(format!("parameter pidfile='{f}' must be an absolute path")))
        }
        Some(f) => PathBuf::from(f),
        None => default_pidfile(ctx),
    };
    p.tag = tag(ctx);
    Ok(p)
}

impl Agent for GitScript {
    type Config = Config;

    const INFO: AgentInfo = AgentInfo {
        name: "gitscript",
        shortdesc: "Runs a script from a verified git commit",
        longdesc: "Runs a script kept in a git repository, from a commit that fast-forwards from \
                   the last one accepted and, with verify=signed, carries an SSH signature by an \
                   allowed signer. start fetches the master (needed only when nothing verified is \
                   deployed yet), checks the commit out into its own read-only tree and runs the \
                   entry as a supervised daemon or every period seconds. monitor depth 0 checks \
                   the process (no fork, no network); depth 10 compares the running commit with \
                   the master's verified tip and returns 190 (degraded) when behind or when the \
                   master is unreachable. reload-agent runs a newer verified commit.",
        version: env!("CARGO_PKG_VERSION"),
    };
    const PARAMS: &'static [Param] = PARAMS;
    const ACTIONS: &'static [ActionSpec] = ACTIONS;
    const CHECK_LEVELS: &'static [u32] = &[10];

    fn configure(&self, v: &Values, ctx: &Context) -> OcfResult<Config> {
        let (source, layout) = source_from(v)?;
        let entry = v.str("entry").unwrap_or_default().trim_start_matches("./").to_string();
        if entry.is_empty() || entry.starts_with('/') || entry.split('/').any(|p| p == "..") {
            return Err(Failure::configured(format!(
                "parameter entry='{entry}' must be a relative path inside the repository"
            )));
        }
        let interpreter = match v.str("interpreter") {
            None => Vec::new(),
            Some(i) => shlex::split(i).filter(|w| !w.is_empty()).ok_or_else(|| {
                Failure::configured(format!("parameter interpreter='{i}': unbalanced quotes or empty"))
            })?,
        };
        let mode = if v.str("mode") == Some("periodic") { Mode::Periodic } else { Mode::Daemon };
        let period = v.duration("period").unwrap_or(Duration::from_secs(60));
        if period.is_zero() {
            return Err(Failure::configured("parameter period must be more than 0"));
        }
        let max_failures = v.int("max_failures").unwrap_or(3);
        if max_failures < 1 {
            return Err(Failure::configured(format!("parameter max_failures={max_failures} must be at least 1")));
        }
        Ok(Config {
            source,
            layout,
            entry,
            interpreter,
            mode,
            period,
            max_failures: max_failures as u64,
            process: process_params(v, ctx)?,
        })
    }

    fn validate_host(&self, c: &Config, ctx: &Context) -> OcfResult<()> {
        validate_source(&c.source)?;
        // The interpreter and the user/workdir/logfile checks, as the daemon agent makes them.
        let mut p = self.process_for(c, "0", Path::new("/"))?;
        // No interpreter: the entry itself runs, and is checked at start, in its tree (a
        // PowerShell entry on Windows keeps its shell here, which must be installed).
        if c.interpreter.is_empty() && c.mode == Mode::Daemon && !runs_with_powershell(c) {
            p.argv = vec![ANY_PROGRAM.into()];
        }
        if c.process.workdir.is_none() {
            p.workdir = None;
        }
        self.daemon.validate_host(&p, ctx)
    }

    fn start(&self, c: &Config, ctx: &Context) -> OcfResult {
        let (commit, tree) = self.deploy(c, ctx)?;
        if self.alive(c)? {
            let running = GitScript::running_commit(c).unwrap_or_default();
            if running != commit {
                log::info!("already running commit {running}; {commit} runs after reload-agent or a restart");
            }
            return Ok(OcfStatus::Success);
        }
        // Whatever is recorded is gone: the daemon machinery cleans up strays before it starts.
        self.launch(c, &commit, &tree, ctx)
    }

    fn stop(&self, c: &Config, ctx: &Context) -> OcfResult {
        let p = self.process_for(c, "", Path::new("/"))?;
        let r = self.daemon.stop(&p, ctx)?;
        GitScript::forget(c);
        Ok(r)
    }

    fn stop_unconfigured(&self, ctx: &Context, problem: &Failure) -> OcfResult {
        let pidfile = ctx
            .env
            .param("pidfile")
            .filter(|p| Path::new(p).is_absolute())
            .map(PathBuf::from)
            .unwrap_or_else(|| default_pidfile(ctx));
        let mut env = ctx.env.clone();
        env.set("OCF_RESKEY_pidfile", pidfile.to_string_lossy().to_string());
        let ctx2 = Context { env, ..ctx.clone() };
        // The daemon agent's own fallback, with this agent's pidfile and tag.
        let p = Process {
            argv: vec!["unknown".into()],
            workdir: None,
            user: None,
            environment: Vec::new(),
            pidfile: pidfile.clone(),
            logfile: None,
            stop_signal: hale_backend::StopSignal::Term,
            stop_timeout: None,
            health: Default::default(),
            health_timeout: Duration::from_secs(5),
            tag: tag(ctx),
        };
        log::warn!("stopping with invalid parameters ({})", problem.reason);
        let r = self.daemon.stop(&p, &ctx2)?;
        let _ = std::fs::remove_file(pidfile.with_extension("commit"));
        let _ = std::fs::remove_file(pidfile.with_extension("runs"));
        Ok(r)
    }

    fn monitor(&self, c: &Config, ctx: &Context) -> OcfResult {
        let p = self.process_for(c, "", Path::new("/"))?;
        let status = self.daemon.monitor(&p, ctx)?;
        if status != OcfStatus::Success {
            return Ok(status);
        }
        if c.mode == Mode::Periodic {
            match periodic::RunState::read(&c.runs_file()) {
                Ok(Some(rs)) if rs.consecutive_failures >= c.max_failures => {
                    return Err(Failure::generic(format!(
                        "{} failed {} times in a row (last: {})",
                        c.entry, rs.consecutive_failures, rs.last
                    )))
                }
                Ok(_) => {}
                Err(e) => return Err(Failure::generic(e)),
            }
        }
        if ctx.check_level < 10 {
            return Ok(OcfStatus::Success);
        }
        self.compare_with_master(c, ctx)
    }

    /// Run a newer verified commit: sync, and restart the script if the commit changed.
    fn reload_agent(&self, c: &Config, ctx: &Context) -> OcfResult {
        let (commit, tree) = self.deploy(c, ctx)?;
        let running = GitScript::running_commit(c);
        let alive = self.alive(c)?;
        if alive && running.as_deref() == Some(commit.as_str()) {
            log::info!("already running the verified tip {commit}");
            return Ok(OcfStatus::Success);
        }
        if alive {
            log::info!("restarting {} from {} to {commit}", c.entry, running.as_deref().unwrap_or("an unknown commit"));
            let p = self.process_for(c, "", Path::new("/"))?;
            self.daemon.stop(&p, ctx)?;
        }
        self.launch(c, &commit, &tree, ctx)
    }
}

impl GitScript {
    /// Is the script (or supervisor) alive? The daemon agent's monitor: /proc only, no fork.
    fn alive(&self, c: &Config) -> OcfResult<bool> {
        let p = self.process_for(c, "", Path::new("/"))?;
        Ok(matches!(self.daemon.monitor(&p, &probe_ctx()), Ok(OcfStatus::Success)))
    }

    /// Depth 10: is the running commit the master's verified tip? Never a failure: 190 with a
    /// reason when behind, refused or unreachable.
    fn compare_with_master(&self, c: &Config, ctx: &Context) -> OcfResult {
        let running = GitScript::running_commit(c).unwrap_or_else(|| "unknown".into());
        let degraded =
            |why: String| Err(Failure::new(OcfStatus::Degraded, format!("{why}; running {}", short(&running))));
        let m = match Mirror::open(&c.layout, &c.source.name) {
            Ok(Some(m)) => m,
            Ok(None) => return degraded(format!("no mirror {}", c.layout.mirror(&c.source.name).display())),
            Err(e) => return degraded(e),
        };
        if !ctx.probe {
            if let Err(e) = m.fetch(&c.source.url, fetch_budget(ctx)) {
                return degraded(format!("master unreachable: {e}"));
            }
        }
        let signers = match c.source.signers() {
            Ok(s) => s,
            Err(e) => return degraded(format!("cannot verify: {e}")),
        };
        match m.check(&c.source.reference, signers.as_ref()) {
            Check::UpToDate(tip) if tip.to_string() == running => Ok(OcfStatus::Success),
            Check::UpToDate(tip) | Check::Advance { tip, .. } => degraded(format!(
                "behind: the verified tip of {} is {}; reload-agent or restart runs it",
                c.source.reference,
                short(&tip.to_string())
            )),
            Check::Refused { reason, .. } => degraded(format!("master tip not deployable, {reason}")),
            Check::NoTip(r) => degraded(r),
        }
    }
}

/// A context for internal state reads (the daemon monitor reads /proc only).
fn probe_ctx() -> Context {
    Context::new(Action::Monitor, &hale_ocf::Env::new(), &[0], Duration::from_secs(5))
}

#[cfg(all(test, windows))]
mod windows_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use hale_ocf::{execute, Env};

    fn run(action: &str, params: &[(&str, &str)]) -> hale_ocf::Execution {
        let mut env = Env::new();
        env.set("OCF_RESOURCE_INSTANCE", "job").set("OCF_RESKEY_CRM_meta_timeout", "5000");
        for (k, v) in params {
            env.set(format!("OCF_RESKEY_{k}"), *v);
        }
        let a = GitScript::new(Box::new(hale_backend::fake::FakeProcesses::new(&[ANY_PROGRAM], &[])));
        execute(&a, Some(action), &env)
    }

    #[test]
    fn configuration_errors_are_6_with_reasons() {
        let master = if cfg!(windows) { r"C:\srv\git\ops.git" } else { "/srv/git/ops.git" };
        let ok = [("repository", master), ("entry", "bin/job"), ("verify", "none")];
        assert_eq!(run("validate-all", &ok).status, OcfStatus::Success);
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("entry", "../etc/passwd")], "relative path inside"),
            (&[("repository", "https://example.com/x.git")], "no TLS"),
            (&[("verify", "signed")], "needs allowed_signers"),
            (&[("interpreter", "sh 'x")], "unbalanced"),
            (&[("max_failures", "0")], "at least 1"),
            (&[("stop_signal", "NOPE")], "stop_signal"),
            (&[("pidfile", "x.pid")], "absolute"),
        ];
        for (set, reason) in cases {
            let mut p = ok.to_vec();
            p.retain(|(k, _)| !set.iter().any(|(s, _)| s == k));
            p.extend_from_slice(set);
            let e = run("validate-all", &p);
            assert_eq!(e.status, OcfStatus::ErrConfigured, "{set:?}");
            assert!(e.reason.as_deref().unwrap_or("").contains(reason), "{set:?}: {:?}", e.reason);
        }
    }
}
