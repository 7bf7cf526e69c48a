//! Administration on a `Keystore`: the actor, reading and verifying the audit
//! trail (streamed through the component in batches, never loaded whole), and
//! HMK/KPK rotation with its key files.
//!
//! Rotation order, so that a crash leaves the old keystore or the new one:
//! 1. inside the storage write lock, a new random key is written to
//!    `<path>.hmk.new` (a stale one from a rotation that died before its
//!    commit is replaced);
//! 2. every re-sealed row is applied and committed in ONE transaction;
//! 3. `<path>.hmk.new` is renamed over `<path>.hmk` (or, for a pass phrase,
//!    the old key file is removed).
//!
//! A crash between 2 and 3 leaves a keystore whose header names the new key
//! while `<path>.hmk` holds the old one: opening tries `<path>.hmk.new` when
//! the key file does not match, and finishes the rename.

use std::collections::VecDeque;
use std::path::PathBuf;

use zeroize::Zeroizing;

use super::{Inner, Keystore, Secret, change_set, wit_row};
use crate::admin::{AuditEntry, AuditFault, AuditFilter, AuditProblem, AuditReport, NewKey};
use crate::error::{Error, ErrorKind, Result};
use crate::keyfile;
use crate::sandbox::{Guest, state_in, wit};
use crate::storage::{self, AUDIT_ENTRY_PREFIX};
use crate::types::time_from_millis;

/// Audit rows per call into the component.
const AUDIT_BATCH: usize = 1000;
/// Above every audit entry row id (`a:` + hex digits; `;` follows `:`).
const AUDIT_END_ID: &str = "a;";

fn entry_row_id(seq: u64) -> String {
    format!("{AUDIT_ENTRY_PREFIX}{seq:016x}")
}

impl Keystore {
    /// Name who makes this handle's following changes in the audit trail.
    /// Same rules as names: 1-255 bytes, no control characters, no
    /// surrounding white space.
    pub fn set_actor(&self, actor: &str) -> Result<()> {
        let mut inner = self.lock();
        inner.heal()?;
        inner.guest.set_actor(actor)?;
        inner.actor = actor.to_string();
        Ok(())
    }

    /// The actor this handle's changes are recorded under.
    pub fn actor(&self) -> String {
        self.lock().actor.clone()
    }

