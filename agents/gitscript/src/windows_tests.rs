//! gitscript on Windows, with the real Windows backend (run under Wine in CI): a script from a
//! local-path master written through libgit2, run by an interpreter as a supervised daemon;
//! and how an entry without interpreter runs (PowerShell for `.ps1`). The interpreter is this
//! test executable (`helper_role`): Wine's PowerShell is a stub and its Windows Script Host
//! lacks `WScript.Sleep`, so neither can stay up.

use super::*;
use hale_backend::fake::FakeProcesses;
use hale_backend::paths::RUN_DIR;
use hale_backend::windows::WindowsProcesses;
use hale_backend::ANY_PROGRAM;
use hale_ocf::{execute, Env, Execution};

/// The interpreter: checks that it was given the deployed script, then runs until stopped.
#[test]
fn helper_role() {
    if std::env::var("HALE_TEST_ROLE").as_deref() == Ok("interpreter") {
        let script = std::env::args().next_back().unwrap_or_default();
        if !script.ends_with(r"\bin\job.js") || !Path::new(&script).is_file() {
            eprintln!("not the deployed script: {script}");
            std::process::exit(3);
        }
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let p = std::env::temp_dir().join(format!("hale-gitscript-{what}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn s(&self, rel: &str) -> String {
        self.0.join(rel).display().to_string()
    }
}

fn env(instance: &str, params: &[(&str, &str)]) -> Env {
    let mut env = Env::new();
    env.set("OCF_RESOURCE_INSTANCE", instance).set("OCF_RESKEY_CRM_meta_timeout", "30000");
    for (k, v) in params {
        env.set(format!("OCF_RESKEY_{k}"), *v);
    }
    env
}

fn run(a: &GitScript, action: &str, params: &[(&str, &str)], extra: &[(&str, &str)]) -> Execution {
    let mut e = env("wjob", params);
    for (k, v) in extra {
        e.set(*k, *v);
    }
    execute(a, Some(action), &e)
}

fn config(a: &GitScript, params: &[(&str, &str)]) -> Config {
    let e = env("cfg", params);
    let ctx = Context::new(Action::Start, &e, &[0, 10], Duration::from_secs(30));
    a.configure(&Values::parse(GitScript::PARAMS, &e).unwrap(), &ctx).unwrap()
}

#[test]
fn windows_defaults_are_absolute() {
    assert!(Path::new(hale_gitrepo::STATE_DIR).is_absolute());
    assert!(Path::new(RUN_DIR).is_absolute());
    let a = GitScript::new(Box::new(FakeProcesses::new(&[ANY_PROGRAM], &[])));
    let base = [("repository", r"C:\git\ops.git"), ("entry", "bin/job.exe"), ("verify", "none")];
    assert_eq!(run(&a, "validate-all", &base, &[]).status, OcfStatus::Success);
    let mut rel = base.to_vec();
    rel.push(("state_dir", r"state\here"));
    let e = run(&a, "validate-all", &rel, &[]);
    assert_eq!(e.status, OcfStatus::ErrConfigured);
    assert!(e.reason.unwrap().contains("must be an absolute path"));
}

#[test]
fn a_powershell_entry_runs_with_pwsh_or_windows_powershell_file() {
    let tree = Path::new(r"C:\ProgramData\Hale\deploy\ops\0123abcd");
    let script = r"C:\ProgramData\Hale\deploy\ops\0123abcd\deploy\Run.PS1";
    let params = [("repository", r"C:\git\ops.git"), ("entry", "deploy/Run.PS1"), ("verify", "none")];
    let tail = ["-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-File", script];

    let a = GitScript::new(Box::new(FakeProcesses::new(&["powershell.exe"], &[])));
    let argv = a.entry_argv(&config(&a, &params), tree);
    assert!(argv[0].ends_with("powershell.exe"), "{argv:?}");
    assert_eq!(argv[1..], tail);

    let a = GitScript::new(Box::new(FakeProcesses::new(&["pwsh.exe", "powershell.exe"], &[])));
    let argv = a.entry_argv(&config(&a, &params), tree);
    assert!(argv[0].ends_with("pwsh.exe"), "PowerShell 7 first: {argv:?}");
    assert_eq!(argv[1..], tail);

    // An interpreter given is used as is.
    let mut with = params.to_vec();
    with.push(("interpreter", "pwsh.exe -NoLogo -File"));
    assert_eq!(a.entry_argv(&config(&a, &with), tree), ["pwsh.exe", "-NoLogo", "-File", script]);

    // validate-all looks the shell up on the service's PATH (the real backend: Windows
    // PowerShell is in the default PATH); none there: not installed (5).
    let real = GitScript::new(Box::new(WindowsProcesses::new()));
    let host = [("OCF_CHECK_LEVEL", "10")];
    let e = run(&real, "validate-all", &params, &host);
    assert_eq!(e.status, OcfStatus::Success, "{:?}", e.reason);
    let mut nowhere = params.to_vec();
    nowhere.push(("environment", r"PATH='C:\nowhere'"));
    let e = run(&real, "validate-all", &nowhere, &host);
    assert_eq!(e.status, OcfStatus::NotInstalled, "{:?}", e.reason);
    assert!(e.reason.unwrap_or_default().contains("powershell.exe"));
}

#[test]
fn only_programs_and_powershell_scripts_run_without_interpreter() {
    let t = TempDir::new("exec");
    for (name, runs) in
        [("a.exe", true), ("b.COM", true), ("c.ps1", true), ("d.cmd", false), ("e.bat", false), ("f", false)]
    {
        std::fs::write(t.0.join(name), "x").unwrap();
        assert_eq!(is_executable(&t.0.join(name)), runs, "{name}");
    }
    assert!(!is_executable(&t.0.join("missing.exe")));
}

#[test]
fn a_script_from_a_local_master_runs_supervised_and_stops() {
    let t = TempDir::new("run");
    let master = t.0.join("ops.git");
    let js = "WScript.Echo('job');\r\n";
    let commit =
        hale_gitrepo::create_master(&master, "master", "job", &[("bin/job.js", js.as_bytes(), false)]).unwrap();
    let (master_s, state, pidfile) = (master.display().to_string(), t.s("state"), t.s("job.pid"));
    let exe = std::env::current_exe().unwrap();
    let interpreter = format!("'{}' windows_tests::helper_role --exact --test-threads=1 --quiet", exe.display());
    let params = [
        ("repository", master_s.as_str()),
        ("verify", "none"),
        ("entry", "bin/job.js"),
        ("interpreter", interpreter.as_str()),
        ("environment", "HALE_TEST_ROLE=interpreter"),
        ("state_dir", state.as_str()),
        ("pidfile", pidfile.as_str()),
        ("stop_timeout", "2"),
    ];
    let probe = [("OCF_RESKEY_CRM_meta_interval", "0")];
    let a = GitScript::new(Box::new(WindowsProcesses::new()));
    assert_eq!(run(&a, "monitor", &params, &probe).status, OcfStatus::NotRunning);
    let e = run(&a, "start", &params, &[]);
    assert_eq!(e.status, OcfStatus::Success, "{:?}", e.reason);
    // The deployed tree is read-only and `current` names the commit.
    let tree = Path::new(&state).join("deploy").join("ops").join(&commit);
    assert!(std::fs::metadata(tree.join("bin").join("job.js")).unwrap().permissions().readonly());
    let m = Mirror::open(&Layout::with_state_dir(Path::new(&state)), "ops").unwrap().unwrap();
    assert_eq!(m.current().as_deref(), Some(commit.as_str()));
    assert_eq!(std::fs::read_to_string(Path::new(&pidfile).with_extension("commit")).unwrap().trim(), commit);
    assert_eq!(run(&a, "monitor", &params, &probe).status, OcfStatus::Success);
    let deep = [("OCF_CHECK_LEVEL", "10"), ("OCF_RESKEY_CRM_meta_interval", "10000")];
    assert_eq!(run(&a, "monitor", &params, &deep).status, OcfStatus::Success, "up to date with the master");
    // A later agent process (a new backend) stops it.
    let b = GitScript::new(Box::new(WindowsProcesses::new()));
    assert_eq!(run(&b, "stop", &params, &[]).status, OcfStatus::Success);
    assert!(!Path::new(&pidfile).exists());
    assert_eq!(run(&b, "monitor", &params, &probe).status, OcfStatus::NotRunning);
    assert_eq!(run(&b, "stop", &params, &[]).status, OcfStatus::Success, "stop is idempotent");
    // A master that is gone: the deployed commit still starts (a node that lost the master).
    remove_read_only_tree(&master).unwrap(); // git objects are read-only
    let e = run(&b, "start", &params, &[]);
    assert_eq!(e.status, OcfStatus::Success, "{:?}", e.reason);
    assert_eq!(run(&b, "stop", &params, &[]).status, OcfStatus::Success);
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = remove_read_only_tree(&self.0);
    }
}

/// Deployed trees are read-only: clear the attribute before removing the test directory.
fn remove_read_only_tree(dir: &Path) -> std::io::Result<()> {
    fn walk(p: &Path) {
        if let Ok(m) = std::fs::symlink_metadata(p) {
            let mut perm = m.permissions();
            if perm.readonly() {
                #[allow(clippy::permissions_set_readonly_false)] // Windows: clears the attribute only
                perm.set_readonly(false);
                let _ = std::fs::set_permissions(p, perm);
            }
            if m.is_dir() {
                for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                    walk(&e.path());
                }
            }
        }
    }
    walk(dir);
    std::fs::remove_dir_all(dir)
}
