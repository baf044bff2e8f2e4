//! `hale`: the command administrators use to list, describe, debug and install Hale agents.
//!
//! This binary is also every agent: linked as `<OCF_ROOT>/resource.d/hale/<agent>` it sees its
//! agent's name in argv[0] and behaves exactly as that agent, taking the action as its sole
//! argument as OCF requires. `hale install` uses that form only for an agent whose own program
//! (`src/bin/hale-<agent>.rs`, which loads nothing of the other agents) was not built.

mod cli;
mod describe;
mod install;
mod lock;
mod man;
mod repo;

fn main() {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let name = std::path::Path::new(&argv0).file_name().and_then(|n| n.to_str()).unwrap_or("hale").to_string();
    if let Some(agent) = hale_registry::agent(&name) {
        hale_ocf::runner::main(agent.as_ref(), hale_backend::syslog());
    }
    std::process::exit(cli::main());
}
