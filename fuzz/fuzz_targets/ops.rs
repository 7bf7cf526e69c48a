//! Arbitrary operation sequences, differential against a plain model of the rule book.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keystate_guest::fuzzing::ops(data));
