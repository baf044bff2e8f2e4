//! Who and where this process is: the node's name and the user it runs as, read without a
//! fork or a libc lookup, so that a monitor may ask.

/// This host's name, as `uname -n` gives it, lower case (DNS names compare case-insensitively).
/// Empty if the system does not say.
pub fn node_name() -> String {
    #[cfg(target_os = "linux")]
    {
        if let Ok(n) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            return n.trim().to_ascii_lowercase();
        }
    }
    std::env::var("COMPUTERNAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .map(|n| n.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The user this process runs as: its real uid's name from /etc/passwd (`uid N` when the uid
/// has no entry) on Linux, `%USERNAME%` on Windows, `unknown` when nothing says.
pub fn user_name() -> String {
    #[cfg(target_os = "linux")]
    {
        if let Some(uid) = linux_uid() {
            if let Ok(passwd) = std::fs::read_to_string("/etc/passwd") {
                for line in passwd.lines() {
                    let f: Vec<&str> = line.split(':').collect();
                    if f.len() > 2 && f[2] == uid {
                        return f[0].to_string();
                    }
                }
            }
            return format!("uid {uid}");
        }
    }
    std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "unknown".into())
}

/// The real uid (getuid(2): one system call, where /proc/self/status was a file of 1.4 KiB
/// read in eight calls at every monitor).
#[cfg(target_os = "linux")]
fn linux_uid() -> Option<String> {
    Some(nix::unistd::getuid().as_raw().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_never_empty_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(!super::node_name().is_empty());
            assert!(!super::user_name().is_empty());
            assert_eq!(super::node_name(), super::node_name().to_ascii_lowercase());
        }
    }
}
