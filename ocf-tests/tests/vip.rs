//! `ocf:hale:vip` in network namespaces: what a client on the same link sees.

use hale_ocf_tests::netns::{ip, Topology, NET4, NET6};
use hale_ocf_tests::{agent_path, require, unique, wait_for, Invocation};
use std::time::Duration;

fn vip(t: &Topology, host: usize, params: &[(&str, &str)]) -> Invocation {
    Invocation::new(&agent_path("vip"), &unique("vip"))
        .params(&[("network_namespace", t.hosts[host].ns.as_str())])
        .params(params)
}

/// A VIP on host 0, seen from host 2; then moved to host 1, and host 2's neighbour entry
/// follows the announcement.
fn serve_and_move(v: &str) {
    let t = Topology::new(3);
    let client = &t.hosts[2];
    let p = [("ip", v)];
    assert_eq!(vip(&t, 0, &p).run("monitor").code, 7);
    assert!(!t.ping(client, v), "nobody holds {v} yet");
    let s = vip(&t, 0, &p).run("start");
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert_eq!(vip(&t, 0, &p).recurring().run("monitor").code, 0);
    assert_eq!(vip(&t, 1, &p).run("monitor").code, 7, "probe on another node");
    assert!(t.ping(client, v), "{v} answers after start");
    assert_eq!(t.neighbour(client, v), Some(t.mac(&t.hosts[0])));

    // Move: stop on 0, start on 1. The client does not ask; the announcement tells it.
    assert_eq!(vip(&t, 0, &p).run("stop").code, 0);
    assert!(!t.addresses(&t.hosts[0]).contains(&format!(" {v}/")), "removed from host 0");
    assert_eq!(vip(&t, 0, &p).recurring().run("monitor").code, 7);
    assert_eq!(vip(&t, 1, &p).run("start").code, 0);
    let new_mac = t.mac(&t.hosts[1]);
    assert!(
        wait_for(Duration::from_secs(5), || t.neighbour(client, v).as_deref() == Some(new_mac.as_str())),
        "client's neighbour entry for {v} is {:?}, not host 1's {new_mac}",
        t.neighbour(client, v)
    );
    assert!(t.ping(client, v));
    assert_eq!(vip(&t, 1, &p).run("stop").code, 0);
    assert!(!t.ping(client, v), "{v} silent after stop");
    assert_eq!(vip(&t, 1, &p).run("stop").code, 0, "stop again");
}

#[test]
fn ipv4_serves_moves_and_stops() {
    serve_and_move(&format!("{NET4}.100"));
}

#[test]
fn ipv6_serves_moves_and_stops() {
    serve_and_move(&format!("{NET6}100"));
}

#[test]
fn parameters_and_interface_choice() {
    let t = Topology::new(1);
    let v = format!("{NET4}.101");
    let s = vip(&t, 0, &[("ip", &v), ("iflabel", "web"), ("cidr_netmask", "255.255.255.0")]).run("start");
    assert_eq!(s.code, 0, "{}", s.stderr);
    let addrs = t.addresses(&t.hosts[0]);
    assert!(addrs.contains(&format!("inet {v}/24 brd {NET4}.255")) && addrs.contains("eth0:web"), "{addrs}");
    assert_eq!(vip(&t, 0, &[("ip", &v), ("nic", "eth0"), ("cidr_netmask", "24")]).recurring().run("monitor").code, 0);
    // The same address with the wrong interface or prefix is a failure, not "stopped".
    let wrong = vip(&t, 0, &[("ip", &v), ("nic", "lo")]).recurring().run("monitor");
    assert_eq!(wrong.code, 1);
    assert!(wrong.exit_reason().is_some_and(|r| r.contains("is on eth0, not on lo")), "{}", wrong.stderr);
    let prefix = vip(&t, 0, &[("ip", &v), ("cidr_netmask", "16")]).recurring().run("monitor");
    assert_eq!(prefix.code, 1);
    // stop with another nic leaves the address alone: only ours is removed.
    assert_eq!(vip(&t, 0, &[("ip", &v), ("nic", "lo")]).run("stop").code, 0);
    assert!(t.addresses(&t.hosts[0]).contains(&v));
    assert_eq!(vip(&t, 0, &[("ip", &v)]).run("stop").code, 0);
    assert!(!t.addresses(&t.hosts[0]).contains(&v));

    // No route on this node for the address: 2 (this node), with a reason.
    let far = vip(&t, 0, &[("ip", "192.0.2.10")]).run("start");
    assert_eq!(far.code, 2);
    assert!(far
        .exit_reason()
        .is_some_and(|r| r.contains("no interface on this node has a route to 192.0.2.10; set nic")));
    assert_eq!(vip(&t, 0, &[("ip", "192.0.2.10")]).env("OCF_CHECK_LEVEL", "10").run("validate-all").code, 2);
    assert_eq!(vip(&t, 0, &[("ip", "192.0.2.10")]).run("validate-all").code, 0, "level 0 does not look at the host");
    let nonic = vip(&t, 0, &[("ip", &v), ("nic", "eth9")]).run("start");
    assert_eq!(nonic.code, 2);
    assert!(nonic.exit_reason().is_some_and(|r| r.contains("interface eth9 does not exist on this node")));
    // With nic and cidr_netmask, a route is not needed.
    let given = vip(&t, 0, &[("ip", "192.0.2.10"), ("nic", "eth0"), ("cidr_netmask", "32")]);
    assert_eq!(given.run("start").code, 0);
    assert_eq!(given.run("stop").code, 0);
}

