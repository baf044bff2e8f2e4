use super::*;
use crate::fake::FakeCluster;
use crate::pacemaker::Pacemaker;
use hale_backend::fake::FakeProcesses;
use hale_backend::{CheckOutcome, CommandOutput};
use std::path::PathBuf;
use std::sync::Arc;

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hale-cluster-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[cfg(not(windows))]
fn answer(code: i32, body: &str) -> CommandOutput {
    let message = if code == 0 { "OK" } else { "Oops" };
    CommandOutput {
        outcome: CheckOutcome { success: code == 0, status: format!("exit status {code}"), last_line: None },
        stdout: format!(
            "<pacemaker-result api-version=\"2.25\" request=\"x\">\n{body}\n  <status code=\"{code}\" message=\"{message}\"/>\n</pacemaker-result>\n"
        ),
    }
}

/// A Pacemaker over a fake process table that shares its record of calls with the test.
struct Shared(Arc<FakeProcesses>);

impl hale_backend::Processes for Shared {
    fn spawn(&self, s: &hale_backend::SpawnSpec) -> Result<hale_backend::ProcessRecord, hale_backend::BackendError> {
        self.0.spawn(s)
    }
    fn state(&self, p: &std::path::Path, t: &str) -> hale_backend::ProcessState {
        self.0.state(p, t)
    }
    fn exit_status(&self, r: hale_backend::ProcessRecord) -> Option<String> {
        self.0.exit_status(r)
    }
    fn stop(
        &self,
        p: &std::path::Path,
        t: &str,
        s: hale_backend::StopSignal,
        g: Duration,
        d: Instant,
    ) -> Result<hale_backend::StopReport, hale_backend::BackendError> {
        self.0.stop(p, t, s, g, d)
    }
    fn run_check(&self, argv: &[String], timeout: Duration) -> Result<CheckOutcome, hale_backend::BackendError> {
        self.0.run_check(argv, timeout)
    }
    fn run_output(&self, argv: &[String], t: Duration, l: usize) -> Result<CommandOutput, hale_backend::BackendError> {
        self.0.run_output(argv, t, l)
    }
    fn find_program(&self, program: &str, path: &str) -> Option<PathBuf> {
        self.0.find_program(program, path)
    }
    fn user_exists(&self, user: &str) -> bool {
        self.0.user_exists(user)
    }
}

fn pacemaker() -> (Pacemaker, Arc<FakeProcesses>) {
    let procs =
        Arc::new(FakeProcesses::new(&["/usr/sbin/attrd_updater", "/usr/sbin/crm_attribute", "/usr/sbin/crm_mon"], &[]));
    (Pacemaker::new(Box::new(Shared(procs.clone()))), procs)
}

// Pacemaker runs on Linux: its tools are looked up on a Unix PATH, which Windows cannot resolve.
#[cfg(not(windows))]
#[test]
fn pacemaker_argv_never_lets_a_value_be_read_as_an_option() {
    let (pm, procs) = pacemaker();
    pm.set_attribute(&Attribute::transient("#health-x"), "-1", soon()).unwrap();
    pm.set_attribute(&Attribute::permanent("site").on("node2"), "east", soon()).unwrap();
    pm.delete_attribute(&Attribute::transient("#health-x"), soon()).unwrap();
    pm.set_promotion_score("db:1", Some("node1"), 100, soon()).unwrap();
    pm.delete_promotion_score("db:1", None, soon()).unwrap();
    assert_eq!(
        procs.checks(),
        vec![
            vec!["/usr/sbin/attrd_updater", "--name=#health-x", "--update=-1"],
            vec!["/usr/sbin/crm_attribute", "--lifetime=forever", "--name=site", "--node=node2", "--update=east"],
            vec!["/usr/sbin/attrd_updater", "--name=#health-x", "--delete"],
            vec!["/usr/sbin/crm_attribute", "--promotion=db:1", "--node=node1", "--update=100"],
            vec!["/usr/sbin/crm_attribute", "--promotion=db:1", "--delete"],
        ]
    );
}

