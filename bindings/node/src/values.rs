//! Values crossing to JavaScript: the info records as plain objects with
//! camelCase fields (times in milliseconds since the epoch; `index.js` makes
//! them `Date`s), and state and cipher names parsed by the library, so an
//! unknown name is the library's `INVALID_ARGUMENT`.

use std::time::{SystemTime, UNIX_EPOCH};

use napi_derive::napi;

use crate::error::{Result, from_keystate};

/// A key record (never its key material).
#[napi(object)]
pub struct KeyInfo {
    pub tag: String,
    pub name: String,
    pub group: String,
    pub state: String,
    pub description: String,
    pub created: f64,
    pub modified: f64,
    pub recoverable: bool,
}

impl From<keystate::KeyInfo> for KeyInfo {
    fn from(k: keystate::KeyInfo) -> KeyInfo {
        KeyInfo {
            tag: k.tag,
            name: k.name,
            group: k.group,
            state: k.state.as_str().to_string(),
            description: k.description,
            created: millis(k.created),
            modified: millis(k.modified),
            recoverable: k.recoverable,
        }
    }
}

/// A key group.
#[napi(object)]
pub struct GroupInfo {
    pub tag: String,
    pub name: String,
    pub cipher: String,
    pub description: String,
    pub created: f64,
    pub modified: f64,
    pub active_key: Option<String>,
}

impl From<keystate::GroupInfo> for GroupInfo {
    fn from(g: keystate::GroupInfo) -> GroupInfo {
        GroupInfo {
            tag: g.tag,
            name: g.name,
            cipher: g.cipher.as_str().to_string(),
            description: g.description,
            created: millis(g.created),
            modified: millis(g.modified),
            active_key: g.active_key,
        }
    }
}

/// Keys per state.
#[napi(object)]
pub struct StateCounts {
    pub prelive: u32,
    pub active: u32,
    pub inactive: u32,
    pub deprecated: u32,
    pub terminated: u32,
}

/// Counts over a keystore.
#[napi(object)]
pub struct Stats {
    pub groups: u32,
    pub keys: u32,
    pub states: StateCounts,
    pub corrupt_rows: u32,
    pub quiesced: bool,
    pub hmk_id: String,
    pub kpk_id: String,
    /// Entries in the audit trail.
    pub audit_entries: f64,
    pub format_version: u32,
    pub path: String,
}

impl From<keystate::Stats> for Stats {
    fn from(s: keystate::Stats) -> Stats {
        let count = |state: keystate::KeyState| s.states.get(state.as_str()).copied().unwrap_or(0);
        Stats {
            groups: s.groups,
            keys: s.keys,
            states: StateCounts {
                prelive: count(keystate::KeyState::Prelive),
                active: count(keystate::KeyState::Active),
                inactive: count(keystate::KeyState::Inactive),
                deprecated: count(keystate::KeyState::Deprecated),
                terminated: count(keystate::KeyState::Terminated),
            },
            corrupt_rows: s.corrupt_rows,
            quiesced: s.quiesced,
            hmk_id: s.hmk_id,
            kpk_id: s.kpk_id,
            audit_entries: s.audit_entries as f64,
            format_version: s.format_version,
            path: s.path,
        }
    }
}

/// A row that failed to load (tampered or corrupt).
#[napi(object)]
pub struct RowFault {
    pub id: String,
    pub message: String,
}

impl From<keystate::RowFault> for RowFault {
    fn from(f: keystate::RowFault) -> RowFault {
        RowFault { id: f.id, message: f.message }
    }
}

/// Why an import leaves a group or key out, and what is already there.
#[napi(object)]
pub struct Skip {
    /// `tag-exists`, `material-exists`, `group-exists` or `no-new-keys`.
    pub reason: String,
    pub detail: String,
}

fn skip(s: Option<keystate::Skip>) -> Option<Skip> {
    s.map(|s| Skip { reason: s.reason.as_str().to_string(), detail: s.detail })
}

