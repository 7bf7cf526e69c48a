//! The `keystate` command line. The clap structs below are its documentation
//! (their doc comments are the help text); `run` turns them into calls of the
//! `keystate` library, which never sees clap.
//!
//! - `exit`: the exit codes, one per error kind;
//! - `secrets`: where pass phrases come from (environment, prompt, stdin);
//! - `data`: streaming encrypt/decrypt between stdin/stdout and files;
//! - `output`: tables, confirmations and JSON;
//! - `admin`: the audit trail and HMK/KPK rotation.

mod admin;
mod data;
pub mod exit;
mod output;
mod secrets;
mod transfer;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory, Parser, Subcommand};
use keystate::{
    Cipher, CreateOptions, Error, ErrorKind, KeyState, Keystore, Result, allowed_operations, can_transition,
};
use serde_json::json;

use data::{Ends, Moved};
use output::{Output, Policy};
use secrets::{Fresh, Sources};

const PASSPHRASE_HELP: &str = "\
Pass phrases never come from the command line. Each is read from its environment
variable if set (KEYSTATE_HMK_PASSPHRASE and KEYSTATE_KPK_PASSPHRASE for the keystore,
KEYSTATE_PASSPHRASE for a key's own, KEYSTATE_EXPORT_PASSPHRASE for export and import
unless --passphrase-env names another), else prompted for on the terminal (new ones twice),
else read as one line of standard input, in the order HMK, KPK, key or export (not when standard
input carries data for encrypt/decrypt: set the variables then). A keystore asks for
its HMK/KPK pass phrase only if it was created with one.";

/// keystate: an embeddable key management service.
///
/// Key groups and key records with the lifecycle of an enterprise backup KMS
/// (prelive, active, inactive, deprecated, terminated), pass phrase keys that can
/// be recovered after deletion, and authenticated encryption of data at rest.
/// The keystore is one SQLite file, or a PostgreSQL database shared by many hosts
/// (postgres://user@host/db); random HMK/KPK keys live in key files beside it
/// (<keystore>.hmk, <keystore>.kpk; for a URL, where its key_files= says) unless
/// they come from pass phrases.
#[derive(Debug, Parser)]
#[command(name = "keystate", version, after_help = after_help(), max_term_width = 100)]
pub struct Cli {
    /// The keystore: a file, or a postgres:// URL (every command but `policy` needs one).
    #[arg(long, short = 'k', env = "KEYSTATE_KEYSTORE", value_name = "PATH", global = true)]
    pub keystore: Option<PathBuf>,

    /// Print results as JSON on stdout (errors too, as {"error": {"code", "message"}}).
    #[arg(long, global = true)]
    pub json: bool,

