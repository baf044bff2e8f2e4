//! `hale-cluster`: a local Pacemaker cluster of Hale agents, for the demo and for looking
//! around (as root).
//!
//! ```text
//! hale-cluster demo            # 3 nodes, the web group, crash the active node, tear down
//! hale-cluster up [N]          # start N nodes (default 3) and keep them until Ctrl-C / SIGTERM
//! ```

use hale_ocf_tests::cluster::{Cluster, Options};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
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
