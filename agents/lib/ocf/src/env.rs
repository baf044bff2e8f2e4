//! The environment a resource manager hands an agent, parsed once.
//!
//! Parameters come only from the environment (OCF 1.1: the action is the sole argument).
//! [`Env`] is a plain map so the runner, `hale run`, the WSFC adapter and tests can all build
//! one without touching the process environment.

use std::collections::BTreeMap;
use std::time::Duration;

/// The OCF version the resource manager declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OcfVersion {
    /// `OCF_RA_VERSION_MAJOR/MINOR` absent or below 1.1: ocf-tester, old tools, a person.
    V1_0,
    /// Pacemaker 2.1+ sets 1/1.
    V1_1,
}

/// A snapshot of environment variables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
    /// Variables whose value is not UTF-8: kept by name so that a parameter set to such a
    /// value is refused, not taken for unset.
    invalid: std::collections::BTreeSet<String>,
}

impl Env {
    /// The current process environment. A variable whose value is not valid UTF-8 is
    /// remembered by name ([`Env::is_invalid`]): a parameter with such a value is a
    /// configuration error, never "unset" (an unset `user` means root). Names that are not
    /// UTF-8 are skipped: no OCF variable has one.
    pub fn from_process() -> Env {
        let mut env = Env::default();
        for (k, v) in std::env::vars_os() {
            let Ok(k) = k.into_string() else { continue };
            match v.into_string() {
                Ok(v) => {
                    env.vars.insert(k, v);
                }
                Err(_) => {
                    env.invalid.insert(k);
                }
            }
        }
        env
    }

    /// An environment of `pairs` plus variables named in `invalid` whose values are not
    /// UTF-8 (what [`Env::from_process`] builds from such a process environment).
    pub fn from_pairs_with_invalid(pairs: &[(&str, &str)], invalid: &[&str]) -> Env {
        let mut env: Env = pairs.iter().copied().collect();
        env.invalid.extend(invalid.iter().map(|k| k.to_string()));
        env
    }

    /// Was `key` set to a value that is not UTF-8?
    pub fn is_invalid(&self, key: &str) -> bool {
        self.invalid.contains(key)
    }

    pub fn new() -> Env {
        Env::default()
    }

    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Env {
        let key = key.into();
        self.invalid.remove(&key);
        self.vars.insert(key, value.into());
        self
    }

    pub fn remove(&mut self, key: &str) -> &mut Env {
        self.vars.remove(key);
        self
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// A variable that is set and not empty. Pacemaker and the shell library treat an empty
    /// value as unset, and so do we.
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// `OCF_RESKEY_<name>`, empty meaning unset.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.non_empty(&format!("OCF_RESKEY_{name}"))
    }

    /// `OCF_RESKEY_<name>` is set but is not UTF-8 text. Builds no key when nothing is
    /// invalid (every action asks this of every parameter).
    pub fn param_is_invalid(&self, name: &str) -> bool {
        !self.invalid.is_empty() && self.invalid.contains(&format!("OCF_RESKEY_{name}"))
    }

    /// `OCF_RESKEY_CRM_meta_<name>`.
    pub fn meta(&self, name: &str) -> Option<&str> {
        self.non_empty(&format!("OCF_RESKEY_CRM_meta_{name}"))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The OCF version to speak: 1.1 only when the manager says so (major 1, minor >= 1).
    pub fn ocf_version(&self) -> OcfVersion {
        let major = self.non_empty("OCF_RA_VERSION_MAJOR").and_then(|v| v.trim().parse::<u32>().ok());
        let minor = self.non_empty("OCF_RA_VERSION_MINOR").and_then(|v| v.trim().parse::<u32>().ok());
        match (major, minor) {
            (Some(1), Some(m)) if m >= 1 => OcfVersion::V1_1,
            (Some(n), _) if n > 1 => OcfVersion::V1_1,
            _ => OcfVersion::V1_0,
        }
    }

    /// `OCF_EXIT_REASON_PREFIX`, defaulting to what Pacemaker sets.
    pub fn exit_reason_prefix(&self) -> &str {
        self.non_empty("OCF_EXIT_REASON_PREFIX").unwrap_or("ocf-exit-reason:")
    }

    /// Pacemaker's boolean spelling: 1/y/yes/on/true, any case.
    pub fn is_true(value: &str) -> bool {
        matches!(value.trim().to_ascii_lowercase().as_str(), "1" | "y" | "yes" | "on" | "true")
    }

    /// Milliseconds in a `CRM_meta_*` variable (timeout, interval).
    pub fn meta_ms(&self, name: &str) -> Option<Duration> {
        self.meta(name).and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_millis)
    }
}

