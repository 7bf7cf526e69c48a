//! The audit trail's rows: one sealed row per entry (`a:<16 hex digits of the
//! sequence number>`, so ids sort in sequence order) and the chain head
//! (`audit-head`: last sequence number and hash). Entries are chained by
//! SHA-256: each holds the hash of the one before it. Reading and verifying a
//! run of entry rows is here too; appending them is `keystore::admin`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::crypto::SealKey;
use crate::types::{KeyState, Tag};

/// Row id of the chain head.
pub const HEAD_ID: &str = "audit-head";
/// Prefix of every audit entry row id.
pub const ENTRY_PREFIX: &str = "a:";
const ENTRY_FORMAT: u8 = 1;
const ENTRY_AAD: &[u8] = b"keystate/audit/v1";
const HASH_DOMAIN: &[u8] = b"keystate/audit-chain/v1";

/// What an entry records. New actions are appended at the end (postcard
/// stores the index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    CreateKeystore,
    CreateGroup,
    ModifyGroup,
    DeleteGroup,
    CreateKey,
    SetState,
    ModifyKey,
    DeleteKey,
    RecoverKey,
    Quiesce,
    Unquiesce,
    RotateHmk,
    RotateKpk,
    ImportGroup,
    ImportKey,
}

impl Action {
    pub const ALL: [Action; 15] = [
        Action::CreateKeystore,
        Action::CreateGroup,
        Action::ModifyGroup,
        Action::DeleteGroup,
        Action::CreateKey,
        Action::SetState,
        Action::ModifyKey,
        Action::DeleteKey,
        Action::RecoverKey,
        Action::Quiesce,
        Action::Unquiesce,
        Action::RotateHmk,
        Action::RotateKpk,
        Action::ImportGroup,
        Action::ImportKey,
    ];

    /// The action's name, as the WIT functions are named.
    pub fn name(self) -> &'static str {
        match self {
            Action::CreateKeystore => "create",
            Action::CreateGroup => "create-group",
            Action::ModifyGroup => "modify-group",
            Action::DeleteGroup => "delete-group",
            Action::CreateKey => "create-key",
            Action::SetState => "set-state",
            Action::ModifyKey => "modify-key",
            Action::DeleteKey => "delete-key",
            Action::RecoverKey => "recover-key",
            Action::Quiesce => "quiesce",
            Action::Unquiesce => "unquiesce",
            Action::RotateHmk => "rotate-hmk",
            Action::RotateKpk => "rotate-kpk",
            Action::ImportGroup => "import-group",
            Action::ImportKey => "import-key",
        }
    }
}

/// What a mutation tells the trail; the sequence number, time, actor and
/// chain hash are added when it is appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub action: Action,
    pub group: Option<String>,
    pub key: Option<String>,
    pub key_tag: Option<Tag>,
    pub old_state: Option<KeyState>,
    pub new_state: Option<KeyState>,
    pub detail: String,
}

impl Event {
    pub fn new(action: Action) -> Event {
        Event { action, group: None, key: None, key_tag: None, old_state: None, new_state: None, detail: String::new() }
    }

    pub fn group(mut self, name: &str) -> Event {
        self.group = Some(name.to_string());
        self
    }

    pub fn key(mut self, name: &str, tag: Tag) -> Event {
        self.key = Some(name.to_string());
        self.key_tag = Some(tag);
        self
    }

    pub fn states(mut self, old: Option<KeyState>, new: Option<KeyState>) -> Event {
        self.old_state = old;
        self.new_state = new;
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Event {
        self.detail = detail.into();
        self
    }
}

/// One audit entry as sealed in its row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    /// Milliseconds since the Unix epoch (the host's clock).
    pub time: u64,
    pub action: Action,
    pub actor: String,
    pub group: Option<String>,
    pub key: Option<String>,
    pub key_tag: Option<Tag>,
    pub old_state: Option<KeyState>,
    pub new_state: Option<KeyState>,
    pub detail: String,
    /// Chain hash of the entry before (all zeros before the first).
    pub prev: [u8; 32],
}

impl Entry {
    /// This entry's chain hash: SHA-256 over a domain label and its encoding,
    /// which includes the previous hash.
    pub fn hash(&self) -> [u8; 32] {
        let encoded = postcard::to_allocvec(self).expect("entry serializes");
        Sha256::new().chain_update(HASH_DOMAIN).chain_update(&encoded).finalize().into()
    }
}

/// The chain head: the last entry's sequence number and hash (0 and zeros
/// when the trail is empty).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: u64,
    pub hash: [u8; 32],
}

pub fn entry_row_id(seq: u64) -> String {
    format!("{ENTRY_PREFIX}{seq:016x}")
}

