//! One table per agent: what the generic conformance cases need to know about it. Adding an
//! agent adds a table here, not a new harness.

use std::path::{Path, PathBuf};

/// Parameters as (name, value) pairs.
pub type Params = Vec<(String, String)>;

fn p(pairs: &[(&str, &str)]) -> Params {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A wrong configuration and what the agent must answer.
pub struct BadCase {
    pub what: &'static str,
    /// Parameters merged over the valid ones (same name replaces).
    pub set: &'static [(&'static str, &'static str)],
    /// Valid parameters to leave out.
    pub unset: &'static [&'static str],
    pub action: &'static str,
    /// `OCF_CHECK_LEVEL`; `Some` also makes a monitor recurring.
    pub level: Option<u32>,
    /// A recurring monitor (with interval) rather than a probe.
    pub recurring: bool,
    pub code: i32,
    /// Text the exit reason must contain (empty: no reason required, e.g. for 0 and 7).
    pub reason: &'static str,
}

/// What the conformance suite knows about one agent.
pub struct Table {
    pub agent: &'static str,
    /// Parameters of a working resource whose files live in `dir`.
    pub valid: fn(&Path) -> Params,
    /// Parameters of a resource whose start keeps waiting (never healthy): for killing start
    /// midway and for the deadline case. Start must fail inside its timeout, cleaning up.
    pub slow_start: fn(&Path) -> Params,
    /// The `HALE_INSTANCE` mark on this instance's processes.
    pub tag: fn(&str) -> String,
    /// Where the agent keeps state for a resource configured by `valid(dir)` (watched to show
    /// a probe writes nothing).
    pub state_dirs: fn(&Path) -> Vec<PathBuf>,
    pub bad: &'static [BadCase],
}

impl Table {
    /// The valid parameters with a bad case applied.
    pub fn apply(&self, dir: &Path, case: &BadCase) -> Params {
        let mut params: Params =
            (self.valid)(dir).into_iter().filter(|(k, _)| !case.unset.contains(&k.as_str())).collect();
        for (k, v) in case.set {
            params.retain(|(pk, _)| pk != k);
            params.push((k.to_string(), v.to_string()));
        }
        params
    }
}

const fn bad(what: &'static str, action: &'static str, code: i32, reason: &'static str) -> BadCase {
    BadCase { what, set: &[], unset: &[], action, level: None, recurring: false, code, reason }
}

/// `ocf:hale:daemon`.
pub const DAEMON: Table = Table {
    agent: "daemon",
    valid: |dir| {
        p(&[
            ("command", "sleep 100000"),
            ("pidfile", &dir.join("daemon.pid").to_string_lossy()),
            ("logfile", &dir.join("daemon.log").to_string_lossy()),
        ])
    },
    slow_start: |dir| {
        let mut v = (DAEMON.valid)(dir);
        v.push(("health_command".into(), "false".into()));
        v
    },
    tag: |instance| format!("daemon:{}", instance.rsplit_once(':').map_or(instance, |(b, _)| b)),
    state_dirs: |dir| vec![dir.to_path_buf(), PathBuf::from("/run/hale")],
    bad: &[
        BadCase { unset: &["command"], ..bad("command missing", "validate-all", 6, "required parameter command") },
        BadCase { unset: &["command"], ..bad("command missing", "start", 6, "required parameter command") },
        BadCase { unset: &["command"], ..bad("command missing, probe", "monitor", 7, "") },
        BadCase {
            unset: &["command"],
            recurring: true,
            ..bad("command missing, recurring monitor", "monitor", 1, "command")
        },
        BadCase { unset: &["command"], ..bad("command missing, stop", "stop", 0, "") },
        BadCase {
            set: &[("command", "sleep 'unbalanced")],
            ..bad("unbalanced quote", "validate-all", 6, "unbalanced quotes")
        },
        BadCase {
            set: &[("stop_signal", "FOO")],
            ..bad("unknown signal", "validate-all", 6, "stop_signal='FOO' is not one of")
        },
        BadCase { set: &[("stop_timeout", "ages")], ..bad("bad duration", "start", 6, "stop_timeout='ages'") },
        BadCase { set: &[("environment", "JUSTAWORD")], ..bad("bad environment", "validate-all", 6, "not KEY=VALUE") },
        BadCase { set: &[("health_url", "gopher://x/")], ..bad("bad URL", "validate-all", 6, "http:// or https://") },
        BadCase {
            set: &[("health_tcp", "localhost")],
            ..bad("bad host:port", "validate-all", 6, "health_tcp='localhost'")
        },
        BadCase {
            set: &[("pidfile", "rel/daemon.pid")],
            ..bad("relative pidfile", "validate-all", 6, "absolute path")
        },
        BadCase {
            set: &[("command", "/nonexistent/bin/svc")],
            ..bad("missing program, level 0", "validate-all", 0, "")
        },
        BadCase {
            set: &[("command", "/nonexistent/bin/svc")],
            level: Some(10),
            ..bad(
                "missing program, level 10",
                "validate-all",
                5,
                "command '/nonexistent/bin/svc' not found or not executable on this node",
            )
        },
        BadCase {
            set: &[("command", "/nonexistent/bin/svc")],
            ..bad("missing program, start", "start", 5, "not found or not executable")
        },
        BadCase { set: &[("command", "/nonexistent/bin/svc")], ..bad("missing program, probe", "monitor", 7, "") },
        BadCase {
            set: &[("user", "no-such-user-hale")],
            ..bad("missing user", "start", 2, "user 'no-such-user-hale' does not exist on this node")
        },
        BadCase {
            set: &[("workdir", "/nonexistent/dir")],
            ..bad("missing workdir", "start", 2, "workdir /nonexistent/dir is not a directory")
        },
        BadCase {
            set: &[("command", "sh -c 'echo cannot bind >&2; exit 3'")],
            ..bad("service exits at once", "start", 1, "exited with status 3 during start; last output: cannot bind")
        },
    ],
};

/// Every agent's table.
pub const TABLES: &[&Table] = &[&DAEMON];
