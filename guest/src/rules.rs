//! The rule book's lifecycle table: which moves and which uses each state allows.
//! Every other module asks here; no rule is written twice.

use crate::types::{KeyState, Operation};
use KeyState::*;

/// May a key move from `from` to `to`? One adjacent step at a time;
/// prelive -> active is one way; staying put is allowed (a no-op).
pub fn can_transition(from: KeyState, to: KeyState) -> bool {
    from == to
        || matches!(
            (from, to),
            (Prelive, Active)
                | (Active, Inactive)
                | (Inactive, Active)
                | (Inactive, Deprecated)
                | (Deprecated, Inactive)
                | (Deprecated, Terminated)
                | (Terminated, Deprecated)
        )
}

/// A key is created in prelive or active, never in another state.
pub fn can_create_in(state: KeyState) -> bool {
    matches!(state, Prelive | Active)
}

/// A deleted pass phrase key comes back in any state but prelive
/// (nothing ever returns to prelive).
pub fn can_recover_in(state: KeyState) -> bool {
    state != Prelive
}

/// Does `state` allow `op`? Encrypt: active only. Decrypt: active or inactive.
/// Delete: prelive or terminated.
pub fn allows(state: KeyState, op: Operation) -> bool {
    match op {
        Operation::Encrypt => state == Active,
        Operation::Decrypt => matches!(state, Active | Inactive),
        Operation::Delete => matches!(state, Prelive | Terminated),
    }
}

pub fn allowed_operations(state: KeyState) -> Vec<Operation> {
    Operation::ALL.into_iter().filter(|&op| allows(state, op)).collect()
}

/// The states a key may be moved to from `from` (excluding itself), for messages.
pub fn next_states(from: KeyState) -> Vec<KeyState> {
    KeyState::ALL.into_iter().filter(|&to| to != from && can_transition(from, to)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule book's table, written out pair by pair.
    const ALLOWED_MOVES: [(KeyState, KeyState); 7] = [
        (Prelive, Active),
        (Active, Inactive),
        (Inactive, Active),
        (Inactive, Deprecated),
        (Deprecated, Inactive),
        (Deprecated, Terminated),
        (Terminated, Deprecated),
    ];

    #[test]
    fn every_pair_of_states() {
        for from in KeyState::ALL {
            for to in KeyState::ALL {
                let expected = from == to || ALLOWED_MOVES.contains(&(from, to));
                assert_eq!(can_transition(from, to), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn every_state_and_operation() {
        let table = [
            (Prelive, [false, false, true]),
            (Active, [true, true, false]),
            (Inactive, [false, true, false]),
            (Deprecated, [false, false, false]),
            (Terminated, [false, false, true]),
        ];
        for (state, row) in table {
            for (op, expected) in Operation::ALL.into_iter().zip(row) {
                assert_eq!(allows(state, op), expected, "{state} {op}");
            }
        }
    }

    #[test]
    fn creation_states() {
        let created: Vec<_> = KeyState::ALL.into_iter().filter(|&s| can_create_in(s)).collect();
        assert_eq!(created, [Prelive, Active]);
    }
}
