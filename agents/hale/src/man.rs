//! `hale man`: manual pages in roff, generated from the same schema as meta-data (each agent's
//! [`Param`](hale_ocf::Param) list, actions and info) and, for `hale` itself, from the clap
//! definition of the command line, so the documentation cannot drift from the behaviour.
//!
//! Agents get section 7, named like resource-agents' pages (`ocf_heartbeat_IPaddr2(7)`):
//! `ocf_hale_<agent>(7)`. `hale` gets section 8, as pcs(8) and crm_resource(8): it is an
//! administrator's command (installing and running agents needs root).
//!
//! Everything that comes from a schema is escaped ([`text`]), so no description can inject a
//! roff request.

use clap::builder::PossibleValuesParser;
use clap::{Arg, ArgAction, Command};
use hale_ocf::AnyAgent;
use hale_ocf::{Action, Kind, OcfStatus};
use std::fmt::Write;
use std::fs;
use std::path::{Path, PathBuf};

/// The workspace version: the package version, `hale --version` and `resource-agent version=`.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where the packages and `hale install --ocf-root /usr/lib/ocf` put things.
const OCF_ROOT: &str = "/usr/lib/ocf";

/// The page name of an agent: `ocf_hale_<agent>`, as resource-agents names its pages.
pub fn agent_page_name(agent: &str) -> String {
    format!("ocf_hale_{agent}")
}

/// Text for a roff text line: backslashes become `\e`; `-`, `'` and `` ` `` become `\-`,
/// `\(aq` and `\(ga` (so options, paths and quoted values copy as the ASCII characters rather
/// than typographic hyphens and quotes); and each line starting with `.` (a request) gets the
/// zero-width `\&` in front.
fn text(s: &str) -> String {
    let escaped = s.replace('\\', "\\e").replace('-', "\\-").replace('\'', "\\(aq").replace('`', "\\(ga");
    // Help texts may hold non-ASCII (an arrow, a dash): groff's \[uXXXX] names any code point,
    // so the page renders the same whatever the reader's locale and input encoding.
    let escaped: String =
        escaped.chars().map(|c| if c.is_ascii() { c.to_string() } else { format!("\\[u{:04X}]", c as u32) }).collect();
    escaped
        .split('\n')
        .map(|l| if l.starts_with('.') || l.starts_with('\'') { format!("\\&{l}") } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A macro argument, quoted: like [`text`], with `"` as `\(dq` and no line breaks.
fn arg(s: &str) -> String {
    format!("\"{}\"", text(&s.replace(['\n', '\r'], " ")).replace('"', "\\(dq"))
}

/// Paragraphs of a description: blank lines separate them, other whitespace is folded (roff
/// fills the lines itself).
fn paragraphs(s: &str) -> Vec<String> {
    s.split("\n\n").map(|p| p.split_whitespace().collect::<Vec<_>>().join(" ")).filter(|p| !p.is_empty()).collect()
}

/// A sentence ends with a full stop.
fn sentence(s: &str) -> String {
    let s = s.trim();
    if s.ends_with(['.', '!', '?', ':']) {
        s.to_string()
    } else {
        format!("{s}.")
    }
}

fn bold(s: &str) -> String {
    format!("\\fB{}\\fR", text(s))
}

fn italic(s: &str) -> String {
    format!("\\fI{}\\fR", text(s))
}

fn kind_name(kind: &Kind) -> String {
    match kind {
        Kind::String => "string".into(),
        Kind::Integer => "integer".into(),
        Kind::Boolean => "boolean".into(),
        Kind::Seconds => "seconds".into(),
        Kind::Select(options) => options.join("|"),
    }
}

/// What an action does, in the words of the OCF standard and Pacemaker's documentation.
fn action_purpose(action: Action) -> &'static str {
    match action {
        Action::Start => "Start the resource; succeeds only once it is running.",
        Action::Stop => "Stop the resource; succeeds when nothing of it is left running.",
        Action::Monitor => "Report whether the resource is running (0), cleanly stopped (7) or failed.",
        Action::MetaData => "Print the agent's description, parameters and actions as XML.",
        Action::ValidateAll => "Check the parameters without changing anything.",
        Action::Promote => "Promote the resource to the promoted role.",
        Action::Demote => "Demote the resource to the unpromoted role.",
        Action::Notify => "Receive a notification about a clone instance's change.",
        Action::Reload => "Apply changed parameters without a restart (legacy name).",
        Action::ReloadAgent => "Take changed reloadable parameters into use without touching the service.",
        Action::MigrateTo => "Move the resource away from this node (live migration, source side).",
        Action::MigrateFrom => "Receive the resource on this node (live migration, target side).",
    }
}

/// What Pacemaker does with an exit code.
fn status_meaning(status: OcfStatus) -> &'static str {
    match status {
        OcfStatus::Success => "The action succeeded; for monitor, the resource is running.",
        OcfStatus::ErrGeneric => "The action failed; the cluster may recover by restarting the resource here.",
        OcfStatus::ErrArgs => "A parameter is invalid on this node; the resource is kept off this node.",
        OcfStatus::Unimplemented => "The action is not supported by this agent.",
        OcfStatus::ErrPerm => "Insufficient privileges on this node.",
        OcfStatus::NotInstalled => "Required software is missing on this node; the resource is kept off this node.",
        OcfStatus::ErrConfigured => "The configuration is wrong everywhere; the resource is stopped on every node.",
        OcfStatus::NotRunning => "The resource is cleanly stopped (the expected answer of a probe).",
        OcfStatus::RunningPromoted => "The resource is running in the promoted role.",
        OcfStatus::FailedPromoted => "The resource failed in the promoted role.",
        OcfStatus::Degraded => "The resource is running, but failure is more likely than usual.",
        OcfStatus::DegradedPromoted => "The resource is promoted, but failure is more likely than usual.",
    }
}

