//! Meta-data, rendered for the OCF version the manager declared.
//!
//! Pacemaker declares 1.1 and gets 1.1 (reloadable, unique-group, select, reload-agent). Anyone
//! else (ocf-tester, an older manager, a person) gets 1.0 with the `ra-api-1.dtd` DOCTYPE and
//! none of the 1.1 constructs, because ocf-tester validates against that strict DTD.
//!
//! Secret parameters are not marked `private="1"`: Pacemaker understands the attribute, but
//! the `ocf-1.1.rng` of pcs 0.11 (Debian 12) rejects it ("Invalid attribute private"), and pcs
//! then refuses the agent. Secrets stay out of logs and argv in any case (see `Param::secret`).

use crate::action::Action;
use crate::agent::{ActionSpec, AgentInfo};
use crate::env::OcfVersion;
use crate::schema::{Kind, Param};
use quick_xml::escape::escape;
use std::fmt::Write;

/// Render the meta-data document.
pub fn render(info: &AgentInfo, params: &[Param], actions: &[ActionSpec], version: OcfVersion) -> String {
    let v11 = version == OcfVersion::V1_1;
    let mut x = String::with_capacity(8192);
    x.push_str("<?xml version=\"1.0\"?>\n");
    if !v11 {
        x.push_str("<!DOCTYPE resource-agent SYSTEM \"ra-api-1.dtd\">\n");
    }
    let _ = writeln!(x, "<resource-agent name=\"{}\" version=\"{}\">", escape(info.name), escape(info.version));
    let _ = writeln!(x, "<version>{}</version>", if v11 { "1.1" } else { "1.0" });
    let _ = writeln!(x, "<longdesc lang=\"en\">\n{}\n</longdesc>", escape(info.longdesc.trim()));
    let _ = writeln!(x, "<shortdesc lang=\"en\">{}</shortdesc>", escape(info.shortdesc));
    x.push_str("\n<parameters>\n");
    for p in params {
        let _ = write!(x, "<parameter name=\"{}\"", escape(p.name));
        if p.required {
            x.push_str(" required=\"1\"");
        }
        match (v11, p.unique_group) {
            (true, Some(g)) => {
                let _ = write!(x, " unique-group=\"{}\"", escape(g));
            }
            (false, Some(_)) => x.push_str(" unique=\"1\""),
            _ => {}
        }
        if v11 && p.reloadable {
            x.push_str(" reloadable=\"1\"");
        }
        x.push_str(">\n");
        let _ = writeln!(x, "<longdesc lang=\"en\">\n{}\n</longdesc>", escape(p.longdesc.trim()));
        let _ = writeln!(x, "<shortdesc lang=\"en\">{}</shortdesc>", escape(p.shortdesc));
        let ty = match p.kind {
            Kind::String | Kind::Seconds => "string",
            Kind::Integer => "integer",
            Kind::Boolean => "boolean",
            Kind::Select(_) if v11 => "select",
            Kind::Select(_) => "string",
        };
        let _ = write!(x, "<content type=\"{ty}\"");
        if let Some(d) = p.default {
            let _ = write!(x, " default=\"{}\"", escape(d));
        }
        match p.kind {
            Kind::Select(options) if v11 => {
                x.push_str(">\n");
                for o in options {
                    let _ = writeln!(x, "<option value=\"{}\" />", escape(*o));
                }
                x.push_str("</content>\n");
            }
            _ => x.push_str(" />\n"),
        }
        x.push_str("</parameter>\n\n");
    }
    x.push_str("</parameters>\n\n<actions>\n");
    for a in actions {
        if !v11 && a.action.is_ocf_1_1_only() {
            continue;
        }
        let _ = write!(x, "<action name=\"{}\" timeout=\"{}s\"", a.action.name(), a.timeout);
        if let Some(i) = a.interval {
            let _ = write!(x, " interval=\"{i}s\"");
        }
        if let Some(d) = a.depth {
            let _ = write!(x, " depth=\"{d}\"");
        }
        if let Some(r) = a.role {
            let _ = write!(x, " role=\"{}\"", escape(r));
        }
        x.push_str(" />\n");
    }
    x.push_str("</actions>\n</resource-agent>\n");
    x
}

/// The actions an agent supports: those it advertises, plus meta-data which every agent has.
pub fn supported_actions(actions: &[ActionSpec]) -> Vec<Action> {
    let mut v: Vec<Action> = actions.iter().map(|a| a.action).collect();
    v.push(Action::MetaData);
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: AgentInfo = AgentInfo { name: "t", shortdesc: "A <test>", longdesc: "Long & text", version: "9.9" };
    const PARAMS: &[Param] = &[
        Param::new("a", "A", "a").required().unique_group("g"),
        Param::new("b", "B", "b").kind(Kind::Select(&["x", "y"])).default("x").reloadable(),
    ];
    const ACTIONS: &[ActionSpec] = &[
        ActionSpec::new(Action::Start, 20),
        ActionSpec::new(Action::Monitor, 20).interval(10).depth(0),
        ActionSpec::new(Action::ReloadAgent, 20),
    ];

    #[test]
    fn ocf_1_1() {
        let x = render(&INFO, PARAMS, ACTIONS, OcfVersion::V1_1);
        assert!(!x.contains("DOCTYPE"));
        assert!(x.contains("<version>1.1</version>"));
        assert!(x.contains("<resource-agent name=\"t\" version=\"9.9\">"));
        assert!(x.contains("unique-group=\"g\""));
        assert!(x.contains("reloadable=\"1\""));
        assert!(x.contains("<content type=\"select\" default=\"x\">"));
        assert!(x.contains("<action name=\"reload-agent\""));
        assert!(x.contains("A &lt;test&gt;") && x.contains("Long &amp; text"));
    }

    #[test]
    fn ocf_1_0_has_no_1_1_constructs() {
        let x = render(&INFO, PARAMS, ACTIONS, OcfVersion::V1_0);
        assert!(x.contains("<!DOCTYPE resource-agent SYSTEM \"ra-api-1.dtd\">"));
        assert!(x.contains("<version>1.0</version>"));
        for bad in ["unique-group", "reloadable", "select", "reload-agent", "<option"] {
            assert!(!x.contains(bad), "{bad} in 1.0 meta-data");
        }
        assert!(x.contains("unique=\"1\""));
        assert!(x.contains("<action name=\"monitor\" timeout=\"20s\" interval=\"10s\" depth=\"0\" />"));
    }

    #[test]
    fn supported_always_has_meta_data() {
        assert_eq!(
            supported_actions(ACTIONS),
            vec![Action::Start, Action::Monitor, Action::MetaData, Action::ReloadAgent]
        );
    }
}
