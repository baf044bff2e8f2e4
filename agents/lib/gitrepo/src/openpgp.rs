//! OpenPGP commit signatures (git's default `gpg.format=openpgp`, `git commit -S` with a gpg
//! key) checked against a keyring file, in-process with rpgp: no `gpg` process, no gpg home,
//! no trust database of the user running it.
//!
//! The keyring is a file of public keys as `gpg --export [--armor] KEYID...` writes them
//! (several keys, armored or binary). What is checked, by this node's clock (as for SSH keys:
//! the commit's date is whatever its author wrote):
//!
//! - the signature's issuer (fingerprint, else key id) is the primary key or a subkey of a key
//!   in the keyring; a subkey must carry a valid binding signature with the signing flag and
//!   its back-signature (so a subkey cannot be borrowed from another certificate);
//! - the primary key has a valid self-signature (a user ID certification or a direct key
//!   signature); its newest one gives the key's expiry and, for a primary key used to sign,
//!   its flags;
//! - neither the primary key nor the signing subkey is revoked (any valid revocation
//!   signature refuses it, whatever its reason: a key its owner has withdrawn no longer vouches
//!   for what runs as root) or expired now;
//! - the signature itself verifies over the commit (the hash algorithm must not be a broken
//!   one: rpgp refuses MD5 and SHA-1 data signatures).

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey, SignedPublicSubKey};
use pgp::packet::{Signature, SignatureType};
use pgp::types::{KeyDetails, Tag};
use std::path::Path;

/// The OpenPGP public keys trusted to sign deployed commits.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
    name: String,
}

/// Seconds since the epoch of an OpenPGP timestamp.
fn secs(t: pgp::types::Timestamp) -> i64 {
    i64::from(t.as_secs())
}

/// The newest of `sigs` by creation time.
fn newest<'a>(sigs: impl Iterator<Item = &'a Signature>) -> Option<&'a Signature> {
    sigs.max_by_key(|s| s.created().map(secs).unwrap_or(0))
}

/// What a key says about itself: its name for messages and its newest valid self-signature.
struct Primary<'a> {
    name: String,
    self_sig: &'a Signature,
}

fn primary(key: &SignedPublicKey) -> Result<Primary<'_>, String> {
    let fpr = format!("{:X}", key.primary_key.fingerprint());
    let mut valid = Vec::new();
    let mut uid = None;
    for user in &key.details.users {
        for sig in &user.signatures {
            if sig.verify_certification(&key.primary_key, Tag::UserId, &user.id).is_ok() {
                valid.push(sig);
                if uid.is_none() {
                    uid = user.id.as_str().map(str::to_string);
                }
            }
        }
    }
    valid.extend(key.details.direct_signatures.iter().filter(|s| s.verify_key(&key.primary_key).is_ok()));
    let name = match uid {
        Some(u) => format!("{u} (OpenPGP {fpr})"),
        None => format!("OpenPGP key {fpr}"),
    };
    let self_sig = newest(valid.into_iter()).ok_or_else(|| format!("{name} has no valid self-signature"))?;
    Ok(Primary { name, self_sig })
}

/// Is the key made at `created`, with expiry `sig`, expired at `now`? The expiry date if so.
fn expired(created: i64, sig: &Signature, now: i64) -> Option<String> {
    let after = sig.key_expiration_time()?.as_secs();
    let end = created.saturating_add(i64::from(after));
    (after > 0 && end <= now).then(|| hale_tls::civil::day(end))
}

