//! `hale-wsfc`: configure a resource instance, run its agent's actions, and host it as a
//! Windows service (`service`), a Generic Application (`app`) or behind a Generic Script.

use clap::{Parser, Subcommand};
use hale_wsfc::config::{self, ResourceConfig};
use hale_wsfc::host::{self, Host};
use hale_wsfc::{mapping, script, supervise};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[cfg(windows)]
mod service;

#[derive(Parser)]
#[command(name = "hale-wsfc", version, about = "Hale agents under Windows Server Failover Clustering")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Store (or replace) the configuration of a resource instance; the parameters are
    /// checked by the agent's validate-all first.
    Configure {
        name: String,
        #[arg(long)]
        agent: String,
        /// An agent parameter, NAME=VALUE (repeat).
        #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Also read NAME=VALUE lines from standard input (blank and # lines skipped): keeps
        /// secrets out of the command line, where other users could see them.
        #[arg(long)]
        params_stdin: bool,
        /// Seconds between monitors (default: the agent's advised interval).
        #[arg(long)]
        interval: Option<u32>,
        /// Every Nth monitor runs at depth 10 (health checks); 0 never.
        #[arg(long)]
        deep_every: Option<u32>,
        #[arg(long)]
        start_timeout: Option<u32>,
        #[arg(long)]
        stop_timeout: Option<u32>,
        #[arg(long)]
        monitor_timeout: Option<u32>,
    },
    /// Remove a resource's configuration.
    Unconfigure {
        name: String,
    },
    /// Run one agent action for a resource; the exit code is the OCF result.
    Start {
        name: String,
    },
    Stop {
        name: String,
    },
    Monitor {
        name: String,
        /// Depth 10 (health checks) instead of 0.
        #[arg(long)]
        deep: bool,
    },
    ValidateAll {
        name: String,
    },
    /// Print an agent's OCF meta-data.
    MetaData {
        agent: String,
    },
    /// List the agents this build hosts.
    Agents,
    /// Run as the Windows service of a resource (started by the service manager only).
    Service {
        name: String,
    },
    /// Run as a WSFC Generic Application: stop leftovers, start, monitor until failure.
    App {
        name: String,
    },
    /// Write the JScript for a WSFC Generic Script resource.
    Script {
        name: String,
        /// Where to write it (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Register the Windows service `hale-<name>` for a configured resource (and the Event Log source).
    Install {
        name: String,
    },
    /// Remove the Windows service `hale-<name>`.
    Uninstall {
        name: String,
    },
    /// Print the table of what WSFC sees for each OCF result.
    ResultTable,
    /// gitscript's periodic mode: run a command every period (started by the agent only).
    #[command(name = "gitscript-supervise", hide = true)]
    GitscriptSupervise {
        /// The state file the monitor reads.
        #[arg(long)]
        state: PathBuf,
        /// Seconds between the starts of two runs.
        #[arg(long)]
        period: f64,
        /// The command (argv, no shell).
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
}

fn fail(code: u8, msg: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "hale-wsfc: {msg}");
    ExitCode::from(code)
}

/// Exit code 6 (OCF "not configured") for configuration problems of the resource.
const NOT_CONFIGURED: u8 = 6;

fn action(name: &str, action: &str, depth: Option<host::Depth>) -> ExitCode {
    let h = match Host::load(name, false) {
        Ok(h) => h,
        Err(e) => {
            supervise::event(supervise::Event::ConfigInvalid, &e);
            // Stop of an unconfigured resource has nothing to stop: success, as OCF wants.
            return if action == "stop" { ExitCode::SUCCESS } else { fail(NOT_CONFIGURED, &e) };
        }
    };
    host::install_logger(&h);
    let e = h.run(action, depth);
    if let Some(line) = e.exit_reason_line("ocf-exit-reason:") {
        let _ = writeln!(std::io::stderr(), "{line}");
    }
    ExitCode::from(e.status.code() as u8)
}

