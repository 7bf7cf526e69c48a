//! Export and import on an open keystore. The container is built and opened
//! inside the component (docs/format.md, "Export container v1"); this file
//! only moves bytes and decides which storage path each call takes:
//!
//! - an export reads the current state on a reader sandbox and changes nothing;
//! - an import is one mutation: its whole change set is committed in one
//!   storage transaction, so a crash leaves the keystore as it was or with
//!   everything imported;
//! - a preview decides exactly as the import would, on a reader sandbox.

use std::path::Path;

use serde::Serialize;

use crate::atomic_file::write_atomically;
use crate::error::{Error, ErrorKind, Result};
use crate::keystore::Keystore;
use crate::types::{Cipher, KeyState};

/// How to import.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Keep the groups' names; a group whose name exists here is skipped
    /// (never merged). Otherwise each group is named `<name>_<YYYYMMDDTHHMMSSZ>`.
    pub preserve_names: bool,
    /// Decide and report, but change nothing.
    pub preview: bool,
}

/// Why an import leaves a group or key out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    /// A key with the same tag is already in the keystore.
    TagExists,
    /// A key with the same key material is already in the keystore (or earlier in the container).
    MaterialExists,
    /// Names preserved and a group of that name exists: groups are never merged.
    GroupExists,
    /// Every key of the group was skipped, so the group is not created.
    NoNewKeys,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::TagExists => "tag-exists",
            SkipReason::MaterialExists => "material-exists",
            SkipReason::GroupExists => "group-exists",
            SkipReason::NoNewKeys => "no-new-keys",
        }
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A skip, with a sentence naming what is already there (never key material).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skip {
    pub reason: SkipReason,
    pub detail: String,
}

/// What an import does (or, previewed, would do) with one group of the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImportedGroup {
    /// The group's name in the container.
    pub source_name: String,
    /// Its name in this keystore (the source name when skipped).
    pub name: String,
    pub cipher: Cipher,
    pub created: bool,
    pub skipped: Option<Skip>,
}

/// What an import does (or would do) with one key of the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImportedKey {
    /// The key's group as named in the container.
    pub source_group: String,
    /// The key's group in this keystore.
    pub group: String,
    pub name: String,
    /// The key's tag, kept as it is (so data encrypted elsewhere still finds it).
    pub tag: String,
    pub state: KeyState,
    pub recoverable: bool,
    pub imported: bool,
    pub skipped: Option<Skip>,
}

/// Everything an import decided, in container order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// True when nothing was changed (a preview).
    pub preview: bool,
    pub groups: Vec<ImportedGroup>,
    pub keys: Vec<ImportedKey>,
}

impl ImportReport {
    /// The groups created (or that a preview would create).
    pub fn groups_created(&self) -> impl Iterator<Item = &ImportedGroup> {
        self.groups.iter().filter(|g| g.created)
    }

    /// The keys imported (or that a preview would import).
    pub fn keys_imported(&self) -> impl Iterator<Item = &ImportedKey> {
        self.keys.iter().filter(|k| k.imported)
    }

    /// The keys left out, each with its reason.
    pub fn keys_skipped(&self) -> impl Iterator<Item = &ImportedKey> {
        self.keys.iter().filter(|k| !k.imported)
    }
}

impl Keystore {
    /// Seal the named groups (all when `None`) with all their keys into an
    /// export container protected by `passphrase`. Changes nothing; works on a
    /// quiesced keystore. A selected group with a row that cannot be read is
    /// `Integrity` (the export would silently miss a key).
    pub fn export(&self, groups: Option<&[&str]>, passphrase: &str) -> Result<Vec<u8>> {
        let groups: Option<Vec<String>> = groups.map(|g| g.iter().map(|s| s.to_string()).collect());
        self.with_reader(|g| g.export_groups(groups.as_deref(), passphrase))
    }

    /// [`export`](Keystore::export) into a file that appears only when
    /// complete, readable by its owner only (0600). Returns its size.
    pub fn export_to_file(&self, path: impl AsRef<Path>, groups: Option<&[&str]>, passphrase: &str) -> Result<u64> {
        let container = self.export(groups, passphrase)?;
        write_atomically(path.as_ref(), |out| {
            out.write_all(&container)
                .map_err(|e| Error::storage(&format!("writing {}", path.as_ref().display()), e))?;
            Ok(container.len() as u64)
        })
    }

    /// Import an export container in one atomic step (or, with
    /// `options.preview`, only report what would happen). See [`ImportOptions`].
    pub fn import(&self, container: &[u8], passphrase: &str, options: ImportOptions) -> Result<ImportReport> {
        if options.preview {
            return self.preview_import(container, passphrase, options.preserve_names);
        }
        // The one place an import's change set meets storage: one transaction.
        self.mutate(|g| g.import_groups(container, passphrase, options.preserve_names, false))
    }

    /// What [`import`](Keystore::import) would do, changing nothing.
    pub fn preview_import(&self, container: &[u8], passphrase: &str, preserve_names: bool) -> Result<ImportReport> {
        self.with_reader(|g| g.import_groups(container, passphrase, preserve_names, true).map(|(report, _)| report))
    }

    /// [`import`](Keystore::import) from a file.
    pub fn import_file(
        &self,
        path: impl AsRef<Path>,
        passphrase: &str,
        options: ImportOptions,
    ) -> Result<ImportReport> {
        self.import(&read_container(path.as_ref())?, passphrase, options)
    }
}

fn read_container(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::new(ErrorKind::NotFound, format!("no file {}", path.display())),
        _ => Error::storage(&format!("reading {}", path.display()), e),
    })
}
