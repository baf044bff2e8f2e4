//! The cluster manager as Hale agents see it: node attributes, promotion scores and the
//! status of resources, behind one object-safe interface ([`Cluster`]) so an agent never
//! knows which manager it runs under (DESIGN.md decision 7).
//!
//! Every call takes the instant it must be done by (the action's deadline less its margin)
//! and never waits past it; a failure is a [`ClusterError`] with a kind and a one-line reason
//! fit for `ocf-exit-reason`.
//!
//! [`Publisher`] adds write-on-change on top of any [`Cluster`]: it remembers the last value
//! it published in a small file under /run/hale and does nothing (forks nothing) when asked to
//! publish the same value again, so a steady recurring monitor costs a file read. A node just
//! booted has an empty /run, so its first call publishes; [`Publisher::refresh`] reads the
//! live value when the memory may be stale (the cluster manager restarted and dropped its
//! transient attributes, or an administrator changed one by hand).
//!
//! # Pacemaker
//!
//! [`pacemaker::Pacemaker`] runs Pacemaker's own tools (argv only, no shell, each bounded in
//! time) and reads their `--output-as=xml` answers:
//!
//! | interface | Pacemaker |
//! |---|---|
//! | transient attribute ([`Lifetime::Reboot`]) | `attrd_updater --name --update/--delete/--query` (pacemaker-attrd; gone when the node leaves the cluster) |
//! | permanent attribute ([`Lifetime::Forever`]) | `crm_attribute --lifetime=forever` (the CIB's nodes section) |
//! | promotion score | `crm_attribute --promotion=RESOURCE` (what `crm_master` and `ocf_promotion_score` set: the transient `master-RESOURCE`) |
//! | resource status | `crm_mon --output-as=xml --inactive`: every primitive, clone instance, group member and bundle replica with its role and nodes |
//!
//! pacemaker-attrd and the CIB speak libqb's private IPC protocol; running the tools is the
//! one supported client, and it is why agents must publish on change only.
//!
//! # WSFC
//!
//! The Windows adapter supplies its own [`Cluster`] (the trait is object-safe for that); none
//! is written here, because nothing here could test it. What maps:
//!
//! * a node attribute is a private property of the cluster node (`Get-ClusterNode | Set-
//!   ClusterParameter`); transient ones have no WSFC equivalent that dies with the node's
//!   membership, so the adapter clears them when its resource goes offline;
//! * a promotion score has no WSFC counterpart (WSFC has no promotable resources): the adapter
//!   keeps it as a private property of the resource and uses it to choose possible owners;
//! * resource status is the group's owner node and state (Online → started, Offline →
//!   stopped, Failed → failed), each WSFC resource being one [`ResourceStatus`].

#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod pacemaker;
mod publish;
mod xml;

pub use publish::{Cached, Publisher};

use std::fmt;
use std::time::{Duration, Instant};

/// How long a node attribute lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lifetime {
    /// Until the node leaves the cluster (Pacemaker's `reboot`, the status section).
    Reboot,
    /// Until deleted (Pacemaker's `forever`, the nodes section).
    Forever,
}

impl Lifetime {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifetime::Reboot => "reboot",
            Lifetime::Forever => "forever",
        }
    }
}

/// A node attribute: its name, its node (None: this node) and lifetime.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Attribute {
    pub name: String,
    pub node: Option<String>,
    pub lifetime: Lifetime,
}

impl Attribute {
    /// A transient attribute of this node.
    pub fn transient(name: &str) -> Attribute {
        Attribute { name: name.to_string(), node: None, lifetime: Lifetime::Reboot }
    }
    /// A permanent attribute of this node.
    pub fn permanent(name: &str) -> Attribute {
        Attribute { name: name.to_string(), node: None, lifetime: Lifetime::Forever }
    }
    /// The same attribute of `node` (the node name as the cluster knows it).
    pub fn on(mut self, node: &str) -> Attribute {
        self.node = Some(node.to_string());
        self
    }
}

/// What went wrong, for callers that act on it (retry later, report 1, treat as absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The cluster manager is not running or not reachable on this node.
    NotConnected,
    /// Its tools are not installed.
    Unavailable,
    /// The deadline came first.
    TimedOut,
    /// The manager refused or the command failed.
    Failed,
    /// The answer could not be understood.
    Malformed,
    /// A name or value no manager accepts (empty, a newline, a leading `-`).
    Invalid,
}

