//! Agent logging with the routing of the shell library's `ocf_log`, without its forks.
//!
//! `ocf_log` forks `logger` and `date` for every line; on a busy node that is most of a shell
//! agent's cost. Here the same variables decide where a line goes, and the writes are direct:
//! - stdout is a terminal (a person runs the agent): stderr only, as `tag: LEVEL: msg`;
//! - `HA_LOGFACILITY` / `HA_logfacility` set and not `none`: syslog, through a [`SyslogSink`]
//!   the OS backend supplies (this crate has no OS code);
//! - `HA_LOGFILE` set: append a dated line; `HA_DEBUGLOG` also gets every line when it differs;
//! - neither: stderr.
//!
//! Debug lines appear only when `HA_debug` is set and not `0`. `HA_LOGTAG` overrides the tag,
//! which otherwise is `agent(instance)[pid]` as in the shell library.

use crate::env::Env;
use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Something that can deliver one syslog message (facility and severity are RFC 5424 numbers).
pub trait SyslogSink: Send + Sync {
    fn send(&self, facility: u8, severity: u8, tag: &str, message: &str);
}

/// Syslog facility numbers by name, as `logger -p` accepts them.
pub fn facility_number(name: &str) -> Option<u8> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    })
}

/// Where log lines go, decided once from the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRoute {
    pub tag: String,
    /// Syslog facility number, when syslog is used.
    pub facility: Option<u8>,
    pub logfile: Option<String>,
    pub debuglog: Option<String>,
    pub debug: bool,
    /// Write to stderr (a terminal, or no other destination).
    pub stderr: bool,
}

impl LogRoute {
    /// The route for `agent` given `env`; `stdout_is_tty` is passed in so tests can decide it.
    pub fn from_env(env: &Env, agent: &str, stdout_is_tty: bool) -> LogRoute {
        let instance = env.non_empty("OCF_RESOURCE_INSTANCE").unwrap_or("default");
        let tag = env
            .non_empty("HA_LOGTAG")
            .map(str::to_string)
            .unwrap_or_else(|| format!("{agent}({instance})[{}]", std::process::id()));
        let debug = env.non_empty("HA_debug").is_some_and(|v| v != "0");
        if stdout_is_tty {
            return LogRoute { tag, facility: None, logfile: None, debuglog: None, debug, stderr: true };
        }
        let facility = env
            .non_empty("HA_LOGFACILITY")
            .or_else(|| env.non_empty("HA_logfacility"))
            .filter(|f| *f != "none")
            .and_then(facility_number);
        let logfile = env.non_empty("HA_LOGFILE").map(str::to_string);
        let debuglog = env.non_empty("HA_DEBUGLOG").filter(|d| Some(*d) != logfile.as_deref()).map(str::to_string);
        let stderr = facility.is_none() && logfile.is_none();
        LogRoute { tag, facility, logfile, debuglog, debug, stderr }
    }
}

/// The `log` crate backend for agents.
pub struct Logger {
    route: LogRoute,
    syslog: Option<Box<dyn SyslogSink>>,
    /// Serialises file appends when an agent logs from several threads.
    files: Mutex<()>,
}

impl Logger {
    pub fn new(route: LogRoute, syslog: Option<Box<dyn SyslogSink>>) -> Logger {
        Logger { route, syslog, files: Mutex::new(()) }
    }

    /// Install as the global logger for `agent`. Harmless when one is already installed (tests,
    /// `hale run` of several actions). Returns whether log lines go to stderr, so the caller
    /// does not repeat there what the exit-reason line already says.
    pub fn install(env: &Env, agent: &str, syslog: Option<Box<dyn SyslogSink>>) -> bool {
        let route = LogRoute::from_env(env, agent, std::io::stdout().is_terminal());
        let max = if route.debug { log::LevelFilter::Debug } else { log::LevelFilter::Info };
        let stderr = route.stderr;
        if log::set_boxed_logger(Box::new(Logger::new(route, syslog))).is_ok() {
            log::set_max_level(max);
        }
        stderr
    }