    /// Who makes the changes, as the audit trail records it (default: user@host).
    #[arg(long, env = "KEYSTATE_ACTOR", value_name = "NAME", global = true)]
    pub actor: Option<OsString>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new keystore (and, unless pass phrases are asked for, its random
    /// HMK/KPK key files beside it: back those up separately from the keystore).
    Init(InitArgs),
    /// Manage key groups: a group holds keys and at most one active key.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Manage key records and move them through their lifecycle.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Encrypt data with the active key of a group (stdin to stdout by default).
    Encrypt(EncryptArgs),
    /// Decrypt data with the key named by the tag inside it (stdin to stdout by default).
    ///
    /// The key must be active or inactive. With -o FILE the plaintext appears only
    /// once all of it authenticated; on stdout it is written as it authenticates,
    /// so discard it if the command fails.
    Decrypt(DecryptArgs),
    /// Make the keystore read-only (for every process) so its files can be copied.
    Quiesce,
    /// Give the keystore its write access back.
    Unquiesce,
    /// Show counts of groups and keys per state, the HMK/KPK IDs, corrupt rows and
    /// the number of audit entries.
    Stats,
    /// Export groups (all, or those named) with all their keys into one container file
    /// sealed with an export pass phrase (KEYSTATE_EXPORT_PASSPHRASE, a prompt or a stdin line).
    ///
    /// The container holds the keys' material: guard it and its pass phrase like the keys.
    /// It holds nothing that opens this keystore. Exporting changes nothing.
    Export(transfer::ExportArgs),
    /// Import a container made by `keystate export`, all or nothing.
    ///
    /// Every group becomes a new group (never merged into an existing one); keys whose tag
    /// or key material is already here are skipped. The report lists groups created, keys
    /// imported and keys skipped with the reason.
    Import(transfer::ImportArgs),
    /// List the audit trail (who changed what, when), or verify it with --verify.
    ///
    /// Every change appends an entry sealed with the HMK and chained to the one
    /// before by SHA-256, in the same transaction as the change itself.
    Audit(admin::AuditArgs),
    /// Replace the HMK (which seals every row) with a new pass phrase or random key.
    ///
    /// Every row is sealed again in one transaction; afterwards only the new HMK
    /// opens the keystore. Other processes holding it open fail until reopened.
    RotateHmk(admin::RotateArgs),
    /// Replace the KPK (which wraps key material) with a new pass phrase or random key.
    ///
    /// Every key is wrapped again in one transaction; old data still decrypts.
    RotateKpk(admin::RotateArgs),
    /// Show the rules: allowed state transitions and the operations each state allows.
    Policy,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Derive the HMK (which encrypts the keystore) from a pass phrase instead of a
    /// random key file; from KEYSTATE_HMK_PASSPHRASE, a prompt or a stdin line.
    #[arg(long)]
    pub hmk_passphrase: bool,
    /// Derive the KPK (which encrypts key material) from a pass phrase instead of a
    /// random key file; from KEYSTATE_KPK_PASSPHRASE, a prompt or a stdin line.
    #[arg(long)]
    pub kpk_passphrase: bool,
    /// A label naming the HMK (random if not given).
    #[arg(long, value_name = "ID")]
    pub hmk_id: Option<OsString>,
    /// A label naming the KPK (random if not given).
    #[arg(long, value_name = "ID")]
    pub kpk_id: Option<OsString>,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a key group.
    Create {
        /// The group's name, unique in the keystore.
        name: OsString,
        /// The cipher of all the group's keys: AES_256_GCM (default), AES_128_GCM or CHACHA20_POLY1305 (fixed for good).
        #[arg(long, default_value = "AES_256_GCM")]
        cipher: OsString,
        /// Free text.
        #[arg(long, short, default_value = "")]
        description: OsString,
    },
    /// List the key groups.
    List,
    /// Show one key group.
    Show {
        /// The group's name.
        name: OsString,
    },
    /// Rename a group and/or change its description.
    #[command(group = clap::ArgGroup::new("change").required(true).multiple(true))]
    Modify {
        /// The group's current name.
        name: OsString,
        /// The new name.
        #[arg(long = "name", value_name = "NEW", group = "change")]
        new_name: Option<OsString>,
        /// The new description.
        #[arg(long, short, group = "change")]
        description: Option<OsString>,
    },
    /// Delete an empty key group.
    Delete {
        /// The group's name.
        name: OsString,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key record in a group, prelive (the default) or active.
    ///
    /// Creating an active key bumps the group's active key to inactive.
    Create {
        /// The group to create it in.
        group: OsString,
        /// The key's name, unique in its group.
        name: OsString,
        /// The initial state: prelive or active.
        #[arg(long, default_value = "prelive")]
        state: OsString,
        /// Derive the key from a pass phrase (KEYSTATE_PASSPHRASE, a prompt or a stdin
        /// line), so that the pass phrase and the key's tag can recover it after deletion.
        #[arg(long)]
        passphrase: bool,
        /// Free text.
        #[arg(long, short, default_value = "")]
        description: OsString,
    },
    /// List key records, sorted by group and name.
    List {
        /// Only the keys of this group.
        #[arg(long, short)]
        group: Option<OsString>,
        /// Only the keys in this state.
        #[arg(long, short)]
        state: Option<OsString>,
    },
    /// Show one key record, by group and name or by tag.
    Show {
        /// The key's group.
        #[arg(required_unless_present = "tag")]
        group: Option<OsString>,
        /// The key's name.
        #[arg(required_unless_present = "tag")]
        name: Option<OsString>,
        /// The key's tag (32 hex digits), instead of group and name.
        #[arg(long, conflicts_with_all = ["group", "name"])]
        tag: Option<OsString>,
    },
    /// Move a key to an adjacent state:
    /// prelive -> active <-> inactive <-> deprecated <-> terminated.
    ///
    /// Activating a key bumps the group's active key to inactive.
    SetState {
        /// The key's group.
        group: OsString,
        /// The key's name.
        name: OsString,
        /// prelive, active, inactive, deprecated or terminated.
        state: OsString,
    },
    /// Rename a key and/or change its description.
    #[command(group = clap::ArgGroup::new("change").required(true).multiple(true))]
    Modify {
        /// The key's group.
        group: OsString,
        /// The key's current name.
        name: OsString,
        /// The new name.
        #[arg(long = "name", value_name = "NEW", group = "change")]
        new_name: Option<OsString>,
        /// The new description.
        #[arg(long, short, group = "change")]
        description: Option<OsString>,
    },
    /// Delete a prelive or terminated key record (deprecated -> terminated first).
    ///
    /// A deleted key cannot be recovered unless it was made from a pass phrase.
    Delete {
        /// The key's group.
        group: OsString,
        /// The key's name.
        name: OsString,
    },
    /// Re-create a deleted pass phrase key from its tag and pass phrase
    /// (KEYSTATE_PASSPHRASE, a prompt or a stdin line).
    Recover {
        /// The group to put it in (it must have the key's cipher).
        group: OsString,
        /// The name to give it.
        name: OsString,
        /// The tag of the deleted key (32 hex digits).
        #[arg(long)]
        tag: OsString,
        /// The state to recover it in.
        #[arg(long, default_value = "inactive")]
        state: OsString,
    },
}

#[derive(Debug, Args)]
pub struct EncryptArgs {
    /// The group whose active key encrypts.
    #[arg(long, short)]
    pub group: OsString,
    #[command(flatten)]
    pub io: DataArgs,
}

#[derive(Debug, Args)]
pub struct DecryptArgs {
    #[command(flatten)]
    pub io: DataArgs,
}

#[derive(Debug, Args)]
pub struct DataArgs {
    /// Associated data bound to the ciphertext (its bytes); decrypt needs the same.
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub aad: OsString,
    /// Read this file instead of stdin ("-": stdin).
    #[arg(long, short, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Write this file instead of stdout ("-": stdout); it appears only on success.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

fn after_help() -> String {
    format!("{PASSPHRASE_HELP}\n\n{}", exit::ExitCode::help_table())
}

impl Cli {
    /// Parse argv; usage errors (exit 2) and --help/--version end the process here.
    pub fn parse_args() -> Cli {
        let cli = Cli::parse();
        if cli.keystore.is_none() && !matches!(cli.command, Command::Policy) {
            Cli::command()
                .error(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    "no keystore given: use --keystore PATH or set KEYSTATE_KEYSTORE",
                )
                .exit();
        }
        cli
    }

    /// Should a failure also be printed as JSON on stdout? Not when stdout carries data.
    pub fn json_errors(&self) -> bool {
        let data_on_stdout = match &self.command {
            Command::Encrypt(EncryptArgs { io, .. }) | Command::Decrypt(DecryptArgs { io }) => {
                io.ends().stdout_is_data()
            }
            _ => false,
        };
        self.json && !data_on_stdout
    }
}

impl DataArgs {
    fn ends(&self) -> Ends<'_> {
        Ends::new(self.input.as_deref(), self.output.as_deref())
    }
}

/// Run one command: the steps are "policy needs nothing", "init creates",
/// else open the keystore (asking for pass phrases only if needed) and act.
pub fn run(cli: Cli) -> Result<()> {
    let out = Output::new(cli.json);
    let Some(path) = cli.keystore else {
        return policy(out); // parse_args let only `policy` through without a keystore
    };
    let sources = Sources { stdin_is_data: stdin_is_data(&cli.command) };
    match cli.command {
        Command::Policy => policy(out),
        Command::Init(args) => init(&path, args, cli.actor.as_ref(), sources, out),
        command => {
            let actor = utf8_opt(&cli.actor, "actor")?;
            let ks = sources.open(&path, actor)?;
            execute(&ks, command, sources, out)
        }
    }
}

pub use output::error as report;

fn stdin_is_data(command: &Command) -> bool {
    match command {
        Command::Encrypt(EncryptArgs { io, .. }) | Command::Decrypt(DecryptArgs { io }) => io.ends().stdin_is_data(),
        _ => false,
    }
}

/// One command on an open keystore.
fn execute(ks: &Keystore, command: Command, sources: Sources, out: Output) -> Result<()> {
    match command {
        Command::Group(group) => execute_group(ks, group, out),
        Command::Key(key) => execute_key(ks, key, sources, out),
        Command::Encrypt(args) => {
            let group = utf8(&args.group, "group name")?;
            let aad = bytes(&args.io.aad)?;
            let ends = args.io.ends();
            let moved =
                ends.run(Box::new(|input, output, progress| ks.encrypt_stream(group, input, output, aad, progress)))?;
            data_done(out, &ends, "encrypted", moved)
        }
        Command::Decrypt(args) => {
            let aad = bytes(&args.io.aad)?;
            let ends = args.io.ends();
            let moved =
                ends.run(Box::new(|input, output, progress| ks.decrypt_stream(input, output, aad, progress)))?;
            data_done(out, &ends, "decrypted", moved)
        }
        Command::Quiesce => {
            ks.quiesce()?;
            out.done("keystore quiesced: read-only until `keystate unquiesce`", json!({ "quiesced": true }))
        }
        Command::Unquiesce => {
            ks.unquiesce()?;
            out.done("keystore unquiesced: writable again", json!({ "quiesced": false }))
        }
        Command::Stats => out.stats(&ks.stats()?, &ks.faults()?),
        Command::Export(args) => transfer::export(ks, args, sources, out),
        Command::Import(args) => transfer::import(ks, args, sources, out),
        Command::Audit(args) => admin::audit(ks, args, out),
        Command::RotateHmk(args) => admin::rotate(ks, true, args, sources, out),
        Command::RotateKpk(args) => admin::rotate(ks, false, args, sources, out),
        Command::Init(_) | Command::Policy => unreachable!("handled before the keystore is opened"),
    }
}

fn execute_group(ks: &Keystore, command: GroupCommand, out: Output) -> Result<()> {
    match command {
        GroupCommand::Create { name, cipher, description } => {
            let cipher: Cipher = utf8(&cipher, "cipher")?.parse()?;
            out.group(&ks.create_group(utf8(&name, "group name")?, cipher, utf8(&description, "description")?)?)
        }
        GroupCommand::List => out.groups(&ks.groups()?),
        GroupCommand::Show { name } => out.group(&ks.group(utf8(&name, "group name")?)?),
        GroupCommand::Modify { name, new_name, description } => {
            let new_name = utf8_opt(&new_name, "new group name")?;
            let description = utf8_opt(&description, "description")?;
            out.group(&ks.modify_group(utf8(&name, "group name")?, new_name, description)?)
        }
        GroupCommand::Delete { name } => {
            let name = utf8(&name, "group name")?;
            ks.delete_group(name)?;
            out.done(&format!("deleted group {name:?}"), json!({ "group": name, "deleted": true }))
        }
    }
}

fn execute_key(ks: &Keystore, command: KeyCommand, sources: Sources, out: Output) -> Result<()> {
    match command {
        KeyCommand::Create { group, name, state, passphrase, description } => {
            let (group, name) = (utf8(&group, "group name")?, utf8(&name, "key name")?);
            let state = parse_state(&state)?;
            let description = utf8(&description, "description")?;
            let bumped = active_key(ks, group, state);
            let passphrase = passphrase.then(|| sources.get(secrets::KEY, Fresh::New)).transpose()?;
            let key = ks.create_key(group, name, state, passphrase.as_deref().map(String::as_str), description)?;
            out.key(&key)?;
            note_bump(out, group, bumped, &key.name)?;
            match key.recoverable {
                true => out.note("keep this tag with the pass phrase: `keystate key recover` needs both"),
                false => Ok(()),
            }
        }
        KeyCommand::List { group, state } => {
            let group = utf8_opt(&group, "group name")?;
            let state = state.as_ref().map(parse_state).transpose()?;
            out.keys(&ks.keys(group, state)?)
        }
        KeyCommand::Show { group, name, tag } => match (tag, group, name) {
            (Some(tag), _, _) => out.key(&ks.key_by_tag(utf8(&tag, "tag")?)?),
            (None, Some(group), Some(name)) => out.key(&ks.key(utf8(&group, "group name")?, utf8(&name, "key name")?)?),
            _ => unreachable!("clap requires group and name without --tag"),
        },
        KeyCommand::SetState { group, name, state } => {
            let (group, name) = (utf8(&group, "group name")?, utf8(&name, "key name")?);
            let state = parse_state(&state)?;
            let before = ks.key(group, name)?.state;
            let bumped = active_key(ks, group, state);
            let key = ks.set_state(group, name, state)?;
            if out.is_json() {
                return out.key(&key);
            }
            out.note(&format!("key {name:?} in group {group:?}: {before} -> {}", key.state))?;
            note_bump(out, group, bumped, name)
        }
        KeyCommand::Modify { group, name, new_name, description } => {
            let new_name = utf8_opt(&new_name, "new key name")?;
            let description = utf8_opt(&description, "description")?;
            out.key(&ks.modify_key(utf8(&group, "group name")?, utf8(&name, "key name")?, new_name, description)?)
        }
        KeyCommand::Delete { group, name } => {
            let (group, name) = (utf8(&group, "group name")?, utf8(&name, "key name")?);
            ks.delete_key(group, name)?;
            out.done(
                &format!("deleted key {name:?} from group {group:?}"),
                json!({ "group": group, "key": name, "deleted": true }),
            )
        }
        KeyCommand::Recover { group, name, tag, state } => {
            let (group, name) = (utf8(&group, "group name")?, utf8(&name, "key name")?);
            let (tag, state) = (utf8(&tag, "tag")?, parse_state(&state)?);
            let bumped = active_key(ks, group, state);
            let passphrase = sources.get(secrets::KEY, Fresh::Existing)?;
            let key = ks.recover_key(group, name, tag, &passphrase, state)?;
            out.key(&key)?;
            note_bump(out, group, bumped, &key.name)
        }
    }
}

/// `keystate init`: create the keystore, then say where its keys are.
fn init(path: &Path, args: InitArgs, actor: Option<&OsString>, sources: Sources, out: Output) -> Result<()> {
    let hmk = new_keystore_secret(args.hmk_passphrase, secrets::HMK, "--hmk-passphrase", sources)?;
    let kpk = new_keystore_secret(args.kpk_passphrase, secrets::KPK, "--kpk-passphrase", sources)?;
    let options = CreateOptions {
        hmk_passphrase: hmk.as_deref().map(String::as_str),
        kpk_passphrase: kpk.as_deref().map(String::as_str),
        hmk_id: utf8_opt(&args.hmk_id, "HMK ID")?,
        kpk_id: utf8_opt(&args.kpk_id, "KPK ID")?,
        actor: actor.map(|a| utf8(a, "actor")).transpose()?,
        ..Default::default()
    };
    let stats = Keystore::create_with(path, options)?.stats()?;
    let info = keystate::inspect(path)?;
    let (hmk_file, kpk_file) = (info.hmk.key_file, info.kpk.key_file);
    let describe = |file: &Option<PathBuf>, var: &str| match file {
        Some(file) => format!("random key in {}", file.display()),
        None => format!("from a pass phrase (give it again in {var} or at the prompt)"),
    };
    let mut human = format!(
        "created keystore {}\nHMK {}: {}\nKPK {}: {}",
        info.path,
        stats.hmk_id,
        describe(&hmk_file, secrets::HMK.var),
        stats.kpk_id,
        describe(&kpk_file, secrets::KPK.var),
    );
    if hmk_file.is_some() || kpk_file.is_some() {
        human.push_str(
            "\nwarning: back up the key files separately from the keystore: \
             whoever holds both holds every key, and without them no key can be used",
        );
    }
    let file_json = |file: &Option<PathBuf>| file.as_ref().map(|f| f.display().to_string());
    out.done(
        &human,
        json!({
            "keystore": info.path,
            "hmk_id": stats.hmk_id,
            "kpk_id": stats.kpk_id,
            "hmk_file": file_json(&hmk_file),
            "kpk_file": file_json(&kpk_file),
        }),
    )
}

/// The pass phrase of a new keystore's HMK or KPK, if its flag asks for one.
fn new_keystore_secret(
    wanted: bool,
    need: secrets::Need,
    flag: &str,
    sources: Sources,
) -> Result<Option<secrets::Passphrase>> {
    if !wanted {
        if secrets::is_set(need) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "{} is set but {flag} was not given: add {flag} to use it, or unset it for a random key file",
                    need.var
                ),
            ));
        }
        return Ok(None);
    }
    sources.get(need, Fresh::New).map(Some)
}

