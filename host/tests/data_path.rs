//! Large messages spread over several sandboxes: whatever the number of
//! workers and whichever path (in memory, stream) seals or opens them, the
//! bytes follow the one data format and every check still holds.

mod common;

use std::io::Cursor;

use KeyState::*;
use common::{Scratch, key_in, kind};
use keystate::{Cipher, CreateOptions, ErrorKind, KeyState, Keystore, Limits, OpenOptions};

const MIB: usize = 1 << 20;
/// Plaintext per full chunk (the default) and its sealed size.
const CHUNK: usize = 64 * 1024;
const SEALED_CHUNK: usize = CHUNK + 16;

fn limits(workers: usize) -> Limits {
    Limits { workers, ..Limits::default() }
}

fn open(path: &std::path::Path, workers: usize) -> Keystore {
    Keystore::open_with(path, OpenOptions { limits: limits(workers), ..Default::default() }).unwrap()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn encrypt_stream(ks: &Keystore, group: &str, plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let n = ks.encrypt_stream(group, &mut Cursor::new(plaintext), &mut out, b"aad", &mut |_| {}).unwrap();
    assert_eq!(n, plaintext.len() as u64);
    out
}

fn decrypt_stream(ks: &Keystore, ciphertext: &[u8]) -> keystate::Result<Vec<u8>> {
    let mut out = Vec::new();
    let n = ks.decrypt_stream(&mut Cursor::new(ciphertext), &mut out, b"aad", &mut |_| {})?;
    assert_eq!(n, out.len() as u64);
    Ok(out)
}

#[test]
fn every_size_round_trips_across_worker_counts_and_paths() {
    let scratch = Scratch::new();
    let path = scratch.path("keys.db");
    let ks = Keystore::create_with(&path, CreateOptions { limits: limits(1), ..Default::default() }).unwrap();
    key_in(&ks, "g", "k", Active);
    ks.create_group("fast", Cipher::ChaCha20Poly1305, "").unwrap();
    key_in(&ks, "fast", "k", Active);
    let four = open(&path, 4);
    // Around the chunk and run boundaries; streams of several batches (the
    // faster cipher for the largest, to keep the test short).
    let small = [0, 1, CHUNK, MIB, MIB + 1, 2 * MIB, 2 * MIB + CHUNK - 1];
    let large = [4 * MIB, 9 * MIB + 5];
    for (group, sizes) in [("g", &small[..]), ("fast", &small[..]), ("fast", &large[..])] {
        for &len in sizes {
            let pt = pattern(len);
            let expected_len = 60 + len + (len / CHUNK + 1) * 16;
            let sealed = [
                ("1 worker, in memory", ks.encrypt(group, &pt, b"aad").unwrap()),
                ("4 workers, in memory", four.encrypt(group, &pt, b"aad").unwrap()),
                ("1 worker, stream", encrypt_stream(&ks, group, &pt)),
                ("4 workers, stream", encrypt_stream(&four, group, &pt)),
            ];
            for (how, ct) in &sealed {
                assert_eq!(ct.len(), expected_len, "{group} {len} bytes, sealed by {how}");
                for (opener, handle) in [("1 worker", &ks), ("4 workers", &four)] {
                    assert!(handle.decrypt(ct, b"aad").unwrap() == pt, "{group} {len}: {how}, opened by {opener}");
                    assert!(decrypt_stream(handle, ct).unwrap() == pt, "{group} {len}: {how}, streamed by {opener}");
                }
            }
        }
    }
}

#[test]
fn the_earliest_bad_chunk_is_reported_whoever_opens_it() {
    let scratch = Scratch::new();
    let (path, ks) = scratch.keystore();
    key_in(&ks, "g", "k", Active);
    let ct = ks.encrypt("g", &pattern(6 * MIB), b"aad").unwrap();
    let four = open(&path, 4);
    // Chunks 70 (in the second half of the message) and 20 (in the first) tampered.
    let mut bad = ct.clone();
    bad[60 + 70 * SEALED_CHUNK + 5] ^= 1;
    bad[60 + 20 * SEALED_CHUNK + 5] ^= 1;
    for handle in [&ks, &four] {
        for result in [handle.decrypt(&bad, b"aad"), decrypt_stream(handle, &bad)] {
            let e = result.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Integrity);
            assert!(e.message().contains("chunk 20 "), "{e}");
        }
    }
    // Cut after a whole chunk, inside the final chunk, inside the header, or with bytes appended.
    let cuts: [&[u8]; 3] = [&ct[..60 + 50 * SEALED_CHUNK], &ct[..ct.len() - 3], &ct[..59]];
    let mut longer = ct.clone();
    longer.push(0);
    for handle in [&ks, &four] {
        for cut in cuts.iter().copied().chain([&longer[..]]) {
            assert_eq!(kind(handle.decrypt(cut, b"aad")), ErrorKind::Integrity, "{} bytes", cut.len());
            assert_eq!(kind(decrypt_stream(handle, cut)), ErrorKind::Integrity, "{} bytes streamed", cut.len());
        }
        assert_eq!(kind(handle.decrypt(&ct, b"other aad")), ErrorKind::Integrity);
    }
}

#[test]
fn spread_messages_follow_the_key_state() {
    let scratch = Scratch::new();
    let (path, ks) = scratch.keystore();
    key_in(&ks, "g", "k", Active);
    let four = open(&path, 4);
    let pt = pattern(5 * MIB);
    let ct = four.encrypt("g", &pt, b"aad").unwrap();
    // Bumped to inactive by another handle: no more encryption with it, decryption still.
    ks.create_key("g", "k2", Active, None, "").unwrap();
    assert_eq!(hex_tag(&four.encrypt("g", &pt, b"aad").unwrap()), ks.key("g", "k2").unwrap().tag);
    assert!(four.decrypt(&ct, b"aad").unwrap() == pt);
    ks.set_state("g", "k", Deprecated).unwrap();
    assert_eq!(kind(four.decrypt(&ct, b"aad")), ErrorKind::KeyUnusable);
    assert_eq!(kind(decrypt_stream(&four, &ct)), ErrorKind::KeyUnusable);
    ks.set_state("g", "k2", Inactive).unwrap();
    assert_eq!(kind(four.encrypt("g", &pt, b"aad")), ErrorKind::KeyUnusable);
    let mut sink = Vec::new();
    let r = four.encrypt_stream("g", &mut Cursor::new(&pt), &mut sink, b"aad", &mut |_| {});
    assert_eq!(kind(r), ErrorKind::KeyUnusable);
}

#[test]
fn progress_counts_every_byte_read() {
    let scratch = Scratch::new();
    let (path, ks) = scratch.keystore();
    key_in(&ks, "g", "k", Active);
    let four = open(&path, 2);
    let pt = pattern(5 * MIB + 3);
    let mut ct = Vec::new();
    let mut seen = Vec::new();
    four.encrypt_stream("g", &mut Cursor::new(&pt), &mut ct, b"", &mut |n| seen.push(n)).unwrap();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert_eq!(seen.last(), Some(&(pt.len() as u64)));
    let mut seen = Vec::new();
    four.decrypt_stream(&mut Cursor::new(&ct), &mut Vec::new(), b"", &mut |n| seen.push(n)).unwrap();
    assert_eq!(seen.last(), Some(&(ct.len() as u64)));
}

fn hex_tag(ciphertext: &[u8]) -> String {
    ciphertext[12..28].iter().map(|b| format!("{b:02x}")).collect()
}
