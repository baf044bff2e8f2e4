//! Git's `allowed_signers` file and the check of a commit's SSH signature against it.
//!
//! The file format is git's (`gpg.ssh.allowedSignersFile`, see ssh-keygen(1) "ALLOWED
//! SIGNERS"): `principals [options] keytype base64-key [comment]`, one key per line, `#`
//! comments. As git does, the signer of a commit is the principal of the line whose key made
//! the signature; the signature must use the namespace `git`. The options `namespaces=`,
//! `valid-after=` and `valid-before=` are honoured (the dates against the commit time, as git
//! passes `-Overify-time`). Lines with `cert-authority` are skipped with a warning: certificate
//! signatures are not supported, so such a signer is never trusted by accident.

use crate::openpgp::Keyring;
use ssh_key::{PublicKey, SshSig};
use std::path::Path;

/// The namespace git signs commits in.
const GIT_NAMESPACE: &str = "git";

/// One trusted key.
#[derive(Clone, Debug)]
struct Signer {
    principals: String,
    key: PublicKey,
    namespaces: Option<Vec<String>>,
    valid_after: Option<i64>,
    valid_before: Option<i64>,
}

/// The keys allowed to sign deployed commits: SSH keys from an allowed_signers file and
/// OpenPGP keys from a keyring (see openpgp.rs).
#[derive(Clone, Debug, Default)]
pub struct AllowedSigners {
    signers: Vec<Signer>,
    keyring: Keyring,
}

/// Split a line into words, keeping double-quoted parts (`namespaces="a,b c"`) in one word.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in line.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                cur.push(ch);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Split `a,b="x,y",c` on the commas outside quotes.
fn split_options(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for ch in s.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                if let Some(o) = out.last_mut() {
                    o.push(ch)
                }
            }
            ',' if !quoted => out.push(String::new()),
            c => {
                if let Some(o) = out.last_mut() {
                    o.push(c)
                }
            }
        }
    }
    out.retain(|o| !o.is_empty());
    out
}

fn is_key_type(word: &str) -> bool {
    word.starts_with("ssh-") || word.starts_with("ecdsa-") || word.starts_with("sk-")
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// `YYYYMMDD[HHMM[SS]][Z]` as seconds since the epoch. ssh-keygen reads dates without `Z` in
/// local time; cluster nodes may not agree on a time zone, so Hale reads them as UTC and says
/// so in the README.
fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim_matches('"');
    let s = s.strip_suffix('Z').unwrap_or(s);
    if !s.bytes().all(|b| b.is_ascii_digit()) || !matches!(s.len(), 8 | 12 | 14) {
        return None;
    }
    let n = |a: usize, b: usize| s.get(a..b).and_then(|x| x.parse::<i64>().ok());
    let (y, mo, d) = (n(0, 4)?, n(4, 6)?, n(6, 8)?);
    let (h, mi, se) = if s.len() >= 12 { (n(8, 10)?, n(10, 12)?, n(12, 14).unwrap_or(0)) } else { (0, 0, 0) };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se)
}

impl AllowedSigners {
    /// Read an allowed_signers file. A line that cannot be parsed is an error naming the line:
    /// a typo must not silently drop a trusted key (or keep a revoked one).
    pub fn load(path: &Path) -> Result<AllowedSigners, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        AllowedSigners::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parse the text of an allowed_signers file.
    pub fn parse(text: &str) -> Result<AllowedSigners, String> {
        let mut signers = Vec::new();
        for (no, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let w = words(line);
            let bad = |what: &str| format!("line {}: {what}", no + 1);
            if w.len() < 3 {
                return Err(bad("expected 'principals [options] keytype key'"));
            }
            let (options, key_at) = if is_key_type(&w[1]) { (None, 1) } else { (Some(w[1].as_str()), 2) };
            let (Some(kind), Some(b64)) = (w.get(key_at), w.get(key_at + 1)) else {
                return Err(bad("missing key"));
            };
            let key = PublicKey::from_openssh(&format!("{kind} {b64}"))
                .map_err(|e| bad(&format!("cannot parse the {kind} key: {e}")))?;
            let mut signer =
                Signer { principals: w[0].clone(), key, namespaces: None, valid_after: None, valid_before: None };
            let mut skip = false;
            for opt in options.map(split_options).unwrap_or_default() {
                let (k, v) = opt.split_once('=').unwrap_or((opt.as_str(), ""));
                let v = v.trim_matches('"');
                match k.to_ascii_lowercase().as_str() {
                    "cert-authority" => skip = true,
                    "namespaces" => signer.namespaces = Some(v.split(',').map(str::to_string).collect()),
                    "valid-after" => {
                        signer.valid_after = Some(parse_time(v).ok_or_else(|| bad(&format!("bad valid-after {v}")))?)
                    }
                    "valid-before" => {
                        signer.valid_before = Some(parse_time(v).ok_or_else(|| bad(&format!("bad valid-before {v}")))?)
                    }
                    other => return Err(bad(&format!("unknown option '{other}'"))),
                }
            }
            if skip {
                log::warn!("allowed_signers line {}: cert-authority keys are not supported; line ignored", no + 1);
                continue;
            }
            signers.push(signer);
        }
        Ok(AllowedSigners { signers, keyring: Keyring::default() })
    }

