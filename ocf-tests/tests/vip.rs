//! `ocf:hale:vip` in network namespaces: what a client on the same link sees.

use hale_ocf_tests::netns::{ip, Topology, NET4, NET6};
use hale_ocf_tests::{agent_path, require, unique, wait_for, Invocation};
use std::time::Duration;

/// The resource of this topology on `host`: one instance name per topology, as a cluster gives
/// one resource the same name on every node (the hosts' namespaces keep their records apart).
fn vip(t: &Topology, host: usize, params: &[(&str, &str)]) -> Invocation {
    Invocation::new(&agent_path("vip"), &format!("vip-{}", t.hub))
        .params(&[("network_namespace", t.hosts[host].ns.as_str())])
        .params(params)
}

/// Another resource (another instance name) on the same host.
fn other_vip(t: &Topology, host: usize, params: &[(&str, &str)]) -> Invocation {
    Invocation::new(&agent_path("vip"), &unique("vip-other"))
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
    // Another resource's stop leaves the address alone: only what this one added is removed.
    assert_eq!(other_vip(&t, 0, &[("ip", &v)]).run("stop").code, 0);
    assert!(t.addresses(&t.hosts[0]).contains(&v));
    assert_eq!(other_vip(&t, 0, &[("ip", &v)]).run("monitor").code, 7, "not the other resource's address");
    // This resource's stop removes what it recorded, whatever nic says now.
    assert_eq!(vip(&t, 0, &[("ip", &v), ("nic", "lo")]).run("stop").code, 0);
    assert!(!t.addresses(&t.hosts[0]).contains(&v));

    // No route on this node for the address: 1, as IPaddr2 answers (the subnet may come
    // back with the node's network; 2 would ban the node), with a reason.
    let far = vip(&t, 0, &[("ip", "192.0.2.10")]).run("start");
    assert_eq!(far.code, 1);
    assert!(far
        .exit_reason()
        .is_some_and(|r| r.contains("no interface on this node has a route to 192.0.2.10; set nic")));
    assert_eq!(vip(&t, 0, &[("ip", "192.0.2.10")]).env("OCF_CHECK_LEVEL", "10").run("validate-all").code, 1);
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
    assert_eq!(vip(&t, 0, &[("ip", &format!("{NET4}.102")), ("nic", "eth1")]).run("stop").code, 0);
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

/// An LVS-DR real server holds the address on lo: the node's own, not this resource's. start
/// adds the resource's copy on eth0, monitor and stop see only that copy, and the one on lo
/// survives every action.
#[test]
fn an_address_the_agent_did_not_add_is_never_removed() {
    let t = Topology::new(1);
    let h = &t.hosts[0];
    let v = format!("{NET4}.70");
    ip(&["-n", &h.ns, "addr", "add", &format!("{v}/32"), "dev", "lo"]);
    let on_lo = || ip(&["-n", &h.ns, "-o", "addr", "show", "dev", "lo"]).contains(&format!(" {v}/32"));
    let on_eth0 = || ip(&["-n", &h.ns, "-o", "addr", "show", "dev", "eth0"]).contains(&format!(" {v}/24"));
    let p = [("ip", v.as_str())];
    assert_eq!(vip(&t, 0, &p).run("monitor").code, 7, "the copy on lo is not this resource's");
    assert_eq!(vip(&t, 0, &p).recurring().run("monitor").code, 7);
    assert_eq!(vip(&t, 0, &p).run("stop").code, 0);
    assert!(on_lo(), "stop removed the node's own address");
    let s = vip(&t, 0, &p).run("start");
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert!(on_lo() && on_eth0(), "{}", t.addresses(h));
    assert_eq!(vip(&t, 0, &p).run("monitor").code, 0);
    assert_eq!(vip(&t, 0, &p).recurring().run("monitor").code, 0);
    assert_eq!(vip(&t, 0, &p).run("stop").code, 0);
    assert!(on_lo() && !on_eth0(), "{}", t.addresses(h));
    assert_eq!(vip(&t, 0, &p).run("monitor").code, 7);
    assert_eq!(vip(&t, 0, &p).run("stop").code, 0);
    assert!(on_lo());
    // Parameters that do not parse: stop still removes only what the record names (nothing).
    assert_eq!(vip(&t, 0, &[("ip", &v), ("cidr_netmask", "99")]).run("stop").code, 0);
    assert!(on_lo());

    // Already on the right interface under another prefix, put there by somebody else: start
    // refuses with the reason, and monitor agrees that this resource is not running.
    let w = format!("{NET4}.71");
    ip(&["-n", &h.ns, "addr", "add", &format!("{w}/16"), "dev", "eth0"]);
    let p = [("ip", w.as_str()), ("cidr_netmask", "24")];
    let s = vip(&t, 0, &p).run("start");
    assert_eq!(s.code, 1, "{}", s.stderr);
    assert!(
        s.exit_reason()
            .is_some_and(|r| r.contains(&format!("{w}/16 is already on eth0 and this resource did not add it"))),
        "{}",
        s.stderr
    );
    assert_eq!(vip(&t, 0, &p).run("monitor").code, 7);
    assert_eq!(vip(&t, 0, &p).recurring().run("monitor").code, 7);
    assert_eq!(vip(&t, 0, &p).run("stop").code, 0);
    assert!(t.addresses(h).contains(&format!(" {w}/16")), "stop removed an address it did not add");
}

/// Foreground announcements stop at the deadline: start and a recurring monitor finish
/// inside CRM_meta_timeout (the harness SIGKILLs at it, as Pacemaker does) and succeed, the
/// address being up; validate-all refuses the same settings, showing the arithmetic.
#[test]
fn announcements_end_inside_the_timeout() {
    let t = Topology::new(1);
    let v = format!("{NET4}.72");
    let slow = [("ip", v.as_str()), ("arp_bg", "false"), ("arp_count", "8"), ("arp_interval", "1000")];
    let s = vip(&t, 0, &slow).timeout_ms(3000).run("start");
    assert!(!s.timed_out, "start overran its 3 s timeout");
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert!(t.addresses(&t.hosts[0]).contains(&format!(" {v}/24")));
    let refresh = [("ip", v.as_str()), ("arp_count_refresh", "6"), ("arp_interval", "1000")];
    let m = vip(&t, 0, &refresh).recurring().timeout_ms(2000).run("monitor");
    assert!(!m.timed_out, "monitor overran its 2 s timeout");
    assert_eq!(m.code, 0, "{}", m.stderr);

    let val = vip(&t, 0, &slow).timeout_ms(3000).run("validate-all");
    assert_eq!(val.code, 6, "{}", val.stderr);
    assert!(
        val.exit_reason()
            .is_some_and(|r| r.contains("((arp_count - 1) x 1000 ms = 7.0 s)")
                && r.contains("start timeout of 3.0 s leaves 2.5 s")),
        "{}",
        val.stderr
    );
    assert_eq!(vip(&t, 0, &slow).run("validate-all").code, 0, "7 s fit a 20 s start");
    let many = [("ip", v.as_str()), ("arp_bg", "false"), ("arp_count", "100"), ("arp_interval", "1000")];
    let val = vip(&t, 0, &many).unset("OCF_RESKEY_CRM_meta_timeout").run("validate-all");
    assert_eq!(val.code, 6, "the advised 20 s start timeout: {}", val.stderr);
    let val = vip(&t, 0, &refresh).timeout_ms(2000).run("validate-all");
    assert_eq!(val.code, 6, "{}", val.stderr);
    assert!(val.exit_reason().is_some_and(|r| r.contains("monitor timeout of 2.0 s")), "{}", val.stderr);
    assert_eq!(vip(&t, 0, &slow).run("stop").code, 0);
}

/// network_namespace is a plain name under /run/netns, never followed through a link.
#[test]
fn namespace_names_and_planted_links() {
    let t = Topology::new(1);
    let v = format!("{NET4}.73");
    let out = vip(&t, 0, &[("ip", &v), ("network_namespace", "../../proc/1/ns/net")]).run("validate-all");
    assert_eq!(out.code, 6, "{}", out.stderr);
    assert!(out.exit_reason().is_some_and(|r| r.contains("is not a namespace name")), "{}", out.stderr);
    // A link planted in /run/netns that points at a real namespace (host 0's).
    let planted = unique("hale-planted");
    let link = std::path::Path::new("/run/netns").join(&planted);
    std::os::unix::fs::symlink(format!("/run/netns/{}", t.hosts[0].ns), &link).unwrap();
    let s = vip(&t, 0, &[("ip", &v), ("network_namespace", &planted)]).run("start");
    let m = vip(&t, 0, &[("ip", &v), ("network_namespace", &planted)]).recurring().run("monitor");
    // A record for that name: the namespace behind the link may hold our address, so stop
    // cannot claim that nothing is held.
    std::fs::create_dir_all("/run/hale").unwrap();
    let record = std::path::Path::new("/run/hale").join(format!("vip-vip-{}@{planted}.addr", t.hub));
    std::fs::write(&record, "unreadable").unwrap();
    let stop = vip(&t, 0, &[("ip", &v), ("network_namespace", &planted)]).run("stop");
    let _ = std::fs::remove_file(&record);
    let _ = std::fs::remove_file(&link);
    assert_eq!(stop.code, 1, "{}", stop.stderr);
    assert!(stop.exit_reason().is_some_and(|r| r.contains("symbolic link")), "{}", stop.stderr);
    assert_eq!(s.code, 1, "{}", s.stderr);
    assert!(s.exit_reason().is_some_and(|r| r.contains("symbolic link")), "{}", s.stderr);
    assert_eq!(m.code, 1, "{}", m.stderr);
    assert!(!t.addresses(&t.hosts[0]).contains(&v), "start followed the link into host 0");
}

/// A node just booted has an empty /run: every action works without /run/hale, the probe and
/// a stop with nothing to do create nothing, and start creates the directory it needs. Run in
/// a private mount namespace with a fresh tmpfs on /run (the namespaces bound back in).
#[test]
fn a_node_just_booted_has_no_run_directory() {
    let t = Topology::new(1);
    let dir = hale_ocf_tests::Scratch::new("vip-boot");
    let netns = dir.join("netns");
    std::fs::create_dir(&netns).unwrap();
    let script = r#"
        set -u
        mount --rbind /run/netns "$1" && mount -t tmpfs tmpfs /run && mkdir /run/netns \
            && mount --rbind "$1" /run/netns || exit 99
        agent=$2 ip=$3 ns=$4
        act() {
            a=$1; shift
            env -i OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=vip-boot OCF_RESKEY_ip="$ip" \
                OCF_RESKEY_network_namespace="$ns" OCF_RESKEY_CRM_meta_timeout=20000 "$@" \
                "$agent" "$a" >/dev/null 2>&1
            rc=$?
            if [ -e /run/hale ]; then seen=yes; else seen=no; fi
            echo "$a=$rc run=$seen"
        }
        act monitor
        act stop
        act monitor OCF_RESKEY_CRM_meta_interval=10000
        act start
        act monitor
        act stop
        act monitor
    "#;
    let out = std::process::Command::new(require("unshare"))
        .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(&netns)
        .arg(agent_path("vip"))
        .arg(format!("{NET4}.74"))
        .arg(&t.hosts[0].ns)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "monitor=7 run=no",
            "stop=0 run=no",
            "monitor=7 run=no",
            "start=0 run=yes",
            "monitor=0 run=yes",
            "stop=0 run=yes",
            "monitor=7 run=yes"
        ],
        "{text}"
    );
    assert!(!t.addresses(&t.hosts[0]).contains(&format!("{NET4}.74/")), "stop removed it");
}

