//! Export and import: groups and their keys leave a keystore in one container
//! sealed with an export pass phrase, and enter another keystore in one
//! change set. The container format is in docs/format.md ("Export container
//! v1"); the decisions (what is exported, how names and duplicates are
//! handled) in docs/design.md ("Export and import").
//!
//! This is a child module of `keystore` so it can build rows with the same
//! helpers as every other mutation.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::{ChangeSet, Keystore, random, validate_description, validate_name};
use crate::audit::{Action, Event};
use crate::crypto;
use crate::store::{GroupRecord, KeyRecord, RowId};
use crate::types::{Cipher, Error, KeyState, Result, Tag};

/// First bytes of every export container.
pub const MAGIC: &[u8; 4] = b"KSTX";
/// Container format version written and read by this build.
pub const VERSION: u8 = 1;
/// The only key derivation of version 1: Argon2id v0x13.
const KDF_ARGON2ID: u8 = 1;
/// Length of the container header (authenticated as associated data).
pub const HEADER_LEN: usize = 64;
const SEAL_INFO: &[u8] = b"keystate/export/v1";
const CHECK_LABEL: &str = "EXPORT";

/// What the sealed part of a container holds (postcard, see docs/format.md).
#[derive(Serialize, Deserialize)]
pub struct Payload {
    /// When the export was made (milliseconds since the Unix epoch).
    pub exported: u64,
    pub groups: Vec<ExportedGroup>,
}

#[derive(Serialize, Deserialize)]
pub struct ExportedGroup {
    pub name: String,
    pub cipher: Cipher,
    pub description: String,
    pub created: u64,
    pub modified: u64,
    pub keys: Vec<ExportedKey>,
}

#[derive(Serialize, Deserialize)]
pub struct ExportedKey {
    pub tag: Tag,
    pub name: String,
    pub state: KeyState,
    pub description: String,
    pub created: u64,
    pub modified: u64,
    pub recoverable: bool,
    /// The key material in the clear: the container's seal is its only protection.
    pub material: [u8; 32],
}

impl Drop for ExportedKey {
    fn drop(&mut self) {
        self.material.zeroize();
    }
}

/// Why an import leaves a group or key out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// A key with the same tag is already in the keystore.
    TagExists,
    /// A key with the same key material is already in the keystore (or earlier in the container).
    MaterialExists,
    /// With names preserved: a group of that name exists (groups are never merged).
    GroupExists,
    /// Every key of the group was skipped, so the group is not created.
    NoNewKeys,
}

impl SkipReason {
    pub fn name(self) -> &'static str {
        match self {
            SkipReason::TagExists => "tag-exists",
            SkipReason::MaterialExists => "material-exists",
            SkipReason::GroupExists => "group-exists",
            SkipReason::NoNewKeys => "no-new-keys",
        }
    }
}

/// A skip and the sentence explaining it (it names the existing object).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skip {
    pub reason: SkipReason,
    pub detail: String,
}

/// What an import does (or, previewed, would do) with one group of the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupOutcome {
    /// The group's name in the container.
    pub source_name: String,
    /// Its name in this keystore (the source name when it is skipped).
    pub name: String,
    pub cipher: Cipher,
    /// `None`: the group is created.
    pub skipped: Option<Skip>,
}

/// What an import does (or would do) with one key of the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyOutcome {
    /// The key's group as named in the container.
    pub source_group: String,
    /// The key's group in this keystore (the group's final name).
    pub group: String,
    pub name: String,
    pub tag: Tag,
    pub state: KeyState,
    pub recoverable: bool,
    /// `None`: the key is imported.
    pub skipped: Option<Skip>,
}

/// Everything an import decided, in container order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub groups: Vec<GroupOutcome>,
    pub keys: Vec<KeyOutcome>,
}

// ---- the container ------------------------------------------------------------------

