//! The keystore model and every operation on it. Each mutation validates
//! everything first, then builds its change set, then applies it to the model:
//! an operation that returns an error has changed nothing.

use std::collections::{BTreeMap, BTreeSet};

use zeroize::Zeroizing;

mod admin;

pub use admin::validate_actor;

use crate::audit::{self, Action, Event};
use crate::crypto::{self, Key32};
use crate::format;
use crate::rules;
use crate::store::{self, GroupRecord, HEADER_ID, Header, KeyRecord, Protector, Record, RowId, Sealer, Secret};
use crate::types::{Cipher, Env, Error, KeyState, Operation, Result, Tag};

/// Export and import (a child module: it builds rows with the helpers below).
#[path = "transfer.rs"]
pub mod transfer;

/// A row as stored by the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    pub version: u64,
    pub body: Vec<u8>,
}

/// What a mutation changed: upserts carry their new version, deletes the
/// version they expect to remove.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeSet {
    pub upserts: Vec<Row>,
    pub deletes: Vec<(String, u64)>,
}

impl ChangeSet {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.deletes.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    pub tag: Tag,
    pub name: String,
    pub cipher: Cipher,
    pub description: String,
    pub created: u64,
    pub modified: u64,
    pub active_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    pub tag: Tag,
    pub name: String,
    pub group: String,
    pub state: KeyState,
    pub description: String,
    pub created: u64,
    pub modified: u64,
    pub recoverable: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub groups: u32,
    /// Keys per state, in `KeyState::ALL` order.
    pub keys: [u32; 5],
    pub corrupt_rows: u32,
    pub quiesced: bool,
    pub hmk_id: String,
    pub kpk_id: String,
    /// Sequence number of the last audit entry (the number of entries).
    pub audit_entries: u64,
}

/// A row that failed to load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowFault {
    pub id: String,
    pub message: String,
}

/// Records whose index entry (name, or the group's active key) another
/// record took over while a batch of rows was loading.
#[derive(Default)]
struct Displaced {
    keys: Vec<Tag>,
    groups: Vec<Tag>,
}

const MAX_NAME_BYTES: usize = 255;
const MAX_DESCRIPTION_BYTES: usize = 4096;

/// An open keystore: header, keys to unseal rows, and the loaded rows with indexes.
pub struct Keystore {
    env: Box<dyn Env>,
    header: Header,
    header_version: u64,
    sealer: Sealer,
    groups: BTreeMap<Tag, (GroupRecord, u64)>,
    group_names: BTreeMap<String, Tag>,
    keys: BTreeMap<Tag, (KeyRecord, u64)>,
    key_names: BTreeMap<(Tag, String), Tag>,
    /// Active key per group: the one-active rule's index.
    active: BTreeMap<Tag, Tag>,
    /// Rows that failed to load, by id, with why.
    corrupt: BTreeMap<String, String>,
    /// The audit chain head and its row version (0: no head row yet).
    audit_head: audit::Head,
    audit_head_version: u64,
    /// Who the audit entries of this instance's mutations name.
    actor: String,
    /// A new HMK between `begin_rotate_hmk` and `finish_rotate_hmk`.
    pending_hmk: Option<admin::PendingHmk>,
}

impl Keystore {
    /// Make a new keystore; returns it and the change set holding its header
    /// and its first audit entry.
    pub fn create(
        env: Box<dyn Env>,
        hmk: &Secret,
        hmk_id: Option<String>,
        kpk: &Secret,
        kpk_id: Option<String>,
    ) -> Result<(Keystore, ChangeSet)> {
        Keystore::create_as(env, hmk, hmk_id, kpk, kpk_id, None)
    }

    /// `create`, with the actor its audit entry names.
    pub fn create_as(
        env: Box<dyn Env>,
        hmk: &Secret,
        hmk_id: Option<String>,
        kpk: &Secret,
        kpk_id: Option<String>,
        actor: Option<&str>,
    ) -> Result<(Keystore, ChangeSet)> {
        if let Some(actor) = actor {
            validate_actor(actor)?;
        }
        let hmk_id = protector_id(&*env, hmk_id, "hmk")?;
        let kpk_id = protector_id(&*env, kpk_id, "kpk")?;
        let (hmk_p, hmk_key) = Protector::new(hmk_id, hmk, random(&*env), "HMK")?;
        let (kpk_p, kpk_key) = Protector::new(kpk_id, kpk, random(&*env), "KPK")?;
        let header = Header { format_version: store::FORMAT_VERSION, hmk: hmk_p, kpk: kpk_p, quiesced: false };
        let mut ks = Keystore::empty(env, header, 0, Sealer::new(&hmk_key, &kpk_key));
        if let Some(actor) = actor {
            ks.actor = actor.to_string();
        }
        let mut changes = ks.write_header(ks.header.clone());
        let detail = format!(
            "HMK {:?} ({}), KPK {:?} ({})",
            ks.header.hmk.id,
            admin::kind_name(ks.header.hmk.kind),
            ks.header.kpk.id,
            admin::kind_name(ks.header.kpk.kind)
        );
        ks.append_audit(vec![Event::new(Action::CreateKeystore).detail(detail)], &mut changes);
        Ok((ks, changes))
    }

