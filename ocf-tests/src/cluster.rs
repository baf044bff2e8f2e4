//! A real Pacemaker/Corosync cluster of 1-5 nodes on this machine, for tests, the demo and
//! benchmarks.
//!
//! Each node lives in its own network, mount and UTS namespaces (`cluster/node.sh`): its
//! own `eth0` on a bridge in a hub namespace, its own /etc/corosync, /var/lib/pacemaker,
//! /var/log/pacemaker, /run and /dev/shm. A client namespace sits on the same bridge. The
//! agents are those installed on the host (`/usr/lib/ocf/resource.d/hale`), which every node
//! sees. Names start with `hale-c<pid>-`; tear-down kills only processes inside these
//! namespaces and deletes them, and a new cluster first removes those of dead test processes.
//!
//! **Fencing is on** (`stonith-enabled=true`), with one device, `hale-fence`, of the suite's
//! fence agent [`FENCE_AGENT`] (`cluster/fence_hale_netns`) covering every node. Each node
//! sees it as `/usr/sbin/fence_hale_netns` (an overlay in the node's mount namespace), where
//! pacemaker-fenced looks for fence agents. Fencing a node kills every process of its
//! network namespace, takes its interfaces down and removes their addresses, and succeeds
//! only once no process is left; `reboot` is `off`: the test decides when the node comes back
//! ([`Cluster::start_node`]). The agent finds a node through `<dir>/fence/nodes/nodeN`, which
//! the harness writes: the inode of the node's network namespace and the alias of its eth0,
//! both checked before anything is killed. Each fencing is a line of `<dir>/fence/fence.log`
//! ([`Cluster::fencings`]). The device is created once every node is online, so a node that
//! is slow to start is not fenced as "never seen" (startup fencing) while the cluster forms.

use crate::{require, wait_for};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The cluster subnet: node i is .i, the client .100.
pub const NET: &str = "10.79.0";
/// The floating address the scenarios use.
pub const VIP: &str = "10.79.0.200";

/// The suite's fence agent (see the module documentation and the script's header).
pub const FENCE_AGENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/cluster/fence_hale_netns");

/// The fence device every cluster has.
pub const FENCE_DEVICE: &str = "hale-fence";

/// One line of the fence agent's log: a fencing action it carried out (or failed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fencing {
    /// The machine's uptime, in hundredths of a second, when the result was known; comparable
    /// with [`process_start_cs`].
    pub uptime_cs: u64,
    pub action: String,
    /// The node fenced, as `nodeN`.
    pub target: String,
    /// Every process of the node is gone (`result=ok`).
    pub ok: bool,
    /// The node the agent ran on.
    pub by: String,
    /// How many processes it killed (0: the node was already down).
    pub killed: u32,
}

impl Fencing {
    fn parse(line: &str) -> Option<Fencing> {
        let field = |k: &str| line.split_whitespace().find_map(|w| w.strip_prefix(k)?.strip_prefix('='));
        Some(Fencing {
            uptime_cs: field("uptime_cs")?.parse().ok()?,
            action: field("action")?.to_string(),
            target: field("target")?.to_string(),
            ok: field("result")? == "ok",
            by: field("by")?.to_string(),
            killed: field("killed")?.parse().ok()?,
        })
    }
}

/// When process `pid` started, in hundredths of a second of the machine's uptime (the clock
/// of [`Fencing::uptime_cs`]).
pub fn process_start_cs(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After ')': state is field 3; starttime is field 22, so index 19 here.
    let ticks: u64 = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten()? as u64;
    Some(ticks * 100 / hz)
}

/// Options of a cluster.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub nodes: usize,
    /// Corosync totem token timeout in ms (None: corosync's default).
    pub token_ms: Option<u32>,
}

/// A running cluster. Dropping it tears everything down.
pub struct Cluster {
    pub id: String,
    dir: PathBuf,
    hub: String,
    pub client: String,
    nodes: Vec<String>,
    /// The node launchers we started, reaped when the cluster goes.
    launched: std::sync::Mutex<Vec<std::process::Child>>,
}

