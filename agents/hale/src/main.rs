//! `hale`: the command administrators use to list, describe, debug and install Hale agents.
//!
//! The same binary is every agent: installed as `<OCF_ROOT>/resource.d/hale/<agent>` (a link
//! to `<OCF_ROOT>/lib/hale/hale`), it sees its agent's name in argv[0] and behaves exactly as
//! that agent, taking the action as its sole argument as OCF requires.

mod cli;
mod describe;
mod install;
mod lock;
mod man;
mod registry;
mod repo;

fn main() {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let name = std::path::Path::new(&argv0).file_name().and_then(|n| n.to_str()).unwrap_or("hale").to_string();
    if let Some(agent) = registry::agent(&name) {
        let env = hale_ocf::Env::from_process();
        let action = std::env::args().nth(1);
        std::process::exit(agent.run_and_report(action.as_deref(), &env));
    }
    std::process::exit(cli::main());
}
