//! `ocf:hale:vip` — a floating IP address that never forks.
//!
//! The obvious replacement for `ocf:heartbeat:IPaddr2`, with its parameter names. Addresses,
//! links and routes go through netlink and announcements through packet sockets (the backend's
//! [`Network`]), so a monitor is two netlink dumps: no `ip`, `arping` or `send_arp` process,
//! ever. The interface comes from `nic` or, as findif does, from the connected route with the
//! longest prefix that contains the address; two equally good interfaces are refused.
//!
//! Only an address this resource added is ever removed or reported as running. start records
//! what it adds (address, prefix, interface index and network namespace identity) in a small
//! file under the run directory *before* adding it, so a start killed halfway leaves a record
//! and never an address of ours without one. The run directory is a tmpfs, as volatile as the
//! addresses themselves: after a reboot neither is left. A netlink-visible mark was not chosen:
//! IFA_PROTO exists only on Linux 6.1 and later (older kernels silently drop it), labels only
//! for IPv4, and flags carry meaning of their own.

use hale_backend::net::{
    contains, format_mac, valid_namespace_name, AddressEntry, Announcement, ArpMode, Interface, Network, NewAddress,
};
use hale_backend::{files, paths, BackendError};
use hale_ocf::{
    Action, ActionSpec, Agent, AgentInfo, Context, Deadline, Failure, Kind, OcfResult, OcfStatus, Param, Values,
};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

const PARAMS: &[Param] = &[
    Param::new(
        "ip",
        "IPv4 or IPv6 address",
        "The floating address, e.g. 192.168.1.10 or 2001:db8::10. A loopback address (127.0.0.3) \
         goes on the loopback interface. A link-local IPv6 address (fe80::/10) needs nic.",
    )
    .required()
    .unique_group("ip"),
    Param::new(
        "cidr_netmask",
        "Prefix length",
        "The prefix length (24) or, for IPv4, a dotted netmask (255.255.255.0). Default: the \
         prefix of the connected route the address falls in.",
    ),
    Param::new(
        "nic",
        "Interface",
        "The interface to put the address on. Default: the interface of the connected route \
         with the longest prefix containing the address; when two interfaces qualify, start \
         refuses and asks for nic. NAME:LABEL, IPaddr2's older form, means nic=NAME \
         iflabel=LABEL. nic=lo puts the address on the loopback interface with a host prefix \
         (/32, /128) and never announces it: the set-up of an LVS direct-routing real server, \
         which must also set the arp_ignore and arp_announce sysctls.",
    ),
    Param::new(
        "broadcast",
        "IPv4 broadcast",
        "IPv4 broadcast address; '+' computes it from the prefix, '-' sets none.",
    )
    .default("+"),
    Param::new(
        "iflabel",
        "IPv4 label",
        "A label for the IPv4 address; the interface shows it as NIC:LABEL, at most 15 characters in all.",
    ),
    Param::new(
        "arp_count",
        "Announcements",
        "How many gratuitous ARPs (IPv4) or unsolicited neighbour advertisements (IPv6) start sends.",
    )
    .kind(Kind::Integer)
    .default("5"),
    Param::new("arp_interval", "Announcement interval", "Milliseconds between two announcements.")
        .kind(Kind::Integer)
        .default("200"),
    Param::new(
        "arp_count_refresh",
        "Announcements per monitor",
        "How many announcements each recurring monitor sends (0: none). For switches that forget.",
    )
    .kind(Kind::Integer)
    .default("0"),
    Param::new(
        "arp_mode",
        "ARP packet kind",
        "Announce with ARP requests or ARP replies: some switches learn only from one of them.",
    )
    .kind(Kind::Select(&["request", "reply"]))
    .default("request"),
    Param::new(
        "arp_bg",
        "Announce in the background",
        "Send the first announcement at once and the rest from a detached process, so start \
         returns without waiting for them.",
    )
    .kind(Kind::Boolean)
    .default("true"),
    Param::new(
        "check_link_status",
        "Check the link",
        "A link that is down (administratively or no carrier) means the address is not served: \
         start fails and monitor reports it.",
    )
    .kind(Kind::Boolean)
    .default("true"),
    Param::new("nodad", "Skip IPv6 DAD", "IPv6: add the address without duplicate address detection.")
        .kind(Kind::Boolean)
        .default("false"),
    Param::new(
        "preferred_lft",
        "IPv6 preferred lifetime",
        "IPv6 preferred lifetime in seconds, or 'forever'. 0 keeps the address from being chosen as a source.",
    )
    .default("forever"),
    Param::new(
        "dup_check",
        "IPv4 duplicate check",
        "IPv4: before adding the address, send an ARP probe; if another host answers, start \
         fails naming its MAC. Adds up to one second to start. (IPv6 uses DAD instead.)",
    )
    .kind(Kind::Boolean)
    .default("false"),
    Param::new(
        "network_namespace",
        "Network namespace",
        "Manage the address inside this named network namespace: a plain name under \
         /run/netns, as `ip netns add` makes it (no '/', not '.' or '..'); neither /run/netns \
         nor the name may be a symbolic link.",
    ),
];

/// Advised timeouts, in seconds: validate-all checks the announcements against them.
const START_TIMEOUT: u32 = 20;
const MONITOR_TIMEOUT: u32 = 20;

const ACTIONS: &[ActionSpec] = &[
    ActionSpec::new(Action::Start, START_TIMEOUT),
    ActionSpec::new(Action::Stop, 20),
    ActionSpec::new(Action::Monitor, MONITOR_TIMEOUT).interval(10).depth(0),
    ActionSpec::new(Action::ValidateAll, 20),
    ActionSpec::new(Action::MetaData, 5),
];