fn run(argv: &[&str]) -> (bool, String) {
    match Command::new(argv[0]).args(&argv[1..]).stdin(Stdio::null()).output() {
        Ok(o) => (
            o.status.success(),
            format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
        ),
        Err(e) => (false, format!("{}: {e}", argv[0])),
    }
}

fn must(argv: &[&str]) -> String {
    let (ok, out) = run(argv);
    assert!(ok, "{}: {out}", argv.join(" "));
    out
}

/// Processes inside a network namespace.
fn netns_pids(ns: &str) -> Vec<i32> {
    run(&["ip", "netns", "pids", ns]).1.split_whitespace().filter_map(|p| p.parse().ok()).collect()
}

fn kill_netns(ns: &str) {
    for _ in 0..100 {
        let pids = netns_pids(ns);
        if pids.is_empty() {
            return;
        }
        for p in pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Remove the namespaces and directories of clusters whose test process has died.
fn remove_stale() {
    for name in run(&["ip", "netns", "list"]).1.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) =
            name.strip_prefix("hale-c").and_then(|r| r.split('-').next()).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            kill_netns(name);
            let _ = run(&["ip", "netns", "del", name]);
        }
    }
}

fn corosync_conf(n: usize, token: Option<u32>) -> String {
    let mut c = String::from(
        "totem {\n  version: 2\n  cluster_name: hale\n  transport: knet\n  crypto_cipher: none\n  crypto_hash: none\n",
    );
    if let Some(t) = token {
        c.push_str(&format!("  token: {t}\n"));
    }
    c.push_str("}\nnodelist {\n");
    for i in 1..=n {
        c.push_str(&format!("  node {{\n    ring0_addr: {NET}.{i}\n    name: node{i}\n    nodeid: {i}\n  }}\n"));
    }
    c.push_str("}\nquorum {\n  provider: corosync_votequorum\n");
    if n == 2 {
        c.push_str("  two_node: 1\n");
    }
    c.push_str("}\nlogging {\n  to_logfile: yes\n  logfile: /var/log/pacemaker/corosync.log\n  to_syslog: no\n  to_stderr: no\n  timestamp: hires\n}\n");
    c
}

