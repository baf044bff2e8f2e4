//! The OCF resource-agent contract, and nothing else: no OS code, no knowledge of any agent.
//!
//! An agent implements [`Agent`]: a description, a parameter schema ([`Param`]), the actions it
//! supports ([`ActionSpec`]) and one method per action returning an [`OcfResult`]. The
//! [`runner`] then owns what every agent must get right in the same way: the sole-argument
//! action, the `OCF_*` environment, meta-data for the OCF version the manager speaks,
//! validate-all levels, the invalid-environment rules (stop 0, probe 7, recurring monitor 1),
//! panics turned into exit 1 with a reason, the deadline from `CRM_meta_timeout`, exit codes
//! and the one-line `ocf-exit-reason:`.
//!
//! This crate builds and tests on Windows too: the WSFC adapter runs the same agents.

pub mod action;
pub mod agent;
pub mod env;
pub mod erased;
pub mod logging;
pub mod metadata;
pub mod runner;
pub mod schema;
pub mod status;

pub use action::Action;
pub use agent::{ActionSpec, Agent, AgentInfo, Context, Deadline};
pub use env::{Env, OcfVersion};
pub use erased::AnyAgent;
pub use logging::SyslogSink;
pub use runner::{execute, Execution};
pub use schema::{redact_environment, redact_url, Kind, Param, Shown, Values};
pub use status::{Failure, OcfResult, OcfStatus};

#[cfg(test)]
mod runner_tests {
    use super::*;
    use std::cell::Cell;

    /// A toy agent: `mode=panic` panics in every action; `stopped_unconfigured` counts calls.
    struct Toy {
        unconfigured_stops: Cell<u32>,
    }

    const PARAMS: &[Param] = &[
        Param::new("name", "Name", "A name.").required(),
        Param::new("mode", "Mode", "ok or panic.").kind(Kind::Select(&["ok", "panic", "local"])).default("ok"),
    ];
    const ACTIONS: &[ActionSpec] = &[
        ActionSpec::new(Action::Start, 20),
        ActionSpec::new(Action::Stop, 20),
        ActionSpec::new(Action::Monitor, 20).interval(10),
        ActionSpec::new(Action::ValidateAll, 20),
    ];

    impl Agent for Toy {
        type Config = String;
        const INFO: AgentInfo = AgentInfo { name: "toy", shortdesc: "toy", longdesc: "toy", version: "1" };
        const PARAMS: &'static [Param] = PARAMS;
        const ACTIONS: &'static [ActionSpec] = ACTIONS;
        const CHECK_LEVELS: &'static [u32] = &[10];
        fn configure(&self, v: &Values, _: &Context) -> OcfResult<String> {
            Ok(v.str("mode").unwrap_or("ok").to_string())
        }
        fn validate_host(&self, c: &String, _: &Context) -> OcfResult<()> {
            if c == "local" {
                return Err(Failure::not_installed("no such thing here"));
            }
            Ok(())
        }
        fn start(&self, c: &String, _: &Context) -> OcfResult {
            if c == "panic" {
                panic!("boom");
            }
            Ok(OcfStatus::Success)
        }
        fn stop(&self, _: &String, _: &Context) -> OcfResult {
            Ok(OcfStatus::Success)
        }
        fn monitor(&self, _: &String, _: &Context) -> OcfResult {
            Ok(OcfStatus::NotRunning)
        }
        fn stop_unconfigured(&self, _: &Context, _: &Failure) -> OcfResult {
            self.unconfigured_stops.set(self.unconfigured_stops.get() + 1);
            Ok(OcfStatus::Success)
        }
    }

    fn run(action: &str, pairs: &[(&str, &str)]) -> Execution {
        let env: Env = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        execute(&Toy { unconfigured_stops: Cell::new(0) }, Some(action), &env)
    }

    #[test]
    fn unknown_and_unsupported_actions_are_3_with_usage() {
        for a in ["frobnicate", "promote", "status"] {
            let e = run(a, &[]);
            assert_eq!(e.status, OcfStatus::Unimplemented);
            assert!(e.reason.as_ref().unwrap().contains("usage: toy {start|stop|monitor|meta-data|validate-all}"));
        }
        let e = execute(&Toy { unconfigured_stops: Cell::new(0) }, None, &Env::new());
        assert_eq!(e.status, OcfStatus::Unimplemented);
    }

    #[test]
    fn invalid_environment_rules() {
        let toy = Toy { unconfigured_stops: Cell::new(0) };
        let e = execute(&toy, Some("stop"), &Env::new());
        assert_eq!((e.status, toy.unconfigured_stops.get()), (OcfStatus::Success, 1));
        assert_eq!(run("monitor", &[]).status, OcfStatus::NotRunning);
        let recurring = run("monitor", &[("OCF_RESKEY_CRM_meta_interval", "10000")]);
        assert_eq!(recurring.status, OcfStatus::ErrGeneric);
        assert!(recurring.reason.unwrap().contains("required parameter name"));
        assert_eq!(run("start", &[]).status, OcfStatus::ErrConfigured);
        assert_eq!(
            run("validate-all", &[("OCF_RESKEY_name", "x"), ("OCF_RESKEY_mode", "bad")]).status,
            OcfStatus::ErrConfigured
        );
    }

    #[test]
    fn validate_levels() {
        let base = [("OCF_RESKEY_name", "x"), ("OCF_RESKEY_mode", "local")];
        assert_eq!(run("validate-all", &base).status, OcfStatus::Success);
        let mut with_level = base.to_vec();
        with_level.push(("OCF_CHECK_LEVEL", "20"));
        assert_eq!(run("validate-all", &with_level).status, OcfStatus::NotInstalled);
        assert_eq!(run("start", &base).status, OcfStatus::NotInstalled);
    }

    #[test]
    fn panic_becomes_1_with_reason() {
        let e = run("start", &[("OCF_RESKEY_name", "x"), ("OCF_RESKEY_mode", "panic")]);
        assert_eq!(e.status, OcfStatus::ErrGeneric);
        assert!(e.reason.as_ref().unwrap().contains("internal error in toy start: boom at"), "{:?}", e.reason);
        let line = e.exit_reason_line("ocf-exit-reason:").unwrap();
        assert!(line.starts_with("ocf-exit-reason:internal error"));
        assert!(!line.contains('\n'));
    }

    #[test]
    fn meta_data_follows_declared_version() {
        let e = run("meta-data", &[]);
        assert!(e.stdout.unwrap().contains("<version>1.0</version>"));
        let e = run("meta-data", &[("OCF_RA_VERSION_MAJOR", "1"), ("OCF_RA_VERSION_MINOR", "1")]);
        assert!(e.stdout.unwrap().contains("<version>1.1</version>"));
    }

    #[test]
    fn exit_reason_lines() {
        let e = Execution { status: OcfStatus::ErrArgs, reason: Some("a\nb".into()), stdout: None };
        assert_eq!(e.exit_reason_line("P:").unwrap(), "P:a b");
        let e = Execution { status: OcfStatus::ErrGeneric, reason: None, stdout: None };
        assert_eq!(e.exit_reason_line("ocf-exit-reason:").unwrap(), "ocf-exit-reason:action failed: error");
        let e = Execution { status: OcfStatus::NotRunning, reason: None, stdout: None };
        assert_eq!(e.exit_reason_line("x"), None);
        let e = Execution { status: OcfStatus::Success, reason: None, stdout: None };
        assert_eq!(e.exit_reason_line("x"), None);
    }
}
