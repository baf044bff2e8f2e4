//! A whole sync on this platform's file system, with a local-path master written through
//! libgit2 (no `git` program, no `ssh-keygen`: the same test runs under Wine): deploy into a
//! read-only tree, switch `current`, fast-forward, refuse a history rewrite, clean up what a
//! dead writer left; and SSH-signed commits, signed here with a fixed test key.

use crate::{deploy, sync, Check, Layout, Mirror, Source, VerifyMode};
use git2::{Commit, Oid, Repository, Signature, Time};
use ssh_key::{private::Ed25519Keypair, HashAlg, LineEnding, PrivateKey};
use std::path::{Path, PathBuf};
use std::time::Duration;

struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let p = std::env::temp_dir().join(format!("hale-gitrepo-{what}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = deploy::remove_tree(&self.0);
    }
}

fn key(seed: u8) -> PrivateKey {
    PrivateKey::new(Ed25519Keypair::from_seed(&[seed; 32]).into(), format!("key{seed}")).unwrap()
}

/// How a test commit is signed.
enum Sign<'a> {
    No,
    With(&'a PrivateKey),
    /// A valid signature by this key, but over other bytes than the commit's.
    OverOtherData(&'a PrivateKey),
}

/// Commit `files` on master of the bare `repo` (replacing the ref, even without fast-forward).
fn commit(repo: &Repository, files: &[(&str, &str)], parent: Option<Oid>, sign: Sign) -> Oid {
    let mut tb = repo.treebuilder(None).unwrap();
    for (name, content) in files {
        tb.insert(name, repo.blob(content.as_bytes()).unwrap(), 0o100644).unwrap();
    }
    let tree = repo.find_tree(tb.write().unwrap()).unwrap();
    let when = Time::new(1_700_000_000 + i64::from(parent.is_some()), 0);
    let who = Signature::new("Test", "test@example.com", &when).unwrap();
    let parents: Vec<Commit> = parent.iter().map(|p| repo.find_commit(*p).unwrap()).collect();
    let parents: Vec<&Commit> = parents.iter().collect();
    let oid = match sign {
        Sign::No => repo.commit(None, &who, &who, "test", &tree, &parents).unwrap(),
        Sign::With(k) | Sign::OverOtherData(k) => {
            let buf = repo.commit_create_buffer(&who, &who, "test", &tree, &parents).unwrap();
            let signed: &[u8] = if matches!(sign, Sign::OverOtherData(_)) { b"other bytes" } else { &buf };
            let pem = k.sign("git", HashAlg::Sha512, signed).unwrap().to_pem(LineEnding::LF).unwrap();
            repo.commit_signed(std::str::from_utf8(&buf).unwrap(), &pem, None).unwrap()
        }
    };
    repo.reference("refs/heads/master", oid, true, "test").unwrap();
    oid
}

fn source(master: &Path, verify: VerifyMode, allowed_signers: Option<PathBuf>) -> Source {
    Source {
        name: "ops".into(),
        url: master.to_string_lossy().into_owned(),
        reference: "master".into(),
        verify,
        allowed_signers,
        keyring: None,
        keep_trees: crate::DEFAULT_KEEP_TREES,
        auth: crate::Auth::default(),
    }
}

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn a_local_master_deploys_read_only_fast_forwards_and_refuses_a_rewrite() {
    let t = TempDir::new("sync");
    let master_path = t.0.join("master.git");
    let master = Repository::init_bare(&master_path).unwrap();
    let c1 = commit(&master, &[("run.ps1", "Write-Output one\n"), ("README", "ops\n")], None, Sign::No);
    let layout = Layout::with_state_dir(&t.0.join("state"));
    let src = source(&master_path, VerifyMode::None, None);

    let r = sync(&layout, &src, WAIT, None).unwrap();
    assert_eq!(r.deployed, Some(c1), "{:?}", r.problem());
    let m = Mirror::open(&layout, "ops").unwrap().unwrap();
    assert_eq!(m.current(), Some(c1.to_string()));
    let tree1 = layout.tree("ops", &c1.to_string());
    let script = tree1.join("run.ps1");
    assert_eq!(std::fs::read_to_string(&script).unwrap(), "Write-Output one\n");
    assert!(std::fs::metadata(&script).unwrap().permissions().readonly(), "deployed files are read-only");

    // A fast-forward is accepted and `current` switches; the old tree stays.
    let c2 = commit(&master, &[("run.ps1", "Write-Output two\n")], Some(c1), Sign::No);
    let r = sync(&layout, &src, WAIT, None).unwrap();
    assert_eq!(r.deployed, Some(c2));
    assert_eq!(m.current(), Some(c2.to_string()));
    let tree2 = layout.tree("ops", &c2.to_string());
    assert_eq!(std::fs::read_to_string(tree2.join("run.ps1")).unwrap(), "Write-Output two\n");
    assert!(tree1.is_dir());

    // A rewritten history is refused: the accepted commit keeps running.
    let c3 = commit(&master, &[("run.ps1", "Write-Output evil\n")], None, Sign::No);
    let r = sync(&layout, &src, WAIT, None).unwrap();
    assert!(matches!(&r.check, Check::Refused { tip, reason } if *tip == c3 && reason.contains("history rewrite")));
    assert_eq!(r.deployed, Some(c2));
    assert_eq!(m.current(), Some(c2.to_string()));
    assert!(!layout.tree("ops", &c3.to_string()).exists());

    // A read-only tree can be removed, and what a dead writer left is cleaned up.
    deploy::remove_tree(&tree1).unwrap();
    assert!(!tree1.exists());
    let left = layout.deploy_dir("ops").join(format!(".incoming-{c1}-4000000000"));
    std::fs::create_dir(&left).unwrap();
    std::fs::write(left.join("half"), "x").unwrap();
    let mut ro = std::fs::metadata(left.join("half")).unwrap().permissions();
    ro.set_readonly(true);
    std::fs::set_permissions(left.join("half"), ro).unwrap();
    m.deploy(c1, None).unwrap();
    assert!(!left.exists(), "the dead writer's leftover is removed");
    assert!(tree1.is_dir(), "the tree is deployed again");
    assert_eq!(m.current(), Some(c2.to_string()), "deploying does not switch current");
}

#[test]
fn only_commits_signed_by_an_allowed_key_are_deployed() {
    let t = TempDir::new("signed");
    let (alice, mallory) = (key(1), key(2));
    let signers = t.0.join("allowed_signers");
    let pubkey = alice.public_key().to_openssh().unwrap();
    std::fs::write(&signers, format!("alice@example.com {pubkey}\n")).unwrap();
    let master_path = t.0.join("master.git");
    let master = Repository::init_bare(&master_path).unwrap();
    let layout = Layout::with_state_dir(&t.0.join("state"));
    let src = source(&master_path, VerifyMode::Signed, Some(signers.clone()));

    let c1 = commit(&master, &[("job.ps1", "1\n")], None, Sign::With(&alice));
    let r = sync(&layout, &src, WAIT, None).unwrap();
    assert_eq!(r.deployed, Some(c1), "{:?}", r.problem());
    assert!(r.signer.as_deref().is_some_and(|s| s.starts_with("alice@example.com (SHA256:")), "{:?}", r.signer);

    let refused = |sign: Sign, why: &str| {
        let tip = commit(&master, &[("job.ps1", "2\n")], Some(c1), sign);
        let r = sync(&layout, &src, WAIT, None).unwrap();
        assert!(matches!(&r.check, Check::Refused { reason, .. } if reason.contains(why)), "{why}: {:?}", r.check);
        assert_eq!(r.deployed, Some(c1), "the last accepted commit stays");
        assert!(!layout.tree("ops", &tip.to_string()).exists(), "a refused commit is never checked out");
    };
    refused(Sign::No, "is not signed");
    refused(Sign::With(&mallory), "not in allowed_signers");
    refused(Sign::OverOtherData(&alice), "bad signature by alice@example.com");

    // Alice signs a fast-forward: accepted again.
    let c2 = commit(&master, &[("job.ps1", "3\n")], Some(c1), Sign::With(&alice));
    assert_eq!(sync(&layout, &src, WAIT, None).unwrap().deployed, Some(c2));
    // A key removed from allowed_signers: the running commit no longer verifies.
    std::fs::write(&signers, format!("bob@example.com {}\n", mallory.public_key().to_openssh().unwrap())).unwrap();
    let r = sync(&layout, &src, WAIT, None).unwrap();
    assert!(
        matches!(&r.check, Check::Refused { reason, .. } if reason.contains("no longer verifies")),
        "{:?}",
        r.check
    );
    assert_eq!(r.deployed, None, "a commit whose signer is no longer trusted is not deployed to run");
    // Nor when the master moved on: the new tip is refused, and so is the accepted commit.
    commit(
        &master,
        &[(
            "job.ps1", "4
",
        )],
        Some(c2),
        Sign::With(&alice),
    );
    let r = sync(&layout, &src, WAIT, None).unwrap();
    assert!(
        matches!(&r.check, Check::Refused { reason, .. } if reason.contains("no longer verifies")),
        "{:?}",
        r.check
    );
    assert_eq!(r.deployed, None);
}

/// A raw tree entry: mode, name, object.
type Entry<'a> = (&'a str, &'a [u8], Oid);

/// A tree object written raw, entries as given (unsorted, duplicates kept): what a hostile
/// master can push, which libgit2's TreeBuilder would never write.
fn raw_tree(repo: &Repository, entries: &[Entry]) -> Oid {
    let mut data = Vec::new();
    for (mode, name, oid) in entries {
        data.extend_from_slice(mode.as_bytes());
        data.push(b' ');
        data.extend_from_slice(name);
        data.push(0);
        data.extend_from_slice(oid.as_bytes());
    }
    repo.odb().unwrap().write(git2::ObjectType::Tree, &data).unwrap()
}

/// An unsigned commit of `tree` on master.
fn commit_tree(repo: &Repository, tree: Oid) -> Oid {
    let when = Time::new(1_700_000_000, 0);
    let who = Signature::new("Test", "test@example.com", &when).unwrap();
    let mut buf = format!("tree {tree}\n").into_bytes();
    buf.extend_from_slice(
        format!("author {} <{}> {} +0000\n", who.name().unwrap(), who.email().unwrap(), 1_700_000_000).as_bytes(),
    );
    buf.extend_from_slice(format!("committer Test <test@example.com> {} +0000\n\nhostile\n", 1_700_000_000).as_bytes());
    let oid = repo.odb().unwrap().write(git2::ObjectType::Commit, &buf).unwrap();
    repo.reference("refs/heads/master", oid, true, "test").unwrap();
    oid
}

#[test]
fn a_malformed_tree_is_refused_and_nothing_is_written_through_a_link() {
    let t = TempDir::new("hostile");
    let victim = t.0.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let before = std::fs::metadata(&victim).unwrap().permissions();
    let master_path = t.0.join("master.git");
    let master = Repository::init_bare(&master_path).unwrap();
    let layout = Layout::with_state_dir(&t.0.join("state"));
    let src = source(&master_path, VerifyMode::None, None);
    let link = master.blob(victim.to_string_lossy().as_bytes()).unwrap();
    let evil = master.blob(b"pwned\n").unwrap();
    let inner = raw_tree(&master, &[("100644", b"config", evil)]);

    let cases: Vec<(Vec<Entry>, &str)> = vec![
        (vec![("120000", b"x", link), ("100644", b"x", evil)], "duplicate entry 'x'"),
        (vec![("40000", b".git", inner)], "is .git"),
        (vec![("40000", b".GIT.", inner)], "is .git"),
        (vec![("40000", b"GIT~1", inner)], "is .git"),
        (vec![("100644", b"..", evil)], "'.' or '..'"),
        (vec![("100644", b"a\\b", evil)], "contains"),
        (vec![("100777", b"run", evil)], "bad file mode 100777"),
        (
            vec![("40000", b"d", raw_tree(&master, &[("120000", b"y", link), ("100644", b"y", evil)]))],
            "duplicate entry 'd/y'",
        ),
    ];
    for (entries, why) in cases {
        let c = commit_tree(&master, raw_tree(&master, &entries));
        let r = sync(&layout, &src, WAIT, None).unwrap();
        assert!(
            matches!(&r.check, Check::Refused { tip, reason } if *tip == c && reason.contains("malformed tree") && reason.contains(why)),
            "{why}: {:?}",
            r.check
        );
        assert_eq!(r.deployed, None, "{why}: never accepted");
        let e = Mirror::open(&layout, "ops").unwrap().unwrap().deploy(c, None).unwrap_err();
        assert!(e.contains("malformed tree") && e.contains(why), "{why}: deploy refuses it too: {e}");
        assert!(!layout.tree("ops", &c.to_string()).exists());
        let left: Vec<_> = std::fs::read_dir(layout.deploy_dir("ops")).into_iter().flatten().flatten().collect();
        assert!(left.is_empty(), "{why}: nothing is written: {left:?}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n", "{why}");
        assert_eq!(std::fs::metadata(&victim).unwrap().permissions(), before, "{why}: never chmod through a link");
    }
    // A well-formed tree with a link pointing outside deploys the link itself, unfollowed.
    let c = commit_tree(&master, raw_tree(&master, &[("100644", b"a", evil), ("120000", b"x", link)]));
    assert_eq!(sync(&layout, &src, WAIT, None).unwrap().deployed, Some(c));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn a_mirror_of_another_repository_or_policy_is_refused_under_the_same_name() {
    let t = TempDir::new("shared");
    let dev_path = t.0.join("dev").join("ops.git");
    let dev = Repository::init_bare(&dev_path).unwrap();
    let unsigned = commit(&dev, &[("job", "unsigned\n")], None, Sign::No);
    let alice = key(1);
    let signers = t.0.join("allowed_signers");
    std::fs::write(&signers, format!("alice@example.com {}\n", alice.public_key().to_openssh().unwrap())).unwrap();
    let prod_path = t.0.join("ops.git");
    let prod = Repository::init_bare(&prod_path).unwrap();
    commit(&prod, &[("job", "signed\n")], None, Sign::With(&alice));
    let layout = Layout::with_state_dir(&t.0.join("state"));

    let none = source(&dev_path, VerifyMode::None, None);
    assert_eq!(sync(&layout, &none, WAIT, None).unwrap().deployed, Some(unsigned));
    let signed = source(&prod_path, VerifyMode::Signed, Some(signers.clone()));
    let e = sync(&layout, &signed, WAIT, None).unwrap_err();
    let (dev_url, prod_url) = (dev_path.to_string_lossy(), prod_path.to_string_lossy());
    for want in [&*dev_url, &*prod_url, "verify=none", "verify=signed"] {
        assert!(e.contains(want), "{want} not in {e}");
    }
    // The same repository with another policy is refused too: the accepted commit was
    // accepted without a signature.
    let e = sync(&layout, &Source { url: none.url.clone(), ..signed.clone() }, WAIT, None).unwrap_err();
    assert!(e.contains("give this one its own name"), "{e}");
    // Keyed apart by name, each runs what its own rules accept.
    let r = sync(&layout, &Source { name: "ops-prod".into(), ..signed }, WAIT, None).unwrap();
    assert!(r.deployed.is_some_and(|c| c != unsigned), "{:?}", r.problem());
}

#[test]
fn key_validity_is_judged_by_this_nodes_clock_not_the_commit_date() {
    let t = TempDir::new("validity");
    let alice = key(1);
    let signers = t.0.join("allowed_signers");
    // Expired long ago; the commit claims a date before the expiry.
    let pubkey = alice.public_key().to_openssh().unwrap();
    std::fs::write(&signers, format!("alice@example.com valid-before=20240101 {pubkey}\n")).unwrap();
    let master_path = t.0.join("master.git");
    let master = Repository::init_bare(&master_path).unwrap();
    let c1 = commit(&master, &[("job", "1\n")], None, Sign::With(&alice));
    assert!(master.find_commit(c1).unwrap().time().seconds() < 1_704_067_200, "backdated");
    let layout = Layout::with_state_dir(&t.0.join("state"));
    let src = source(&master_path, VerifyMode::Signed, Some(signers.clone()));
    let r = sync(&layout, &src, WAIT, None).unwrap();
    assert!(matches!(&r.check, Check::Refused { reason, .. } if reason.contains("not valid")), "{:?}", r.check);
    assert_eq!(r.deployed, None);
}

#[test]
fn a_checkout_past_its_deadline_stops_and_leaves_no_tree() {
    let t = TempDir::new("deadline");
    let master_path = t.0.join("master.git");
    let master = Repository::init_bare(&master_path).unwrap();
    let names: Vec<String> = (0..500).map(|i| format!("f{i}")).collect();
    let files: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "data\n")).collect();
    let c = commit(&master, &files, None, Sign::No);
    let layout = Layout::with_state_dir(&t.0.join("state"));
    let src = source(&master_path, VerifyMode::None, None);
    let e = sync(&layout, &src, WAIT, Some(std::time::Instant::now())).unwrap_err();
    assert!(e.contains(&format!("checkout of {} did not finish within", &c.to_string()[..12])), "{e}");
    let left: Vec<_> = std::fs::read_dir(layout.deploy_dir("ops")).into_iter().flatten().flatten().collect();
    assert!(left.is_empty(), "no half tree: {left:?}");
    // With time, the same commit deploys whole.
    assert_eq!(sync(&layout, &src, WAIT, None).unwrap().deployed, Some(c));
    assert_eq!(std::fs::read_dir(layout.tree("ops", &c.to_string())).unwrap().count(), 500);
}

