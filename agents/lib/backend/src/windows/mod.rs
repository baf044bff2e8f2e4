//! The Windows backend: processes with CreateProcessW and Job Objects, the Windows Event Log
//! as the syslog sink, and a private-file primitive (protected DACL) for secrets.
//!
//! How the [`Processes`] contract maps onto Windows:
//! - **spawn**: `CreateProcessW` with an explicit program path and a command line quoted by the
//!   MSVCRT rules (never `cmd.exe`), suspended, put into a Job Object named after the resource
//!   instance's tag, then resumed, so every descendant is in the job before it can run. The
//!   service gets its own hidden console (`CREATE_NO_WINDOW`) so that stop can send it a
//!   console control event. The pidfile records the pid and the process creation time
//!   (FILETIME, 100 ns units), which no reused pid can repeat.
//! - **stop**: the graceful "signal" is a console control event (see [`ctrl_event_of`]) sent
//!   to the service's console; after the grace period the job is terminated
//!   (`TerminateJobObject` kills the whole tree at once), plus the recorded process and its
//!   descendants found by a process snapshot, in case the job could not be opened.
//! - **Job lifetime**: with [`WindowsProcesses::owning`] the jobs are created with
//!   `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE` and their handles kept: the service tree dies with the
//!   process that started it (the WSFC adapter in `service` and `app` modes). With
//!   [`WindowsProcesses::new`] (one action per process, as the Generic Script calls it) the job
//!   outlives the agent and is found again by name.
//! - **user**: running as another account needs its password (`CreateProcessWithLogonW`);
//!   Hale does not store passwords, so `user` is refused with a clear error: run the adapter's
//!   service under the wanted account instead.
//! - **Programs**: only `.exe` and `.com` files are run. Batch files (`.bat`, `.cmd`) would be
//!   run by `CreateProcessW` through `cmd.exe`, whose parsing would interpolate arguments into
//!   a shell; use `cmd.exe /c` explicitly if that is really wanted, or PowerShell through
//!   [`powershell_argv`].

pub mod eventlog;
pub mod files;

use crate::process::{
    remove_our_record, BackendError, CheckOutcome, ProcessRecord, ProcessState, Processes, SpawnSpec, StopReport,
    StopSignal, TAG_VARIABLE,
};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};
use windows_sys::Win32::Foundation::{
    GetLastError, SetHandleInformation, FILETIME, HANDLE, HANDLE_FLAG_INHERIT, WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::System::Console::{
    AttachConsole, FreeConsole, GenerateConsoleCtrlEvent, SetConsoleCtrlHandler, CTRL_BREAK_EVENT, CTRL_C_EVENT,
};
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, Process32FirstW, Process32NextW, PROCESSENTRY32W, TH32CS_SNAPPROCESS,
};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JobObjectExtendedLimitInformation, OpenJobObjectW,
    SetInformationJobObject, TerminateJobObject, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
};
use windows_sys::Win32::System::Threading::{
    CreateProcessW, GetExitCodeProcess, GetProcessTimes, OpenProcess, ResumeThread, TerminateProcess,
    WaitForSingleObject, CREATE_NO_WINDOW, CREATE_SUSPENDED, CREATE_UNICODE_ENVIRONMENT, PROCESS_INFORMATION,
    PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE, PROCESS_TERMINATE, STARTF_USESTDHANDLES, STARTUPINFOW,
};

/// How often waits look at the processes.
const POLL: Duration = Duration::from_millis(20);
/// `JOB_OBJECT_ALL_ACCESS`.
const JOB_ALL_ACCESS: u32 = 0x001F_001F;
/// The exit code given to processes Hale terminates (shown by `sc query`, Task Manager).
const TERMINATED_EXIT: u32 = 1;
/// Variables of the agent's environment a Windows service cannot do without (Winsock needs
/// `SystemRoot`, many programs `TEMP`): copied into the service's environment unless the
/// resource sets them. None of them can hold a resource parameter.
const BASE_VARIABLES: &[&str] = &[
    "SystemRoot",
    "SystemDrive",
    "windir",
    "ComSpec",
    "PATHEXT",
    "TEMP",
    "TMP",
    "ProgramData",
    "ProgramFiles",
    "ALLUSERSPROFILE",
    "USERPROFILE",
    "COMPUTERNAME",
    "NUMBER_OF_PROCESSORS",
    "PROCESSOR_ARCHITECTURE",
];

