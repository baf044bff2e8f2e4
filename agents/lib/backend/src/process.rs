//! The process interface: what an agent needs to run a service and nothing more.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to start. The program is never run through a shell: `argv` is passed as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpawnSpec {
    /// The resolved program to execute.
    pub program: PathBuf,
    /// The arguments, `argv[0]` first (usually the program as the user wrote it).
    pub argv: Vec<String>,
    pub workdir: Option<PathBuf>,
    /// Run as this user (its primary and supplementary groups too). None: as the agent.
    pub user: Option<String>,
    /// The complete environment of the service; nothing of the agent's leaks in (the agent's
    /// environment holds every resource parameter, secrets included).
    pub env: Vec<(String, String)>,
    /// Where stdout and stderr go (appended). None: discarded.
    pub logfile: Option<PathBuf>,
    /// The record of the service: pid and process start time.
    pub pidfile: PathBuf,
    /// A mark set in the service's environment (`HALE_INSTANCE`) so that stop can find every
    /// process of this resource instance, even one started by an agent killed before it could
    /// write the pidfile.
    pub tag: String,
}

/// The name of the environment variable that carries [`SpawnSpec::tag`].
pub const TAG_VARIABLE: &str = "HALE_INSTANCE";

/// A process identity that survives PID reuse: the pid plus the time it started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessRecord {
    pub pid: u32,
    /// OS-specific start stamp (Linux: clock ticks since boot, /proc/PID/stat field 22).
    pub start_time: u64,
}

impl ProcessRecord {
    /// The pidfile text: `PID START_TIME TAG\n`. The tag is the instance mark
    /// ([`SpawnSpec::tag`]): a record names the resource it belongs to, so a file written for
    /// another resource, by another tool or by hand is never taken for ours.
    pub fn to_file_text(self, tag: &str) -> String {
        format!("{} {} {tag}\n", self.pid, self.start_time)
    }

    /// Parse a pidfile written for the instance marked `tag`. Anything else is refused: a lone
    /// PID (a service's own pidfile, a file some other tool wrote), a record without a start
    /// time or with another instance's mark. A PID whose start time and mark are unknown is
    /// never ours.
    pub fn parse(text: &str, tag: &str) -> Result<ProcessRecord, String> {
        let line = text.strip_suffix('\n').unwrap_or(text);
        let mut parts = line.splitn(3, ' ');
        let pid = parts.next().unwrap_or_default();
        let pid: u32 = pid.parse().map_err(|_| "it does not start with a process id".to_string())?;
        if pid == 0 {
            return Err("process id 0".into());
        }
        let start_time: u64 = match parts.next() {
            None => return Err("a process id alone, without start time and instance mark".into()),
            Some(s) => s.parse().map_err(|_| "the second field is not a start time".to_string())?,
        };
        match parts.next() {
            Some(t) if t == tag => Ok(ProcessRecord { pid, start_time }),
            Some(_) => Err("it is marked for another resource".into()),
            None => Err("it has no instance mark".into()),
        }
    }

    /// Read the record in `pidfile` for the instance marked `tag`. Every backend answers a
    /// missing pidfile with [`ProcessState::NoRecord`] and anything that is not our record
    /// with [`ProcessState::Corrupt`] naming the file: a symlink, a file owned by another user
    /// (see [`crate::files::read_owned_nofollow`]), unreadable, or not in our format. Only the
    /// liveness check of a record read here is OS-specific.
    pub fn read(pidfile: &Path, tag: &str) -> Result<ProcessRecord, ProcessState> {
        let bytes = match crate::files::read_owned_nofollow(pidfile, 4096) {
            Ok(b) => b,
            // No file, or no directory to hold one (a file in its place): nothing recorded.
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
                return Err(ProcessState::NoRecord)
            }
            Err(e) => {
                return Err(ProcessState::Corrupt(format!("pidfile {} is not our record: {e}", pidfile.display())))
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        ProcessRecord::parse(&text, tag)
            .map_err(|e| ProcessState::Corrupt(format!("pidfile {} is corrupt or not ours ({e})", pidfile.display())))
    }
}

/// The end of every backend's stop: remove the pidfile only when it holds our record (`state`
/// is what stop read from it); a file that is not ours is left where it is, and a missing one
/// is already gone.
pub fn remove_our_record(pidfile: &Path, state: &ProcessState) -> Result<(), BackendError> {
    if !matches!(state, ProcessState::Running(_) | ProcessState::Gone(_)) {
        return Ok(());
    }
    match std::fs::remove_file(pidfile) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BackendError::Failed(format!("cannot remove pidfile {}: {e}", pidfile.display()))),
    }
}

/// What the pidfile says about the service, checked against the live process table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessState {
    /// No pidfile: cleanly stopped.
    NoRecord,
    /// The recorded process is alive (not a zombie, same start time).
    Running(ProcessRecord),
    /// The pidfile names a process that is gone (exited, a zombie, or its PID now belongs to
    /// another process).
    Gone(ProcessRecord),
    /// The pidfile is not our record (unreadable, a symlink, owned by someone else, another
    /// format or another instance's mark). Nothing it names is ours: it is never signalled,
    /// never replaced and never removed.
    Corrupt(String),
}

