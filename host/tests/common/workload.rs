//! A random stream of mutations over groups and keys, and a plain model of
//! what each acknowledged one leaves in the keystore: the crash harness replays
//! a killed writer's acknowledgements on the model and compares with what a
//! fresh handle reads back.

use std::collections::BTreeMap;

use keystate::{Cipher, KeyState, Keystore};
use serde::{Deserialize, Serialize};

/// One mutation, as the writer announces it on its stdout.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    CreateGroup { name: String, aes128: bool, description: String },
    ModifyGroup { name: String, new_name: Option<String>, description: Option<String> },
    DeleteGroup { name: String },
    CreateKey { group: String, name: String, active: bool, passphrase: Option<String>, description: String },
    SetState { group: String, name: String, state: String },
    ModifyKey { group: String, name: String, new_name: Option<String>, description: Option<String> },
    DeleteKey { group: String, name: String },
    RecoverKey { group: String, name: String, tag: String, passphrase: String, active: bool },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyModel {
    /// `None` until the writer acknowledged the creation (and so told the tag).
    pub tag: Option<String>,
    pub state: KeyState,
    pub description: String,
    pub recoverable: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupModel {
    pub cipher: Cipher,
    pub description: String,
    pub keys: BTreeMap<String, KeyModel>,
}

/// What the keystore holds, by group and key name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    pub groups: BTreeMap<String, GroupModel>,
}

/// A deleted pass phrase key the writer may recover later.
#[derive(Clone, Debug)]
pub struct Deleted {
    pub group: String,
    pub name: String,
    pub tag: String,
    pub passphrase: String,
}

impl Model {
    /// Everything a handle reads back, checking on the way that each group's
    /// `active_key` names its one active key.
    pub fn read(ks: &Keystore) -> Model {
        let mut model = Model::default();
        for g in ks.groups().unwrap() {
            let keys: BTreeMap<String, KeyModel> = ks
                .keys(Some(&g.name), None)
                .unwrap()
                .into_iter()
                .map(|k| {
                    let key = KeyModel {
                        tag: Some(k.tag),
                        state: k.state,
                        description: k.description,
                        recoverable: k.recoverable,
                    };
                    (k.name, key)
                })
                .collect();
            let active: Vec<&String> =
                keys.iter().filter(|(_, k)| k.state == KeyState::Active).map(|(n, _)| n).collect();
            assert!(active.len() <= 1, "group {} has {} active keys: {active:?}", g.name, active.len());
            assert_eq!(
                g.active_key.as_ref(),
                active.first().copied(),
                "group {}: active_key disagrees with the keys",
                g.name
            );
            model.groups.insert(g.name, GroupModel { cipher: g.cipher, description: g.description, keys });
        }
        model
    }

    /// Apply an acknowledged (or possibly landed) mutation; `tag` is the tag
    /// the API returned for a created key, if known.
    pub fn apply(&mut self, op: &Op, tag: Option<String>) {
        match op {
            Op::CreateGroup { name, aes128, description } => {
                let cipher = if *aes128 { Cipher::Aes128Gcm } else { Cipher::Aes256Gcm };
                let group = GroupModel { cipher, description: description.clone(), keys: BTreeMap::new() };
                assert!(self.groups.insert(name.clone(), group).is_none());
            }
            Op::ModifyGroup { name, new_name, description } => {
                let mut group = self.groups.remove(name).expect("group");
                if let Some(d) = description {
                    group.description = d.clone();
                }
                self.groups.insert(new_name.clone().unwrap_or_else(|| name.clone()), group);
            }
            Op::DeleteGroup { name } => {
                assert!(self.groups.remove(name).expect("group").keys.is_empty());
            }
            Op::CreateKey { group, name, active, passphrase, description } => {
                let state = if *active { KeyState::Active } else { KeyState::Prelive };
                let key = KeyModel { tag, state, description: description.clone(), recoverable: passphrase.is_some() };
                self.add_key(group, name, key);
            }
            Op::SetState { group, name, state } => {
                let state: KeyState = state.parse().unwrap();
                if state == KeyState::Active {
                    self.bump(group);
                }
                self.key_mut(group, name).state = state;
            }
            Op::ModifyKey { group, name, new_name, description } => {
                let keys = &mut self.groups.get_mut(group).expect("group").keys;
                let mut key = keys.remove(name).expect("key");
                if let Some(d) = description {
                    key.description = d.clone();
                }
                keys.insert(new_name.clone().unwrap_or_else(|| name.clone()), key);
            }
            Op::DeleteKey { group, name } => {
                self.groups.get_mut(group).expect("group").keys.remove(name).expect("key");
            }
            Op::RecoverKey { group, name, tag: recovered, active, .. } => {
                let state = if *active { KeyState::Active } else { KeyState::Inactive };
                let key =
                    KeyModel { tag: Some(recovered.clone()), state, description: String::new(), recoverable: true };
                self.add_key(group, name, key);
            }
        }
    }