fn configure(name: &str, agent: &str, params: &[String], knobs: [Option<u32>; 5]) -> ExitCode {
    if let Err(e) = config::check_name(name) {
        return fail(2, &e);
    }
    let Some(a) = host::agent(agent, false) else {
        return fail(2, &format!("unknown agent '{agent}'; this build hosts: {}", host::agents().join(", ")));
    };
    let mut c = ResourceConfig::with_agent_defaults(agent, a.actions());
    for p in params {
        let Some((k, v)) = p.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return fail(2, &format!("--param '{p}' is not NAME=VALUE"));
        };
        if !a.params().iter().any(|d| d.name == k) {
            return fail(2, &format!("agent {agent} has no parameter '{k}'"));
        }
        c.params.insert(k.to_string(), v.to_string());
    }
    let [interval, deep, start, stop, monitor] = knobs;
    c.interval = interval.unwrap_or(c.interval).max(1);
    c.deep_every = deep.unwrap_or(c.deep_every);
    c.start_timeout = start.unwrap_or(c.start_timeout).max(1);
    c.stop_timeout = stop.unwrap_or(c.stop_timeout).max(1);
    c.monitor_timeout = monitor.unwrap_or(c.monitor_timeout).max(1);
    let h = Host { name: name.to_string(), config: c, agent: a };
    let v = h.agent.execute(Some("validate-all"), &h.env("validate-all", None));
    if v.status.is_failure() {
        return fail(v.status.code() as u8, &format!("not saved: {}", host::summary(&v)));
    }
    match config::save(name, &h.config) {
        Ok(path) => {
            println!("saved {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, &e),
    }
}

/// Generic Application mode. WSFC counts the resource online as soon as this process exists
/// and takes it offline by terminating it: stop never runs then, the services die with the
/// kill-on-close Job Object, and the stop at the next start cleans up what is left.
fn app(name: &str) -> ExitCode {
    let h = match Host::load(name, true) {
        Ok(h) => h,
        Err(e) => {
            supervise::event(supervise::Event::ConfigInvalid, &e);
            return fail(NOT_CONFIGURED, &e);
        }
    };
    host::install_logger(&h);
    let cleanup = h.run("stop", None);
    if cleanup.status.is_failure() {
        return fail(cleanup.status.code() as u8, &format!("cleanup before start failed: {}", host::summary(&cleanup)));
    }
    struct Quiet;
    impl supervise::StatusReport for Quiet {
        fn start_pending(&self, _: std::time::Duration) {}
        fn running(&self) {}
        fn stop_pending(&self, _: std::time::Duration) {}
    }
    // No control ever arrives: the sender stays alive for the whole run.
    let (_keep, rx) = std::sync::mpsc::channel();
    let ended = supervise::supervise(&h, &Quiet, &rx);
    ExitCode::from(ended.code().min(255) as u8)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Configure {
            name,
            agent,
            mut params,
            params_stdin,
            interval,
            deep_every,
            start_timeout,
            stop_timeout,
            monitor_timeout,
        } => {
            if params_stdin {
                let mut text = String::new();
                if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
                    return fail(1, &format!("cannot read parameters from standard input: {e}"));
                }
                params.extend(
                    text.lines()
                        .map(|l| l.trim_end_matches('\r'))
                        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                        .map(str::to_string),
                );
            }
            configure(&name, &agent, &params, [interval, deep_every, start_timeout, stop_timeout, monitor_timeout])
        }
        Command::Unconfigure { name } => match config::remove(&name) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(1, &e),
        },
        Command::Start { name } => action(&name, "start", None),
        Command::Stop { name } => action(&name, "stop", None),
        Command::Monitor { name, deep } => {
            action(&name, "monitor", Some(if deep { host::Depth::Deep } else { host::Depth::Shallow }))
        }
        Command::ValidateAll { name } => action(&name, "validate-all", None),
        Command::MetaData { agent } => match host::agent(&agent, false) {
            Some(a) => {
                let mut env = hale_ocf::Env::new();
                env.set("OCF_RA_VERSION_MAJOR", "1").set("OCF_RA_VERSION_MINOR", "1");
                print!("{}", a.execute(Some("meta-data"), &env).stdout.unwrap_or_default());
                ExitCode::SUCCESS
            }
            None => fail(2, &format!("unknown agent '{agent}'")),
        },
        Command::Agents => {
            for a in host::agents() {
                println!("{a}");
            }
            ExitCode::SUCCESS
        }
        Command::App { name } => app(&name),
        Command::GitscriptSupervise { state, period, argv } => {
            let env = hale_ocf::Env::from_process();
            hale_ocf::logging::Logger::install(&env, "gitscript", hale_backend::syslog());
            let period = std::time::Duration::try_from_secs_f64(period).unwrap_or(std::time::Duration::from_secs(60));
            ExitCode::from(hale_gitscript::periodic::supervise(&state, period, &argv).clamp(0, 255) as u8)
        }
        Command::Script { name, output } => {
            if let Err(e) = config::check_name(&name) {
                return fail(2, &e);
            }
            let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("hale-wsfc.exe"));
            let text = script::generate(&name, &exe);
            match output {
                Some(p) => match std::fs::write(&p, text) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(1, &format!("cannot write {}: {e}", p.display())),
                },
                None => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
            }
        }
        Command::ResultTable => {
            print!("{}", mapping::result_table());
            ExitCode::SUCCESS
        }
        #[cfg(windows)]
        Command::Service { name } => service::run(&name),
        #[cfg(windows)]
        Command::Install { name } => service::install(&name),
        #[cfg(windows)]
        Command::Uninstall { name } => service::uninstall(&name),
        #[cfg(not(windows))]
        Command::Service { .. } | Command::Install { .. } | Command::Uninstall { .. } => {
            fail(3, "service, install and uninstall exist on Windows only")
        }
    }
}
