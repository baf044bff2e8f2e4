//! Git-deployed scripts in a real three-node Pacemaker cluster: gitsync as a clone publishing
//! `#health-hale-gitsync`, `node-health-strategy=migrate-on-red`, and a gitscript resource
//! that follows verified commits and moves off a node whose mirror cannot verify.
//! Assertions are about cluster state, never durations.

use hale_ocf_tests::cluster::{Cluster, Options};
use hale_ocf_tests::git::{signed_master, Key};
use hale_ocf_tests::wait_for;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);
/// Per-node state: each node's /run is its own tmpfs, so this path is private to the node.
const STATE: &str = "/run/hale-git";
const SIGNERS: &str = "/run/hale-git/allowed_signers";

/// node i's `#health-hale-gitsync` as the CIB status section holds it (what the scheduler uses).
fn health(c: &Cluster, i: usize) -> String {
    let node = format!("node{i}");
    let argv = ["crm_attribute", "-N", &node, "-n", "#health-hale-gitsync", "-l", "reboot", "-G", "-q"];
    c.exec(c.any_live(), &argv).1.trim().to_string()
}

fn node_reads(c: &Cluster, i: usize, argv: &[&str]) -> String {
    c.exec(i, argv).1.trim().to_string()
}

#[test]
fn a_verified_commit_reaches_every_node_and_a_node_that_cannot_verify_sheds_its_script() {
    let c = Cluster::start(Options { nodes: 3, token_ms: Some(1000) });
    let shared = c.shared_dir();
    let (master, allowed) = signed_master(&shared);
    let ops = Key::new(&shared, "ops@example.com");
    let mallory = Key::new(&shared, "mallory@example.com");
    let untrusting = Key::allowed_signers(&shared.join("mallory_only"), &[&mallory]);
    let (allowed, untrusting) = (allowed.to_string_lossy().to_string(), untrusting.to_string_lossy().to_string());
    for i in 1..=3 {
        assert!(c.exec(i, &["mkdir", "-p", STATE]).0);
        assert!(c.exec(i, &["cp", &allowed, SIGNERS]).0);
    }
    let repo = format!("repository={}", master.bare.display());
    c.pcs(&["property", "set", "node-health-strategy=migrate-on-red"]);
    c.pcs(&[
        "resource",
        "create",
        "sync",
        "ocf:hale:gitsync",
        &repo,
        &format!("allowed_signers={SIGNERS}"),
        &format!("state_dir={STATE}"),
        "red_after=1",
        "op",
        "monitor",
        "interval=2s",
        "timeout=30s",
        "clone",
    ]);
    // On the clone itself: its instances keep running (and can recover) on a red node.
    c.pcs(&["resource", "meta", "sync-clone", "allow-unhealthy-nodes=true"]);
    c.pcs(&[
        "resource",
        "create",
        "job",
        "ocf:hale:gitscript",
        &repo,
        "entry=bin/svc",
        &format!("allowed_signers={SIGNERS}"),
        &format!("state_dir={STATE}"),
        "op",
        "monitor",
        "interval=2s",
    ]);
    c.pcs(&["constraint", "order", "start", "sync-clone", "then", "job"]);
    c.pcs(&["constraint", "location", "job", "prefers", "node1=100"]);
    assert_eq!(c.wait_moved("job", None, LONG), Some(1), "job never started on node1:\n{}", c.mon_xml(1));
    assert!(
        wait_for(LONG, || (1..=3).all(|i| health(&c, i) == "green")),
        "health: {:?}",
        (1..=3).map(|i| health(&c, i)).collect::<Vec<_>>()
    );
    let first = master.head();
    assert_eq!(node_reads(&c, 1, &["cat", "/run/hale/gitscript-job.commit"]), first);

    // A new signed commit reaches every node through gitsync, and runs after a restart.
    let v2 = master.commit(
        &[("bin/svc", "#!/bin/sh\necho v2 at $HALE_COMMIT\nexec sleep 100000\n", true)],
        Some(&ops),
        "v2",
    );
    let synced = wait_for(LONG, || {
        (1..=3).all(|i| node_reads(&c, i, &["readlink", &format!("{STATE}/deploy/master/current")]) == v2)
    });
    assert!(synced, "v2 did not reach every node");
    c.pcs(&["resource", "restart", "job"]);
    assert!(
        wait_for(LONG, || node_reads(&c, 1, &["cat", "/run/hale/gitscript-job.commit"]) == v2),
        "job does not run v2 after the restart"
    );

    // node1 can no longer verify (its allowed_signers trusts someone else): red, job moves.
    assert!(c.exec(1, &["cp", &untrusting, SIGNERS]).0);
    assert!(
        wait_for(LONG, || health(&c, 1) == "red"),
        "node1 health: {}\nstate: {}\nsigners: {}\n{}",
        health(&c, 1),
        node_reads(&c, 1, &["cat", "/run/hale/gitsync-sync.state"]),
        node_reads(&c, 1, &["cat", SIGNERS]),
        c.log(1).lines().filter(|l| l.contains("gitsync")).collect::<Vec<_>>().join("\n")
    );
    let away = c.wait_moved("job", Some(1), LONG).expect("job did not leave the red node");
    assert_eq!(node_reads(&c, away, &["cat", "/run/hale/gitscript-job.commit"]), v2);
    assert_eq!(c.locate("sync-clone").len(), 3, "gitsync keeps running on the red node");

    // Fixed: green again, and job returns to the node it prefers.
    assert!(c.exec(1, &["cp", &allowed, SIGNERS]).0);
    assert!(wait_for(LONG, || health(&c, 1) == "green"), "node1 health: {}", health(&c, 1));
    assert_eq!(c.wait_moved("job", Some(away), LONG), Some(1), "job did not come back:\n{}", c.mon_xml(1));
}
