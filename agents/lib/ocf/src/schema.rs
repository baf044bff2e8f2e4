//! One typed parameter schema per agent. It drives parsing (with a message that names the
//! parameter and the bad value), defaults, validate-all at level 0, and meta-data, so the four
//! can never disagree.

use crate::env::Env;
use crate::status::Failure;
use std::collections::BTreeMap;
use std::time::Duration;

/// The type of a parameter's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String,
    /// A signed decimal integer.
    Integer,
    /// Pacemaker's booleans: 1/y/yes/on/true and 0/n/no/off/false, any case.
    Boolean,
    /// One of a fixed list. OCF 1.1 `select`; rendered as `string` for OCF 1.0, whose DTD has
    /// no `select`.
    Select(&'static [&'static str]),
    /// Whole seconds, with an optional `s`/`m`/`h` suffix. Rendered as `string` because OCF
    /// has no duration type, but checked here.
    Seconds,
}

/// One parameter: everything meta-data says about it plus the flags the runner acts on.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub name: &'static str,
    pub shortdesc: &'static str,
    pub longdesc: &'static str,
    pub kind: Kind,
    /// The value used when the parameter is unset; shown in meta-data.
    pub default: Option<&'static str>,
    pub required: bool,
    /// OCF 1.1 `unique-group`: no two resources may share the same values for the group.
    pub unique_group: Option<&'static str>,
    /// OCF 1.1 `reloadable`: a change is applied by `reload-agent`, not a restart.
    pub reloadable: bool,
    /// A secret: `private` in meta-data, never logged, never put on a command line.
    pub secret: bool,
    /// How the value is shown in logs when it is not a secret as a whole.
    pub shown: Shown,
}

/// How a parameter's value appears in a log line ([`Values::display_safe`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// As it is.
    Plain,
    /// A `KEY=VALUE ...` list (an environment): the keys are shown, every value is `***`.
    EnvValues,
    /// A URL: the user and password before `@` are `***`.
    Url,
}

/// A URL for a log line or an exit reason: `http://user:pass@host/` becomes
/// `http://***@host/`. Anything without userinfo is returned as is.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}***{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// An environment list (`KEY=VALUE` words, shell-quoted) for a log line: the keys stay, the
/// values become `***`. Words without `=` are shown as `***` too: they may be a value that
/// lost its key to a typo.
pub fn redact_environment(list: &str) -> String {
    list.split_whitespace()
        .map(|w| match w.split_once('=') {
            Some((k, _)) if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                format!("{k}=***")
            }
            _ => "***".to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Param {
    /// A plain optional string parameter; adjust with the builder methods below.
    pub const fn new(name: &'static str, shortdesc: &'static str, longdesc: &'static str) -> Param {
        Param {
            name,
            shortdesc,
            longdesc,
            kind: Kind::String,
            default: None,
            required: false,
            unique_group: None,
            reloadable: false,
            secret: false,
            shown: Shown::Plain,
        }
    }
    pub const fn kind(mut self, kind: Kind) -> Param {
        self.kind = kind;
        self
    }
    pub const fn default(mut self, value: &'static str) -> Param {
        self.default = Some(value);
        self
    }
    pub const fn required(mut self) -> Param {
        self.required = true;
        self
    }
    pub const fn unique_group(mut self, group: &'static str) -> Param {
        self.unique_group = Some(group);
        self
    }
    pub const fn reloadable(mut self) -> Param {
        self.reloadable = true;
        self
    }
    pub const fn secret(mut self) -> Param {
        self.secret = true;
        self
    }
    /// Show the value redacted in logs (see [`Shown`]).
    pub const fn shown(mut self, shown: Shown) -> Param {
        self.shown = shown;
        self
    }

    /// Check one value against the type. The message names the parameter and the value (unless
    /// it is a secret) and says what would be accepted.
    fn check(&self, raw: &str) -> Result<Value, String> {
        let shown = if self.secret { "(hidden)".to_string() } else { format!("'{raw}'") };
        match self.kind {
            Kind::String => Ok(Value::Str(raw.to_string())),
            Kind::Integer => raw
                .trim()
                .parse::<i64>()
                .map(Value::Int)
                .map_err(|_| format!("parameter {}={shown} is not an integer", self.name)),
            Kind::Boolean => parse_bool(raw)
                .map(Value::Bool)
                .ok_or_else(|| format!("parameter {}={shown} is not a boolean (use true or false)", self.name)),
            Kind::Select(options) => {
                if options.contains(&raw) {
                    Ok(Value::Str(raw.to_string()))
                } else {
                    Err(format!("parameter {}={shown} is not one of: {}", self.name, options.join(", ")))
                }
            }
            Kind::Seconds => parse_seconds(raw).map(Value::Duration).ok_or_else(|| {
                format!("parameter {}={shown} is not a duration in seconds (e.g. 30, 30s, 2m)", self.name)
            }),
        }
    }
}

/// Parse Pacemaker's boolean spellings.
pub fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "y" | "yes" | "on" | "true" => Some(true),
        "0" | "n" | "no" | "off" | "false" => Some(false),
        _ => None,
    }
}

