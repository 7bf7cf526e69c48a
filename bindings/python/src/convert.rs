//! Library records as plain Python values. The Python package builds its frozen
//! dataclasses from these (`keystate._types`), so the field order here is the
//! order of `KeyInfo` and `GroupInfo` there.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use keystate::{AuditEntry, AuditReport, GroupInfo, KeyInfo, RowFault, Stats};
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
pub type ReportTuple = (u64, u64, String, Option<(&'static str, u64, String, String)>);

pub fn audit_report(r: AuditReport) -> ReportTuple {
    let fault = r.fault.map(|f| (f.problem.as_str(), f.seq, f.row_id, f.message));
    (r.verified, r.head_seq, r.head_hash, fault)
}
