//! Several mutations persisted as one: a provisioning script that creates a
//! thousand keys pays for one durable commit, not a thousand, and a failure
//! anywhere leaves the keystore as it was.

use zeroize::Zeroizing;

use super::Keystore;
use crate::error::Result;
use crate::sandbox::{Guest, wit};
use crate::types::{Cipher, GroupInfo, KeyInfo, KeyState};

/// The mutations of one [`Keystore::batch`]. Each takes effect at once for
/// the ones after it (a key can be created in a group made earlier in the
/// batch) and is persisted with all the others, or not at all.
pub struct Batch<'a> {
    guest: &'a mut Guest,
    changes: wit::ChangeSet,
}

/// One mutation as data: for a host that records a batch and hands it over
/// whole (`Keystore::apply`), as the Python and Node packages do.
pub enum Mutation {
    CreateGroup {
        name: String,
        cipher: Cipher,
        description: String,
    },
    CreateKey {
        group: String,
        name: String,
        state: KeyState,
        passphrase: Option<Zeroizing<String>>,
        description: String,
    },
    SetState {
        group: String,
        name: String,
        state: KeyState,
    },
    DeleteKey {
        group: String,
        name: String,
    },
}

/// What one mutation of [`Keystore::apply`] made or moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    Group(GroupInfo),
    Key(KeyInfo),
    Deleted,
}

impl Batch<'_> {
    /// One mutation given as data.
    pub fn apply(&mut self, mutation: &Mutation) -> Result<Applied> {
        Ok(match mutation {
            Mutation::CreateGroup { name, cipher, description } => {
                Applied::Group(self.create_group(name, *cipher, description)?)
            }
            Mutation::CreateKey { group, name, state, passphrase, description } => Applied::Key(self.create_key(
                group,
                name,
                *state,
                passphrase.as_ref().map(|p| p.as_str()),
                description,
            )?),
            Mutation::SetState { group, name, state } => Applied::Key(self.set_state(group, name, *state)?),
            Mutation::DeleteKey { group, name } => {
                self.delete_key(group, name)?;
                Applied::Deleted
            }
        })
    }

    fn add<T>(&mut self, (value, changes): (T, wit::ChangeSet)) -> T {
        // Rows are written in order, so a row changed twice passes through
        // each version, and the version checks hold step by step.
        self.changes.upserts.extend(changes.upserts);
        self.changes.deletes.extend(changes.deletes);
        value
    }

    pub fn create_group(&mut self, name: &str, cipher: Cipher, description: &str) -> Result<GroupInfo> {
        let done = self.guest.create_group(name, cipher, description)?;
        Ok(self.add(done))
    }

    pub fn create_key(
        &mut self,
        group: &str,
        name: &str,
        state: KeyState,
        passphrase: Option<&str>,
        description: &str,
    ) -> Result<KeyInfo> {
        let done = self.guest.create_key(group, name, state, passphrase, description)?;
        Ok(self.add(done))
    }

    pub fn set_state(&mut self, group: &str, name: &str, state: KeyState) -> Result<KeyInfo> {
        let done = self.guest.set_state(group, name, state)?;
        Ok(self.add(done))
    }

    pub fn delete_key(&mut self, group: &str, name: &str) -> Result<()> {
        let done = self.guest.delete_key(group, name)?;
        self.add(done);
        Ok(())
    }
}

impl Keystore {
    /// [`Keystore::batch`] for mutations given as data: all of them in one
    /// commit, or none. One result per mutation, in order.
    pub fn apply(&self, mutations: &[Mutation]) -> Result<Vec<Applied>> {
        self.batch(|b| mutations.iter().map(|m| b.apply(m)).collect())
    }

    /// Run `build`'s mutations as one: persisted in a single transaction
    /// before this returns, or, if any of them is refused or storage fails,
    /// none of them. `build` may run again after a conflict with another
    /// writer, on the then-current keystore, so it should only call `Batch`.
    ///
    /// ```no_run
    /// # use keystate::{Keystore, KeyState, Cipher};
    /// # let ks = Keystore::open("backup.keystore", None, None)?;
    /// ks.batch(|b| {
    ///     b.create_group("tapes", Cipher::Aes256Gcm, "")?;
    ///     for i in 0..100 {
    ///         b.create_key("tapes", &format!("tape-{i}"), KeyState::Prelive, None, "")?;
    ///     }
    ///     Ok(())
    /// })?;
    /// # Ok::<(), keystate::Error>(())
    /// ```
    pub fn batch<T>(&self, build: impl Fn(&mut Batch<'_>) -> Result<T>) -> Result<T> {
        self.mutate(|guest| {
            let mut batch = Batch { guest, changes: wit::ChangeSet { upserts: Vec::new(), deletes: Vec::new() } };
            match build(&mut batch) {
                Ok(value) => Ok((value, batch.changes)),
                Err(e) => {
                    // The model already holds the earlier mutations: rebuild it from storage.
                    if !(batch.changes.upserts.is_empty() && batch.changes.deletes.is_empty()) {
                        batch.guest.broken = true;
                    }
                    Err(e)
                }
            }
        })
    }
}
