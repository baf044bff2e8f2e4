//! An in-memory [`Cluster`] for unit tests of agents (feature `fake`): it records every call
//! and can be told to fail.

use crate::{check_name, check_value, Attribute, Cluster, ClusterError, Lifetime, ResourceStatus};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, Default)]
struct World {
    /// (lifetime, node, name) → value; node "" is this node.
    attributes: BTreeMap<(Lifetime, String, String), String>,
    /// (resource, node) → score.
    scores: BTreeMap<(String, String), i64>,
    resources: Vec<ResourceStatus>,
    calls: Vec<String>,
    failure: Option<ClusterError>,
}

/// The fake cluster.
#[derive(Debug, Default)]
pub struct FakeCluster {
    world: Mutex<World>,
}

impl FakeCluster {
    pub fn new() -> FakeCluster {
        FakeCluster::default()
    }

    /// Every call made, as `set #health-x=green`, `delete x`, `get x`, `score r=5`, `resources`.
    pub fn calls(&self) -> Vec<String> {
        self.world.lock().unwrap().calls.clone()
    }

    /// Every call fails with `e` until [`FakeCluster::recover`].
    pub fn fail(&self, e: ClusterError) {
        self.world.lock().unwrap().failure = Some(e);
    }

    pub fn recover(&self) {
        self.world.lock().unwrap().failure = None;
    }

    /// The value the cluster holds, without recording a call.
    pub fn value(&self, a: &Attribute) -> Option<String> {
        self.world.lock().unwrap().attributes.get(&key(a)).cloned()
    }

    /// Change an attribute behind the agent's back (an administrator, a restarted manager).
    pub fn put(&self, a: &Attribute, value: Option<&str>) {
        let mut w = self.world.lock().unwrap();
        match value {
            Some(v) => w.attributes.insert(key(a), v.to_string()),
            None => w.attributes.remove(&key(a)),
        };
    }

    pub fn set_resources(&self, list: Vec<ResourceStatus>) {
        self.world.lock().unwrap().resources = list;
    }

    fn call(&self, what: String) -> Result<std::sync::MutexGuard<'_, World>, ClusterError> {
        let mut w = self.world.lock().unwrap();
        w.calls.push(what);
        match &w.failure {
            Some(e) => Err(e.clone()),
            None => Ok(w),
        }
    }
}

fn key(a: &Attribute) -> (Lifetime, String, String) {
    (a.lifetime, a.node.clone().unwrap_or_default(), a.name.clone())
}

impl Cluster for FakeCluster {
    fn attribute(&self, a: &Attribute, _until: Instant) -> Result<Option<String>, ClusterError> {
        Ok(self.call(format!("get {}", a.name))?.attributes.get(&key(a)).cloned())
    }

    fn set_attribute(&self, a: &Attribute, value: &str, _until: Instant) -> Result<(), ClusterError> {
        check_name("attribute name", &a.name)?;
        check_value(value)?;
        self.call(format!("set {}={value}", a.name))?.attributes.insert(key(a), value.to_string());
        Ok(())
    }

    fn delete_attribute(&self, a: &Attribute, _until: Instant) -> Result<(), ClusterError> {
        self.call(format!("delete {}", a.name))?.attributes.remove(&key(a));
        Ok(())
    }

    fn promotion_score(
        &self,
        resource: &str,
        node: Option<&str>,
        _until: Instant,
    ) -> Result<Option<i64>, ClusterError> {
        let k = (resource.to_string(), node.unwrap_or_default().to_string());
        Ok(self.call(format!("get score {resource}"))?.scores.get(&k).copied())
    }

    fn set_promotion_score(
        &self,
        resource: &str,
        node: Option<&str>,
        score: i64,
        _until: Instant,
    ) -> Result<(), ClusterError> {
        let k = (resource.to_string(), node.unwrap_or_default().to_string());
        self.call(format!("score {resource}={score}"))?.scores.insert(k, score);
        Ok(())
    }

    fn delete_promotion_score(&self, resource: &str, node: Option<&str>, _until: Instant) -> Result<(), ClusterError> {
        let k = (resource.to_string(), node.unwrap_or_default().to_string());
        self.call(format!("delete score {resource}"))?.scores.remove(&k);
        Ok(())
    }

    fn resources(&self, _until: Instant) -> Result<Vec<ResourceStatus>, ClusterError> {
        Ok(self.call("resources".into())?.resources.clone())
    }
}