fn header(out: &mut String, name: &str, section: u8, manual: &str) {
    let _ = writeln!(out, ".\\\" Generated by hale {VERSION} from the agents' schemas; do not edit.");
    let _ = writeln!(
        out,
        ".TH {} {section} \"\" {} {}",
        arg(&name.to_uppercase()),
        arg(&format!("hale {VERSION}")),
        arg(manual)
    );
    // As resource-agents' pages: no hyphenation (names and paths stay whole), ragged right.
    out.push_str(".nh\n.ad l\n");
}

/// The manual page of one agent, `ocf_hale_<agent>(7)`.
pub fn agent_page(agent: &dyn AnyAgent, all_agents: &[&str]) -> String {
    let info = agent.info();
    let page = agent_page_name(info.name);
    let mut out = String::new();
    header(&mut out, &page, 7, "OCF resource agents");

    out.push_str(".SH NAME\n");
    let _ = writeln!(out, "{} \\- {}", text(&page), text(info.shortdesc));

    out.push_str(".SH SYNOPSIS\n");
    let mut synopsis = vec![bold(&format!("{OCF_ROOT}/resource.d/hale/{}", info.name))];
    let mut actions: Vec<&str> = Vec::new();
    for name in agent.actions().iter().map(|a| a.action.name()).chain([Action::MetaData.name()]) {
        if !actions.contains(&name) {
            actions.push(name);
        }
    }
    synopsis.push(format!("{{{}}}", actions.iter().map(|a| bold(a)).collect::<Vec<_>>().join("|")));
    let _ = writeln!(out, "{}", synopsis.join(" "));
    out.push_str(
        ".PP\nThe parameters arrive as environment variables \\fBOCF_RESKEY_\\fR\\fIname\\fR, set by Pacemaker.\n",
    );

    out.push_str(".SH DESCRIPTION\n");
    for (i, p) in paragraphs(info.longdesc).iter().enumerate() {
        if i > 0 {
            out.push_str(".PP\n");
        }
        let _ = writeln!(out, "{}", text(p));
    }

    out.push_str(".SH SUPPORTED PARAMETERS\n");
    for p in agent.params() {
        out.push_str(".TP\n");
        let _ = writeln!(out, "{}={}", bold(p.name), italic(&kind_name(&p.kind)));
        let _ = writeln!(out, "{}", text(&sentence(p.shortdesc)));
        for para in paragraphs(p.longdesc) {
            let _ = writeln!(out, ".IP\n{}", text(&para));
        }
        let mut facts = Vec::new();
        if p.required {
            facts.push("Required.".to_string());
        }
        if let Some(d) = p.default {
            facts.push(format!("Default: {}.", bold(d)));
        }
        if p.reloadable {
            facts.push("Reloadable: a change is applied by reload\\-agent, without a restart.".to_string());
        }
        if let Some(g) = p.unique_group {
            facts.push(format!("Unique group {}: no two resources may have the same values for it.", bold(g)));
        }
        if p.secret {
            facts.push("Secret: never logged and never put on a command line.".to_string());
        }
        if !facts.is_empty() {
            let _ = writeln!(out, ".IP\n{}", facts.join(" "));
        }
    }

    out.push_str(".SH SUPPORTED ACTIONS\n");
    let mut described: Vec<Action> = Vec::new();
    for spec in agent.actions() {
        out.push_str(".TP\n");
        let _ = writeln!(out, "{}", bold(spec.action.name()));
        let mut facts = vec![format!("timeout {} s", spec.timeout)];
        if let Some(i) = spec.interval {
            facts.push(format!("interval {i} s"));
        }
        if let Some(d) = spec.depth {
            facts.push(format!("depth {d} (OCF_CHECK_LEVEL={d})"));
        }
        if let Some(r) = spec.role {
            facts.push(format!("role {r}"));
        }
        let purpose = if described.contains(&spec.action) { "" } else { action_purpose(spec.action) };
        described.push(spec.action);
        let advised = format!("Advised {}.", facts.join(", "));
        let _ = writeln!(
            out,
            "{}",
            text(if purpose.is_empty() { advised } else { format!("{purpose} {advised}") }.as_str())
        );
    }
    if !described.contains(&Action::MetaData) {
        let _ = writeln!(out, ".TP\n{}\n{}", bold(Action::MetaData.name()), text(action_purpose(Action::MetaData)));
    }

    out.push_str(".SH EXIT STATUS\n");
    let promotable = agent.actions().iter().any(|a| a.action == Action::Promote);
    for status in OcfStatus::ALL {
        let code = status.code();
        let relevant = code <= 7 || (promotable && status != OcfStatus::Degraded);
        if relevant {
            let _ = writeln!(
                out,
                ".TP\n{} {}\n{}",
                bold(&code.to_string()),
                text(status.name()),
                text(status_meaning(status))
            );
        }
    }
    out.push_str(".PP\nEvery failure prints one line starting with \\fBocf\\-exit\\-reason:\\fR that says why.\n");

    out.push_str(".SH EXAMPLE\n");
    let mut create = vec![format!("pcs resource create {}\\-1 ocf:hale:{}", text(info.name), text(info.name))];
    for p in agent.params().iter().filter(|p| p.required) {
        create.push(format!("{}={}", text(p.name), italic(&kind_name(&p.kind).to_uppercase())));
    }
    let _ = writeln!(out, ".PP\n.nf\n.RS\n{}\n.RE\n.fi", create.join(" \\e\n    "));
    out.push_str(".PP\npcs adds the advised operations above. To try an action by hand, as Pacemaker would run it:\n");
    let mut run = format!("hale run {} validate\\-all", text(info.name));
    for p in agent.params().iter().filter(|p| p.required) {
        let _ = write!(run, " \\-p {}={}", text(p.name), italic(&kind_name(&p.kind).to_uppercase()));
    }
    let _ = writeln!(out, ".PP\n.nf\n.RS\n{run}\n.RE\n.fi");

    out.push_str(".SH FILES\n");
    let _ = writeln!(
        out,
        ".TP\n{}\nThe agent: a link to the multi\\-call program below, which acts as this agent when called by this name.",
        bold(&format!("{OCF_ROOT}/resource.d/hale/{}", info.name))
    );
    let _ = writeln!(
        out,
        ".TP\n{}\nThe program behind every Hale agent and the \\fBhale\\fR command.",
        bold(&format!("{OCF_ROOT}/lib/hale/hale"))
    );

    out.push_str(".SH SEE ALSO\n");
    let mut see = vec!["\\fBhale\\fR(8)".to_string()];
    for other in all_agents.iter().filter(|a| **a != info.name) {
        see.push(format!("\\fB{}\\fR(7)", text(&agent_page_name(other))));
    }
    see.extend(["\\fBpcs\\fR(8)", "\\fBcrm_resource\\fR(8)", "\\fBpacemaker\\-schedulerd\\fR(7)"].map(String::from));
    let _ = writeln!(out, "{}", see.join(", "));
    out
}

