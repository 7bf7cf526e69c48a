//! Keystore rows: the header and the sealed group and key rows, their ids,
//! and how they are encoded. The model (`keystore.rs`) never sees bytes.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::audit;
use crate::crypto::{self, Key32, SealKey};
use crate::types::{Cipher, Error, KeyState, Result, Tag};

/// Row id of the header.
pub const HEADER_ID: &str = "header";
/// Current keystore format version.
pub const FORMAT_VERSION: u32 = 1;
const HEADER_MAGIC: &[u8; 4] = b"KSTH";
const ROW_FORMAT: u8 = 1;

/// How a protection key was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecretKind {
    Passphrase,
    Raw,
}

/// A protection key as given by the host.
pub enum Secret {
    Passphrase(Zeroizing<String>),
    Raw(Zeroizing<Vec<u8>>),
}

/// What the header says about one protection key (HMK or KPK).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protector {
    pub id: String,
    pub kind: SecretKind,
    /// Argon2id salt when `kind` is a pass phrase.
    pub salt: [u8; 16],
    pub check: [u8; 16],
}

/// The header row: not secret, authenticated with the HMK.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format_version: u32,
    pub hmk: Protector,
    pub kpk: Protector,
    pub quiesced: bool,
}

impl Protector {
    /// A protector for a new key: derives (or takes) the key and records its check.
    pub fn new(id: String, secret: &Secret, salt: [u8; 16], what: &str) -> Result<(Protector, Key32)> {
        let kind = match secret {
            Secret::Passphrase(phrase) if phrase.is_empty() => {
                return Err(Error::InvalidArgument(format!("the {what} pass phrase is empty")));
            }
            Secret::Passphrase(_) => SecretKind::Passphrase,
            Secret::Raw(_) => SecretKind::Raw,
        };
        let mut protector = Protector { id, kind, salt, check: [0; 16] };
        let key = protector.derive(secret, what)?;
        protector.check = crypto::check_value(&key, what);
        Ok((protector, key))
    }

    /// Turn the host's secret into the 32-byte key and check it against this
    /// protector, so a wrong one is `wrong-passphrase`, not corruption.
    /// `what` names the key in messages ("HMK", "KPK").
    pub fn unlock(&self, secret: &Secret, what: &str) -> Result<Key32> {
        let key = self.derive(secret, what)?;
        if !crypto::ct_eq(&crypto::check_value(&key, what), &self.check) {
            return Err(Error::WrongPassphrase(format!(
                "the {what} does not match this keystore ({what} ID {:?})",
                self.id
            )));
        }
        Ok(key)
    }

    fn derive(&self, secret: &Secret, what: &str) -> Result<Key32> {
        match secret {
            Secret::Passphrase(phrase) => crypto::derive_from_passphrase(phrase, &self.salt),
            Secret::Raw(bytes) => {
                let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    Error::InvalidArgument(format!("a raw {what} must be 32 bytes, got {}", bytes.len()))
                })?;
                Ok(Zeroizing::new(arr))
            }
        }
    }
}

/// The keys the HMK and KPK give, one per purpose.
pub struct Sealer {
    row_key: SealKey,
    header_mac_key: Key32,
    wrap_key: SealKey,
}

impl Sealer {
    pub fn new(hmk: &[u8; 32], kpk: &[u8; 32]) -> Sealer {
        let (row_key, header_mac_key) = hmk_keys(hmk);
        Sealer { row_key, header_mac_key, wrap_key: kpk_key(kpk) }
    }

    /// This sealer with another HMK (rotation): same KPK.
    pub fn with_hmk(&self, hmk: &[u8; 32]) -> Sealer {
        let (row_key, header_mac_key) = hmk_keys(hmk);
        Sealer { row_key, header_mac_key, wrap_key: self.wrap_key.clone() }
    }

    /// This sealer with another KPK (rotation): same HMK.
    pub fn with_kpk(&self, kpk: &[u8; 32]) -> Sealer {
        Sealer { row_key: self.row_key.clone(), header_mac_key: self.header_mac_key.clone(), wrap_key: kpk_key(kpk) }
    }

    /// Seal an audit entry (see `audit::seal_entry`).
    pub fn seal_entry(&self, entry: &audit::Entry, nonce: [u8; 12]) -> Vec<u8> {
        audit::seal_entry(&self.row_key, entry, nonce)
    }

    pub fn open_entry(&self, body: &[u8]) -> Option<audit::Entry> {
        audit::open_entry(&self.row_key, body)
    }

    /// The key audit entries are sealed with.
    pub fn row_key(&self) -> &SealKey {
        &self.row_key
    }

    /// Header body: magic || postcard(header) || HMAC(version || magic || fields).
    pub fn encode_header(&self, header: &Header, version: u64) -> Vec<u8> {
        let mut body = HEADER_MAGIC.to_vec();
        body.extend(postcard::to_allocvec(header).expect("header serializes"));
        let tag = crypto::mac(self.header_mac_key.as_ref(), &[&version.to_le_bytes(), &body]);
        body.extend_from_slice(&tag);
        body
    }

    /// Check the header's MAC (after its HMK check value matched).
    pub fn verify_header(&self, body: &[u8], version: u64) -> Result<Header> {
        let header = parse_header(body)?;
        let (fields, tag) = body.split_at(body.len() - 32);
        let expected = crypto::mac(self.header_mac_key.as_ref(), &[&version.to_le_bytes(), fields]);
        if !crypto::ct_eq(&expected, tag) {
            return Err(Error::Integrity("the keystore header was tampered with".into()));
        }
        Ok(header)
    }

