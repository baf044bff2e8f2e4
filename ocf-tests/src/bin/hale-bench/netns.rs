//! The network namespace the address agents run in, entered with setns.

use crate::{Context, Result, VETH, VETH_ADDRESS, VETH_PEER};
use std::fs::File;

use nix::sched::{self, CloneFlags};

/// The network namespace the address agents run in: made with `ip netns add`, with a veth
/// pair inside (`VETH` holding `VETH_ADDRESS`, both ends and lo up). The bench's main thread
/// enters it with setns while it runs those agents, so that they inherit it.
pub(crate) struct Netns {
    pub(crate) name: String,
    /// The main thread's own namespace, to come back to.
    pub(crate) home: File,
    /// `/run/netns/NAME`, open.
    pub(crate) ns: Option<File>,
    pub(crate) inside: bool,
}

impl Netns {
    /// Makes the namespace and its veth pair; on failure, deletes it again.
    pub(crate) fn create(name: String) -> Result<Netns> {
        let home = File::open("/proc/thread-self/ns/net").context(|| "opening /proc/thread-self/ns/net".into())?;
        let mut netns = Netns { name, home, ns: None, inside: false };
        netns.ip(&["netns", "add", &netns.name])?;
        let set_up = || -> Result<File> {
            let name = netns.name.as_str();
            netns.ip(&["-n", name, "link", "add", VETH, "type", "veth", "peer", "name", VETH_PEER])?;
            netns.ip(&["-n", name, "address", "add", VETH_ADDRESS, "dev", VETH])?;
            for link in [VETH, VETH_PEER, "lo"] {
                netns.ip(&["-n", name, "link", "set", link, "up"])?;
            }
            let path = format!("/run/netns/{name}");
            File::open(&path).context(|| format!("opening {path}"))
        };
        match set_up() {
            Ok(ns) => {
                netns.ns = Some(ns);
                Ok(netns)
            }
            Err(e) => {
                let _ = netns.ip(&["netns", "delete", &netns.name]);
                Err(e)
            }
        }
    }

    /// Enters the namespace (true) or goes back to the original one (false).
    pub(crate) fn set_inside(&mut self, inside: bool) -> Result<()> {
        if self.inside == inside {
            return Ok(());
        }
        let target = if inside { self.ns.as_ref().ok_or("the network namespace is gone")? } else { &self.home };
        sched::setns(target, CloneFlags::CLONE_NEWNET).context(|| {
            format!("setns: {} network namespace {}", if inside { "entering" } else { "leaving" }, self.name)
        })?;
        self.inside = inside;
        Ok(())
    }

    /// Leaves the namespace and deletes it. The veth pair goes first: that removes every
    /// address on it (the agents' included) even if a leftover process still held the
    /// namespace. Returns what went wrong.
    pub(crate) fn delete(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = self.set_inside(false) {
            problems.push(e);
        }
        self.ns = None;
        let name = self.name.clone();
        for args in [&["-n", &name, "link", "delete", VETH][..], &["netns", "delete", &name]] {
            if let Err(e) = self.ip(args) {
                problems.push(e);
            }
        }
        problems
    }

    /// Runs `ip ARGS` (the suite's [`hale_ocf_tests::netns::try_ip`]). The main thread is in
    /// the original namespace whenever this runs; `-n` names ours.
    pub(crate) fn ip(&self, args: &[&str]) -> Result<()> {
        hale_ocf_tests::netns::try_ip(args).map(drop)
    }
}