fn takes_value(a: &Arg) -> bool {
    matches!(a.get_action(), ArgAction::Set | ArgAction::Append)
}

fn is_builtin(a: &Arg) -> bool {
    matches!(a.get_action(), ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version)
}

fn value_name(a: &Arg) -> String {
    a.get_value_names()
        .and_then(|v| v.first().map(|s| s.to_string()))
        .unwrap_or_else(|| a.get_id().as_str().to_uppercase())
}

/// The usage of one argument in a synopsis: `\fIAGENT\fR`, `[\fB\-\-ocf\fR \fIOCF\fR]`...
fn usage(a: &Arg) -> String {
    let repeat = if matches!(a.get_action(), ArgAction::Append) { "..." } else { "" };
    let core = if a.is_positional() {
        italic(&value_name(a))
    } else {
        let flag = match (a.get_long(), a.get_short()) {
            (Some(l), _) => bold(&format!("--{l}")),
            (None, Some(s)) => bold(&format!("-{s}")),
            (None, None) => italic(a.get_id().as_str()),
        };
        if takes_value(a) {
            format!("{flag} {}", italic(&value_name(a)))
        } else {
            flag
        }
    };
    if a.is_required_set() {
        format!("{core}{repeat}")
    } else {
        format!("[{core}]{repeat}")
    }
}