    /// Open from the header row: checks both keys, then the header's MAC.
    pub fn open(env: Box<dyn Env>, header: &Row, hmk: &Secret, kpk: &Secret) -> Result<Keystore> {
        if header.id != HEADER_ID {
            return Err(Error::InvalidArgument(format!("row {:?} is not the header row", header.id)));
        }
        let parsed = store::parse_header(&header.body)?;
        let hmk_key = parsed.hmk.unlock(hmk, "HMK")?;
        let kpk_key = parsed.kpk.unlock(kpk, "KPK")?;
        let sealer = Sealer::new(&hmk_key, &kpk_key);
        let verified = sealer.verify_header(&header.body, header.version)?;
        Ok(Keystore::empty(env, verified, header.version, sealer))
    }

    fn empty(env: Box<dyn Env>, header: Header, header_version: u64, sealer: Sealer) -> Keystore {
        Keystore {
            env,
            header,
            header_version,
            sealer,
            groups: BTreeMap::new(),
            group_names: BTreeMap::new(),
            keys: BTreeMap::new(),
            key_names: BTreeMap::new(),
            active: BTreeMap::new(),
            corrupt: BTreeMap::new(),
            audit_head: audit::Head::default(),
            audit_head_version: 0,
            actor: admin::DEFAULT_ACTOR.to_string(),
            pending_hmk: None,
        }
    }

    /// Bring the model up to date with rows changed in storage. A row that
    /// fails to unseal is kept out and reported; the rest stays usable.
    pub fn load(&mut self, rows: &[Row], deleted: &[String]) -> Result<Vec<RowFault>> {
        for id in deleted {
            self.forget(id);
        }
        let mut faults: Vec<RowFault> = Vec::new();
        let mut displaced = Displaced::default();
        // The header first: if the HMK or KPK changed, nothing else is read with the old keys.
        let (header, rest): (Vec<&Row>, Vec<&Row>) = rows.iter().partition(|r| r.id == HEADER_ID);
        for row in header.into_iter().chain(rest) {
            if matches!(RowId::parse(&row.id), Some(RowId::AuditEntry(_))) {
                continue; // audit entries are read with `read_audit`, never kept in the model
            }
            self.forget(&row.id);
            let loaded = self.load_row(row, &mut displaced);
            // A row given twice in one batch: only its last copy counts.
            faults.retain(|f| f.id != row.id);
            if let Err(e) = loaded {
                if row.id == HEADER_ID {
                    // Without a trustworthy header nothing can be trusted.
                    return Err(e);
                }
                self.corrupt.insert(row.id.clone(), e.message().to_string());
                faults.push(RowFault { id: row.id.clone(), message: e.message().to_string() });
            }
        }
        // Checked once the whole batch is in: within a batch, rows of one
        // commit (an activation and its bump) arrive one by one.
        self.fault_contradictions(displaced, &mut faults);
        Ok(faults)
    }

    /// Rows that each authenticate but contradict each other: two active keys
    /// in a group, two keys of a group or two groups with one name. Committed
    /// states never hold these; rows put back one by one from older versions
    /// (or a buggy host) can. Which side is genuine cannot be told, so every
    /// side is kept out and reported, like a corrupt row; a group with such a
    /// key row gets no activation until the rows are repaired.
    ///
    /// Only records that lost an index entry during the batch can be in a
    /// contradiction (the model was consistent before it), so the cost
    /// follows the batch, not the size of the keystore.
    fn fault_contradictions(&mut self, displaced: Displaced, faults: &mut Vec<RowFault>) {
        let mut active: BTreeMap<Tag, BTreeSet<Tag>> = BTreeMap::new();
        let mut key_names: BTreeMap<(Tag, &str), BTreeSet<Tag>> = BTreeMap::new();
        for tag in &displaced.keys {
            let Some((rec, _)) = self.keys.get(tag) else { continue };
            if rec.state == KeyState::Active {
                let claims = active.entry(rec.group).or_default();
                claims.insert(*tag);
                claims.extend(self.active.get(&rec.group));
            }
            let named = key_names.entry((rec.group, &rec.name)).or_default();
            named.insert(*tag);
            named.extend(self.key_names.get(&(rec.group, rec.name.clone())));
        }
        let mut bad_keys: Vec<(Tag, Tag, String)> = Vec::new();
        for (group, tags) in active.into_iter().filter(|(_, t)| t.len() > 1) {
            for tag in &tags {
                let why = format!(
                    "{} keys of one group claim to be active ({}): rows were rolled back one by one or tampered with",
                    tags.len(),
                    tags.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
                );
                bad_keys.push((group, *tag, why));
            }
        }
        for ((group, name), tags) in key_names.into_iter().filter(|(_, t)| t.len() > 1) {
            for tag in &tags {
                let why = format!(
                    "{} keys of one group are named {name:?}: rows were rolled back or tampered with",
                    tags.len()
                );
                bad_keys.push((group, *tag, why));
            }
        }
        let mut group_names: BTreeMap<&str, BTreeSet<Tag>> = BTreeMap::new();
        for tag in &displaced.groups {
            let Some((rec, _)) = self.groups.get(tag) else { continue };
            let named = group_names.entry(&rec.name).or_default();
            named.insert(*tag);
            named.extend(self.group_names.get(&rec.name));
        }
        let bad_groups: Vec<(Tag, String)> = group_names
            .into_iter()
            .filter(|(_, t)| t.len() > 1)
            .flat_map(|(name, tags)| {
                let why = format!("{} groups are named {name:?}: rows were rolled back or tampered with", tags.len());
                tags.into_iter().map(move |t| (t, why.clone()))
            })
            .collect();
        for (group, tag, why) in bad_keys {
            let id = store::key_row_id(&group, &tag);
            if self.keys.contains_key(&tag) {
                self.remove_key(&tag);
            }
            faults.retain(|f| f.id != id);
            faults.push(RowFault { id: id.clone(), message: why.clone() });
            self.corrupt.insert(id, why);
        }
        for (tag, why) in bad_groups {
            let id = store::group_row_id(&tag);
            self.remove_group(&tag);
            faults.retain(|f| f.id != id);
            faults.push(RowFault { id: id.clone(), message: why.clone() });
            self.corrupt.insert(id, why);
        }
        // A displaced record that stayed takes its index entries back (the
        // record that displaced it may since have gone).
        for tag in &displaced.keys {
            if let Some((rec, _)) = self.keys.get(tag) {
                self.key_names.entry((rec.group, rec.name.clone())).or_insert(*tag);
                if rec.state == KeyState::Active {
                    self.active.entry(rec.group).or_insert(*tag);
                }
            }
        }
        for tag in &displaced.groups {
            if let Some((rec, _)) = self.groups.get(tag) {
                self.group_names.entry(rec.name.clone()).or_insert(*tag);
            }
        }
    }