/// Parse `N`, `Ns`, `Nm` or `Nh` into a duration.
pub fn parse_seconds(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    let (digits, unit) = match raw.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => raw.split_at(i),
        None => (raw, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let mult = match unit {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        _ => return None,
    };
    n.checked_mul(mult).map(Duration::from_secs)
}

/// A parsed value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Duration(Duration),
}

/// The parameters of one invocation, type-checked against the schema, defaults applied.
/// Unset optional parameters without a default are absent.
#[derive(Clone, Debug, Default)]
pub struct Values {
    values: BTreeMap<&'static str, Value>,
    secrets: Vec<&'static str>,
    shown: BTreeMap<&'static str, Shown>,
}

impl Values {
    /// Parse the `OCF_RESKEY_*` variables of `env` against `schema`. Every problem is
    /// collected, and the first one becomes the message (an exit reason is one line).
    /// Failures here are 6: a missing required parameter or a value of the wrong type is wrong
    /// on every node.
    pub fn parse(schema: &[Param], env: &Env) -> Result<Values, Failure> {
        let mut values = Values::default();
        for p in schema {
            if p.secret {
                values.secrets.push(p.name);
            }
            values.shown.insert(p.name, p.shown);
            // Not unset: a value that is not text is refused, else `user=` with a stray byte
            // would run the service as root.
            if env.param_is_invalid(p.name) {
                return Err(Failure::configured(format!("parameter {} is not valid UTF-8 text", p.name)));
            }
            let raw = env.param(p.name).or(p.default);
            match raw {
                None if p.required => {
                    return Err(Failure::configured(format!(
                        "required parameter {} is not set ({})",
                        p.name, p.shortdesc
                    )))
                }
                None => {}
                Some(raw) => {
                    let v = p.check(raw).map_err(Failure::configured)?;
                    values.values.insert(p.name, v);
                }
            }
        }
        Ok(values)
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.values.get(name) {
            Some(Value::Int(n)) => Some(*n),
            _ => None,
        }
    }
    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.values.get(name) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }
    pub fn duration(&self, name: &str) -> Option<Duration> {
        match self.values.get(name) {
            Some(Value::Duration(d)) => Some(*d),
            _ => None,
        }
    }

    // The accessors below are for parameters that are required or have a default in the
    // schema: parsing has then always produced a value, so the default is written once, in the
    // schema, and never restated at the call site. Asking one for a parameter without a
    // default is a bug in the agent; it panics with the parameter's name (the runner turns
    // that into exit 1 with the reason, and the conformance suite finds it).

    /// A text parameter that is required or has a default.
    pub fn text(&self, name: &str) -> &str {
        self.str(name).unwrap_or_else(|| undefaulted(name))
    }
    /// An integer parameter that is required or has a default.
    pub fn integer(&self, name: &str) -> i64 {
        self.int(name).unwrap_or_else(|| undefaulted(name))
    }
    /// A boolean parameter that is required or has a default.
    pub fn flag(&self, name: &str) -> bool {
        self.bool(name).unwrap_or_else(|| undefaulted(name))
    }
    /// A duration parameter that is required or has a default.
    pub fn seconds(&self, name: &str) -> Duration {
        self.duration(name).unwrap_or_else(|| undefaulted(name))
    }

    /// The values for a log line, secrets replaced by `***`.
    pub fn display_safe(&self) -> String {
        let mut out = Vec::new();
        for (k, v) in &self.values {
            let shown = if self.secrets.contains(k) {
                "***".to_string()
            } else {
                match v {
                    Value::Str(s) => match self.shown.get(k) {
                        Some(Shown::EnvValues) => format!("{:?}", redact_environment(s)),
                        Some(Shown::Url) => format!("{:?}", redact_url(s)),
                        _ => format!("{s:?}"),
                    },
                    Value::Int(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    Value::Duration(d) => format!("{}s", d.as_secs()),
                }
            };
            out.push(format!("{k}={shown}"));
        }
        out.join(" ")
    }
}