    fn add_key(&mut self, group: &str, name: &str, key: KeyModel) {
        if key.state == KeyState::Active {
            self.bump(group);
        }
        let keys = &mut self.groups.get_mut(group).expect("group").keys;
        assert!(keys.insert(name.to_string(), key).is_none());
    }

    fn bump(&mut self, group: &str) {
        for key in self.groups.get_mut(group).expect("group").keys.values_mut() {
            if key.state == KeyState::Active {
                key.state = KeyState::Inactive;
            }
        }
    }

    fn key_mut(&mut self, group: &str, name: &str) -> &mut KeyModel {
        self.groups.get_mut(group).expect("group").keys.get_mut(name).expect("key")
    }

    /// Does `actual` (read back, every tag known) hold exactly what this model
    /// says? Tags the model does not know yet match any tag.
    pub fn matches(&self, actual: &Model) -> bool {
        self.groups.len() == actual.groups.len()
            && self.groups.iter().zip(&actual.groups).all(|((n, g), (an, ag))| {
                n == an
                    && g.cipher == ag.cipher
                    && g.description == ag.description
                    && g.keys.len() == ag.keys.len()
                    && g.keys.iter().zip(&ag.keys).all(|((kn, k), (akn, ak))| {
                        kn == akn
                            && (k.tag.is_none() || k.tag == ak.tag)
                            && k.state == ak.state
                            && k.description == ak.description
                            && k.recoverable == ak.recoverable
                    })
            })
    }

