//! The data format parser and decryption: arbitrary bytes as a ciphertext, and round trips with tampering.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keystate_guest::fuzzing::data_format(data));
