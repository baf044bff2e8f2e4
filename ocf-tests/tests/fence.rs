//! The test cluster's fence agent (`ocf-tests/cluster/fence_hale_netns`) on its own, against
//! hosts in network namespaces: the fence-agents stdin protocol as pacemaker-fenced speaks it,
//! metadata, and what fencing kills (every process of the target's namespace, nothing else)
//! and refuses. The cluster scenarios (`cluster.rs`) use it through Pacemaker.

use hale_ocf_tests::cluster::FENCE_AGENT;
use hale_ocf_tests::netns::{ip, Topology};
use hale_ocf_tests::{wait_for, Scratch};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Run the agent as pacemaker-fenced does: no arguments, key=value lines on stdin.
fn agent(stdin: &str) -> Run {
    let mut child = Command::new(FENCE_AGENT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the fence agent");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Two hosts made nodes: the map the harness writes (node1 = host 0, node2 = host 1), and
/// processes in each, some ignoring SIGTERM, one with a child of its own.
struct Nodes {
    t: Topology,
    map: Scratch,
    children: Vec<Child>,
}

fn netns_inode(ns: &str) -> u64 {
    std::fs::metadata(format!("/run/netns/{ns}")).unwrap().ino()
}

impl Nodes {
    fn new() -> Nodes {
        let t = Topology::new(2);
        let map = Scratch::new("fence-map");
        std::fs::create_dir_all(map.0.join("nodes")).unwrap();
        let mut children = Vec::new();
        for (k, h) in t.hosts.iter().enumerate() {
            ip(&["-n", &h.ns, "link", "set", "eth0", "alias", &h.ns]);
            let entry = format!("net={}\nalias={}\n", netns_inode(&h.ns), h.ns);
            std::fs::write(map.0.join(format!("nodes/node{}", k + 1)), entry).unwrap();
            for script in ["exec sleep 1000", "trap '' TERM; sleep 1000 & exec sleep 1000"] {
                children.push(
                    Command::new("ip")
                        .args(["netns", "exec", &h.ns, "sh", "-c", script])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap(),
                );
            }
        }
        let n = Nodes { t, map, children };
        assert!(wait_for(Duration::from_secs(10), || n.pids(0).len() == 3 && n.pids(1).len() == 3));
        n
    }

    fn map_dir(&self) -> String {
        self.map.0.display().to_string()
    }

    /// The processes in host k's network namespace.
    fn pids(&self, k: usize) -> Vec<i32> {
        ip(&["netns", "pids", &self.t.hosts[k].ns]).split_whitespace().filter_map(|p| p.parse().ok()).collect()
    }

    fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.map.0.join("fence.log")).unwrap_or_default().lines().map(str::to_string).collect()
    }

    /// stdin for an action on a node, with what pacemaker-fenced adds.
    fn ask(&self, action: &str, node: &str) -> Run {
        agent(&format!(
            "action={action}\nnodename={node}\nnodeid=1\nport={node}\nmap_dir={}\npcmk_host_list=node1 node2\n",
            self.map_dir()
        ))
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        // Everything left in the namespaces (the background children too), then reap ours.
        for k in 0..self.t.hosts.len() {
            wait_for(Duration::from_secs(10), || {
                let pids = self.pids(k);
                for p in &pids {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), nix::sys::signal::Signal::SIGKILL);
                }
                pids.is_empty()
            });
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
    }
}

