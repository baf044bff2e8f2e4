//! The health checks: HTTP GET, TCP connect, and a command. Each has a timeout cut to what is
//! left before the caller's deadline, and reports one line saying what it saw, with URL
//! credentials redacted (the line may become an exit reason, which lands in the CIB).

use hale_backend::Processes;
use hale_ocf::redact_url;
use regex::Regex;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The configured checks.
#[derive(Clone, Debug, Default)]
pub struct HealthChecks {
    pub url: Option<String>,
    pub regex: Option<Regex>,
    pub tcp: Option<String>,
    pub command: Option<Vec<String>>,
}

/// A response body larger than this is not read further: a health page is small, and the
/// regex is matched against what was read.
const BODY_LIMIT: u64 = 1024 * 1024;

impl HealthChecks {
    pub fn is_empty(&self) -> bool {
        self.url.is_none() && self.tcp.is_none() && self.command.is_none()
    }

    /// Run every configured check, each for at most `each` and all of them before `until`;
    /// the first failure is returned as a one-line reason.
    pub fn run(&self, procs: &dyn Processes, each: Duration, until: Instant) -> Result<(), String> {
        // Every check gets what is left, never more than `each`, and a floor so that a check
        // started at the very end still gets a chance instead of failing on a zero timeout.
        let budget = || each.min(until.saturating_duration_since(Instant::now())).max(Duration::from_millis(50));
        if let Some(addr) = &self.tcp {
            check_tcp(addr, budget())?;
        }
        if let Some(url) = &self.url {
            check_url(url, self.regex.as_ref(), budget())?;
        }
        if let Some(argv) = &self.command {
            let out = procs.run_check(argv, budget()).map_err(|e| format!("health_command: {e}"))?;
            if !out.success {
                let said = out.last_line.map(|l| format!(": {l}")).unwrap_or_default();
                return Err(format!("health_command {} failed ({}){said}", argv[0], out.status));
            }
        }
        Ok(())
    }
}

/// Split `host:port` (`[v6]:port` for IPv6) and check the port. Syntax only (level 0).
pub fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or("expected [address]:port")?;
        (h, p)
    } else {
        s.rsplit_once(':').ok_or("expected host:port")?
    };
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    let port: u16 = port.parse().map_err(|_| format!("'{port}' is not a port number"))?;
    if port == 0 {
        return Err("port 0".into());
    }
    Ok((host.to_string(), port))
}

fn check_tcp(addr: &str, timeout: Duration) -> Result<(), String> {
    let (host, port) = parse_host_port(addr).map_err(|e| format!("health_tcp {addr}: {e}"))?;
    let addrs: Vec<_> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("health_tcp {addr}: cannot resolve: {e}"))?
        .collect();
    let mut last = String::from("no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!("health_tcp {addr}: connection failed: {last}"))
}

fn check_url(url: &str, regex: Option<&Regex>, timeout: Duration) -> Result<(), String> {
    let shown = redact_url(url);
    // The client's own messages may quote the URL: never with its credentials.
    let clean = |e: String| e.replace(url, &shown);
    // No proxy from the environment (a health check targets this node), no redirects
    // followed (a 3xx answer already proves the service is up), every status returned.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .proxy(None)
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent(concat!("hale-daemon/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| format!("health_url {shown}: {}", clean(e.to_string())))?;
    let status = response.status().as_u16();
    if !(200..400).contains(&status) {
        return Err(format!("health_url {shown} answered HTTP {status}"));
    }
    if let Some(re) = regex {
        let body = response
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .lossy_utf8(true)
            .read_to_string()
            .map_err(|e| format!("health_url {shown}: reading the body: {}", clean(e.to_string())))?;
        if !re.is_match(&body) {
            return Err(format!("health_url {shown}: body does not match health_regex '{}'", re.as_str()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert_eq!(parse_host_port("127.0.0.1:80").unwrap(), ("127.0.0.1".into(), 80));
        assert_eq!(parse_host_port("[::1]:8080").unwrap(), ("::1".into(), 8080));
        assert_eq!(parse_host_port("web:443").unwrap(), ("web".into(), 443));
        for bad in ["80", "host:", ":80", "h:99999", "[::1]80", "h:0"] {
            assert!(parse_host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tcp_against_a_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        assert!(check_tcp(&addr, Duration::from_secs(2)).is_ok());
        drop(l);
        let e = check_tcp(&addr, Duration::from_secs(2)).unwrap_err();
        assert!(e.contains("connection failed"), "{e}");
    }

    #[test]
    fn http_statuses_and_regex() {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for answer in ["200 OK", "302 Found", "503 Service Unavailable", "200 OK"] {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let body = "<html>all good</html>";
                let _ = write!(
                    s,
                    "HTTP/1.1 {answer}\r\nContent-Length: {}\r\nLocation: /x\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        let url = format!("http://127.0.0.1:{port}/");
        let t = Duration::from_secs(5);
        assert!(check_url(&url, None, t).is_ok());
        assert!(check_url(&url, None, t).is_ok(), "3xx counts as up");
        assert!(check_url(&url, None, t).unwrap_err().contains("HTTP 503"));
        let re = Regex::new("nope").unwrap();
        assert!(check_url(&url, Some(&re), t).unwrap_err().contains("does not match"));
        server.join().unwrap();
    }

    #[test]
    fn url_credentials_never_in_a_reason() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let url = format!("http://admin:PASSWORD@127.0.0.1:{port}/");
        let e = check_url(&url, None, Duration::from_secs(2)).unwrap_err();
        assert!(!e.contains("PASSWORD") && !e.contains("admin"), "{e}");
        assert!(e.contains("http://***@127.0.0.1"), "{e}");
    }
}
