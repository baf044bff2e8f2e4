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

/// Defines the C `main` of an agent's own program (its binary crate says `no_main`, see below).
///
/// Why not Rust's `fn main`: before it, the standard library's start-up finds the main
/// thread's stack bounds (glibc reads and parses /proc/self/maps for that) and installs a
/// stack-overflow handler on an alternate signal stack. An agent runs for a millisecond, many
/// times a minute, on every node, and that start-up was a fifth of a meta-data run's cost
/// over `/bin/true`. What of it an agent needs, [`program_start`] does: SIGPIPE ignored, so a
/// write to a pipe that execd closed fails with EPIPE instead of killing a stop half done.
/// argv and the environment still come from the standard library (glibc hands them to it
/// before `main`). A stack overflow still ends the process with a signal, without the message.
///
/// `$run` is an expression that never returns (it ends in `std::process::exit`). The crate
/// says `#![cfg_attr(not(test), no_main)]`, not plain `no_main`: under `cargo test` the test
/// harness keeps its own `main`, and this one is left out.
#[macro_export]
macro_rules! agent_main {
    ($run:expr) => {
        #[cfg(not(test))]
        #[no_mangle]
        pub extern "C" fn main(_argc: ::std::ffi::c_int, _argv: *const *const ::std::ffi::c_char) -> ::std::ffi::c_int {
            $crate::program_start();
            $run
        }
    };
}

/// What an agent's program needs before its first action, in place of the standard library's
/// start-up (see [`agent_main`]): on Linux, SIGPIPE ignored as Rust programs have it.
pub fn program_start() {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::signal::{signal, SigHandler, Signal};
        // SAFETY: SIG_IGN installs no handler code; nothing else runs yet.
        let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
    }
}