impl Keyring {
    /// Read a keyring file (armored or binary). A key that cannot be parsed is an error naming
    /// the file: a damaged keyring must not silently drop a trusted key.
    pub fn load(path: &Path) -> Result<Keyring, String> {
        let bytes =
            hale_backend::files::read_nofollow(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Keyring::parse(&bytes, &path.display().to_string()).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parse keys from `bytes`; `name` names the keyring in messages. Armored files may hold
    /// several blocks (`cat alice.asc bob.asc > keyring.asc`): each is read.
    pub fn parse(bytes: &[u8], name: &str) -> Result<Keyring, String> {
        const BEGIN: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
        let mut parsed = Vec::new();
        if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            let text = std::str::from_utf8(bytes).map_err(|_| "an armored keyring must be text".to_string())?;
            for block in text.split(BEGIN).skip(1) {
                let block = format!("{BEGIN}{block}");
                let (keys, _) = SignedPublicKey::from_armor_many(block.as_bytes())
                    .map_err(|e| format!("not an OpenPGP keyring: {e}"))?;
                parsed.extend(keys);
            }
        } else {
            parsed.extend(SignedPublicKey::from_bytes_many(bytes).map_err(|e| format!("not an OpenPGP keyring: {e}"))?);
        }
        let keys = parsed
            .into_iter()
            .enumerate()
            .map(|(i, k)| k.map_err(|e| format!("key {} is unreadable: {e}", i + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Keyring { keys, name: name.to_string() })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Check an OpenPGP signature (`-----BEGIN PGP SIGNATURE-----`, as git stores it) over
    /// `data`, with key validity judged at `now`. Returns the signer's user ID and fingerprint.
    pub fn verify(&self, signature: &str, data: &[u8], now: i64) -> Result<String, String> {
        let (sig, _) =
            DetachedSignature::from_string(signature).map_err(|e| format!("unreadable OpenPGP signature: {e}"))?;
        let sig = sig.signature;
        if !matches!(sig.typ(), Some(SignatureType::Binary | SignatureType::Text)) {
            return Err(format!("OpenPGP signature of type {:?} is not a data signature", sig.typ()));
        }
        let issuer = sig
            .issuer_fingerprint()
            .first()
            .map(|f| format!("{f:X}"))
            .or_else(|| sig.issuer_key_id().first().map(|k| k.as_ref().iter().map(|b| format!("{b:02X}")).collect()))
            .unwrap_or_else(|| "an unnamed key".into());
        let is_issuer = |fpr: pgp::types::Fingerprint, id: pgp::types::KeyId| {
            sig.issuer_fingerprint().iter().any(|f| **f == fpr) || sig.issuer_key_id().iter().any(|k| **k == id)
        };
        for key in &self.keys {
            if is_issuer(key.primary_key.fingerprint(), key.primary_key.legacy_key_id()) {
                return self.by_primary(key, &sig, data, now);
            }
            if let Some(sub) = key.public_subkeys.iter().find(|s| is_issuer(s.key.fingerprint(), s.key.legacy_key_id()))
            {
                return self.by_subkey(key, sub, &sig, data, now);
            }
        }
        Err(format!("signed by OpenPGP key {issuer}, which is not in the keyring {}", self.name))
    }

    fn by_primary(&self, key: &SignedPublicKey, sig: &Signature, data: &[u8], now: i64) -> Result<String, String> {
        let p = self.usable_primary(key, now)?;
        let flags = p.self_sig.key_flags();
        if flags != Default::default() && !flags.sign() {
            return Err(format!("{} is not allowed to sign (no signing flag)", p.name));
        }
        sig.verify(&key.primary_key, data).map_err(|e| format!("bad signature by {}: {e}", p.name))?;
        Ok(p.name)
    }

    fn by_subkey(
        &self,
        key: &SignedPublicKey,
        sub: &SignedPublicSubKey,
        sig: &Signature,
        data: &[u8],
        now: i64,
    ) -> Result<String, String> {
        let p = self.usable_primary(key, now)?;
        let subname = format!("subkey {:X} of {}", sub.key.fingerprint(), p.name);
        let revoked = sub.signatures.iter().any(|s| {
            s.typ() == Some(SignatureType::SubkeyRevocation)
                && s.verify_subkey_binding(&key.primary_key, &sub.key).is_ok()
        });
        if revoked {
            return Err(format!("{subname} is revoked"));
        }
        let bindings = sub.signatures.iter().filter(|s| {
            s.typ() == Some(SignatureType::SubkeyBinding)
                && s.verify_subkey_binding(&key.primary_key, &sub.key).is_ok()
                && s.key_flags().sign()
                && s.embedded_signature()
                    .is_some_and(|b| b.verify_primary_key_binding(&sub.key, &key.primary_key).is_ok())
        });
        let binding = newest(bindings).ok_or_else(|| format!("{subname} has no valid signing binding"))?;
        if let Some(day) = expired(secs(sub.key.created_at()), binding, now) {
            return Err(format!("{subname} expired on {day}"));
        }
        sig.verify(&sub.key, data).map_err(|e| format!("bad signature by {subname}: {e}"))?;
        Ok(p.name)
    }

    /// The primary key's self-signature, if the key is neither revoked nor expired now.
    fn usable_primary<'a>(&self, key: &'a SignedPublicKey, now: i64) -> Result<Primary<'a>, String> {
        let p = primary(key)?;
        if key.details.revocation_signatures.iter().any(|s| s.verify_key(&key.primary_key).is_ok()) {
            return Err(format!("{} is revoked", p.name));
        }
        if let Some(day) = expired(secs(key.primary_key.created_at()), p.self_sig, now) {
            return Err(format!("{} expired on {day}", p.name));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(Keyring::parse(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\nnope\n", "k").is_err());
        let k = Keyring::default();
        assert!(k
            .verify("-----BEGIN PGP SIGNATURE-----\nnope\n-----END PGP SIGNATURE-----\n", b"x", 0)
            .unwrap_err()
            .contains("unreadable OpenPGP signature"));
    }
}