fn flags(a: &Arg) -> String {
    let mut names = Vec::new();
    if let Some(s) = a.get_short() {
        names.push(bold(&format!("-{s}")));
    }
    if let Some(l) = a.get_long() {
        names.push(bold(&format!("--{l}")));
    }
    if names.is_empty() {
        return italic(&value_name(a));
    }
    let mut out = names.join(", ");
    if takes_value(a) {
        let _ = write!(out, " {}", italic(&value_name(a)));
    }
    out
}

fn arg_help(a: &Arg) -> String {
    let mut help = a.get_long_help().or(a.get_help()).map(|h| sentence(&h.to_string())).unwrap_or_default();
    if !takes_value(a) {
        return help;
    }
    let values: Vec<String> =
        a.get_possible_values().iter().filter(|v| !v.is_hide_set()).map(|v| v.get_name().to_string()).collect();
    if !values.is_empty() && !a.is_hide_possible_values_set() {
        let _ = write!(help, " One of: {}.", values.join(", "));
    }
    let defaults: Vec<String> = a.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
    if !defaults.is_empty() && !a.is_hide_default_value_set() {
        let _ = write!(help, " Default: {}.", defaults.join(", "));
    }
    help.trim().to_string()
}

/// The subcommands a page documents: not hidden, not clap's own `help`.
fn visible(cmd: &Command) -> Vec<&Command> {
    cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help").collect()
}

/// One documented form: the words after `hale` that lead to it, and whether it has
/// subcommands of its own (`hale lock` is a group; `hale lock acquire` a form to run).
struct Form<'a> {
    words: Vec<&'a str>,
    cmd: &'a Command,
    group: bool,
}

/// Every subcommand of `cmd`, depth first, so `hale lock acquire` is documented and not only
/// `hale lock`.
fn forms<'a>(cmd: &'a Command, prefix: &[&'a str], out: &mut Vec<Form<'a>>) {
    for sub in visible(cmd) {
        let mut words = prefix.to_vec();
        words.push(sub.get_name());
        let group = !visible(sub).is_empty();
        out.push(Form { words: words.clone(), cmd: sub, group });
        if group {
            forms(sub, &words, out);
        }
    }
}

/// One form of the command: `hale run AGENT ACTION [--param KEY=VALUE]...`.
fn synopsis(form: &Form) -> String {
    let mut line = vec![bold("hale")];
    line.extend(form.words.iter().map(|w| bold(w)));
    line.extend(form.cmd.get_arguments().filter(|a| !is_builtin(a) && !a.is_hide_set()).map(usage));
    if form.group {
        line.push(italic("COMMAND"));
    }
    line.join(" ")
}

