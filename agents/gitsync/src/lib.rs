//! `ocf:hale:gitsync` — keep this node's mirror of a repository synced and verified, and tell
//! the cluster whether the node is fit to run the repository's scripts.
//!
//! Run it as a clone (one instance per node, `meta allow-unhealthy-nodes=true` so it keeps
//! running, and recovering, on a node it marked red). Each recurring monitor fetches the
//! master, accepts its tip if it fast-forwards and verifies, deploys it (so the next start or
//! reload-agent of a gitscript resource is instant) and sets the transient node attribute
//! `#health-hale-gitsync`:
//!
//! * `green`: the accepted tip is the master's tip and is deployed;
//! * `yellow` (behind): the master could not be fetched, fewer than `red_after` times in a row;
//!   the last accepted commit stays deployed;
//! * `red`: the master's tip is refused (unsigned, signed by an unknown key, history
//!   rewrite), the trusted keys cannot be read, or the fetch failed `red_after` times in a row.
//!
//! With `node-health-strategy=migrate-on-red` the cluster moves every resource without
//! `allow-unhealthy-nodes` off a red node, and back once it is green or yellow again.
//!
//! The one fork: the attribute is published through [`hale_cluster`] (on Pacemaker,
//! `attrd_updater`: pacemaker-attrd's IPC is libqb's private protocol, and speaking it from
//! Rust would be a second, fragile implementation) with write-on-change: the publisher
//! remembers the last value in /run/hale and forks only when the health changes, so a steady
//! monitor forks nothing. start reads the live value first (one query), because the memory
//! outlives a stop and the cluster manager forgets transient attributes when it restarts.
//! Outside a cluster (no `CRM_meta_on_node`, e.g. `hale run`, ocf-tester) nothing is
//! published. stop deletes a green or yellow attribute, as ocf:pacemaker:ping does, but leaves
//! red in place: a stopped gitsync must not make a non-compliant node eligible again
//! (`attrd_updater -D -n '#health-hale-gitsync'` clears it by hand).

use hale_backend::Processes;
use hale_cluster::pacemaker::Pacemaker;
use hale_cluster::{Attribute, Cached, Cluster, Publisher};
use hale_gitrepo::params::{fetch_budget, source_from, sync_deadline, validate_source, SOURCE_COUNT, SOURCE_PARAMS};
use hale_gitrepo::{Check, Layout, Mirror, Source};
use hale_ocf::{Action, ActionSpec, Agent, AgentInfo, Context, Failure, Kind, OcfResult, OcfStatus, Param, Values};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The node-health attribute Pacemaker's node-health-strategy reads (any `#health-*`).
pub const ATTRIBUTE: &str = "#health-hale-gitsync";
/// Where the default state files live (tmpfs: after a reboot gitsync is cleanly stopped).
pub const RUN_DIR: &str = "/run/hale";

const SOURCE: [Param; SOURCE_COUNT] = SOURCE_PARAMS;

const PARAMS: &[Param] = &[
    SOURCE[0],
    SOURCE[1],
    SOURCE[2],
    SOURCE[3],
    SOURCE[4],
    SOURCE[5],
    SOURCE[6],
    SOURCE[7],
    SOURCE[8],
    SOURCE[9],
    SOURCE[10],
    Param::new(
        "attribute",
        "Health attribute",
        "The transient node attribute set to green, yellow or red. Its name must start with \
         #health so node-health-strategy uses it; give each gitsync resource its own when \
         several repositories are synced.",
    )
    .default(ATTRIBUTE),
    Param::new(
        "red_after",
        "Failed fetches before red",
        "A node whose fetch fails is yellow (behind) for this many failed monitors in a row, \
         then red. A refused commit is red at once.",
    )
    .kind(Kind::Integer)
    .default("3"),
    Param::new(
        "state_file",
        "State file",
        "Where gitsync records that it runs on this node and the health it published. Default: \
         /run/hale/gitsync-INSTANCE.state.",
    )
    .unique_group("state_file"),
];

const ACTIONS: &[ActionSpec] = &[
    ActionSpec::new(Action::Start, 120),
    ActionSpec::new(Action::Stop, 30),
    ActionSpec::new(Action::Monitor, 60).interval(30),
    ActionSpec::new(Action::ValidateAll, 20),
    ActionSpec::new(Action::MetaData, 5),
];