/// What to do about the IPv4 broadcast address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broadcast {
    Compute,
    None,
    Given(Ipv4Addr),
}

/// The parsed parameters.
#[derive(Clone, Debug)]
pub struct Config {
    pub ip: IpAddr,
    pub prefix: Option<u8>,
    pub nic: Option<String>,
    pub broadcast: Broadcast,
    pub label: Option<String>,
    pub announcement: Announcement,
    pub refresh: u32,
    pub check_link: bool,
    pub nodad: bool,
    pub preferred_lft: Option<u32>,
    pub dup_check: bool,
    pub namespace: Option<String>,
}

/// The agent, over the backend's network interface.
pub struct Vip {
    net: Box<dyn Network>,
}

impl Vip {
    pub fn new(net: Box<dyn Network>) -> Vip {
        Vip { net }
    }
}

/// Parse a prefix length or an IPv4 dotted netmask.
pub fn parse_prefix(value: &str, ip: IpAddr) -> Result<u8, String> {
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if let Ok(n) = value.trim().parse::<u8>() {
        return if n <= max { Ok(n) } else { Err(format!("prefix {n} is larger than {max}")) };
    }
    match value.trim().parse::<Ipv4Addr>() {
        Ok(mask) if ip.is_ipv4() => {
            let bits = u32::from(mask);
            if bits.leading_ones() + bits.trailing_zeros() == 32 {
                Ok(bits.leading_ones() as u8)
            } else {
                Err(format!("{mask} is not a contiguous netmask"))
            }
        }
        _ => Err("not a prefix length".to_string()),
    }
}

/// The usual IPv4 broadcast of `ip/prefix` (none for /31 and /32).
pub fn broadcast_of(ip: Ipv4Addr, prefix: u8) -> Option<Ipv4Addr> {
    (prefix < 31).then(|| Ipv4Addr::from(u32::from(ip) | (u32::MAX >> prefix)))
}

/// A valid Linux interface name: 1-15 bytes, no '/', ':' or whitespace.
fn valid_ifname(name: &str) -> bool {
    !name.is_empty() && name.len() <= 15 && !name.contains(['/', ':']) && !name.contains(char::is_whitespace)
}

/// fe80::/10: valid on one link only, so it names no interface by itself.
fn is_link_local_v6(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

fn net_failure(e: BackendError) -> Failure {
    match e {
        BackendError::NotFound(m) => Failure::args(m),
        BackendError::Permission(m) => Failure::perm(m),
        BackendError::Failed(m) => Failure::generic(m),
    }
}

fn count(v: &Values, name: &str, min: i64) -> OcfResult<u32> {
    let n = v.integer(name);
    if n < min || n > 10_000 {
        return Err(Failure::configured(format!("parameter {name}={n} must be between {min} and 10000")));
    }
    Ok(n as u32)
}

/// What start added, as it recorded it before adding: the proof that an address is ours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub ip: IpAddr,
    pub prefix: u8,
    /// The interface index (the name is only for messages: an index is what the kernel keys on).
    pub interface: u32,
    pub name: String,
    /// [`Network::namespace_id`] of the namespace it was added in.
    pub netns: u64,
}

impl Record {
    pub fn render(&self) -> String {
        format!(
            "ip={}\nprefix={}\ninterface={}\nname={}\nnetns={}\n",
            self.ip, self.prefix, self.interface, self.name, self.netns
        )
    }

    /// Parse a record; None for anything that is not exactly one (trust nothing on disk).
    pub fn parse(text: &str) -> Option<Record> {
        let mut fields = std::collections::BTreeMap::new();
        for line in text.lines() {
            let (k, v) = line.split_once('=')?;
            if fields.insert(k, v).is_some() {
                return None;
            }
        }
        let ip: IpAddr = fields.get("ip")?.parse().ok()?;
        let prefix: u8 = fields.get("prefix")?.parse().ok()?;
        let name = fields.get("name")?.to_string();
        if prefix > if ip.is_ipv4() { 32 } else { 128 } || !valid_ifname(&name) || fields.len() != 5 {
            return None;
        }
        Some(Record {
            ip,
            prefix,
            interface: fields.get("interface")?.parse().ok()?,
            name,
            netns: fields.get("netns")?.parse().ok()?,
        })
    }

    /// Is `a` the very address this record describes?
    fn describes(&self, a: &AddressEntry) -> bool {
        a.ip == self.ip && a.prefix == self.prefix && a.interface == self.interface
    }

    fn show(&self) -> String {
        format!("{}/{} on {}", self.ip, self.prefix, self.name)
    }
}

/// The record of this resource: one per instance and network namespace, so that two
/// namespaces of one node (or test hosts sharing a run directory) never share one.
fn record_path(ctx: &Context, namespace: Option<&str>) -> PathBuf {
    let key = match namespace {
        Some(ns) => format!("{}@{ns}", ctx.state_name()),
        None => ctx.state_name(),
    };
    paths::run_file("vip", &key, "addr")
}