/// What an import does (or would do) with one group of the container.
#[napi(object)]
pub struct ImportedGroup {
    pub source_name: String,
    pub name: String,
    pub cipher: String,
    pub created: bool,
    pub skipped: Option<Skip>,
}

/// What an import does (or would do) with one key of the container.
#[napi(object)]
pub struct ImportedKey {
    pub source_group: String,
    pub group: String,
    pub name: String,
    pub tag: String,
    pub state: String,
    pub recoverable: bool,
    pub imported: bool,
    pub skipped: Option<Skip>,
}

/// Everything an import decided, in container order.
#[napi(object)]
pub struct ImportReport {
    pub preview: bool,
    pub groups: Vec<ImportedGroup>,
    pub keys: Vec<ImportedKey>,
}

impl From<keystate::ImportReport> for ImportReport {
    fn from(r: keystate::ImportReport) -> ImportReport {
        ImportReport {
            preview: r.preview,
            groups: r
                .groups
                .into_iter()
                .map(|g| ImportedGroup {
                    source_name: g.source_name,
                    name: g.name,
                    cipher: g.cipher.as_str().to_string(),
                    created: g.created,
                    skipped: skip(g.skipped),
                })
                .collect(),
            keys: r
                .keys
                .into_iter()
                .map(|k| ImportedKey {
                    source_group: k.source_group,
                    group: k.group,
                    name: k.name,
                    tag: k.tag,
                    state: k.state.as_str().to_string(),
                    recoverable: k.recoverable,
                    imported: k.imported,
                    skipped: skip(k.skipped),
                })
                .collect(),
        }
    }
}

pub fn state(name: &str) -> Result<keystate::KeyState> {
    name.parse().map_err(from_keystate)
}

pub fn cipher(name: &str) -> Result<keystate::Cipher> {
    name.parse().map_err(from_keystate)
}

fn millis(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as f64,
        Err(before) => -(before.duration().as_millis() as f64),
    }
}

pub fn time_from_millis(ms: f64) -> SystemTime {
    let d = std::time::Duration::from_millis(ms.abs() as u64);
    if ms >= 0.0 { UNIX_EPOCH + d } else { UNIX_EPOCH - d }
}

/// One audit entry; times in milliseconds since the Unix epoch.
#[napi(object)]
pub struct AuditEntry {
    pub seq: f64,
    pub time: f64,
    pub action: String,
    pub actor: String,
    pub group: Option<String>,
    pub key: Option<String>,
    pub key_tag: Option<String>,
    pub old_state: Option<String>,
    pub new_state: Option<String>,
    pub detail: String,
    pub hash: String,
}

impl From<keystate::AuditEntry> for AuditEntry {
    fn from(e: keystate::AuditEntry) -> AuditEntry {
        AuditEntry {
            seq: e.seq as f64,
            time: millis(e.time),
            action: e.action,
            actor: e.actor,
            group: e.group,
            key: e.key,
            key_tag: e.key_tag,
            old_state: e.old_state.map(|s| s.as_str().to_string()),
            new_state: e.new_state.map(|s| s.as_str().to_string()),
            detail: e.detail,
            hash: e.hash,
        }
    }
}

/// The first audit entry that cannot be trusted.
#[napi(object)]
pub struct AuditFault {
    /// `edited`, `removed` or `reordered`.
    pub problem: String,
    pub seq: f64,
    pub row_id: String,
    pub message: String,
}

/// What verifying the audit trail found.
#[napi(object)]
pub struct AuditReport {
    pub verified: f64,
    pub head_seq: f64,
    pub head_hash: String,
    pub fault: Option<AuditFault>,
}

impl From<keystate::AuditReport> for AuditReport {
    fn from(r: keystate::AuditReport) -> AuditReport {
        AuditReport {
            verified: r.verified as f64,
            head_seq: r.head_seq as f64,
            head_hash: r.head_hash,
            fault: r.fault.map(|f| AuditFault {
                problem: f.problem.as_str().to_string(),
                seq: f.seq as f64,
                row_id: f.row_id,
                message: f.message,
            }),
        }
    }
}
