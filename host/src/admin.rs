//! Public types of the administration API: audit entries, filters and
//! verification reports, the new key of a rotation, and the default actor.
//! The operations are `Keystore` methods (`keystore/admin.rs`).

use std::time::SystemTime;

use serde::Serialize;

use crate::types::{KeyState, format_time};

/// One entry of the audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Position in the trail: 1, 2, 3, ... with no gaps.
    pub seq: u64,
    #[serde(serialize_with = "rfc3339")]
    pub time: SystemTime,
    /// `create`, `create-group`, `modify-group`, `delete-group`, `create-key`,
    /// `set-state`, `modify-key`, `delete-key`, `recover-key`, `quiesce`,
    /// `unquiesce`, `rotate-hmk`, `rotate-kpk`, `import-group` or `import-key`.
    pub action: String,
    /// Who made the change, as the caller named itself.
    pub actor: String,
    pub group: Option<String>,
    pub key: Option<String>,
    pub key_tag: Option<String>,
    /// The key's state before (`None`: it did not exist).
    pub old_state: Option<KeyState>,
    /// The key's state after (`None`: it was deleted).
    pub new_state: Option<KeyState>,
    pub detail: String,
    /// This entry's chain hash (64 hex digits).
    pub hash: String,
}

/// Which entries `Keystore::audit` returns; every field narrows.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub group: Option<String>,
    pub key: Option<String>,
    pub action: Option<String>,
    /// Entries at or after this time.
    pub since: Option<SystemTime>,
    /// At most this many: the most recent ones matching.
    pub limit: Option<usize>,
}

impl AuditFilter {
    pub(crate) fn matches(&self, e: &AuditEntry) -> bool {
        self.group.as_ref().is_none_or(|g| e.group.as_ref() == Some(g))
            && self.key.as_ref().is_none_or(|k| e.key.as_ref() == Some(k) || e.key_tag.as_ref() == Some(k))
            && self.action.as_ref().is_none_or(|a| &e.action == a)
            && self.since.is_none_or(|t| e.time >= t)
    }
}

/// How the audit trail failed to verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditProblem {
    /// The entry's row was changed, or the chain is broken at it.
    Edited,
    /// The entry is missing: a gap, or the trail ends before its head.
    Removed,
    /// The entry's row holds another position's entry.
    Reordered,
}

impl AuditProblem {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditProblem::Edited => "edited",
            AuditProblem::Removed => "removed",
            AuditProblem::Reordered => "reordered",
        }
    }
}

/// The first audit entry that cannot be trusted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditFault {
    pub problem: AuditProblem,
    /// Its sequence number.
    pub seq: u64,
    /// The row where it showed (empty when the trail ends too early).
    pub row_id: String,
    pub message: String,
}

/// What `Keystore::verify_audit` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// Entries that verified, from the first on, before any fault.
    pub verified: u64,
    /// The chain head the keystore holds: the last entry's sequence number and hash.
    pub head_seq: u64,
    pub head_hash: String,
    /// The first entry that failed; `None`: the whole trail verified.
    pub fault: Option<AuditFault>,
}

impl AuditReport {
    pub fn is_intact(&self) -> bool {
        self.fault.is_none()
    }
}

/// The new HMK or KPK of a rotation.
#[derive(Clone, Copy, Debug)]
pub enum NewKey<'a> {
    /// Derived from this pass phrase (Argon2id).
    Passphrase(&'a str),
    /// 32 random bytes, kept in the key file beside the keystore (`<path>.hmk`, `<path>.kpk`).
    Random,
}

/// The actor recorded when the caller names none: `user@host` from the
/// environment (`USER`/`LOGNAME`/`USERNAME`, the host name), else `pid:<n>`.
pub fn default_actor() -> String {
    let user =
        ["USER", "LOGNAME", "USERNAME"].iter().find_map(|v| std::env::var(v).ok().filter(|u| !u.trim().is_empty()));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    let actor = match (user, host) {
        (Some(u), Some(h)) => format!("{}@{h}", u.trim()),
        (Some(u), None) => u.trim().to_string(),
        _ => format!("pid:{}", std::process::id()),
    };
    // Whatever the environment says must still be a valid actor.
    if actor.len() <= 255 && !actor.chars().any(char::is_control) {
        actor
    } else {
        format!("pid:{}", std::process::id())
    }
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(*t))
}