/// Read the record: Ok(None) when there is none (a node just booted may have no run directory
/// at all; nothing is created here), Err with the reason when it cannot be trusted.
fn read_record(path: &Path) -> Result<Option<Record>, String> {
    match files::read_nofollow(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .ok()
            .and_then(|t| Record::parse(&t))
            .map(Some)
            .ok_or_else(|| format!("the record {} is not one this agent wrote", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read the record {}: {e}", path.display())),
    }
}

/// Write the record, creating the run directory if a fresh boot left none.
fn write_record(path: &Path, r: &Record) -> OcfResult<()> {
    paths::ensure_run_dir()
        .and_then(|_| files::write_atomic(path, r.render().as_bytes(), 0o644))
        .map_err(|e| Failure::generic(format!("cannot record the address in {}: {e}", path.display())))
}

fn forget_record(path: &Path) -> OcfResult<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Failure::generic(format!("cannot remove the record {}: {e}", path.display()))),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Can `need` of work fit in an action of `timeout`, keeping the margin every action keeps?
/// The error shows the arithmetic.
fn fits(what: &str, need: Duration, action: &str, timeout: Duration) -> OcfResult<()> {
    let margin = Deadline::after(timeout).margin();
    let room = timeout.saturating_sub(margin);
    if need <= room {
        return Ok(());
    }
    Err(Failure::configured(format!(
        "{what} take {}, but a {action} timeout of {} leaves {} ({} less a {} margin): \
         announce fewer or faster, in the background, or give {action} a longer timeout",
        secs(need),
        secs(timeout),
        secs(room),
        secs(timeout),
        secs(margin)
    )))
}

/// validate-all: refuse announcement settings that cannot fit the start or monitor timeout:
/// `CRM_meta_timeout` when the manager gives one, else the advised timeouts of the meta-data.
/// (start and monitor would cut the announcements short at their deadline instead of failing.)
fn check_timing(c: &Config, ctx: &Context) -> OcfResult<()> {
    let given = ctx.env.meta_ms("timeout").filter(|d| !d.is_zero());
    let a = &c.announcement;
    let ms = a.interval.as_millis();
    let (mut need, mut terms) = (Duration::ZERO, Vec::new());
    if c.dup_check && c.ip.is_ipv4() {
        need += Duration::from_secs(1);
        terms.push("the 1.0 s duplicate check".to_string());
    }
    let foreground = a.foreground_time();
    if !foreground.is_zero() {
        need += foreground;
        terms.push(format!(
            "arp_count={} foreground announcements every {ms} ms ((arp_count - 1) x {ms} ms = {})",
            a.count,
            secs(foreground)
        ));
    }
    if !need.is_zero() {
        let timeout = given.unwrap_or(Duration::from_secs(START_TIMEOUT.into()));
        fits(&format!("start's {}", terms.join(" and ")), need, "start", timeout)?;
    }
    let again = Announcement { count: c.refresh, background: false, ..c.announcement }.foreground_time();
    if !again.is_zero() {
        let what = format!(
            "monitor's arp_count_refresh={} announcements every {ms} ms ((arp_count_refresh - 1) x {ms} ms = {})",
            c.refresh,
            secs(again)
        );
        fits(&what, again, "monitor", given.unwrap_or(Duration::from_secs(MONITOR_TIMEOUT.into())))?;
    }
    Ok(())
}

/// The instant foreground announcements must stop by: the deadline less its margin.
fn announce_until(ctx: &Context) -> Instant {
    Instant::now() + ctx.deadline.remaining_with_margin(ctx.deadline.margin())
}

impl Vip {
    /// Enter the configured network namespace, if any: every action's first step.
    fn enter(&self, c: &Config) -> OcfResult<()> {
        match &c.namespace {
            Some(ns) => self.net.enter_namespace(ns).map_err(net_failure),
            None => Ok(()),
        }
    }

    /// The interface and prefix length to use on this node (findif's job).
    fn locate(&self, c: &Config) -> OcfResult<(Interface, u8)> {
        let ifs = self.net.interfaces().map_err(net_failure)?;
        let routes: Vec<_> = self
            .net
            .connected_routes(c.ip)
            .map_err(net_failure)?
            .into_iter()
            .filter(|r| contains(r.network, r.prefix, c.ip))
            .collect();
        let iface = match &c.nic {
            Some(nic) => ifs
                .iter()
                .find(|i| &i.name == nic)
                .cloned()
                .ok_or_else(|| Failure::args(format!("interface {nic} does not exist on this node")))?,
            None if c.ip.is_loopback() => ifs
                .iter()
                .find(|i| i.loopback)
                .cloned()
                .ok_or_else(|| Failure::args("this node has no loopback interface".to_string()))?,
            None => {
                // A node without the subnet today may have it again once its network is
                // restored: 1 (IPaddr2's answer), not a ban of the node.
                let best = routes.iter().map(|r| r.prefix).max().ok_or_else(|| {
                    Failure::generic(format!("no interface on this node has a route to {}; set nic", c.ip))
                })?;
                let mut candidates: Vec<u32> =
                    routes.iter().filter(|r| r.prefix == best).map(|r| r.interface).collect();
                candidates.sort();
                candidates.dedup();
                let names: Vec<String> = candidates
                    .iter()
                    .map(|i| ifs.iter().find(|f| f.index == *i).map_or(i.to_string(), |f| f.name.clone()))
                    .collect();
                if candidates.len() > 1 {
                    return Err(Failure::args(format!(
                        "{} is reachable through {} with the same prefix; set nic",
                        c.ip,
                        names.join(" and ")
                    )));
                }
                ifs.iter()
                    .find(|f| f.index == candidates[0])
                    .cloned()
                    .ok_or_else(|| Failure::args(format!("the interface of the route to {} has disappeared", c.ip)))?
            }
        };
        if c.ip.is_loopback() && !iface.loopback {
            return Err(Failure::args(format!(
                "{} is a loopback address and {} is not a loopback interface",
                c.ip, iface.name
            )));
        }
        let route = routes.iter().filter(|r| r.interface == iface.index).map(|r| r.prefix).max();
        let prefix = match (c.prefix, route) {
            // The interface was chosen by a route: a prefix that disagrees with it makes the
            // choice a guess (IPaddr2's findif refuses the same: IPv4 may only narrow the
            // route's prefix, IPv6 must match it). nic says the guess is meant.
            (Some(p), Some(r)) if c.nic.is_none() && (if c.ip.is_ipv4() { p < r } else { p != r }) => {
                return Err(Failure::generic(format!(
                    "cidr_netmask /{p} does not fit the connected route /{r} on {} that {} was found by; set nic",
                    iface.name, c.ip
                )))
            }
            (Some(p), _) => p,
            (None, Some(r)) => r,
            // RFC 4291: link-local unicast is fe80::/64 on every link.
            (None, None) if is_link_local_v6(c.ip) => 64,
            (None, None) if iface.loopback => {
                if c.ip.is_ipv4() {
                    32
                } else {
                    128
                }
            }
            (None, None) => {
                return Err(Failure::generic(format!(
                    "no route on {} tells the prefix of {}; set cidr_netmask",
                    iface.name, c.ip
                )))
            }
        };
        if let Some(l) = &c.label {
            if iface.name.len() + 1 + l.len() > 15 {
                return Err(Failure::args(format!("label {}:{l} is longer than 15 characters", iface.name)));
            }
        }
        Ok((iface, prefix))
    }

    /// monitor found no address of ours. A recurring monitor whose nic has vanished fails
    /// (1, as IPaddr2 since 3.9.6) with the reason, where "not running" would hide the cause;
    /// a probe says "not running". Costs a dump only on this path, never when all is well.
    fn absent(&self, c: &Config, ctx: &Context) -> OcfResult {
        if let (Some(nic), false) = (&c.nic, ctx.probe) {
            if !self.net.interfaces().map_err(net_failure)?.iter().any(|i| &i.name == nic) {
                return Err(Failure::generic(format!("interface {nic} has vanished from this node")));
            }
        }
        Ok(OcfStatus::NotRunning)
    }

    fn entries(&self, c: &Config) -> OcfResult<Vec<AddressEntry>> {
        self.entries_of(c.ip)
    }

    /// Every entry of `ip` on this node, whoever added it.
    fn entries_of(&self, ip: IpAddr) -> OcfResult<Vec<AddressEntry>> {
        Ok(self.net.addresses(ip).map_err(net_failure)?.into_iter().filter(|a| a.ip == ip).collect())
    }

    fn link_ok(i: &Interface) -> bool {
        i.up && i.lower_up
    }

    /// The record's address when it is still here, in this namespace: what this resource holds.
    fn held(&self, record: Option<Record>, netns: u64) -> OcfResult<Option<Record>> {
        let Some(r) = record.filter(|r| r.netns == netns) else { return Ok(None) };
        let here = self.net.addresses(r.ip).map_err(net_failure)?.iter().any(|a| r.describes(a));
        Ok(here.then_some(r))
    }

    /// Record, then add: a start killed between the two leaves a record of an address that is
    /// not there (harmless), never an address of ours without a record.
    fn add(
        &self,
        c: &Config,
        iface: &Interface,
        prefix: u8,
        path: &Path,
        want: &Record,
        ctx: &Context,
    ) -> OcfResult<()> {
        if let (true, IpAddr::V4(v4)) = (c.dup_check, c.ip) {
            let wait = Duration::from_secs(1).min(ctx.deadline.remaining_with_margin(ctx.deadline.margin()));
            if let Some(mac) = self.net.probe_duplicate(v4, iface, wait).map_err(net_failure)? {
                return Err(Failure::generic(format!(
                    "{} is already in use on {}'s link by {}",
                    c.ip,
                    iface.name,
                    format_mac(&mac)
                )));
            }
        }
        let broadcast = match (c.ip, c.broadcast) {
            (IpAddr::V4(v4), Broadcast::Compute) => broadcast_of(v4, prefix),
            (IpAddr::V4(_), Broadcast::Given(b)) => Some(b),
            _ => None,
        };
        write_record(path, want)?;
        let added = self.net.add_address(&NewAddress {
            ip: c.ip,
            prefix,
            interface: iface.index,
            broadcast,
            label: c.label.as_ref().map(|l| format!("{}:{l}", iface.name)),
            nodad: c.nodad,
            preferred_lft: c.preferred_lft,
        });
        match added {
            Ok(true) => {
                log::info!("added {}/{prefix} to {}", c.ip, iface.name);
                Ok(())
            }
            Ok(false) => {
                forget_record(path)?;
                Err(Failure::generic(format!(
                    "{}/{prefix} appeared on {} while this resource was adding it; not ours, left alone",
                    c.ip, iface.name
                )))
            }
            Err(e) => {
                forget_record(path)?;
                Err(net_failure(e))
            }
        }
    }

    /// stop: remove the address the record names, if it is still here; then the record.
    /// Succeeds whenever nothing of ours can be held: no record (nothing added, or a node just
    /// booted with an empty run directory), a namespace that is gone, an address already gone.
    /// An address this resource did not add is never removed. A record that cannot be read
    /// fails the stop only while `ip` is on this node, since then it may be ours.
    fn stop_recorded(&self, ctx: &Context, namespace: Option<&str>, ip: Option<IpAddr>) -> OcfResult {
        let path = record_path(ctx, namespace);
        let record = read_record(&path);
        if let Ok(None) = record {
            log::info!("no record of an address added by this resource: nothing to stop");
            return Ok(OcfStatus::Success);
        }
        if let Some(ns) = namespace {
            match self.net.enter_namespace(ns) {
                Ok(()) => {}
                // No namespace: nothing of ours can be in it.
                Err(BackendError::NotFound(m)) => {
                    log::info!("{m}: nothing to stop");
                    return forget_record(&path).map(|_| OcfStatus::Success);
                }
                // A namespace we may not enter (a planted link) may still hold our address.
                Err(e) => return Err(net_failure(e)),
            }
        }
        let r = match record {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(OcfStatus::Success),
            Err(reason) => {
                let ip = ip.ok_or_else(|| Failure::generic(format!("{reason}; cannot tell what it held")))?;
                if let Some(a) = self.entries_of(ip)?.first() {
                    return Err(Failure::generic(format!(
                        "{reason}, and {ip}/{} is on interface {}: remove one or the other by hand",
                        a.prefix, a.interface
                    )));
                }
                return forget_record(&path).map(|_| OcfStatus::Success);
            }
        };
        if r.netns == self.net.namespace_id().map_err(net_failure)? {
            if self.net.addresses(r.ip).map_err(net_failure)?.iter().any(|a| r.describes(a)) {
                self.net.remove_address(r.ip, r.prefix, r.interface).map_err(net_failure)?;
                log::info!("removed {}", r.show());
            }
        } else {
            log::info!("the record of {} is from a namespace that is gone", r.show());
        }
        forget_record(&path).map(|_| OcfStatus::Success)
    }

    /// IPv6: wait until duplicate address detection has finished.
    fn wait_dad(&self, c: &Config, iface: &Interface, prefix: u8, path: &Path, ctx: &Context) -> OcfResult<()> {
        let until = Instant::now() + ctx.deadline.remaining_with_margin(ctx.deadline.margin());
        loop {
            let entry = self.entries(c)?.into_iter().find(|a| a.interface == iface.index);
            match entry {
                Some(a) if a.dad_failed => {
                    self.net.remove_address(c.ip, prefix, iface.index).map_err(net_failure)?;
                    forget_record(path)?;
                    return Err(Failure::generic(format!(
                        "duplicate address detection failed: {} is already used on {}'s link",
                        c.ip, iface.name
                    )));
                }
                Some(a) if !a.tentative => return Ok(()),
                None => return Err(Failure::generic(format!("{} vanished from {} during start", c.ip, iface.name))),
                Some(_) if Instant::now() >= until => {
                    self.net.remove_address(c.ip, prefix, iface.index).map_err(net_failure)?;
                    forget_record(path)?;
                    return Err(Failure::generic(format!(
                        "duplicate address detection of {} did not finish in time",
                        c.ip
                    )));
                }
                Some(_) => sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Agent for Vip {
    type Config = Config;

    const INFO: AgentInfo = AgentInfo {
        name: "vip",
        shortdesc: "A floating IPv4 or IPv6 address",
        longdesc: "Adds a floating address to an interface and announces it (gratuitous \
                   ARP for IPv4, unsolicited neighbour advertisement for IPv6), all through \
                   netlink and packet sockets: no process is forked, ever. The parameters \
                   are IPaddr2's. monitor: 0 served, 7 absent, 1 present on the wrong \
                   interface, link down, DAD failed, or (recurring) nic vanished. stop removes only this address and \
                   succeeds when it, or its interface, is already gone.",
        version: env!("CARGO_PKG_VERSION"),
    };
    const PARAMS: &'static [Param] = PARAMS;
    const ACTIONS: &'static [ActionSpec] = ACTIONS;
    const CHECK_LEVELS: &'static [u32] = &[10];

    fn configure(&self, v: &Values, ctx: &Context) -> OcfResult<Config> {
        let raw_ip = v.str("ip").unwrap_or_default();
        let ip: IpAddr = raw_ip
            .trim()
            .parse()
            .map_err(|_| Failure::configured(format!("parameter ip='{raw_ip}' is not an IPv4 or IPv6 address")))?;
        if ip.is_unspecified() || ip.is_multicast() {
            return Err(Failure::configured(format!("parameter ip={ip} cannot be a floating address")));
        }
        let prefix = v
            .str("cidr_netmask")
            .map(|m| parse_prefix(m, ip).map_err(|e| Failure::configured(format!("parameter cidr_netmask='{m}': {e}"))))
            .transpose()?;
        // IPaddr2 still takes nic=NAME:LABEL (its older form of iflabel), and CIBs carry it.
        let (nic, nic_label) = match v.str("nic") {
            Some(n) => match n.split_once(':') {
                Some((name, label)) => (Some(name.to_string()), Some(label.to_string())),
                None => (Some(n.to_string()), None),
            },
            None => (None, None),
        };
        if let Some(n) = &nic {
            if !valid_ifname(n) {
                return Err(Failure::configured(format!(
                    "parameter nic='{}' is not an interface name or NAME:LABEL",
                    v.text("nic")
                )));
            }
        }
        if is_link_local_v6(ip) && nic.is_none() {
            return Err(Failure::configured(format!(
                "parameter ip={ip} is link-local: every interface has that prefix, so nic is required"
            )));
        }
        let broadcast = match v.text("broadcast") {
            "+" => Broadcast::Compute,
            "-" => Broadcast::None,
            b => Broadcast::Given(b.parse().map_err(|_| {
                Failure::configured(format!("parameter broadcast='{b}' is not an IPv4 address, '+' or '-'"))
            })?),
        };
        let label = match (v.str("iflabel"), nic_label) {
            (Some(l), Some(n)) if l != n => {
                return Err(Failure::configured(format!(
                    "parameter iflabel='{l}' and the label in nic='{}' differ",
                    v.text("nic")
                )))
            }
            (Some(l), _) => Some(l.to_string()),
            (None, n) => n,
        };
        if let Some(l) = &label {
            if ip.is_ipv6() {
                return Err(Failure::configured("parameter iflabel applies to IPv4 addresses only"));
            }
            let room = nic.as_ref().map_or(14, |n| 14 - n.len().min(14));
            if l.is_empty() || l.len() > room || l.contains(char::is_whitespace) {
                return Err(Failure::configured(format!(
                    "parameter iflabel='{l}': NIC:LABEL must fit in 15 characters, without spaces"
                )));
            }
        }
        let interval = count(v, "arp_interval", 1)?;
        let preferred_lft = match v.text("preferred_lft") {
            "forever" => None,
            p => Some(p.parse::<u32>().map_err(|_| {
                Failure::configured(format!("parameter preferred_lft='{p}' is not a number of seconds or 'forever'"))
            })?),
        };
        let namespace = v.str("network_namespace").map(str::to_string);
        if let Some(ns) = &namespace {
            if !valid_namespace_name(ns) {
                return Err(Failure::configured(format!(
                    "parameter network_namespace='{ns}' is not a namespace name (a plain name under /run/netns, \
                     without '/', not '.' or '..')"
                )));
            }
        }
        let config = Config {
            ip,
            prefix,
            nic,
            broadcast,
            label,
            announcement: Announcement {
                count: count(v, "arp_count", 0)?,
                interval: Duration::from_millis(interval.into()),
                mode: if v.str("arp_mode") == Some("reply") { ArpMode::Reply } else { ArpMode::Request },
                background: v.flag("arp_bg"),
            },
            refresh: count(v, "arp_count_refresh", 0)?,
            check_link: v.flag("check_link_status"),
            nodad: v.flag("nodad"),
            preferred_lft,
            dup_check: v.flag("dup_check"),
            namespace,
        };
        if ctx.action == Action::ValidateAll {
            check_timing(&config, ctx)?;
        }
        Ok(config)
    }

    fn validate_host(&self, c: &Config, _ctx: &Context) -> OcfResult<()> {
        self.enter(c)?;
        self.locate(c).map(|_| ())
    }

    fn start(&self, c: &Config, ctx: &Context) -> OcfResult {
        // validate_host (run before start) entered the namespace and checked the interface.
        let (iface, prefix) = self.locate(c)?;
        if c.check_link && !Vip::link_ok(&iface) {
            return Err(Failure::generic(format!("link of {} is down", iface.name)));
        }
        let path = record_path(ctx, c.namespace.as_deref());
        let netns = self.net.namespace_id().map_err(net_failure)?;
        let want = Record { ip: c.ip, prefix, interface: iface.index, name: iface.name.clone(), netns };
        let held = self.held(read_record(&path).map_err(Failure::generic)?, netns)?;
        if let Some(r) = held.as_ref().filter(|r| **r != want) {
            return Err(Failure::generic(format!(
                "this resource still holds {} from a start with other settings; stop it first",
                r.show()
            )));
        }
        let present = self.entries(c)?;
        if held.is_none() {
            if let Some(a) = present.iter().find(|a| a.interface == iface.index) {
                return Err(Failure::generic(format!(
                    "{}/{} is already on {} and this resource did not add it; remove it by hand or use another address",
                    c.ip, a.prefix, iface.name
                )));
            }
            for a in &present {
                log::info!("{}/{} is also on interface {}; not ours, left alone", a.ip, a.prefix, a.interface);
            }
            self.add(c, &iface, prefix, &path, &want, ctx)?;
        }
        if c.ip.is_ipv6() && !c.nodad {
            self.wait_dad(c, &iface, prefix, &path, ctx)?;
        }
        // Nothing on a loopback interface is announced: for an LVS-DR real server an
        // announcement would draw the VIP's traffic away from the director.
        if iface.loopback {
            log::info!("{} is on the loopback interface {}: not announced", c.ip, iface.name);
            return Ok(OcfStatus::Success);
        }
        // An address that cannot be announced is still served; neighbours learn it on their
        // next ARP. Say so, do not fail. Foreground announcements stop at the deadline.
        match self.net.announce(c.ip, &iface, c.announcement, announce_until(ctx)) {
            Ok(n) if n < c.announcement.count && !c.announcement.background => log::warn!(
                "sent {n} of {} announcements of {} on {}: the rest would have overrun the start timeout",
                c.announcement.count,
                c.ip,
                iface.name
            ),
            Ok(n) => log::info!("announced {} on {} ({n} sent in the foreground)", c.ip, iface.name),
            Err(e) => log::warn!("announcing {} on {}: {e}", c.ip, iface.name),
        }
        Ok(OcfStatus::Success)
    }

    fn stop(&self, c: &Config, ctx: &Context) -> OcfResult {
        self.stop_recorded(ctx, c.namespace.as_deref(), Some(c.ip))
    }

    /// The parameters are invalid: remove what the record says this resource added, if the
    /// namespace (when one is named) is a valid name to look in.
    fn stop_unconfigured(&self, ctx: &Context, _problem: &Failure) -> OcfResult {
        let ns = ctx.env.param("network_namespace");
        if ns.is_some_and(|n| !valid_namespace_name(n)) {
            log::info!("no valid network namespace: nothing of ours can be in it");
            return Ok(OcfStatus::Success);
        }
        let ip = ctx.env.param("ip").and_then(|s| s.trim().parse::<IpAddr>().ok());
        self.stop_recorded(ctx, ns, ip)
    }

    fn monitor(&self, c: &Config, ctx: &Context) -> OcfResult {
        if let Err(e) = self.enter(c) {
            return if ctx.probe { Ok(OcfStatus::NotRunning) } else { Err(e) };
        }
        // Reads only: a probe writes nothing, and a node just booted may have no run directory.
        let Some(r) = read_record(&record_path(ctx, c.namespace.as_deref())).map_err(Failure::generic)? else {
            return self.absent(c, ctx);
        };
        // Dump one: the addresses of the record's family. An address this resource did not
        // add (the node's own, on lo for LVS-DR, or any other) is not "running".
        let Some(a) = self.net.addresses(r.ip).map_err(net_failure)?.into_iter().find(|a| r.describes(a)) else {
            return self.absent(c, ctx);
        };
        // Dump two: its interface.
        let Some(iface) = self.net.interface(a.interface).map_err(net_failure)? else {
            return Ok(OcfStatus::NotRunning);
        };
        if r.netns != self.net.namespace_id().map_err(net_failure)? {
            return Ok(OcfStatus::NotRunning);
        }
        let iface = &iface;
        if r.ip != c.ip {
            return Err(Failure::generic(format!("this resource holds {}, not {}", r.show(), c.ip)));
        }
        if let Some(nic) = &c.nic {
            if &iface.name != nic {
                return Err(Failure::generic(format!("{} is on {}, not on {nic}", c.ip, iface.name)));
            }
        }
        if let Some(p) = c.prefix {
            if a.prefix != p {
                return Err(Failure::generic(format!("{} has prefix /{}, not /{p}", c.ip, a.prefix)));
            }
        }
        if a.dad_failed {
            return Err(Failure::generic(format!("duplicate address detection failed for {} on {}", c.ip, iface.name)));
        }
        if c.check_link && !Vip::link_ok(iface) {
            return Err(Failure::generic(format!("{} is on {}, whose link is down", c.ip, iface.name)));
        }
        if c.refresh > 0 && !ctx.probe && !iface.loopback {
            let again = Announcement { count: c.refresh, background: false, ..c.announcement };
            match self.net.announce(c.ip, iface, again, announce_until(ctx)) {
                Ok(n) if n < c.refresh => {
                    log::warn!(
                        "sent {n} of {} re-announcements: the rest would have overrun the monitor timeout",
                        c.refresh
                    )
                }
                Ok(_) => {}
                Err(e) => log::warn!("re-announcing {}: {e}", c.ip),
            }
        }
        Ok(OcfStatus::Success)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        assert_eq!(parse_prefix("24", v4), Ok(24));
        assert_eq!(parse_prefix("255.255.255.0", v4), Ok(24));
        assert_eq!(parse_prefix("255.255.255.255", v4), Ok(32));
        assert!(parse_prefix("255.0.255.0", v4).is_err());
        assert!(parse_prefix("33", v4).is_err());
        assert_eq!(parse_prefix("64", v6), Ok(64));
        assert!(parse_prefix("255.255.255.0", v6).is_err());
        assert!(parse_prefix("129", v6).is_err());
    }

    #[test]
    fn broadcasts() {
        let ip = Ipv4Addr::new(192, 168, 7, 10);
        assert_eq!(broadcast_of(ip, 24), Some(Ipv4Addr::new(192, 168, 7, 255)));
        assert_eq!(broadcast_of(ip, 16), Some(Ipv4Addr::new(192, 168, 255, 255)));
        assert_eq!(broadcast_of(ip, 31), None);
        assert_eq!(broadcast_of(ip, 32), None);
    }

    fn validate(params: &[(&str, &str)], timeout_ms: Option<&str>) -> OcfResult<Config> {
        let mut env = hale_ocf::Env::new();
        for (k, v) in params {
            env.set(format!("OCF_RESKEY_{k}"), *v);
        }
        if let Some(t) = timeout_ms {
            env.set("OCF_RESKEY_CRM_meta_timeout", t);
        }
        let ctx = Context::new(Action::ValidateAll, &env, &[0, 10], Duration::from_secs(20));
        let values = Values::parse(PARAMS, &env)?;
        Vip::new(hale_backend::network()).configure(&values, &ctx)
    }

    #[test]
    fn announcements_must_fit_the_timeout() {
        let slow = [("ip", "10.0.0.5"), ("arp_bg", "false"), ("arp_count", "8"), ("arp_interval", "1000")];
        let e = validate(&slow, Some("3000")).unwrap_err();
        assert_eq!(e.status, OcfStatus::ErrConfigured);
        assert!(
            e.reason.contains("arp_count=8 foreground announcements every 1000 ms ((arp_count - 1) x 1000 ms = 7.0 s)")
                && e.reason.contains("start timeout of 3.0 s leaves 2.5 s (3.0 s less a 0.5 s margin)"),
            "{}",
            e.reason
        );
        // The advised 20 s start timeout fits them; 100 of them it does not.
        assert!(validate(&slow, None).is_ok());
        let many = [("ip", "10.0.0.5"), ("arp_bg", "false"), ("arp_count", "100"), ("arp_interval", "1000")];
        assert!(validate(&many, None).unwrap_err().reason.contains("start timeout of 20.0 s leaves 18.0 s"));
        // In the background, start waits for none of them.
        assert!(validate(&[("ip", "10.0.0.5"), ("arp_count", "100"), ("arp_interval", "1000")], Some("3000")).is_ok());
        let dup = [
            ("ip", "10.0.0.5"),
            ("arp_bg", "false"),
            ("arp_count", "3"),
            ("arp_interval", "1000"),
            ("dup_check", "true"),
        ];
        let e = validate(&dup, Some("3000")).unwrap_err();
        assert!(
            e.reason.contains("the 1.0 s duplicate check and arp_count=3") && e.reason.contains("take 3.0 s"),
            "{}",
            e.reason
        );
        let refresh = [("ip", "10.0.0.5"), ("arp_count_refresh", "6"), ("arp_interval", "1000")];
        let e = validate(&refresh, Some("2000")).unwrap_err();
        assert!(
            e.reason.contains(
                "monitor's arp_count_refresh=6 announcements every 1000 ms ((arp_count_refresh - 1) x 1000 ms = 5.0 s)"
            ) && e.reason.contains("monitor timeout of 2.0 s"),
            "{}",
            e.reason
        );
        // Only validate-all refuses: start and monitor cut the announcements short instead.
        let mut env = hale_ocf::Env::new();
        env.set("OCF_RESKEY_ip", "10.0.0.5").set("OCF_RESKEY_arp_count_refresh", "6");
        env.set("OCF_RESKEY_arp_interval", "1000").set("OCF_RESKEY_CRM_meta_timeout", "2000");
        let ctx = Context::new(Action::Monitor, &env, &[0, 10], Duration::from_secs(20));
        assert!(Vip::new(hale_backend::network()).configure(&Values::parse(PARAMS, &env).unwrap(), &ctx).is_ok());
    }

    #[test]
    fn namespace_names_are_plain() {
        for bad in ["../../proc/1/ns/net", "/proc/1/ns/net", "..", "a/b"] {
            let e = validate(&[("ip", "10.0.0.5"), ("network_namespace", bad)], None).unwrap_err();
            assert_eq!(e.status, OcfStatus::ErrConfigured, "{bad}");
            assert!(e.reason.contains("is not a namespace name"), "{}", e.reason);
        }
        assert!(validate(&[("ip", "10.0.0.5"), ("network_namespace", "blue")], None).is_ok());
    }

    #[test]
    fn records_parse_only_what_was_written() {
        let r = Record {
            ip: "10.0.0.5".parse().unwrap(),
            prefix: 24,
            interface: 3,
            name: "eth0".into(),
            netns: 4026531840,
        };
        assert_eq!(Record::parse(&r.render()), Some(r.clone()));
        let text = r.render();
        for bad in [
            String::new(),
            text.replace("prefix=24", "prefix=33"),
            text.replace("name=eth0", "name=a/b"),
            text.clone() + "extra=1\n",
            text.clone() + "ip=10.0.0.6\n",
            text.replace("interface=3", "interface=-1"),
            "garbage".to_string(),
        ] {
            assert_eq!(Record::parse(&bad), None, "{bad}");
        }
        let entry =
            AddressEntry { ip: r.ip, prefix: 24, interface: 3, label: None, tentative: false, dad_failed: false };
        assert!(r.describes(&entry));
        assert!(!r.describes(&AddressEntry { interface: 1, ..entry.clone() }), "the same address on lo is not ours");
        assert!(!r.describes(&AddressEntry { prefix: 16, ..entry }));
    }

    #[test]
    fn ipaddr2_forms_are_taken() {
        // nic=NAME:LABEL is nic=NAME iflabel=LABEL.
        let c = validate(&[("ip", "10.0.0.5"), ("nic", "eth0:web")], None).unwrap();
        assert_eq!((c.nic.as_deref(), c.label.as_deref()), (Some("eth0"), Some("web")));
        let c = validate(&[("ip", "10.0.0.5"), ("nic", "eth0:web"), ("iflabel", "web")], None).unwrap();
        assert_eq!(c.label.as_deref(), Some("web"));
        let e = validate(&[("ip", "10.0.0.5"), ("nic", "eth0:web"), ("iflabel", "db")], None).unwrap_err();
        assert_eq!(e.status, OcfStatus::ErrConfigured, "{}", e.reason);
        for bad in ["eth0:", ":web", "eth0:a b", "eth0:much-too-long-label"] {
            let e = validate(&[("ip", "10.0.0.5"), ("nic", bad)], None).unwrap_err();
            assert_eq!(e.status, OcfStatus::ErrConfigured, "nic={bad}: {}", e.reason);
        }
        // A loopback address is a VIP on lo (LVS direct routing); link-local needs nic.
        assert!(validate(&[("ip", "127.0.0.3")], None).is_ok());
        let e = validate(&[("ip", "fe80::2")], None).unwrap_err();
        assert_eq!(e.status, OcfStatus::ErrConfigured, "{}", e.reason);
        assert!(e.reason.contains("link-local"), "{}", e.reason);
        assert!(validate(&[("ip", "fe80::2"), ("nic", "eth0")], None).is_ok());
    }

    #[test]
    fn interface_names() {
        assert!(valid_ifname("eth0") && valid_ifname("enp0s31f6"));
        assert!(!valid_ifname("eth0:1") && !valid_ifname("") && !valid_ifname("a-very-long-ifname0"));
    }
}