/// Processes on Windows.
pub struct WindowsProcesses {
    /// Create jobs with kill-on-close and keep their handles (see the module doc).
    owning: bool,
    /// Open job handles by tag; with `owning`, closing one kills its processes.
    jobs: Mutex<HashMap<String, OwnedHandle>>,
    /// Handles of processes we started, by pid: the exit code stays readable after exit.
    children: Mutex<HashMap<u32, OwnedHandle>>,
}

impl Default for WindowsProcesses {
    fn default() -> Self {
        WindowsProcesses::new()
    }
}

impl WindowsProcesses {
    /// For one action per process: services outlive the agent and are found again by name.
    pub fn new() -> WindowsProcesses {
        WindowsProcesses { owning: false, jobs: Mutex::new(HashMap::new()), children: Mutex::new(HashMap::new()) }
    }

    /// For a long-lived host (the WSFC adapter): services die with this process.
    pub fn owning() -> WindowsProcesses {
        WindowsProcesses { owning: true, ..WindowsProcesses::new() }
    }
}

/// A NUL-terminated UTF-16 copy of `s`.
pub fn wide(s: impl AsRef<OsStr>) -> Vec<u16> {
    s.as_ref().encode_wide().chain(std::iter::once(0)).collect()
}

fn last_error() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// An owned handle from a raw one, None for NULL or INVALID_HANDLE_VALUE.
fn owned(h: HANDLE) -> Option<OwnedHandle> {
    if h.is_null() || h as isize == -1 {
        None
    } else {
        // SAFETY: a valid handle just returned to us, owned by no one else.
        Some(unsafe { OwnedHandle::from_raw_handle(h as RawHandle) })
    }
}

fn raw(h: &OwnedHandle) -> HANDLE {
    h.as_raw_handle() as HANDLE
}

/// Quote one argument the way `CommandLineToArgvW` and the MSVCRT parse it back.
pub fn quote_arg(arg: &str, out: &mut String) {
    if !arg.is_empty() && !arg.contains([' ', '\t', '\n', '\u{b}', '"']) {
        out.push_str(arg);
        return;
    }
    out.push('"');
    let mut backslashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                out.extend(std::iter::repeat_n('\\', backslashes * 2 + 1));
                out.push('"');
                backslashes = 0;
            }
            _ => {
                out.extend(std::iter::repeat_n('\\', backslashes));
                out.push(c);
                backslashes = 0;
            }
        }
    }
    out.extend(std::iter::repeat_n('\\', backslashes * 2));
    out.push('"');
}

/// The command line of `argv`, each argument quoted.
pub fn command_line(argv: &[String]) -> String {
    let mut line = String::new();
    for (i, a) in argv.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        quote_arg(a, &mut line);
    }
    line
}

/// The argv that runs a PowerShell script file with no profile and no prompt, with `pwsh`
/// (PowerShell 7) when it is on `path`, else Windows PowerShell 5.1. The script path and its
/// arguments are separate arguments, never a `-Command` string.
pub fn powershell_argv(procs: &dyn Processes, path: &str, script: &Path, args: &[String]) -> Vec<String> {
    let shell = procs
        .find_program("pwsh.exe", path)
        .or_else(|| procs.find_program("powershell.exe", path))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "powershell.exe".into());
    let mut argv = vec![
        shell,
        "-NoProfile".into(),
        "-NonInteractive".into(),
        "-ExecutionPolicy".into(),
        "Bypass".into(),
        "-File".into(),
        script.to_string_lossy().into_owned(),
    ];
    argv.extend(args.iter().cloned());
    argv
}

