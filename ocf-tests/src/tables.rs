//! One table per agent: what the generic conformance cases need to know about it. Adding an
//! agent adds a table here, not a new harness.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

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
    /// Why a `slow_start` start fails (part of its exit reason).
    pub slow_reason: &'static str,
    /// What of resource `instance` configured by `valid(dir)` is live on this node (process
    /// ids, addresses): empty when stopped, exactly one entry when running.
    pub active: fn(&str, &Path) -> Vec<String>,
    /// Whether the agent runs processes that could outlive a lost record (the stray case).
    pub runs_processes: bool,
    /// Where the agent keeps state for a resource configured by `valid(dir)` (watched to show
    /// a probe writes nothing).
    pub state_dirs: fn(&Path) -> Vec<PathBuf>,
    /// Parameters of `valid` that point into the scratch directory where the agent's default
    /// is under /run/hale: left out by the empty-/run case, so that it tests the defaults a
    /// node just booted uses.
    pub run_defaults: &'static [&'static str],
    /// The agent's own wrong configurations. The missing-required-parameter cases every agent
    /// answers alike are not listed: [`Table::bad_cases`] derives them from its meta-data.
    pub bad: &'static [BadCase],
}

impl Table {
    /// Every bad case of this agent: for each parameter its installed meta-data marks
    /// required, the invalid-environment rows (validate-all and start 6, probe 7, recurring
    /// monitor 1, stop 0), then the agent's own [`Table::bad`].
    pub fn bad_cases(&self) -> Vec<&'static BadCase> {
        let mut out: Vec<&'static BadCase> = Vec::new();
        for name in required_params(self.agent) {
            // Leaked once per test process: the cases are as static as the hand-written ones.
            let name: &'static str = Box::leak(name.into_boxed_str());
            let unset: &'static [&'static str] = Box::leak(Box::new([name]));
            let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
            let required = leak(format!("required parameter {name}"));
            for (what, action, recurring, code, reason) in [
                ("validate-all", "validate-all", false, 6, required),
                ("start", "start", false, 6, required),
                ("probe", "monitor", false, 7, ""),
                ("recurring monitor", "monitor", true, 1, name),
                ("stop", "stop", false, 0, ""),
            ] {
                let what = leak(format!("{name} missing, {what}"));
                out.push(Box::leak(Box::new(BadCase { unset, recurring, ..bad(what, action, code, reason) })));
            }
        }
        out.extend(self.bad.iter());
        out
    }

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

