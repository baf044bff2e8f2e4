//! The runner: everything that is the same for every agent. It turns an action name and an
//! environment into an [`Execution`], and [`run_and_report`] (with [`main`] for an agent's own
//! binary) turns that into an exit code and an `ocf-exit-reason:` line. Agents never exit,
//! print or catch panics themselves.

use crate::action::Action;
use crate::agent::{Agent, Context};
use crate::env::Env;
use crate::erased::AnyAgent;
use crate::logging::{Logger, SyslogSink};
use crate::metadata;
use crate::schema::Values;
use crate::status::{Failure, OcfResult, OcfStatus};
use std::cell::RefCell;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

/// The advised timeout used when neither the manager nor the agent gives one.
const FALLBACK_TIMEOUT: Duration = Duration::from_secs(20);

/// The result of one action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Execution {
    pub status: OcfStatus,
    /// Why, for a person: printed as the exit reason on failure.
    pub reason: Option<String>,
    /// What goes to stdout (meta-data).
    pub stdout: Option<String>,
}

impl Execution {
    fn from_result(r: OcfResult) -> Execution {
        match r {
            Ok(status) => Execution { status, reason: None, stdout: None },
            Err(f) => Execution { status: f.status, reason: Some(one_line(&f.reason)), stdout: None },
        }
    }

    /// The `ocf-exit-reason:` line to print, if any: every failure has one (a default is made
    /// up if the agent gave none); 7 and degraded results have one when the agent said why.
    pub fn exit_reason_line(&self, prefix: &str) -> Option<String> {
        let reason = match (&self.reason, self.status.is_failure()) {
            (Some(r), _) => r.clone(),
            (None, true) => format!("action failed: {}", self.status.describe()),
            (None, false) => return None,
        };
        Some(format!("{prefix}{}", one_line(&reason)))
    }
}

/// Pacemaker keeps the exit reason up to the first newline; make sure it is all there.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

thread_local! {
    /// The message of the last panic on this thread, captured by the hook so it can become the
    /// exit reason. Per thread: a panic elsewhere (a host running agents on several threads, or
    /// tests) never lends its message to this action.
    // Debian's clippy 1.96 (the Windows cross-build) flags this const initialiser as missing one.
    #[allow(clippy::missing_const_for_thread_local)]
    static PANIC_MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // The default hook still runs: its message on stderr helps whoever reads the agent's
    // output, and Pacemaker takes only the `ocf-exit-reason:` line from it.
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "unknown panic".to_string()
            };
            let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            let full = format!("{msg}{at}");
            log::error!("internal error: {full}");
            PANIC_MESSAGE.with(|slot| *slot.borrow_mut() = Some(full));
            previous(info);
        }))
    });
}

/// Run `action` (the agent's sole argument) of `agent` in `env`.
pub fn execute<A: Agent>(agent: &A, action: Option<&str>, env: &Env) -> Execution {
    let info = A::INFO;
    let supported = metadata::supported_actions(A::ACTIONS);
    let Some(action) = action.and_then(Action::parse).filter(|a| supported.contains(a)) else {
        let usage = Action::usage(info.name, &supported);
        let what = match action {
            None => "no action given".to_string(),
            Some(a) => format!("action '{a}' is not supported by {}", info.name),
        };
        return Execution::from_result(Err(Failure::unimplemented(format!("{what}; {usage}"))));
    };
    if action == Action::MetaData {
        let xml = metadata::render(&info, A::PARAMS, A::ACTIONS, env.ocf_version());
        return Execution { status: OcfStatus::Success, reason: None, stdout: Some(xml) };
    }
    let advised = A::ACTIONS
        .iter()
        .find(|a| a.action == action)
        .map(|a| Duration::from_secs(a.timeout.into()))
        .unwrap_or(FALLBACK_TIMEOUT);
    let mut levels = vec![0];
    levels.extend_from_slice(A::CHECK_LEVELS);
    let ctx = Context::new(action, env, &levels, advised);
    install_panic_hook();

    let outcome = panic::catch_unwind(AssertUnwindSafe(|| dispatch(agent, &ctx, env)));
    let result = outcome.unwrap_or_else(|_| {
        let msg = PANIC_MESSAGE.with(|m| m.borrow_mut().take()).unwrap_or_else(|| "unknown panic".into());
        Err(Failure::generic(format!("internal error in {} {}: {msg}", info.name, action)))
    });
    Execution::from_result(result)
}