    /// These keys and the OpenPGP keys of `keyring`.
    pub fn with_keyring(self, keyring: Keyring) -> AllowedSigners {
        AllowedSigners { keyring, ..self }
    }

    /// How many keys are trusted.
    pub fn len(&self) -> usize {
        self.signers.len() + self.keyring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Check a commit signature over `data` with key validity judged at `time` (seconds since
    /// the epoch): an SSH signature (`-----BEGIN SSH SIGNATURE-----`, as git stores it in the
    /// commit's `gpgsig` header) against the SSH keys, an OpenPGP one against the keyring.
    /// Returns the signer's principals (user ID) and key fingerprint.
    pub fn verify(&self, signature: &str, data: &[u8], time: i64) -> Result<String, String> {
        if signature.trim_start().starts_with("-----BEGIN PGP SIGNATURE") {
            if self.keyring.is_empty() {
                return Err("OpenPGP signature, and no keyring is configured (keyring=)".into());
            }
            return self.keyring.verify(signature, data, time);
        }
        let sig = SshSig::from_pem(signature.trim()).map_err(|e| format!("unreadable SSH signature: {e}"))?;
        if sig.namespace() != GIT_NAMESPACE {
            return Err(format!("signature namespace '{}' is not 'git'", sig.namespace()));
        }
        let fingerprint = sig.public_key().fingerprint(Default::default());
        let Some(signer) = self.signers.iter().find(|s| s.key.key_data() == sig.public_key()) else {
            return Err(format!("signed by {fingerprint}, which is not in allowed_signers"));
        };
        if let Some(ns) = &signer.namespaces {
            if !ns.iter().any(|n| n == GIT_NAMESPACE) {
                return Err(format!("key of {} is not allowed to sign in namespace 'git'", signer.principals));
            }
        }
        if signer.valid_after.is_some_and(|t| time < t) || signer.valid_before.is_some_and(|t| time > t) {
            return Err(format!("key of {} was not valid at the commit time", signer.principals));
        }
        signer
            .key
            .verify(GIT_NAMESPACE, data, &sig)
            .map_err(|e| format!("bad signature by {} ({fingerprint}): {e}", signer.principals))?;
        Ok(format!("{} ({fingerprint})", signer.principals))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOAh4Y1HKM3Xx9VuE4QXqI7o5jsBDzSEvAsw3nhE5GDC";

    #[test]
    fn parses_git_format_with_options() {
        let text = format!(
            "# admins\nalice@example.com {KEY} alice\n\nbob@example.com,ops@example.com namespaces=\"git,file\",valid-after=20240101 {KEY}\n"
        );
        let s = AllowedSigners::parse(&text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.signers[1].namespaces.as_deref(), Some(&["git".to_string(), "file".to_string()][..]));
        assert_eq!(s.signers[1].valid_after, Some(1704067200));
    }

    #[test]
    fn skips_cert_authority_and_rejects_garbage() {
        let s = AllowedSigners::parse(&format!("*@example.com cert-authority {KEY}\n")).unwrap();
        assert!(s.is_empty());
        assert!(AllowedSigners::parse("alice ssh-ed25519 notbase64\n").unwrap_err().contains("line 1"));
        assert!(AllowedSigners::parse(&format!("a frobnicate {KEY}\n")).unwrap_err().contains("unknown option"));
    }

    #[test]
    fn dates() {
        assert_eq!(parse_time("19700101"), Some(0));
        assert_eq!(parse_time("20000301120000Z"), Some(951912000));
        assert_eq!(parse_time("2000"), None);
    }

    #[test]
    fn pgp_and_junk_refused() {
        let s = AllowedSigners::parse(&format!("a {KEY}\n")).unwrap();
        assert!(s.verify("-----BEGIN PGP SIGNATURE-----\n", b"x", 0).unwrap_err().contains("no keyring"));
        assert!(s.verify("nonsense", b"x", 0).unwrap_err().contains("unreadable"));
    }
}
