//! `hale-cluster`: a local Pacemaker cluster of Hale agents, for the demo and for looking
//! around (as root).
//!
//! ```text
//! hale-cluster demo            # 3 nodes, the web group, crash the active node (fenced), tear down
//! hale-cluster up [N]          # start N nodes (default 3) and keep them until Ctrl-C / SIGTERM
//! hale-cluster bench-failover [RUNS]   # client outage, Hale vs IPaddr2+anything (default 5 runs)
//! hale-cluster bench-scale [SECONDS]   # execd+agent CPU with 50/200 resources (default 60 s)
//! ```

use hale_ocf_tests::cluster::{Cluster, NsClient, Options, Outage, VIP};
use hale_ocf_tests::wait_for;
use std::time::{Duration, Instant};

const PORT: u16 = 8080;

/// Print a step, then the command's output.
fn show(c: &Cluster, node: usize, argv: &[&str]) {
    println!("\n\x1b[1mnode{node}$ {}\x1b[0m", argv.join(" "));
    print!("{}", c.exec(node, argv).1);
}

/// The demo: a 3-node cluster serves a page through ocf:hale:vip + ocf:hale:daemon; the
/// active node crashes; the cluster fences it (the suite's fence_hale_netns); the group moves;
/// the client's outage is measured.
fn demo() -> Result<(), String> {
    println!("starting a 3-node Pacemaker cluster (corosync token 1000 ms), each node in its own namespaces...");
    let t0 = Instant::now();
    let c = Cluster::start(Options { nodes: 3, token_ms: Some(1000) });
    println!("cluster {} online after {:.1} s", c.id, t0.elapsed().as_secs_f64());
    let www = c.shared_dir().join("www");
    std::fs::create_dir_all(&www).map_err(|e| e.to_string())?;
    std::fs::write(www.join("index.html"), "<html>served by ocf:hale:daemon behind ocf:hale:vip</html>\n")
        .map_err(|e| e.to_string())?;
    let ip = format!("ip={VIP}");
    let command = format!("command=python3 -m http.server {PORT} --directory {}", www.display());
    let health = format!("health_url=http://127.0.0.1:{PORT}/");
    show(&c, 1, &["pcs", "resource", "create", "web-ip", "ocf:hale:vip", &ip, "cidr_netmask=24", "--group", "web"]);
    show(&c, 1, &["pcs", "resource", "create", "web-srv", "ocf:hale:daemon", &command, &health, "--group", "web"]);
    let active = c.wait_moved("web", None, Duration::from_secs(60)).ok_or("the web group did not start")?;
    c.settle();
    show(&c, 1, &["crm_mon", "-1"]);
    let client = NsClient::new(&c.client);
    let page = client.get(VIP, PORT, Duration::from_secs(2))?;
    println!("\nclient$ GET http://{VIP}:{PORT}/  ->  {}", page.lines().last().unwrap_or_default());

    let outage = Outage::watch(&c.client, VIP, PORT, Duration::from_millis(50));
    std::thread::sleep(Duration::from_millis(500));
    println!("\ncrashing node{active} (SIGKILL of every process on it, link down)...");
    let fenced_before = c.fencings().len();
    let crash = Instant::now();
    c.kill_node(active);
    let new = c.wait_moved("web", Some(active), Duration::from_secs(60)).ok_or("the web group did not move")?;
    let served = wait_for(Duration::from_secs(60), || client.get(VIP, PORT, Duration::from_millis(500)).is_ok());
    let elapsed = crash.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let gap = outage.finish();
    show(&c, new, &["crm_mon", "-1"]);
    show(&c, new, &["stonith_admin", "--history", &format!("node{active}")]);
    let fenced =
        c.wait_fenced(active, fenced_before, Duration::from_secs(60)).ok_or("the crashed node was not fenced")?;
    println!("\nnode{active} was fenced by {} (fence_hale_netns) before web started on node{new}", fenced.by);
    if !served {
        return Err("the client never got an answer after the failover".into());
    }
    println!(
        "\nweb moved from node{active} to node{new}; the client was without an answer for {:.2} s \
         (service back {:.2} s after the crash)",
        gap.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!("\ntearing the cluster down...");
    Ok(())
}

/// The two ways to build the web group.
#[derive(Clone, Copy, PartialEq)]
enum Stack {
    Hale,
    Stock,
}

fn create_web(c: &Cluster, stack: Stack, www: &std::path::Path) {
    let ip = format!("ip={VIP}");
    match stack {
        Stack::Hale => {
            let command = format!("command=python3 -m http.server {PORT} --directory {}", www.display());
            let health = format!("health_url=http://127.0.0.1:{PORT}/");
            c.pcs(&["resource", "create", "web-ip", "ocf:hale:vip", &ip, "cidr_netmask=24", "--group", "web"]);
            c.pcs(&["resource", "create", "web-srv", "ocf:hale:daemon", &command, &health, "--group", "web"]);
        }
        Stack::Stock => {
            let opts = format!("cmdline_options=-m http.server {PORT} --directory {}", www.display());
            c.pcs(&["resource", "create", "web-ip", "ocf:heartbeat:IPaddr2", &ip, "cidr_netmask=24", "--group", "web"]);
            c.pcs(&[
                "resource",
                "create",
                "web-srv",
                "ocf:heartbeat:anything",
                "binfile=/usr/bin/python3",
                &opts,
                "--group",
                "web",
            ]);
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

/// Client outage on failover: n runs per cell, graceful stop and crash of the active node,
/// Hale vip+daemon against IPaddr2+anything, one 3-node cluster with token 1000 ms.
fn bench_failover(runs: usize) -> Result<(), String> {
    let c = Cluster::start(Options { nodes: 3, token_ms: Some(1000) });
    let www = c.shared_dir().join("www");
    std::fs::create_dir_all(&www).map_err(|e| e.to_string())?;
    std::fs::write(www.join("index.html"), "ok\n").map_err(|e| e.to_string())?;
    let client = NsClient::new(&c.client);
    let mut rows = Vec::new();
    for stack in [Stack::Hale, Stack::Stock] {
        create_web(&c, stack, &www);
        c.wait_moved("web", None, Duration::from_secs(60)).ok_or("web did not start")?;
        c.settle();
        for crash in [false, true] {
            let mut gaps = Vec::new();
            for _ in 0..runs {
                if !wait_for(Duration::from_secs(60), || client.get(VIP, PORT, Duration::from_millis(500)).is_ok()) {
                    return Err("web is not serving before a run".into());
                }
                let active = *c.locate("web").first().ok_or("web runs nowhere")?;
                let outage = Outage::watch(&c.client, VIP, PORT, Duration::from_millis(20));
                std::thread::sleep(Duration::from_millis(300));
                if crash {
                    c.kill_node(active);
                } else {
                    c.stop_node(active);
                }
                c.wait_moved("web", Some(active), Duration::from_secs(60)).ok_or("web did not move")?;
                wait_for(Duration::from_secs(60), || client.get(VIP, PORT, Duration::from_millis(500)).is_ok());
                std::thread::sleep(Duration::from_millis(200));
                gaps.push(outage.finish().as_secs_f64());
                c.start_node(active);
                c.wait_online(Duration::from_secs(120));
                c.settle();
            }
            let name = match stack {
                Stack::Hale => "hale vip + daemon",
                Stack::Stock => "IPaddr2 + anything",
            };
            let kind = if crash { "crash" } else { "graceful" };
            let all = gaps.iter().map(|g| format!("{g:.2}")).collect::<Vec<_>>().join(" ");
            let (lo, hi) = (gaps.iter().cloned().fold(f64::MAX, f64::min), gaps.iter().cloned().fold(0.0, f64::max));
            let m = median(&mut gaps);
            println!("{name:<20} {kind:<9} median {m:.2} s  [{lo:.2}-{hi:.2}]  runs: {all}");
            rows.push((name, kind, m, lo, hi));
        }
        c.pcs(&["resource", "delete", "web-srv"]);
        c.pcs(&["resource", "delete", "web-ip"]);
        c.settle();
    }
    println!("\n| stack | failover | client outage, median [min-max], n={runs} |\n|---|---|---|");
    for (name, kind, m, lo, hi) in rows {
        println!("| {name} | {kind} | {m:.2} s [{lo:.2}-{hi:.2}] |");
    }
    Ok(())
}

/// CPU seconds (user+system, the process and its reaped children) of node 1's pacemaker-execd:
/// the executor plus every agent it ran.
fn execd_cpu(c: &Cluster) -> Result<f64, String> {
    let pids =
        std::process::Command::new("ip").args(["netns", "pids", c.netns(1)]).output().map_err(|e| e.to_string())?;
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        if !stat.contains("(pacemaker-execd)") {
            continue;
        }
        let f: Vec<u64> = stat
            .rsplit_once(')')
            .map(|(_, r)| r.split_whitespace().filter_map(|x| x.parse().ok()).collect())
            .unwrap_or_default();
        // After ')' : state is not numeric, so f[10..14] are utime, stime, cutime, cstime.
        let ticks: u64 = f.get(10..14).map(|s| s.iter().sum()).unwrap_or(0);
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as f64;
        return Ok(ticks as f64 / hz);
    }
    Err("pacemaker-execd not found on node1".into())
}

/// One node running M resources of one agent with 10 s monitors: executor and agent CPU.
fn bench_scale(seconds: u64) -> Result<(), String> {
    let mut rows = Vec::new();
    for m in [50usize, 200] {
        for (name, class, provider, agent) in [
            ("hale daemon", "ocf", "hale", "daemon"),
            ("heartbeat anything", "ocf", "heartbeat", "anything"),
            ("heartbeat Dummy", "ocf", "heartbeat", "Dummy"),
        ] {
            let c = Cluster::start(Options { nodes: 1, token_ms: Some(1000) });
            let mut xml = String::from("<resources>");
            for k in 0..m {
                let params = match agent {
                    "daemon" => "<nvpair id=\"r{k}-c\" name=\"command\" value=\"sleep 1000000\"/>".to_string(),
                    "anything" => "<nvpair id=\"r{k}-b\" name=\"binfile\" value=\"/usr/bin/sleep\"/><nvpair id=\"r{k}-o\" name=\"cmdline_options\" value=\"1000000\"/>".to_string(),
                    _ => String::new(),
                }
                .replace("{k}", &k.to_string());
                xml.push_str(&format!(
                    "<primitive id=\"r{k}\" class=\"{class}\" provider=\"{provider}\" type=\"{agent}\"><instance_attributes id=\"r{k}-ia\">{params}</instance_attributes><operations><op id=\"r{k}-mon\" name=\"monitor\" interval=\"10s\" timeout=\"20s\"/></operations></primitive>"
                ));
            }
            xml.push_str("</resources>");
            let (ok, out) = c.exec(1, &["cibadmin", "--modify", "-o", "resources", "--xml-text", &xml]);
            if !ok {
                return Err(format!("creating {m} {name} resources: {out}"));
            }
            c.settle();
            let want = format!("resource_agent=\"{class}:{provider}:{agent}\"");
            let running = c
                .exec(1, &["crm_mon", "-1", "--output-as=xml"])
                .1
                .lines()
                .filter(|l| l.contains(&want) && l.contains("role=\"Started\""))
                .count();
            if running != m {
                return Err(format!("{name}: {running} of {m} resources started"));
            }
            let before = execd_cpu(&c)?;
            std::thread::sleep(Duration::from_secs(seconds));
            let used = execd_cpu(&c)? - before;
            let pct = 100.0 * used / seconds as f64;
            println!("{m:>4} x {name:<20} {used:>7.2} s CPU in {seconds} s = {pct:>5.1} % of one core");
            rows.push((m, name, used, pct));
        }
    }
    println!("\n| resources | agent | execd + agents CPU in {seconds} s | % of one core |\n|---|---|---|---|");
    for (m, name, used, pct) in rows {
        println!("| {m} | {name} | {used:.2} s | {pct:.1} % |");
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => {
            if let Err(e) = demo() {
                eprintln!("demo failed: {e}");
                std::process::exit(1);
            }
        }
        Some("bench-failover") => {
            let runs = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(5);
            if let Err(e) = bench_failover(runs) {
                eprintln!("bench-failover failed: {e}");
                std::process::exit(1);
            }
        }
        Some("bench-scale") => {
            let seconds = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(60);
            if let Err(e) = bench_scale(seconds) {
                eprintln!("bench-scale failed: {e}");
                std::process::exit(1);
            }
        }
        Some("up") => {
            let n = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(3);
            let c = Cluster::start(Options { nodes: n, token_ms: Some(1000) });
            println!("cluster {} is up; run commands in a node with: nsenter -t $(cat /tmp/{}/node1/anchor.pid) -m -u -n -- crm_mon -1", c.id, c.id);
            for sig in [nix::sys::signal::Signal::SIGTERM, nix::sys::signal::Signal::SIGINT] {
                // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
                let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::Handler(on_signal)) };
            }
            while !STOP.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
            }
            drop(c);
        }
        _ => {
            eprintln!("usage: hale-cluster demo | up [N] | bench-failover [RUNS] | bench-scale [SECONDS]");
            std::process::exit(2);
        }
    }
}

static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_signal(_: i32) {
    STOP.store(true, std::sync::atomic::Ordering::Relaxed);
}
