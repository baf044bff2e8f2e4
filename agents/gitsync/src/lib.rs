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
//! The one fork: the attribute is set with `attrd_updater` (pacemaker-attrd's IPC is libqb's
//! private protocol, and speaking it from Rust would be a second, fragile implementation).
//! gitsync keeps the last value it published in its state file and runs `attrd_updater` only
//! when the health changes, so a steady monitor forks nothing. Outside a cluster (no
//! `CRM_meta_on_node`, e.g. `hale run`, ocf-tester) nothing is published. stop deletes a
//! green or yellow attribute, as ocf:pacemaker:ping does, but leaves red in place: a stopped
//! gitsync must not make a non-compliant node eligible again (`attrd_updater -D -n
//! '#health-hale-gitsync'` clears it by hand).

use hale_backend::Processes;
use hale_gitrepo::{Check, Layout, Mirror, Source};
use hale_gitscript::{fetch_budget, source_from, source_params, validate_source};
use hale_ocf::{Action, ActionSpec, Agent, AgentInfo, Context, Failure, Kind, OcfResult, OcfStatus, Param, Values};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The node-health attribute Pacemaker's node-health-strategy reads (any `#health-*`).
pub const ATTRIBUTE: &str = "#health-hale-gitsync";
/// Where the default state files live (tmpfs: after a reboot gitsync is cleanly stopped).
pub const RUN_DIR: &str = "/run/hale";

const SOURCE: [Param; 6] = source_params!();

const PARAMS: &[Param] = &[
    SOURCE[0],
    SOURCE[1],
    SOURCE[2],
    SOURCE[3],
    SOURCE[4],
    SOURCE[5],
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

/// What gitsync remembers between monitors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub health: Option<Health>,
    /// The value the cluster has (None: nothing published, or publishing failed).
    pub published: Option<Health>,
    pub failed_fetches: u64,
    pub reason: String,
}

impl State {
    fn to_text(&self) -> String {
        let h = |x: Option<Health>| x.map_or("", Health::as_str);
        format!(
            "health={}\npublished={}\nfailed_fetches={}\nreason={}\n",
            h(self.health),
            h(self.published),
            self.failed_fetches,
            self.reason.replace('\n', " ")
        )
    }

    fn parse(text: &str) -> State {
        let mut s = State::default();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("health", v)) => s.health = Health::parse(v),
                Some(("published", v)) => s.published = Health::parse(v),
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

/// The agent. Processes are used only to run `attrd_updater`.
pub struct GitSync {
    procs: Box<dyn Processes>,
}

impl GitSync {
    pub fn new(procs: Box<dyn Processes>) -> GitSync {
        GitSync { procs }
    }

    /// Sync and judge the node.
    fn sync(&self, c: &Config, previous: &State, ctx: &Context) -> State {
        let mut s = State { published: previous.published, ..State::default() };
        if let Err(e) = validate_source(&c.source) {
            s.health = Some(Health::Red);
            s.reason = format!("cannot verify: {}", e.reason);
            return s;
        }
        let report = match hale_gitrepo::sync(&c.layout, &c.source, fetch_budget(ctx)) {
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

    /// Tell the cluster, only when the value changed and only under a cluster manager.
    fn publish(&self, c: &Config, s: &mut State, before: Option<Health>, ctx: &Context) {
        let Some(h) = s.health else { return };
        if before != Some(h) {
            let why = if s.reason.is_empty() { String::new() } else { format!(": {}", s.reason) };
            match h {
                Health::Green => log::info!("{}: node health green (commit verified and deployed)", c.source.name),
                Health::Yellow => log::warn!("{}: node health yellow{why}", c.source.name),
                Health::Red => log::error!("{}: node health red{why}", c.source.name),
            }
        }
        if s.published == Some(h) {
            return;
        }
        if ctx.on_node.is_none() {
            // Not under a cluster manager: nobody to tell.
            s.published = Some(h);
            return;
        }
        s.published = self.attrd(&["-n", &c.attribute, "-U", h.as_str()], ctx).then_some(h);
    }

    fn attrd(&self, args: &[&str], ctx: &Context) -> bool {
        let Some(prog) = self.procs.find_program("attrd_updater", hale_backend::paths::DEFAULT_PATH) else {
            log::error!("attrd_updater not found: cannot publish the node health");
            return false;
        };
        let mut argv = vec![prog.to_string_lossy().to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        let budget = ctx.deadline.remaining_with_margin(ctx.deadline.margin()).min(Duration::from_secs(10));
        match self.procs.run_check(&argv, budget) {
            Ok(o) if o.success => true,
            Ok(o) => {
                log::warn!("attrd_updater {}: {} {}", args.join(" "), o.status, o.last_line.unwrap_or_default());
                false
            }
            Err(e) => {
                log::warn!("attrd_updater: {e}");
                false
            }
        }
    }
}

fn default_state_file(ctx: &Context) -> PathBuf {
    PathBuf::from(format!("{RUN_DIR}/gitsync-{}.state", ctx.state_name()))
}

impl Agent for GitSync {
    type Config = Config;

    fn info(&self) -> AgentInfo {
        AgentInfo {
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
        }
    }

    fn params(&self) -> &'static [Param] {
        PARAMS
    }

    fn actions(&self) -> &'static [ActionSpec] {
        ACTIONS
    }

    fn configure(&self, v: &Values, ctx: &Context) -> OcfResult<Config> {
        let (source, layout) = source_from(v)?;
        let attribute = v.str("attribute").unwrap_or(ATTRIBUTE).to_string();
        if !attribute.starts_with("#health") || attribute.contains(char::is_whitespace) {
            return Err(Failure::configured(format!(
                "parameter attribute='{attribute}' must start with #health (node-health-strategy reads only those)"
            )));
        }
        let red_after = v.int("red_after").unwrap_or(3);
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
        let mut s = self.sync(c, &previous, ctx);
        self.publish(c, &mut s, previous.health, ctx);
        let nothing = Mirror::open(&c.layout, &c.source.name).ok().flatten().and_then(|m| m.current()).is_none();
        if nothing && s.failed_fetches > 0 {
            let _ = std::fs::remove_file(&c.state_file);
            return Err(Failure::generic(format!("nothing verified on this node and {}", s.reason)));
        }
        s.write(&c.state_file)?;
        Ok(OcfStatus::Success)
    }

    fn stop(&self, c: &Config, ctx: &Context) -> OcfResult {
        if let Some(s) = State::read(&c.state_file) {
            // A red mark stays: stopping gitsync must not make a non-compliant node eligible.
            if s.published.is_some_and(|h| h != Health::Red) && ctx.on_node.is_some() {
                self.attrd(&["-n", &c.attribute, "-D"], ctx);
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
        let mut s = self.sync(c, &previous, ctx);
        self.publish(c, &mut s, previous.health, ctx);
        if s != previous {
            s.write(&c.state_file)?;
        }
        Ok(OcfStatus::Success)
    }
}
