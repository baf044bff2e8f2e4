//! `ocf:hale:gitscript` as a program of its own: it links only the gitscript agent's code, so a
//! monitor or meta-data run loads and maps nothing of the other agents (see the `hale` package's
//! README section in packaging/README.md). `hale install` installs it as
//! `<OCF_ROOT>/resource.d/hale/gitscript`.
//!
//! It is also the supervisor of the agent's periodic mode: the agent starts its own program
//! with `gitscript-supervise` first (as the multi-call `hale` and `hale-wsfc` accept it too).
//!
//! Its `main` is the C one (`agent_main!`), without the standard library's start-up: see
//! `hale_backend::agent_main`.

#![cfg_attr(not(test), no_main)]

hale_backend::agent_main!({
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(hale_gitscript::SUPERVISE_COMMAND) {
        std::process::exit(hale_gitscript::periodic::supervise_command(&args[1..]));
    }
    hale_ocf::runner::main(&hale_gitscript::GitScript::new(hale_backend::processes()), hale_backend::syslog())
});
