//! `ocf:hale:gitscript` — run a script from a verified commit of a git repository.
//!
//! It replaces PSSCluster's scheduled PowerShell scripts without their weaknesses: the script
//! is supervised (a crash is a monitor failure, so the cluster recovers or fails over); a
//! failed fetch or a refused commit is reported (exit reason, log, `190` from the depth-10
//! monitor), never silently ignored; with `verify=signed` (the default) only commits signed by
//! a key in `allowed_signers` run; a history rewrite on the master is refused.
//!
//! start syncs the node's mirror (see `hale-gitrepo`), deploys the accepted commit into its own
//! read-only tree and runs the entry from that tree under `hale-supervise` (detached, tagged,
//! a pidfile record that proves the process is ours, graceful stop escalating to SIGKILL
//! inside the timeout, a per-instance lock around start, stop and reload). A reachable master is needed only when nothing verified is deployed yet: a node
//! that lost the master still starts the last good commit. In `periodic` mode the service is a
//! small supervisor that runs the entry every `period` (see [`periodic`]).
//!
//! The commit a running instance uses is recorded next to its pidfile (`.commit`, written
//! atomically by root and read back only from a root-owned regular file), so monitor depth 10
//! can compare it with the master's verified tip; the runs of periodic mode are kept in the
//! directory `.runs` beside it, created by the agent for the script's user (the supervisor runs
//! as that user and replaces `.runs/state` atomically inside it). Both go with the pidfile at
//! stop; the deployed trees stay for the next start.

pub mod periodic;

use hale_backend::{entry_path, is_executable, runs_in_shell, script_argv, NOT_EXECUTABLE_HINT};
use hale_gitrepo::params::{fetch_budget, source_from, sync_deadline, validate_source, SOURCE_COUNT, SOURCE_PARAMS};
use hale_gitrepo::{Check, Layout, Mirror, Source};
use hale_ocf::{Action, ActionSpec, Agent, AgentInfo, Context, Failure, Kind, OcfResult, OcfStatus, Param, Values};
use hale_supervise::{LockFor, Spec, Supervisor, HEALTH_PARAMS, PROCESS_PARAMS};
use std::path::{Path, PathBuf};
use std::time::Duration;

const AGENT: &str = "gitscript";

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
    SOURCE[6],
    SOURCE[7],
    SOURCE[8],
    SOURCE[9],
    SOURCE[10],
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
    Param { longdesc: "The directory the script starts in. Default: its deployed tree.", ..PROCESS_PARAMS[0] },
    PROCESS_PARAMS[1],
    Param {
        longdesc: "Extra environment: KEY=VALUE entries separated by spaces, quoted like shell words. \
                   The script also gets PATH, HALE_COMMIT (the deployed commit id) and \
                   HALE_REPOSITORY (the mirror name), never the cluster's environment. Values are \
                   never logged.",
        ..PROCESS_PARAMS[2]
    },
    Param {
        longdesc: "Where the agent records the script's (or supervisor's) process: one line 'PID \
                   START_TIME MARK', written by the agent (root) only; a file there that is not \
                   such a record is left alone, monitor fails and start refuses. The deployed \
                   commit (.commit) and periodic runs (.runs) are kept beside it. Default: \
                   /run/hale/gitscript-INSTANCE.pid. Only root should be able to write its directory.",
        ..PROCESS_PARAMS[3]
    },
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
    /// The process settings; `argv` (empty here) and `workdir` (unset: the tree) are filled in
    /// by start from the deployed tree.
    pub process: Spec,
}

impl Config {
    fn commit_file(&self) -> PathBuf {
        commit_file(&self.process.pidfile)
    }
    fn runs_file(&self) -> PathBuf {
        runs_dir(&self.process.pidfile).join("state")
    }
}

fn commit_file(pidfile: &Path) -> PathBuf {
    pidfile.with_extension("commit")
}

fn runs_dir(pidfile: &Path) -> PathBuf {
    pidfile.with_extension("runs")
}

/// The first 12 characters of a commit id (of any text: never a split character).
fn short(c: &str) -> String {
    c.chars().take(12).collect()
}

/// The agent. Processes are run by `hale-supervise`.
pub struct GitScript {
    sup: Supervisor,
}