#[test]
fn a_server_that_never_answers_is_a_fetch_past_its_budget() {
    // Accepts the connection and says nothing: only libgit2's read timeout ends the wait, and
    // the reason must name the budget, whichever clock noticed first.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // The connection is closed after 20 s whatever happens: a fetch without a working read
    // timeout then fails this test instead of hanging it. Not joined: the test is done first.
    std::thread::spawn(move || {
        let held = listener.accept();
        std::thread::sleep(Duration::from_secs(20));
        drop(held);
    });
    let t = TempDir::new("silent");
    let layout = Layout::with_state_dir(&t.0.join("state"));
    let mut src = source(&t.0.join("unused"), VerifyMode::None, None);
    src.url = format!("git://127.0.0.1:{port}/silent.git");
    let r = sync(&layout, &src, Duration::from_millis(300), None).unwrap();
    let e = r.fetch_error.expect("a silent server is a fetch error");
    assert!(e.contains("the fetch did not finish within 0.3s"), "{e}");
}

#[test]
fn old_trees_are_pruned_but_the_newest_the_current_and_those_in_use_stay() {
    let t = TempDir::new("prune");
    let master_path = t.0.join("master.git");
    let master = Repository::init_bare(&master_path).unwrap();
    let layout = Layout::with_state_dir(&t.0.join("state"));
    let src = Source { keep_trees: 2, ..source(&master_path, VerifyMode::None, None) };
    let mut last = None;
    let mut deploy_next = |n: usize| {
        let c = commit(&master, &[("run.ps1", &format!("Write-Output {n}\n"))], last, Sign::No);
        last = Some(c);
        assert_eq!(sync(&layout, &src, WAIT, None).unwrap().deployed, Some(c));
        c
    };
    let c1 = deploy_next(1);
    let tree1 = layout.tree("ops", &c1.to_string());
    // A process runs from c1's tree (its working directory is there), seen in /proc. (Windows
    // refuses to move a directory a process works in; Wine does not hold it, so the Wine run
    // checks the rest.)
    let linux = cfg!(target_os = "linux");
    let mut user = linux.then(|| std::process::Command::new("sleep").arg("120").current_dir(&tree1).spawn().unwrap());
    let c2 = deploy_next(2);
    let c3 = deploy_next(3);
    let c4 = deploy_next(4);
    let kept = |c: Oid| layout.tree("ops", &c.to_string()).is_dir();
    assert!(kept(c4) && kept(c3), "the newest 2 stay");
    assert!(!kept(c2), "an older tree nothing uses is removed");
    assert_eq!(kept(c1), linux, "a tree a process runs from stays");
    let listed = crate::trees(&layout, "ops", 2);
    let commits: Vec<String> = listed.iter().map(|t| t.commit.clone()).collect();
    let mut want = vec![c4.to_string(), c3.to_string()];
    if let Some(u) = &user {
        want.push(c1.to_string());
        assert_eq!(listed[2].why(2), format!("used by pid {}", u.id()));
    }
    assert_eq!(commits, want, "newest first");
    assert_eq!(listed[0].why(2), "current, newest 2");
    assert_eq!(listed[1].why(2), "newest 2");

    // Once that process has ended, the next deployment removes its tree, and a removal that was
    // cut short (a dead remover's `.prune-` leftover) is finished.
    if let Some(mut u) = user.take() {
        u.kill().unwrap();
        u.wait().unwrap();
    }
    let left = layout.deploy_dir("ops").join(format!(".prune-{c2}-4000000000"));
    std::fs::create_dir(&left).unwrap();
    std::fs::write(left.join("half"), "x").unwrap();
    let c5 = deploy_next(5);
    assert!(kept(c5) && kept(c4));
    assert!(!kept(c3) && !kept(c1), "older than the newest 2 and unused");
    assert!(!left.exists(), "the cut-short removal is finished");
    assert_eq!(crate::trees(&layout, "ops", 2).len(), 2);
}