    fn load_row(&mut self, row: &Row, displaced: &mut Displaced) -> Result<()> {
        let wrong = || Error::Integrity(format!("row {} does not hold what its id names", row.id));
        match RowId::parse(&row.id) {
            Some(RowId::Header) => {
                self.check_protectors_unchanged(&row.body)?;
                self.header = self.sealer.verify_header(&row.body, row.version)?;
                self.header_version = row.version;
            }
            Some(RowId::AuditHead) => match self.sealer.open_row(&row.id, row.version, &row.body)? {
                Record::AuditHead(head) => {
                    self.audit_head = head;
                    self.audit_head_version = row.version;
                }
                _ => return Err(wrong()),
            },
            Some(RowId::AuditEntry(_)) => {}
            Some(RowId::Group(tag)) => match self.sealer.open_row(&row.id, row.version, &row.body)? {
                Record::Group(g) if g.tag == tag => {
                    displaced.groups.extend(self.group_names.get(&g.name).filter(|&&t| t != tag));
                    self.insert_group(g, row.version)
                }
                _ => return Err(wrong()),
            },
            Some(RowId::Key { group, key }) => match self.sealer.open_row(&row.id, row.version, &row.body)? {
                Record::Key(k) if k.tag == key && k.group == group => {
                    displaced.keys.extend(self.key_names.get(&(group, k.name.clone())).filter(|&&t| t != key));
                    if k.state == KeyState::Active {
                        displaced.keys.extend(self.active.get(&group).filter(|&&t| t != key));
                    }
                    self.insert_key(k, row.version)
                }
                _ => return Err(wrong()),
            },
            None => return Err(Error::Integrity(format!("row id {:?} is not a keystate row", row.id))),
        }
        Ok(())
    }

    // ---- groups -------------------------------------------------------------------

    pub fn create_group(&mut self, name: &str, cipher: Cipher, description: &str) -> Result<(GroupInfo, ChangeSet)> {
        self.writable()?;
        validate_name("group", name)?;
        validate_description(description)?;
        if self.group_names.contains_key(name) {
            return Err(Error::AlreadyExists(format!("group {name:?} already exists")));
        }
        // Not the tag of a group whose row is missing or corrupt either: its
        // keys would join the new group.
        let tag = loop {
            let tag = Tag(random(&*self.env));
            let taken = self.groups.contains_key(&tag)
                || self.keys_in(tag).next().is_some()
                || self.corrupt.contains_key(&store::group_row_id(&tag));
            if !taken {
                break tag;
            }
        };
        let now = self.env.now();
        let rec = GroupRecord {
            tag,
            name: name.to_string(),
            cipher,
            description: description.to_string(),
            created: now,
            modified: now,
        };
        let mut changes = ChangeSet::default();
        let event = Event::new(Action::CreateGroup).group(name).detail(format!("cipher {}", cipher.name()));
        self.put_group(rec, 1, &mut changes);
        self.append_audit(vec![event], &mut changes);
        Ok((self.group_info(&tag), changes))
    }

    pub fn groups(&self) -> Vec<GroupInfo> {
        self.group_names.values().map(|tag| self.group_info(tag)).collect()
    }

    pub fn group(&self, name: &str) -> Result<GroupInfo> {
        Ok(self.group_info(&self.group_tag(name)?))
    }

