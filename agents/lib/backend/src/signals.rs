//! Termination requests to a process that supervises a child (`hale lock run`): catch them
//! instead of dying, so the supervisor can pass them on, wait for the child and clean up.
//!
//! On Linux SIGTERM, SIGINT and SIGHUP are caught by a handler that only records the signal
//! number (an atomic store: async-signal-safe); the supervisor polls [`caught`] and sends the
//! same signal to its child with [`forward`]. On Windows a console's Ctrl+C and Ctrl+Break
//! reach every process of the console, the child included, so there is nothing to forward
//! and nothing is caught: the supervisor simply outlives its child.

use std::sync::atomic::{AtomicI32, Ordering};

/// The last termination signal caught (0: none).
static CAUGHT: AtomicI32 = AtomicI32::new(0);

/// SIGHUP, SIGINT, SIGTERM: their numbers are the same on every Unix we run on.
pub const HUP: i32 = 1;
pub const INT: i32 = 2;
pub const TERM: i32 = 15;

#[cfg(target_os = "linux")]
extern "C" fn record(sig: nix::libc::c_int) {
    CAUGHT.store(sig, Ordering::SeqCst);
}

/// From now on, SIGTERM, SIGINT and SIGHUP no longer end this process: they are recorded for
/// [`caught`]. A no-op on Windows (see the module documentation).
pub fn catch_termination() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
        let action = SigAction::new(SigHandler::Handler(record), SaFlags::SA_RESTART, SigSet::empty());
        for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
            // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
            unsafe { sigaction(sig, &action) }.map_err(std::io::Error::from)?;
        }
    }
    Ok(())
}

/// The termination signal caught since [`catch_termination`], if any (the last one).
pub fn caught() -> Option<i32> {
    match CAUGHT.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Send signal `sig` to the child `child`, which must not have been waited for yet (so its pid
/// cannot have been reused). A no-op on Windows.
pub fn forward(child: &std::process::Child, sig: i32) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let sig = nix::sys::signal::Signal::try_from(sig).map_err(std::io::Error::from)?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        nix::sys::signal::kill(pid, sig).map_err(std::io::Error::from)?;
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (child, sig);
    Ok(())
}

/// The exit status a shell gives a command ended by `sig`: 128 + the signal number.
pub fn exit_status(sig: i32) -> i32 {
    128 + sig
}

/// The exit status a shell would report for a finished child: its exit code, or
/// [`exit_status`] of the signal that ended it (Unix); `None` if neither is known.
pub fn status_code(status: &std::process::ExitStatus) -> Option<i32> {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return Some(exit_status(sig));
        }
    }
    status.code()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_caught_signal_is_recorded_and_forwarded() {
        catch_termination().unwrap();
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGHUP).unwrap();
        assert_eq!(caught(), Some(HUP));
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        forward(&child, TERM).unwrap();
        use std::os::unix::process::ExitStatusExt;
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(TERM));
        assert_eq!(status_code(&status), Some(143));
        assert_eq!(exit_status(TERM), 143);
    }
}