#[test]
fn pacemaker_refuses_names_a_tool_would_misread_without_running_it() {
    let (pm, procs) = pacemaker();
    for bad in ["", "-D", "two words", "line\nbreak"] {
        let e = pm.set_attribute(&Attribute::transient(bad), "v", soon()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid, "{bad:?}");
    }
    let e = pm.set_attribute(&Attribute::transient("ok"), "a\nb", soon()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    let e = pm.set_attribute(&Attribute::transient("ok").on("-x"), "v", soon()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert!(procs.checks().is_empty());
}

// Pacemaker runs on Linux: its tools are looked up on a Unix PATH, which Windows cannot resolve.
#[cfg(not(windows))]
#[test]
fn pacemaker_reads_values_absence_and_errors_from_xml() {
    let (pm, procs) = pacemaker();
    procs.queue_output(answer(0, r##"  <attribute name="#health-x" value="green" host="node1"/>"##));
    assert_eq!(pm.attribute(&Attribute::transient("#health-x"), soon()).unwrap().as_deref(), Some("green"));
    procs.queue_output(answer(105, ""));
    assert_eq!(pm.attribute(&Attribute::permanent("site"), soon()).unwrap(), None);
    procs.queue_output(answer(0, r#"  <attribute name="master-db" value="-20"/>"#));
    assert_eq!(pm.promotion_score("db", None, soon()).unwrap(), Some(-20));
    let mut down = answer(102, "");
    down.stdout = "<pacemaker-result api-version=\"2.25\" request=\"attrd_updater -Q\">\n  <status code=\"102\" message=\"Not connected\">\n    <errors>\n      <error>attrd_updater: Could not connect to attrd: Connection &apos;refused&apos;</error>\n    </errors>\n  </status>\n</pacemaker-result>\n".into();
    procs.queue_output(down);
    let e = pm.attribute(&Attribute::transient("#health-x"), soon()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotConnected);
    assert!(e.reason.ends_with("Could not connect to attrd: Connection 'refused'"), "{}", e.reason);
    procs.queue_output(CommandOutput {
        outcome: CheckOutcome { success: true, status: "exit status 0".into(), last_line: None },
        stdout: "green\n".into(),
    });
    assert_eq!(pm.attribute(&Attribute::transient("x"), soon()).unwrap_err().kind, ErrorKind::Malformed);
    assert_eq!(procs.checks()[0], vec!["/usr/sbin/attrd_updater", "--name=#health-x", "--query", "--output-as=xml"]);
    assert_eq!(
        procs.checks()[1],
        vec!["/usr/sbin/crm_attribute", "--lifetime=forever", "--name=site", "--query", "--output-as=xml"]
    );
}

// Pacemaker runs on Linux: its tools are looked up on a Unix PATH, which Windows cannot resolve.
#[cfg(not(windows))]
#[test]
fn pacemaker_failures_carry_the_tool_reason_and_a_spent_deadline_forks_nothing() {
    let (pm, procs) = pacemaker();
    procs.set_check_result(CheckOutcome {
        success: false,
        status: "exit status 102".into(),
        last_line: Some("Could not connect to attrd".into()),
    });
    let e = pm.set_attribute(&Attribute::transient("x"), "1", soon()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotConnected);
    assert!(e.reason.contains("exit status 102: Could not connect to attrd"), "{}", e.reason);
    let e = pm.set_attribute(&Attribute::transient("x"), "1", Instant::now()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::TimedOut);
    assert_eq!(procs.checks().len(), 1);
    let none = Pacemaker::new(Box::new(FakeProcesses::new(&[], &[])));
    assert_eq!(none.resources(soon()).unwrap_err().kind, ErrorKind::Unavailable);
}

#[cfg(not(windows))]
const CRM_MON: &str = r#"<pacemaker-result api-version="2.25" request="crm_mon --output-as=xml --inactive">
  <summary><nodes_configured number="2"/></summary>
  <nodes>
    <node name="node1" id="1" online="true"/>
    <node name="node2" id="2" online="true"/>
  </nodes>
  <resources>
    <clone id="sync-clone" multi_state="false" unique="false" managed="true" failed="false">
      <resource id="sync" resource_agent="ocf:hale:gitsync" role="Started" active="true" failed="false" managed="true" nodes_running_on="1">
        <node name="node1" id="1" cached="true"/>
      </resource>
      <resource id="sync" resource_agent="ocf:hale:gitsync" role="Stopped" active="false" failed="false" managed="true" nodes_running_on="0"/>
    </clone>
    <clone id="db-clone" multi_state="true" unique="false">
      <resource id="db" resource_agent="ocf:hale:pgsql" role="Promoted" active="true" failed="false" nodes_running_on="1">
        <node name="node2" id="2" cached="true"/>
      </resource>
      <resource id="db" resource_agent="ocf:hale:pgsql" role="Slave" active="true" failed="false" nodes_running_on="1">
        <node name="node1" id="1" cached="true"/>
      </resource>
    </clone>
    <group id="web" number_resources="2">
      <resource id="vip" resource_agent="ocf:hale:vip" role="Started" active="true" failed="true" managed="false" nodes_running_on="1">
        <node name="node2" id="2" cached="true"/>
      </resource>
      <resource id="job" resource_agent="ocf:hale:daemon" role="Stopped" active="false" nodes_running_on="0"/>
    </group>
    <resource id="lone" resource_agent="ocf:hale:daemon" role="Started" active="true" nodes_running_on="1">
      <node name="node1" id="1" cached="true"/>
    </resource>
  </resources>
  <node_history>
    <node name="node1">
      <resource_history id="lone" orphan="false" migration-threshold="1000"/>
    </node>
  </node_history>
  <status code="0" message="OK"/>
</pacemaker-result>
"#;

// Pacemaker runs on Linux: its tools are looked up on a Unix PATH, which Windows cannot resolve.
#[cfg(not(windows))]
#[test]
fn crm_mon_xml_gives_every_instance_with_role_node_and_container() {
    let (pm, procs) = pacemaker();
    procs.queue_output(CommandOutput {
        outcome: CheckOutcome { success: true, status: "exit status 0".into(), last_line: None },
        stdout: CRM_MON.into(),
    });
    let list = pm.resources(soon()).unwrap();
    let brief: Vec<_> = list
        .iter()
        .map(|r| (r.id.as_str(), r.clone.as_deref(), r.group.as_deref(), r.role.clone(), r.nodes.join(",")))
        .collect();
    assert_eq!(
        brief,
        vec![
            ("sync", Some("sync-clone"), None, Role::Started, "node1".into()),
            ("sync", Some("sync-clone"), None, Role::Stopped, String::new()),
            ("db", Some("db-clone"), None, Role::Promoted, "node2".into()),
            ("db", Some("db-clone"), None, Role::Unpromoted, "node1".into()),
            ("vip", None, Some("web"), Role::Started, "node2".into()),
            ("job", None, Some("web"), Role::Stopped, String::new()),
            ("lone", None, None, Role::Started, "node1".into()),
        ]
    );
    assert!(list[4].failed && !list[4].managed && list[4].active);
    assert!(!list[5].active && list[5].managed);
    assert_eq!(list[6].agent, "ocf:hale:daemon");
    assert_eq!(procs.checks()[0], vec!["/usr/sbin/crm_mon", "--output-as=xml", "--inactive"]);
}

#[test]
fn a_publisher_forks_only_when_the_value_changes() {
    let dir = scratch("change");
    let c = FakeCluster::new();
    let p = Publisher::new(&c, &dir);
    let a = Attribute::transient("#health-x");
    assert_eq!(p.cached(&a), Cached::Unknown);
    assert!(p.set(&a, "green", soon()).unwrap());
    assert!(!p.set(&a, "green", soon()).unwrap());
    assert!(p.set(&a, "red", soon()).unwrap());
    assert!(p.delete(&a, soon()).unwrap());
    assert!(!p.delete(&a, soon()).unwrap());
    assert_eq!(p.cached(&a), Cached::Absent);
    assert!(p.set_promotion_score("db", None, 5, soon()).unwrap());
    assert!(!p.set_promotion_score("db", None, 5, soon()).unwrap());
    assert!(p.delete_promotion_score("db", None, soon()).unwrap());
    // The same name on another node or with another lifetime is another memory.
    assert!(p.set(&Attribute::permanent("#health-x"), "red", soon()).unwrap());
    assert!(p.set(&a.clone().on("node2"), "red", soon()).unwrap());
    assert_eq!(
        c.calls(),
        vec![
            "set #health-x=green",
            "set #health-x=red",
            "delete #health-x",
            "score db=5",
            "delete score db",
            "set #health-x=red",
            "set #health-x=red"
        ]
    );
}

#[test]
fn an_empty_run_dir_publishes_and_a_failure_is_retried() {
    let dir = scratch("reboot");
    let c = FakeCluster::new();
    let a = Attribute::transient("#health-x");
    Publisher::new(&c, &dir).set(&a, "green", soon()).unwrap();
    // A reboot: /run is empty again, the first call publishes.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let p = Publisher::new(&c, &dir);
    assert!(p.set(&a, "green", soon()).unwrap());
    c.fail(ClusterError::new(ErrorKind::NotConnected, "attrd is down"));
    assert_eq!(p.set(&a, "red", soon()).unwrap_err().reason, "attrd is down");
    assert_eq!(p.cached(&a), Cached::Unknown);
    c.recover();
    assert!(p.set(&a, "red", soon()).unwrap());
    assert_eq!(c.value(&a).as_deref(), Some("red"));
}

#[test]
fn refresh_reads_the_live_value_when_the_memory_is_stale() {
    let dir = scratch("stale");
    let c = FakeCluster::new();
    let p = Publisher::new(&c, &dir);
    let a = Attribute::transient("#health-x");
    p.set(&a, "green", soon()).unwrap();
    // The manager restarted and dropped its transient attributes behind our back.
    c.put(&a, None);
    assert!(!p.set(&a, "green", soon()).unwrap(), "the memory alone cannot know");
    assert_eq!(p.refresh(&a, soon()).unwrap(), None);
    assert_eq!(p.cached(&a), Cached::Absent);
    assert!(p.set(&a, "green", soon()).unwrap());
    c.put(&a, Some("red"));
    assert_eq!(p.refresh(&a, soon()).unwrap().as_deref(), Some("red"));
    assert_eq!(p.cached(&a), Cached::Value("red".into()));
}

#[test]
fn a_planted_or_foreign_memory_file_is_no_memory() {
    let dir = scratch("planted");
    let c = FakeCluster::new();
    let p = Publisher::new(&c, &dir);
    let a = Attribute::transient("#health-x");
    p.set(&a, "green", soon()).unwrap();
    let file = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    std::fs::write(&file, "reboot-other@\nvalue=green\n").unwrap();
    assert_eq!(p.cached(&a), Cached::Unknown);
    #[cfg(unix)]
    {
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink(dir.join("elsewhere"), &file).unwrap();
        assert_eq!(p.cached(&a), Cached::Unknown);
        assert!(p.set(&a, "green", soon()).unwrap());
        assert!(!std::fs::symlink_metadata(&file).unwrap().file_type().is_symlink());
        assert!(!dir.join("elsewhere").exists());
    }
}

#[test]
fn the_interface_is_object_safe() {
    let c: Box<dyn Cluster> = Box::new(FakeCluster::new());
    assert_eq!(c.attribute(&Attribute::transient("x"), soon()).unwrap(), None);
}
