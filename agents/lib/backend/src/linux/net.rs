//! Network work on Linux without `ip`, `arping` or `send_arp`: rtnetlink for links, addresses
//! and routes (one blocking socket per process and namespace, no async runtime), an AF_PACKET socket for
//! ARP, a raw ICMPv6 socket for neighbour advertisements, and setns(2) for namespaces.

use crate::net::{
    valid_namespace_name, AddressEntry, Announcement, ArpMode, ConnectedRoute, Interface, Network, NewAddress,
};
use crate::process::BackendError;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, CacheInfo};
use netlink_packet_route::link::{LinkAttribute, LinkExtentMask, LinkFlags, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// The Linux network backend.
#[derive(Debug, Default)]
pub struct LinuxNetwork;

impl LinuxNetwork {
    pub fn new() -> LinuxNetwork {
        LinuxNetwork
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError::Failed(format!("{what}: {e}"))
}

fn family(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

thread_local! {
    /// The rtnetlink socket of this process in its current network namespace, with the
    /// sequence number of its last request: a vip monitor makes two requests, and a socket
    /// per request cost five system calls and a socket's set-up and release each time. It
    /// is made anew in a forked child (the pid differs), after `enter_namespace`, and after a
    /// failed request (which may have left answers unread).
    static ROUTE_SOCKET: RefCell<Option<(u32, Socket, u32)>> = const { RefCell::new(None) };
}

/// Drop the cached socket: the next request opens one in the namespace this process is in now.
fn forget_route_socket() {
    ROUTE_SOCKET.with(|s| s.borrow_mut().take());
}

/// Send one rtnetlink request and collect the answers (a dump, or the acknowledgement).
fn netlink(message: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<RouteNetlinkMessage>> {
    ROUTE_SOCKET.with(|cell| {
        let mut cell = cell.borrow_mut();
        let pid = std::process::id();
        if cell.as_ref().is_none_or(|(owner, _, _)| *owner != pid) {
            let mut socket = Socket::new(NETLINK_ROUTE)?;
            socket.bind_auto()?;
            socket.connect(&SocketAddr::new(0, 0))?;
            *cell = Some((pid, socket, 0));
        }
        let Some((_, socket, seq)) = cell.as_mut() else { unreachable!("set just above") };
        *seq = seq.wrapping_add(1);
        let answers = request(socket, *seq, message, flags);
        if answers.is_err() {
            *cell = None;
        }
        answers
    })
}

/// One request on `socket` with sequence number `seq`; answers to other numbers are skipped.
fn request(
    socket: &Socket,
    seq: u32,
    message: RouteNetlinkMessage,
    flags: u16,
) -> io::Result<Vec<RouteNetlinkMessage>> {
    let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(message));
    packet.header.flags = NLM_F_REQUEST | flags;
    packet.header.sequence_number = seq;
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf[..]);
    socket.send(&buf[..], 0)?;
    let mut answers = Vec::new();
    // Received into spare capacity: never zeroed, and only the pages the kernel writes are
    // touched. A zeroed 64 KiB buffer per request was a third of a vip monitor's
    // instructions and 16 page faults per request (callgrind, ocf-tests/BENCHMARKS.md).
    let mut rbuf: Vec<u8> = Vec::with_capacity(1 << 16);
    loop {
        rbuf.clear();
        socket.recv(&mut rbuf, 0)?;
        let size = rbuf.len();
        let mut offset = 0;
        while offset < size {
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rbuf[offset..size])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let len = msg.header.length as usize;
            if msg.header.sequence_number == seq {
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::Error(e) if e.code.is_none() => return Ok(answers),
                    NetlinkPayload::Error(e) => return Err(e.to_io()),
                    NetlinkPayload::InnerMessage(m) => answers.push(m),
                    _ => {}
                }
            }
            if len == 0 {
                break;
            }
            offset += len;
        }
        if flags & (NLM_F_DUMP | NLM_F_ACK) == 0 && !answers.is_empty() {
            return Ok(answers);
        }
    }
}

