//! `service` mode: the Windows service of one resource instance, for a WSFC Generic Service
//! resource. WSFC keeps the resource OnlinePending until the service reports RUNNING, which
//! happens only after the agent's start succeeded, and OfflinePending until it reports
//! STOPPED, after the agent's stop ran. Both are bounded by the resource's PendingTimeout.

use hale_wsfc::config;
use hale_wsfc::host::{self, Host};
use hale_wsfc::supervise::{self, Control, Ended, StatusReport};
use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use windows_service::service::{
    ServiceAccess, ServiceControl, ServiceControlAccept, ServiceErrorControl, ServiceExitCode, ServiceInfo,
    ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult, ServiceStatusHandle};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

/// The service name of a resource.
pub fn service_name(name: &str) -> String {
    format!("hale-{name}")
}

static RESOURCE: OnceLock<String> = OnceLock::new();

define_windows_service!(ffi_service_main, service_main);

/// Hand the process to the service control dispatcher (returns when the service stopped).
pub fn run(name: &str) -> ExitCode {
    if let Err(e) = config::check_name(name) {
        return fail(&e);
    }
    let _ = RESOURCE.set(name.to_string());
    match service_dispatcher::start(service_name(name), ffi_service_main) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("cannot connect to the service control manager (run by the SCM only): {e}")),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("hale-wsfc: {msg}");
    ExitCode::from(1)
}

/// SCM status reporting, with a ticker that advances the checkpoint every second while a
/// start or stop is pending, so `net start` and WSFC see progress within the wait hint.
struct Scm {
    handle: ServiceStatusHandle,
    checkpoint: Arc<AtomicU32>,
    pending: Arc<Mutex<Option<(ServiceState, Duration)>>>,
}

impl Scm {
    fn new(handle: ServiceStatusHandle) -> Scm {
        let scm = Scm { handle, checkpoint: Arc::new(AtomicU32::new(0)), pending: Arc::new(Mutex::new(None)) };
        let (handle, checkpoint, pending) = (scm.handle, scm.checkpoint.clone(), scm.pending.clone());
        // Every status is sent with the lock held, so a tick can never land after (and
        // overwrite) the RUNNING or STOPPED that ended the pending state.
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            let p = pending.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((state, hint)) = *p {
                let n = checkpoint.fetch_add(1, Ordering::SeqCst) + 1;
                let _ = handle.set_service_status(status(state, ServiceControlAccept::empty(), n, hint, None));
            }
        });
        scm
    }

    fn set_pending(&self, state: ServiceState, hint: Duration) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        *p = Some((state, hint));
        let n = self.checkpoint.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = self.handle.set_service_status(status(state, ServiceControlAccept::empty(), n, hint, None));
    }

    fn settle(&self, state: ServiceState, accept: ServiceControlAccept, exit: Option<u32>) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        *p = None;
        self.checkpoint.store(0, Ordering::SeqCst);
        let _ = self.handle.set_service_status(status(state, accept, 0, Duration::ZERO, exit));
    }
}

fn status(
    state: ServiceState,
    accept: ServiceControlAccept,
    checkpoint: u32,
    wait_hint: Duration,
    service_specific: Option<u32>,
) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: accept,
        exit_code: match service_specific {
            Some(code) => ServiceExitCode::ServiceSpecific(code),
            None => ServiceExitCode::Win32(0),
        },
        checkpoint,
        wait_hint,
        process_id: None,
    }
}

impl StatusReport for Scm {
    fn start_pending(&self, wait_hint: Duration) {
        self.set_pending(ServiceState::StartPending, wait_hint);
    }
    fn running(&self) {
        self.settle(ServiceState::Running, ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN, None);
    }
    fn stop_pending(&self, wait_hint: Duration) {
        self.set_pending(ServiceState::StopPending, wait_hint);
    }
}