/// A failed call, with a one-line reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterError {
    pub kind: ErrorKind,
    pub reason: String,
}

impl ClusterError {
    pub fn new(kind: ErrorKind, reason: impl Into<String>) -> ClusterError {
        let reason: String = reason.into();
        ClusterError { kind, reason: reason.replace('\n', " ") }
    }
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ClusterError {}

/// The role of a resource instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Stopped,
    Started,
    /// Pacemaker's `Unpromoted` (`Slave` before 2.1).
    Unpromoted,
    /// Pacemaker's `Promoted` (`Master` before 2.1).
    Promoted,
    /// Starting, stopping, migrating or a name this crate does not know, as given.
    Other(String),
}

impl Role {
    pub fn parse(s: &str) -> Role {
        match s {
            "Stopped" => Role::Stopped,
            "Started" => Role::Started,
            "Unpromoted" | "Slave" => Role::Unpromoted,
            "Promoted" | "Master" => Role::Promoted,
            other => Role::Other(other.to_string()),
        }
    }
}

/// One resource instance: a primitive, or one instance of a clone, group member or bundle
/// replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceStatus {
    /// The primitive's id (`web`; a unique clone's instance is `web:1`).
    pub id: String,
    /// The clone (or bundle) it is an instance of.
    pub clone: Option<String>,
    /// The group it belongs to.
    pub group: Option<String>,
    /// `ocf:hale:daemon`, as the manager names the agent.
    pub agent: String,
    pub role: Role,
    pub active: bool,
    pub failed: bool,
    pub managed: bool,
    /// Where it runs (more than one only when it is active on several nodes by mistake).
    pub nodes: Vec<String>,
}

/// The cluster manager. Every method returns before `until` (or fails with
/// [`ErrorKind::TimedOut`]). `node: None` means this node.
pub trait Cluster {
    /// The attribute's value, None when it is not set.
    fn attribute(&self, a: &Attribute, until: Instant) -> Result<Option<String>, ClusterError>;
    fn set_attribute(&self, a: &Attribute, value: &str, until: Instant) -> Result<(), ClusterError>;
    /// Succeeds when the attribute is already absent.
    fn delete_attribute(&self, a: &Attribute, until: Instant) -> Result<(), ClusterError>;

    /// The promotion score of `resource` (the instance name as `OCF_RESOURCE_INSTANCE` gives
    /// it) on `node`, None when none is set.
    fn promotion_score(&self, resource: &str, node: Option<&str>, until: Instant) -> Result<Option<i64>, ClusterError>;
    fn set_promotion_score(
        &self,
        resource: &str,
        node: Option<&str>,
        score: i64,
        until: Instant,
    ) -> Result<(), ClusterError>;
    /// Succeeds when no score is set.
    fn delete_promotion_score(&self, resource: &str, node: Option<&str>, until: Instant) -> Result<(), ClusterError>;

    /// Every resource instance the manager knows, active or not.
    fn resources(&self, until: Instant) -> Result<Vec<ResourceStatus>, ClusterError>;
}

/// Refuse what no manager stores faithfully and what a tool would read as an option.
pub fn check_name(what: &str, name: &str) -> Result<(), ClusterError> {
    if name.is_empty() || name.starts_with('-') || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ClusterError::new(
            ErrorKind::Invalid,
            format!("{what} '{}' is empty, starts with '-' or contains a space", name.escape_debug()),
        ));
    }
    Ok(())
}

/// A value may hold spaces, never a newline or another control character.
pub fn check_value(value: &str) -> Result<(), ClusterError> {
    if value.chars().any(char::is_control) {
        return Err(ClusterError::new(ErrorKind::Invalid, "an attribute value cannot contain a control character"));
    }
    Ok(())
}

/// The time a call may take: what is left before `until`, failing when nothing is.
pub fn budget(until: Instant, what: &str) -> Result<Duration, ClusterError> {
    let left = until.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(ClusterError::new(ErrorKind::TimedOut, format!("no time left to {what}")));
    }
    Ok(left)
}

#[cfg(test)]
mod tests;
