//! The conformance harness: run an *installed* agent the way Pacemaker does (a fresh process,
//! the action as its only argument, parameters in a clean environment) and look at what it
//! did. A case is a few lines with [`Invocation`]; per-agent data lives in [`tables`].
//!
//! The agents under test are the installed ones (`/usr/lib/ocf/resource.d/hale/*`), because
//! ocf-tester, crm_resource and pcs only see those. `ocf-tests/run` installs the fresh build
//! first; a test that finds no agent fails and says so.

pub mod cluster;
pub mod etcd;
pub mod git;
pub mod netns;
pub mod strace;
pub mod tables;
pub mod tls;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Where Pacemaker looks for agents (compiled in; no runtime override).
pub const OCF_ROOT: &str = "/usr/lib/ocf";

/// The PATH pacemaker-execd gives agents.
pub const EXECD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What pacemaker-execd puts in every agent's environment besides the resource's own
/// variables (research: pacemaker-lab.md §4): OCF 1.1, the exit-reason prefix, a 20 s
/// timeout, C locale, its PATH. The suite's [`Invocation`] and hale-bench both start here.
pub const EXECD_ENV: [(&str, &str); 7] = [
    ("OCF_ROOT", OCF_ROOT),
    ("OCF_RA_VERSION_MAJOR", "1"),
    ("OCF_RA_VERSION_MINOR", "1"),
    ("OCF_EXIT_REASON_PREFIX", "ocf-exit-reason:"),
    ("OCF_RESKEY_CRM_meta_timeout", "20000"),
    ("LC_ALL", "C"),
    ("PATH", EXECD_PATH),
];

/// The installed agent `name` of provider hale. Panics with the fix if it is missing.
/// `$HALE_TEST_OCF_ROOT` names another root to run agents from (`hale install --ocf-root DIR`
/// of a build under test, for the tests that drive an agent directly rather than through
/// Pacemaker, ocf-tester or pcs).
pub fn agent_path(name: &str) -> PathBuf {
    let root = std::env::var_os("HALE_TEST_OCF_ROOT").map(PathBuf::from).unwrap_or_else(|| OCF_ROOT.into());
    let p = root.join("resource.d/hale").join(name);
    assert!(
        p.exists(),
        "{} is not installed: build and run `hale install --ocf-root {}` first (ocf-tests/run does)",
        p.display(),
        root.display()
    );
    p
}

/// The `hale` binary of this build (for CLI tests).
pub fn hale_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("HALE_BIN") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let p = root.join("target/release/hale");
    assert!(p.exists(), "{} not found: run `cargo build --release` first (ocf-tests/run does)", p.display());
    p
}

/// A program the tests need; fails loudly when it is missing instead of skipping.
pub fn require(program: &str) -> PathBuf {
    for dir in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p;
        }
    }
    panic!("{program} is required by this test and is not installed (ocf-tests/run installs it)");
}

/// A unique name for this test process and call: instances and scratch dirs never collide,
/// even with tests running in parallel.
pub fn unique(prefix: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}