fn dispatch<A: Agent>(agent: &A, ctx: &Context, env: &Env) -> OcfResult {
    let config = Values::parse(A::PARAMS, env).and_then(|values| {
        log::debug!("{} {}: {}", A::INFO.name, ctx.action, values.display_safe());
        agent.configure(&values, ctx)
    });
    let config = match config {
        Ok(c) => c,
        Err(problem) => return invalid_environment(agent, ctx, problem),
    };
    match ctx.action {
        Action::Start => {
            agent.validate_host(&config, ctx)?;
            agent.start(&config, ctx)
        }
        Action::Stop => agent.stop(&config, ctx),
        Action::Monitor => agent.monitor(&config, ctx),
        Action::ValidateAll => {
            if ctx.check_level >= 10 {
                agent.validate_host(&config, ctx)?;
            }
            Ok(OcfStatus::Success)
        }
        Action::Promote => agent.promote(&config, ctx),
        Action::Demote => agent.demote(&config, ctx),
        Action::Notify => agent.notify(&config, ctx),
        Action::Reload => agent.reload(&config, ctx),
        Action::ReloadAgent => agent.reload_agent(&config, ctx),
        Action::MigrateTo => agent.migrate_to(&config, ctx),
        Action::MigrateFrom => agent.migrate_from(&config, ctx),
        Action::MetaData => Ok(OcfStatus::Success),
    }
}

/// The parameters do not parse. As `ocf-rarun` does: stop still succeeds (after stopping
/// whatever the agent can find without them), a probe says "not running" (nothing can run
/// with this configuration), a recurring monitor fails, anything else reports the problem.
fn invalid_environment<A: Agent>(agent: &A, ctx: &Context, problem: Failure) -> OcfResult {
    match ctx.action {
        Action::Stop => {
            log::warn!("stop with invalid parameters ({}); stopping what can be found", problem.reason);
            agent.stop_unconfigured(ctx, &problem)
        }
        Action::Monitor if ctx.probe => {
            log::info!("probe with invalid parameters ({}): not running", problem.reason);
            Ok(OcfStatus::NotRunning)
        }
        Action::Monitor => Err(Failure::generic(problem.reason)),
        _ => Err(problem),
    }
}

/// The `main` of an agent's own binary: read argv and the process environment, run, print,
/// exit. `syslog` is the OS backend's syslog writer.
pub fn main(agent: &dyn AnyAgent, syslog: Option<Box<dyn SyslogSink>>) -> ! {
    let env = Env::from_process();
    let action = std::env::args().nth(1);
    let code = run_and_report(agent, action.as_deref(), &env, syslog);
    std::process::exit(code)
}

/// Run, print meta-data to stdout and the exit reason to stderr, log the outcome, and return
/// the exit code. Shared by the agents' own binaries and the multi-call `hale` binary.
pub fn run_and_report(
    agent: &dyn AnyAgent,
    action: Option<&str>,
    env: &Env,
    syslog: Option<Box<dyn SyslogSink>>,
) -> i32 {
    // meta-data must be fast and side-effect free (the controller may wait on it): no logging.
    let logs_to_stderr = action == Some("meta-data") || Logger::install(env, agent.info().name, syslog);
    let exec = agent.execute(action, env);
    if let Some(out) = &exec.stdout {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
    }
    if let Some(line) = exec.exit_reason_line(env.exit_reason_prefix()) {
        let text = exec.reason.as_deref().unwrap_or(&line);
        if logs_to_stderr {
            // The exit-reason line below says it already.
        } else if exec.status.is_failure() {
            log::error!("{} failed: {text}", action.unwrap_or("(none)"));
        } else {
            log::info!("{}: {} ({text})", action.unwrap_or("(none)"), exec.status.describe());
        }
        let _ = writeln!(std::io::stderr(), "{line}");
    }
    exec.status.code()
}
