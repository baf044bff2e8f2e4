//! The stored configuration of one resource instance.
//!
//! A text file per resource, `<root>\resources\<name>.conf`, where `<root>` is
//! `%ProgramData%\Hale` on Windows (`/var/lib/hale/wsfc` elsewhere; `HALE_WSFC_ROOT` overrides
//! both, for tests). A file rather than the registry: it is copied, diffed and reviewed like
//! any configuration, and WSFC's registry checkpoints are not needed because every node is
//! configured with the same command. The `resources` directory carries a protected DACL
//! (SYSTEM and Administrators only, inherited by the files), so agent secrets stay private
//! (on Unix: mode 0700/0600).
//!
//! Format: `key=value` lines; `#` starts a comment line; in values `\n` and `\\` are the only
//! escapes. Agent parameters are `param.<name>=<value>`.
//! ```text
//! agent=daemon
//! interval=10
//! deep_every=6
//! param.command='C:\Program Files\Web\web.exe' --port 8080
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Seconds between depth-0 monitors when neither the file nor the agent says.
pub const DEFAULT_INTERVAL: u32 = 10;

/// The configuration of one resource instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceConfig {
    /// The hosted agent (`daemon`).
    pub agent: String,
    /// Seconds between monitors (depth 0).
    pub interval: u32,
    /// Every `deep_every`-th monitor is depth 10 (health checks); 0 never.
    pub deep_every: u32,
    /// Action timeouts in seconds (what `CRM_meta_timeout` would say).
    pub start_timeout: u32,
    pub stop_timeout: u32,
    pub monitor_timeout: u32,
    /// The agent's parameters.
    pub params: BTreeMap<String, String>,
}

impl ResourceConfig {
    /// A configuration with the agent's advised timeouts and intervals: `actions` are the
    /// agent's advertised actions.
    pub fn with_agent_defaults(agent: &str, actions: &[hale_ocf::ActionSpec]) -> ResourceConfig {
        use hale_ocf::Action;
        let timeout = |a: Action| actions.iter().find(|s| s.action == a).map_or(20, |s| s.timeout);
        let monitors: Vec<_> = actions.iter().filter(|s| s.action == Action::Monitor).collect();
        let shallow = monitors.iter().find(|m| m.depth.unwrap_or(0) == 0).and_then(|m| m.interval);
        let deep = monitors.iter().find(|m| m.depth == Some(10)).and_then(|m| m.interval);
        let interval = shallow.unwrap_or(DEFAULT_INTERVAL).max(1);
        ResourceConfig {
            agent: agent.to_string(),
            interval,
            deep_every: deep.map_or(0, |d| (d / interval).max(1)),
            start_timeout: timeout(Action::Start),
            stop_timeout: timeout(Action::Stop),
            monitor_timeout: timeout(Action::Monitor),
            params: BTreeMap::new(),
        }
    }

    pub fn render(&self) -> String {
        let mut s = String::from("# Hale resource configuration, written by hale-wsfc configure.\n");
        let _ = writeln!(s, "agent={}", escape(&self.agent));
        for (k, v) in [
            ("interval", self.interval),
            ("deep_every", self.deep_every),
            ("start_timeout", self.start_timeout),
            ("stop_timeout", self.stop_timeout),
            ("monitor_timeout", self.monitor_timeout),
        ] {
            let _ = writeln!(s, "{k}={v}");
        }
        for (k, v) in &self.params {
            let _ = writeln!(s, "param.{k}={}", escape(v));
        }
        s
    }

    pub fn parse(text: &str) -> Result<ResourceConfig, String> {
        let mut agent = None;
        let mut c = ResourceConfig {
            agent: String::new(),
            interval: DEFAULT_INTERVAL,
            deep_every: 0,
            start_timeout: 60,
            stop_timeout: 60,
            monitor_timeout: 20,
            params: BTreeMap::new(),
        };
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once('=').ok_or_else(|| format!("line {}: not key=value", n + 1))?;
            let v = unescape(v).map_err(|e| format!("line {}: {e}", n + 1))?;
            let num =
                |v: &str| v.trim().parse::<u32>().map_err(|_| format!("line {}: {k}='{v}' is not a number", n + 1));
            match k.trim() {
                "agent" => agent = Some(v),
                "interval" => c.interval = num(&v)?.max(1),
                "deep_every" => c.deep_every = num(&v)?,
                "start_timeout" => c.start_timeout = num(&v)?.max(1),
                "stop_timeout" => c.stop_timeout = num(&v)?.max(1),
                "monitor_timeout" => c.monitor_timeout = num(&v)?.max(1),
                other => match other.strip_prefix("param.") {
                    Some(p) if !p.is_empty() => {
                        c.params.insert(p.to_string(), v);
                    }
                    _ => return Err(format!("line {}: unknown key '{other}'", n + 1)),
                },
            }
        }
        c.agent = agent.filter(|a| !a.is_empty()).ok_or("no agent= line")?;
        Ok(c)
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n").replace('\r', "\\r")
}

fn unescape(v: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            other => return Err(format!("bad escape \\{}", other.map(String::from).unwrap_or_default())),
        }
    }
    Ok(out)
}

