//! Administration commands: `audit` (list with filters, or `--verify`),
//! `rotate-hmk` and `rotate-kpk`.

use std::ffi::OsString;
use std::time::SystemTime;

use clap::Args;
use keystate::{AuditEntry, AuditFilter, Error, ErrorKind, Keystore, NewKey, Result, format_time};
use serde_json::json;

use super::output::{Output, fields, print, table, to_value};
use super::secrets::{self, Fresh, Need, Sources};
use super::{utf8, utf8_opt};

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Verify the whole trail instead of listing it: every entry opens with the
    /// HMK, none is missing or out of place, and the chain ends at its head.
    /// Exit code 9 names the first entry that was edited, removed or reordered.
    #[arg(long, conflicts_with_all = ["group", "key", "action", "since", "limit"])]
    pub verify: bool,
    /// Only entries about this group.
    #[arg(long, short)]
    pub group: Option<OsString>,
    /// Only entries about this key (name or tag).
    #[arg(long)]
    pub key: Option<OsString>,
    /// Only this action (create-group, set-state, rotate-hmk, ...).
    #[arg(long)]
    pub action: Option<OsString>,
    /// Only entries at or after this time: RFC 3339 (2026-12-04T10:00:00Z), a
    /// date (2026-12-04, UTC), or an age (90m, 2h, 7days).
    #[arg(long, value_name = "TIME")]
    pub since: Option<OsString>,
    /// At most this many entries: the most recent ones.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("new").required(true))]
pub struct RotateArgs {
    /// Derive the new key from a new pass phrase (KEYSTATE_NEW_HMK_PASSPHRASE or
    /// KEYSTATE_NEW_KPK_PASSPHRASE, else a prompt (twice), else a stdin line after
    /// the current pass phrases).
    #[arg(long, group = "new")]
    pub passphrase: bool,
    /// Like --passphrase, from this environment variable instead.
    #[arg(long, value_name = "VAR", group = "new")]
    pub passphrase_env: Option<OsString>,
    /// A new random key, in the key file beside the keystore (<keystore>.hmk or .kpk).
    #[arg(long, group = "new")]
    pub random: bool,
    /// A label naming the new key (random if not given).
    #[arg(long, value_name = "ID")]
    pub id: Option<OsString>,
}

pub const NEW_HMK: Need = Need { var: "KEYSTATE_NEW_HMK_PASSPHRASE", label: "new HMK pass phrase" };
pub const NEW_KPK: Need = Need { var: "KEYSTATE_NEW_KPK_PASSPHRASE", label: "new KPK pass phrase" };

pub fn audit(ks: &Keystore, args: AuditArgs, out: Output) -> Result<()> {
    if args.verify {
        return verify(ks, out);
    }
    let filter = AuditFilter {
        group: utf8_opt(&args.group, "group name")?.map(str::to_string),
        key: utf8_opt(&args.key, "key name")?.map(str::to_string),
        action: utf8_opt(&args.action, "action")?.map(str::to_string),
        since: args.since.as_ref().map(|s| parse_since(utf8(s, "time")?)).transpose()?,
        limit: args.limit,
    };
    let entries = ks.audit(&filter)?;
    if out.is_json() {
        return print(&format!("{}\n", to_value(&entries)?));
    }
    print(&table(&["SEQ", "TIME", "ACTOR", "ACTION", "GROUP", "KEY", "STATE", "DETAIL"], entries.iter().map(row)))
}

fn row(e: &AuditEntry) -> Vec<String> {
    let state = |s: Option<keystate::KeyState>| s.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
    let states = match (e.old_state, e.new_state) {
        (None, None) => "-".to_string(),
        (old, new) => format!("{} -> {}", state(old), state(new)),
    };
    vec![
        e.seq.to_string(),
        format_time(e.time),
        e.actor.clone(),
        e.action.clone(),
        e.group.clone().unwrap_or_else(|| "-".into()),
        e.key.clone().unwrap_or_else(|| "-".into()),
        states,
        e.detail.clone(),
    ]
}

fn verify(ks: &Keystore, out: Output) -> Result<()> {
    let report = ks.verify_audit()?;
    if let Some(fault) = &report.fault {
        let row = if fault.row_id.is_empty() { String::new() } else { format!(" (row {})", fault.row_id) };
        return Err(Error::new(
            ErrorKind::Integrity,
            format!(
                "audit trail broken: entry {} was {}{row}: {}; {} entries before it verified",
                fault.seq,
                fault.problem.as_str(),
                fault.message,
                report.verified
            ),
        ));
    }
    if out.is_json() {
        return print(&format!("{}\n", to_value(&report)?));
    }
    print(&format!(
        "audit trail intact: {} entries, chain head {}\n{}",
        report.verified,
        report.head_seq,
        fields(&[("head hash", report.head_hash.clone())])
    ))
}

/// `--since`: an age (`2h`), a date (UTC midnight), or RFC 3339.
fn parse_since(text: &str) -> Result<SystemTime> {
    if let Ok(age) = humantime::parse_duration(text) {
        return Ok(SystemTime::now() - age);
    }
    let full = if text.len() == 10 { format!("{text}T00:00:00Z") } else { text.to_string() };
    humantime::parse_rfc3339_weak(&full).map_err(|_| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("--since {text:?} is not a time: use RFC 3339 (2026-12-04T10:00:00Z), a date, or an age (2h)"),
        )
    })
}

/// `rotate-hmk` / `rotate-kpk`.
pub fn rotate(ks: &Keystore, hmk: bool, args: RotateArgs, sources: Sources, out: Output) -> Result<()> {
    let (what, need) = if hmk { ("HMK", NEW_HMK) } else { ("KPK", NEW_KPK) };
    let passphrase = if args.random {
        None
    } else if let Some(var) = &args.passphrase_env {
        let var = utf8(var, "variable name")?;
        let value = std::env::var_os(var)
            .ok_or_else(|| Error::new(ErrorKind::InvalidArgument, format!("{var} is not set")))?
            .into_string()
            .map_err(|_| Error::new(ErrorKind::InvalidArgument, format!("{var} is not valid UTF-8")))?;
        Some(zeroize::Zeroizing::new(value))
    } else {
        Some(sources.get(need, Fresh::New)?)
    };
    let new = match &passphrase {
        Some(p) => NewKey::Passphrase(p.as_str()),
        None => NewKey::Random,
    };
    let id = utf8_opt(&args.id, &format!("{what} ID"))?;
    if hmk {
        ks.rotate_hmk(new, id)?;
    } else {
        ks.rotate_kpk(new, id)?;
    }
    let stats = ks.stats()?;
    let new_id = if hmk { stats.hmk_id } else { stats.kpk_id };
    let info = keystate::inspect(&stats.path)?;
    let file = if hmk { info.hmk.key_file } else { info.kpk.key_file };
    let (how, var) = (
        match &file {
            Some(f) => format!("random key in {}", f.display()),
            None => "from the new pass phrase".to_string(),
        },
        if hmk { secrets::HMK.var } else { secrets::KPK.var },
    );
    let mut human = format!("rotated the {what}: now {what} {new_id:?}, {how}");
    match &file {
        Some(_) => human.push_str("\nwarning: back up the new key file; the old one no longer opens the keystore"),
        None => human.push_str(&format!("\nfrom now on give the new pass phrase ({var} or the prompt)")),
    }
    out.done(
        &human,
        json!({ "rotated": what.to_lowercase(), "id": new_id, "key_file": file.map(|f| f.display().to_string()) }),
    )
}