/// A Unicode environment block: `K=V\0...\0\0`, sorted case-insensitively as Windows expects.
fn environment_block(vars: &[(String, String)]) -> Vec<u16> {
    let mut map: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (k, v) in vars {
        map.insert(k.to_uppercase(), (k.clone(), v.clone()));
    }
    let mut block = Vec::new();
    for (k, v) in map.values() {
        block.extend(OsStr::new(&format!("{k}={v}")).encode_wide());
        block.push(0);
    }
    if block.is_empty() {
        block.push(0);
    }
    block.push(0);
    block
}

/// The Job Object name of a tag: `Local\hale-<tag>`, with characters a kernel object name
/// cannot hold replaced.
pub fn job_name(tag: &str) -> String {
    let safe: String =
        tag.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    format!("Local\\hale-{safe}")
}

fn filetime(ft: FILETIME) -> u64 {
    (u64::from(ft.dwHighDateTime) << 32) | u64::from(ft.dwLowDateTime)
}

/// The creation time of a process (100 ns units since 1601), the start stamp of its record.
fn creation_time(h: HANDLE) -> Option<u64> {
    let zero = FILETIME { dwLowDateTime: 0, dwHighDateTime: 0 };
    let (mut c, mut e, mut k, mut u) = (zero, zero, zero, zero);
    // SAFETY: h is a live process handle; the out pointers are valid.
    (unsafe { GetProcessTimes(h, &mut c, &mut e, &mut k, &mut u) } != 0).then(|| filetime(c))
}

fn open_process(pid: u32, access: u32) -> Option<OwnedHandle> {
    // SAFETY: plain call; the result is checked.
    owned(unsafe { OpenProcess(access, 0, pid) })
}

/// Is the process behind `h` still running?
fn is_running(h: HANDLE) -> bool {
    // SAFETY: h is a live process handle opened with SYNCHRONIZE.
    unsafe { WaitForSingleObject(h, 0) == WAIT_TIMEOUT }
}

/// Is the process recorded in `r` alive (and the same process, by creation time)?
fn record_alive(r: ProcessRecord) -> bool {
    match open_process(r.pid, PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_SYNCHRONIZE) {
        Some(h) => r.start_time != 0 && is_running(raw(&h)) && creation_time(raw(&h)) == Some(r.start_time),
        None => false,
    }
}

/// One row of a process snapshot.
struct Row {
    pid: u32,
    ppid: u32,
}

fn snapshot() -> Vec<Row> {
    // SAFETY: a snapshot handle owned below; PROCESSENTRY32W is plain data with dwSize set.
    unsafe {
        let Some(snap) = owned(CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0)) else {
            return Vec::new();
        };
        let mut rows = Vec::new();
        let mut e: PROCESSENTRY32W = std::mem::zeroed();
        e.dwSize = std::mem::size_of::<PROCESSENTRY32W>() as u32;
        let mut ok = Process32FirstW(raw(&snap), &mut e);
        while ok != 0 {
            rows.push(Row { pid: e.th32ProcessID, ppid: e.th32ParentProcessID });
            ok = Process32NextW(raw(&snap), &mut e);
        }
        rows
    }
}

/// The recorded process and its descendants, each as (pid, creation time). A child counts only
/// if it was created after its parent: Windows keeps a dead parent's pid in the snapshot, and
/// that pid may since belong to an unrelated process.
fn tree(root: ProcessRecord) -> BTreeMap<u32, u64> {
    let mut found = BTreeMap::new();
    if !record_alive(root) {
        return found;
    }
    found.insert(root.pid, root.start_time);
    let rows = snapshot();
    let me = std::process::id();
    loop {
        let before = found.len();
        for r in &rows {
            if r.pid == me || found.contains_key(&r.pid) {
                continue;
            }
            if let Some(parent_start) = found.get(&r.ppid).copied() {
                let Some(h) = open_process(r.pid, PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_SYNCHRONIZE) else {
                    continue;
                };
                match creation_time(raw(&h)) {
                    Some(t) if t >= parent_start && is_running(raw(&h)) => {
                        found.insert(r.pid, t);
                    }
                    _ => {}
                }
            }
        }
        if found.len() == before {
            return found;
        }
    }
}

