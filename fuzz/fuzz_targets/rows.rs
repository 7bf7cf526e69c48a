//! Opening a keystore on arbitrary rows: genuine, tampered, replayed and invented.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keystate_guest::fuzzing::rows(data));
