//! An in-memory [`Processes`] for unit tests of agent logic: no process is started, nothing
//! touches the host. Tests drive it (`crash`, `ignore_signal`) and read what the agent did.

use crate::process::{
    BackendError, CheckOutcome, CommandOutput, ProcessRecord, ProcessState, Processes, SpawnSpec, StopReport,
    StopSignal,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct World {
    next_pid: u32,
    /// pidfile → record and instance mark, as the pidfile would hold them.
    pidfiles: BTreeMap<PathBuf, (ProcessRecord, String)>,
    /// pidfiles that hold something else than a record of ours.
    foreign: Vec<PathBuf>,
    /// live processes: pid → the spec that started them.
    alive: BTreeMap<u32, SpawnSpec>,
    /// pids that ignore graceful signals.
    stubborn: Vec<u32>,
    spawned: Vec<SpawnSpec>,
    checks: Vec<Vec<String>>,
    check_result: Option<CheckOutcome>,
    /// What the next `run_output` calls return, in order.
    outputs: std::collections::VecDeque<CommandOutput>,
    programs: Vec<String>,
    users: Vec<String>,
}

/// The fake backend.
#[derive(Debug, Default)]
pub struct FakeProcesses {
    world: Mutex<World>,
}

impl FakeProcesses {
    /// A fake host where `programs` are installed (as absolute paths or bare names) and
    /// `users` exist.
    pub fn new(programs: &[&str], users: &[&str]) -> FakeProcesses {
        let f = FakeProcesses::default();
        {
            let mut w = f.world.lock().unwrap();
            w.next_pid = 1000;
            w.programs = programs.iter().map(|s| s.to_string()).collect();
            w.users = users.iter().map(|s| s.to_string()).collect();
        }
        f
    }
    /// The service behind `pidfile` dies (the pidfile stays).
    pub fn crash(&self, pidfile: &Path) {
        let mut w = self.world.lock().unwrap();
        if let Some((r, _)) = w.pidfiles.get(pidfile).cloned() {
            w.alive.remove(&r.pid);
        }
    }
    /// The service behind `pidfile` ignores graceful signals.
    pub fn ignore_signal(&self, pidfile: &Path) {
        let mut w = self.world.lock().unwrap();
        if let Some((r, _)) = w.pidfiles.get(pidfile).cloned() {
            w.stubborn.push(r.pid);
        }
    }
    /// Every spawn so far.
    pub fn spawned(&self) -> Vec<SpawnSpec> {
        self.world.lock().unwrap().spawned.clone()
    }
    /// Number of live processes.
    pub fn alive_count(&self) -> usize {
        self.world.lock().unwrap().alive.len()
    }
    /// Every check command run so far.
    pub fn checks(&self) -> Vec<Vec<String>> {
        self.world.lock().unwrap().checks.clone()
    }
    /// What the next check commands return.
    pub fn set_check_result(&self, outcome: CheckOutcome) {
        self.world.lock().unwrap().check_result = Some(outcome);
    }
    /// Is there a pidfile at this path?
    /// The next `run_output` returns this (calls beyond the queue succeed with no output).
    pub fn queue_output(&self, output: CommandOutput) {
        self.world.lock().unwrap().outputs.push_back(output);
    }

    pub fn has_pidfile(&self, pidfile: &Path) -> bool {
        let w = self.world.lock().unwrap();
        w.pidfiles.contains_key(pidfile) || w.foreign.iter().any(|f| f == pidfile)
    }
    /// Something that is not our record appears at `pidfile` (a lone PID, another file).
    pub fn plant_foreign(&self, pidfile: &Path) {
        let mut w = self.world.lock().unwrap();
        w.pidfiles.remove(pidfile);
        w.foreign.push(pidfile.to_path_buf());
    }
}

impl Processes for FakeProcesses {
    fn spawn(&self, spec: &SpawnSpec) -> Result<ProcessRecord, BackendError> {
        let mut w = self.world.lock().unwrap();
        if let Some(u) = &spec.user {
            if !w.users.contains(u) {
                return Err(BackendError::NotFound(format!("user '{u}' does not exist on this node")));
            }
        }
        w.next_pid += 1;
        let record = ProcessRecord { pid: w.next_pid, start_time: 1 };
        if w.foreign.contains(&spec.pidfile) {
            return Err(BackendError::Failed(format!("{} is not ours", spec.pidfile.display())));
        }
        w.pidfiles.insert(spec.pidfile.clone(), (record, spec.tag.clone()));
        w.alive.insert(record.pid, spec.clone());
        w.spawned.push(spec.clone());
        Ok(record)
    }

    fn state(&self, pidfile: &Path, tag: &str) -> ProcessState {
        let w = self.world.lock().unwrap();
        if w.foreign.iter().any(|f| f == pidfile) {
            return ProcessState::Corrupt(format!("pidfile {} is corrupt or not ours", pidfile.display()));
        }
        match w.pidfiles.get(pidfile) {
            None => ProcessState::NoRecord,
            Some((_, t)) if t != tag => {
                ProcessState::Corrupt(format!("pidfile {} is marked for another resource", pidfile.display()))
            }
            Some((r, _)) if w.alive.contains_key(&r.pid) => ProcessState::Running(*r),
            Some((r, _)) => ProcessState::Gone(*r),
        }
    }

    fn exit_status(&self, _record: ProcessRecord) -> Option<String> {
        Some("exited with status 1".into())
    }

    fn stop(
        &self,
        pidfile: &Path,
        tag: &str,
        signal: StopSignal,
        _grace: Duration,
        _deadline: Instant,
    ) -> Result<StopReport, BackendError> {
        let mut w = self.world.lock().unwrap();
        let mine: Vec<u32> = w.alive.iter().filter(|(_, s)| s.tag == tag).map(|(p, _)| *p).collect();
        let forced = signal == StopSignal::Kill || mine.iter().any(|p| w.stubborn.contains(p));
        for p in &mine {
            w.alive.remove(p);
        }
        if w.pidfiles.get(pidfile).is_some_and(|(_, t)| t == tag) {
            w.pidfiles.remove(pidfile);
        }
        Ok(StopReport { found: mine.len(), forced })
    }

    fn run_check(&self, argv: &[String], _timeout: Duration) -> Result<CheckOutcome, BackendError> {
        let mut w = self.world.lock().unwrap();
        w.checks.push(argv.to_vec());
        Ok(w.check_result.clone().unwrap_or(CheckOutcome {
            success: true,
            status: "exit status 0".into(),
            last_line: None,
        }))
    }

    /// Recorded with the checks; answers from the queue.
    fn run_output(&self, argv: &[String], _timeout: Duration, limit: usize) -> Result<CommandOutput, BackendError> {
        let mut w = self.world.lock().unwrap();
        w.checks.push(argv.to_vec());
        let mut o = w.outputs.pop_front().unwrap_or(CommandOutput {
            outcome: CheckOutcome { success: true, status: "exit status 0".into(), last_line: None },
            stdout: String::new(),
        });
        let mut cut = limit.min(o.stdout.len());
        while !o.stdout.is_char_boundary(cut) {
            cut -= 1;
        }
        o.stdout.truncate(cut);
        Ok(o)
    }

    fn find_program(&self, program: &str, path: &str) -> Option<PathBuf> {
        let w = self.world.lock().unwrap();
        if program.contains('/') {
            return w.programs.iter().any(|p| p == program).then(|| PathBuf::from(program));
        }
        path.split(':')
            .map(|d| format!("{d}/{program}"))
            .find(|p| w.programs.contains(p) || w.programs.iter().any(|q| q == program))
            .map(PathBuf::from)
    }

    fn user_exists(&self, user: &str) -> bool {
        self.world.lock().unwrap().users.iter().any(|u| u == user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(tag: &str) -> SpawnSpec {
        SpawnSpec {
            program: "/usr/bin/sleep".into(),
            argv: vec!["sleep".into()],
            workdir: None,
            user: None,
            env: vec![],
            logfile: None,
            pidfile: PathBuf::from(format!("/run/{tag}.pid")),
            tag: tag.into(),
        }
    }

    #[test]
    fn fake_lifecycle() {
        let f = FakeProcesses::new(&["/usr/bin/sleep"], &[]);
        let s = spec("a");
        assert_eq!(f.state(&s.pidfile, "a"), ProcessState::NoRecord);
        let r = f.spawn(&s).unwrap();
        assert_eq!(f.state(&s.pidfile, "a"), ProcessState::Running(r));
        assert!(matches!(f.state(&s.pidfile, "b"), ProcessState::Corrupt(_)));
        f.crash(&s.pidfile);
        assert_eq!(f.state(&s.pidfile, "a"), ProcessState::Gone(r));
        f.spawn(&s).unwrap();
        f.ignore_signal(&s.pidfile);
        let later = Instant::now() + Duration::from_secs(1);
        let rep = f.stop(&s.pidfile, "a", StopSignal::Term, Duration::ZERO, later).unwrap();
        assert!(rep.forced && rep.found == 1);
        assert_eq!(f.state(&s.pidfile, "a"), ProcessState::NoRecord);
        assert!(f.find_program("sleep", "/usr/bin").is_some());
        let mut with_user = spec("b");
        with_user.user = Some("ghost".into());
        assert!(matches!(f.spawn(&with_user), Err(BackendError::NotFound(_))));
    }

    #[test]
    fn pidfile_text() {
        let r = ProcessRecord { pid: 42, start_time: 7 };
        assert_eq!(r.to_file_text("daemon:web"), "42 7 daemon:web\n");
        assert_eq!(ProcessRecord::parse(&r.to_file_text("daemon:web"), "daemon:web"), Ok(r));
        // A lone PID, a record without a mark or with another's: never ours.
        for bad in ["", "x", "0", "42\n", "42 7\n", "1 x daemon:web", "42 7 daemon:other\n", "42 7 daemon:web extra"] {
            assert!(ProcessRecord::parse(bad, "daemon:web").is_err(), "{bad}");
        }
        assert_eq!(StopSignal::parse("sigterm"), Some(StopSignal::Term));
        assert_eq!(StopSignal::parse("TERMINATE"), None);
    }
}
