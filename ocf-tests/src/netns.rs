//! Test hosts in network namespaces: a bridge in a hub namespace and one namespace per host,
//! each with `eth0` on the bridge. Namespaces are named `hale-t<pid>-<n>-<role>`; dropping
//! a [`Topology`] removes them, and a new one removes those left by dead test processes.
//! Addresses are private to these namespaces: no traffic reaches the machine's interfaces.

use crate::unique;
use std::process::{Command, Stdio};

/// The subnets every topology uses (namespaces isolate them from each other).
pub const NET4: &str = "10.77.0";
pub const NET6: &str = "fd77::";

/// One test host.
#[derive(Clone, Debug)]
pub struct Host {
    pub ns: String,
    /// Its address on the bridge: 10.77.0.(k+1) and fd77::(k+1).
    pub v4: String,
    pub v6: String,
}

/// Hosts on one bridge.
pub struct Topology {
    pub hub: String,
    pub hosts: Vec<Host>,
}

/// Run `ip` with arguments; panic with its output on failure.
pub fn ip(args: &[&str]) -> String {
    try_ip(args).unwrap_or_else(|e| panic!("{e}"))
}

/// Run `ip` with arguments: its stdout, or what failed (for callers that clean up after a
/// failure instead of panicking, such as hale-bench).
pub fn try_ip(args: &[&str]) -> Result<String, String> {
    let what = || format!("ip {}", args.join(" "));
    let path = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .ok_or("ip not found (apt-get install iproute2)")?;
    let out =
        Command::new(path).args(args).stdin(Stdio::null()).output().map_err(|e| format!("running {}: {e}", what()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{}: {}: {}", what(), out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn remove_stale() {
    let list = ip(&["netns", "list"]);
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix("hale-t") else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

impl Topology {
    /// `n` hosts, links up, addresses configured, IPv6 duplicate detection finished.
    pub fn new(n: usize) -> Topology {
        remove_stale();
        let base = unique("hale-t").trim_start_matches("hale-t-").to_string();
        let hub = format!("hale-t{base}-hub");
        ip(&["netns", "add", &hub]);
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &hub, "link", "set", "br0", "up"]);
        let mut hosts = Vec::new();
        for k in 0..n {
            let ns = format!("hale-t{base}-h{k}");
            ip(&["netns", "add", &ns]);
            let port = format!("p{k}");
            ip(&["-n", &hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
            ip(&["-n", &hub, "link", "set", &port, "master", "br0", "up"]);
            let v4 = format!("{NET4}.{}", k + 1);
            let v6 = format!("{NET6}{}", k + 1);
            ip(&["-n", &ns, "addr", "add", &format!("{v4}/24"), "dev", "eth0"]);
            ip(&["-n", &ns, "addr", "add", &format!("{v6}/64"), "dev", "eth0", "nodad"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            hosts.push(Host { ns, v4, v6 });
        }
        let t = Topology { hub, hosts };
        // Link-local addresses must finish DAD before IPv6 neighbour discovery works.
        for h in &t.hosts {
            assert!(
                crate::wait_for(std::time::Duration::from_secs(10), || !t
                    .exec(h, &["ip", "-6", "addr", "show", "tentative"])
                    .1
                    .contains("inet6")),
                "IPv6 DAD did not finish in {}",
                h.ns
            );
        }
        t
    }

    /// Run a command inside a host's namespace: (success, stdout+stderr).
    pub fn exec(&self, host: &Host, argv: &[&str]) -> (bool, String) {
        let out = Command::new(crate::require("ip"))
            .args(["netns", "exec", &host.ns])
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .expect("ip netns exec");
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    }

    /// The MAC of a host's eth0.
    pub fn mac(&self, host: &Host) -> String {
        let out = ip(&["-n", &host.ns, "-o", "link", "show", "eth0"]);
        out.split_whitespace().skip_while(|w| *w != "link/ether").nth(1).expect("link/ether").to_string()
    }

    /// Does `addr` answer a ping from `host`?
    pub fn ping(&self, host: &Host, addr: &str) -> bool {
        self.exec(host, &["ping", "-c", "1", "-W", "1", addr]).0
    }

    /// The MAC `host`'s neighbour table holds for `addr`, if any.
    pub fn neighbour(&self, host: &Host, addr: &str) -> Option<String> {
        let out = ip(&["-n", &host.ns, "neigh", "show", addr]);
        out.split_whitespace().skip_while(|w| *w != "lladdr").nth(1).map(str::to_string)
    }

    /// The addresses on a host's interfaces, as `ip -o addr` prints them.
    pub fn addresses(&self, host: &Host) -> String {
        ip(&["-n", &host.ns, "-o", "addr", "show"])
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for h in &self.hosts {
            let _ = Command::new("ip").args(["netns", "del", &h.ns]).status();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.hub]).status();
    }
}
