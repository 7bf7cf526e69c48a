//! `keystate export` and `keystate import`: groups and keys between
//! keystores, in a container sealed with an export pass phrase (read like
//! every pass phrase: environment variable, prompt, or a line of stdin).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use keystate::{Error, ErrorKind, ImportOptions, ImportReport, Keystore, Result};
use serde_json::json;

use super::output::Output;
use super::secrets::{Fresh, Need, Sources};
use super::utf8;

/// Where the export pass phrase comes from unless `--passphrase-env` says otherwise.
pub const DEFAULT_PASSPHRASE_ENV: &str = "KEYSTATE_EXPORT_PASSPHRASE";

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The container file to write; it appears only when complete, readable by its owner only.
    pub output: PathBuf,
    /// Export this group (repeat for more); every group when not given.
    #[arg(long, short, value_name = "GROUP")]
    pub group: Vec<OsString>,
    /// The environment variable holding the export pass phrase (if unset: a prompt, asked
    /// twice, or a line of stdin after any HMK/KPK pass phrase line).
    #[arg(long, value_name = "VAR", default_value = DEFAULT_PASSPHRASE_ENV)]
    pub passphrase_env: String,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The container file made by `keystate export`.
    pub input: PathBuf,
    /// Only show what would be imported, created and skipped; change nothing.
    #[arg(long)]
    pub preview: bool,
    /// Keep the groups' names; a group whose name exists here is skipped, never merged
    /// (without this flag each group is named <name>_<YYYYMMDDTHHMMSSZ>, UTC).
    #[arg(long)]
    pub preserve_names: bool,
    /// The environment variable holding the export pass phrase (if unset: a prompt or a
    /// line of stdin after any HMK/KPK pass phrase line).
    #[arg(long, value_name = "VAR", default_value = DEFAULT_PASSPHRASE_ENV)]
    pub passphrase_env: String,
}

fn need(var: &str) -> Result<Need> {
    if var.is_empty() || var.contains('=') || var.contains('\0') {
        return Err(Error::new(ErrorKind::InvalidArgument, format!("{var:?} is not an environment variable name")));
    }
    // One run asks for at most one export pass phrase: the name may live as long as the process.
    Ok(Need { var: Box::leak(var.to_string().into_boxed_str()), label: "export pass phrase" })
}

pub fn export(ks: &Keystore, args: ExportArgs, sources: Sources, out: Output) -> Result<()> {
    let groups: Vec<&str> = args.group.iter().map(|g| utf8(g, "group name")).collect::<Result<_>>()?;
    let selection = (!groups.is_empty()).then_some(groups.as_slice());
    // Check the selection before asking for a pass phrase.
    for g in &groups {
        ks.group(g)?;
    }
    let passphrase = sources.get(need(&args.passphrase_env)?, Fresh::New)?;
    let size = ks.export_to_file(&args.output, selection, &passphrase)?;
    let exported = match selection {
        Some(names) => names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        None => ks.groups()?.into_iter().map(|g| g.name).collect(),
    };
    let keys: usize = exported.iter().map(|g| ks.keys(Some(g), None).map(|k| k.len())).sum::<Result<usize>>()?;
    out.done(
        &format!(
            "exported {} group(s) with {keys} key(s) to {} ({size} bytes); keep the export pass phrase: import needs it",
            exported.len(),
            args.output.display()
        ),
        json!({ "output": args.output.display().to_string(), "groups": exported, "keys": keys, "bytes": size }),
    )
}

pub fn import(ks: &Keystore, args: ImportArgs, sources: Sources, out: Output) -> Result<()> {
    let container = std::fs::read(&args.input).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::new(ErrorKind::NotFound, format!("no file {}", args.input.display())),
        _ => Error::new(ErrorKind::Storage, format!("reading {}: {e}", args.input.display())),
    })?;
    let passphrase = sources.get(need(&args.passphrase_env)?, Fresh::Existing)?;
    let options = ImportOptions { preserve_names: args.preserve_names, preview: args.preview };
    let report = ks.import(&container, &passphrase, options)?;
    if out.is_json() {
        let value = json!({
            "preview": report.preview,
            "groups_created": report.groups_created().count(),
            "keys_imported": report.keys_imported().count(),
            "keys_skipped": report.keys_skipped().count(),
            "groups": report.groups,
            "keys": report.keys,
        });
        return out.done("", value);
    }
    out.note(&human(&report))
}

/// The report for people: one line per group, its keys beneath, a summary last.
fn human(report: &ImportReport) -> String {
    let mut text = String::new();
    let (created, imported) =
        if report.preview { ("would be created", "would be imported") } else { ("created", "imported") };
    for g in &report.groups {
        let _ = match &g.skipped {
            None if g.name == g.source_name => writeln!(text, "group {:?}: {created}", g.name),
            None => writeln!(text, "group {:?} as {:?}: {created}", g.source_name, g.name),
            Some(s) => writeln!(text, "group {:?}: skipped ({}): {}", g.source_name, s.reason, s.detail),
        };
        for k in report.keys.iter().filter(|k| k.source_group == g.source_name) {
            let _ = match &k.skipped {
                None => writeln!(text, "  key {:?} ({}, tag {}): {imported}", k.name, k.state, k.tag),
                Some(s) => writeln!(text, "  key {:?} (tag {}): skipped ({}): {}", k.name, k.tag, s.reason, s.detail),
            };
        }
    }
    let _ = write!(
        text,
        "{}{} group(s) {created}, {} key(s) {imported}, {} key(s) skipped",
        if report.preview { "preview, nothing changed: " } else { "" },
        report.groups_created().count(),
        report.keys_imported().count(),
        report.keys_skipped().count()
    );
    text
}
