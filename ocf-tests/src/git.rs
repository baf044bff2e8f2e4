//! Real git repositories for the gitscript and gitsync tests: a bare master, a clone to commit
//! from with the real `git` CLI, SSH signing keys made by `ssh-keygen`, an `allowed_signers`
//! file, and a `git daemon` on loopback.

use crate::require;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

fn run(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `git` with no system or user configuration (the test machine's must not matter).
pub fn git(dir: &Path) -> Command {
    let mut c = Command::new(require("git"));
    c.current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args(["-c", "init.defaultBranch=master", "-c", "user.name=Test", "-c", "user.email=test@example.com"]);
    c
}

/// An SSH signing key and its line for allowed_signers.
pub struct Key {
    pub private: PathBuf,
    pub principal: String,
    /// `principal keytype base64`.
    pub allowed_line: String,
}

impl Key {
    /// A new ed25519 key in `dir`.
    pub fn new(dir: &Path, principal: &str) -> Key {
        let private = dir.join(format!("key-{}", principal.replace(['@', '.'], "-")));
        if !private.exists() {
            run(Command::new(require("ssh-keygen"))
                .args(["-q", "-t", "ed25519", "-N", "", "-C", principal, "-f"])
                .arg(&private));
        }
        let public = std::fs::read_to_string(format!("{}.pub", private.display())).expect("public key");
        let mut words = public.split_whitespace();
        let line = format!("{principal} {} {}", words.next().unwrap_or(""), words.next().unwrap_or(""));
        Key { private, principal: principal.to_string(), allowed_line: line }
    }

    /// Write an allowed_signers file trusting `keys`.
    pub fn allowed_signers(path: &Path, keys: &[&Key]) -> PathBuf {
        let text: String = keys.iter().map(|k| format!("{}\n", k.allowed_line)).collect();
        std::fs::write(path, text).expect("write allowed_signers");
        path.to_path_buf()
    }
}

/// A master repository and a working clone.
pub struct Master {
    pub bare: PathBuf,
    pub work: PathBuf,
}

impl Master {
    /// `dir/master.git` and `dir/work` (created once; later calls reuse them).
    pub fn new(dir: &Path) -> Master {
        let m = Master { bare: dir.join("master.git"), work: dir.join("work") };
        if !m.bare.exists() {
            std::fs::create_dir_all(dir).expect("create the master's directory");
            run(git(dir).args(["init", "-q", "--bare"]).arg(&m.bare));
            run(git(dir).args(["clone", "-q"]).arg(&m.bare).arg(&m.work));
        }
        m
    }

    /// Write `files` (path, content, executable), commit (signed by `key` if given), push.
    /// Returns the new commit id.
    pub fn commit(&self, files: &[(&str, &str, bool)], key: Option<&Key>, message: &str) -> String {
        self.commit_only(files, key, message);
        run(git(&self.work).args(["push", "-q", "origin", "HEAD:master"]));
        self.head()
    }

    /// Write `files`, commit with an OpenPGP signature by `key` of `gpg` (git's default
    /// gpg.format, the real gpg), push. Returns the new commit id.
    pub fn commit_gpg(&self, files: &[(&str, &str, bool)], gpg: &Gpg, key: &str, message: &str) -> String {
        self.write_files(files);
        run(git(&self.work).args(["add", "-A"]));
        let mut c = git(&self.work);
        c.env("GNUPGHOME", &gpg.home).arg("-c").arg(format!("gpg.program={}", gpg.program.display()));
        c.args(["-c", &format!("user.signingkey={key}"), "commit", "-q", "--allow-empty", "-S", "-m", message]);
        run(&mut c);
        run(git(&self.work).args(["push", "-q", "origin", "HEAD:master"]));
        self.head()
    }

    fn write_files(&self, files: &[(&str, &str, bool)]) {
        use std::os::unix::fs::PermissionsExt;
        for (path, content, exec) in files {
            let p = self.work.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, content).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(if *exec { 0o755 } else { 0o644 })).unwrap();
        }
    }

    /// Commit in the working clone without pushing.
    fn commit_only(&self, files: &[(&str, &str, bool)], key: Option<&Key>, message: &str) {
        self.write_files(files);
        run(git(&self.work).args(["add", "-A"]));
        let mut c = git(&self.work);
        if let Some(k) = key {
            c.args(["-c", "gpg.format=ssh", "-c"]).arg(format!("user.signingkey={}", k.private.display()));
            c.args(["commit", "-q", "--allow-empty", "-S", "-m", message]);
        } else {
            c.args(["commit", "-q", "--allow-empty", "--no-gpg-sign", "-m", message]);
        }
        run(&mut c);
    }

    /// Replace the last commit with a different one and force-push it (a history rewrite).
    pub fn rewrite(&self, key: Option<&Key>) -> String {
        run(git(&self.work).args(["reset", "-q", "--hard", "HEAD~1"]));
        self.commit_only(&[("REWRITTEN", "history was rewritten\n", false)], key, "rewritten");
        run(git(&self.work).args(["push", "-q", "--force", "origin", "HEAD:master"]));
        self.head()
    }

    pub fn head(&self) -> String {
        run(git(&self.work).args(["rev-parse", "HEAD"]))
    }

    /// Write `data` as an object of `kind` straight into the bare master (`--literally`: no
    /// check, so a malformed tree goes in as a hostile master would hold it). Returns its id.
    pub fn object(&self, kind: &str, data: &[u8]) -> String {
        use std::io::Write;
        let mut child = git(&self.bare)
            .args(["hash-object", "-w", "--literally", "--stdin", "-t", kind])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("git hash-object");
        child.stdin.take().expect("stdin").write_all(data).expect("write the object");
        let out = child.wait_with_output().expect("git hash-object");
        assert!(out.status.success(), "git hash-object -t {kind} failed");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A raw tree object of `entries` (mode, name, object id), in the order given, duplicates
    /// kept: what `git mktree` would refuse to write.
    pub fn raw_tree(&self, entries: &[(&str, &str, &str)]) -> String {
        let mut data = Vec::new();
        for (mode, name, id) in entries {
            data.extend_from_slice(format!("{mode} {name}\0").as_bytes());
            data.extend((0..id.len() / 2).map(|i| u8::from_str_radix(&id[2 * i..2 * i + 2], 16).expect("hex id")));
        }
        self.object("tree", &data)
    }

    /// Commit `tree` on top of the master's branch (signed by `key` if given) in the bare
    /// repository and move master to it. The working clone is not updated.
    pub fn commit_tree(&self, tree: &str, key: Option<&Key>, message: &str) -> String {
        let parent = run(git(&self.bare).args(["rev-parse", "refs/heads/master"]));
        let mut c = git(&self.bare);
        if let Some(k) = key {
            c.args(["-c", "gpg.format=ssh", "-c"]).arg(format!("user.signingkey={}", k.private.display()));
            c.args(["commit-tree", "-S"]);
        } else {
            c.args(["commit-tree", "--no-gpg-sign"]);
        }
        let id = run(c.args([tree, "-p", &parent, "-m", message]));
        run(git(&self.bare).args(["update-ref", "refs/heads/master", &id]));
        id
    }

    /// A commit on top of the master's branch adding `count` distinct files of `size` bytes
    /// (`data/NN/fI`), written with `git fast-import` (fast even for many files); signed by
    /// `key` if given. Returns the commit id.
    pub fn commit_many(&self, count: usize, size: usize, key: Option<&Key>) -> String {
        use std::io::Write;
        let parent = run(git(&self.bare).args(["rev-parse", "refs/heads/master"]));
        let mut child =
            git(&self.bare).args(["fast-import", "--quiet"]).stdin(Stdio::piped()).spawn().expect("git fast-import");
        {
            let mut w = std::io::BufWriter::new(child.stdin.take().expect("stdin"));
            for i in 0..count {
                let mut body = format!("file {i}\n").repeat(size / 8 + 1).into_bytes();
                body.truncate(size);
                write!(w, "blob\nmark :{}\ndata {}\n", i + 1, body.len()).unwrap();
                w.write_all(&body).unwrap();
                w.write_all(b"\n").unwrap();
            }
            write!(
                w,
                "commit refs/heads/hale-many\ncommitter Test <test@example.com> 1700000000 +0000\ndata 5\nmany\n"
            )
            .unwrap();
            writeln!(w, "from {parent}").unwrap();
            for i in 0..count {
                writeln!(w, "M 100644 :{} data/{:02}/f{i}", i + 1, i % 64).unwrap();
            }
            w.write_all(b"\n").unwrap();
        }
        assert!(child.wait().expect("git fast-import").success(), "git fast-import failed");
        let tree = run(git(&self.bare).args(["rev-parse", "refs/heads/hale-many^{tree}"]));
        run(git(&self.bare).args(["update-ref", "-d", "refs/heads/hale-many"]));
        self.commit_tree(&tree, key, "many files")
    }
}

/// A `git daemon` serving `base` on 127.0.0.1, killed when dropped.
pub struct GitDaemon {
    child: Child,
    pub port: u16,
}

impl GitDaemon {
    pub fn start(base: &Path) -> GitDaemon {
        let port = crate::free_port();
        let daemon = Path::new("/usr/lib/git-core/git-daemon");
        assert!(daemon.exists(), "git daemon (/usr/lib/git-core/git-daemon, package git) is required");
        let child = Command::new(daemon)
            .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start git daemon");
        let up = crate::wait_for(std::time::Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "git daemon did not listen on port {port}");
        GitDaemon { child, port }
    }

    /// The git:// URL of `path` relative to the base.
    pub fn url(&self, path: &str) -> String {
        format!("git://127.0.0.1:{}/{path}", self.port)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A git:// server on loopback that accepts connections and never answers: a master that
/// hangs. Lives as long as the test process.
pub fn silent_master() -> String {
    static PORT: OnceLock<u16> = OnceLock::new();
    let port = *PORT.get_or_init(|| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for s in l.incoming().flatten() {
                held.push(s);
            }
        });
        port
    });
    format!("git://127.0.0.1:{port}/never.git")
}

