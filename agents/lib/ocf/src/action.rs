//! The actions an agent can be asked to perform.

use std::fmt;

/// One OCF action. `migrate_to`/`migrate_from` are Pacemaker extensions; `status` (the legacy
/// LSB name) is deliberately absent: OCF 1.1 dropped it and Pacemaker never calls it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Start,
    Stop,
    Monitor,
    MetaData,
    ValidateAll,
    Promote,
    Demote,
    Notify,
    Reload,
    ReloadAgent,
    MigrateTo,
    MigrateFrom,
}

impl Action {
    pub const ALL: [Action; 12] = [
        Action::Start,
        Action::Stop,
        Action::Monitor,
        Action::MetaData,
        Action::ValidateAll,
        Action::Promote,
        Action::Demote,
        Action::Notify,
        Action::Reload,
        Action::ReloadAgent,
        Action::MigrateTo,
        Action::MigrateFrom,
    ];

    /// The name on the command line and in meta-data.
    pub fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Monitor => "monitor",
            Action::MetaData => "meta-data",
            Action::ValidateAll => "validate-all",
            Action::Promote => "promote",
            Action::Demote => "demote",
            Action::Notify => "notify",
            Action::Reload => "reload",
            Action::ReloadAgent => "reload-agent",
            Action::MigrateTo => "migrate_to",
            Action::MigrateFrom => "migrate_from",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == s)
    }

    /// Actions that exist only in OCF 1.1 and must not appear in 1.0 meta-data (the 1.0 DTD
    /// enumerates action names).
    pub fn is_ocf_1_1_only(self) -> bool {
        matches!(self, Action::ReloadAgent)
    }

    /// The usage line printed for an unknown action.
    pub fn usage(program: &str, supported: &[Action]) -> String {
        let names: Vec<&str> = supported.iter().map(|a| a.name()).collect();
        format!("usage: {program} {{{}}}", names.join("|"))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.name()), Some(a));
        }
        assert_eq!(Action::parse("status"), None);
        assert_eq!(Action::parse("Start"), None);
    }
}