/// Seal `payload` under `passphrase`: header || AES-256-GCM(payload, aad = header).
pub fn seal(payload: &Payload, passphrase: &str, salt: [u8; 16], nonce: [u8; 12]) -> Result<Vec<u8>> {
    if passphrase.is_empty() {
        return Err(Error::InvalidArgument("the export pass phrase is empty".into()));
    }
    let stretched = crypto::derive_from_passphrase(passphrase, &salt)?;
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&[VERSION, KDF_ARGON2ID, 0, 0]);
    header.extend_from_slice(&crypto::ARGON2_M_KIB.to_le_bytes());
    header.extend_from_slice(&crypto::ARGON2_T.to_le_bytes());
    header.extend_from_slice(&crypto::ARGON2_P.to_le_bytes());
    header.extend_from_slice(&salt);
    header.extend_from_slice(&nonce);
    header.extend_from_slice(&crypto::check_value(&stretched, CHECK_LABEL));
    debug_assert_eq!(header.len(), HEADER_LEN);
    let plain = Zeroizing::new(postcard::to_allocvec(payload).expect("payload serializes"));
    let sealed = crypto::seal(&crypto::subkey(stretched.as_ref(), SEAL_INFO), nonce, &header, &plain);
    // `crypto::seal` puts the nonce first; the header already carries it.
    let mut out = header;
    out.extend_from_slice(&sealed[12..]);
    Ok(out)
}

/// Open a container: `integrity` for anything that is not an intact version 1
/// container, `wrong-passphrase` when the pass phrase does not match its check value.
pub fn open(container: &[u8], passphrase: &str) -> Result<Payload> {
    let bad = |why: String| Error::Integrity(format!("not a keystate export container: {why}"));
    if container.len() < MAGIC.len() || &container[..4] != MAGIC {
        return Err(bad("bad magic (expected \"KSTX\")".into()));
    }
    if container.len() < HEADER_LEN + 16 {
        return Err(Error::Integrity(format!(
            "export container truncated: {} bytes, at least {} needed",
            container.len(),
            HEADER_LEN + 16
        )));
    }
    let (header, body) = container.split_at(HEADER_LEN);
    if header[4] != VERSION {
        return Err(Error::Integrity(format!(
            "unsupported export container version {} (this build reads version {VERSION})",
            header[4]
        )));
    }
    if header[5] != KDF_ARGON2ID || header[6..8] != [0, 0] {
        return Err(Error::Integrity("unknown key derivation or reserved bytes in the export container".into()));
    }
    let param = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    if (param(8), param(12), param(16)) != (crypto::ARGON2_M_KIB, crypto::ARGON2_T, crypto::ARGON2_P) {
        return Err(Error::Integrity(format!(
            "export container asks for Argon2id m={} KiB t={} p={}; version 1 uses m={} t={} p={}",
            param(8),
            param(12),
            param(16),
            crypto::ARGON2_M_KIB,
            crypto::ARGON2_T,
            crypto::ARGON2_P
        )));
    }
    if passphrase.is_empty() {
        return Err(Error::InvalidArgument("the export pass phrase is empty".into()));
    }
    let stretched = crypto::derive_from_passphrase(passphrase, &header[20..36])?;
    if !crypto::ct_eq(&crypto::check_value(&stretched, CHECK_LABEL), &header[48..64]) {
        return Err(Error::WrongPassphrase("the export pass phrase does not match this container".into()));
    }
    let mut sealed = header[36..48].to_vec();
    sealed.extend_from_slice(body);
    let plain = crypto::open(&crypto::subkey(stretched.as_ref(), SEAL_INFO), header, &sealed)
        .ok_or_else(|| Error::Integrity("the export container fails authentication: it was altered or cut".into()))?;
    let payload: Payload = postcard::from_bytes(&plain)
        .map_err(|_| Error::Integrity("the export container's content does not decode".into()))?;
    check(&payload)?;
    Ok(payload)
}