    /// Audit entries matching `filter`, oldest first. The trail is verified
    /// as it is read: if an entry was edited, removed or reordered, this
    /// fails with `Integrity` naming it (see [`Keystore::verify_audit`]).
    pub fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let mut out = VecDeque::new();
        let report = self.walk_audit(&mut |entry| {
            if filter.matches(&entry) {
                out.push_back(entry);
                if filter.limit.is_some_and(|n| out.len() > n) {
                    out.pop_front();
                }
            }
        })?;
        match report.fault {
            Some(fault) => Err(fault_error(&fault)),
            None => Ok(out.into()),
        }
    }

    /// Verify the whole audit trail: every entry opens with the HMK, the
    /// sequence has no gaps, each entry carries the previous entry's hash,
    /// and the last one is the chain head. Reports the first entry that was
    /// edited, removed or reordered. (Replacing the whole keystore with an
    /// older copy is not detected from inside it: compare the head with one
    /// recorded elsewhere.)
    pub fn verify_audit(&self) -> Result<AuditReport> {
        self.walk_audit(&mut |_| {})
    }

    fn walk_audit(&self, visit: &mut dyn FnMut(AuditEntry)) -> Result<AuditReport> {
        let mut inner = self.lock();
        inner.heal()?;
        inner.catch_up()?;
        let head = inner.guest.audit_head()?;
        let through = entry_row_id(head.seq);
        let mut cursor = wit::AuditCursor { next_seq: 1, prev_hash: vec![0; 32] };
        let mut after = AUDIT_ENTRY_PREFIX.to_string();
        let mut verified = 0u64;
        let report =
            |verified, fault| AuditReport { verified, head_seq: head.seq, head_hash: head.hash.clone(), fault };
        loop {
            let rows = inner.backend.audit_rows(&after, &through, AUDIT_BATCH)?;
            let Some(last) = rows.last() else { break };
            after = last.id.clone();
            let rows: Vec<wit::Row> = rows.iter().map(wit_row).collect();
            let batch = inner.guest.read_audit(&rows, &cursor)?;
            for e in batch.entries {
                verified += 1;
                visit(entry_in(e));
            }
            cursor = batch.cursor;
            if let Some(fault) = batch.fault {
                // Keys rotated by another process make every row look edited:
                // say that instead.
                inner.catch_up()?;
                return Ok(report(verified, Some(fault_in(fault))));
            }
        }
        if let Some(fault) = inner.guest.audit_end(&cursor)? {
            return Ok(report(verified, Some(fault_in(fault))));
        }
        // Entries beyond the head: new ones from another process, or a head
        // row replaced by an older one (which would hide them).
        if let Some(beyond) = inner.backend.audit_rows(&through, AUDIT_END_ID, 1)?.pop() {
            inner.catch_up()?;
            let now = inner.guest.audit_head()?;
            let seq = u64::from_str_radix(&beyond.id[AUDIT_ENTRY_PREFIX.len()..], 16).unwrap_or(u64::MAX);
            if seq > now.seq {
                let fault = AuditFault {
                    problem: AuditProblem::Edited,
                    seq: head.seq,
                    row_id: "audit-head".into(),
                    message: format!(
                        "row {} exists after the chain head (entry {}): the head was replaced by an older one",
                        beyond.id, now.seq
                    ),
                };
                return Ok(report(verified, Some(fault)));
            }
        }
        Ok(report(verified, None))
    }

    // ---- rotation ---------------------------------------------------------------------

    /// Replace the host master key: every row is sealed again under the new
    /// one, in one transaction. `new_id` labels it (random when `None`).
    /// Afterwards the old HMK no longer opens the keystore (`WrongPassphrase`),
    /// and other handles holding it open fail cleanly until reopened.
    pub fn rotate_hmk(&self, new: NewKey, new_id: Option<&str>) -> Result<()> {
        self.rotate("hmk", new, |inner, secret| {
            inner.guest.begin_rotate_hmk(&secret.to_wit().0, new_id)?;
            let mut after = AUDIT_ENTRY_PREFIX.to_string();
            loop {
                let rows = inner.backend.audit_rows(&after, AUDIT_END_ID, AUDIT_BATCH)?;
                let Some(last) = rows.last() else { break };
                after = last.id.clone();
                let rows: Vec<wit::Row> = rows.iter().map(wit_row).collect();
                let resealed = inner.guest.reseal_audit(&rows)?;
                let upserts =
                    resealed.into_iter().map(|r| storage::Row { id: r.id, version: r.version, body: r.body }).collect();
                inner.backend.apply(&storage::ChangeSet { upserts, deletes: vec![] })?;
            }
            let changes = inner.guest.finish_rotate_hmk()?;
            inner.backend.apply(&change_set(changes))
        })
    }

    /// Replace the key protection key: every key's material is wrapped again
    /// under the new one, in one transaction. Old ciphertexts still decrypt.
    pub fn rotate_kpk(&self, new: NewKey, new_id: Option<&str>) -> Result<()> {
        self.rotate("kpk", new, |inner, secret| {
            let changes = inner.guest.rotate_kpk(&secret.to_wit().0, new_id)?;
            inner.backend.apply(&change_set(changes))
        })
    }

    fn rotate(&self, ext: &str, new: NewKey, apply: impl FnOnce(&mut Inner, &Secret) -> Result<u64>) -> Result<()> {
        let mut inner = self.lock();
        inner.heal()?;
        let (secret, key) = match new {
            NewKey::Passphrase(p) => (Secret::Passphrase(Zeroizing::new(p.to_string())), None),
            NewKey::Random => {
                let mut key = Zeroizing::new([0u8; 32]);
                getrandom::fill(key.as_mut()).map_err(|e| Error::storage("OS random source", e))?;
                (Secret::Raw(Zeroizing::new(key.to_vec())), Some(key))
            }
        };
        let path = match (&key, inner.key_files.clone()) {
            (_, Some(path)) => path,
            (None, None) => PathBuf::new(),
            (Some(_), None) => {
                return Err(Error::invalid(format!(
                    "keystore {} keeps no key files (its URL has no key_files=): rotate to a pass phrase instead",
                    inner.backend.location()
                )));
            }
        };
        inner.backend.begin_write()?;
        let mut staged = None;
        let result = (|| {
            inner.catch_up()?;
            if let Some(key) = &key {
                staged = Some(keyfile::stage(&path, ext, key)?);
            }
            let seq = apply(&mut inner, &secret)?;
            inner.backend.commit()?;
            Ok(seq)
        })();
        let seq = match result {
            Ok(seq) => seq,
            Err(e) => {
                inner.backend.rollback();
                if let Some(staged) = staged {
                    keyfile::remove(&staged);
                }
                // The component may have switched keys already: rebuild it from storage.
                inner.guest.broken = true;
                let _ = inner.heal();
                return Err(e);
            }
        };
        // Committed: the keystore now needs the new key. Put its key file in place.
        let installed = match key {
            Some(_) => keyfile::install(&path, ext),
            None => {
                if inner.key_files.is_some() {
                    keyfile::remove(&keyfile::path_for(&path, ext));
                }
                Ok(())
            }
        };
        inner.seq = seq;
        inner.generation += 1;
        match ext {
            "hmk" => inner.hmk = secret,
            _ => inner.kpk = secret,
        }
        drop(inner);
        self.readers.lock().unwrap_or_else(|p| p.into_inner()).clear();
        installed
    }
}