/// A resource name: letters, digits, `-`, `_`, `.`; 1 to 64 characters. It becomes a file
/// name, a service name (`hale-<name>`) and a word in the generated script, so nothing else
/// is allowed.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("resource name '{name}' must be 1-64 letters, digits, '-', '_' or '.'"))
    }
}

/// Where configurations and logs live.
pub fn root() -> PathBuf {
    if let Some(r) = std::env::var_os("HALE_WSFC_ROOT").filter(|r| !r.is_empty()) {
        return PathBuf::from(r);
    }
    system_root()
}

/// `%ProgramData%\Hale`, from the known-folder API: services, the cluster's resource host and
/// an administrator's shell must all find the same files, whatever their environment says.
#[cfg(windows)]
fn system_root() -> PathBuf {
    use windows_sys::Win32::System::Com::CoTaskMemFree;
    use windows_sys::Win32::UI::Shell::{FOLDERID_ProgramData, SHGetKnownFolderPath};
    let mut out: windows_sys::core::PWSTR = std::ptr::null_mut();
    // SAFETY: the GUID is a static; the returned string is read, then freed with CoTaskMemFree.
    let dir = unsafe {
        let ok = SHGetKnownFolderPath(&FOLDERID_ProgramData, 0, std::ptr::null_mut(), &mut out) == 0 && !out.is_null();
        let dir = ok.then(|| {
            let len = (0..).take_while(|&i| *out.add(i) != 0).count();
            String::from_utf16_lossy(std::slice::from_raw_parts(out, len))
        });
        CoTaskMemFree(out.cast());
        dir
    };
    PathBuf::from(dir.unwrap_or_else(|| r"C:\ProgramData".into())).join("Hale")
}

#[cfg(not(windows))]
fn system_root() -> PathBuf {
    PathBuf::from("/var/lib/hale/wsfc")
}

pub fn config_path(name: &str) -> PathBuf {
    root().join("resources").join(format!("{name}.conf"))
}

pub fn log_path(name: &str) -> PathBuf {
    root().join("logs").join(format!("{name}.log"))
}

/// Load the configuration of `name`, with a message a person can act on.
pub fn load(name: &str) -> Result<ResourceConfig, String> {
    check_name(name)?;
    let path = config_path(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "resource {name} is not configured ({} is missing): run hale-wsfc configure",
                path.display()
            ))
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    ResourceConfig::parse(&text).map_err(|e| format!("{} is corrupt: {e}", path.display()))
}

/// Save privately: the directory is locked down first, the file is written next to its final
/// name and renamed over it, so a reader never sees half a file and a crash loses nothing.
pub fn save(name: &str, c: &ResourceConfig) -> Result<PathBuf, String> {
    check_name(name)?;
    let path = config_path(name);
    let dir = path.parent().expect("a config path has a directory");
    make_private_dir(dir).map_err(|e| format!("cannot create private directory {}: {e}", dir.display()))?;
    let tmp = dir.join(format!(".{name}.conf.tmp{}", std::process::id()));
    let result = (|| {
        write_private(&tmp, &c.render())?;
        std::fs::rename(&tmp, &path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot write {}: {e}", path.display()));
    }
    Ok(path)
}

/// Remove the configuration of `name` (nothing to do if there is none).
pub fn remove(name: &str) -> Result<(), String> {
    check_name(name)?;
    match std::fs::remove_file(config_path(name)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("cannot remove {}: {e}", config_path(name).display()))
        }
        _ => Ok(()),
    }
}

#[cfg(windows)]
fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    hale_backend::windows::files::make_private_dir(dir)
}

#[cfg(windows)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    hale_backend::windows::files::make_private_file(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(unix)]
fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_escapes() {
        let mut c =
            ResourceConfig::with_agent_defaults("daemon", crate::host::agent("daemon", false).unwrap().actions());
        assert_eq!((c.interval, c.deep_every, c.start_timeout, c.stop_timeout), (10, 6, 60, 60));
        c.params.insert("command".into(), r"'C:\Program Files\x.exe' --a".into());
        c.params.insert("environment".into(), "A=1\nB=\\n".into());
        let text = c.render();
        assert_eq!(ResourceConfig::parse(&text).unwrap(), c);
        assert!(text.contains(r"param.command='C:\\Program Files\\x.exe' --a"));
    }

    #[test]
    fn corrupt_files_are_reported_by_line() {
        assert_eq!(ResourceConfig::parse("interval=10\n").unwrap_err(), "no agent= line");
        assert!(ResourceConfig::parse("agent=daemon\nnonsense\n").unwrap_err().contains("line 2: not key=value"));
        assert!(ResourceConfig::parse("agent=daemon\ninterval=ten\n").unwrap_err().contains("is not a number"));
        assert!(ResourceConfig::parse("agent=daemon\ncolour=red\n").unwrap_err().contains("unknown key"));
        assert!(ResourceConfig::parse("agent=daemon\nparam.x=a\\q\n").unwrap_err().contains("bad escape"));
        let c = ResourceConfig::parse("# c\r\nagent=daemon\r\n\r\nparam.x=1\r\n").unwrap();
        assert_eq!(c.params["x"], "1");
    }

    #[test]
    fn names() {
        for ok in ["web", "web-1", "a.b_c"] {
            assert!(check_name(ok).is_ok());
        }
        for bad in ["", "a b", "a\\b", "../x", ".x", "a\"b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