/// The rules a container's content must keep, checked although it
/// authenticated: a container is only as good as the program that wrote it.
fn check(payload: &Payload) -> Result<()> {
    let bad = |why: String| Error::Integrity(format!("the export container is inconsistent: {why}"));
    let mut group_names = BTreeSet::new();
    let mut tags = BTreeSet::new();
    for g in &payload.groups {
        validate_name("group", &g.name).and(validate_description(&g.description)).map_err(|e| bad(e.to_string()))?;
        if !group_names.insert(g.name.as_str()) {
            return Err(bad(format!("group {:?} appears twice", g.name)));
        }
        let mut key_names = BTreeSet::new();
        let mut active = 0;
        for k in &g.keys {
            validate_name("key", &k.name).and(validate_description(&k.description)).map_err(|e| bad(e.to_string()))?;
            if !key_names.insert(k.name.as_str()) {
                return Err(bad(format!("group {:?} has two keys named {:?}", g.name, k.name)));
            }
            if !tags.insert(k.tag) {
                return Err(bad(format!("key tag {} appears twice", k.tag)));
            }
            if !crypto::tag_matches(&k.tag, &k.material) {
                return Err(bad(format!("key {:?} does not match its tag {}", k.name, k.tag)));
            }
            active += usize::from(k.state == KeyState::Active);
        }
        if active > 1 {
            return Err(bad(format!("group {:?} has {active} active keys", g.name)));
        }
    }
    Ok(())
}

/// `YYYYMMDDTHHMMSSZ` (UTC) of a time in milliseconds since the Unix epoch.
pub fn name_stamp(millis: u64) -> String {
    let secs = millis / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", rest / 3600, rest / 60 % 60, rest % 60)
}

/// `<base>_<stamp>` (and `-2`, `-3`, ... if taken), cut so it stays a valid name of at most 255 bytes.
fn renamed(base: &str, stamp: &str, taken: &BTreeSet<String>) -> String {
    (1..)
        .map(|n| {
            let suffix = if n == 1 { format!("_{stamp}") } else { format!("_{stamp}-{n}") };
            let mut cut = (super::MAX_NAME_BYTES - suffix.len()).min(base.len());
            while !base.is_char_boundary(cut) {
                cut -= 1;
            }
            format!("{}{suffix}", &base[..cut])
        })
        .find(|name| !taken.contains(name))
        .expect("some suffix is free")
}

// ---- the keystore operations ------------------------------------------------------

/// A key already in the keystore (or earlier in the container), found by the check half of its tag.
struct Known {
    what: String,
    material: KnownMaterial,
}

/// Where to get a known key's material to compare, only when the checks match.
enum KnownMaterial {
    /// A loaded key: unwrap it with the KPK.
    Stored(Tag),
    /// A row that cannot be read: its check is all there is, so a match counts.
    Unreadable,
    /// A key imported earlier in the same container.
    Given(crypto::Key32),
}

impl Keystore {
    /// Seal the named groups (all when `None`) with every key into one
    /// container. Reads only; refuses a selection with unreadable rows.
    pub fn export(&self, groups: Option<&[String]>, passphrase: &str) -> Result<Vec<u8>> {
        if passphrase.is_empty() {
            return Err(Error::InvalidArgument("the export pass phrase is empty".into()));
        }
        let selected: Vec<Tag> = match groups {
            None => {
                if let Some((id, why)) = self.corrupt.iter().next() {
                    return Err(Error::Integrity(format!(
                        "row {id} cannot be read ({why}): an export of all groups would miss it; export the other groups by name"
                    )));
                }
                self.group_names.values().copied().collect()
            }
            Some([]) => return Err(Error::InvalidArgument("no group selected for export".into())),
            Some(names) => {
                let mut tags: Vec<Tag> = names.iter().map(|n| self.group_tag(n)).collect::<Result<_>>()?;
                tags.sort_by_key(|t| self.groups[t].0.name.clone());
                tags.dedup();
                tags
            }
        };
        let mut payload = Payload { exported: self.env.now(), groups: Vec::with_capacity(selected.len()) };
        for group_tag in selected {
            let g = &self.groups[&group_tag].0;
            if let Some(id) = self.corrupt_keys_in(&group_tag).first() {
                return Err(Error::Integrity(format!(
                    "group {:?} has a key row that cannot be read ({id}): it would be missing from the export",
                    g.name
                )));
            }
            let keys = self
                .keys_in(group_tag) // by name
                .map(|k| {
                    Ok(ExportedKey {
                        tag: k.tag,
                        name: k.name.clone(),
                        state: k.state,
                        description: k.description.clone(),
                        created: k.created,
                        modified: k.modified,
                        recoverable: k.recoverable,
                        material: *self.sealer.unwrap(&k.tag, &k.wrapped)?,
                    })
                })
                .collect::<Result<_>>()?;
            payload.groups.push(ExportedGroup {
                name: g.name.clone(),
                cipher: g.cipher,
                description: g.description.clone(),
                created: g.created,
                modified: g.modified,
                keys,
            });
        }
        seal(&payload, passphrase, random(&*self.env), random(&*self.env))
    }