impl GitScript {
    pub fn new(procs: Box<dyn hale_backend::Processes>) -> GitScript {
        GitScript { sup: Supervisor::new(procs) }
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

    /// The argv that runs the entry in `tree`: interpreter + path. With no interpreter, a
    /// PowerShell entry on Windows runs with PowerShell (see [`hale_backend::script_argv`]).
    fn entry_argv(&self, c: &Config, tree: &Path) -> Vec<String> {
        script_argv(self.sup.processes(), &c.interpreter, &entry_path(tree, &c.entry), c.process.path_var())
    }

    /// The process that runs `commit` from `tree`.
    fn spec_for(&self, c: &Config, commit: &str, tree: &Path) -> OcfResult<Spec> {
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
        Ok(Spec {
            argv,
            workdir: Some(c.process.workdir.clone().unwrap_or_else(|| tree.to_path_buf())),
            environment,
            ..c.process.clone()
        })
    }

    /// The spec to look at or stop the running instance: its messages name the entry.
    fn running_spec(c: &Config) -> Spec {
        Spec { argv: vec![c.entry.clone()], ..c.process.clone() }
    }

    /// The commit recorded for the running instance: read from a root-owned regular file (no
    /// symlink), and only a commit id (hex) counts; anything else is unknown.
    fn running_commit(c: &Config) -> Option<String> {
        let bytes = hale_backend::files::read_owned_nofollow(&c.commit_file(), 256).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let id = text.trim();
        let hex = matches!(id.len(), 40 | 64) && id.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex {
            log::warn!("{} does not hold a commit id; the running commit is unknown", c.commit_file().display());
        }
        hex.then(|| id.to_string())
    }

    /// A fresh `.runs` directory for periodic mode's supervisor, owned by the script's user so
    /// it can replace its state file atomically there (the supervisor runs as that user).
    fn fresh_runs_dir(c: &Config) -> OcfResult<()> {
        let dir = runs_dir(&c.process.pidfile);
        let fail = |e: std::io::Error| Failure::generic(format!("cannot prepare {}: {e}", dir.display()));
        GitScript::remove_runs(&dir).map_err(fail)?;
        hale_backend::files::ensure_dir(&dir, 0o755).map_err(fail)?;
        if let Some(u) = &c.process.user {
            hale_backend::files::give_to_user(&dir, u).map_err(fail)?;
        }
        Ok(())
    }

    /// Remove the `.runs` directory (or a file of an older version, or a link planted there:
    /// the link itself goes, never what it points to).
    fn remove_runs(dir: &Path) -> std::io::Result<()> {
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(dir),
            Ok(_) => std::fs::remove_file(dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Launch `commit` (the process is known not to run; the caller holds the lock).
    fn launch(&self, c: &Config, commit: &str, tree: &Path, ctx: &Context) -> OcfResult {
        let p = self.spec_for(c, commit, tree)?;
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
        self.sup.validate_host(&p)?;
        if ctx.deadline.remaining() <= ctx.deadline.margin() {
            return Err(Failure::generic(format!(
                "the {} timeout ({:.0}s) ran out while syncing and deploying commit {}",
                ctx.action,
                ctx.deadline.budget().as_secs_f32(),
                short(commit)
            )));
        }
        if c.mode == Mode::Periodic {
            GitScript::fresh_runs_dir(c)?;
        }
        let commit_file = c.commit_file();
        if let Some(dir) = commit_file.parent() {
            hale_backend::files::ensure_dir(dir, 0o755)
                .map_err(|e| Failure::generic(format!("cannot create {}: {e}", dir.display())))?;
        }
        hale_backend::files::write_atomic(&commit_file, format!("{commit}\n").as_bytes(), 0o644)
            .map_err(|e| Failure::generic(format!("cannot write {}: {e}", commit_file.display())))?;
        self.sup.start(&p, ctx)?;
        let mode = if c.mode == Mode::Periodic { "periodic" } else { "daemon" };
        log::info!("started {} of {} at commit {commit} ({mode} mode)", c.entry, c.source.name);
        Ok(OcfStatus::Success)
    }

    fn forget(pidfile: &Path) {
        let _ = std::fs::remove_file(commit_file(pidfile));
        let _ = GitScript::remove_runs(&runs_dir(pidfile));
    }
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
        let period = v.seconds("period");
        if period.is_zero() {
            return Err(Failure::configured("parameter period must be more than 0"));
        }
        let max_failures = v.integer("max_failures");
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
            process: hale_supervise::spec_from(AGENT, v, ctx)?,
        })
    }

    fn validate_host(&self, c: &Config, _ctx: &Context) -> OcfResult<()> {
        validate_source(&c.source)?;
        // The interpreter and the user/workdir/logfile checks, on a stand-in tree.
        let mut p = self.spec_for(c, "0", Path::new("/"))?;
        // No interpreter: the entry itself runs, and is checked at start, in its tree (a
        // PowerShell entry on Windows keeps its shell here, which must be installed).
        if c.interpreter.is_empty() && c.mode == Mode::Daemon && !runs_in_shell(&c.entry) {
            p.argv.clear();
        }
        if c.process.workdir.is_none() {
            p.workdir = None;
        }
        self.sup.validate_host(&p)
    }

    fn start(&self, c: &Config, ctx: &Context) -> OcfResult {
        let _lock = self.sup.lock(&c.process, LockFor::Start, ctx)?;
        let (commit, tree) = self.deploy(c, ctx)?;
        if self.sup.is_running(&c.process) {
            let running = GitScript::running_commit(c).unwrap_or_default();
            if running != commit {
                log::info!("already running commit {running}; {commit} runs after reload-agent or a restart");
            }
            return Ok(OcfStatus::Success);
        }
        // Whatever is recorded is gone: the supervisor cleans up strays before it starts.
        self.launch(c, &commit, &tree, ctx)
    }