/// The manual page of the `hale` command, `hale(8)`: its subcommands and options come from
/// `cmd` (the clap definition), the agent list from the registry.
pub fn hale_page(cmd: &Command, agents: &[Box<dyn AnyAgent>]) -> String {
    let mut out = String::new();
    header(&mut out, "hale", 8, "System Administration");
    let about = cmd.get_about().map(|s| s.to_string()).unwrap_or_default();
    let _ = writeln!(out, ".SH NAME\n{} \\- {}", text("hale"), text(&about));

    let mut subcommands = Vec::new();
    forms(cmd, &[], &mut subcommands);
    // Filled lines, one per form (.br), so a long one wraps instead of running off the page.
    out.push_str(".SH SYNOPSIS\n");
    for form in subcommands.iter().filter(|f| !f.group) {
        let _ = writeln!(out, "{}\n.br", synopsis(form));
    }
    let _ = writeln!(out, "{} [{}|{}]\n.br", bold("hale"), bold("--help"), bold("--version"));
    let _ = writeln!(out, "{}{} {}", bold(&format!("{OCF_ROOT}/resource.d/hale/")), italic("AGENT"), italic("ACTION"));

    out.push_str(".SH DESCRIPTION\n");
    out.push_str(
        "\\fBhale\\fR lists, describes, documents, runs and installs the Hale OCF resource agents. \
         One program is every agent: installed as \\fB/usr/lib/ocf/resource.d/hale/\\fR\\fIAGENT\\fR \
         (a link to \\fB/usr/lib/ocf/lib/hale/hale\\fR), it sees the agent's name in the name it was \
         called by and behaves as that agent, taking the action as its sole argument as the OCF \
         standard requires. Pacemaker, \\fBpcs\\fR(8) and \\fBcrm_resource\\fR(8) find the agents \
         there as \\fBocf:hale:\\fR\\fIAGENT\\fR.\n",
    );

    out.push_str(".SH COMMANDS\n");
    for form in &subcommands {
        let sub = form.cmd;
        let _ = writeln!(out, ".TP\n{}", synopsis(form));
        let about = sub.get_long_about().or(sub.get_about()).map(|s| s.to_string()).unwrap_or_default();
        for (i, p) in paragraphs(&about).iter().enumerate() {
            if i > 0 {
                out.push_str(".IP\n");
            }
            let _ = writeln!(out, "{}", text(&sentence(p)));
        }
        let args: Vec<&Arg> = sub.get_arguments().filter(|a| !is_builtin(a) && !a.is_hide_set()).collect();
        let described: Vec<&&Arg> = args.iter().filter(|a| !arg_help(a).is_empty()).collect();
        if !described.is_empty() {
            out.push_str(".RS\n");
            for a in described {
                let _ = writeln!(out, ".TP\n{}\n{}", flags(a), text(&arg_help(a)));
            }
            out.push_str(".RE\n");
        }
    }

    out.push_str(".SH OPTIONS\n");
    let _ = writeln!(
        out,
        ".TP\n{}, {}\nPrint help (of the command, or of a subcommand after it).",
        bold("-h"),
        bold("--help")
    );
    let _ = writeln!(
        out,
        ".TP\n{}, {}\nPrint the version, which is also every agent's version.",
        bold("-V"),
        bold("--version")
    );

    out.push_str(".SH AGENTS\n");
    for a in agents {
        let i = a.info();
        let _ = writeln!(
            out,
            ".TP\n{}\n{} See \\fB{}\\fR(7).",
            bold(&format!("ocf:hale:{}", i.name)),
            text(&sentence(i.shortdesc)),
            text(&agent_page_name(i.name))
        );
    }

    out.push_str(".SH EXIT STATUS\n");
    out.push_str(
        "0 on success; 2 when the command line or an agent name is wrong. \\fBhale run\\fR exits \
         with the OCF exit code of the action it ran, as the agent would.\n",
    );

    out.push_str(".SH FILES\n");
    for (path, what) in [
        ("/usr/lib/ocf/lib/hale/hale", "The program (the package's copy; \\fB/usr/bin/hale\\fR links to it)."),
        ("/usr/lib/ocf/resource.d/hale/", "One link per agent, where Pacemaker looks for \\fBocf:hale:\\fR agents."),
        ("/run/hale/", "Runtime state of the agents (pidfiles), created by the agents when they first need it."),
        ("/var/lib/hale/", "Persistent state of the agents, created by the package."),
    ] {
        let _ = writeln!(out, ".TP\n{}\n{what}", bold(path));
    }

    out.push_str(".SH EXAMPLES\n.nf\n.RS\n");
    for line in [
        "hale list",
        "hale describe daemon",
        "hale run daemon start \\-p command=\"sleep 100\"",
        "hale install \\-\\-ocf\\-root /usr/lib/ocf",
        "hale man daemon | man \\-l \\-",
    ] {
        let _ = writeln!(out, "{line}");
    }
    out.push_str(".RE\n.fi\n");

    out.push_str(".SH SEE ALSO\n");
    let mut see: Vec<String> =
        agents.iter().map(|a| format!("\\fB{}\\fR(7)", text(&agent_page_name(a.info().name)))).collect();
    see.extend(["\\fBpcs\\fR(8)", "\\fBcrm_resource\\fR(8)", "\\fBcrm_mon\\fR(8)"].map(String::from));
    let _ = writeln!(out, "{}", see.join(", "));
    out
}

