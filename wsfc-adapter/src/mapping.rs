//! What WSFC sees for each OCF result, in each mode. The README table is generated from here
//! ([`result_table`]) and a test checks that the README carries exactly that table.

use hale_ocf::OcfStatus;

/// How the adapter reads an agent's start or monitor result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Running: the resource stays (or comes) online.
    Healthy,
    /// Running, but failure is more likely: stays online, a warning event (2007) is written.
    Degraded,
    /// Not running or broken: stop runs, and WSFC is told the resource failed, with the OCF
    /// code as the service-specific exit code (service) or process exit code (app).
    Failed,
}

/// The one mapping. WSFC has no promoted role, so 8 counts as running and 9 as failed.
pub fn classify(status: OcfStatus) -> Verdict {
    match status {
        OcfStatus::Success | OcfStatus::RunningPromoted => Verdict::Healthy,
        OcfStatus::Degraded | OcfStatus::DegradedPromoted => Verdict::Degraded,
        _ => Verdict::Failed,
    }
}

/// The OCF results the README table lists (4, insufficient privileges, behaves like any
/// failure and is listed too).
pub const TABLE_CODES: [i32; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 190, 191];

/// The cells of one table row: service mode, app mode, script mode.
pub fn row(status: OcfStatus) -> [String; 3] {
    let code = status.code();
    match classify(status) {
        Verdict::Healthy => [
            "RUNNING (resource Online)".into(),
            "adapter keeps running (Online)".into(),
            "Online returns 0; IsAlive returns true".into(),
        ],
        Verdict::Degraded => [
            "RUNNING, warning event 2007".into(),
            "keeps running, warning event 2007".into(),
            "Online returns 0; IsAlive returns true".into(),
        ],
        Verdict::Failed => [
            format!("stop runs, then STOPPED, exit 1066 with service-specific code {code} (resource Failed)"),
            format!("stop runs, then the adapter exits with code {code} (resource Failed)"),
            "Online returns 1 / IsAlive returns false (resource Failed)".into(),
        ],
    }
}

/// The Markdown table of every OCF result, as the README shows it.
pub fn result_table() -> String {
    let mut t = String::from(
        "| OCF result (start or monitor) | `service` mode (Generic Service) | `app` mode (Generic Application) | `script` mode (Generic Script) |\n\
         |---|---|---|---|\n",
    );
    for code in TABLE_CODES {
        let s = OcfStatus::from_code(code).expect("an OCF code");
        let [svc, app, script] = row(s);
        t.push_str(&format!("| {code} {} | {svc} | {app} | {script} |\n", s.name()));
    }
    t
}

/// The exit codes the generated JScript's IsAlive counts as alive.
pub fn alive_codes() -> Vec<i32> {
    OcfStatus::ALL.into_iter().filter(|s| classify(*s) != Verdict::Failed).map(OcfStatus::code).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_table_matches_the_code() {
        let readme = include_str!("../README.md");
        let table = result_table();
        assert!(readme.contains(&table), "wsfc-adapter/README.md must contain exactly:\n{table}");
    }

    #[test]
    fn mapping() {
        assert_eq!(classify(OcfStatus::Success), Verdict::Healthy);
        assert_eq!(classify(OcfStatus::RunningPromoted), Verdict::Healthy);
        assert_eq!(classify(OcfStatus::Degraded), Verdict::Degraded);
        for s in [OcfStatus::ErrGeneric, OcfStatus::NotRunning, OcfStatus::ErrConfigured, OcfStatus::FailedPromoted] {
            assert_eq!(classify(s), Verdict::Failed);
        }
        assert_eq!(alive_codes(), [0, 8, 190, 191]);
    }
}
