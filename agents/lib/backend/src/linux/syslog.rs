//! Syslog without `logger`: one datagram to /dev/log per line (journald and rsyslog both
//! listen there). Nothing is written when no syslog daemon listens, as with `logger`.

use hale_ocf::SyslogSink;
use std::os::unix::net::UnixDatagram;

/// The local syslog socket.
pub struct DevLog;

impl SyslogSink for DevLog {
    fn send(&self, facility: u8, severity: u8, tag: &str, message: &str) {
        let pri = u16::from(facility) * 8 + u16::from(severity);
        let line = format!("<{pri}>{tag}: {message}");
        if let Ok(sock) = UnixDatagram::unbound() {
            let _ = sock.send_to(line.as_bytes(), "/dev/log");
        }
    }
}
