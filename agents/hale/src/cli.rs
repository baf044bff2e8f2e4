//! The `hale` subcommands.

use crate::{describe, install, man, repo};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use hale_ocf::AnyAgent;
use hale_ocf::{Action, Env};
use hale_registry as registry;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "hale", version, about = "Hale OCF resource agents: list, describe, run and install them")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum OcfVer {
    #[value(name = "1.0")]
    V10,
    #[value(name = "1.1")]
    V11,
}

#[derive(Subcommand)]
enum Command {
    /// List the agents, as ocf:hale:<name>.
    List,
    /// Show an agent's parameters and actions as readable text.
    Describe { agent: String },
    /// Print an agent's meta-data XML (OCF 1.1 unless --ocf 1.0).
    MetaData {
        agent: String,
        #[arg(long, value_enum, default_value = "1.1")]
        ocf: OcfVer,
    },
    /// Run one action with the environment Pacemaker would give it, and explain the result.
    Run {
        agent: String,
        action: String,
        /// A parameter, as key=value (repeatable).
        #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Run monitor as a probe (no interval), as Pacemaker does on every node.
        #[arg(long)]
        probe: bool,
        /// OCF_CHECK_LEVEL for monitor and validate-all.
        #[arg(long)]
        depth: Option<u32>,
        /// The operation timeout in seconds (CRM_meta_timeout).
        #[arg(long, default_value_t = 20)]
        timeout: u64,
        /// The resource instance name (OCF_RESOURCE_INSTANCE).
        #[arg(long, default_value = "hale-run")]
        instance: String,
    },
    /// Install every agent as DIR/resource.d/hale/<agent> (DIR is usually /usr/lib/ocf).
    Install {
        #[arg(long, value_name = "DIR", default_value = "/usr/lib/ocf")]
        ocf_root: PathBuf,
    },
    /// Print a manual page in roff: hale(8), or ocf_hale_AGENT(7) for an agent.
    Man {
        agent: Option<String>,
        /// Write every page (man8/hale.8, man7/ocf_hale_<agent>.7) under DIR instead.
        #[arg(long, value_name = "DIR", conflicts_with = "agent")]
        out_dir: Option<PathBuf>,
    },
    /// Print the completion script for a shell.
    Completions { shell: clap_complete::Shell },
    /// Host locks for maintenance: acquire, renew, release, status, deps, history, run.
    ///
    /// `hale lock SUBCOMMAND --help` shows each one. Exit codes: 0 done (status: free), 1
    /// error, 2 usage, 3 held by someone else (status: locked), 4 unknown (the store cannot be
    /// read; never reported as free), 5 not held (released, or its lease expired).
    Lock(Box<crate::lock::LockArgs>),
    /// Git-deployed scripts: create a master repository, sync this node's mirrors, show them.
    Repo {
        #[command(subcommand)]
        command: repo::RepoCommand,
    },
    /// The supervisor of ocf:hale:gitscript's periodic mode (started by the agent).
    #[command(name = "gitscript-supervise", hide = true)]
    GitscriptSupervise(repo::SuperviseArgs),
}

fn find(name: &str) -> Result<Box<dyn AnyAgent>, String> {
    registry::agent(name).ok_or_else(|| format!("no agent '{name}'; known agents: {}", registry::names().join(", ")))
}

/// Parse the command line and run it; returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hale: {e}");
            2
        }
    }
}

fn run(cmd: Command) -> Result<i32, String> {
    match cmd {
        Command::List => {
            for a in registry::agents() {
                let i = a.info();
                println!("ocf:hale:{:<12} {}", i.name, i.shortdesc);
            }
            Ok(0)
        }
        Command::Describe { agent } => {
            print!("{}", describe::describe(find(&agent)?.as_ref()));
            Ok(0)
        }
        Command::MetaData { agent, ocf } => {
            let a = find(&agent)?;
            let mut env = Env::new();
            if let OcfVer::V11 = ocf {
                env.set("OCF_RA_VERSION_MAJOR", "1").set("OCF_RA_VERSION_MINOR", "1");
            }
            print!("{}", a.execute(Some("meta-data"), &env).stdout.unwrap_or_default());
            Ok(0)
        }
        Command::Run { agent, action, params, probe, depth, timeout, instance } => {
            let a = find(&agent)?;
            // The caller's environment (HA_debug, HA_LOGFILE, ...) under execd's variables.
            let mut action_env = hale_ocf::env::ActionEnv::new(&agent, &instance)
                .timeout(std::time::Duration::from_secs(timeout))
                .var("OCF_ROOT", "/usr/lib/ocf")
                .var("OCF_EXIT_REASON_PREFIX", "ocf-exit-reason:");
            for p in &params {
                let (k, v) = p.split_once('=').ok_or_else(|| format!("-p {p}: expected KEY=VALUE"))?;
                action_env = action_env.param(k, v);
            }
            let mut env = Env::from_process();
            for (k, v) in action_env.build().iter() {
                env.set(k, v);
            }
            if let Some(d) = depth {
                env.set("OCF_CHECK_LEVEL", d.to_string());
            }
            if Action::parse(&action) == Some(Action::Monitor) && !probe {
                // A recurring monitor: the interval the agent advertises for this depth.
                let interval = a
                    .actions()
                    .iter()
                    .filter(|s| s.action == Action::Monitor)
                    .find(|s| s.depth.unwrap_or(0) == depth.unwrap_or(0))
                    .and_then(|s| s.interval)
                    .unwrap_or(10);
                env.set("OCF_RESKEY_CRM_meta_interval", (u64::from(interval) * 1000).to_string());
            }
            if action != "meta-data" {
                let _ = hale_ocf::logging::Logger::install(&env, a.info().name, hale_backend::syslog());
            }
            let exec = a.execute(Some(&action), &env);
            if let Some(out) = &exec.stdout {
                print!("{out}");
            }
            let kind = if probe { " (probe)" } else { "" };
            println!("{agent} {action}{kind}: {} [{}]", exec.status, exec.status.name());
            if let Some(reason) = &exec.reason {
                println!("reason: {reason}");
            } else if exec.status.is_failure() {
                println!("reason: (none given)");
            }
            Ok(exec.status.code())
        }
        Command::Install { ocf_root } => {
            for line in install::install(&ocf_root)? {
                println!("installed {line}");
            }
            Ok(0)
        }
        Command::Man { agent, out_dir } => {
            let cmd = Cli::command();
            match (agent, out_dir) {
                (_, Some(dir)) => {
                    for path in man::write_all(&dir, &cmd, &registry::agents())? {
                        println!("wrote {}", path.display());
                    }
                }
                (Some(agent), None) => {
                    let a = find(agent.strip_prefix("ocf:hale:").unwrap_or(&agent))?;
                    print!("{}", man::agent_page(a.as_ref(), &registry::names()));
                }
                (None, None) => print!("{}", man::hale_page(&cmd, &registry::agents())),
            }
            Ok(0)
        }
        Command::Completions { shell } => {
            let mut cmd = man::for_completion(Cli::command());
            clap_complete::generate(shell, &mut cmd, "hale", &mut std::io::stdout());
            Ok(0)
        }
        Command::Lock(args) => Ok(crate::lock::run(*args)),
        Command::Repo { command } => repo::run(command),
        Command::GitscriptSupervise(args) => Ok(repo::supervise(args)),
    }
}
