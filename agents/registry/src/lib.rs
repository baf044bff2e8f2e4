//! The one list of the agents this build ships.
//!
//! The `hale` command (its `list`, `describe`, `run`, man pages and completions), the
//! installer, the conformance suite and the WSFC adapter all read [`ENTRIES`]; nothing else
//! names the agents. An entry's name is the agent type's own `INFO.name`, so the two cannot
//! disagree, and a test fails when an agent crate of the workspace has no entry.
//!
//! Adding an agent: its crate under `agents/`, one line here (and its dependency in this
//! crate's Cargo.toml), one conformance table in `ocf-tests/src/tables.rs`.

use hale_backend::Processes;
use hale_ocf::{Agent, AnyAgent};

/// One agent of this build.
pub struct Entry {
    /// `ocf:hale:<name>`, the installed file name and the argv[0] the multi-call binary answers to.
    pub name: &'static str,
    /// Build the agent over a process backend (the adapter passes one whose services die with
    /// it in its long-lived modes; everyone else passes [`hale_backend::processes`]). Agents
    /// that run no process ignore it.
    pub make: fn(Box<dyn Processes>) -> Box<dyn AnyAgent>,
    /// Hosted by `hale-wsfc` on Windows (built and tested for Windows under Wine).
    pub wsfc: bool,
}

/// Every agent, in the order `hale list` shows them.
pub const ENTRIES: &[Entry] = &[
    Entry { name: hale_daemon::Daemon::INFO.name, make: |p| Box::new(hale_daemon::Daemon::new(p)), wsfc: true },
    #[cfg(target_os = "linux")]
    Entry {
        name: hale_vip::Vip::INFO.name,
        make: |_| Box::new(hale_vip::Vip::new(hale_backend::network())),
        wsfc: false,
    },
    Entry {
        name: hale_gitscript::GitScript::INFO.name,
        make: |p| Box::new(hale_gitscript::GitScript::new(p)),
        wsfc: true,
    },
    #[cfg(target_os = "linux")]
    Entry { name: hale_gitsync::GitSync::INFO.name, make: |p| Box::new(hale_gitsync::GitSync::new(p)), wsfc: false },
    Entry { name: hale_hostlock::HostLock::INFO.name, make: |_| Box::new(hale_hostlock::HostLock), wsfc: false },
];

/// The entry called `name`.
pub fn find(name: &str) -> Option<&'static Entry> {
    ENTRIES.iter().find(|e| e.name == name)
}

/// The names of every agent, cheap (nothing is constructed).
pub fn names() -> Vec<&'static str> {
    ENTRIES.iter().map(|e| e.name).collect()
}

/// The agent called `name`, with this machine's backends.
pub fn agent(name: &str) -> Option<Box<dyn AnyAgent>> {
    find(name).map(|e| (e.make)(hale_backend::processes()))
}

/// Every agent, with this machine's backends.
pub fn agents() -> Vec<Box<dyn AnyAgent>> {
    ENTRIES.iter().map(|e| (e.make)(hale_backend::processes())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_entry_builds_the_agent_it_names() {
        for e in ENTRIES {
            assert_eq!((e.make)(hale_backend::processes()).info().name, e.name);
        }
        let mut names = names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ENTRIES.len(), "two entries share a name");
    }

    /// An agent crate of the workspace (`agents/<name>`, not a library under `agents/lib`, not
    /// the `hale` command or this registry) without an entry would silently not ship.
    #[test]
    fn every_agent_crate_of_the_workspace_has_an_entry() {
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
        let text = std::fs::read_to_string(manifest).expect("workspace Cargo.toml");
        let members: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter_map(|l| l.strip_prefix("\"agents/")?.strip_suffix("\","))
            .filter(|m| !m.starts_with("lib/") && *m != "hale" && *m != "registry")
            .collect();
        assert!(members.contains(&"daemon"), "the workspace members were not found in {manifest}");
        for m in members {
            assert!(find(m).is_some(), "agents/{m} is a workspace member with no registry entry");
        }
    }
}
