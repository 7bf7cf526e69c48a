//! What the CLI prints on stdout: aligned tables and short confirmations for
//! people, or JSON with the library's field names (`--json`). Errors go to
//! stderr once, and with `--json` also as `{"error": {"code", "message"}}`.

use std::fmt::Write as _;
use std::io::Write as _;

use keystate::{Error, ErrorKind, GroupInfo, KeyInfo, KeyState, Operation, Result, RowFault, Stats, format_time};
use serde::Serialize;
use serde_json::{Value, json};

/// The rules as learned from the library, for `keystate policy`.
pub struct Policy {
    /// For each state, the states it may move to (itself included: staying is a no-op).
    pub transitions: Vec<(KeyState, Vec<KeyState>)>,
    /// For each state, the operations it allows.
    pub operations: Vec<(KeyState, Vec<Operation>)>,
}

/// Prints results as text or JSON.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Output {
        Output { json }
    }

    pub fn is_json(self) -> bool {
        self.json
    }

    pub fn group(self, group: &GroupInfo) -> Result<()> {
        self.either(group, || {
            fields(&[
                ("name", group.name.clone()),
                ("cipher", group.cipher.to_string()),
                ("active key", group.active_key.clone().unwrap_or_else(|| "-".into())),
                ("tag", group.tag.clone()),
                ("description", group.description.clone()),
                ("created", format_time(group.created)),
                ("modified", format_time(group.modified)),
            ])
        })
    }

    pub fn groups(self, groups: &[GroupInfo]) -> Result<()> {
        self.either(groups, || {
            table(
                &["NAME", "CIPHER", "ACTIVE_KEY", "TAG", "MODIFIED"],
                groups.iter().map(|g| {
                    vec![
                        g.name.clone(),
                        g.cipher.to_string(),
                        g.active_key.clone().unwrap_or_else(|| "-".into()),
                        g.tag.clone(),
                        format_time(g.modified),
                    ]
                }),
            )
        })
    }

    pub fn key(self, key: &KeyInfo) -> Result<()> {
        self.either(key, || {
            fields(&[
                ("name", key.name.clone()),
                ("group", key.group.clone()),
                ("state", key.state.to_string()),
                ("tag", key.tag.clone()),
                ("recoverable", yes_no(key.recoverable).into()),
                ("description", key.description.clone()),
                ("created", format_time(key.created)),
                ("modified", format_time(key.modified)),
            ])
        })
    }

    pub fn keys(self, keys: &[KeyInfo]) -> Result<()> {
        self.either(keys, || {
            table(
                &["NAME", "GROUP", "STATE", "TAG", "RECOVERABLE", "MODIFIED"],
                keys.iter().map(|k| {
                    vec![
                        k.name.clone(),
                        k.group.clone(),
                        k.state.to_string(),
                        k.tag.clone(),
                        yes_no(k.recoverable).into(),
                        format_time(k.modified),
                    ]
                }),
            )
        })
    }

    /// The counts, then any rows that failed to load.
    pub fn stats(self, stats: &Stats, faults: &[RowFault]) -> Result<()> {
        if self.json {
            let mut value = to_value(stats)?;
            value["faults"] = to_value(faults)?;
            return print(&format!("{value}\n"));
        }
        let states: Vec<String> = KeyState::ALL
            .iter()
            .map(|s| format!("{s} {}", stats.states.get(s.as_str()).copied().unwrap_or(0)))
            .collect();
        let mut text = fields(&[
            ("keystore", stats.path.clone()),
            ("format", stats.format_version.to_string()),
            ("hmk id", stats.hmk_id.clone()),
            ("kpk id", stats.kpk_id.clone()),
            ("quiesced", yes_no(stats.quiesced).into()),
            ("groups", stats.groups.to_string()),
            ("keys", format!("{} ({})", stats.keys, states.join(", "))),
            ("corrupt rows", stats.corrupt_rows.to_string()),
            ("audit entries", stats.audit_entries.to_string()),
        ]);
        for fault in faults {
            let _ = writeln!(text, "corrupt row {}: {}", fault.id, fault.message);
        }
        print(&text)
    }

    /// `keystate policy`: the transition table and the operations per state.
    pub fn policy(self, policy: &Policy) -> Result<()> {
        if self.json {
            let transitions: serde_json::Map<String, Value> =
                policy.transitions.iter().map(|(from, to)| (from.to_string(), json!(to))).collect();
            let operations: serde_json::Map<String, Value> =
                policy.operations.iter().map(|(state, ops)| (state.to_string(), json!(ops))).collect();
            let states: Vec<&str> = KeyState::ALL.iter().map(|s| s.as_str()).collect();
            let value = json!({ "states": states, "transitions": transitions, "operations": operations });
            return print(&format!("{value}\n"));
        }
        let mut header = vec!["FROM \\ TO".to_string()];
        header.extend(KeyState::ALL.iter().map(|s| s.as_str().to_uppercase()));
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        let moves = table(
            &header,
            policy.transitions.iter().map(|(from, to)| {
                let mut row = vec![from.to_string()];
                row.extend(KeyState::ALL.iter().map(|s| match (s == from, to.contains(s)) {
                    (true, _) => "=".to_string(),
                    (false, true) => "yes".to_string(),
                    (false, false) => "-".to_string(),
                }));
                row
            }),
        );
        let all_ops = [Operation::Encrypt, Operation::Decrypt, Operation::Delete];
        let mut header = vec!["STATE".to_string()];
        header.extend(all_ops.iter().map(|o| o.as_str().to_uppercase()));
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        let uses = table(
            &header,
            policy.operations.iter().map(|(state, ops)| {
                let mut row = vec![state.to_string()];
                row.extend(all_ops.iter().map(|o| if ops.contains(o) { "yes" } else { "-" }.to_string()));
                row
            }),
        );
        print(&format!(
            "State transitions (yes: allowed; =: staying put, a no-op; -: refused):\n{moves}\n\
             Operations each state allows:\n{uses}"
        ))
    }

    /// A confirmation: `human` as a line of text, or `value` as JSON.
    pub fn done(self, human: &str, value: Value) -> Result<()> {
        match self.json {
            true => print(&format!("{value}\n")),
            false => print(&format!("{human}\n")),
        }
    }

    /// Extra lines for people only (nothing with `--json`).
    pub fn note(self, human: &str) -> Result<()> {
        match self.json {
            true => Ok(()),
            false => print(&format!("{human}\n")),
        }
    }

    fn either<T: Serialize + ?Sized>(self, value: &T, human: impl FnOnce() -> String) -> Result<()> {
        match self.json {
            true => print(&format!("{}\n", to_value(value)?)),
            false => print(&human()),
        }
    }
}

