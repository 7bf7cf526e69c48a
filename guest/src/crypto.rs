//! Key derivation, key checks, row sealing and key wrapping. RustCrypto crates
//! only; every key here is zeroized when dropped.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::types::{Error, Result, Tag};

pub type Key32 = Zeroizing<[u8; 32]>;

/// Argon2id parameters of format version 1 (OWASP's minimum: 19 MiB, 2 passes).
pub const ARGON2_M_KIB: u32 = 19 * 1024;
pub const ARGON2_T: u32 = 2;
pub const ARGON2_P: u32 = 1;

/// Stretch a pass phrase into 32 key bytes with Argon2id.
pub fn derive_from_passphrase(passphrase: &str, salt: &[u8]) -> Result<Key32> {
    use argon2::{Algorithm, Argon2, Params, Version};
    let params = Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, Some(32))
        .map_err(|e| Error::InvalidArgument(format!("argon2 parameters: {e}")))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, out.as_mut())
        .map_err(|e| Error::InvalidArgument(format!("pass phrase derivation failed: {e}")))?;
    Ok(out)
}

/// HKDF-SHA256 expansion of `ikm` for one purpose (`info`), no salt.
pub fn subkey(ikm: &[u8], info: &[u8]) -> Key32 {
    let mut out = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(None, ikm).expand(info, out.as_mut()).expect("32 bytes is a valid HKDF-SHA256 length");
    out
}

/// HMAC-SHA256 of `data` under `key`.
pub fn mac(key: &[u8], data: &[&[u8]]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for part in data {
        m.update(part);
    }
    m.finalize().into_bytes().into()
}

/// Constant-time equality of two secrets-derived byte strings.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The key check value of a protection key (HMK or KPK): proves a key is the
/// right one without revealing it, so a wrong one is reported as such.
pub fn check_value(key: &[u8; 32], label: &str) -> [u8; 16] {
    let full = mac(key, &[b"keystate/check/v1/", label.as_bytes()]);
    full[..16].try_into().expect("16 of 32 bytes")
}

/// A key tag: 8 bytes of pass phrase salt (random for random keys) and an
/// 8-byte check value of the key material.
pub fn key_tag(salt: [u8; 8], material: &[u8; 32]) -> Tag {
    let check = mac(material, &[b"keystate/key-check/v1"]);
    let mut tag = [0u8; 16];
    tag[..8].copy_from_slice(&salt);
    tag[8..].copy_from_slice(&check[..8]);
    Tag(tag)
}

/// The pass phrase salt a key tag carries.
pub fn tag_salt(tag: &Tag) -> [u8; 8] {
    tag.0[..8].try_into().expect("8 of 16 bytes")
}

/// Does `material` match the check value inside `tag`? Constant time.
pub fn tag_matches(tag: &Tag, material: &[u8; 32]) -> bool {
    ct_eq(&key_tag(tag_salt(tag), material).0, &tag.0)
}

/// An AES-256-GCM key with its schedule expanded once. The HMK's row key and
/// the KPK's wrap key seal and open row after row (a million at open), so
/// they keep one of these instead of expanding the key for every row.
/// Zeroized on drop (the `aes` and `polyval` crates' `zeroize` feature).
#[derive(Clone)]
pub struct SealKey(Aes256Gcm);

impl SealKey {
    pub fn new(key: &[u8; 32]) -> SealKey {
        SealKey(Aes256Gcm::new(key.into()))
    }

    /// Returns nonce || ciphertext || tag.
    pub fn seal(&self, nonce: [u8; 12], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let sealed = self
            .0
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(12 + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Open what `seal` made; `None` if it was tampered or the key is wrong.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < 12 + 16 {
            return None;
        }
        let (nonce, body) = sealed.split_at(12);
        self.0.decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad }).ok().map(Zeroizing::new)
    }
}

/// AES-256-GCM seal under a key used once: returns nonce || ciphertext || tag.
pub fn seal(key: &[u8; 32], nonce: [u8; 12], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    SealKey::new(key).seal(nonce, aad, plaintext)
}

/// Open what `seal` made; `None` if it was tampered or the key is wrong.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    SealKey::new(key).open(aad, sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_derivation_is_deterministic_and_salted() {
        let a = derive_from_passphrase("correct horse", b"saltsalt").unwrap();
        let b = derive_from_passphrase("correct horse", b"saltsalt").unwrap();
        let c = derive_from_passphrase("correct horse", b"saltsal2").unwrap();
        let d = derive_from_passphrase("correct horsf", b"saltsalt").unwrap();
        assert_eq!(*a, *b);
        assert_ne!(*a, *c);
        assert_ne!(*a, *d);
    }

    #[test]
    fn tag_carries_salt_and_check() {
        let material = [7u8; 32];
        let tag = key_tag([1, 2, 3, 4, 5, 6, 7, 8], &material);
        assert_eq!(tag_salt(&tag), [1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(tag_matches(&tag, &material));
        assert!(!tag_matches(&tag, &[8u8; 32]));
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let key = [9u8; 32];
        let sealed = seal(&key, [3u8; 12], b"aad", b"secret");
        assert_eq!(open(&key, b"aad", &sealed).unwrap().as_slice(), b"secret");
        assert!(open(&key, b"aad2", &sealed).is_none());
        assert!(open(&[1u8; 32], b"aad", &sealed).is_none());
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 1;
            assert!(open(&key, b"aad", &t).is_none(), "byte {i}");
        }
    }
}