/// Open the guest with the key files (or pass phrases) as they are; if a key
/// file does not match and a staged `.new` one exists, a rotation committed
/// but did not rename its key file: open with the staged key and finish it.
pub(super) fn start_finishing_rotation(
    inner: &mut Inner,
    info: &wit::HeaderInfo,
    hmk: Result<Secret>,
    kpk: Result<Secret>,
    snapshot: storage::Changes,
) -> Result<()> {
    let first = match (hmk, kpk) {
        (Ok(hmk), Ok(kpk)) => {
            inner.hmk = hmk;
            inner.kpk = kpk;
            match inner.start(snapshot) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            }
        }
        (Err(e), _) | (_, Err(e)) => e,
    };
    if !matches!(first.kind(), ErrorKind::WrongPassphrase | ErrorKind::NotFound) {
        return Err(first);
    }
    let Some(path) = inner.key_files.clone() else {
        return Err(first);
    };
    let staged = |ext: &str, kind: wit::SecretKind| -> Option<std::path::PathBuf> {
        let file = keyfile::staged_path_for(&path, ext);
        (matches!(kind, wit::SecretKind::Raw) && file.exists()).then_some(file)
    };
    let (hmk_new, kpk_new) = (staged("hmk", info.hmk_kind), staged("kpk", info.kpk_kind));
    if hmk_new.is_none() && kpk_new.is_none() {
        return Err(first);
    }
    let current = |ext: &str| keyfile::read(&keyfile::path_for(&path, ext)).map(Secret::Raw);
    let take = |staged: &Option<std::path::PathBuf>, ext: &str, kept: &Secret| -> Result<Secret> {
        match staged {
            Some(file) => keyfile::read(file).map(Secret::Raw),
            None if matches!(kept, Secret::Raw(k) if k.is_empty()) => current(ext),
            None => Ok(kept.clone_secret()),
        }
    };
    let hmk = take(&hmk_new, "hmk", &inner.hmk)?;
    let kpk = take(&kpk_new, "kpk", &inner.kpk)?;
    let (old_hmk, old_kpk) = (std::mem::replace(&mut inner.hmk, hmk), std::mem::replace(&mut inner.kpk, kpk));
    inner.guest = Guest::new(inner.limits)?;
    inner.guest.set_actor(&inner.actor)?;
    let snapshot = inner.backend.load_all()?;
    if inner.start(snapshot).is_err() {
        // The staged key is stale too: report the original failure.
        inner.hmk = old_hmk;
        inner.kpk = old_kpk;
        return Err(first);
    }
    for (staged, ext) in [(hmk_new, "hmk"), (kpk_new, "kpk")] {
        if staged.is_some() {
            keyfile::install(&path, ext)?;
        }
    }
    Ok(())
}

impl Secret {
    fn clone_secret(&self) -> Secret {
        match self {
            Secret::Passphrase(p) => Secret::Passphrase(p.clone()),
            Secret::Raw(r) => Secret::Raw(r.clone()),
        }
    }
}

fn entry_in(e: wit::AuditEntry) -> AuditEntry {
    AuditEntry {
        seq: e.seq,
        time: time_from_millis(e.time),
        action: e.action,
        actor: e.actor,
        group: e.group,
        key: e.key,
        key_tag: e.key_tag,
        old_state: e.old_state.map(state_in),
        new_state: e.new_state.map(state_in),
        detail: e.detail,
        hash: e.hash,
    }
}

fn fault_in(f: wit::AuditFault) -> AuditFault {
    AuditFault {
        problem: match f.problem {
            wit::AuditProblem::Edited => AuditProblem::Edited,
            wit::AuditProblem::Removed => AuditProblem::Removed,
            wit::AuditProblem::Reordered => AuditProblem::Reordered,
        },
        seq: f.seq,
        row_id: f.row_id,
        message: f.message,
    }
}

/// The `Integrity` error of a trail that failed to verify.
pub(crate) fn fault_error(f: &AuditFault) -> Error {
    Error::new(ErrorKind::Integrity, format!("audit trail: entry {} was {}: {}", f.seq, f.problem.as_str(), f.message))
}
