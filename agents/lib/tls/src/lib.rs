//! What Hale's TLS clients share: the git `https://` transport (`hale-gitrepo`) and the etcd
//! lock store (`hale-lock`) both speak rustls through ureq, read PEM files an administrator
//! names, fall back to the system's CAs, and explain a refused certificate with its dates.
//! Having one reader keeps the two from drifting apart in what they accept and how they say
//! what is wrong.
//!
//! - **Trust anchors** ([`roots`]): a CA file (PEM) when given, else the system's bundle
//!   ([`hale_backend::paths::SYSTEM_CA_BUNDLE`], what `update-ca-certificates` maintains,
//!   internal CAs included), else the Mozilla roots compiled in (Windows). Verification is never
//!   turned off by anything here.
//! - **Files** are read without following a symlink and only up to [`FILE_LIMIT`].
//! - **Dates** ([`validity`], [`civil`]): a certificate's validity read from its DER, so that
//!   "expired on 2026-12-06" can be said without a second X.509 parser.

use std::path::Path;

pub mod civil;

pub use ureq::tls::{Certificate, RootCerts};

/// The largest CA, certificate or key file read (a bundle of every public CA is about 220 KiB).
pub const FILE_LIMIT: u64 = 4 << 20;

/// The certificates of the PEM file `path` (no symlink followed), at least one. Messages name
/// the file: "/etc/hale/ca.pem does not exist", "cannot read /etc/hale/ca.pem: ...",
/// "/etc/hale/ca.pem holds no PEM certificate".
pub fn load_certs(path: &Path) -> Result<Vec<Certificate<'static>>, String> {
    let name = path.display();
    let pem = hale_backend::files::read_nofollow(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{name} does not exist"),
        _ => format!("cannot read {name}: {e}"),
    })?;
    if pem.len() as u64 > FILE_LIMIT {
        return Err(format!("{name} is larger than {} MiB", FILE_LIMIT >> 20));
    }
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(format!("{name} is not a PEM certificate file: {e}")),
        }
    }
    if certs.is_empty() {
        return Err(format!("{name} holds no PEM certificate"));
    }
    Ok(certs)
}

/// The trust anchors: the CAs of `ca_file` (given as parameter `param`), else the system's,
/// else the built-in Mozilla roots; and how to name them in a message ("https_ca_file
/// /etc/hale/ca.pem", "the system CAs (/etc/ssl/certs/ca-certificates.crt)").
pub fn roots(ca_file: Option<&Path>, param: &str) -> Result<(RootCerts, String), String> {
    let bundle = Path::new(hale_backend::paths::SYSTEM_CA_BUNDLE);
    match ca_file {
        Some(p) => {
            let certs = load_certs(p).map_err(|e| format!("{param}: {e}"))?;
            Ok((RootCerts::new_with_certs(&certs), format!("{param} {}", p.display())))
        }
        None if !bundle.as_os_str().is_empty() && bundle.is_file() => {
            let certs = load_certs(bundle)?;
            Ok((RootCerts::new_with_certs(&certs), format!("the system CAs ({})", bundle.display())))
        }
        None => Ok((RootCerts::WebPki, "the built-in Mozilla roots".into())),
    }
}

/// The validity of a DER certificate, `(not before, not after)` in Unix seconds.
pub fn validity(der: &[u8]) -> Option<(i64, i64)> {
    let (_, cert, _) = tlv(der)?;
    let (_, mut tbs, _) = tlv(cert)?;
    // [0] version (optional), serialNumber, signature, issuer, then validity.
    let mut skip = 3;
    if tbs.first() == Some(&0xa0) {
        skip += 1;
    }
    for _ in 0..skip {
        tbs = tlv(tbs)?.2;
    }
    let (_, validity, _) = tlv(tbs)?;
    let (t1, before, rest) = tlv(validity)?;
    let (t2, after, _) = tlv(rest)?;
    Some((der_time(t1, before)?, der_time(t2, after)?))
}

/// One DER element: its tag, its content and what follows it.
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)? as usize;
    let (len, head) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        (b.get(2..2 + n)?.iter().fold(0usize, |a, &x| a << 8 | x as usize), 2 + n)
    };
    let content = b.get(head..head.checked_add(len)?)?;
    Some((tag, content, &b[head + len..]))
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) to Unix seconds.
fn der_time(tag: u8, v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let y: i64 = s.get(..2)?.parse().ok()?;
            (if y < 50 { 2000 + y } else { 1900 + y }, s.get(2..)?)
        }
        0x18 => (s.get(..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    if rest.len() != 10 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |i: usize| rest[i..i + 2].parse::<u32>().ok();
    let (month, day, h, m, sec) = (n(0)?, n(2)?, n(4)?, n(6)?, n(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = civil::days_from_civil(year, month, day);
    Some(days * 86400 + i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(sec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_times() {
        assert_eq!(der_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(der_time(0x17, b"261206215956Z"), Some(1796594396));
        assert_eq!(der_time(0x18, b"20261206215956Z"), Some(1796594396));
        assert_eq!(der_time(0x17, b"2612062159Z"), None);
        assert_eq!(der_time(0x17, b"261306215956Z"), None, "month 13");
    }

    #[test]
    fn files_that_are_not_certificates_are_refused_with_their_name() {
        let dir = std::env::temp_dir().join(format!("hale-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("ca.pem");
        std::fs::write(&f, "not a certificate\n").unwrap();
        assert!(load_certs(&f).unwrap_err().contains("holds no PEM certificate"));
        let e = roots(Some(&dir.join("missing.pem")), "https_ca_file").unwrap_err();
        assert!(e.starts_with("https_ca_file: ") && e.ends_with("missing.pem does not exist"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