fn undefaulted(name: &str) -> ! {
    panic!("parameter {name} has neither a value nor a default in the schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &[Param] = &[
        Param::new("cmd", "Command", "The command.").required(),
        Param::new("count", "Count", "How many.").kind(Kind::Integer).default("3"),
        Param::new("flag", "Flag", "A flag.").kind(Kind::Boolean),
        Param::new("mode", "Mode", "A mode.").kind(Kind::Select(&["a", "b"])).default("a"),
        Param::new("wait", "Wait", "A wait.").kind(Kind::Seconds),
        Param::new("password", "Password", "A secret.").secret(),
    ];

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.to_string())).collect()
    }

    #[test]
    fn defaults_and_types() {
        let v = Values::parse(SCHEMA, &env(&[("cmd", "x"), ("flag", "Yes"), ("wait", "2m")])).unwrap();
        assert_eq!(v.str("cmd"), Some("x"));
        assert_eq!(v.int("count"), Some(3));
        assert_eq!(v.bool("flag"), Some(true));
        assert_eq!(v.str("mode"), Some("a"));
        assert_eq!(v.duration("wait"), Some(Duration::from_secs(120)));
        assert_eq!(v.str("password"), None);
        assert_eq!((v.text("cmd"), v.integer("count"), v.text("mode")), ("x", 3, "a"));
    }

    #[test]
    #[should_panic(expected = "parameter password has neither a value nor a default")]
    fn a_defaulted_accessor_on_an_undefaulted_parameter_is_a_bug() {
        let v = Values::parse(SCHEMA, &env(&[("cmd", "x")])).unwrap();
        let _ = v.text("password");
    }

    #[test]
    fn missing_required_is_6() {
        let e = Values::parse(SCHEMA, &env(&[])).unwrap_err();
        assert_eq!(e.status, crate::OcfStatus::ErrConfigured);
        assert!(e.reason.contains("cmd"), "{}", e.reason);
    }

    #[test]
    fn bad_values_name_parameter_and_value() {
        for (k, v, want) in [
            ("count", "ten", "count='ten' is not an integer"),
            ("flag", "maybe", "flag='maybe' is not a boolean"),
            ("mode", "c", "mode='c' is not one of: a, b"),
            ("wait", "5 years", "wait='5 years' is not a duration"),
        ] {
            let e = Values::parse(SCHEMA, &env(&[("cmd", "x"), (k, v)])).unwrap_err();
            assert!(e.reason.contains(want), "{} vs {want}", e.reason);
        }
    }

    #[test]
    fn environment_values_and_url_credentials_are_hidden() {
        let schema = [
            Param::new("environment", "e", "e").shown(Shown::EnvValues),
            Param::new("health_url", "u", "u").shown(Shown::Url),
        ];
        let mut env = Env::new();
        env.set("OCF_RESKEY_environment", "DB_PASSWORD=hunter2 'OPTS=-a -b' stray");
        env.set("OCF_RESKEY_health_url", "http://admin:PASSWORD@db:8080/x@y");
        let shown = Values::parse(&schema, &env).unwrap().display_safe();
        assert!(!shown.contains("hunter2") && !shown.contains("PASSWORD@") && !shown.contains("stray"), "{shown}");
        assert!(shown.contains("DB_PASSWORD=***") && shown.contains("http://***@db:8080/x@y"), "{shown}");
        assert_eq!(redact_url("https://h/p@q"), "https://h/p@q");
    }

    #[test]
    fn a_value_that_is_not_text_is_refused_not_unset() {
        let schema = [Param::new("user", "u", "u")];
        let env = Env::from_pairs_with_invalid(&[], &["OCF_RESKEY_user"]);
        let e = Values::parse(&schema, &env).unwrap_err();
        assert_eq!(e.status, crate::OcfStatus::ErrConfigured);
        assert!(e.reason.contains("parameter user is not valid UTF-8"), "{}", e.reason);
    }

    #[test]
    fn secrets_are_hidden() {
        let v = Values::parse(SCHEMA, &env(&[("cmd", "x"), ("password", "hunter2")])).unwrap();
        assert_eq!(v.str("password"), Some("hunter2"));
        assert!(!v.display_safe().contains("hunter2"));
        let schema = [Param::new("password", "p", "p").kind(Kind::Integer).secret()];
        let e = Values::parse(&schema, &env(&[("password", "hunter2")])).unwrap_err();
        assert!(!e.reason.contains("hunter2"));
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_seconds("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_seconds("-1"), None);
        assert_eq!(parse_seconds(""), None);
    }
}
