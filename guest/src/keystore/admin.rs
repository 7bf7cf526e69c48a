//! Administration of an open keystore: the actor and the audit trail every
//! mutation appends to, reading the trail back, and HMK/KPK rotation.

use super::{ChangeSet, Keystore, Row, protector_id, random};
use crate::audit::{self, Action, Cursor, Event, Fault, Verified};
use crate::crypto::Key32;
use crate::store::{self, HEADER_ID, Protector, Record, RowId, Secret, SecretKind};
use crate::types::{Error, Result};

/// The actor of entries made before the host names one.
pub const DEFAULT_ACTOR: &str = "unspecified";
const MAX_ACTOR_BYTES: usize = 255;

/// A new HMK waiting for the audit rows to be re-sealed.
pub struct PendingHmk {
    protector: Protector,
    key: Key32,
}

/// Actors: like names (1 to 255 bytes, no control characters, no surrounding white space).
pub fn validate_actor(actor: &str) -> Result<()> {
    if actor.len() > MAX_ACTOR_BYTES {
        return Err(Error::InvalidArgument(format!("actor {actor:?} is longer than 255 bytes")));
    }
    super::validate_name("actor", actor).map_err(|e| Error::InvalidArgument(e.message().replace(" name ", " ")))
}

pub(super) fn kind_name(kind: SecretKind) -> &'static str {
    match kind {
        SecretKind::Passphrase => "pass phrase",
        SecretKind::Raw => "random key",
    }
}

/// What a rename or description change did, for an audit entry.
pub(super) fn changes_detail(old_name: &str, new_name: &str, old_desc: &str, new_desc: &str) -> String {
    let mut parts = Vec::new();
    if old_name != new_name {
        parts.push(format!("renamed from {old_name:?}"));
    }
    if old_desc != new_desc {
        parts.push("description changed".to_string());
    }
    parts.join(", ")
}

impl Keystore {
    /// Name who makes the following changes (recorded in every audit entry).
    pub fn set_actor(&mut self, actor: &str) -> Result<()> {
        validate_actor(actor)?;
        self.actor = actor.to_string();
        Ok(())
    }

    pub fn actor(&self) -> &str {
        &self.actor
    }

    pub fn audit_head(&self) -> audit::Head {
        self.audit_head
    }

    /// Append one entry per event to the trail, and the new head, to `changes`.
    pub(super) fn append_audit(&mut self, events: Vec<Event>, changes: &mut ChangeSet) {
        if events.is_empty() {
            return;
        }
        for event in events {
            let entry = audit::Entry {
                seq: self.audit_head.seq + 1,
                time: self.env.now(),
                action: event.action,
                actor: self.actor.clone(),
                group: event.group,
                key: event.key,
                key_tag: event.key_tag,
                old_state: event.old_state,
                new_state: event.new_state,
                detail: event.detail,
                prev: self.audit_head.hash,
            };
            let body = self.sealer.seal_entry(&entry, random(&*self.env));
            changes.upserts.push(Row { id: audit::entry_row_id(entry.seq), version: 1, body });
            self.audit_head = audit::Head { seq: entry.seq, hash: entry.hash() };
        }
        self.write_audit_head(changes);
    }

    fn write_audit_head(&mut self, changes: &mut ChangeSet) {
        let version = self.audit_head_version + 1;
        let id = audit::HEAD_ID.to_string();
        let body = self.sealer.seal_row(&id, version, &Record::AuditHead(self.audit_head), random(&*self.env));
        changes.upserts.push(Row { id, version, body });
        self.audit_head_version = version;
    }

    /// Open and verify entry rows (in id order) from `cursor` on; stops at the first fault.
    pub fn read_audit(&self, rows: &[Row], cursor: Cursor) -> (Vec<Verified>, Cursor, Option<Fault>) {
        let rows: Vec<(String, Vec<u8>)> = rows.iter().map(|r| (r.id.clone(), r.body.clone())).collect();
        audit::verify_rows(self.sealer.row_key(), &rows, cursor)
    }

    /// After the last entry row: does the trail end at the head?
    pub fn audit_end(&self, cursor: &Cursor) -> Option<Fault> {
        audit::check_end(&self.audit_head, cursor)
    }

    /// A loaded header whose HMK or KPK differs from this instance's was
    /// rotated by someone else: this instance's keys are stale.
    pub(super) fn check_protectors_unchanged(&self, body: &[u8]) -> Result<()> {
        let new = store::parse_header(body)?;
        for (what, mine, theirs) in [("HMK", &self.header.hmk, &new.hmk), ("KPK", &self.header.kpk, &new.kpk)] {
            if mine != theirs {
                return Err(Error::WrongPassphrase(format!(
                    "the keystore's {what} was changed (from {what} ID {:?} to {:?}) since it was opened here: open it again with the new {what}",
                    mine.id, theirs.id
                )));
            }
        }
        Ok(())
    }