/// The node's compliance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Green,
    Yellow,
    Red,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Green => "green",
            Health::Yellow => "yellow",
            Health::Red => "red",
        }
    }
    fn parse(s: &str) -> Option<Health> {
        match s {
            "green" => Some(Health::Green),
            "yellow" => Some(Health::Yellow),
            "red" => Some(Health::Red),
            _ => None,
        }
    }
}

/// What gitsync remembers between monitors (what it published, the cluster publisher
/// remembers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub health: Option<Health>,
    pub failed_fetches: u64,
    pub reason: String,
}

impl State {
    fn to_text(&self) -> String {
        let h = |x: Option<Health>| x.map_or("", Health::as_str);
        format!(
            "health={}\nfailed_fetches={}\nreason={}\n",
            h(self.health),
            self.failed_fetches,
            self.reason.replace('\n', " ")
        )
    }

    fn parse(text: &str) -> State {
        let mut s = State::default();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("health", v)) => s.health = Health::parse(v),
                Some(("failed_fetches", v)) => s.failed_fetches = v.parse().unwrap_or(0),
                Some(("reason", v)) => s.reason = v.to_string(),
                _ => {}
            }
        }
        s
    }

    /// The state file, or None when gitsync is not running here.
    pub fn read(path: &Path) -> Option<State> {
        std::fs::read_to_string(path).ok().map(|t| State::parse(&t))
    }

    fn write(&self, path: &Path) -> OcfResult<()> {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, self.to_text())
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| Failure::generic(format!("cannot write {}: {e}", path.display())))
    }
}

/// The parsed parameters.
#[derive(Debug)]
pub struct Config {
    pub source: Source,
    pub layout: Layout,
    pub attribute: String,
    pub red_after: u64,
    pub state_file: PathBuf,
}

/// The agent. The cluster is used only to publish the health attribute.
pub struct GitSync {
    cluster: Box<dyn Cluster>,
}

impl GitSync {
    /// gitsync under Pacemaker, whose tools run through `procs`.
    pub fn new(procs: Box<dyn Processes>) -> GitSync {
        GitSync { cluster: Box::new(Pacemaker::new(procs)) }
    }

    /// The publisher of the health attribute, under a cluster manager only.
    fn publisher(&self, ctx: &Context) -> Option<Publisher<'_>> {
        // Not under a cluster manager: nobody to tell.
        ctx.on_node.as_ref()?;
        match Publisher::in_run_dir(self.cluster.as_ref()) {
            Ok(p) => Some(p),
            Err(e) => {
                log::error!("cannot publish the node health: {e}");
                None
            }
        }
    }

    /// Sync and judge the node.
    fn sync(&self, c: &Config, previous: &State, ctx: &Context) -> State {
        let mut s = State::default();
        if let Err(e) = validate_source(&c.source) {
            s.health = Some(Health::Red);
            s.reason = format!("cannot verify: {}", e.reason);
            return s;
        }
        let report = match hale_gitrepo::sync(&c.layout, &c.source, fetch_budget(ctx), Some(sync_deadline(ctx))) {
            Ok(r) => r,
            Err(e) => {
                s.health = Some(Health::Red);
                s.reason = e;
                return s;
            }
        };
        s.failed_fetches = if report.fetch_error.is_some() { previous.failed_fetches + 1 } else { 0 };
        let (health, reason) = match (&report.check, &report.fetch_error) {
            (Check::Refused { reason, .. }, _) => (Health::Red, reason.clone()),
            (_, Some(e)) if s.failed_fetches >= c.red_after => {
                (Health::Red, format!("{e} ({} times in a row)", s.failed_fetches))
            }
            (_, Some(e)) => (Health::Yellow, format!("behind: {e}")),
            (Check::NoTip(r), None) => (Health::Red, r.clone()),
            (_, None) if report.deployed.is_none() => (Health::Red, "nothing verified to deploy".into()),
            _ => (Health::Green, String::new()),
        };
        s.health = Some(health);
        s.reason = reason;
        s
    }

    /// Log a change of health, and tell the cluster (only under a cluster manager; the
    /// publisher forks only when the value differs from the last one published).
    fn publish(&self, c: &Config, s: &State, before: Option<Health>, ctx: &Context) {
        let Some(h) = s.health else { return };
        if before != Some(h) {
            let why = if s.reason.is_empty() { String::new() } else { format!(": {}", s.reason) };
            match h {
                Health::Green => log::info!("{}: node health green (commit verified and deployed)", c.source.name),
                Health::Yellow => log::warn!("{}: node health yellow{why}", c.source.name),
                Health::Red => log::error!("{}: node health red{why}", c.source.name),
            }
        }
        if let Some(p) = self.publisher(ctx) {
            publish_health(&p, &c.attribute, h, until(ctx));
        }
    }
}

