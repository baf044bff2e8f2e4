//! Hale agents in a real three-node Pacemaker cluster, with fencing (the suite's
//! fence_hale_netns). Assertions are about cluster state (crm_mon, crm_resource --locate,
//! the fencing history) and what a client sees, never about durations: waits have generous
//! limits and only bound how long a failure takes to report.

use hale_ocf_tests::cluster::{process_start_cs, Cluster, NsClient, Options, NET, VIP};
use hale_ocf_tests::wait_for;
use std::time::Duration;

const PORT: u16 = 8080;
const LONG: Duration = Duration::from_secs(90);

fn web_group(c: &Cluster) {
    let www = c.shared_dir().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "<html>hale web</html>\n").unwrap();
    c.pcs(&["resource", "create", "web-ip", "ocf:hale:vip", &format!("ip={VIP}"), "cidr_netmask=24", "--group", "web"]);
    c.pcs(&[
        "resource",
        "create",
        "web-srv",
        "ocf:hale:daemon",
        &format!("command=python3 -m http.server {PORT} --directory {}", www.display()),
        &format!("health_url=http://127.0.0.1:{PORT}/"),
        "health_regex=hale web",
        "--group",
        "web",
    ]);
}

/// The client gets the page through the VIP (waiting while the cluster moves things).
fn client_reaches(c: &Cluster, client: &NsClient) -> bool {
    let _ = c;
    wait_for(LONG, || client.get(VIP, PORT, Duration::from_secs(1)).is_ok_and(|b| b.contains("hale web")))
}

const PIDFILE: &str = "/run/hale/daemon-web-srv.pid";

/// The pid of web's service on node i (from the daemon agent's pidfile there).
fn service_pid(c: &Cluster, i: usize) -> i32 {
    let out = c.exec(i, &["cat", PIDFILE]).1;
    out.split_whitespace().next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("pidfile on node{i}: {out}"))
}

/// Node `lost` was fenced, by another node, before web's service started on node `now`: the
/// fence agent logged its success (fencings after the first `since`) no later than the
/// service's process began, and Pacemaker's fencing history holds the success.
fn fenced_before_started(c: &Cluster, lost: usize, since: usize, now: usize) {
    let f = c
        .wait_fenced(lost, since, LONG)
        .unwrap_or_else(|| panic!("node{lost} was not fenced: {:?}\n{}", c.fencings(), c.fence_history(lost)));
    assert_ne!(f.by, format!("node{lost}"), "{f:?}");
    let pid = service_pid(c, now);
    let started = process_start_cs(pid).expect("web-srv's start time");
    assert!(
        f.uptime_cs <= started,
        "web-srv (pid {pid}) on node{now} started at {started} cs of uptime, before node{lost} was fenced ({f:?})"
    );
    let history = c.fence_history(lost);
    assert!(
        history.contains(&format!("target=\"node{lost}\"")) && history.contains("status=\"success\""),
        "Pacemaker's fencing history of node{lost}:\n{history}"
    );
}

fn failcount(c: &Cluster, rsc: &str, node: usize) -> String {
    let out = c.exec(c.any_live(), &["crm_failcount", "--query", "-r", rsc, "-N", &format!("node{node}")]).1;
    out.split("value=").nth(1).map(|v| v.trim().to_string()).unwrap_or_else(|| out.trim().to_string())
}