    /// Rotation needs every row readable: a row that cannot be opened could
    /// not be re-sealed or re-wrapped and would be lost for good.
    fn check_rotatable(&self, what: &str) -> Result<()> {
        self.writable()?;
        if let Some((id, why)) = self.corrupt.iter().next() {
            return Err(Error::Integrity(format!(
                "cannot rotate the {what}: row {id} cannot be read ({why}); repair or restore it first"
            )));
        }
        Ok(())
    }

    // ---- KPK rotation -------------------------------------------------------------------

    /// Replace the KPK: every key's material is unwrapped and wrapped again
    /// under the new one, all in one change set with the new header.
    pub fn rotate_kpk(&mut self, new: &Secret, new_id: Option<String>) -> Result<ChangeSet> {
        self.check_rotatable("KPK")?;
        let new_id = protector_id(&*self.env, new_id, "kpk")?;
        let (protector, key) = Protector::new(new_id, new, random(&*self.env), "KPK")?;
        let new_sealer = self.sealer.with_kpk(&key);
        let mut rewrapped = Vec::with_capacity(self.keys.len());
        for (tag, (rec, version)) in &self.keys {
            let material = self.sealer.unwrap(tag, &rec.wrapped)?;
            let mut rec = rec.clone();
            rec.wrapped = new_sealer.wrap(tag, &material, random(&*self.env));
            rewrapped.push((rec, version + 1));
        }
        let old = self.header.kpk.clone();
        self.sealer = new_sealer;
        let mut changes = ChangeSet::default();
        for (rec, version) in rewrapped {
            self.put_key(rec, version, &mut changes);
        }
        let mut header = self.header.clone();
        header.kpk = protector;
        changes.upserts.extend(self.write_header(header).upserts);
        let event = Event::new(Action::RotateKpk).detail(rotation_detail("KPK", &old, &self.header.kpk));
        self.append_audit(vec![event], &mut changes);
        Ok(changes)
    }

    // ---- HMK rotation -------------------------------------------------------------------

    /// Start replacing the HMK. The host then passes every audit entry row
    /// through `reseal_audit` and finishes with `finish_rotate_hmk`; all of
    /// it is one change set for the host to commit at once.
    pub fn begin_rotate_hmk(&mut self, new: &Secret, new_id: Option<String>) -> Result<()> {
        self.pending_hmk = None;
        self.check_rotatable("HMK")?;
        let new_id = protector_id(&*self.env, new_id, "hmk")?;
        let (protector, key) = Protector::new(new_id, new, random(&*self.env), "HMK")?;
        self.pending_hmk = Some(PendingHmk { protector, key });
        Ok(())
    }

    /// Re-seal audit entry rows under the pending HMK (same content, next
    /// version). A row that does not open is left as it is: it stays
    /// reported by verification, as it was before.
    pub fn reseal_audit(&self, rows: &[Row]) -> Result<Vec<Row>> {
        let pending = self.pending()?;
        let new_sealer = self.sealer.with_hmk(&pending.key);
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if !matches!(RowId::parse(&row.id), Some(RowId::AuditEntry(_))) {
                return Err(Error::InvalidArgument(format!("row {} is not an audit entry row", row.id)));
            }
            if let Some(entry) = self.sealer.open_entry(&row.body) {
                let body = new_sealer.seal_entry(&entry, random(&*self.env));
                out.push(Row { id: row.id.clone(), version: row.version + 1, body });
            }
        }
        Ok(out)
    }

    /// Switch to the pending HMK: every group and key row, the audit head and
    /// the header are sealed again under it, and the rotation is audited.
    pub fn finish_rotate_hmk(&mut self) -> Result<ChangeSet> {
        self.pending()?;
        self.check_rotatable("HMK")?;
        let pending = self.pending_hmk.take().expect("checked above");
        let old = self.header.hmk.clone();
        self.sealer = self.sealer.with_hmk(&pending.key);
        let mut changes = ChangeSet::default();
        let groups: Vec<_> = self.groups.values().cloned().collect();
        for (rec, version) in groups {
            self.put_group(rec, version + 1, &mut changes);
        }
        let keys: Vec<_> = self.keys.values().cloned().collect();
        for (rec, version) in keys {
            self.put_key(rec, version + 1, &mut changes);
        }
        let mut header = self.header.clone();
        header.hmk = pending.protector;
        changes.upserts.extend(self.write_header(header).upserts);
        let detail = rotation_detail("HMK", &old, &self.header.hmk);
        // The head row is re-sealed under the new HMK by the append.
        self.append_audit(vec![Event::new(Action::RotateHmk).detail(detail)], &mut changes);
        debug_assert!(changes.upserts.iter().any(|r| r.id == HEADER_ID));
        Ok(changes)
    }

    fn pending(&self) -> Result<&PendingHmk> {
        self.pending_hmk
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("no HMK rotation is in progress: call begin-rotate-hmk first".into()))
    }
}

fn rotation_detail(what: &str, old: &Protector, new: &Protector) -> String {
    format!("{what} {:?} ({}) -> {:?} ({})", old.id, kind_name(old.kind), new.id, kind_name(new.kind))
}
