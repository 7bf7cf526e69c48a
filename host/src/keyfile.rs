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

/// `<keystore>.<ext>.new`: a rotation's new key, written before the keystore
/// commits and renamed over `<keystore>.<ext>` after.
pub fn staged_path_for(keystore: &Path, ext: &str) -> PathBuf {
    path_for(keystore, &format!("{ext}.new"))
}

/// Write the staged key file of a rotation, replacing a stale one (left by a
/// rotation that died before its commit: the caller holds the write lock and
/// its keys match the keystore, so no rotation is in flight).
pub fn stage(keystore: &Path, ext: &str, key: &[u8; 32]) -> Result<PathBuf> {
    let staged = staged_path_for(keystore, ext);
    match std::fs::remove_file(&staged) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::storage(&format!("removing stale key file {}", staged.display()), e)),
    }
    write(&staged, key)?;
    Ok(staged)
}

/// Make the staged key file the key file (an atomic rename, then the
/// directory synced so the rename survives a power cut).
pub fn install(keystore: &Path, ext: &str) -> Result<()> {
    let (staged, file) = (staged_path_for(keystore, ext), path_for(keystore, ext));
    match std::fs::rename(&staged, &file) {
        Ok(()) => {}
        // Another process finishing the same rotation got there first.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && file.exists() => return Ok(()),
        Err(e) => {
            return Err(Error::storage(
                &format!("renaming {} to {} (the keystore already uses the new key)", staged.display(), file.display()),
                e,
            ));
        }
    }
    sync_parent(&file);
    Ok(())
}

/// Remove a key file that no longer opens anything (after a rotation to a pass phrase).
pub fn remove(path: &Path) {
    if std::fs::remove_file(path).is_ok() {
        sync_parent(path);
    }
}

fn sync_parent(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}
