//! OCF exit codes as a type, and the failure value actions return.
//!
//! Agents never pick raw numbers: they return an [`OcfStatus`] or a [`Failure`] built with one
//! of the constructors below, whose names say *which* kind of problem it is, because the code
//! decides what Pacemaker does next (restart here, ban from this node, or ban everywhere).

use std::fmt;

/// An OCF exit status (OCF 1.1 §"Exit codes", plus Pacemaker's 190/191).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OcfStatus {
    /// 0: done, or monitor found the resource running.
    Success,
    /// 1: a failure the cluster may recover from by restarting here.
    ErrGeneric,
    /// 2: parameters invalid *on this node* (Pacemaker bans the resource from this node).
    ErrArgs,
    /// 3: action not implemented by this agent.
    Unimplemented,
    /// 4: insufficient privileges.
    ErrPerm,
    /// 5: required software missing on this node.
    NotInstalled,
    /// 6: parameters wrong everywhere (Pacemaker stops the resource on every node).
    ErrConfigured,
    /// 7: monitor found the resource cleanly stopped.
    NotRunning,
    /// 8: monitor found the resource running in the promoted role.
    RunningPromoted,
    /// 9: promoted, but failed.
    FailedPromoted,
    /// 190: running, but failure is more likely than usual.
    Degraded,
    /// 191: promoted, but failure is more likely than usual.
    DegradedPromoted,
}

impl OcfStatus {
    /// Every status, in numeric order.
    pub const ALL: [OcfStatus; 12] = [
        OcfStatus::Success,
        OcfStatus::ErrGeneric,
        OcfStatus::ErrArgs,
        OcfStatus::Unimplemented,
        OcfStatus::ErrPerm,
        OcfStatus::NotInstalled,
        OcfStatus::ErrConfigured,
        OcfStatus::NotRunning,
        OcfStatus::RunningPromoted,
        OcfStatus::FailedPromoted,
        OcfStatus::Degraded,
        OcfStatus::DegradedPromoted,
    ];

    /// The process exit code.
    pub fn code(self) -> i32 {
        match self {
            OcfStatus::Success => 0,
            OcfStatus::ErrGeneric => 1,
            OcfStatus::ErrArgs => 2,
            OcfStatus::Unimplemented => 3,
            OcfStatus::ErrPerm => 4,
            OcfStatus::NotInstalled => 5,
            OcfStatus::ErrConfigured => 6,
            OcfStatus::NotRunning => 7,
            OcfStatus::RunningPromoted => 8,
            OcfStatus::FailedPromoted => 9,
            OcfStatus::Degraded => 190,
            OcfStatus::DegradedPromoted => 191,
        }
    }

    /// The status for an exit code, if it is one OCF defines.
    pub fn from_code(code: i32) -> Option<OcfStatus> {
        OcfStatus::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The name used by the shell library and in Pacemaker's logs (`OCF_NOT_RUNNING`, ...).
    pub fn name(self) -> &'static str {
        match self {
            OcfStatus::Success => "OCF_SUCCESS",
            OcfStatus::ErrGeneric => "OCF_ERR_GENERIC",
            OcfStatus::ErrArgs => "OCF_ERR_ARGS",
            OcfStatus::Unimplemented => "OCF_ERR_UNIMPLEMENTED",
            OcfStatus::ErrPerm => "OCF_ERR_PERM",
            OcfStatus::NotInstalled => "OCF_ERR_INSTALLED",
            OcfStatus::ErrConfigured => "OCF_ERR_CONFIGURED",
            OcfStatus::NotRunning => "OCF_NOT_RUNNING",
            OcfStatus::RunningPromoted => "OCF_RUNNING_PROMOTED",
            OcfStatus::FailedPromoted => "OCF_FAILED_PROMOTED",
            OcfStatus::Degraded => "OCF_DEGRADED",
            OcfStatus::DegradedPromoted => "OCF_DEGRADED_PROMOTED",
        }
    }