fn survivors(targets: &BTreeMap<u32, u64>) -> Vec<u32> {
    targets
        .iter()
        .filter(|(pid, start)| record_alive(ProcessRecord { pid: **pid, start_time: **start }))
        .map(|(pid, _)| *pid)
        .collect()
}

fn wait_gone(targets: &BTreeMap<u32, u64>, until: Instant) -> bool {
    loop {
        if survivors(targets).is_empty() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        sleep(POLL.min(until.saturating_duration_since(Instant::now())));
    }
}

/// The console control event standing for a stop signal: `INT`, `TERM`, `HUP`, `USR1` and
/// `USR2` become CTRL_C (the event console programs handle as "please stop"), `QUIT` becomes
/// CTRL_BREAK, `KILL` has none (straight to termination).
pub fn ctrl_event_of(s: StopSignal) -> Option<u32> {
    match s {
        StopSignal::Kill => None,
        StopSignal::Quit => Some(CTRL_BREAK_EVENT),
        _ => Some(CTRL_C_EVENT),
    }
}

/// Attaching to another console is process-wide state: one at a time.
static CONSOLE: Mutex<()> = Mutex::new(());

/// Send `event` to every process on the console of `pid`. We ignore control events ourselves
/// from then on (we are on that console for a moment and the event is delivered
/// asynchronously); the adapter never relies on Ctrl+C.
fn send_ctrl(pid: u32, event: u32) -> bool {
    let _guard = CONSOLE.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: console calls with no pointers; failures are reported by the return values.
    unsafe {
        use windows_sys::Win32::System::Console::{
            GetStdHandle, SetStdHandle, STD_ERROR_HANDLE, STD_INPUT_HANDLE, STD_OUTPUT_HANDLE,
        };
        // Detaching from a console resets standard handles that pointed at it: keep ours (a
        // log file or a pipe) across the visit.
        let saved = [STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE].map(|n| (n, GetStdHandle(n)));
        SetConsoleCtrlHandler(None, 1);
        FreeConsole();
        let sent = AttachConsole(pid) != 0 && GenerateConsoleCtrlEvent(event, 0) != 0;
        FreeConsole();
        for (n, h) in saved {
            SetStdHandle(n, h);
        }
        sent
    }
}

fn terminate_all(job: Option<&OwnedHandle>, targets: &BTreeMap<u32, u64>) {
    if let Some(j) = job {
        // SAFETY: a live job handle.
        unsafe { TerminateJobObject(raw(j), TERMINATED_EXIT) };
    }
    for (pid, start) in targets {
        if let Some(h) = open_process(*pid, PROCESS_TERMINATE | PROCESS_QUERY_LIMITED_INFORMATION) {
            if creation_time(raw(&h)) == Some(*start) || *start == 0 {
                // SAFETY: a live process handle with PROCESS_TERMINATE.
                unsafe { TerminateProcess(raw(&h), TERMINATED_EXIT) };
            }
        }
    }
}

fn inheritable(f: &fs::File) -> Result<(), BackendError> {
    // SAFETY: a live file handle.
    if unsafe { SetHandleInformation(f.as_raw_handle() as HANDLE, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT) } == 0 {
        return Err(BackendError::Failed(format!("cannot make a handle inheritable: {}", last_error())));
    }
    Ok(())
}

/// What a started process got: its handle and its main thread's handle (still suspended).
struct Started {
    process: OwnedHandle,
    thread: OwnedHandle,
    pid: u32,
}

