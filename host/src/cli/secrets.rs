//! Where pass phrases come from. Never argv: an environment variable if it
//! is set, else a prompt on the terminal, else one line of standard input
//! (unless standard input carries the data to encrypt or decrypt).
//! Pass phrases live in zeroized strings and are never printed.

use std::io::{BufRead, IsTerminal};
use std::path::Path;

use keystate::{Error, ErrorKind, Keystore, OpenOptions, Result};
use zeroize::Zeroizing;

/// A pass phrase, wiped from memory when dropped.
pub type Passphrase = Zeroizing<String>;

/// One pass phrase the CLI may need.
#[derive(Clone, Copy, Debug)]
pub struct Need {
    /// The environment variable that supplies it.
    pub var: &'static str,
    /// How to call it in prompts and errors.
    pub label: &'static str,
}

pub const HMK: Need = Need { var: "KEYSTATE_HMK_PASSPHRASE", label: "HMK pass phrase" };
pub const KPK: Need = Need { var: "KEYSTATE_KPK_PASSPHRASE", label: "KPK pass phrase" };
pub const KEY: Need = Need { var: "KEYSTATE_PASSPHRASE", label: "key pass phrase" };

/// Is the pass phrase new (asked twice on a terminal) or one to check?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fresh {
    New,
    Existing,
}

/// The pass phrase sources of one run.
#[derive(Clone, Copy, Debug)]
pub struct Sources {
    /// Standard input carries data (encrypt/decrypt): no pass phrase line on it.
    pub stdin_is_data: bool,
}

impl Sources {
    /// The pass phrase from its variable, the terminal or a line of stdin.
    pub fn get(self, need: Need, fresh: Fresh) -> Result<Passphrase> {
        if let Some(value) = from_env(need)? {
            return Ok(value);
        }
        if std::io::stdin().is_terminal() {
            return prompt(need, fresh);
        }
        if self.stdin_is_data {
            return Err(invalid(format!(
                "the {} is needed: set {} (standard input carries the data)",
                need.label, need.var
            )));
        }
        read_line(need)
    }

    /// Open a keystore, asking for the HMK/KPK pass phrase only when its
    /// header says the key comes from one (else the key file is used). A
    /// variable set for a key that has a key file is refused by the library.
    pub fn open(self, path: &Path, actor: Option<&str>) -> Result<Keystore> {
        let info = keystate::inspect(path)?;
        let secret = |needed: bool, need: Need| -> Result<Option<Passphrase>> {
            match (needed, from_env(need)?) {
                (_, Some(p)) => Ok(Some(p)),
                (false, None) => Ok(None),
                (true, None) => self.get(need, Fresh::Existing).map(Some),
            }
        };
        let hmk = secret(info.hmk.needs_passphrase(), HMK)?;
        let kpk = secret(info.kpk.needs_passphrase(), KPK)?;
        let options = OpenOptions {
            hmk_passphrase: hmk.as_deref().map(String::as_str),
            kpk_passphrase: kpk.as_deref().map(String::as_str),
            actor,
            ..Default::default()
        };
        Keystore::open_with(path, options)
    }
}

/// Is a variable set for this pass phrase? Then its value, which must be UTF-8.
pub fn from_env(need: Need) -> Result<Option<Passphrase>> {
    match std::env::var_os(need.var) {
        None => Ok(None),
        Some(value) => match value.into_string() {
            Ok(text) => Ok(Some(Zeroizing::new(text))),
            Err(_) => Err(invalid(format!("{} is not valid UTF-8", need.var))),
        },
    }
}

/// Is set (possibly to an empty string)?
pub fn is_set(need: Need) -> bool {
    std::env::var_os(need.var).is_some()
}

fn prompt(need: Need, fresh: Fresh) -> Result<Passphrase> {
    let ask = |prompt: String| {
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .map_err(|e| Error::new(ErrorKind::Storage, format!("reading the {} from the terminal: {e}", need.label)))
    };
    let first = ask(format!("{}: ", capitalized(need.label)))?;
    if fresh == Fresh::New {
        let again = ask(format!("{} (again): ", capitalized(need.label)))?;
        if *first != *again {
            return Err(invalid(format!("the two {}s differ: nothing was changed", need.label)));
        }
    }
    Ok(first)
}

/// One line of standard input, without its line ending.
fn read_line(need: Need) -> Result<Passphrase> {
    // Room up front: growing the string would free unwiped partial copies.
    let mut line = Zeroizing::new(String::with_capacity(4096));
    let n = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::new(ErrorKind::Storage, format!("reading the {} from standard input: {e}", need.label)))?;
    if n == 0 {
        return Err(invalid(format!(
            "the {} is needed: set {}, run on a terminal to be prompted, or give it as a line on standard input",
            need.label, need.var
        )));
    }
    let trimmed = line.trim_end_matches(['\n', '\r']).len();
    line.truncate(trimmed);
    Ok(line)
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidArgument, message)
}