fn service_main(_arguments: Vec<OsString>) {
    let name = RESOURCE.get().cloned().unwrap_or_default();
    let (tx, rx) = channel();
    let handler = move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            let _ = tx.send(Control::Stop);
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let Ok(handle) = service_control_handler::register(service_name(&name), handler) else {
        return;
    };
    let scm = Scm::new(handle);
    let host = match Host::load(&name, true) {
        Ok(h) => h,
        Err(e) => {
            supervise::event(supervise::Event::ConfigInvalid, &e);
            host::log_early(&name, &format!("service {} cannot start: {e}", service_name(&name)));
            scm.settle(
                ServiceState::Stopped,
                ServiceControlAccept::empty(),
                Some(hale_ocf::OcfStatus::ErrConfigured.code() as u32),
            );
            return;
        }
    };
    host::install_logger(&host);
    log::info!("service {} starting resource {name}", service_name(&name));
    let ended = supervise::supervise(&host, &scm, &rx);
    log::info!("service {} stopping: exit code {}", service_name(&name), ended.code());
    // The host (and its kill-on-close jobs) goes before STOPPED is reported: nothing of the
    // resource outlives the service.
    drop(host);
    let exit = match ended {
        Ended::Stopped => None,
        Ended::Failed(s) => Some(s.code() as u32),
    };
    scm.settle(ServiceState::Stopped, ServiceControlAccept::empty(), exit);
}

/// Register `hale-<name>`: demand start (WSFC starts it, never the SCM at boot), LocalSystem,
/// `"<this exe>" service <name>`. The resource must be configured first.
pub fn install(name: &str) -> ExitCode {
    if let Err(e) = config::load(name) {
        return fail(&e);
    }
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return fail(&format!("cannot find this executable: {e}")),
    };
    let manager = match ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    ) {
        Ok(m) => m,
        Err(e) => return fail(&format!("cannot open the service manager (administrator rights needed): {e}")),
    };
    let info = ServiceInfo {
        name: service_name(name).into(),
        display_name: format!("Hale resource {name}").into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: windows_service::service::ServiceStartType::OnDemand,
        error_control: ServiceErrorControl::Normal,
        executable_path: exe,
        launch_arguments: vec!["service".into(), name.into()],
        dependencies: vec![],
        account_name: None,
        account_password: None,
    };
    let service = match manager.create_service(&info, ServiceAccess::CHANGE_CONFIG) {
        Ok(s) => s,
        Err(e) => return fail(&format!("cannot create service {}: {e}", service_name(name))),
    };
    if let Err(e) = service.set_description(format!(
        "Runs the Hale resource {name} for Windows Server Failover Clustering (Generic Service). Started and stopped by the cluster."
    )) {
        eprintln!("hale-wsfc: warning: cannot set the service description: {e}");
    }
    if let Err(e) = hale_backend::windows::eventlog::register_source() {
        eprintln!("hale-wsfc: warning: cannot register the Event Log source: {e}");
    }
    println!("installed service {}", service_name(name));
    println!("next, on one node: New-HaleClusterResource -Name {name} -Mode Service (PowerShell module HaleCluster)");
    ExitCode::SUCCESS
}

/// Stop (if running) and delete `hale-<name>`. Succeeds when it does not exist.
pub fn uninstall(name: &str) -> ExitCode {
    if let Err(e) = config::check_name(name) {
        return fail(&e);
    }
    let manager = match ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT) {
        Ok(m) => m,
        Err(e) => return fail(&format!("cannot open the service manager: {e}")),
    };
    let access = ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE;
    let service = match manager.open_service(service_name(name), access) {
        Ok(s) => s,
        Err(_) => {
            println!("service {} is not installed", service_name(name));
            return ExitCode::SUCCESS;
        }
    };
    if service.query_status().is_ok_and(|s| s.current_state != ServiceState::Stopped) {
        let _ = service.stop();
    }
    match service.delete() {
        Ok(()) => {
            println!("removed service {}", service_name(name));
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("cannot delete service {}: {e}", service_name(name))),
    }
}