    /// Seal a group or key row; the id and version are bound as associated data.
    pub fn seal_row(&self, id: &str, version: u64, record: &Record, nonce: [u8; 12]) -> Vec<u8> {
        let plain = Zeroizing::new(postcard::to_allocvec(record).expect("record serializes"));
        let mut body = vec![ROW_FORMAT];
        body.extend(self.row_key.seal(nonce, &row_aad(id, version), &plain));
        body
    }

    pub fn open_row(&self, id: &str, version: u64, body: &[u8]) -> Result<Record> {
        let corrupt = |why: &str| Error::Integrity(format!("row {id} is corrupt: {why}"));
        match body.split_first() {
            Some((&ROW_FORMAT, sealed)) => {
                let plain = self
                    .row_key
                    .open(&row_aad(id, version), sealed)
                    .ok_or_else(|| corrupt("it fails authentication (tampered, replaced or sealed by another HMK)"))?;
                postcard::from_bytes(&plain).map_err(|_| corrupt("its content does not decode"))
            }
            _ => Err(corrupt("unknown row format")),
        }
    }

    /// Wrap key material with the KPK; the key tag is bound as associated data.
    pub fn wrap(&self, tag: &Tag, material: &[u8; 32], nonce: [u8; 12]) -> Vec<u8> {
        self.wrap_key.seal(nonce, &tag.0, material)
    }

    pub fn unwrap(&self, tag: &Tag, wrapped: &[u8]) -> Result<Key32> {
        let plain = self
            .wrap_key
            .open(&tag.0, wrapped)
            .ok_or_else(|| Error::Integrity(format!("key material of key {tag} does not unwrap with the KPK")))?;
        let arr: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| Error::Integrity(format!("key material of key {tag} has the wrong length")))?;
        Ok(Zeroizing::new(arr))
    }
}

/// The HMK's row sealing key and header MAC key.
fn hmk_keys(hmk: &[u8; 32]) -> (SealKey, Key32) {
    let row_key = crypto::subkey(hmk, b"keystate/row-seal/v1");
    (SealKey::new(&row_key), crypto::subkey(hmk, b"keystate/header-mac/v1"))
}

/// The KPK's key wrapping key.
fn kpk_key(kpk: &[u8; 32]) -> SealKey {
    SealKey::new(&crypto::subkey(kpk, b"keystate/kpk-wrap/v1"))
}

/// Read a header without any key (its MAC is not checked here).
pub fn parse_header(body: &[u8]) -> Result<Header> {
    let bad = || Error::Integrity("the keystore header is malformed".into());
    if body.len() < HEADER_MAGIC.len() + 32 || &body[..4] != HEADER_MAGIC {
        return Err(bad());
    }
    let header: Header = postcard::from_bytes(&body[4..body.len() - 32]).map_err(|_| bad())?;
    if header.format_version != FORMAT_VERSION {
        return Err(Error::Integrity(format!(
            "keystore format version {} is not supported (this build reads version {FORMAT_VERSION})",
            header.format_version
        )));
    }
    Ok(header)
}

fn row_aad(id: &str, version: u64) -> Vec<u8> {
    let mut aad = b"keystate/row/v1".to_vec();
    aad.extend_from_slice(&version.to_le_bytes());
    aad.extend_from_slice(id.as_bytes());
    aad
}

/// What a sealed row holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Record {
    Group(GroupRecord),
    Key(KeyRecord),
    /// The audit chain head (row `audit-head`).
    AuditHead(audit::Head),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub tag: Tag,
    pub name: String,
    pub cipher: Cipher,
    pub description: String,
    pub created: u64,
    pub modified: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub tag: Tag,
    pub group: Tag,
    pub name: String,
    pub state: KeyState,
    pub description: String,
    pub created: u64,
    pub modified: u64,
    pub recoverable: bool,
    /// Key material wrapped by the KPK (nonce || ciphertext || GCM tag).
    pub wrapped: Vec<u8>,
}

/// Row ids: `g:<group tag>` and `k:<group tag>:<key tag>`. The group tag in a
/// key's id lets a corrupt key row still be pinned to its group.
pub fn group_row_id(group: &Tag) -> String {
    format!("g:{group}")
}

pub fn key_row_id(group: &Tag, key: &Tag) -> String {
    format!("k:{group}:{key}")
}

/// What a row id names.
#[derive(Debug, PartialEq, Eq)]
pub enum RowId {
    Header,
    Group(Tag),
    Key {
        group: Tag,
        key: Tag,
    },
    AuditHead,
    /// An audit entry row: not part of the model, never loaded.
    AuditEntry(u64),
}

impl RowId {
    pub fn parse(id: &str) -> Option<RowId> {
        if id == HEADER_ID {
            return Some(RowId::Header);
        }
        if id == audit::HEAD_ID {
            return Some(RowId::AuditHead);
        }
        if let Some(seq) = audit::parse_entry_id(id) {
            return Some(RowId::AuditEntry(seq));
        }
        if let Some(rest) = id.strip_prefix("g:") {
            return Tag::parse(rest).ok().map(RowId::Group);
        }
        let rest = id.strip_prefix("k:")?;
        let (group, key) = rest.split_once(':')?;
        Some(RowId::Key { group: Tag::parse(group).ok()?, key: Tag::parse(key).ok()? })
    }
}
