//! Periodic mode: a small supervisor that runs the entry every `period` and keeps count.
//!
//! The agent starts the supervisor as its service (`hale gitscript-supervise ...`, through the
//! daemon agent's machinery, so it is detached, tagged and stopped like any daemon). Each run's
//! exit status is logged; the number of failed runs in a row is kept in a small state file
//! written atomically (temporary file + rename), which the agent's monitor reads without
//! forking. A run still going when the next is due delays the next one: runs never overlap.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the supervisor records after each run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunState {
    /// Runs finished since the supervisor started.
    pub runs: u64,
    /// Failed runs since the last success.
    pub consecutive_failures: u64,
    /// How the last run ended (`exit status 0`, `killed by signal 9`, ...).
    pub last: String,
    /// When the last run ended, seconds since the epoch.
    pub last_end: u64,
}

impl RunState {
    pub fn to_text(&self) -> String {
        format!(
            "runs={}\nconsecutive_failures={}\nlast={}\nlast_end={}\n",
            self.runs, self.consecutive_failures, self.last, self.last_end
        )
    }

    pub fn parse(text: &str) -> Result<RunState, String> {
        let mut s = RunState::default();
        for line in text.lines() {
            let (k, v) = line.split_once('=').ok_or_else(|| format!("bad line '{line}'"))?;
            let num = || v.parse::<u64>().map_err(|_| format!("bad number in '{line}'"));
            match k {
                "runs" => s.runs = num()?,
                "consecutive_failures" => s.consecutive_failures = num()?,
                "last" => s.last = v.to_string(),
                "last_end" => s.last_end = num()?,
                _ => {}
            }
        }
        Ok(s)
    }

    /// Read a state file; None when there is none yet (no run has finished). Never through a
    /// symlink (the file's directory belongs to the script's user), at most 4 KiB, and bytes
    /// that are not UTF-8 are a parse error, not a panic.
    pub fn read(path: &Path) -> Result<Option<RunState>, String> {
        match hale_backend::files::read_tail_nofollow(path, 4096) {
            Ok(b) => RunState::parse(&String::from_utf8_lossy(&b))
                .map(Some)
                .map_err(|e| format!("state file {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Replace the state file atomically, under an unguessable temporary name, never
    /// through a symlink.
    fn write(&self, path: &Path) -> std::io::Result<()> {
        hale_backend::files::write_atomic(path, self.to_text().as_bytes(), 0o644)
    }
}

/// The supervisor started from its command line, `--state FILE --period SECONDS -- ARGV...`
/// (what the agent puts after [`crate::SUPERVISE_COMMAND`]), for programs that have no
/// argument parser of their own: ocf:hale:gitscript's own program starts itself this way.
/// A malformed command line is exit code 2 with the reason on stderr.
pub fn supervise_command(args: &[String]) -> i32 {
    let parsed = match args {
        [s, state, p, period, dash, argv @ ..] if s == "--state" && p == "--period" && dash == "--" => {
            period.parse::<f64>().ok().and_then(|p| Duration::try_from_secs_f64(p).ok()).map(|p| (state, p, argv))
        }
        _ => None,
    };
    let Some((state, period, argv)) = parsed else {
        eprintln!("usage: {} --state FILE --period SECONDS -- PROGRAM [ARGS...]", crate::SUPERVISE_COMMAND);
        return 2;
    };
    run_supervisor(Path::new(state), period, argv)
}

/// The supervisor process: its log lines go where the agent's do (`HA_LOGFACILITY`, syslog),
/// then [`supervise`].
pub fn run_supervisor(state: &Path, period: Duration, argv: &[String]) -> i32 {
    let env = hale_ocf::Env::from_process();
    hale_ocf::logging::Logger::install(&env, "gitscript", hale_backend::syslog());
    supervise(state, period, argv)
}

/// Run `argv` every `period` forever, recording each run in `state`. Returns only if the
/// state file cannot be written (the monitor would be blind) or `argv` is empty.
pub fn supervise(state: &Path, period: Duration, argv: &[String]) -> i32 {
    let Some((program, args)) = argv.split_first() else {
        eprintln!("gitscript-supervise: nothing to run");
        return 2;
    };
    let name = Path::new(program).file_name().map(PathBuf::from).unwrap_or_default();
    let mut rs = RunState::default();
    loop {
        let began = Instant::now();
        // stdout and stderr are the supervisor's: the resource's logfile.
        let (ok, how) = match Command::new(program).args(args).stdin(Stdio::null()).status() {
            Ok(st) => hale_backend::describe_exit(st),
            Err(e) => (false, format!("could not start: {e}")),
        };
        rs.runs += 1;
        rs.last = how.clone();
        rs.last_end = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        if ok {
            if rs.consecutive_failures > 0 {
                log::info!("{}: recovered after {} failed run(s)", name.display(), rs.consecutive_failures);
            }
            rs.consecutive_failures = 0;
        } else {
            rs.consecutive_failures += 1;
            log::warn!("{}: run {} failed ({how}), {} in a row", name.display(), rs.runs, rs.consecutive_failures);
        }
        println!("hale: run {} of {} ended: {how}", rs.runs, name.display());
        if let Err(e) = rs.write(state) {
            log::error!("cannot write {}: {e}", state.display());
            eprintln!("hale: cannot write {}: {e}", state.display());
            return 1;
        }
        std::thread::sleep(period.saturating_sub(began.elapsed()).max(Duration::from_millis(100)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_supervisor_command_line_is_2() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(super::supervise_command(&v(&[])), 2);
        assert_eq!(super::supervise_command(&v(&["--state", "/x", "--period", "soon", "--", "true"])), 2);
        assert_eq!(super::supervise_command(&v(&["--period", "1", "--state", "/x", "--", "true"])), 2);
        assert_eq!(super::supervise_command(&v(&["--state", "/x", "--period", "-1", "--", "true"])), 2);
    }

    #[test]
    fn state_round_trip() {
        let s = RunState { runs: 4, consecutive_failures: 2, last: "exit status 3".into(), last_end: 17 };
        assert_eq!(RunState::parse(&s.to_text()).unwrap(), s);
        assert!(RunState::parse("runs=x\n").is_err());
    }
}