/// Where vip answers differently from IPaddr2 in IPaddr2's own ocft suites, on purpose; each
/// is a row of the README's "switching from IPaddr2" table. Every other case must pass.
const OCFT_DIFFERENCES: &[(&str, &str)] = &[(
    // IPaddr2 answers 6 (wrong everywhere: Pacemaker stops the resource on every node); an
    // interface missing on one node says nothing of the others, so vip answers 2 (this node).
    "IPaddr2",
    "check base env: set invalid 'OCF_RESKEY_nic'",
)];

/// IPaddr2's ocft suites as resource-agents ships them (IPaddr2, IPaddr2v4, IPaddr2v6), with
/// only `Agent vip` and `AgentRoot .../resource.d/hale` changed, run by `ocft` in namespaces
/// holding the eth0 and eth1 the suites expect, one per suite. ocft waits a second around
/// every agent run, so this takes about three and a half minutes. ocft keeps its generated
/// cases in a fixed place (/var/lib/resource-agents/ocft): no other test runs it.
#[test]
fn ipaddr2_ocft_suites_pass() {
    const SUITES: [&str; 3] = ["IPaddr2", "IPaddr2v4", "IPaddr2v6"];
    let ocft = require("ocft");
    let shipped = std::path::Path::new("/usr/share/resource-agents/ocft/configs");
    let dir = std::env::temp_dir().join(unique("hale-ocft"));
    std::fs::create_dir_all(&dir).unwrap();
    let root = agent_path("vip").parent().unwrap().to_string_lossy().into_owned();
    let mut cases = Vec::new();
    for suite in SUITES {
        let config = std::fs::read_to_string(shipped.join(suite))
            .unwrap_or_else(|e| panic!("{}/{suite}: {e} (resource-agents ships it)", shipped.display()));
        assert!(config.contains("\tAgent IPaddr2\n") && config.contains("\tAgentRoot "), "{suite}: unknown form");
        let ours: String = config
            .lines()
            .map(|l| match l {
                "\tAgent IPaddr2" => "\tAgent vip".to_string(),
                l if l.starts_with("\tAgentRoot ") => format!("\tAgentRoot {root}"),
                l => l.to_string(),
            })
            .map(|l| l + "\n")
            .collect();
        std::fs::write(dir.join(suite), ours).unwrap();
        let names: Vec<String> = config
            .lines()
            .filter_map(|l| l.strip_prefix("CASE \"").and_then(|r| r.strip_suffix('"')))
            .map(str::to_string)
            .collect();
        assert!(names.len() > 10, "{suite}: only {} cases", names.len());
        cases.push(names);
    }
    let made =
        std::process::Command::new(&ocft).args(["make", "-d"]).arg(&dir).args(SUITES).output().expect("ocft make");
    assert!(made.status.success(), "ocft make: {}", String::from_utf8_lossy(&made.stderr));

    // One after the other, each on a fresh host: the suites use one instance name, and on one
    // machine the hosts' namespaces share /run/hale, where vip keeps its records.
    let outputs: Vec<String> = SUITES
        .iter()
        .map(|suite| {
            let t = Topology::new(1);
            let h = &t.hosts[0];
            ip(&["-n", &t.hub, "link", "add", "q0", "type", "veth", "peer", "name", "eth1", "netns", &h.ns]);
            ip(&["-n", &t.hub, "link", "set", "q0", "master", "br0", "up"]);
            ip(&["-n", &h.ns, "link", "set", "eth1", "up"]);
            assert!(
                wait_for(Duration::from_secs(10), || !ip(&["-n", &h.ns, "-6", "addr", "show", "tentative"])
                    .contains("inet6")),
                "IPv6 DAD did not finish"
            );
            // Its exit status counts failed cases, the listed differences among them: the
            // output says which.
            t.exec(h, &[&ocft.to_string_lossy(), "test", suite]).1
        })
        .collect();

    let mut failures = Vec::new();
    for ((suite, names), out) in SUITES.iter().zip(&cases).zip(&outputs) {
        let results = ocft_results(suite, out);
        let ran: Vec<&String> = results.iter().map(|(n, _)| n).collect();
        assert_eq!(ran, names.iter().collect::<Vec<_>>(), "{suite}: not every case ran:\n{out}");
        for (case, problem) in results {
            let expected = OCFT_DIFFERENCES.contains(&(*suite, case.as_str()));
            match (problem, expected) {
                (None, false) | (Some(_), true) => {}
                (Some(p), false) => failures.push(format!("{suite}: {case}: {p}")),
                (None, true) => failures.push(format!("{suite}: {case}: passes, but is listed as a difference")),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "ocft cases that fail against vip:\n{}", failures.join("\n"));
}

/// Each case of `ocft test` output, in order, with what went wrong in it (None: every step OK).
/// A case prints "SUITE: NAME - OK." and one "OK." per further checked step; anything else
/// (FAILED, an ERROR of a check, a command's error) belongs to the case it follows.
fn ocft_results(suite: &str, out: &str) -> Vec<(String, Option<String>)> {
    let mut results: Vec<(String, Option<String>)> = Vec::new();
    let mut framework = Vec::new();
    let prefix = format!("{suite}: ");
    for raw in out.lines() {
        let line = strip_ansi(raw);
        let line = line.trim();
        if let Some((name, rest)) = line.strip_prefix(&prefix).and_then(|r| r.split_once(" - ")) {
            let problem = (rest != "OK.").then(|| rest.to_string());
            results.push((name.to_string(), problem));
        } else if line.is_empty() || line == "OK." || line == "Done." || line.starts_with("Initializing '") {
        } else if line.starts_with("Cleaning '") {
            framework.push(line.to_string());
        } else if let Some((_, problem)) = results.last_mut() {
            let p = problem.get_or_insert_with(String::new);
            p.push_str(line);
            p.push(' ');
        } else {
            framework.push(line.to_string());
        }
    }
    // The suite's own set-up and clean-up must have worked too.
    framework.retain(|l| !l.starts_with("Cleaning '"));
    assert!(framework.is_empty(), "{suite}: ocft reported outside any case: {framework:?}\n{out}");
    results
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// An LVS direct-routing real server: the service address on lo, a host prefix, never announced.
#[test]
fn lvs_dr_address_on_loopback() {
    let t = Topology::new(1);
    let v = format!("{NET4}.120");
    let c = vip(&t, 0, &[("ip", &v), ("nic", "lo"), ("arp_bg", "false")]);
    let s = c.run("start");
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert!(s.stderr.contains("not announced"), "{}", s.stderr);
    let lo = ip(&["-n", &t.hosts[0].ns, "-o", "addr", "show", "dev", "lo"]);
    assert!(lo.contains(&format!("inet {v}/32")), "{lo}");
    assert_eq!(c.clone().recurring().run("monitor").code, 0);
    assert_eq!(c.run("stop").code, 0);
    assert!(!ip(&["-n", &t.hosts[0].ns, "-o", "addr", "show"]).contains(&v));
    // A loopback address goes on lo by itself; on another interface it is refused.
    let l = vip(&t, 0, &[("ip", "127.0.0.3")]);
    assert_eq!(l.run("start").code, 0);
    assert!(ip(&["-n", &t.hosts[0].ns, "-o", "addr", "show", "dev", "lo"]).contains("inet 127.0.0.3/32"));
    assert_eq!(l.run("monitor").code, 0);
    assert_eq!(l.run("stop").code, 0);
    let wrong = vip(&t, 0, &[("ip", "127.0.0.4"), ("nic", "eth0")]).run("start");
    assert_eq!(wrong.code, 2);
    assert!(wrong.exit_reason().is_some_and(|r| r.contains("not a loopback interface")), "{}", wrong.stderr);
}

/// A recurring monitor whose nic has vanished fails with the reason (IPaddr2 gives 1 too); a
/// probe of it says "not running".
#[test]
fn recurring_monitor_of_a_vanished_nic_fails() {
    let t = Topology::new(1);
    let c = vip(&t, 0, &[("ip", &format!("{NET4}.121")), ("nic", "ethVanished")]);
    let m = c.clone().recurring().run("monitor");
    assert_eq!(m.code, 1, "{}", m.stderr);
    assert!(m.exit_reason().is_some_and(|r| r.contains("interface ethVanished has vanished")), "{}", m.stderr);
    assert_eq!(c.run("monitor").code, 7, "a probe");
}