impl Cluster {
    /// Start a cluster and wait until every node sees every node online with a DC.
    pub fn start(o: Options) -> Cluster {
        assert!((1..=5).contains(&o.nodes), "1 to 5 nodes");
        for tool in ["corosync", "pacemakerd", "pcs", "crm_mon", "unshare", "nsenter", "ip"] {
            require(tool);
        }
        remove_stale();
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let id = format!("hale-c{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        let dir = std::env::temp_dir().join(&id);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let c = Cluster {
            hub: format!("{id}-hub"),
            client: format!("{id}-client"),
            nodes: (1..=o.nodes).map(|i| format!("{id}-n{i}")).collect(),
            id,
            dir,
            launched: std::sync::Mutex::new(Vec::new()),
        };
        let fence = c.dir.join("fence/nodes");
        std::fs::create_dir_all(&fence).expect("fence map dir");
        let sbin = c.dir.join("sbin");
        std::fs::create_dir_all(&sbin).expect("sbin dir");
        must(&["install", "-m", "755", FENCE_AGENT, &sbin.join("fence_hale_netns").to_string_lossy()]);
        must(&["ip", "netns", "add", &c.hub]);
        must(&["ip", "-n", &c.hub, "link", "add", "br0", "type", "bridge"]);
        must(&["ip", "-n", &c.hub, "link", "set", "br0", "up"]);
        let mut hosts: Vec<(String, String)> =
            c.nodes.iter().enumerate().map(|(i, ns)| (ns.clone(), format!("{NET}.{}", i + 1))).collect();
        hosts.push((c.client.clone(), format!("{NET}.100")));
        for (k, (ns, addr)) in hosts.iter().enumerate() {
            must(&["ip", "netns", "add", ns]);
            let port = format!("p{k}");
            must(&["ip", "-n", &c.hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", ns]);
            must(&["ip", "-n", &c.hub, "link", "set", &port, "master", "br0", "up"]);
            must(&["ip", "-n", ns, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
            must(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
            must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        for (i, ns) in c.nodes.iter().enumerate() {
            // What the fence agent identifies node i+1 by: its network namespace's inode and
            // the alias of its eth0 (names alone select nothing).
            must(&["ip", "-n", ns, "link", "set", "eth0", "alias", ns]);
            let inode = std::os::unix::fs::MetadataExt::ino(
                &std::fs::metadata(format!("/run/netns/{ns}")).expect("netns file"),
            );
            std::fs::write(fence.join(format!("node{}", i + 1)), format!("net={inode}\nalias={ns}\n"))
                .expect("fence map");
        }
        for i in 1..=o.nodes {
            c.prepare_node(i, o);
            c.start_node(i);
        }
        c.wait_online(Duration::from_secs(120));
        c.create_fence_device();
        c
    }

    /// The fence device: one `fence_hale_netns` covering every node, created with pcs once
    /// the cluster is online; wait until it runs and the cluster is idle.
    fn create_fence_device(&self) {
        let hosts = (1..=self.nodes.len()).map(|i| format!("node{i}")).collect::<Vec<_>>().join(" ");
        self.pcs(&[
            "stonith",
            "create",
            FENCE_DEVICE,
            "fence_hale_netns",
            &format!("map_dir={}", self.dir.join("fence").display()),
            &format!("pcmk_host_list={hosts}"),
            "op",
            "monitor",
            "interval=60s",
        ]);
        assert!(
            wait_for(Duration::from_secs(120), || self.locate(FENCE_DEVICE).len() == 1),
            "the fence device did not start:\n{}",
            self.mon_xml(self.any_live())
        );
        self.settle();
    }

    /// Every fencing the fence agent carried out (or failed), oldest first.
    pub fn fencings(&self) -> Vec<Fencing> {
        std::fs::read_to_string(self.dir.join("fence/fence.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(Fencing::parse)
            .collect()
    }

    /// Wait until the fence agent has fenced node i successfully, counting only fencings after
    /// the first `since` (a [`Cluster::fencings`] length taken before); the first such one.
    pub fn wait_fenced(&self, i: usize, since: usize, limit: Duration) -> Option<Fencing> {
        let target = format!("node{i}");
        let found = std::cell::RefCell::new(None);
        wait_for(limit, || {
            *found.borrow_mut() = self.fencings().into_iter().skip(since).find(|f| f.ok && f.target == target);
            found.borrow().is_some()
        });
        found.into_inner()
    }

    /// Pacemaker's fencing history for node i (`stonith_admin --history`, XML), seen from a
    /// live node.
    pub fn fence_history(&self, i: usize) -> String {
        self.exec(self.any_live(), &["stonith_admin", "--history", &format!("node{i}"), "--output-as=xml"]).1
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node{i}"))
    }

    /// A fresh node directory: empty CIB seeded with the cluster's settings.
    fn prepare_node(&self, i: usize, o: Options) {
        let d = self.node_dir(i);
        for sub in ["etc-corosync", "var-lib-corosync"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        must(&["cp", "-a", "/var/lib/pacemaker", &d.join("var-lib-pacemaker").to_string_lossy()]);
        must(&["cp", "-a", "/var/log/pacemaker", &d.join("log").to_string_lossy()]);
        let _ = run(&["cp", "-a", "/etc/corosync/uidgid.d", &d.join("etc-corosync").to_string_lossy()]);
        std::fs::write(d.join("etc-corosync/corosync.conf"), corosync_conf(o.nodes, o.token_ms)).unwrap();
        let cib = d.join("var-lib-pacemaker/cib/cib.xml");
        let empty = must(&["cibadmin", "--empty"]);
        std::fs::write(&cib, empty).unwrap();
        let with_cib = |args: &[&str]| {
            let out =
                Command::new(args[0]).args(&args[1..]).env("CIB_file", &cib).stdin(Stdio::null()).output().unwrap();
            assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        // A lost node is fenced before its resources start elsewhere (the device comes once
        // the cluster is online: Cluster::create_fence_device).
        with_cib(&["crm_attribute", "-t", "crm_config", "-n", "stonith-enabled", "-v", "true"]);
        // Pacemaker waits 20 s for a DC by default; nodes here start together.
        with_cib(&["crm_attribute", "-t", "crm_config", "-n", "dc-deadtime", "-v", "5s"]);
        with_cib(&[
            "cibadmin",
            "-C",
            "-o",
            "configuration",
            "-X",
            "<rsc_defaults><meta_attributes id=\"rsc-options\"><nvpair id=\"rsc-options-resource-stickiness\" name=\"resource-stickiness\" value=\"1\"/></meta_attributes></rsc_defaults>",
        ]);
        must(&["chown", "hacluster:haclient", &cib.to_string_lossy()]);
        must(&["chmod", "600", &cib.to_string_lossy()]);
    }

    fn anchor(&self, i: usize) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.node_dir(i).join("anchor.pid")).ok()?.trim().parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
        (state != "Z").then_some(pid)
    }

    /// Is node i running?
    pub fn is_up(&self, i: usize) -> bool {
        self.anchor(i).is_some()
    }

    /// Start (or restart) node i, as a machine boots: its interface comes up with only its own
    /// address (a floating address it held before a crash is gone, as after a reboot).
    pub fn start_node(&self, i: usize) {
        let ns = &self.nodes[i - 1];
        must(&["ip", "-n", ns, "addr", "flush", "dev", "eth0"]);
        must(&["ip", "-n", ns, "addr", "add", &format!("{NET}.{i}/24"), "dev", "eth0"]);
        must(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
        let d = self.node_dir(i);
        let _ = std::fs::remove_file(d.join("anchor.pid"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster/node.sh");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(d.join("log/anchor.out")).unwrap();
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.nodes[i - 1],
            "unshare",
            "--mount",
            "--uts",
            "--propagation",
            "private",
            "bash",
        ])
        .arg(script)
        .arg(&d)
        .arg(format!("node{i}"))
        .arg(self.dir.join("sbin"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0);
        let child = cmd.spawn().expect("start node");
        self.launched.lock().unwrap_or_else(|e| e.into_inner()).push(child);
        assert!(wait_for(Duration::from_secs(10), || self.is_up(i)), "node{i} did not start");
    }

    /// Crash node i, as a power loss: SIGKILL every process in its namespace and take its
    /// link down (a dead machine answers no ARP for the addresses it held).
    pub fn kill_node(&self, i: usize) {
        kill_netns(&self.nodes[i - 1]);
        must(&["ip", "-n", &self.nodes[i - 1], "link", "set", "eth0", "down"]);
    }

    /// Wait until the cluster has nothing left to do (`crm_resource --wait`).
    pub fn settle(&self) {
        let (ok, out) = self.exec(self.any_live(), &["crm_resource", "--wait", "--timeout=120s"]);
        assert!(ok, "the cluster did not settle: {out}");
    }

    /// Stop node i gracefully: pacemakerd first (it stops the resources), then corosync.
    pub fn stop_node(&self, i: usize) {
        let d = self.node_dir(i);
        for daemon in ["pacemakerd", "corosync"] {
            let Some(pid) = std::fs::read_to_string(d.join(format!("{daemon}.pid")))
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
            else {
                continue;
            };
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            wait_for(Duration::from_secs(120), || {
                nix::sys::signal::kill(pid, None).is_err() || is_zombie(pid.as_raw())
            });
        }
        kill_netns(&self.nodes[i - 1]);
    }

    /// Cut node i off the network (its bridge port down), or restore it.
    pub fn isolate(&self, i: usize, cut: bool) {
        must(&["ip", "-n", &self.hub, "link", "set", &format!("p{}", i - 1), if cut { "down" } else { "up" }]);
    }

    /// Run a command inside node i: (success, stdout and stderr).
    pub fn exec(&self, i: usize, argv: &[&str]) -> (bool, String) {
        let Some(anchor) = self.anchor(i) else { return (false, format!("node{i} is down")) };
        let t = anchor.to_string();
        let mut full = vec!["nsenter", "-t", &t, "-m", "-u", "-n", "--"];
        full.extend_from_slice(argv);
        run(&full)
    }

    /// Run a command in the client namespace.
    pub fn client(&self, argv: &[&str]) -> (bool, String) {
        let mut full = vec!["ip", "netns", "exec", &self.client];
        full.extend_from_slice(argv);
        run(&full)
    }

    /// The first node that is up.
    pub fn any_live(&self) -> usize {
        (1..=self.nodes.len()).find(|i| self.is_up(*i)).expect("no node is up")
    }

    /// `pcs` on a live node; panics with its output on failure.
    pub fn pcs(&self, args: &[&str]) -> String {
        let mut argv = vec!["pcs"];
        argv.extend_from_slice(args);
        let (ok, out) = self.exec(self.any_live(), &argv);
        assert!(ok, "pcs {}: {out}", args.join(" "));
        out
    }

    /// `crm_mon --output-as=xml` seen from node i.
    pub fn mon_xml(&self, i: usize) -> String {
        self.exec(i, &["crm_mon", "-1", "--output-as=xml"]).1
    }

    /// Wait until every live node sees every live node online and a DC.
    pub fn wait_online(&self, limit: Duration) {
        let live: Vec<usize> = (1..=self.nodes.len()).filter(|i| self.is_up(*i)).collect();
        let ok = wait_for(limit, || {
            live.iter().all(|i| {
                let x = self.mon_xml(*i);
                let online = live.iter().all(|j| x.contains(&format!("name=\"node{j}\" id=\"{j}\" online=\"true\"")));
                online && x.contains("<current_dc present=\"true\"")
            })
        });
        assert!(ok, "cluster {} did not come online:\n{}", self.id, self.mon_xml(live[0]));
    }

    /// The nodes `crm_resource --locate` names for a resource (seen from a live node).
    pub fn locate(&self, rsc: &str) -> Vec<usize> {
        let out = self.exec(self.any_live(), &["crm_resource", "--locate", "-r", rsc]).1;
        out.lines()
            .filter_map(|l| {
                l.rsplit_once("running on: ").map(|(_, n)| n.trim().trim_end_matches(" Promoted").to_string())
            })
            .filter_map(|n| n.strip_prefix("node").and_then(|k| k.parse().ok()))
            .collect()
    }

    /// Wait until `rsc` runs on exactly one node other than `not`, and return it.
    pub fn wait_moved(&self, rsc: &str, not: Option<usize>, limit: Duration) -> Option<usize> {
        let found = std::cell::Cell::new(None);
        wait_for(limit, || match self.locate(rsc).as_slice() {
            [one] if Some(*one) != not => {
                found.set(Some(*one));
                true
            }
            _ => false,
        });
        found.get()
    }

    /// The nodes whose interfaces hold `ip` right now.
    pub fn holders(&self, ip: &str) -> Vec<usize> {
        let needle = format!(" {ip}/");
        (1..=self.nodes.len())
            .filter(|i| run(&["ip", "-n", &self.nodes[i - 1], "-o", "addr", "show"]).1.contains(&needle))
            .collect()
    }

    /// The nodes that serve `ip`: it is on their interface and that interface has carrier,
    /// so a client could reach it. (A partitioned node whose link is cut may still have the
    /// address configured for a moment; nobody can reach it there.)
    pub fn serving(&self, ip: &str) -> Vec<usize> {
        self.holders(ip)
            .into_iter()
            .filter(|i| run(&["ip", "-n", &self.nodes[i - 1], "-o", "link", "show", "eth0"]).1.contains("LOWER_UP"))
            .collect()
    }

    /// The MAC of node i's eth0.
    pub fn node_mac(&self, i: usize) -> String {
        let out = must(&["ip", "-n", &self.nodes[i - 1], "-o", "link", "show", "eth0"]);
        out.split_whitespace().skip_while(|w| *w != "link/ether").nth(1).unwrap_or_default().to_string()
    }

    /// The MAC the client's neighbour table holds for `ip`.
    pub fn client_neighbour(&self, ip: &str) -> Option<String> {
        let out = must(&["ip", "-n", &self.client, "neigh", "show", ip]);
        out.split_whitespace().skip_while(|w| *w != "lladdr").nth(1).map(str::to_string)
    }

    /// The network namespace of node i (for `ip -n`).
    pub fn netns(&self, i: usize) -> &str {
        &self.nodes[i - 1]
    }

    /// A directory every node sees (the host's), for content the resources serve.
    pub fn shared_dir(&self) -> PathBuf {
        let d = self.dir.join("shared");
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// node i's pacemaker log.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.node_dir(i).join("log/pacemaker.log")).unwrap_or_default()
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()).is_none_or(|st| st == "Z"))
        .unwrap_or(true)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Nodes that see others go during the tear-down may try to fence them: without their
        // map entries the fence agent touches nothing.
        let _ = std::fs::remove_dir_all(self.dir.join("fence/nodes"));
        for ns in self.nodes.iter().chain([&self.client, &self.hub]) {
            kill_netns(ns);
            let _ = run(&["ip", "netns", "del", ns]);
        }
        for mut child in self.launched.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = child.wait();
        }
        // HALE_KEEP_CLUSTER_LOGS=1 keeps the node directories (logs, CIBs) for a post-mortem.
        if std::env::var_os("HALE_KEEP_CLUSTER_LOGS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// An HTTP client inside a network namespace, without forking: a thread that entered the
/// namespace (setns applies to the calling thread only) and answers GET requests.
/// One GET for the client thread: host, port, timeout, and where to send the answer.
type Request = (String, u16, Duration, std::sync::mpsc::Sender<Result<String, String>>);

pub struct NsClient {
    tx: std::sync::mpsc::Sender<Request>,
}

impl NsClient {
    pub fn new(netns: &str) -> NsClient {
        let (tx, rx) =
            std::sync::mpsc::channel::<(String, u16, Duration, std::sync::mpsc::Sender<Result<String, String>>)>();
        let path = format!("/run/netns/{netns}");
        std::thread::spawn(move || {
            let f = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            for (host, port, timeout, reply) in rx {
                let _ = reply.send(http_get(&host, port, timeout));
            }
        });
        NsClient { tx }
    }

    /// GET / from host:port with a timeout; the body, or why not.
    pub fn get(&self, host: &str, port: u16, timeout: Duration) -> Result<String, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.tx.send((host.to_string(), port, timeout, tx)).map_err(|e| e.to_string())?;
        rx.recv().map_err(|e| e.to_string())?
    }
}

fn http_get(host: &str, port: u16, timeout: Duration) -> Result<String, String> {
    let addr = format!("{host}:{port}").parse().map_err(|e| format!("{e}"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.write_all(format!("GET / HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes()).map_err(|e| e.to_string())?;
    let mut body = String::new();
    s.read_to_string(&mut body).map_err(|e| e.to_string())?;
    if body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200") {
        Ok(body)
    } else {
        Err(body.lines().next().unwrap_or("empty answer").to_string())
    }
}

/// Measure how long a client is without an answer: poll GET every `period` from a client
/// thread until `stop` says so; returns the longest gap between two good answers.
pub struct Outage {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<Duration>>,
}

impl Outage {
    pub fn watch(netns: &str, host: &str, port: u16, period: Duration) -> Outage {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        let client = NsClient::new(netns);
        let host = host.to_string();
        let handle = std::thread::spawn(move || {
            let mut last_ok = Instant::now();
            let mut worst = Duration::ZERO;
            while !flag.load(Ordering::Relaxed) {
                let t = Instant::now();
                if client.get(&host, port, period.max(Duration::from_millis(200))).is_ok() {
                    worst = worst.max(t.saturating_duration_since(last_ok));
                    last_ok = Instant::now();
                }
                std::thread::sleep(period.saturating_sub(t.elapsed()));
            }
            worst
        });
        Outage { done, handle: Some(handle) }
    }

    /// Stop watching; the longest time without an answer.
    pub fn finish(mut self) -> Duration {
        self.done.store(true, Ordering::Relaxed);
        self.handle.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default()
    }
}
