//! Where things live on this OS. Agents and libraries ask here instead of writing a path of
//! their own, so no agent crate carries OS-specific code.

use std::path::{Path, PathBuf};

/// Volatile per-node state (pidfiles, marks of running instances). On Linux a tmpfs, so a
/// reboot leaves no stale record and a node just booted has an empty directory — or none at
/// all: whoever writes here first calls [`ensure_run_dir`].
#[cfg(not(windows))]
pub const RUN_DIR: &str = "/run/hale";
/// On Windows there is no tmpfs: a record's process start time tells a stale one from a live one.
#[cfg(windows)]
pub const RUN_DIR: &str = r"C:\ProgramData\Hale\run";

/// Persistent per-node state: git mirrors and deployed trees, the default lock store.
#[cfg(not(windows))]
pub const STATE_DIR: &str = "/var/lib/hale";
#[cfg(windows)]
pub const STATE_DIR: &str = r"C:\ProgramData\Hale";

/// The lock store's default directory (`hale lock`, `ocf:hale:hostlock`): `locks` under
/// [`STATE_DIR`]. Spelt out because a `const` cannot join paths; a test keeps the two in step.
#[cfg(not(windows))]
pub const LOCK_DIR: &str = "/var/lib/hale/locks";
#[cfg(windows)]
pub const LOCK_DIR: &str = r"C:\ProgramData\Hale\locks";

/// Administrator settings (`lock.conf`, `repos.d`).
#[cfg(not(windows))]
pub const CONFIG_DIR: &str = "/etc/hale";
#[cfg(windows)]
pub const CONFIG_DIR: &str = r"C:\ProgramData\Hale";

/// The system's trusted CAs in one PEM file (what `update-ca-certificates` maintains on Debian,
/// Ubuntu and most Linux distributions). Windows keeps its CAs in a certificate store, not a
/// file: empty, and the TLS clients fall back to the Mozilla roots compiled in.
#[cfg(not(windows))]
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
#[cfg(windows)]
pub const SYSTEM_CA_BUNDLE: &str = "";

/// The PATH a service gets unless its environment sets one (on Linux, what systemd gives
/// services; on Windows, the system directories and Windows PowerShell as LocalSystem sees them).
#[cfg(not(windows))]
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
#[cfg(windows)]
pub const DEFAULT_PATH: &str = r"C:\Windows\system32;C:\Windows;C:\Windows\System32\WindowsPowerShell\v1.0";

/// The separator of PATH-like lists.
pub const PATH_SEPARATOR: char = if cfg!(windows) { ';' } else { ':' };

/// [`RUN_DIR`] as a path.
pub fn run_dir() -> &'static Path {
    Path::new(RUN_DIR)
}

/// A file in [`RUN_DIR`] for `agent`'s instance `instance` with `extension`, e.g.
/// `/run/hale/daemon-web.pid`. The instance name is made safe for a file name: path
/// separators become `-`, and a name too long for a file name is shortened with a hash of the
/// whole, so two long names never share a file.
pub fn run_file(agent: &str, instance: &str, extension: &str) -> PathBuf {
    run_dir().join(state_file_name(agent, instance, extension))
}

/// The file name [`run_file`] uses.
pub fn state_file_name(agent: &str, instance: &str, extension: &str) -> String {
    let safe: String = instance.chars().map(|c| if matches!(c, '/' | '\\' | ':' | '\0') { '-' } else { c }).collect();
    let name = format!("{agent}-{safe}.{extension}");
    // 255 bytes is the limit of every file system we run on; keep room for a temporary's suffix.
    if name.len() <= 180 {
        return name;
    }
    let hash = fnv1a(instance.as_bytes());
    let keep: String = safe.chars().take(100).collect();
    format!("{agent}-{keep}-{hash:016x}.{extension}")
}

/// `name` if it has at most `max` bytes, else its first characters, `-` and a hash of the
/// whole, `max` bytes at most: a name derived from a long instance name (a key, an id) stays
/// within its limit, and two long names still differ. `max` must leave room for the hash (17).
pub fn shorten(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let room = max.saturating_sub(17);
    let mut keep = String::new();
    for c in name.chars() {
        if keep.len() + c.len_utf8() > room {
            break;
        }
        keep.push(c);
    }
    format!("{keep}-{:016x}", fnv1a(name.as_bytes()))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3))
}

/// Create [`RUN_DIR`] if it is missing (mode 0755, owned by whoever runs the agents: root).
/// Fails, with the reason, when something that is not a directory is in its place.
pub fn ensure_run_dir() -> std::io::Result<&'static Path> {
    crate::files::ensure_dir(run_dir(), 0o755)?;
    Ok(run_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_instance_names_fit_a_file_name() {
        let long = "x".repeat(300);
        let a = state_file_name("daemon", &long, "pid");
        assert!(a.len() < 200, "{}", a.len());
        let b = state_file_name("daemon", &format!("{long}y"), "pid");
        assert_ne!(a, b);
        assert_eq!(state_file_name("daemon", "web:1/x", "pid"), "daemon-web-1-x.pid");
    }

    #[test]
    fn shortened_names_fit_and_stay_distinct() {
        assert_eq!(shorten("short", 128), "short");
        let a = shorten(&"é".repeat(200), 128);
        let b = shorten(&format!("{}x", "é".repeat(200)), 128);
        assert!(a.len() <= 128 && b.len() <= 128, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn the_lock_dir_is_under_the_state_dir() {
        assert_eq!(Path::new(LOCK_DIR), Path::new(STATE_DIR).join("locks"));
    }
}