/// The environment of one action as pacemaker-execd builds it: the one place that knows the
/// variable names, used by everything that runs an agent outside Pacemaker (`hale run`, the
/// WSFC adapter, the conformance suite, the benchmark).
#[derive(Clone, Debug)]
pub struct ActionEnv {
    env: Env,
}

impl ActionEnv {
    /// Resource `instance` of `ocf:hale:<agent>`, declaring OCF 1.1 as Pacemaker does.
    pub fn new(agent: &str, instance: &str) -> ActionEnv {
        let mut env = Env::new();
        env.set("OCF_RA_VERSION_MAJOR", "1")
            .set("OCF_RA_VERSION_MINOR", "1")
            .set("OCF_RESOURCE_INSTANCE", instance)
            .set("OCF_RESOURCE_TYPE", agent)
            .set("OCF_RESOURCE_PROVIDER", "hale");
        ActionEnv { env }
    }
    /// `CRM_meta_timeout`: the operation's timeout.
    pub fn timeout(mut self, timeout: Duration) -> ActionEnv {
        self.env.set("OCF_RESKEY_CRM_meta_timeout", timeout.as_millis().to_string());
        self
    }
    /// `CRM_meta_interval`: a recurring monitor (a zero or absent interval is a probe).
    pub fn interval(mut self, interval: Duration) -> ActionEnv {
        self.env.set("OCF_RESKEY_CRM_meta_interval", interval.as_millis().to_string());
        self
    }
    /// `OCF_CHECK_LEVEL`: the monitor's depth.
    pub fn check_level(mut self, level: u32) -> ActionEnv {
        self.env.set("OCF_CHECK_LEVEL", level.to_string());
        self
    }
    /// One instance parameter, `OCF_RESKEY_<name>`.
    pub fn param(mut self, name: &str, value: &str) -> ActionEnv {
        self.env.set(format!("OCF_RESKEY_{name}"), value);
        self
    }
    /// Any other variable (`HA_LOGFILE`, `CRM_meta_*`, ...).
    pub fn var(mut self, key: &str, value: &str) -> ActionEnv {
        self.env.set(key, value);
        self
    }
    pub fn build(self) -> Env {
        self.env
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Env {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Env {
        Env { vars: iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect(), invalid: Default::default() }
    }
}

/// Clone and promotable meta-attributes, as Pacemaker passes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CloneInfo {
    /// `clone_max` is set: this resource is an instance of a clone.
    pub is_clone: bool,
    pub clone_max: Option<u32>,
    pub clone_node_max: Option<u32>,
    /// The instance number after the `:` in `OCF_RESOURCE_INSTANCE`.
    pub clone_number: Option<u32>,
    pub globally_unique: bool,
    /// `promotable=true` (or the legacy `master_max` > 0).
    pub promotable: bool,
    /// `notify=true`: the resource gets notify actions.
    pub notify: bool,
}

/// The notify variables of one notify action (`OCF_RESKEY_CRM_meta_notify_*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotifyInfo {
    /// `pre` or `post`.
    pub kind: String,
    /// `start`, `stop`, `promote` or `demote`.
    pub operation: String,
    /// Every `notify_<x>_resource` / `notify_<x>_uname` list, split on whitespace, keyed by
    /// `<x>_resource` / `<x>_uname` (e.g. `start_uname`).
    pub lists: BTreeMap<String, Vec<String>>,
}