    /// A short phrase for people (`hale run` prints it; crm_mon uses similar words).
    pub fn describe(self) -> &'static str {
        match self {
            OcfStatus::Success => "ok",
            OcfStatus::ErrGeneric => "error",
            OcfStatus::ErrArgs => "invalid parameter on this node",
            OcfStatus::Unimplemented => "unimplemented feature",
            OcfStatus::ErrPerm => "insufficient privileges",
            OcfStatus::NotInstalled => "not installed",
            OcfStatus::ErrConfigured => "not configured",
            OcfStatus::NotRunning => "not running",
            OcfStatus::RunningPromoted => "promoted",
            OcfStatus::FailedPromoted => "promoted, failed",
            OcfStatus::Degraded => "degraded",
            OcfStatus::DegradedPromoted => "promoted, degraded",
        }
    }

    /// True for results Pacemaker counts as failures of the action (1-6 and 9). 7 is not in
    /// the list: it is the expected answer of a probe and the caller decides what it means.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            OcfStatus::ErrGeneric
                | OcfStatus::ErrArgs
                | OcfStatus::Unimplemented
                | OcfStatus::ErrPerm
                | OcfStatus::NotInstalled
                | OcfStatus::ErrConfigured
                | OcfStatus::FailedPromoted
        )
    }
}

impl fmt::Display for OcfStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.describe(), self.code())
    }
}

/// A non-success result with the one-line reason a person will read in `crm_mon`.
///
/// This is the error type of every action, so agents write `?` and the reason travels to the
/// `ocf-exit-reason:` line unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub status: OcfStatus,
    pub reason: String,
}

impl Failure {
    pub fn new(status: OcfStatus, reason: impl Into<String>) -> Failure {
        Failure { status, reason: reason.into() }
    }
    /// 1: recoverable; the cluster may restart the resource here.
    pub fn generic(reason: impl Into<String>) -> Failure {
        Failure::new(OcfStatus::ErrGeneric, reason)
    }
    /// 2: a parameter does not fit *this node* (a missing user or directory).
    pub fn args(reason: impl Into<String>) -> Failure {
        Failure::new(OcfStatus::ErrArgs, reason)
    }
    /// 5: software the resource needs is missing on this node.
    pub fn not_installed(reason: impl Into<String>) -> Failure {
        Failure::new(OcfStatus::NotInstalled, reason)
    }
    /// 6: the parameters are wrong on every node. Use only when no node could run them.
    pub fn configured(reason: impl Into<String>) -> Failure {
        Failure::new(OcfStatus::ErrConfigured, reason)
    }
    /// 4: not allowed to do it.
    pub fn perm(reason: impl Into<String>) -> Failure {
        Failure::new(OcfStatus::ErrPerm, reason)
    }
    /// 3: the agent does not implement it.
    pub fn unimplemented(reason: impl Into<String>) -> Failure {
        Failure::new(OcfStatus::Unimplemented, reason)
    }
    /// 7 with a reason: cleanly stopped, but worth telling why (e.g. the process exited).
    pub fn not_running(reason: impl Into<String>) -> Failure {
        Failure::new(OcfStatus::NotRunning, reason)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.reason)
    }
}

impl std::error::Error for Failure {}

/// What every action returns: a status (success, not running, promoted...) or a failure.
pub type OcfResult<T = OcfStatus> = Result<T, Failure>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for s in OcfStatus::ALL {
            assert_eq!(OcfStatus::from_code(s.code()), Some(s));
        }
        assert_eq!(OcfStatus::from_code(101), None);
        assert_eq!(OcfStatus::Degraded.code(), 190);
        assert_eq!(OcfStatus::DegradedPromoted.code(), 191);
    }

    #[test]
    fn seven_is_not_a_failure() {
        assert!(!OcfStatus::NotRunning.is_failure());
        assert!(OcfStatus::ErrConfigured.is_failure());
        assert!(!OcfStatus::Success.is_failure());
    }
}
