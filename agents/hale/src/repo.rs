//! `hale repo`: create a master repository from the template, sync this node's mirrors, show
//! their state. And the hidden `hale gitscript-supervise`, the periodic mode's supervisor.
//!
//! Repositories known on a node are those with a settings file in `/etc/hale/repos.d`
//! (`$HALE_CONFIG_DIR`) and those with a mirror in `/var/lib/hale/repos` (`$HALE_STATE_DIR`)
//! created by the agents, whose settings are recorded in the mirror. No `git` process runs.

use clap::{Args, Subcommand, ValueEnum};
use hale_gitrepo::{Check, Layout, Mirror, Source, VerifyMode};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Copy, ValueEnum)]
pub enum Verify {
    Signed,
    None,
}

#[derive(Subcommand)]
pub enum RepoCommand {
    /// Create a master repository with a template entry script and a README, and the node's
    /// settings file /etc/hale/repos.d/NAME.conf.
    Init {
        name: String,
        /// Where to create the master (a new bare repository; a path or file:// URL).
        #[arg(long, value_name = "PATH")]
        master: String,
        /// The branch to create.
        #[arg(long = "ref", default_value = "master")]
        reference: String,
        /// Whether deployed commits must be signed.
        #[arg(long, value_enum, default_value = "signed")]
        verify: Verify,
        /// The trusted SSH keys (git's allowed_signers format); --verify signed needs this or
        /// --keyring.
        #[arg(long, value_name = "FILE")]
        allowed_signers: Option<PathBuf>,
        /// The trusted OpenPGP public keys (as `gpg --export --armor KEYID...` writes them).
        #[arg(long, value_name = "FILE")]
        keyring: Option<PathBuf>,
    },
    /// Fetch, verify (fast-forward only) and deploy every repository of this node, or NAME.
    Sync {
        name: Option<String>,
        /// Accept the master's tip even if it rewrote history (after a deliberate force-push).
        #[arg(long)]
        allow_rewrite: bool,
        /// Seconds each fetch may take.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// List the repositories: deployed commit, master tip, signature state, health.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Do not fetch: show the master's tip as last fetched.
        #[arg(long)]
        offline: bool,
    },
}

/// `hale gitscript-supervise`: run a command every period (periodic mode of gitscript).
#[derive(Args)]
pub struct SuperviseArgs {
    /// The state file the monitor reads.
    #[arg(long)]
    state: PathBuf,
    /// Seconds between the starts of two runs.
    #[arg(long)]
    period: f64,
    /// The command (argv, no shell).
    #[arg(last = true, required = true)]
    argv: Vec<String>,
}

pub fn supervise(a: SuperviseArgs) -> i32 {
    let period = Duration::try_from_secs_f64(a.period).unwrap_or(Duration::from_secs(60));
    hale_gitscript::periodic::run_supervisor(&a.state, period, &a.argv)
}

const TEMPLATE_SCRIPT: &str = r#"#!/bin/sh
# Entry script of this repository, run by the cluster (ocf:hale:gitscript).
#
# It runs from a read-only checkout of one verified commit:
#   - the working directory is that checkout (unless the resource sets workdir);
#   - HALE_COMMIT is the commit id, HALE_REPOSITORY the repository's name;
#   - stdout and stderr go to the resource's logfile (parameter logfile).
# In mode=daemon keep running until stopped (SIGTERM, then SIGKILL after stop_timeout);
# exiting is a failure the cluster recovers from. In mode=periodic do one run and exit
# 0 on success: max_failures failed runs in a row fail the resource.
set -eu

log() {
    # One line per event; also sent to syslog when logger(1) is there.
    echo "$(date -u +%FT%TZ) $*"
    command -v logger >/dev/null 2>&1 && logger -t "hale-${HALE_REPOSITORY:-script}" -- "$*" || true
}

log "starting at commit ${HALE_COMMIT:-unknown}"

# --- your code goes here -------------------------------------------------------------
# Example: a daemon that does some work every 30 seconds.
while :; do
    log "alive"
    sleep 30
done
# --------------------------------------------------------------------------------------
"#;

fn template_readme(name: &str, reference: &str) -> String {
    format!(
        "# {name}\n\nScripts run by the cluster with Hale (`ocf:hale:gitscript`).\n\n\
         - `bin/run.sh` is the entry script: edit it where it says so (or add others and point a \
         resource's `entry` at them).\n\
         - Commit with an SSH signature (`git config gpg.format ssh; git config user.signingkey \
         ~/.ssh/id_ed25519.pub; git commit -S`) by a key listed in the nodes' allowed_signers: \
         with verify=signed an unsigned tip never runs.\n\
         - Push to `{reference}`. Each node's `ocf:hale:gitsync` (or `hale repo sync`) fetches, \
         verifies and deploys it; `crm_resource --restart` or a reload-agent of the gitscript \
         resource runs it.\n\
         - Never force-push: the nodes refuse a history rewrite and keep the last good commit.\n"
    )
}

