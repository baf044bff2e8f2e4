//! `hale describe`: the meta-data of an agent as text a person reads.

use hale_ocf::AnyAgent;
use hale_ocf::Kind;
use std::fmt::Write;

fn wrap(text: &str, indent: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + line.len() + 1 + word.len() > width {
            let _ = writeln!(out, "{indent}{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let _ = writeln!(out, "{indent}{line}");
    }
    out
}

pub fn describe(agent: &dyn AnyAgent) -> String {
    let info = agent.info();
    let mut out = String::new();
    let _ = writeln!(out, "ocf:hale:{} ({}) - {}\n", info.name, info.version, info.shortdesc);
    out.push_str(&wrap(info.longdesc, "", 88));
    out.push_str("\nParameters:\n");
    for p in agent.params() {
        let ty = match p.kind {
            Kind::String => "string".to_string(),
            Kind::Integer => "integer".to_string(),
            Kind::Boolean => "boolean".to_string(),
            Kind::Seconds => "seconds".to_string(),
            Kind::Select(o) => o.join("|"),
        };
        let mut flags = vec![ty];
        if p.required {
            flags.push("required".into());
        }
        if let Some(d) = p.default {
            flags.push(format!("default: {d}"));
        }
        if p.reloadable {
            flags.push("reloadable".into());
        }
        if p.secret {
            flags.push("secret".into());
        }
        if let Some(g) = p.unique_group {
            flags.push(format!("unique-group: {g}"));
        }
        let _ = writeln!(out, "  {} ({}): {}", p.name, flags.join(", "), p.shortdesc);
        out.push_str(&wrap(p.longdesc, "      ", 88));
    }
    out.push_str("\nActions:\n");
    for a in agent.actions() {
        let mut extra = String::new();
        if let Some(i) = a.interval {
            let _ = write!(extra, " interval={i}s");
        }
        if let Some(d) = a.depth {
            let _ = write!(extra, " depth={d}");
        }
        if let Some(r) = a.role {
            let _ = write!(extra, " role={r}");
        }
        let _ = writeln!(out, "  {:<14} timeout={}s{extra}", a.action.name(), a.timeout);
    }
    out
}
