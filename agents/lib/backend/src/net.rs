//! The network interface: addresses, links, connected routes and neighbour announcements.
//! What a floating IP needs and nothing more; no OS type in it.

use crate::process::BackendError;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

/// A network interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub index: u32,
    pub name: String,
    /// Administratively up.
    pub up: bool,
    /// The lower layer (carrier) is up.
    pub lower_up: bool,
    /// A loopback interface (`lo`): nothing on it is announced to a link.
    pub loopback: bool,
    /// Hardware address, when it is Ethernet-like.
    pub mac: Option<[u8; 6]>,
}

/// An address configured on an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressEntry {
    pub ip: IpAddr,
    pub prefix: u8,
    pub interface: u32,
    pub label: Option<String>,
    /// IPv6 duplicate address detection still running.
    pub tentative: bool,
    /// IPv6 duplicate address detection found another holder.
    pub dad_failed: bool,
}

/// A route to a directly connected network (`proto kernel scope link`, as findif uses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectedRoute {
    pub network: IpAddr,
    pub prefix: u8,
    pub interface: u32,
}

/// An address to add.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAddress {
    pub ip: IpAddr,
    pub prefix: u8,
    pub interface: u32,
    pub broadcast: Option<Ipv4Addr>,
    /// IPv4 label (`eth0:web`).
    pub label: Option<String>,
    /// IPv6: skip duplicate address detection.
    pub nodad: bool,
    /// IPv6 preferred lifetime in seconds; None: forever.
    pub preferred_lft: Option<u32>,
}

/// Which ARP packet announces an IPv4 address: some switches learn only from one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpMode {
    Request,
    Reply,
}

/// How to announce a new holder of an address to the neighbours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announcement {
    pub count: u32,
    pub interval: Duration,
    pub mode: ArpMode,
    /// Send the first at once and the rest from a detached process, so start returns after
    /// the first (as IPaddr2's `arp_bg`).
    pub background: bool,
}

impl Announcement {
    /// How long the announcements sent before [`Network::announce`] returns take: one at
    /// once, then one per interval (none of the background ones).
    pub fn foreground_time(&self) -> Duration {
        if self.background || self.count <= 1 {
            Duration::ZERO
        } else {
            self.interval.saturating_mul(self.count - 1)
        }
    }
}

/// Is `name` a network namespace name as `ip netns` makes them: one plain file name under
/// `/run/netns` (no separator, not `.` or `..`, no NUL, at most 255 bytes)? Anything else
/// could lead the agent into another namespace (`../../proc/1/ns/net`).
pub fn valid_namespace_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// Network configuration of this host (or of the network namespace entered).
pub trait Network {
    /// Switch this process to the named network namespace (before any other call). The name
    /// must pass [`valid_namespace_name`]; neither `/run/netns` nor the name is followed
    /// through a symbolic link.
    fn enter_namespace(&self, name: &str) -> Result<(), BackendError>;
    /// An identity of the network namespace this process is in, stable while it lives (on
    /// Linux its nsfs inode): tells a record of one namespace from another that reuses the name.
    fn namespace_id(&self) -> Result<u64, BackendError>;
    fn interfaces(&self) -> Result<Vec<Interface>, BackendError>;
    /// One interface by index (None when it does not exist): cheaper than listing them all.
    fn interface(&self, index: u32) -> Result<Option<Interface>, BackendError>;
    /// Every address of the family of `like`.
    fn addresses(&self, like: IpAddr) -> Result<Vec<AddressEntry>, BackendError>;
    /// Connected routes of the family of `like` in the main table.
    fn connected_routes(&self, like: IpAddr) -> Result<Vec<ConnectedRoute>, BackendError>;
    /// Add an address: true when this call added it, false when it was already there (then it
    /// is somebody else's unless the caller knows better).
    fn add_address(&self, address: &NewAddress) -> Result<bool, BackendError>;
    /// Remove one address; succeeds if it is already gone.
    fn remove_address(&self, ip: IpAddr, prefix: u8, interface: u32) -> Result<(), BackendError>;
    /// Tell the neighbours that `ip` is now at `interface` (gratuitous ARP for IPv4, unsolicited
    /// neighbour advertisement for IPv6). Foreground announcements stop before `until` (the
    /// caller's deadline): none is sent that would wait past it. Returns how many were sent
    /// before returning (in the background mode: the first; the rest follow from the detached
    /// process, which no deadline binds since nobody waits for it).
    fn announce(
        &self,
        ip: IpAddr,
        interface: &Interface,
        how: Announcement,
        until: Instant,
    ) -> Result<u32, BackendError>;
    /// IPv4: ask whether another host holds `ip` (an ARP probe); the MAC that answered.
    fn probe_duplicate(
        &self,
        ip: Ipv4Addr,
        interface: &Interface,
        wait: Duration,
    ) -> Result<Option<[u8; 6]>, BackendError>;
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Does `ip` lie in `network/prefix`?
pub fn contains(network: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    match (network, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if prefix <= 32 => {
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if prefix <= 128 => {
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containment() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(contains(ip("10.0.0.0"), 24, ip("10.0.0.77")));
        assert!(!contains(ip("10.0.0.0"), 24, ip("10.0.1.1")));
        assert!(contains(ip("0.0.0.0"), 0, ip("1.2.3.4")));
        assert!(contains(ip("fd00::"), 64, ip("fd00::5")));
        assert!(!contains(ip("fd00::"), 64, ip("fd01::5")));
        assert!(!contains(ip("10.0.0.0"), 8, ip("fd00::5")));
        assert_eq!(format_mac(&[0, 0x1b, 2, 0xff, 4, 5]), "00:1b:02:ff:04:05");
    }

    #[test]
    fn namespace_names() {
        assert!(valid_namespace_name("blue") && valid_namespace_name("hale-ns.1"));
        for bad in ["", ".", "..", "../../proc/1/ns/net", "/proc/1/ns/net", "a/b", "a\\b", "a\0b"] {
            assert!(!valid_namespace_name(bad), "{bad:?}");
        }
        assert!(!valid_namespace_name(&"n".repeat(256)));
    }

    #[test]
    fn foreground_announcement_time() {
        let a =
            Announcement { count: 8, interval: Duration::from_millis(1000), mode: ArpMode::Request, background: false };
        assert_eq!(a.foreground_time(), Duration::from_secs(7));
        assert_eq!(Announcement { background: true, ..a }.foreground_time(), Duration::ZERO);
        assert_eq!(Announcement { count: 1, ..a }.foreground_time(), Duration::ZERO);
        assert_eq!(Announcement { count: 0, ..a }.foreground_time(), Duration::ZERO);
    }
}