/// A service script for a master: stays in the foreground (`exec sleep`), so the resource
/// has exactly one process.
pub const SERVICE: &str = "#!/bin/sh\necho \"service at $HALE_COMMIT\"\nexec sleep 100000\n";

/// A master in `dir` with one signed commit holding `bin/svc`, its key and allowed_signers:
/// what a conformance case needs. Idempotent.
pub fn signed_master(dir: &Path) -> (Master, PathBuf) {
    let key = Key::new(dir, "ops@example.com");
    let allowed = dir.join("allowed_signers");
    let m = Master::new(dir);
    if !allowed.exists() {
        Key::allowed_signers(&allowed, &[&key]);
        m.commit(&[("bin/svc", SERVICE, true)], Some(&key), "service");
    }
    (m, allowed)
}

/// The TLS server in front of `git http-backend` (CGI): Python's http.server and ssl (real
/// OpenSSL), basic authentication against the password in a file (never in argv).
const HTTPS_SERVER: &str = r#"
import base64, http.server, ssl, subprocess, sys
port, cert, key, root, user, password_file = sys.argv[1:7]
password = open(password_file).read().splitlines()[0]
wanted = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

class Git(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def serve(self):
        if self.headers.get("Authorization") != wanted:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {
            "GIT_PROJECT_ROOT": root, "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path,
            "QUERY_STRING": query, "REQUEST_METHOD": self.command, "REMOTE_USER": user,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": "127.0.0.1", "PATH": "/usr/bin:/bin", "HOME": root,
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
        }
        out = subprocess.run(["/usr/lib/git-core/git-http-backend"], input=body, env=env,
                             capture_output=True).stdout
        sep = b"\r\n\r\n" if b"\r\n\r\n" in out else b"\n\n"
        head, _, data = out.partition(sep)
        status, headers = 200, []
        for line in head.splitlines():
            name, _, value = line.decode().partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = serve

    def log_message(self, *args):
        pass

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Git)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("listening", flush=True)
server.serve_forever()
"#;

