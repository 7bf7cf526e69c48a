//! Library records as plain Python values. The Python package builds its frozen
//! dataclasses from these (`keystate._types`), so the field order here is the
//! order of `KeyInfo` and `GroupInfo` there.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use keystate::{AuditEntry, AuditReport, GroupInfo, ImportReport, KeyInfo, RowFault, Skip, Stats};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Microseconds since the Unix epoch (the library keeps milliseconds; Python's
/// `datetime` resolves microseconds, so nothing is rounded).
fn micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(before) => -(before.duration().as_micros() as i64),
    }
}

/// `(tag, name, group, state, description, created_us, modified_us, recoverable)`
pub type KeyTuple = (String, String, String, &'static str, String, i64, i64, bool);

pub fn key(k: KeyInfo) -> KeyTuple {
    (k.tag, k.name, k.group, k.state.as_str(), k.description, micros(k.created), micros(k.modified), k.recoverable)
}

/// `(tag, name, cipher, description, created_us, modified_us, active_key)`
pub type GroupTuple = (String, String, &'static str, String, i64, i64, Option<String>);

pub fn group(g: GroupInfo) -> GroupTuple {
    (g.tag, g.name, g.cipher.as_str(), g.description, micros(g.created), micros(g.modified), g.active_key)
}

/// `(id, message)`
pub fn fault(f: RowFault) -> (String, String) {
    (f.id, f.message)
}

/// Every field of `Stats` under its own name.
pub fn stats(py: Python<'_>, s: Stats) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("groups", s.groups)?;
    d.set_item("keys", s.keys)?;
    let states: BTreeMap<&str, u32> = s.states;
    d.set_item("states", states)?;
    d.set_item("corrupt_rows", s.corrupt_rows)?;
    d.set_item("quiesced", s.quiesced)?;
    d.set_item("hmk_id", s.hmk_id)?;
    d.set_item("kpk_id", s.kpk_id)?;
    d.set_item("audit_entries", s.audit_entries)?;
    d.set_item("format_version", s.format_version)?;
    d.set_item("path", s.path)?;
    Ok(d)
}

/// `(reason, detail)` of a skip, or `None`.
type SkipTuple = Option<(&'static str, String)>;

fn skip(s: Option<Skip>) -> SkipTuple {
    s.map(|s| (s.reason.as_str(), s.detail))
}

/// `(source_name, name, cipher, created, skipped)`
pub type ImportedGroupTuple = (String, String, &'static str, bool, SkipTuple);

/// `(source_group, group, name, tag, state, recoverable, imported, skipped)`
pub type ImportedKeyTuple = (String, String, String, String, &'static str, bool, bool, SkipTuple);

/// `(preview, groups, keys)`
pub type ReportTuple = (bool, Vec<ImportedGroupTuple>, Vec<ImportedKeyTuple>);

pub fn report(r: ImportReport) -> ReportTuple {
    let groups = r.groups.into_iter().map(|g| (g.source_name, g.name, g.cipher.as_str(), g.created, skip(g.skipped)));
    let keys = r.keys.into_iter().map(|k| {
        (k.source_group, k.group, k.name, k.tag, k.state.as_str(), k.recoverable, k.imported, skip(k.skipped))
    });
    (r.preview, groups.collect(), keys.collect())
}

pub fn time_from_micros(us: i64) -> SystemTime {
    let d = std::time::Duration::from_micros(us.unsigned_abs());
    if us >= 0 { UNIX_EPOCH + d } else { UNIX_EPOCH - d }
}

/// `(seq, time_us, action, actor, group, key, key_tag, old_state, new_state, detail, hash)`
pub type AuditTuple = (
    u64,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<&'static str>,
    Option<&'static str>,
    String,
    String,
);

pub fn audit_entry(e: AuditEntry) -> AuditTuple {
    (
        e.seq,
        micros(e.time),
        e.action,
        e.actor,
        e.group,
        e.key,
        e.key_tag,
        e.old_state.map(|s| s.as_str()),
        e.new_state.map(|s| s.as_str()),
        e.detail,
        e.hash,
    )
}

/// `(verified, head_seq, head_hash, fault)`, fault `(problem, seq, row_id, message)`
pub type AuditReportTuple = (u64, u64, String, Option<(&'static str, u64, String, String)>);

pub fn audit_report(r: AuditReport) -> AuditReportTuple {
    let fault = r.fault.map(|f| (f.problem.as_str(), f.seq, f.row_id, f.message));
    (r.verified, r.head_seq, r.head_hash, fault)
}
