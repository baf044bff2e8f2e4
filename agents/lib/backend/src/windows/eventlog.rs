//! The Windows Event Log as the agents' syslog: every line an agent logs, and every lifecycle
//! event of the WSFC adapter, becomes an event of source `Hale` in the Application log.
//!
//! Event ids are stable, one per kind of event, so that monitoring can filter on them
//! (`Get-WinEvent -FilterHashtable @{LogName='Application'; ProviderName='Hale'; Id=2003}`).
//! The table is [`EventKind::ALL`]; the README of the adapter lists it. No message DLL is
//! registered: Event Viewer shows the text as the event's insertion string.

use super::wide;
use hale_ocf::SyslogSink;
use windows_sys::Win32::System::EventLog::{
    DeregisterEventSource, RegisterEventSourceW, ReportEventW, EVENTLOG_ERROR_TYPE, EVENTLOG_INFORMATION_TYPE,
    EVENTLOG_WARNING_TYPE, REPORT_EVENT_TYPE,
};

/// The event source name (registered under `HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\Hale`).
pub const SOURCE: &str = "Hale";

/// Every kind of event Hale writes, with its fixed id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// An agent's log line of severity error or worse.
    AgentError = 1001,
    /// An agent's warning.
    AgentWarning = 1002,
    /// An agent's notice or information line.
    AgentInfo = 1003,
    /// An agent's debug line (only with `HA_debug`).
    AgentDebug = 1004,
    /// The resource is online: start succeeded.
    Started = 2001,
    /// Start (or its validation) failed; the resource stays offline.
    StartFailed = 2002,
    /// A monitor found the resource failed; stop ran and the service reported STOPPED.
    MonitorFailed = 2003,
    /// The resource was taken offline on request and stop succeeded.
    Stopped = 2004,
    /// Stop failed: something of the resource may still run.
    StopFailed = 2005,
    /// The stored configuration of the resource is missing or invalid.
    ConfigInvalid = 2006,
    /// A monitor reported the resource degraded (running, failure more likely).
    Degraded = 2007,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        EventKind::AgentError,
        EventKind::AgentWarning,
        EventKind::AgentInfo,
        EventKind::AgentDebug,
        EventKind::Started,
        EventKind::StartFailed,
        EventKind::MonitorFailed,
        EventKind::Stopped,
        EventKind::StopFailed,
        EventKind::ConfigInvalid,
        EventKind::Degraded,
    ];

    pub fn id(self) -> u32 {
        self as u32
    }

    /// The kind of an agent log line of syslog `severity` (RFC 5424: 0 emerg .. 7 debug).
    pub fn of_severity(severity: u8) -> EventKind {
        match severity {
            0..=3 => EventKind::AgentError,
            4 => EventKind::AgentWarning,
            5 | 6 => EventKind::AgentInfo,
            _ => EventKind::AgentDebug,
        }
    }

    fn event_type(self) -> REPORT_EVENT_TYPE {
        match self {
            EventKind::AgentError
            | EventKind::StartFailed
            | EventKind::MonitorFailed
            | EventKind::StopFailed
            | EventKind::ConfigInvalid => EVENTLOG_ERROR_TYPE,
            EventKind::AgentWarning | EventKind::Degraded => EVENTLOG_WARNING_TYPE,
            _ => EVENTLOG_INFORMATION_TYPE,
        }
    }
}

/// Write one event. Returns whether the Event Log accepted it (logging never fails an action).
pub fn report(kind: EventKind, text: &str) -> bool {
    let source = wide(SOURCE);
    // Event Log strings are limited to 31839 characters.
    let text: String = text.chars().take(31_000).collect();
    let msg = wide(&text);
    let strings = [msg.as_ptr()];
    // SAFETY: the strings live across the calls; the handle is closed before returning.
    unsafe {
        let h = RegisterEventSourceW(std::ptr::null(), source.as_ptr());
        if h.is_null() {
            return false;
        }
        let ok = ReportEventW(
            h,
            kind.event_type(),
            0,
            kind.id(),
            std::ptr::null_mut(),
            1,
            0,
            strings.as_ptr(),
            std::ptr::null(),
        ) != 0;
        DeregisterEventSource(h);
        ok
    }
}

/// The Event Log sink for [`hale_ocf::runner`]: facility is ignored (Windows has none),
/// severity picks the event kind.
pub struct EventLog;

impl SyslogSink for EventLog {
    fn send(&self, _facility: u8, severity: u8, tag: &str, message: &str) {
        report(EventKind::of_severity(severity), &format!("{tag}: {message}"));
    }
}

/// Register the `Hale` source in the Application log (needs administrator rights; done by
/// `hale-wsfc install`). Without it events are still written, with a note in Event Viewer
/// that the source is unknown.
pub fn register_source() -> std::io::Result<()> {
    use windows_sys::Win32::System::Registry::{
        RegCloseKey, RegCreateKeyExW, RegSetValueExW, HKEY, HKEY_LOCAL_MACHINE, KEY_SET_VALUE, REG_DWORD,
        REG_OPTION_NON_VOLATILE,
    };
    let key = wide(format!("SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\{SOURCE}"));
    let value = wide("TypesSupported");
    let types: u32 = 7;
    // SAFETY: pointers live across the calls; the key is closed.
    unsafe {
        let mut hkey: HKEY = std::ptr::null_mut();
        let rc = RegCreateKeyExW(
            HKEY_LOCAL_MACHINE,
            key.as_ptr(),
            0,
            std::ptr::null(),
            REG_OPTION_NON_VOLATILE,
            KEY_SET_VALUE,
            std::ptr::null(),
            &mut hkey,
            std::ptr::null_mut(),
        );
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc as i32));
        }
        let rc = RegSetValueExW(hkey, value.as_ptr(), 0, REG_DWORD, (&types as *const u32).cast(), 4);
        RegCloseKey(hkey);
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc as i32));
        }
    }
    Ok(())
}