    pub fn modify_group(
        &mut self,
        name: &str,
        new_name: Option<&str>,
        description: Option<&str>,
    ) -> Result<(GroupInfo, ChangeSet)> {
        self.writable()?;
        let tag = self.group_tag(name)?;
        let (mut rec, version) = self.groups[&tag].clone();
        if let Some(new_name) = new_name.filter(|n| *n != rec.name) {
            validate_name("group", new_name)?;
            if self.group_names.contains_key(new_name) {
                return Err(Error::AlreadyExists(format!(
                    "cannot rename group {name:?}: group {new_name:?} already exists"
                )));
            }
            rec.name = new_name.to_string();
        }
        if let Some(d) = description {
            validate_description(d)?;
            rec.description = d.to_string();
        }
        let mut changes = ChangeSet::default();
        let old = &self.groups[&tag].0;
        if rec != *old {
            let event = Event::new(Action::ModifyGroup).group(&rec.name).detail(admin::changes_detail(
                &old.name,
                &rec.name,
                &old.description,
                &rec.description,
            ));
            rec.modified = self.env.now();
            self.put_group(rec, version + 1, &mut changes);
            self.append_audit(vec![event], &mut changes);
        }
        Ok((self.group_info(&tag), changes))
    }

    pub fn delete_group(&mut self, name: &str) -> Result<ChangeSet> {
        self.writable()?;
        let tag = self.group_tag(name)?;
        let held = self.keys_in(tag).count() + self.corrupt_keys_in(&tag).len();
        if held > 0 {
            return Err(Error::NotDeletable(format!(
                "group {name:?} still holds {held} key(s); only an empty group can be deleted"
            )));
        }
        let id = store::group_row_id(&tag);
        let version = self.groups[&tag].1;
        self.forget(&id);
        let mut changes = ChangeSet { upserts: vec![], deletes: vec![(id, version)] };
        self.append_audit(vec![Event::new(Action::DeleteGroup).group(name)], &mut changes);
        Ok(changes)
    }

    // ---- keys ---------------------------------------------------------------------

    pub fn create_key(
        &mut self,
        group: &str,
        name: &str,
        state: KeyState,
        passphrase: Option<&str>,
        description: &str,
    ) -> Result<(KeyInfo, ChangeSet)> {
        self.writable()?;
        let group_tag = self.group_tag(group)?;
        validate_name("key", name)?;
        validate_description(description)?;
        if !rules::can_create_in(state) {
            return Err(Error::InvalidTransition(format!(
                "cannot create key {name:?} in group {group:?} as {state}: keys are created prelive or active"
            )));
        }
        self.name_free(group_tag, group, name)?;
        let salt: [u8; 8] = random(&*self.env);
        let material = match passphrase {
            Some("") => return Err(Error::InvalidArgument("the key pass phrase is empty".into())),
            Some(p) => crypto::derive_from_passphrase(p, &salt)?,
            None => Zeroizing::new(random(&*self.env)),
        };
        let tag = crypto::key_tag(salt, &material);
        if let Some(existing) = self.keys.get(&tag) {
            return Err(Error::AlreadyExists(format!("key tag {tag} already exists (key {:?})", existing.0.name)));
        }
        let event = Event::new(Action::CreateKey)
            .group(group)
            .key(name, tag)
            .states(None, Some(state))
            .detail(if passphrase.is_some() { "from a pass phrase" } else { "random" });
        self.add_key(group_tag, name, state, description, tag, &material, passphrase.is_some(), event)
    }

    pub fn keys(&self, group: Option<&str>, state: Option<KeyState>) -> Result<Vec<KeyInfo>> {
        let records: Box<dyn Iterator<Item = &KeyRecord>> = match group {
            Some(name) => Box::new(self.keys_in(self.group_tag(name)?)),
            None => Box::new(self.keys.values().map(|(k, _)| k)),
        };
        let mut out: Vec<KeyInfo> =
            records.filter(|k| state.is_none_or(|s| k.state == s)).map(|k| self.key_info(k)).collect();
        out.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
        Ok(out)
    }

    pub fn key(&self, group: &str, name: &str) -> Result<KeyInfo> {
        let tag = self.key_tag_of(group, name)?;
        Ok(self.key_info(&self.keys[&tag].0))
    }

    pub fn key_by_tag(&self, tag: &str) -> Result<KeyInfo> {
        let tag = Tag::parse(tag)?;
        Ok(self.key_info(self.usable_record(&tag)?))
    }

    pub fn set_state(&mut self, group: &str, name: &str, state: KeyState) -> Result<(KeyInfo, ChangeSet)> {
        self.writable()?;
        let tag = self.key_tag_of(group, name)?;
        let (mut rec, version) = self.keys[&tag].clone();
        let mut changes = ChangeSet::default();
        if rec.state == state {
            return Ok((self.key_info(&rec), changes));
        }
        if !rules::can_transition(rec.state, state) {
            let next: Vec<&str> = rules::next_states(rec.state).iter().map(|s| s.name()).collect();
            return Err(Error::InvalidTransition(format!(
                "key {name:?} in group {group:?} cannot move from {} to {state}: keys move one adjacent step at a time (from {} only to {})",
                rec.state,
                rec.state,
                next.join(" or ")
            )));
        }
        if state == KeyState::Active {
            self.check_can_activate(rec.group, group)?;
        }
        let now = self.env.now();
        let mut events =
            vec![Event::new(Action::SetState).group(group).key(name, tag).states(Some(rec.state), Some(state))];
        if state == KeyState::Active {
            events.extend(self.bump_active(rec.group, now, &mut changes, name));
        }
        rec.state = state;
        rec.modified = now;
        self.put_key(rec, version + 1, &mut changes);
        self.append_audit(events, &mut changes);
        Ok((self.key_info(&self.keys[&tag].0), changes))
    }