    /// A random mutation that the rules allow in this state (so the writer
    /// expects every one to succeed). `fresh` makes unique names.
    pub fn next_op(&self, rng: &mut fastrand::Rng, fresh: &mut dyn FnMut(&str) -> String, deleted: &[Deleted]) -> Op {
        loop {
            let groups: Vec<&String> = self.groups.keys().collect();
            let keys: Vec<(&String, &String, &KeyModel)> =
                self.groups.iter().flat_map(|(g, gm)| gm.keys.iter().map(move |(k, km)| (g, k, km))).collect();
            let text = |rng: &mut fastrand::Rng| format!("note {}", rng.u32(..));
            match rng.u32(0..100) {
                0..8 if groups.len() < 8 => {
                    return Op::CreateGroup { name: fresh("g"), aes128: rng.bool(), description: text(rng) };
                }
                8..12 if !groups.is_empty() => {
                    let name = groups[rng.usize(..groups.len())].clone();
                    let new_name = rng.bool().then(|| fresh("g"));
                    let description = (new_name.is_none() || rng.bool()).then(|| text(rng));
                    return Op::ModifyGroup { name, new_name, description };
                }
                12..16 => {
                    let empty: Vec<&&String> = groups.iter().filter(|g| self.groups[**g].keys.is_empty()).collect();
                    if let Some(name) = rng.choice(empty) {
                        return Op::DeleteGroup { name: (*name).clone() };
                    }
                }
                16..36 if !groups.is_empty() && keys.len() < 40 => {
                    let group = groups[rng.usize(..groups.len())].clone();
                    // Pass phrase keys cost an Argon2 derivation: a few of them.
                    let passphrase = (rng.u32(0..10) == 0).then(|| format!("pass phrase {}", rng.u64(..)));
                    return Op::CreateKey {
                        group,
                        name: fresh("k"),
                        active: rng.bool(),
                        passphrase,
                        description: text(rng),
                    };
                }
                36..80 if !keys.is_empty() => {
                    let (group, name, key) = keys[rng.usize(..keys.len())];
                    let next = next_states(key.state);
                    let state = next[rng.usize(..next.len())];
                    return Op::SetState { group: group.clone(), name: name.clone(), state: state.as_str().into() };
                }
                80..86 if !keys.is_empty() => {
                    let (group, name, _) = keys[rng.usize(..keys.len())];
                    let new_name = rng.bool().then(|| fresh("k"));
                    let description = (new_name.is_none() || rng.bool()).then(|| text(rng));
                    return Op::ModifyKey { group: group.clone(), name: name.clone(), new_name, description };
                }
                86..96 => {
                    let deletable: Vec<_> = keys
                        .iter()
                        .filter(|(_, _, k)| matches!(k.state, KeyState::Prelive | KeyState::Terminated))
                        .collect();
                    if let Some((group, name, _)) = rng.choice(deletable) {
                        return Op::DeleteKey { group: (*group).clone(), name: (*name).clone() };
                    }
                }
                96..100 => {
                    let recoverable: Vec<&Deleted> = deleted
                        .iter()
                        .filter(|d| {
                            self.groups.contains_key(&d.group)
                                && !self
                                    .groups
                                    .values()
                                    .flat_map(|g| g.keys.values())
                                    .any(|k| k.tag.as_ref() == Some(&d.tag))
                        })
                        .collect();
                    if let Some(d) = rng.choice(recoverable) {
                        return Op::RecoverKey {
                            group: d.group.clone(),
                            name: fresh("k"),
                            tag: d.tag.clone(),
                            passphrase: d.passphrase.clone(),
                            active: rng.bool(),
                        };
                    }
                }
                _ => {}
            }
        }
    }
}

/// The states a key may move to from `state` (the rule book's adjacent steps).
pub fn next_states(state: KeyState) -> Vec<KeyState> {
    KeyState::ALL.into_iter().filter(|&to| to != state && keystate::can_transition(state, to).unwrap()).collect()
}

/// Run `op` on the keystore; the tag of a created or recovered key.
pub fn execute(ks: &Keystore, op: &Op) -> keystate::Result<Option<String>> {
    let state = |active: bool, otherwise| if active { KeyState::Active } else { otherwise };
    Ok(match op {
        Op::CreateGroup { name, aes128, description } => {
            let cipher = if *aes128 { Cipher::Aes128Gcm } else { Cipher::Aes256Gcm };
            ks.create_group(name, cipher, description)?;
            None
        }
        Op::ModifyGroup { name, new_name, description } => {
            ks.modify_group(name, new_name.as_deref(), description.as_deref())?;
            None
        }
        Op::DeleteGroup { name } => {
            ks.delete_group(name)?;
            None
        }
        Op::CreateKey { group, name, active, passphrase, description } => {
            Some(ks.create_key(group, name, state(*active, KeyState::Prelive), passphrase.as_deref(), description)?.tag)
        }
        Op::SetState { group, name, state } => {
            ks.set_state(group, name, state.parse()?)?;
            None
        }
        Op::ModifyKey { group, name, new_name, description } => {
            ks.modify_key(group, name, new_name.as_deref(), description.as_deref())?;
            None
        }
        Op::DeleteKey { group, name } => {
            ks.delete_key(group, name)?;
            None
        }
        Op::RecoverKey { group, name, tag, passphrase, active } => {
            Some(ks.recover_key(group, name, tag, passphrase, state(*active, KeyState::Inactive))?.tag)
        }
    })
}
