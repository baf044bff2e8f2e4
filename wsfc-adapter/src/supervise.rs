//! The life of a resource in `service` and `app` modes, independent of the SCM so that it is
//! unit-tested on every platform: start inside the pending window, monitor every interval
//! (every `deep_every`-th monitor at depth 10), and on failure or on request run stop.

use crate::host::{summary, Depth, Host};
use crate::mapping::{classify, Verdict};
use hale_ocf::OcfStatus;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

/// What the supervisor tells the service manager. The Windows implementation maps these to
/// SCM states; `app` mode ignores them; tests record them.
pub trait StatusReport {
    /// START_PENDING while start runs; the wait hint is the start budget.
    fn start_pending(&self, wait_hint: Duration);
    /// RUNNING: start succeeded; the stop control is accepted from now on.
    fn running(&self);
    /// STOP_PENDING while stop runs.
    fn stop_pending(&self, wait_hint: Duration);
}

/// A request from the service manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// SCM stop or system shutdown: run the agent's stop.
    Stop,
}

/// How it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Stopped on request and stop succeeded: STOPPED, exit 0.
    Stopped,
    /// Start, a monitor or stop failed with this OCF result: STOPPED with it as the
    /// service-specific exit code (app mode: the process exit code).
    Failed(OcfStatus),
}

impl Ended {
    /// The service-specific (or process) exit code; 0 for a requested stop.
    pub fn code(&self) -> u32 {
        match self {
            Ended::Stopped => 0,
            Ended::Failed(s) => s.code() as u32,
        }
    }
}

