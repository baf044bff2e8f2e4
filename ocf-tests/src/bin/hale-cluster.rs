//! `hale-cluster`: a local Pacemaker cluster of Hale agents, for the demo and for looking
//! around (as root).
//!
//! ```text
//! hale-cluster demo            # 3 nodes, the web group, crash the active node, tear down
//! hale-cluster up [N]          # start N nodes (default 3) and keep them until Ctrl-C / SIGTERM
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
/// active node crashes; the group moves; the client's outage is measured.
fn demo() -> Result<(), String> {
    println!("starting a 3-node Pacemaker cluster (corosync token 1000 ms), each node in its own namespaces...");
    let t0 = Instant::now();
    let c = Cluster::start(Options { nodes: 3, token_ms: Some(1000) });
    println!("cluster {} online after {:.1} s", c.id, t0.elapsed().as_secs_f64());
    let www = c.shared_dir().join("www");
    std::fs::create_dir_all(&www).map_err(|e| e.to_string())?;
    std::fs::write(www.join("index.html"), "<html>served by ocf:hale:daemon behind ocf:hale:vip</html>\n").map_err(|e| e.to_string())?;
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
    let crash = Instant::now();
    c.kill_node(active);
    let new = c.wait_moved("web", Some(active), Duration::from_secs(60)).ok_or("the web group did not move")?;
    let served = wait_for(Duration::from_secs(60), || client.get(VIP, PORT, Duration::from_millis(500)).is_ok());
    let elapsed = crash.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let gap = outage.finish();
    show(&c, new, &["crm_mon", "-1"]);
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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => {
            if let Err(e) = demo() {
                eprintln!("demo failed: {e}");
                std::process::exit(1);
            }
        }
        Some("up") => {
            let n = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(3);
            let c = Cluster::start(Options { nodes: n, token_ms: Some(1000) });
            println!("cluster {} is up; run commands in a node with: nsenter -t $(cat /tmp/{}/node1/anchor.pid) -m -u -n -- crm_mon -1", c.id, c.id);
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            for sig in [nix::sys::signal::Signal::SIGTERM, nix::sys::signal::Signal::SIGINT] {
                let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::Handler(on_signal)) };
            }
            while !STOP.load(std::sync::atomic::Ordering::Relaxed) && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
            }
            drop(c);
        }
        _ => {
            eprintln!("usage: hale-cluster demo | up [N]");
            std::process::exit(2);
        }
    }
}

static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_signal(_: i32) {
    STOP.store(true, std::sync::atomic::Ordering::Relaxed);
}
