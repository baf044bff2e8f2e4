//! `hale-lock-bench`: acquire + release latency and throughput of each lock store, with 1
//! and 8 concurrent clients, through the library the agent and `hale lock` use.
//!
//! Each client is a thread that repeatedly takes an exclusive lock on a host of its own and
//! releases it: the lock itself never blocks, so what is measured is the store (the dir
//! store's mutex and fsyncs, etcd's transactions, with retries when clients collide on the
//! same revision). A second run has every client on the same host, where clients queue for
//! the lock and throughput is the lock's hand-over rate.
//!
//! Usage: `hale-lock-bench [SECONDS_PER_CASE]` (default 5), as root is not needed. etcd is
//! the Debian etcd-server binary, started on loopback for the run. The dir store lives in
//! $TMPDIR (pass TMPDIR to measure another file system, e.g. an NFS mount).

use hale_lock::dir::DirStore;
use hale_lock::{Holder, Kind, Request, Store};
use hale_ocf_tests::etcd::Etcd;
use hale_ocf_tests::Scratch;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Opens one client of the store under test (each client thread gets its own).
type Opener = dyn Fn() -> Box<dyn Store + Send>;

struct Result {
    ops: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

fn run(store: &Opener, clients: usize, same_host: bool, secs: f64) -> Result {
    let barrier = Arc::new(Barrier::new(clients));
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let s = store();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let host = if same_host { "bench-host".to_string() } else { format!("bench-host-{c}") };
                let mut lat = Vec::new();
                barrier.wait();
                let until = Instant::now() + Duration::from_secs_f64(secs);
                while Instant::now() < until {
                    let id = hale_lock::new_id();
                    let req = Request::new(
                        &id,
                        &host,
                        &[],
                        Kind::Exclusive,
                        Holder::this_process("bench"),
                        Duration::from_secs(30),
                    );
                    let t = Instant::now();
                    hale_lock::acquire(s.as_ref(), &req, Duration::from_secs(60)).expect("acquire");
                    hale_lock::release(s.as_ref(), &id).expect("release").expect("was held");
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = handles.into_iter().flat_map(|h| h.join().expect("client")).collect();
    latencies.sort();
    Result { ops: latencies.len(), elapsed: started.elapsed(), latencies }
}

fn pct(l: &[Duration], p: f64) -> f64 {
    if l.is_empty() {
        return f64::NAN;
    }
    l[((l.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0
}

fn main() {
    let secs: f64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5.0);
    let dir = Scratch::new("lock-bench");
    let etcd = Etcd::start();
    let root = dir.path().to_path_buf();
    let url = etcd.url.clone();
    let dir_store = move || -> Box<dyn Store + Send> { Box::new(DirStore::new(&root)) };
    let etcd_store = move || -> Box<dyn Store + Send> {
        Box::new(hale_lock::etcd::EtcdStore::new(vec![url.clone()], Duration::from_secs(5)))
    };
    println!("acquire + release of an exclusive lock, {secs} s per case (latency of the pair, in ms)\n");
    println!("| store | clients | hosts | pairs | pairs/s | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let stores: [(&str, &Opener); 2] = [("dir", &dir_store), ("etcd", &etcd_store)];
    for (name, store) in stores {
        for (clients, same) in [(1, false), (8, false), (8, true)] {
            let r = run(store, clients, same, secs);
            println!(
                "| {name} | {clients} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
                if same { "one shared" } else { "one each" },
                r.ops,
                r.ops as f64 / r.elapsed.as_secs_f64(),
                pct(&r.latencies, 0.5),
                pct(&r.latencies, 0.9),
                pct(&r.latencies, 0.99),
                pct(&r.latencies, 1.0),
            );
        }
    }
}