    /// Import a container: every group it holds becomes a new group (renamed
    /// `<name>_<UTC stamp>` unless `preserve_names`), every key whose tag or
    /// material is not here yet is imported into it, re-wrapped with this
    /// keystore's KPK. One change set; `preview` decides the same and changes nothing.
    pub fn import(
        &mut self,
        container: &[u8],
        passphrase: &str,
        preserve_names: bool,
        preview: bool,
    ) -> Result<(ImportReport, ChangeSet)> {
        self.writable()?;
        let payload = open(container, passphrase)?;
        let report = self.plan_import(&payload, preserve_names);
        let changes = match preview {
            true => ChangeSet::default(),
            false => self.import_changes(&payload, &report),
        };
        Ok((report, changes))
    }

    /// Decide what happens to every group and key; changes nothing.
    fn plan_import(&self, payload: &Payload, preserve_names: bool) -> ImportReport {
        let stamp = name_stamp(self.env.now());
        let mut taken: BTreeSet<String> = self.group_names.keys().cloned().collect();
        // Keys by tag and by the check half of the tag (same check: same material).
        let mut by_tag: BTreeMap<Tag, String> = BTreeMap::new();
        let mut by_check: BTreeMap<[u8; 8], Vec<Known>> = BTreeMap::new();
        let check_of = |t: &Tag| -> [u8; 8] { t.0[8..].try_into().expect("8 of 16 bytes") };
        for (k, _) in self.keys.values() {
            let what = format!("key {:?} in group {:?}", k.name, self.group_name(&k.group));
            by_tag.insert(k.tag, what.clone());
            by_check.entry(check_of(&k.tag)).or_default().push(Known { what, material: KnownMaterial::Stored(k.tag) });
        }
        for id in self.corrupt.keys() {
            if let Some(RowId::Key { key, .. }) = RowId::parse(id) {
                let what = format!("the unreadable key row {id}");
                by_tag.insert(key, what.clone());
                by_check.entry(check_of(&key)).or_default().push(Known { what, material: KnownMaterial::Unreadable });
            }
        }

        let mut report = ImportReport::default();
        for g in &payload.groups {
            let blocked = preserve_names && taken.contains(&g.name);
            let name = if preserve_names { g.name.clone() } else { renamed(&g.name, &stamp, &taken) };
            let mut imported = 0;
            for k in &g.keys {
                let same_material = by_check
                    .get(&check_of(&k.tag))
                    .and_then(|known| known.iter().find(|e| self.same_material(&e.material, &k.material)));
                let skipped = if let Some(what) = by_tag.get(&k.tag) {
                    Some(Skip { reason: SkipReason::TagExists, detail: format!("its tag {} is {what}", k.tag) })
                } else if let Some(known) = same_material {
                    Some(Skip {
                        reason: SkipReason::MaterialExists,
                        detail: format!("its key material is already that of {}", known.what),
                    })
                } else if blocked {
                    Some(Skip {
                        reason: SkipReason::GroupExists,
                        detail: format!("its group {:?} exists here and groups are not merged", g.name),
                    })
                } else {
                    None
                };
                if skipped.is_none() {
                    imported += 1;
                    let what = format!("key {:?} imported into group {name:?}", k.name);
                    by_tag.insert(k.tag, what.clone());
                    let material = KnownMaterial::Given(Zeroizing::new(k.material));
                    by_check.entry(check_of(&k.tag)).or_default().push(Known { what, material });
                }
                report.keys.push(KeyOutcome {
                    source_group: g.name.clone(),
                    group: name.clone(),
                    name: k.name.clone(),
                    tag: k.tag,
                    state: k.state,
                    recoverable: k.recoverable,
                    skipped,
                });
            }
            let skipped = if blocked {
                Some(Skip {
                    reason: SkipReason::GroupExists,
                    detail: format!("a group named {:?} exists here and groups are not merged", g.name),
                })
            } else if imported == 0 && !g.keys.is_empty() {
                Some(Skip {
                    reason: SkipReason::NoNewKeys,
                    detail: format!("all {} of its keys are already here", g.keys.len()),
                })
            } else {
                taken.insert(name.clone());
                None
            };
            report.groups.push(GroupOutcome { source_name: g.name.clone(), name, cipher: g.cipher, skipped });
        }
        report
    }