/// Write every page under `dir` as `man8/hale.8` and `man7/ocf_hale_<agent>.7`; returns the
/// files written.
pub fn write_all(dir: &Path, cmd: &Command, agents: &[Box<dyn AnyAgent>]) -> Result<Vec<PathBuf>, String> {
    let names: Vec<&str> = agents.iter().map(|a| a.info().name).collect();
    let mut pages = vec![(dir.join("man8/hale.8"), hale_page(cmd, agents))];
    for a in agents {
        let name = a.info().name;
        pages.push((dir.join(format!("man7/{}.7", agent_page_name(name))), agent_page(a.as_ref(), &names)));
    }
    let mut written = Vec::new();
    for (path, content) in pages {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        fs::write(&path, content).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// The command line as the completion scripts see it: the `agent` arguments complete to the
/// registry's agent names and `action` to the OCF actions. Only for generating completions;
/// parsing stays as it is, so an unknown agent gets hale's own error message.
pub fn for_completion(mut cmd: Command) -> Command {
    let subs: Vec<String> = cmd.get_subcommands().map(|s| s.get_name().to_string()).collect();
    for name in subs {
        cmd = cmd.mut_subcommand(name, |mut sub| {
            let ids: Vec<String> = sub.get_arguments().map(|a| a.get_id().to_string()).collect();
            if ids.iter().any(|i| i == "agent") {
                sub = sub.mut_arg("agent", |a| a.value_parser(PossibleValuesParser::new(hale_registry::names())));
            }
            if ids.iter().any(|i| i == "action") {
                let actions: Vec<&'static str> = Action::ALL.iter().map(|a| a.name()).collect();
                sub = sub.mut_arg("action", |a| a.value_parser(PossibleValuesParser::new(actions)));
            }
            sub
        });
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_requests_backslashes_and_hyphens() {
        assert_eq!(text(".TH x\n'x a\\b c-d"), "\\&.TH x\n\\(aqx a\\eb c\\-d");
        assert_eq!(arg("say \"hi\""), "\"say \\(dqhi\\(dq\"");
        assert_eq!(text("host → dependents"), "host \\[u2192] dependents");
    }

    #[test]
    fn hale_page_follows_the_command_line_and_the_registry() {
        let cmd = Command::new("hale").about("About hale").subcommand(
            Command::new("run").about("Run one action").arg(Arg::new("agent").required(true)).arg(
                Arg::new("param")
                    .short('p')
                    .long("param")
                    .value_name("KEY=VALUE")
                    .action(ArgAction::Append)
                    .help("A parameter"),
            ),
        );
        let page = hale_page(&cmd, &hale_registry::agents());
        assert!(
            page.contains("\\fBhale\\fR \\fBrun\\fR \\fIAGENT\\fR [\\fB\\-\\-param\\fR \\fIKEY=VALUE\\fR]...\n"),
            "{page}"
        );
        assert!(page.contains(".TP\n\\fB\\-p\\fR, \\fB\\-\\-param\\fR \\fIKEY=VALUE\\fR\nA parameter.\n"), "{page}");
        for name in hale_registry::names() {
            assert!(page.contains(&format!("\\fBocf:hale:{}\\fR", text(name))), "{name} missing");
            assert!(page.contains(&format!("\\fB{}\\fR(7)", text(&agent_page_name(name)))), "{name} missing");
        }
    }

    #[test]
    fn every_agent_page_lists_every_parameter_and_action() {
        let agents = hale_registry::agents();
        let names: Vec<&str> = agents.iter().map(|a| a.info().name).collect();
        for a in &agents {
            let page = agent_page(a.as_ref(), &names);
            assert!(page.contains(&format!(".TH \"OCF_HALE_{}\" 7", a.info().name.to_uppercase().replace('-', "\\-"))));
            for p in a.params() {
                assert!(page.contains(&format!("\\fB{}\\fR=", text(p.name))), "{} missing", p.name);
            }
            for s in a.actions() {
                assert!(page.contains(&format!(".TP\n\\fB{}\\fR\n", text(s.action.name()))), "{:?} missing", s.action);
            }
            // No line of generated text may start a request other than ours.
            for line in page.lines() {
                if let Some(rest) = line.strip_prefix('.') {
                    let known = ["TH", "SH", "TP", "IP", "PP", "RS", "RE", "nf", "fi", "nh", "ad", "br", "\\\""];
                    assert!(known.iter().any(|k| rest.starts_with(k)), "unexpected request: {line}");
                }
            }
        }
    }
}