impl NotifyInfo {
    /// The list for one key, e.g. `list("active_uname")`.
    pub fn list(&self, key: &str) -> &[String] {
        self.lists.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    pub(crate) fn from_env(env: &Env) -> Option<NotifyInfo> {
        let kind = env.meta("notify_type")?.to_string();
        let operation = env.meta("notify_operation").unwrap_or_default().to_string();
        let mut lists = BTreeMap::new();
        for (k, v) in env.iter() {
            if let Some(rest) = k.strip_prefix("OCF_RESKEY_CRM_meta_notify_") {
                if rest.ends_with("_resource") || rest.ends_with("_uname") {
                    lists.insert(rest.to_string(), v.split_whitespace().map(str::to_string).collect());
                }
            }
        }
        Some(NotifyInfo { kind, operation, lists })
    }
}

impl CloneInfo {
    pub(crate) fn from_env(env: &Env, instance: &str) -> CloneInfo {
        let num = |k: &str| env.meta(k).and_then(|v| v.trim().parse::<u32>().ok());
        let flag = |k: &str| env.meta(k).is_some_and(Env::is_true);
        CloneInfo {
            is_clone: env.meta("clone_max").is_some(),
            clone_max: num("clone_max"),
            clone_node_max: num("clone_node_max"),
            clone_number: instance.rsplit_once(':').and_then(|(_, n)| n.parse().ok()),
            globally_unique: flag("globally_unique"),
            promotable: flag("promotable") || num("master_max").is_some_and(|n| n > 0),
            notify: flag("notify"),
        }
    }
}

/// The instance name without Pacemaker's clone suffix (`web:2` → `web`), as Pacemaker's Dummy
/// strips it for its state file: every anonymous-clone instance on a node shares one identity.
pub fn strip_clone_suffix(instance: &str) -> &str {
    match instance.rsplit_once(':') {
        Some((base, n)) if !base.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => instance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_negotiation() {
        let mut e = Env::new();
        assert_eq!(e.ocf_version(), OcfVersion::V1_0);
        e.set("OCF_RA_VERSION_MAJOR", "1").set("OCF_RA_VERSION_MINOR", "0");
        assert_eq!(e.ocf_version(), OcfVersion::V1_0);
        e.set("OCF_RA_VERSION_MINOR", "1");
        assert_eq!(e.ocf_version(), OcfVersion::V1_1);
        e.set("OCF_RA_VERSION_MINOR", "2");
        assert_eq!(e.ocf_version(), OcfVersion::V1_1);
        e.remove("OCF_RA_VERSION_MINOR");
        assert_eq!(e.ocf_version(), OcfVersion::V1_0);
    }

    #[test]
    fn clone_suffix() {
        assert_eq!(strip_clone_suffix("web:2"), "web");
        assert_eq!(strip_clone_suffix("web"), "web");
        assert_eq!(strip_clone_suffix("a:b"), "a:b");
        assert_eq!(strip_clone_suffix(":3"), ":3");
    }

    #[test]
    fn clone_and_notify_meta() {
        let e: Env = [
            ("OCF_RESKEY_CRM_meta_clone_max", "3"),
            ("OCF_RESKEY_CRM_meta_globally_unique", "false"),
            ("OCF_RESKEY_CRM_meta_promotable", "true"),
            ("OCF_RESKEY_CRM_meta_notify", "yes"),
            ("OCF_RESKEY_CRM_meta_notify_type", "pre"),
            ("OCF_RESKEY_CRM_meta_notify_operation", "start"),
            ("OCF_RESKEY_CRM_meta_notify_start_uname", "node1 node2 "),
        ]
        .into_iter()
        .collect();
        let c = CloneInfo::from_env(&e, "db:1");
        assert!(c.is_clone && c.promotable && c.notify && !c.globally_unique);
        assert_eq!(c.clone_number, Some(1));
        let n = NotifyInfo::from_env(&e).unwrap();
        assert_eq!(n.kind, "pre");
        assert_eq!(n.list("start_uname"), ["node1", "node2"]);
        assert!(n.list("stop_uname").is_empty());
    }

    #[test]
    fn empty_is_unset() {
        let e: Env = [("OCF_RESKEY_x", "")].into_iter().collect();
        assert_eq!(e.param("x"), None);
    }
}
