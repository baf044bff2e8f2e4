//! Reading /proc: liveness without `kill -0` (which succeeds on zombies and cannot tell a
//! reused PID from ours), and the process table for stop's sweep.

use std::fs;

/// The fields of /proc/PID/stat that matter here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub pid: u32,
    /// R, S, D, Z, T, X, ...
    pub state: char,
    pub ppid: u32,
    pub pgrp: u32,
    /// Clock ticks after boot at which the process started (field 22).
    pub start_time: u64,
}

impl Stat {
    /// Alive in the sense that matters: not a zombie and not dead.
    pub fn is_alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parse the text of /proc/PID/stat. The command name (field 2) may contain spaces and
/// parentheses, so parsing starts after the *last* `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let mut rest = text.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    let pgrp = rest.next()?.parse().ok()?;
    // Fields 6..=21 (session through itrealvalue) are 16 fields; field 22 is starttime.
    let start_time = rest.nth(16)?.parse().ok()?;
    Some(Stat { pid, state, ppid, pgrp, start_time })
}

/// /proc/PID/stat of one process, if it exists.
pub fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every process's stat.
pub fn all() -> Vec<Stat> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()).filter_map(stat).collect()
}

/// For each of `dirs`, the processes that use something at or under it: their working
/// directory, root, executable, an open file, a mapped file or a command-line argument is
/// there. Used before a deployed tree is removed, so that no running script loses its code.
/// One walk of /proc for all the directories (no fork); a process whose entries cannot be read
/// (it exited meanwhile) is skipped. Paths are compared as the kernel shows them, so a process
/// in another mount namespace that sees the same path counts as a user (the safe direction).
pub fn users_of(dirs: &[&std::path::Path]) -> Vec<Vec<u32>> {
    use std::os::unix::ffi::OsStrExt;
    let mut users = vec![Vec::new(); dirs.len()];
    let Ok(procs) = fs::read_dir("/proc") else {
        return users;
    };
    let wants: Vec<&[u8]> = dirs.iter().map(|d| d.as_os_str().as_bytes()).collect();
    let under = |p: &[u8], want: &[u8]| p.starts_with(want) && (p.len() == want.len() || p[want.len()] == b'/');
    for pid in procs.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
        // Every path this process holds, as bytes.
        let mut held: Vec<Vec<u8>> = Vec::new();
        let link = |p: String| fs::read_link(p).ok().map(|t| t.as_os_str().as_bytes().to_vec());
        held.extend(["cwd", "root", "exe"].iter().filter_map(|l| link(format!("/proc/{pid}/{l}"))));
        if let Ok(c) = fs::read(format!("/proc/{pid}/cmdline")) {
            held.extend(c.split(|b| *b == 0).map(<[u8]>::to_vec));
        }
        if let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) {
            held.extend(fds.flatten().filter_map(|fd| link(fd.path().to_string_lossy().into_owned())));
        }
        if let Ok(m) = fs::read(format!("/proc/{pid}/maps")) {
            held.extend(
                m.split(|b| *b == b'\n').filter_map(|l| l.iter().position(|b| *b == b'/').map(|i| l[i..].to_vec())),
            );
        }
        for (i, want) in wants.iter().enumerate() {
            if held.iter().any(|p| under(p, want)) {
                users[i].push(pid);
            }
        }
    }
    users
}

/// Does the environment of `pid` contain exactly `NAME=value`?
pub fn has_env(pid: u32, name: &str, value: &str) -> bool {
    let Ok(environ) = fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let want = format!("{name}={value}");
    environ.split(|b| *b == 0).any(|entry| entry == want.as_bytes())
}

/// Does `pid` live in this process's network and mount namespaces? A process elsewhere
/// belongs to another container or test node, even if it carries the same mark.
pub fn same_namespaces(pid: u32) -> bool {
    ["net", "mnt"].iter().all(|ns| {
        let mine = fs::read_link(format!("/proc/self/ns/{ns}"));
        let theirs = fs::read_link(format!("/proc/{pid}/ns/{ns}"));
        matches!((mine, theirs), (Ok(a), Ok(b)) if a == b)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_spaces_and_parens() {
        let line = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        let s = parse_stat(line).unwrap();
        assert_eq!((s.pid, s.state, s.ppid, s.pgrp, s.start_time), (1234, 'S', 1, 1234, 987654));
        assert!(s.is_alive());
        assert!(!parse_stat(&line.replace(") S", ") Z")).unwrap().is_alive());
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn reads_self() {
        let me = stat(std::process::id()).unwrap();
        assert!(me.is_alive());
        assert!(me.start_time > 0);
        assert!(same_namespaces(std::process::id()));
    }
}