/// Report a failure: once on stderr, and as JSON on stdout when asked.
pub fn error(e: &Error, json: bool) {
    eprintln!("keystate: error: {}", e.message());
    if json {
        let value = json!({ "error": { "code": e.kind().code(), "message": e.message() } });
        let _ = print(&format!("{value}\n"));
    }
}

/// Write to stdout; a reader that went away (`| head`) is not an error.
pub(super) fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::new(ErrorKind::Storage, format!("writing to standard output: {e}"))),
    }
}

pub(super) fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| Error::new(ErrorKind::Internal, format!("encoding JSON: {e}")))
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// `label  value` lines, labels padded to one width.
pub(super) fn fields(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    let mut text = String::new();
    for (label, value) in rows {
        let _ = writeln!(text, "{label:<width$}  {value}");
    }
    text
}

/// Columns aligned on the widest cell; the last column is not padded.
pub(super) fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| h.to_string()).collect()).chain(rows).collect();
    let mut widths = vec![0; header.len()];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in &rows {
        let last = row.len() - 1;
        for (i, cell) in row.iter().enumerate() {
            match i == last {
                true => text.push_str(cell),
                false => {
                    let pad = widths[i] - cell.chars().count();
                    let _ = write!(text, "{cell}{}  ", " ".repeat(pad));
                }
            }
        }
        text.push('\n');
    }
    text
}
