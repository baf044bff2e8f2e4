//! Write-on-change: publish a value only when it differs from the last one published.

use crate::{check_value, Attribute, Cluster, ClusterError, ErrorKind};
use hale_backend::{files, paths};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What this node last published for a key, as its memory file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cached {
    /// No memory (a node just booted, a failed publish, never published): ask or publish.
    Unknown,
    /// Deleted by us.
    Absent,
    Value(String),
}

/// A [`Cluster`] with a memory of what it published, kept in one small file per key in `dir`
/// (/run/hale: a reboot forgets, and the first call after it publishes).
pub struct Publisher<'a> {
    cluster: &'a dyn Cluster,
    dir: PathBuf,
}

impl<'a> Publisher<'a> {
    /// A publisher whose memory is in `dir` (created by the caller).
    pub fn new(cluster: &'a dyn Cluster, dir: &Path) -> Publisher<'a> {
        Publisher { cluster, dir: dir.to_path_buf() }
    }

    /// A publisher whose memory is in /run/hale, created if a node just booted.
    pub fn in_run_dir(cluster: &'a dyn Cluster) -> Result<Publisher<'a>, ClusterError> {
        let dir = paths::ensure_run_dir()
            .map_err(|e| ClusterError::new(ErrorKind::Failed, format!("cannot create {}: {e}", paths::RUN_DIR)))?;
        Ok(Publisher::new(cluster, dir))
    }

    fn file(&self, key: &str) -> PathBuf {
        self.dir.join(paths::state_file_name("published", key, "value"))
    }

    fn attribute_key(a: &Attribute) -> String {
        format!("{}-{}@{}", a.lifetime.as_str(), a.name, a.node.as_deref().unwrap_or(""))
    }

    fn score_key(resource: &str, node: Option<&str>) -> String {
        format!("promotion-{resource}@{}", node.unwrap_or(""))
    }

    fn recall(&self, key: &str) -> Cached {
        // A memory that is unreadable, a symlink or garbage is no memory: publish again.
        let Ok(bytes) = files::read_nofollow(&self.file(key)) else { return Cached::Unknown };
        let text = String::from_utf8_lossy(&bytes);
        let Some((stored, rest)) = text.split_once('\n') else { return Cached::Unknown };
        if stored != key {
            return Cached::Unknown;
        }
        match rest.strip_suffix('\n') {
            Some("absent") => Cached::Absent,
            Some(v) => v.strip_prefix("value=").map_or(Cached::Unknown, |v| Cached::Value(v.to_string())),
            None => Cached::Unknown,
        }
    }

    fn remember(&self, key: &str, c: &Cached) {
        let path = self.file(key);
        let line = match c {
            Cached::Unknown => {
                let _ = std::fs::remove_file(&path);
                return;
            }
            Cached::Absent => "absent".to_string(),
            Cached::Value(v) => format!("value={v}"),
        };
        // The full key is stored too: a shortened file name must never answer for another key.
        if let Err(e) = files::write_atomic(&path, format!("{key}\n{line}\n").as_bytes(), 0o644) {
            // Published but not remembered: the next call publishes again, which is harmless.
            log::warn!("cannot write {}: {e}", path.display());
        }
    }

    /// Run `op` unless `want` is what was last published; remember the outcome. Returns
    /// whether `op` ran.
    fn publish(
        &self,
        key: &str,
        want: Cached,
        op: impl FnOnce() -> Result<(), ClusterError>,
    ) -> Result<bool, ClusterError> {
        if self.recall(key) == want {
            return Ok(false);
        }
        match op() {
            Ok(()) => {
                self.remember(key, &want);
                Ok(true)
            }
            Err(e) => {
                // Whatever the manager holds now, we no longer know it.
                self.remember(key, &Cached::Unknown);
                Err(e)
            }
        }
    }

    /// What was last published for `a`.
    pub fn cached(&self, a: &Attribute) -> Cached {
        self.recall(&Self::attribute_key(a))
    }

    /// Set `a` to `value` unless that is what was last published. Returns whether the
    /// manager was asked (forked, for Pacemaker).
    pub fn set(&self, a: &Attribute, value: &str, until: Instant) -> Result<bool, ClusterError> {
        check_value(value)?;
        self.publish(&Self::attribute_key(a), Cached::Value(value.to_string()), || {
            self.cluster.set_attribute(a, value, until)
        })
    }

    /// Delete `a` unless we already did.
    pub fn delete(&self, a: &Attribute, until: Instant) -> Result<bool, ClusterError> {
        self.publish(&Self::attribute_key(a), Cached::Absent, || self.cluster.delete_attribute(a, until))
    }

    /// Read the live value of `a` and remember it, for when the memory may be stale.
    pub fn refresh(&self, a: &Attribute, until: Instant) -> Result<Option<String>, ClusterError> {
        let key = Self::attribute_key(a);
        match self.cluster.attribute(a, until) {
            Ok(v) => {
                self.remember(&key, &v.clone().map_or(Cached::Absent, Cached::Value));
                Ok(v)
            }
            Err(e) => {
                self.remember(&key, &Cached::Unknown);
                Err(e)
            }
        }
    }

    /// Set the promotion score of `resource` on `node` unless it is the last one published.
    pub fn set_promotion_score(
        &self,
        resource: &str,
        node: Option<&str>,
        score: i64,
        until: Instant,
    ) -> Result<bool, ClusterError> {
        self.publish(&Self::score_key(resource, node), Cached::Value(score.to_string()), || {
            self.cluster.set_promotion_score(resource, node, score, until)
        })
    }

    /// Delete the promotion score unless we already did.
    pub fn delete_promotion_score(
        &self,
        resource: &str,
        node: Option<&str>,
        until: Instant,
    ) -> Result<bool, ClusterError> {
        self.publish(&Self::score_key(resource, node), Cached::Absent, || {
            self.cluster.delete_promotion_score(resource, node, until)
        })
    }
}