/// A link request without the statistics (most of a link message's bytes): for one
/// interface when `index` is set, else for a dump.
fn link_request(index: u32) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.attributes.push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    m
}

fn to_interface(l: &LinkMessage) -> Interface {
    let mut name = String::new();
    let mut mac = None;
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => name = n.clone(),
            LinkAttribute::Address(bytes) if bytes.len() == 6 => {
                let mut m = [0u8; 6];
                m.copy_from_slice(bytes);
                mac = Some(m);
            }
            _ => {}
        }
    }
    Interface {
        index: l.header.index,
        name,
        up: l.header.flags.contains(LinkFlags::Up),
        lower_up: l.header.flags.contains(LinkFlags::LowerUp),
        loopback: l.header.flags.contains(LinkFlags::Loopback),
        mac,
    }
}

fn address_message(ip: IpAddr, prefix: u8, interface: u32) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = family(ip);
    m.header.prefix_len = prefix;
    m.header.index = interface;
    if ip.is_ipv4() {
        m.attributes.push(AddressAttribute::Local(ip));
    }
    m.attributes.push(AddressAttribute::Address(ip));
    m
}

fn os_error(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0).abs()
}

impl Network for LinuxNetwork {
    fn enter_namespace(&self, name: &str) -> Result<(), BackendError> {
        if !valid_namespace_name(name) {
            return Err(BackendError::NotFound(format!("invalid network namespace name '{name}'")));
        }
        let file = open_namespace(name)?;
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| failed(&format!("cannot enter network namespace {name}"), e))?;
        forget_route_socket();
        Ok(())
    }

    fn namespace_id(&self) -> Result<u64, BackendError> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self/ns/net").map(|m| m.ino()).map_err(|e| failed("reading /proc/self/ns/net", e))
    }

    fn interfaces(&self) -> Result<Vec<Interface>, BackendError> {
        let answers = netlink(RouteNetlinkMessage::GetLink(link_request(0)), NLM_F_DUMP)
            .map_err(|e| failed("listing interfaces", e))?;
        Ok(answers
            .into_iter()
            .filter_map(|m| if let RouteNetlinkMessage::NewLink(l) = m { Some(to_interface(&l)) } else { None })
            .collect())
    }

    fn interface(&self, index: u32) -> Result<Option<Interface>, BackendError> {
        match netlink(RouteNetlinkMessage::GetLink(link_request(index)), 0) {
            Ok(answers) => Ok(answers.iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(to_interface(l)),
                _ => None,
            })),
            Err(e) if os_error(&e) == libc::ENODEV => Ok(None),
            Err(e) => Err(failed(&format!("reading interface {index}"), e)),
        }
    }

    fn addresses(&self, like: IpAddr) -> Result<Vec<AddressEntry>, BackendError> {
        let mut req = AddressMessage::default();
        req.header.family = family(like);
        let answers =
            netlink(RouteNetlinkMessage::GetAddress(req), NLM_F_DUMP).map_err(|e| failed("listing addresses", e))?;
        let mut out = Vec::new();
        for m in answers {
            let RouteNetlinkMessage::NewAddress(a) = m else { continue };
            if a.header.family != family(like) {
                continue;
            }
            let (mut address, mut local, mut label) = (None, None, None);
            let mut flags = AddressFlags::empty();
            for attr in &a.attributes {
                match attr {
                    AddressAttribute::Address(ip) => address = Some(*ip),
                    AddressAttribute::Local(ip) => local = Some(*ip),
                    AddressAttribute::Label(l) => label = Some(l.clone()),
                    AddressAttribute::Flags(f) => flags = *f,
                    _ => {}
                }
            }
            // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer on point-to-point).
            let Some(ip) = local.or(address) else { continue };
            let hdr = a.header.flags;
            out.push(AddressEntry {
                ip,
                prefix: a.header.prefix_len,
                interface: a.header.index,
                label,
                tentative: flags.contains(AddressFlags::Tentative) || hdr.contains(AddressHeaderFlags::Tentative),
                dad_failed: flags.contains(AddressFlags::Dadfailed) || hdr.contains(AddressHeaderFlags::Dadfailed),
            });
        }
        Ok(out)
    }

    fn connected_routes(&self, like: IpAddr) -> Result<Vec<ConnectedRoute>, BackendError> {
        let mut req = RouteMessage::default();
        req.header.address_family = family(like);
        let answers =
            netlink(RouteNetlinkMessage::GetRoute(req), NLM_F_DUMP).map_err(|e| failed("listing routes", e))?;
        let mut out = Vec::new();
        for m in answers {
            let RouteNetlinkMessage::NewRoute(r) = m else { continue };
            if r.header.kind != RouteType::Unicast {
                continue;
            }
            let mut table = u32::from(r.header.table);
            let (mut dst, mut oif, mut gateway) = (None, None, false);
            for attr in &r.attributes {
                match attr {
                    RouteAttribute::Table(t) => table = *t,
                    RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = Some(IpAddr::V4(*a)),
                    RouteAttribute::Destination(RouteAddress::Inet6(a)) => dst = Some(IpAddr::V6(*a)),
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    RouteAttribute::Gateway(_) | RouteAttribute::Via(_) | RouteAttribute::MultiPath(_) => {
                        gateway = true
                    }
                    _ => {}
                }
            }
            if table != u32::from(RouteHeader::RT_TABLE_MAIN) || gateway {
                continue;
            }
            if let (Some(network), Some(interface)) = (dst, oif) {
                out.push(ConnectedRoute { network, prefix: r.header.destination_prefix_length, interface });
            }
        }
        Ok(out)
    }

    fn add_address(&self, a: &NewAddress) -> Result<bool, BackendError> {
        let mut m = address_message(a.ip, a.prefix, a.interface);
        if let Some(b) = a.broadcast {
            m.attributes.push(AddressAttribute::Broadcast(b));
        }
        if let Some(l) = &a.label {
            m.attributes.push(AddressAttribute::Label(l.clone()));
        }
        if a.nodad {
            m.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        if let Some(p) = a.preferred_lft {
            let mut lifetimes = CacheInfo::default();
            lifetimes.ifa_preferred = p;
            lifetimes.ifa_valid = u32::MAX;
            m.attributes.push(AddressAttribute::CacheInfo(lifetimes));
        }
        match netlink(RouteNetlinkMessage::NewAddress(m), NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL) {
            Ok(_) => Ok(true),
            Err(e) if os_error(&e) == libc::EEXIST => Ok(false),
            Err(e) if os_error(&e) == libc::ENODEV => {
                Err(BackendError::NotFound(format!("interface {} has disappeared", a.interface)))
            }
            Err(e) => Err(failed(&format!("adding {}/{}", a.ip, a.prefix), e)),
        }
    }

    fn remove_address(&self, ip: IpAddr, prefix: u8, interface: u32) -> Result<(), BackendError> {
        match netlink(RouteNetlinkMessage::DelAddress(address_message(ip, prefix, interface)), NLM_F_ACK) {
            Ok(_) => Ok(()),
            Err(e) if [libc::EADDRNOTAVAIL, libc::ENOENT, libc::ENODEV, libc::ESRCH].contains(&os_error(&e)) => Ok(()),
            Err(e) => Err(failed(&format!("removing {ip}/{prefix}"), e)),
        }
    }

    fn announce(
        &self,
        ip: IpAddr,
        interface: &Interface,
        how: Announcement,
        until: Instant,
    ) -> Result<u32, BackendError> {
        if how.count == 0 {
            return Ok(0);
        }
        // One packet socket for every ARP. Closing the last reference to a packet socket waits
        // for an RCU grace period (10-30 ms here); with the announcer forked while the socket is
        // open, that wait happens in the announcer, not in start.
        let arp_socket = if ip.is_ipv4() { Some(packet_socket(interface.index, false)?) } else { None };
        let send_one = || match (ip, &arp_socket) {
            (IpAddr::V4(v4), Some(sock)) => send_arp(sock, v4, interface, how.mode),
            (IpAddr::V6(v6), _) => send_unsolicited_na(v6, interface),
            (IpAddr::V4(_), None) => Ok(()),
        };
        send_one()?;
        if how.count == 1 {
            return Ok(1);
        }
        // Announce only while the address is still here: after a move, a late announcement
        // from the old holder would point the neighbours back at it (and fail IPv6 DAD on the
        // new holder).
        let still_here =
            || self.addresses(ip).is_ok_and(|all| all.iter().any(|a| a.ip == ip && a.interface == interface.index));
        if how.background {
            if background_child()? {
                // In the detached child: the remaining announcements, then exit at once.
                for _ in 1..how.count {
                    std::thread::sleep(how.interval);
                    if !still_here() {
                        break;
                    }
                    let _ = send_one();
                }
                // SAFETY: _exit ends this forked child without running the parent's atexit work.
                unsafe { libc::_exit(0) }
            }
            Ok(1)
        } else {
            let mut sent = 1;
            while sent < how.count && Instant::now() + how.interval < until {
                std::thread::sleep(how.interval);
                if !still_here() {
                    break;
                }
                send_one()?;
                sent += 1;
            }
            Ok(sent)
        }
    }

    fn probe_duplicate(
        &self,
        ip: Ipv4Addr,
        interface: &Interface,
        wait: Duration,
    ) -> Result<Option<[u8; 6]>, BackendError> {
        let mac = interface.mac.ok_or_else(|| failed("duplicate check", format!("{} has no MAC", interface.name)))?;
        let sock = packet_socket(interface.index, true)?;
        let tv = libc::timeval { tv_sec: 0, tv_usec: 50_000 };
        // SAFETY: a valid fd and a correctly sized timeval.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        // An ARP probe (RFC 5227): sender address 0.0.0.0, so no neighbour learns anything.
        send_frame(&sock, interface.index, &arp_frame(1, mac, Ipv4Addr::UNSPECIFIED, [0; 6], ip))?;
        let until = Instant::now() + wait;
        let mut buf = [0u8; 128];
        while Instant::now() < until {
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: buffers and lengths match.
            let n = unsafe {
                libc::recvfrom(
                    sock.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n < 42 || from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let arp = &buf[14..42];
            let sender_mac: [u8; 6] = arp[8..14].try_into().unwrap_or([0; 6]);
            let sender_ip = Ipv4Addr::new(arp[14], arp[15], arp[16], arp[17]);
            if sender_ip == ip && sender_mac != mac {
                return Ok(Some(sender_mac));
            }
        }
        Ok(None)
    }
}

/// Open `/run/netns/NAME` without following a symbolic link at either step: a link planted
/// as the directory or as the name (`blue -> /proc/1/ns/net`) would switch the agent into a
/// namespace nobody configured.
fn open_namespace(name: &str) -> Result<OwnedFd, BackendError> {
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let open_error = |path: &str, e: io::Error| match os_error(&e) {
        libc::ENOENT => BackendError::NotFound(format!("network namespace {name} does not exist")),
        libc::ELOOP | libc::ENOTDIR => failed(&format!("refusing {path}"), "a symbolic link or not a directory"),
        _ => failed(&format!("cannot open {path}"), e),
    };
    // SAFETY: a NUL-terminated literal path.
    let dir = unsafe { libc::open(c"/run/netns".as_ptr(), flags | libc::O_DIRECTORY) };
    if dir < 0 {
        return Err(open_error("/run/netns", io::Error::last_os_error()));
    }
    // SAFETY: dir is a fresh, owned descriptor.
    let dir = unsafe { OwnedFd::from_raw_fd(dir) };
    let path = format!("/run/netns/{name}");
    let c_name = std::ffi::CString::new(name).map_err(|_| failed(&format!("cannot open {path}"), "NUL in name"))?;
    // SAFETY: a valid directory descriptor and a NUL-terminated name without a separator.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c_name.as_ptr(), flags) };
    if fd < 0 {
        return Err(open_error(&path, io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh, owned descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Fork a detached child (own session, stdio on /dev/null so the cluster's pipes close when
/// the agent exits). Returns true in the child.
fn background_child() -> Result<bool, BackendError> {
    // SAFETY: the agent is single-threaded here; the child only sends packets and sleeps.
    match unsafe { nix::unistd::fork() }.map_err(|e| failed("fork for announcements", e))? {
        nix::unistd::ForkResult::Parent { .. } => Ok(false),
        nix::unistd::ForkResult::Child => {
            let _ = nix::unistd::setsid();
            if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
                for fd in 0..3 {
                    // SAFETY: duplicating a valid fd onto the standard descriptors.
                    unsafe { libc::dup2(null.as_raw_fd(), fd) };
                }
            }
            Ok(true)
        }
    }
}

/// The socket address types used here; only these may be passed to [`bind_to`]/[`send_to`].
trait SockAddr {}
impl SockAddr for libc::sockaddr_ll {}
impl SockAddr for libc::sockaddr_in6 {}

/// bind(2) to a socket address.
fn bind_to<A: SockAddr>(sock: &OwnedFd, addr: &A) -> io::Result<()> {
    // SAFETY: `addr` is one of the sockaddr structs above, valid for its size.
    let rc =
        unsafe { libc::bind(sock.as_raw_fd(), (addr as *const A).cast(), std::mem::size_of::<A>() as libc::socklen_t) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// sendto(2) of one datagram or frame.
fn send_to<A: SockAddr>(sock: &OwnedFd, buf: &[u8], addr: &A) -> io::Result<()> {
    // SAFETY: `buf` and `addr` are valid for the lengths given.
    let rc = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            0,
            (addr as *const A).cast(),
            std::mem::size_of::<A>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An AF_PACKET socket for ARP frames, optionally bound to the interface to receive.
fn packet_socket(ifindex: u32, bind: bool) -> Result<OwnedFd, BackendError> {
    let proto = (libc::ETH_P_ARP as u16).to_be();
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(proto)) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.kind() {
            io::ErrorKind::PermissionDenied => BackendError::Permission(format!("packet socket: {e} (needs root)")),
            _ => failed("packet socket", e),
        });
    }
    // SAFETY: fd is a fresh, owned descriptor.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    if bind {
        bind_to(&sock, &sockaddr_ll(ifindex, [0; 6])).map_err(|e| failed("binding packet socket", e))?;
    }
    Ok(sock)
}

fn sockaddr_ll(ifindex: u32, dest: [u8; 6]) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid start.
    let mut a: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    a.sll_family = libc::AF_PACKET as u16;
    a.sll_protocol = (libc::ETH_P_ARP as u16).to_be();
    a.sll_ifindex = ifindex as i32;
    a.sll_halen = 6;
    a.sll_addr[..6].copy_from_slice(&dest);
    a
}

/// An Ethernet frame carrying one ARP packet (`op` 1 request, 2 reply), broadcast.
fn arp_frame(op: u16, mac: [u8; 6], sender: Ipv4Addr, target_mac: [u8; 6], target: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&(libc::ETH_P_ARP as u16).to_be_bytes());
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4]); // Ethernet, IPv4, lengths 6 and 4
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&mac);
    f.extend_from_slice(&sender.octets());
    f.extend_from_slice(&target_mac);
    f.extend_from_slice(&target.octets());
    f.resize(60, 0); // the Ethernet minimum
    f
}