    pub fn modify_key(
        &mut self,
        group: &str,
        name: &str,
        new_name: Option<&str>,
        description: Option<&str>,
    ) -> Result<(KeyInfo, ChangeSet)> {
        self.writable()?;
        let tag = self.key_tag_of(group, name)?;
        let (mut rec, version) = self.keys[&tag].clone();
        if let Some(new_name) = new_name.filter(|n| *n != rec.name) {
            validate_name("key", new_name)?;
            self.name_free(rec.group, group, new_name)?;
            rec.name = new_name.to_string();
        }
        if let Some(d) = description {
            validate_description(d)?;
            rec.description = d.to_string();
        }
        let mut changes = ChangeSet::default();
        let old = &self.keys[&tag].0;
        if rec != *old {
            let event = Event::new(Action::ModifyKey).group(group).key(&rec.name, tag).detail(admin::changes_detail(
                &old.name,
                &rec.name,
                &old.description,
                &rec.description,
            ));
            rec.modified = self.env.now();
            self.put_key(rec, version + 1, &mut changes);
            self.append_audit(vec![event], &mut changes);
        }
        Ok((self.key_info(&self.keys[&tag].0), changes))
    }

    pub fn delete_key(&mut self, group: &str, name: &str) -> Result<ChangeSet> {
        self.writable()?;
        let tag = self.key_tag_of(group, name)?;
        let (rec, version) = &self.keys[&tag];
        if !rules::allows(rec.state, Operation::Delete) {
            let hint = if rec.recoverable { "" } else { " (and a random key cannot be recovered once deleted)" };
            return Err(Error::NotDeletable(format!(
                "key {name:?} in group {group:?} is {}: only prelive and terminated keys can be deleted{hint}",
                rec.state
            )));
        }
        let id = store::key_row_id(&rec.group, &tag);
        let event = Event::new(Action::DeleteKey).group(group).key(name, tag).states(Some(rec.state), None);
        let version = *version;
        self.forget(&id);
        let mut changes = ChangeSet { upserts: vec![], deletes: vec![(id, version)] };
        self.append_audit(vec![event], &mut changes);
        Ok(changes)
    }

    pub fn recover_key(
        &mut self,
        group: &str,
        name: &str,
        tag: &str,
        passphrase: &str,
        state: KeyState,
    ) -> Result<(KeyInfo, ChangeSet)> {
        self.writable()?;
        let group_tag = self.group_tag(group)?;
        let tag = Tag::parse(tag)?;
        validate_name("key", name)?;
        if !rules::can_recover_in(state) {
            return Err(Error::InvalidTransition(format!(
                "cannot recover key {name:?} as {state}: a recovered key was in use, and nothing returns to prelive"
            )));
        }
        if let Some((existing, _)) = self.keys.get(&tag) {
            let owner = self.group_name(&existing.group);
            return Err(Error::AlreadyExists(format!(
                "key tag {tag} still exists (key {:?} in group {owner:?}); only a deleted key can be recovered",
                existing.name
            )));
        }
        self.name_free(group_tag, group, name)?;
        let material = crypto::derive_from_passphrase(passphrase, &crypto::tag_salt(&tag))?;
        if !crypto::tag_matches(&tag, &material) {
            return Err(Error::WrongPassphrase(format!(
                "the pass phrase does not match key tag {tag} (or the key was random and cannot be recovered)"
            )));
        }
        let event = Event::new(Action::RecoverKey).group(group).key(name, tag).states(None, Some(state));
        self.add_key(group_tag, name, state, "", tag, &material, true, event)
    }

    // ---- keystore -------------------------------------------------------------------

    pub fn quiesce(&mut self) -> Result<ChangeSet> {
        self.set_quiesced(true)
    }

    pub fn unquiesce(&mut self) -> Result<ChangeSet> {
        self.set_quiesced(false)
    }

    fn set_quiesced(&mut self, quiesced: bool) -> Result<ChangeSet> {
        if self.header.quiesced == quiesced {
            return Ok(ChangeSet::default());
        }
        let mut header = self.header.clone();
        header.quiesced = quiesced;
        let mut changes = self.write_header(header);
        let action = if quiesced { Action::Quiesce } else { Action::Unquiesce };
        self.append_audit(vec![Event::new(action)], &mut changes);
        Ok(changes)
    }

