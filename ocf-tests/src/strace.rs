//! Counting what a process tree created, from an `strace -f` trace: the conformance suite
//! asserts with it that monitor and meta-data create no process, and hale-bench prints it.

use std::collections::HashMap;

/// The system calls whose successful calls are counted.
pub const STRACE_FILTER: &str = "trace=execve,clone,clone3,fork,vfork";

/// Successful process-creating calls seen by strace in one run.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Counts {
    /// execve/execveat that returned 0, the agent's own exec included.
    pub execve: u32,
    /// fork, vfork, and clone/clone3 without CLONE_THREAD.
    pub forks: u32,
    /// clone/clone3 with CLONE_THREAD: threads, not processes.
    pub threads: u32,
}

impl Counts {
    /// Two runs' counts together.
    pub fn plus(self, other: Counts) -> Counts {
        Counts {
            execve: self.execve + other.execve,
            forks: self.forks + other.forks,
            threads: self.threads + other.threads,
        }
    }

    /// Counts `call` (a complete strace line without its pid) if it is a successful one.
    pub fn add(&mut self, call: &str) {
        let name = call.split('(').next().unwrap_or_default();
        let result = call
            .rsplit_once(" = ")
            .and_then(|(_, result)| result.split_whitespace().next())
            .and_then(|value| value.parse::<i64>().ok());
        if result.is_none_or(|value| value < 0) {
            return;
        }
        match name {
            "execve" | "execveat" => self.execve += 1,
            "fork" | "vfork" => self.forks += 1,
            "clone" | "clone3" if call.contains("CLONE_THREAD") => self.threads += 1,
            "clone" | "clone3" => self.forks += 1,
            _ => {}
        }
    }
}

/// Counts the calls in an `strace -f -o FILE` trace, skipping the lines of `skip_pid` (a
/// wrapper shell). A call interrupted by another process's output is printed as
/// `... <unfinished ...>` then `<... name resumed> ...`; the halves are joined again.
pub fn count_calls(trace: &str, skip_pid: Option<&str>) -> Counts {
    let mut counts = Counts::default();
    let mut unfinished: HashMap<&str, &str> = HashMap::new();
    for line in trace.lines() {
        let (pid, call) = split_pid(line);
        if skip_pid == Some(pid) {
            continue;
        }
        if let Some(head) = call.strip_suffix("<unfinished ...>") {
            unfinished.insert(pid, head);
        } else if let Some(resumed) = call.strip_prefix("<... ") {
            let tail = resumed.split_once(" resumed>").map_or(resumed, |(_, tail)| tail);
            let head = unfinished.remove(pid).unwrap_or_default();
            counts.add(&format!("{head}{tail}"));
        } else {
            counts.add(call);
        }
    }
    counts
}

/// Splits strace's `PID ` prefix off a line (absent when only one process was traced).
pub fn split_pid(line: &str) -> (&str, &str) {
    match line.split_once(' ') {
        Some((pid, rest)) if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) => (pid, rest.trim_start()),
        _ => ("", line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_successful_calls_and_joins_resumed_halves() {
        let trace = "\
100 execve(\"/usr/lib/ocf/resource.d/heartbeat/anything\", [\"x\", \"monitor\"], 0x1 /* 14 vars */) = 0
100 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD <unfinished ...>
101 execve(\"/usr/local/sbin/grep\", [\"grep\"], 0x2 /* 14 vars */) = -1 ENOENT (No such file or directory)
100 <... clone resumed>, child_tidptr=0x7f) = 101
101 execve(\"/usr/bin/grep\", [\"grep\", \"a = 1\"], 0x2 /* 14 vars */) = 0
101 clone3({flags=CLONE_VM|CLONE_THREAD|CLONE_SIGHAND, exit_signal=0}, 88) = 102
101 vfork() = 103
100 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=101} ---
";
        let all = count_calls(trace, None);
        assert_eq!(all, Counts { execve: 2, forks: 2, threads: 1 });
        let without_100 = count_calls(trace, Some("100"));
        assert_eq!(without_100, Counts { execve: 1, forks: 1, threads: 1 });
    }
}