/// An https git server on 127.0.0.1 serving the repositories under `root` (smart HTTP through
/// the real `git http-backend`), with a certificate of `cert`, accepting only `user` with the
/// password in `password_file`. Killed when dropped.
pub struct HttpsGitServer {
    child: Child,
    pub port: u16,
}

impl HttpsGitServer {
    pub fn start(root: &Path, cert: &crate::tls::Issued, user: &str, password_file: &Path) -> HttpsGitServer {
        let backend = Path::new("/usr/lib/git-core/git-http-backend");
        assert!(backend.exists(), "git http-backend (/usr/lib/git-core/git-http-backend, package git) is required");
        let port = crate::free_port();
        let mut child = Command::new(require("python3"))
            .args(["-c", HTTPS_SERVER, &port.to_string()])
            .args([&cert.cert, &cert.key, root])
            .arg(user)
            .arg(password_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the https git server");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        assert_eq!(line.trim(), "listening", "the https git server did not start");
        HttpsGitServer { child, port }
    }

    /// The https:// URL of `path` relative to the root.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}/{path}", self.port)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HttpsGitServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A gpg home of its own with the real `gpg`: keys made, exported and revoked as an
/// administrator would. `at` fakes gpg's clock (`--faked-system-time`, through a wrapper that
/// git runs as its gpg.program), so a key that expired years ago can still sign.
pub struct Gpg {
    pub home: PathBuf,
    pub program: PathBuf,
}

impl Gpg {
    pub fn new(dir: &Path, name: &str, at: Option<&str>) -> Gpg {
        use std::os::unix::fs::PermissionsExt;
        let home = dir.join(format!("gnupg-{name}"));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        let program = dir.join(format!("gpg-{name}"));
        let faked = at.map(|t| format!(" --faked-system-time {t}")).unwrap_or_default();
        let gpg = require("gpg");
        std::fs::write(&program, format!("#!/bin/sh\nexec {}{faked} \"$@\"\n", gpg.display())).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        Gpg { home, program }
    }

    fn gpg(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.env("GNUPGHOME", &self.home).args(["--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""]);
        c
    }

    /// A new key for `uid` (`algo` and `usage` as gpg --quick-gen-key takes them, `expire`
    /// such as `1y` or `1d`); returns its fingerprint.
    pub fn key(&self, uid: &str, algo: &str, usage: &str, expire: &str) -> String {
        run(self.gpg().args(["--quick-gen-key", uid, algo, usage, expire]));
        self.fingerprint(uid)
    }

    /// Add a subkey to `fpr` (`usage`: sign, encr).
    pub fn subkey(&self, fpr: &str, algo: &str, usage: &str, expire: &str) {
        run(self.gpg().args(["--quick-add-key", fpr, algo, usage, expire]));
    }

    pub fn fingerprint(&self, uid: &str) -> String {
        let out = run(self.gpg().args(["--with-colons", "--list-keys", uid]));
        out.lines().find_map(|l| l.strip_prefix("fpr:")).map(|l| l.trim_matches(':').to_string()).expect("fingerprint")
    }

    /// Export the public keys of `fprs` (armored) to `path`.
    pub fn export(&self, fprs: &[&str], path: &Path) {
        let out = self.gpg().arg("--armor").arg("--export").args(fprs).output().expect("gpg --export");
        assert!(out.status.success() && !out.stdout.is_empty(), "gpg --export failed");
        std::fs::write(path, out.stdout).unwrap();
    }

    /// Revoke `fpr` with the revocation certificate gpg made with it, as its owner would.
    pub fn revoke(&self, fpr: &str) {
        let cert = self.home.join("openpgp-revocs.d").join(format!("{fpr}.rev"));
        let text = std::fs::read_to_string(&cert).expect("revocation certificate");
        let armed = text.replace(":-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----BEGIN PGP PUBLIC KEY BLOCK-----");
        let file = self.home.join("revoke.asc");
        std::fs::write(&file, armed).unwrap();
        run(self.gpg().arg("--import").arg(&file));
    }
}