#[test]
fn metadata_describes_the_agent_for_pacemaker_and_pcs() {
    for run in [agent("action=metadata\n"), {
        let out = Command::new(FENCE_AGENT).args(["-o", "metadata"]).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::new(),
        }
    }] {
        assert_eq!(run.code, 0, "{}", run.stderr);
        let mut lint = Command::new("xmllint")
            .args(["--noout", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("xmllint (ocf-tests/deps.sh installs it)");
        lint.stdin.take().unwrap().write_all(run.stdout.as_bytes()).unwrap();
        let lint = lint.wait_with_output().unwrap();
        assert!(lint.status.success(), "metadata is not XML: {}", String::from_utf8_lossy(&lint.stderr));
        assert!(run.stdout.contains("<resource-agent name=\"fence_hale_netns\""));
        for p in ["action", "plug", "port", "map_dir", "kill_timeout"] {
            assert!(run.stdout.contains(&format!("<parameter name=\"{p}\"")), "parameter {p}");
        }
        for a in ["on", "off", "reboot", "status", "list", "monitor", "metadata", "validate-all"] {
            assert!(run.stdout.contains(&format!("<action name=\"{a}\"")), "action {a}");
        }
    }
}

#[test]
fn fencing_kills_every_process_of_the_node_and_nothing_else() {
    let n = Nodes::new();
    let map = n.map_dir();
    assert_eq!(agent(&format!("action=monitor\nmap_dir={map}\n")).code, 0);
    assert_eq!(agent(&format!("action=validate-all\nmap_dir={map}\n")).code, 0);
    let list = agent(&format!("action=list\nmap_dir={map}\n"));
    assert_eq!((list.code, list.stdout.as_str()), (0, "node1\nnode2\n"));
    let status = n.ask("status", "node1");
    assert_eq!((status.code, status.stdout.trim()), (0, "Status: ON"), "{}", status.stderr);
    let survivors = n.pids(1);

    // reboot, as pacemaker-fenced asks for it: success means the processes are gone already.
    let r = n.ask("reboot", "node1");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(n.pids(0), Vec::<i32>::new(), "node1's processes are gone when the agent reports success");
    let addrs = ip(&["-n", &n.t.hosts[0].ns, "-o", "addr", "show", "dev", "eth0"]);
    assert!(!addrs.contains("inet"), "node1's addresses are removed: {addrs}");
    let link = ip(&["-n", &n.t.hosts[0].ns, "-o", "link", "show", "dev", "eth0"]);
    assert!(link.contains("state DOWN"), "node1's eth0 is down: {link}");
    assert_eq!(n.pids(1), survivors, "node2 is untouched");
    let log = n.log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0].contains("action=reboot target=node1 result=ok"), "{log:?}");
    let killed: u32 = log[0].split("killed=").nth(1).and_then(|k| k.trim().parse().ok()).unwrap();
    assert!(killed >= 3, "killed {killed}: the processes and the child of one");

    // reboot brings nothing back: the node is off; on cannot power it on; off again succeeds.
    assert_eq!(n.ask("status", "node1").code, 2);
    let on = n.ask("on", "node1");
    assert_eq!(on.code, 1, "on reports failure for a node it cannot start");
    assert!(on.stderr.contains("harness starts nodes"), "{}", on.stderr);
    let again = agent(&format!("action=off\nplug=node1\nmap_dir={map}\n"));
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(n.log()[1].contains("action=off target=node1 result=ok") && n.log()[1].ends_with("killed=0"));

    // The command-line form, for people.
    let out = Command::new(FENCE_AGENT).args(["-o", "status", "-n", "node2", "--map-dir", &map]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(n.ask("on", "node2").code, 0, "on succeeds for a node that runs");
    assert_eq!(n.pids(1), survivors);
}

#[test]
fn the_agent_refuses_what_could_name_the_wrong_processes_and_fails_when_they_outlive_the_wait() {
    let n = Nodes::new();
    let map = n.map_dir();
    let before = (n.pids(0), n.pids(1));
    // node3 claims host 0's namespace but not its alias: a reused inode would look like this.
    let wrong = format!("net={}\nalias=somebody-else\n", netns_inode(&n.t.hosts[0].ns));
    std::fs::write(n.map.0.join("nodes/node3"), wrong).unwrap();
    // node4 is the namespace the agent itself runs in.
    let own = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
    std::fs::write(n.map.0.join("nodes/node4"), format!("net={own}\nalias=x\n")).unwrap();
    std::fs::write(n.map.0.join("nodes/node5"), "alias=x\n").unwrap();
    for (stdin, why) in [
        (format!("action=off\nplug=node3\nmap_dir={map}\n"), "does not carry the alias"),
        (format!("action=reboot\nplug=node4\nmap_dir={map}\n"), "network namespace"),
        (format!("action=off\nplug=node5\nmap_dir={map}\n"), "no namespace inode"),
        (format!("action=off\nplug=../nodes/node1\nmap_dir={map}\n"), "invalid node name"),
        (format!("action=off\nplug=node9\nmap_dir={map}\n"), "is not in"),
        (format!("action=off\nmap_dir={map}\n"), "no node named"),
        ("action=off\nplug=node1\n".to_string(), "map_dir is required"),
        ("action=monitor\nmap_dir=/nonexistent\n".to_string(), "not a directory"),
        (format!("action=frobnicate\nmap_dir={map}\n"), "unsupported action"),
    ] {
        let r = agent(&stdin);
        assert_eq!(r.code, 1, "{stdin:?}: {}", r.stderr);
        assert!(r.stderr.contains(why), "{stdin:?}: want {why:?}, got {}", r.stderr);
    }
    assert_eq!((n.pids(0), n.pids(1)), before, "a refusal kills nothing");

    // Processes still there when the wait is over: failure, logged as such, not success.
    let r = agent(&format!("action=off\nplug=node1\nmap_dir={map}\nkill_timeout=0\n"));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("still there"), "{}", r.stderr);
    assert_eq!(n.pids(0), before.0);
    let log = n.log();
    assert!(log.len() == 1 && log[0].contains("target=node1 result=failed"), "{log:?}");
}