fn send_frame(sock: &OwnedFd, ifindex: u32, frame: &[u8]) -> Result<(), BackendError> {
    send_to(sock, frame, &sockaddr_ll(ifindex, [0xff; 6])).map_err(|e| failed("sending ARP", e))
}

/// A gratuitous ARP: sender and target address both `ip`, broadcast.
fn send_arp(sock: &OwnedFd, ip: Ipv4Addr, interface: &Interface, mode: ArpMode) -> Result<(), BackendError> {
    let mac = interface.mac.ok_or_else(|| failed("ARP announcement", format!("{} has no MAC", interface.name)))?;
    let frame = match mode {
        ArpMode::Request => arp_frame(1, mac, ip, [0; 6], ip),
        ArpMode::Reply => arp_frame(2, mac, ip, [0xff; 6], ip),
    };
    send_frame(sock, interface.index, &frame)
}

/// An unsolicited neighbour advertisement (RFC 4861 §7.2.6) to all nodes, with the Override
/// flag so neighbours replace a cached link-layer address.
fn send_unsolicited_na(ip: Ipv6Addr, interface: &Interface) -> Result<(), BackendError> {
    let mac =
        interface.mac.ok_or_else(|| failed("neighbour advertisement", format!("{} has no MAC", interface.name)))?;
    // SAFETY: plain socket(2); the fd is owned right below.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_ICMPV6) };
    if fd < 0 {
        return Err(failed("ICMPv6 socket", io::Error::last_os_error()));
    }
    // SAFETY: fd is fresh and owned.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let set = |level: i32, name: i32, value: i32| {
        // SAFETY: an int option on a valid socket.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                level,
                name,
                (&value as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        }
    };
    // Neighbour discovery requires hop limit 255; the source must be the announced address.
    set(libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, 255);
    set(libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, interface.index as i32);
    set(libc::IPPROTO_IPV6, libc::IPV6_FREEBIND, 1);
    // SAFETY: sockaddr_in6 is plain data.
    let mut src: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    src.sin6_family = libc::AF_INET6 as u16;
    src.sin6_addr.s6_addr = ip.octets();
    bind_to(&sock, &src).map_err(|e| failed(&format!("binding to {ip}"), e))?;
    let mut msg = vec![136u8, 0, 0, 0, 0x20, 0, 0, 0]; // type NA, code 0, checksum (kernel), Override
    msg.extend_from_slice(&ip.octets());
    msg.extend_from_slice(&[2, 1]); // option: target link-layer address, 8 bytes
    msg.extend_from_slice(&mac);
    let mut dst: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    dst.sin6_family = libc::AF_INET6 as u16;
    dst.sin6_addr.s6_addr = "ff02::1".parse::<Ipv6Addr>().map(|a| a.octets()).unwrap_or([0; 16]);
    dst.sin6_scope_id = interface.index;
    send_to(&sock, &msg, &dst).map_err(|e| failed("sending neighbour advertisement", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_frames() {
        let mac = [2, 0, 0, 0, 0, 1];
        let ip = Ipv4Addr::new(10, 0, 0, 5);
        let f = arp_frame(1, mac, ip, [0; 6], ip);
        assert_eq!(f.len(), 60);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1], "request");
        assert_eq!(&f[28..32], &ip.octets(), "sender ip");
        assert_eq!(&f[38..42], &ip.octets(), "target ip");
        let r = arp_frame(2, mac, ip, [0xff; 6], ip);
        assert_eq!(&r[20..22], &[0, 2], "reply");
    }

    #[test]
    fn reads_loopback() {
        let n = LinuxNetwork::new();
        let ifs = n.interfaces().unwrap();
        let lo = ifs.iter().find(|i| i.name == "lo").expect("lo");
        assert_eq!(n.interface(lo.index).unwrap().as_ref(), Some(lo));
        assert_eq!(n.interface(999_999).unwrap(), None);
        let addrs = n.addresses(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        assert!(addrs.iter().any(|a| a.ip == IpAddr::V4(Ipv4Addr::LOCALHOST) && a.interface == lo.index));
    }
}