    /// Is `material` that of a known key? Constant time; a stored key that does
    /// not unwrap counts as a match (it cannot be told apart).
    fn same_material(&self, known: &KnownMaterial, material: &[u8; 32]) -> bool {
        match known {
            KnownMaterial::Stored(tag) => match self.keys.get(tag).map(|(k, _)| self.sealer.unwrap(tag, &k.wrapped)) {
                Some(Ok(stored)) => crypto::ct_eq(stored.as_ref(), material),
                _ => true,
            },
            KnownMaterial::Unreadable => true,
            KnownMaterial::Given(given) => crypto::ct_eq(given.as_ref(), material),
        }
    }

    /// The one change set of an import, applied to the model: the rows of
    /// every group and key the report says to create.
    fn import_changes(&mut self, payload: &Payload, report: &ImportReport) -> ChangeSet {
        let mut changes = ChangeSet::default();
        let mut events = Vec::new();
        let mut outcomes = report.keys.iter();
        for (g, outcome) in payload.groups.iter().zip(&report.groups) {
            let keys: Vec<(&ExportedKey, &KeyOutcome)> = g.keys.iter().zip(outcomes.by_ref()).collect();
            if outcome.skipped.is_some() {
                continue;
            }
            let tag = loop {
                let tag = Tag(random(&*self.env));
                if !self.groups.contains_key(&tag) {
                    break tag;
                }
            };
            let rec = GroupRecord {
                tag,
                name: outcome.name.clone(),
                cipher: g.cipher,
                description: g.description.clone(),
                created: g.created,
                modified: g.modified,
            };
            self.put_group(rec, 1, &mut changes);
            let imported = keys.iter().filter(|(_, o)| o.skipped.is_none()).count();
            events.push(Event::new(Action::ImportGroup).group(&outcome.name).detail(format!(
                "from group {:?} of an export container, {imported} of its {} keys",
                g.name,
                keys.len()
            )));
            for (k, _) in keys.into_iter().filter(|(_, o)| o.skipped.is_none()) {
                events.push(
                    Event::new(Action::ImportKey).group(&outcome.name).key(&k.name, k.tag).states(None, Some(k.state)),
                );
                let rec = KeyRecord {
                    tag: k.tag,
                    group: tag,
                    name: k.name.clone(),
                    state: k.state,
                    description: k.description.clone(),
                    created: k.created,
                    modified: k.modified,
                    recoverable: k.recoverable,
                    wrapped: self.sealer.wrap(&k.tag, &k.material, random(&*self.env)),
                };
                self.put_key(rec, 1, &mut changes);
            }
        }
        // In the same change set: an entry exists exactly when its import does.
        self.append_audit(events, &mut changes);
        changes
    }
}