    pub fn stats(&self) -> Stats {
        let mut keys = [0u32; 5];
        for (k, _) in self.keys.values() {
            keys[k.state as usize] += 1;
        }
        Stats {
            groups: self.groups.len() as u32,
            keys,
            corrupt_rows: self.corrupt.len() as u32,
            quiesced: self.header.quiesced,
            hmk_id: self.header.hmk.id.clone(),
            kpk_id: self.header.kpk.id.clone(),
            audit_entries: self.audit_head.seq,
        }
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    // ---- data ---------------------------------------------------------------------

    /// Start an encryption with the group's active key.
    pub fn begin_encrypt(&self, group: &str, aad: &[u8], chunk_size: u32) -> Result<format::Encryptor> {
        let group_tag = self.group_tag(group)?;
        let key_tag = *self.active.get(&group_tag).ok_or_else(|| {
            Error::KeyUnusable(format!("group {group:?} has no active key to encrypt with: activate a key first"))
        })?;
        let rec = self.usable(&key_tag, Operation::Encrypt)?;
        let material = self.sealer.unwrap(&key_tag, &rec.wrapped)?;
        let cipher = self.groups[&group_tag].0.cipher;
        format::Encryptor::new(cipher, &material, key_tag, random(&*self.env), chunk_size, aad)
    }

    /// The key material for data whose header names `header.key_tag`, if its state allows decryption.
    pub fn decryption_key(&self, header: &format::Header) -> Result<Key32> {
        let rec = self.usable(&header.key_tag, Operation::Decrypt)?;
        self.check_cipher(header, rec)?;
        self.sealer.unwrap(&header.key_tag, &rec.wrapped)
    }

    /// Data names its cipher; it must be the cipher of its key's group.
    fn check_cipher(&self, header: &format::Header, rec: &KeyRecord) -> Result<()> {
        let cipher = self.groups.get(&rec.group).map(|g| g.0.cipher);
        if cipher != Some(header.cipher) {
            return Err(Error::Integrity(format!(
                "the data says {} but key {:?} belongs to a group with another cipher",
                header.cipher.name(),
                rec.name
            )));
        }
        Ok(())
    }

    /// Seal a run of chunks of a message begun with `begin_encrypt` (maybe
    /// on another instance), if the header's key still allows encryption.
    pub fn seal_chunks(&self, header: &[u8], aad: &[u8], first: u64, plaintext: &[u8], last: bool) -> Result<Vec<u8>> {
        let parsed = format::Header::parse(header)?;
        let rec = self.usable(&parsed.key_tag, Operation::Encrypt)?;
        self.check_cipher(&parsed, rec)?;
        let material = self.sealer.unwrap(&parsed.key_tag, &rec.wrapped)?;
        let chunks = format::Chunks::new(header, &material)?;
        let mut out = Vec::with_capacity(plaintext.len() + (plaintext.len() / 64 + 1) * format::GCM_TAG_LEN);
        chunks.seal_run(first, plaintext, last, aad, &mut out)?;
        Ok(out)
    }

    /// Open a run of sealed chunks of the message whose header is `header`.
    pub fn open_chunks(&self, header: &[u8], aad: &[u8], first: u64, ciphertext: &[u8], last: bool) -> Result<Vec<u8>> {
        let parsed = format::Header::parse(header)?;
        let material = self.decryption_key(&parsed)?;
        let chunks = format::Chunks::new(header, &material)?;
        let mut out = Vec::with_capacity(ciphertext.len());
        chunks.open_run(first, ciphertext, last, aad, &mut out)?;
        Ok(out)
    }

    pub fn encrypt(&self, group: &str, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let mut enc = self.begin_encrypt(group, aad, 0)?;
        let mut out = Vec::with_capacity(plaintext.len() + format::HEADER_LEN + 64);
        enc.update(plaintext, &mut out)?;
        enc.finish(&mut out)?;
        Ok(out)
    }

    pub fn decrypt(&self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        format::open(ciphertext, aad, &mut |h| self.decryption_key(h))
    }

    // ---- internals ----------------------------------------------------------------

    fn writable(&self) -> Result<()> {
        if self.header.quiesced {
            return Err(Error::Quiesced("the keystore is quiesced (read-only): unquiesce it to make changes".into()));
        }
        Ok(())
    }

    fn group_tag(&self, name: &str) -> Result<Tag> {
        self.group_names.get(name).copied().ok_or_else(|| Error::NotFound(format!("no group named {name:?}")))
    }

    fn group_name(&self, tag: &Tag) -> String {
        self.groups.get(tag).map(|g| g.0.name.clone()).unwrap_or_else(|| format!("<missing group {tag}>"))
    }

    fn key_tag_of(&self, group: &str, name: &str) -> Result<Tag> {
        let group_tag = self.group_tag(group)?;
        self.key_names
            .get(&(group_tag, name.to_string()))
            .copied()
            .ok_or_else(|| Error::NotFound(format!("no key named {name:?} in group {group:?}")))
    }

    fn name_free(&self, group_tag: Tag, group: &str, name: &str) -> Result<()> {
        if self.key_names.contains_key(&(group_tag, name.to_string())) {
            return Err(Error::AlreadyExists(format!("group {group:?} already has a key named {name:?}")));
        }
        Ok(())
    }

    /// The record of a key by tag, or why it cannot be had.
    fn usable_record(&self, tag: &Tag) -> Result<&KeyRecord> {
        if let Some((rec, _)) = self.keys.get(tag) {
            return Ok(rec);
        }
        let suffix = format!(":{tag}");
        if let Some((id, why)) = self.corrupt.iter().find(|(id, _)| id.starts_with("k:") && id.ends_with(&suffix)) {
            return Err(Error::Integrity(format!("key {tag} cannot be used: row {id}: {why}")));
        }
        Err(Error::NotFound(format!("no key with tag {tag} in this keystore (never created here, or deleted)")))
    }

    /// The record of a key whose state allows `op`.
    fn usable(&self, tag: &Tag, op: Operation) -> Result<&KeyRecord> {
        let rec = self.usable_record(tag)?;
        if !rules::allows(rec.state, op) {
            let allowed: Vec<&str> =
                KeyState::ALL.into_iter().filter(|&s| rules::allows(s, op)).map(|s| s.name()).collect();
            return Err(Error::KeyUnusable(format!(
                "key {:?} in group {:?} is {}: {op} is not allowed ({op} needs a key that is {})",
                rec.name,
                self.group_name(&rec.group),
                rec.state,
                allowed.join(" or ")
            )));
        }
        Ok(rec)
    }

    /// Key rows of a group that failed to load: any of them might be the active key.
    /// A group's keys, by name, through the name index: the cost follows the
    /// group, not the keystore.
    fn keys_in(&self, group: Tag) -> impl Iterator<Item = &KeyRecord> {
        self.key_names
            .range((group, String::new())..)
            .take_while(move |((g, _), _)| *g == group)
            .map(|(_, tag)| &self.keys[tag].0)
    }

    fn corrupt_keys_in(&self, group: &Tag) -> Vec<&String> {
        self.corrupt
            .keys()
            .filter(|id| matches!(RowId::parse(id), Some(RowId::Key { group: g, .. }) if g == *group))
            .collect()
    }

    fn check_can_activate(&self, group_tag: Tag, group: &str) -> Result<()> {
        if let Some(id) = self.corrupt_keys_in(&group_tag).first() {
            return Err(Error::Integrity(format!(
                "group {group:?} has a corrupt key row ({id}); no key is activated there until it is repaired, since it may be the active one"
            )));
        }
        Ok(())
    }

    /// The one-active rule: the group's active key, if any, becomes inactive.
    /// Returns the audit event of the bump.
    fn bump_active(&mut self, group_tag: Tag, now: u64, changes: &mut ChangeSet, activated: &str) -> Option<Event> {
        let old = self.active.get(&group_tag).copied()?;
        let (mut rec, version) = self.keys[&old].clone();
        let event = Event::new(Action::SetState)
            .group(&self.group_name(&group_tag))
            .key(&rec.name, rec.tag)
            .states(Some(rec.state), Some(KeyState::Inactive))
            .detail(format!("one active key per group: bumped by activating key {activated:?}"));
        rec.state = KeyState::Inactive;
        rec.modified = now;
        self.put_key(rec, version + 1, changes);
        Some(event)
    }

    #[allow(clippy::too_many_arguments)]
    fn add_key(
        &mut self,
        group_tag: Tag,
        name: &str,
        state: KeyState,
        description: &str,
        tag: Tag,
        material: &[u8; 32],
        recoverable: bool,
        event: Event,
    ) -> Result<(KeyInfo, ChangeSet)> {
        let mut changes = ChangeSet::default();
        let now = self.env.now();
        let mut events = vec![event];
        if state == KeyState::Active {
            self.check_can_activate(group_tag, &self.group_name(&group_tag))?;
            events.extend(self.bump_active(group_tag, now, &mut changes, name));
        }
        let rec = KeyRecord {
            tag,
            group: group_tag,
            name: name.to_string(),
            state,
            description: description.to_string(),
            created: now,
            modified: now,
            recoverable,
            wrapped: self.sealer.wrap(&tag, material, random(&*self.env)),
        };
        self.put_key(rec, 1, &mut changes);
        self.append_audit(events, &mut changes);
        Ok((self.key_info(&self.keys[&tag].0), changes))
    }

    fn put_group(&mut self, rec: GroupRecord, version: u64, changes: &mut ChangeSet) {
        let id = store::group_row_id(&rec.tag);
        let body = self.sealer.seal_row(&id, version, &Record::Group(rec.clone()), random(&*self.env));
        changes.upserts.push(Row { id, version, body });
        self.insert_group(rec, version);
    }

    fn put_key(&mut self, rec: KeyRecord, version: u64, changes: &mut ChangeSet) {
        let id = store::key_row_id(&rec.group, &rec.tag);
        let body = self.sealer.seal_row(&id, version, &Record::Key(rec.clone()), random(&*self.env));
        changes.upserts.push(Row { id, version, body });
        self.insert_key(rec, version);
    }

    fn write_header(&mut self, header: Header) -> ChangeSet {
        let version = self.header_version + 1;
        let body = self.sealer.encode_header(&header, version);
        self.header = header;
        self.header_version = version;
        ChangeSet { upserts: vec![Row { id: HEADER_ID.into(), version, body }], deletes: vec![] }
    }

    fn insert_group(&mut self, rec: GroupRecord, version: u64) {
        self.remove_group(&rec.tag);
        self.group_names.insert(rec.name.clone(), rec.tag);
        self.groups.insert(rec.tag, (rec, version));
    }

    fn remove_group(&mut self, tag: &Tag) {
        if let Some((old, _)) = self.groups.remove(tag) {
            // The name may already belong to another group loaded in the same batch.
            if self.group_names.get(&old.name) == Some(tag) {
                self.group_names.remove(&old.name);
            }
        }
    }

    fn insert_key(&mut self, rec: KeyRecord, version: u64) {
        self.remove_key(&rec.tag);
        self.key_names.insert((rec.group, rec.name.clone()), rec.tag);
        if rec.state == KeyState::Active {
            self.active.insert(rec.group, rec.tag);
        }
        self.keys.insert(rec.tag, (rec, version));
    }

    fn remove_key(&mut self, tag: &Tag) {
        if let Some((old, _)) = self.keys.remove(tag) {
            // The name may already belong to another key loaded in the same batch.
            let name = (old.group, old.name);
            if self.key_names.get(&name) == Some(tag) {
                self.key_names.remove(&name);
            }
            if self.active.get(&old.group) == Some(tag) {
                self.active.remove(&old.group);
            }
        }
    }

    /// Panics unless every index says exactly what the records say: the
    /// invariant that lets a batch of rows be checked by what it displaced.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn assert_indexes_match_records(&self) {
        let active: BTreeMap<Tag, Tag> = self
            .keys
            .iter()
            .filter(|(_, (k, _))| k.state == KeyState::Active)
            .map(|(t, (k, _))| (k.group, *t))
            .collect();
        let key_names: BTreeMap<(Tag, String), Tag> =
            self.keys.iter().map(|(t, (k, _))| ((k.group, k.name.clone()), *t)).collect();
        let group_names: BTreeMap<String, Tag> = self.groups.iter().map(|(t, (g, _))| (g.name.clone(), *t)).collect();
        assert_eq!(key_names.len(), self.keys.len(), "two keys of a group share a name");
        assert_eq!(group_names.len(), self.groups.len(), "two groups share a name");
        assert_eq!(
            self.keys.values().filter(|(k, _)| k.state == KeyState::Active).count(),
            active.len(),
            "a group has two active keys"
        );
        assert_eq!(self.active, active, "the active key index");
        assert_eq!(self.key_names, key_names, "the key name index");
        assert_eq!(self.group_names, group_names, "the group name index");
    }