/// The instant cluster calls must be done by: the action's deadline less its margin.
fn until(ctx: &Context) -> Instant {
    Instant::now() + ctx.deadline.remaining_with_margin(ctx.deadline.margin())
}

/// Publish `h` as the transient attribute `name`. A failure is logged and retried by the next
/// monitor (the publisher then no longer claims to know the value).
fn publish_health(p: &Publisher, name: &str, h: Health, until: Instant) {
    if let Err(e) = p.set(&Attribute::transient(name), h.as_str(), until) {
        log::warn!("cannot publish {name}={}: {e}", h.as_str());
    }
}

/// At stop: delete a green or yellow attribute we published; leave red in place.
fn withdraw_health(p: &Publisher, name: &str, until: Instant) {
    let a = Attribute::transient(name);
    if matches!(p.cached(&a), Cached::Value(v) if v != Health::Red.as_str()) {
        if let Err(e) = p.delete(&a, until) {
            log::warn!("cannot delete {name}: {e}");
        }
    }
}

fn default_state_file(ctx: &Context) -> PathBuf {
    PathBuf::from(format!("{RUN_DIR}/gitsync-{}.state", ctx.state_name()))
}

impl Agent for GitSync {
    type Config = Config;

    const INFO: AgentInfo = AgentInfo {
        name: "gitsync",
        shortdesc: "Keeps a git mirror synced and verified, and reports node health",
        longdesc: "Meant as a clone on every node (meta allow-unhealthy-nodes=true). Each \
                   monitor fetches the master, accepts its tip only if it fast-forwards and, \
                   with verify=signed, is signed by an allowed signer, deploys it, and sets the \
                   transient node attribute #health-hale-gitsync: green (in sync), yellow \
                   (behind: the master could not be fetched lately) or red (the tip is refused, \
                   the keys cannot be read, or fetching keeps failing). With \
                   node-health-strategy=migrate-on-red the cluster moves gitscript resources \
                   off a red node and back when it recovers. attrd_updater runs only when the \
                   health changes.",
        version: env!("CARGO_PKG_VERSION"),
    };
    const PARAMS: &'static [Param] = PARAMS;
    const ACTIONS: &'static [ActionSpec] = ACTIONS;

    fn configure(&self, v: &Values, ctx: &Context) -> OcfResult<Config> {
        let (source, layout) = source_from(v)?;
        let attribute = v.text("attribute").to_string();
        if !attribute.starts_with("#health") || attribute.contains(char::is_whitespace) {
            return Err(Failure::configured(format!(
                "parameter attribute='{attribute}' must start with #health (node-health-strategy reads only those)"
            )));
        }
        let red_after = v.integer("red_after");
        if red_after < 1 {
            return Err(Failure::configured(format!("parameter red_after={red_after} must be at least 1")));
        }
        let state_file = match v.str("state_file") {
            Some(f) if !f.starts_with('/') => {
                return Err(Failure::configured(format!("parameter state_file='{f}' must be an absolute path")))
            }
            Some(f) => PathBuf::from(f),
            None => default_state_file(ctx),
        };
        Ok(Config { source, layout, attribute, red_after: red_after as u64, state_file })
    }

    fn validate_host(&self, c: &Config, _ctx: &Context) -> OcfResult<()> {
        if let Some(dir) = c.state_file.parent() {
            if !dir.is_dir() && std::fs::create_dir_all(dir).is_err() {
                return Err(Failure::args(format!("cannot create {}", dir.display())));
            }
        }
        Ok(())
    }

    /// Start does not fail for a red node, since reporting red *is* gitsync's job, with one
    /// exception: a node that has never accepted a commit and cannot fetch has nothing to
    /// stand on, and its start fails (after publishing red) so the cluster sees it.
    fn start(&self, c: &Config, ctx: &Context) -> OcfResult {
        let previous = State::read(&c.state_file).unwrap_or_default();
        previous.write(&c.state_file)?;
        if let Some(p) = self.publisher(ctx) {
            // The memory may be stale (it outlives a stop; a restarted manager forgot its
            // transient attributes): learn what the cluster holds. A failure only makes the
            // publisher forget, so the health is published below.
            if let Err(e) = p.refresh(&Attribute::transient(&c.attribute), until(ctx)) {
                log::warn!("cannot read {}: {e}", c.attribute);
            }
        }
        let s = self.sync(c, &previous, ctx);
        self.publish(c, &s, previous.health, ctx);
        let nothing = Mirror::open(&c.layout, &c.source.name).ok().flatten().and_then(|m| m.current()).is_none();
        if nothing && s.failed_fetches > 0 {
            let _ = std::fs::remove_file(&c.state_file);
            return Err(Failure::generic(format!("nothing verified on this node and {}", s.reason)));
        }
        s.write(&c.state_file)?;
        Ok(OcfStatus::Success)
    }