/// The signal that asks a service to stop. Named, not numbered, so each OS maps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopSignal {
    Term,
    Int,
    Quit,
    Hup,
    Usr1,
    Usr2,
    Kill,
}

impl StopSignal {
    pub const NAMES: &'static [&'static str] = &["TERM", "INT", "QUIT", "HUP", "USR1", "USR2", "KILL"];

    /// Parse `TERM`, `SIGTERM` or `term`.
    pub fn parse(s: &str) -> Option<StopSignal> {
        let s = s.trim().to_ascii_uppercase();
        Some(match s.strip_prefix("SIG").unwrap_or(&s) {
            "TERM" => StopSignal::Term,
            "INT" => StopSignal::Int,
            "QUIT" => StopSignal::Quit,
            "HUP" => StopSignal::Hup,
            "USR1" => StopSignal::Usr1,
            "USR2" => StopSignal::Usr2,
            "KILL" => StopSignal::Kill,
            _ => return None,
        })
    }
}

/// What stop had to do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StopReport {
    /// Processes found (the recorded one, its group and tree, and tagged strays).
    pub found: usize,
    /// True when the graceful signal was not enough and SIGKILL (or termination) was used.
    pub forced: bool,
}

/// The result of a check command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOutcome {
    pub success: bool,
    /// How it ended, for a reason line (`exit status 2`, `killed by signal 9`, `timed out`).
    pub status: String,
    /// The last non-empty line of its output, for the reason line.
    pub last_line: Option<String>,
}

/// The result of a command whose output is read ([`Processes::run_output`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandOutput {
    /// How it ended; `last_line` is the last non-empty line of its standard error.
    pub outcome: CheckOutcome,
    /// Its standard output, at most the limit asked for (the rest is dropped, never waited on).
    pub stdout: String,
}

/// Errors from the OS layer, with a message a person can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendError {
    /// The program, user or directory is missing on this node.
    NotFound(String),
    /// Not allowed.
    Permission(String),
    /// Anything else.
    Failed(String),
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::NotFound(m) | BackendError::Permission(m) | BackendError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for BackendError {}

/// Running services as detached processes.
pub trait Processes {
    /// Start the service detached from the agent (its own session and process group, so the
    /// manager's kill of the agent on timeout does not hit it), record it in the pidfile, and
    /// return its record.
    fn spawn(&self, spec: &SpawnSpec) -> Result<ProcessRecord, BackendError>;

    /// Read the pidfile (see [`ProcessRecord::read`]) and check the process: running only when
    /// its start time is the recorded one. Never forks and never writes.
    fn state(&self, pidfile: &Path, tag: &str) -> ProcessState;

    /// How the recorded process ended, if it was our child and has exited.
    fn exit_status(&self, record: ProcessRecord) -> Option<String>;

    /// Stop everything of this service: send `signal` to the recorded process and its group,
    /// wait up to `grace`, then kill the whole tree and every process carrying `tag`, and wait
    /// for them to go, all before `deadline`. Removes the pidfile once nothing is left, if it
    /// is our record (a [`ProcessState::Corrupt`] file is left alone, and its PID is not
    /// signalled). Succeeds when nothing was running. Fails only when something survives.
    fn stop(
        &self,
        pidfile: &Path,
        tag: &str,
        signal: StopSignal,
        grace: Duration,
        deadline: Instant,
    ) -> Result<StopReport, BackendError>;

    /// Run a check command (argv, no shell) with a null stdin, and wait at most `timeout`.
    ///
    /// The command gets the agent's environment without the resource's parameters
    /// (`OCF_RESKEY_*`, see [`is_resource_parameter`]): a health command or a cluster tool is
    /// another program, and some parameters are secrets.
    fn run_check(&self, argv: &[String], timeout: Duration) -> Result<CheckOutcome, BackendError>;

    /// Like [`Processes::run_check`], and return what the command wrote on its standard
    /// output (at most `limit` bytes), for tools whose answer is their output (`crm_mon
    /// --output-as=xml`). Standard error is kept apart for the reason line. A backend that
    /// cannot capture output says so rather than returning nothing.
    fn run_output(&self, argv: &[String], timeout: Duration, limit: usize) -> Result<CommandOutput, BackendError> {
        let _ = (argv, timeout, limit);
        Err(BackendError::Failed("this backend cannot read a command's output".into()))
    }

    /// Resolve a program name the way exec would with `path` (a `PATH` value): a name with a
    /// separator is taken as a path. Returns the path only when it is an executable file.
    fn find_program(&self, program: &str, path: &str) -> Option<PathBuf>;

    /// Does this user exist on this node?
    fn user_exists(&self, user: &str) -> bool;
}

/// Is the environment variable `name` one of the resource's parameters (`OCF_RESKEY_*`, which
/// Pacemaker passes to the agent)? Those are never handed on to the commands an agent runs
/// ([`Processes::run_check`]), so a secret parameter cannot leak through a health command.
pub fn is_resource_parameter(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b"OCF_RESKEY_")
}