/// The sequence number in an entry row id, if it is one.
pub fn parse_entry_id(id: &str) -> Option<u64> {
    let hex = id.strip_prefix(ENTRY_PREFIX)?;
    if hex.len() != 16 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Seal an entry under the row key. The associated data is a fixed label, not
/// the row id: the entry carries its own sequence number, so an entry moved to
/// another row still opens and is reported as reordered rather than edited.
pub fn seal_entry(row_key: &SealKey, entry: &Entry, nonce: [u8; 12]) -> Vec<u8> {
    let plain = Zeroizing::new(postcard::to_allocvec(entry).expect("entry serializes"));
    let mut body = vec![ENTRY_FORMAT];
    body.extend(row_key.seal(nonce, ENTRY_AAD, &plain));
    body
}

pub fn open_entry(row_key: &SealKey, body: &[u8]) -> Option<Entry> {
    match body.split_first() {
        Some((&ENTRY_FORMAT, sealed)) => {
            let plain = row_key.open(ENTRY_AAD, sealed)?;
            postcard::from_bytes(&plain).ok()
        }
        _ => None,
    }
}

/// How a run of entry rows failed to verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The row does not open (changed bytes, or sealed by someone without the
    /// HMK) or breaks the chain.
    Edited,
    /// An entry is missing: a gap in the sequence, or the trail ends before its head.
    Removed,
    /// The row holds another position's entry.
    Reordered,
}

impl Problem {
    pub fn name(self) -> &'static str {
        match self {
            Problem::Edited => "edited",
            Problem::Removed => "removed",
            Problem::Reordered => "reordered",
        }
    }
}

/// The first entry that failed to verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub problem: Problem,
    /// The sequence number of the first entry that cannot be trusted.
    pub seq: u64,
    /// The row where it showed (empty when the trail ends too early).
    pub row_id: String,
    pub message: String,
}

/// Where a reader is in the trail: the next expected sequence number and the
/// hash the next entry must carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub next_seq: u64,
    pub prev: [u8; 32],
}

impl Default for Cursor {
    fn default() -> Cursor {
        Cursor { next_seq: 1, prev: [0; 32] }
    }
}

/// A verified entry and its own chain hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub entry: Entry,
    pub hash: [u8; 32],
}

/// Open and verify `rows` (entry rows in id order) continuing from `cursor`.
/// Stops at the first fault: returns the entries before it, the cursor after
/// the last good one, and the fault.
pub fn verify_rows(
    row_key: &SealKey,
    rows: &[(String, Vec<u8>)],
    mut cursor: Cursor,
) -> (Vec<Verified>, Cursor, Option<Fault>) {
    let mut out = Vec::with_capacity(rows.len());
    for (id, body) in rows {
        let fault = |problem, seq, message: String| Fault { problem, seq, row_id: id.clone(), message };
        let Some(row_seq) = parse_entry_id(id) else {
            let f = fault(Problem::Edited, cursor.next_seq, format!("row {id} is not an audit entry row"));
            return (out, cursor, Some(f));
        };
        if row_seq > cursor.next_seq {
            let missing = if row_seq == cursor.next_seq + 1 {
                format!("entry {} is missing", cursor.next_seq)
            } else {
                format!("entries {} to {} are missing", cursor.next_seq, row_seq - 1)
            };
            let f = fault(Problem::Removed, cursor.next_seq, format!("{missing} (the next row is {id})"));
            return (out, cursor, Some(f));
        }
        if row_seq < cursor.next_seq {
            let f = fault(Problem::Reordered, row_seq, format!("row {id} comes after entry {}", cursor.next_seq - 1));
            return (out, cursor, Some(f));
        }
        let Some(entry) = open_entry(row_key, body) else {
            let f = fault(
                Problem::Edited,
                row_seq,
                format!(
                    "entry {row_seq} (row {id}) fails authentication: it was changed, or not sealed with this keystore's HMK"
                ),
            );
            return (out, cursor, Some(f));
        };
        if entry.seq != row_seq {
            let f = fault(
                Problem::Reordered,
                row_seq,
                format!("row {id} holds entry {} instead of entry {row_seq}: entries were moved", entry.seq),
            );
            return (out, cursor, Some(f));
        }
        if entry.prev != cursor.prev {
            let f = fault(
                Problem::Edited,
                row_seq,
                format!("entry {row_seq} (row {id}) does not follow entry {}: the chain is broken", row_seq - 1),
            );
            return (out, cursor, Some(f));
        }
        let hash = entry.hash();
        cursor = Cursor { next_seq: row_seq + 1, prev: hash };
        out.push(Verified { entry, hash });
    }
    (out, cursor, None)
}

/// After the last row: does the trail end exactly at the head?
pub fn check_end(head: &Head, cursor: &Cursor) -> Option<Fault> {
    let last = cursor.next_seq - 1;
    if last < head.seq {
        let message = if last + 1 == head.seq {
            format!("entry {} is missing: the trail ends at entry {last} but its head says {}", head.seq, head.seq)
        } else {
            format!(
                "entries {} to {} are missing: the trail ends at entry {last} but its head says {}",
                last + 1,
                head.seq,
                head.seq
            )
        };
        return Some(Fault { problem: Problem::Removed, seq: last + 1, row_id: String::new(), message });
    }
    if last == head.seq && cursor.prev != head.hash {
        return Some(Fault {
            problem: Problem::Edited,
            seq: last,
            row_id: entry_row_id(last),
            message: format!("entry {last} does not match the chain head: the head or the entry was replaced"),
        });
    }
    None
}

/// Hex of a hash, for people.
pub fn hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}