    fn write_line(&self, level: log::Level, message: &str) {
        let (word, severity) = match level {
            log::Level::Error => ("ERROR", 3),
            log::Level::Warn => ("WARNING", 4),
            log::Level::Info => ("INFO", 6),
            log::Level::Debug | log::Level::Trace => ("DEBUG", 7),
        };
        // One event, one line: a newline inside a message would forge a second log entry.
        let message = message.replace(['\n', '\r'], " ");
        let text = format!("{word}: {message}");
        if let (Some(fac), Some(sink)) = (self.route.facility, &self.syslog) {
            sink.send(fac, severity, &self.route.tag, &text);
        }
        if self.route.stderr {
            let _ = writeln!(std::io::stderr(), "{}: {text}", self.route.tag);
        }
        if self.route.logfile.is_some() || self.route.debuglog.is_some() {
            let line = format!("{}:\t{} {text}\n", self.route.tag, format_timestamp(SystemTime::now()));
            let _guard = self.files.lock();
            for path in [&self.route.logfile, &self.route.debuglog].into_iter().flatten() {
                if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
                    let _ = f.write_all(line.as_bytes());
                }
            }
        }
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info || self.route.debug
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            self.write_line(record.level(), &record.args().to_string());
        }
    }
    fn flush(&self) {}
}

/// `YYYY-MM-DDTHH:MM:SSZ` in UTC, computed without `date` or a time-zone database.
pub fn format_timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn routes() {
        let r = LogRoute::from_env(&env(&[]), "daemon", false);
        assert!(r.stderr && r.facility.is_none() && r.logfile.is_none());
        let r = LogRoute::from_env(&env(&[("HA_logfacility", "daemon"), ("HA_LOGFILE", "/x")]), "daemon", false);
        assert_eq!((r.facility, r.logfile.as_deref(), r.stderr), (Some(3), Some("/x"), false));
        let r = LogRoute::from_env(
            &env(&[("HA_LOGFACILITY", "none"), ("HA_LOGFILE", "/x"), ("HA_DEBUGLOG", "/x")]),
            "d",
            false,
        );
        assert_eq!((r.facility, r.debuglog), (None, None));
        let r = LogRoute::from_env(&env(&[("HA_LOGFACILITY", "local3"), ("HA_LOGTAG", "T")]), "d", true);
        assert!(r.stderr && r.facility.is_none());
        assert_eq!(r.tag, "T");
        let r = LogRoute::from_env(&env(&[("OCF_RESOURCE_INSTANCE", "web"), ("HA_debug", "1")]), "daemon", false);
        assert!(r.tag.starts_with("daemon(web)[") && r.debug);
        assert!(!LogRoute::from_env(&env(&[("HA_debug", "0")]), "d", false).debug);
    }

    type Sent = Vec<(u8, u8, String, String)>;
    struct Capture(Arc<Mutex<Sent>>);
    impl SyslogSink for Capture {
        fn send(&self, f: u8, s: u8, tag: &str, m: &str) {
            self.0.lock().unwrap().push((f, s, tag.into(), m.into()));
        }
    }

    #[test]
    fn syslog_and_file_lines() {
        let dir = std::env::temp_dir().join(format!("hale-log-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ha.log");
        let got = Arc::new(Mutex::new(Vec::new()));
        let e = env(&[("HA_LOGFACILITY", "local0"), ("HA_LOGFILE", file.to_str().unwrap()), ("HA_LOGTAG", "tag")]);
        let logger = Logger::new(LogRoute::from_env(&e, "d", false), Some(Box::new(Capture(got.clone()))));
        logger.write_line(log::Level::Warn, "two\nlines");
        assert_eq!(got.lock().unwrap()[0], (16, 4, "tag".into(), "WARNING: two lines".into()));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("tag:\t") && text.ends_with("WARNING: two lines\n"), "{text}");
        assert_eq!(text.lines().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn timestamps() {
        assert_eq!(format_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(format_timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(format_timestamp(UNIX_EPOCH + Duration::from_secs(1_795_309_199)), "2026-11-22T00:59:59Z");
    }
}