/// The parameters the installed `agent`'s meta-data marks `required="1"`.
pub fn required_params(agent: &str) -> Vec<String> {
    let md = crate::Invocation::new(&crate::agent_path(agent), "meta-data").run("meta-data");
    assert_eq!(md.code, 0, "{agent} meta-data: {}", md.stderr);
    crate::metadata_params(&md.stdout).into_iter().filter(|p| p.required).map(|p| p.name).collect()
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
    slow_reason: "not healthy",
    active: |instance, _| {
        let tag = format!("daemon:{}", instance.rsplit_once(':').map_or(instance, |(b, _)| b));
        crate::tagged_processes(&tag).iter().map(u32::to_string).collect()
    },
    runs_processes: true,
    state_dirs: |dir| vec![dir.to_path_buf(), PathBuf::from("/run/hale")],
    run_defaults: &["pidfile"],
    bad: &[
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

/// The network namespace the vip cases run in, shared by every case of this test process
/// (each resource gets its own address), with `eth0` up on 10.78.0.0/16 and `slow0`, an
/// interface whose link is down so that IPv6 duplicate address detection never ends.
fn vip_host() -> &'static str {
    static TOPOLOGY: OnceLock<crate::netns::Topology> = OnceLock::new();
    let t = TOPOLOGY.get_or_init(|| {
        let t = crate::netns::Topology::new(1);
        let ns = &t.hosts[0].ns;
        crate::netns::ip(&["-n", ns, "addr", "add", "10.78.0.1/16", "dev", "eth0"]);
        crate::netns::ip(&["-n", &t.hub, "link", "add", "s0", "type", "veth", "peer", "name", "slow0", "netns", ns]);
        t
    });
    &t.hosts[0].ns
}

/// A distinct address for each scratch directory (its name ends with a sequence number).
fn vip_address(dir: &Path) -> String {
    let seq: u32 = dir.to_string_lossy().rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(0);
    format!("10.78.{}.{}", 1 + seq / 250, 2 + seq % 250)
}

/// `ocf:hale:vip`.
pub const VIP: Table = Table {
    agent: "vip",
    valid: |dir| p(&[("ip", &vip_address(dir)), ("network_namespace", vip_host())]),
    slow_start: |dir| {
        let seq = vip_address(dir).rsplit('.').next().unwrap_or("2").to_string();
        p(&[
            ("ip", &format!("fd78::{seq}")),
            ("nic", "slow0"),
            ("cidr_netmask", "64"),
            ("check_link_status", "false"),
            ("network_namespace", vip_host()),
        ])
    },
    slow_reason: "did not finish in time",
    active: |_, dir| {
        let out = crate::netns::ip(&["-n", vip_host(), "-o", "addr", "show"]);
        let v4 = format!(" {}/", vip_address(dir));
        let seq = vip_address(dir).rsplit('.').next().unwrap_or("2").to_string();
        let v6 = format!(" fd78::{seq}/");
        out.lines().filter(|l| l.contains(&v4) || l.contains(&v6)).map(str::to_string).collect()
    },
    runs_processes: false,
    state_dirs: |dir| vec![dir.to_path_buf()],
    run_defaults: &[],
    bad: &[
        BadCase { set: &[("ip", "10.78.0.999")], ..bad("bad address", "start", 6, "not an IPv4 or IPv6 address") },
        BadCase { set: &[("ip", "224.0.0.5")], ..bad("multicast", "validate-all", 6, "cannot be a floating address") },
        BadCase { set: &[("ip", "fe80::5")], ..bad("link-local without nic", "validate-all", 6, "nic is required") },
        BadCase { set: &[("cidr_netmask", "33")], ..bad("prefix too long", "validate-all", 6, "larger than 32") },
        BadCase {
            set: &[("cidr_netmask", "255.0.255.0")],
            ..bad("holey netmask", "validate-all", 6, "not a contiguous netmask")
        },
        BadCase { set: &[("nic", "eth0:")], ..bad("empty label in nic", "validate-all", 6, "NIC:LABEL must fit") },
        BadCase { set: &[("nic", "eth0:web"), ("iflabel", "db")], ..bad("two labels", "validate-all", 6, "differ") },
        BadCase {
            set: &[("broadcast", "everyone")],
            ..bad("bad broadcast", "validate-all", 6, "broadcast='everyone'")
        },
        BadCase { set: &[("arp_mode", "shout")], ..bad("bad arp_mode", "validate-all", 6, "arp_mode='shout'") },
        BadCase { set: &[("arp_interval", "0")], ..bad("zero interval", "validate-all", 6, "arp_interval=0") },
        BadCase {
            set: &[("preferred_lft", "always")],
            ..bad("bad lifetime", "validate-all", 6, "preferred_lft='always'")
        },
        BadCase { set: &[("nic", "eth7")], ..bad("missing nic, level 0", "validate-all", 0, "") },
        BadCase {
            set: &[("nic", "eth7")],
            level: Some(10),
            ..bad("missing nic, level 10", "validate-all", 2, "interface eth7 does not exist on this node")
        },
        BadCase { set: &[("nic", "eth7")], ..bad("missing nic, start", "start", 2, "interface eth7 does not exist") },
        BadCase { set: &[("nic", "eth7")], ..bad("missing nic, probe", "monitor", 7, "") },
        BadCase {
            set: &[("network_namespace", "hale-no-such-ns")],
            ..bad("missing namespace, start", "start", 2, "network namespace hale-no-such-ns does not exist")
        },
        BadCase {
            set: &[("network_namespace", "hale-no-such-ns")],
            ..bad("missing namespace, probe", "monitor", 7, "")
        },
        BadCase { set: &[("network_namespace", "hale-no-such-ns")], ..bad("missing namespace, stop", "stop", 0, "") },
    ],
};

/// The locks and waiting intents of resource `instance` in the dir store `dir`.
fn hostlock_entries(instance: &str, dir: &Path) -> Vec<String> {
    use hale_lock::Store;
    let resource = instance.rsplit_once(':').map_or(instance, |(b, _)| b).replace([':', '/'], "-");
    let state = hale_lock::dir::DirStore::new(dir).state().expect("read the test's lock directory");
    let mine = |h: &hale_lock::Holder| h.resource.as_deref() == Some(resource.as_str());
    let locks = state.locks.iter().filter(|l| mine(&l.holder)).map(|l| format!("lock {} token {}", l.id, l.token));
    let intents = state.intents.iter().filter(|i| mine(&i.holder)).map(|i| format!("intent {}", i.id));
    locks.chain(intents).collect()
}

/// `ocf:hale:hostlock` on a dir store in the scratch directory. The valid resource takes a
/// shared lock; the slow one asks for an exclusive lock on the same host while another holder
/// (not a resource) keeps a shared lock on it, so it waits, with its intent standing.
pub const HOSTLOCK: Table = Table {
    agent: "hostlock",
    valid: |dir| p(&[("host", "conf-host"), ("kind", "shared"), ("path", &dir.to_string_lossy()), ("ttl", "60")]),
    slow_start: |dir| {
        let store = hale_lock::dir::DirStore::new(dir);
        let holder = hale_lock::Holder::this_process("conformance: keeps the host busy");
        let req = hale_lock::Request::new(
            "blocker",
            "conf-host",
            &[],
            hale_lock::Kind::Shared,
            holder,
            std::time::Duration::from_secs(3600),
        );
        hale_lock::acquire(&store, &req, std::time::Duration::ZERO).expect("the blocking lock");
        let mut v = (HOSTLOCK.valid)(dir);
        v.retain(|(k, _)| k != "kind");
        v.push(("kind".into(), "exclusive".into()));
        v
    },
    slow_reason: "is locked shared by",
    active: hostlock_entries,
    runs_processes: false,
    state_dirs: |dir| vec![dir.to_path_buf()],
    run_defaults: &[],
    bad: &[
        BadCase { set: &[("kind", "forever")], ..bad("bad kind", "validate-all", 6, "kind='forever' is not one of") },
        BadCase { set: &[("store", "nfs")], ..bad("bad store", "start", 6, "store='nfs' is not one of") },
        BadCase { set: &[("host", "two words")], ..bad("bad host", "validate-all", 6, "not a host name") },
        BadCase { set: &[("ttl", "1")], ..bad("ttl too short", "validate-all", 6, "too short") },
        BadCase {
            set: &[("ttl", "18446744073710")],
            ..bad("ttl too long", "validate-all", 6, "too long: out of range (2 to 31536000 seconds)")
        },
        BadCase { set: &[("ttl", "soon")], ..bad("bad ttl", "start", 6, "ttl='soon'") },
        BadCase { set: &[("path", "locks")], ..bad("relative path", "validate-all", 6, "absolute") },
        BadCase {
            set: &[("store", "etcd"), ("endpoints", "127.0.0.1:2379")],
            ..bad("endpoint without scheme", "validate-all", 6, "not an http://host:port")
        },
        BadCase {
            set: &[("dependencies_file", "deps.json")],
            ..bad("relative dependencies_file", "validate-all", 6, "must be absolute")
        },
        BadCase { set: &[("kind", "forever")], ..bad("bad kind, probe", "monitor", 7, "") },
        BadCase { set: &[("kind", "forever")], recurring: true, ..bad("bad kind, monitor", "monitor", 1, "kind") },
        BadCase { set: &[("kind", "forever")], ..bad("bad kind, stop", "stop", 0, "") },
        BadCase { set: &[("path", "/nonexistent/locks")], ..bad("missing directory, level 0", "validate-all", 0, "") },
        BadCase {
            set: &[("path", "/nonexistent/locks")],
            level: Some(10),
            ..bad("missing directory, level 10", "validate-all", 5, "lock directory /nonexistent/locks does not exist")
        },
        BadCase {
            set: &[("path", "/nonexistent/locks")],
            ..bad("missing directory, start", "start", 5, "not mounted?")
        },
        BadCase { set: &[("path", "/nonexistent/locks")], ..bad("missing directory, stop", "stop", 0, "") },
        BadCase {
            set: &[("dependencies_file", "/nonexistent/deps.json")],
            ..bad("missing dependencies file", "start", 5, "dependencies_file /nonexistent/deps.json does not exist")
        },
        BadCase {
            set: &[("store", "etcd"), ("endpoints", "https://127.0.0.1:9"), ("etcd_ca_file", "ca.pem")],
            ..bad("relative etcd_ca_file", "validate-all", 6, "etcd_ca_file='ca.pem' must be an absolute path")
        },
        BadCase {
            set: &[("store", "etcd"), ("endpoints", "https://127.0.0.1:9"), ("etcd_user", "hale")],
            ..bad(
                "etcd_user without a password file",
                "validate-all",
                6,
                "etcd_user and etcd_password_file go together",
            )
        },
        BadCase {
            set: &[("store", "etcd"), ("endpoints", "http://127.0.0.1:9"), ("etcd_ca_file", "/etc/hale/ca.pem")],
            ..bad("TLS settings with http://", "validate-all", 6, "need https:// endpoints")
        },
        BadCase {
            set: &[("store", "etcd"), ("endpoints", "https://127.0.0.1:9"), ("etcd_ca_file", "/nonexistent/ca.pem")],
            ..bad("missing etcd_ca_file, start", "start", 5, "etcd_ca_file /nonexistent/ca.pem does not exist")
        },
        BadCase {
            set: &[
                ("store", "etcd"),
                ("endpoints", "https://127.0.0.1:9"),
                ("etcd_user", "hale"),
                ("etcd_password_file", "/etc/passwd"),
            ],
            level: Some(10),
            ..bad("password file open to every user", "validate-all", 2, "open to every user")
        },
        BadCase {
            set: &[("store", "etcd"), ("endpoints", "https://127.0.0.1:9"), ("etcd_ca_file", "/nonexistent/ca.pem")],
            ..bad("missing etcd_ca_file, stop", "stop", 0, "")
        },
        BadCase {
            set: &[("store", "etcd"), ("endpoints", "http://127.0.0.1:9")],
            ..bad("etcd unreachable, start", "start", 1, "lock state unknown: etcd unreachable")
        },
        BadCase {
            set: &[("store", "etcd"), ("endpoints", "http://127.0.0.1:9")],
            ..bad("etcd unreachable, probe", "monitor", 1, "lock state unknown")
        },
        BadCase {
            set: &[("store", "etcd"), ("endpoints", "http://127.0.0.1:9")],
            ..bad("etcd unreachable, stop", "stop", 0, "")
        },
    ],
};

/// `ocf:hale:gitscript`: a signed master in the scratch directory, its mirror and trees there
/// too; the script `exec`s sleep, so the resource has exactly one process.
pub const GITSCRIPT: Table = Table {
    agent: "gitscript",
    valid: |dir| {
        let (m, allowed) = crate::git::signed_master(dir);
        p(&[
            ("repository", &m.bare.to_string_lossy()),
            ("entry", "bin/svc"),
            ("allowed_signers", &allowed.to_string_lossy()),
            ("state_dir", &dir.join("state").to_string_lossy()),
            ("pidfile", &dir.join("gitscript.pid").to_string_lossy()),
            ("logfile", &dir.join("gitscript.log").to_string_lossy()),
        ])
    },
    slow_start: |dir| {
        let mut v = (GITSCRIPT.valid)(dir);
        v.push(("health_command".into(), "false".into()));
        v
    },
    slow_reason: "not healthy",
    active: |instance, _| {
        let tag = format!("gitscript:{}", instance.rsplit_once(':').map_or(instance, |(b, _)| b));
        crate::tagged_processes(&tag).iter().map(u32::to_string).collect()
    },
    runs_processes: true,
    state_dirs: |dir| vec![dir.to_path_buf(), PathBuf::from("/run/hale")],
    run_defaults: &["pidfile"],
    bad: &[
        BadCase {
            unset: &["allowed_signers"],
            ..bad("signed without keys", "validate-all", 6, "verify=signed needs allowed_signers")
        },
        BadCase {
            set: &[("repository", "http://git.example.com/ops.git")],
            ..bad("plain http", "validate-all", 6, "plain http:// is refused")
        },
        BadCase {
            set: &[("entry", "../../etc/passwd")],
            ..bad("entry escapes", "validate-all", 6, "inside the repository")
        },
        BadCase { set: &[("verify", "maybe")], ..bad("bad verify", "validate-all", 6, "verify='maybe' is not one of") },
        BadCase { set: &[("mode", "cron")], ..bad("bad mode", "validate-all", 6, "mode='cron' is not one of") },
        BadCase { set: &[("period", "soon")], ..bad("bad period", "validate-all", 6, "period='soon'") },
        BadCase { set: &[("interpreter", "sh 'x")], ..bad("bad interpreter", "validate-all", 6, "unbalanced quotes") },
        BadCase {
            set: &[("allowed_signers", "/nonexistent/allowed_signers")],
            ..bad("keys missing on this node", "start", 2, "cannot read /nonexistent/allowed_signers")
        },
        BadCase {
            set: &[("allowed_signers", "/nonexistent/allowed_signers")],
            ..bad("keys missing, probe", "monitor", 7, "")
        },
        BadCase {
            set: &[("user", "no-such-user-hale")],
            ..bad("missing user", "start", 2, "user 'no-such-user-hale' does not exist on this node")
        },
        BadCase {
            set: &[("interpreter", "/nonexistent/python")],
            ..bad("missing interpreter", "start", 5, "'/nonexistent/python' not found")
        },
        BadCase {
            set: &[("entry", "bin/nope")],
            ..bad("entry not in the commit", "start", 1, "entry bin/nope is not in commit")
        },
        BadCase {
            set: &[("repository", "/nonexistent/master.git")],
            ..bad("master missing, nothing deployed", "start", 1, "no verified commit to run")
        },
    ],
};

/// `ocf:hale:gitsync`: the same signed master; its state file is what is live. Outside a
/// cluster it publishes nothing (no `CRM_meta_on_node`), so its monitor forks nothing; the
/// slow start is a master that accepts connections and never answers.
pub const GITSYNC: Table = Table {
    agent: "gitsync",
    valid: |dir| {
        let (m, allowed) = crate::git::signed_master(dir);
        p(&[
            ("repository", &m.bare.to_string_lossy()),
            ("allowed_signers", &allowed.to_string_lossy()),
            ("state_dir", &dir.join("state").to_string_lossy()),
            ("state_file", &dir.join("gitsync.state").to_string_lossy()),
        ])
    },
    slow_start: |dir| {
        let mut v = (GITSYNC.valid)(dir);
        v.retain(|(k, _)| k != "repository" && k != "state_dir");
        v.push(("repository".into(), crate::git::silent_master()));
        v.push(("state_dir".into(), dir.join("slow-state").to_string_lossy().to_string()));
        v
    },
    slow_reason: "the fetch did not finish within",
    active: |_, dir| {
        let f = dir.join("gitsync.state");
        if f.exists() {
            vec![f.to_string_lossy().to_string()]
        } else {
            Vec::new()
        }
    },
    runs_processes: false,
    state_dirs: |dir| vec![dir.to_path_buf()],
    run_defaults: &["state_file"],
    bad: &[
        BadCase {
            set: &[("attribute", "gitsync")],
            ..bad("attribute not a health attribute", "validate-all", 6, "must start with #health")
        },
        BadCase { set: &[("red_after", "0")], ..bad("red_after zero", "validate-all", 6, "red_after=0") },
        BadCase { set: &[("state_file", "x.state")], ..bad("relative state file", "validate-all", 6, "absolute path") },
        BadCase {
            set: &[("repository", "/nonexistent/master.git")],
            ..bad("master missing, nothing verified", "start", 1, "nothing verified on this node")
        },
    ],
};

/// Every agent's table.
pub const TABLES: &[&Table] = &[&DAEMON, &VIP, &HOSTLOCK, &GITSCRIPT, &GITSYNC];

#[cfg(test)]
mod tests {
    /// An agent without a table would ship untested; a table without an agent tests nothing.
    #[test]
    fn every_agent_of_the_registry_has_one_table_and_back() {
        let mut agents = hale_registry::names();
        let mut tables: Vec<&str> = super::TABLES.iter().map(|t| t.agent).collect();
        agents.sort_unstable();
        tables.sort_unstable();
        assert_eq!(agents, tables, "registry (left) and conformance tables (right) differ");
    }
}
