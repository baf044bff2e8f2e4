//! [`Cluster`] on Pacemaker, through its command-line tools (see the crate doc for the map).

use crate::{
    budget, check_name, check_value, xml, Attribute, Cluster, ClusterError, ErrorKind, Lifetime, ResourceStatus,
};
use hale_backend::paths::DEFAULT_PATH;
use hale_backend::{BackendError, Processes};
use std::time::{Duration, Instant};

/// No single tool call waits longer than this, whatever the deadline: a manager that has not
/// answered in 10 s is not going to, and the caller still has its own work to finish.
pub const CALL_LIMIT: Duration = Duration::from_secs(10);
/// The most of a tool's output read (`crm_mon` of a large cluster is a few hundred kB).
const OUTPUT_LIMIT: usize = 8 << 20;
/// Pacemaker's CRM_EX_NOSUCH: the attribute (or score) is not set.
const NO_SUCH: i32 = 105;
/// CRM_EX_DISCONNECT: the daemon is not reachable.
const NOT_CONNECTED: i32 = 102;

/// Pacemaker, driven through the process backend.
pub struct Pacemaker {
    procs: Box<dyn Processes>,
}

impl Pacemaker {
    pub fn new(procs: Box<dyn Processes>) -> Pacemaker {
        Pacemaker { procs }
    }

    fn argv(&self, tool: &str, args: Vec<String>) -> Result<Vec<String>, ClusterError> {
        let prog = self.procs.find_program(tool, DEFAULT_PATH).ok_or_else(|| {
            ClusterError::new(
                ErrorKind::Unavailable,
                format!("{tool} not found in {DEFAULT_PATH} (is Pacemaker installed?)"),
            )
        })?;
        let mut argv = vec![prog.to_string_lossy().into_owned()];
        argv.extend(args);
        Ok(argv)
    }

    /// Run a tool that changes something; its exit status is the answer.
    fn change(&self, tool: &str, args: Vec<String>, until: Instant, absent_ok: bool) -> Result<(), ClusterError> {
        let what = format!("{tool} {}", args.join(" "));
        let timeout = budget(until, &what)?.min(CALL_LIMIT);
        let argv = self.argv(tool, args)?;
        let o = self.procs.run_check(&argv, timeout).map_err(|e| backend_error(&what, e))?;
        if o.success || (absent_ok && o.status == format!("exit status {NO_SUCH}")) {
            return Ok(());
        }
        let kind = match o.status.as_str() {
            s if s.starts_with("timed out") => ErrorKind::TimedOut,
            s if s == format!("exit status {NOT_CONNECTED}") => ErrorKind::NotConnected,
            _ => ErrorKind::Failed,
        };
        let detail = o.last_line.map(|l| format!(": {l}")).unwrap_or_default();
        Err(ClusterError::new(kind, format!("{what}: {}{detail}", o.status)))
    }

    /// Run a query tool with `--output-as=xml`; returns the values of its `<attribute>`s, or
    /// None when it answers that nothing is set.
    fn query(&self, tool: &str, mut args: Vec<String>, until: Instant) -> Result<Option<String>, ClusterError> {
        args.push("--output-as=xml".into());
        let stdout = self.read(tool, args, until)?;
        let (status, values) = xml::attributes(&stdout.1)?;
        match status.code {
            Some(0) | None if stdout.0 => Ok(values.into_iter().next()),
            Some(NO_SUCH) => Ok(None),
            Some(c) => Err(status_error(&stdout.2, c, status.reason())),
            None => Err(ClusterError::new(ErrorKind::Failed, format!("{}: no status in its answer", stdout.2))),
        }
    }

    /// Run a tool and read its output: (exited 0, stdout, what was run).
    fn read(&self, tool: &str, args: Vec<String>, until: Instant) -> Result<(bool, String, String), ClusterError> {
        let what = format!("{tool} {}", args.join(" "));
        let timeout = budget(until, &what)?.min(CALL_LIMIT);
        let argv = self.argv(tool, args)?;
        let o = self.procs.run_output(&argv, timeout, OUTPUT_LIMIT).map_err(|e| backend_error(&what, e))?;
        if o.outcome.status.starts_with("timed out") {
            return Err(ClusterError::new(ErrorKind::TimedOut, format!("{what}: {}", o.outcome.status)));
        }
        if o.stdout.trim().is_empty() {
            let detail = o.outcome.last_line.map(|l| format!(": {l}")).unwrap_or_default();
            return Err(ClusterError::new(ErrorKind::Failed, format!("{what}: {}{detail}", o.outcome.status)));
        }
        Ok((o.outcome.success, o.stdout, what))
    }
}