/// `keystate policy`: learned from the library, not restated here.
fn policy(out: Output) -> Result<()> {
    let mut policy = Policy { transitions: Vec::new(), operations: Vec::new() };
    for from in KeyState::ALL {
        let mut to = Vec::new();
        for state in KeyState::ALL {
            if can_transition(from, state)? {
                to.push(state);
            }
        }
        policy.transitions.push((from, to));
        policy.operations.push((from, allowed_operations(from)?));
    }
    out.policy(&policy)
}

fn data_done(out: Output, ends: &Ends, verb: &str, moved: Moved) -> Result<()> {
    match ends.output {
        Some(path) => out.done(
            &format!("{verb}: read {} bytes, wrote {} bytes to {}", moved.read, moved.written, path.display()),
            json!({ "output": path.display().to_string(), "bytes_read": moved.read, "bytes_written": moved.written }),
        ),
        _ => Ok(()), // stdout carries the data: nothing else goes there
    }
}

/// The name of the group's active key, if `state` would bump it.
fn active_key(ks: &Keystore, group: &str, state: KeyState) -> Option<String> {
    match state {
        KeyState::Active => ks.group(group).ok().and_then(|g| g.active_key),
        _ => None,
    }
}

fn note_bump(out: Output, group: &str, bumped: Option<String>, activated: &str) -> Result<()> {
    match bumped {
        Some(old) if old != activated => {
            out.note(&format!("key {old:?} in group {group:?}: active -> inactive (one active key per group)"))
        }
        _ => Ok(()),
    }
}

fn parse_state(state: &OsString) -> Result<KeyState> {
    utf8(state, "key state")?.parse()
}

/// A command-line value that must be UTF-8 (names, states, tags, IDs).
fn utf8<'a>(value: &'a OsString, what: &str) -> Result<&'a str> {
    value.to_str().ok_or_else(|| {
        Error::new(ErrorKind::InvalidArgument, format!("the {what} {value:?} is not valid UTF-8: use UTF-8 text"))
    })
}

fn utf8_opt<'a>(value: &'a Option<OsString>, what: &str) -> Result<Option<&'a str>> {
    value.as_ref().map(|v| utf8(v, what)).transpose()
}

/// Associated data: the argument's bytes as given.
fn bytes(value: &OsString) -> Result<&[u8]> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(value.as_bytes())
    }
    #[cfg(not(unix))]
    {
        utf8(value, "associated data").map(str::as_bytes)
    }
}