/// `CreateProcessW`, suspended, with the given standard handles (null: `NUL`).
fn create_process(
    program: &Path,
    argv: &[String],
    env: Option<&[(String, String)]>,
    workdir: Option<&Path>,
    stdout: &fs::File,
    stderr: &fs::File,
) -> Result<Started, BackendError> {
    let stdin = OpenOptions::new().read(true).open("NUL").map_err(|e| BackendError::Failed(format!("NUL: {e}")))?;
    for f in [&stdin, stdout, stderr] {
        inheritable(f)?;
    }
    let app = wide(program);
    let mut cmdline = wide(command_line(argv));
    let block = env.map(environment_block);
    let dir = workdir.map(wide);
    // SAFETY: STARTUPINFOW and PROCESS_INFORMATION are plain data; every pointer passed lives
    // until CreateProcessW returns; the handles it returns are owned right away.
    unsafe {
        let mut si: STARTUPINFOW = std::mem::zeroed();
        si.cb = std::mem::size_of::<STARTUPINFOW>() as u32;
        si.dwFlags = STARTF_USESTDHANDLES;
        si.hStdInput = stdin.as_raw_handle() as HANDLE;
        si.hStdOutput = stdout.as_raw_handle() as HANDLE;
        si.hStdError = stderr.as_raw_handle() as HANDLE;
        let mut pi: PROCESS_INFORMATION = std::mem::zeroed();
        let ok = CreateProcessW(
            app.as_ptr(),
            cmdline.as_mut_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            1,
            CREATE_SUSPENDED | CREATE_UNICODE_ENVIRONMENT | CREATE_NO_WINDOW,
            block.as_ref().map_or(std::ptr::null(), |b| b.as_ptr().cast()),
            dir.as_ref().map_or(std::ptr::null(), |d| d.as_ptr()),
            &si,
            &mut pi,
        );
        if ok == 0 {
            let e = last_error();
            let what = format!("cannot start {}: {e}", program.display());
            return Err(match e.kind() {
                ErrorKind::NotFound => BackendError::NotFound(what),
                ErrorKind::PermissionDenied => BackendError::Permission(what),
                _ => BackendError::Failed(what),
            });
        }
        Ok(Started {
            process: owned(pi.hProcess).expect("CreateProcessW returned a process handle"),
            thread: owned(pi.hThread).expect("CreateProcessW returned a thread handle"),
            pid: pi.dwProcessId,
        })
    }
}

/// Create (or open, if it exists) the job of `name`; with `kill_on_close` its processes die
/// when the last handle to it closes.
fn create_job(name: Option<&str>, kill_on_close: bool) -> Result<OwnedHandle, BackendError> {
    let wname = name.map(wide);
    // SAFETY: the name lives across the call; the handle is owned right away.
    let job =
        owned(unsafe { CreateJobObjectW(std::ptr::null(), wname.as_ref().map_or(std::ptr::null(), |n| n.as_ptr())) })
            .ok_or_else(|| BackendError::Failed(format!("cannot create a job object: {}", last_error())))?;
    if kill_on_close {
        // SAFETY: plain data with the limit flag set, its size passed.
        unsafe {
            let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = std::mem::zeroed();
            info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
            if SetInformationJobObject(
                raw(&job),
                JobObjectExtendedLimitInformation,
                (&info as *const JOBOBJECT_EXTENDED_LIMIT_INFORMATION).cast(),
                std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            ) == 0
            {
                return Err(BackendError::Failed(format!(
                    "cannot set the job's kill-on-close limit: {}",
                    last_error()
                )));
            }
        }
    }
    Ok(job)
}

/// Put a suspended process into `job` and let it run. On failure the process is killed.
fn assign_and_resume(job: &OwnedHandle, s: &Started) -> Result<(), BackendError> {
    // SAFETY: live handles.
    unsafe {
        if AssignProcessToJobObject(raw(job), raw(&s.process)) == 0 {
            let e = last_error();
            TerminateProcess(raw(&s.process), TERMINATED_EXIT);
            return Err(BackendError::Failed(format!("cannot put pid {} into its job object: {e}", s.pid)));
        }
        if ResumeThread(raw(&s.thread)) == u32::MAX {
            let e = last_error();
            TerminateProcess(raw(&s.process), TERMINATED_EXIT);
            return Err(BackendError::Failed(format!("cannot resume pid {}: {e}", s.pid)));
        }
    }
    Ok(())
}

