//! Output files that appear only when complete: written to a private (0600)
//! temporary file beside the destination, synced, then renamed into place.
//! A failed decryption therefore never leaves plaintext behind.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// Run `write` into a temporary file beside `dst`; rename it to `dst` only if
/// `write` succeeded. Returns what `write` returned.
pub fn write_atomically<T>(dst: &Path, write: impl FnOnce(&mut dyn Write) -> Result<T>) -> Result<T> {
    let dir = dst.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = dst.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // Deleted when dropped, so on every early return below.
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".keystate.tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::storage(&format!("cannot write {}", dst.display()), e))?;
    let mut out = BufWriter::with_capacity(1 << 16, tmp);
    let value = write(&mut out)?;
    let tmp = out.into_inner().map_err(|e| Error::storage(&format!("writing {}", dst.display()), e.error()))?;
    tmp.as_file().sync_all().map_err(|e| Error::storage(&format!("syncing {}", dst.display()), e))?;
    tmp.persist(dst).map_err(|e| Error::storage(&format!("renaming into {}", dst.display()), e.error))?;
    // Make the rename itself durable; a directory that cannot be synced is no error.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(value)
}
