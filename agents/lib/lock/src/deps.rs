//! The dependency map: JSON, host → the hosts that depend on it (ResourceLocker's file has
//! the same shape, read the other way round: there, locking X locks every host whose list
//! names X; the README's "Switching from ResourceLocker" says how to turn it around):
//!
//! ```json
//! { "dc01": ["dc02", "app01"], "dc02": ["dc01"], "san01": ["hv01", "hv02"] }
//! ```
//!
//! Locking a host also locks what depends on it, transitively: above, locking dc01 locks
//! dc02 and app01; dc02 lists dc01, which is already in, so the cycle ends there. Names are
//! compared case-insensitively. Unlike ResourceLocker, a dependencies file that is named but
//! missing or unreadable is an error (it would silently lock less than asked); only the
//! default file of the configuration may be absent.

use crate::{check_host, normalize_host, LockError};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Host → the hosts that depend on it, names in lower case.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DepMap(BTreeMap<String, BTreeSet<String>>);

/// A closure and the cycles met on the way, for `hale lock deps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closure {
    /// Every host to lock, the target included, sorted (the global lock order).
    pub hosts: Vec<String>,
    /// Edges (from, to) that lead back to a host already in the closure.
    pub back_edges: Vec<(String, String)>,
}

impl DepMap {
    /// Parse the JSON text of a dependencies file.
    pub fn parse(text: &str) -> Result<DepMap, String> {
        let raw: BTreeMap<String, Vec<String>> = serde_json::from_str(text)
            .map_err(|e| format!("not a JSON object of host → list of dependent hosts: {e}"))?;
        let mut map = DepMap::default();
        for (host, dependents) in raw {
            check_host(&host).map_err(|e| e.to_string())?;
            let entry = map.0.entry(normalize_host(&host)).or_default();
            for d in dependents {
                check_host(&d).map_err(|e| e.to_string())?;
                entry.insert(normalize_host(&d));
            }
        }
        Ok(map)
    }

    /// Read and parse `path`.
    pub fn load(path: &Path) -> Result<DepMap, LockError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LockError::Invalid(format!("dependencies file {}: {e}", path.display())))?;
        DepMap::parse(&text).map_err(|e| LockError::Invalid(format!("dependencies file {}: {e}", path.display())))
    }

    /// `host` and everything that depends on it, transitively. Cycles end the walk.
    pub fn closure(&self, host: &str) -> Closure {
        let start = normalize_host(host);
        let mut seen = BTreeSet::from([start.clone()]);
        let mut back_edges = Vec::new();
        let mut todo = vec![start];
        while let Some(h) = todo.pop() {
            for d in self.0.get(&h).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                } else {
                    back_edges.push((h.clone(), d.clone()));
                }
            }
        }
        back_edges.sort();
        Closure { hosts: seen.into_iter().collect(), back_edges }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closure_is_transitive_and_survives_cycles() {
        let m = DepMap::parse(r#"{"DC01": ["dc02", "app01"], "dc02": ["dc01"], "app01": ["web01"], "san": ["hv1"]}"#)
            .unwrap();
        let c = m.closure("dc01");
        assert_eq!(c.hosts, ["app01", "dc01", "dc02", "web01"]);
        assert_eq!(c.back_edges, [("dc02".to_string(), "dc01".to_string())]);
        assert_eq!(m.closure("dc02").hosts, ["app01", "dc01", "dc02", "web01"]);
        assert_eq!(m.closure("web01").hosts, ["web01"]);
        assert_eq!(m.closure("HV1").hosts, ["hv1"]);
        let self_loop = DepMap::parse(r#"{"a": ["a"]}"#).unwrap();
        assert_eq!(self_loop.closure("a").hosts, ["a"]);
    }

    #[test]
    fn bad_maps_are_errors() {
        assert!(DepMap::parse("[1,2]").is_err());
        assert!(DepMap::parse(r#"{"a": "b"}"#).is_err());
        assert!(DepMap::parse(r#"{"a": ["b c"]}"#).unwrap_err().contains("not a host name"));
        assert!(DepMap::load(Path::new("/nonexistent/deps.json")).is_err());
    }
}