fn describe_exit(code: u32) -> String {
    if code >= 0xC000_0000 {
        format!("ended with exception 0x{code:08X}")
    } else {
        format!("exited with status {code}")
    }
}

fn has_program_extension(p: &Path) -> bool {
    p.extension()
        .and_then(OsStr::to_str)
        .is_some_and(|e| e.eq_ignore_ascii_case("exe") || e.eq_ignore_ascii_case("com"))
}

static CHECK_SEQ: AtomicU32 = AtomicU32::new(0);

impl WindowsProcesses {
    fn open_job(&self, tag: &str) -> Option<OwnedHandle> {
        if let Some(j) = self.jobs.lock().ok()?.get(tag) {
            return j.try_clone().ok();
        }
        let name = wide(job_name(tag));
        // SAFETY: the name lives across the call.
        owned(unsafe { OpenJobObjectW(JOB_ALL_ACCESS, 0, name.as_ptr()) })
    }
}

impl Processes for WindowsProcesses {
    fn spawn(&self, spec: &SpawnSpec) -> Result<ProcessRecord, BackendError> {
        if let Some(u) = &spec.user {
            return Err(BackendError::Failed(format!(
                "user={u} is not supported on Windows (it would need the account's password): \
                 run the resource's service as that account instead"
            )));
        }
        if let Some(dir) = spec.pidfile.parent() {
            fs::create_dir_all(dir)
                .map_err(|e| BackendError::Failed(format!("cannot create {}: {e}", dir.display())))?;
        }
        let out = match &spec.logfile {
            Some(path) => OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| BackendError::Failed(format!("cannot open log file {}: {e}", path.display())))?,
            None => {
                OpenOptions::new().write(true).open("NUL").map_err(|e| BackendError::Failed(format!("NUL: {e}")))?
            }
        };
        let err = out.try_clone().map_err(|e| BackendError::Failed(format!("log file: {e}")))?;
        let mut env: Vec<(String, String)> =
            BASE_VARIABLES.iter().filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v))).collect();
        env.extend(spec.env.iter().cloned());
        env.push((TAG_VARIABLE.to_string(), spec.tag.clone()));
        let job = create_job(Some(&job_name(&spec.tag)), self.owning)?;
        let started = create_process(&spec.program, &spec.argv, Some(&env), spec.workdir.as_deref(), &out, &err)?;
        assign_and_resume(&job, &started)?;
        let record = ProcessRecord { pid: started.pid, start_time: creation_time(raw(&started.process)).unwrap_or(0) };
        if let Err(e) = crate::files::write_atomic(&spec.pidfile, record.to_file_text(&spec.tag).as_bytes(), 0o644) {
            // SAFETY: live handle.
            unsafe { TerminateJobObject(raw(&job), TERMINATED_EXIT) };
            return Err(BackendError::Failed(format!("cannot write pidfile {}: {e}", spec.pidfile.display())));
        }
        if let Ok(mut c) = self.children.lock() {
            c.insert(started.pid, started.process);
        }
        if let Ok(mut j) = self.jobs.lock() {
            if self.owning {
                j.insert(spec.tag.clone(), job);
            }
        }
        Ok(record)
    }

    fn state(&self, pidfile: &Path, tag: &str) -> ProcessState {
        let record = match ProcessRecord::read(pidfile, tag) {
            Ok(r) => r,
            Err(state) => return state,
        };
        if record_alive(record) {
            ProcessState::Running(record)
        } else {
            ProcessState::Gone(record)
        }
    }

    fn exit_status(&self, record: ProcessRecord) -> Option<String> {
        let children = self.children.lock().ok()?;
        let h = children.get(&record.pid)?;
        if is_running(raw(h)) {
            return None;
        }
        let mut code = 0u32;
        // SAFETY: a live handle and a valid out pointer.
        (unsafe { GetExitCodeProcess(raw(h), &mut code) } != 0).then(|| describe_exit(code))
    }

    fn stop(
        &self,
        pidfile: &Path,
        tag: &str,
        signal: StopSignal,
        grace: Duration,
        deadline: Instant,
    ) -> Result<StopReport, BackendError> {
        let state = self.state(pidfile, tag);
        let record = match state {
            ProcessState::Running(r) => Some(r),
            _ => None,
        };
        let job = self.open_job(tag);
        let mut targets = record.map(tree).unwrap_or_default();
        let in_job = job.as_ref().map_or(0, |j| job_pids(raw(j)).len());
        let mut report = StopReport { found: targets.len().max(in_job), forced: false };
        if report.found > 0 {
            let kill_reserve = Duration::from_millis(500);
            let graceful_until = (Instant::now() + grace).min(deadline.checked_sub(kill_reserve).unwrap_or(deadline));
            let asked = match (record, ctrl_event_of(signal)) {
                (Some(r), Some(ev)) if grace > Duration::ZERO => send_ctrl(r.pid, ev),
                _ => false,
            };
            if !asked && signal != StopSignal::Kill && grace > Duration::ZERO {
                log::info!("the service has no console to send {signal:?} to; it will be terminated");
            }
            let job_empty = |until: Instant| loop {
                let left = job.as_ref().map_or(0, |j| job_pids(raw(j)).len());
                if left == 0 || Instant::now() >= until {
                    return left == 0;
                }
                sleep(POLL);
            };
            let gone = asked && wait_gone(&targets, graceful_until) && job_empty(graceful_until);
            if !gone {
                report.forced = true;
                if let Some(r) = record {
                    targets.extend(tree(r));
                }
                terminate_all(job.as_ref(), &targets);
                if !(wait_gone(&targets, deadline) && job_empty(deadline)) {
                    return Err(BackendError::Failed(format!(
                        "process(es) {:?} still present after termination",
                        survivors(&targets)
                    )));
                }
            }
        }
        if let Ok(mut j) = self.jobs.lock() {
            j.remove(tag);
        }
        if let Some(r) = record {
            if let Ok(mut c) = self.children.lock() {
                c.remove(&r.pid);
            }
        }
        remove_our_record(pidfile, &state)?;
        Ok(report)
    }

    fn run_check(&self, argv: &[String], timeout: Duration) -> Result<CheckOutcome, BackendError> {
        let program = argv.first().ok_or_else(|| BackendError::Failed("empty check command".into()))?;
        let path = std::env::var("PATH").unwrap_or_default();
        let resolved = self.find_program(program, &path).ok_or_else(|| {
            BackendError::NotFound(format!("cannot run {program}: not found, or not an .exe/.com program"))
        })?;
        // Output goes to a temporary file, not a pipe: a grandchild holding a pipe open could
        // make us wait past the deadline.
        let tmp = std::env::temp_dir().join(format!(
            "hale-check-{}-{}.txt",
            std::process::id(),
            CHECK_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let mut out = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| BackendError::Failed(format!("cannot create {}: {e}", tmp.display())))?;
        let result = (|| {
            let err = out.try_clone().map_err(|e| BackendError::Failed(e.to_string()))?;
            // Its own kill-on-close job: a timeout kills its children too, and it dies with us.
            let job = create_job(None, true)?;
            let env: Vec<(String, String)> =
                std::env::vars().filter(|(k, _)| !crate::process::is_resource_parameter(k.as_ref())).collect();
            let started = create_process(&resolved, argv, Some(&env), None, &out, &err)?;
            assign_and_resume(&job, &started)?;
            let ms = timeout.as_millis().min(u128::from(u32::MAX - 1)) as u32;
            // SAFETY: a live process handle.
            let waited = unsafe { WaitForSingleObject(raw(&started.process), ms) };
            let status = if waited == WAIT_OBJECT_0 {
                let mut code = 0u32;
                // SAFETY: live handle, valid out pointer.
                unsafe { GetExitCodeProcess(raw(&started.process), &mut code) };
                Some(code)
            } else {
                // SAFETY: live handles.
                unsafe {
                    TerminateJobObject(raw(&job), TERMINATED_EXIT);
                    WaitForSingleObject(raw(&started.process), 5000);
                }
                None
            };
            let status_text = match status {
                Some(c) if c >= 0xC000_0000 => format!("exception 0x{c:08X}"),
                Some(c) => format!("exit status {c}"),
                None => format!("timed out after {}s", timeout.as_secs_f32()),
            };
            let mut text = String::new();
            let _ = out.seek(SeekFrom::Start(0));
            let mut bytes = Vec::new();
            let _ = (&mut out).take(64 * 1024).read_to_end(&mut bytes);
            text.push_str(&String::from_utf8_lossy(&bytes));
            let last_line = text.lines().rev().map(str::trim).find(|l| !l.is_empty()).map(str::to_string);
            Ok(CheckOutcome { success: status == Some(0), status: status_text, last_line })
        })();
        drop(out);
        let _ = fs::remove_file(&tmp);
        result
    }

    fn find_program(&self, program: &str, path: &str) -> Option<PathBuf> {
        if program.is_empty() {
            return None;
        }
        let candidates = |base: PathBuf| -> Vec<PathBuf> {
            if base.extension().is_some() {
                vec![base]
            } else {
                vec![base.with_extension("exe"), base.with_extension("com")]
            }
        };
        let ok = |p: &PathBuf| has_program_extension(p) && p.is_file();
        if program.contains(['\\', '/', ':']) {
            return candidates(PathBuf::from(program)).into_iter().find(ok);
        }
        path.split(';')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .flat_map(|d| candidates(Path::new(d).join(program)))
            .find(ok)
    }

    fn user_exists(&self, user: &str) -> bool {
        let name = wide(user);
        let (mut sid_len, mut dom_len, mut use_) = (0u32, 0u32, 0i32);
        // SAFETY: a size query with null buffers, then the real call with buffers of the
        // returned sizes.
        unsafe {
            windows_sys::Win32::Security::LookupAccountNameW(
                std::ptr::null(),
                name.as_ptr(),
                std::ptr::null_mut(),
                &mut sid_len,
                std::ptr::null_mut(),
                &mut dom_len,
                &mut use_,
            );
            if sid_len == 0 {
                return false;
            }
            let mut sid = vec![0u8; sid_len as usize];
            let mut dom = vec![0u16; dom_len.max(1) as usize];
            windows_sys::Win32::Security::LookupAccountNameW(
                std::ptr::null(),
                name.as_ptr(),
                sid.as_mut_ptr().cast(),
                &mut sid_len,
                dom.as_mut_ptr(),
                &mut dom_len,
                &mut use_,
            ) != 0
        }
    }
}

/// The pids in a job, empty when it has none or cannot be queried.
fn job_pids(job: HANDLE) -> Vec<u32> {
    use windows_sys::Win32::System::JobObjects::{JobObjectBasicProcessIdList, QueryInformationJobObject};
    // JOBOBJECT_BASIC_PROCESS_ID_LIST: two u32 counts, then usize pids.
    let mut buf = vec![0usize; 2 + 1024];
    // SAFETY: the buffer is large enough for the header and 1024 ids, its size passed.
    let ok = unsafe {
        QueryInformationJobObject(
            job,
            JobObjectBasicProcessIdList,
            buf.as_mut_ptr().cast(),
            (buf.len() * std::mem::size_of::<usize>()) as u32,
            std::ptr::null_mut(),
        )
    };
    if ok == 0 {
        // SAFETY: plain call.
        let _ = unsafe { GetLastError() };
        return Vec::new();
    }
    // The header is two u32: assigned count then listed count, packed into the first usize.
    let listed = (buf[0] >> 32) as usize;
    buf[1..1 + listed.min(1024)].iter().map(|p| *p as u32).collect()
}

#[cfg(test)]
mod tests;
