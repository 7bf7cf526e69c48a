//! WIT glue: converts between the generated types and the model, and keeps
//! the one keystore of this instance. No rule lives here.

use std::cell::RefCell;

use zeroize::Zeroizing;

use crate::audit;
use crate::format;
use crate::keystore::{self, Keystore, transfer};
use crate::rules;
use crate::store::{self, Secret, SecretKind};
use crate::types::{self as t, Env};

wit_bindgen::generate!({
    world: "keystate",
    path: "../wit",
});

use exports::keystate::kms::keystore as wk;
use exports::keystate::kms::policy as wp;
use keystate::kms::host;
use keystate::kms::types as w;

struct Component;
export!(Component);

/// Time and entropy from the host import.
struct HostEnv;

impl Env for HostEnv {
    fn now(&self) -> u64 {
        host::now()
    }

    fn fill_random(&self, buf: &mut [u8]) {
        let bytes = host::random_bytes(buf.len() as u32);
        assert_eq!(bytes.len(), buf.len(), "host returned the wrong number of random bytes");
        buf.copy_from_slice(&bytes);
    }
}

thread_local! {
    static KEYSTORE: RefCell<Option<Keystore>> = const { RefCell::new(None) };
    /// The actor `set-actor` named, applied to every keystore this instance opens.
    static ACTOR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Give a freshly created or opened keystore the instance's actor.
fn with_actor(mut ks: Keystore) -> Keystore {
    if let Some(actor) = ACTOR.with_borrow(|a| a.clone()) {
        ks.set_actor(&actor).expect("validated by set-actor");
    }
    ks
}

fn with<R>(f: impl FnOnce(&mut Keystore) -> t::Result<R>) -> Result<R, w::Error> {
    KEYSTORE.with_borrow_mut(|ks| match ks {
        Some(ks) => f(ks).map_err(error),
        None => {
            Err(w::Error::InvalidArgument("no keystore is open in this instance: call create or open first".into()))
        }
    })
}

fn error(e: t::Error) -> w::Error {
    use t::Error as E;
    match e {
        E::NotFound(m) => w::Error::NotFound(m),
        E::AlreadyExists(m) => w::Error::AlreadyExists(m),
        E::InvalidTransition(m) => w::Error::InvalidTransition(m),
        E::KeyUnusable(m) => w::Error::KeyUnusable(m),
        E::NotDeletable(m) => w::Error::NotDeletable(m),
        E::WrongPassphrase(m) => w::Error::WrongPassphrase(m),
        E::Integrity(m) => w::Error::Integrity(m),
        E::Quiesced(m) => w::Error::Quiesced(m),
        E::InvalidArgument(m) => w::Error::InvalidArgument(m),
    }
}

fn state_in(s: w::KeyState) -> t::KeyState {
    match s {
        w::KeyState::Prelive => t::KeyState::Prelive,
        w::KeyState::Active => t::KeyState::Active,
        w::KeyState::Inactive => t::KeyState::Inactive,
        w::KeyState::Deprecated => t::KeyState::Deprecated,
        w::KeyState::Terminated => t::KeyState::Terminated,
    }
}

fn state_out(s: t::KeyState) -> w::KeyState {
    match s {
        t::KeyState::Prelive => w::KeyState::Prelive,
        t::KeyState::Active => w::KeyState::Active,
        t::KeyState::Inactive => w::KeyState::Inactive,
        t::KeyState::Deprecated => w::KeyState::Deprecated,
        t::KeyState::Terminated => w::KeyState::Terminated,
    }
}

fn cipher_in(c: w::Cipher) -> t::Cipher {
    match c {
        w::Cipher::Aes256Gcm => t::Cipher::Aes256Gcm,
        w::Cipher::Aes128Gcm => t::Cipher::Aes128Gcm,
        w::Cipher::Chacha20Poly1305 => t::Cipher::ChaCha20Poly1305,
    }
}

fn cipher_out(c: t::Cipher) -> w::Cipher {
    match c {
        t::Cipher::Aes256Gcm => w::Cipher::Aes256Gcm,
        t::Cipher::Aes128Gcm => w::Cipher::Aes128Gcm,
        t::Cipher::ChaCha20Poly1305 => w::Cipher::Chacha20Poly1305,
    }
}

fn kind_out(k: SecretKind) -> w::SecretKind {
    match k {
        SecretKind::Passphrase => w::SecretKind::Passphrase,
        SecretKind::Raw => w::SecretKind::Raw,
    }
}

fn secret_in(s: w::Secret) -> Secret {
    match s {
        w::Secret::Passphrase(p) => Secret::Passphrase(Zeroizing::new(p)),
        w::Secret::Raw(r) => Secret::Raw(Zeroizing::new(r)),
    }
}

fn group_out(g: keystore::GroupInfo) -> w::GroupInfo {
    w::GroupInfo {
        tag: g.tag.to_string(),
        name: g.name,
        cipher: cipher_out(g.cipher),
        description: g.description,
        created: g.created,
        modified: g.modified,
        active_key: g.active_key,
    }
}

fn key_out(k: keystore::KeyInfo) -> w::KeyInfo {
    w::KeyInfo {
        tag: k.tag.to_string(),
        name: k.name,
        group: k.group,
        state: state_out(k.state),
        description: k.description,
        created: k.created,
        modified: k.modified,
        recoverable: k.recoverable,
    }
}

fn cursor_in(c: w::AuditCursor) -> Result<audit::Cursor, w::Error> {
    let prev: [u8; 32] = c.prev_hash.as_slice().try_into().map_err(|_| {
        w::Error::InvalidArgument(format!("an audit cursor's prev-hash must be 32 bytes, got {}", c.prev_hash.len()))
    })?;
    if c.next_seq == 0 {
        return Err(w::Error::InvalidArgument("an audit cursor's next-seq starts at 1".into()));
    }
    Ok(audit::Cursor { next_seq: c.next_seq, prev })
}

fn entry_out(v: audit::Verified) -> w::AuditEntry {
    let e = v.entry;
    w::AuditEntry {
        seq: e.seq,
        time: e.time,
        action: e.action.name().to_string(),
        actor: e.actor,
        group: e.group,
        key: e.key,
        key_tag: e.key_tag.map(|t| t.to_string()),
        old_state: e.old_state.map(state_out),
        new_state: e.new_state.map(state_out),
        detail: e.detail,
        hash: audit::hex(&v.hash),
    }
}

fn fault_out(f: audit::Fault) -> w::AuditFault {
    w::AuditFault {
        problem: match f.problem {
            audit::Problem::Edited => w::AuditProblem::Edited,
            audit::Problem::Removed => w::AuditProblem::Removed,
            audit::Problem::Reordered => w::AuditProblem::Reordered,
        },
        seq: f.seq,
        row_id: f.row_id,
        message: f.message,
    }
}

fn row_in(r: w::Row) -> keystore::Row {
    keystore::Row { id: r.id, version: r.version, body: r.body }
}

fn changes_out(c: keystore::ChangeSet) -> w::ChangeSet {
    w::ChangeSet {
        upserts: c.upserts.into_iter().map(|r| w::Row { id: r.id, version: r.version, body: r.body }).collect(),
        deletes: c.deletes.into_iter().map(|(id, version)| w::RowRef { id, version }).collect(),
    }
}

fn skip_out(s: Option<transfer::Skip>) -> Option<w::Skip> {
    s.map(|s| w::Skip {
        reason: match s.reason {
            transfer::SkipReason::TagExists => w::SkipReason::TagExists,
            transfer::SkipReason::MaterialExists => w::SkipReason::MaterialExists,
            transfer::SkipReason::GroupExists => w::SkipReason::GroupExists,
            transfer::SkipReason::NoNewKeys => w::SkipReason::NoNewKeys,
        },
        detail: s.detail,
    })
}

fn report_out(r: transfer::ImportReport) -> w::ImportReport {
    w::ImportReport {
        groups: r
            .groups
            .into_iter()
            .map(|g| w::ImportedGroup {
                source_name: g.source_name,
                name: g.name,
                cipher: cipher_out(g.cipher),
                skipped: skip_out(g.skipped),
            })
            .collect(),
        keys: r
            .keys
            .into_iter()
            .map(|k| w::ImportedKey {
                source_group: k.source_group,
                group: k.group,
                name: k.name,
                tag: k.tag.to_string(),
                state: state_out(k.state),
                recoverable: k.recoverable,
                skipped: skip_out(k.skipped),
            })
            .collect(),
    }
}

fn with_key(
    f: impl FnOnce(&mut Keystore) -> t::Result<(keystore::KeyInfo, keystore::ChangeSet)>,
) -> Result<(w::KeyInfo, w::ChangeSet), w::Error> {
    with(f).map(|(k, c)| (key_out(k), changes_out(c)))
}

fn with_group(
    f: impl FnOnce(&mut Keystore) -> t::Result<(keystore::GroupInfo, keystore::ChangeSet)>,
) -> Result<(w::GroupInfo, w::ChangeSet), w::Error> {
    with(f).map(|(g, c)| (group_out(g), changes_out(c)))
}

impl wp::Guest for Component {
    fn can_transition(from: w::KeyState, to: w::KeyState) -> bool {
        rules::can_transition(state_in(from), state_in(to))
    }

    fn allowed_operations(state: w::KeyState) -> Vec<w::Operation> {
        rules::allowed_operations(state_in(state))
            .into_iter()
            .map(|op| match op {
                t::Operation::Encrypt => w::Operation::Encrypt,
                t::Operation::Decrypt => w::Operation::Decrypt,
                t::Operation::Delete => w::Operation::Delete,
            })
            .collect()
    }
}

impl wk::Guest for Component {
    type Encryptor = Encryptor;
    type Decryptor = Decryptor;

    fn create(
        hmk: w::Secret,
        hmk_id: Option<String>,
        kpk: w::Secret,
        kpk_id: Option<String>,
    ) -> Result<w::ChangeSet, w::Error> {
        let actor = ACTOR.with_borrow(|a| a.clone());
        let (ks, changes) =
            Keystore::create_as(Box::new(HostEnv), &secret_in(hmk), hmk_id, &secret_in(kpk), kpk_id, actor.as_deref())
                .map_err(error)?;
        KEYSTORE.set(Some(ks));
        Ok(changes_out(changes))
    }

    fn inspect_header(header: Vec<u8>) -> Result<w::HeaderInfo, w::Error> {
        let h = store::parse_header(&header).map_err(error)?;
        Ok(w::HeaderInfo {
            format_version: h.format_version,
            hmk_id: h.hmk.id,
            hmk_kind: kind_out(h.hmk.kind),
            kpk_id: h.kpk.id,
            kpk_kind: kind_out(h.kpk.kind),
            quiesced: h.quiesced,
        })
    }

    fn open(header: w::Row, hmk: w::Secret, kpk: w::Secret) -> Result<(), w::Error> {
        let ks = Keystore::open(Box::new(HostEnv), &row_in(header), &secret_in(hmk), &secret_in(kpk)).map_err(error)?;
        KEYSTORE.set(Some(with_actor(ks)));
        Ok(())
    }

    fn load(rows: Vec<w::Row>, deleted: Vec<String>) -> Result<Vec<w::RowFault>, w::Error> {
        let rows: Vec<_> = rows.into_iter().map(row_in).collect();
        with(|ks| ks.load(&rows, &deleted))
            .map(|faults| faults.into_iter().map(|f| w::RowFault { id: f.id, message: f.message }).collect())
    }

    fn create_group(
        name: String,
        cipher: w::Cipher,
        description: String,
    ) -> Result<(w::GroupInfo, w::ChangeSet), w::Error> {
        with_group(|ks| ks.create_group(&name, cipher_in(cipher), &description))
    }

    fn groups() -> Vec<w::GroupInfo> {
        with(|ks| Ok(ks.groups())).map(|g| g.into_iter().map(group_out).collect()).unwrap_or_default()
    }

    fn group(name: String) -> Result<w::GroupInfo, w::Error> {
        with(|ks| ks.group(&name)).map(group_out)
    }

    fn modify_group(
        name: String,
        new_name: Option<String>,
        description: Option<String>,
    ) -> Result<(w::GroupInfo, w::ChangeSet), w::Error> {
        with_group(|ks| ks.modify_group(&name, new_name.as_deref(), description.as_deref()))
    }

    fn delete_group(name: String) -> Result<w::ChangeSet, w::Error> {
        with(|ks| ks.delete_group(&name)).map(changes_out)
    }

    fn create_key(
        group: String,
        name: String,
        state: w::KeyState,
        passphrase: Option<String>,
        description: String,
    ) -> Result<(w::KeyInfo, w::ChangeSet), w::Error> {
        let passphrase = passphrase.map(Zeroizing::new);
        with_key(|ks| {
            ks.create_key(&group, &name, state_in(state), passphrase.as_deref().map(|p| p.as_str()), &description)
        })
    }

    fn keys(group: Option<String>, state: Option<w::KeyState>) -> Result<Vec<w::KeyInfo>, w::Error> {
        with(|ks| ks.keys(group.as_deref(), state.map(state_in))).map(|keys| keys.into_iter().map(key_out).collect())
    }

    fn key(group: String, name: String) -> Result<w::KeyInfo, w::Error> {
        with(|ks| ks.key(&group, &name)).map(key_out)
    }

    fn key_by_tag(tag: String) -> Result<w::KeyInfo, w::Error> {
        with(|ks| ks.key_by_tag(&tag)).map(key_out)
    }

    fn set_state(group: String, name: String, state: w::KeyState) -> Result<(w::KeyInfo, w::ChangeSet), w::Error> {
        with_key(|ks| ks.set_state(&group, &name, state_in(state)))
    }

    fn modify_key(
        group: String,
        name: String,
        new_name: Option<String>,
        description: Option<String>,
    ) -> Result<(w::KeyInfo, w::ChangeSet), w::Error> {
        with_key(|ks| ks.modify_key(&group, &name, new_name.as_deref(), description.as_deref()))
    }

    fn delete_key(group: String, name: String) -> Result<w::ChangeSet, w::Error> {
        with(|ks| ks.delete_key(&group, &name)).map(changes_out)
    }

    fn recover_key(
        group: String,
        name: String,
        tag: String,
        passphrase: String,
        state: w::KeyState,
    ) -> Result<(w::KeyInfo, w::ChangeSet), w::Error> {
        let passphrase = Zeroizing::new(passphrase);
        with_key(|ks| ks.recover_key(&group, &name, &tag, &passphrase, state_in(state)))
    }

    fn quiesce() -> Result<w::ChangeSet, w::Error> {
        with(|ks| ks.quiesce()).map(changes_out)
    }

    fn unquiesce() -> Result<w::ChangeSet, w::Error> {
        with(|ks| ks.unquiesce()).map(changes_out)
    }

    fn stats() -> w::KeystoreStats {
        let s = with(|ks| Ok(ks.stats())).unwrap_or_default();
        w::KeystoreStats {
            groups: s.groups,
            prelive: s.keys[0],
            active: s.keys[1],
            inactive: s.keys[2],
            deprecated: s.keys[3],
            terminated: s.keys[4],
            corrupt_rows: s.corrupt_rows,
            quiesced: s.quiesced,
            hmk_id: s.hmk_id,
            kpk_id: s.kpk_id,
            audit_entries: s.audit_entries,
        }
    }

    fn export_groups(groups: Option<Vec<String>>, passphrase: String) -> Result<Vec<u8>, w::Error> {
        let passphrase = Zeroizing::new(passphrase);
        with(|ks| ks.export(groups.as_deref(), &passphrase))
    }

    fn import_groups(
        container: Vec<u8>,
        passphrase: String,
        preserve_names: bool,
        preview: bool,
    ) -> Result<(w::ImportReport, w::ChangeSet), w::Error> {
        let passphrase = Zeroizing::new(passphrase);
        with(|ks| ks.import(&container, &passphrase, preserve_names, preview))
            .map(|(r, c)| (report_out(r), changes_out(c)))
    }

    fn set_actor(actor: String) -> Result<(), w::Error> {
        keystore::validate_actor(&actor).map_err(error)?;
        KEYSTORE.with_borrow_mut(|ks| ks.as_mut().map(|ks| ks.set_actor(&actor)).transpose()).map_err(error)?;
        ACTOR.set(Some(actor));
        Ok(())
    }

    fn audit_head() -> Result<w::AuditChainHead, w::Error> {
        with(|ks| Ok(ks.audit_head())).map(|h| w::AuditChainHead { seq: h.seq, hash: audit::hex(&h.hash) })
    }

    fn read_audit(rows: Vec<w::Row>, cursor: w::AuditCursor) -> Result<w::AuditBatch, w::Error> {
        let cursor = cursor_in(cursor)?;
        let rows: Vec<_> = rows.into_iter().map(row_in).collect();
        let (entries, cursor, fault) = with(|ks| Ok(ks.read_audit(&rows, cursor)))?;
        Ok(w::AuditBatch {
            entries: entries.into_iter().map(entry_out).collect(),
            cursor: w::AuditCursor { next_seq: cursor.next_seq, prev_hash: cursor.prev.to_vec() },
            fault: fault.map(fault_out),
        })
    }

    fn audit_end(cursor: w::AuditCursor) -> Result<Option<w::AuditFault>, w::Error> {
        let cursor = cursor_in(cursor)?;
        with(|ks| Ok(ks.audit_end(&cursor))).map(|f| f.map(fault_out))
    }

    fn rotate_kpk(kpk: w::Secret, kpk_id: Option<String>) -> Result<w::ChangeSet, w::Error> {
        with(|ks| ks.rotate_kpk(&secret_in(kpk), kpk_id)).map(changes_out)
    }

    fn begin_rotate_hmk(hmk: w::Secret, hmk_id: Option<String>) -> Result<(), w::Error> {
        with(|ks| ks.begin_rotate_hmk(&secret_in(hmk), hmk_id))
    }

    fn reseal_audit(rows: Vec<w::Row>) -> Result<Vec<w::Row>, w::Error> {
        let rows: Vec<_> = rows.into_iter().map(row_in).collect();
        with(|ks| ks.reseal_audit(&rows))
            .map(|rows| rows.into_iter().map(|r| w::Row { id: r.id, version: r.version, body: r.body }).collect())
    }

    fn finish_rotate_hmk() -> Result<w::ChangeSet, w::Error> {
        with(|ks| ks.finish_rotate_hmk()).map(changes_out)
    }

    fn encrypt(group: String, plaintext: Vec<u8>, aad: Vec<u8>) -> Result<Vec<u8>, w::Error> {
        with(|ks| ks.encrypt(&group, &plaintext, &aad))
    }

    fn decrypt(ciphertext: Vec<u8>, aad: Vec<u8>) -> Result<Vec<u8>, w::Error> {
        with(|ks| ks.decrypt(&ciphertext, &aad))
    }

    fn begin_encrypt(group: String, aad: Vec<u8>, chunk_size: u32) -> Result<wk::Encryptor, w::Error> {
        let inner = with(|ks| ks.begin_encrypt(&group, &aad, chunk_size))?;
        Ok(wk::Encryptor::new(Encryptor(RefCell::new(Some(inner)))))
    }

    fn begin_decrypt(aad: Vec<u8>) -> wk::Decryptor {
        wk::Decryptor::new(Decryptor(RefCell::new(Some(format::Decryptor::new(&aad)))))
    }

    fn seal_chunks(
        header: Vec<u8>,
        aad: Vec<u8>,
        first_index: u64,
        plaintext: Vec<u8>,
        last: bool,
    ) -> Result<Vec<u8>, w::Error> {
        with(|ks| ks.seal_chunks(&header, &aad, first_index, &plaintext, last))
    }

    fn open_chunks(
        header: Vec<u8>,
        aad: Vec<u8>,
        first_index: u64,
        ciphertext: Vec<u8>,
        last: bool,
    ) -> Result<Vec<u8>, w::Error> {
        with(|ks| ks.open_chunks(&header, &aad, first_index, &ciphertext, last))
    }
}

/// A streaming encryption; `None` once finished.
pub struct Encryptor(RefCell<Option<format::Encryptor>>);

/// A streaming decryption; `None` once finished.
pub struct Decryptor(RefCell<Option<format::Decryptor>>);

fn spent() -> w::Error {
    w::Error::InvalidArgument("this stream is already finished".into())
}

impl wk::GuestEncryptor for Encryptor {
    fn header(&self) -> Vec<u8> {
        // A finished encryptor has no header to share: an empty list, which
        // `seal-chunks` refuses.
        self.0.borrow().as_ref().map(|enc| enc.header_bytes().to_vec()).unwrap_or_default()
    }

    fn update(&self, plaintext: Vec<u8>) -> Result<Vec<u8>, w::Error> {
        let mut inner = self.0.borrow_mut();
        let enc = inner.as_mut().ok_or_else(spent)?;
        let mut out = Vec::with_capacity(plaintext.len() + format::HEADER_LEN);
        enc.update(&plaintext, &mut out).map_err(error)?;
        Ok(out)
    }

    fn finish(&self) -> Result<Vec<u8>, w::Error> {
        let enc = self.0.borrow_mut().take().ok_or_else(spent)?;
        let mut out = Vec::new();
        enc.finish(&mut out).map_err(error)?;
        Ok(out)
    }
}

impl wk::GuestDecryptor for Decryptor {
    fn update(&self, ciphertext: Vec<u8>) -> Result<Vec<u8>, w::Error> {
        let mut inner = self.0.borrow_mut();
        let dec = inner.as_mut().ok_or_else(spent)?;
        let mut out = Vec::with_capacity(ciphertext.len());
        with(|ks| dec.update(&ciphertext, &mut out, &mut |h| ks.decryption_key(h)))?;
        Ok(out)
    }

    fn finish(&self) -> Result<Vec<u8>, w::Error> {
        let dec = self.0.borrow_mut().take().ok_or_else(spent)?;
        let mut out = Vec::new();
        dec.finish(&mut out).map_err(error)?;
        Ok(out)
    }
}
