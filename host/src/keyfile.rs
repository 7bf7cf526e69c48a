//! Key files: a random HMK or KPK kept beside the keystore (`<keystore>.hmk`,
//! `<keystore>.kpk`), 64 hex digits and a newline, mode 0600. Whoever holds
//! the keystore and its key files holds the keys: store them apart for backups.

use std::io::Write;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Result};
use crate::storage::sqlite::create_private_file;

/// `<keystore>.<ext>`, e.g. `keys.db.hmk`.
pub fn path_for(keystore: &Path, ext: &str) -> PathBuf {
    let mut name = keystore.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

/// Write a new key file; fails if one exists.
pub fn write(path: &Path, key: &[u8; 32]) -> Result<()> {
    let mut file = create_private_file(path)?;
    // Encoded in place: `hex::encode` would leave a copy in freed memory.
    let mut text = Zeroizing::new([b'\n'; 65]);
    hex::encode_to_slice(key, &mut text[..64]).expect("64 hex digits for 32 bytes");
    file.write_all(text.as_slice())
        .and_then(|_| file.sync_all())
        .map_err(|e| Error::storage(&format!("writing key file {}", path.display()), e))
}

pub fn read(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::new(
            ErrorKind::NotFound,
            format!("key file {} is missing: give the pass phrase, or put the key file back", path.display()),
        ),
        _ => Error::storage(&format!("reading key file {}", path.display()), e),
    })?);
    let key = Zeroizing::new(hex::decode(text.trim()).unwrap_or_default());
    if key.len() != 32 {
        return Err(Error::new(ErrorKind::Integrity, format!("key file {} is corrupt", path.display())));
    }
    Ok(key)
}