    fn stop(&self, c: &Config, ctx: &Context) -> OcfResult {
        if State::read(&c.state_file).is_some() {
            // A red mark stays: stopping gitsync must not make a non-compliant node eligible.
            if let Some(p) = self.publisher(ctx) {
                withdraw_health(&p, &c.attribute, until(ctx));
            }
            std::fs::remove_file(&c.state_file)
                .map_err(|e| Failure::generic(format!("cannot remove {}: {e}", c.state_file.display())))?;
        }
        Ok(OcfStatus::Success)
    }

    fn stop_unconfigured(&self, ctx: &Context, _problem: &Failure) -> OcfResult {
        let f = ctx.env.param("state_file").filter(|p| p.starts_with('/')).map(PathBuf::from);
        let _ = std::fs::remove_file(f.unwrap_or_else(|| default_state_file(ctx)));
        Ok(OcfStatus::Success)
    }

    /// A probe only reads the state file. A recurring monitor syncs and publishes the health
    /// if it changed; it succeeds whatever the health (the attribute carries it).
    fn monitor(&self, c: &Config, ctx: &Context) -> OcfResult {
        let Some(previous) = State::read(&c.state_file) else {
            return Ok(OcfStatus::NotRunning);
        };
        if ctx.probe {
            return Ok(OcfStatus::Success);
        }
        let s = self.sync(c, &previous, ctx);
        self.publish(c, &s, previous.health, ctx);
        if s != previous {
            s.write(&c.state_file)?;
        }
        Ok(OcfStatus::Success)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hale_cluster::fake::FakeCluster;
    use std::time::Duration;

    fn memory(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hale-gitsync-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    #[test]
    fn a_steady_health_is_published_once() {
        let (c, dir) = (FakeCluster::new(), memory("steady"));
        let p = Publisher::new(&c, &dir);
        for h in [Health::Green, Health::Green, Health::Yellow, Health::Yellow, Health::Green] {
            publish_health(&p, ATTRIBUTE, h, soon());
        }
        let want =
            ["set #health-hale-gitsync=green", "set #health-hale-gitsync=yellow", "set #health-hale-gitsync=green"];
        assert_eq!(c.calls(), want);
    }

    #[test]
    fn stop_withdraws_green_and_yellow_but_leaves_red() {
        let (c, dir) = (FakeCluster::new(), memory("stop"));
        let p = Publisher::new(&c, &dir);
        let a = Attribute::transient(ATTRIBUTE);
        publish_health(&p, ATTRIBUTE, Health::Yellow, soon());
        withdraw_health(&p, ATTRIBUTE, soon());
        assert_eq!(c.value(&a), None);
        publish_health(&p, ATTRIBUTE, Health::Red, soon());
        withdraw_health(&p, ATTRIBUTE, soon());
        assert_eq!(c.value(&a).as_deref(), Some("red"));
        // Never published (a failed publish): nothing to withdraw, nothing run.
        let (c2, dir2) = (FakeCluster::new(), memory("never"));
        withdraw_health(&Publisher::new(&c2, &dir2), ATTRIBUTE, soon());
        assert!(c2.calls().is_empty());
    }

    #[test]
    fn a_failed_publish_is_retried_by_the_next_monitor() {
        let (c, dir) = (FakeCluster::new(), memory("retry"));
        let p = Publisher::new(&c, &dir);
        c.fail(hale_cluster::ClusterError::new(hale_cluster::ErrorKind::NotConnected, "attrd is down"));
        publish_health(&p, ATTRIBUTE, Health::Red, soon());
        c.recover();
        publish_health(&p, ATTRIBUTE, Health::Red, soon());
        assert_eq!(c.value(&Attribute::transient(ATTRIBUTE)).as_deref(), Some("red"));
        assert_eq!(c.calls().len(), 2);
    }
}
