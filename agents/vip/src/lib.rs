//! `ocf:hale:vip` — a floating IP address that never forks.
//!
//! The obvious replacement for `ocf:heartbeat:IPaddr2`, with its parameter names. Addresses,
//! links and routes go through netlink and announcements through packet sockets (the backend's
//! [`Network`]), so a monitor is two netlink dumps: no `ip`, `arping` or `send_arp` process,
//! ever. The interface comes from `nic` or, as findif does, from the connected route with the
//! longest prefix that contains the address; two equally good interfaces are refused.

use hale_backend::net::{contains, format_mac, AddressEntry, Announcement, ArpMode, Interface, Network, NewAddress};
use hale_backend::BackendError;
use hale_ocf::{Action, ActionSpec, Agent, AgentInfo, Context, Failure, Kind, OcfResult, OcfStatus, Param, Values};
use std::net::{IpAddr, Ipv4Addr};
use std::thread::sleep;
use std::time::{Duration, Instant};

const PARAMS: &[Param] = &[
    Param::new("ip", "IPv4 or IPv6 address", "The floating address, e.g. 192.168.1.10 or 2001:db8::10.")
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
         refuses and asks for nic.",
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
        "Manage the address inside this named network namespace (/run/netns/NAME).",
    ),
];

const ACTIONS: &[ActionSpec] = &[
    ActionSpec::new(Action::Start, 20),
    ActionSpec::new(Action::Stop, 20),
    ActionSpec::new(Action::Monitor, 20).interval(10).depth(0),
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

fn net_failure(e: BackendError) -> Failure {
    match e {
        BackendError::NotFound(m) => Failure::args(m),
        BackendError::Permission(m) => Failure::perm(m),
        BackendError::Failed(m) => Failure::generic(m),
    }
}

fn count(v: &Values, name: &str, min: i64) -> OcfResult<u32> {
    let n = v.int(name).unwrap_or(0);
    if n < min || n > 10_000 {
        return Err(Failure::configured(format!("parameter {name}={n} must be between {min} and 10000")));
    }
    Ok(n as u32)
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
            None => {
                let best = routes.iter().map(|r| r.prefix).max().ok_or_else(|| {
                    Failure::args(format!("no interface on this node has a route to {}; set nic", c.ip))
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
        let prefix = match c.prefix {
            Some(p) => p,
            None => routes.iter().filter(|r| r.interface == iface.index).map(|r| r.prefix).max().ok_or_else(|| {
                Failure::args(format!("no route on {} tells the prefix of {}; set cidr_netmask", iface.name, c.ip))
            })?,
        };
        if let Some(l) = &c.label {
            if iface.name.len() + 1 + l.len() > 15 {
                return Err(Failure::args(format!("label {}:{l} is longer than 15 characters", iface.name)));
            }
        }
        Ok((iface, prefix))
    }

    fn mine(&self, c: &Config) -> OcfResult<Vec<AddressEntry>> {
        Ok(self.net.addresses(c.ip).map_err(net_failure)?.into_iter().filter(|a| a.ip == c.ip).collect())
    }

    fn link_ok(i: &Interface) -> bool {
        i.up && i.lower_up
    }

    /// IPv6: wait until duplicate address detection has finished.
    fn wait_dad(&self, c: &Config, iface: &Interface, prefix: u8, ctx: &Context) -> OcfResult<()> {
        let until = Instant::now() + ctx.deadline.remaining_with_margin(ctx.deadline.margin());
        loop {
            let entry = self.mine(c)?.into_iter().find(|a| a.interface == iface.index);
            match entry {
                Some(a) if a.dad_failed => {
                    let _ = self.net.remove_address(c.ip, prefix, iface.index);
                    return Err(Failure::generic(format!(
                        "duplicate address detection failed: {} is already used on {}'s link",
                        c.ip, iface.name
                    )));
                }
                Some(a) if !a.tentative => return Ok(()),
                None => return Err(Failure::generic(format!("{} vanished from {} during start", c.ip, iface.name))),
                Some(_) if Instant::now() >= until => {
                    let _ = self.net.remove_address(c.ip, prefix, iface.index);
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
                   interface, link down or DAD failed. stop removes only this address and \
                   succeeds when it, or its interface, is already gone.",
        version: env!("CARGO_PKG_VERSION"),
    };
    const PARAMS: &'static [Param] = PARAMS;
    const ACTIONS: &'static [ActionSpec] = ACTIONS;
    const CHECK_LEVELS: &'static [u32] = &[10];

    fn configure(&self, v: &Values, _ctx: &Context) -> OcfResult<Config> {
        let raw_ip = v.str("ip").unwrap_or_default();
        let ip: IpAddr = raw_ip
            .trim()
            .parse()
            .map_err(|_| Failure::configured(format!("parameter ip='{raw_ip}' is not an IPv4 or IPv6 address")))?;
        if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() {
            return Err(Failure::configured(format!("parameter ip={ip} cannot be a floating address")));
        }
        let prefix = v
            .str("cidr_netmask")
            .map(|m| parse_prefix(m, ip).map_err(|e| Failure::configured(format!("parameter cidr_netmask='{m}': {e}"))))
            .transpose()?;
        let nic = v.str("nic").map(str::to_string);
        if let Some(n) = &nic {
            if !valid_ifname(n) {
                return Err(Failure::configured(format!(
                    "parameter nic='{n}' is not an interface name (use iflabel for a label)"
                )));
            }
        }
        let broadcast = match v.str("broadcast").unwrap_or("+") {
            "+" => Broadcast::Compute,
            "-" => Broadcast::None,
            b => Broadcast::Given(b.parse().map_err(|_| {
                Failure::configured(format!("parameter broadcast='{b}' is not an IPv4 address, '+' or '-'"))
            })?),
        };
        let label = v.str("iflabel").map(str::to_string);
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
        let preferred_lft = match v.str("preferred_lft").unwrap_or("forever") {
            "forever" => None,
            p => Some(p.parse::<u32>().map_err(|_| {
                Failure::configured(format!("parameter preferred_lft='{p}' is not a number of seconds or 'forever'"))
            })?),
        };
        Ok(Config {
            ip,
            prefix,
            nic,
            broadcast,
            label,
            announcement: Announcement {
                count: count(v, "arp_count", 0)?,
                interval: Duration::from_millis(interval.into()),
                mode: if v.str("arp_mode") == Some("reply") { ArpMode::Reply } else { ArpMode::Request },
                background: v.bool("arp_bg").unwrap_or(true),
            },
            refresh: count(v, "arp_count_refresh", 0)?,
            check_link: v.bool("check_link_status").unwrap_or(true),
            nodad: v.bool("nodad").unwrap_or(false),
            preferred_lft,
            dup_check: v.bool("dup_check").unwrap_or(false),
            namespace: v.str("network_namespace").map(str::to_string),
        })
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
        let present = self.mine(c)?;
        if let Some(other) = present.iter().find(|a| a.interface != iface.index) {
            return Err(Failure::generic(format!(
                "{} is already on another interface (index {}) of this node",
                c.ip, other.interface
            )));
        }
        if present.is_empty() {
            if let (true, IpAddr::V4(v4)) = (c.dup_check, c.ip) {
                let wait = Duration::from_secs(1).min(ctx.deadline.remaining_with_margin(ctx.deadline.margin()));
                if let Some(mac) = self.net.probe_duplicate(v4, &iface, wait).map_err(net_failure)? {
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
            self.net
                .add_address(&NewAddress {
                    ip: c.ip,
                    prefix,
                    interface: iface.index,
                    broadcast,
                    label: c.label.as_ref().map(|l| format!("{}:{l}", iface.name)),
                    nodad: c.nodad,
                    preferred_lft: c.preferred_lft,
                })
                .map_err(net_failure)?;
            log::info!("added {}/{prefix} to {}", c.ip, iface.name);
        }
        if c.ip.is_ipv6() && !c.nodad {
            self.wait_dad(c, &iface, prefix, ctx)?;
        }
        // An address that cannot be announced is still served; neighbours learn it on their
        // next ARP. Say so, do not fail.
        if let Err(e) = self.net.announce(c.ip, &iface, c.announcement) {
            log::warn!("announcing {} on {}: {e}", c.ip, iface.name);
        }
        Ok(OcfStatus::Success)
    }

    fn stop(&self, c: &Config, _ctx: &Context) -> OcfResult {
        if let Err(e) = self.enter(c) {
            // No namespace: nothing of ours can be in it.
            log::info!("{}: nothing to stop", e.reason);
            return Ok(OcfStatus::Success);
        }
        let ifs = self.net.interfaces().map_err(net_failure)?;
        for a in self.mine(c)? {
            let name = ifs.iter().find(|i| i.index == a.interface).map(|i| i.name.as_str());
            let ours = c.nic.as_deref().is_none_or(|n| Some(n) == name) && c.prefix.is_none_or(|p| p == a.prefix);
            if ours {
                self.net.remove_address(a.ip, a.prefix, a.interface).map_err(net_failure)?;
                log::info!("removed {}/{} from {}", a.ip, a.prefix, name.unwrap_or("?"));
            }
        }
        Ok(OcfStatus::Success)
    }

    /// The parameters are invalid: remove the address anyway if `ip` names one.
    fn stop_unconfigured(&self, ctx: &Context, _problem: &Failure) -> OcfResult {
        let Some(ip) = ctx.env.param("ip").and_then(|s| s.trim().parse::<IpAddr>().ok()) else {
            return Ok(OcfStatus::Success);
        };
        if let Some(ns) = ctx.env.param("network_namespace") {
            if self.net.enter_namespace(ns).is_err() {
                return Ok(OcfStatus::Success);
            }
        }
        for a in self.net.addresses(ip).map_err(net_failure)?.into_iter().filter(|a| a.ip == ip) {
            self.net.remove_address(a.ip, a.prefix, a.interface).map_err(net_failure)?;
        }
        Ok(OcfStatus::Success)
    }

    fn monitor(&self, c: &Config, ctx: &Context) -> OcfResult {
        if let Err(e) = self.enter(c) {
            return if ctx.probe { Ok(OcfStatus::NotRunning) } else { Err(e) };
        }
        let present = self.mine(c)?;
        let Some(a) = present.first() else { return Ok(OcfStatus::NotRunning) };
        let Some(iface) = self.net.interface(a.interface).map_err(net_failure)? else {
            return Ok(OcfStatus::NotRunning);
        };
        let iface = &iface;
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
        if c.refresh > 0 && !ctx.probe {
            let again = Announcement { count: c.refresh, background: false, ..c.announcement };
            if let Err(e) = self.net.announce(c.ip, iface, again) {
                log::warn!("re-announcing {}: {e}", c.ip);
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

    #[test]
    fn interface_names() {
        assert!(valid_ifname("eth0") && valid_ifname("enp0s31f6"));
        assert!(!valid_ifname("eth0:1") && !valid_ifname("") && !valid_ifname("a-very-long-ifname0"));
    }
}