fn backend_error(what: &str, e: BackendError) -> ClusterError {
    let kind = if matches!(e, BackendError::NotFound(_)) { ErrorKind::Unavailable } else { ErrorKind::Failed };
    ClusterError::new(kind, format!("{what}: {e}"))
}

fn status_error(what: &str, code: i32, reason: String) -> ClusterError {
    let kind = if code == NOT_CONNECTED { ErrorKind::NotConnected } else { ErrorKind::Failed };
    ClusterError::new(kind, format!("{what}: {reason}"))
}

/// `--name=…` and `--node=…`: the `=` form, so no value is ever read as an option.
fn target(name_flag: &str, name: &str, node: Option<&str>) -> Result<Vec<String>, ClusterError> {
    check_name("attribute name", name)?;
    let mut args = vec![format!("--{name_flag}={name}")];
    if let Some(n) = node {
        check_name("node name", n)?;
        args.push(format!("--node={n}"));
    }
    Ok(args)
}

fn attribute_args(a: &Attribute) -> Result<(&'static str, Vec<String>), ClusterError> {
    let args = target("name", &a.name, a.node.as_deref())?;
    Ok(match a.lifetime {
        // attrd is where transient attributes live; its view is current even while it
        // dampens the write to the CIB.
        Lifetime::Reboot => ("attrd_updater", args),
        Lifetime::Forever => ("crm_attribute", [vec!["--lifetime=forever".to_string()], args].concat()),
    })
}

impl Cluster for Pacemaker {
    fn attribute(&self, a: &Attribute, until: Instant) -> Result<Option<String>, ClusterError> {
        let (tool, mut args) = attribute_args(a)?;
        args.push("--query".into());
        self.query(tool, args, until)
    }

    fn set_attribute(&self, a: &Attribute, value: &str, until: Instant) -> Result<(), ClusterError> {
        check_value(value)?;
        let (tool, mut args) = attribute_args(a)?;
        args.push(format!("--update={value}"));
        self.change(tool, args, until, false)
    }

    fn delete_attribute(&self, a: &Attribute, until: Instant) -> Result<(), ClusterError> {
        let (tool, mut args) = attribute_args(a)?;
        args.push("--delete".into());
        self.change(tool, args, until, true)
    }

    fn promotion_score(&self, resource: &str, node: Option<&str>, until: Instant) -> Result<Option<i64>, ClusterError> {
        let mut args = target("promotion", resource, node)?;
        args.push("--query".into());
        match self.query("crm_attribute", args, until)? {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                ClusterError::new(ErrorKind::Malformed, format!("promotion score of {resource} is '{v}', not a number"))
            }),
        }
    }

    fn set_promotion_score(
        &self,
        resource: &str,
        node: Option<&str>,
        score: i64,
        until: Instant,
    ) -> Result<(), ClusterError> {
        let mut args = target("promotion", resource, node)?;
        args.push(format!("--update={score}"));
        self.change("crm_attribute", args, until, false)
    }

    fn delete_promotion_score(&self, resource: &str, node: Option<&str>, until: Instant) -> Result<(), ClusterError> {
        let mut args = target("promotion", resource, node)?;
        args.push("--delete".into());
        self.change("crm_attribute", args, until, true)
    }

    fn resources(&self, until: Instant) -> Result<Vec<ResourceStatus>, ClusterError> {
        let (ok, stdout, what) = self.read("crm_mon", vec!["--output-as=xml".into(), "--inactive".into()], until)?;
        let (status, list) = xml::resources(&stdout)?;
        match status.code {
            Some(0) | None if ok => Ok(list),
            Some(c) => Err(status_error(&what, c, status.reason())),
            None => Err(ClusterError::new(ErrorKind::Failed, format!("{what}: no status in its answer"))),
        }
    }
}