#[test]
fn scenarios_on_a_three_node_cluster() {
    let c = Cluster::start(Options { nodes: 3, token_ms: Some(1000) });
    let client = NsClient::new(&c.client);

    // 1. The web group: vip + daemon, created with pcs --group; the client fetches a page.
    web_group(&c);
    let a = c.wait_moved("web", None, LONG).expect("web group never started");
    assert!(client_reaches(&c, &client), "client cannot fetch through {VIP}");
    assert_eq!(c.holders(VIP), vec![a]);
    assert_eq!(c.locate("web-srv"), vec![a], "group members together");

    // 2. Graceful stop of the active node: the group moves; the client's neighbour entry
    //    for the VIP now has the new node's MAC. Nobody is fenced.
    let since = c.fencings().len();
    c.stop_node(a);
    let b = c.wait_moved("web", Some(a), LONG).expect("web did not move after a graceful stop");
    assert!(client_reaches(&c, &client));
    let mac = c.node_mac(b);
    assert!(
        wait_for(LONG, || c.client_neighbour(VIP).as_deref() == Some(mac.as_str())),
        "client neighbour entry for {VIP}: {:?}, want node{b} {mac}",
        c.client_neighbour(VIP)
    );
    c.start_node(a);
    c.wait_online(LONG);
    c.settle();
    assert_eq!(c.locate("web"), vec![b], "stickiness keeps web on node{b} when node{a} returns");
    assert_eq!(c.fencings().len(), since, "a graceful stop fences nobody: {:?}", c.fencings());

    // 3. Crash of the active node (SIGKILL of all its processes): the node is fenced, then
    //    the group moves.
    let since = c.fencings().len();
    c.kill_node(b);
    let d = c.wait_moved("web", Some(b), LONG).expect("web did not move after a crash");
    assert!(client_reaches(&c, &client));
    fenced_before_started(&c, b, since, d);
    c.start_node(b);
    c.wait_online(LONG);
    c.settle();
    assert_eq!(c.locate("web"), vec![d], "the returning node does not take web back");

    // 4. The service dies: monitor catches it, the cluster restarts it in place, fail-count 1.
    let pid = service_pid(&c, d);
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default().replace('\0', " ");
    assert!(cmdline.contains("http.server"), "pid {pid} from node{d}'s pidfile is {cmdline:?}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    assert!(
        wait_for(LONG, || failcount(&c, "web-srv", d) == "1"),
        "fail-count on node{d} is {}; pid {pid} state {:?}\n{}",
        failcount(&c, "web-srv", d),
        std::fs::read_to_string(format!("/proc/{pid}/stat")).ok(),
        c.mon_xml(d)
    );
    assert!(client_reaches(&c, &client));
    assert_eq!(c.locate("web"), vec![d], "restarted in place");
    let new_pid = service_pid(&c, d);
    assert_ne!(new_pid, pid, "a new process serves");
    let xml = c.mon_xml(d);
    assert!(xml.contains("web-srv") && xml.contains("has exited"), "the exit reason shows in crm_mon:\n{xml}");
    c.pcs(&["resource", "cleanup", "web-srv"]);

    // 5. Partition of the active node: the majority fences it (every process of the node is
    //    killed and its addresses are gone), then runs the group; at no sampled moment do two
    //    nodes serve the VIP.
    let since = c.fencings().len();
    c.isolate(d, true);
    let mut most = 0;
    let moved = wait_for(LONG, || {
        let serving = c.serving(VIP);
        most = most.max(serving.len());
        serving.len() == 1 && serving[0] != d
    });
    assert!(moved, "the majority did not take the VIP over; serving {:?}", c.serving(VIP));
    let e = c.wait_moved("web", Some(d), LONG).expect("web did not move after the partition");
    fenced_before_started(&c, d, since, e);
    let fenced = c.wait_fenced(d, since, LONG).unwrap();
    assert!(fenced.killed > 0, "the fence agent killed node{d}'s processes: {fenced:?}");
    assert!(!c.is_up(d), "node{d} is down after fencing");
    let stopped = wait_for(LONG, || {
        most = most.max(c.serving(VIP).len());
        !c.holders(VIP).contains(&d)
    });
    assert!(stopped, "the fenced node{d} kept {VIP}");
    assert!(most <= 1, "two nodes served {VIP} at once");
    assert!(client_reaches(&c, &client));
    c.isolate(d, false);
    c.start_node(d);
    c.wait_online(LONG);
    c.settle();
    assert_eq!(c.holders(VIP).len(), 1);

    // 6. Constraints behave as with stock agents; a daemon clone runs on every node.
    for (first, second, agent, params) in
        [("h1", "h2", "ocf:hale:daemon", vec!["command=sleep 1000000"]), ("s1", "s2", "ocf:heartbeat:Dummy", vec![])]
    {
        for r in [first, second] {
            let mut args = vec!["resource", "create", r, agent];
            args.extend(params.iter().copied());
            c.pcs(&args);
        }
        c.pcs(&["constraint", "colocation", "add", second, "with", first, "INFINITY"]);
        c.pcs(&["constraint", "order", "start", first, "then", "start", second]);
        c.pcs(&["constraint", "location", first, "prefers", "node2=100"]);
        assert!(
            wait_for(LONG, || c.locate(first) == vec![2] && c.locate(second) == vec![2]),
            "{agent}: location + colocation"
        );
        let id = c.pcs(&["constraint", "location", "config", "--full"]);
        let loc = id
            .lines()
            .find(|l| l.contains(&format!("location-{first}-node2")))
            .map(|_| format!("location-{first}-node2-100"));
        c.pcs(&["constraint", "remove", &loc.expect("location id")]);
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(c.locate(first), vec![2], "{agent}: stickiness keeps {first} where it is");
        c.pcs(&["resource", "disable", first]);
        assert!(
            wait_for(LONG, || c.locate(first).is_empty() && c.locate(second).is_empty()),
            "{agent}: {second} stops with {first}"
        );
        c.pcs(&["resource", "delete", second]);
        c.pcs(&["resource", "delete", first]);
    }
    c.pcs(&["resource", "create", "every", "ocf:hale:daemon", "command=sleep 1000000", "clone", "meta", "clone-max=3"]);
    assert!(wait_for(LONG, || c.locate("every-clone").len() == 3), "clone on {:?}", c.locate("every-clone"));
    c.settle();
    let every = || hale_ocf_tests::tagged_processes("daemon:every").len();
    assert!(
        wait_for(LONG, || every() == 3),
        "one service per node, found {}: {}\n{}",
        every(),
        std::process::Command::new("pgrep")
            .args(["-af", "sleep"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default(),
        c.mon_xml(1)
    );
    c.pcs(&["resource", "delete", "every-clone"]);

    // 7. Start failure (bad health URL): the cluster moves on; the reason is in crm_mon.
    c.pcs(&[
        "resource",
        "create",
        "broken",
        "ocf:hale:daemon",
        "command=sleep 1000000",
        &format!("health_url=http://{NET}.250:9/"),
        "health_timeout=1",
        "op",
        "start",
        "timeout=6s",
    ]);
    assert!(
        wait_for(LONG, || c.mon_xml(c.any_live()).matches("op_key=\"broken_start_0\"").count() >= 2),
        "broken should fail on one node, then another"
    );
    c.settle();
    let xml = c.mon_xml(c.any_live());
    assert!(xml.contains("not healthy before the start timeout"), "exit reason in crm_mon failed actions:\n{xml}");
    assert_eq!(xml.matches("op_key=\"broken_start_0\"").count(), 3, "tried on every node:\n{xml}");
    assert!(c.locate("broken").is_empty(), "broken runs nowhere");
    assert!(hale_ocf_tests::tagged_processes("daemon:broken").is_empty(), "failed starts left nothing behind");
    assert_eq!(c.holders(VIP).len(), 1, "the web group is untouched");
    let fencings = c.fencings();
    assert!(
        fencings.len() == 2 && fencings.iter().all(|f| f.ok),
        "the crash and the partition are the only fencings, both successful: {fencings:?}"
    );
}
