//! The operating-system layer under Hale agents.
//!
//! Agents know no OS: they call the [`Processes`] interface (spawn a detached service, read
//! its state, stop it inside a deadline, run a check command) and get a syslog writer for the
//! runner. This crate holds that interface, the Linux implementation (nix and /proc, no forks
//! on the read paths) and an in-memory fake for unit tests. The interface has no Unix type in
//! it: the Windows implementation (Job Objects, CreateProcessW, the Event Log) sits beside
//! Linux and the agents do not know which one they got.

// The in-memory fake is for tests only: this crate's, and (feature `fake`, a dev-dependency)
// the agents'. Production code never sees it.
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod files;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod net;
pub mod paths;
pub mod process;
pub mod readonly;
pub mod script;
pub mod signals;
pub mod system;
#[cfg(windows)]
pub mod windows;

pub use process::{
    BackendError, CheckOutcome, CommandOutput, ProcessRecord, ProcessState, Processes, SpawnSpec, StopReport,
    StopSignal,
};
pub use script::{
    describe_exit, entry_path, is_executable, runs_in_shell, script_argv, ANY_PROGRAM, NOT_EXECUTABLE_HINT,
};

/// The process backend of the machine we run on.
#[cfg(target_os = "linux")]
pub fn processes() -> Box<dyn Processes> {
    Box::new(linux::LinuxProcesses::new())
}

/// The network backend of the machine we run on.
#[cfg(target_os = "linux")]
pub fn network() -> Box<dyn net::Network> {
    Box::new(linux::net::LinuxNetwork::new())
}

/// The syslog writer of the machine we run on, for [`hale_ocf::runner::main`].
#[cfg(target_os = "linux")]
pub fn syslog() -> Option<Box<dyn hale_ocf::SyslogSink>> {
    Some(Box::new(linux::syslog::DevLog))
}

/// The process backend of the machine we run on.
#[cfg(windows)]
pub fn processes() -> Box<dyn Processes> {
    Box::new(windows::WindowsProcesses::new())
}

/// The syslog writer of the machine we run on: the Windows Event Log.
#[cfg(windows)]
pub fn syslog() -> Option<Box<dyn hale_ocf::SyslogSink>> {
    Some(Box::new(windows::eventlog::EventLog))
}