    /// Drop whatever the model holds for a row id.
    fn forget(&mut self, id: &str) {
        self.corrupt.remove(id);
        match RowId::parse(id) {
            Some(RowId::Group(tag)) => self.remove_group(&tag),
            Some(RowId::Key { key, .. }) => self.remove_key(&key),
            Some(RowId::Header) | Some(RowId::AuditHead) | Some(RowId::AuditEntry(_)) | None => {}
        }
    }

    fn group_info(&self, tag: &Tag) -> GroupInfo {
        let g = &self.groups[tag].0;
        GroupInfo {
            tag: g.tag,
            name: g.name.clone(),
            cipher: g.cipher,
            description: g.description.clone(),
            created: g.created,
            modified: g.modified,
            active_key: self.active.get(tag).map(|k| self.keys[k].0.name.clone()),
        }
    }

    fn key_info(&self, k: &KeyRecord) -> KeyInfo {
        KeyInfo {
            tag: k.tag,
            name: k.name.clone(),
            group: self.group_name(&k.group),
            state: k.state,
            description: k.description.clone(),
            created: k.created,
            modified: k.modified,
            recoverable: k.recoverable,
        }
    }
}

fn random<const N: usize>(env: &dyn Env) -> [u8; N] {
    let mut out = [0u8; N];
    env.fill_random(&mut out);
    out
}