    fn stop(&self, c: &Config, ctx: &Context) -> OcfResult {
        let _lock = self.sup.lock(&c.process, LockFor::Stop, ctx)?;
        let r = self.sup.stop(&GitScript::running_spec(c), ctx)?;
        GitScript::forget(&c.process.pidfile);
        Ok(r)
    }

    fn stop_unconfigured(&self, ctx: &Context, problem: &Failure) -> OcfResult {
        let p = Spec::minimal(AGENT, ctx);
        log::warn!("stopping with invalid parameters ({})", problem.reason);
        let _lock = self.sup.lock(&p, LockFor::Stop, ctx)?;
        let r = self.sup.stop(&p, ctx)?;
        GitScript::forget(&p.pidfile);
        Ok(r)
    }

    fn monitor(&self, c: &Config, ctx: &Context) -> OcfResult {
        let status = self.sup.monitor(&GitScript::running_spec(c), ctx)?;
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
        let _lock = self.sup.lock(&c.process, LockFor::Start, ctx)?;
        let (commit, tree) = self.deploy(c, ctx)?;
        let running = GitScript::running_commit(c);
        let alive = self.sup.is_running(&c.process);
        if alive && running.as_deref() == Some(commit.as_str()) {
            log::info!("already running the verified tip {commit}");
            return Ok(OcfStatus::Success);
        }
        if alive {
            log::info!("restarting {} from {} to {commit}", c.entry, running.as_deref().unwrap_or("an unknown commit"));
            self.sup.stop(&GitScript::running_spec(c), ctx)?;
        }
        self.launch(c, &commit, &tree, ctx)
    }
}

impl GitScript {
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
            if let Err(e) = m.fetch(&c.source, fetch_budget(ctx)) {
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
        let a = GitScript::new(Box::new(hale_backend::fake::FakeProcesses::new(&[hale_backend::ANY_PROGRAM], &[])));
        execute(&a, Some(action), &env)
    }

    #[test]
    fn configuration_errors_are_6_with_reasons() {
        let master = if cfg!(windows) { r"C:\srv\git\ops.git" } else { "/srv/git/ops.git" };
        let ok = [("repository", master), ("entry", "bin/job"), ("verify", "none")];
        assert_eq!(run("validate-all", &ok).status, OcfStatus::Success);
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("entry", "../etc/passwd")], "relative path inside"),
            (&[("repository", "http://example.com/x.git")], "plain http:// is refused"),
            (&[("repository", "https://u:pw@example.com/x.git")], "must not hold credentials"),
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

    fn config(params: &[(&str, &str)]) -> Config {
        let mut env = Env::new();
        env.set("OCF_RESOURCE_INSTANCE", "job");
        for (k, v) in params {
            env.set(format!("OCF_RESKEY_{k}"), *v);
        }
        let a = GitScript::new(Box::new(hale_backend::fake::FakeProcesses::new(&[], &[])));
        let ctx = Context::new(Action::Monitor, &env, &[0, 10], Duration::from_secs(20));
        a.configure(&Values::parse(GitScript::PARAMS, &env).unwrap(), &ctx).unwrap()
    }

    #[test]
    fn a_commit_record_that_is_not_a_commit_id_is_unknown_never_a_panic() {
        let dir = std::env::temp_dir().join(format!("hale-gitscript-commit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("g.pid").display().to_string();
        let master = if cfg!(windows) { r"C:\srv\git\ops.git" } else { "/srv/git/ops.git" };
        let c = config(&[("repository", master), ("entry", "bin/job"), ("verify", "none"), ("pidfile", &pidfile)]);
        let id = "0123456789abcdef0123456789abcdef01234567";
        std::fs::write(c.commit_file(), format!("{id}\n")).unwrap();
        assert_eq!(GitScript::running_commit(&c).as_deref(), Some(id));
        for bad in
            [&b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4\xf3"[..], "xéééééééééééé".as_bytes(), b"../../x"]
        {
            std::fs::write(c.commit_file(), bad).unwrap();
            assert_eq!(GitScript::running_commit(&c), None);
        }
        assert_eq!(short("ééééééééééééééé"), "éééééééééééé");
        // Depth 10 with no mirror: degraded, with the unknown commit, never an internal error.
        let env = {
            let mut e = Env::new();
            e.set("OCF_RESOURCE_INSTANCE", "job");
            e
        };
        let ctx = Context::new(Action::Monitor, &env, &[0, 10], Duration::from_secs(20));
        let a = GitScript::new(Box::new(hale_backend::fake::FakeProcesses::new(&[], &[])));
        let e = a.compare_with_master(&c, &ctx).unwrap_err();
        assert_eq!(e.status, OcfStatus::Degraded);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