fn known(layout: &Layout) -> Result<BTreeMap<String, Source>, String> {
    let mut out = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(layout.mirrors()) {
        for e in rd.flatten() {
            let f = e.file_name().to_string_lossy().to_string();
            let Some(name) = f.strip_suffix(".git").filter(|n| !n.starts_with('.')) else { continue };
            if let Ok(Some(m)) = Mirror::open(layout, name) {
                if let Some(s) = m.recorded_source() {
                    out.insert(name.to_string(), s);
                }
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(&layout.config_dir) {
        for e in rd.flatten() {
            let f = e.file_name().to_string_lossy().to_string();
            let Some(name) = f.strip_suffix(".conf") else { continue };
            let text = std::fs::read_to_string(e.path()).map_err(|err| format!("{}: {err}", e.path().display()))?;
            let s = Source::from_config(name, &text).map_err(|err| format!("{}: {err}", e.path().display()))?;
            out.insert(name.to_string(), s);
        }
    }
    Ok(out)
}

fn init(
    layout: &Layout,
    name: &str,
    master: &str,
    reference: &str,
    verify: Verify,
    signers: Option<PathBuf>,
    keyring: Option<PathBuf>,
) -> Result<i32, String> {
    let path = master.strip_prefix("file://").unwrap_or(master);
    let signers = signers.map(|p| std::path::absolute(&p).unwrap_or(p));
    let keyring = keyring.map(|p| std::path::absolute(&p).unwrap_or(p));
    let source = Source {
        name: name.to_string(),
        url: std::path::absolute(path).map(|p| p.to_string_lossy().to_string()).unwrap_or(path.to_string()),
        reference: reference.to_string(),
        verify: match verify {
            Verify::Signed => VerifyMode::Signed,
            Verify::None => VerifyMode::None,
        },
        allowed_signers: signers,
        keyring,
        keep_trees: hale_gitrepo::DEFAULT_KEEP_TREES,
        auth: hale_gitrepo::Auth::default(),
    };
    source.check().map_err(|e| format!("{e} (pass --allowed-signers FILE, --keyring FILE, or --verify none)"))?;
    source.signers()?;
    let readme = template_readme(name, reference);
    let files: &[(&str, &[u8], bool)] =
        &[("README.md", readme.as_bytes(), false), ("bin/run.sh", TEMPLATE_SCRIPT.as_bytes(), true)];
    let commit = hale_gitrepo::create_master(
        Path::new(path),
        reference,
        &format!("{name}: template from hale repo init"),
        files,
    )?;
    std::fs::create_dir_all(&layout.config_dir).map_err(|e| format!("{}: {e}", layout.config_dir.display()))?;
    let conf = layout.config_file(name);
    std::fs::write(&conf, source.to_config()).map_err(|e| format!("{}: {e}", conf.display()))?;
    println!("created {path} ({reference} at {commit}, unsigned template commit)");
    println!("wrote {}", conf.display());
    if source.verify == VerifyMode::Signed {
        println!(
            "clone it, edit bin/run.sh, commit with an SSH signature (git commit -S) and push: only a signed tip runs"
        );
    }
    Ok(0)
}

fn sync(layout: &Layout, only: Option<&str>, allow_rewrite: bool, timeout: u64) -> Result<i32, String> {
    let repos = known(layout)?;
    if let Some(n) = only {
        if !repos.contains_key(n) {
            return Err(format!("no repository '{n}' on this node (see hale repo status)"));
        }
    }
    let mut code = 0;
    for (name, source) in repos.iter().filter(|(n, _)| only.is_none_or(|o| o == n.as_str())) {
        if allow_rewrite {
            if let Ok(Some(m)) = Mirror::open(layout, name) {
                m.forget(&source.reference)?;
                log::warn!("{name}: history rewrite allowed for this sync by the administrator");
            }
        }
        match hale_gitrepo::sync(layout, source, Duration::from_secs(timeout), None) {
            Ok(r) => {
                let deployed = r.deployed.map_or("nothing verified".into(), |c| c.to_string());
                let signer = r.signer.as_ref().map(|s| format!(", new, signed by {s}")).unwrap_or_default();
                println!("{name}: deployed {deployed}{signer}");
                if let Some(p) = r.problem() {
                    println!("{name}: {p}");
                    code = 1;
                }
            }
            Err(e) => {
                println!("{name}: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

fn status(layout: &Layout, json: bool, offline: bool) -> Result<i32, String> {
    let mut rows = Vec::new();
    for (name, source) in known(layout)? {
        let m = Mirror::open(layout, &name)?;
        let mut fetch_error = None;
        if let (Some(m), false) = (&m, offline) {
            fetch_error = m.fetch(&source, Duration::from_secs(10)).err().map(|e| e.0);
        }
        let deployed = m.as_ref().and_then(|m| m.current());
        let verified = m.as_ref().and_then(|m| m.verified(&source.reference)).map(|c| c.to_string());
        let tip = m.as_ref().and_then(|m| m.incoming(&source.reference));
        let signers = source.signers();
        let signature = match (&m, tip, &signers) {
            (_, _, Err(e)) => format!("cannot verify: {e}"),
            (Some(m), Some(t), Ok(s)) => match m.verify_commit(t, s.as_ref()) {
                Ok(who) => format!("signed by {who}"),
                Err(e) => e,
            },
            _ => "unknown (never fetched)".into(),
        };
        let check = m.as_ref().map(|m| m.check(&source.reference, signers.as_ref().ok().and_then(|s| s.as_ref())));
        let (health, reason) = match (&check, &fetch_error) {
            (None, _) => ("red", "no mirror yet: run hale repo sync".to_string()),
            (_, _) if signers.is_err() => ("red", signature.clone()),
            (Some(Check::Refused { reason, .. }), _) => ("red", reason.clone()),
            (Some(Check::NoTip(r)), _) => ("red", r.clone()),
            (_, Some(e)) => ("yellow", format!("behind: {e}")),
            (Some(Check::Advance { .. }), None) => ("yellow", "behind: a new verified commit awaits sync".into()),
            _ if deployed != verified => ("yellow", "behind: the accepted commit is not deployed".into()),
            _ => ("green", String::new()),
        };
        let trees: Vec<serde_json::Value> = hale_gitrepo::trees(layout, &name, source.keep_trees)
            .iter()
            .map(|t| serde_json::json!({"commit": t.commit, "kept": t.kept(), "why": t.why(source.keep_trees)}))
            .collect();
        rows.push(serde_json::json!({
            "name": name,
            "trees": trees,
            "master": source.url,
            "ref": source.reference,
            "verify": source.verify.as_str(),
            "deployed": deployed,
            "verified": verified,
            "master_tip": tip.map(|t| t.to_string()),
            "signature": signature,
            "health": health,
            "reason": reason,
        }));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?);
        return Ok(0);
    }
    if rows.is_empty() {
        println!(
            "no repositories on this node (state {}, settings {})",
            layout.state_dir.display(),
            layout.config_dir.display()
        );
    }
    let s = |v: &serde_json::Value| v.as_str().map(|x| x.chars().take(12).collect::<String>()).unwrap_or("-".into());
    for r in &rows {
        println!(
            "{:<16} {:<7} deployed {:<12} master {:<12} {}{}",
            r["name"].as_str().unwrap_or(""),
            r["health"].as_str().unwrap_or(""),
            s(&r["deployed"]),
            s(&r["master_tip"]),
            r["signature"].as_str().unwrap_or(""),
            r["reason"].as_str().filter(|x| !x.is_empty()).map(|x| format!("; {x}")).unwrap_or_default()
        );
        for t in r["trees"].as_array().into_iter().flatten() {
            let why = match t["why"].as_str().filter(|w| !w.is_empty()) {
                Some(w) => format!("kept ({w})"),
                None => "not kept: removed at the next deployment".into(),
            };
            println!("    tree {} {why}", s(&t["commit"]));
        }
    }
    Ok(0)
}

pub fn run(cmd: RepoCommand) -> Result<i32, String> {
    let layout = Layout::from_env();
    let env = hale_ocf::Env::from_process();
    // Events (accepted, refused, deployed) go to syslog as the agents' do, and to stderr here.
    hale_ocf::logging::Logger::install(&env, "hale-repo", hale_backend::syslog());
    match cmd {
        RepoCommand::Init { name, master, reference, verify, allowed_signers, keyring } => {
            init(&layout, &name, &master, &reference, verify, allowed_signers, keyring)
        }
        RepoCommand::Sync { name, allow_rewrite, timeout } => sync(&layout, name.as_deref(), allow_rewrite, timeout),
        RepoCommand::Status { json, offline } => status(&layout, json, offline),
    }
}