fn protector_id(env: &dyn Env, id: Option<String>, prefix: &str) -> Result<String> {
    match id {
        Some(id) => {
            validate_name(&format!("{} ID", prefix.to_uppercase()), &id)?;
            Ok(id)
        }
        None => Ok(format!("{prefix}-{}", Tag(random(env)).to_string().split_at(12).0)),
    }
}

/// Names: 1 to 255 bytes of UTF-8, no control characters, no surrounding spaces.
pub(crate) fn validate_name(what: &str, name: &str) -> Result<()> {
    let problem = if name.is_empty() {
        Some("is empty")
    } else if name.len() > MAX_NAME_BYTES {
        Some("is longer than 255 bytes")
    } else if name.chars().any(char::is_control) {
        Some("contains control characters")
    } else if name.trim() != name {
        Some("starts or ends with white space")
    } else {
        None
    };
    match problem {
        Some(p) => Err(Error::InvalidArgument(format!("{what} name {name:?} {p}"))),
        None => Ok(()),
    }
}

/// Descriptions: up to 4096 bytes; newlines and tabs are the only control characters.
fn validate_description(d: &str) -> Result<()> {
    if d.len() > MAX_DESCRIPTION_BYTES {
        return Err(Error::InvalidArgument("description is longer than 4096 bytes".into()));
    }
    if d.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(Error::InvalidArgument("description contains control characters".into()));
    }
    Ok(())
}