/// Run the resource until it fails or `controls` says stop (or is closed).
pub fn supervise(host: &Host, report: &dyn StatusReport, controls: &Receiver<Control>) -> Ended {
    report.start_pending(host.start_budget());
    let start = host.run("start", None);
    match classify(start.status) {
        Verdict::Healthy | Verdict::Degraded => {
            log::info!("resource {} is online ({} start)", host.name, host.agent.info().name);
            event(Event::Started, &format!("resource {}: start succeeded", host.name));
        }
        Verdict::Failed => {
            let why = format!("resource {}: start failed: {}", host.name, summary(&start));
            log::error!("{why}; running stop");
            event(Event::StartFailed, &why);
            return stop_after_failure(host, report, start.status);
        }
    }
    report.running();
    let mut cycle: u32 = 0;
    loop {
        match controls.recv_timeout(host.interval()) {
            Ok(Control::Stop) | Err(RecvTimeoutError::Disconnected) => {
                report.stop_pending(host.stop_budget());
                let stop = host.run("stop", None);
                return if stop.status == OcfStatus::Success {
                    log::info!("resource {} stopped on request", host.name);
                    event(Event::Stopped, &format!("resource {}: stopped", host.name));
                    Ended::Stopped
                } else {
                    let why = format!("resource {}: stop failed: {}", host.name, summary(&stop));
                    log::error!("{why}");
                    event(Event::StopFailed, &why);
                    Ended::Failed(stop.status)
                };
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        cycle = cycle.wrapping_add(1);
        let deep = host.config.deep_every > 0 && cycle.is_multiple_of(host.config.deep_every);
        let depth = if deep { Depth::Deep } else { Depth::Shallow };
        let m = host.run("monitor", Some(depth));
        match classify(m.status) {
            Verdict::Healthy => {}
            Verdict::Degraded => {
                let why = format!("resource {}: degraded: {}", host.name, summary(&m));
                log::warn!("{why}");
                event(Event::Degraded, &why);
            }
            Verdict::Failed => {
                let why = format!("resource {}: monitor failed: {}", host.name, summary(&m));
                log::error!("{why}; running stop");
                event(Event::MonitorFailed, &why);
                return stop_after_failure(host, report, m.status);
            }
        }
    }
}

/// Clean up after a failed start or monitor; the result is the original failure (a stop
/// failure on top of it is logged).
fn stop_after_failure(host: &Host, report: &dyn StatusReport, cause: OcfStatus) -> Ended {
    report.stop_pending(host.stop_budget());
    let stop = host.run("stop", None);
    if stop.status != OcfStatus::Success {
        let why = format!("resource {}: stop after failure failed: {}", host.name, summary(&stop));
        log::error!("{why}");
        event(Event::StopFailed, &why);
    }
    Ended::Failed(cause)
}

/// The adapter's lifecycle events (Event Log ids on Windows, log lines elsewhere).
#[derive(Clone, Copy, Debug)]
pub enum Event {
    Started,
    StartFailed,
    MonitorFailed,
    Stopped,
    StopFailed,
    Degraded,
    ConfigInvalid,
}

#[cfg(windows)]
pub fn event(e: Event, text: &str) {
    use hale_backend::windows::eventlog::{report, EventKind};
    let kind = match e {
        Event::Started => EventKind::Started,
        Event::StartFailed => EventKind::StartFailed,
        Event::MonitorFailed => EventKind::MonitorFailed,
        Event::Stopped => EventKind::Stopped,
        Event::StopFailed => EventKind::StopFailed,
        Event::Degraded => EventKind::Degraded,
        Event::ConfigInvalid => EventKind::ConfigInvalid,
    };
    report(kind, text);
}

#[cfg(not(windows))]
pub fn event(_e: Event, _text: &str) {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ResourceConfig;
    use hale_ocf::{ActionSpec, AgentInfo, AnyAgent, Env, Execution, Param};
    use std::cell::RefCell;
    use std::sync::mpsc::channel;

    /// An agent that answers from a script and records what it was asked.
    struct Scripted {
        answers: RefCell<Vec<(String, OcfStatus)>>,
        calls: std::rc::Rc<RefCell<Vec<String>>>,
    }

    impl AnyAgent for Scripted {
        fn info(&self) -> AgentInfo {
            AgentInfo { name: "scripted", shortdesc: "", longdesc: "", version: "1" }
        }
        fn params(&self) -> &'static [Param] {
            &[]
        }
        fn actions(&self) -> &'static [ActionSpec] {
            &[]
        }
        fn check_levels(&self) -> &'static [u32] {
            &[]
        }
        fn execute(&self, action: Option<&str>, env: &Env) -> Execution {
            let action = action.unwrap_or_default();
            let level = env.get("OCF_CHECK_LEVEL").map(|l| format!(":{l}")).unwrap_or_default();
            self.calls.borrow_mut().push(format!("{action}{level}"));
            let mut a = self.answers.borrow_mut();
            let status = match a.iter().position(|(act, _)| act == action) {
                Some(i) => a.remove(i).1,
                None => OcfStatus::Success,
            };
            Execution { status, reason: Some("scripted".into()), stdout: None }
        }
    }

    #[derive(Default)]
    struct Recorder(RefCell<Vec<String>>);
    impl StatusReport for Recorder {
        fn start_pending(&self, h: Duration) {
            self.0.borrow_mut().push(format!("START_PENDING {}s", h.as_secs()));
        }
        fn running(&self) {
            self.0.borrow_mut().push("RUNNING".into());
        }
        fn stop_pending(&self, h: Duration) {
            self.0.borrow_mut().push(format!("STOP_PENDING {}s", h.as_secs()));
        }
    }

    fn host(answers: &[(&str, OcfStatus)], deep_every: u32) -> (Host, std::rc::Rc<RefCell<Vec<String>>>) {
        let calls = std::rc::Rc::new(RefCell::new(Vec::new()));
        let agent = Scripted {
            answers: RefCell::new(answers.iter().map(|(a, s)| (a.to_string(), *s)).collect()),
            calls: calls.clone(),
        };
        let mut config = ResourceConfig::parse("agent=scripted\n").unwrap();
        config.interval = 1;
        config.deep_every = deep_every;
        config.start_timeout = 30;
        config.stop_timeout = 40;
        // The interval is a real wait: monitors are driven by a zero-length interval below.
        let h = Host { name: "r1".into(), config, agent: Box::new(agent) };
        (h, calls)
    }

    /// A channel whose sender is kept alive, so recv_timeout waits the interval.
    fn controls() -> (std::sync::mpsc::Sender<Control>, Receiver<Control>) {
        channel()
    }

    #[test]
    fn start_failure_runs_stop_and_reports_the_code() {
        let (h, calls) = host(&[("start", OcfStatus::NotInstalled)], 0);
        let rec = Recorder::default();
        let (_tx, rx) = controls();
        assert_eq!(supervise(&h, &rec, &rx), Ended::Failed(OcfStatus::NotInstalled));
        assert_eq!(*calls.borrow(), ["start", "stop"]);
        assert_eq!(*rec.0.borrow(), ["START_PENDING 30s", "STOP_PENDING 40s"], "never RUNNING");
        assert_eq!(Ended::Failed(OcfStatus::NotInstalled).code(), 5);
    }

    #[test]
    fn monitor_failure_runs_stop_with_deep_cycles() {
        let (h, calls) = host(
            &[
                ("monitor", OcfStatus::Success),
                ("monitor", OcfStatus::Degraded),
                ("monitor", OcfStatus::Success),
                ("monitor", OcfStatus::NotRunning),
            ],
            2,
        );
        let rec = Recorder::default();
        let (_tx, rx) = controls();
        assert_eq!(supervise(&h, &rec, &rx), Ended::Failed(OcfStatus::NotRunning));
        assert_eq!(*calls.borrow(), ["start", "monitor:0", "monitor:10", "monitor:0", "monitor:10", "stop"]);
        assert_eq!(*rec.0.borrow(), ["START_PENDING 30s", "RUNNING", "STOP_PENDING 40s"]);
    }

    #[test]
    fn stop_request_runs_stop() {
        let (h, calls) = host(&[], 0);
        let rec = Recorder::default();
        let (tx, rx) = controls();
        tx.send(Control::Stop).unwrap();
        assert_eq!(supervise(&h, &rec, &rx), Ended::Stopped);
        assert_eq!(*calls.borrow(), ["start", "stop"]);
        assert_eq!(*rec.0.borrow(), ["START_PENDING 30s", "RUNNING", "STOP_PENDING 40s"]);
    }

    #[test]
    fn failed_stop_on_request_is_reported() {
        let (h, _) = host(&[("stop", OcfStatus::ErrGeneric)], 0);
        let (tx, rx) = controls();
        tx.send(Control::Stop).unwrap();
        assert_eq!(supervise(&h, &Recorder::default(), &rx), Ended::Failed(OcfStatus::ErrGeneric));
    }
}