/// A scratch directory removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(prefix: &str) -> Scratch {
        let p = std::env::temp_dir().join(unique(&format!("hale-{prefix}")));
        std::fs::create_dir_all(&p).expect("create scratch dir");
        // World-readable so that `nobody` (ocf-tester's meta-data check) can traverse it.
        let _ = Command::new("chmod").arg("755").arg(&p).status();
        Scratch(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What one agent run did.
#[derive(Clone, Debug)]
pub struct AgentRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Killed by the emulated op timeout (Pacemaker's SIGKILL) instead of finishing.
    pub timed_out: bool,
}

impl AgentRun {
    /// The exit reason Pacemaker would record: the last `ocf-exit-reason:` line of stderr.
    pub fn exit_reason(&self) -> Option<&str> {
        self.stderr.lines().rev().find_map(|l| l.strip_prefix("ocf-exit-reason:"))
    }
    /// Every exit-reason line (there must be at most one).
    pub fn exit_reason_lines(&self) -> usize {
        self.stderr.lines().filter(|l| l.starts_with("ocf-exit-reason:")).count()
    }
}

/// One agent invocation with Pacemaker's environment.
#[derive(Clone, Debug)]
pub struct Invocation {
    agent: PathBuf,
    env: BTreeMap<String, String>,
    /// Kill the agent's process group at this point, as Pacemaker does at the op timeout.
    kill_after: Option<Duration>,
}

impl Invocation {
    /// `agent` with the environment pacemaker-execd gives agents (see the lab notes): OCF
    /// 1.1, the exit-reason prefix, a 20 s timeout, and nothing of the test's own environment.
    pub fn new(agent: &Path, instance: &str) -> Invocation {
        let mut env = BTreeMap::new();
        for (k, v) in EXECD_ENV.iter().chain(&[("OCF_RESOURCE_PROVIDER", "hale")]) {
            env.insert(k.to_string(), v.to_string());
        }
        env.insert("OCF_RESOURCE_INSTANCE".into(), instance.into());
        let ty = agent.file_name().and_then(|n| n.to_str()).unwrap_or("agent").to_string();
        env.insert("OCF_RESOURCE_TYPE".into(), ty);
        Invocation { agent: agent.to_path_buf(), env, kill_after: None }
    }

    /// Set parameters (`OCF_RESKEY_<k>`).
    pub fn params<K: AsRef<str>, V: AsRef<str>>(mut self, params: &[(K, V)]) -> Invocation {
        for (k, v) in params {
            self.env.insert(format!("OCF_RESKEY_{}", k.as_ref()), v.as_ref().to_string());
        }
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Invocation {
        self.env.insert(k.into(), v.into());
        self
    }
    pub fn unset(mut self, k: &str) -> Invocation {
        self.env.remove(k);
        self
    }
    /// `CRM_meta_timeout` in ms; the run is also killed then, as Pacemaker would.
    pub fn timeout_ms(mut self, ms: u64) -> Invocation {
        self.env.insert("OCF_RESKEY_CRM_meta_timeout".into(), ms.to_string());
        self.kill_after = Some(Duration::from_millis(ms));
        self
    }
    /// A recurring monitor (`CRM_meta_interval`).
    pub fn recurring(self) -> Invocation {
        self.env("OCF_RESKEY_CRM_meta_interval", "10000")
    }
    /// A recurring monitor at `OCF_CHECK_LEVEL` `level`.
    pub fn depth(self, level: u32) -> Invocation {
        self.recurring().env("OCF_CHECK_LEVEL", &level.to_string())
    }
    /// Like ocf-tester and a person: no OCF version declared.
    pub fn ocf_1_0(self) -> Invocation {
        self.unset("OCF_RA_VERSION_MAJOR").unset("OCF_RA_VERSION_MINOR")
    }

    fn command(&self, action: Option<&str>) -> Command {
        let mut cmd = Command::new(&self.agent);
        if let Some(a) = action {
            cmd.arg(a);
        }
        cmd.env_clear().envs(&self.env).stdin(Stdio::null()).current_dir("/");
        // Its own process group, as pacemaker-execd does (the timeout kill hits the group).
        cmd.process_group(0);
        cmd
    }

    /// Run `action` and wait for it (or kill it at the emulated op timeout).
    pub fn run(&self, action: &str) -> AgentRun {
        self.run_opt(Some(action))
    }

    /// Run with no action at all.
    pub fn run_without_action(&self) -> AgentRun {
        self.run_opt(None)
    }

    fn run_opt(&self, action: Option<&str>) -> AgentRun {
        let mut child = self
            .command(action)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.agent.display()));
        let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let out_t = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let err_t = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let started = Instant::now();
        let mut timed_out = false;
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if self.kill_after.is_some_and(|k| started.elapsed() >= k) {
                timed_out = true;
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        AgentRun {
            code: status.code().unwrap_or(-1),
            stdout: out_t.join().unwrap_or_default(),
            stderr: err_t.join().unwrap_or_default(),
            timed_out,
        }
    }

    /// Start `action` and SIGKILL the agent's process group once `ready` says so (or after
    /// 10 s), as Pacemaker does on a timeout. Returns whether `ready` was seen.
    pub fn kill_midway(&self, action: &str, ready: impl Fn() -> bool) -> bool {
        let mut child =
            self.command(Some(action)).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn agent");
        let until = Instant::now() + Duration::from_secs(10);
        let mut seen = false;
        while Instant::now() < until {
            if ready() {
                seen = true;
                break;
            }
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ =
            nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
        seen
    }

    /// Run `action` under `strace -f` and return the process-creating system calls it made
    /// (successful execve, and clone/fork/vfork), the agent's own execve included.
    pub fn syscalls(&self, action: &str) -> Syscalls {
        let strace = require("strace");
        let log = std::env::temp_dir().join(unique("hale-strace"));
        let mut cmd = Command::new(strace);
        cmd.args(["-f", "-qq", "-e", strace::STRACE_FILTER, "-o"])
            .arg(&log)
            .arg(&self.agent)
            .arg(action)
            .env_clear()
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let status = cmd.status().expect("run strace");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        let counts = strace::count_calls(&text, None);
        Syscalls {
            code: status.code().unwrap_or(-1),
            execve: counts.execve as usize,
            // A thread counts too: monitor and meta-data create neither.
            forks: (counts.forks + counts.threads) as usize,
            trace: text,
        }
    }
}

/// Process creation seen by strace.
#[derive(Debug)]
pub struct Syscalls {
    pub code: i32,
    pub execve: usize,
    pub forks: usize,
    pub trace: String,
}

/// The pids of live processes whose environment carries `HALE_INSTANCE=<tag>` (the mark the
/// process backend puts on every process of a resource instance).
pub fn tagged_processes(tag: &str) -> Vec<u32> {
    let want = format!("HALE_INSTANCE={tag}");
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let state = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()).unwrap_or("?");
        if state == "Z" || state == "X" {
            continue;
        }
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
            if env.split(|b| *b == 0).any(|x| x == want.as_bytes()) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// A listing of `dir` (recursive): path, size and modification time, to show a probe wrote
/// nothing.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.push((p, m.len(), m.modified().ok()));
        }
    }
    out.sort();
    out
}

/// Wait until `cond` holds, for at most `limit`; returns whether it did. Used to wait for a
/// state, never to assert how long something took.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A `<parameter>` of an agent's meta-data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaParam {
    pub name: String,
    pub required: bool,
}

/// The parameters declared in meta-data `xml` (read with quick-xml, as any OCF client would).
/// Panics on a document that is not XML: the meta-data cases fail first with the reason.
pub fn metadata_params(xml: &str) -> Vec<MetaParam> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    loop {
        match r.read_event().unwrap_or_else(|e| panic!("meta-data is not XML: {e}")) {
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == "parameter" => {
                let get = |k: &str| {
                    e.attributes().flatten().find(|a| a.key.as_ref() == k).and_then(|a| {
                        a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok().map(|v| v.into_owned())
                    })
                };
                let name = get("name").expect("a parameter without a name");
                out.push(MetaParam { name, required: matches!(get("required").as_deref(), Some("1" | "true")) });
            }
            Event::Eof => break,
            _ => {}
        }
    }
    out
}
