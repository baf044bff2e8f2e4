//! Running a script file from a deployed tree: what differs between Unix (execute bits, any
//! interpreter via `#!`) and Windows (extensions, PowerShell), so the agents that run scripts
//! carry no OS-specific code.

use crate::Processes;
use std::path::{Path, PathBuf};

/// A program that exists on every node, standing in for a script not deployed yet (a
/// validate-all that checks the rest of the configuration).
#[cfg(not(windows))]
pub const ANY_PROGRAM: &str = "/bin/true";
#[cfg(windows)]
pub const ANY_PROGRAM: &str = r"C:\Windows\System32\cmd.exe";

/// What to tell a person whose script [`is_executable`] refused.
#[cfg(not(windows))]
pub const NOT_EXECUTABLE_HINT: &str = "chmod +x in git, or set interpreter";
#[cfg(windows)]
pub const NOT_EXECUTABLE_HINT: &str = "on Windows only .exe, .com and .ps1 entries run without interpreter";

/// The file of `entry` (a `/`-separated path, as git writes it) in `tree`, with the native
/// separators throughout.
pub fn entry_path(tree: &Path, entry: &str) -> PathBuf {
    entry.split('/').filter(|p| !p.is_empty()).fold(tree.to_path_buf(), |p, part| p.join(part))
}

/// Can `path` run without an interpreter? Unix: a regular file with an execute bit. Windows
/// has no execute bit: a program (`.exe`, `.com`) or a PowerShell script runs; batch files do
/// not (`CreateProcessW` would run them through `cmd.exe`).
pub fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        path.is_file() && ["exe", "com", "ps1"].iter().any(|x| ext.eq_ignore_ascii_case(x))
    }
}

/// Does a script named `entry` with no interpreter run under a shell program that must be
/// installed (Windows: a `.ps1` runs with PowerShell)? Never on Unix: the `#!` line decides.
pub fn runs_in_shell(entry: &str) -> bool {
    cfg!(windows) && entry.rsplit_once('.').is_some_and(|(_, ext)| ext.eq_ignore_ascii_case("ps1"))
}

/// The argv that runs `script`: `interpreter` then the script's path. With no interpreter, a
/// PowerShell script on Windows runs with `pwsh` or Windows PowerShell (`-NoProfile
/// -NonInteractive -ExecutionPolicy Bypass -File`), found on `path` (a PATH value).
pub fn script_argv(procs: &dyn Processes, interpreter: &[String], script: &Path, path: &str) -> Vec<String> {
    #[cfg(windows)]
    if interpreter.is_empty() && runs_in_shell(&script.to_string_lossy()) {
        return crate::windows::powershell_argv(procs, path, script, &[]);
    }
    let _ = (procs, path);
    let mut argv = interpreter.to_vec();
    argv.push(script.to_string_lossy().into_owned());
    argv
}

/// How a child process ended, for a log line: `(success, "exit status 3")` or
/// `(false, "killed by signal 9")`. On Windows every end has an exit code (a terminated
/// process gets the one it was given).
pub fn describe_exit(status: std::process::ExitStatus) -> (bool, String) {
    #[cfg(unix)]
    let signal = std::os::unix::process::ExitStatusExt::signal(&status);
    #[cfg(not(unix))]
    let signal: Option<i32> = None;
    match (status.code(), signal) {
        (Some(c), _) => (c == 0, format!("exit status {c}")),
        (None, Some(s)) => (false, format!("killed by signal {s}")),
        _ => (false, "ended".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_and_argv() {
        let tree = Path::new("/t");
        assert_eq!(entry_path(tree, "bin//job.sh"), Path::new("/t").join("bin").join("job.sh"));
        let procs = crate::fake::FakeProcesses::new(&[], &[]);
        let argv = script_argv(&procs, &["python3".into(), "-u".into()], Path::new("/t/x.py"), "");
        assert_eq!(argv, ["python3", "-u", "/t/x.py"]);
        assert!(!runs_in_shell("bin/job.sh"));
    }
}