#[test]
fn two_equal_interfaces_are_refused() {
    let t = Topology::new(1);
    let h = &t.hosts[0];
    ip(&["-n", &t.hub, "link", "add", "q0", "type", "veth", "peer", "name", "eth1", "netns", &h.ns]);
    ip(&["-n", &t.hub, "link", "set", "q0", "master", "br0", "up"]);
    ip(&["-n", &h.ns, "addr", "add", &format!("{NET4}.9/24"), "dev", "eth1"]);
    ip(&["-n", &h.ns, "link", "set", "eth1", "up"]);
    let out = vip(&t, 0, &[("ip", &format!("{NET4}.102"))]).run("start");
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.exit_reason().is_some_and(|r| r.contains("through eth0 and eth1 with the same prefix; set nic")),
        "{}",
        out.stderr
    );
    assert_eq!(vip(&t, 0, &[("ip", &format!("{NET4}.102")), ("nic", "eth1")]).run("start").code, 0);
}

#[test]
fn link_down_and_vanished_interface() {
    let t = Topology::new(1);
    let h = &t.hosts[0];
    let v = format!("{NET4}.103");
    let c = vip(&t, 0, &[("ip", &v)]);
    assert_eq!(c.run("start").code, 0);
    ip(&["-n", &h.ns, "link", "set", "eth0", "down"]);
    let m = c.clone().recurring().run("monitor");
    assert_eq!(m.code, 1);
    assert!(m.exit_reason().is_some_and(|r| r.contains("link is down")), "{}", m.stderr);
    ip(&["-n", &h.ns, "link", "set", "eth0", "up"]);
    assert_eq!(c.clone().recurring().run("monitor").code, 0);
    // The interface disappears: the address with it; stop still succeeds.
    ip(&["-n", &h.ns, "link", "del", "eth0"]);
    assert_eq!(c.clone().recurring().run("monitor").code, 7);
    assert_eq!(c.run("stop").code, 0);
}

#[test]
fn duplicates_are_detected() {
    let t = Topology::new(2);
    let v4 = format!("{NET4}.104");
    ip(&["-n", &t.hosts[1].ns, "addr", "add", &format!("{v4}/24"), "dev", "eth0"]);
    let out = vip(&t, 0, &[("ip", &v4), ("dup_check", "true")]).run("start");
    assert_eq!(out.code, 1, "{}", out.stderr);
    let holder = t.mac(&t.hosts[1]);
    assert!(
        out.exit_reason().is_some_and(|r| r.contains(&format!("already in use on eth0's link by {holder}"))),
        "{}",
        out.stderr
    );
    assert!(!t.addresses(&t.hosts[0]).contains(&v4), "nothing added");

    let v6 = format!("{NET6}104");
    ip(&["-n", &t.hosts[1].ns, "addr", "add", &format!("{v6}/64"), "dev", "eth0", "nodad"]);
    let out = vip(&t, 0, &[("ip", &v6)]).run("start");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.exit_reason().is_some_and(|r| r.contains("duplicate address detection failed")), "{}", out.stderr);
    assert!(!t.addresses(&t.hosts[0]).contains(&v6), "the failed address was removed");
}

#[test]
fn ocf_tester_and_pcs() {
    let t = Topology::new(1);
    let name = unique("vip-tester");
    let out = std::process::Command::new(require("ocf-tester"))
        .args(["-n", &name, "-o", &format!("ip={NET4}.105"), "-o"])
        .arg(format!("network_namespace={}", t.hosts[0].ns))
        .arg(agent_path("vip"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("passed all tests"), "{text}");

    let dir = hale_ocf_tests::Scratch::new("vip-pcs");
    let cib = dir.join("cib.xml");
    let empty = std::process::Command::new(require("cibadmin")).arg("--empty").output().unwrap();
    std::fs::write(&cib, empty.stdout).unwrap();
    let pcs = |args: &[&str]| {
        let o = std::process::Command::new(require("pcs")).arg("-f").arg(&cib).args(args).output().unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr))
    };
    let (ok, text) =
        pcs(&["resource", "create", "ip1", "ocf:hale:vip", "ip=192.0.2.7", "cidr_netmask=24", "--agent-validation"]);
    assert!(ok, "{text}");
    let (ok, text) = pcs(&["resource", "create", "ip2", "ocf:hale:vip", "ip=192.0.2.300", "--agent-validation"]);
    assert!(!ok && text.contains("parameter ip='192.0.2.300' is not an IPv4 or IPv6 address"), "{text}");
    let (ok, text) = pcs(&[
        "resource",
        "create",
        "ip3",
        "ocf:hale:vip",
        "ip=192.0.2.8",
        "iflabel=far-too-long-label",
        "--agent-validation",
    ]);
    assert!(!ok && text.contains("must fit in 15 characters"), "{text}");
}
